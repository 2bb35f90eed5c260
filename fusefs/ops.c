/*
 * ops.c - the FUSE request handlers: each finds the node and calls its
 * operations (struct node_ops: synthetic files or files/ passthrough). An
 * operation a family leaves NULL gets the default answer written here.
 * Every request gets exactly one reply, in the handler it is passed to.
 */
#include "fs.h"
#include "dirtab.h"
#include "fop.h"

#include <errno.h>
#include <string.h>

/* Requests by opcode (fop.h), for the root `metrics` file. */
_Atomic uint64_t fop_count[FOP_COUNT];

/* The one instance of the FUSE layer's state (fs.h); the session's userdata. */
struct fs fs = {
	.handles_lock = PTHREAD_MUTEX_INITIALIZER,
	.pending_lock = PTHREAD_MUTEX_INITIALIZER,
	.notify = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
		    .done = PTHREAD_COND_INITIALIZER },
	.scratch = { .lock = PTHREAD_MUTEX_INITIALIZER, .ttl_ms = 60000 },
};

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want |= FUSE_CAP_SPLICE_READ;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* The kernel must not cache across our own changes of synthetic files. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* Locks of files/ go to the real files, so the sandbox's processes see them. */
	if (conn->capable & FUSE_CAP_POSIX_LOCKS)
		conn->want |= FUSE_CAP_POSIX_LOCKS;
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want |= FUSE_CAP_FLOCK_LOCKS;
	pt_locks_init();
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
}

/* Shutdown is main()'s: it stops the watcher once, after the loop, before ending runs. */
static void op_destroy(void *userdata)
{
	(void)userdata;
}

#define NODE(ino) node_get(ino)
/* Calls the node's operation, or replies the default. */
#define DISPATCH(n, op, dflt, ...)                     \
	do {                                           \
		if ((n)->ops->op)                      \
			(n)->ops->op(req, __VA_ARGS__); \
		else                                   \
			dflt;                          \
	} while (0)

/*
 * A request on the root directory is counted while it is handled: the kernel
 * holds the root's lock until it is answered, and an invalidation of a root
 * entry waits for that lock (notify.c keeps those until the count is 0).
 */
static bool root_in(fuse_ino_t a, fuse_ino_t b)
{
	if (a != FUSE_ROOT_ID && b != FUSE_ROOT_ID)
		return false;
	notify_root_enter();
	return true;
}

static void root_out(bool in)
{
	if (in)
		notify_root_leave();
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	FOP_COUNT_ONE(lookup);
	struct node *p = NODE(parent);
	bool root = root_in(parent, 0);

	DISPATCH(p, lookup, fuse_reply_err(req, ENOTDIR), p, name);
	root_out(root);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	FOP_COUNT_ONE(forget);
	node_forget(NODE(ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	FOP_COUNT_ONE(forget_multi);
	for (size_t i = 0; i < count; i++)
		node_forget(NODE(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(getattr);
	struct node *n = NODE(ino);

	DISPATCH(n, getattr, fuse_reply_err(req, ENOSYS), n, fi);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(setattr);
	struct node *n = NODE(ino);
	bool root = root_in(ino, 0);

	DISPATCH(n, setattr, fuse_reply_err(req, EPERM), n, attr, to_set, fi);
	root_out(root);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	FOP_COUNT_ONE(readlink);
	struct node *n = NODE(ino);

	DISPATCH(n, readlink, fuse_reply_err(req, EINVAL), n);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	FOP_COUNT_ONE(mknod);
	struct node *p = NODE(parent);
	bool root = root_in(parent, 0);

	DISPATCH(p, mknod, fuse_reply_err(req, EPERM), p, name, mode, rdev);
	root_out(root);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	FOP_COUNT_ONE(mkdir);
	struct node *p = NODE(parent);
	bool root = root_in(parent, 0);

	DISPATCH(p, mkdir, fuse_reply_err(req, EPERM), p, name, mode);
	root_out(root);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	FOP_COUNT_ONE(unlink);
	struct node *p = NODE(parent);
	bool root = root_in(parent, 0);

	DISPATCH(p, unlink, fuse_reply_err(req, EPERM), p, name);
	root_out(root);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	FOP_COUNT_ONE(rmdir);
	struct node *p = NODE(parent);
	bool root = root_in(parent, 0);

	DISPATCH(p, rmdir, fuse_reply_err(req, EPERM), p, name);
	root_out(root);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	FOP_COUNT_ONE(symlink);
	struct node *p = NODE(parent);
	bool root = root_in(parent, 0);

	DISPATCH(p, symlink, fuse_reply_err(req, EPERM), link, p, name);
	root_out(root);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	FOP_COUNT_ONE(rename);
	struct node *p = NODE(parent), *np = NODE(newparent);
	bool root = root_in(parent, newparent);

	if (p->ops != np->ops)
		fuse_reply_err(req, EXDEV);
	else
		DISPATCH(p, rename, fuse_reply_err(req, EPERM), p, name, np, newname, flags);
	root_out(root);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	FOP_COUNT_ONE(link);
	struct node *n = NODE(ino), *np = NODE(newparent);
	bool root = root_in(newparent, 0);

	if (n->ops != np->ops)
		fuse_reply_err(req, EXDEV);
	else
		DISPATCH(n, link, fuse_reply_err(req, EPERM), n, np, newname);
	root_out(root);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(open);
	struct node *n = NODE(ino);

	DISPATCH(n, open, fuse_reply_err(req, EACCES), n, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(create);
	struct node *p = NODE(parent);
	bool root = root_in(parent, 0);

	DISPATCH(p, create, fuse_reply_err(req, EACCES), p, name, mode, fi);
	root_out(root);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(read);
	struct node *n = NODE(ino);

	DISPATCH(n, read, fuse_reply_err(req, EBADF), n, size, off, fi);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(write_buf);
	struct node *n = NODE(ino);

	DISPATCH(n, write_buf, fuse_reply_err(req, EBADF), n, in, off, fi);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(flush);
	struct node *n = NODE(ino);

	DISPATCH(n, flush, fuse_reply_err(req, 0), n, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(release);
	struct node *n = NODE(ino);

	DISPATCH(n, release, fuse_reply_err(req, 0), n, fi);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(fsync);
	struct node *n = NODE(ino);

	DISPATCH(n, fsync, fuse_reply_err(req, 0), n, datasync, fi);
}

/* Synthetic directories: no handle, and never cached (their names come and go). */
static void opendir_default(fuse_req_t req, struct fuse_file_info *fi)
{
	fi->fh = 0;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(opendir);
	struct node *n = NODE(ino);

	DISPATCH(n, opendir, opendir_default(req, fi), n, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(readdir);
	struct node *n = NODE(ino);
	bool root = root_in(ino, 0);

	DISPATCH(n, readdir, fuse_reply_err(req, ENOTDIR), n, size, off, fi, false);
	root_out(root);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(readdirplus);
	struct node *n = NODE(ino);
	bool root = root_in(ino, 0);

	DISPATCH(n, readdir, fuse_reply_err(req, ENOTDIR), n, size, off, fi, true);
	root_out(root);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(releasedir);
	struct node *n = NODE(ino);

	DISPATCH(n, releasedir, fuse_reply_err(req, 0), n, fi);
}

static void statfs_default(fuse_req_t req)
{
	struct statvfs sv;

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	FOP_COUNT_ONE(statfs);
	struct node *n = NODE(ino);

	DISPATCH(n, statfs, statfs_default(req), n);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(fallocate);
	struct node *n = NODE(ino);

	DISPATCH(n, fallocate, fuse_reply_err(req, EOPNOTSUPP), n, mode, offset, length, fi);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	FOP_COUNT_ONE(lseek);
	struct node *n = NODE(ino);

	DISPATCH(n, lseek, fuse_reply_err(req, ENOSYS), n, off, whence, fi);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	FOP_COUNT_ONE(copy_file_range);
	struct node *in = NODE(ino_in), *out = NODE(ino_out);

	if (in->ops != out->ops)
		fuse_reply_err(req, EXDEV);
	else
		DISPATCH(in, copy_file_range, fuse_reply_err(req, EXDEV), fi_in, off_in, fi_out, off_out, len,
			 flags);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	FOP_COUNT_ONE(setxattr);
	struct node *n = NODE(ino);
	bool root = root_in(ino, 0);

	DISPATCH(n, setxattr, fuse_reply_err(req, ENOTSUP), n, name, value, size, flags);
	root_out(root);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	FOP_COUNT_ONE(getxattr);
	struct node *n = NODE(ino);

	DISPATCH(n, getxattr, fuse_reply_err(req, ENODATA), n, name, size);
}

/* No attributes: an empty list. */
static void listxattr_default(fuse_req_t req, size_t size)
{
	if (size)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_xattr(req, 0);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	FOP_COUNT_ONE(listxattr);
	struct node *n = NODE(ino);

	DISPATCH(n, listxattr, listxattr_default(req, size), n, size);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	FOP_COUNT_ONE(removexattr);
	struct node *n = NODE(ino);
	bool root = root_in(ino, 0);

	DISPATCH(n, removexattr, fuse_reply_err(req, ENOTSUP), n, name);
	root_out(root);
}

static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
	FOP_COUNT_ONE(getlk);
	struct node *n = NODE(ino);

	DISPATCH(n, getlk, fuse_reply_err(req, ENOLCK), n, fi, lock);
}

static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
		     int sleep)
{
	FOP_COUNT_ONE(setlk);
	struct node *n = NODE(ino);

	DISPATCH(n, setlk, fuse_reply_err(req, ENOLCK), n, fi, lock, sleep);
}

static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	FOP_COUNT_ONE(flock);
	struct node *n = NODE(ino);

	DISPATCH(n, flock, fuse_reply_err(req, ENOLCK), n, fi, op);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	FOP_COUNT_ONE(poll);
	struct node *n = NODE(ino);

	DISPATCH(n, poll, fuse_reply_err(req, ENOSYS), n, fi, ph);
}

const struct fuse_lowlevel_ops sbxfs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.getlk = op_getlk,
	.setlk = op_setlk,
	.flock = op_flock,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.poll = op_poll,
};
