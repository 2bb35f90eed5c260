/*
 * run.c - running code in a sandbox: a queue per sandbox, one worker thread
 * while the queue is not empty, output spooled to disk with a cap.
 *
 * On disk, run N of a sandbox is state_root/sandboxes/NAME/runs/N/ with
 * code, stdout, stderr, exit and info. The files the user reads (stdout,
 * stderr, exit) are those of the latest run, read straight from that dir,
 * so they grow while the run is in progress.
 */
#include "sandbox.h"
#include "ctl_parse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct run_item {
	struct run_item *next;
	enum run_lang lang;
	char *code;
	size_t len;
	uint64_t timeout;               /* seconds from the code's header line; 0: the sandbox's */
	struct run_waiter *done;
};

static const char *const lang_files[RUN_LANG_COUNT] = { "run.py", "run.js", "run.sh" };
static const char *const lang_names[RUN_LANG_COUNT] = { "python", "javascript", "bash" };
static const char *const lang_argv0[RUN_LANG_COUNT] = { "python3", "node", "bash" };

int run_lang_from_file(const char *name)
{
	for (int i = 0; i < RUN_LANG_COUNT; i++)
		if (strcmp(name, lang_files[i]) == 0)
			return i;
	return -1;
}

const char *run_lang_file(enum run_lang lang)
{
	return lang_files[lang];
}

/* With sb->lock held: the queue of the sandbox (ctx NULL) or of a live context. */
static struct run_queue *queue_of(struct sandbox *sb, const char *ctx)
{
	struct context *c;

	if (!ctx)
		return &sb->runs;
	c = ctx_find_locked(sb, ctx);
	return c ? &c->runs : NULL;
}

/* Where the runs/ of a queue live (sb->dir or the context's dir); -ENOENT if gone. */
static int queue_dir(struct sandbox *sb, const char *ctx, char *out, size_t size)
{
	struct context *c;
	int ret = 0;

	if (!ctx) {
		snprintf(out, size, "%s", sb->dir);
		return 0;
	}
	pthread_mutex_lock(&sb->lock);
	c = ctx_find_locked(sb, ctx);
	if (c)
		snprintf(out, size, "%s", c->dir);
	else
		ret = -ENOENT;
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

void run_queue_free(struct run_queue *q)
{
	for (int i = 0; i < RUN_LANG_COUNT; i++)
		free(q->last_code[i]);
	free(q->stdin_buf);
	while (q->head) {
		struct run_item *it = q->head;

		q->head = it->next;
		free(it->code);
		free(it);
	}
}

bool run_busy_locked_hint(struct sandbox *sb)
{
	if (sb->runs.running || sb->runs.head)
		return true;
	for (struct context *c = sb->contexts; c; c = c->next)
		if (c->runs.running || c->runs.head)
			return true;
	return false;
}

bool run_busy(struct sandbox *sb, const char *ctx)
{
	struct run_queue *q;
	bool busy;

	pthread_mutex_lock(&sb->lock);
	q = queue_of(sb, ctx);
	busy = q && (q->running || q->head);
	pthread_mutex_unlock(&sb->lock);
	return busy;
}

/* ---- one run ---- */

struct proc_waiter {
	struct sandbox *sb;
	struct sbx_proc *proc;
	struct sbx_exit exit;
	int ret;
	int efd;
};

static void *proc_wait_main(void *arg)
{
	struct proc_waiter *w = arg;
	struct sbx_err err = { 0 };
	uint64_t one = 1;

	w->ret = w->sb->ctl->ops->wait_proc(w->proc, &w->exit, &err);
	if (write(w->efd, &one, sizeof(one)) < 0)
		sbx_log(SBX_LOG_ERROR, NULL, errno, "cannot wake the run worker");
	return NULL;
}

/* Appends to the file up to the cap; past it, drops and remembers the cut. */
void spool_put(struct spool *s, const char *buf, size_t n, uint64_t cap)
{
	size_t keep;

	if (!n)
		return;
	if (s->kept >= cap) {
		s->cut = true;
		return;
	}
	keep = (uint64_t)n < cap - s->kept ? n : (size_t)(cap - s->kept);
	if (s->out >= 0 && !s->werr) {
		int r = sbx_write_all(s->out, buf, keep);

		/* The first failure (ENOSPC, EIO) is kept: the run's record is incomplete. */
		if (r < 0)
			s->werr = -r;
	}
	s->kept += keep;
	if (keep < n)
		s->cut = true;
}

/* Copies what is ready from the pipe to the file, up to the cap; past it, reads and drops. */
void spool_drain(struct spool *s, uint64_t cap)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(s->in, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
				close(s->in);
				s->in = -1;
			}
			return;
		}
		spool_put(s, buf, (size_t)n, cap);
	}
}

static void spool_finish(struct spool *s, uint64_t cap)
{
	char marker[128];
	int n;

	if (!s->cut)
		return;
	n = snprintf(marker, sizeof(marker), "\n[sbxfs: output cut at %llu bytes]\n",
		     (unsigned long long)cap);
	if (s->out >= 0 && !s->werr && sbx_write_all(s->out, marker, (size_t)n) < 0)
		s->werr = errno;
}

char **run_envp(struct sandbox *sb)
{
	static const char *const defaults[] = {
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
		"HOME=/home/user", "USER=user", "LOGNAME=user", "LANG=C.UTF-8", "SHELL=/bin/bash",
		"TERM=dumb", NULL,
	};
	size_t n = 0, m = 0;
	char **envp;

	pthread_mutex_lock(&sb->lock);
	for (char **e = sb->env; e && *e; e++)
		n++;
	envp = calloc(n + 8, sizeof(char *));
	if (!envp)
		goto out;
	for (size_t i = 0; defaults[i]; i++) {
		size_t klen = (size_t)(strchr(defaults[i], '=') - defaults[i]);
		bool overridden = false;

		for (char **e = sb->env; e && *e && !overridden; e++)
			overridden = strncmp(*e, defaults[i], klen + 1) == 0;
		if (!overridden && !(envp[m++] = strdup(defaults[i])))
			goto out_nomem;
	}
	for (char **e = sb->env; e && *e; e++)
		if (!(envp[m++] = strdup(*e)))
			goto out_nomem;
out:
	pthread_mutex_unlock(&sb->lock);
	return envp;
out_nomem:
	/* never a run with part of its environment: NULL says out of memory */
	ctl_strv_free(envp);
	envp = NULL;
	goto out;
}

/* As many figures as a context run can leave (MARKER_PNG_COUNT in context.c). */
#define RUN_FIGURES_MAX 64

static int truncate_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static void prune_history(const char *base, uint64_t keep, uint64_t latest)
{
	char path[4300];

	if (!keep)
		keep = 1;
	if (latest <= keep)
		return;
	/* Runs are removed one at a time as new ones come, so only one is due. */
	for (uint64_t n = latest - keep; n > 0; n--) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/runs/%llu", base, (unsigned long long)n);
		if (stat(path, &st))
			break;
		sbx_rm_rf(path);
	}
}

/* Starts the run's process with the pipes' write ends as its stdout and stderr. */
static int proc_spawn(struct sandbox *sb, struct run_item *it, int stdin_fd, int out_w, int err_w,
		      struct sbx_proc **proc, struct sbx_err *err)
{
	/* python3 -u: output reaches stdout as it is printed, so tail -f follows it. */
	const char *argv[4] = {
		lang_argv0[it->lang],
		it->lang == RUN_PYTHON ? "-u" : "{script}",
		it->lang == RUN_PYTHON ? "{script}" : NULL,
		NULL,
	};
	struct sbx_exec ex = {
		.argv = argv, .cwd = "/home/user", .stdin_fd = stdin_fd, .stdout_fd = out_w, .stderr_fd = err_w,
		.script = it->code, .script_len = it->len, .script_name = lang_files[it->lang],
	};
	char **envp = run_envp(sb);
	struct sbx_instance *inst;
	int ret;

	if (!envp)
		return sbx_err_set(err, ENOMEM, "out of memory starting a run");
	ex.envp = (const char *const *)envp;
	inst = inst_enter(sb, INST_SHARED, err);
	ret = inst ? sb->ctl->ops->spawn(inst, &ex, proc, err) : -err->code;
	if (inst)
		inst_leave(sb, INST_SHARED);
	ctl_strv_free(envp);
	return ret;
}

/* How long poll may wait: until the deadline, at most a minute (a timeout of years is no int). */
static int proc_wait_ms(uint64_t start_mono, uint64_t timeout_s, bool timed_out)
{
	uint64_t elapsed = sbx_mono_ms() - start_mono, deadline = timeout_s * 1000, left;

	if (timed_out)
		return -1;
	left = elapsed >= deadline ? 0 : deadline - elapsed;
	return (int)(left < 60000 ? left : 60000);
}

/* Spools the output until the waiter says the process ended; kills it at the deadline. */
static void proc_follow(struct sandbox *sb, struct proc_waiter *w, uint64_t start_mono, uint64_t timeout_s,
			struct spool *out, struct spool *err_spool, bool *timed_out)
{
	uint64_t cap = sb->ctl->cfg.output_max;

	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = out->in, .events = POLLIN },
			{ .fd = err_spool->in, .events = POLLIN },
			{ .fd = w->efd, .events = POLLIN },
		};

		if (poll(pfd, 3, proc_wait_ms(start_mono, timeout_s, *timed_out)) < 0 && errno != EINTR)
			return;
		if (pfd[0].revents)
			spool_drain(out, cap);
		if (pfd[1].revents)
			spool_drain(err_spool, cap);
		if (pfd[2].revents)
			return;
		if (!*timed_out && sbx_mono_ms() - start_mono >= timeout_s * 1000) {
			*timed_out = true;
			sb->ctl->ops->kill_proc(w->proc, SIGKILL);
		}
	}
}

static int proc_exit_code(const struct proc_waiter *w, bool timed_out, struct sbx_err *err)
{
	if (w->ret) {
		if (!err->code)
			sbx_err_set(err, EIO, "lost track of the run's process");
		return -1;
	}
	if (timed_out)
		return 124;
	return w->exit.signaled ? 128 + w->exit.code : w->exit.code;
}

/* A fresh process: spawn, spool, time out. Returns the exit status or -1 (err set). */
static int proc_exec(struct sandbox *sb, struct run_item *it, int stdin_fd, uint64_t timeout_s,
		     struct spool *out, struct spool *err_spool, bool *timed_out, struct sbx_err *err)
{
	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	struct proc_waiter w = { .sb = sb, .efd = -1 };
	uint64_t start_mono = sbx_mono_ms();
	int exit_code = -1, ret;
	pthread_t waiter;

	if (pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) {
		sbx_err_sys(err, errno, "cannot make pipes");
		goto out;
	}
	w.efd = eventfd(0, EFD_CLOEXEC);
	if (w.efd < 0) {
		sbx_err_sys(err, errno, "cannot make an eventfd");
		goto out;
	}
	ret = proc_spawn(sb, it, stdin_fd, out_pipe[1], err_pipe[1], &w.proc, err);
	close(out_pipe[1]);
	close(err_pipe[1]);
	out_pipe[1] = err_pipe[1] = -1;
	if (ret)
		goto out;
	fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
	out->in = out_pipe[0];
	err_spool->in = err_pipe[0];
	out_pipe[0] = err_pipe[0] = -1;
	if (pthread_create(&waiter, NULL, proc_wait_main, &w)) {
		sb->ctl->ops->kill_proc(w.proc, SIGKILL);
		w.ret = sb->ctl->ops->wait_proc(w.proc, &w.exit, err);
	} else {
		proc_follow(sb, &w, start_mono, timeout_s, out, err_spool, timed_out);
		pthread_join(waiter, NULL);
	}
	/* The waiter is done and this thread was the only killer: the handle can go. */
	sb->ctl->ops->free_proc(w.proc);
	/* The main process has ended: take what is already in the pipes, not what
	 * background children may write later. */
	if (out->in >= 0)
		spool_drain(out, sb->ctl->cfg.output_max);
	if (err_spool->in >= 0)
		spool_drain(err_spool, sb->ctl->cfg.output_max);
	exit_code = proc_exit_code(&w, *timed_out, err);
out:
	for (int i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
	}
	if (w.efd >= 0)
		close(w.efd);
	return exit_code;
}

/* UTC with milliseconds: 2026-11-21T22:30:00.123Z */
static const char *iso_ms(uint64_t ms, char out[40])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
	return out;
}

/*
 * Once the history is full, the oldest run's directory becomes the new one:
 * renamed, its files truncated and reused rather than deleted and made anew.
 * Creating and deleting six inodes per run made ext4's allocator the largest
 * cost of a context run (it steps over recently deleted inodes). `exit` goes
 * first: its presence says a run has ended.
 */
static void recycle_run_dir(const char *base, uint64_t keep, uint64_t n, const char *dir)
{
	static const char *const stale[] = { "exit", "stdin", "result" };
	char old[4300], name[32];
	int fd;

	if (!keep)
		keep = 1;
	if (n <= keep)
		return;
	snprintf(old, sizeof(old), "%s/runs/%llu", base, (unsigned long long)(n - keep));
	if (rename(old, dir) < 0)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++)
		unlinkat(fd, stale[i], 0);
	for (int k = 1; k <= RUN_FIGURES_MAX; k++) {
		snprintf(name, sizeof(name), "figure-%d.png", k);
		if (unlinkat(fd, name, 0) < 0 && errno == ENOENT)
			break;
	}
	/* info stays (truncated) so it is not deleted and made again */
	if (truncate_at(fd, "info") < 0 && errno != ENOENT)
		unlinkat(fd, "info", 0);
	close(fd);
}

/* One run while it is carried out: its files, its limits and how it ended. */
struct run_rec {
	struct sandbox *sb;
	struct context *c;              /* NULL: a fresh process */
	struct run_item *it;
	uint64_t n;
	char dir[4300];                 /* .../runs/N */
	struct spool out, err;
	int stdin_fd;                   /* a fresh process's stdin, or -1 */
	char *stdin_copy;               /* a context run's stdin, or NULL */
	ssize_t stdin_len;              /* -1: none */
	uint64_t timeout_s, start_ms, start_mono;
	int exit_code;
	bool timed_out;
	struct ctx_outcome o;
	struct sbx_err fail;            /* why it could not run */
	struct sbx_err record;          /* why its files on disk are incomplete (ENOSPC, EIO) */
};

static void rec_record_error(struct run_rec *r, int code, const char *what)
{
	if (!r->record.code)
		sbx_err_sys(&r->record, code, "cannot record run %llu: %s", (unsigned long long)r->n, what);
}

/* Makes runs/N with its code and empty output files; 0 or a negative errno (r->fail set). */
static int rec_open_files(struct run_rec *r)
{
	const char *base = r->c ? r->c->dir : r->sb->dir;
	char path[4400];
	int ret;

	snprintf(r->dir, sizeof(r->dir), "%s/runs/%llu", base, (unsigned long long)r->n);
	snprintf(path, sizeof(path), "%s/runs", base);
	if (mkdir(path, 0700) && errno != EEXIST)
		return sbx_err_sys(&r->fail, errno, "cannot create '%s'", path);
	recycle_run_dir(base, r->sb->ctl->cfg.history, r->n, r->dir);
	if (mkdir(r->dir, 0700) && errno != EEXIST)
		return sbx_err_sys(&r->fail, errno, "cannot create '%s'", r->dir);
	snprintf(path, sizeof(path), "%s/code", r->dir);
	ret = sbx_write_file(path, r->it->code, r->it->len, 0600, &r->fail);
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "%s/stdout", r->dir);
	r->out.out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	snprintf(path, sizeof(path), "%s/stderr", r->dir);
	r->err.out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (r->out.out < 0 || r->err.out < 0)
		return sbx_err_sys(&r->fail, errno, "cannot create the output files in '%s'", r->dir);
	return 0;
}

/* Marks the run as the queue's latest and takes its stdin; file I/O after sb->lock. */
static int rec_begin(struct run_rec *r, struct run_queue *q)
{
	struct sandbox *sb = r->sb;
	char path[4400];
	size_t len = 0;
	bool has_stdin;

	pthread_mutex_lock(&sb->lock);
	q->latest = r->n;
	q->latest_done = false;
	sb->last_active = time(NULL);
	r->timeout_s = r->it->timeout ? r->it->timeout : sb->timeout;
	has_stdin = q->stdin_buf != NULL;
	if (has_stdin) {
		len = q->stdin_len;
		r->stdin_copy = malloc(len ? len : 1);
		if (r->stdin_copy)
			memcpy(r->stdin_copy, q->stdin_buf, len);
	}
	pthread_mutex_unlock(&sb->lock);
	if (!has_stdin)
		return 0;
	if (!r->stdin_copy)
		return sbx_err_set(&r->fail, ENOMEM, "out of memory copying stdin");
	snprintf(path, sizeof(path), "%s/stdin", r->dir);
	if (sbx_write_file(path, r->stdin_copy, len, 0600, &r->fail))
		return -r->fail.code;
	if (r->c) {
		r->stdin_len = (ssize_t)len;
		return 0;
	}
	r->stdin_fd = open(path, O_RDONLY | O_CLOEXEC);
	return r->stdin_fd < 0 ? sbx_err_sys(&r->fail, errno, "cannot open '%s'", path) : 0;
}

static void rec_exec(struct run_rec *r)
{
	r->start_ms = sbx_real_ms();
	r->start_mono = sbx_mono_ms();
	if (r->c) {
		r->o.dir = r->dir;
		if (ctx_exec(r->sb, r->c, r->it->lang, r->it->code, r->it->len, r->stdin_copy, r->stdin_len,
			     r->timeout_s, &r->out, &r->err, &r->o, &r->fail) == 0) {
			r->exit_code = r->o.exit_code;
			r->timed_out = r->o.timed_out;
		}
	} else {
		r->exit_code = proc_exec(r->sb, r->it, r->stdin_fd, r->timeout_s, &r->out, &r->err, &r->timed_out,
					 &r->fail);
	}
}

/* The notes at the end of stderr: output cut, timed out, could not run. */
static void rec_notes(struct run_rec *r)
{
	static const char timeout_note[] = "\n[sbxfs: run timed out and was killed]\n";
	uint64_t cap = r->sb->ctl->cfg.output_max;

	if (r->out.out >= 0)
		spool_finish(&r->out, cap);
	if (r->err.out < 0)
		return;
	spool_finish(&r->err, cap);
	if (r->timed_out && !r->c && !r->err.werr && sbx_write_all(r->err.out, timeout_note, sizeof(timeout_note) - 1))
		r->err.werr = errno;
	if (r->fail.code && !r->err.werr) {
		char line[SBX_ERR_MSG_MAX + 16];
		int len = snprintf(line, sizeof(line), "sbxfs: %s\n", r->fail.msg);

		if (sbx_write_all(r->err.out, line, (size_t)len))
			r->err.werr = errno;
	}
}

static json_object *rec_info(struct run_rec *r)
{
	json_object *info = json_object_new_object();
	uint64_t end_ms = sbx_real_ms();
	char stamp[2][40];

	if (!info)
		return NULL;
	json_object_object_add(info, "run", json_object_new_int64((int64_t)r->n));
	json_object_object_add(info, "language", json_object_new_string(lang_names[r->it->lang]));
	json_object_object_add(info, "context", r->c ? json_object_new_string(r->c->name) : NULL);
	json_object_object_add(info, "start", json_object_new_string(iso_ms(r->start_ms, stamp[0])));
	json_object_object_add(info, "end", json_object_new_string(iso_ms(end_ms, stamp[1])));
	json_object_object_add(info, "start_ms", json_object_new_int64((int64_t)r->start_ms));
	json_object_object_add(info, "end_ms", json_object_new_int64((int64_t)end_ms));
	json_object_object_add(info, "duration_ms",
			       json_object_new_int64((int64_t)(r->fail.code ? 0 : sbx_mono_ms() - r->start_mono)));
	json_object_object_add(info, "timeout", json_object_new_int64((int64_t)r->timeout_s));
	json_object_object_add(info, "timed_out", json_object_new_boolean(r->timed_out));
	json_object_object_add(info, "exit", json_object_new_int(r->exit_code));
	json_object_object_add(info, "stdout_bytes", json_object_new_int64((int64_t)r->out.kept));
	json_object_object_add(info, "stderr_bytes", json_object_new_int64((int64_t)r->err.kept));
	json_object_object_add(info, "stdout_cut", json_object_new_boolean(r->out.cut));
	json_object_object_add(info, "stderr_cut", json_object_new_boolean(r->err.cut));
	json_object_object_add(info, "figures", json_object_new_int64((int64_t)r->o.npng));
	return info;
}

/* info, then `exit` last: its presence says the run has ended (and inotify sees it). */
static void rec_finish(struct run_rec *r)
{
	json_object *info = rec_info(r);
	const char *text = info ? json_object_to_json_string_ext(info, JSON_C_TO_STRING_PRETTY) : NULL;
	struct sbx_err e = { 0 };
	char path[4400], code[32];
	int len;

	if (r->out.werr || r->err.werr)
		rec_record_error(r, r->out.werr ? r->out.werr : r->err.werr, "its output");
	snprintf(path, sizeof(path), "%s/info", r->dir);
	if (!text)
		rec_record_error(r, ENOMEM, "out of memory for its info");
	else if (sbx_write_file(path, text, strlen(text), 0600, &e))
		rec_record_error(r, e.code, "its info");
	json_object_put(info);
	len = snprintf(code, sizeof(code), "%d\n", r->exit_code);
	snprintf(path, sizeof(path), "%s/exit", r->dir);
	if (sbx_write_file(path, code, (size_t)len, 0600, &e))
		rec_record_error(r, e.code, "its exit status");
}

static void rec_free(struct run_rec *r)
{
	int fds[] = { r->out.in, r->err.in, r->out.out, r->err.out, r->stdin_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(r->stdin_copy);
}

/*
 * Runs one item and records it in runs/N. Returns its exit status; *record is
 * set when its files could not all be written (the run's close() fails then).
 */
static int run_one(struct sandbox *sb, struct run_queue *q, struct run_item *it, uint64_t n,
		   struct sbx_err *record)
{
	struct run_rec r = {
		.sb = sb, .c = q->ctx, .it = it, .n = n, .stdin_fd = -1, .stdin_len = -1, .exit_code = -1,
		.out = { .in = -1, .out = -1 }, .err = { .in = -1, .out = -1 }, .o = { .exit_code = -1 },
	};

	r.start_ms = sbx_real_ms();
	r.start_mono = sbx_mono_ms();
	if (rec_open_files(&r) < 0) {
		/* Its record cannot even be begun: that is the run's failure, with its errno,
		 * and the latest run stays the one before (rec_begin makes this one latest). */
		r.record = r.fail;
	} else if (rec_begin(&r, q) == 0) {
		rec_exec(&r);
	}
	rec_notes(&r);
	metrics_run(sb->ctl, it->lang,
		    r.fail.code || r.exit_code < 0 ? RUN_ERROR : r.timed_out ? RUN_TIMEOUT : r.exit_code ? RUN_FAILED : RUN_OK,
		    (sbx_mono_ms() - r.start_mono) * 1000);
	if (r.exit_code < 0)
		r.exit_code = 125;  /* could not run: like env(1) and timeout(1) */
	if (!r.record.code)
		rec_finish(&r);
	*record = r.record;
	if (!record->code && r.fail.code && (r.fail.code == ENOSPC || r.fail.code == EIO || r.fail.code == EDQUOT))
		*record = r.fail;
	rec_free(&r);
	return r.exit_code;
}

static void announce(struct sandbox *sb, const char *ctx)
{
	struct sbx_ctl *ctl = sb->ctl;
	void (*fn)(const char *, const char *, void *);
	void *arg;

	pthread_mutex_lock(&ctl->lock);
	fn = ctl->announce;
	arg = ctl->announce_arg;
	pthread_mutex_unlock(&ctl->lock);
	if (fn)
		fn(sb->name, ctx, arg);
}

/* A run whose files could not all be written: in `errors`, and its close() fails (waiter->error). */
static void report_record(struct sandbox *sb, struct run_queue *q, struct run_item *it,
			  const struct sbx_err *record)
{
	char where[200];

	if (q->ctx)
		snprintf(where, sizeof(where), "/%s/contexts/%s/%s", sb->name, q->ctx->name, lang_files[it->lang]);
	else
		snprintf(where, sizeof(where), "/%s/%s", sb->name, lang_files[it->lang]);
	errors_add(sb->ctl, where, "(run)", 5, record->msg);
}

/* One thread per busy queue; it exits when the queue is empty. */
static void *worker_main(void *arg)
{
	struct run_queue *q = arg;
	struct sandbox *sb = q->sb;

	for (;;) {
		struct run_waiter *idle = NULL;
		struct sbx_err record = { 0 };
		struct run_item *it;
		uint64_t n;
		int code;

		pthread_mutex_lock(&sb->lock);
		it = q->head;
		if (!it) {
			/* After `running` is false the queue (and a context) may be freed. */
			q->running = false;
			idle = q->idle_waiters;
			q->idle_waiters = NULL;
			pthread_cond_broadcast(&sb->idle_cond);
			pthread_mutex_unlock(&sb->lock);
			while (idle) {
				struct run_waiter *next = idle->next;

				idle->fn(idle->arg, 0);
				idle = next;
			}
			break;
		}
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		n = q->next++;
		pthread_mutex_unlock(&sb->lock);

		code = run_one(sb, q, it, n, &record);
		if (record.code)
			report_record(sb, q, it, &record);

		pthread_mutex_lock(&sb->lock);
		if (q->latest == n)
			q->latest_done = true;
		sb->last_active = time(NULL);
		pthread_mutex_unlock(&sb->lock);
		prune_history(q->ctx ? q->ctx->dir : sb->dir, sb->ctl->cfg.history, n);
		if (it->done) {
			it->done->error = record.code;
			it->done->fn(it->done->arg, code);
		}
		free(it->code);
		free(it);
		announce(sb, q->ctx ? q->ctx->name : NULL);
	}
	sandbox_put(sb);
	return NULL;
}

int run_submit(struct sandbox *sb, const char *ctx, enum run_lang lang, char *code, size_t len,
	       struct run_waiter *done, struct sbx_err *err)
{
	struct run_queue *q;
	struct run_item *it;
	pthread_attr_t attr;
	pthread_t tid;
	int ret = 0;

	if (ctx && (ret = ctx_check_code(lang, code, len, err))) {
		free(code);
		return ret;
	}
	it = calloc(1, sizeof(*it));
	if (!it) {
		free(code);
		return sbx_err_set(err, ENOMEM, "out of memory");
	}
	it->lang = lang;
	it->code = code;
	it->len = len;
	it->done = done;
	/* A bad header line is refused now, before anything runs, with the reason. */
	ret = ctl_parse_run_header(code, len, &it->timeout, err);
	if (ret) {
		free(code);
		free(it);
		return ret;
	}

	pthread_mutex_lock(&sb->lock);
	if (sb->dead) {
		ret = sbx_err_set(err, ENOENT, "sandbox '%s' is gone", sb->name);
		goto out_unlock;
	}
	q = queue_of(sb, ctx);
	if (!q) {
		ret = sbx_err_set(err, ENOENT, "no context '%s' in sandbox '%s'", ctx, sb->name);
		goto out_unlock;
	}
	free(q->last_code[lang]);
	q->last_code[lang] = malloc(len ? len : 1);
	if (q->last_code[lang])
		memcpy(q->last_code[lang], code, len);
	q->last_code_len[lang] = q->last_code[lang] ? len : 0;
	clock_gettime(CLOCK_REALTIME, &q->last_code_time[lang]);
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	sb->last_active = time(NULL);
	if (!q->running) {
		q->running = true;
		q->sb = sb;
		sandbox_get(sb);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ret = pthread_create(&tid, &attr, worker_main, q);
		pthread_attr_destroy(&attr);
		if (ret) {
			q->running = false;
			q->head = q->tail = NULL;
			ret = sbx_err_sys(err, ret, "cannot start a run worker");
			pthread_mutex_unlock(&sb->lock);
			sandbox_put(sb);
			free(code);
			free(it);
			return ret;
		}
	}
	pthread_mutex_unlock(&sb->lock);
	return 0;

out_unlock:
	pthread_mutex_unlock(&sb->lock);
	free(code);
	free(it);
	return ret;
}

bool run_wait_idle(struct sandbox *sb, const char *ctx, struct run_waiter *w)
{
	struct run_queue *q;
	bool added = false;

	pthread_mutex_lock(&sb->lock);
	q = queue_of(sb, ctx);
	if (!sb->dead && q && (q->running || q->head)) {
		w->next = q->idle_waiters;
		q->idle_waiters = w;
		added = true;
	}
	pthread_mutex_unlock(&sb->lock);
	return added;
}

/* With sb->lock held: takes the queued items, and the idle waiters if no worker will call them. */
static void queue_take(struct run_queue *q, struct run_item **items, struct run_waiter **idle)
{
	struct run_item **tail = items;
	struct run_waiter **wt = idle;

	while (*tail)
		tail = &(*tail)->next;
	*tail = q->head;
	q->head = q->tail = NULL;
	if (!q->running) {
		while (*wt)
			wt = &(*wt)->next;
		*wt = q->idle_waiters;
		q->idle_waiters = NULL;
	}
}

void run_fail_items(struct run_item *items, struct run_waiter *idle)
{
	while (items) {
		struct run_item *next = items->next;

		if (items->done)
			items->done->fn(items->done->arg, -1);
		free(items->code);
		free(items);
		items = next;
	}
	while (idle) {
		struct run_waiter *next = idle->next;

		idle->fn(idle->arg, -1);
		idle = next;
	}
}

void run_abort_all(struct sandbox *sb)
{
	struct run_item *items = NULL;
	struct run_waiter *idle = NULL;
	uint64_t one = 1;

	pthread_mutex_lock(&sb->lock);
	queue_take(&sb->runs, &items, &idle);
	for (struct context *c = sb->contexts; c; c = c->next) {
		queue_take(&c->runs, &items, &idle);
		if (c->abort_fd >= 0 && write(c->abort_fd, &one, sizeof(one)) < 0)
			sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot stop a context run");
	}
	pthread_mutex_unlock(&sb->lock);
	run_fail_items(items, idle);
}

void run_wait_worker(struct sandbox *sb)
{
	bool busy;

	pthread_mutex_lock(&sb->lock);
	do {
		busy = sb->runs.running;
		for (struct context *c = sb->contexts; c && !busy; c = c->next)
			busy = c->runs.running;
		if (busy)
			pthread_cond_wait(&sb->idle_cond, &sb->lock);
	} while (busy);
	pthread_mutex_unlock(&sb->lock);
	/* No worker is left: the interpreters of the contexts can go (before release). */
	for (struct context *c = sb->contexts; c; c = c->next)
		ctx_kill_interps(sb, c);
}

int run_open_latest(struct sandbox *sb, const char *ctx, const char *which)
{
	char path[4400];
	struct run_queue *q;
	uint64_t n;
	int fd;

	pthread_mutex_lock(&sb->lock);
	q = queue_of(sb, ctx);
	n = q ? q->latest : 0;
	if (!n || (strcmp(which, "exit") == 0 && !q->latest_done)) {
		pthread_mutex_unlock(&sb->lock);
		return -ENOENT;
	}
	snprintf(path, sizeof(path), "%s/runs/%llu/%s", ctx ? q->ctx->dir : sb->dir, (unsigned long long)n,
		 which);
	pthread_mutex_unlock(&sb->lock);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

char *run_last_code(struct sandbox *sb, const char *ctx, enum run_lang lang, size_t *len)
{
	struct run_queue *q;
	char *code = NULL;

	pthread_mutex_lock(&sb->lock);
	q = queue_of(sb, ctx);
	if (q && q->last_code[lang]) {
		code = malloc(q->last_code_len[lang] + 1);
		if (code) {
			memcpy(code, q->last_code[lang], q->last_code_len[lang]);
			*len = q->last_code_len[lang];
		}
	}
	pthread_mutex_unlock(&sb->lock);
	return code;
}

int run_last_code_attr(struct sandbox *sb, const char *ctx, enum run_lang lang, size_t *len,
		       struct timespec *mtime)
{
	struct run_queue *q;
	int ret = -ENOENT;

	pthread_mutex_lock(&sb->lock);
	q = queue_of(sb, ctx);
	if (q && q->last_code[lang]) {
		*len = q->last_code_len[lang];
		*mtime = q->last_code_time[lang];
		ret = 0;
	}
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The run numbers under dir, ascending. Never NULL on success (an empty or
 * missing runs/ is an empty list); NULL with errno (ENOMEM, EIO...) when the
 * list could not be made, so a failure never shows as an empty history.
 */
static uint64_t *scan_runs(const char *dir, size_t *count)
{
	size_t n = 0, cap = 32;
	uint64_t *v = malloc(cap * sizeof(*v));
	struct dirent *de;
	DIR *d;

	*count = 0;
	if (!v)
		return NULL;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? v : (free(v), NULL);
	while ((de = readdir(d))) {
		char *end;
		unsigned long long x = strtoull(de->d_name, &end, 10);

		if (!de->d_name[0] || *end || de->d_name[0] == '0')
			continue;
		if (n == cap) {
			uint64_t *grown = realloc(v, cap * 2 * sizeof(*v));

			if (!grown) {
				closedir(d);
				free(v);
				errno = ENOMEM;
				return NULL;
			}
			v = grown;
			cap *= 2;
		}
		v[n++] = x;
	}
	closedir(d);
	qsort(v, n, sizeof(*v), cmp_u64);
	*count = n;
	return v;
}

uint64_t *run_history(struct sandbox *sb, const char *ctx, size_t *n)
{
	char base[4200], path[4300];

	*n = 0;
	if (queue_dir(sb, ctx, base, sizeof(base))) {
		errno = ENOENT;
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/runs", base);
	return scan_runs(path, n);
}

static bool run_file_name_ok(const char *which)
{
	return which[0] && which[0] != '.' && !strchr(which, '/');
}

int run_open_file(struct sandbox *sb, const char *ctx, uint64_t n, const char *which)
{
	char base[4200], path[4400];
	int fd;

	if (!run_file_name_ok(which) || queue_dir(sb, ctx, base, sizeof(base)))
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/runs/%llu/%s", base, (unsigned long long)n, which);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Appends a copy of name to the NULL-terminated *names (count entries): 0 or -ENOMEM. */
static int names_add(char ***names, size_t *count, const char *name)
{
	char **grown = realloc(*names, (*count + 2) * sizeof(char *));

	if (!grown)
		return -ENOMEM;
	*names = grown;
	grown[*count] = strdup(name);
	if (!grown[*count])
		return -ENOMEM;
	grown[++*count] = NULL;
	return 0;
}

char **run_extra_files(struct sandbox *sb, const char *ctx, uint64_t n)
{
	static const char *const fixed[] = { "stdin", "result" };
	char base[4200], path[4400], name[64];
	char **names = calloc(1, sizeof(char *));
	size_t count = 0;
	struct stat st;
	int ret = 0;

	if (!names || queue_dir(sb, ctx, base, sizeof(base)))
		return names;
	for (size_t i = 0; i < 2 && !ret; i++) {
		snprintf(path, sizeof(path), "%s/runs/%llu/%s", base, (unsigned long long)n, fixed[i]);
		if (stat(path, &st) == 0)
			ret = names_add(&names, &count, fixed[i]);
	}
	for (size_t k = 1; k <= RUN_FIGURES_MAX && !ret; k++) {
		snprintf(name, sizeof(name), "figure-%zu.png", k);
		snprintf(path, sizeof(path), "%s/runs/%llu/%s", base, (unsigned long long)n, name);
		if (stat(path, &st))
			break;
		ret = names_add(&names, &count, name);
	}
	if (ret) {
		/* Out of memory is an error to report, not a shorter list. */
		ctl_strv_free(names);
		errno = ENOMEM;
		return NULL;
	}
	return names;
}

/*
 * A run the daemon was killed during has no `exit`; it gets one now, so
 * NAME/exit, runs/N/exit and `wait` say how it ended instead of leaving
 * pollers and inotify waiters waiting for ever. Its process went with the
 * daemon (a run's process dies with its agent connection; a context's
 * interpreter with the daemon's pipes): it ends as killed, 137 = 128 + SIGKILL.
 */
static void run_end_interrupted(const char *dir, uint64_t n)
{
	static const char line[] = "\nsbxfs: the daemon stopped during this run\n";
	struct sbx_err err = { 0 };
	char path[4400], text[256];
	int fd, len;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, line, sizeof(line) - 1) != (ssize_t)(sizeof(line) - 1))
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot note the end of run '%s'", dir);
	if (fd >= 0)
		close(fd);
	len = snprintf(text, sizeof(text),
		       "{\n  \"run\": %llu,\n  \"exit\": %d,\n  \"interrupted\": true,\n"
		       "  \"reason\": \"the daemon stopped during this run\"\n}\n",
		       (unsigned long long)n, RUN_EXIT_INTERRUPTED);
	snprintf(path, sizeof(path), "%s/info", dir);
	if (sbx_write_file(path, text, (size_t)len, 0600, &err))
		sbx_log(SBX_LOG_WARNING, NULL, 0, "%s", err.msg);
	len = snprintf(text, sizeof(text), "%d\n", RUN_EXIT_INTERRUPTED);
	snprintf(path, sizeof(path), "%s/exit", dir);
	if (sbx_write_file(path, text, (size_t)len, 0600, &err))
		sbx_log(SBX_LOG_WARNING, NULL, 0, "%s", err.msg);
}

/* Loads a queue's history (the sandbox's or a context's) and ends runs a crash cut off. */
static void queue_load(struct run_queue *q, const char *base)
{
	char path[4400];
	uint64_t *v;
	size_t n;
	struct stat st;

	snprintf(path, sizeof(path), "%s/runs", base);
	v = scan_runs(path, &n);
	if (!v)
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot read the history in '%s'", path);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/runs/%llu/exit", base, (unsigned long long)v[i]);
		if (stat(path, &st) < 0 && errno == ENOENT) {
			snprintf(path, sizeof(path), "%s/runs/%llu", base, (unsigned long long)v[i]);
			run_end_interrupted(path, v[i]);
		}
	}
	if (n) {
		q->latest = v[n - 1];
		q->next = v[n - 1] + 1;
		snprintf(path, sizeof(path), "%s/runs/%llu/exit", base, (unsigned long long)v[n - 1]);
		q->latest_done = stat(path, &st) == 0;
	}
	free(v);
}

void run_load_history(struct sandbox *sb)
{
	queue_load(&sb->runs, sb->dir);
	ctx_load_all(sb);
	pthread_mutex_lock(&sb->lock);
	for (struct context *c = sb->contexts; c; c = c->next)
		queue_load(&c->runs, c->dir);
	pthread_mutex_unlock(&sb->lock);
}

int run_set_stdin(struct sandbox *sb, const char *ctx, const char *buf, size_t len)
{
	struct run_queue *q;
	char *copy;

	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	pthread_mutex_lock(&sb->lock);
	q = queue_of(sb, ctx);
	if (!q) {
		pthread_mutex_unlock(&sb->lock);
		free(copy);
		return -ENOENT;
	}
	free(q->stdin_buf);
	q->stdin_buf = copy;
	q->stdin_len = len;
	pthread_mutex_unlock(&sb->lock);
	return 0;
}
