/*
 * tab_sandbox.c - the tables of a sandbox directory NAME/, of contexts/ and
 * of a context contexts/CTX/. To add a file to a sandbox, add its row here.
 */
#include "dirtab.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* `exit` appears when the latest run has ended. */
static bool exit_present(fuse_req_t req, struct node *dir, const struct dirtab *t)
{
	int fd;

	(void)t;
	/* The notifier creates `exit` through the mount so watchers see it appear. */
	if (notify_is_self(req))
		return false;
	fd = run_open_latest(dir->sb, dir->ctx, "exit");
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static int files_entry(struct node *dir, struct fuse_entry_param *e)
{
	return pt_files_root(dir, e);
}

/* Fixed names live as long as their directory; stdout and stderr grow, so `tail -f` asks their size. */
#define FILE_RW(name, fops, arg) { name, M_RW, TTL_FIXED, TTL_FIXED, &(fops), NULL, arg, NULL, NULL }
#define FILE_RO(name, fops) { name, M_RO, TTL_FIXED, TTL_FIXED, &(fops), NULL, 0, NULL, NULL }
#define FILE_GROWS(name, fops) { name, M_RO, TTL_FIXED, TTL_LIVE, &(fops), NULL, 0, NULL, NULL }
#define FILE_EXIT { "exit", M_RO, TTL_LIVE, TTL_LIVE, &exit_fops, NULL, 0, exit_present, NULL }
#define SUBDIR(name, sdir) { name, M_DIR, TTL_FIXED, TTL_FIXED, NULL, &(sdir), 0, NULL, NULL }

static const struct dirtab sandbox_tab[] = {
	FILE_RW("ctl", ctl_fops, 0),
	FILE_RO("status", status_fops),
	FILE_RO("info", info_fops),
	FILE_RO("metrics", metrics_fops),
	FILE_RW("env", env_fops, 0),
	FILE_RW("run.py", code_fops, RUN_PYTHON),
	FILE_RW("run.js", code_fops, RUN_NODE),
	FILE_RW("run.sh", code_fops, RUN_BASH),
	FILE_GROWS("stdout", stream_fops),
	FILE_GROWS("stderr", stream_fops),
	FILE_EXIT,
	FILE_RO("wait", wait_fops),
	FILE_RW("stdin", stdin_fops, 0),
	SUBDIR("runs", runs_sdir),
	FILE_GROWS("watch", watch_fops),
	SUBDIR("contexts", contexts_sdir),
	{ "files", M_DIR, TTL_FIXED, TTL_FIXED, NULL, NULL, 0, NULL, files_entry },
};

/* A sandbox killed meanwhile has no entries; looking inside starts watching it. */
static int sandbox_enter(struct node *dir)
{
	if (!sandbox_alive(dir->sb))
		return -ENOENT;
	watch_sandbox(dir->sb);      /* files/ caching and `watch` start with the first look */
	return 0;
}

const struct sdir sandbox_sdir = { SDIR_TAB(sandbox_tab), .enter = sandbox_enter, .scratch = true };

const struct dirtab sandbox_dirtab = {
	NULL, M_DIR, TTL_FIXED, TTL_FIXED, .dir = &sandbox_sdir,
};

/* ---- contexts/CTX/: the same families as a sandbox's, in the context ---- */

static const struct dirtab ctx_tab[] = {
	FILE_RW("run.py", code_fops, RUN_PYTHON),
	FILE_RW("run.js", code_fops, RUN_NODE),
	FILE_RW("run.sh", code_fops, RUN_BASH),
	FILE_GROWS("stdout", stream_fops),
	FILE_GROWS("stderr", stream_fops),
	FILE_EXIT,
	FILE_RO("wait", wait_fops),
	FILE_RW("stdin", stdin_fops, 0),
	{ "result", M_RO, TTL_LIVE, TTL_LIVE, &result_fops, NULL, 0, NULL, NULL },
	SUBDIR("runs", runs_sdir),
	SUBDIR("results", results_sdir),
};

static int ctx_enter(struct node *dir)
{
	return ctx_exists(dir->sb, dir->ctx) ? 0 : -ENOENT;
}

const struct sdir ctx_sdir = { SDIR_TAB(ctx_tab), .enter = ctx_enter, .scratch = true };

const struct dirtab ctx_dirtab = {
	NULL, M_DIR, TTL_FIXED, TTL_FIXED, .dir = &ctx_sdir,
};

/* ---- contexts/ ---- */

static char **context_names(struct node *dir)
{
	return ctx_names(dir->sb);
}

static int context_find(struct node *dir, const char *name, struct sentry *e)
{
	if (!ctx_exists(dir->sb, name))
		return -ENOENT;
	e->ctx = name;
	return 0;
}

static void contexts_mkdir(fuse_req_t req, struct node *dir, const char *name)
{
	struct sbx_err err = { 0 };
	char where[300];
	struct node *n;
	int ret = ctx_create(dir->sb, name, &err);

	if (ret) {
		synth_where(dir, "contexts (mkdir)", where, sizeof(where));
		ctl_log_error(fs.ctl, where, name, strlen(name), err.msg);
		fuse_reply_err(req, -ret);
		return;
	}
	n = node_synth(dir, name, &ctx_dirtab, dir->sb, 0, name);
	if (!n)
		fuse_reply_err(req, ENOMEM);
	else
		synth_reply_entry(req, n);
}

static void contexts_rmdir(fuse_req_t req, struct node *dir, const char *name)
{
	struct sbx_err err = { 0 };
	int ret = ctx_destroy(dir->sb, name, &err);

	fuse_reply_err(req, ret ? -ret : 0);
}

const struct sdir contexts_sdir = {
	.gen_tab = &ctx_dirtab, .list = context_names, .find = context_find,
	.mkdir = contexts_mkdir, .rmdir = contexts_rmdir,
};
