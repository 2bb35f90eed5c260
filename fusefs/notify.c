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

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct note {
	struct note *next;
	bool gone;          /* a killed sandbox: drop the kernel's entry of NAME */
	char path[4200];    /* the exit file to create, or NAME when gone */
};

static pthread_mutex_t note_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t note_cond = PTHREAD_COND_INITIALIZER;
static struct note *notes_head, *notes_tail;
static bool note_stop;
static bool note_running;
static pthread_t note_thread;
static _Atomic pid_t note_tid;

bool notify_is_self(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	return ctx && note_tid && ctx->pid == note_tid;
}

static void *notify_main(void *arg)
{
	(void)arg;
	note_tid = (pid_t)syscall(SYS_gettid);
	pthread_mutex_lock(&note_lock);
	for (;;) {
		struct note *n;
		int fd;

		while (!notes_head && !note_stop)
			pthread_cond_wait(&note_cond, &note_lock);
		if (note_stop)
			break;
		n = notes_head;
		notes_head = n->next;
		if (!notes_head)
			notes_tail = NULL;
		pthread_mutex_unlock(&note_lock);
		if (n->gone) {
			/* Lets the kernel forget NAME/ and files/ below it, closing our fds on its mounts. */
			fuse_lowlevel_notify_inval_entry(fs.se, FUSE_ROOT_ID, n->path, strlen(n->path));
		} else {
			fd = open(n->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
			if (fd >= 0)
				close(fd);
		}
		free(n);
		pthread_mutex_lock(&note_lock);
	}
	while (notes_head) {
		struct note *n = notes_head;

		notes_head = n->next;
		free(n);
	}
	notes_tail = NULL;
	pthread_mutex_unlock(&note_lock);
	return NULL;
}

int notify_start(void)
{
	int ret = pthread_create(&note_thread, NULL, notify_main, NULL);

	if (ret == 0)
		note_running = true;
	return -ret;
}

void notify_stop(void)
{
	if (!note_running)
		return;
	pthread_mutex_lock(&note_lock);
	note_stop = true;
	pthread_cond_signal(&note_cond);
	pthread_mutex_unlock(&note_lock);
	pthread_join(note_thread, NULL);
	note_running = false;
}

static void note_queue(struct note *n)
{
	pthread_mutex_lock(&note_lock);
	if (note_stop) {
		pthread_mutex_unlock(&note_lock);
		free(n);
		return;
	}
	if (notes_tail)
		notes_tail->next = n;
	else
		notes_head = n;
	notes_tail = n;
	pthread_cond_signal(&note_cond);
	pthread_mutex_unlock(&note_lock);
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
