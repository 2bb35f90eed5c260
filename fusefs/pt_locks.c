/*
 * pt_locks.c - locks through files/.
 *
 * POSIX locks and flock() are taken on the daemon's own fd of each open, so
 * processes inside the sandbox see them and conflict with them. POSIX locks
 * become open-file-description locks (F_OFD_*): they belong to one open of
 * the file rather than to the process.
 *
 * A lock request that may wait (F_SETLKW, flock without LOCK_NB) is first
 * tried without waiting; if it must wait, the request is kept and a waiter
 * thread of its own (small stack, outside libfuse's worker pool) makes the
 * blocking call on a dup of the file's fd and answers the request when it
 * returns, so a thousand blocked callers hold no worker and the rest of the
 * mount keeps answering. An interrupt (Ctrl-C) sends the waiter a signal,
 * again every few milliseconds until its call has returned (a signal that
 * lands just before the call blocks is not lost), and the caller gets EINTR.
 * At most PT_LOCK_WAITERS wait at once; beyond that ENOLCK.
 */
#include "fs.h"
#include "pt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define PT_LOCK_SIGNAL SIGUSR2       /* wakes a waiter for an interrupted request */
#define PT_LOCK_WAITERS 4096
#define PT_LOCK_STACK (256u << 10)
#define PT_LOCK_KICK_MS 5

struct pt_lock_wait {
	struct pt_lock_wait *prev, *next;   /* fs.pt.waiters, under fs.pt.wait_lock */
	fuse_req_t req;
	int fd;                      /* a dup of the open file's fd: the same description */
	bool is_flock;
	int op;                      /* flock */
	struct flock fl;             /* F_OFD_SETLKW */
	pthread_t thread;
	/* under lock: */
	pthread_mutex_t lock;        /* a leaf */
	pthread_cond_t cond;         /* signalled when done is set */
	bool started, interrupted, done;
};

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

/* Signals w's thread until its call has returned. */
static void kick(struct pt_lock_wait *w)
{
	pthread_mutex_lock(&w->lock);
	w->interrupted = true;
	while (w->started && !w->done) {
		struct timespec until;

		pthread_kill(w->thread, PT_LOCK_SIGNAL);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += PT_LOCK_KICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &until);
	}
	pthread_mutex_unlock(&w->lock);
}

static void on_interrupt(fuse_req_t req, void *data)
{
	(void)req;
	kick(data);
}

/* The blocking call, restarted after stray signals; 0 or errno. */
static int wait_call(struct pt_lock_wait *w)
{
	for (;;) {
		bool stop;
		int ret = (w->is_flock ? flock(w->fd, w->op) : fcntl(w->fd, F_OFD_SETLKW, &w->fl)) ? errno : 0;

		pthread_mutex_lock(&w->lock);
		stop = ret != EINTR || w->interrupted;
		if (stop)
			w->done = true;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		if (stop)
			return ret;
	}
}

static void waiter_free(struct pt_lock_wait *w)
{
	struct pt_state *pt = &fs.pt;

	pthread_mutex_lock(&pt->wait_lock);
	if (w->prev)
		w->prev->next = w->next;
	else
		pt->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	pt->nwaiters--;
	pthread_cond_broadcast(&pt->wait_cond);
	pthread_mutex_unlock(&pt->wait_lock);
	close(w->fd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

static void *waiter_main(void *arg)
{
	struct pt_lock_wait *w = arg;
	bool interrupted;
	int ret;

	pthread_mutex_lock(&w->lock);
	w->started = true;
	interrupted = w->interrupted;
	if (interrupted)
		w->done = true;
	pthread_mutex_unlock(&w->lock);
	ret = interrupted ? EINTR : wait_call(w);
	fuse_req_interrupt_func(w->req, NULL, NULL);   /* waits for a callback in flight */
	fuse_reply_err(w->req, ret);
	waiter_free(w);
	return NULL;
}

/* Takes a place among the waiters for w; false when they are all taken or stopping. */
static bool waiter_add(struct pt_lock_wait *w)
{
	struct pt_state *pt = &fs.pt;
	bool ok;

	pthread_mutex_lock(&pt->wait_lock);
	ok = pt->nwaiters < PT_LOCK_WAITERS && !pt->wait_stopping;
	if (ok) {
		w->next = pt->waiters;
		if (w->next)
			w->next->prev = w;
		pt->waiters = w;
		pt->nwaiters++;
	}
	pthread_mutex_unlock(&pt->wait_lock);
	return ok;
}

/* Keeps req and answers it from a waiter thread; w is filled but for the fields set here. */
static void wait_off_pool(fuse_req_t req, struct pt_lock_wait *w, int fd)
{
	pthread_attr_t attr;
	int err = 0;

	w->req = req;
	w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (w->fd < 0 || !waiter_add(w)) {
		err = w->fd < 0 ? errno : ENOLCK;
		if (w->fd >= 0)
			close(w->fd);
		free(w);
		fuse_reply_err(req, err);
		return;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	/* Armed first: an interrupt that comes before the thread runs is seen when it starts. */
	fuse_req_interrupt_func(req, on_interrupt, w);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, PT_LOCK_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&w->thread, &attr, waiter_main, w);
	pthread_attr_destroy(&attr);
	if (err) {
		fuse_req_interrupt_func(req, NULL, NULL);
		waiter_free(w);
		fuse_reply_err(req, ENOLCK);
	}
}

void pt_locks_stop(void)
{
	struct pt_state *pt = &fs.pt;

	/* wait_lock before a waiter's lock: kick() under it keeps every listed waiter alive */
	pthread_mutex_lock(&pt->wait_lock);
	pt->wait_stopping = true;
	for (struct pt_lock_wait *w = pt->waiters; w; w = w->next)
		kick(w);
	while (pt->nwaiters)
		pthread_cond_wait(&pt->wait_cond, &pt->wait_lock);
	pthread_mutex_unlock(&pt->wait_lock);
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
	struct pt_lock_wait *w;
	int ret;

	lock->l_pid = 0;
	ret = fcntl((int)fi->fh, F_OFD_SETLK, lock) ? errno : 0;
	if (!sleep || lock->l_type == F_UNLCK || (ret != EAGAIN && ret != EACCES)) {
		fuse_reply_err(req, ret);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	w->fl = *lock;
	wait_off_pool(req, w, (int)fi->fh);
}

void pt_flock(fuse_req_t req, struct fuse_file_info *fi, int op)
{
	struct pt_lock_wait *w;
	int ret;

	ret = flock((int)fi->fh, op | ((op & LOCK_UN) ? 0 : LOCK_NB)) ? errno : 0;
	if ((op & (LOCK_NB | LOCK_UN)) || ret != EWOULDBLOCK) {
		fuse_reply_err(req, ret);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	w->is_flock = true;
	w->op = op;
	wait_off_pool(req, w, (int)fi->fh);
}
