/*
 * context.c - persistent contexts: contexts/NAME/ of a sandbox, with one
 * long-lived interpreter per language, started on first use. This file keeps
 * the list and the life of a context; ctx_interp.c starts and ends the
 * interpreters, ctx_exec.c runs code in one, ctx_proto.c parses what the
 * interpreter sends back.
 *
 * Threads: a context's runs go through its own run queue (run.c) and its
 * interpreters are touched only by that queue's worker, or once the worker is
 * gone (rmdir, shutdown). On disk: sb->dir/contexts/NAME/runs/N/.
 */
#include "context.h"
#include "ctl_parse.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the list ---- */

struct context *ctx_find_locked(struct sandbox *sb, const char *name)
{
	for (struct context *c = sb->contexts; c; c = c->next)
		if (!c->dead && strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static struct context *ctx_alloc(struct sandbox *sb, const char *name)
{
	struct context *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->dir, sizeof(c->dir), "%s/contexts/%s", sb->dir, name);
	c->runs.next = 1;
	c->runs.sb = sb;
	c->runs.ctx = c;
	c->abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (int i = 0; i < RUN_LANG_COUNT; i++)
		c->interp[i] = (struct ctx_interp){ .in_fd = -1, .out_fd = -1, .err_fd = -1 };
	if (c->abort_fd < 0) {
		free(c);
		return NULL;
	}
	return c;
}

static void ctx_free(struct context *c)
{
	run_queue_free(&c->runs);
	if (c->abort_fd >= 0)
		close(c->abort_fd);
	free(c);
}

int ctx_create(struct sandbox *sb, const char *name, struct sbx_err *err)
{
	char path[4300];
	struct context *c;
	int ret;

	ret = ctl_check_name(name, err);
	if (ret)
		return ret;
	pthread_mutex_lock(&sb->lock);
	if (sb->dead) {
		ret = sbx_err_set(err, ENOENT, "sandbox '%s' is gone", sb->name);
		goto out_unlock;
	}
	if (ctx_find_locked(sb, name)) {
		ret = sbx_err_set(err, EEXIST, "context '%s' already exists", name);
		goto out_unlock;
	}
	c = ctx_alloc(sb, name);
	if (!c) {
		ret = sbx_err_set(err, ENOMEM, "out of resources making context '%s'", name);
		goto out_unlock;
	}
	snprintf(path, sizeof(path), "%s/contexts", sb->dir);
	if ((mkdir(path, 0700) && errno != EEXIST) || (mkdir(c->dir, 0700) && errno != EEXIST)) {
		ret = sbx_err_sys(err, errno, "cannot create '%s'", c->dir);
		ctx_free(c);
		goto out_unlock;
	}
	c->next = sb->contexts;
	sb->contexts = c;
out_unlock:
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

bool ctx_exists(struct sandbox *sb, const char *name)
{
	bool found;

	pthread_mutex_lock(&sb->lock);
	found = !sb->dead && ctx_find_locked(sb, name);
	pthread_mutex_unlock(&sb->lock);
	return found;
}

char **ctx_names(struct sandbox *sb)
{
	size_t n = 0, i = 0;
	char **names;

	pthread_mutex_lock(&sb->lock);
	for (struct context *c = sb->contexts; c; c = c->next)
		n++;
	names = calloc(n + 1, sizeof(*names));
	for (struct context *c = sb->contexts; names && c; c = c->next) {
		if (c->dead)
			continue;
		names[i] = strdup(c->name);
		if (!names[i]) {
			/* never a shortened list: NULL says out of memory */
			ctl_strv_free(names);
			names = NULL;
			break;
		}
		i++;
	}
	pthread_mutex_unlock(&sb->lock);
	if (names)
		qsort(names, i, sizeof(*names), sbx_cmp_str);
	return names;
}

/* ---- rmdir, start-up, shut-down ---- */

int ctx_destroy(struct sandbox *sb, const char *name, struct sbx_err *err)
{
	struct run_item *items;
	struct run_waiter *idle;
	struct context *c, **pp;
	uint64_t one = 1;

	pthread_mutex_lock(&sb->lock);
	c = ctx_find_locked(sb, name);
	if (!c) {
		pthread_mutex_unlock(&sb->lock);
		return sbx_err_set(err, ENOENT, "no context '%s'", name);
	}
	c->dead = true;
	items = c->runs.head;
	c->runs.head = c->runs.tail = NULL;
	if (write(c->abort_fd, &one, sizeof(one)) < 0)
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot stop the run of context '%s'", name);
	while (c->runs.running)
		pthread_cond_wait(&sb->idle_cond, &sb->lock);
	idle = c->runs.idle_waiters;
	c->runs.idle_waiters = NULL;
	for (pp = &sb->contexts; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&sb->lock);
	run_fail_items(items, idle);
	ctx_kill_interps(sb, c);
	sbx_rm_rf(c->dir);
	ctx_free(c);
	return 0;
}

void ctx_load_all(struct sandbox *sb)
{
	char path[4300];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/contexts", sb->dir);
	d = opendir(path);
	if (!d) {
		if (errno != ENOENT)
			sbx_log(SBX_LOG_WARNING, NULL, 0,
				"cannot read '%s': %s; its contexts are not listed", path, sbx_errstr(errno));
		return;
	}
	while ((de = readdir(d))) {
		struct sbx_err err = { 0 };
		struct context *c;

		if (de->d_name[0] == '.' || ctl_check_name(de->d_name, &err))
			continue;
		c = ctx_alloc(sb, de->d_name);
		if (!c) {
			sbx_log(SBX_LOG_WARNING, NULL, 0,
				"out of resources loading context '%s' of '%s'; "
				"it and the contexts after it are not listed",
				de->d_name, sb->name);
			break;
		}
		interp_find_lost(c);
		pthread_mutex_lock(&sb->lock);
		c->next = sb->contexts;
		sb->contexts = c;
		pthread_mutex_unlock(&sb->lock);
	}
	closedir(d);
}

void ctx_free_all(struct sandbox *sb)
{
	while (sb->contexts) {
		struct context *c = sb->contexts;

		sb->contexts = c->next;
		ctx_kill_interps(sb, c);
		ctx_free(c);
	}
}
