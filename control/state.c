/*
 * state.c - a sandbox's state on disk: state_root/sandboxes/NAME/sandbox.json.
 *
 * Written whole with sbx_write_file_atomic (backend/util.c: a temp of its own,
 * fsync, rename, fsync of the directory), so a crash at any point leaves either
 * the old or the new state, never a torn one. Saves of one sandbox are
 * serialised by its save_lock, taken before the snapshot of the fields: saves
 * land in the order their snapshots were taken, so the newest state is the
 * one on disk.
 */
#include "sandbox.h"
#include "ctl_parse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Temporary files a crash left between their creation and rename: never the live file. */
static void state_tmp_sweep(const char *dir, const char *base)
{
	char prefix[300], path[4400];
	struct dirent *de;
	size_t plen;
	DIR *d = opendir(dir);

	if (!d)
		return;
	plen = (size_t)snprintf(prefix, sizeof(prefix), "%s" SBX_TMP_INFIX, base);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, plen) != 0 || strlen(de->d_name) != plen + 6)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

static json_object *limits_json(const struct sbx_limits *l)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "mem", json_object_new_int64((int64_t)l->mem_bytes));
	json_object_object_add(o, "cpu_millis", json_object_new_int64(l->cpu_millis));
	json_object_object_add(o, "pids", json_object_new_int64(l->pids));
	json_object_object_add(o, "disk", json_object_new_int64((int64_t)l->disk_bytes));
	return o;
}

int state_save(struct sandbox *sb, struct sbx_err *err)
{
	char path[4200];
	json_object *o, *env;
	const char *text;
	int ret;

	o = json_object_new_object();
	env = json_object_new_array();
	if (!o || !env) {
		json_object_put(o);
		json_object_put(env);
		return sbx_err_set(err, ENOMEM, "out of memory saving sandbox '%s'", sb->name);
	}
	pthread_mutex_lock(&sb->save_lock);
	pthread_mutex_lock(&sb->lock);
	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "name", json_object_new_string(sb->name));
	json_object_object_add(o, "id", json_object_new_string(sb->id));
	json_object_object_add(o, "template", json_object_new_string(sb->template_name));
	json_object_object_add(o, "created", json_object_new_int64(sb->created));
	json_object_object_add(o, "last_active", json_object_new_int64(sb->last_active));
	json_object_object_add(o, "ttl", json_object_new_int64((int64_t)sb->ttl));
	json_object_object_add(o, "timeout", json_object_new_int64((int64_t)sb->timeout));
	json_object_object_add(o, "paused", json_object_new_boolean(sb->paused));
	if (sb->killing)
		json_object_object_add(o, "killing", json_object_new_boolean(true));
	if (sb->creating)
		json_object_object_add(o, "creating", json_object_new_boolean(true));
	json_object_object_add(o, "limits", limits_json(&sb->limits));
	for (char **e = sb->env; e && *e; e++)
		json_object_array_add(env, json_object_new_string(*e));
	json_object_object_add(o, "env", env);
	json_object_object_add(o, "meta", json_object_get(sb->meta));
	pthread_mutex_unlock(&sb->lock);

	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	snprintf(path, sizeof(path), "%s/sandbox.json", sb->dir);
	ret = text ? sbx_write_file_atomic(path, text, strlen(text), SBX_WRITE_SYNC, err)
		   : sbx_err_set(err, ENOMEM, "out of memory saving sandbox '%s'", sb->name);
	pthread_mutex_unlock(&sb->save_lock);
	json_object_put(o);
	if (ret)
		sbx_err_wrap(err, "cannot save the state of sandbox '%s'", sb->name);
	return ret;
}

static int64_t get_int(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return dflt;
	return json_object_get_int64(v);
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The env array of sandbox.json: strings only (a null would be no string to copy). 0 or -ENOMEM. */
static int load_env(struct sandbox *sb, json_object *env)
{
	size_t n = json_object_array_length(env), k = 0;

	sb->env = calloc(n + 1, sizeof(char *));
	if (!sb->env)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(env, i);

		if (!json_object_is_type(v, json_type_string))
			continue;
		sb->env[k] = strdup(json_object_get_string(v));
		if (!sb->env[k++])
			return -ENOMEM;
	}
	return 0;
}

int state_load(struct sbx_ctl *ctl, const char *name, struct sandbox **out, struct sbx_err *err)
{
	json_object *o, *limits, *env, *meta;
	char path[4200];
	struct sandbox *sb;
	const char *s;

	snprintf(path, sizeof(path), "%s/sandboxes/%s", ctl->state_root, name);
	state_tmp_sweep(path, "sandbox.json");
	snprintf(path, sizeof(path), "%s/sandboxes/%s/sandbox.json", ctl->state_root, name);
	o = json_object_from_file(path);
	if (!o)
		return sbx_err_set(err, EIO, "cannot read '%s': %s", path, json_util_get_last_err());
	sb = sandbox_new(ctl, name);
	if (!sb) {
		json_object_put(o);
		return sbx_err_set(err, ENOMEM, "out of memory");
	}
	s = get_str(o, "id");
	snprintf(sb->id, sizeof(sb->id), "%s", s ? s : "");
	s = get_str(o, "template");
	snprintf(sb->template_name, sizeof(sb->template_name), "%s", s ? s : "default");
	sb->created = (time_t)get_int(o, "created", time(NULL));
	sb->last_active = (time_t)get_int(o, "last_active", sb->created);
	sb->ttl = (uint64_t)get_int(o, "ttl", 0);
	sb->timeout = (uint64_t)get_int(o, "timeout", 60);
	if (json_object_object_get_ex(o, "paused", &meta))
		sb->paused = json_object_get_boolean(meta);
	if (json_object_object_get_ex(o, "killing", &meta))
		sb->killing = json_object_get_boolean(meta);
	if (json_object_object_get_ex(o, "creating", &meta))
		sb->creating = json_object_get_boolean(meta);
	if (json_object_object_get_ex(o, "limits", &limits)) {
		sb->limits.mem_bytes = (uint64_t)get_int(limits, "mem", 0);
		sb->limits.cpu_millis = (uint32_t)get_int(limits, "cpu_millis", 0);
		sb->limits.pids = (uint32_t)get_int(limits, "pids", 0);
		sb->limits.disk_bytes = (uint64_t)get_int(limits, "disk", 0);
	}
	if (json_object_object_get_ex(o, "env", &env) && json_object_is_type(env, json_type_array) &&
	    load_env(sb, env) < 0) {
		json_object_put(o);
		sandbox_put(sb);
		return sbx_err_set(err, ENOMEM, "out of memory loading '%s'", path);
	}
	if (json_object_object_get_ex(o, "meta", &meta) && json_object_is_type(meta, json_type_object))
		sb->meta = json_object_get(meta);
	else
		sb->meta = json_object_new_object();
	json_object_put(o);
	if (!sb->id[0]) {
		sandbox_put(sb);
		return sbx_err_set(err, EINVAL, "'%s' has no id", path);
	}
	*out = sb;
	return 0;
}

/*
 * One daemon per state directory: two would each attach, reap, number runs
 * and save every sandbox.json. A lock on STATE/lock, held while the daemon
 * lives, the kernel lets go of when it dies (SIGKILL too). A descriptor a
 * child forked and has not yet exec'd holds it a moment: waited for, 3 s.
 */
int state_lock(const char *root, struct sbx_err *err)
{
	char path[4200];
	int fd, tries = 0;

	snprintf(path, sizeof(path), "%s/lock", root);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return sbx_err_sys(err, errno, "cannot open '%s'", path);
	while (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;

		if (e != EWOULDBLOCK || ++tries > 30) {
			close(fd);
			if (e == EWOULDBLOCK)
				return sbx_err_set(err, EBUSY, "state directory '%s' is in use by another sbxfs", root);
			return sbx_err_sys(err, e, "cannot lock '%s'", path);
		}
		usleep(100 * 1000);
	}
	return fd;
}

/*
 * A state directory serves one backend: a daemon of the other would list the
 * sandboxes as stopped, and its kill would drop their records while their
 * processes, cgroups and id blocks live on, found by no daemon. The first
 * start writes STATE/backend; a start with another backend is refused.
 */
int state_claim_backend(const char *root, const char *backend, struct sbx_err *err)
{
	char path[4200], have[64] = "";
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "%s/backend", root);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		return sbx_err_sys(err, errno, "cannot open '%s'", path);
	if (fd >= 0) {
		n = read(fd, have, sizeof(have) - 1);
		close(fd);
		if (n < 0)
			return sbx_err_sys(err, errno, "cannot read '%s'", path);
		have[n] = 0;
		have[strcspn(have, "\n")] = 0;
	}
	if (n < 0) {
		char line[64];
		int len = snprintf(line, sizeof(line), "%s\n", backend);

		return sbx_write_file_atomic(path, line, (size_t)len, SBX_WRITE_SYNC, err);
	}
	if (strcmp(have, backend))
		return sbx_err_set(err, EINVAL, "state directory '%s' belongs to the %s backend, not %s "
				   "(give each backend a state= of its own)", root, have, backend);
	return 0;
}
