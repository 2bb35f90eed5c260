/*
 * scratch.c - the store of scratch files (scratch.h): bytes in memory,
 * bounded per file, per directory and in total, dropped when left alone.
 * Every field below is guarded by fs.scratch.lock, a leaf lock.
 */
#include "scratch.h"
#include "../backend/util.h"
#include "../control/ctl_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ST (&fs.scratch)

struct scratch {
	struct scratch *next;
	struct sandbox *sb;       /* a reference; NULL in the root */
	char *ctx;                /* NULL outside contexts */
	char *name;               /* NULL once unlinked (kept while open) */
	char *data;
	size_t len;
	unsigned opens;
	uint64_t used_ms;         /* last access, monotonic */
	struct timespec mtime, ctime;
};

static bool same_dir(const struct scratch *s, const struct sandbox *sb, const char *ctx)
{
	return s->sb == sb && (s->ctx ? ctx && strcmp(s->ctx, ctx) == 0 : !ctx);
}

static struct scratch **find_locked(const struct sandbox *sb, const char *ctx, const char *name)
{
	for (struct scratch **pp = &ST->list; *pp; pp = &(*pp)->next)
		if (same_dir(*pp, sb, ctx) && strcmp((*pp)->name, name) == 0)
			return pp;
	return NULL;
}

static void scratch_free(struct scratch *s)
{
	if (s->sb)
		sandbox_put(s->sb);
	free(s->ctx);
	free(s->name);
	free(s->data);
	free(s);
}

/* Takes s off the list; it is freed now, or at its last close. Returns it when it must be freed. */
static struct scratch *unlink_locked(struct scratch **pp)
{
	struct scratch *s = *pp;

	*pp = s->next;
	s->next = NULL;
	free(s->name);
	s->name = NULL;
	if (s->opens)
		return NULL;
	ST->total -= s->len;
	return s;
}

static void free_list(struct scratch *dead)
{
	while (dead) {
		struct scratch *s = dead;

		dead = s->next;
		scratch_free(s);
	}
}

/* Drops what was left alone too long, and what belongs to a sandbox that is gone. */
static void sweep_locked(struct scratch **dead)
{
	uint64_t now = sbx_mono_ms();

	for (struct scratch **pp = &ST->list; *pp;) {
		struct scratch *s = *pp, *gone;
		bool stale = !s->opens && now - s->used_ms > ST->ttl_ms;

		if (!stale && (!s->sb || sandbox_alive(s->sb))) {
			pp = &s->next;
			continue;
		}
		gone = unlink_locked(pp);
		if (gone) {
			gone->next = *dead;
			*dead = gone;
		}
	}
}

static void touch(struct scratch *s, bool changed)
{
	s->used_ms = sbx_mono_ms();
	if (changed) {
		clock_gettime(CLOCK_REALTIME, &s->mtime);
		s->ctime = s->mtime;
	}
}

static size_t count_dir_locked(const struct sandbox *sb, const char *ctx)
{
	size_t n = 0;

	for (struct scratch *s = ST->list; s; s = s->next)
		n += same_dir(s, sb, ctx);
	return n;
}

static struct scratch *scratch_new(struct sandbox *sb, const char *ctx, const char *name)
{
	struct scratch *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->name = strdup(name);
	s->ctx = ctx ? strdup(ctx) : NULL;
	if (!s->name || (ctx && !s->ctx)) {
		free(s->name);
		free(s->ctx);
		free(s);
		return NULL;
	}
	s->sb = sb;
	if (sb)
		sandbox_ref(sb);
	touch(s, true);
	return s;
}

int scratch_create(struct sandbox *sb, const char *ctx, const char *name, bool excl)
{
	struct scratch *dead = NULL, *s = NULL;
	int ret = 0;

	pthread_mutex_lock(&ST->lock);
	sweep_locked(&dead);
	if (find_locked(sb, ctx, name))
		ret = excl ? -EEXIST : 0;
	else if (count_dir_locked(sb, ctx) >= SCRATCH_DIR_MAX)
		ret = -ENOSPC;
	else if (!(s = scratch_new(sb, ctx, name)))
		ret = -ENOMEM;
	if (s) {
		s->next = ST->list;
		ST->list = s;
	}
	pthread_mutex_unlock(&ST->lock);
	free_list(dead);
	return ret;
}

struct scratch *scratch_get(struct sandbox *sb, const char *ctx, const char *name)
{
	struct scratch **pp, *s = NULL;

	pthread_mutex_lock(&ST->lock);
	pp = find_locked(sb, ctx, name);
	if (pp) {
		s = *pp;
		s->opens++;
		touch(s, false);
	}
	pthread_mutex_unlock(&ST->lock);
	return s;
}

void scratch_put(struct scratch *s)
{
	bool gone;

	pthread_mutex_lock(&ST->lock);
	touch(s, false);
	gone = --s->opens == 0 && !s->name;
	if (gone)
		ST->total -= s->len;
	pthread_mutex_unlock(&ST->lock);
	if (gone)
		scratch_free(s);
}

bool scratch_exists(struct sandbox *sb, const char *ctx, const char *name)
{
	struct scratch *dead = NULL;
	bool found;

	pthread_mutex_lock(&ST->lock);
	sweep_locked(&dead);
	found = find_locked(sb, ctx, name) != NULL;
	pthread_mutex_unlock(&ST->lock);
	free_list(dead);
	return found;
}

char **scratch_names(struct sandbox *sb, const char *ctx)
{
	struct scratch *dead = NULL;
	char **names;
	size_t n = 0;

	pthread_mutex_lock(&ST->lock);
	sweep_locked(&dead);
	names = calloc(count_dir_locked(sb, ctx) + 1, sizeof(*names));
	for (struct scratch *s = ST->list; names && s; s = s->next) {
		if (!same_dir(s, sb, ctx))
			continue;
		names[n] = strdup(s->name);
		if (!names[n++]) {
			ctl_strv_free(names);
			names = NULL;
		}
	}
	pthread_mutex_unlock(&ST->lock);
	free_list(dead);
	return names;
}

int scratch_stat(struct sandbox *sb, const char *ctx, const char *name, struct stat *st)
{
	struct scratch **pp;

	pthread_mutex_lock(&ST->lock);
	pp = find_locked(sb, ctx, name);
	if (pp) {
		st->st_size = (off_t)(*pp)->len;
		st->st_mtim = (*pp)->mtime;
		st->st_ctim = (*pp)->ctime;
	}
	pthread_mutex_unlock(&ST->lock);
	return pp ? 0 : -ENOENT;
}

size_t scratch_read(struct scratch *s, char *buf, size_t size, off_t off)
{
	size_t got = 0;

	pthread_mutex_lock(&ST->lock);
	if (off >= 0 && (size_t)off < s->len) {
		got = s->len - (size_t)off < size ? s->len - (size_t)off : size;
		memcpy(buf, s->data + off, got);
	}
	touch(s, false);
	pthread_mutex_unlock(&ST->lock);
	return got;
}

/* Grows or shrinks s to len bytes (zeros added), within the caps. */
static int resize_locked(struct scratch *s, size_t len)
{
	char *grown;

	if (len > SCRATCH_FILE_MAX)
		return -EFBIG;
	if (len > s->len && len - s->len > SCRATCH_TOTAL_MAX - ST->total)
		return -ENOSPC;
	grown = realloc(s->data, len ? len : 1);
	if (!grown)
		return -ENOMEM;
	if (len > s->len)
		memset(grown + s->len, 0, len - s->len);
	ST->total = ST->total - s->len + len;
	s->data = grown;
	s->len = len;
	return 0;
}

int scratch_write(struct scratch *s, const char *buf, size_t size, off_t off)
{
	int ret = 0;

	if (off < 0 || (size_t)off > SCRATCH_FILE_MAX || size > SCRATCH_FILE_MAX - (size_t)off)
		return -EFBIG;
	pthread_mutex_lock(&ST->lock);
	if ((size_t)off + size > s->len)
		ret = resize_locked(s, (size_t)off + size);
	if (!ret && size)
		memcpy(s->data + off, buf, size);
	if (!ret)
		touch(s, true);
	pthread_mutex_unlock(&ST->lock);
	return ret;
}

int scratch_truncate(struct scratch *s, off_t size)
{
	int ret;

	if (size < 0)
		return -EINVAL;
	pthread_mutex_lock(&ST->lock);
	ret = resize_locked(s, (size_t)size);
	if (!ret)
		touch(s, true);
	pthread_mutex_unlock(&ST->lock);
	return ret;
}

int scratch_unlink(struct sandbox *sb, const char *ctx, const char *name)
{
	struct scratch **pp, *gone = NULL;

	pthread_mutex_lock(&ST->lock);
	pp = find_locked(sb, ctx, name);
	if (pp)
		gone = unlink_locked(pp);
	pthread_mutex_unlock(&ST->lock);
	if (gone)
		scratch_free(gone);
	return pp ? 0 : -ENOENT;
}

int scratch_rename(struct sandbox *sb, const char *ctx, const char *name, const char *newname, bool noreplace)
{
	struct scratch **pp, **old, *gone = NULL;
	char *copy = strdup(newname);
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&ST->lock);
	pp = find_locked(sb, ctx, name);
	old = find_locked(sb, ctx, newname);
	if (!pp)
		ret = -ENOENT;
	else if (old && noreplace)
		ret = -EEXIST;
	else if (old != pp) {
		struct scratch *s = *pp;

		if (old)
			gone = unlink_locked(old);    /* s stays on the list: its pointer is still good */
		free(s->name);
		s->name = copy;
		copy = NULL;
		touch(s, false);
		clock_gettime(CLOCK_REALTIME, &s->ctime);
	}
	pthread_mutex_unlock(&ST->lock);
	free(copy);
	if (gone)
		scratch_free(gone);
	return ret;
}

int scratch_take(struct sandbox *sb, const char *ctx, const char *name, char **data, size_t *len)
{
	struct scratch **pp, *gone = NULL;
	int ret = -ENOENT;

	pthread_mutex_lock(&ST->lock);
	pp = find_locked(sb, ctx, name);
	if (pp) {
		*len = (*pp)->len;
		*data = malloc(*len ? *len : 1);
		ret = *data ? 0 : -ENOMEM;
		if (*data && *len)
			memcpy(*data, (*pp)->data, *len);
		gone = unlink_locked(pp);
	}
	pthread_mutex_unlock(&ST->lock);
	if (gone)
		scratch_free(gone);
	return ret;
}

void scratch_sweep(void)
{
	struct scratch *dead = NULL;

	pthread_mutex_lock(&ST->lock);
	sweep_locked(&dead);
	pthread_mutex_unlock(&ST->lock);
	free_list(dead);
}

void scratch_free_all(void)
{
	struct scratch *dead;

	pthread_mutex_lock(&ST->lock);
	dead = ST->list;
	ST->list = NULL;
	ST->total = 0;
	pthread_mutex_unlock(&ST->lock);
	free_list(dead);
}
