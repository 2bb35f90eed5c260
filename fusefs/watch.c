/*
 * watch.c - what code inside a sandbox changes, as it happens.
 *
 * The kernel tells a FUSE mount nothing of changes made behind it, so the
 * backend reports each change a sandbox's code makes to its files (the
 * watch_* ops; how it sees them is its own business). For each change the
 * daemon
 *   - invalidates what the kernel caches of files/ (entries, attributes,
 *     pages), which is what makes long cache timeouts and keep_cache safe
 *     when the backend reports every change (a "complete" watch);
 *   - appends a line to the sandbox's `watch` stream when the backend says
 *     the change is one the user sees (see docs/files.md for the format).
 * Changes the daemon makes itself (through files/) are not reported: the
 * kernel already knows them, and `watch` reports what the sandbox's code did.
 *
 * watch_sync() has the backend deliver every pending change at once (a run's
 * end calls it, so what a run wrote is fresh when close() returns). Blocked
 * readers of `watch` are kept requests answered when a line comes, or with
 * EINTR on an interrupt; no worker thread waits. A thread ends the streams of
 * sandboxes that died, once a second.
 */
#include "fs.h"
#include "../backend/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WATCH_LOG_MAX (1u << 20)     /* bytes of lines kept per sandbox */

struct watch_reader {
	struct watch_reader *next;
	fuse_req_t req;              /* NULL once answered */
	off_t off;
	size_t size;
};

struct wsb {
	struct wsb *next;
	struct sandbox *sb;          /* a reference */
	bool active;                 /* the backend reports its changes */
	bool ok;                     /* ...all of them: the kernel may cache files/ */
	/* the `watch` stream: bytes [base, end) are in log */
	char *log;
	size_t len, cap;
	uint64_t base;
	char last[PATH_MAX + 32];    /* the last line, to fold repeats */
	time_t last_at;
	struct watch_reader *readers;
};

/* The state lives in fs.watch (struct watch_state, fs.h). */
#define WS (&fs.watch)

void watch_init(void)
{
	pthread_mutex_init(&WS->lock, NULL);
	WS->stop_pipe[0] = -1;
	WS->stop_pipe[1] = -1;
}

/* ---- the registry ---- */

static struct wsb *find_locked(struct sandbox *sb)
{
	for (struct wsb *w = WS->list; w; w = w->next)
		if (w->sb == sb)
			return w;
	return NULL;
}

bool watch_caching(struct sandbox *sb)
{
	struct wsb *w;
	bool ok;

	pthread_mutex_lock(&WS->lock);
	w = find_locked(sb);
	ok = w && w->ok;
	pthread_mutex_unlock(&WS->lock);
	return ok;
}

static void on_change(void *arg, const struct sbx_change *ch);
static void reap_start(void);

/* Starts the backend's watch of one sandbox; w->active/ok tell what it gives. */
static void watch_setup(struct wsb *w)
{
	struct sbx_err err = { 0 };
	bool complete = false;
	int r = sandbox_watch_start(w->sb, on_change, w, &complete, &err);

	if (r && r != -ENOTSUP && r != -ENOENT)
		sbx_log(SBX_LOG_WARNING, NULL, 0, "cannot watch sandbox '%s': %s; files/ is not cached",
			sandbox_name(w->sb), err.msg);
	w->active = r == 0;
	w->ok = r == 0 && complete;
}

void watch_sandbox(struct sandbox *sb)
{
	struct wsb *w;

	reap_start();
	pthread_mutex_lock(&WS->lock);
	w = find_locked(sb);
	pthread_mutex_unlock(&WS->lock);
	if (w || !sandbox_alive(sb))
		return;
	w = calloc(1, sizeof(*w));
	if (!w)
		return;
	w->sb = sb;
	sandbox_ref(sb);
	watch_setup(w);
	pthread_mutex_lock(&WS->lock);
	if (find_locked(sb)) {          /* another thread was first */
		pthread_mutex_unlock(&WS->lock);
		if (w->active)
			sandbox_watch_stop(sb);
		sandbox_put(sb);
		free(w);
		return;
	}
	w->next = WS->list;
	WS->list = w;
	pthread_mutex_unlock(&WS->lock);
}

/* ---- the stream ---- */

/* A copy of what a read at off gets now; WS->lock held. */
static char *slice_locked(struct wsb *w, off_t off, size_t size, size_t *n)
{
	size_t from;
	char *buf;

	*n = 0;
	if ((uint64_t)off < w->base) {
		/* fell behind what is kept: empty lines stand for the dropped ones */
		*n = w->base - (uint64_t)off < size ? (size_t)(w->base - (uint64_t)off) : size;
		buf = malloc(*n ? *n : 1);
		if (buf)
			memset(buf, '\n', *n);
		return buf;
	}
	from = (size_t)((uint64_t)off - w->base);
	if (from < w->len)
		*n = w->len - from < size ? w->len - from : size;
	buf = malloc(*n ? *n : 1);
	if (buf && *n)
		memcpy(buf, w->log + from, *n);
	return buf;
}

static void reply_slice(fuse_req_t req, char *buf, size_t n)
{
	if (buf)
		fuse_reply_buf(req, buf, n);
	else
		fuse_reply_err(req, ENOMEM);
	free(buf);
}

static void reader_answer(struct wsb *w, struct watch_reader *r, fuse_req_t req)
{
	size_t n;
	char *buf;

	fuse_req_interrupt_func(req, NULL, NULL);   /* waits for a callback in flight */
	pthread_mutex_lock(&WS->lock);
	buf = slice_locked(w, r->off, r->size, &n);
	pthread_mutex_unlock(&WS->lock);
	reply_slice(req, buf, n);
}

/* Takes the readers that can be answered (or all, at the end) off the list; WS->lock held. */
static struct watch_reader *take_ready_locked(struct wsb *w, bool all)
{
	struct watch_reader *ready = NULL, **pp = &w->readers;

	while (*pp) {
		struct watch_reader *r = *pp;

		if (!r->req) {                  /* answered by an interrupt */
			*pp = r->next;
			free(r);
			continue;
		}
		if (all || (uint64_t)r->off < w->base + w->len) {
			*pp = r->next;
			r->next = ready;
			ready = r;
			continue;
		}
		pp = &r->next;
	}
	return ready;
}

static void answer_list(struct wsb *w, struct watch_reader *ready)
{
	while (ready) {
		struct watch_reader *next = ready->next;
		fuse_req_t req;

		pthread_mutex_lock(&WS->lock);
		req = ready->req;
		ready->req = NULL;
		pthread_mutex_unlock(&WS->lock);
		if (req)
			reader_answer(w, ready, req);
		free(ready);
		ready = next;
	}
}

static void on_reader_interrupt(fuse_req_t req, void *data)
{
	struct watch_reader *r = data;
	bool answer = false;

	pthread_mutex_lock(&WS->lock);
	if (r->req) {
		r->req = NULL;
		answer = true;
	}
	pthread_mutex_unlock(&WS->lock);
	if (answer)
		fuse_reply_err(req, EINTR);
}

off_t watch_size(struct sandbox *sb)
{
	struct wsb *w;
	off_t size = 0;

	pthread_mutex_lock(&WS->lock);
	w = find_locked(sb);
	if (w)
		size = (off_t)(w->base + w->len);
	pthread_mutex_unlock(&WS->lock);
	return size;
}

void watch_read(fuse_req_t req, struct sandbox *sb, size_t size, off_t off)
{
	struct watch_reader *r;
	struct wsb *w;

	watch_sandbox(sb);
	r = calloc(1, sizeof(*r));
	if (!r) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r->req = req;
	r->off = off;
	r->size = size;
	/* Armed first: if the caller is already interrupted, the callback answers now. */
	fuse_req_interrupt_func(req, on_reader_interrupt, r);
	pthread_mutex_lock(&WS->lock);
	if (!r->req) {
		pthread_mutex_unlock(&WS->lock);
		fuse_req_interrupt_func(req, NULL, NULL);
		free(r);
		return;
	}
	w = find_locked(sb);
	if (!w || !w->active || (uint64_t)off < w->base + w->len) {
		/* data now, or an unwatched sandbox: an empty file */
		size_t n = 0;
		char *buf = w && w->active ? slice_locked(w, off, size, &n) : calloc(1, 1);

		r->req = NULL;
		pthread_mutex_unlock(&WS->lock);
		fuse_req_interrupt_func(req, NULL, NULL);
		reply_slice(req, buf, n);
		free(r);
		return;
	}
	r->next = w->readers;
	w->readers = r;
	pthread_mutex_unlock(&WS->lock);
}

static void log_append(struct wsb *w, const char *line)
{
	size_t n = strlen(line);
	struct watch_reader *ready;
	time_t now = time(NULL);

	pthread_mutex_lock(&WS->lock);
	/* a write and its close, or many writes in a row: one line */
	if (strncmp(line, "modified ", 9) == 0 && strcmp(w->last, line) == 0 && now - w->last_at < 2) {
		pthread_mutex_unlock(&WS->lock);
		return;
	}
	snprintf(w->last, sizeof(w->last), "%s", line);
	w->last_at = now;
	if (w->len + n > w->cap) {
		size_t want = w->cap ? w->cap * 2 : 4096;

		while (want < w->len + n)
			want *= 2;
		if (want > WATCH_LOG_MAX)
			want = WATCH_LOG_MAX;
		if (want > w->cap) {
			char *grown = realloc(w->log, want);

			if (grown) {
				w->log = grown;
				w->cap = want;
			}
		}
	}
	if (w->len + n > w->cap) {
		/* full: drop the older half, at a line boundary */
		size_t cut = w->len / 2;
		char *nl = memchr(w->log + cut, '\n', w->len - cut);

		cut = nl ? (size_t)(nl - w->log) + 1 : w->len;
		memmove(w->log, w->log + cut, w->len - cut);
		w->len -= cut;
		w->base += cut;
	}
	if (w->len + n <= w->cap) {
		memcpy(w->log + w->len, line, n);
		w->len += n;
	}
	ready = take_ready_locked(w, false);
	pthread_mutex_unlock(&WS->lock);
	answer_list(w, ready);
}

/* Bytes of a path as a watch line shows them: space, control bytes and '\' as \xNN. */
static void escape(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < size; p++) {
		if (*p <= ' ' || *p == 0x7f || *p == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", *p);
		else
			out[o++] = (char)*p;
	}
	out[o] = '\0';
}

static void emit(struct wsb *w, const char *what, const char *path, bool dir, const char *to, bool to_dir)
{
	char a[PATH_MAX * 2], b[PATH_MAX * 2], line[PATH_MAX * 4 + 32];

	escape(path, a, sizeof(a));
	if (to) {
		escape(to, b, sizeof(b));
		snprintf(line, sizeof(line), "%s %s%s %s%s\n", what, a, dir ? "/" : "", b, to_dir ? "/" : "");
	} else {
		snprintf(line, sizeof(line), "%s %s%s\n", what, a, dir ? "/" : "");
	}
	log_append(w, line);
}

/* ---- changes ---- */

/* The FUSE inode of a path inside the sandbox, if the kernel knows it; 0 if not. */
static fuse_ino_t ino_of(struct wsb *w, int rootfd, const char *path)
{
	struct open_how how = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	struct stat st;
	int fd;

	if (rootfd < 0 || path[0] != '/')
		return 0;
	if (path[1] == '\0')
		fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	else
		fd = (int)syscall(SYS_openat2, rootfd, path + 1, &how, sizeof(how));
	if (fd < 0)
		return 0;
	if (fstat(fd, &st)) {
		close(fd);
		return 0;
	}
	close(fd);
	return node_find_pt(w->sb, st.st_dev, st.st_ino);
}

/* Drops the kernel's entry of path (and its directory's attributes and listing). */
static void inval_name(struct wsb *w, int rootfd, const char *path)
{
	char dir[PATH_MAX * 2];
	const char *name = strrchr(path, '/');
	fuse_ino_t parent;

	if (!name || !name[1] || !fs.se)
		return;
	snprintf(dir, sizeof(dir), "%.*s", name == path ? 1 : (int)(name - path), path);
	name++;
	parent = ino_of(w, rootfd, dir);
	if (!parent)
		return;
	fuse_lowlevel_notify_inval_entry(fs.se, parent, name, strlen(name));
	fuse_lowlevel_notify_inval_inode(fs.se, parent, 0, 0);
}

static void inval_file(struct wsb *w, int rootfd, const char *path, bool data)
{
	fuse_ino_t ino = ino_of(w, rootfd, path);

	if (ino && fs.se)
		fuse_lowlevel_notify_inval_inode(fs.se, ino, data ? 0 : -1, 0);
}

static void on_change(void *arg, const struct sbx_change *ch)
{
	static const char *const words[] = { [SBX_CHANGE_CREATED] = "created",
					     [SBX_CHANGE_DELETED] = "deleted",
					     [SBX_CHANGE_MODIFIED] = "modified" };
	struct wsb *w = arg;

	if (ch->kind == SBX_CHANGE_MODIFIED)
		inval_file(w, ch->root_fd, ch->path, ch->data);
	else
		inval_name(w, ch->root_fd, ch->path);
	if (ch->kind != SBX_CHANGE_RENAMED) {
		if (ch->shown)
			emit(w, words[ch->kind], ch->path, ch->dir, NULL, false);
		return;
	}
	inval_name(w, ch->root_fd, ch->to);
	if (ch->shown && ch->to_shown)
		emit(w, "renamed", ch->path, ch->dir, ch->to, ch->dir);
	else if (ch->shown)
		emit(w, "deleted", ch->path, ch->dir, NULL, false);
	else if (ch->to_shown)
		emit(w, "created", ch->to, ch->dir, NULL, false);
}

void watch_sync(struct sandbox *sb)
{
	sandbox_watch_sync(sb);
}

/*
 * Ends a watched sandbox that left the list: the backend stops calling, its
 * readers get end of file, then it is freed.
 */
static void wsb_end(struct wsb *w)
{
	struct watch_reader *ready;

	if (w->active)
		sandbox_watch_stop(w->sb);
	pthread_mutex_lock(&WS->lock);
	w->base += w->len;              /* nothing left to give: end of file */
	w->len = 0;
	ready = take_ready_locked(w, true);
	pthread_mutex_unlock(&WS->lock);
	answer_list(w, ready);
	sandbox_put(w->sb);
	free(w->log);
	free(w);
}

/* Forgets sandboxes that have died; their blocked readers get end of file. */
static void reap(void)
{
	struct wsb **pp, *dead = NULL;

	pthread_mutex_lock(&WS->lock);
	for (pp = &WS->list; *pp;) {
		struct wsb *w = *pp;

		if (sandbox_alive(w->sb)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->next = dead;
		dead = w;
	}
	pthread_mutex_unlock(&WS->lock);
	while (dead) {
		struct wsb *w = dead;

		dead = w->next;
		wsb_end(w);
	}
}

static void *reap_main(void *arg)
{
	struct pollfd pfd = { .fd = WS->stop_pipe[0], .events = POLLIN };

	(void)arg;
	while (poll(&pfd, 1, 1000) >= 0 && !pfd.revents)
		reap();
	return NULL;
}

/* Starts the reaper with the first watched sandbox. */
static void reap_start(void)
{
	pthread_mutex_lock(&WS->lock);
	if (WS->running || WS->stopped) {
		pthread_mutex_unlock(&WS->lock);
		return;
	}
	if (pipe2(WS->stop_pipe, O_CLOEXEC) == 0 &&
	    pthread_create(&WS->reaper, NULL, reap_main, NULL) == 0) {
		WS->running = true;
	} else {
		for (int i = 0; i < 2; i++) {
			if (WS->stop_pipe[i] >= 0)
				close(WS->stop_pipe[i]);
			WS->stop_pipe[i] = -1;
		}
	}
	pthread_mutex_unlock(&WS->lock);
}

void watch_stop(void)
{
	struct wsb *w;
	bool running;

	pthread_mutex_lock(&WS->lock);
	running = WS->running;
	WS->running = false;
	WS->stopped = true;
	pthread_mutex_unlock(&WS->lock);
	if (running) {
		if (write(WS->stop_pipe[1], "x", 1) != 1)
			pthread_cancel(WS->reaper);
		pthread_join(WS->reaper, NULL);
	}
	/* No notifications after this: the session is going away. */
	pthread_mutex_lock(&WS->lock);
	w = WS->list;
	WS->list = NULL;
	pthread_mutex_unlock(&WS->lock);
	while (w) {
		struct wsb *next = w->next;

		wsb_end(w);
		w = next;
	}
	for (int i = 0; i < 2; i++) {
		if (WS->stop_pipe[i] >= 0)
			close(WS->stop_pipe[i]);
		WS->stop_pipe[i] = -1;
	}
}
