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
#include <unistd.h>

struct run_item {
	struct run_item *next;
	enum run_lang lang;
	char *code;
	size_t len;
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

static struct run_queue *queue_of(struct sandbox *sb, const char *ctx)
{
	return ctx ? NULL : &sb->runs;
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
	return sb->runs.running || sb->runs.head;
}

bool run_busy(struct sandbox *sb, const char *ctx)
{
	struct run_queue *q = queue_of(sb, ctx);
	bool busy;

	if (!q)
		return false;
	pthread_mutex_lock(&sb->lock);
	busy = q->running || q->head;
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
		fprintf(stderr, "sbxfs: error: cannot wake the run worker: %m\n");
	return NULL;
}

struct spool {
	int in;          /* pipe read end, -1 once at EOF */
	int out;         /* the file */
	uint64_t kept;
	bool cut;
};

/* Copies what is ready from the pipe to the file, up to the cap; past it, reads and drops. */
static void spool_drain(struct spool *s, uint64_t cap)
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
		if (s->kept < cap) {
			size_t keep = (uint64_t)n < cap - s->kept ? (size_t)n : (size_t)(cap - s->kept);

			if (write(s->out, buf, keep) != (ssize_t)keep)
				fprintf(stderr, "sbxfs: warning: cannot spool run output: %m\n");
			s->kept += keep;
			if (keep < (size_t)n)
				s->cut = true;
		} else {
			s->cut = true;
		}
		if (s->cut && s->kept >= cap)
			continue;
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
	if (write(s->out, marker, (size_t)n) != n)
		fprintf(stderr, "sbxfs: warning: cannot write the cut marker: %m\n");
}

static char **run_envp(struct sandbox *sb)
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
		if (!overridden)
			envp[m++] = strdup(defaults[i]);
	}
	for (char **e = sb->env; e && *e; e++)
		envp[m++] = strdup(*e);
out:
	pthread_mutex_unlock(&sb->lock);
	return envp;
}

static int write_small(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, data, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Parses "# sbxfs: timeout=N" (or "// sbxfs: timeout=N") on the first line. */
static uint64_t code_timeout(const char *code, size_t len, uint64_t dflt)
{
	const char *nl = memchr(code, '\n', len), *p;
	char line[128];
	size_t n = nl ? (size_t)(nl - code) : len;
	unsigned long long v;

	if (n >= sizeof(line))
		return dflt;
	memcpy(line, code, n);
	line[n] = '\0';
	p = strstr(line, "sbxfs: timeout=");
	if (!p || (strncmp(line, "#", 1) && strncmp(line, "//", 2)))
		return dflt;
	if (sscanf(p + 15, "%llu", &v) == 1 && v > 0)
		return v;
	return dflt;
}

static void prune_history(struct sandbox *sb, uint64_t latest)
{
	uint64_t keep = sb->ctl->cfg.history ? sb->ctl->cfg.history : 1;
	char path[4200];

	if (latest <= keep)
		return;
	/* Runs are removed one at a time as new ones come, so only one is due. */
	for (uint64_t n = latest - keep; n > 0; n--) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/runs/%llu", sb->dir, (unsigned long long)n);
		if (stat(path, &st))
			break;
		rm_rf(path);
	}
}

static int run_one(struct sandbox *sb, struct run_item *it, uint64_t n, char *dir, size_t dir_size)
{
	struct spool out = { .in = -1, .out = -1 }, err_spool = { .in = -1, .out = -1 };
	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 }, stdin_fd = -1;
	struct proc_waiter w = { .sb = sb, .efd = -1 };
	uint64_t cap = sb->ctl->cfg.output_max, timeout_s = 0, start_ms = now_ms(), start_mono = mono_ms();
	struct sbx_exec ex = { 0 };
	struct sbx_err err = { 0 };
	char path[4300], *script_argv[3];
	bool timed_out = false, waiter_started = false;
	char **envp = NULL;
	pthread_t waiter;
	int exit_code = -1, ret;
	json_object *info;

	snprintf(dir, dir_size, "%s/runs/%llu", sb->dir, (unsigned long long)n);
	snprintf(path, sizeof(path), "%s/runs", sb->dir);
	mkdir(path, 0700);
	if (mkdir(dir, 0700) && errno != EEXIST) {
		sbx_err_sys(&err, errno, "cannot create '%s'", dir);
		goto out_report;
	}
	snprintf(path, sizeof(path), "%s/code", dir);
	write_small(path, it->code, it->len);
	snprintf(path, sizeof(path), "%s/stdout", dir);
	out.out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	snprintf(path, sizeof(path), "%s/stderr", dir);
	err_spool.out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out.out < 0 || err_spool.out < 0) {
		sbx_err_sys(&err, errno, "cannot create the output files in '%s'", dir);
		goto out_report;
	}

	pthread_mutex_lock(&sb->lock);
	sb->runs.latest = n;
	sb->runs.latest_done = false;
	sb->last_active = time(NULL);
	timeout_s = code_timeout(it->code, it->len, sb->timeout);
	if (sb->runs.stdin_buf) {
		snprintf(path, sizeof(path), "%s/stdin", dir);
		if (write_small(path, sb->runs.stdin_buf, sb->runs.stdin_len) == 0)
			stdin_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	pthread_mutex_unlock(&sb->lock);

	if (pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) {
		sbx_err_sys(&err, errno, "cannot make pipes");
		goto out_report;
	}
	w.efd = eventfd(0, EFD_CLOEXEC);
	envp = run_envp(sb);
	if (w.efd < 0 || !envp) {
		sbx_err_set(&err, ENOMEM, "out of resources starting a run");
		goto out_report;
	}
	script_argv[0] = (char *)lang_argv0[it->lang];
	script_argv[1] = "{script}";
	script_argv[2] = NULL;
	ex.argv = (const char *const *)script_argv;
	ex.envp = (const char *const *)envp;
	ex.cwd = "/home/user";
	ex.stdin_fd = stdin_fd;
	ex.stdout_fd = out_pipe[1];
	ex.stderr_fd = err_pipe[1];
	ex.script = it->code;
	ex.script_len = it->len;
	ex.script_name = lang_files[it->lang];

	start_ms = now_ms();
	start_mono = mono_ms();
	pthread_mutex_lock(&sb->op_lock);
	if (!sb->inst || !sandbox_alive(sb))
		ret = sbx_err_set(&err, ENOENT, "sandbox '%s' is not running", sb->name);
	else
		ret = sb->ctl->ops->spawn(sb->inst, &ex, &w.proc, &err);
	pthread_mutex_unlock(&sb->op_lock);
	close(out_pipe[1]);
	close(err_pipe[1]);
	out_pipe[1] = err_pipe[1] = -1;
	if (ret)
		goto out_report;
	if (pthread_create(&waiter, NULL, proc_wait_main, &w)) {
		sb->ctl->ops->kill_proc(w.proc, SIGKILL);
		w.ret = sb->ctl->ops->wait_proc(w.proc, &w.exit, &err);
	} else {
		waiter_started = true;
	}
	fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
	out.in = out_pipe[0];
	err_spool.in = err_pipe[0];
	out_pipe[0] = err_pipe[0] = -1;

	while (waiter_started) {
		struct pollfd pfd[3] = {
			{ .fd = out.in, .events = POLLIN },
			{ .fd = err_spool.in, .events = POLLIN },
			{ .fd = w.efd, .events = POLLIN },
		};
		uint64_t elapsed = mono_ms() - start_mono, deadline = timeout_s * 1000;
		int wait_ms = timed_out ? -1 : (elapsed >= deadline ? 0 : (int)(deadline - elapsed));

		if (poll(pfd, 3, wait_ms) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			spool_drain(&out, cap);
		if (pfd[1].revents)
			spool_drain(&err_spool, cap);
		if (pfd[2].revents)
			break;
		if (!timed_out && mono_ms() - start_mono >= deadline) {
			timed_out = true;
			sb->ctl->ops->kill_proc(w.proc, SIGKILL);
		}
	}
	if (waiter_started)
		pthread_join(waiter, NULL);
	/* The main process has ended: take what is already in the pipes, not what
	 * background children may write later. */
	if (out.in >= 0)
		spool_drain(&out, cap);
	if (err_spool.in >= 0)
		spool_drain(&err_spool, cap);
	spool_finish(&out, cap);
	spool_finish(&err_spool, cap);
	if (w.ret)
		exit_code = -1;
	else if (timed_out)
		exit_code = 124;
	else if (w.exit.signaled)
		exit_code = 128 + w.exit.code;
	else
		exit_code = w.exit.code;
	if (timed_out) {
		static const char note[] = "\n[sbxfs: run timed out and was killed]\n";

		if (write(err_spool.out, note, sizeof(note) - 1) < 0)
			fprintf(stderr, "sbxfs: warning: cannot write the timeout note: %m\n");
	}

out_report:
	if (err.code && err_spool.out >= 0) {
		char line[SBX_ERR_MSG_MAX + 16];
		int len = snprintf(line, sizeof(line), "sbxfs: %s\n", err.msg);

		if (write(err_spool.out, line, (size_t)len) < 0)
			fprintf(stderr, "sbxfs: warning: cannot report a run failure: %m\n");
	}
	if (exit_code < 0)
		exit_code = 125;  /* could not run: like env(1) and timeout(1) */
	snprintf(path, sizeof(path), "%s/exit", dir);
	{
		char text[32];
		int len = snprintf(text, sizeof(text), "%d\n", exit_code);

		write_small(path, text, (size_t)len);
	}
	info = json_object_new_object();
	json_object_object_add(info, "run", json_object_new_int64((int64_t)n));
	json_object_object_add(info, "language", json_object_new_string(lang_names[it->lang]));
	json_object_object_add(info, "context", NULL);
	json_object_object_add(info, "start_ms", json_object_new_int64((int64_t)start_ms));
	json_object_object_add(info, "end_ms", json_object_new_int64((int64_t)now_ms()));
	json_object_object_add(info, "duration_ms",
			       json_object_new_int64((int64_t)(err.code ? 0 : mono_ms() - start_mono)));
	json_object_object_add(info, "timed_out", json_object_new_boolean(timed_out));
	json_object_object_add(info, "exit", json_object_new_int(exit_code));
	json_object_object_add(info, "stdout_cut", json_object_new_boolean(out.cut));
	json_object_object_add(info, "stderr_cut", json_object_new_boolean(err_spool.cut));
	snprintf(path, sizeof(path), "%s/info", dir);
	{
		const char *text = json_object_to_json_string_ext(info, JSON_C_TO_STRING_PRETTY);

		write_small(path, text, strlen(text));
	}
	json_object_put(info);

	for (int i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
	}
	if (out.in >= 0)
		close(out.in);
	if (err_spool.in >= 0)
		close(err_spool.in);
	if (out.out >= 0)
		close(out.out);
	if (err_spool.out >= 0)
		close(err_spool.out);
	if (stdin_fd >= 0)
		close(stdin_fd);
	if (w.efd >= 0)
		close(w.efd);
	ctl_strv_free(envp);
	return exit_code;
}

static void announce(struct sandbox *sb)
{
	struct sbx_ctl *ctl = sb->ctl;
	void (*fn)(const char *, const char *, void *);
	void *arg;

	pthread_mutex_lock(&ctl->lock);
	fn = ctl->announce;
	arg = ctl->announce_arg;
	pthread_mutex_unlock(&ctl->lock);
	if (fn)
		fn(sb->name, NULL, arg);
}

static void *worker_main(void *arg)
{
	struct sandbox *sb = arg;
	char dir[4200];

	for (;;) {
		struct run_waiter *idle = NULL;
		struct run_item *it;
		uint64_t n;
		int code;

		pthread_mutex_lock(&sb->lock);
		it = sb->runs.head;
		if (!it) {
			sb->runs.running = false;
			idle = sb->runs.idle_waiters;
			sb->runs.idle_waiters = NULL;
			pthread_cond_broadcast(&sb->idle_cond);
			pthread_mutex_unlock(&sb->lock);
			while (idle) {
				struct run_waiter *next = idle->next;

				idle->fn(idle->arg, 0);
				idle = next;
			}
			break;
		}
		sb->runs.head = it->next;
		if (!sb->runs.head)
			sb->runs.tail = NULL;
		n = sb->runs.next++;
		pthread_mutex_unlock(&sb->lock);

		code = run_one(sb, it, n, dir, sizeof(dir));

		pthread_mutex_lock(&sb->lock);
		if (sb->runs.latest == n)
			sb->runs.latest_done = true;
		sb->last_active = time(NULL);
		pthread_mutex_unlock(&sb->lock);
		prune_history(sb, n);
		if (it->done)
			it->done->fn(it->done->arg, code);
		free(it->code);
		free(it);
		announce(sb);
	}
	sandbox_put(sb);
	return NULL;
}

int run_submit(struct sandbox *sb, const char *ctx, enum run_lang lang, char *code, size_t len,
	       struct run_waiter *done, struct sbx_err *err)
{
	struct run_item *it;
	pthread_attr_t attr;
	pthread_t tid;
	int ret = 0;

	if (ctx) {
		free(code);
		return sbx_err_set(err, ENOTSUP, "contexts are not supported yet");
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

	pthread_mutex_lock(&sb->lock);
	if (sb->dead) {
		ret = sbx_err_set(err, ENOENT, "sandbox '%s' is gone", sb->name);
		goto out_unlock;
	}
	free(sb->runs.last_code[lang]);
	sb->runs.last_code[lang] = malloc(len ? len : 1);
	if (sb->runs.last_code[lang])
		memcpy(sb->runs.last_code[lang], code, len);
	sb->runs.last_code_len[lang] = sb->runs.last_code[lang] ? len : 0;
	if (sb->runs.tail)
		sb->runs.tail->next = it;
	else
		sb->runs.head = it;
	sb->runs.tail = it;
	sb->last_active = time(NULL);
	if (!sb->runs.running) {
		sb->runs.running = true;
		sandbox_get(sb);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ret = pthread_create(&tid, &attr, worker_main, sb);
		pthread_attr_destroy(&attr);
		if (ret) {
			sb->runs.running = false;
			sb->runs.head = sb->runs.tail = NULL;
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
	bool added = false;

	if (ctx)
		return false;
	pthread_mutex_lock(&sb->lock);
	if (!sb->dead && (sb->runs.running || sb->runs.head)) {
		w->next = sb->runs.idle_waiters;
		sb->runs.idle_waiters = w;
		added = true;
	}
	pthread_mutex_unlock(&sb->lock);
	return added;
}

void run_abort_all(struct sandbox *sb)
{
	struct run_item *items;
	struct run_waiter *idle = NULL;

	pthread_mutex_lock(&sb->lock);
	items = sb->runs.head;
	sb->runs.head = sb->runs.tail = NULL;
	if (!sb->runs.running) {
		idle = sb->runs.idle_waiters;
		sb->runs.idle_waiters = NULL;
	}
	pthread_mutex_unlock(&sb->lock);
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

void run_wait_worker(struct sandbox *sb)
{
	pthread_mutex_lock(&sb->lock);
	while (sb->runs.running)
		pthread_cond_wait(&sb->idle_cond, &sb->lock);
	pthread_mutex_unlock(&sb->lock);
}

int run_open_latest(struct sandbox *sb, const char *ctx, const char *which)
{
	char path[4300];
	uint64_t n;
	int fd;

	if (ctx)
		return -ENOENT;
	pthread_mutex_lock(&sb->lock);
	n = sb->runs.latest;
	if (!n || (strcmp(which, "exit") == 0 && !sb->runs.latest_done)) {
		pthread_mutex_unlock(&sb->lock);
		return -ENOENT;
	}
	pthread_mutex_unlock(&sb->lock);
	snprintf(path, sizeof(path), "%s/runs/%llu/%s", sb->dir, (unsigned long long)n, which);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

char *run_last_code(struct sandbox *sb, const char *ctx, enum run_lang lang, size_t *len)
{
	char *code = NULL;

	if (ctx)
		return NULL;
	pthread_mutex_lock(&sb->lock);
	if (sb->runs.last_code[lang]) {
		code = malloc(sb->runs.last_code_len[lang] + 1);
		if (code) {
			memcpy(code, sb->runs.last_code[lang], sb->runs.last_code_len[lang]);
			*len = sb->runs.last_code_len[lang];
		}
	}
	pthread_mutex_unlock(&sb->lock);
	return code;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t *scan_runs(const char *dir, size_t *count)
{
	size_t n = 0, cap = 0;
	uint64_t *v = NULL;
	struct dirent *de;
	DIR *d = opendir(dir);

	*count = 0;
	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		char *end;
		unsigned long long x = strtoull(de->d_name, &end, 10);

		if (!de->d_name[0] || *end || de->d_name[0] == '0')
			continue;
		if (n == cap) {
			uint64_t *grown = realloc(v, (cap ? cap * 2 : 32) * sizeof(*v));

			if (!grown)
				break;
			v = grown;
			cap = cap ? cap * 2 : 32;
		}
		v[n++] = x;
	}
	closedir(d);
	if (v)
		qsort(v, n, sizeof(*v), cmp_u64);
	*count = n;
	return v;
}

uint64_t *run_history(struct sandbox *sb, const char *ctx, size_t *n)
{
	char path[4200];

	if (ctx) {
		*n = 0;
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/runs", sb->dir);
	return scan_runs(path, n);
}

int run_open_file(struct sandbox *sb, const char *ctx, uint64_t n, const char *which)
{
	char path[4300];
	int fd;

	if (ctx)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/runs/%llu/%s", sb->dir, (unsigned long long)n, which);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

void run_load_history(struct sandbox *sb)
{
	char path[4300];
	uint64_t *v;
	size_t n;
	struct stat st;

	snprintf(path, sizeof(path), "%s/runs", sb->dir);
	v = scan_runs(path, &n);
	if (!n) {
		free(v);
		return;
	}
	sb->runs.latest = v[n - 1];
	sb->runs.next = v[n - 1] + 1;
	snprintf(path, sizeof(path), "%s/runs/%llu/exit", sb->dir, (unsigned long long)v[n - 1]);
	sb->runs.latest_done = stat(path, &st) == 0;
	free(v);
}

int run_set_stdin(struct sandbox *sb, const char *ctx, const char *buf, size_t len)
{
	char *copy;

	if (ctx)
		return -ENOTSUP;
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	pthread_mutex_lock(&sb->lock);
	free(sb->runs.stdin_buf);
	sb->runs.stdin_buf = copy;
	sb->runs.stdin_len = len;
	pthread_mutex_unlock(&sb->lock);
	return 0;
}
