/*
 * f_input.c - files whose written content is applied when the writer
 * closes: run.py, run.js, run.sh (a run; the close returns when it ended),
 * env (the variables of later runs) and stdin (the input of later runs).
 */
#include "dirtab.h"
#include "pending.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

/* ---- run.py, run.js, run.sh: the table row's arg is the language ---- */

static int code_open(struct handle *h, int flags)
{
	struct node *n = h->node;
	size_t len = 0;

	if ((flags & O_ACCMODE) == O_RDONLY) {
		h->data = run_last_code(n->sb, n->ctx, (enum run_lang)n->t->arg, &len);
		h->len = h->data ? len : 0;
	} else if (flags & O_APPEND) {
		/* `>>` writes at the size code_stat reports: append to the code last written. */
		h->wbuf = run_last_code(n->sb, n->ctx, (enum run_lang)n->t->arg, &len);
		h->wlen = h->wbuf ? len : 0;
	}
	return 0;
}

static int code_commit(struct node *n, char *data, size_t len, fuse_req_t req)
{
	struct sbx_err err = { 0 };
	struct pending *p = req ? pending_new(req, PENDING_FLUSH, n->sb, NULL, 0) : NULL;
	int ret;

	ret = run_submit(n->sb, n->ctx, (enum run_lang)n->t->arg, data, len, p ? &p->waiter : NULL, &err);
	if (ret) {
		if (p)
			pending_cancel(p);
		ctl_log_error(fs.ctl, run_lang_file((enum run_lang)n->t->arg), "(run)", 5, err.msg);
		return ret;
	}
	return p ? SYNTH_LATER : 0;
}

/*
 * Size and time of the code last written, so an editor that compares them
 * before saving sees no change it did not make; never written: 0 and the epoch.
 */
static int code_stat(struct node *n, struct stat *st)
{
	size_t len = 0;
	struct timespec when = { 0 };

	run_last_code_attr(n->sb, n->ctx, (enum run_lang)n->t->arg, &len, &when);
	st->st_size = (off_t)len;
	st->st_mtim = st->st_ctim = when;
	return 0;
}

const struct sfile_ops code_fops = { .open = code_open, .commit = code_commit, .stat = code_stat };

/* ---- env ---- */

static int env_open(struct handle *h, int flags)
{
	int acc = flags & O_ACCMODE;

	if (acc == O_RDONLY) {
		handle_set_data(h, sandbox_env_text(h->node->sb));
	} else if (!(flags & O_TRUNC) && acc == O_RDWR) {
		/* Opened for update: start from the present content. */
		h->wbuf = sandbox_env_text(h->node->sb);
		h->wlen = h->wbuf ? strlen(h->wbuf) : 0;
	}
	return 0;
}

static int env_commit(struct node *n, char *data, size_t len, fuse_req_t req)
{
	struct sbx_err err = { 0 };
	char where[300];
	int ret = sandbox_set_env(n->sb, data, len, &err);

	(void)req;
	if (ret) {
		synth_where(n, "env", where, sizeof(where));
		ctl_log_error(fs.ctl, where, data, len, err.msg);
	}
	free(data);
	return ret;
}

const struct sfile_ops env_fops = { .open = env_open, .commit = env_commit, .truncate_commits = true };

/* ---- stdin ---- */

static int stdin_commit(struct node *n, char *data, size_t len, fuse_req_t req)
{
	int ret = run_set_stdin(n->sb, n->ctx, data, len);

	(void)req;
	free(data);
	return ret;
}

/* `: > stdin` empties it: the truncation is the whole write. */
static int stdin_truncate(struct node *n, off_t size)
{
	return size == 0 ? run_set_stdin(n->sb, n->ctx, "", 0) : 0;
}

const struct sfile_ops stdin_fops = { .commit = stdin_commit, .truncate = stdin_truncate };
