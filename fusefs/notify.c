/*
 * notify.c - making the daemon's own changes visible to inotify.
 *
 * The kernel raises no inotify event for what a FUSE daemon changes behind
 * the kernel's back. So when a run ends, a thread of the daemon creates
 * MOUNT/NAME/exit through the mount itself: lookups of `exit` from that
 * thread answer ENOENT, the kernel then sends CREATE, and watchers of the
 * sandbox directory see IN_CREATE "exit" followed by IN_CLOSE_WRITE.
 */
#include "fs.h"
#include "scratch.h"
#include "../backend/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct note {
	struct note *next;
	bool gone;          /* a killed sandbox: drop the kernel's entry of NAME */
	bool events;        /* a new line in `events`: answer its readers, truncate it (f_events.c) */
	char path[4200];    /* the exit file to create, or NAME when gone */
};

/* The state is fs.notify (fs.h). */
#define NS (&fs.notify)

/* An `events` note is queued and not yet taken: a burst of events makes one. */
static atomic_bool events_queued;

static bool notify_is_self_thread(void)
{
	return NS->tid && (pid_t)syscall(SYS_gettid) == NS->tid;
}

bool notify_is_self(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	return ctx && NS->tid && ctx->pid == NS->tid;
}

/* Whether a note can be taken now: root invalidations wait for the root's requests to be answered. */
static bool note_ready_locked(void)
{
	return NS->head || (NS->gone && atomic_load(&NS->root_busy) == 0);
}

/* The next note, or NULL once stop is set; NS->lock is held. */
static struct note *note_take_locked(void)
{
	struct note *n;

	while (!note_ready_locked() && !NS->stop) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		/* A held root invalidation is looked at again soon even if a wake-up was missed. */
		until.tv_sec += NS->gone ? 1 : 10;
		if (pthread_cond_timedwait(&NS->cond, &NS->lock, &until) != ETIMEDOUT || NS->gone)
			continue;
		/* Idle: drop the scratch files left alone, so their bytes go even when nobody looks. */
		pthread_mutex_unlock(&NS->lock);
		scratch_sweep();
		pthread_mutex_lock(&NS->lock);
	}
	if (NS->stop)
		return NULL;
	if (NS->head) {
		n = NS->head;
		NS->head = n->next;
		if (!NS->head)
			NS->tail = NULL;
	} else {
		n = NS->gone;
		NS->gone = n->next;
		if (!NS->gone)
			NS->gone_tail = NULL;
	}
	return n;
}

static void note_do(struct note *n)
{
	int fd;

	if (n->events) {
		atomic_store(&events_queued, false);
		events_wake();
		/* A truncate through the mount is what raises IN_MODIFY (nothing is cut). */
		if (truncate(n->path, 0) && errno != ENOENT)
			sbx_log(SBX_LOG_DEBUG, NULL, errno, "cannot touch '%s'", n->path);
	} else if (n->gone) {
		/*
		 * Lets the kernel forget NAME/ and files/ below it, closing our fds on
		 * its mounts. It waits for the root's lock: only here, with no request
		 * on the root in hand, so it never waits on an answer of ours.
		 */
		if (fs.se)
			fuse_lowlevel_notify_inval_entry(fs.se, FUSE_ROOT_ID, n->path, strlen(n->path));
	} else {
		fd = open(n->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
		if (fd >= 0)
			close(fd);
	}
}

static void free_list(struct note *n)
{
	while (n) {
		struct note *next = n->next;

		free(n);
		n = next;
	}
}

static void *notify_main(void *arg)
{
	struct note *n;

	(void)arg;
	NS->tid = (pid_t)syscall(SYS_gettid);
	pthread_mutex_lock(&NS->lock);
	while ((n = note_take_locked())) {
		pthread_mutex_unlock(&NS->lock);
		note_do(n);
		pthread_mutex_lock(&NS->lock);
		if (n->gone) {
			NS->gone_done++;
			pthread_cond_broadcast(&NS->done);
		}
		free(n);
	}
	free_list(NS->head);
	free_list(NS->gone);
	NS->head = NS->tail = NS->gone = NS->gone_tail = NULL;
	pthread_cond_broadcast(&NS->done);
	pthread_mutex_unlock(&NS->lock);
	return NULL;
}

int notify_start(void)
{
	int ret = pthread_create(&NS->thread, NULL, notify_main, NULL);

	if (ret == 0)
		NS->running = true;
	return -ret;
}

void notify_stop(void)
{
	if (!NS->running)
		return;
	pthread_mutex_lock(&NS->lock);
	NS->stop = true;
	pthread_cond_signal(&NS->cond);
	pthread_mutex_unlock(&NS->lock);
	pthread_join(NS->thread, NULL);
	NS->running = false;
}

/* Queues n (taking it); its place among gone notes (0 when dropped at stop). */
static uint64_t note_queue(struct note *n)
{
	uint64_t seq = 0;

	pthread_mutex_lock(&NS->lock);
	if (NS->stop) {
		pthread_mutex_unlock(&NS->lock);
		free(n);
		return 0;
	}
	if (n->gone) {
		if (NS->gone_tail)
			NS->gone_tail->next = n;
		else
			NS->gone = n;
		NS->gone_tail = n;
		seq = ++NS->gone_queued;
	} else {
		if (NS->tail)
			NS->tail->next = n;
		else
			NS->head = n;
		NS->tail = n;
	}
	pthread_cond_signal(&NS->cond);
	pthread_mutex_unlock(&NS->lock);
	return seq;
}

static __thread bool gone_deferred;
static __thread int root_held;      /* requests on the root this thread is handling */

void notify_defer_gone(bool on)
{
	gone_deferred = on;
}

void notify_root_enter(void)
{
	root_held++;
	atomic_fetch_add(&NS->root_busy, 1);
}

void notify_root_leave(void)
{
	root_held--;
	if (atomic_fetch_sub(&NS->root_busy, 1) != 1)
		return;
	pthread_mutex_lock(&NS->lock);
	if (NS->gone)
		pthread_cond_signal(&NS->cond);
	pthread_mutex_unlock(&NS->lock);
}

/* Waits a bounded time for the gone note seq to be done: a slow request on the root may hold it. */
static void gone_wait(uint64_t seq)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	pthread_mutex_lock(&NS->lock);
	while (NS->gone_done < seq && !NS->stop)
		if (pthread_cond_timedwait(&NS->done, &NS->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&NS->lock);
}

void notify_gone(const char *name, void *arg)
{
	struct note *n;
	uint64_t seq;

	(void)arg;
	/*
	 * Always through the notifier thread: the invalidation waits for the
	 * root's lock, which the kernel holds while a request on the root is
	 * unanswered. Called from such a request (rmdir NAME, a rename in the
	 * root), waiting would never end; from a thread a root request waits
	 * on, it would deadlock; and a daemon killed with a thread stuck there
	 * never exits, leaving the mount hung. Other callers (a `kill` in ctl,
	 * an expiry) wait a little for it, so `test -d NAME` right after a kill
	 * fails: the kernel may cache NAME for a second.
	 */
	n = calloc(1, sizeof(*n));
	if (!n)
		return;
	n->gone = true;
	snprintf(n->path, sizeof(n->path), "%s", name);
	seq = note_queue(n);
	if (seq && !gone_deferred && !root_held && !notify_is_self_thread())
		gone_wait(seq);
}

void notify_events(void *arg)
{
	struct note *n;

	(void)arg;
	if (atomic_exchange(&events_queued, true))
		return;
	n = calloc(1, sizeof(*n));
	if (!n) {
		atomic_store(&events_queued, false);
		return;
	}
	n->events = true;
	snprintf(n->path, sizeof(n->path), "%s/events", fs.mountpoint);
	note_queue(n);
}

void notify_announce(const char *name, const char *ctx, void *arg)
{
	struct note *n = calloc(1, sizeof(*n));

	(void)arg;
	if (!n)
		return;
	if (ctx)
		snprintf(n->path, sizeof(n->path), "%s/%s/contexts/%s/exit", fs.mountpoint, name, ctx);
	else
		snprintf(n->path, sizeof(n->path), "%s/%s/exit", fs.mountpoint, name);
	note_queue(n);
}
