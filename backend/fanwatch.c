/* fanwatch.c - the process's one fanotify group for watched sandboxes (see fanwatch.h). */
#include "fanwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Lock order: deliver_lock, then list_lock (both below every backend lock a
 * watch op is called with). deliver_lock is held while events are read and
 * handed out: one consumer at a time, and fan_watch_remove waits on it so no
 * call is in progress once it returns. list_lock guards the list and the
 * group's descriptors below it.
 */
static pthread_mutex_t deliver_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fan_watch *watches;
static int fan_fd = -1;
static int stop_pipe[2] = { -1, -1 };
static pthread_t fan_thread;

/* The watch an event belongs to: the fsid of its first record; list_lock held. */
static struct fan_watch *owner_locked(const struct fanotify_event_metadata *m)
{
	const struct fanotify_event_info_fid *fid = (const void *)(m + 1);

	if (m->event_len < sizeof(*m) + sizeof(*fid))
		return NULL;
	for (struct fan_watch *w = watches; w; w = w->next)
		if (memcmp(&fid->fsid, &w->fsid, sizeof(w->fsid)) == 0)
			return w;
	return NULL;
}

void fan_records(struct fan_watch *w, const struct fanotify_event_metadata *m,
		 void (*fn)(void *arg, int kind, struct file_handle *fh, const char *name), void *arg)
{
	const char *p = (const char *)(m + 1), *end = (const char *)m + m->event_len;

	while (p + sizeof(struct fanotify_event_info_fid) + sizeof(struct file_handle) <= end) {
		struct fanotify_event_info_fid *fid = (struct fanotify_event_info_fid *)p;
		struct file_handle *fh = (struct file_handle *)fid->handle;
		const char *name = (const char *)fh->f_handle + fh->handle_bytes;

		if (fid->hdr.len < sizeof(*fid) || fid->hdr.len > (size_t)(end - p))
			break;
		/* the name is NUL-terminated inside the record */
		if (name >= p + fid->hdr.len || !memchr(name, '\0', (size_t)(p + fid->hdr.len - name)))
			break;
		if (memcmp(&fid->fsid, &w->fsid, sizeof(w->fsid)) == 0)
			fn(arg, fid->hdr.info_type, fh, name);
		p += fid->hdr.len;
	}
}

/*
 * Handles one buffer of events; deliver_lock held. The kernel packs events at
 * 4-byte boundaries while their header holds a 64-bit mask, so each event is
 * copied to an aligned buffer before it is read.
 */
static void handle_batch(const char *buf, size_t len)
{
	static union {
		struct fanotify_event_metadata m;
		char bytes[8192];
	} ev;
	struct fanotify_event_metadata hdr;
	struct fan_watch *cur = NULL;
	pid_t self = getpid();
	size_t off = 0;

	while (off + sizeof(hdr) <= len) {
		struct fan_watch *w;

		memcpy(&hdr, buf + off, sizeof(hdr));
		if (hdr.event_len < sizeof(hdr) || off + hdr.event_len > len)
			break;
		off += hdr.event_len;
		if (hdr.event_len > sizeof(ev.bytes) || hdr.vers != FANOTIFY_METADATA_VERSION ||
		    (hdr.mask & FAN_Q_OVERFLOW) || hdr.pid == self)
			continue;
		memcpy(ev.bytes, buf + off - hdr.event_len, hdr.event_len);
		pthread_mutex_lock(&list_lock);
		w = owner_locked(&ev.m);
		pthread_mutex_unlock(&list_lock);
		if (!w)
			continue;
		if (cur && cur != w)
			cur->done(cur);
		cur = w;
		w->event(w, &ev.m);
	}
	if (cur)
		cur->done(cur);
}

/* Reads and handles what is queued; deliver_lock held. False when nothing was. */
static bool drain_locked(void)
{
	static char buf[64 * 1024] __attribute__((aligned(8)));
	ssize_t len;

	if (fan_fd < 0)
		return false;
	len = read(fan_fd, buf, sizeof(buf));
	if (len <= 0)
		return false;
	handle_batch(buf, (size_t)len);
	return true;
}

static void *fan_main(void *arg)
{
	struct pollfd pfd[2] = { { .fd = fan_fd, .events = POLLIN },
				 { .fd = stop_pipe[0], .events = POLLIN } };

	(void)arg;
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & POLLIN) {
			pthread_mutex_lock(&deliver_lock);
			drain_locked();
			pthread_mutex_unlock(&deliver_lock);
		}
	}
	return NULL;
}

/* Makes the group and its thread; list_lock held. */
static int group_start_locked(struct sbx_err *err)
{
	if (fan_fd >= 0)
		return 0;
	fan_fd = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_UNLIMITED_QUEUE |
			       FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_CLOEXEC);
	if (fan_fd < 0)
		return sbx_err_sys(err, errno, "cannot watch sandboxes (fanotify)");
	if (pipe2(stop_pipe, O_CLOEXEC) == 0 && pthread_create(&fan_thread, NULL, fan_main, NULL) == 0)
		return 0;
	for (int i = 0; i < 2; i++)
		if (stop_pipe[i] >= 0)
			close(stop_pipe[i]);
	close(fan_fd);
	fan_fd = stop_pipe[0] = stop_pipe[1] = -1;
	return sbx_err_set(err, EAGAIN, "cannot watch sandboxes: no thread or pipe");
}

int fan_watch_add(struct fan_watch *w, struct sbx_err *err)
{
	int r;

	pthread_mutex_lock(&list_lock);
	for (struct fan_watch *o = watches; o; o = o->next)
		if (memcmp(&o->fsid, &w->fsid, sizeof(w->fsid)) == 0) {
			pthread_mutex_unlock(&list_lock);
			return sbx_err_set(err, EEXIST, "a filesystem watched twice");
		}
	r = group_start_locked(err);
	if (r == 0) {
		w->next = watches;
		watches = w;
	}
	pthread_mutex_unlock(&list_lock);
	return r;
}

void fan_watch_remove(struct fan_watch *w)
{
	pthread_mutex_lock(&deliver_lock);
	pthread_mutex_lock(&list_lock);
	for (struct fan_watch **pp = &watches; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	pthread_mutex_unlock(&list_lock);
	pthread_mutex_unlock(&deliver_lock);
}

int fan_mark(unsigned int flags, uint64_t mask, int fd, struct sbx_err *err)
{
	int r = 0;

	pthread_mutex_lock(&list_lock);
	if (fan_fd < 0)
		r = sbx_err_set(err, EBADF, "no fanotify group");
	else if (fanotify_mark(fan_fd, flags, mask, fd, NULL))
		r = sbx_err_sys(err, errno, "cannot watch a sandbox's files (fanotify_mark)");
	pthread_mutex_unlock(&list_lock);
	return r;
}

void fan_sync(void)
{
	pthread_mutex_lock(&deliver_lock);
	while (drain_locked())
		;
	pthread_mutex_unlock(&deliver_lock);
}

void fan_fini(void)
{
	/* No lock around the join: the thread takes deliver_lock. No watch is left to race. */
	if (fan_fd < 0)
		return;
	if (write(stop_pipe[1], "x", 1) != 1)
		pthread_cancel(fan_thread);
	pthread_join(fan_thread, NULL);
	close(fan_fd);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	fan_fd = stop_pipe[0] = stop_pipe[1] = -1;
}
