/*
 * tab_runs.c - the tables of the run history: runs/ (one directory per kept
 * run), runs/N/ (code, stdout, stderr, exit, info, and what the run left:
 * stdin, result, figure-K.png) and a context's results/ (N-figure-K.png).
 */
#include "dirtab.h"
#include "../control/ctl_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run_number(const char *name, uint64_t *out)
{
	char *end;
	unsigned long long v;

	/* digits only: strtoull would also take " 1", "+1" and "-1" (as 2^64 - 1), other names of run 1 */
	if (name[0] < '1' || name[0] > '9')
		return -ENOENT;
	errno = 0;
	v = strtoull(name, &end, 10);
	if (*end || errno)
		return -ENOENT;
	*out = v;
	return 0;
}

static int run_file_exists(struct node *dir, uint64_t run, const char *name)
{
	int fd = run_open_file(dir->sb, dir->ctx, run, name);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/* The run numbers of the history, as names. */
static char **history_names(struct node *dir)
{
	size_t count = 0;
	uint64_t *runs = run_history(dir->sb, dir->ctx, &count);
	char **names = runs ? calloc(count + 1, sizeof(*names)) : NULL;   /* NULL: ENOMEM, not empty */

	for (size_t i = 0; names && i < count; i++) {
		if (asprintf(&names[i], "%llu", (unsigned long long)runs[i]) < 0) {
			names[i] = NULL;
			ctl_strv_free(names);
			names = NULL;
		}
	}
	free(runs);
	return names;
}

/* ---- runs/N/ ---- */

/* A run's fixed files exist once written (exit when it ended). */
static bool run_file_present(fuse_req_t req, struct node *dir, const struct dirtab *t)
{
	(void)req;
	return run_file_exists(dir, dir->run, t->name) == 0;
}

#define RUN_FILE(name) { name, M_RO, TTL_LIVE, TTL_LIVE, &run_file_fops, NULL, 0, run_file_present, NULL }

static const struct dirtab run_tab[] = {
	RUN_FILE("code"), RUN_FILE("stdout"), RUN_FILE("stderr"), RUN_FILE("exit"), RUN_FILE("info"),
};

static char **run_extra_names(struct node *dir)
{
	return run_extra_files(dir->sb, dir->ctx, dir->run);
}

/* What a run may leave beside its fixed files. */
static bool run_extra_known(const char *name)
{
	size_t len = strlen(name);

	if (strcmp(name, "result") == 0 || strcmp(name, "stdin") == 0)
		return true;
	return len > 11 && strncmp(name, "figure-", 7) == 0 && strcmp(name + len - 4, ".png") == 0 &&
	       !strchr(name, '/');
}

static int run_extra_find(struct node *dir, const char *name, struct sentry *e)
{
	(void)e;
	if (!run_extra_known(name))
		return -ENOENT;
	return run_file_exists(dir, dir->run, name);
}

static const struct dirtab run_extra_dirtab = {
	NULL, M_RO, TTL_LIVE, TTL_LIVE, &run_file_fops, NULL, 0, NULL, NULL,
};

const struct sdir run_sdir = {
	SDIR_TAB(run_tab),
	.gen_tab = &run_extra_dirtab, .list = run_extra_names, .find = run_extra_find,
};

/* ---- runs/ ---- */

static int runs_find(struct node *dir, const char *name, struct sentry *e)
{
	int ret = run_number(name, &e->run);

	return ret ? ret : run_file_exists(dir, e->run, "code");
}

static const struct dirtab run_dirtab = {
	NULL, M_DIR, TTL_LIVE, TTL_LIVE, NULL, &run_sdir, 0, NULL, NULL,
};

const struct sdir runs_sdir = {
	.gen_tab = &run_dirtab, .list = history_names, .find = runs_find,
};

/* ---- contexts/CTX/results/: N-figure-K.png is runs/N/figure-K.png ---- */

static int append_figures(struct node *dir, uint64_t run, char ***names, size_t *count)
{
	char **extra = run_extra_files(dir->sb, dir->ctx, run);
	int ret = extra ? 0 : -ENOMEM;

	for (char **p = extra; p && *p && !ret; p++) {
		char **grown;

		if (strncmp(*p, "figure-", 7))
			continue;
		grown = realloc(*names, (*count + 2) * sizeof(**names));
		if (!grown) {
			ret = -ENOMEM;
			break;
		}
		*names = grown;
		if (asprintf(&grown[*count], "%llu-%s", (unsigned long long)run, *p) < 0) {
			grown[*count] = NULL;
			ret = -ENOMEM;
			break;
		}
		grown[++*count] = NULL;
	}
	ctl_strv_free(extra);
	return ret;
}

static char **figure_names(struct node *dir)
{
	size_t nruns = 0, count = 0;
	uint64_t *runs = run_history(dir->sb, dir->ctx, &nruns);
	char **names = runs ? calloc(1, sizeof(*names)) : NULL;   /* NULL: ENOMEM, not empty */

	for (size_t i = 0; names && i < nruns; i++) {
		if (append_figures(dir, runs[i], &names, &count)) {
			ctl_strv_free(names);
			names = NULL;
		}
	}
	free(runs);
	return names;
}

static int figure_find(struct node *dir, const char *name, struct sentry *e)
{
	const char *dash = strchr(name, '-');
	char numtext[32];

	if (!dash || (size_t)(dash - name) >= sizeof(numtext) || strncmp(dash + 1, "figure-", 7))
		return -ENOENT;
	memcpy(numtext, name, (size_t)(dash - name));
	numtext[dash - name] = '\0';
	if (run_number(numtext, &e->run) || !run_extra_known(dash + 1))
		return -ENOENT;
	return run_file_exists(dir, e->run, dash + 1);
}

static const struct dirtab figure_dirtab = {
	NULL, M_RO, TTL_LIVE, TTL_LIVE, &figure_fops, NULL, 0, NULL, NULL,
};

const struct sdir results_sdir = {
	.gen_tab = &figure_dirtab, .list = figure_names, .find = figure_find,
};
