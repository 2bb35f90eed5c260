/*
 * pending.c - answering kept requests exactly once.
 *
 * libfuse runs an interrupt callback under the request's own lock, and
 * fuse_req_interrupt_func() takes that lock too; so clearing the callback
 * before replying waits for a callback in flight and keeps the request valid
 * until we reply. The one mutex below decides who answers.
 */
#include "pending.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* fs.pending_lock (fs.h) decides who answers. */

static void reply_wait(struct pending *p, fuse_req_t req, int exit_code)
{
	struct handle *h = p->h;
	char text[32];
	int fd, len;

	(void)exit_code;
	/* The text of `exit` as it is now (the queue is idle): the latest run's status. */
	fd = run_open_latest(h->node->sb, h->node->ctx, "exit");
	len = 0;
	if (fd >= 0) {
		ssize_t n = read(fd, text, sizeof(text) - 1);

		len = n > 0 ? (int)n : 0;
		close(fd);
	}
	pthread_mutex_lock(&h->lock);
	free(h->data);
	h->data = malloc((size_t)len + 1);
	if (h->data)
		memcpy(h->data, text, (size_t)len);
	h->len = h->data ? (size_t)len : 0;
	pthread_mutex_unlock(&h->lock);
	fuse_reply_buf(req, text, (size_t)len < p->size ? (size_t)len : p->size);
}

static void on_interrupt(fuse_req_t req, void *data)
{
	struct pending *p = data;
	bool answer = false;

	pthread_mutex_lock(&fs.pending_lock);
	p->interrupted = true;
	if (p->req) {
		p->req = NULL;
		answer = true;
	}
	pthread_mutex_unlock(&fs.pending_lock);
	if (answer)
		fuse_reply_err(req, EINTR);
}

static void pending_done(void *arg, int exit_code)
{
	struct pending *p = arg;
	fuse_req_t req;

	pthread_mutex_lock(&fs.pending_lock);
	req = p->req;
	p->req = NULL;
	pthread_mutex_unlock(&fs.pending_lock);
	if (req) {
		fuse_req_interrupt_func(req, NULL, NULL);
		/* What the run wrote is fresh in files/ before its close() returns. */
		watch_sync(p->sb);
		if (p->kind == PENDING_WAIT)
			reply_wait(p, req, exit_code);
		else
			fuse_reply_err(req, p->waiter.error);  /* a run whose record failed */
	}
	sandbox_put(p->sb);
	free(p);
}

struct pending *pending_new(fuse_req_t req, enum pending_kind kind, struct sandbox *sb, struct handle *h,
			    size_t size)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->kind = kind;
	p->req = req;
	p->sb = sb;
	sandbox_ref(sb);
	p->h = h;
	p->size = size;
	p->waiter.fn = pending_done;
	p->waiter.arg = p;
	fuse_req_interrupt_func(req, on_interrupt, p);
	return p;
}

void pending_answer_now(struct pending *p, int exit_code)
{
	pending_done(p, exit_code);
}

void pending_cancel(struct pending *p)
{
	fuse_req_interrupt_func(p->req, NULL, NULL);
	sandbox_put(p->sb);
	free(p);
}
