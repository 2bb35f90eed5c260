/*
 * fuzz_agent.c - libFuzzer target for the agent protocol as the root daemon
 * reads it (backend/local/agent_client.c): what an agent answers.
 *
 * The input is the byte stream an agent sends on one connection, after the
 * first byte that picks the exchange: even, the answer to HELLO; odd, the
 * answer to SPAWN and, when it started a process, everything that follows
 * (KILL is sent, then the wait reads until EXIT or the end). The bytes go
 * through a real socket pair, so the reads, the framing and the size bounds
 * are the daemon's own. Invariants: a failure has a real errno (1..4095, it
 * becomes a system call's result) and one line of printable words; an exit
 * is a signal number or an exit code the agent could have sent.
 * Run: tests/fuzz/run-fuzz.sh [SECONDS]
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../backend/local/agent_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(int cond)
{
	if (!cond)
		abort();
}

static void fuzz_check_err(int ret, const struct sbx_err *err)
{
	if (ret == 0)
		return;
	fuzz_check(ret < 0 && err->code == -ret && err->code < 4096);
	fuzz_check(memchr(err->msg, '\0', sizeof(err->msg)) != NULL);
	fuzz_check(err->msg[0] != '\0' && !strchr(err->msg, '\n'));
}

static void spawn_then_wait(int fd)
{
	struct sbx_err err = { 0 };
	struct sbx_exit ex = { 0 };
	struct sbx_agent_proc *p;
	pid_t pid = 0;
	int r = sbx_agent_spawn_answer(fd, "python3", 1000, &pid, &err);

	fuzz_check_err(r, &err);
	if (r < 0) {
		close(fd);
		return;
	}
	p = sbx_agent_proc_adopt(fd, pid, &err);
	fuzz_check(p != NULL);
	fuzz_check(sbx_agent_proc_pid(p) == pid);
	sbx_agent_kill(p, SIGKILL);
	r = sbx_agent_wait(p, &ex, &err);
	fuzz_check_err(r, &err);
	sbx_agent_kill(p, SIGTERM); /* after the end: nothing to do, nothing to break */
	sbx_agent_proc_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sbx_err err = { 0 };
	int sv[2], r;
	pid_t pid;

	if (size < 1 || size > 100000)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* Sends the agent's side whole, then closes it: no read ever waits. */
	for (size_t off = 1; off < size;) {
		ssize_t n = send(sv[1], data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(sv[1], SHUT_WR);
	if (data[0] % 2 == 0) {
		r = sbx_agent_hello_answer(sv[0], 1000, &pid, &err);
		fuzz_check_err(r, &err);
		close(sv[0]);
	} else {
		spawn_then_wait(sv[0]);
	}
	close(sv[1]);
	return 0;
}
