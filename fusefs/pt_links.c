/*
 * pt_links.c - readlink through files/: symlinks are resolved by the kernel
 * on the caller's side, so targets that could climb out of files/ (absolute
 * ones, and ones with "..") are rewritten into a path that stays below files/
 * of this sandbox (see safe_target()).
 */
#include "fs.h"
#include "pt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The path of fd inside the sandbox ("/home/user"), from its path on the host. */
static int path_in_sandbox(struct node *n, int fd, char *out, size_t size)
{
	char link[64], host[PATH_MAX], root[PATH_MAX];
	struct sbx_err err = { 0 };
	ssize_t hl, rl;
	int rootfd;

	if (sandbox_root_fd(n->sb, &rootfd, &err))
		return -ENOENT;
	pt_proc_path(link, sizeof(link), rootfd);
	rl = readlink(link, root, sizeof(root) - 1);
	close(rootfd);
	pt_proc_path(link, sizeof(link), fd);
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
static int safe_target(struct node *n, int nfd, const char *target, char *out, size_t size)
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
	ret = path_in_sandbox(n, nfd, linkdir, sizeof(linkdir));
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
	int fd = pt_fd(req, n), ret;
	ssize_t len;

	if (fd < 0)
		return;
	len = readlinkat(fd, "", target, sizeof(target) - 1);
	ret = len < 0 ? -errno : 0;
	if (ret == 0) {
		target[len] = '\0';
		ret = safe_target(n, fd, target, out, sizeof(out));
	}
	pt_put(n);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_readlink(req, out);
}
