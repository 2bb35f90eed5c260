/*
 * events.c - the mount-wide stream of lifecycle events (the root `events`
 * file): one line per event, e.g.
 *
 *     2026-11-30T10:00:00.123Z created box template=default
 *
 * Lines are kept twice: in memory (the last EV_MEM_MAX bytes, what readers
 * get, at stream offsets that only grow) and appended to STATE/events.log,
 * so a reader that comes late or a daemon restart loses nothing recent. The
 * log is bounded: past EV_FILE_MAX bytes it becomes events.log.1 (the one
 * before is dropped), and a start loads the tail of both.
 *
 * On disk each line starts with the owner of the sandbox the event is about
 * (a uid, or "-" for "anyone who may see the mount"): `OWNER LINE`, so that
 * readers can later be shown only their own sandboxes' events.
 *
 * Everything after the event word comes from users or sandboxes (names,
 * template names, error reasons): it is cut at EV_LINE_MAX and its control
 * bytes and backslashes are written as \xNN, so no one can forge a line.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EV_MEM_MAX (1u << 20)       /* bytes of lines readers can get */
#define EV_FILE_MAX (1u << 20)      /* bytes of events.log before it is rotated */
#define EV_LINE_MAX 1024            /* bytes of one line, newline included */

struct ev_rec {
	uint64_t off;                /* where the line starts in the stream */
	uint32_t len;
	uint32_t owner;              /* EV_OWNER_ANY or a uid */
};

struct ctl_events {
	/*
	 * Guards everything below. A leaf: taken alone, by any thread (an event
	 * comes from a ctl write, the reaper, a run worker); the only work done
	 * under it is the append to events.log (one write).
	 */
	pthread_mutex_t lock;
	char *text;                  /* bytes [base, base + len) of the stream */
	size_t len;
	uint64_t base;
	struct ev_rec *recs;         /* one per line in text, in order */
	size_t nrecs, caprecs;
	int fd;                      /* events.log, O_APPEND; -1 when it cannot be written */
	off_t file_size;
	char path[4200];
	void (*hook)(void *arg);     /* told after each new line (fusefs wakes its readers) */
	void *hook_arg;
	bool warned;                 /* a failed write was logged once */
};

/* Drops the older half of the kept lines, at a line boundary; lock held. */
static void trim_locked(struct ctl_events *ev)
{
	size_t keep = 0, cut;

	while (keep < ev->nrecs && ev->recs[keep].off - ev->base < ev->len / 2)
		keep++;
	if (keep == 0)
		return;
	cut = (size_t)(ev->recs[keep - 1].off + ev->recs[keep - 1].len - ev->base);
	memmove(ev->text, ev->text + cut, ev->len - cut);
	ev->len -= cut;
	ev->base += cut;
	memmove(ev->recs, ev->recs + keep, (ev->nrecs - keep) * sizeof(*ev->recs));
	ev->nrecs -= keep;
}

/* Keeps one line (with its newline) in memory; lock held. false: out of memory. */
static bool keep_locked(struct ctl_events *ev, const char *line, size_t n, uint32_t owner)
{
	while (ev->len + n > EV_MEM_MAX && ev->nrecs)
		trim_locked(ev);
	if (!ev->text && !(ev->text = malloc(EV_MEM_MAX)))
		return false;
	if (ev->nrecs == ev->caprecs) {
		size_t cap = ev->caprecs ? ev->caprecs * 2 : 256;
		struct ev_rec *grown = realloc(ev->recs, cap * sizeof(*grown));

		if (!grown)
			return false;
		ev->recs = grown;
		ev->caprecs = cap;
	}
	memcpy(ev->text + ev->len, line, n);
	ev->recs[ev->nrecs++] = (struct ev_rec){ .off = ev->base + ev->len, .len = (uint32_t)n, .owner = owner };
	ev->len += n;
	return true;
}

/* events.log -> events.log.1 once it is full; lock held. */
static void rotate_locked(struct ctl_events *ev)
{
	char old[4300];

	snprintf(old, sizeof(old), "%s.1", ev->path);
	if (rename(ev->path, old))
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot rotate '%s'", ev->path);
	close(ev->fd);
	ev->fd = open(ev->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	ev->file_size = 0;
}

static void append_file_locked(struct ctl_events *ev, const char *line, size_t n, uint32_t owner)
{
	char rec[EV_LINE_MAX + 16];
	int len;

	if (ev->fd < 0)
		return;
	if (ev->file_size + (off_t)n > (off_t)EV_FILE_MAX)
		rotate_locked(ev);
	if (owner == EV_OWNER_ANY)
		len = snprintf(rec, sizeof(rec), "- %.*s", (int)n, line);
	else
		len = snprintf(rec, sizeof(rec), "%u %.*s", owner, (int)n, line);
	if (ev->fd >= 0 && sbx_write_all(ev->fd, rec, (size_t)len) == 0) {
		ev->file_size += len;
		return;
	}
	if (!ev->warned)
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot write the events log '%s'", ev->path);
	ev->warned = true;
}

/* Copies src into dst (size bytes), control bytes and '\' as \xNN; returns the length. */
static size_t ev_escape(char *dst, size_t size, const char *src)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)src; *p && o + 5 < size; p++) {
		if (*p < ' ' || *p == 0x7f || *p == '\\')
			o += (size_t)snprintf(dst + o, size - o, "\\x%02x", *p);
		else
			dst[o++] = (char)*p;
	}
	dst[o] = '\0';
	return o;
}

/* The time stamp of a line: 2026-11-30T10:00:00.123Z (UTC). */
static void ev_stamp(char out[32])
{
	uint64_t ms = sbx_real_ms();
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

void events_emit_owned(struct sbx_ctl *ctl, uint32_t owner, const char *event, const char *name,
		       const char *fmt, ...)
{
	struct ctl_events *ev = ctl ? ctl->events : NULL;
	char stamp[32], raw[EV_LINE_MAX], safe_name[EV_LINE_MAX / 2], safe[EV_LINE_MAX], line[EV_LINE_MAX];
	void (*hook)(void *);
	void *hook_arg;
	va_list ap;
	int n;

	if (!ev)
		return;
	raw[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(raw, sizeof(raw), fmt, ap);
		va_end(ap);
	}
	ev_escape(safe_name, sizeof(safe_name), name ? name : "-");
	ev_escape(safe, sizeof(safe), raw);
	ev_stamp(stamp);
	n = snprintf(line, sizeof(line), "%s %s %s%s%s", stamp, event, safe_name, safe[0] ? " " : "", safe);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&ev->lock);
	keep_locked(ev, line, (size_t)n, owner);
	append_file_locked(ev, line, (size_t)n, owner);
	hook = ev->hook;
	hook_arg = ev->hook_arg;
	pthread_mutex_unlock(&ev->lock);
	/* -o log_level=info puts the lifecycle in the journal too. */
	sbx_log(strcmp(event, "error") == 0 ? SBX_LOG_WARNING : SBX_LOG_INFO, name, 0, "%s%s%s", event,
		safe[0] ? " " : "", safe);
	if (hook)
		hook(hook_arg);
}

/* Loads the lines of one log file into memory (a start); lock not needed yet. */
static void load_file(struct ctl_events *ev, const char *path, bool count_size)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || !(f = fdopen(fd, "r"))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		char *sp = memchr(line, ' ', (size_t)n);
		uint32_t owner = EV_OWNER_ANY;

		if (count_size)
			ev->file_size += n;
		/* A line cut by a crash (no newline) or longer than any we write is skipped. */
		if (!sp || line[n - 1] != '\n' || n > EV_LINE_MAX + 16)
			continue;
		if (line[0] != '-')
			owner = (uint32_t)strtoul(line, NULL, 10);
		keep_locked(ev, sp + 1, (size_t)(line + n - (sp + 1)), owner);
	}
	free(line);
	fclose(f);
}

int events_open(struct sbx_ctl *ctl, struct sbx_err *err)
{
	struct ctl_events *ev = calloc(1, sizeof(*ev));
	char old[4300];

	if (!ev)
		return sbx_err_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&ev->lock, NULL);
	snprintf(ev->path, sizeof(ev->path), "%s/events.log", ctl->state_root);
	snprintf(old, sizeof(old), "%s.1", ev->path);
	load_file(ev, old, false);
	load_file(ev, ev->path, true);
	ev->fd = open(ev->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (ev->fd < 0) {
		int e = errno;

		free(ev->text);
		free(ev->recs);
		pthread_mutex_destroy(&ev->lock);
		free(ev);
		return sbx_err_sys(err, e, "cannot open the events log '%s/events.log'", ctl->state_root);
	}
	ctl->events = ev;
	return 0;
}

void events_close(struct sbx_ctl *ctl)
{
	struct ctl_events *ev = ctl->events;

	if (!ev)
		return;
	ctl->events = NULL;
	if (ev->fd >= 0)
		close(ev->fd);
	free(ev->text);
	free(ev->recs);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
}

void ctl_set_events_hook(struct sbx_ctl *ctl, void (*hook)(void *arg), void *arg)
{
	struct ctl_events *ev = ctl->events;

	pthread_mutex_lock(&ev->lock);
	ev->hook = hook;
	ev->hook_arg = arg;
	pthread_mutex_unlock(&ev->lock);
}

uint64_t ctl_events_size(struct sbx_ctl *ctl)
{
	struct ctl_events *ev = ctl->events;
	uint64_t size;

	pthread_mutex_lock(&ev->lock);
	size = ev->base + ev->len;
	pthread_mutex_unlock(&ev->lock);
	return size;
}

size_t ctl_events_read(struct sbx_ctl *ctl, uint64_t off, char *buf, size_t size)
{
	struct ctl_events *ev = ctl->events;
	size_t n = 0, from;

	pthread_mutex_lock(&ev->lock);
	if (off < ev->base) {
		/* fell behind what is kept: empty lines stand for the dropped ones */
		n = ev->base - off < size ? (size_t)(ev->base - off) : size;
		memset(buf, '\n', n);
	} else {
		from = (size_t)(off - ev->base);
		if (from < ev->len)
			n = ev->len - from < size ? ev->len - from : size;
		if (n)
			memcpy(buf, ev->text + from, n);
	}
	pthread_mutex_unlock(&ev->lock);
	return n;
}
