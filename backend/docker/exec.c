/*
 * exec.c - spawn, wait_proc and kill_proc over the Engine's exec API.
 *
 * spawn: POST /containers/NAME/exec runs a small /bin/sh wrapper (DK_WRAPPER below) as
 * 1000:1000 with the run's env and cwd; POST /exec/ID/start is hijacked and one pump thread per
 * process feeds the script bytes and then stdin_fd into it, and splits the multiplexed output
 * (8-byte frame headers) into stdout_fd/stderr_fd. wait_proc joins the pump and reads ExitCode
 * from GET /exec/ID/json; free_proc frees the handle once the waiter and every killer are done.
 *
 * The wrapper makes a private directory /tmp/.sbxfs/SEQ.RAND, reads exactly the script's length
 * from stdin into it (the rest of stdin is the program's), starts the program with setsid, so
 * it leads its own session and process group, writes that pid to DIR/pid, waits, removes DIR
 * and exits with the program's status (128+N when it was killed by signal N).
 *
 * kill_proc: on a local engine, from the host: every descendant of the wrapper (its host pid
 * comes from exec inspect) and the program's process group get the signal. On a remote engine,
 * a second exec runs `kill -SIG -PGID` with the pgid read from DIR/pid.
 */
#include "dk.h"
#include "../util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* $1 dir, $2 script length or "-", $3 script path or "-", then the program's argv. */
static const char DK_WRAPPER[] =
	"d=$1 n=$2 f=$3; shift 3\n"
	"mkdir -p /tmp/.sbxfs 2>/dev/null; mkdir -m 700 \"$d\" || exit 126\n"
	"if [ \"$n\" != - ]; then head -c \"$n\" >\"$f\" || { rm -rf \"$d\"; exit 126; }; fi\n"
	"if ! command -v \"$1\" >/dev/null 2>&1; then\n"
	"  echo \"sbxfs: $1: command not found\" >&2; rm -rf \"$d\"; exit 127\n"
	"fi\n"
	"command -v setsid >/dev/null 2>&1 || setsid() { \"$@\"; }\n"
	"exec 3<&0\n"
	"setsid \"$@\" 0<&3 3<&- &\n"
	"echo $! >\"$d/pid\"\n"
	"exec 3<&- 0</dev/null\n"
	"wait $!\n"
	"s=$?\n"
	"rm -rf \"$d\"\n"
	"exit $s\n";

/* How long the stream of a killed process may stay open before it is given up. */
#define DK_KILL_GRACE_NS (1000ULL * 1000000)
#define DK_PUMP_BUF 65536

struct sbx_proc {
	/* Not the sbx_instance: the control plane may kill and wait for a process (a context's
	 * interpreter) after destroy has freed its sandbox's instance. */
	struct sbx_backend *be;
	char *cname;                 /* the container's name, a copy */
	char exec_id[72];
	char dir[64];
	struct dk_stream st;
	int in_fd, out_fd, err_fd;   /* our dups; -1: none */
	char *script;                /* copy; fed before stdin */
	size_t script_len;

	pthread_t pump;
	int wake_fd;                 /* eventfd: kill_proc wakes the pump to start its grace */
	_Atomic uint64_t give_up_ns; /* after a SIGKILL: when the stream is given up; 0: none */
	int pump_errno;              /* the pump's own; read after the join */
	bool abandoned;              /* the pump gave the stream up (see dk_pump_round) */

	pthread_mutex_t lock;        /* fields below; held for the whole of kill_proc; a leaf lock */
	bool pump_started;
	bool ended;                  /* wait_proc has seen the end: kills are no-ops */
	long host_pid;               /* the wrapper's pid on the host; 0: not known yet */
	int pidfd;                   /* the wrapper, host side; -1: not open */
};

static void dk_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void dk_drain_wake(struct sbx_proc *p)
{
	uint64_t v;

	if (read(p->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		p->pump_errno = errno;
}

static void dk_proc_free(struct sbx_proc *p)
{
	dk_stream_close(&p->st);
	dk_close(&p->in_fd);
	dk_close(&p->out_fd);
	dk_close(&p->err_fd);
	dk_close(&p->wake_fd);
	dk_close(&p->pidfd);
	free(p->script);
	free(p->cname);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* --- the stream ------------------------------------------------------------ */

int dk_demux_feed(struct dk_demux *d, const char *buf, size_t len,
		  int (*emit)(void *ctx, int stream, const char *data, size_t n), void *ctx)
{
	while (len) {
		if (d->left == 0) {
			size_t take = sizeof(d->hdr) - d->hdr_len;

			if (take > len)
				take = len;
			memcpy(d->hdr + d->hdr_len, buf, take);
			d->hdr_len += take;
			buf += take;
			len -= take;
			if (d->hdr_len < sizeof(d->hdr))
				return 0;
			d->stream = d->hdr[0];
			d->left = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 |
				  (uint32_t)d->hdr[6] << 8 | d->hdr[7];
			d->hdr_len = 0;
			continue;
		}
		{
			size_t n = len < d->left ? len : d->left;
			int r = emit(ctx, d->stream, buf, n);

			if (r < 0)
				return r;
			buf += n;
			len -= n;
			d->left -= (uint32_t)n;
		}
	}
	return 0;
}

static int dk_write_all(int *fd, const char *p, size_t n)
{
	while (n && *fd >= 0) {
		ssize_t w = write(*fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = *fd, .events = POLLOUT};

			poll(&pf, 1, -1);
			continue;
		}
		if (w < 0) {
			/* The reader went away: the rest of this stream is dropped. */
			dk_close(fd);
			return 0;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int dk_emit(void *ctx, int stream, const char *data, size_t n)
{
	struct sbx_proc *p = ctx;

	if (stream == 1)
		return dk_write_all(&p->out_fd, data, n);
	if (stream == 2)
		return dk_write_all(&p->err_fd, data, n);
	return 0;   /* stdin echo (0) or unknown: nothing to do */
}

/* What the pump keeps between rounds. */
struct dk_pump {
	struct dk_demux dm;
	char *rbuf, *ibuf;
	size_t script_off, in_off, in_len;
	bool in_eof, wr_shut;
};

/* Milliseconds until the pump stops waiting for a killed process's stream; -1: no kill yet. */
static int dk_give_up_in(struct sbx_proc *p)
{
	uint64_t at = atomic_load(&p->give_up_ns), now;

	if (!at)
		return -1;
	now = dk_now_ns();
	return now >= at ? 0 : (int)((at - now) / 1000000) + 1;
}

/* Output from the engine. Returns false when the stream has ended. */
static bool dk_pump_recv(struct sbx_proc *p, struct dk_pump *s)
{
	long r = dk_stream_recv(&p->st, s->rbuf, DK_PUMP_BUF);

	if (r == 0)
		return false;   /* the program and everything holding its stdout are done */
	if (r > 0)
		dk_demux_feed(&s->dm, s->rbuf, (size_t)r, dk_emit, p);
	else if (r != -EAGAIN) {
		p->pump_errno = (int)-r;
		return false;
	}
	return true;
}

/* The script, then stdin, to the engine. */
static void dk_pump_send(struct sbx_proc *p, struct dk_pump *s)
{
	bool in_script = s->script_off < p->script_len;
	const char *src = in_script ? p->script + s->script_off : s->ibuf + s->in_off;
	size_t len = in_script ? p->script_len - s->script_off : s->in_len - s->in_off;
	long r = dk_stream_send(&p->st, src, len);

	if (r > 0) {
		if (in_script)
			s->script_off += (size_t)r;
		else
			s->in_off += (size_t)r;
	} else if (r != -EAGAIN) {
		/* The program closed its stdin: drop what is left of it. */
		s->script_off = p->script_len;
		s->in_off = s->in_len = 0;
		s->in_eof = s->wr_shut = true;
	}
}

static void dk_pump_read_stdin(struct sbx_proc *p, struct dk_pump *s)
{
	ssize_t r = read(p->in_fd, s->ibuf, DK_PUMP_BUF);

	if (r > 0) {
		s->in_off = 0;
		s->in_len = (size_t)r;
	} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
		s->in_eof = true;
	}
}

/* One round: waits for the stream, stdin or a kill, and moves what is ready. False: done. */
static bool dk_pump_round(struct sbx_proc *p, struct dk_pump *s)
{
	bool out_pending = s->script_off < p->script_len || s->in_off < s->in_len;
	struct pollfd pf[3] = {
		{.fd = p->st.fd, .events = POLLIN | (out_pending ? POLLOUT : 0)},
		{.fd = p->wake_fd, .events = POLLIN},
		{.fd = -1},
	};
	int n, tmo = dk_give_up_in(p);

	if (tmo == 0) {
		/* Killed, and the stream is still open a while later: something the kill could not
		 * reach holds it (a stopped or frozen process, one that left the tree). */
		p->abandoned = true;
		return false;
	}
	if (!out_pending && s->in_eof && !s->wr_shut) {
		shutdown(p->st.fd, SHUT_WR);   /* the program sees EOF on its stdin */
		s->wr_shut = true;
	}
	if (!out_pending && !s->in_eof)
		pf[2] = (struct pollfd){.fd = p->in_fd, .events = POLLIN};
	if (p->st.pending_len)
		pf[0].revents = POLLIN;   /* bytes that came with the HTTP answer */
	else if ((n = poll(pf, 3, tmo)) < 0 && errno != EINTR) {
		p->pump_errno = errno;
		return false;
	} else if (n <= 0) {
		return true;
	}
	if (pf[1].revents)
		dk_drain_wake(p);
	if ((pf[0].revents & (POLLIN | POLLHUP | POLLERR)) && !dk_pump_recv(p, s))
		return false;
	if (out_pending && (pf[0].revents & POLLOUT))
		dk_pump_send(p, s);
	if (pf[2].revents & (POLLIN | POLLHUP | POLLERR))
		dk_pump_read_stdin(p, s);
	return true;
}

static void *dk_pump_main(void *arg)
{
	struct sbx_proc *p = arg;
	struct dk_pump s = {.in_eof = p->in_fd < 0};
	sigset_t pipe_set;

	/* A reader that closed its pipe gives EPIPE here, not a SIGPIPE for the whole daemon. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	s.rbuf = malloc(DK_PUMP_BUF);
	s.ibuf = malloc(DK_PUMP_BUF);
	if (!s.rbuf || !s.ibuf)
		p->pump_errno = ENOMEM;
	while (!p->pump_errno && dk_pump_round(p, &s))
		;
	free(s.rbuf);
	free(s.ibuf);
	/* Closing our copies now: the control plane sees EOF on its pipes when the run ends. */
	dk_close(&p->out_fd);
	dk_close(&p->err_fd);
	dk_close(&p->in_fd);
	return NULL;
}

/* --- spawn ----------------------------------------------------------------- */

static int dk_dup(int fd, int *out, struct sbx_err *err)
{
	*out = -1;
	if (fd < 0)
		return 0;
	*out = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return *out < 0 ? sbx_err_sys(err, errno, "dup") : 0;
}

static struct json_object *dk_exec_body(const struct sbx_exec *ex, const char *dir,
					const char *script_path, size_t script_len)
{
	struct json_object *o = json_object_new_object(), *cmd, *env;
	char nbuf[32];

	cmd = json_object_new_array();
	json_object_array_add(cmd, json_object_new_string("/bin/sh"));
	json_object_array_add(cmd, json_object_new_string("-c"));
	json_object_array_add(cmd, json_object_new_string(DK_WRAPPER));
	json_object_array_add(cmd, json_object_new_string("sbxfs-run"));
	json_object_array_add(cmd, json_object_new_string(dir));
	snprintf(nbuf, sizeof(nbuf), "%zu", script_len);
	json_object_array_add(cmd, json_object_new_string(script_path ? nbuf : "-"));
	json_object_array_add(cmd, json_object_new_string(script_path ? script_path : "-"));
	for (size_t i = 0; ex->argv[i]; i++) {
		const char *a = ex->argv[i];

		if (script_path && strcmp(a, "{script}") == 0)
			a = script_path;
		json_object_array_add(cmd, json_object_new_string(a));
	}
	env = json_object_new_array();
	for (size_t i = 0; ex->envp && ex->envp[i]; i++)
		json_object_array_add(env, json_object_new_string(ex->envp[i]));

	json_object_object_add(o, "AttachStdin", json_object_new_boolean(1));
	json_object_object_add(o, "AttachStdout", json_object_new_boolean(1));
	json_object_object_add(o, "AttachStderr", json_object_new_boolean(1));
	json_object_object_add(o, "Tty", json_object_new_boolean(0));
	json_object_object_add(o, "User", json_object_new_string("1000:1000"));
	json_object_object_add(o, "WorkingDir", json_object_new_string(ex->cwd ? ex->cwd : "/home/user"));
	json_object_object_add(o, "Env", env);
	json_object_object_add(o, "Cmd", cmd);
	return o;
}

/* POST /containers/NAME/exec; a container that stopped (engine restart) is started first
 * when inst is given. */
static int dk_exec_create(struct sbx_backend *be, const char *cname, struct sbx_instance *inst,
			  const char *body, char *id, size_t idlen, struct sbx_err *err)
{
	struct dk_resp resp = {0};
	struct json_object *obj;
	char *path = NULL;
	int r;

	if (asprintf(&path, "/containers/%s/exec", cname) < 0)
		return sbx_err_set(err, ENOMEM, "out of memory");
	r = dk_request(&be->eng, "POST", path, body, DK_TIMEOUT_MS, &resp, err);
	if (r == -EBUSY && inst && resp.body && strstr(resp.body, "is not running")) {
		dk_resp_free(&resp);
		sbx_err_clear(err);
		r = dk_container_start(inst, err);
		if (r == 0)
			r = dk_request(&be->eng, "POST", path, body, DK_TIMEOUT_MS, &resp, err);
	}
	free(path);
	if (r < 0) {
		dk_resp_free(&resp);
		return r;
	}
	obj = dk_json_parse(&resp, "exec create", err);
	dk_resp_free(&resp);
	if (!obj)
		return -err->code;
	if (!dk_json_str(obj, "Id")) {
		json_object_put(obj);
		return sbx_err_set(err, EPROTO, "docker: exec create gave no id");
	}
	snprintf(id, idlen, "%s", dk_json_str(obj, "Id"));
	json_object_put(obj);
	return 0;
}

/* A process handle: its private directory's name (DIR), a copy of the script, the eventfd. */
static struct sbx_proc *dk_proc_new(struct sbx_instance *inst, const struct sbx_exec *ex,
				    struct sbx_err *err)
{
	struct sbx_proc *p = calloc(1, sizeof(*p));
	uint32_t rnd = 0;
	uint64_t seq;

	if (!p) {
		sbx_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	p->be = inst->be;
	p->in_fd = p->out_fd = p->err_fd = p->pidfd = -1;
	p->st.fd = -1;
	pthread_mutex_init(&p->lock, NULL);
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_fd < 0) {
		sbx_err_sys(err, errno, "eventfd");
		dk_proc_free(p);
		return NULL;
	}
	pthread_mutex_lock(&inst->lock);
	seq = ++inst->exec_seq;
	pthread_mutex_unlock(&inst->lock);
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)dk_now_ns();
	snprintf(p->dir, sizeof(p->dir), "/tmp/.sbxfs/%llu.%08x", (unsigned long long)seq, rnd);
	p->cname = strdup(inst->cname);
	p->script = ex->script ? malloc(ex->script_len ? ex->script_len : 1) : NULL;
	if (!p->cname || (ex->script && !p->script)) {
		sbx_err_set(err, ENOMEM, "out of memory");
		dk_proc_free(p);
		return NULL;
	}
	if (ex->script)
		memcpy(p->script, ex->script, ex->script_len);
	p->script_len = ex->script ? ex->script_len : 0;
	return p;
}

/* Our copies of the three descriptors; stdin non-blocking for the pump. */
static int dk_dup_fds(struct sbx_proc *p, const struct sbx_exec *ex, struct sbx_err *err)
{
	int r = dk_dup(ex->stdin_fd, &p->in_fd, err);

	if (r == 0)
		r = dk_dup(ex->stdout_fd, &p->out_fd, err);
	if (r == 0)
		r = dk_dup(ex->stderr_fd, &p->err_fd, err);
	if (r == 0 && p->in_fd >= 0)
		fcntl(p->in_fd, F_SETFL, fcntl(p->in_fd, F_GETFL) | O_NONBLOCK);
	return r;
}

/* POST /exec/ID/start, hijacked, and the pump thread on its stream. */
static int dk_exec_start(struct sbx_proc *p, struct sbx_err *err)
{
	char path[128];
	int r;

	snprintf(path, sizeof(path), "/exec/%s/start", p->exec_id);
	r = dk_hijack(&p->be->eng, path, "{\"Detach\":false,\"Tty\":false}", &p->st, err);
	if (r < 0)
		return r;
	r = pthread_create(&p->pump, NULL, dk_pump_main, p);
	if (r != 0)
		return sbx_err_sys(err, r, "starting the exec stream thread");
	p->pump_started = true;
	return 0;
}

int dk_exec_spawn(struct sbx_instance *inst, const struct sbx_exec *ex, struct sbx_proc **out,
		  struct sbx_err *err)
{
	struct json_object *body;
	char script_path[160];
	struct sbx_proc *p;
	int r;

	*out = NULL;
	if (!ex->argv || !ex->argv[0])
		return sbx_err_set(err, EINVAL, "empty command");
	if (ex->script && (!ex->script_name || !*ex->script_name || strchr(ex->script_name, '/')))
		return sbx_err_set(err, EINVAL, "bad script name '%s'",
				   ex->script_name ? ex->script_name : "");
	p = dk_proc_new(inst, ex, err);
	if (!p)
		return sbx_err_wrap(err, "starting '%s'", ex->argv[0]);
	if (ex->script)
		snprintf(script_path, sizeof(script_path), "%s/%s", p->dir, ex->script_name);
	body = dk_exec_body(ex, p->dir, ex->script ? script_path : NULL, ex->script_len);
	r = body ? dk_exec_create(p->be, p->cname, inst,
				  json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN),
				  p->exec_id, sizeof(p->exec_id), err)
		 : sbx_err_set(err, ENOMEM, "out of memory");
	json_object_put(body);
	if (r == 0)
		r = dk_dup_fds(p, ex, err);
	if (r == 0)
		r = dk_exec_start(p, err);
	if (r < 0) {
		/* An exec created but never started holds nothing in the engine. */
		dk_proc_free(p);
		return sbx_err_wrap(err, "starting '%s'", ex->argv[0]);
	}
	*out = p;
	return 0;
}

/* --- wait ------------------------------------------------------------------ */

static int dk_exec_inspect(struct sbx_proc *p, struct json_object **out, struct sbx_err *err)
{
	struct dk_resp resp = {0};
	char path[128];
	int r;

	snprintf(path, sizeof(path), "/exec/%s/json", p->exec_id);
	r = dk_request(&p->be->eng, "GET", path, NULL, DK_TIMEOUT_MS, &resp, err);
	*out = r == 0 ? dk_json_parse(&resp, "exec inspect", err) : NULL;
	if (r == 0 && !*out)
		r = -err->code;
	dk_resp_free(&resp);
	return r;
}

static void dk_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The exit of a process the engine says has ended; false while it runs. */
static bool dk_exec_ended(struct json_object *obj, struct sbx_exit *out)
{
	struct json_object *code = dk_json_path(obj, "ExitCode");

	if (dk_json_bool(obj, "Running") || !code || !json_object_is_type(code, json_type_int))
		return false;
	dk_exit_from_code(dk_json_int(obj, "ExitCode", 255), out);
	return true;
}

/*
 * A killed process whose stream was given up: the wrapper itself (stopped, traced or holding
 * on) is killed too where the host can reach it, so the engine ends the exec.
 */
static void dk_finish_abandoned(struct sbx_proc *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->pidfd >= 0) {
		pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
		pidfd_send_signal(p->pidfd, SIGCONT, NULL, 0);
	}
	pthread_mutex_unlock(&p->lock);
}

int dk_exec_wait(struct sbx_proc *p, struct sbx_exit *out, struct sbx_err *err)
{
	struct json_object *obj = NULL;
	long delay = 1;
	int fails = 0, r = 0;

	if (p->pump_started)
		pthread_join(p->pump, NULL);
	p->pump_started = false;
	if (p->abandoned)
		dk_finish_abandoned(p);
	/*
	 * The stream ends when the program's output is closed; the engine records the exit code
	 * when the process is reaped, which may come a moment later - or much later, when the
	 * program closed its output and went on (until a kill_proc and its grace).
	 */
	for (;;) {
		r = dk_exec_inspect(p, &obj, err);
		if (r == 0 && dk_exec_ended(obj, out))
			break;
		if (r == -ENOENT || p->abandoned || dk_give_up_in(p) == 0) {
			/* The container went away with its execs, or the process was killed and
			 * its end cannot be waited for: either way it was killed. */
			sbx_err_clear(err);
			*out = (struct sbx_exit){.signaled = true, .code = SIGKILL};
			r = 0;
			break;
		}
		if (r < 0 && ++fails >= 5)
			break;
		json_object_put(obj);
		obj = NULL;
		dk_sleep_ms(delay);
		if (delay < 100)
			delay *= 2;
	}
	json_object_put(obj);
	/* Over: a kill that comes later has nothing to signal (and must not look for it). */
	pthread_mutex_lock(&p->lock);
	p->ended = true;
	pthread_mutex_unlock(&p->lock);
	return r;
}

void dk_exec_free(struct sbx_proc *p)
{
	/* The contract says wait_proc has returned; if it was never called, the pump would
	 * still use p: end the process and the pump first rather than free under it. */
	if (p->pump_started) {
		dk_exec_kill(p, SIGKILL);
		pthread_join(p->pump, NULL);
	}
	dk_proc_free(p);
}

/* --- kill ------------------------------------------------------------------ */

struct dk_pp {
	pid_t pid, ppid;
};

/* Every (pid, ppid) of the host; caller frees. */
static size_t dk_proc_table(struct dk_pp **out)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t n = 0, cap = 0;

	*out = NULL;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct sbx_proc_stat st;

		if (!isdigit((unsigned char)de->d_name[0]) || sbx_proc_stat((pid_t)atoi(de->d_name), &st) < 0)
			continue;
		if (n == cap) {
			struct dk_pp *t = realloc(*out, (cap ? cap * 2 : 256) * sizeof(**out));

			if (!t)
				break;
			*out = t;
			cap = cap ? cap * 2 : 256;
		}
		(*out)[n].pid = (pid_t)atoi(de->d_name);
		(*out)[n].ppid = st.ppid;
		n++;
	}
	closedir(d);
	return n;
}

/*
 * Signals every descendant of root (not root itself), process groups first. Until one of them
 * leads its own session (the program, after the wrapper's setsid), only the wrapper's short
 * helpers (mkdir, head) run, and nothing is signalled unless force. Returns how many got it.
 */
static int dk_kill_tree(pid_t root, int sig, bool force)
{
	struct dk_pp *t;
	size_t n = dk_proc_table(&t), qn = 0;
	pid_t *q = n ? malloc(n * sizeof(*q)) : NULL;
	bool leader = false;
	int hit = 0;

	if (!q) {
		free(t);
		return 0;
	}
	/* Breadth first from root: q holds the descendants found so far. */
	for (size_t i = 0; i < n; i++)
		if (t[i].ppid == root)
			q[qn++] = t[i].pid;
	for (size_t k = 0; k < qn; k++)
		for (size_t i = 0; i < n; i++)
			if (t[i].ppid == q[k] && qn < n)
				q[qn++] = t[i].pid;
	for (size_t k = 0; k < qn; k++)
		if (getsid(q[k]) == q[k])
			leader = true;
	for (size_t k = 0; (leader || force) && k < qn; k++) {
		/* A process killed through its group may be reaped before its own kill: either
		 * one reaching it counts. */
		bool got = getpgid(q[k]) == q[k] && kill(-q[k], sig) == 0;

		if (kill(q[k], sig) == 0 || got)
			hit++;
	}
	free(q);
	free(t);
	return hit;
}

/* True when /proc/PID/cgroup names the container (cgroup v1 or v2, either cgroup driver). */
static bool dk_pid_in_container(long pid, const char *container_id)
{
	char path[64], buf[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/cgroup", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strlen(container_id) >= 12 && strstr(buf, container_id) != NULL;
}

/*
 * The wrapper's host pid from exec inspect, held as a pidfd, so that no later signal reaches a
 * process that took its pid over. 0: found; 1: not started yet; -ESRCH: it has ended;
 * -ENOTSUP: the engine runs in another pid namespace; another negative errno: no answer.
 */
static int dk_find_wrapper(struct sbx_proc *p, bool first)
{
	struct json_object *obj = NULL;
	struct sbx_err err = {0};
	const char *cid;
	bool running;
	long pid;
	int r = 0;

	if (dk_exec_inspect(p, &obj, &err) < 0)
		return -err.code;
	pid = (long)dk_json_int(obj, "Pid", 0);
	running = dk_json_bool(obj, "Running");
	cid = dk_json_str(obj, "ContainerID");
	if (!pid) {
		r = running || first ? 1 : -ESRCH;
	} else {
		p->pidfd = pidfd_open((pid_t)pid, 0);
		if (p->pidfd >= 0 && !dk_pid_in_container(pid, cid ? cid : "")) {
			/* Not ours: another pid namespace, or the pid already reused. */
			dk_close(&p->pidfd);
			r = running ? -ENOTSUP : -ESRCH;
		} else if (p->pidfd < 0) {
			r = running && errno == ESRCH ? -ENOTSUP : -ESRCH;
		} else {
			p->host_pid = pid;
		}
	}
	json_object_put(obj);
	return r;
}

static int dk_kill_local(struct sbx_proc *p, int sig)
{
	/* Right after spawn the engine may not have started the wrapper, nor the wrapper the
	 * program: try for up to two seconds. */
	for (int i = 0; i < 400; i++) {
		if (p->pidfd < 0) {
			int r = dk_find_wrapper(p, i == 0);

			if (r == 1) {
				dk_sleep_ms(5);
				continue;
			}
			if (r < 0)
				return r;
		}
		if (pidfd_send_signal(p->pidfd, 0, NULL, 0) < 0)
			return -ESRCH;   /* the wrapper is gone: the host lost the tree */
		if (dk_kill_tree((pid_t)p->host_pid, sig, i == 399) > 0) {
			/* Code that stopped the wrapper (kill -STOP -1) must not keep it from
			 * reaping the program and ending the exec. */
			if (sig == SIGKILL)
				pidfd_send_signal(p->pidfd, SIGCONT, NULL, 0);
			return 0;
		}
		dk_sleep_ms(5);
	}
	return -ESRCH;
}

/* wait_pid: the wrapper may not have written DIR/pid yet (right after spawn); false when it is
 * known to have run (the host saw it gone), so a DIR it removed at its end is not waited for. */
static int dk_kill_remote(struct sbx_proc *p, int sig, bool wait_pid)
{
	struct json_object *o = json_object_new_object(), *cmd = json_object_new_array();
	struct dk_resp resp = {0};
	struct sbx_err err = {0};
	char script[1280], path[160], id[72];
	int r;

	/* The program's pid from DIR/pid; then, as dk_kill_tree does on a local engine, every
	 * descendant of it (PPid in /proc, walked until no more are found, before anything is
	 * signalled so none is orphaned first) and its process group. */
	snprintf(script, sizeof(script),
		 "i=%d; while [ ! -s %s/pid ] && [ $i -lt 50 ]; do sleep 0.02; i=$((i+1)); done; "
		 "p=$(cat %s/pid 2>/dev/null) || exit 0; t=\" $p \"; n=0; "
		 "while [ $n -ne ${#t} ]; do n=${#t}; for s in /proc/[0-9]*/status; do "
		 "q=${s#/proc/}; q=${q%%/status}; case $t in *\" $q \"*) continue;; esac; v=; "
		 "{ while read -r k v; do [ \"$k\" = PPid: ] && break; v=; done <\"$s\"; } 2>/dev/null; "
		 "case $t in *\" $v \"*) t=\"$t$q \";; esac; done; done; "
		 "w=; { while read -r k v; do [ \"$k\" = PPid: ] && w=$v && break; done "
		 "</proc/$p/status; } 2>/dev/null; "
		 "kill -%d -$p 2>/dev/null; kill -%d $t 2>/dev/null; %s exit 0",
		 wait_pid ? 0 : 50, p->dir, p->dir, sig, sig,
		 /* a wrapper the code stopped must go on to reap the program and end the exec */
		 sig == SIGKILL ? "[ -n \"$w\" ] && kill -CONT $w 2>/dev/null;" : "");
	json_object_array_add(cmd, json_object_new_string("/bin/sh"));
	json_object_array_add(cmd, json_object_new_string("-c"));
	json_object_array_add(cmd, json_object_new_string(script));
	json_object_object_add(o, "User", json_object_new_string("1000:1000"));
	json_object_object_add(o, "Cmd", cmd);
	r = dk_exec_create(p->be, p->cname, NULL,
			   json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), id,
			   sizeof(id), &err);
	json_object_put(o);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/exec/%s/start", id);
	r = dk_request(&p->be->eng, "POST", path, "{\"Detach\":true,\"Tty\":false}",
		       DK_TIMEOUT_MS, &resp, &err);
	dk_resp_free(&resp);
	return r;
}

int dk_exec_kill(struct sbx_proc *p, int sig)
{
	uint64_t none = 0, one = 1;
	int r = -ENOTSUP;

	/* Whatever the code did to be unkillable, the run ends a grace after this (dk_pump_round). */
	if (sig == SIGKILL &&
	    atomic_compare_exchange_strong(&p->give_up_ns, &none, dk_now_ns() + DK_KILL_GRACE_NS) &&
	    write(p->wake_fd, &one, sizeof(one)) < 0)
		return -errno;   /* an eventfd written once cannot overflow: not seen */
	pthread_mutex_lock(&p->lock);
	if (p->ended)
		r = 0;
	else if (p->be->eng.local)
		r = dk_kill_local(p, sig);
	/* A remote engine; or the wrapper ended (killed by the code, or the run is over): the
	 * program, if it still runs, is found from inside by the pid its wrapper wrote. */
	if (r == -ENOTSUP || r == -ESRCH)
		r = dk_kill_remote(p, sig, r == -ENOTSUP);
	pthread_mutex_unlock(&p->lock);
	return r;
}
