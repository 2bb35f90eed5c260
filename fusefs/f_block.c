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

const struct sfile_ops wait_fops = { .read = wait_read };

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
