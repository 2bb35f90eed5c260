/*
 * ctx_exec.c - one run in a context's interpreter.
 *
 * The daemon writes a command to the driver's stdin ("NONCE CODE_LEN
 * STDIN_LEN\n", the code, the stdin bytes); the code's output comes back on
 * stdout and stderr as it is written and streams to runs/N/ under the cap;
 * the end of the run is a frame on each stream (ctx_proto.h), whose result
 * and figures are written to runs/N/ as they come, never held.
 *
 * The code shares the driver's process, so it can forge a frame: what a
 * frame says is checked against hard caps before it is used, and the result
 * and figures of one run together keep at most output_max bytes on disk,
 * like each of stdout and stderr. A frame that breaks the syntax ends the
 * interpreter (the stream cannot be trusted to be in step any more).
 */
#include "context.h"
#include "ctx_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define READS_PER_ROUND 16
#define STDOUT_FRAME_WAIT_MS 2000
#define POLL_MAX_MS 60000
#define TIMEOUT_MAX_S (100ull * 365 * 86400)  /* past this, the ms arithmetic below could wrap */

enum run_end { END_FRAME, END_EOF, END_ABORT, END_TIMEOUT, END_ERROR };

struct ctx_run {
	struct sandbox *sb;
	struct context *c;
	enum run_lang lang;
	struct ctx_interp *ip;
	struct spool *out, *err;
	uint64_t cap;                   /* output_max: per stream, and for result and figures */
	struct ctx_parser po, pe;       /* stdout's frame, stderr's frame */
	struct ctx_sink so, se;
	const char *dir;                /* runs/N */
	uint64_t used;                  /* bytes of result and figures kept */
	int item_fd;                    /* the result or figure being written, or -1 */
	char item_path[4400];
	size_t nfig;                    /* figures kept whole */
	char *cmd;
	size_t total, sent;
	bool out_eof, err_eof;
	uint64_t deadline;
};

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
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot write a note to a run's stderr");
}

/* ---- what the frames carry: the sinks ---- */

static void out_bytes(void *arg, const char *buf, size_t n)
{
	struct ctx_run *r = arg;

	spool_put(r->out, buf, n, r->cap);
}

static void err_bytes(void *arg, const char *buf, size_t n)
{
	struct ctx_run *r = arg;

	spool_put(r->err, buf, n, r->cap);
}

static bool item_begin(void *arg, size_t idx, uint64_t len)
{
	struct ctx_run *r = arg;
	uint64_t need = idx ? len : len + 1;   /* a result ends with a newline, as `exit` does */

	if (need > r->cap - r->used) {
		if (idx)
			note(r->err, "[sbxfs: figure %zu (%llu bytes) not kept: the result and figures of one run "
				     "keep at most %llu bytes (output_max)]\n", idx, (unsigned long long)len,
			     (unsigned long long)r->cap);
		else
			note(r->err, "[sbxfs: the result (%llu bytes) not kept: it is over output_max, %llu bytes]\n",
			     (unsigned long long)len, (unsigned long long)r->cap);
		return false;
	}
	if (idx)
		snprintf(r->item_path, sizeof(r->item_path), "%s/figure-%zu.png", r->dir, r->nfig + 1);
	else
		snprintf(r->item_path, sizeof(r->item_path), "%s/result", r->dir);
	r->item_fd = open(r->item_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (r->item_fd < 0) {
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot create '%s'", r->item_path);
		return false;
	}
	r->used += need;
	return true;
}

static void item_write(struct ctx_run *r, const char *buf, size_t n)
{
	while (n && r->item_fd >= 0) {
		ssize_t w = write(r->item_fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot write '%s'", r->item_path);
			close(r->item_fd);
			unlink(r->item_path);
			r->item_fd = -1;
			return;
		}
		buf += w;
		n -= (size_t)w;
	}
}

static void item_data(void *arg, size_t idx, const char *buf, size_t n)
{
	(void)idx;
	item_write(arg, buf, n);
}

static void item_end(void *arg, size_t idx, bool kept)
{
	struct ctx_run *r = arg;

	if (!kept || r->item_fd < 0)
		return;
	if (!idx)
		item_write(r, "\n", 1);
	if (r->item_fd >= 0) {
		close(r->item_fd);
		r->item_fd = -1;
		if (idx)
			r->nfig++;
	}
}

/* The run ended inside an item: what was written of it goes. */
static void item_abort(struct ctx_run *r)
{
	if (r->item_fd < 0)
		return;
	close(r->item_fd);
	unlink(r->item_path);
	r->item_fd = -1;
}

/* ---- the streams ---- */

/* Reads up to a few chunks while the frame has not ended; returns false at EOF. */
static bool read_some(int fd, struct ctx_parser *p, const struct ctx_sink *s)
{
	char buf[65536];

	for (int k = 0; k < READS_PER_ROUND && p->state != CTX_P_DONE; k++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		ctx_parser_feed(p, buf, (size_t)n, s);
	}
	return true;
}

static void send_some(struct ctx_run *r)
{
	ssize_t n = write(r->ip->in_fd, r->cmd + r->sent, r->total - r->sent);

	if (n > 0)
		r->sent += (size_t)n;
	else if (n < 0 && errno != EAGAIN && errno != EINTR)
		r->sent = r->total;   /* it is gone: the EOFs tell */
}

static void poll_set(const struct ctx_run *r, struct pollfd pfd[4])
{
	bool want_out = !r->out_eof && r->po.state != CTX_P_DONE;

	pfd[0] = (struct pollfd){ .fd = want_out ? r->ip->out_fd : -1, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = r->err_eof ? -1 : r->ip->err_fd, .events = POLLIN };
	pfd[2] = (struct pollfd){ .fd = r->sent < r->total ? r->ip->in_fd : -1, .events = POLLOUT };
	pfd[3] = (struct pollfd){ .fd = r->c->abort_fd, .events = POLLIN };
}

/* Moves the bytes poll said are ready: the command in, the output out. */
static void poll_serve(struct ctx_run *r, const struct pollfd pfd[4])
{
	if (pfd[2].revents)
		send_some(r);
	if (pfd[0].revents && !read_some(r->ip->out_fd, &r->po, &r->so))
		r->out_eof = true;
	if (pfd[1].revents && !read_some(r->ip->err_fd, &r->pe, &r->se))
		r->err_eof = true;
}

static enum run_end exec_loop(struct ctx_run *r, struct sbx_err *err)
{
	for (;;) {
		struct pollfd pfd[4];
		uint64_t now = sbx_mono_ms(), left = now >= r->deadline ? 0 : r->deadline - now;

		poll_set(r, pfd);
		if (poll(pfd, 4, left < POLL_MAX_MS ? (int)left : POLL_MAX_MS) < 0 && errno != EINTR) {
			sbx_err_sys(err, errno, "poll");
			return END_ERROR;
		}
		poll_serve(r, pfd);
		if (r->pe.state == CTX_P_DONE)
			return END_FRAME;
		if (r->out_eof && r->err_eof)
			return END_EOF;
		if (pfd[3].revents)
			return END_ABORT;
		if (sbx_mono_ms() >= r->deadline)
			return END_TIMEOUT;
	}
}

/*
 * Waits for stdout's frame too (bounded: a driver whose stdout the code
 * closed sends none), so that no output is left behind: the docker engine
 * may deliver stdout after stderr.
 */
static void wait_stdout_frame(struct ctx_run *r)
{
	uint64_t grace = sbx_mono_ms() + STDOUT_FRAME_WAIT_MS;

	while (!r->out_eof && r->po.state != CTX_P_DONE) {
		struct pollfd p = { .fd = r->ip->out_fd, .events = POLLIN };
		uint64_t t = sbx_mono_ms();

		if (t >= grace || poll(&p, 1, (int)(grace - t)) <= 0)
			break;
		if (!read_some(r->ip->out_fd, &r->po, &r->so))
			r->out_eof = true;
	}
}

static void end_frame(struct ctx_run *r, struct ctx_outcome *o)
{
	const char *bad;

	wait_stdout_frame(r);
	bad = r->pe.bad ? r->pe.bad : r->po.bad;
	if (!bad) {
		o->exit_code = r->pe.exit_code;
		return;
	}
	interp_stop(r->sb, r->c, r->lang, NULL);
	o->exit_code = 1;
	note(r->err, "[sbxfs: the %s interpreter of context '%s' sent a malformed end of run (%s); it was "
		     "stopped and the next run starts a new one, earlier state is lost]\n",
	     ctx_interp_names[r->lang], r->c->name, bad);
}

static void end_other(struct ctx_run *r, enum run_end how, uint64_t timeout_s, struct ctx_outcome *o)
{
	struct sbx_exit ex = { .signaled = true, .code = SIGKILL };
	const char *lang = ctx_interp_names[r->lang];

	if (how == END_TIMEOUT) {
		read_some(r->ip->out_fd, &r->po, &r->so);
		read_some(r->ip->err_fd, &r->pe, &r->se);
	}
	ctx_parser_flush(&r->po, &r->so);
	ctx_parser_flush(&r->pe, &r->se);
	item_abort(r);
	interp_stop(r->sb, r->c, r->lang, &ex);
	if (how == END_EOF) {
		o->exit_code = ex.signaled ? 128 + ex.code : ex.code;
		note(r->err, "[sbxfs: the %s interpreter of context '%s' ended (%s %d); the next run starts a "
			     "new one]\n", lang, r->c->name, ex.signaled ? "signal" : "exit", ex.code);
	} else if (how == END_ABORT) {
		o->exit_code = 128 + SIGKILL;
		note(r->err, "\n[sbxfs: context '%s' is being removed; the run was stopped]\n", r->c->name);
	} else if (how == END_TIMEOUT) {
		o->exit_code = 124;
		o->timed_out = true;
		note(r->err, "\n[sbxfs: run timed out after %llu s and was killed; the %s interpreter of "
			     "context '%s' was restarted, its earlier state is lost]\n",
		     (unsigned long long)timeout_s, lang, r->c->name);
	}
}

/* ---- one run ---- */

/* A live interpreter for the run, saying so when an earlier one's state is gone. */
static int interp_ready(struct ctx_run *r, struct sbx_err *err)
{
	struct ctx_interp *ip = r->ip;
	const char *lang = ctx_interp_names[r->lang];

	if (ip->proc && !interp_drop_stale(ip)) {
		struct sbx_exit ex;

		interp_stop(r->sb, r->c, r->lang, &ex);
		note(r->err, "[sbxfs: the %s interpreter of context '%s' had ended (%s %d); a new one runs this "
			     "code, earlier state is lost]\n", lang, r->c->name, ex.signaled ? "signal" : "exit",
		     ex.code);
	}
	if (ip->lost) {
		ip->lost = false;
		note(r->err, "[sbxfs: the %s interpreter of context '%s' did not survive the restart of sbxfs; a new "
			     "one runs this code, earlier state is lost]\n", lang, r->c->name);
	}
	if (ip->proc)
		return 0;
	return interp_start(r->sb, r->c, r->lang, err);
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

static int make_nonce(char nonce[CTX_NONCE_LEN + 1], struct sbx_err *err)
{
	unsigned char raw[CTX_NONCE_LEN / 2];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return sbx_err_sys(err, errno, "cannot make a run nonce");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

static void run_init(struct ctx_run *r, struct sandbox *sb, struct context *c, enum run_lang lang,
		     struct spool *out, struct spool *err_spool, const char *dir)
{
	memset(r, 0, sizeof(*r));
	r->sb = sb;
	r->c = c;
	r->lang = lang;
	r->ip = &c->interp[lang];
	r->out = out;
	r->err = err_spool;
	r->cap = sb->ctl->cfg.output_max;
	r->dir = dir;
	r->item_fd = -1;
	r->so = (struct ctx_sink){ out_bytes, item_begin, item_data, item_end, r };
	r->se = (struct ctx_sink){ err_bytes, item_begin, item_data, item_end, r };
}

int ctx_exec(struct sandbox *sb, struct context *c, enum run_lang lang, const char *code, size_t len,
	     const char *stdin_buf, ssize_t stdin_len, uint64_t timeout_s, struct spool *out,
	     struct spool *err_spool, struct ctx_outcome *o, struct sbx_err *err)
{
	struct ctx_run *r = malloc(sizeof(*r));
	char nonce[CTX_NONCE_LEN + 1];
	enum run_end how;
	int ret;

	if (!r)
		return sbx_err_set(err, ENOMEM, "out of memory");
	run_init(r, sb, c, lang, out, err_spool, o->dir);
	o->exit_code = -1;
	ret = interp_ready(r, err);
	if (!ret)
		ret = make_nonce(nonce, err);
	if (ret)
		goto out;
	ctx_parser_init(&r->po, nonce, false);
	ctx_parser_init(&r->pe, nonce, true);
	r->cmd = make_command(nonce, code, len, stdin_buf, stdin_buf ? stdin_len : -1, &r->total);
	if (!r->cmd) {
		ret = sbx_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	r->deadline = sbx_mono_ms() + (timeout_s < TIMEOUT_MAX_S ? timeout_s : TIMEOUT_MAX_S) * 1000;
	how = exec_loop(r, err);
	if (how == END_FRAME) {
		end_frame(r, o);
	} else if (how == END_ERROR) {
		item_abort(r);
		interp_stop(sb, c, lang, NULL);
		ret = -err->code;
	} else {
		end_other(r, how, timeout_s, o);
	}
	o->npng = r->nfig;
out:
	item_abort(r);
	free(r->cmd);
	free(r);
	return ret;
}

int ctx_check_code(enum run_lang lang, const char *code, size_t len, struct sbx_err *err)
{
	const char *nul = lang == RUN_BASH ? memchr(code, '\0', len) : NULL;

	if (nul)
		return sbx_err_set(err, EINVAL, "bash code holds a NUL byte (at byte %zu), which bash cannot run",
				   (size_t)(nul - code));
	return 0;
}
