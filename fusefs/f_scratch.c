/*
 * f_scratch.c - scratch files as files (the store is scratch.c), and the
 * directory operations that make, remove and rename them. A rename of a
 * scratch file onto a writable control file is a write of its content to
 * that file followed by a close: onto run.py it runs the code (the rename
 * returns when the run has ended), onto ctl it runs the commands and fails
 * with their errno. The scratch file is gone afterwards either way.
 */
#include "dirtab.h"
#include "scratch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sc_open(struct handle *h, int flags)
{
	struct node *n = h->node;

	h->priv = scratch_get(n->sb, n->ctx, n->name);
	if (!h->priv)
		return -ENOENT;
	return flags & O_TRUNC ? scratch_truncate(h->priv, 0) : 0;
}

static void sc_release(struct handle *h)
{
	if (h->priv)
		scratch_put(h->priv);
	h->priv = NULL;
}

static void sc_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	char *buf = malloc(size ? size : 1);

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fuse_reply_buf(req, buf, scratch_read(h->priv, buf, size, off));
	free(buf);
}

static void sc_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	int ret = scratch_write(h->priv, buf, size, off);

	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

static int sc_stat(struct node *n, struct stat *st)
{
	return scratch_stat(n->sb, n->ctx, n->name, st);
}

static int sc_truncate(struct node *n, off_t size)
{
	struct scratch *s = scratch_get(n->sb, n->ctx, n->name);
	int ret;

	if (!s)
		return -ENOENT;
	ret = scratch_truncate(s, size);
	scratch_put(s);
	return ret;
}

/* chmod and chown (sed -i copies the target's): accepted, the mode stays 0600. */
static int sc_chattr(struct node *n, const struct stat *attr, int to_set)
{
	(void)attr;
	(void)to_set;
	return scratch_exists(n->sb, n->ctx, n->name) ? 0 : -ENOENT;
}

static const struct sfile_ops scratch_fops = {
	.open = sc_open, .release = sc_release, .read = sc_read, .write = sc_write,
	.stat = sc_stat, .truncate = sc_truncate, .chattr = sc_chattr,
};

/*
 * Mode 0600, whatever the creator asked: a private temporary file. (vim
 * compares a test file's mode with the original's to choose between
 * renaming the original away, which control files refuse, and copying it.)
 */
const struct dirtab scratch_dirtab = {
	NULL, S_IFREG | 0600, TTL_LIVE, TTL_LIVE, &scratch_fops, NULL, 0, NULL, NULL,
};

/* The scratch file name in dir, made if need be, as a node with a lookup counted. */
int scratch_create_file(fuse_req_t req, struct node *dir, const char *name, int flags, struct node **out)
{
	struct sentry e;
	int ret;

	if (!dir->t->dir || !dir->t->dir->scratch || dirtab_fixed(dir, name))
		return -EACCES;
	ret = synth_find(req, dir, name, &e);
	if (ret == 0) {
		bool scratch = e.t == &scratch_dirtab;

		sentry_done(&e);
		if (!scratch || (flags & O_EXCL))
			return -EEXIST;
	} else if (ret == -ENOENT) {
		ret = scratch_create(dir->sb, dir->ctx, name, flags & O_EXCL);
		if (ret)
			return ret;
	} else {
		return ret;
	}
	*out = node_synth(dir, name, &scratch_dirtab, dir->sb, 0, NULL);
	return *out ? 0 : -ENOMEM;
}

void scratch_unlink_req(fuse_req_t req, struct node *dir, const char *name)
{
	int ret = -EPERM;

	if (dir->t->dir && dir->t->dir->scratch && !dirtab_fixed(dir, name))
		ret = scratch_unlink(dir->sb, dir->ctx, name);
	if (ret == -ENOENT) {
		struct sentry e;

		if (synth_find(req, dir, name, &e) == 0) {
			sentry_done(&e);
			ret = -EPERM;       /* a generated entry (a sandbox, a run) is not unlinked */
		}
	}
	fuse_reply_err(req, -ret);
}

/* Applies the content of scratch name to the control file t: a write and a close. */
static void rename_onto(fuse_req_t req, struct node *dir, const char *name, const struct dirtab *t)
{
	struct node *target;
	size_t len = 0;
	char *data = NULL;
	int ret = scratch_take(dir->sb, dir->ctx, name, &data, &len);

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	target = node_synth(dir, t->name, t, dir->sb, 0, NULL);
	if (!target) {
		free(data);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/*
	 * The kernel holds the directory's lock for the rename: a `kill` in the
	 * root ctl must not invalidate the root's entry from here (it would
	 * wait for that lock); the notifier thread does it once we answered.
	 */
	notify_defer_gone(true);
	ret = t->fops->commit(target, data, len, req);
	notify_defer_gone(false);
	node_forget(target, 1);
	if (ret != SYNTH_LATER)
		fuse_reply_err(req, ret < 0 ? -ret : 0);
}

void scratch_rename_req(fuse_req_t req, struct node *dir, const char *name, struct node *newdir,
			const char *newname, unsigned int flags)
{
	const struct dirtab *t;
	struct sentry e;
	int ret;

	if (newdir != dir) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	if (!dir->t->dir || !dir->t->dir->scratch || dirtab_fixed(dir, name) ||
	    !scratch_exists(dir->sb, dir->ctx, name) || (flags & RENAME_EXCHANGE)) {
		fuse_reply_err(req, (flags & RENAME_EXCHANGE) ? EINVAL : EPERM);
		return;
	}
	t = dirtab_fixed(dir, newname);
	if (t && (flags & RENAME_NOREPLACE)) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if (t) {
		bool writable = (t->mode & 0200) && t->fops && t->fops->commit;

		if (writable)
			rename_onto(req, dir, name, t);
		else
			fuse_reply_err(req, S_ISDIR(t->mode) ? EISDIR : EPERM);
		return;
	}
	ret = synth_find(req, dir, newname, &e);
	if (ret == 0) {
		bool scratch = e.t == &scratch_dirtab;

		sentry_done(&e);
		if (!scratch) {
			fuse_reply_err(req, S_ISDIR(e.t->mode) ? EISDIR : EPERM);
			return;
		}
	}
	ret = scratch_rename(dir->sb, dir->ctx, name, newname, flags & RENAME_NOREPLACE);
	fuse_reply_err(req, -ret);
}
