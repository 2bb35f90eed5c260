/*
 * agent_proto.h - the wire protocol between sbxfs and sbxfs-agent.
 *
 * The agent runs inside a sandbox and listens on a unix stream socket (it
 * inherits the listening fd, or binds a path itself). Every connection carries
 * at most one process:
 *
 *   client -> agent  SPAWN  (with 3 fds in SCM_RIGHTS: stdin, stdout, stderr,
 *                            sent with the first byte of the message)
 *   agent  -> client STARTED (pid inside the sandbox)  or  ERROR (errno, words)
 *   client -> agent  KILL (signal), any number of times
 *   agent  -> client EXIT (how the process ended), then the agent closes
 *
 * or, to check that the agent answers, HELLO -> HELLO (the client may read the
 * agent's host pid from SCM_CREDENTIALS with SO_PASSCRED set).
 *
 * If the client closes its end while the process runs, the agent kills the
 * process (its group and its session) with SIGKILL.
 *
 * Every message is a header followed by `len` bytes of payload. Integers are
 * in host byte order: both ends run on the same machine.
 */
#ifndef SBX_AGENT_PROTO_H
#define SBX_AGENT_PROTO_H

#include <stdint.h>

#define SBX_AGENT_MAGIC 0x53425841u /* "SBXA" */
#define SBX_AGENT_MAX_PAYLOAD (64u << 20) /* scripts up to 64 MiB */
#define SBX_AGENT_MAX_ARGS 4096

enum sbx_agent_type {
	SBX_AGENT_HELLO = 1,   /* no payload, both ways */
	SBX_AGENT_SPAWN = 2,   /* client: struct sbx_agent_spawn + strings + script */
	SBX_AGENT_STARTED = 3, /* agent: struct sbx_agent_started */
	SBX_AGENT_ERROR = 4,   /* agent: struct sbx_agent_error + message (NUL-terminated) */
	SBX_AGENT_KILL = 5,    /* client: struct sbx_agent_kill */
	SBX_AGENT_EXIT = 6,    /* agent: struct sbx_agent_exit */
};

struct sbx_agent_hdr {
	uint32_t magic;
	uint32_t type;
	uint32_t len;          /* payload bytes after the header */
};

/* Which of stdin/stdout/stderr were passed; a missing one is /dev/null. */
#define SBX_AGENT_HAS_STDIN  0x1u
#define SBX_AGENT_HAS_STDOUT 0x2u
#define SBX_AGENT_HAS_STDERR 0x4u

/*
 * SPAWN payload: this struct, then argc NUL-terminated argv strings, envc
 * NUL-terminated "K=V" strings, the cwd (NUL-terminated; "" = the agent's
 * default, /home/user), the script name (NUL-terminated; "" = no script) and
 * finally script_len bytes of script. The fds in SCM_RIGHTS come in the order
 * stdin, stdout, stderr, only those whose flag is set.
 */
struct sbx_agent_spawn {
	uint32_t flags;
	uint32_t argc;
	uint32_t envc;
	uint32_t script_len;
};

struct sbx_agent_started {
	int32_t pid;           /* in the sandbox's pid namespace */
};

struct sbx_agent_error {
	int32_t err;           /* positive errno */
};

struct sbx_agent_kill {
	int32_t sig;
};

struct sbx_agent_exit {
	int32_t signaled;      /* 1 when killed by a signal */
	int32_t code;          /* exit code, or the signal number */
};

#endif
