/* agent_client.c - the daemon's side of the agent protocol (agent_proto.h). */
#include "agent_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"
#include "../util.h"

struct sbx_agent_proc {
	int fd;
	int wake;                /* eventfd: a SIGKILL was sent (wakes a guarded wait) */
	pid_t pid;
	pthread_mutex_t wlock;   /* a leaf lock: kill messages from several threads, `ended`, killed_ms */
	bool ended;              /* the wait has seen the end: kills are no-ops */
	long long killed_ms;     /* when the first SIGKILL was sent; 0 = not yet */
};

static int ac_connect(const char *path, struct sbx_err *err)
{
	int fd = sbx_unix_connect(path, err);

	if (fd == -ECONNREFUSED || fd == -ENOENT)
		return sbx_err_set(err, ECONNREFUSED, "the sandbox is not running (no agent answers)");
	return fd;
}

/* Waits until fd is readable; deadline in ms of CLOCK_MONOTONIC, < 0 for ever. 0, -ETIMEDOUT or -errno. */
static int ac_wait(int fd, long long deadline)
{
	struct pollfd pf = { fd, POLLIN, 0 };
	int r;

	if (deadline < 0)
		return 0;
	do {
		long long left = deadline - (long long)sbx_mono_ms();

		r = poll(&pf, 1, left < 0 ? 0 : (int)left);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

static void ac_take_cred(struct msghdr *m, struct ucred *cred)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS)
			memcpy(cred, CMSG_DATA(cm), sizeof(*cred));
}

/* Reads exactly len bytes; deadline < 0 waits for ever. 0, -ETIMEDOUT, -EPIPE or -errno. */
static int ac_read(int fd, void *buf, size_t len, long long deadline, struct ucred *cred)
{
	size_t got = 0;

	while (got < len) {
		char cbuf[CMSG_SPACE(sizeof(struct ucred))];
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;
		int r = ac_wait(fd, deadline);

		if (r < 0)
			return r;
		if (cred) {
			m.msg_control = cbuf;
			m.msg_controllen = sizeof(cbuf);
		}
		n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		if (cred)
			ac_take_cred(&m, cred);
		got += (size_t)n;
	}
	return 0;
}

/* Reads one message; *payload is malloc'd (NUL-terminated for convenience). */
static int ac_recv(int fd, long long deadline, struct sbx_agent_hdr *h, char **payload, struct ucred *cred)
{
	int r = ac_read(fd, h, sizeof(*h), deadline, cred);

	*payload = NULL;
	if (r < 0)
		return r;
	if (h->magic != SBX_AGENT_MAGIC || h->len > 65536)
		return -EPROTO;
	*payload = calloc(1, h->len + 1);
	if (!*payload)
		return -ENOMEM;
	r = ac_read(fd, *payload, h->len, deadline, NULL);
	if (r < 0) {
		free(*payload);
		*payload = NULL;
	}
	return r;
}

static int ac_send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sbx_agent_hello(const char *sock_path, int timeout_ms, pid_t *host_pid, struct sbx_err *err)
{
	struct sbx_agent_hdr h = { SBX_AGENT_MAGIC, SBX_AGENT_HELLO, 0 };
	int one = 1, fd, r;

	fd = ac_connect(sock_path, err);
	if (fd < 0)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	r = ac_send_all(fd, (const char *)&h, sizeof(h));
	if (r < 0) {
		close(fd);
		return sbx_err_sys(err, -r, "talking to the sandbox agent");
	}
	r = sbx_agent_hello_answer(fd, timeout_ms, host_pid, err);
	close(fd);
	return r;
}

int sbx_agent_hello_answer(int fd, int timeout_ms, pid_t *host_pid, struct sbx_err *err)
{
	struct sbx_agent_hdr h;
	struct ucred cred = { 0 };
	char *payload = NULL;
	int r = ac_recv(fd, (long long)sbx_mono_ms() + timeout_ms, &h, &payload, &cred);

	free(payload);
	if (r == -ETIMEDOUT)
		return sbx_err_set(err, ETIMEDOUT, "the sandbox agent did not answer within %d ms", timeout_ms);
	if (r == -EPIPE)
		return sbx_err_set(err, ECONNREFUSED, "the sandbox agent hung up");
	if (r < 0)
		return sbx_err_sys(err, -r, "talking to the sandbox agent");
	if (h.type != SBX_AGENT_HELLO)
		return sbx_err_set(err, EPROTO, "unexpected answer from the sandbox agent");
	if (host_pid)
		*host_pid = cred.pid;
	return 0;
}

/* Builds the SPAWN message (header included). */
static char *ac_build_spawn(const struct sbx_exec *ex, size_t *len_out, uint32_t flags)
{
	struct sbx_agent_spawn sp = { .flags = flags };
	const char *name = ex->script ? (ex->script_name ? ex->script_name : "script") : "";
	const char *cwd = ex->cwd ? ex->cwd : "";
	size_t len = sizeof(struct sbx_agent_hdr) + sizeof(sp);
	struct sbx_agent_hdr h = { SBX_AGENT_MAGIC, SBX_AGENT_SPAWN, 0 };
	char *buf, *p;

	for (; ex->argv[sp.argc]; sp.argc++)
		len += strlen(ex->argv[sp.argc]) + 1;
	for (; ex->envp && ex->envp[sp.envc]; sp.envc++)
		len += strlen(ex->envp[sp.envc]) + 1;
	len += strlen(cwd) + 1 + strlen(name) + 1;
	sp.script_len = ex->script ? (uint32_t)ex->script_len : 0;
	len += sp.script_len;
	buf = malloc(len);
	if (!buf)
		return NULL;
	h.len = (uint32_t)(len - sizeof(h));
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &sp, sizeof(sp));
	p = buf + sizeof(h) + sizeof(sp);
	for (uint32_t i = 0; i < sp.argc; i++)
		p = stpcpy(p, ex->argv[i]) + 1;
	for (uint32_t i = 0; i < sp.envc; i++)
		p = stpcpy(p, ex->envp[i]) + 1;
	p = stpcpy(p, cwd) + 1;
	p = stpcpy(p, name) + 1;
	if (sp.script_len)
		memcpy(p, ex->script, sp.script_len);
	*len_out = len;
	return buf;
}

/* Sends msg; the descriptors in pass travel with its first chunk, the rest follows as plain bytes. */
static int ac_send_with_fds(int fd, const char *msg, size_t len, const int *pass, int npass)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 3)];
	struct iovec iov = { (char *)msg, len < 4096 ? len : 4096 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (npass) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		m.msg_control = cbuf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)npass);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)npass);
		memcpy(CMSG_DATA(cm), pass, sizeof(int) * (size_t)npass);
	}
	do
		n = sendmsg(fd, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : ac_send_all(fd, msg + n, len - (size_t)n);
}

/* The agent's answer to SPAWN: the started process's pid, or the agent's error in words. */
/* The agent's words, on one line of printable text however they came. */
static void ac_clean_words(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

int sbx_agent_spawn_answer(int fd, const char *argv0, int timeout_ms, pid_t *pid, struct sbx_err *err)
{
	struct sbx_agent_hdr h;
	char *payload = NULL;
	int r = ac_recv(fd, timeout_ms < 0 ? -1 : (long long)sbx_mono_ms() + timeout_ms, &h, &payload, NULL);

	if (r == -ETIMEDOUT)
		return sbx_err_set(err, ETIMEDOUT, "the sandbox agent did not start the process within %d ms",
				   timeout_ms);
	if (r == -EPIPE)
		return sbx_err_set(err, ECONNREFUSED, "the sandbox agent hung up");
	if (r < 0)
		return sbx_err_sys(err, -r, "talking to the sandbox agent");
	if (h.type == SBX_AGENT_ERROR && h.len >= sizeof(struct sbx_agent_error)) {
		struct sbx_agent_error e;

		memcpy(&e, payload, sizeof(e));
		ac_clean_words(payload + sizeof(e));
		/* Only a real errno goes on (it becomes a system call's result). */
		r = sbx_err_set(err, e.err > 0 && e.err < 4096 ? e.err : EIO, "%s: %s", argv0,
				h.len > sizeof(e) && payload[sizeof(e)] ? payload + sizeof(e) : "failed");
	} else if (h.type != SBX_AGENT_STARTED || h.len != sizeof(struct sbx_agent_started)) {
		r = sbx_err_set(err, EPROTO, "unexpected answer from the sandbox agent");
	} else {
		struct sbx_agent_started st;

		memcpy(&st, payload, sizeof(st));
		*pid = st.pid;
	}
	free(payload);
	return r;
}

/* Sends the SPAWN message over fd and waits for its answer. */
static int ac_spawn_on(int fd, const struct sbx_exec *ex, int timeout_ms, pid_t *pid, struct sbx_err *err)
{
	int fds[3] = { ex->stdin_fd, ex->stdout_fd, ex->stderr_fd };
	int pass[3], npass = 0, r;
	uint32_t flags = 0;
	size_t len;
	char *msg;

	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0) {
			flags |= 1u << i;
			pass[npass++] = fds[i];
		}
	msg = ac_build_spawn(ex, &len, flags);
	if (!msg)
		return sbx_err_set(err, ENOMEM, "out of memory");
	r = ac_send_with_fds(fd, msg, len, pass, npass);
	free(msg);
	if (r < 0)
		return sbx_err_sys(err, -r, "sending the command to the sandbox agent");
	return sbx_agent_spawn_answer(fd, ex->argv[0], timeout_ms, pid, err);
}

int sbx_agent_spawn(const char *sock_path, const struct sbx_exec *ex, int timeout_ms,
		    struct sbx_agent_proc **out, struct sbx_err *err)
{
	struct sbx_agent_proc *p;
	pid_t pid = 0;
	int fd, r;

	*out = NULL;
	if (!ex->argv || !ex->argv[0])
		return sbx_err_set(err, EINVAL, "no command to run");
	if (ex->script && ex->script_len > SBX_AGENT_MAX_PAYLOAD / 2)
		return sbx_err_set(err, EFBIG, "script too large (%zu bytes)", ex->script_len);
	fd = ac_connect(sock_path, err);
	if (fd < 0)
		return fd;
	r = ac_spawn_on(fd, ex, timeout_ms, &pid, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	p = sbx_agent_proc_adopt(fd, pid, err);
	if (!p) {
		close(fd);
		return -err->code;
	}
	*out = p;
	return 0;
}

struct sbx_agent_proc *sbx_agent_proc_adopt(int fd, pid_t pid, struct sbx_err *err)
{
	struct sbx_agent_proc *p = calloc(1, sizeof(*p));
	int e;

	if (p)
		p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!p || p->wake < 0) {
		e = p ? errno : ENOMEM;
		free(p);
		sbx_err_sys(err, e, "keeping track of the process");
		return NULL;
	}
	p->pid = pid;
	p->fd = fd;
	pthread_mutex_init(&p->wlock, NULL);
	return p;
}

pid_t sbx_agent_proc_pid(const struct sbx_agent_proc *p)
{
	return p->pid;
}

static void ac_free(struct sbx_agent_proc *p)
{
	close(p->fd);
	close(p->wake);
	pthread_mutex_destroy(&p->wlock);
	free(p);
}

void sbx_agent_proc_free(struct sbx_agent_proc *p)
{
	if (p)
		ac_free(p);
}

static void ac_mark_ended(struct sbx_agent_proc *p)
{
	pthread_mutex_lock(&p->wlock);
	p->ended = true;
	pthread_mutex_unlock(&p->wlock);
}

/*
 * When the wait must stop trusting the agent: grace_ms after the first
 * SIGKILL; -1 (never) while no SIGKILL was sent or without a grace.
 */
static long long ac_give_up_at(struct sbx_agent_proc *p, int grace_ms)
{
	long long at;

	if (grace_ms < 0)
		return -1;
	pthread_mutex_lock(&p->wlock);
	at = p->killed_ms ? p->killed_ms + grace_ms : -1;
	pthread_mutex_unlock(&p->wlock);
	return at;
}

/* Waits until fd is readable, the wake eventfd fires, or deadline (-1: none). 1 = readable, 0 = woken/late. */
static int ac_wait_readable(struct sbx_agent_proc *p, long long deadline)
{
	struct pollfd pf[2] = { { p->fd, POLLIN, 0 }, { p->wake, POLLIN, 0 } };
	long long left = deadline < 0 ? -1 : deadline - (long long)sbx_mono_ms();
	uint64_t v;
	int r;

	if (deadline >= 0 && left <= 0)
		return 0;
	r = poll(pf, 2, (int)left);
	if (pf[1].revents && read(p->wake, &v, sizeof(v)) < 0) {
		/* EAGAIN: another read took it; the deadline is read again anyway */
	}
	if (r < 0 && errno != EINTR)
		return 1; /* let the read report the error */
	return r > 0 && pf[0].revents ? 1 : 0;
}

int sbx_agent_wait_guarded(struct sbx_agent_proc *p, int grace_ms, void (*stuck)(void *arg), void *arg,
			   struct sbx_exit *out, struct sbx_err *err)
{
	struct sbx_agent_hdr h;
	char *payload = NULL;
	int r;

	for (;;) {
		long long give_up = ac_give_up_at(p, grace_ms);

		if (!ac_wait_readable(p, give_up)) {
			if (give_up < 0 || (long long)sbx_mono_ms() < give_up)
				continue;
			/*
			 * The agent did not act on the kill: it is stopped, frozen
			 * or gone astray. The caller ends the process from outside;
			 * the connection is cut so the agent kills it too if it
			 * ever runs again.
			 */
			if (stuck)
				stuck(arg);
			shutdown(p->fd, SHUT_RDWR);
			out->signaled = true;
			out->code = SIGKILL;
			ac_mark_ended(p);
			return 0;
		}
		/* A message has started: its rest comes at once from a live agent. */
		r = ac_recv(p->fd, -1, &h, &payload, NULL);
		if (r == -EPIPE || r == -ECONNRESET) {
			/* The agent went away: the sandbox stopped and took the process with it. */
			out->signaled = true;
			out->code = SIGKILL;
			ac_mark_ended(p);
			return 0;
		}
		if (r < 0) {
			ac_mark_ended(p);
			return sbx_err_sys(err, -r, "waiting for the process");
		}
		if (h.type == SBX_AGENT_EXIT && h.len == sizeof(struct sbx_agent_exit)) {
			struct sbx_agent_exit ex;

			memcpy(&ex, payload, sizeof(ex));
			out->signaled = ex.signaled != 0;
			out->code = ex.code;
			free(payload);
			ac_mark_ended(p);
			return 0;
		}
		free(payload);
	}
}

int sbx_agent_wait(struct sbx_agent_proc *p, struct sbx_exit *out, struct sbx_err *err)
{
	return sbx_agent_wait_guarded(p, -1, NULL, NULL, out, err);
}

int sbx_agent_kill(struct sbx_agent_proc *p, int sig)
{
	struct {
		struct sbx_agent_hdr h;
		struct sbx_agent_kill k;
	} m = { { SBX_AGENT_MAGIC, SBX_AGENT_KILL, sizeof(struct sbx_agent_kill) }, { sig } };
	uint64_t one = 1;
	int r;

	pthread_mutex_lock(&p->wlock);
	r = p->ended ? 0 : ac_send_all(p->fd, (const char *)&m, sizeof(m));
	if (sig == SIGKILL && !p->killed_ms) {
		p->killed_ms = (long long)sbx_mono_ms();
		if (write(p->wake, &one, sizeof(one)) < 0) {
			/* the counter is full: the waiter is awake already */
		}
	}
	pthread_mutex_unlock(&p->wlock);
	/* A process that has just ended leaves nothing to kill. */
	return r == -EPIPE || r == -ECONNRESET ? 0 : r;
}

void sbx_agent_hangup(struct sbx_agent_proc *p)
{
	shutdown(p->fd, SHUT_RDWR);
}

void sbx_agent_abandon(struct sbx_agent_proc *p)
{
	if (p)
		ac_free(p);
}
