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

bool notify_is_self(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	return ctx && NS->tid && ctx->pid == NS->tid;
}

static void *notify_main(void *arg)
{
	(void)arg;
	NS->tid = (pid_t)syscall(SYS_gettid);
	pthread_mutex_lock(&NS->lock);
	for (;;) {
		struct note *n;
		int fd;

		while (!NS->head && !NS->stop) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 10;
			if (pthread_cond_timedwait(&NS->cond, &NS->lock, &until) != ETIMEDOUT)
				continue;
			/* Idle: drop the scratch files left alone, so their bytes go even when nobody looks. */
			pthread_mutex_unlock(&NS->lock);
			scratch_sweep();
			pthread_mutex_lock(&NS->lock);
		}
		if (NS->stop)
			break;
		n = NS->head;
		NS->head = n->next;
		if (!NS->head)
			NS->tail = NULL;
		pthread_mutex_unlock(&NS->lock);
		if (n->events) {
			atomic_store(&events_queued, false);
			events_wake();
			/* A truncate through the mount is what raises IN_MODIFY (nothing is cut). */
			if (truncate(n->path, 0) && errno != ENOENT)
				sbx_log(SBX_LOG_DEBUG, NULL, errno, "cannot touch '%s'", n->path);
		} else if (n->gone) {
			/* Lets the kernel forget NAME/ and files/ below it, closing our fds on its mounts. */
			fuse_lowlevel_notify_inval_entry(fs.se, FUSE_ROOT_ID, n->path, strlen(n->path));
		} else {
			fd = open(n->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
			if (fd >= 0)
				close(fd);
		}
		free(n);
		pthread_mutex_lock(&NS->lock);
	}
	while (NS->head) {
		struct note *n = NS->head;

		NS->head = n->next;
		free(n);
	}
	NS->tail = NULL;
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

static void note_queue(struct note *n)
{
	pthread_mutex_lock(&NS->lock);
	if (NS->stop) {
		pthread_mutex_unlock(&NS->lock);
		free(n);
		return;
	}
	if (NS->tail)
		NS->tail->next = n;
	else
		NS->head = n;
	NS->tail = n;
	pthread_cond_signal(&NS->cond);
	pthread_mutex_unlock(&NS->lock);
}

static __thread bool gone_deferred;

void notify_defer_gone(bool on)
{
	gone_deferred = on;
}

void notify_gone(const char *name, void *arg)
{
	struct note *n;

	(void)arg;
	/*
	 * At once, so `test -d NAME` right after a kill fails: the kernel may
	 * cache NAME for a second. Not from inside rmdir, where the kernel holds
	 * the root's lock that the invalidation needs (it drops NAME itself).
	 */
	if (!gone_deferred && fs.se) {
		fuse_lowlevel_notify_inval_entry(fs.se, FUSE_ROOT_ID, name, strlen(name));
		return;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return;
	n->gone = true;
	snprintf(n->path, sizeof(n->path), "%s", name);
	note_queue(n);
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
