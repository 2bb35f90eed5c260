/*
 * f_block.c - files whose reads wait for an event: `wait` (until no run is
 * in progress, then the exit status) and `watch` (the changes made inside
 * the sandbox, one line each, followed like `tail -f`). No worker thread
 * waits: the request is kept (pending.c, watch.c) and answered later.
 * O_NONBLOCK readers get what is there now, or EAGAIN when that is nothing.
 */
#include "dirtab.h"
#include "pending.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

static void wait_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	struct node *n = h->node;
	struct pending *p;

	pthread_mutex_lock(&h->lock);
	if (h->data) {
		synth_reply_slice(req, h->data, h->len, size, off);
		pthread_mutex_unlock(&h->lock);
		return;
	}
	pthread_mutex_unlock(&h->lock);
	if (h->nonblock && run_busy(n->sb, n->ctx)) {
		fuse_reply_err(req, EAGAIN);    /* O_NONBLOCK: a run is in progress, nothing to give yet */
		return;
	}
	p = pending_new(req, PENDING_WAIT, n->sb, h, size);
	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (!run_wait_idle(n->sb, n->ctx, &p->waiter))
		pending_answer_now(p, 0);
}

/* A poll(2) on `wait` that found a run in progress: the kernel is told when the queue is idle. */
struct poll_waiter {
	struct run_waiter waiter;
	struct fuse_pollhandle *ph;
};

static void poll_idle(void *arg, int exit_code)
{
	struct poll_waiter *pw = arg;

	(void)exit_code;
	fuse_lowlevel_notify_poll(pw->ph);
	fuse_pollhandle_destroy(pw->ph);
	free(pw);
}

static void wait_poll(fuse_req_t req, struct handle *h, struct fuse_pollhandle *ph)
{
	struct node *n = h->node;
	struct poll_waiter *pw;
	bool answered;

	pthread_mutex_lock(&h->lock);
	answered = h->data != NULL;
	pthread_mutex_unlock(&h->lock);
	if (!answered && run_busy(n->sb, n->ctx) && !ph) {
		fuse_reply_poll(req, 0);        /* asked without wanting to be told later (a zero timeout) */
		return;
	}
	if (answered || !run_busy(n->sb, n->ctx) || !(pw = calloc(1, sizeof(*pw)))) {
		fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, POLLIN | POLLRDNORM);   /* a read answers now (or, out of memory, blocks) */
		return;
	}
	pw->ph = ph;
	pw->waiter.fn = poll_idle;
	pw->waiter.arg = pw;
	if (!run_wait_idle(n->sb, n->ctx, &pw->waiter)) {
		poll_idle(pw, 0);       /* idle meanwhile */
		fuse_reply_poll(req, POLLIN | POLLRDNORM);
		return;
	}
	fuse_reply_poll(req, 0);
}

const struct sfile_ops wait_fops = { .read = wait_read, .poll = wait_poll };

static void watch_file_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	/* O_NONBLOCK at the end: nothing new yet, no waiting (a generic reader's way). */
	if (h->nonblock && off >= watch_size(h->node->sb))
		fuse_reply_err(req, EAGAIN);
	else
		watch_read(req, h->node->sb, size, off);
}

static int watch_stat(struct node *n, struct stat *st)
{
	st->st_size = watch_size(n->sb);
	return 0;
}

const struct sfile_ops watch_fops = { .read = watch_file_read, .stat = watch_stat };
