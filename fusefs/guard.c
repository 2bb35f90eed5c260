/*
 * guard.c - a dead daemon's mount answers ENOTCONN instead of hanging.
 *
 * A daemon killed with SIGKILL leaves its FUSE connection alive for as long
 * as anything holds its /dev/fuse descriptor: one of its threads stuck in the
 * kernel (a call through its own mount, an invalidation waiting for a lock
 * whose request died with it), or a fork between fork and exec. Every call
 * on the mount then hangs until someone aborts the connection by hand.
 *
 * So right after the mount, a small child of the main thread holds nothing
 * but the connection's fusectl `abort` file and waits for that thread to die
 * (PR_SET_PDEATHSIG). The main thread only ends when the daemon does, by
 * SIGKILL or at its own exit after the unmount; the guard then writes 1 to
 * `abort`, which fails harmlessly on a connection already gone (the open file
 * names the old connection, never a new one given the same number).
 */
#include "fs.h"
#include "../backend/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FUSECTL "/sys/fs/fuse/connections"

/* mountinfo's escapes (\040 and the like) of a field, undone in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/*
 * The connection number of the newest mount on mnt: its device minor, read
 * from mountinfo (a stat of the mount would wait for our own answer). -1 if
 * not found.
 */
static long conn_of(const char *mnt)
{
	char line[PATH_MAX * 2 + 512];
	long conn = -1;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned int major, minor;
		char point[PATH_MAX * 2], fstype[64];
		const char *dash;

		if (sscanf(line, "%*u %*u %u:%u %*s %8191s", &major, &minor, point) != 3)
			continue;
		dash = strstr(line, " - ");
		if (!dash || sscanf(dash, " - %63s", fstype) != 1 || strncmp(fstype, "fuse", 4) != 0)
			continue;
		unescape(point);
		if (major == 0 && strcmp(point, mnt) == 0)
			conn = (long)minor;       /* the last one listed is on top */
	}
	fclose(f);
	return conn;
}

static int open_abort(long conn)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), FUSECTL "/%ld/abort", conn);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && mount("fusectl", FUSECTL, "fusectl", 0, NULL) == 0)
		fd = open(path, O_WRONLY | O_CLOEXEC);
	return fd;
}

/* The guard itself: only async-signal-safe calls (the daemon has threads). */
static _Noreturn void guard_main(int fd, pid_t parent)
{
	sigset_t set;
	int sig;

	signal(SIGINT, SIG_IGN);        /* a terminal's Ctrl-C is the daemon's to handle */
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (dup2(fd, 3) < 0)
		_exit(1);
	/* Not even stdio: a `sbxfs` in the background is done when its caller's pipes close. */
	syscall(SYS_close_range, 0u, 2u, 0u);
	syscall(SYS_close_range, 4u, ~0u, 0u);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR1) == 0 && getppid() == parent)
		while (sigwait(&set, &sig) != 0 || sig != SIGUSR1)
			;
	if (write(3, "1", 1) < 0) {
		/* gone already: a clean unmount */
	}
	_exit(0);
}

void guard_start(const char *mnt)
{
	long conn = conn_of(mnt);
	pid_t parent = getpid(), pid;
	int fd;

	if (conn < 0) {
		sbx_log(SBX_LOG_WARNING, NULL, 0, "no guard for '%s': its connection is not in mountinfo", mnt);
		return;
	}
	fd = open_abort(conn);
	if (fd < 0) {
		sbx_log(SBX_LOG_WARNING, NULL, errno, "no guard for '%s': cannot open " FUSECTL "/%ld/abort",
			mnt, conn);
		return;
	}
	pid = fork();
	if (pid == 0)
		guard_main(fd, parent);
	if (pid < 0)
		sbx_log(SBX_LOG_WARNING, NULL, errno, "no guard for '%s': cannot fork", mnt);
	close(fd);
}
