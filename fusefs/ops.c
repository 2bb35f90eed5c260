/*
 * ops.c - the FUSE request handlers: each looks at the node kind and hands
 * the request to synth.c (synthetic files) or passthrough.c (files/).
 * Every request gets exactly one reply, in the handler it is passed to.
 */
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fs fs;

static bool is_pt(struct node *n)
{
	return n->kind == N_PT;
}

static bool pt_alive(fuse_req_t req, struct node *n)
{
	if (n->sb && !sandbox_alive(n->sb)) {
		fuse_reply_err(req, ENOENT);
		return false;
	}
	return true;
}

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

static void op_destroy(void *userdata)
{
	(void)userdata;
	watch_stop();
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *p = node_get(parent);

	if (is_pt(p)) {
		if (pt_alive(req, p))
			pt_lookup(req, p, name);
	} else {
		synth_lookup(req, p, name);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(node_get(ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_forget(node_get(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_get(ino);

	(void)fi;
	if (is_pt(n))
		pt_getattr(req, n);
	else
		synth_getattr(req, n);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct node *n = node_get(ino);

	if (is_pt(n)) {
		if (pt_alive(req, n))
			pt_setattr(req, n, attr, to_set, fi);
	} else {
		synth_setattr(req, n, attr, to_set);
	}
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = node_get(ino);

	if (is_pt(n))
		pt_readlink(req, n);
	else
		fuse_reply_err(req, EINVAL);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct node *p = node_get(parent);

	if (is_pt(p)) {
		if (pt_alive(req, p))
			pt_mknod(req, p, name, mode, rdev);
	} else {
		fuse_reply_err(req, EPERM);
	}
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct node *p = node_get(parent);

	if (is_pt(p)) {
		if (pt_alive(req, p))
			pt_mkdir(req, p, name, mode);
	} else {
		synth_mkdir(req, p, name);
	}
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *p = node_get(parent);

	if (is_pt(p)) {
		if (pt_alive(req, p))
			pt_unlink(req, p, name);
	} else {
		fuse_reply_err(req, EPERM);
	}
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *p = node_get(parent);

	if (is_pt(p)) {
		if (pt_alive(req, p))
			pt_rmdir(req, p, name);
	} else {
		synth_rmdir(req, p, name);
	}
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct node *p = node_get(parent);

	if (is_pt(p)) {
		if (pt_alive(req, p))
			pt_symlink(req, link, p, name);
	} else {
		fuse_reply_err(req, EPERM);
	}
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct node *p = node_get(parent), *np = node_get(newparent);

	if (is_pt(p) && is_pt(np)) {
		if (pt_alive(req, p))
			pt_rename(req, p, name, np, newname, flags);
	} else {
		fuse_reply_err(req, is_pt(p) != is_pt(np) ? EXDEV : EPERM);
	}
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct node *n = node_get(ino), *np = node_get(newparent);

	if (is_pt(n) && is_pt(np)) {
		if (pt_alive(req, n))
			pt_link(req, n, np, newname);
	} else {
		fuse_reply_err(req, is_pt(n) != is_pt(np) ? EXDEV : EPERM);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_get(ino);

	if (is_pt(n)) {
		if (pt_alive(req, n))
			pt_open(req, n, fi);
	} else {
		synth_open(req, n, fi);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct node *p = node_get(parent);

	if (is_pt(p)) {
		if (pt_alive(req, p))
			pt_create(req, p, name, mode, fi);
	} else {
		synth_create(req, p, name, fi);
	}
}

/* File handles of files/ are plain fds; those of synthetic files are struct handle. */
static struct handle *synth_handle(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (is_pt(node_get(ino)))
		pt_read(req, size, off, fi);
	else
		synth_read(req, synth_handle(fi), size, off);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fuse_bufvec mem;
	size_t size;
	char *buf;

	if (is_pt(node_get(ino))) {
		pt_write_buf(req, in, off, fi);
		return;
	}
	size = fuse_buf_size(in);
	if (in->count == 1 && !(in->buf[0].flags & FUSE_BUF_IS_FD)) {
		synth_write(req, synth_handle(fi), in->buf[0].mem, size, off);
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
	synth_write(req, synth_handle(fi), buf, size, off);
	free(buf);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_pt(node_get(ino)))
		pt_flush(req, fi);
	else
		synth_flush(req, synth_handle(fi));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_pt(node_get(ino)))
		pt_release(req, fi);
	else
		synth_release(req, synth_handle(fi));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	if (is_pt(node_get(ino)))
		pt_fsync(req, datasync, fi);
	else
		fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = node_get(ino);

	if (is_pt(n)) {
		if (pt_alive(req, n))
			pt_opendir(req, n, fi);
		return;
	}
	fi->fh = 0;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct node *n = node_get(ino);

	if (is_pt(n))
		pt_readdir(req, n, size, off, fi, false);
	else
		synth_readdir(req, n, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	struct node *n = node_get(ino);

	if (is_pt(n))
		pt_readdir(req, n, size, off, fi, true);
	else
		synth_readdir(req, n, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_pt(node_get(ino)))
		pt_releasedir(req, fi);
	else
		fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = node_get(ino);
	struct statvfs sv;

	if (is_pt(n)) {
		pt_statfs(req, n);
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	if (is_pt(node_get(ino)))
		pt_fallocate(req, mode, offset, length, fi);
	else
		fuse_reply_err(req, EOPNOTSUPP);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	if (is_pt(node_get(ino)))
		pt_lseek(req, off, whence, fi);
	else
		fuse_reply_err(req, ENOSYS);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	if (is_pt(node_get(ino_in)) && is_pt(node_get(ino_out)))
		pt_copy_file_range(req, fi_in, off_in, fi_out, off_out, len, flags);
	else
		fuse_reply_err(req, EXDEV);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct node *n = node_get(ino);

	if (is_pt(n))
		pt_setxattr(req, n, name, value, size, flags);
	else
		fuse_reply_err(req, ENOTSUP);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct node *n = node_get(ino);

	if (is_pt(n))
		pt_getxattr(req, n, name, size);
	else
		fuse_reply_err(req, ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct node *n = node_get(ino);

	if (is_pt(n))
		pt_listxattr(req, n, size);
	else if (size)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_xattr(req, 0);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct node *n = node_get(ino);

	if (is_pt(n))
		pt_removexattr(req, n, name);
	else
		fuse_reply_err(req, ENOTSUP);
}

static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
	if (is_pt(node_get(ino)))
		pt_getlk(req, fi, lock);
	else
		fuse_reply_err(req, ENOLCK);
}

static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
		     int sleep)
{
	if (is_pt(node_get(ino)))
		pt_setlk(req, fi, lock, sleep);
	else
		fuse_reply_err(req, ENOLCK);
}

static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	if (is_pt(node_get(ino)))
		pt_flock(req, fi, op);
	else
		fuse_reply_err(req, ENOLCK);
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
};
