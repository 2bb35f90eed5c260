/*
 * passthrough.c - files/: each sandbox's own filesystem, passed through from
 * the directory its backend exposes (root_fd). Names and attributes here;
 * pt.h lists the other pt_*.c files.
 *
 * Every operation works on (parent fd, one name) with *at() calls that never
 * follow a symlink, so no path is ever resolved by the daemon outside the
 * sandbox's root. A node's fd comes from the descriptor cache (pt_cache.c).
 * Files are opened again through /proc/self/fd, which names the inode
 * itself, not a path.
 *
 * Ownership is an id-mapped view (docs/files.md): the sandbox user's files
 * show as the mounting user's; what is created through files/ belongs to the
 * sandbox user (its host ids come from the backend), and so does whatever is
 * chowned through files/, to whomever. Create modes are the caller's, set-id
 * bits included (the chown that gives a new file away would clear them).
 * The kernel caches entries, attributes and pages of files/ for a long time
 * when watch.c sees every change made inside (watch_caching).
 */
#include "fs.h"
#include "../backend/log.h"
#include "pt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/*
 * How long the kernel may trust what it was told of files/. Long when the
 * sandbox's changes are watched (watch.c invalidates the kernel's caches as
 * they happen); zero when they are not (every access asks again).
 */
#define PT_CACHE_TTL 60.0

double pt_ttl(struct sandbox *sb)
{
	return watch_caching(sb) ? PT_CACHE_TTL : 0.0;
}

void pt_proc_path(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

static int pt_stat(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

/* The id-mapped view: the sandbox user shows as the mounting user; other ids as they are. */
static void map_out(const struct node *n, struct stat *st)
{
	if (st->st_uid == n->sb_uid)
		st->st_uid = fs.uid;
	if (st->st_gid == n->sb_gid)
		st->st_gid = fs.gid;
}

int pt_fd(fuse_req_t req, struct node *n)
{
	int fd = pt_get(n);

	if (fd < 0)
		fuse_reply_err(req, -fd);
	return fd;
}

bool pt_is_symlink(int fd)
{
	struct stat st;

	return pt_stat(fd, &st) == 0 && S_ISLNK(st.st_mode);
}

/* Makes (or finds) the node of fd, seen as parent/name (parent NULL: files/), and fills e. */
static int fill_entry(struct sandbox *sb, struct node *parent, const char *name, int fd, uid_t uid,
		      gid_t gid, struct fuse_entry_param *e)
{
	struct node *n;
	int ret;

	memset(e, 0, sizeof(*e));
	ret = pt_stat(fd, &e->attr);
	if (ret) {
		close(fd);
		return ret;
	}
	n = node_pt(sb, e->attr.st_dev, e->attr.st_ino, uid, gid);
	if (!n) {
		close(fd);
		return -ENOMEM;
	}
	pt_adopt(n, fd, parent, name);
	map_out(n, &e->attr);
	e->ino = node_ino(n);
	e->attr.st_ino = e->ino;
	e->attr_timeout = pt_ttl(sb);
	e->entry_timeout = e->attr_timeout;
	return 0;
}

int pt_files_root(struct node *sbx_node, struct fuse_entry_param *e)
{
	struct sbx_err err = { 0 };
	uid_t uid;
	gid_t gid;
	int fd, ret;

	ret = sandbox_user_ids(sbx_node->sb, &uid, &gid, &err);
	if (ret == 0)
		ret = sandbox_root_fd(sbx_node->sb, &fd, &err);
	if (ret)
		return ret;
	return fill_entry(sbx_node->sb, NULL, NULL, fd, uid, gid, e);
}

/* Looks name up in parent; fd given (>= 0) when the caller opened it already (taken). */
static int lookup_fd(struct node *parent, const char *name, int fd, struct fuse_entry_param *e)
{
	int pfd;

	if (strcmp(name, "..") == 0 || strcmp(name, ".") == 0) {
		if (fd >= 0)
			close(fd);
		return -EPERM;
	}
	if (fd < 0) {
		pfd = pt_get(parent);
		if (pfd < 0)
			return pfd;
		fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && pt_shrink(errno))
			fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		pt_put(parent);
		if (fd < 0)
			return -errno;
	}
	return fill_entry(parent->sb, parent, name, fd, parent->sb_uid, parent->sb_gid, e);
}

int pt_lookup_at(struct node *parent, const char *name, struct fuse_entry_param *e)
{
	return lookup_fd(parent, name, -1, e);
}

void pt_reply_entry(fuse_req_t req, int ret, struct fuse_entry_param *e)
{
	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (fuse_reply_entry(req, e) == -ENOENT)
		node_forget(node_get(e->ino), 1);
}

void pt_lookup(fuse_req_t req, struct node *parent, const char *name)
{
	struct fuse_entry_param e = { 0 };
	int ret;

	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	ret = pt_lookup_at(parent, name, &e);
	if (ret == -ENOENT && watch_caching(parent->sb)) {
		/* A negative entry the kernel may keep: a create inside invalidates it. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = PT_CACHE_TTL;
		fuse_reply_entry(req, &e);
		return;
	}
	pt_reply_entry(req, ret, &e);
}

void pt_getattr(fuse_req_t req, struct node *n)
{
	struct stat st;
	int fd = pt_fd(req, n), ret;

	if (fd < 0)
		return;
	ret = pt_stat(fd, &st);
	pt_put(n);
	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	map_out(n, &st);
	st.st_ino = node_ino(n);
	fuse_reply_attr(req, &st, pt_ttl(n->sb));
}

/* ---- setattr ---- */

/* chown through files/ gives the sandbox user, whoever was asked for (an id-mapped view). */
static int set_owner(struct node *n, int fd, const struct stat *attr, int to_set)
{
	uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? n->sb_uid : (uid_t)-1;
	gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? n->sb_gid : (gid_t)-1;

	(void)attr;
	return fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static int set_times(int fd, const struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
	int ret;

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (fi)
		ret = futimens((int)fi->fh, tv);
	else    /* the inode itself, symlinks included (touch -h) */
		ret = utimensat(fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	return ret ? -errno : 0;
}

static int set_attrs(struct node *n, int fd, const struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	char path[64];
	int ret = 0;

	pt_proc_path(path, sizeof(path), fd);
	/* A /proc/self/fd path of a symlink would follow it in the daemon: refuse. */
	if (!fi && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_SIZE)) && pt_is_symlink(fd))
		return (to_set & FUSE_SET_ATTR_MODE) ? -EOPNOTSUPP : -EINVAL;
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		ret = set_owner(n, fd, attr, to_set);
	/* After chown, which clears set-id bits, as chmod(1) after chown(1) expects. */
	if (!ret && (to_set & FUSE_SET_ATTR_MODE))
		ret = (fi ? fchmod((int)fi->fh, attr->st_mode & 07777) : chmod(path, attr->st_mode & 07777)) ?
		      -errno : 0;
	if (!ret && (to_set & FUSE_SET_ATTR_SIZE))
		ret = (fi ? ftruncate((int)fi->fh, attr->st_size) : truncate(path, attr->st_size)) ? -errno : 0;
	if (!ret && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)))
		ret = set_times(fd, attr, to_set, fi);
	return ret;
}

void pt_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	int fd = pt_fd(req, n), ret;

	if (fd < 0)
		return;
	ret = set_attrs(n, fd, attr, to_set, fi);
	pt_put(n);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		pt_getattr(req, n);
}

/* ---- making and removing names ---- */

/*
 * Gives a name just made (fd: O_PATH of it, never followed) to the sandbox
 * user, then sets the mode the caller asked for: the chown clears set-id
 * bits, and the daemon's umask must not narrow the caller's (the kernel has
 * applied the caller's already). Symlinks have no mode of their own.
 */
static void give_away(struct node *parent, int fd, mode_t mode, const char *name)
{
	char path[64];
	struct stat st;

	if (pt_stat(fd, &st))
		return;
	if (fchownat(fd, "", parent->sb_uid, parent->sb_gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot give '%s' to the sandbox user", name);
	if (S_ISLNK(st.st_mode))
		return;
	/* a directory made in a set-group-id directory inherits the bit, as it does natively */
	mode = (mode & 07777) | (S_ISDIR(st.st_mode) ? st.st_mode & S_ISGID : 0);
	pt_proc_path(path, sizeof(path), fd);
	if (chmod(path, mode))
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot set the mode of '%s'", name);
}

/* After mknod/mkdir/symlink of name in parent (pfd held) answered ret (0 or errno). */
static void reply_made(fuse_req_t req, struct node *parent, int pfd, const char *name, mode_t mode, int ret)
{
	struct fuse_entry_param e = { 0 };
	int fd;

	if (ret) {
		pt_put(parent);
		fuse_reply_err(req, ret);
		return;
	}
	fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	pt_put(parent);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	give_away(parent, fd, mode, name);
	pt_reply_entry(req, lookup_fd(parent, name, fd, &e), &e);
}

bool pt_name_ok(fuse_req_t req, const char *name)
{
	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return false;
	}
	return true;
}

void pt_mknod(fuse_req_t req, struct node *parent, const char *name, mode_t mode, dev_t rdev)
{
	int pfd;

	if (!pt_name_ok(req, name))
		return;
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	pfd = pt_fd(req, parent);
	if (pfd >= 0)
		reply_made(req, parent, pfd, name, mode, mknodat(pfd, name, mode, rdev) ? errno : 0);
}

void pt_mkdir(fuse_req_t req, struct node *parent, const char *name, mode_t mode)
{
	int pfd;

	if (!pt_name_ok(req, name))
		return;
	pfd = pt_fd(req, parent);
	if (pfd >= 0)
		reply_made(req, parent, pfd, name, mode, mkdirat(pfd, name, mode) ? errno : 0);
}

void pt_symlink(fuse_req_t req, const char *link, struct node *parent, const char *name)
{
	int pfd;

	if (!pt_name_ok(req, name))
		return;
	pfd = pt_fd(req, parent);
	if (pfd >= 0)
		reply_made(req, parent, pfd, name, 0, symlinkat(link, pfd, name) ? errno : 0);
}

void pt_link(fuse_req_t req, struct node *n, struct node *newparent, const char *newname)
{
	struct fuse_entry_param e = { 0 };
	int fd, pfd, ret;

	if (!pt_name_ok(req, newname))
		return;
	if (n->sb != newparent->sb) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	fd = pt_fd(req, n);
	if (fd < 0)
		return;
	pfd = pt_fd(req, newparent);
	if (pfd < 0) {
		pt_put(n);
		return;
	}
	/* AT_EMPTY_PATH links the inode itself, symlinks included, never a target */
	ret = linkat(fd, "", pfd, newname, AT_EMPTY_PATH) ? -errno : 0;
	pt_put(newparent);
	pt_put(n);
	if (ret == 0)
		ret = pt_lookup_at(newparent, newname, &e);
	pt_reply_entry(req, ret, &e);
}

static void remove_name(fuse_req_t req, struct node *parent, const char *name, int flags)
{
	int pfd = pt_fd(req, parent), ret;

	if (pfd < 0)
		return;
	ret = unlinkat(pfd, name, flags) ? errno : 0;
	pt_put(parent);
	fuse_reply_err(req, ret);
}

void pt_unlink(fuse_req_t req, struct node *parent, const char *name)
{
	remove_name(req, parent, name, 0);
}

void pt_rmdir(fuse_req_t req, struct node *parent, const char *name)
{
	remove_name(req, parent, name, AT_REMOVEDIR);
}

/* The node of dir/name, if the kernel holds one, learns its new place. */
static void tell_moved(struct node *dir, int dfd, const char *name)
{
	struct stat st;
	struct node *n;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return;
	n = node_pt_hold(dir->sb, st.st_dev, st.st_ino);
	if (!n)
		return;
	pt_moved(n, dir, name);
	node_forget(n, 1);
}

void pt_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
	       const char *newname, unsigned int flags)
{
	int pfd, nfd, ret;

	if (!pt_name_ok(req, newname))
		return;
	if (parent->sb != newparent->sb) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	pfd = pt_fd(req, parent);
	if (pfd < 0)
		return;
	nfd = pt_fd(req, newparent);
	if (nfd < 0) {
		pt_put(parent);
		return;
	}
	ret = renameat2(pfd, name, nfd, newname, flags) ? errno : 0;
	if (ret == 0) {
		tell_moved(newparent, nfd, newname);
		if (flags & RENAME_EXCHANGE)
			tell_moved(parent, pfd, name);
	}
	pt_put(newparent);
	pt_put(parent);
	fuse_reply_err(req, ret);
}

void pt_statfs(fuse_req_t req, struct node *n)
{
	struct statvfs sv;
	int fd = pt_fd(req, n), ret;

	if (fd < 0)
		return;
	ret = fstatvfs(fd, &sv) ? errno : 0;
	pt_put(n);
	if (ret)
		fuse_reply_err(req, ret);
	else
		fuse_reply_statfs(req, &sv);
}
