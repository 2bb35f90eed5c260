/*
 * watch.c - what code inside a sandbox changes, as it happens.
 *
 * The kernel tells a FUSE mount nothing of changes made behind it, so the
 * daemon watches each sandbox's writable layer itself: one fanotify group
 * (FAN_REPORT_DFID_NAME) with a filesystem mark on the filesystem that holds
 * the overlay's upper directory (found in /proc/self/mountinfo from the
 * sandbox's root). Every change made inside the sandbox lands there. For
 * each event the daemon
 *   - invalidates what the kernel caches of files/ (entries, attributes,
 *     pages), which is what makes long cache timeouts and keep_cache safe;
 *   - appends a line to the sandbox's `watch` stream when the path is below
 *     /home/user (see docs/files.md for the format).
 * Changes the daemon makes itself (through files/) are skipped: the kernel
 * already knows them, and `watch` reports what the sandbox's code did.
 *
 * A thread reads the events; watch_sync() applies every queued event at once
 * (a run's end calls it, so what a run wrote is fresh when close() returns).
 * Blocked readers of `watch` are kept requests answered when a line comes,
 * or with EINTR on an interrupt; no worker thread waits.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define WATCH_LOG_MAX (1u << 20)     /* bytes of lines kept per sandbox */
#define WATCH_HOME "/home/user"
#define WATCH_MASK (FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_MODIFY | FAN_ATTRIB | \
		    FAN_CLOSE_WRITE | FAN_ONDIR)

struct watch_reader {
	struct watch_reader *next;
	fuse_req_t req;              /* NULL once answered */
	off_t off;
	size_t size;
};

struct wsb {
	struct wsb *next;
	struct sandbox *sb;          /* a reference */
	bool ok;                     /* watched: the kernel may cache files/ */
	char upper[PATH_MAX];        /* the overlay's upper directory on the host */
	size_t upper_len;
	fsid_t fsid;
	/* the `watch` stream: bytes [base, end) are in log */
	char *log;
	size_t len, cap;
	uint64_t base;
	char last[PATH_MAX + 32];    /* the last line, to fold repeats */
	time_t last_at;
	struct watch_reader *readers;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;   /* the list, logs, readers */
static pthread_mutex_t proc_lock = PTHREAD_MUTEX_INITIALIZER;  /* one event consumer at a time */
static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static struct wsb *wsbs;
static int fan_fd = -1;
static pthread_t fan_thread;
static bool fan_running;
static int stop_pipe[2] = { -1, -1 };
static pid_t self_pid;

/* ---- the registry ---- */

static struct wsb *find_locked(struct sandbox *sb)
{
	for (struct wsb *w = wsbs; w; w = w->next)
		if (w->sb == sb)
			return w;
	return NULL;
}

bool watch_caching(struct sandbox *sb)
{
	struct wsb *w;
	bool ok;

	pthread_mutex_lock(&reg_lock);
	w = find_locked(sb);
	ok = w && w->ok;
	pthread_mutex_unlock(&reg_lock);
	return ok;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* The upperdir= of the overlay mount whose id is mnt_id. */
static int find_upper(uint64_t mnt_id, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *sep, *opt, *end;
		unsigned long long id;

		if (sscanf(line, "%llu", &id) != 1 || id != mnt_id)
			continue;
		sep = strstr(line, " - ");
		if (!sep || strncmp(sep, " - overlay ", 11))
			break;
		opt = strstr(sep, "upperdir=");
		if (!opt)
			break;
		opt += 9;
		end = opt + strcspn(opt, ", \n");
		*end = '\0';
		unescape(opt);
		if (snprintf(out, size, "%s", opt) < (int)size)
			ret = 0;
		break;
	}
	free(line);
	fclose(f);
	return ret;
}

static int watch_start_fan(void);

static void start_once_fn(void)
{
	if (watch_start_fan())
		fprintf(stderr, "sbxfs: warning: cannot watch sandboxes (fanotify): %m; files/ is not cached\n");
}

/* Sets up the mark for one sandbox; w->ok tells whether it worked. */
static void watch_setup(struct wsb *w)
{
	struct sbx_err err = { 0 };
	struct statx stx;
	struct statfs up, top;
	int rootfd;

	if (fan_fd < 0 || sandbox_root_fd(w->sb, &rootfd, &err))
		return;
	if (statx(rootfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) || !(stx.stx_mask & STATX_MNT_ID)) {
		close(rootfd);
		return;
	}
	close(rootfd);
	if (find_upper(stx.stx_mnt_id, w->upper, sizeof(w->upper)))
		return;
	w->upper_len = strlen(w->upper);
	/* A mark on the host's own filesystem would report the whole host: not that. */
	if (statfs(w->upper, &up) || statfs("/", &top) ||
	    memcmp(&up.f_fsid, &top.f_fsid, sizeof(up.f_fsid)) == 0)
		return;
	if (fanotify_mark(fan_fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, WATCH_MASK, AT_FDCWD, w->upper)) {
		fprintf(stderr, "sbxfs: warning: cannot watch '%s': %m\n", w->upper);
		return;
	}
	w->fsid = up.f_fsid;
	w->ok = true;
}

void watch_sandbox(struct sandbox *sb)
{
	struct wsb *w;

	pthread_once(&start_once, start_once_fn);
	pthread_mutex_lock(&reg_lock);
	w = find_locked(sb);
	pthread_mutex_unlock(&reg_lock);
	if (w || !sandbox_alive(sb))
		return;
	w = calloc(1, sizeof(*w));
	if (!w)
		return;
	w->sb = sb;
	sandbox_ref(sb);
	watch_setup(w);
	pthread_mutex_lock(&reg_lock);
	if (find_locked(sb)) {          /* another thread was first */
		pthread_mutex_unlock(&reg_lock);
		sandbox_put(sb);
		free(w);
		return;
	}
	w->next = wsbs;
	wsbs = w;
	pthread_mutex_unlock(&reg_lock);
}

/* ---- the stream ---- */

/* A copy of what a read at off gets now; reg_lock held. */
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
	pthread_mutex_lock(&reg_lock);
	buf = slice_locked(w, r->off, r->size, &n);
	pthread_mutex_unlock(&reg_lock);
	reply_slice(req, buf, n);
}

/* Takes the readers that can be answered (or all, at the end) off the list; reg_lock held. */
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

		pthread_mutex_lock(&reg_lock);
		req = ready->req;
		ready->req = NULL;
		pthread_mutex_unlock(&reg_lock);
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

	pthread_mutex_lock(&reg_lock);
	if (r->req) {
		r->req = NULL;
		answer = true;
	}
	pthread_mutex_unlock(&reg_lock);
	if (answer)
		fuse_reply_err(req, EINTR);
}

off_t watch_size(struct sandbox *sb)
{
	struct wsb *w;
	off_t size = 0;

	pthread_mutex_lock(&reg_lock);
	w = find_locked(sb);
	if (w)
		size = (off_t)(w->base + w->len);
	pthread_mutex_unlock(&reg_lock);
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
	pthread_mutex_lock(&reg_lock);
	if (!r->req) {
		pthread_mutex_unlock(&reg_lock);
		fuse_req_interrupt_func(req, NULL, NULL);
		free(r);
		return;
	}
	w = find_locked(sb);
	if (!w || !w->ok || (uint64_t)off < w->base + w->len) {
		/* data now, or an unwatched sandbox: an empty file */
		size_t n = 0;
		char *buf = w && w->ok ? slice_locked(w, off, size, &n) : calloc(1, 1);

		r->req = NULL;
		pthread_mutex_unlock(&reg_lock);
		fuse_req_interrupt_func(req, NULL, NULL);
		reply_slice(req, buf, n);
		free(r);
		return;
	}
	r->next = w->readers;
	w->readers = r;
	pthread_mutex_unlock(&reg_lock);
}

static void log_append(struct wsb *w, const char *line)
{
	size_t n = strlen(line);
	struct watch_reader *ready;
	time_t now = time(NULL);

	pthread_mutex_lock(&reg_lock);
	/* a write and its close, or many writes in a row: one line */
	if (strncmp(line, "modified ", 9) == 0 && strcmp(w->last, line) == 0 && now - w->last_at < 2) {
		pthread_mutex_unlock(&reg_lock);
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
	pthread_mutex_unlock(&reg_lock);
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

static bool under_home(const char *path)
{
	size_t n = strlen(WATCH_HOME);

	return strncmp(path, WATCH_HOME, n) == 0 && path[n] == '/' && path[n + 1];
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

/* ---- events ---- */

struct ev_name {
	bool ok;           /* decoded */
	bool in_upper;     /* below the upper directory (else: overlay's work dir) */
	char path[PATH_MAX * 2];   /* inside the sandbox: "/home/user/x" */
	char dir[PATH_MAX];        /* its directory inside the sandbox */
	const char *name;
};

/* Decodes one (directory handle, name) record into a path inside the sandbox. */
static void decode(struct wsb *w, int mfd, struct fanotify_event_info_fid *fid, struct ev_name *out)
{
	struct file_handle *fh = (struct file_handle *)fid->handle;
	char link[64], host[PATH_MAX];
	ssize_t len;
	int dfd;

	out->ok = false;
	out->name = (const char *)fh->f_handle + fh->handle_bytes;
	dfd = open_by_handle_at(mfd, fh, O_PATH | O_CLOEXEC);
	if (dfd < 0)
		return;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", dfd);
	len = readlink(link, host, sizeof(host) - 1);
	close(dfd);
	if (len < 0)
		return;
	host[len] = '\0';
	out->ok = true;
	out->in_upper = strncmp(host, w->upper, w->upper_len) == 0 &&
			(host[w->upper_len] == '\0' || host[w->upper_len] == '/');
	if (!out->in_upper)
		return;
	snprintf(out->dir, sizeof(out->dir), "%s", host[w->upper_len] ? host + w->upper_len : "/");
	if (strcmp(out->name, ".") == 0)
		snprintf(out->path, sizeof(out->path), "%s", out->dir);
	else
		snprintf(out->path, sizeof(out->path), "%s%s%s", out->dir,
			 strcmp(out->dir, "/") == 0 ? "" : "/", out->name);
}

/* The FUSE inode of a path inside the sandbox, if the kernel knows it; 0 if not. */
static fuse_ino_t ino_of(struct wsb *w, int rootfd, const char *path)
{
	struct open_how how = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	struct stat st;
	int fd;

	if (rootfd < 0)
		return 0;
	if (strcmp(path, "/") == 0)
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

static void inval_name(struct wsb *w, int rootfd, struct ev_name *e)
{
	fuse_ino_t parent = ino_of(w, rootfd, e->dir);

	if (!parent || !fs.se)
		return;
	if (strcmp(e->name, ".") != 0)
		fuse_lowlevel_notify_inval_entry(fs.se, parent, e->name, strlen(e->name));
	fuse_lowlevel_notify_inval_inode(fs.se, parent, 0, 0);
}

static void inval_file(struct wsb *w, int rootfd, struct ev_name *e, bool data)
{
	fuse_ino_t ino = ino_of(w, rootfd, e->path);

	if (ino && fs.se)
		fuse_lowlevel_notify_inval_inode(fs.se, ino, data ? 0 : -1, 0);
}

/* What a name overlayfs moved in from its work directory now is, in the upper dir. */
static const char *copied_in(struct wsb *w, struct ev_name *e, bool *dir)
{
	char host[PATH_MAX * 3], val[4];
	struct stat st;

	snprintf(host, sizeof(host), "%s%s", w->upper, e->path);
	if (lstat(host, &st))
		return NULL;
	*dir = S_ISDIR(st.st_mode);
	if (S_ISCHR(st.st_mode) && st.st_rdev == 0)
		return "deleted";           /* a whiteout over a file of the template */
	if (*dir)                           /* an opaque dir is a new one; else a copy-up */
		return getxattr(host, "trusted.overlay.opaque", val, sizeof(val)) > 0 ? "created" : NULL;
	return "modified";                  /* a copy-up, for a change that follows */
}

static bool is_whiteout(struct wsb *w, struct ev_name *e)
{
	char host[PATH_MAX * 3];
	struct stat st;

	snprintf(host, sizeof(host), "%s%s", w->upper, e->path);
	return lstat(host, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == 0;
}

static void handle_event(struct wsb *w, int mfd, int rootfd, struct fanotify_event_metadata *m)
{
	struct ev_name *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	char *p = (char *)(m + 1), *end = (char *)m + m->event_len;
	bool dir = m->mask & FAN_ONDIR, have_a = false, have_b = false, self = m->pid == self_pid;

	if (!a || !b)
		goto out;
	while (p + sizeof(struct fanotify_event_info_header) <= end) {
		struct fanotify_event_info_fid *fid = (struct fanotify_event_info_fid *)p;

		if (fid->hdr.len == 0)
			break;
		if (memcmp(&fid->fsid, &w->fsid, sizeof(w->fsid)) == 0) {
			if (fid->hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME ||
			    fid->hdr.info_type == FAN_EVENT_INFO_TYPE_OLD_DFID_NAME) {
				decode(w, mfd, fid, a);
				have_a = a->ok;
			} else if (fid->hdr.info_type == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME) {
				decode(w, mfd, fid, b);
				have_b = b->ok;
			}
		}
		p += fid->hdr.len;
	}
	if (m->mask & FAN_RENAME) {
		bool from_work = have_a && !a->in_upper, to_upper = have_b && b->in_upper;

		if (!self) {
			if (have_a && a->in_upper)
				inval_name(w, rootfd, a);
			if (to_upper)
				inval_name(w, rootfd, b);
		}
		if (self)
			goto out;
		if (from_work && to_upper && under_home(b->path)) {
			bool d = false;
			const char *what = copied_in(w, b, &d);

			if (what)
				emit(w, what, b->path, d, NULL, false);
		} else if (have_a && a->in_upper && to_upper) {
			bool ha = under_home(a->path), hb = under_home(b->path);

			if (ha && hb)
				emit(w, "renamed", a->path, dir, b->path, dir);
			else if (ha)
				emit(w, "deleted", a->path, dir, NULL, false);
			else if (hb)
				emit(w, "created", b->path, dir, NULL, false);
		}
		goto out;
	}
	if (!have_a || !a->in_upper)
		goto out;
	if (!self) {
		if (m->mask & (FAN_CREATE | FAN_DELETE))
			inval_name(w, rootfd, a);
		if (m->mask & (FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB))
			inval_file(w, rootfd, a, m->mask & (FAN_MODIFY | FAN_CLOSE_WRITE));
	}
	if (self || !under_home(a->path))
		goto out;
	if (m->mask & FAN_CREATE)
		emit(w, is_whiteout(w, a) ? "deleted" : "created", a->path, dir, NULL, false);
	if (m->mask & FAN_DELETE)
		emit(w, "deleted", a->path, dir, NULL, false);
	if ((m->mask & (FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB)) && strcmp(a->name, ".") != 0)
		emit(w, "modified", a->path, dir, NULL, false);
out:
	free(a);
	free(b);
}

/* The watched sandbox an event belongs to; reg_lock held. */
static struct wsb *owner_locked(struct fanotify_event_metadata *m)
{
	struct fanotify_event_info_fid *fid = (struct fanotify_event_info_fid *)(m + 1);

	if (m->event_len < sizeof(*m) + sizeof(*fid))
		return NULL;
	for (struct wsb *w = wsbs; w; w = w->next)
		if (w->ok && memcmp(&fid->fsid, &w->fsid, sizeof(w->fsid)) == 0)
			return w;
	return NULL;
}

/*
 * Handles one buffer of events; proc_lock held. The kernel packs events at
 * 4-byte boundaries while their header holds a 64-bit mask, so each event is
 * copied to an aligned buffer before it is read.
 */
static void handle_batch(char *buf, ssize_t len)
{
	static union {
		struct fanotify_event_metadata m;
		char bytes[8192];
	} ev;
	struct fanotify_event_metadata hdr;
	struct wsb *cur = NULL;
	int mfd = -1, rootfd = -1;
	size_t off = 0;

	while (off + sizeof(hdr) <= (size_t)len) {
		struct fanotify_event_metadata *m = &ev.m;
		struct sbx_err err = { 0 };
		struct wsb *w;

		memcpy(&hdr, buf + off, sizeof(hdr));
		if (hdr.event_len < sizeof(hdr) || off + hdr.event_len > (size_t)len)
			break;
		off += hdr.event_len;
		if (hdr.event_len > sizeof(ev.bytes))
			continue;
		memcpy(ev.bytes, buf + off - hdr.event_len, hdr.event_len);
		if (m->vers != FANOTIFY_METADATA_VERSION || (m->mask & FAN_Q_OVERFLOW))
			continue;
		pthread_mutex_lock(&reg_lock);
		w = owner_locked(m);
		pthread_mutex_unlock(&reg_lock);
		if (!w)
			continue;
		if (w != cur) {
			/* fds held only for this batch: they must not keep the sandbox's disks busy */
			if (mfd >= 0)
				close(mfd);
			if (rootfd >= 0)
				close(rootfd);
			rootfd = -1;
			cur = w;
			mfd = open(w->upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sandbox_root_fd(w->sb, &rootfd, &err))
				rootfd = -1;
		}
		if (mfd >= 0)
			handle_event(w, mfd, rootfd, m);
	}
	if (mfd >= 0)
		close(mfd);
	if (rootfd >= 0)
		close(rootfd);
}

/* Reads and handles what is queued; proc_lock held. Returns false when nothing was. */
static bool drain_locked(void)
{
	static char buf[64 * 1024] __attribute__((aligned(8)));
	ssize_t len = read(fan_fd, buf, sizeof(buf));

	if (len <= 0)
		return false;
	handle_batch(buf, len);
	return true;
}

void watch_sync(struct sandbox *sb)
{
	(void)sb;
	if (fan_fd < 0)
		return;
	pthread_mutex_lock(&proc_lock);
	while (drain_locked())
		;
	pthread_mutex_unlock(&proc_lock);
}

/* Ends a watched sandbox that left the list: its readers get end of file, then it is freed. */
static void wsb_end(struct wsb *w)
{
	struct watch_reader *ready;

	pthread_mutex_lock(&reg_lock);
	w->base += w->len;              /* nothing left to give: end of file */
	w->len = 0;
	ready = take_ready_locked(w, true);
	pthread_mutex_unlock(&reg_lock);
	answer_list(w, ready);
	sandbox_put(w->sb);
	free(w->log);
	free(w);
}

/* Forgets sandboxes that have died; their blocked readers get end of file. */
static void reap(void)
{
	struct wsb **pp, *dead = NULL;

	pthread_mutex_lock(&proc_lock);     /* no batch is using a wsb */
	pthread_mutex_lock(&reg_lock);
	for (pp = &wsbs; *pp;) {
		struct wsb *w = *pp;

		if (sandbox_alive(w->sb)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->next = dead;
		dead = w;
	}
	pthread_mutex_unlock(&reg_lock);
	while (dead) {
		struct wsb *w = dead;

		dead = w->next;
		wsb_end(w);
	}
	pthread_mutex_unlock(&proc_lock);
}

static void *watch_main(void *arg)
{
	struct pollfd pfd[2] = { { .fd = fan_fd, .events = POLLIN }, { .fd = stop_pipe[0], .events = POLLIN } };

	(void)arg;
	for (;;) {
		int n = poll(pfd, 2, 1000);

		if (pfd[1].revents)
			break;
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			pthread_mutex_lock(&proc_lock);
			drain_locked();
			pthread_mutex_unlock(&proc_lock);
		} else {
			reap();
		}
	}
	return NULL;
}

static int watch_start_fan(void)
{
	self_pid = getpid();
	fan_fd = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_UNLIMITED_QUEUE |
			       FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_CLOEXEC);
	if (fan_fd < 0)
		return -1;
	if (pipe2(stop_pipe, O_CLOEXEC) || pthread_create(&fan_thread, NULL, watch_main, NULL)) {
		close(fan_fd);
		fan_fd = -1;
		return -1;
	}
	fan_running = true;
	return 0;
}

void watch_stop(void)
{
	struct wsb *w;

	if (fan_running) {
		if (write(stop_pipe[1], "x", 1) != 1)
			pthread_cancel(fan_thread);
		pthread_join(fan_thread, NULL);
		fan_running = false;
	}
	/* No notifications after this: the session is going away. */
	pthread_mutex_lock(&proc_lock);
	if (fan_fd >= 0)
		close(fan_fd);
	fan_fd = -1;
	pthread_mutex_unlock(&proc_lock);
	pthread_mutex_lock(&reg_lock);
	w = wsbs;
	wsbs = NULL;
	pthread_mutex_unlock(&reg_lock);
	while (w) {
		struct wsb *next = w->next;

		wsb_end(w);
		w = next;
	}
	for (int i = 0; i < 2; i++)
		if (stop_pipe[i] >= 0)
			close(stop_pipe[i]);
}
