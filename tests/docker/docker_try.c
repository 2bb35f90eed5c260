/*
 * docker_try.c - drives the docker backend (backend/docker/) against a real engine, through the
 * ops table of backend.h only, the way the control plane will. Not installed.
 *
 *   docker_try [--host URL] [--engine-restart] [--remote]   checks; prints "N passed, N failed"
 *   docker_try --host URL bench [N]                         create and run latencies vs the CLI
 *
 * URL defaults to $DOCKER_HOST, else /var/run/docker.sock, else the engine of
 * tests/docker/start-dockerd.sh. Exits 77 (skip) when no engine answers. --engine-restart also
 * stops and starts the engine with tests/docker/{stop,start}-dockerd.sh (found beside this
 * source, or in $SBXFS_DOCKER_SCRIPTS). --remote: the host is tcp://, expect no files/.
 */
#include "../../backend/docker/dk.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const struct sbx_backend_ops *ops = &sbx_docker_backend;
static int passed, failed;
static const char *host;

/* Used in checks() only, where `e` is the last error: cleared after each check. */
#define CHECK(cond, ...) do { check_(!!(cond), #cond, __VA_ARGS__); sbx_err_clear(&e); } while (0)

static void check_(int ok, const char *expr, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (!ok)
		printf("   [%s]", expr);
	printf("\n");
	fflush(stdout);
	if (ok)
		passed++;
	else
		failed++;
}

static double now_ms(void)
{
	return (double)dk_now_ns() / 1e6;
}

/* --- running a process and collecting its output ---------------------------- */

struct sink {
	int fd;
	char *buf;
	size_t len;
	pthread_t th;
};

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	char tmp[65536];
	ssize_t n;

	while ((n = read(s->fd, tmp, sizeof(tmp))) > 0 || (n < 0 && errno == EINTR)) {
		if (n <= 0)
			continue;
		/* Keep the first MiB; count the rest. */
		if (s->len < (1 << 20)) {
			size_t keep = (size_t)n;
			char *p = realloc(s->buf, s->len + keep + 1);

			if (!p)
				break;
			s->buf = p;
			memcpy(s->buf + s->len, tmp, keep);
			s->buf[s->len + keep] = '\0';
		}
		s->len += (size_t)n;
	}
	close(s->fd);
	return NULL;
}

struct run {
	struct sbx_exit ex;
	int rc;
	char *out, *err;
	size_t out_len, err_len;
	double ms;
	struct sbx_err e;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Spawns argv (script: replaces "{script}"), feeds input, waits; kill_after_ms > 0 kills. */
static struct run run_full(struct sbx_instance *in, const char *const *argv, const char *script,
			   const char *script_name, const char *input, const char *const *envp,
			   int kill_after_ms, int sig)
{
	static const char *const dflt_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/user",
					       "LANG=C.UTF-8", NULL};
	struct run r = {0};
	struct sink so = {0}, se = {0};
	int po[2], pe[2], pi[2] = {-1, -1};
	struct sbx_exec ex = {0};
	struct sbx_proc *p = NULL;
	double t0 = now_ms();

	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || (input && pipe2(pi, O_CLOEXEC))) {
		r.rc = -errno;
		return r;
	}
	ex.argv = argv;
	ex.envp = envp ? envp : dflt_env;
	ex.stdin_fd = input ? pi[0] : -1;
	ex.stdout_fd = po[1];
	ex.stderr_fd = pe[1];
	ex.script = script;
	ex.script_len = script ? strlen(script) : 0;
	ex.script_name = script_name;
	r.rc = ops->spawn(in, &ex, &p, &r.e);
	/* As the control plane does: our ends of the child's pipes go once spawn returns. */
	close(po[1]);
	close(pe[1]);
	if (input)
		close(pi[0]);
	so.fd = po[0];
	se.fd = pe[0];
	pthread_create(&so.th, NULL, sink_main, &so);
	pthread_create(&se.th, NULL, sink_main, &se);
	if (r.rc == 0 && input) {
		size_t left = strlen(input);
		const char *q = input;

		while (left) {
			ssize_t n = write(pi[1], q, left);

			if (n <= 0)
				break;
			q += n;
			left -= (size_t)n;
		}
	}
	if (input)
		close(pi[1]);
	if (r.rc == 0 && kill_after_ms > 0) {
		nanosleep(&(struct timespec){kill_after_ms / 1000, (kill_after_ms % 1000) * 1000000L}, NULL);
		ops->kill_proc(p, sig);
	}
	if (r.rc == 0) {
		r.rc = ops->wait_proc(p, &r.ex, &r.e);
		ops->free_proc(p);
	}
	pthread_join(so.th, NULL);
	pthread_join(se.th, NULL);
	r.out = so.buf ? so.buf : strdup("");
	r.err = se.buf ? se.buf : strdup("");
	r.out_len = so.len;
	r.err_len = se.len;
	r.ms = now_ms() - t0;
	return r;
}

static struct run run_sh(struct sbx_instance *in, const char *cmd)
{
	const char *argv[] = {"sh", "-c", cmd, NULL};

	return run_full(in, argv, NULL, NULL, NULL, NULL, 0, 0);
}

/* --- engine-side helpers ------------------------------------------------------- */

static struct sbx_backend *be_g;

static long engine_status(const char *method, const char *path)
{
	struct dk_resp resp = {0};
	struct sbx_err e = {0};

	dk_request(&be_g->eng, method, path, NULL, DK_TIMEOUT_MS, &resp, &e);
	dk_resp_free(&resp);
	return resp.status;
}

static void make_spec(struct sbx_spec *s, char *id, size_t idlen, char *dir, size_t dirlen,
		      const char *name)
{
	snprintf(id, idlen, "%08x%08x", (unsigned)getpid(), (unsigned)(dk_now_ns() & 0xffffffffu));
	snprintf(dir, dirlen, "/tmp/sbxfs-docker-try-%s", id);
	mkdir(dir, 0700);
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->id = id;
	s->template_name = "default";
	s->state_dir = dir;
	s->limits.mem_bytes = 512ULL << 20;
	s->limits.cpu_millis = 1000;
	s->limits.pids = 256;
}

static int run_script(const char *name, const char *arg)
{
	const char *dir = getenv("SBXFS_DOCKER_SCRIPTS");
	char path[1024];
	char *argv[3];
	pid_t pid;
	int st = 0;

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : SBX_TRY_SCRIPTS, name);
	argv[0] = path;
	argv[1] = (char *)arg;
	argv[2] = NULL;
	if (posix_spawn(&pid, path, NULL, NULL, argv, environ) != 0)
		return -1;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --- checks ----------------------------------------------------------------------- */

static void *conc_main(void *arg)
{
	struct sbx_instance *in = arg;
	int *ok = malloc(sizeof(int));

	*ok = 1;
	for (int i = 0; i < 5; i++) {
		struct run r = run_sh(in, "echo $$");

		if (r.rc != 0 || r.ex.code != 0 || r.out_len < 2)
			*ok = 0;
		run_free(&r);
	}
	return ok;
}

/* kill_proc at a random moment around a short process's end, from another thread (issue 9). */
struct racer {
	struct sbx_proc *p;
	int delay_us;
};

static void *racer_main(void *arg)
{
	struct racer *rc = arg;

	nanosleep(&(struct timespec){0, (long)rc->delay_us * 1000L}, NULL);
	ops->kill_proc(rc->p, SIGKILL);
	return NULL;
}

static void race_checks(struct sbx_instance *in, int n)
{
	const char *argv[] = {"sh", "-c", "exit 7", NULL};
	struct sbx_err e = {0};
	int ok = 0, killed = 0;

	for (int i = 0; i < n; i++) {
		struct sbx_exec ex = {.argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
		struct racer rc = {.delay_us = (int)(random() % 50000)};
		struct sbx_exit x = {0};
		pthread_t th;

		if (ops->spawn(in, &ex, &rc.p, &e) < 0)
			continue;
		pthread_create(&th, NULL, racer_main, &rc);
		if (ops->wait_proc(rc.p, &x, &e) == 0 &&
		    ((!x.signaled && x.code == 7) || (x.signaled && x.code == SIGKILL)))
			ok++;
		killed += x.signaled;
		pthread_join(th, NULL);
		ops->free_proc(rc.p);
		sbx_err_clear(&e);
	}
	CHECK(ok == n, "kill_proc racing wait_proc %d times: %d ended as exit 7 or SIGKILL (%d killed)",
	      n, ok, killed);
}

static void checks(bool engine_restart, bool remote)
{
	struct sbx_err e = {0};
	struct sbx_spec spec, spec2;
	struct sbx_instance *in = NULL, *in2 = NULL;
	char id[32], dir[128], id2[32], dir2[128], path[256];
	struct run r;
	int rc;

	make_spec(&spec, id, sizeof(id), dir, sizeof(dir), "try1");
	double t0 = now_ms();
	rc = ops->create(be_g, &spec, &in, &e);
	CHECK(rc == 0, "create (%.0f ms, includes the default image when missing) %s", now_ms() - t0, e.msg);
	if (rc)
		return;
	CHECK(ops->status(in) == SBX_STATUS_RUNNING, "status running after create");
	snprintf(path, sizeof(path), "/containers/sbxfs-%s/json", id);
	CHECK(engine_status("GET", path) == 200, "container sbxfs-%s exists", id);

	{
		const char *argv[] = {"python3", "{script}", NULL};

		r = run_full(in, argv, "import sys\nprint(1+1)\nprint('e', file=sys.stderr)\n", "run.py",
			     NULL, NULL, 0, 0);
		CHECK(r.rc == 0 && r.ex.code == 0 && !r.ex.signaled && strcmp(r.out, "2\n") == 0 &&
		      strcmp(r.err, "e\n") == 0, "python3 script: out '%s' err '%s' (%.1f ms) %s",
		      r.out, r.err, r.ms, r.e.msg);
		run_free(&r);
	}
	{
		const char *argv[] = {"node", "{script}", NULL};

		r = run_full(in, argv, "console.log(6*7)\n", "run.js", NULL, NULL, 0, 0);
		CHECK(r.rc == 0 && r.ex.code == 0 && strcmp(r.out, "42\n") == 0,
		      "node script: '%s' (%.1f ms) %s", r.out, r.ms, r.e.msg);
		run_free(&r);
	}
	{
		const char *argv[] = {"bash", "{script}", NULL};

		r = run_full(in, argv, "echo out; echo err >&2; exit 3\n", "run.sh", NULL, NULL, 0, 0);
		CHECK(r.rc == 0 && r.ex.code == 3 && !r.ex.signaled && strcmp(r.out, "out\n") == 0 &&
		      strcmp(r.err, "err\n") == 0, "bash script exit 3: code %d out '%s' err '%s'",
		      r.ex.code, r.out, r.err);
		run_free(&r);
	}
	{
		const char *argv[] = {"sh", "-c", "id -u; pwd; echo $FOO; ls /tmp/.sbxfs | wc -l", NULL};
		const char *env[] = {"PATH=/usr/bin:/bin", "FOO=bar baz", NULL};

		r = run_full(in, argv, NULL, NULL, NULL, env, 0, 0);
		CHECK(r.rc == 0 && strncmp(r.out, "1000\n/home/user\nbar baz\n", 24) == 0,
		      "uid, cwd, env: '%s'", r.out);
		run_free(&r);
		r = run_sh(in, "ls -A /tmp/.sbxfs | wc -l");
		CHECK(r.rc == 0 && strcmp(r.out, "1\n") == 0, "script dirs removed after runs (only this one): '%s'", r.out);
		run_free(&r);
	}
	{
		const char *argv[] = {"cat", NULL};

		r = run_full(in, argv, NULL, NULL, "hello\nworld\n", NULL, 0, 0);
		CHECK(r.rc == 0 && strcmp(r.out, "hello\nworld\n") == 0, "stdin piped to cat: '%s'", r.out);
		run_free(&r);
	}
	{
		const char *argv[] = {"python3", "{script}", NULL};

		r = run_full(in, argv, "import sys\nprint(sys.stdin.read().upper())\n", "run.py",
			     "abc", NULL, 0, 0);
		CHECK(r.rc == 0 && strcmp(r.out, "ABC\n") == 0, "script and stdin together: '%s'", r.out);
		run_free(&r);
	}
	r = run_sh(in, "no-such-command-x");
	CHECK(r.rc == 0 && r.ex.code == 127, "missing command exits 127 (%d): %s", r.ex.code, r.err);
	run_free(&r);
	r = run_sh(in, "head -c 20000000 /dev/zero; head -c 3000000 /dev/zero >&2");
	CHECK(r.rc == 0 && r.out_len == 20000000 && r.err_len == 3000000,
	      "20 MB stdout + 3 MB stderr: %zu %zu (%.0f ms)", r.out_len, r.err_len, r.ms);
	run_free(&r);

	{
		const char *argv[] = {"bash", "-c", "sleep 300 & sleep 301 & (sleep 302; true) ; wait", NULL};

		r = run_full(in, argv, NULL, NULL, NULL, NULL, 300, SIGKILL);
		CHECK(r.rc == 0 && r.ex.signaled && r.ex.code == SIGKILL && r.ms < 3000,
		      "kill_proc SIGKILL: signaled %d code %d in %.0f ms %s", r.ex.signaled, r.ex.code,
		      r.ms, r.e.msg);
		run_free(&r);
		r = run_sh(in, "ps -e -o comm= | grep -c sleep");
		CHECK(r.rc == 0 && strcmp(r.out, "1\n") == 0, "no sleep left but PID 1's: '%s'", r.out);
		run_free(&r);
		r = run_full(in, argv, NULL, NULL, NULL, NULL, 1, SIGTERM);
		CHECK(r.rc == 0 && r.ms < 3000, "kill_proc right after spawn: code %d signaled %d in %.0f ms",
		      r.ex.code, r.ex.signaled, r.ms);
		run_free(&r);
	}
	race_checks(in, remote ? 20 : 60);
	{
		pthread_t th[4];
		int all = 1;

		for (int i = 0; i < 4; i++)
			pthread_create(&th[i], NULL, conc_main, in);
		for (int i = 0; i < 4; i++) {
			int *ok;

			pthread_join(th[i], (void **)&ok);
			all &= *ok;
			free(ok);
		}
		CHECK(all, "4 threads x 5 runs concurrently");
	}

	rc = ops->pause(in, &e);
	CHECK(rc == 0 && ops->status(in) == SBX_STATUS_PAUSED, "pause -> paused %s", e.msg);
	r = run_sh(in, "true");
	CHECK(r.rc == -EBUSY, "spawn while paused fails EBUSY (%d): %s", r.rc, r.e.msg);
	run_free(&r);
	rc = ops->resume(in, &e);
	CHECK(rc == 0 && ops->status(in) == SBX_STATUS_RUNNING, "resume -> running %s", e.msg);

	{
		struct sbx_metrics m;

		r = run_sh(in, "python3 -c 'import time\nt=time.time()\nwhile time.time()-t<0.4: pass' & "
			       "head -c 5000000 /dev/urandom > /tmp/blob; wait");
		run_free(&r);
		rc = ops->metrics(in, &m, &e);
		CHECK(rc == 0 && m.cpu_seconds > 0.3 && m.mem_used_bytes > 0 &&
		      m.mem_limit_bytes == 512ULL << 20 && m.pids >= 1 && m.disk_used_bytes >= 5000000,
		      "metrics: cpu %.2f s %.1f%%, mem %llu/%llu, pids %u, blk r %llu w %llu, used %llu, "
		      "net %llu/%llu %s", m.cpu_seconds, m.cpu_percent,
		      (unsigned long long)m.mem_used_bytes, (unsigned long long)m.mem_limit_bytes, m.pids,
		      (unsigned long long)m.disk_read_bytes, (unsigned long long)m.disk_write_bytes,
		      (unsigned long long)m.disk_used_bytes, (unsigned long long)m.net_rx_bytes,
		      (unsigned long long)m.net_tx_bytes, e.msg);
	}
	{
		struct sbx_limits l = spec.limits;

		l.mem_bytes = 256ULL << 20;
		l.pids = 64;
		rc = ops->set_limits(in, &l, &e);
		r = run_sh(in, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max "
			       "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null");
		CHECK(rc == 0 && strstr(r.out, "268435456") && strstr(r.out, "64"),
		      "set_limits mem 256M pids 64: '%s' %s", r.out, e.msg);
		run_free(&r);
		memset(&l, 0, sizeof(l));
		rc = ops->set_limits(in, &l, &e);
		r = run_sh(in, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
			       "/sys/fs/cgroup/pids/pids.max 2>/dev/null");
		CHECK(rc == 0 && !strstr(r.out, "268435456") && strstr(r.out, "\n-1\nmax\n"),
		      "set_limits all 0 lifts them: '%s' %s", r.out, e.msg);
		run_free(&r);
		rc = ops->set_limits(in, &spec.limits, &e);
		CHECK(rc == 0, "set_limits back to 512M %s", e.msg);
	}
	r = run_sh(in, "ping -c1 -W1 127.0.0.1 >/dev/null 2>&1; cat /proc/self/status | grep CapEff; "
		       "ls /sys/class/net");
	CHECK(strstr(r.out, "CapEff:\t0000000000000000") && strcmp(strstr(r.out, "\n") + 1, "lo\n") == 0,
	      "no capabilities, only lo: '%s'", r.out);
	run_free(&r);

	if (!remote) {
		int fd = -1, f;
		char buf[4096] = "";

		rc = ops->root_fd(in, &fd, &e);
		f = rc == 0 ? openat(fd, "etc/passwd", O_RDONLY | O_CLOEXEC) : -1;
		if (f >= 0) {
			ssize_t n = read(f, buf, sizeof(buf) - 1);

			buf[n > 0 ? n : 0] = '\0';
			close(f);
		}
		CHECK(rc == 0 && strstr(buf, "user:x:1000:1000"), "root_fd: etc/passwd readable %s", e.msg);
		if (fd >= 0)
			close(fd);
	} else {
		int fd = -1;

		rc = ops->root_fd(in, &fd, &e);
		CHECK(rc == -ENOTSUP, "root_fd on a remote engine: ENOTSUP (%s)", e.msg);
	}

	r = run_sh(in, "echo kept > /home/user/keep");
	run_free(&r);
	t0 = now_ms();
	rc = ops->restart(in, &e);
	r = run_sh(in, "cat /home/user/keep");
	CHECK(rc == 0 && ops->status(in) == SBX_STATUS_RUNNING && strcmp(r.out, "kept\n") == 0,
	      "restart keeps files (%.0f ms): '%s' %s", now_ms() - t0, r.out, e.msg);
	run_free(&r);

	/* Templates from local images: one labelled sbxfs.template=trycustom, and image:REF. */
	{
		struct dk_resp resp = {0};
		const struct sbx_template_info *const *t;
		struct sbx_instance *in3 = NULL;
		struct sbx_spec spec3 = spec;
		char id3[32], dir3[128];
		bool listed = false;

		snprintf(path, sizeof(path), "/commit?container=sbxfs-%s&repo=sbxfs-try-custom&tag=1"
			 "&changes=LABEL%%20sbxfs.template%%3Dtrycustom", id);
		rc = dk_request(&be_g->eng, "POST", path, NULL, DK_TIMEOUT_LONG_MS, &resp, &e);
		dk_resp_free(&resp);
		t = ops->templates(be_g);
		CHECK(t && t[0] && strcmp(t[0]->name, "default") == 0, "templates(): default first");
		for (; rc == 0 && t && *t; t++)
			listed = listed || strcmp((*t)->name, "trycustom") == 0;
		CHECK(listed, "templates(): a labelled local image is listed %s", e.msg);
		make_spec(&spec3, id3, sizeof(id3), dir3, sizeof(dir3), "try3");
		spec3.template_name = "trycustom";
		rc = ops->create(be_g, &spec3, &in3, &e);
		r = rc == 0 ? run_sh(in3, "cat /home/user/keep") : (struct run){.rc = rc};
		CHECK(rc == 0 && r.out && strcmp(r.out, "kept\n") == 0, "create from template 'trycustom' %s", e.msg);
		run_free(&r);
		if (rc == 0)
			ops->destroy(in3, &e);
		spec3.template_name = "image:sbxfs-try-custom:1";
		rc = ops->create(be_g, &spec3, &in3, &e);
		CHECK(rc == 0, "create from template 'image:sbxfs-try-custom:1' %s", e.msg);
		if (rc == 0)
			ops->destroy(in3, &e);
		spec3.template_name = "image:no-such-image:0";
		rc = ops->create(be_g, &spec3, &in3, &e);
		CHECK(rc == -ENOENT, "create from a missing image: ENOENT: %s", e.msg);
		spec3.template_name = "nosuchtemplate";
		rc = ops->create(be_g, &spec3, &in3, &e);
		CHECK(rc == -ENOENT, "create from an unknown template: ENOENT: %s", e.msg);
		engine_status("DELETE", "/images/sbxfs-try-custom:1?force=1");
		rmdir(dir3);
	}

	ops->release(in);
	in = NULL;
	rc = ops->attach(be_g, &spec, &in, &e);
	r = run_sh(in, "cat /home/user/keep");
	CHECK(rc == 0 && ops->status(in) == SBX_STATUS_RUNNING && strcmp(r.out, "kept\n") == 0,
	      "release + attach: running, files there %s", e.msg);
	run_free(&r);

	/* A second sandbox, removed behind the backend's back. */
	make_spec(&spec2, id2, sizeof(id2), dir2, sizeof(dir2), "try2");
	rc = ops->create(be_g, &spec2, &in2, &e);
	CHECK(rc == 0, "second sandbox %s", e.msg);
	if (rc == 0) {
		snprintf(path, sizeof(path), "/containers/sbxfs-%s?force=1", id2);
		engine_status("DELETE", path);
		usleep(300000);
		t0 = now_ms();
		CHECK(ops->status(in2) == SBX_STATUS_STOPPED, "removed behind our back: stopped (%.0f ms)",
		      now_ms() - t0);
		r = run_sh(in2, "true");
		CHECK(r.rc == -ENOENT, "spawn in a removed container fails ENOENT (%d): %s", r.rc, r.e.msg);
		run_free(&r);
		ops->release(in2);
		in2 = NULL;
		rc = ops->attach(be_g, &spec2, &in2, &e);
		CHECK(rc == 0 && ops->status(in2) == SBX_STATUS_STOPPED, "attach of a removed one: stopped");
		rc = ops->destroy(in2, &e);
		CHECK(rc == 0, "destroy of a removed one succeeds %s", e.msg);
	}

	if (engine_restart) {
		struct sbx_err e2 = {0};

		CHECK(run_script("stop-dockerd.sh", NULL) == 0, "engine stopped");
		t0 = now_ms();
		CHECK(ops->status(in) == SBX_STATUS_ERROR || ops->status(in) == SBX_STATUS_ERROR,
		      "status with the engine down: error (%.0f ms)", now_ms() - t0);
		r = run_sh(in, "true");
		CHECK(r.rc == -ECONNREFUSED, "spawn with the engine down: ECONNREFUSED (%d): %s", r.rc,
		      r.e.msg);
		run_free(&r);
		CHECK(run_script("start-dockerd.sh", remote ? host : NULL) == 0, "engine started");
		usleep(300000);
		r = run_sh(in, "cat /home/user/keep");
		CHECK(r.rc == 0 && strcmp(r.out, "kept\n") == 0,
		      "after engine restart a run starts the container again, files kept: '%s' %s",
		      r.out, r.e.msg);
		run_free(&r);
		(void)e2;
	}

	rc = ops->destroy(in, &e);
	snprintf(path, sizeof(path), "/containers/sbxfs-%s/json", id);
	CHECK(rc == 0 && engine_status("GET", path) == 404, "destroy leaves no container %s", e.msg);
	rmdir(dir);
	rmdir(dir2);
}

/* --- bench ------------------------------------------------------------------------ */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double p50(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n ? v[n / 2] : 0;
}

/* Runs the docker CLI quietly; returns ms. */
static double cli(char *const argv[])
{
	double t0 = now_ms();
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) == 0)
		waitpid(pid, &st, 0);
	posix_spawn_file_actions_destroy(&fa);
	return now_ms() - t0;
}

static void bench(int n)
{
	double *a = calloc((size_t)n, sizeof(double)), *b = calloc((size_t)n, sizeof(double));
	double *c = calloc((size_t)n, sizeof(double)), *d = calloc((size_t)n, sizeof(double));
	double *k = calloc((size_t)n, sizeof(double)), *s2 = calloc((size_t)n, sizeof(double));
	struct sbx_instance *in = NULL;
	struct sbx_err e = {0};
	char id[32], dir[128], name[64];
	struct sbx_spec spec;

	setenv("DOCKER_HOST", host, 1);
	/* Warm: the image exists, the engine has served one of each. */
	make_spec(&spec, id, sizeof(id), dir, sizeof(dir), "bench");
	if (ops->create(be_g, &spec, &in, &e) < 0) {
		printf("bench: %s\n", e.msg);
		goto out;
	}
	ops->destroy(in, &e);
	rmdir(dir);
	for (int i = 0; i < n; i++) {
		double t0 = now_ms();

		make_spec(&spec, id, sizeof(id), dir, sizeof(dir), "bench");
		if (ops->create(be_g, &spec, &in, &e) < 0) {
			printf("bench: %s\n", e.msg);
			goto out;
		}
		a[i] = now_ms() - t0;
		t0 = now_ms();
		ops->destroy(in, &e);
		k[i] = now_ms() - t0;
		rmdir(dir);

		snprintf(name, sizeof(name), "sbxfs-bench-cli-%d", i);
		{
			char *cr[] = {"docker", "create", "--name", name, "--init", "--network", "none",
				      "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt",
				      "no-new-privileges", "--memory", "512m", "--memory-swap", "512m",
				      "--cpus", "1", "--pids-limit", "256", "--label", "sbxfs.bench=1",
				      "--entrypoint", "sleep", DK_DEFAULT_REPO ":" DK_DEFAULT_TAG,
				      "infinity", NULL};
			char *st[] = {"docker", "start", name, NULL};
			char *rm[] = {"docker", "rm", "-f", name, NULL};

			b[i] = cli(cr) + cli(st);
			cli(rm);
		}
	}
	make_spec(&spec, id, sizeof(id), dir, sizeof(dir), "bench");
	ops->create(be_g, &spec, &in, &e);
	for (int i = 0; i < n; i++) {
		const char *argv[] = {"python3", "-c", "print(1)", NULL};
		char cname[64];
		struct run r = run_full(in, argv, NULL, NULL, NULL, NULL, 0, 0);

		c[i] = r.ms;
		run_free(&r);
		{
			const char *sargv[] = {"python3", "{script}", NULL};

			r = run_full(in, sargv, "print(1)\n", "run.py", NULL, NULL, 0, 0);
			s2[i] = r.ms;
			run_free(&r);
		}
		snprintf(cname, sizeof(cname), "sbxfs-%s", id);
		{
			char *ex[] = {"docker", "exec", "-u", "1000:1000", "-w", "/home/user", cname,
				      "python3", "-c", "print(1)", NULL};

			d[i] = cli(ex);
		}
	}
	ops->destroy(in, &e);
	rmdir(dir);
	printf("bench (%d runs, p50 ms): create-to-running sbxfs %.1f | docker create+start %.1f | "
	       "destroy %.1f\n", n, p50(a, n), p50(b, n), p50(k, n));
	printf("bench (%d runs, p50 ms): python3 -c 'print(1)' spawn+wait %.1f | docker exec %.1f | "
	       "as a script (run.py) %.1f\n", n, p50(c, n), p50(d, n), p50(s2, n));
out:
	free(a);
	free(b);
	free(c);
	free(d);
	free(k);
	free(s2);
}

int main(int argc, char **argv)
{
	struct sbx_backend_opts opts = {0};
	struct sbx_err e = {0};
	bool engine_restart = false, remote = false;
	int i, r;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	host = getenv("DOCKER_HOST");
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
			host = argv[++i];
		else if (strcmp(argv[i], "--engine-restart") == 0)
			engine_restart = true;
		else if (strcmp(argv[i], "--remote") == 0)
			remote = true;
		else
			break;
	}
	opts.state_root = "/tmp/sbxfs-docker-try";
	if (host) {
		opts.docker_host = host;
		r = ops->init(&opts, &be_g, &e);
	} else {
		/* The system engine, else the one tests/docker/start-dockerd.sh starts. */
		host = opts.docker_host = "unix:///var/run/docker.sock";
		r = ops->init(&opts, &be_g, &e);
		if (r < 0) {
			host = opts.docker_host = "unix:///run/sbxfs-test-docker.sock";
			r = ops->init(&opts, &be_g, &e);
		}
	}
	if (r < 0) {
		printf("skip: no docker engine at '%s': %s\n", host, e.msg);
		return 77;
	}
	printf("engine %s, API %s\n", be_g->eng.host, be_g->eng.prefix);
	if (i < argc && strcmp(argv[i], "bench") == 0) {
		bench(i + 1 < argc ? atoi(argv[i + 1]) : 30);
		ops->fini(be_g);
		return 0;
	}
	checks(engine_restart, remote);
	ops->fini(be_g);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
