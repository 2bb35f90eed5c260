/*
 * test_util.c - backend/util.c: /proc/PID/stat parsing (with a hostile command
 * name), directory chains, tree removal, whole-file writers, unix sockets, clocks.
 * Run: meson test -C build util
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../backend/util.h"

static int failures;

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (!(cond)) {                                    \
			failures++;                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);             \
			fputc('\n', stderr);                      \
		}                                                 \
	} while (0)

static char *slurp(const char *path)
{
	static char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void test_proc_stat(void)
{
	struct sbx_proc_stat st, again;
	pid_t child;
	int status;

	/* A command name with ") " in it must not shift the fields. */
	prctl(PR_SET_NAME, "x) Z 1 2 3 (y");
	CHECK(sbx_proc_stat(getpid(), &st) == 0, "stat of self");
	CHECK(st.state == 'R', "self is running, got '%c'", st.state);
	CHECK(st.ppid == getppid(), "ppid %d, want %d", (int)st.ppid, (int)getppid());
	CHECK(st.pgrp == getpgrp(), "pgrp %d, want %d", (int)st.pgrp, (int)getpgrp());
	CHECK(st.sid == getsid(0), "sid %d, want %d", (int)st.sid, (int)getsid(0));
	CHECK(st.start > 0, "a start time");
	CHECK(sbx_proc_alive(getpid(), st.start), "self is alive");
	CHECK(!sbx_proc_alive(getpid(), st.start + 1), "another start time is another process");
	CHECK(sbx_proc_stat(0, &st) == -ESRCH, "pid 0");
	CHECK(sbx_proc_stat(-5, &st) == -ESRCH, "a negative pid");

	child = fork();
	if (child == 0)
		_exit(0);
	usleep(100 * 1000);
	CHECK(sbx_proc_stat(child, &again) == 0 && again.state == 'Z', "the unreaped child is a zombie");
	CHECK(!sbx_proc_alive(child, again.start), "a zombie is not alive");
	waitpid(child, &status, 0);
	CHECK(sbx_proc_stat(child, &again) == -ENOENT, "a reaped child is gone");
}

static void test_dirs(const char *base)
{
	struct sbx_err err = { 0 };
	char path[512], file[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/a//b/c/", base);
	CHECK(sbx_mkdir_p(path, 0700, &err) == 0, "mkdir_p: %s", err.msg);
	CHECK(sbx_mkdir_p(path, 0700, &err) == 0, "mkdir_p again: %s", err.msg);
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "mode 0700");
	snprintf(file, sizeof(file), "%s/a/f", base);
	CHECK(sbx_write_file(file, "x", 1, 0600, &err) == 0, "write_file: %s", err.msg);
	snprintf(path, sizeof(path), "%s/a/f/g", base);
	CHECK(sbx_mkdir_p(path, 0700, &err) == -ENOTDIR && err.code == ENOTDIR, "a file in the way: %d", err.code);
	CHECK(sbx_mkdir_p(file, 0700, &err) == -ENOTDIR, "a file as the leaf");
	CHECK(strstr(err.msg, file) != NULL, "the message names the path: %s", err.msg);

	snprintf(path, sizeof(path), "%s/a", base);
	snprintf(file, sizeof(file), "%s/outside", base);
	CHECK(sbx_write_file(file, "keep", 4, 0600, NULL) == 0, "outside file");
	snprintf(path, sizeof(path), "%s/a/b/link", base);
	CHECK(symlink(file, path) == 0, "symlink");
	/* A link to a file must not be written through. */
	CHECK(sbx_write_file(path, "evil", 4, 0600, NULL) == -ELOOP, "write_file follows no link");
	snprintf(path, sizeof(path), "%s/a", base);
	CHECK(sbx_rm_rf(path) == 0 && access(path, F_OK) < 0, "rm_rf removes the tree");
	CHECK(strcmp(slurp(file), "keep") == 0, "rm_rf does not follow links out of the tree");
}

static void test_writers(const char *base)
{
	struct sbx_err err = { 0 };
	char path[512];

	snprintf(path, sizeof(path), "%s/atomic", base);
	CHECK(sbx_write_file_atomic(path, "one", 3, SBX_WRITE_SYNC, &err) == 0, "atomic: %s", err.msg);
	CHECK(sbx_write_file_atomic(path, "two", 3, 0, &err) == 0, "atomic again: %s", err.msg);
	CHECK(strcmp(slurp(path), "two") == 0, "atomic content");
	CHECK(count_entries(base) == 1, "no temporary file is left (%d entries)", count_entries(base));
	snprintf(path, sizeof(path), "%s/no/such/dir/atomic", base);
	CHECK(sbx_write_file_atomic(path, "x", 1, 0, &err) == -ENOENT && strstr(err.msg, "cannot write"),
	      "atomic into a missing dir: %s", err.msg);
	snprintf(path, sizeof(path), "%s/knob", base);
	CHECK(sbx_write_knob(path, "1", &err) == -ENOENT, "a knob is never created");
	CHECK(sbx_write_file(path, "", 0, 0600, NULL) == 0 && sbx_write_knob(path, "12", &err) == 0, "knob");
	CHECK(strcmp(slurp(path), "12") == 0, "knob content");
}

static void test_sockets(const char *base)
{
	struct sbx_err err = { 0 };
	char path[512], longp[300];
	struct stat st;
	int l, c;

	snprintf(path, sizeof(path), "%s/s.sock", base);
	l = sbx_unix_listen(path, 0600, &err);
	CHECK(l >= 0, "listen: %s", err.msg);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "socket mode");
	c = sbx_unix_connect(path, &err);
	CHECK(c >= 0, "connect: %s", err.msg);
	if (c >= 0)
		close(c);
	if (l >= 0)
		close(l);
	CHECK(sbx_unix_connect(path, &err) == -ECONNREFUSED, "connect to a closed socket");
	unlink(path);

	/* A 64-byte name below a long state directory: longer than sun_path, still works. */
	snprintf(longp, sizeof(longp), "%s/%064d/%064d", base, 0, 1);
	CHECK(sbx_mkdir_p(longp, 0700, &err) == 0, "long dir: %s", err.msg);
	snprintf(path, sizeof(path), "%s/agent.sock", longp);
	CHECK(strlen(path) > 108, "the test path is longer than sun_path (%zu)", strlen(path));
	l = sbx_unix_listen(path, 0600, &err);
	CHECK(l >= 0, "listen on a long path: %s", err.msg);
	CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600, "the socket is at the path");
	c = sbx_unix_connect(path, &err);
	CHECK(c >= 0, "connect to a long path: %s", err.msg);
	if (c >= 0)
		close(c);
	if (l >= 0)
		close(l);
	CHECK(sbx_unix_connect(path, &err) == -ECONNREFUSED, "connect to a closed long-path socket");
	unlink(path);

	/* A last component that cannot fit is refused in words. */
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	CHECK(sbx_unix_listen(longp, 0, &err) == -ENAMETOOLONG, "a name too long for sun_path");
	CHECK(sbx_unix_listen(longp + 1, 0, &err) == -ENAMETOOLONG, "a long name with no directory");
}

static void test_misc(void)
{
	char *names[] = { "b", "c", "a" };
	uint64_t t0 = sbx_mono_ms();
	struct sbx_err err = { 0 };

	qsort(names, 3, sizeof(names[0]), sbx_cmp_str);
	CHECK(!strcmp(names[0], "a") && !strcmp(names[2], "c"), "cmp_str order");
	usleep(20 * 1000);
	CHECK(sbx_mono_ms() - t0 >= 19, "monotonic clock moves");
	CHECK(sbx_real_ms() > 1600000000000ULL, "real clock is in ms since 1970");
	CHECK(!strcmp(sbx_errstr(ENOENT), "No such file or directory"), "errstr: %s", sbx_errstr(ENOENT));
	CHECK(!strcmp(sbx_errstr(99999), "unknown error"), "errstr of an unknown number");
	sbx_err_sys(&err, EACCES, "opening '%s'", "x");
	CHECK(!strcmp(err.msg, "opening 'x': Permission denied"), "err_sys: %s", err.msg);
}

int main(void)
{
	char base[] = "/tmp/sbx-test-util-XXXXXX";

	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	test_proc_stat();
	test_dirs(base);
	sbx_rm_rf(base);
	if (mkdir(base, 0700) < 0) {
		perror("mkdir");
		return 1;
	}
	test_writers(base);
	test_sockets(base);
	test_misc();
	sbx_rm_rf(base);
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
