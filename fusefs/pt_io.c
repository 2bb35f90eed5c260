/* pt_io.c - files/: the data of files (open, create, read, write, ...) and directory listings. */
#include "fs.h"
#include "../backend/log.h"
#include "pt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void pt_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	char path[64];
	int nfd = pt_fd(req, n), fd;

	if (nfd < 0)
		return;
	pt_proc_path(path, sizeof(path), nfd);
	fd = open(path, (fi->flags & ~O_NOFOLLOW) | O_CLOEXEC);
	if (fd < 0 && pt_shrink(errno))
		fd = open(path, (fi->flags & ~O_NOFOLLOW) | O_CLOEXEC);
	pt_put(n);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fi->fh = (uint64_t)fd;
	/* The page cache survives opens while watch.c invalidates it on changes inside. */
	fi->keep_cache = watch_caching(n->sb);
	fi->direct_io = 0;
	if (fuse_reply_open(req, fi) == -ENOENT)
		close(fd);
}

/*
 * Creates name in pfd for the caller: a new file becomes the sandbox user's
 * with the caller's mode; one that appeared meanwhile (made inside) is only
 * opened, as open(O_CREAT) without O_EXCL does.
 */
static int create_at(struct node *parent, int pfd, const char *name, mode_t mode, int flags)
{
	int fd = openat(pfd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);

	if (fd < 0 && pt_shrink(errno))
		fd = openat(pfd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
	if (fd < 0 && errno == EEXIST && !(flags & O_EXCL)) {
		fd = openat(pfd, name, (flags & ~O_CREAT) | O_NOFOLLOW | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	if (fd < 0)
		return -errno;
	/* chown first (it clears set-id bits), then the mode asked, past the daemon's umask */
	if (fchown(fd, parent->sb_uid, parent->sb_gid))
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot give '%s' to the sandbox user", name);
	if (fchmod(fd, mode & 07777))
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot set the mode of '%s'", name);
	return fd;
}

void pt_create(fuse_req_t req, struct node *parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int pfd, fd, ret;

	if (!pt_name_ok(req, name))
		return;
	pfd = pt_fd(req, parent);
	if (pfd < 0)
		return;
	fd = create_at(parent, pfd, name, mode, fi->flags);
	pt_put(parent);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	ret = pt_lookup_at(parent, name, &e);
	if (ret) {
		close(fd);
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = (uint64_t)fd;
	fi->keep_cache = watch_caching(parent->sb);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		close(fd);
		node_forget(node_get(e.ino), 1);
	}
}

void pt_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void pt_write_buf(fuse_req_t req, struct fuse_bufvec *in, off_t off, struct fuse_file_info *fi)
{
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	ssize_t n;

	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = (int)fi->fh;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, in, 0);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

void pt_flush(fuse_req_t req, struct fuse_file_info *fi)
{
	/* close() of a dup reports delayed write errors, as on a local fs */
	int fd = dup((int)fi->fh);

	fuse_reply_err(req, fd < 0 ? errno : (close(fd) ? errno : 0));
}

void pt_release(fuse_req_t req, struct fuse_file_info *fi)
{
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

void pt_fsync(fuse_req_t req, int datasync, struct fuse_file_info *fi)
{
	int ret = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);

	fuse_reply_err(req, ret ? errno : 0);
}

void pt_fallocate(fuse_req_t req, int mode, off_t offset, off_t length, struct fuse_file_info *fi)
{
	fuse_reply_err(req, fallocate((int)fi->fh, mode, offset, length) ? errno : 0);
}

void pt_lseek(fuse_req_t req, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t res = lseek((int)fi->fh, off, whence);

	if (res < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}

void pt_copy_file_range(fuse_req_t req, struct fuse_file_info *fi_in, off_t off_in,
			struct fuse_file_info *fi_out, off_t off_out, size_t len, int flags)
{
	ssize_t n = copy_file_range((int)fi_in->fh, &off_in, (int)fi_out->fh, &off_out, len,
				    (unsigned int)flags);

	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)n);
}

/* ---- directories ---- */

struct pt_dir {
	DIR *dp;
	off_t offset;
	struct dirent *entry;
};

void pt_opendir(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct pt_dir *d = calloc(1, sizeof(*d));
	int fd;

	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = pt_get(n);
	if (fd >= 0) {
		int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd < 0 && pt_shrink(errno))
			dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		pt_put(n);
		fd = dfd;
	} else {
		errno = -fd;
	}
	if (fd < 0)
		goto out_err;
	d->dp = fdopendir(fd);
	if (!d->dp) {
		close(fd);
		goto out_err;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	if (watch_caching(n->sb)) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(d->dp);
		free(d);
	}
	return;

out_err: {
	int saved = errno;

	free(d);
	fuse_reply_err(req, saved);
}
}

/*
 * Adds de to the reply buffer p (rem bytes left): its size in *used; 1 when
 * added, 0 when skipped (gone meanwhile), -1 when the buffer is full.
 */
static int add_entry(fuse_req_t req, struct node *n, struct dirent *de, char *p, size_t rem, bool plus,
		     size_t *used)
{
	struct fuse_entry_param e;
	bool dot = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;

	if (!plus) {
		struct stat st = { .st_ino = de->d_ino, .st_mode = (mode_t)de->d_type << 12 };

		*used = fuse_add_direntry(req, p, rem, de->d_name, &st, de->d_off);
		return *used > rem ? -1 : 1;
	}
	memset(&e, 0, sizeof(e));
	if (dot) {
		e.attr.st_ino = de->d_ino;
		e.attr.st_mode = (mode_t)de->d_type << 12;
	} else if (pt_lookup_at(n, de->d_name, &e)) {
		return 0;
	}
	*used = fuse_add_direntry_plus(req, p, rem, de->d_name, &e, de->d_off);
	if (*used > rem) {
		if (!dot)
			node_forget(node_get(e.ino), 1);
		return -1;
	}
	return 1;
}

void pt_readdir(fuse_req_t req, struct node *n, size_t size, off_t off, struct fuse_file_info *fi,
		bool plus)
{
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;
	char *buf = calloc(1, size ? size : 1), *p = buf;
	size_t rem = size;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		size_t used = 0;
		int r;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry && errno && rem == size) {
				free(buf);
				fuse_reply_err(req, errno);
				return;
			}
			if (!d->entry)
				break;
		}
		r = add_entry(req, n, d->entry, p, rem, plus, &used);
		if (r < 0)
			break;
		p += used;
		rem -= used;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

void pt_releasedir(fuse_req_t req, struct fuse_file_info *fi)
{
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;

	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}
