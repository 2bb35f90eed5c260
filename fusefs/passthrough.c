/*
 * passthrough.c - files/: each sandbox's own filesystem, passed through from
 * the directory its backend exposes (root_fd).
 *
 * Every node holds an O_PATH fd of its inode, and every operation works on
 * (parent fd, one name) with *at() calls that never follow a symlink, so no
 * path is ever resolved by the daemon outside the sandbox's root. Files are
 * opened again through /proc/self/fd, which names the inode itself, not a
 * path. Symlinks are resolved by the kernel on the caller's side, so readlink
 * rewrites targets that could climb out of files/ (absolute ones, and ones
 * with "..") into a path that stays below files/ (see safe_target()).
 *
 * What is created through files/ belongs to the sandbox user (its host ids
 * come from the backend, sandbox_user_ids); chown keeps root and the sandbox
 * user, the users that exist inside, and gives any other id as the sandbox user.
 * The kernel caches entries, attributes and pages of files/ for a long time
 * when watch.c watches the sandbox, which invalidates them on each change
 * made inside. docs/files.md has the decisions and the measurements.
 */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Wakes a worker blocked on a lock for an interrupted request. */
#define PT_LOCK_SIGNAL SIGUSR2

/*
 * How long the kernel may trust what it was told of files/. Long when the
 * sandbox's changes are watched (watch.c invalidates the kernel's caches as
 * they happen); zero when they are not (every access asks again).
 */
#define PT_CACHE_TTL 60.0

static double pt_ttl(struct sandbox *sb)
{
	return watch_caching(sb) ? PT_CACHE_TTL : 0.0;
}

/*
 * The owner chown through files/ gives: root and the sandbox user are the
 * users that exist inside, so they are kept; any other id becomes the sandbox
 * user (as NFS's all_squash does), so `tar -x` and `rsync -a` run as root
 * with foreign owners in an archive succeed and leave files the sandbox owns.
 */
static void owner_in_sandbox(struct sandbox *sb, uid_t *uid, gid_t *gid)
{
	struct sbx_err err = { 0 };
	uid_t su;
	gid_t sg;

	if (sandbox_user_ids(sb, &su, &sg, &err)) {
		*uid = *gid = (uid_t)-1;   /* no answer: leave the owner as it is */
		return;
	}
	if (*uid != (uid_t)-1 && *uid != 0 && *uid != su)
		*uid = su;
	if (*gid != (gid_t)-1 && *gid != 0 && *gid != sg)
		*gid = sg;
}

/* Gives a name just made to the sandbox user. */
static int give_to_user(struct sandbox *sb, int dirfd, const char *name, int flags)
{
	struct sbx_err err = { 0 };
	uid_t uid;
	gid_t gid;

	if (sandbox_user_ids(sb, &uid, &gid, &err))
		return err.code ? -err.code : -EIO;
	return fchownat(dirfd, name, uid, gid, flags) ? -errno : 0;
}

static void proc_path(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

static int pt_stat(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

/*
 * Operations by /proc/self/fd path follow a symlink node to its target, which
 * would be resolved in the daemon's namespace: refuse them on symlinks.
 */
static bool is_symlink(struct node *n)
{
	struct stat st;

	return pt_stat(n->fd, &st) == 0 && S_ISLNK(st.st_mode);
}

static int fill_entry(struct sandbox *sb, int fd, struct fuse_entry_param *e)
{
	struct node *n;
	int ret;

	memset(e, 0, sizeof(*e));
	ret = pt_stat(fd, &e->attr);
	if (ret) {
		close(fd);
		return ret;
	}
	n = node_pt(sb, fd, e->attr.st_dev, e->attr.st_ino);
	if (!n)
		return -ENOMEM;
	e->ino = node_ino(n);
	e->attr.st_ino = e->ino;
	e->attr_timeout = pt_ttl(sb);
	e->entry_timeout = e->attr_timeout;
	return 0;
}

int pt_files_root(struct node *sbx_node, struct fuse_entry_param *e)
{
	struct sbx_err err = { 0 };
	int fd, ret;

	ret = sandbox_root_fd(sbx_node->sb, &fd, &err);
	if (ret)
		return ret;
	return fill_entry(sbx_node->sb, fd, e);
}

static int lookup_at(struct node *parent, const char *name, struct fuse_entry_param *e)
{
	int fd;

	if (strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
		return -EPERM;
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fill_entry(parent->sb, fd, e);
}

static void reply_entry_or_err(fuse_req_t req, int ret, struct fuse_entry_param *e)
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
	struct fuse_entry_param e;
	int ret;

	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	ret = lookup_at(parent, name, &e);
	if (ret == -ENOENT && watch_caching(parent->sb)) {
		/* A negative entry the kernel may keep: a create inside invalidates it. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = PT_CACHE_TTL;
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry_or_err(req, ret, &e);
}

void pt_getattr(fuse_req_t req, struct node *n)
{
	struct stat st;
	int ret = pt_stat(n->fd, &st);

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	st.st_ino = node_ino(n);
	fuse_reply_attr(req, &st, pt_ttl(n->sb));
}

void pt_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	char path[64];
	int ret = 0;

	proc_path(path, sizeof(path), n->fd);
	/* A /proc/self/fd path of a symlink would follow it in the daemon: refuse. */
	if (!fi && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_SIZE)) && is_symlink(n)) {
		fuse_reply_err(req, (to_set & FUSE_SET_ATTR_MODE) ? EOPNOTSUPP : EINVAL);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		owner_in_sandbox(n->sb, &uid, &gid);

		ret = fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		if (ret)
			goto out_err;
	}
	/* After chown, which clears set-id bits, as chmod(1) after chown(1) expects. */
	if (to_set & FUSE_SET_ATTR_MODE) {
		if (fi)
			ret = fchmod((int)fi->fh, attr->st_mode);
		else
			ret = chmod(path, attr->st_mode);
		if (ret)
			goto out_err;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (fi)
			ret = ftruncate((int)fi->fh, attr->st_size);
		else
			ret = truncate(path, attr->st_size);
		if (ret)
			goto out_err;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

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
			ret = utimensat(n->fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		if (ret)
			goto out_err;
	}
	pt_getattr(req, n);
	return;

out_err:
	fuse_reply_err(req, errno);
}

/* ---- symlinks ---- */

/* The path of fd inside the sandbox ("/home/user"), from its path on the host. */
static int path_in_sandbox(struct node *n, int fd, char *out, size_t size)
{
	char link[64], host[PATH_MAX], root[PATH_MAX];
	struct sbx_err err = { 0 };
	ssize_t hl, rl;
	int rootfd;

	if (sandbox_root_fd(n->sb, &rootfd, &err))
		return -ENOENT;
	proc_path(link, sizeof(link), rootfd);
	rl = readlink(link, root, sizeof(root) - 1);
	close(rootfd);
	proc_path(link, sizeof(link), fd);
	hl = readlink(link, host, sizeof(host) - 1);
	if (rl < 0 || hl < 0)
		return -ENOENT;
	root[rl] = host[hl] = '\0';
	if (strcmp(root, "/") == 0)
		rl = 0;
	if (strncmp(host, root, (size_t)rl) || (host[rl] && host[rl] != '/'))
		return -EXDEV;
	snprintf(out, size, "%s", host[rl] ? host + rl : "/");
	return 0;
}

static bool has_dotdot(const char *t)
{
	for (const char *p = t; (p = strstr(p, "..")); p += 2)
		if ((p == t || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return true;
	return false;
}

/* Lexical normalisation of an absolute path, with ".." stopping at "/". */
static void normalise(char *path, size_t size)
{
	char *out = malloc(size), *save = NULL, *comp;
	size_t o = 0;

	if (!out) {
		snprintf(path, size, "/");
		return;
	}
	out[0] = '\0';
	for (comp = strtok_r(path, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			out[o] = '\0';
			continue;
		}
		o += (size_t)snprintf(out + o, size - o, "/%s", comp);
		if (o >= size)
			o = size - 1;
	}
	snprintf(path, size, "%s", o ? out : "/");
	free(out);
}

/*
 * Rewrites a symlink target so the kernel, following it on the caller's side,
 * never leaves files/ of this sandbox. Targets that only go down (relative,
 * no "..") are kept as they are: every component is looked up through files/.
 * Absolute targets and targets with ".." are resolved in the sandbox's root
 * (openat2 RESOLVE_IN_ROOT; lexically when they dangle) and given as an
 * absolute path through the mount: MOUNT/NAME/files/RESOLVED.
 *
 * Why not "../" times the link's depth: the kernel walks ".." through its own
 * dentry tree, whose depth for this inode need not be the depth of the path
 * the daemon sees (a hard-linked symlink, or a directory the sandbox moves
 * between this reply and the walk), and one ".." too many leaves files/ for
 * the sandbox directory, the mount root and the host.
 */
static int safe_target(struct node *n, const char *target, char *out, size_t size)
{
	char linkdir[PATH_MAX], want[PATH_MAX * 2], resolved[PATH_MAX * 2], *slash;
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	struct sbx_err err = { 0 };
	int rootfd, fd, ret, len;

	if (target[0] != '/' && !has_dotdot(target)) {
		len = snprintf(out, size, "%s", target);
		return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : 0;
	}
	ret = path_in_sandbox(n, n->fd, linkdir, sizeof(linkdir));
	if (ret)
		return ret;
	slash = strrchr(linkdir, '/');
	if (slash == linkdir)
		linkdir[1] = '\0';
	else if (slash)
		*slash = '\0';
	if (target[0] == '/')
		snprintf(want, sizeof(want), "%s", target);
	else
		snprintf(want, sizeof(want), "%s/%s", linkdir, target);

	snprintf(resolved, sizeof(resolved), "%s", want);
	if (sandbox_root_fd(n->sb, &rootfd, &err) == 0) {
		fd = (int)syscall(SYS_openat2, rootfd, want + 1, &how, sizeof(how));
		if (fd >= 0) {
			if (path_in_sandbox(n, fd, resolved, sizeof(resolved)))
				snprintf(resolved, sizeof(resolved), "%s", want);
			close(fd);
		}
		close(rootfd);
	}
	normalise(resolved, sizeof(resolved));
	len = snprintf(out, size, "%s/%s/files%s", fs.mountpoint, sandbox_name(n->sb),
		       strcmp(resolved, "/") == 0 ? "" : resolved);
	if (len < 0 || (size_t)len >= size || len >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

void pt_readlink(fuse_req_t req, struct node *n)
{
	char target[PATH_MAX + 1], out[PATH_MAX * 2];
	ssize_t len = readlinkat(n->fd, "", target, sizeof(target) - 1);
	int ret;

	if (len < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	target[len] = '\0';
	ret = safe_target(n, target, out, sizeof(out));
	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	fuse_reply_readlink(req, out);
}

/* ---- making and removing names ---- */

static void reply_made(fuse_req_t req, struct node *parent, const char *name, int ret)
{
	struct fuse_entry_param e;

	if (ret) {
		fuse_reply_err(req, ret);
		return;
	}
	if (give_to_user(parent->sb, parent->fd, name, AT_SYMLINK_NOFOLLOW))
		fprintf(stderr, "sbxfs: warning: cannot give '%s' to the sandbox user\n", name);
	ret = lookup_at(parent, name, &e);
	reply_entry_or_err(req, ret, &e);
}

static bool name_ok(fuse_req_t req, const char *name)
{
	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return false;
	}
	return true;
}

void pt_mknod(fuse_req_t req, struct node *parent, const char *name, mode_t mode, dev_t rdev)
{
	int ret;

	if (!name_ok(req, name))
		return;
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ret = mknodat(parent->fd, name, mode, rdev) ? errno : 0;
	reply_made(req, parent, name, ret);
}

void pt_mkdir(fuse_req_t req, struct node *parent, const char *name, mode_t mode)
{
	if (!name_ok(req, name))
		return;
	reply_made(req, parent, name, mkdirat(parent->fd, name, mode) ? errno : 0);
}

void pt_symlink(fuse_req_t req, const char *link, struct node *parent, const char *name)
{
	if (!name_ok(req, name))
		return;
	reply_made(req, parent, name, symlinkat(link, parent->fd, name) ? errno : 0);
}

void pt_link(fuse_req_t req, struct node *n, struct node *newparent, const char *newname)
{
	struct fuse_entry_param e;
	char path[64];
	int ret;

	if (!name_ok(req, newname))
		return;
	if (n->sb != newparent->sb) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	(void)path;
	/* AT_EMPTY_PATH links the inode itself, symlinks included, never a target */
	if (linkat(n->fd, "", newparent->fd, newname, AT_EMPTY_PATH)) {
		fuse_reply_err(req, errno);
		return;
	}
	ret = lookup_at(newparent, newname, &e);
	reply_entry_or_err(req, ret, &e);
}

void pt_unlink(fuse_req_t req, struct node *parent, const char *name)
{
	fuse_reply_err(req, unlinkat(parent->fd, name, 0) ? errno : 0);
}

void pt_rmdir(fuse_req_t req, struct node *parent, const char *name)
{
	fuse_reply_err(req, unlinkat(parent->fd, name, AT_REMOVEDIR) ? errno : 0);
}

void pt_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
	       const char *newname, unsigned int flags)
{
	if (!name_ok(req, newname))
		return;
	if (parent->sb != newparent->sb) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	fuse_reply_err(req, renameat2(parent->fd, name, newparent->fd, newname, flags) ? errno : 0);
}

/* ---- files ---- */

void pt_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	char path[64];
	int fd;

	proc_path(path, sizeof(path), n->fd);
	fd = open(path, (fi->flags & ~O_NOFOLLOW) | O_CLOEXEC);
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

void pt_create(fuse_req_t req, struct node *parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int fd, ret;

	if (!name_ok(req, name))
		return;
	fd = openat(parent->fd, name, fi->flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (give_to_user(parent->sb, fd, "", AT_EMPTY_PATH))
		fprintf(stderr, "sbxfs: warning: cannot give '%s' to the sandbox user\n", name);
	ret = lookup_at(parent, name, &e);
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
	fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
		struct dirent *de;
		size_t used;
		off_t next;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				if (errno && rem == size) {
					free(buf);
					fuse_reply_err(req, errno);
					return;
				}
				break;
			}
		}
		de = d->entry;
		next = de->d_off;
		if (plus) {
			struct fuse_entry_param e;
			bool dot = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;

			memset(&e, 0, sizeof(e));
			if (dot) {
				e.attr.st_ino = de->d_ino;
				e.attr.st_mode = (mode_t)de->d_type << 12;
			} else if (lookup_at(n, de->d_name, &e)) {
				d->entry = NULL;
				d->offset = next;
				continue;
			}
			used = fuse_add_direntry_plus(req, p, rem, de->d_name, &e, next);
			if (used > rem) {
				if (!dot)
					node_forget(node_get(e.ino), 1);
				break;
			}
		} else {
			struct stat st = { .st_ino = de->d_ino, .st_mode = (mode_t)de->d_type << 12 };

			used = fuse_add_direntry(req, p, rem, de->d_name, &st, next);
			if (used > rem)
				break;
		}
		p += used;
		rem -= used;
		d->entry = NULL;
		d->offset = next;
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

void pt_statfs(fuse_req_t req, struct node *n)
{
	struct statvfs sv;

	if (fstatvfs(n->fd, &sv))
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes: user.* only, the namespace a sandbox may use ---- */

static bool xattr_allowed(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

static bool xattr_node_ok(fuse_req_t req, struct node *n, int err)
{
	if (is_symlink(n)) {
		fuse_reply_err(req, err);
		return false;
	}
	return true;
}

void pt_setxattr(fuse_req_t req, struct node *n, const char *name, const char *value, size_t size,
		 int flags)
{
	char path[64];

	if (!xattr_allowed(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!xattr_node_ok(req, n, EPERM))
		return;
	proc_path(path, sizeof(path), n->fd);
	fuse_reply_err(req, setxattr(path, name, value, size, flags) ? errno : 0);
}

void pt_getxattr(fuse_req_t req, struct node *n, const char *name, size_t size)
{
	char path[64], *buf = NULL;
	ssize_t len;

	if (!xattr_allowed(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (!xattr_node_ok(req, n, ENODATA))
		return;
	proc_path(path, sizeof(path), n->fd);
	if (size) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	len = getxattr(path, name, buf, size);
	if (len < 0)
		fuse_reply_err(req, errno);
	else if (size)
		fuse_reply_buf(req, buf, (size_t)len);
	else
		fuse_reply_xattr(req, (size_t)len);
	free(buf);
}

void pt_listxattr(fuse_req_t req, struct node *n, size_t size)
{
	char path[64], all[65536], out[65536];
	size_t o = 0;
	ssize_t len;

	if (is_symlink(n)) {
		fuse_reply_xattr(req, 0);
		return;
	}
	proc_path(path, sizeof(path), n->fd);
	len = listxattr(path, all, sizeof(all));
	if (len < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(all + i) + 1) {
		size_t l = strlen(all + i) + 1;

		if (!xattr_allowed(all + i))
			continue;
		memcpy(out + o, all + i, l);
		o += l;
	}
	if (!size)
		fuse_reply_xattr(req, o);
	else if (o > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, out, o);
}

void pt_removexattr(fuse_req_t req, struct node *n, const char *name)
{
	char path[64];

	if (!xattr_allowed(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!xattr_node_ok(req, n, EPERM))
		return;
	proc_path(path, sizeof(path), n->fd);
	fuse_reply_err(req, removexattr(path, name) ? errno : 0);
}

/*
 * ---- locks ----
 *
 * POSIX locks and flock() are taken on the daemon's own fd of each open, so
 * processes inside the sandbox see them and conflict with them. POSIX locks
 * become open-file-description locks (F_OFD_*): they belong to one open of
 * the file rather than to the process. A blocking request waits in its
 * worker thread; an interrupt (Ctrl-C) wakes it with a signal.
 */
static void lock_wake(int sig)
{
	(void)sig;
}

void pt_locks_init(void)
{
	struct sigaction sa = { .sa_handler = lock_wake };

	/* No SA_RESTART: the blocked fcntl()/flock() must return EINTR. */
	sigemptyset(&sa.sa_mask);
	sigaction(PT_LOCK_SIGNAL, &sa, NULL);
}

struct lock_wait {
	pthread_t thread;
	_Atomic bool interrupted;
};

static void lock_interrupt(fuse_req_t req, void *data)
{
	struct lock_wait *w = data;

	(void)req;
	w->interrupted = true;
	pthread_kill(w->thread, PT_LOCK_SIGNAL);
}

/* Runs a blocking lock call, restarting it after stray signals, ending it on interrupt. */
static int lock_blocking(fuse_req_t req, int (*call)(int fd, void *arg), int fd, void *arg)
{
	struct lock_wait w = { .thread = pthread_self() };
	int ret;

	fuse_req_interrupt_func(req, lock_interrupt, &w);
	for (;;) {
		ret = call(fd, arg) ? errno : 0;
		if (ret != EINTR || w.interrupted || fuse_req_interrupted(req))
			break;
	}
	fuse_req_interrupt_func(req, NULL, NULL);   /* waits for a callback in flight */
	return ret;
}

static int ofd_setlkw(int fd, void *arg)
{
	return fcntl(fd, F_OFD_SETLKW, (struct flock *)arg);
}

static int do_flock(int fd, void *arg)
{
	return flock(fd, *(int *)arg);
}

void pt_getlk(fuse_req_t req, struct fuse_file_info *fi, struct flock *lock)
{
	lock->l_pid = 0;
	if (fcntl((int)fi->fh, F_OFD_GETLK, lock)) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_lock(req, lock);
}

void pt_setlk(fuse_req_t req, struct fuse_file_info *fi, struct flock *lock, int sleep)
{
	int ret;

	lock->l_pid = 0;
	if (sleep && lock->l_type != F_UNLCK)
		ret = lock_blocking(req, ofd_setlkw, (int)fi->fh, lock);
	else
		ret = fcntl((int)fi->fh, F_OFD_SETLK, lock) ? errno : 0;
	fuse_reply_err(req, ret);
}

void pt_flock(fuse_req_t req, struct fuse_file_info *fi, int op)
{
	int ret;

	if (op & LOCK_NB || (op & LOCK_UN))
		ret = flock((int)fi->fh, op) ? errno : 0;
	else
		ret = lock_blocking(req, do_flock, (int)fi->fh, &op);
	fuse_reply_err(req, ret);
}
