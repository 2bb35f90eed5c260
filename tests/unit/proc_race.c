/*
 * proc_race.c - a process handle outlives its waiter and every killer.
 *
 * The backend contract (backend/backend.h): wait_proc and kill_proc never free
 * a process; its owner calls free_proc once both are done. This test races
 * the two on the local backend's real handle (backend/local/agent_client.c)
 * 100,000 times, the way control/run.c does at a run's deadline: a waiter
 * thread in sbx_agent_wait, the owner sending SIGKILL as the process ends.
 * The agent is a stand-in thread speaking the real protocol (agent_proto.h)
 * that ends each process at a different moment: at once, after a few
 * microseconds, or only when the kill comes. Built with ASan, a handle used
 * after it was freed is a report and the test fails.
 *
 * Run: meson test -C build proc_race  (PROC_RACE_N=1000 for a short run)
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend/local/agent_client.h"
#include "backend/local/agent_proto.h"

struct fake_agent {
	int lfd;
	long n;
	long killed_seen;
};

static int read_all(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void send_msg(int fd, uint32_t type, const void *payload, uint32_t len)
{
	struct sbx_agent_hdr h = { SBX_AGENT_MAGIC, type, len };
	char buf[64];

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	if (send(fd, buf, sizeof(h) + len, MSG_NOSIGNAL) < 0 && errno != EPIPE)
		perror("fake agent: send");
}

/* Answers one SPAWN, then ends the process in the way `mode` says. */
static void serve_one(struct fake_agent *a, int fd, long i)
{
	struct sbx_agent_started st = { .pid = (int32_t)(i + 2) };
	struct sbx_agent_exit ex = { .signaled = 0, .code = 0 };
	struct sbx_agent_hdr h;
	char payload[512];
	int mode = (int)(i % 3);

	if (read_all(fd, &h, sizeof(h)) || h.type != SBX_AGENT_SPAWN || h.len > sizeof(payload) ||
	    read_all(fd, payload, h.len))
		return;
	send_msg(fd, SBX_AGENT_STARTED, &st, sizeof(st));
	if (mode == 1)
		usleep((useconds_t)(i % 7));
	if (mode == 2) {
		struct sbx_agent_kill k;

		/* Ends only when killed: the waiter returns just as the kill lands. */
		if (read_all(fd, &h, sizeof(h)) == 0 && h.type == SBX_AGENT_KILL &&
		    read_all(fd, &k, sizeof(k)) == 0) {
			ex.signaled = 1;
			ex.code = k.sig;
			a->killed_seen++;
		}
	}
	send_msg(fd, SBX_AGENT_EXIT, &ex, sizeof(ex));
}

static void *agent_main(void *arg)
{
	struct fake_agent *a = arg;

	for (long i = 0; i < a->n; i++) {
		int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			perror("fake agent: accept");
			return NULL;
		}
		serve_one(a, fd, i);
		close(fd);
	}
	return NULL;
}

struct waiter {
	struct sbx_agent_proc *p;
	struct sbx_exit ex;
	int rc;
};

static void *wait_main(void *arg)
{
	struct waiter *w = arg;
	struct sbx_err err = { 0 };

	w->rc = sbx_agent_wait(w->p, &w->ex, &err);
	return NULL;
}

static int race_once(const char *sock, long i)
{
	const char *argv[] = { "true", NULL };
	struct sbx_exec e = { .argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
	struct waiter w = { 0 };
	struct sbx_err err = { 0 };
	pthread_t th;

	if (sbx_agent_spawn(sock, &e, 5000, &w.p, &err) < 0) {
		fprintf(stderr, "spawn %ld: %s\n", i, err.msg);
		return -1;
	}
	if (pthread_create(&th, NULL, wait_main, &w)) {
		sbx_agent_abandon(w.p);
		return -1;
	}
	/* Every other time the kill comes a little later, so it meets the end from both sides. */
	for (volatile long spin = 0; spin < (i % 2) * (i % 53) * 20; spin++)
		;
	sbx_agent_kill(w.p, SIGKILL);
	pthread_join(th, NULL);
	/* Both are done with it: the owner frees it. */
	sbx_agent_proc_free(w.p);
	if (w.rc) {
		fprintf(stderr, "wait %ld failed\n", i);
		return -1;
	}
	return 0;
}

int main(void)
{
	const char *env_n = getenv("PROC_RACE_N");
	struct fake_agent a = { .n = env_n ? atol(env_n) : 100000 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/sbxfs-proc-race-XXXXXX";
	pthread_t th;
	long fails = 0;

	if (!mkdtemp(dir))
		return 1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/agent.sock", dir);
	a.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a.lfd < 0 || bind(a.lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(a.lfd, 64)) {
		perror("listen");
		return 1;
	}
	if (pthread_create(&th, NULL, agent_main, &a))
		return 1;
	for (long i = 0; i < a.n && fails < 10; i++)
		if (race_once(sa.sun_path, i))
			fails++;
	pthread_join(th, NULL);
	close(a.lfd);
	unlink(sa.sun_path);
	rmdir(dir);
	printf("%ld races of kill_proc against wait_proc, %ld ended by the kill, %ld failures\n", a.n,
	       a.killed_seen, fails);
	return fails ? 1 : 0;
}
