/*
 * f_ctl.c - ctl files (the root's and each sandbox's): one write is one
 * batch of commands, answered with their errno; a read of the same open
 * file then gives the reply text ("ok ..." or "error: ...").
 */
#include "dirtab.h"

#include <stdio.h>
#include <stdlib.h>

static void ctl_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	pthread_mutex_lock(&h->lock);
	/* A read right after a write on this fd starts at the reply. */
	synth_reply_slice(req, h->data, h->len, size, off >= h->reply_base ? off - h->reply_base : off);
	pthread_mutex_unlock(&h->lock);
}

static void ctl_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	struct node *n = h->node;
	char where[300], *reply = NULL;
	int ret;

	synth_where(n, "ctl", where, sizeof(where));
	ret = ctl_execute(fs.ctl, n->sb, buf, size, where, &reply);
	pthread_mutex_lock(&h->lock);
	handle_set_data(h, reply);
	h->reply_base = ret ? off : off + (off_t)size;
	pthread_mutex_unlock(&h->lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

/* A scratch file renamed onto ctl: its content is one write, its errno the rename's. */
static int ctl_commit(struct node *n, char *data, size_t len, fuse_req_t req)
{
	char where[300], *reply = NULL;
	int ret;

	(void)req;
	synth_where(n, "ctl", where, sizeof(where));
	ret = ctl_execute(fs.ctl, n->sb, data, len, where, &reply);
	free(reply);
	free(data);
	return ret;
}

const struct sfile_ops ctl_fops = { .read = ctl_read, .write = ctl_write, .commit = ctl_commit };
