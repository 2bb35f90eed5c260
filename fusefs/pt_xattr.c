/*
 * pt_xattr.c - extended attributes through files/: user.* only, the namespace
 * a sandbox may use, so overlayfs' own (trusted.*) and security labels stay
 * hidden. POSIX ACLs (system.posix_acl_*) are not supported: setting one
 * answers EOPNOTSUPP, on which `cp -a` and `tar` fall back to the mode bits
 * quietly, where EPERM would fail them.
 */
#include "fs.h"
#include "pt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#define PT_XATTR_LIST_MAX 65536

static bool xattr_allowed(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

static int refused(const char *name)
{
	return strncmp(name, "system.posix_acl_", 17) == 0 ? EOPNOTSUPP : EPERM;
}

/*
 * The /proc/self/fd path of n, for the *xattr() calls, held until pt_put(n);
 * false (answered err) for a symlink, which that path would follow.
 */
static bool xattr_path(fuse_req_t req, struct node *n, int err, char *path, size_t size)
{
	int fd = pt_fd(req, n);

	if (fd < 0)
		return false;
	if (pt_is_symlink(fd)) {
		pt_put(n);
		fuse_reply_err(req, err);
		return false;
	}
	pt_proc_path(path, size, fd);
	return true;
}

void pt_setxattr(fuse_req_t req, struct node *n, const char *name, const char *value, size_t size,
		 int flags)
{
	char path[64];
	int ret;

	if (!xattr_allowed(name)) {
		fuse_reply_err(req, refused(name));
		return;
	}
	if (!xattr_path(req, n, EPERM, path, sizeof(path)))
		return;
	ret = setxattr(path, name, value, size, flags) ? errno : 0;
	pt_put(n);
	fuse_reply_err(req, ret);
}

void pt_getxattr(fuse_req_t req, struct node *n, const char *name, size_t size)
{
	char path[64], *buf = NULL;
	ssize_t len;

	if (!xattr_allowed(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (size) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	if (!xattr_path(req, n, ENODATA, path, sizeof(path))) {
		free(buf);
		return;
	}
	len = getxattr(path, name, buf, size);
	if (len < 0)
		len = -errno;
	pt_put(n);
	if (len < 0)
		fuse_reply_err(req, (int)-len);
	else if (size)
		fuse_reply_buf(req, buf, (size_t)len);
	else
		fuse_reply_xattr(req, (size_t)len);
	free(buf);
}

/* The user.* names of all[0..len), packed into out; returns their length. */
static size_t only_allowed(const char *all, ssize_t len, char *out)
{
	size_t o = 0;

	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(all + i) + 1) {
		size_t l = strlen(all + i) + 1;

		if (!xattr_allowed(all + i))
			continue;
		memcpy(out + o, all + i, l);
		o += l;
	}
	return o;
}

void pt_listxattr(fuse_req_t req, struct node *n, size_t size)
{
	char path[64], *all = malloc(PT_XATTR_LIST_MAX), *out = malloc(PT_XATTR_LIST_MAX);
	ssize_t len;
	size_t o;
	int fd;

	if (!all || !out) {
		fuse_reply_err(req, ENOMEM);
		goto out;
	}
	fd = pt_fd(req, n);
	if (fd < 0)
		goto out;
	if (pt_is_symlink(fd)) {
		pt_put(n);
		fuse_reply_xattr(req, 0);
		goto out;
	}
	pt_proc_path(path, sizeof(path), fd);
	/* NUL-terminated names, and the buffer ends in one: strlen stays inside */
	len = listxattr(path, all, PT_XATTR_LIST_MAX - 1);
	len = len < 0 ? -errno : len;
	pt_put(n);
	if (len < 0) {
		fuse_reply_err(req, (int)-len);
		goto out;
	}
	all[len] = '\0';
	o = only_allowed(all, len, out);
	if (!size)
		fuse_reply_xattr(req, o);
	else if (o > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, out, o);
out:
	free(all);
	free(out);
}

void pt_removexattr(fuse_req_t req, struct node *n, const char *name)
{
	char path[64];
	int ret;

	if (!xattr_allowed(name)) {
		fuse_reply_err(req, refused(name));
		return;
	}
	if (!xattr_path(req, n, EPERM, path, sizeof(path)))
		return;
	ret = removexattr(path, name) ? errno : 0;
	pt_put(n);
	fuse_reply_err(req, ret);
}
