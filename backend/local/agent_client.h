/*
 * agent_client.h - talking to sbxfs-agent from the daemon.
 *
 * Independent of the local backend: it needs only the path of the agent's
 * socket, so the docker backend uses it as well. One connection per process.
 *
 *   struct sbx_agent_proc *p;
 *   if (sbx_agent_spawn("/state/x/agent.sock", &ex, 30000, &p, &err) < 0) ...;
 *   ... sbx_agent_kill(p, SIGTERM) from any thread ...
 *   sbx_agent_wait(p, &exit, &err);   // blocks until the process ends
 *   sbx_agent_proc_free(p);           // once every killer is done too
 *
 * Threads: sbx_agent_kill may run concurrently with sbx_agent_wait on the same
 * proc, and after it (then it does nothing). Neither frees p: the owner calls
 * sbx_agent_proc_free (or sbx_agent_abandon instead of waiting) once no other
 * thread can use p. If the agent goes away while the process runs (the sandbox
 * was stopped or restarted), sbx_agent_wait reports it as killed by SIGKILL.
 */
#ifndef SBX_AGENT_CLIENT_H
#define SBX_AGENT_CLIENT_H

#include <sys/types.h>

#include "../backend.h"

struct sbx_agent_proc;

/*
 * Checks that the agent at sock_path answers within timeout_ms. When host_pid
 * is not NULL it receives the agent's pid as seen by the caller (0 when it
 * cannot be known).
 */
int sbx_agent_hello(const char *sock_path, int timeout_ms, pid_t *host_pid, struct sbx_err *err);

/*
 * Starts ex (argv, envp, cwd, fds, optional script) in the agent's sandbox and
 * waits up to timeout_ms for it to start. The errno of a failure is the
 * agent's: ENOENT "command not found", ECONNREFUSED when no agent listens.
 */
int sbx_agent_spawn(const char *sock_path, const struct sbx_exec *ex, int timeout_ms,
		    struct sbx_agent_proc **out, struct sbx_err *err);

/* The process's pid inside the sandbox. */
pid_t sbx_agent_proc_pid(const struct sbx_agent_proc *p);

/* Blocks until the process ends and fills *out. Does not free p. */
int sbx_agent_wait(struct sbx_agent_proc *p, struct sbx_exit *out, struct sbx_err *err);

/* Frees p after sbx_agent_wait has returned and no sbx_agent_kill on it can still run. */
void sbx_agent_proc_free(struct sbx_agent_proc *p);

/*
 * As sbx_agent_wait, but distrusts the agent once a SIGKILL was sent through
 * sbx_agent_kill: when no EXIT came grace_ms later, it calls stuck(arg) (which
 * ends the process from outside the sandbox), hangs up and reports the process
 * as killed by SIGKILL. grace_ms < 0 waits for ever.
 */
int sbx_agent_wait_guarded(struct sbx_agent_proc *p, int grace_ms, void (*stuck)(void *arg), void *arg,
			   struct sbx_exit *out, struct sbx_err *err);

/*
 * Cuts the connection: a waiter returns as if the agent went away, and the
 * agent kills the process when it next runs. Safe against a concurrent wait.
 */
void sbx_agent_hangup(struct sbx_agent_proc *p);

/*
 * Sends sig to the process group; SIGKILL also kills every process of the
 * process's session. Returns 0 or a negative errno; 0 once the process has
 * ended (sbx_agent_wait has seen its end).
 */
int sbx_agent_kill(struct sbx_agent_proc *p, int sig);

/*
 * The daemon's side of one exchange, on a connected fd (used by the calls
 * above, and by tests/fuzz/fuzz_agent.c to feed them what an agent could
 * answer): the answer to HELLO, the answer to SPAWN (the pid, or the agent's
 * errno and words, for argv0), and a handle for a connection whose process
 * started (it owns fd from then on; NULL with *err on failure).
 */
int sbx_agent_hello_answer(int fd, int timeout_ms, pid_t *host_pid, struct sbx_err *err);
int sbx_agent_spawn_answer(int fd, const char *argv0, int timeout_ms, pid_t *pid, struct sbx_err *err);
struct sbx_agent_proc *sbx_agent_proc_adopt(int fd, pid_t pid, struct sbx_err *err);

/* Hangs up without waiting; the agent then kills the process. Frees p. */
void sbx_agent_abandon(struct sbx_agent_proc *p);

#endif
