/*
 * f_events.c - the root `events` file: the lifecycle events of every
 * sandbox (control/events.c keeps them), oldest first, then a read at the
 * end waits for the next one, as `tail -f` expects.
 *
 * A waiting read is a kept request on a list, not a thread: when control
 * adds a line it calls the hook, which hands the wake-up to the notifier
 * thread (notify.c), so the thread that made the event (a `new`) never pays
 * for its readers. The notifier answers every reader behind the new end and
 * truncates `events` through the mount, which is what makes the kernel raise
 * IN_MODIFY for `inotifywait -e modify events` (it raises nothing for what
 * a FUSE daemon changes on its own side). An interrupt (Ctrl-C) answers a
 * waiting read with EINTR at once. O_NONBLOCK readers at the end get EAGAIN.
 * poll(2) is readable when the stream goes past where this open file's reads
 * got to, and the kernel is told when a line comes (an event loop can use it).
 */
#include "dirtab.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>

#define EV_READ_MAX (256u << 10)   /* bytes one read answers at most */

struct ev_reader {
	struct ev_reader *prev, *next;
	fuse_req_t req;
	struct ev_pos *pos;
	uint64_t off;
	size_t size;
	bool queued;                 /* on the list: whoever takes it off answers it */
	bool interrupted;            /* the interrupt came before it was queued */
};

/* What an open `events` keeps (h->priv): where its reads got to, for poll. */
struct ev_pos {
	_Atomic uint64_t next;
};

/* A poll(2) waiting for the next line. */
struct ev_poller {
	struct ev_poller *next;
	struct fuse_pollhandle *ph;
};

/*
 * Guards the list, the pollers and every reader's queued/interrupted. Taken before
 * control's events lock (ctl_events_size is asked under it, so a line added
 * meanwhile cannot be missed); nothing else is taken while it is held.
 */
static pthread_mutex_t readers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ev_reader *readers;
static struct ev_poller *pollers;

static void unlink_locked(struct ev_reader *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		readers = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	r->queued = false;
}

/* Replies what the stream has at off (possibly nothing: end of file); pos: where reads got to. */
static void reply_from(fuse_req_t req, uint64_t off, size_t size, struct ev_pos *pos)
{
	size_t n;
	char *buf;

	if (size > EV_READ_MAX)
		size = EV_READ_MAX;
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = ctl_events_read(fs.ctl, off, buf, size);
	/* Before the reply: the handle lives until its release, which cannot come before it. */
	atomic_store(&pos->next, off + n);
	fuse_reply_buf(req, buf, n);
	free(buf);
}

static void on_interrupt(fuse_req_t req, void *data)
{
	struct ev_reader *r = data;
	bool answer = false;

	pthread_mutex_lock(&readers_lock);
	if (r->queued) {
		unlink_locked(r);
		answer = true;
	} else {
		r->interrupted = true;
	}
	pthread_mutex_unlock(&readers_lock);
	if (answer) {
		fuse_reply_err(req, EINTR);
		free(r);
	}
}

/* Queues a read at the end; answers it at once if a line or an interrupt came meanwhile. */
static void keep_reader(fuse_req_t req, uint64_t off, size_t size, struct ev_pos *pos)
{
	struct ev_reader *r = calloc(1, sizeof(*r));
	bool now;

	if (!r) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r->req = req;
	r->off = off;
	r->size = size;
	r->pos = pos;
	/* Armed first: if the caller is already interrupted, the callback runs now. */
	fuse_req_interrupt_func(req, on_interrupt, r);
	pthread_mutex_lock(&readers_lock);
	now = r->interrupted || ctl_events_size(fs.ctl) > off;
	if (!now) {
		r->next = readers;
		if (readers)
			readers->prev = r;
		readers = r;
		r->queued = true;
	}
	pthread_mutex_unlock(&readers_lock);
	if (!now)
		return;
	fuse_req_interrupt_func(req, NULL, NULL);
	if (r->interrupted)
		fuse_reply_err(req, EINTR);
	else
		reply_from(req, off, size, pos);
	free(r);
}

static void events_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((uint64_t)off < ctl_events_size(fs.ctl))
		reply_from(req, (uint64_t)off, size, h->priv);
	else if (h->nonblock)
		fuse_reply_err(req, EAGAIN);    /* nothing new: no waiting (a generic reader's way) */
	else
		keep_reader(req, (uint64_t)off, size, h->priv);
}

static int events_open(struct handle *h, int flags)
{
	(void)flags;
	h->priv = calloc(1, sizeof(struct ev_pos));
	return h->priv ? 0 : -ENOMEM;
}

static void events_release(struct handle *h)
{
	free(h->priv);
	h->priv = NULL;
}

static void events_poll(fuse_req_t req, struct handle *h, struct fuse_pollhandle *ph)
{
	struct ev_pos *pos = h->priv;
	struct ev_poller *w = ph ? calloc(1, sizeof(*w)) : NULL;
	bool ready;

	pthread_mutex_lock(&readers_lock);
	/* With ph NULL (a zero timeout) nothing is kept: the answer is for now. */
	ready = ctl_events_size(fs.ctl) > atomic_load(&pos->next);
	if (!ready && w) {
		w->ph = ph;
		w->next = pollers;
		pollers = w;
		ph = NULL;
		w = NULL;
	}
	pthread_mutex_unlock(&readers_lock);
	free(w);
	if (ph) {
		fuse_pollhandle_destroy(ph);
		ready = true;           /* not kept (out of memory): readable, and a read waits */
	}
	fuse_reply_poll(req, ready ? POLLIN | POLLRDNORM : 0);
}

static int events_stat(struct node *n, struct stat *st)
{
	(void)n;
	st->st_size = (off_t)ctl_events_size(fs.ctl);
	return 0;
}

const struct sfile_ops events_fops = {
	.open = events_open, .read = events_read, .release = events_release, .stat = events_stat,
	.poll = events_poll,
};

/* Answers the readers the stream has reached (all of them at the end: end of file). */
static void answer_readers(bool all)
{
	struct ev_reader *ready = NULL, *r, *next;
	struct ev_poller *polled;
	uint64_t size;

	pthread_mutex_lock(&readers_lock);
	polled = pollers;
	pollers = NULL;
	size = ctl_events_size(fs.ctl);
	for (r = readers; r; r = next) {
		next = r->next;
		if (!all && r->off >= size)
			continue;
		unlink_locked(r);
		r->next = ready;
		ready = r;
	}
	pthread_mutex_unlock(&readers_lock);
	for (r = ready; r; r = next) {
		next = r->next;
		fuse_req_interrupt_func(r->req, NULL, NULL);   /* waits for a callback in flight */
		reply_from(r->req, r->off, r->size, r->pos);
		free(r);
	}
	while (polled) {
		struct ev_poller *w = polled;

		polled = w->next;
		if (!all)
			fuse_lowlevel_notify_poll(w->ph);
		fuse_pollhandle_destroy(w->ph);
		free(w);
	}
}

void events_wake(void)
{
	answer_readers(false);
}

void events_stop(void)
{
	answer_readers(true);
}
