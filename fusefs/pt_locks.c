/*
 * pt_locks.c - locks through files/.
 */
#include "fs.h"
#include "pt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <unistd.h>

/* Wakes a worker blocked on a lock for an interrupted request. */
#define PT_LOCK_SIGNAL SIGUSR2

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
