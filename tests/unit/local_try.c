/*
 * local_try.c - drives the local backend for real: creates a sandbox in a
 * temporary state directory, checks isolation, limits and lifecycle, and
 * destroys it. Needs root. Run: build/tests/unit/local_try [bench]
 * ("bench" also measures create/kill/destroy times over 50 sandboxes.)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"

#ifndef LOCAL_TRY_HELPER_DIR
#define LOCAL_TRY_HELPER_DIR "build/backend/local"
#endif

static int passed, failed;
static const struct sbx_backend_ops *ops = &sbx_local_backend;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s: ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (ok)
		passed++;
	else
		failed++;
}

static const char *const run_env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/user", "LANG=C.UTF-8",
				       "USER=user", NULL };

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads fd to EOF into a malloc'd string. */
static char *slurp(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			char *nb = realloc(buf, cap *= 2);

			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
	}
	if (buf)
		buf[len] = '\0';
	return buf;
}

/* Runs argv (optionally a script) and collects stdout+stderr; returns 0 or a negative errno from spawn. */
static int run(struct sbx_instance *in, const char *const *argv, const char *script, const char *sname, char **out,
	       struct sbx_exit *ex, struct sbx_err *err)
{
	struct sbx_exec e = { .argv = argv, .envp = run_env, .stdin_fd = -1 };
	struct sbx_proc *p;
	int pfd[2], r;

	*out = NULL;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	e.stdout_fd = e.stderr_fd = pfd[1];
	if (script) {
		e.script = script;
		e.script_len = strlen(script);
		e.script_name = sname;
	}
	r = ops->spawn(in, &e, &p, err);
	close(pfd[1]);
	if (r < 0) {
		close(pfd[0]);
		return r;
	}
	*out = slurp(pfd[0]);
	close(pfd[0]);
	r = ops->wait_proc(p, ex, err);
	ops->free_proc(p);
	return r;
}

static char *sh(struct sbx_instance *in, const char *cmd, struct sbx_exit *ex)
{
	const char *argv[] = { "bash", "-c", cmd, NULL };
	struct sbx_err err = { 0 };
	char *out = NULL;
	struct sbx_exit dummy;

	if (run(in, argv, NULL, NULL, &out, ex ? ex : &dummy, &err) < 0) {
		printf("  spawn failed: %s\n", err.msg);
		free(out);
		return strdup("<spawn failed>");
	}
	return out ? out : strdup("");
}

static int count_mounts(const char *prefix)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int n = 0;

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, prefix))
			n++;
	if (f)
		fclose(f);
	return n;
}

static struct sbx_instance *make(struct sbx_backend *be, const char *root, const char *name, const char *id,
				 char *sd, size_t sdsz, struct sbx_spec *spec, struct sbx_err *err)
{
	struct sbx_instance *in = NULL;

	snprintf(sd, sdsz, "%s/sb/%s", root, id);
	mkdir(sd, 0700);
	spec->name = name;
	spec->id = id;
	spec->template_name = "default";
	spec->state_dir = sd;
	if (ops->create(be, spec, &in, err) < 0)
		return NULL;
	return in;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void bench(struct sbx_backend *be, const char *root)
{
	enum { N = 50 };
	double c[N], k[N], d[N];
	struct sbx_err err;

	for (int i = 0; i < N; i++) {
		char id[32], sd[4096];
		struct sbx_spec spec = { .limits = { 512u << 20, 1000, 256, 1u << 30 } };
		struct sbx_instance *in;
		struct sbx_exec e = { .argv = (const char *const[]){ "sleep", "100", NULL }, .envp = run_env,
				      .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
		struct sbx_proc *p;
		struct sbx_exit ex;
		double t0;

		snprintf(id, sizeof(id), "bench%02d", i);
		t0 = now_ms();
		in = make(be, root, id, id, sd, sizeof(sd), &spec, &err);
		c[i] = now_ms() - t0;
		if (!in) {
			printf("bench create failed: %s\n", err.msg);
			return;
		}
		if (ops->spawn(in, &e, &p, &err) < 0) {
			printf("bench spawn failed: %s\n", err.msg);
			return;
		}
		t0 = now_ms();
		ops->kill_proc(p, SIGKILL);
		ops->wait_proc(p, &ex, &err);
		ops->free_proc(p);
		k[i] = now_ms() - t0;
		t0 = now_ms();
		if (ops->destroy(in, &err) < 0)
			printf("bench destroy failed: %s\n", err.msg);
		d[i] = now_ms() - t0;
		rmdir(sd);
		usleep(20000); /* let the pool refill, as between real creates */
	}
	qsort(c, N, sizeof(double), cmp_d);
	qsort(k, N, sizeof(double), cmp_d);
	qsort(d, N, sizeof(double), cmp_d);
	printf("bench (n=%d): create p50 %.1f ms p99 %.1f ms; kill_proc p50 %.1f ms p99 %.1f ms; destroy p50 %.1f ms p99 %.1f ms\n",
	       N, c[N / 2], c[N * 99 / 100], k[N / 2], k[N * 99 / 100], d[N / 2], d[N * 99 / 100]);
}

int main(int argc, char **argv)
{
	char root[] = "/tmp/sbxfs-try.XXXXXX";
	char sd[4096], buf[8192];
	struct sbx_backend_opts bo = { 0 };
	struct sbx_backend *be = NULL;
	struct sbx_spec spec = { .limits = { 64u << 20, 1000, 256, 32u << 20 } };
	struct sbx_instance *in;
	struct sbx_err err = { 0 };
	struct sbx_exit ex;
	struct sbx_metrics m;
	char *out;
	double t0;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("local_try needs root; skipped\n");
		return 77;
	}
	if (!mkdtemp(root))
		return 1;
	bo.state_root = root;
	bo.helper_dir = getenv("SBXFS_HELPER_DIR") ? getenv("SBXFS_HELPER_DIR") : LOCAL_TRY_HELPER_DIR;
	snprintf(sd, sizeof(sd), "%s/sb", root);
	r = ops->init(&bo, &be, &err);
	check(r == 0, "init (%s)", r ? err.msg : "ok");
	if (r)
		goto out_rm;
	mkdir(sd, 0700);
	check(ops->templates(be)[0] && !strcmp(ops->templates(be)[0]->name, "default"), "template default listed");

	t0 = now_ms();
	in = make(be, root, "try1", "0123abcd", sd, sizeof(sd), &spec, &err);
	check(in != NULL, "create (%.1f ms) %s", now_ms() - t0, in ? "" : err.msg);
	if (!in)
		goto out_fini;
	check(ops->status(in) == SBX_STATUS_RUNNING, "status running");

	{
		const char *a[] = { "python3", "-c", "import os;print(os.getuid())", NULL };

		r = run(in, a, NULL, NULL, &out, &ex, &err);
		check(r == 0 && out && !strcmp(out, "1000\n") && !ex.signaled && ex.code == 0, "python3 runs as uid 1000 (%s)",
		      r ? err.msg : out);
		free(out);
	}
	{
		const char *a[] = { "python3", "{script}", NULL };

		r = run(in, a, "import sys\nprint(6*7, sys.argv[0])\n", "run.py", &out, &ex, &err);
		check(r == 0 && out && !strncmp(out, "42 /run/sbxfs/", 14), "script file run (%s)", r ? err.msg : out);
		free(out);
	}
	{
		const char *a[] = { "no-such-command", NULL };

		r = run(in, a, NULL, NULL, &out, &ex, &err);
		check(r == -ENOENT, "missing command gives ENOENT (%s)", err.msg);
		free(out);
	}
	out = sh(in, "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '", &ex);
	check(strstr(out, "CapInh: 0000000000000000") && strstr(out, "CapPrm: 0000000000000000") &&
		      strstr(out, "CapEff: 0000000000000000") && strstr(out, "CapBnd: 0000000000000000") &&
		      strstr(out, "CapAmb: 0000000000000000") && strstr(out, "NoNewPrivs: 1") && strstr(out, "Seccomp: 2"),
	      "no capabilities, no_new_privs, seccomp filter");
	free(out);
	/* The agent: root of the sandbox's own user namespace, with only setuid/setgid/kill/setpcap. */
	out = sh(in, "grep -E '^(Cap|Uid)' /proc/2/status | tr -s '\\t ' ' '; cat /proc/2/uid_map | tr -s ' '", &ex);
	check(strstr(out, "CapBnd: 00000000000001e0") && strstr(out, "CapPrm: 00000000000001e0") &&
		      strstr(out, "CapInh: 0000000000000000") && strstr(out, "Uid: 0 0 0 0") && strstr(out, " 65536") && !strstr(out, " 0 0 4294967295"),
	      "agent (pid 2) is root of its own id block with four capabilities (%s)", out);
	free(out);
	out = sh(in, "kill -STOP 2; echo $?; kill -STOP -1; ls /proc/2/fd 2>&1 | head -1", &ex);
	check(strstr(out, "1\n") && strstr(out, "Permission denied"), "code cannot stop or look into the agent (%s)", out);
	free(out);
	out = sh(in, "ls -A /root 2>/dev/null | wc -l; test -e /work && echo work; ls /home; ls -A /tmp | wc -l; "
		     "test -e /etc/shadow && echo shadow; grep -c . /etc/passwd; id -un", &ex);
	check(!strcmp(out, "0\nuser\n0\n3\nuser\n"), "no host private paths, skeleton passwd (%s)", out);
	free(out);
	out = sh(in, "awk -F: 'NR>2 {gsub(/ /,\"\",$1); print $1}' /proc/net/dev; wc -l < /proc/net/route", &ex);
	check(!strcmp(out, "lo\n1\n"), "network: only lo, no routes (%s)", out);
	free(out);
	out = sh(in, "mount -t tmpfs none /tmp 2>&1; echo rc=$?; unshare -U true 2>&1; echo rc=$?", &ex);
	check(strstr(out, "rc=0") == NULL, "mount and unshare refused (%s)", out);
	free(out);
	out = sh(in, "ls /proc | grep -c '^[0-9]'", &ex);
	check(atoi(out) <= 5, "only the sandbox's processes are visible (%d)", atoi(out));
	free(out);
	out = sh(in, "node -e \"const {Worker}=require('worker_threads');"
		     "new Worker('require(\\\"worker_threads\\\").parentPort.postMessage(7)',{eval:true})"
		     ".on('message',m=>console.log('node',m))\"", &ex);
	check(!strcmp(out, "node 7\n"), "node with worker threads (%s)", out);
	free(out);
	out = sh(in, "python3 -c 'a=bytearray(200*1024*1024); print(len(a))'", &ex);
	check(ex.signaled && ex.code == SIGKILL, "memory hog over mem=64M is OOM-killed (signaled=%d code=%d)", ex.signaled,
	      ex.code);
	free(out);
	out = sh(in, "echo alive", &ex);
	check(!strcmp(out, "alive\n"), "agent survives the OOM kill (%s)", out);
	free(out);
	out = sh(in, "dd if=/dev/zero of=/home/user/big bs=1M count=64 2>&1; rm -f /home/user/big", &ex);
	check(strstr(out, "No space left") != NULL, "disk=32M: writing 64M gives ENOSPC");
	free(out);
	{
		struct sbx_exec e = { .argv = (const char *const[]){ "bash", "-c", "sleep 100 & sleep 100", NULL },
				      .envp = run_env, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
		struct sbx_proc *p;

		r = ops->spawn(in, &e, &p, &err);
		if (r == 0) {
			usleep(100000);
			t0 = now_ms();
			ops->kill_proc(p, SIGKILL);
			r = ops->wait_proc(p, &ex, &err);
			ops->free_proc(p);
			check(r == 0 && ex.signaled && ex.code == SIGKILL, "kill_proc(SIGKILL) ends the run (%.1f ms)",
			      now_ms() - t0);
		} else {
			check(0, "spawn sleep: %s", err.msg);
		}
		out = sh(in, "pgrep -c sleep", &ex);
		check(!strcmp(out, "0\n"), "its background child died too (%s)", out);
		free(out);
	}
	out = sh(in, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo x > /home/user/keep", &ex);
	free(out);
	ops->metrics(in, &m, &err);
	usleep(150000);
	ops->metrics(in, &m, &err);
	check(m.cpu_seconds > 0 && m.mem_used_bytes > 0 && m.mem_limit_bytes == 64u << 20 && m.pids >= 2 &&
		      m.disk_used_bytes > 0,
	      "metrics: cpu %.3fs mem %llu/%llu pids %u disk_used %llu rd %llu wr %llu net %llu/%llu", m.cpu_seconds,
	      (unsigned long long)m.mem_used_bytes, (unsigned long long)m.mem_limit_bytes, m.pids,
	      (unsigned long long)m.disk_used_bytes, (unsigned long long)m.disk_read_bytes,
	      (unsigned long long)m.disk_write_bytes, (unsigned long long)m.net_rx_bytes,
	      (unsigned long long)m.net_tx_bytes);
	r = ops->pause(in, &err);
	check(r == 0 && ops->status(in) == SBX_STATUS_PAUSED, "pause %s", r ? err.msg : "");
	r = ops->resume(in, &err);
	check(r == 0 && ops->status(in) == SBX_STATUS_RUNNING, "resume %s", r ? err.msg : "");
	out = sh(in, "echo back", &ex);
	check(!strcmp(out, "back\n"), "runs after resume");
	free(out);
	{
		struct sbx_limits l = spec.limits;

		l.mem_bytes = 128u << 20;
		l.pids = 64;
		r = ops->set_limits(in, &l, &err);
		check(r == 0, "set_limits %s", r ? err.msg : "");
	}
	t0 = now_ms();
	r = ops->restart(in, &err);
	check(r == 0, "restart (%.1f ms) %s", now_ms() - t0, r ? err.msg : "");
	out = sh(in, "cat /home/user/keep", &ex);
	check(!strcmp(out, "x\n"), "files kept across restart");
	free(out);
	{
		int fd;

		r = ops->root_fd(in, &fd, &err);
		check(r == 0 && faccessat(fd, "home/user/keep", F_OK, 0) == 0, "root_fd reaches the sandbox's files");
		if (r == 0)
			close(fd);
	}
	/* A daemon restart: forget the handle, attach again. */
	ops->release(in);
	in = NULL;
	r = ops->attach(be, &spec, &in, &err);
	check(r == 0 && ops->status(in) == SBX_STATUS_RUNNING, "attach after release %s", r ? err.msg : "");
	out = sh(in, "echo attached", &ex);
	check(!strcmp(out, "attached\n"), "spawn after attach");
	free(out);
	{
		pid_t bw = 0;
		char cgdir[256];
		FILE *f;

		snprintf(buf, sizeof(buf), "%s/local.json", sd);
		f = fopen(buf, "r");
		if (f) {
			char js[1024] = "";
			char *q;

			if (fgets(js, sizeof(js), f) && (q = strstr(js, "\"bwrap_pid\":")))
				bw = atoi(q + 12);
			fclose(f);
		}
		r = ops->destroy(in, &err);
		check(r == 0, "destroy %s", r ? err.msg : "");
		check(count_mounts(sd) == 0, "no mount left under %s", sd);
		snprintf(cgdir, sizeof(cgdir), "/sys/fs/cgroup/memory/sbxfs/0123abcd");
		check(access(cgdir, F_OK) != 0, "no cgroup left");
		snprintf(buf, sizeof(buf), "/proc/%d/stat", (int)bw);
		{
			/* Gone, or a zombie its new parent (init) has not reaped yet. */
			FILE *ps = fopen(buf, "r");
			char state = 'X';

			if (ps) {
				if (fscanf(ps, "%*d %*s %c", &state) != 1)
					state = 'X';
				fclose(ps);
			}
			check(bw > 0 && (state == 'X' || state == 'Z'), "no process left (bwrap %d: %c)", bw, state);
		}
	}
	/* destroy of a half-made sandbox (attach to a state dir with nothing in it) */
	{
		char sd2[4096];
		struct sbx_spec s2 = spec;

		snprintf(sd2, sizeof(sd2), "%s/sb/empty", root);
		mkdir(sd2, 0700);
		s2.state_dir = sd2;
		s2.id = "feedbeef";
		r = ops->attach(be, &s2, &in, &err);
		check(r == 0 && ops->status(in) == SBX_STATUS_STOPPED, "attach on an empty state dir is STOPPED");
		if (r == 0) {
			r = ops->destroy(in, &err);
			check(r == 0, "destroy of a half-made sandbox %s", r ? err.msg : "");
		}
		rmdir(sd2);
	}
	if (argc > 1 && !strcmp(argv[1], "bench"))
		bench(be, root);
out_fini:
	ops->fini(be);
out_rm:
	snprintf(buf, sizeof(buf), "rm -rf '%s/sb' '%s/pool' '%s/templates'", root, root, root);
	if (system(buf) != 0)
		printf("cleanup failed\n");
	umount2(root, MNT_DETACH);
	rmdir(root);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
