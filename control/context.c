/*
 * context.c - persistent contexts: contexts/NAME/ of a sandbox, with one
 * long-lived interpreter per language, started on first use.
 *
 * An interpreter is a driver program (control/drivers/) started through the
 * backend like any run, with three pipes. The daemon writes a command to its
 * stdin ("NONCE CODE_LEN STDIN_LEN\n", the code, the stdin bytes); the code's
 * output comes back on stdout and stderr as it is written, so it streams to
 * runs/N/ like a fresh process's output; the end of a run is a marker line on
 * stderr, "\x1eSBXFS" NONCE ":" JSON "\n", followed by the bytes of the PNG
 * figures it names. The nonce is new for every run, so neither earlier
 * markers nor output that happens to look like one can end a run.
 *
 * Threads: a context's runs go through its own run queue (run.c) and its
 * interpreters are touched only by that queue's worker, or once the worker is
 * gone (rmdir, shutdown). On disk: sb->dir/contexts/NAME/runs/N/.
 */
#include "sandbox.h"
#include "ctl_parse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MARKER_JSON_MAX (8u << 20)
#define MARKER_PNG_MAX (32u << 20)
#define MARKER_PNG_COUNT 64
#define READS_PER_ROUND 16

static const char *const driver_files[RUN_LANG_COUNT] = { "python_ctx.py", "node_ctx.js", "bash_ctx.sh" };
static const char *const interp_names[RUN_LANG_COUNT] = { "python", "node", "bash" };

/* ---- the list ---- */

struct context *ctx_find_locked(struct sandbox *sb, const char *name)
{
	for (struct context *c = sb->contexts; c; c = c->next)
		if (!c->dead && strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static struct context *ctx_alloc(struct sandbox *sb, const char *name)
{
	struct context *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->dir, sizeof(c->dir), "%s/contexts/%s", sb->dir, name);
	c->runs.next = 1;
	c->runs.sb = sb;
	c->runs.ctx = c;
	c->abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (int i = 0; i < RUN_LANG_COUNT; i++)
		c->interp[i] = (struct ctx_interp){ .in_fd = -1, .out_fd = -1, .err_fd = -1 };
	if (c->abort_fd < 0) {
		free(c);
		return NULL;
	}
	return c;
}

static void ctx_free(struct context *c)
{
	run_queue_free(&c->runs);
	if (c->abort_fd >= 0)
		close(c->abort_fd);
	free(c);
}

int ctx_create(struct sandbox *sb, const char *name, struct sbx_err *err)
{
	char path[4300];
	struct context *c;
	int ret;

	ret = ctl_check_name(name, err);
	if (ret)
		return ret;
	pthread_mutex_lock(&sb->lock);
	if (sb->dead) {
		ret = sbx_err_set(err, ENOENT, "sandbox '%s' is gone", sb->name);
		goto out_unlock;
	}
	if (ctx_find_locked(sb, name)) {
		ret = sbx_err_set(err, EEXIST, "context '%s' already exists", name);
		goto out_unlock;
	}
	c = ctx_alloc(sb, name);
	if (!c) {
		ret = sbx_err_set(err, ENOMEM, "out of resources making context '%s'", name);
		goto out_unlock;
	}
	snprintf(path, sizeof(path), "%s/contexts", sb->dir);
	if ((mkdir(path, 0700) && errno != EEXIST) || (mkdir(c->dir, 0700) && errno != EEXIST)) {
		ret = sbx_err_sys(err, errno, "cannot create '%s'", c->dir);
		ctx_free(c);
		goto out_unlock;
	}
	c->next = sb->contexts;
	sb->contexts = c;
out_unlock:
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

bool ctx_exists(struct sandbox *sb, const char *name)
{
	bool found;

	pthread_mutex_lock(&sb->lock);
	found = !sb->dead && ctx_find_locked(sb, name);
	pthread_mutex_unlock(&sb->lock);
	return found;
}

char **ctx_names(struct sandbox *sb)
{
	size_t n = 0, i = 0;
	char **names;

	pthread_mutex_lock(&sb->lock);
	for (struct context *c = sb->contexts; c; c = c->next)
		n++;
	names = calloc(n + 1, sizeof(*names));
	for (struct context *c = sb->contexts; names && c; c = c->next)
		if (!c->dead && (names[i] = strdup(c->name)))
			i++;
	pthread_mutex_unlock(&sb->lock);
	if (names)
		qsort(names, i, sizeof(*names), sbx_cmp_str);
	return names;
}

/* ---- interpreters ---- */

static void interp_close(struct ctx_interp *ip)
{
	if (ip->in_fd >= 0)
		close(ip->in_fd);
	if (ip->out_fd >= 0)
		close(ip->out_fd);
	if (ip->err_fd >= 0)
		close(ip->err_fd);
	ip->in_fd = ip->out_fd = ip->err_fd = -1;
}

/* Ends an interpreter: SIGKILL to its tree (when kill), then reaps it. */
static void interp_end(struct sandbox *sb, struct ctx_interp *ip, bool kill, struct sbx_exit *how)
{
	struct sbx_exit ex = { .signaled = true, .code = SIGKILL };
	struct sbx_err err = { 0 };

	if (!ip->proc)
		return;
	if (kill)
		sb->ctl->ops->kill_proc(ip->proc, SIGKILL);
	if (sb->ctl->ops->wait_proc(ip->proc, &ex, &err))
		ex = (struct sbx_exit){ .signaled = true, .code = SIGKILL };
	/* Only the queue's worker (or the last thread, once it is gone) kills an interpreter. */
	sb->ctl->ops->free_proc(ip->proc);
	ip->proc = NULL;
	interp_close(ip);
	if (how)
		*how = ex;
}

void ctx_kill_interps(struct sandbox *sb, struct context *c)
{
	for (int i = 0; i < RUN_LANG_COUNT; i++)
		interp_end(sb, &c->interp[i], true, NULL);
}

/* The driver's source: beside sbxfs-agent once installed, or in the build tree's control/drivers/. */
static char *driver_source(struct sbx_ctl *ctl, enum run_lang lang, size_t *len, struct sbx_err *err)
{
	const char *dir = ctl->cfg.helper_dir ? ctl->cfg.helper_dir : SBX_HELPER_DIR;
	char path[4200];
	char *buf = NULL;
	struct stat st;
	int fd = -1;

	for (size_t i = 0; i < 2 && fd < 0; i++) {
		if (i == 0)
			snprintf(path, sizeof(path), "%s/%s", dir, driver_files[lang]);
		else
			snprintf(path, sizeof(path), "%s/../../control/drivers/%s", dir, driver_files[lang]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		sbx_err_sys(err, ENOENT, "cannot find the context driver '%s' in '%s'", driver_files[lang], dir);
		return NULL;
	}
	if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < (1 << 20))
		buf = malloc((size_t)st.st_size);
	if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size) {
		sbx_err_set(err, EIO, "cannot read the context driver '%s'", path);
		free(buf);
		close(fd);
		return NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static int interp_start(struct sandbox *sb, struct ctx_interp *ip, enum run_lang lang, struct sbx_err *err)
{
	static const char node_shell[] = "exec 3<&0 0</dev/null; exec node \"$0\"";
	const char *argv_py[] = { "python3", "{script}", NULL };
	const char *argv_js[] = { "bash", "-c", node_shell, "{script}", NULL };
	const char *argv_sh[] = { "bash", "--noprofile", "--norc", "{script}", NULL };
	const char *const *argv[RUN_LANG_COUNT] = { argv_py, argv_js, argv_sh };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, er[2] = { -1, -1 };
	struct sbx_exec ex = { 0 };
	char **envp = NULL, *script;
	size_t script_len = 0;
	int ret;

	script = driver_source(sb->ctl, lang, &script_len, err);
	if (!script)
		return -err->code;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC)) {
		ret = sbx_err_sys(err, errno, "cannot make pipes");
		goto out;
	}
	envp = run_envp(sb);
	if (!envp) {
		ret = sbx_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	ex.argv = argv[lang];
	ex.envp = (const char *const *)envp;
	ex.cwd = "/home/user";
	ex.stdin_fd = in[0];
	ex.stdout_fd = out[1];
	ex.stderr_fd = er[1];
	ex.script = script;
	ex.script_len = script_len;
	ex.script_name = driver_files[lang];
	pthread_mutex_lock(&sb->op_lock);
	if (!sb->inst || !sandbox_alive(sb))
		ret = sbx_err_set(err, ENOENT, "sandbox '%s' is not running", sb->name);
	else
		ret = sb->ctl->ops->spawn(sb->inst, &ex, &ip->proc, err);
	pthread_mutex_unlock(&sb->op_lock);
	if (ret) {
		ip->proc = NULL;
		sbx_err_wrap(err, "cannot start the %s interpreter", interp_names[lang]);
		goto out;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(er[0], F_SETFL, O_NONBLOCK);
	ip->in_fd = in[1];
	ip->out_fd = out[0];
	ip->err_fd = er[0];
	in[1] = out[0] = er[0] = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (er[i] >= 0)
			close(er[i]);
	}
	ctl_strv_free(envp);
	free(script);
	return ret;
}

/* Reads what an idle interpreter wrote since its last run and drops it; false at EOF (it is gone). */
static bool interp_drop_stale(struct ctx_interp *ip)
{
	char buf[65536];
	int fds[2] = { ip->out_fd, ip->err_fd };

	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < 64; k++) {
			ssize_t n = read(fds[i], buf, sizeof(buf));

			if (n == 0)
				return false;
			if (n < 0)
				break;
		}
	}
	return true;
}

/* ---- the end-of-run markers on stderr and stdout ---- */

#define STDOUT_MARK_WAIT_MS 2000

enum { M_SCAN, M_JSON, M_PNG, M_DONE };

struct marker {
	char prefix[64];
	size_t plen;
	size_t matched;       /* prefix bytes seen and held back */
	int state;
	char *json;
	size_t json_len, json_cap;
	bool bad;             /* the marker line made no sense */
	int exit_code;
	char *result;
	size_t npng, png_i, png_have;
	size_t png_len[MARKER_PNG_COUNT];
	char *png[MARKER_PNG_COUNT];
};

static void marker_parse(struct marker *m)
{
	json_object *j = json_tokener_parse(m->json ? m->json : "");
	json_object *v, *a;

	m->state = M_DONE;
	if (!j || !json_object_is_type(j, json_type_object)) {
		m->bad = true;
		goto out;
	}
	m->exit_code = json_object_object_get_ex(j, "exit", &v) ? json_object_get_int(v) & 0xff : 1;
	if (json_object_object_get_ex(j, "result", &v) && json_object_is_type(v, json_type_string))
		m->result = strdup(json_object_get_string(v));
	if (json_object_object_get_ex(j, "png", &a) && json_object_is_type(a, json_type_array)) {
		size_t n = json_object_array_length(a);

		for (size_t i = 0; i < n && i < MARKER_PNG_COUNT; i++) {
			int64_t len = json_object_get_int64(json_object_array_get_idx(a, i));

			if (len <= 0 || len > MARKER_PNG_MAX || !(m->png[i] = malloc((size_t)len))) {
				/* Nothing sensible can follow: take the run as ended, without figures. */
				m->bad = true;
				break;
			}
			m->png_len[i] = (size_t)len;
			m->npng = i + 1;
		}
		if (!m->bad && m->npng)
			m->state = M_PNG;
	}
out:
	if (j)
		json_object_put(j);
}

/* Feeds stderr bytes: output goes to the spool, the marker is taken out. */
static void marker_feed(struct marker *m, const char *buf, size_t n, struct spool *err_spool, uint64_t cap)
{
	size_t i = 0;

	while (i < n) {
		switch (m->state) {
		case M_SCAN: {
			const char *p;

			if (m->matched) {
				if (buf[i] == m->prefix[m->matched]) {
					i++;
					if (++m->matched == m->plen)
						m->state = M_JSON;
					continue;
				}
				spool_put(err_spool, m->prefix, m->matched, cap);
				m->matched = 0;
				continue;
			}
			p = memchr(buf + i, m->prefix[0], n - i);
			if (!p) {
				spool_put(err_spool, buf + i, n - i, cap);
				i = n;
				break;
			}
			spool_put(err_spool, buf + i, (size_t)(p - (buf + i)), cap);
			i = (size_t)(p - buf) + 1;
			m->matched = 1;
			break;
		}
		case M_JSON: {
			const char *nl = memchr(buf + i, '\n', n - i);
			size_t take = nl ? (size_t)(nl - (buf + i)) : n - i;

			if (m->json_len + take + 1 > m->json_cap && m->json_len + take < MARKER_JSON_MAX) {
				size_t cap2 = (m->json_len + take + 1) * 2;
				char *grown = realloc(m->json, cap2);

				if (grown) {
					m->json = grown;
					m->json_cap = cap2;
				}
			}
			if (m->json && m->json_len + take + 1 <= m->json_cap) {
				memcpy(m->json + m->json_len, buf + i, take);
				m->json_len += take;
				m->json[m->json_len] = '\0';
			} else {
				m->bad = true;
			}
			i += take;
			if (nl) {
				i++;
				if (m->bad)
					m->state = M_DONE;
				else
					marker_parse(m);
			}
			break;
		}
		case M_PNG: {
			size_t need = m->png_len[m->png_i] - m->png_have;
			size_t take = need < n - i ? need : n - i;

			memcpy(m->png[m->png_i] + m->png_have, buf + i, take);
			m->png_have += take;
			i += take;
			if (m->png_have == m->png_len[m->png_i]) {
				m->png_i++;
				m->png_have = 0;
				if (m->png_i == m->npng)
					m->state = M_DONE;
			}
			break;
		}
		default:
			i = n;  /* after the marker: not this run's */
			break;
		}
	}
}

static void marker_free(struct marker *m)
{
	free(m->json);
	free(m->result);
	for (size_t i = 0; i < MARKER_PNG_COUNT; i++)
		free(m->png[i]);
}

void ctx_outcome_free(struct ctx_outcome *o)
{
	free(o->result);
	for (size_t i = 0; i < o->npng; i++)
		free(o->png[i]);
	free(o->png);
	free(o->png_len);
	o->result = NULL;
	o->png = NULL;
	o->png_len = NULL;
	o->npng = 0;
}

/* ---- one run ---- */

static void note(struct spool *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct spool *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && s->out >= 0 && write(s->out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
		fprintf(stderr, "sbxfs: warning: cannot write a note to a run's stderr: %m\n");
}

/* Reads up to a few chunks; returns false at EOF. */
static bool read_some(int fd, struct spool *s, struct marker *m, uint64_t cap)
{
	char buf[65536];

	for (int k = 0; k < READS_PER_ROUND; k++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return false;
		if (n < 0)
			return !(errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
		if (m)
			marker_feed(m, buf, (size_t)n, s, cap);
		else
			spool_put(s, buf, (size_t)n, cap);
	}
	return true;
}

static char *make_command(const char *nonce, const char *code, size_t len, const char *in, ssize_t in_len,
			  size_t *total)
{
	char head[128];
	int hn = snprintf(head, sizeof(head), "%s %zu %zd\n", nonce, len, in_len);
	size_t extra = in_len > 0 ? (size_t)in_len : 0;
	char *buf = malloc((size_t)hn + len + extra);

	if (!buf)
		return NULL;
	memcpy(buf, head, (size_t)hn);
	memcpy(buf + hn, code, len);
	if (extra)
		memcpy(buf + hn + len, in, extra);
	*total = (size_t)hn + len + extra;
	return buf;
}

int ctx_exec(struct sandbox *sb, struct context *c, enum run_lang lang, const char *code, size_t len,
	     const char *stdin_buf, ssize_t stdin_len, uint64_t timeout_s, struct spool *out,
	     struct spool *err_spool, struct ctx_outcome *o, struct sbx_err *err)
{
	struct ctx_interp *ip = &c->interp[lang];
	uint64_t cap = sb->ctl->cfg.output_max, deadline;
	struct marker m = { .state = M_SCAN }, mo = { .state = M_SCAN };
	unsigned char raw[16];
	char nonce[33], *cmd;
	size_t total = 0, sent = 0;
	bool out_eof = false, err_eof = false;
	int ret;

	o->exit_code = -1;
	if (ip->proc && !interp_drop_stale(ip)) {
		struct sbx_exit ex;

		interp_end(sb, ip, true, &ex);
		note(err_spool, "[sbxfs: the %s interpreter of context '%s' had ended (%s %d); a new one runs this code, "
			  "earlier state is lost]\n", interp_names[lang], c->name, ex.signaled ? "signal" : "exit",
		     ex.code);
	}
	if (!ip->proc) {
		ret = interp_start(sb, ip, lang, err);
		if (ret)
			return ret;
	}
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return sbx_err_sys(err, errno, "cannot make a run nonce");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
	m.plen = (size_t)snprintf(m.prefix, sizeof(m.prefix), "\x1eSBXFS%s:", nonce);
	/* stdout carries its own end marker: the engine may deliver it after stderr's */
	memcpy(mo.prefix, m.prefix, sizeof(mo.prefix));
	mo.plen = m.plen;
	cmd = make_command(nonce, code, len, stdin_buf, stdin_buf ? stdin_len : -1, &total);
	if (!cmd)
		return sbx_err_set(err, ENOMEM, "out of memory");

	deadline = sbx_mono_ms() + timeout_s * 1000;
	for (;;) {
		struct pollfd pfd[4] = {
			{ .fd = out_eof ? -1 : ip->out_fd, .events = POLLIN },
			{ .fd = err_eof ? -1 : ip->err_fd, .events = POLLIN },
			{ .fd = sent < total ? ip->in_fd : -1, .events = POLLOUT },
			{ .fd = c->abort_fd, .events = POLLIN },
		};
		uint64_t now = sbx_mono_ms();

		if (poll(pfd, 4, now >= deadline ? 0 : (int)(deadline - now)) < 0 && errno != EINTR) {
			ret = sbx_err_sys(err, errno, "poll");
			interp_end(sb, ip, true, NULL);
			goto out;
		}
		if (pfd[2].revents) {
			ssize_t n = write(ip->in_fd, cmd + sent, total - sent);

			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				sent = total;   /* it is gone: the EOFs below tell */
		}
		if (pfd[0].revents && !read_some(ip->out_fd, out, &mo, cap))
			out_eof = true;
		if (pfd[1].revents && !read_some(ip->err_fd, err_spool, &m, cap))
			err_eof = true;
		if (m.state == M_DONE) {
			/*
			 * Wait for stdout's marker too (bounded: a driver whose stdout
			 * the code closed sends none), so no output is left behind.
			 */
			uint64_t grace = sbx_mono_ms() + STDOUT_MARK_WAIT_MS;

			while (!out_eof && mo.state != M_DONE) {
				struct pollfd p = { .fd = ip->out_fd, .events = POLLIN };
				uint64_t t = sbx_mono_ms();

				if (t >= grace || poll(&p, 1, (int)(grace - t)) <= 0)
					break;
				if (!read_some(ip->out_fd, out, &mo, cap))
					out_eof = true;
			}
			o->exit_code = m.bad ? 1 : m.exit_code;
			if (m.bad)
				note(err_spool, "[sbxfs: the %s interpreter of context '%s' sent a garbled end of run]\n",
				     interp_names[lang], c->name);
			break;
		}
		if (out_eof && err_eof) {
			struct sbx_exit ex;

			spool_put(err_spool, m.prefix, m.matched, cap);
			interp_end(sb, ip, true, &ex);
			o->exit_code = ex.signaled ? 128 + ex.code : ex.code;
			note(err_spool, "[sbxfs: the %s interpreter of context '%s' ended (%s %d); the next run starts a "
				  "new one]\n", interp_names[lang], c->name, ex.signaled ? "signal" : "exit", ex.code);
			break;
		}
		if (pfd[3].revents) {
			interp_end(sb, ip, true, NULL);
			o->exit_code = 128 + SIGKILL;
			note(err_spool, "\n[sbxfs: context '%s' is being removed; the run was stopped]\n", c->name);
			break;
		}
		if (sbx_mono_ms() >= deadline) {
			read_some(ip->out_fd, out, NULL, cap);
			read_some(ip->err_fd, err_spool, &m, cap);
			interp_end(sb, ip, true, NULL);
			o->exit_code = 124;
			o->timed_out = true;
			note(err_spool, "\n[sbxfs: run timed out after %llu s and was killed; the %s interpreter of "
				  "context '%s' was restarted, its earlier state is lost]\n",
			     (unsigned long long)timeout_s, interp_names[lang], c->name);
			break;
		}
	}
	ret = 0;
	if (m.result) {
		o->result = m.result;
		m.result = NULL;
	}
	if (m.state == M_DONE && !m.bad && m.npng) {
		o->png = calloc(m.npng, sizeof(char *));
		o->png_len = calloc(m.npng, sizeof(size_t));
		if (o->png && o->png_len) {
			for (size_t i = 0; i < m.npng; i++) {
				o->png[i] = m.png[i];
				o->png_len[i] = m.png_len[i];
				m.png[i] = NULL;
			}
			o->npng = m.npng;
		}
	}
out:
	marker_free(&m);
	marker_free(&mo);
	free(cmd);
	return ret;
}

/* ---- rmdir, start-up, shut-down ---- */

int ctx_destroy(struct sandbox *sb, const char *name, struct sbx_err *err)
{
	struct run_item *items;
	struct run_waiter *idle;
	struct context *c, **pp;
	uint64_t one = 1;

	pthread_mutex_lock(&sb->lock);
	c = ctx_find_locked(sb, name);
	if (!c) {
		pthread_mutex_unlock(&sb->lock);
		return sbx_err_set(err, ENOENT, "no context '%s'", name);
	}
	c->dead = true;
	items = c->runs.head;
	c->runs.head = c->runs.tail = NULL;
	if (write(c->abort_fd, &one, sizeof(one)) < 0)
		fprintf(stderr, "sbxfs: warning: cannot stop the run of context '%s': %m\n", name);
	while (c->runs.running)
		pthread_cond_wait(&sb->idle_cond, &sb->lock);
	idle = c->runs.idle_waiters;
	c->runs.idle_waiters = NULL;
	for (pp = &sb->contexts; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&sb->lock);
	run_fail_items(items, idle);
	ctx_kill_interps(sb, c);
	sbx_rm_rf(c->dir);
	ctx_free(c);
	return 0;
}

void ctx_load_all(struct sandbox *sb)
{
	char path[4300];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/contexts", sb->dir);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		struct sbx_err err = { 0 };
		struct context *c;

		if (de->d_name[0] == '.' || ctl_check_name(de->d_name, &err))
			continue;
		c = ctx_alloc(sb, de->d_name);
		if (!c)
			break;
		pthread_mutex_lock(&sb->lock);
		c->next = sb->contexts;
		sb->contexts = c;
		pthread_mutex_unlock(&sb->lock);
	}
	closedir(d);
}

void ctx_free_all(struct sandbox *sb)
{
	while (sb->contexts) {
		struct context *c = sb->contexts;

		sb->contexts = c->next;
		ctx_kill_interps(sb, c);
		ctx_free(c);
	}
}
