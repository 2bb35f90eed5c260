/*
 * pt_table.c - pt_node_ops: files/ and everything below it, served by
 * passthrough.c. A request on a node of a sandbox killed meanwhile fails
 * with ENOENT before it reaches the real file.
 */
#include "fs.h"

#include <errno.h>
#include <poll.h>

static bool pt_alive(fuse_req_t req, struct node *n)
{
	if (n->sb && !sandbox_alive(n->sb)) {
		fuse_reply_err(req, ENOENT);
		return false;
	}
	return true;
}

static void ptt_lookup(fuse_req_t req, struct node *parent, const char *name)
{
	if (pt_alive(req, parent))
		pt_lookup(req, parent, name);
}

static void ptt_getattr(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	(void)fi;
	pt_getattr(req, n);
}

static void ptt_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	if (pt_alive(req, n))
		pt_setattr(req, n, attr, to_set, fi);
}

static void ptt_mknod(fuse_req_t req, struct node *parent, const char *name, mode_t mode, dev_t rdev)
{
	if (pt_alive(req, parent))
		pt_mknod(req, parent, name, mode, rdev);
}

static void ptt_mkdir(fuse_req_t req, struct node *parent, const char *name, mode_t mode)
{
	if (pt_alive(req, parent))
		pt_mkdir(req, parent, name, mode);
}

static void ptt_unlink(fuse_req_t req, struct node *parent, const char *name)
{
	if (pt_alive(req, parent))
		pt_unlink(req, parent, name);
}

static void ptt_rmdir(fuse_req_t req, struct node *parent, const char *name)
{
	if (pt_alive(req, parent))
		pt_rmdir(req, parent, name);
}

static void ptt_symlink(fuse_req_t req, const char *link, struct node *parent, const char *name)
{
	if (pt_alive(req, parent))
		pt_symlink(req, link, parent, name);
}

static void ptt_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		       const char *newname, unsigned int flags)
{
	if (pt_alive(req, parent))
		pt_rename(req, parent, name, newparent, newname, flags);
}

static void ptt_link(fuse_req_t req, struct node *n, struct node *newparent, const char *newname)
{
	if (pt_alive(req, n))
		pt_link(req, n, newparent, newname);
}

static void ptt_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	if (pt_alive(req, n))
		pt_open(req, n, fi);
}

static void ptt_create(fuse_req_t req, struct node *parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	if (pt_alive(req, parent))
		pt_create(req, parent, name, mode, fi);
}

static void ptt_read(fuse_req_t req, struct node *n, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)n;
	pt_read(req, size, off, fi);
}

static void ptt_write_buf(fuse_req_t req, struct node *n, struct fuse_bufvec *in, off_t off,
			  struct fuse_file_info *fi)
{
	(void)n;
	pt_write_buf(req, in, off, fi);
}

static void ptt_flush(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	(void)n;
	pt_flush(req, fi);
}

static void ptt_release(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	(void)n;
	pt_release(req, fi);
}

static void ptt_fsync(fuse_req_t req, struct node *n, int datasync, struct fuse_file_info *fi)
{
	(void)n;
	pt_fsync(req, datasync, fi);
}

static void ptt_opendir(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	if (pt_alive(req, n))
		pt_opendir(req, n, fi);
}

static void ptt_releasedir(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	(void)n;
	pt_releasedir(req, fi);
}

static void ptt_fallocate(fuse_req_t req, struct node *n, int mode, off_t offset, off_t length,
			  struct fuse_file_info *fi)
{
	(void)n;
	pt_fallocate(req, mode, offset, length, fi);
}

static void ptt_lseek(fuse_req_t req, struct node *n, off_t off, int whence, struct fuse_file_info *fi)
{
	(void)n;
	pt_lseek(req, off, whence, fi);
}

static void ptt_getlk(fuse_req_t req, struct node *n, struct fuse_file_info *fi, struct flock *lock)
{
	(void)n;
	pt_getlk(req, fi, lock);
}

static void ptt_setlk(fuse_req_t req, struct node *n, struct fuse_file_info *fi, struct flock *lock, int sleep)
{
	(void)n;
	pt_setlk(req, fi, lock, sleep);
}

static void ptt_flock(fuse_req_t req, struct node *n, struct fuse_file_info *fi, int op)
{
	(void)n;
	pt_flock(req, fi, op);
}

/*
 * Files and directories are always ready. Answering (not ENOSYS, which turns
 * poll off for the whole mount) keeps poll working on `wait`.
 */
static void ptt_poll(fuse_req_t req, struct node *n, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	(void)n;
	(void)fi;
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
}

const struct node_ops pt_node_ops = {
	.lookup = ptt_lookup,
	.getattr = ptt_getattr,
	.setattr = ptt_setattr,
	.readlink = pt_readlink,
	.mknod = ptt_mknod,
	.mkdir = ptt_mkdir,
	.unlink = ptt_unlink,
	.rmdir = ptt_rmdir,
	.symlink = ptt_symlink,
	.rename = ptt_rename,
	.link = ptt_link,
	.open = ptt_open,
	.create = ptt_create,
	.read = ptt_read,
	.write_buf = ptt_write_buf,
	.flush = ptt_flush,
	.release = ptt_release,
	.fsync = ptt_fsync,
	.opendir = ptt_opendir,
	.readdir = pt_readdir,
	.releasedir = ptt_releasedir,
	.statfs = pt_statfs,
	.fallocate = ptt_fallocate,
	.lseek = ptt_lseek,
	.copy_file_range = pt_copy_file_range,
	.setxattr = pt_setxattr,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.removexattr = pt_removexattr,
	.getlk = ptt_getlk,
	.setlk = ptt_setlk,
	.flock = ptt_flock,
	.poll = ptt_poll,
};
