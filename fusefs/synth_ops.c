/*
 * synth_ops.c - synth_node_ops: what every synthetic node does with a
 * request, through its table entry. Open files are struct handle; their
 * reads, writes and commits go to the file's family (struct sfile_ops) or
 * to the defaults here: a snapshot or spooled file read, a buffered write.
 *
 * Synthetic files are direct_io: every read sees the present state.
 */
#include "dirtab.h"
#include "pending.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void handle_set_data(struct handle *h, char *text)
{
	free(h->data);
	h->data = text;
	h->len = text ? strlen(text) : 0;
}

void synth_reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
	if (!data || off < 0 || (size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, data + off, len - (size_t)off < size ? len - (size_t)off : size);
}

void synth_where(const struct node *n, const char *suffix, char *out, size_t size)
{
	if (!n->sb)
		snprintf(out, size, "/%s", suffix);
	else if (n->ctx)
		snprintf(out, size, "/%s/contexts/%s/%s", sandbox_name(n->sb), n->ctx, suffix);
	else
		snprintf(out, size, "/%s/%s", sandbox_name(n->sb), suffix);
}

static void handle_track(struct handle *h)
{
	pthread_mutex_lock(&fs.handles_lock);
	h->prev = NULL;
	h->next = fs.handles;
	if (fs.handles)
		fs.handles->prev = h;
	fs.handles = h;
	pthread_mutex_unlock(&fs.handles_lock);
}

static void handle_untrack(struct handle *h)
{
	pthread_mutex_lock(&fs.handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else if (fs.handles == h)
		fs.handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
	pthread_mutex_unlock(&fs.handles_lock);
}

static void handle_free(struct handle *h)
{
	/*
	 * A reply from h->data may still be in the thread that sent it: the
	 * caller's close() can come as soon as the kernel has the bytes, before
	 * that thread leaves writev (and its lock).
	 */
	pthread_mutex_lock(&h->lock);
	pthread_mutex_unlock(&h->lock);
	if (h->node->t->fops && h->node->t->fops->release)
		h->node->t->fops->release(h);
	if (h->fd >= 0)
		close(h->fd);
	free(h->data);
	free(h->wbuf);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void synth_free_handles(void)
{
	struct handle *list;

	pthread_mutex_lock(&fs.handles_lock);
	list = fs.handles;
	fs.handles = NULL;
	pthread_mutex_unlock(&fs.handles_lock);
	while (list) {
		struct handle *h = list;

		list = h->next;
		handle_free(h);      /* takes the handle's lock and a scratch file's: not under handles_lock */
	}
}

static struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static const struct sfile_ops *fops_of(const struct node *n)
{
	static const struct sfile_ops none;

	return n->t->fops ? n->t->fops : &none;
}

/* A new open file of n, tracked, in fi: 0 or -errno. */
static int handle_open(struct node *n, struct fuse_file_info *fi)
{
	const struct sfile_ops *f = fops_of(n);
	struct handle *h;
	int ret;

	if (S_ISDIR(n->t->mode))
		return -EISDIR;
	if ((fi->flags & O_ACCMODE) != O_RDONLY && !(n->t->mode & 0200))
		return -EACCES;
	if (n->sb && !sandbox_alive(n->sb))
		return -ENOENT;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->node = n;
	h->fd = -1;
	h->writer = (fi->flags & O_ACCMODE) != O_RDONLY;
	ret = f->open ? f->open(h, fi->flags) : 0;
	if (ret) {
		handle_free(h);
		return ret;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->nonseekable = 0;
	handle_track(h);
	return 0;
}

/* The reply did not reach the caller (interrupted): nobody will release the handle. */
static void handle_drop(struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	handle_untrack(h);
	handle_free(h);
}

static void synth_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	int ret = handle_open(n, fi);

	if (ret)
		fuse_reply_err(req, -ret);
	else if (fuse_reply_open(req, fi) == -ENOENT)
		handle_drop(fi);
}

/* The default read: the spooled file if there is one, else the snapshot. */
void spooled_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	char *buf;
	ssize_t got;

	if (h->fd < 0) {
		pthread_mutex_lock(&h->lock);
		synth_reply_slice(req, h->data, h->len, size, off);
		pthread_mutex_unlock(&h->lock);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	got = pread(h->fd, buf, size, off);
	if (got < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

static void synth_read(fuse_req_t req, struct node *n, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	const struct sfile_ops *f = fops_of(n);

	if (h)
		h->nonblock = fi->flags & O_NONBLOCK;
	if (!h)
		fuse_reply_buf(req, NULL, 0);
	else if (f->read)
		f->read(req, h, size, off);
	else
		spooled_read(req, h, size, off);
}

/* The default write: kept until flush, at most CODE_MAX bytes. */
static void write_default(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	size_t end;

	if (off < 0 || (size_t)off > CODE_MAX || size > CODE_MAX - (size_t)off) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	end = (size_t)off + size;
	pthread_mutex_lock(&h->lock);
	if (end > h->wlen) {
		char *grown = realloc(h->wbuf, end);

		if (!grown) {
			pthread_mutex_unlock(&h->lock);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if ((size_t)off > h->wlen)
			memset(grown + h->wlen, 0, (size_t)off - h->wlen);
		h->wbuf = grown;
		h->wlen = end;
	}
	memcpy(h->wbuf + off, buf, size);
	h->dirty = true;
	pthread_mutex_unlock(&h->lock);
	fuse_reply_write(req, size);
}

static void write_mem(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	const struct sfile_ops *f = fops_of(h->node);

	if (f->write)
		f->write(req, h, buf, size, off);
	else
		write_default(req, h, buf, size, off);
}

static void synth_write_buf(fuse_req_t req, struct node *n, struct fuse_bufvec *in, off_t off,
			    struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct fuse_bufvec mem;
	size_t size = fuse_buf_size(in);
	char *buf;

	(void)n;
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (in->count == 1 && !(in->buf[0].flags & FUSE_BUF_IS_FD)) {
		write_mem(req, h, in->buf[0].mem, size, off);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	mem = (struct fuse_bufvec)FUSE_BUFVEC_INIT(size);
	mem.buf[0].mem = buf;
	size = (size_t)fuse_buf_copy(&mem, in, 0);
	write_mem(req, h, buf, size, off);
	free(buf);
}

/*
 * Takes the written bytes off the handle if they have not been used yet; at
 * the last close (release), an empty content if it was truncated and not
 * written since. Not at a flush: a shell's `> env` closes a copy of the
 * descriptor before it writes, and env would be empty until the write's close.
 */
static char *take_written(struct handle *h, size_t *len, bool last)
{
	char *copy = NULL;

	pthread_mutex_lock(&h->lock);
	if (h->dirty) {
		atomic_store(&h->truncated, false);
		copy = malloc(h->wlen ? h->wlen : 1);
		if (copy) {
			memcpy(copy, h->wbuf, h->wlen);
			*len = h->wlen;
			h->dirty = false;
		}
	} else if (last && atomic_exchange(&h->truncated, false)) {
		copy = malloc(1);
		*len = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return copy;
}

/* 0, -errno or SYNTH_LATER; the commit function owns data. */
static int commit_written(struct handle *h, fuse_req_t req)
{
	const struct sfile_ops *f = fops_of(h->node);
	size_t len = 0;
	char *data;

	if (!f->commit)
		return 0;
	data = take_written(h, &len, req == NULL);
	return data ? f->commit(h->node, data, len, req) : 0;
}

static void synth_flush(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	int ret = h ? commit_written(h, req) : 0;

	(void)n;
	if (ret == SYNTH_LATER)
		return;         /* answered when the run ends */
	fuse_reply_err(req, ret < 0 ? -ret : 0);
}

static void synth_release(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	(void)n;
	if (h) {
		commit_written(h, NULL);
		handle_untrack(h);
		handle_free(h);
	}
	fuse_reply_err(req, 0);
}

/* A truncation to 0 of n (truncate_commits): each writer open now commits nothing unless it writes. */
static void truncate_writers(struct node *n)
{
	/* an atomic store, not the handle's lock: the handles lock is a leaf */
	pthread_mutex_lock(&fs.handles_lock);
	for (struct handle *h = fs.handles; h; h = h->next)
		if (h->node == n && h->writer)
			atomic_store(&h->truncated, true);
	pthread_mutex_unlock(&fs.handles_lock);
}

static void synth_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	const struct sfile_ops *f = fops_of(n);

	/* Truncation of a writable file is what `>` does before writing: accept it. */
	int ret = 0;

	/* The notifier truncates `events` so that inotify sees it change (f_events.c): nothing changes. */
	if ((to_set & FUSE_SET_ATTR_SIZE) && !(n->t->mode & 0200) && !notify_is_self(req)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		ret = f->chattr ? f->chattr(n, attr, to_set) : -EPERM;
	if (!ret && (to_set & FUSE_SET_ATTR_SIZE) && f->truncate)
		ret = f->truncate(n, attr->st_size);
	if (!ret && (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size == 0 && f->truncate_commits)
		truncate_writers(n);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		synth_getattr(req, n, fi);
}

static void synth_mkdir(fuse_req_t req, struct node *dir, const char *name, mode_t mode)
{
	(void)mode;
	if (dir->t->dir && dir->t->dir->mkdir)
		dir->t->dir->mkdir(req, dir, name);
	else
		fuse_reply_err(req, EPERM);
}

static void synth_rmdir(fuse_req_t req, struct node *dir, const char *name)
{
	if (dir->t->dir && dir->t->dir->rmdir)
		dir->t->dir->rmdir(req, dir, name);
	else
		fuse_reply_err(req, EPERM);
}

/*
 * The notifier (notify.c) creates a table's file through the mount so that
 * inotify watchers see it appear.
 */
static void notifier_create(fuse_req_t req, struct node *dir, const struct dirtab *t,
			    struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct node *n;

	n = node_synth(dir, t->name, t, dir->sb, 0, NULL);
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memset(&e, 0, sizeof(e));
	synth_stat(n, &e.attr);
	e.attr.st_ino = node_ino(n);
	e.ino = node_ino(n);
	/*
	 * No handle: the notifier only opens and closes. Its close may come after
	 * the session has stopped (at unmount), when no release would free one.
	 */
	fi->fh = 0;
	fi->direct_io = 1;
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		node_forget(n, 1);
}

/* Anyone else makes a scratch file (f_scratch.c), where the directory has them. */
static void synth_create(fuse_req_t req, struct node *dir, const char *name, mode_t mode,
			 struct fuse_file_info *fi)
{
	const struct dirtab *t = dirtab_fixed(dir, name);
	struct fuse_entry_param e;
	struct node *n = NULL;
	int ret;

	(void)mode;
	if (t && notify_is_self(req)) {
		notifier_create(req, dir, t, fi);
		return;
	}
	ret = scratch_create_file(req, dir, name, fi->flags, &n);
	if (!ret) {
		memset(&e, 0, sizeof(e));
		ret = synth_stat(n, &e.attr);
	}
	if (!ret)
		ret = handle_open(n, fi);
	if (ret) {
		if (n)
			node_forget(n, 1);
		fuse_reply_err(req, -ret);
		return;
	}
	e.ino = node_ino(n);
	e.attr_timeout = n->t->attr_timeout;
	e.entry_timeout = n->t->entry_timeout;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		handle_drop(fi);
		node_forget(n, 1);
	}
}

static void synth_unlink(fuse_req_t req, struct node *dir, const char *name)
{
	scratch_unlink_req(req, dir, name);
}

static void synth_rename(fuse_req_t req, struct node *dir, const char *name, struct node *newdir,
			 const char *newname, unsigned int flags)
{
	scratch_rename_req(req, dir, name, newdir, newname, flags);
}

static void synth_poll(fuse_req_t req, struct node *n, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	struct handle *h = handle_of(fi);
	const struct sfile_ops *f = fops_of(n);

	if (h && f->poll) {
		f->poll(req, h, ph);
		return;
	}
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLOUT);
}

const struct node_ops synth_node_ops = {
	.lookup = synth_lookup,
	.getattr = synth_getattr,
	.setattr = synth_setattr,
	.mkdir = synth_mkdir,
	.rmdir = synth_rmdir,
	.open = synth_open,
	.create = synth_create,
	.unlink = synth_unlink,
	.rename = synth_rename,
	.read = synth_read,
	.write_buf = synth_write_buf,
	.flush = synth_flush,
	.release = synth_release,
	.readdir = synth_readdir,
	.poll = synth_poll,
};
