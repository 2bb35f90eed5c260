/*
 * f_output.c - files read from what a run spooled on disk: stdout, stderr,
 * exit and result of the latest run, the files of runs/N/, and a context's
 * results/N-figure-K.png. Each open holds the spooled file, so a reader
 * keeps the run it opened even when the next one starts.
 */
#include "dirtab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Size and times of the spooled file fd (or -errno); absent_empty: ENOENT reads as empty. */
static int stat_spooled(int fd, struct stat *st, bool absent_empty)
{
	struct stat real;

	if (fd == -ENOENT && absent_empty)
		return 0;
	if (fd < 0)
		return fd;
	if (fstat(fd, &real) == 0) {
		st->st_size = real.st_size;
		st->st_mtim = real.st_mtim;
		st->st_ctim = real.st_ctim;
	}
	close(fd);
	return 0;
}

static int open_spooled(struct handle *h, int fd, bool absent_empty)
{
	if (fd == -ENOENT && absent_empty)
		return 0;
	if (fd < 0)
		return fd;
	h->fd = fd;
	return 0;
}

/* ---- stdout, stderr of the latest run: the row's name is the stream ---- */

static int stream_fd(struct node *n)
{
	return run_open_latest(n->sb, n->ctx, n->t->name);
}

static int stream_open(struct handle *h, int flags)
{
	(void)flags;
	return open_spooled(h, stream_fd(h->node), true);
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * Whether a reader of h at off follows on to the latest run: one opened
 * before the first run, one that starts over (tail -f after "file
 * truncated": the size it polls is the latest run's), and one at the end of
 * its run's output. Runs of one queue are one after another, so a newer
 * latest run means the one held has ended. Called with h->lock held.
 */
static bool follows(struct handle *h, off_t off)
{
	struct stat st;

	return h->fd < 0 || off == 0 || (fstat(h->fd, &st) == 0 && off >= st.st_size);
}

static void stream_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	char *buf = malloc(size ? size : 1);
	ssize_t got = 0;
	bool follow;
	int fd = -1;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&h->lock);
	follow = follows(h, off);
	pthread_mutex_unlock(&h->lock);
	if (follow)
		fd = stream_fd(h->node);      /* control/ is not called with a fusefs lock held */
	/* Under the lock: another read of this open file must not use an fd being replaced. */
	pthread_mutex_lock(&h->lock);
	if (fd >= 0 && (h->fd < 0 || !same_file(fd, h->fd))) {
		int old = h->fd;

		h->fd = fd;
		fd = old;
	}
	if (h->fd >= 0)
		got = pread(h->fd, buf, size, off);
	pthread_mutex_unlock(&h->lock);
	if (fd >= 0)
		close(fd);
	if (got < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

static int stream_stat(struct node *n, struct stat *st)
{
	return stat_spooled(stream_fd(n), st, true);
}

const struct sfile_ops stream_fops = { .open = stream_open, .read = stream_read, .stat = stream_stat };

/* ---- exit and result of the latest run ---- */

static int exit_open(struct handle *h, int flags)
{
	(void)flags;
	return open_spooled(h, run_open_latest(h->node->sb, h->node->ctx, "exit"), false);
}

static int exit_stat(struct node *n, struct stat *st)
{
	return stat_spooled(run_open_latest(n->sb, n->ctx, "exit"), st, false);
}

const struct sfile_ops exit_fops = { .open = exit_open, .stat = exit_stat };

static int result_open(struct handle *h, int flags)
{
	(void)flags;
	return open_spooled(h, run_open_latest(h->node->sb, h->node->ctx, "result"), true);
}

static int result_stat(struct node *n, struct stat *st)
{
	return stat_spooled(run_open_latest(n->sb, n->ctx, "result"), st, true);
}

const struct sfile_ops result_fops = { .open = result_open, .stat = result_stat };

/* ---- runs/N/NAME ---- */

static int run_file_fd(struct node *n)
{
	return run_open_file(n->sb, n->ctx, n->run, n->name);
}

static int run_file_open(struct handle *h, int flags)
{
	(void)flags;
	return open_spooled(h, run_file_fd(h->node), false);
}

static int run_file_stat(struct node *n, struct stat *st)
{
	return stat_spooled(run_file_fd(n), st, false);
}

const struct sfile_ops run_file_fops = { .open = run_file_open, .stat = run_file_stat };

/* ---- results/N-figure-K.png is runs/N/figure-K.png ---- */

static int figure_fd(struct node *n)
{
	const char *dash = strchr(n->name, '-');

	return dash ? run_open_file(n->sb, n->ctx, n->run, dash + 1) : -ENOENT;
}

static int figure_open(struct handle *h, int flags)
{
	(void)flags;
	return open_spooled(h, figure_fd(h->node), false);
}

static int figure_stat(struct node *n, struct stat *st)
{
	return stat_spooled(figure_fd(n), st, false);
}

const struct sfile_ops figure_fops = { .open = figure_open, .stat = figure_stat };
