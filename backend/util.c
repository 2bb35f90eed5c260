/* util.c - the shared helpers of util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int sbx_proc_stat(pid_t pid, struct sbx_proc_stat *st)
{
	char path[64], buf[1024];
	const char *rp;
	int ppid, pgrp, sid, fd;
	ssize_t n;

	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n <= 0)
		return n < 0 ? (int)n : -EINVAL;
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	/* After "pid (comm)": 3 state, 4 ppid, 5 pgrp, 6 session, 7-21 skipped, 22 starttime. */
	if (!rp || sscanf(rp + 1, " %c %d %d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			  &st->state, &ppid, &pgrp, &sid, &st->start) != 5)
		return -EINVAL;
	st->ppid = (pid_t)ppid;
	st->pgrp = (pid_t)pgrp;
	st->sid = (pid_t)sid;
	return 0;
}

bool sbx_proc_alive(pid_t pid, unsigned long long start)
{
	struct sbx_proc_stat st = { 0 };

	if (sbx_proc_stat(pid, &st) < 0)
		return false;
	return st.state != 'Z' && st.state != 'X' && st.start == start;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int sbx_rm_rf(const char *path)
{
	/* Best effort: what cannot go stays; FTW_MOUNT keeps a bind mount's far side safe. */
	return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 ? -errno : 0;
}

static int mkdir_one(const char *path, mode_t mode, struct sbx_err *err)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return sbx_err_sys(err, errno, "cannot create '%s'", path);
	if (stat(path, &st) < 0)
		return sbx_err_sys(err, errno, "cannot create '%s'", path);
	if (!S_ISDIR(st.st_mode))
		return sbx_err_set(err, ENOTDIR, "cannot create '%s': a file of that name is in the way", path);
	return 0;
}

int sbx_mkdir_p(const char *path, mode_t mode, struct sbx_err *err)
{
	char buf[PATH_MAX];
	int ret;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return sbx_err_set(err, ENAMETOOLONG, "path '%.64s...' is too long", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		ret = mkdir_one(buf, mode, err);
		*p = '/';
		if (ret < 0)
			return ret;
	}
	return mkdir_one(buf, mode, err);
}

/*
 * path's address in *sa. sun_path holds 107 bytes, less than a state directory
 * under a home directory with a 64-byte sandbox name needs: a longer path is
 * reached through its directory, opened here (*dirfd, closed by the caller once
 * bound or connected), as /proc/self/fd/N/NAME.
 */
static int unix_addr(const char *path, struct sockaddr_un *sa, int *dirfd, struct sbx_err *err)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	size_t dlen;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	*dirfd = -1;
	if (strlen(path) < sizeof(sa->sun_path)) {
		memcpy(sa->sun_path, path, strlen(path) + 1);
		return 0;
	}
	dlen = slash ? (size_t)(slash - path) : 0;
	if (!slash || dlen >= sizeof(dir) || strlen(slash + 1) > sizeof(sa->sun_path) - 32)
		return sbx_err_set(err, ENAMETOOLONG, "socket path '%s' is too long for a unix socket", path);
	memcpy(dir, path, dlen);
	dir[dlen] = '\0';
	*dirfd = open(dlen ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return sbx_err_sys(err, errno, "cannot open the directory of socket '%s'", path);
	snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd, slash + 1);
	return 0;
}

/* A SOCK_STREAM unix socket and path's address (see unix_addr); the descriptor or -errno. */
static int unix_socket(const char *path, struct sockaddr_un *sa, int *dirfd, struct sbx_err *err)
{
	int fd, ret = unix_addr(path, sa, dirfd, err);

	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = sbx_err_sys(err, errno, "cannot create a unix socket");
		if (*dirfd >= 0)
			close(*dirfd);
		return ret;
	}
	return fd;
}

int sbx_unix_listen(const char *path, mode_t mode, struct sbx_err *err)
{
	struct sockaddr_un sa;
	int e = 0, dirfd, fd = unix_socket(path, &sa, &dirfd, err);

	if (fd < 0)
		return fd;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (mode && chmod(path, mode) < 0) ||
	    listen(fd, 128) < 0)
		e = errno;
	if (dirfd >= 0)
		close(dirfd);
	if (e) {
		close(fd);
		unlink(path);
		return sbx_err_sys(err, e, "cannot listen on '%s'", path);
	}
	return fd;
}

int sbx_unix_connect(const char *path, struct sbx_err *err)
{
	struct sockaddr_un sa;
	int e = 0, dirfd, fd = unix_socket(path, &sa, &dirfd, err);

	if (fd < 0)
		return fd;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		e = errno;
	if (dirfd >= 0)
		close(dirfd);
	if (e) {
		close(fd);
		return sbx_err_sys(err, e, "cannot connect to '%s'", path);
	}
	return fd;
}

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t sbx_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

uint64_t sbx_real_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int sbx_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int sbx_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sbx_write_knob(const char *path, const char *s, struct sbx_err *err)
{
	size_t len = strlen(s);
	ssize_t n;
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return sbx_err_sys(err, errno, "cannot open '%s'", path);
	n = write(fd, s, len);
	if (n < 0) {
		int e = errno;

		close(fd);
		return sbx_err_sys(err, e, "cannot write '%s' to '%s'", s, path);
	}
	close(fd);
	if ((size_t)n != len)
		return sbx_err_set(err, EIO, "short write of '%s' to '%s'", s, path);
	return 0;
}

int sbx_write_file(const char *path, const void *data, size_t len, mode_t mode, struct sbx_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	int ret;

	if (fd < 0)
		return sbx_err_sys(err, errno, "cannot create '%s'", path);
	ret = sbx_write_all(fd, data, len);
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret < 0)
		return sbx_err_sys(err, -ret, "cannot write '%s'", path);
	return 0;
}

/* Makes a rename or creation in path's directory durable. */
static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, ret = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int sbx_write_file_atomic(const char *path, const void *data, size_t len, int flags,
			  struct sbx_err *err)
{
	char tmp[PATH_MAX];
	int fd, ret;

	/* A temp of its own per writer (issue 11): with one fixed PATH.tmp, two writers
	 * truncated each other's temp and renamed it away under each other. */
	if (snprintf(tmp, sizeof(tmp), "%s" SBX_TMP_INFIX "XXXXXX", path) >= (int)sizeof(tmp))
		return sbx_err_set(err, ENAMETOOLONG, "path '%.64s...' is too long", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return sbx_err_sys(err, errno, "cannot write '%s'", path);
	ret = sbx_write_all(fd, data, len);
	if (ret == 0 && (flags & SBX_WRITE_SYNC) && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret < 0) {
		unlink(tmp);
		return sbx_err_sys(err, -ret, "cannot write '%s'", path);
	}
	ret = flags & SBX_WRITE_SYNC ? fsync_parent(path) : 0;
	if (ret < 0)
		return sbx_err_sys(err, -ret, "cannot make '%s' durable", path);
	return 0;
}
