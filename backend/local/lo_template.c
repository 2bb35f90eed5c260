/*
 * lo_template.c - building the `default` template: a skeleton root with a
 * scrubbed copy of the host's /etc, empty mount points, and bin/sbin/lib as
 * links into usr (the host's /usr is bind-mounted read-only at sandbox start).
 * Nothing private of the host goes in: no home, /root, /var or /tmp content,
 * no secrets from /etc.
 */
#define _XOPEN_SOURCE 700
#include "lo_template.h"
#include "../util.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* Relative to /etc: never copied (secrets or rewritten below). */
static const char *const etc_skip[] = {
	"shadow", "shadow-", "gshadow", "gshadow-", "passwd", "passwd-", "group", "group-",
	"sudoers", "sudoers.d", "subuid", "subuid-", "subgid", "subgid-", "security/opasswd",
	"hostname", "hosts", "machine-id", "ssh/ssh_host_", "ssl/private", "krb5.keytab",
};

static bool etc_skipped(const char *rel)
{
	for (size_t i = 0; i < sizeof(etc_skip) / sizeof(etc_skip[0]); i++) {
		size_t n = strlen(etc_skip[i]);

		if (!strncmp(rel, etc_skip[i], n) &&
		    (rel[n] == '\0' || rel[n] == '/' || etc_skip[i][n - 1] == '_'))
			return true;
	}
	return false;
}

static int copy_file(const char *src, const char *dst, mode_t mode)
{
	int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int out;
	struct stat st;
	int r = 0;

	if (in < 0)
		return -errno;
	if (fstat(in, &st) < 0) {
		r = -errno;
		close(in);
		return r;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	for (off_t left = st.st_size; left > 0;) {
		ssize_t n = sendfile(out, in, NULL, (size_t)left);

		if (n <= 0) {
			r = n < 0 ? -errno : 0;
			break;
		}
		left -= n;
	}
	fchmod(out, mode);
	close(in);
	close(out);
	return r;
}

static void etc_copy_dir(const char *src, const char *dst, const char *rel);

static void copy_link(const char *src, const char *dst)
{
	char target[PATH_MAX];
	ssize_t n = readlink(src, target, sizeof(target) - 1);

	if (n <= 0)
		return;
	target[n] = '\0';
	if (symlink(target, dst) < 0) {
		/* nothing to undo: the link is simply missing */
	}
}

/* Copies one entry of /etc (rel below it) if it is world-readable; sockets, fifos and devices stay out. */
static void etc_copy_one(const char *src, const char *dst, const char *rel)
{
	struct stat st;
	mode_t mode;

	if (etc_skipped(rel) || lstat(src, &st) < 0)
		return;
	mode = st.st_mode & 0755;
	if (S_ISDIR(st.st_mode)) {
		/* a directory that is not world-readable is private */
		if ((st.st_mode & 0005) == 0005 && (mkdir(dst, mode) == 0 || errno == EEXIST)) {
			chmod(dst, mode);
			etc_copy_dir(src, dst, rel);
		}
	} else if (S_ISREG(st.st_mode) && (st.st_mode & S_IROTH)) {
		copy_file(src, dst, mode);
	} else if (S_ISLNK(st.st_mode)) {
		copy_link(src, dst);
	}
}

/* Copies the world-readable part of src (a directory under /etc) to dst; rel is the path below /etc. */
static void etc_copy_dir(const char *src, const char *dst, const char *rel)
{
	DIR *d = opendir(src);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char s[PATH_MAX], t[PATH_MAX], r[PATH_MAX];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(s, sizeof(s), "%s/%s", src, de->d_name);
		snprintf(t, sizeof(t), "%s/%s", dst, de->d_name);
		snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		etc_copy_one(s, t, r);
	}
	closedir(d);
}

static int put_file(const char *root, const char *rel, const char *text, mode_t mode)
{
	char path[PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return sbx_write_file(path, text, strlen(text), mode, NULL);
}

static int build_default(const char *tmp, struct sbx_err *err)
{
	static const struct {
		const char *path;
		mode_t mode;
		uid_t uid;
	} dirs[] = {
		{ "etc", 0755, 0 },      { "home", 0755, 0 },    { "home/user", 0755, 1000 },
		{ "root", 0700, 0 },     { "tmp", 01777, 0 },    { "var", 0755, 0 },
		{ "var/tmp", 01777, 0 }, { "var/lib", 0755, 0 }, { "var/cache", 0755, 0 },
		{ "var/log", 0755, 0 },  { "usr", 0755, 0 },     { "proc", 0555, 0 },
		{ "dev", 0755, 0 },      { "sys", 0555, 0 },     { "run", 0755, 0 },
		{ "mnt", 0755, 0 },      { "opt", 0755, 0 },
	};
	static const char *const links[][2] = {
		{ "bin", "usr/bin" }, { "sbin", "usr/sbin" }, { "lib", "usr/lib" }, { "lib64", "usr/lib64" },
	};
	char p[PATH_MAX * 2];
	int r;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmp, dirs[i].path);
		if (mkdir(p, dirs[i].mode) < 0 || chmod(p, dirs[i].mode) < 0 ||
		    chown(p, dirs[i].uid, dirs[i].uid) < 0)
			return sbx_err_sys(err, errno, "creating '%s'", p);
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmp, links[i][0]);
		if (symlink(links[i][1], p) < 0)
			return sbx_err_sys(err, errno, "creating '%s'", p);
	}
	snprintf(p, sizeof(p), "%s/etc", tmp);
	etc_copy_dir("/etc", p, "");
	if ((r = put_file(tmp, "etc/passwd",
			  "root:x:0:0:root:/root:/bin/bash\n"
			  "user:x:1000:1000:user:/home/user:/bin/bash\n"
			  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0644)) < 0 ||
	    (r = put_file(tmp, "etc/group", "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n", 0644)) < 0 ||
	    (r = put_file(tmp, "etc/hostname", "sandbox\n", 0644)) < 0 ||
	    (r = put_file(tmp, "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n", 0644)) < 0)
		return sbx_err_sys(err, -r, "writing the template's /etc");
	return 0;
}

int lo_template_ensure(pthread_mutex_t *tmpl_lock, const char *state_root, const char *name, char *out, size_t size,
		       struct sbx_err *err)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 32];
	int r;

	if (strcmp(name, "default"))
		return sbx_err_set(err, ENOENT, "unknown template '%s'", name);
	snprintf(out, size, "%s/templates/%s/rootfs", state_root, name);
	if (access(out, F_OK) == 0)
		return 0;
	pthread_mutex_lock(tmpl_lock);
	if (access(out, F_OK) == 0) {
		pthread_mutex_unlock(tmpl_lock);
		return 0;
	}
	snprintf(dir, sizeof(dir), "%s/templates/%s", state_root, name);
	sbx_mkdir_p(dir, 0755, NULL); /* mkdtemp below reports what fails */
	snprintf(tmp, sizeof(tmp), "%s/.rootfs-XXXXXX", dir);
	if (!mkdtemp(tmp)) {
		r = sbx_err_sys(err, errno, "building template '%s': creating '%s'", name, tmp);
		pthread_mutex_unlock(tmpl_lock);
		return r;
	}
	chmod(tmp, 0755);
	r = build_default(tmp, err);
	if (r == 0 && rename(tmp, out) < 0 && errno != EEXIST && errno != ENOTEMPTY)
		r = sbx_err_sys(err, errno, "installing template '%s'", name);
	else if (r < 0)
		sbx_err_wrap(err, "building template '%s'", name);
	if (access(tmp, F_OK) == 0)
		sbx_rm_rf(tmp); /* failed, or another daemon won the race */
	pthread_mutex_unlock(tmpl_lock);
	return r;
}
