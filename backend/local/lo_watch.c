/*
 * lo_watch.c - what a local sandbox's code changes in its files, as it happens
 * (the watch_start/watch_sync/watch_stop ops).
 *
 * Every change made inside a local sandbox lands in its writable layer, an
 * ext4 image of its own (lo_disk.h), so a fanotify filesystem mark on that
 * image (the group of fanwatch.h) sees all of them. Each event is turned from
 * overlay terms (the upper directory, the work directory, whiteouts, opaque
 * directories) into changes of paths inside the sandbox; what is below
 * /home/user is what `watch` shows.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../fanwatch.h"
#include "lo_files.h"

#define LO_HOME "/home/user"
#define LO_WATCH_MASK (FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_MODIFY | FAN_ATTRIB | \
		       FAN_CLOSE_WRITE | FAN_ONDIR)

struct lo_watch {
	struct fan_watch fw;         /* first: the group hands this back */
	struct sbx_instance *in;
	sbx_change_fn fn;
	void *arg;
	/* what the events of one batch need; opened at its first event, closed by done() */
	int upper;                   /* the upper directory (lo_upper_fd) */
	char upper_path[PATH_MAX];   /* as /proc/self/fd shows it */
	size_t upper_len;
	int root;                    /* O_PATH of the sandbox's "/" */
};

/* Every lo_watch, to find one by instance; guarded by list_lock. */
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lo_watch **all;
static size_t nall, capall;

/* ---- decoding ---- */

struct lo_name {
	bool ok;                     /* decoded, below the upper directory */
	char path[PATH_MAX * 2];     /* inside the sandbox: "/home/user/x" */
	char rel[PATH_MAX * 2];      /* the same, relative to the upper directory: "home/user/x" */
	const char *name;            /* the entry's name ("." for the directory itself) */
};

static bool under_home(const char *path)
{
	size_t n = strlen(LO_HOME);

	return strncmp(path, LO_HOME, n) == 0 && path[n] == '/' && path[n + 1];
}

/* Decodes one (directory handle, name) record; out->ok false when outside the upper dir. */
static void decode(struct lo_watch *b, struct file_handle *fh, const char *name, struct lo_name *out)
{
	char link[64], host[PATH_MAX], dir[PATH_MAX];
	ssize_t len;
	int dfd;

	out->ok = false;
	out->name = name;
	dfd = open_by_handle_at(b->upper, fh, O_PATH | O_CLOEXEC);
	if (dfd < 0)
		return;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", dfd);
	len = readlink(link, host, sizeof(host) - 1);
	close(dfd);
	if (len < 0)
		return;
	host[len] = '\0';
	if (strncmp(host, b->upper_path, b->upper_len) ||
	    (host[b->upper_len] != '\0' && host[b->upper_len] != '/'))
		return;     /* the overlay's work directory */
	snprintf(dir, sizeof(dir), "%s", host[b->upper_len] ? host + b->upper_len : "/");
	if (strcmp(out->name, ".") == 0)
		snprintf(out->path, sizeof(out->path), "%s", dir);
	else
		snprintf(out->path, sizeof(out->path), "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/",
			 out->name);
	snprintf(out->rel, sizeof(out->rel), "%s", out->path[1] ? out->path + 1 : ".");
	out->ok = true;
}

static bool is_whiteout(struct lo_watch *b, struct lo_name *e)
{
	struct stat st;

	return fstatat(b->upper, e->rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISCHR(st.st_mode) &&
	       st.st_rdev == 0;
}

static bool is_opaque(struct lo_watch *b, struct lo_name *e)
{
	char val[4];
	int fd = openat(b->upper, e->rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	bool opaque;

	if (fd < 0)
		return false;
	opaque = fgetxattr(fd, "trusted.overlay.opaque", val, sizeof(val)) > 0;
	close(fd);
	return opaque;
}

static void deliver(struct lo_watch *b, enum sbx_change_kind kind, const char *path, bool dir,
		    bool data, bool shown)
{
	struct sbx_change ch = { .kind = kind, .path = path, .dir = dir, .data = data,
				 .shown = shown && under_home(path), .root_fd = b->root };

	b->fn(b->arg, &ch);
}

/*
 * A name overlayfs moved in from its work directory: a whiteout over a
 * template file (a delete), an opaque directory (a new one), or a copy-up
 * (a change to the file follows).
 */
static void copied_in(struct lo_watch *b, struct lo_name *e)
{
	struct stat st;

	if (fstatat(b->upper, e->rel, &st, AT_SYMLINK_NOFOLLOW))
		return;
	if (S_ISCHR(st.st_mode) && st.st_rdev == 0)
		deliver(b, SBX_CHANGE_DELETED, e->path, false, false, true);
	else if (S_ISDIR(st.st_mode))
		deliver(b, is_opaque(b, e) ? SBX_CHANGE_CREATED : SBX_CHANGE_MODIFIED, e->path, true,
			false, is_opaque(b, e));
	else
		deliver(b, SBX_CHANGE_MODIFIED, e->path, false, true, true);
}

static void on_rename(struct lo_watch *b, struct lo_name *from, struct lo_name *to, bool dir)
{
	struct sbx_change ch = { .kind = SBX_CHANGE_RENAMED, .dir = dir, .root_fd = b->root };

	if (!from->ok && to->ok) {
		copied_in(b, to);
	} else if (from->ok && to->ok) {
		ch.path = from->path;
		ch.to = to->path;
		ch.shown = under_home(from->path);
		ch.to_shown = under_home(to->path);
		b->fn(b->arg, &ch);
	} else if (from->ok) {
		/* into the work directory: gone from the sandbox's view, for the cache only */
		deliver(b, SBX_CHANGE_DELETED, from->path, dir, false, false);
	}
}

static void on_event(struct lo_watch *b, uint64_t mask, struct lo_name *a)
{
	bool dir = mask & FAN_ONDIR, self = strcmp(a->name, ".") == 0;

	if (mask & FAN_CREATE) {
		bool wh = is_whiteout(b, a);

		deliver(b, wh ? SBX_CHANGE_DELETED : SBX_CHANGE_CREATED, a->path, dir, false, true);
	}
	if (mask & FAN_DELETE)
		deliver(b, SBX_CHANGE_DELETED, a->path, dir, false, true);
	if (mask & (FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB))
		deliver(b, SBX_CHANGE_MODIFIED, a->path, dir, mask & (FAN_MODIFY | FAN_CLOSE_WRITE), !self);
}

struct lo_records {
	struct lo_watch *w;
	struct lo_name *a, *to;
	bool any;
};

static void on_record(void *arg, int kind, struct file_handle *fh, const char *name)
{
	struct lo_records *r = arg;
	struct lo_name *out = NULL;

	if (kind == FAN_EVENT_INFO_TYPE_DFID_NAME || kind == FAN_EVENT_INFO_TYPE_OLD_DFID_NAME)
		out = r->a;
	else if (kind == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME)
		out = r->to;
	if (!out)
		return;
	decode(r->w, fh, name, out);
	r->any = true;
}

static void lo_done(struct fan_watch *fw)
{
	struct lo_watch *w = (struct lo_watch *)fw;

	if (w->upper >= 0)
		close(w->upper);
	if (w->root >= 0)
		close(w->root);
	w->upper = w->root = -1;
}

/* Opens what events need: fds held for one batch only, so no mount stays busy. */
static bool lo_open(struct lo_watch *w)
{
	struct sbx_err err = { 0 };
	char link[64];
	ssize_t len;

	if (w->upper >= 0)
		return true;
	if (lo_upper_fd(w->in, &w->upper, &err) || sbx_local_backend.root_fd(w->in, &w->root, &err)) {
		lo_done(&w->fw);
		return false;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", w->upper);
	len = readlink(link, w->upper_path, sizeof(w->upper_path) - 1);
	if (len < 0) {
		lo_done(&w->fw);
		return false;
	}
	w->upper_path[len] = '\0';
	w->upper_len = (size_t)len;
	return true;
}

static void lo_event(struct fan_watch *fw, const struct fanotify_event_metadata *m)
{
	struct lo_watch *w = (struct lo_watch *)fw;
	struct lo_records r = { .w = w, .a = calloc(1, sizeof(*r.a)), .to = calloc(1, sizeof(*r.to)) };

	if (r.a && r.to && lo_open(w)) {
		fan_records(fw, m, on_record, &r);
		if (r.any && (m->mask & FAN_RENAME))
			on_rename(w, r.a, r.to, m->mask & FAN_ONDIR);
		else if (r.any && r.a->ok)
			on_event(w, m->mask, r.a);
	}
	free(r.a);
	free(r.to);
}

/* ---- the ops ---- */

/* Marks the filesystem of the sandbox's writable layer; fills w->fw.fsid. */
static int mark(struct lo_watch *w, struct sbx_err *err)
{
	struct statfs up, top;
	int fd, r;

	r = lo_upper_fd(w->in, &fd, err);
	if (r)
		return r;
	/* A mark on the host's own filesystem would report the whole host: not that. */
	if (fstatfs(fd, &up) || statfs("/", &top) || memcmp(&up.f_fsid, &top.f_fsid, sizeof(up.f_fsid)) == 0) {
		close(fd);
		return sbx_err_set(err, ENOTSUP, "the writable layer is not a filesystem of its own");
	}
	w->fw.fsid = up.f_fsid;
	r = fan_watch_add(&w->fw, err);
	if (r == 0) {
		r = fan_mark(FAN_MARK_ADD | FAN_MARK_FILESYSTEM, LO_WATCH_MASK, fd, err);
		if (r)
			fan_watch_remove(&w->fw);
	}
	close(fd);
	return r;
}

static int remember(struct lo_watch *w, struct sbx_err *err)
{
	int r = 0;

	pthread_mutex_lock(&list_lock);
	for (size_t i = 0; i < nall; i++)
		if (all[i]->in == w->in)
			r = sbx_err_set(err, EEXIST, "the sandbox is watched already");
	if (r == 0 && nall == capall) {
		size_t cap = capall ? capall * 2 : 16;
		struct lo_watch **grown = realloc(all, cap * sizeof(struct lo_watch *));

		if (!grown)
			r = sbx_err_set(err, ENOMEM, "out of memory");
		else {
			all = grown;
			capall = cap;
		}
	}
	if (r == 0)
		all[nall++] = w;
	pthread_mutex_unlock(&list_lock);
	return r;
}

int lo_watch_start(struct sbx_instance *in, sbx_change_fn fn, void *arg, bool *complete,
		   struct sbx_err *err)
{
	struct lo_watch *w = calloc(1, sizeof(*w));
	int r;

	*complete = false;
	if (!w)
		return sbx_err_set(err, ENOMEM, "out of memory");
	w->fw.event = lo_event;
	w->fw.done = lo_done;
	w->in = in;
	w->fn = fn;
	w->arg = arg;
	w->upper = w->root = -1;
	r = remember(w, err);
	if (r) {
		free(w);
		return r;
	}
	r = mark(w, err);
	if (r) {
		lo_watch_end(in);
		return r;
	}
	*complete = true;
	return 0;
}

void lo_watch_sync(struct sbx_backend *be)
{
	(void)be;
	fan_sync();
}

void lo_watch_end(struct sbx_instance *in)
{
	struct lo_watch *w = NULL;
	struct sbx_err err = { 0 };
	int fd;

	pthread_mutex_lock(&list_lock);
	for (size_t i = 0; i < nall; i++)
		if (all[i]->in == in) {
			w = all[i];
			all[i] = all[--nall];
			break;
		}
	pthread_mutex_unlock(&list_lock);
	if (!w)
		return;
	fan_watch_remove(&w->fw);       /* no event of it is being handled after this */
	if (lo_upper_fd(in, &fd, &err) == 0) {
		fan_mark(FAN_MARK_REMOVE | FAN_MARK_FILESYSTEM, LO_WATCH_MASK, fd, &err);
		close(fd);
	}
	free(w);
}

void lo_watch_fini(void)
{
	fan_fini();
	pthread_mutex_lock(&list_lock);
	free(all);
	all = NULL;
	nall = capall = 0;
	pthread_mutex_unlock(&list_lock);
}
