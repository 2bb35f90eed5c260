/*
 * dk_watch.c - what a docker sandbox's code changes below /home/user, as it
 * happens (the watch_* ops).
 *
 * A container's files are an overlay whose upper directory usually sits on
 * the host's own filesystem, with every other container's, so the local
 * backend's way (a mark on the whole filesystem of the writable layer) would
 * report the whole host. Instead each directory below /home/user of the
 * container's merged view gets an inode mark in the process's fanotify group
 * (fanwatch.h): overlayfs reports those (since Linux 6.6) with a handle that
 * identifies the directory (AT_HANDLE_FID) and the overlay's own fsid, which
 * differs per container. A table maps each marked directory's handle to its
 * path; new directories are marked as they appear. Changes elsewhere are not
 * seen, so the watch is not "complete" and files/ is not cached on docker.
 *
 * The code inside decides how many directories there are: at most
 * DK_WATCH_DIRS directories are marked per sandbox, the rest unwatched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../fanwatch.h"
#include "../log.h"
#include "dk.h"

#ifndef AT_HANDLE_FID
#define AT_HANDLE_FID 0x200     /* Linux 6.5: a handle to identify, not to open */
#endif

#define DK_HOME "/home/user"
#define DK_WATCH_DIRS 8192
#define DK_WATCH_BUCKETS 1024
#define DK_FH_MAX 128
#define DK_WATCH_MASK (FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_MODIFY | FAN_ATTRIB | \
		       FAN_CLOSE_WRITE | FAN_ONDIR | FAN_EVENT_ON_CHILD)

struct dk_dir {
	struct dk_dir *next;         /* hash chain */
	int type;
	unsigned int len;
	unsigned char fh[DK_FH_MAX];
	char *path;                  /* inside the sandbox: "/home/user/d" */
};

struct dk_watch {
	struct fan_watch fw;         /* first: the group hands this back */
	struct dk_watch *next;       /* every watch, to find one by instance */
	struct sbx_instance *inst;
	sbx_change_fn fn;
	void *arg;
	int root;                    /* O_PATH of the merged "/" during a batch, else -1 */
	size_t ndirs;
	struct dk_dir *dirs[DK_WATCH_BUCKETS];
};

/* The list of watches; a leaf lock (events of a watch run under fanwatch's deliver lock). */
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dk_watch *watches;

/* ---- the table of marked directories ---- */

static unsigned int fh_hash(int type, const unsigned char *fh, unsigned int len)
{
	unsigned int h = 2166136261u ^ (unsigned int)type;

	for (unsigned int i = 0; i < len; i++)
		h = (h ^ fh[i]) * 16777619u;
	return h % DK_WATCH_BUCKETS;
}

static struct dk_dir *dir_find(struct dk_watch *w, const struct file_handle *fh)
{
	if (fh->handle_bytes > DK_FH_MAX)
		return NULL;
	for (struct dk_dir *d = w->dirs[fh_hash(fh->handle_type, fh->f_handle, fh->handle_bytes)]; d;
	     d = d->next)
		if (d->type == fh->handle_type && d->len == fh->handle_bytes &&
		    memcmp(d->fh, fh->f_handle, d->len) == 0)
			return d;
	return NULL;
}

static bool below(const char *path, const char *top)
{
	size_t n = strlen(top);

	return strncmp(path, top, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Forgets top and every directory below it (their marks go with their inodes). */
static void dir_forget(struct dk_watch *w, const char *top)
{
	for (size_t b = 0; b < DK_WATCH_BUCKETS; b++)
		for (struct dk_dir **pp = &w->dirs[b]; *pp;) {
			struct dk_dir *d = *pp;

			if (!below(d->path, top)) {
				pp = &d->next;
				continue;
			}
			*pp = d->next;
			free(d->path);
			free(d);
			w->ndirs--;
		}
}

/* A directory renamed: the paths of it and of everything below it change. */
static void dir_moved(struct dk_watch *w, const char *from, const char *to)
{
	size_t n = strlen(from);

	for (size_t b = 0; b < DK_WATCH_BUCKETS; b++)
		for (struct dk_dir *d = w->dirs[b]; d; d = d->next) {
			char *p;

			if (!below(d->path, from) || asprintf(&p, "%s%s", to, d->path + n) < 0)
				continue;
			free(d->path);
			d->path = p;
		}
}

/* Marks one directory (fd) and records it under path. */
static int dir_mark(struct dk_watch *w, int fd, const char *path)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[DK_FH_MAX];
	} h = { .fh.handle_bytes = DK_FH_MAX };
	struct sbx_err err = { 0 };
	struct dk_dir *d;
	int mnt;

	if (w->ndirs >= DK_WATCH_DIRS)
		return -ENOSPC;
	if (name_to_handle_at(fd, "", &h.fh, &mnt, AT_EMPTY_PATH | AT_HANDLE_FID))
		return -errno;
	if (dir_find(w, &h.fh))
		return 0;
	d = calloc(1, sizeof(*d));
	if (!d || !(d->path = strdup(path))) {
		free(d);
		return -ENOMEM;
	}
	d->type = h.fh.handle_type;
	d->len = h.fh.handle_bytes;
	memcpy(d->fh, h.fh.f_handle, d->len);
	if (fan_mark(FAN_MARK_ADD | FAN_MARK_INODE, DK_WATCH_MASK, fd, &err)) {
		free(d->path);
		free(d);
		return -err.code;
	}
	d->next = w->dirs[fh_hash(d->type, d->fh, d->len)];
	w->dirs[fh_hash(d->type, d->fh, d->len)] = d;
	w->ndirs++;
	return 0;
}

/* Forgets every directory. */
static void dir_clear(struct dk_watch *w)
{
	for (size_t b = 0; b < DK_WATCH_BUCKETS; b++)
		while (w->dirs[b]) {
			struct dk_dir *d = w->dirs[b];

			w->dirs[b] = d->next;
			free(d->path);
			free(d);
		}
	w->ndirs = 0;
}

static void deliver(struct dk_watch *w, enum sbx_change_kind kind, const char *path, const char *to,
		    bool dir, bool data);

/*
 * Marks the directory fd (path) and every directory below it; takes fd. Fails
 * when fd's mark does. With tell, each entry found is reported as created: a
 * directory that just appeared is marked a moment after it did, and what was
 * made in it meanwhile gave no event (so a quick change may show twice, never
 * not at all).
 */
static int mark_tree(struct dk_watch *w, int fd, const char *path, int depth, bool tell)
{
	struct dirent *de;
	DIR *dp;
	int r = dir_mark(w, fd, path);

	if (r || depth > 64 || !(dp = fdopendir(fd))) {
		close(fd);
		return r;
	}
	while ((de = readdir(dp))) {
		char *sub;
		int cfd;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strlen(path) + strlen(de->d_name) + 2 > PATH_MAX ||
		    asprintf(&sub, "%s/%s", path, de->d_name) < 0)
			continue;
		if (tell)
			deliver(w, SBX_CHANGE_CREATED, sub, NULL, de->d_type == DT_DIR, false);
		cfd = de->d_type != DT_DIR ? -1 :
		      openat(dirfd(dp), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd >= 0)
			mark_tree(w, cfd, sub, depth + 1, tell);
		free(sub);
	}
	closedir(dp);
	return 0;
}

/* Opens path inside the sandbox (root: O_PATH of its "/") as a directory, symlinks refused. */
static int open_dir_in(int root, const char *path)
{
	struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };

	return (int)syscall(SYS_openat2, root, path + 1, &how, sizeof(how));
}

/* ---- events ---- */

struct dk_name {
	bool ok;                     /* in a marked directory */
	char path[PATH_MAX * 2];
	const char *name;
};

struct dk_records {
	struct dk_watch *w;
	struct dk_name a, to;
};

static void on_record(void *arg, int kind, struct file_handle *fh, const char *name)
{
	struct dk_records *r = arg;
	struct dk_name *out = kind == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME ? &r->to : &r->a;
	struct dk_dir *d;

	if (kind != FAN_EVENT_INFO_TYPE_DFID_NAME && kind != FAN_EVENT_INFO_TYPE_OLD_DFID_NAME &&
	    kind != FAN_EVENT_INFO_TYPE_NEW_DFID_NAME)
		return;
	d = dir_find(r->w, fh);
	if (!d)
		return;
	out->name = name;
	if (strcmp(name, ".") == 0)
		snprintf(out->path, sizeof(out->path), "%s", d->path);
	else
		snprintf(out->path, sizeof(out->path), "%s/%s", d->path, name);
	out->ok = true;
}

static void deliver(struct dk_watch *w, enum sbx_change_kind kind, const char *path, const char *to,
		    bool dir, bool data)
{
	struct sbx_change ch = { .kind = kind, .path = path, .to = to, .dir = dir, .data = data,
				 .shown = true, .to_shown = to != NULL, .root_fd = w->root };

	w->fn(w->arg, &ch);
}

static void mark_new(struct dk_watch *w, const char *path)
{
	int fd = w->root >= 0 ? open_dir_in(w->root, path) : -1;

	if (fd >= 0)
		mark_tree(w, fd, path, 0, true);   /* a directory beyond the bound stays unwatched */
}

static void on_rename(struct dk_watch *w, struct dk_records *r, bool dir)
{
	if (r->a.ok && r->to.ok) {
		if (dir)
			dir_moved(w, r->a.path, r->to.path);
		deliver(w, SBX_CHANGE_RENAMED, r->a.path, r->to.path, dir, false);
	} else if (r->a.ok) {
		if (dir)
			dir_forget(w, r->a.path);
		deliver(w, SBX_CHANGE_DELETED, r->a.path, NULL, dir, false);
	} else if (r->to.ok) {
		deliver(w, SBX_CHANGE_CREATED, r->to.path, NULL, dir, false);
		if (dir)
			mark_new(w, r->to.path);
	}
}

static void dk_event(struct fan_watch *fw, const struct fanotify_event_metadata *m)
{
	struct dk_watch *w = (struct dk_watch *)fw;
	struct dk_records *r = calloc(1, sizeof(*r));
	bool dir = m->mask & FAN_ONDIR;
	struct sbx_err err = { 0 };

	if (!r)
		return;
	r->w = w;
	if (w->root < 0 && sbx_docker_backend.root_fd(w->inst, &w->root, &err))
		w->root = -1;
	fan_records(fw, m, on_record, r);
	if (m->mask & FAN_RENAME) {
		on_rename(w, r, dir);
	} else if (r->a.ok) {
		if (m->mask & FAN_CREATE) {
			deliver(w, SBX_CHANGE_CREATED, r->a.path, NULL, dir, false);
			if (dir)
				mark_new(w, r->a.path);
		}
		if (m->mask & FAN_DELETE) {
			if (dir)
				dir_forget(w, r->a.path);
			deliver(w, SBX_CHANGE_DELETED, r->a.path, NULL, dir, false);
		}
		if ((m->mask & (FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB)) && strcmp(r->a.name, ".") != 0)
			deliver(w, SBX_CHANGE_MODIFIED, r->a.path, NULL, dir,
				m->mask & (FAN_MODIFY | FAN_CLOSE_WRITE));
	}
	free(r);
}

static void dk_done(struct fan_watch *fw)
{
	struct dk_watch *w = (struct dk_watch *)fw;

	if (w->root >= 0)
		close(w->root);
	w->root = -1;
}

/* ---- the ops ---- */

/* Marks /home/user and below; the group must know w (its fsid) first. */
static int watch_arm(struct dk_watch *w, struct sbx_err *err)
{
	struct statfs sf;
	int root, home, r;

	r = sbx_docker_backend.root_fd(w->inst, &root, err);
	if (r)
		return r;
	home = open_dir_in(root, DK_HOME);
	close(root);
	if (home < 0)
		return sbx_err_sys(err, errno, "watching '%s' of sandbox '%s'", DK_HOME, w->inst->name);
	if (fstatfs(home, &sf)) {
		r = sbx_err_sys(err, errno, "watching sandbox '%s'", w->inst->name);
		close(home);
		return r;
	}
	w->fw.fsid = sf.f_fsid;
	r = fan_watch_add(&w->fw, err);
	if (r) {
		close(home);
		return r == -EEXIST ? sbx_err_set(err, ENOTSUP, "sandbox '%s': its overlay has no fsid of "
						  "its own", w->inst->name) : r;
	}
	r = mark_tree(w, home, DK_HOME, 0, false);
	if (r) {
		fan_watch_remove(&w->fw);
		dir_clear(w);
		return sbx_err_set(err, -r, "cannot watch '%s' of sandbox '%s' (overlayfs needs Linux 6.6)",
				   DK_HOME, w->inst->name);
	}
	return 0;
}

int dk_watch_start(struct sbx_instance *inst, sbx_change_fn fn, void *arg, bool *complete,
		   struct sbx_err *err)
{
	struct dk_watch *w;
	int r;

	*complete = false;
	if (!inst->be->eng.local)
		return sbx_err_set(err, ENOTSUP, "watch needs a local engine");
	w = calloc(1, sizeof(*w));
	if (!w)
		return sbx_err_set(err, ENOMEM, "out of memory");
	w->fw.event = dk_event;
	w->fw.done = dk_done;
	w->inst = inst;
	w->fn = fn;
	w->arg = arg;
	w->root = -1;
	r = watch_arm(w, err);
	if (r) {
		free(w);
		return r;
	}
	pthread_mutex_lock(&list_lock);
	w->next = watches;
	watches = w;
	pthread_mutex_unlock(&list_lock);
	return 0;
}

void dk_watch_sync(struct sbx_backend *be)
{
	(void)be;
	fan_sync();
}

static struct dk_watch *take(struct sbx_instance *inst)
{
	struct dk_watch *w = NULL;

	pthread_mutex_lock(&list_lock);
	for (struct dk_watch **pp = &watches; *pp; pp = &(*pp)->next)
		if ((*pp)->inst == inst) {
			w = *pp;
			*pp = w->next;
			break;
		}
	pthread_mutex_unlock(&list_lock);
	return w;
}

void dk_watch_end(struct sbx_instance *inst)
{
	struct dk_watch *w = take(inst);

	if (!w)
		return;
	fan_watch_remove(&w->fw);       /* no event of it is being handled after this */
	dir_clear(w);
	free(w);
}

void dk_watch_restart(struct sbx_instance *inst)
{
	struct dk_watch *w = take(inst);
	struct sbx_err err = { 0 };
	sbx_change_fn fn;
	bool complete;
	void *arg;

	if (!w)
		return;
	/* The container's filesystem was mounted again: new inodes, maybe a new fsid. */
	fn = w->fn;
	arg = w->arg;
	fan_watch_remove(&w->fw);
	dir_clear(w);
	free(w);
	if (dk_watch_start(inst, fn, arg, &complete, &err))
		sbx_log(SBX_LOG_WARNING, NULL, 0, "%s; `watch` of it stays empty", err.msg);
}

void dk_watch_fini(void)
{
	fan_fini();
}
