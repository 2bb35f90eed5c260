/*
 * synth.c - the synthetic files: the mount root, templates/, and each
 * sandbox's ctl, status, info, metrics, env, run.*, stdout, stderr, exit,
 * wait, stdin and runs/. They map a path to a control-plane call and back.
 *
 * Synthetic files are direct_io with size 0 where the size is not known, and
 * their attributes are never cached, so every read sees the present state.
 */
#include "fs.h"
#include "pending.h"
#include "../control/ctl_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sbx_file {
	const char *name;
	enum node_kind kind;
	int lang;
};

static const struct sbx_file sbx_files[] = {
	{ "ctl", N_SBX_CTL, -1 },       { "status", N_SBX_STATUS, -1 },
	{ "info", N_SBX_INFO, -1 },     { "metrics", N_SBX_METRICS, -1 },
	{ "env", N_SBX_ENV, -1 },       { "run.py", N_SBX_RUN, RUN_PYTHON },
	{ "run.js", N_SBX_RUN, RUN_NODE }, { "run.sh", N_SBX_RUN, RUN_BASH },
	{ "stdout", N_SBX_STDOUT, -1 }, { "stderr", N_SBX_STDERR, -1 },
	{ "exit", N_SBX_EXIT, -1 },     { "wait", N_SBX_WAIT, -1 },
	{ "stdin", N_SBX_STDIN, -1 },   { "runs", N_RUNS, -1 },
	{ "watch", N_SBX_WATCH, -1 },
	{ "contexts", N_CONTEXTS, -1 },
	{ "files", N_PT, -1 },
};
#define SBX_FILES_COUNT (sizeof(sbx_files) / sizeof(sbx_files[0]))

/* contexts/CTX/: the same kinds as a sandbox's, with the node's ctx set. */
static const struct sbx_file ctx_files[] = {
	{ "run.py", N_SBX_RUN, RUN_PYTHON }, { "run.js", N_SBX_RUN, RUN_NODE },
	{ "run.sh", N_SBX_RUN, RUN_BASH },   { "stdout", N_SBX_STDOUT, -1 },
	{ "stderr", N_SBX_STDERR, -1 },      { "exit", N_SBX_EXIT, -1 },
	{ "wait", N_SBX_WAIT, -1 },          { "stdin", N_SBX_STDIN, -1 },
	{ "result", N_CTX_RESULT, -1 },      { "runs", N_RUNS, -1 },
	{ "results", N_RESULTS, -1 },
};
#define CTX_FILES_COUNT (sizeof(ctx_files) / sizeof(ctx_files[0]))

static const char *const run_file_names[] = { "code", "stdout", "stderr", "exit", "info" };
#define RUN_FILES_COUNT (sizeof(run_file_names) / sizeof(run_file_names[0]))

static bool is_dir_kind(enum node_kind k)
{
	return k == N_ROOT || k == N_TEMPLATES || k == N_SBX || k == N_RUNS || k == N_RUN || k == N_CONTEXTS ||
	       k == N_CTX || k == N_RESULTS;
}

static bool is_writable_kind(enum node_kind k)
{
	return k == N_ROOT_CTL || k == N_SBX_CTL || k == N_SBX_ENV || k == N_SBX_RUN || k == N_SBX_STDIN;
}

static const char *latest_which(enum node_kind k)
{
	return k == N_SBX_STDOUT ? "stdout" : k == N_SBX_STDERR ? "stderr" : "exit";
}

/* The spooled file behind a node, if it has one: fd or negative errno. */
static int node_backing_fd(struct node *n)
{
	switch (n->kind) {
	case N_SBX_STDOUT:
	case N_SBX_STDERR:
	case N_SBX_EXIT:
		return run_open_latest(n->sb, n->ctx, latest_which(n->kind));
	case N_RUN_FILE:
		return run_open_file(n->sb, n->ctx, n->run, n->name);
	case N_CTX_RESULT:
		return run_open_latest(n->sb, n->ctx, "result");
	case N_RESULT_FILE:
		/* "N-figure-K.png" is runs/N/figure-K.png */
		return run_open_file(n->sb, n->ctx, n->run, strchr(n->name, '-') + 1);
	default:
		return -ENODATA;
	}
}

int synth_stat(struct node *n, struct stat *st)
{
	struct timespec now;

	memset(st, 0, sizeof(*st));
	clock_gettime(CLOCK_REALTIME, &now);
	st->st_ino = node_ino(n);
	st->st_uid = fs.uid;
	st->st_gid = fs.gid;
	st->st_atim = st->st_mtim = st->st_ctim = now;
	st->st_blksize = 4096;
	if (n->sb && !sandbox_alive(n->sb))
		return -ENOENT;
	if (is_dir_kind(n->kind)) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	st->st_mode = S_IFREG | (is_writable_kind(n->kind) ? 0644 : 0444);
	st->st_nlink = 1;
	if (n->kind == N_ROOT_README)
		st->st_size = (off_t)strlen(root_readme);
	if (n->kind == N_SBX_WATCH)
		st->st_size = watch_size(n->sb);
	if (n->kind == N_SBX_STDOUT || n->kind == N_SBX_STDERR || n->kind == N_SBX_EXIT ||
	    n->kind == N_RUN_FILE || n->kind == N_CTX_RESULT || n->kind == N_RESULT_FILE) {
		struct stat real;
		int fd = node_backing_fd(n);

		if (fd == -ENOENT && n->kind != N_SBX_EXIT && n->kind != N_RUN_FILE && n->kind != N_RESULT_FILE)
			return 0;       /* stdout/stderr before the first run, result without one: empty */
		if (fd < 0)
			return fd;
		if (fstat(fd, &real) == 0) {
			st->st_size = real.st_size;
			st->st_mtim = real.st_mtim;
			st->st_ctim = real.st_ctim;
		}
		close(fd);
	}
	return 0;
}

/*
 * How long the kernel may keep a name. Names that exist as long as their
 * directory does (a sandbox's fixed files, contexts/, a context) are kept a
 * second: a kill invalidates NAME and with it everything below, and mkdir and
 * rmdir of a context go through the kernel. Names that come and go on the
 * daemon's side (exit, runs/N, result) are asked again every time.
 */
static double synth_entry_timeout(const struct node *n)
{
	switch (n->kind) {
	case N_ROOT_README:
	case N_ROOT_CTL:
	case N_ROOT_ERRORS:
	case N_TEMPLATES:
	case N_SBX:
	case N_SBX_CTL:
	case N_SBX_STATUS:
	case N_SBX_INFO:
	case N_SBX_METRICS:
	case N_SBX_ENV:
	case N_SBX_RUN:
	case N_SBX_STDOUT:
	case N_SBX_STDERR:
	case N_SBX_WAIT:
	case N_SBX_STDIN:
	case N_SBX_WATCH:
	case N_RUNS:
	case N_CONTEXTS:
	case N_CTX:
	case N_RESULTS:
		return 1.0;
	default:
		return 0;
	}
}

/*
 * And its attributes: directories and the files whose size is always 0 keep
 * them a second; files that grow (stdout, stderr, watch: `tail -f` follows
 * their size) or appear (exit) never.
 */
static double synth_timeout(const struct node *n)
{
	switch (n->kind) {
	case N_SBX_STDOUT:
	case N_SBX_STDERR:
	case N_SBX_WATCH:
		return 0;
	default:
		return synth_entry_timeout(n);
	}
}

static void reply_entry(fuse_req_t req, struct node *n)
{
	struct fuse_entry_param e;
	int ret;

	memset(&e, 0, sizeof(e));
	ret = synth_stat(n, &e.attr);
	if (ret) {
		node_forget(n, 1);
		fuse_reply_err(req, -ret);
		return;
	}
	e.ino = node_ino(n);
	e.attr_timeout = synth_timeout(n);
	e.entry_timeout = synth_entry_timeout(n);
	if (fuse_reply_entry(req, &e) == -ENOENT)
		node_forget(n, 1);
}

static bool template_exists(const char *name)
{
	const struct sbx_template_info *const *t = ctl_templates(fs.ctl);

	for (; t && *t; t++)
		if (strcmp((*t)->name, name) == 0)
			return true;
	return false;
}

/* The files a runs/N/ may hold. */
static bool run_file_known(const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < RUN_FILES_COUNT; i++)
		if (strcmp(name, run_file_names[i]) == 0)
			return true;
	if (strcmp(name, "result") == 0 || strcmp(name, "stdin") == 0)
		return true;
	return len > 11 && strncmp(name, "figure-", 7) == 0 && strcmp(name + len - 4, ".png") == 0 &&
	       !strchr(name, '/');
}

static int run_number(const char *name, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!name[0] || name[0] == '0')
		return -ENOENT;
	v = strtoull(name, &end, 10);
	if (*end)
		return -ENOENT;
	*out = v;
	return 0;
}

void synth_lookup(fuse_req_t req, struct node *parent, const char *name)
{
	struct sandbox *sb = parent->sb;
	struct node *n = NULL;

	switch (parent->kind) {
	case N_ROOT:
		if (strcmp(name, "README") == 0)
			n = node_synth(parent, name, N_ROOT_README, NULL, -1, 0);
		else if (strcmp(name, "ctl") == 0)
			n = node_synth(parent, name, N_ROOT_CTL, NULL, -1, 0);
		else if (strcmp(name, "errors") == 0)
			n = node_synth(parent, name, N_ROOT_ERRORS, NULL, -1, 0);
		else if (strcmp(name, "templates") == 0)
			n = node_synth(parent, name, N_TEMPLATES, NULL, -1, 0);
		else {
			sb = ctl_sandbox_get(fs.ctl, name);
			if (!sb)
				goto out_noent;
			n = node_synth(parent, name, N_SBX, sb, -1, 0);
			sandbox_put(sb);
		}
		break;
	case N_TEMPLATES:
		if (!template_exists(name))
			goto out_noent;
		n = node_synth(parent, name, N_TEMPLATE, NULL, -1, 0);
		break;
	case N_SBX:
		if (!sandbox_alive(sb))
			goto out_noent;
		watch_sandbox(sb);      /* files/ caching and `watch` start with the first look */
		for (size_t i = 0; i < SBX_FILES_COUNT; i++) {
			const struct sbx_file *f = &sbx_files[i];

			if (strcmp(f->name, name))
				continue;
			if (f->kind == N_PT) {
				struct fuse_entry_param e;
				int ret = pt_files_root(parent, &e);

				if (ret) {
					fuse_reply_err(req, -ret);
					return;
				}
				fuse_reply_entry(req, &e);
				return;
			}
			if (f->kind == N_SBX_EXIT) {
				int fd;

				/* The notifier creates `exit` through the mount so watchers see it appear. */
				if (notify_is_self(req))
					goto out_noent;
				fd = run_open_latest(sb, NULL, "exit");
				if (fd < 0)
					goto out_noent;
				close(fd);
			}
			n = node_synth(parent, name, f->kind, sb, f->lang, 0);
			break;
		}
		if (!n)
			goto out_noent;
		break;
	case N_RUNS: {
		uint64_t num;
		int fd;

		if (run_number(name, &num))
			goto out_noent;
		fd = run_open_file(sb, parent->ctx, num, "code");
		if (fd < 0)
			goto out_noent;
		close(fd);
		n = node_synth(parent, name, N_RUN, sb, -1, num);
		break;
	}
	case N_RUN: {
		int fd = -ENOENT;

		if (run_file_known(name))
			fd = run_open_file(sb, parent->ctx, parent->run, name);
		if (fd < 0)
			goto out_noent;
		close(fd);
		n = node_synth(parent, name, N_RUN_FILE, sb, -1, parent->run);
		break;
	}
	case N_CONTEXTS:
		if (!ctx_exists(sb, name))
			goto out_noent;
		n = node_synth(parent, name, N_CTX, sb, -1, 0);
		break;
	case N_CTX:
		if (!ctx_exists(sb, parent->ctx))
			goto out_noent;
		for (size_t i = 0; i < CTX_FILES_COUNT; i++) {
			const struct sbx_file *f = &ctx_files[i];

			if (strcmp(f->name, name))
				continue;
			if (f->kind == N_SBX_EXIT) {
				int fd;

				if (notify_is_self(req))
					goto out_noent;
				fd = run_open_latest(sb, parent->ctx, "exit");
				if (fd < 0)
					goto out_noent;
				close(fd);
			}
			n = node_synth(parent, name, f->kind, sb, f->lang, 0);
			break;
		}
		if (!n)
			goto out_noent;
		break;
	case N_RESULTS: {
		char *dash = strchr(name, '-'), numtext[32];
		uint64_t num;
		int fd;

		if (!dash || (size_t)(dash - name) >= sizeof(numtext) || strncmp(dash + 1, "figure-", 7))
			goto out_noent;
		memcpy(numtext, name, (size_t)(dash - name));
		numtext[dash - name] = '\0';
		if (run_number(numtext, &num) || !run_file_known(dash + 1))
			goto out_noent;
		fd = run_open_file(sb, parent->ctx, num, dash + 1);
		if (fd < 0)
			goto out_noent;
		close(fd);
		n = node_synth(parent, name, N_RESULT_FILE, sb, -1, num);
		break;
	}
	default:
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_entry(req, n);
	return;

out_noent:
	fuse_reply_err(req, ENOENT);
}

void synth_getattr(fuse_req_t req, struct node *n)
{
	struct stat st;
	int ret = synth_stat(n, &st);

	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, synth_timeout(n));
}

void synth_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set)
{
	/* Truncation of a writable file is what `>` does before writing: accept it. */
	if ((to_set & FUSE_SET_ATTR_SIZE) && !is_writable_kind(n->kind)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* `: > stdin` empties it: the truncation is the whole write. */
	if ((to_set & FUSE_SET_ATTR_SIZE) && n->kind == N_SBX_STDIN && attr->st_size == 0)
		run_set_stdin(n->sb, n->ctx, "", 0);
	synth_getattr(req, n);
}

/* ---- readdir ---- */

/*
 * Directory entries of a synthetic directory, from entry `off` on, as many as
 * fit. Offsets are entry indexes (k + 1), the same in readdir and readdirplus:
 * the kernel may mix both on one open directory.
 */
struct dirbuf {
	char *p;
	size_t size, len;
	bool plus;
	size_t index;
	off_t off;
	bool full;
};

static void dirbuf_add(fuse_req_t req, struct dirbuf *b, const char *name, fuse_ino_t ino, bool dir)
{
	struct stat st = { .st_ino = ino, .st_mode = dir ? S_IFDIR : S_IFREG };
	/* In readdirplus, inode 0 tells the kernel "no attributes here; look it up". */
	struct fuse_entry_param e = { .ino = 0, .attr = st };
	size_t idx = b->index++, need;

	if ((off_t)idx < b->off || b->full || !b->p)
		return;
	if (b->plus)
		need = fuse_add_direntry_plus(req, b->p + b->len, b->size - b->len, name, &e, (off_t)(idx + 1));
	else
		need = fuse_add_direntry(req, b->p + b->len, b->size - b->len, name, &st, (off_t)(idx + 1));
	if (need > b->size - b->len)
		b->full = true;
	else
		b->len += need;
}

/*
 * readdirplus of the root gives full entries (a lookup each), so listing a
 * root with many sandboxes takes one request, not one per sandbox. Entry k
 * of [., .., README, ctl, errors, templates, sandboxes...] has offset k + 1,
 * in readdir and readdirplus alike: the kernel mixes both on one open dir.
 */
static void root_readdir(fuse_req_t req, struct node *root, size_t size, off_t off, bool plus)
{
	static const struct { const char *name; enum node_kind kind; } fixed[] = {
		{ "README", N_ROOT_README }, { "ctl", N_ROOT_CTL },
		{ "errors", N_ROOT_ERRORS }, { "templates", N_TEMPLATES },
	};
	char **names = ctl_sandbox_names(fs.ctl), *buf = malloc(size ? size : 1);
	size_t nfixed = sizeof(fixed) / sizeof(fixed[0]), used = 0, count = 2 + nfixed;

	if (!buf) {
		ctl_strv_free(names);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (char **p = names; p && *p; p++)
		count++;
	for (size_t k = (size_t)off; k < count; k++) {
		struct fuse_entry_param e;
		struct sandbox *sb = NULL;
		struct node *child;
		const char *name;
		size_t need;

		if (k < 2 || !plus) {
			/* inode 0 in readdirplus: no lookup is counted */
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = FUSE_ROOT_ID + k;
			e.attr.st_mode = k < 2 || k == 5 || k >= 2 + nfixed ? S_IFDIR | 0755 : S_IFREG | 0644;
			name = k == 0 ? "." : k == 1 ? ".." : k < 2 + nfixed ? fixed[k - 2].name : names[k - 2 - nfixed];
			need = plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)(k + 1))
				    : fuse_add_direntry(req, buf + used, size - used, name, &e.attr, (off_t)(k + 1));
			if (need > size - used)
				break;
			used += need;
			continue;
		}
		if (k < 2 + nfixed) {
			name = fixed[k - 2].name;
			child = node_synth(root, name, fixed[k - 2].kind, NULL, -1, 0);
		} else {
			name = names[k - 2 - nfixed];
			sb = ctl_sandbox_get(fs.ctl, name);
			if (!sb)
				continue;   /* killed meanwhile */
			child = node_synth(root, name, N_SBX, sb, -1, 0);
			sandbox_put(sb);
		}
		if (!child)
			break;
		memset(&e, 0, sizeof(e));
		if (synth_stat(child, &e.attr)) {
			node_forget(child, 1);
			continue;
		}
		e.ino = node_ino(child);
		e.attr_timeout = synth_timeout(child);
		e.entry_timeout = synth_entry_timeout(child);
		need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)(k + 1));
		if (need > size - used) {
			node_forget(child, 1);
			break;
		}
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
	ctl_strv_free(names);
}

void synth_readdir(fuse_req_t req, struct node *n, size_t size, off_t off, bool plus)
{
	struct dirbuf b = { .plus = plus, .size = size, .off = off };

	if (n->kind == N_ROOT) {
		root_readdir(req, n, size, off, plus);
		return;
	}
	b.p = malloc(size ? size : 1);

	/* Unknown inode numbers are fine in readdir: lookup gives the real ones. */
	dirbuf_add(req, &b, ".", node_ino(n), true);
	dirbuf_add(req, &b, "..", 1, true);
	switch (n->kind) {
	case N_TEMPLATES:
		for (const struct sbx_template_info *const *t = ctl_templates(fs.ctl); t && *t; t++)
			dirbuf_add(req, &b, (*t)->name, 7, false);
		break;
	case N_SBX:
		for (size_t i = 0; i < SBX_FILES_COUNT; i++) {
			const struct sbx_file *f = &sbx_files[i];

			if (f->kind == N_SBX_EXIT) {
				int fd = run_open_latest(n->sb, NULL, "exit");

				if (fd < 0)
					continue;
				close(fd);
			}
			dirbuf_add(req, &b, f->name, 8 + i, f->kind == N_RUNS || f->kind == N_PT || f->kind == N_CONTEXTS);
		}
		break;
	case N_CONTEXTS: {
		char **names = ctx_names(n->sb);

		for (char **p = names; p && *p; p++)
			dirbuf_add(req, &b, *p, 50, true);
		ctl_strv_free(names);
		break;
	}
	case N_CTX:
		for (size_t i = 0; i < CTX_FILES_COUNT; i++) {
			const struct sbx_file *f = &ctx_files[i];

			if (f->kind == N_SBX_EXIT) {
				int fd = run_open_latest(n->sb, n->ctx, "exit");

				if (fd < 0)
					continue;
				close(fd);
			}
			dirbuf_add(req, &b, f->name, 51 + i, f->kind == N_RUNS || f->kind == N_RESULTS);
		}
		break;
	case N_RESULTS: {
		size_t count;
		uint64_t *runs = run_history(n->sb, n->ctx, &count);
		char name[128];

		for (size_t i = 0; i < count; i++) {
			char **extra = run_extra_files(n->sb, n->ctx, runs[i]);

			for (char **p = extra; p && *p; p++) {
				if (strncmp(*p, "figure-", 7))
					continue;
				snprintf(name, sizeof(name), "%llu-%s", (unsigned long long)runs[i], *p);
				dirbuf_add(req, &b, name, 70, false);
			}
			ctl_strv_free(extra);
		}
		free(runs);
		break;
	}
	case N_RUNS: {
		size_t count;
		uint64_t *runs = run_history(n->sb, n->ctx, &count);
		char name[32];

		for (size_t i = 0; i < count; i++) {
			snprintf(name, sizeof(name), "%llu", (unsigned long long)runs[i]);
			dirbuf_add(req, &b, name, 40, true);
		}
		free(runs);
		break;
	}
	case N_RUN: {
		char **extra = run_extra_files(n->sb, n->ctx, n->run);

		for (size_t i = 0; i < RUN_FILES_COUNT; i++) {
			int fd = run_open_file(n->sb, n->ctx, n->run, run_file_names[i]);

			if (fd < 0)
				continue;
			close(fd);
			dirbuf_add(req, &b, run_file_names[i], 41, false);
		}
		for (char **p = extra; p && *p; p++)
			dirbuf_add(req, &b, *p, 42, false);
		ctl_strv_free(extra);
		break;
	}
	default:
		free(b.p);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!b.p)
		fuse_reply_err(req, ENOMEM);
	else
		fuse_reply_buf(req, b.p, b.len);
	free(b.p);
}

/* ---- open/read/write ---- */

static char *template_text(const char *name)
{
	for (const struct sbx_template_info *const *t = ctl_templates(fs.ctl); t && *t; t++)
		if (strcmp((*t)->name, name) == 0)
			return strdup((*t)->description);
	return NULL;
}

static void handle_set_data(struct handle *h, char *text)
{
	free(h->data);
	h->data = text;
	h->len = text ? strlen(text) : 0;
}

static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle *handles;

static void handle_track(struct handle *h)
{
	pthread_mutex_lock(&handles_lock);
	h->prev = NULL;
	h->next = handles;
	if (handles)
		handles->prev = h;
	handles = h;
	pthread_mutex_unlock(&handles_lock);
}

static void handle_untrack(struct handle *h)
{
	pthread_mutex_lock(&handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else if (handles == h)
		handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
	pthread_mutex_unlock(&handles_lock);
}

static void handle_free(struct handle *h)
{
	if (h->fd >= 0)
		close(h->fd);
	free(h->data);
	free(h->wbuf);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void synth_free_handles(void)
{
	pthread_mutex_lock(&handles_lock);
	while (handles) {
		struct handle *h = handles;

		handles = h->next;
		handle_free(h);
	}
	pthread_mutex_unlock(&handles_lock);
}

void synth_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	struct handle *h;

	if (is_dir_kind(n->kind)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (acc != O_RDONLY && !is_writable_kind(n->kind)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (n->sb && !sandbox_alive(n->sb)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->node = n;
	h->fd = -1;
	switch (n->kind) {
	case N_ROOT_README:
		handle_set_data(h, strdup(root_readme));
		break;
	case N_ROOT_ERRORS:
		handle_set_data(h, ctl_errors_text(fs.ctl));
		break;
	case N_TEMPLATE:
		handle_set_data(h, template_text(n->name));
		break;
	case N_SBX_STATUS:
		handle_set_data(h, sandbox_status_text(n->sb));
		break;
	case N_SBX_INFO:
		handle_set_data(h, sandbox_info_json(n->sb));
		break;
	case N_SBX_METRICS:
		handle_set_data(h, sandbox_metrics_json(n->sb));
		break;
	case N_SBX_ENV:
		if (acc == O_RDONLY)
			handle_set_data(h, sandbox_env_text(n->sb));
		else if (!(fi->flags & O_TRUNC) && acc == O_RDWR) {
			/* Opened for update: start from the present content. */
			h->wbuf = sandbox_env_text(n->sb);
			h->wlen = h->wbuf ? strlen(h->wbuf) : 0;
		}
		break;
	case N_SBX_RUN:
		if (acc == O_RDONLY) {
			size_t len = 0;
			char *code = run_last_code(n->sb, n->ctx, (enum run_lang)n->lang, &len);

			h->data = code;
			h->len = code ? len : 0;
		}
		break;
	case N_SBX_STDOUT:
	case N_SBX_STDERR:
	case N_SBX_EXIT:
	case N_RUN_FILE:
	case N_CTX_RESULT:
	case N_RESULT_FILE:
		h->fd = node_backing_fd(n);
		if (h->fd == -ENOENT &&
		    (n->kind == N_SBX_STDOUT || n->kind == N_SBX_STDERR || n->kind == N_CTX_RESULT)) {
			h->fd = -1;
			break;
		}
		if (h->fd < 0) {
			int err = -h->fd;

			pthread_mutex_destroy(&h->lock);
			free(h);
			fuse_reply_err(req, err);
			return;
		}
		break;
	default:
		break;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->nonseekable = 0;
	handle_track(h);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		handle_untrack(h);
		handle_free(h);
	}
}

static void reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
	if (!data || (size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, data + off, len - (size_t)off < size ? len - (size_t)off : size);
}

void synth_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	if (!h) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	struct node *n = h->node;

	if (h->fd < 0 && (n->kind == N_SBX_STDOUT || n->kind == N_SBX_STDERR)) {
		/* Opened before the first run (a follower started early): take the run once there is one. */
		int fd = node_backing_fd(n);

		pthread_mutex_lock(&h->lock);
		if (fd >= 0 && h->fd < 0) {
			h->fd = fd;
			fd = -1;
		}
		pthread_mutex_unlock(&h->lock);
		if (fd >= 0)
			close(fd);
	}
	if (h->fd >= 0) {
		char *buf = malloc(size ? size : 1);
		ssize_t got;

		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		got = pread(h->fd, buf, size, off);
		if (got < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_buf(req, buf, (size_t)got);
		free(buf);
		return;
	}
	if (n->kind == N_SBX_WATCH) {
		watch_read(req, n->sb, size, off);
		return;
	}
	if (n->kind == N_SBX_WAIT) {
		struct pending *p;
		bool have;

		pthread_mutex_lock(&h->lock);
		have = h->data != NULL;
		if (have) {
			reply_slice(req, h->data, h->len, size, off);
			pthread_mutex_unlock(&h->lock);
			return;
		}
		pthread_mutex_unlock(&h->lock);
		p = pending_new(req, PENDING_WAIT, h, size);
		if (!p) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if (!run_wait_idle(n->sb, n->ctx, &p->waiter))
			pending_answer_now(p, 0);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (n->kind == N_ROOT_CTL || n->kind == N_SBX_CTL) {
		/* A read right after a write on this fd starts at the reply. */
		off_t base = h->reply_base;

		reply_slice(req, h->data, h->len, size, off >= base ? off - base : off);
	} else {
		reply_slice(req, h->data, h->len, size, off);
	}
	pthread_mutex_unlock(&h->lock);
}

static void ctl_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	struct node *n = h->node;
	char where[128], *reply = NULL;
	int ret;

	if (n->kind == N_SBX_CTL)
		snprintf(where, sizeof(where), "/%s/ctl", sandbox_name(n->sb));
	else
		snprintf(where, sizeof(where), "/ctl");
	ret = ctl_execute(fs.ctl, n->kind == N_SBX_CTL ? n->sb : NULL, buf, size, where, &reply);
	pthread_mutex_lock(&h->lock);
	handle_set_data(h, reply);
	h->reply_base = ret ? off : off + (off_t)size;
	pthread_mutex_unlock(&h->lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

void synth_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	size_t end;

	if (h->node->kind == N_ROOT_CTL || h->node->kind == N_SBX_CTL) {
		ctl_write(req, h, buf, size, off);
		return;
	}
	if (off < 0 || (size_t)off > CODE_MAX || size > CODE_MAX - (size_t)off) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	end = (size_t)off + size;
	pthread_mutex_lock(&h->lock);
	if (end > h->wlen) {
		char *grown = realloc(h->wbuf, end);

		if (!grown) {
			pthread_mutex_unlock(&h->lock);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if ((size_t)off > h->wlen)
			memset(grown + h->wlen, 0, (size_t)off - h->wlen);
		h->wbuf = grown;
		h->wlen = end;
	}
	memcpy(h->wbuf + off, buf, size);
	h->dirty = true;
	pthread_mutex_unlock(&h->lock);
	fuse_reply_write(req, size);
}

/* Takes the written bytes off the handle if they have not been used yet. */
static char *take_written(struct handle *h, size_t *len)
{
	char *copy = NULL;

	pthread_mutex_lock(&h->lock);
	if (h->dirty) {
		copy = malloc(h->wlen ? h->wlen : 1);
		if (copy) {
			memcpy(copy, h->wbuf, h->wlen);
			*len = h->wlen;
			h->dirty = false;
		}
	}
	pthread_mutex_unlock(&h->lock);
	return copy;
}

static int commit_written(struct handle *h, fuse_req_t req)
{
	struct node *n = h->node;
	struct sbx_err err = { 0 };
	size_t len = 0;
	char *data = take_written(h, &len);
	int ret = 0;

	if (!data)
		return 0;
	switch (n->kind) {
	case N_SBX_RUN: {
		struct pending *p = req ? pending_new(req, PENDING_FLUSH, h, 0) : NULL;

		ret = run_submit(n->sb, n->ctx, (enum run_lang)n->lang, data, len, p ? &p->waiter : NULL, &err);
		if (ret) {
			if (p) {
				fuse_req_interrupt_func(req, NULL, NULL);
				free(p);
			}
			ctl_log_error(fs.ctl, run_lang_file((enum run_lang)n->lang), "(run)", 5, err.msg);
			return ret;
		}
		return p ? 1 : 0;
	}
	case N_SBX_ENV:
		ret = sandbox_set_env(n->sb, data, len, &err);
		if (ret) {
			char where[128];

			snprintf(where, sizeof(where), "/%s/env", sandbox_name(n->sb));
			ctl_log_error(fs.ctl, where, data, len, err.msg);
		}
		break;
	case N_SBX_STDIN:
		ret = run_set_stdin(n->sb, n->ctx, data, len);
		break;
	default:
		break;
	}
	free(data);
	return ret;
}

void synth_flush(fuse_req_t req, struct handle *h)
{
	int ret = h ? commit_written(h, req) : 0;

	if (ret == 1)
		return;         /* answered when the run ends */
	fuse_reply_err(req, ret < 0 ? -ret : 0);
}

void synth_release(fuse_req_t req, struct handle *h)
{
	if (!h) {
		fuse_reply_err(req, 0);
		return;
	}
	commit_written(h, NULL);
	handle_untrack(h);
	handle_free(h);
	fuse_reply_err(req, 0);
}

/* ---- directories of the root ---- */

void synth_mkdir(fuse_req_t req, struct node *parent, const char *name)
{
	struct sbx_err err = { 0 };
	struct sandbox *sb;
	struct node *n;
	int ret;

	if (parent->kind == N_CONTEXTS) {
		ret = ctx_create(parent->sb, name, &err);
		if (ret) {
			char where[128];

			snprintf(where, sizeof(where), "/%s/contexts (mkdir)", sandbox_name(parent->sb));
			ctl_log_error(fs.ctl, where, name, strlen(name), err.msg);
			fuse_reply_err(req, -ret);
			return;
		}
		n = node_synth(parent, name, N_CTX, parent->sb, -1, 0);
		if (!n) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		reply_entry(req, n);
		return;
	}
	if (parent->kind != N_ROOT) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ret = ctl_create_default(fs.ctl, name, &err);
	if (ret) {
		ctl_log_error(fs.ctl, "/ (mkdir)", name, strlen(name), err.msg);
		fuse_reply_err(req, -ret);
		return;
	}
	sb = ctl_sandbox_get(fs.ctl, name);
	if (!sb) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	n = node_synth(parent, name, N_SBX, sb, -1, 0);
	sandbox_put(sb);
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_entry(req, n);
}

void synth_rmdir(fuse_req_t req, struct node *parent, const char *name)
{
	struct sbx_err err = { 0 };
	int ret;

	if (parent->kind == N_CONTEXTS) {
		ret = ctx_destroy(parent->sb, name, &err);
		fuse_reply_err(req, ret ? -ret : 0);
		return;
	}
	if (parent->kind != N_ROOT) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (ctl_name_reserved(name)) {
		fuse_reply_err(req, strcmp(name, "templates") == 0 ? EBUSY : ENOTDIR);
		return;
	}
	notify_defer_gone(true);
	ret = ctl_kill(fs.ctl, name, &err);
	notify_defer_gone(false);
	if (ret)
		ctl_log_error(fs.ctl, "/ (rmdir)", name, strlen(name), err.msg);
	fuse_reply_err(req, ret ? -ret : 0);
}

void synth_create(fuse_req_t req, struct node *parent, const char *name, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct node *n;

	if ((parent->kind != N_SBX && parent->kind != N_CTX) || strcmp(name, "exit") || !notify_is_self(req)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	n = node_synth(parent, name, N_SBX_EXIT, parent->sb, -1, 0);
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memset(&e, 0, sizeof(e));
	synth_stat(n, &e.attr);
	e.attr.st_ino = node_ino(n);
	e.ino = node_ino(n);
	/*
	 * No handle: the notifier only opens and closes. Its close may come after
	 * the session has stopped (at unmount), when no release would free one.
	 */
	fi->fh = 0;
	fi->direct_io = 1;
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		node_forget(n, 1);
}
