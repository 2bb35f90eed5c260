/*
 * agent.c - sbxfs-agent, the process that starts runs inside a sandbox.
 *
 * It is pid 2 under bubblewrap's init (local backend) or a container's
 * command (docker backend). It drops to the sandbox user and every capability
 * before it serves anything, then accepts one connection per process to start
 * (protocol: agent_proto.h). Single-threaded: one poll() loop over the
 * listening socket, a signalfd for SIGCHLD, every client socket and every
 * pending exec pipe, so no client can hold up another.
 *
 *   sbxfs-agent (--fd N | --listen PATH) [--uid 1000] [--gid 1000]
 *               [--home /home/user] [--scripts /run/sbxfs]
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/capability.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_proto.h"
#include "../util.h"

enum cstate {
	C_READING,   /* waiting for the request */
	C_STARTING,  /* forked; waiting for exec to succeed or fail */
	C_RUNNING,   /* started; waiting for the exit */
	C_ORPHAN,    /* client gone; waiting only to reap and clean up */
};

struct client {
	int fd;
	enum cstate state;
	struct sbx_agent_hdr hdr;
	size_t have;            /* bytes of hdr + payload received */
	char *payload;
	int fds[3];
	int nfds;
	pid_t pid;
	int errpipe;
	bool exited;
	int wstatus;
	char scriptdir[PATH_MAX];
	char scriptpath[PATH_MAX];
};

struct agent {
	int lfd;
	int sfd;
	const char *home;
	const char *scripts;
	bool oom_protected;
	bool keep_root;         /* stays root of the sandbox's user namespace; each run drops to uid/gid */
	uid_t uid;
	gid_t gid;
	unsigned long serial;
	struct client **cl;
	size_t ncl;
};

extern char **environ;

static void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void agent_log(const char *fmt, ...)
{
	va_list ap;

	fputs("sbxfs-agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Drops to uid/gid and leaves no capability in any set. */
static int agent_drop_privileges(uid_t uid, gid_t gid)
{
	cap_t caps;
	int ret = 0;

	if (geteuid() == 0 || getuid() == 0) {
		/* Root after setuid must stay powerless; best effort, needs CAP_SETPCAP. */
		prctl(PR_SET_SECUREBITS, (1 << 0) | (1 << 1), 0, 0, 0); /* NOROOT, locked */
		for (cap_value_t c = 0; c <= CAP_LAST_CAP + 8; c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) {
				agent_log("cannot drop capability %d from the bounding set: %s", (int)c,
					  sbx_errstr(errno));
				return -1;
			}
		if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
			agent_log("cannot become uid %u gid %u: %s", uid, gid, sbx_errstr(errno));
			return -1;
		}
	} else {
		/* Already unprivileged (a container's command): shed what is left. */
		for (cap_value_t c = 0; c <= CAP_LAST_CAP + 8; c++)
			prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
	}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	caps = cap_init();
	if (!caps || cap_set_proc(caps) < 0) {
		agent_log("cannot clear capabilities: %s", sbx_errstr(errno));
		ret = -1;
	}
	if (caps)
		cap_free(caps);
	if (getuid() == 0 || geteuid() == 0)
		ret = -1;
	return ret;
}

/*
 * --keep-root: the agent stays root of the sandbox's own user namespace (a
 * uid the runs do not have, so they cannot signal, trace or read it) with
 * only what starting and ending runs takes: CAP_SETUID/SETGID (become the
 * user), CAP_KILL (signal the runs), CAP_SETPCAP (empty a run's bounding set).
 */
static int agent_keep_root(void)
{
	static const cap_value_t keep[] = { CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_SETPCAP };
	cap_t caps;
	int ret = 0;

	/* Root that execs stays powerless (a run is no longer root by then anyway). */
	prctl(PR_SET_SECUREBITS, (1 << 0) | (1 << 1), 0, 0, 0); /* NOROOT, locked */
	for (cap_value_t c = 0; c <= CAP_LAST_CAP + 8; c++) {
		bool kept = false;

		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
			kept |= keep[i] == c;
		if (!kept && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) {
			agent_log("cannot drop capability %d from the bounding set: %s", (int)c, sbx_errstr(errno));
			return -1;
		}
	}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	caps = cap_init();
	if (!caps || cap_set_flag(caps, CAP_PERMITTED, 4, keep, CAP_SET) < 0 ||
	    cap_set_flag(caps, CAP_EFFECTIVE, 4, keep, CAP_SET) < 0 || cap_set_proc(caps) < 0) {
		agent_log("cannot set capabilities: %s", sbx_errstr(errno));
		ret = -1;
	}
	if (caps)
		cap_free(caps);
	return ret;
}

/* In a run's child (--keep-root): the sandbox user, no capability in any set. */
static int run_become_user(const struct agent *a)
{
	for (cap_value_t c = 0; c <= CAP_LAST_CAP + 8; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	if (setgroups(1, &a->gid) < 0 || setresgid(a->gid, a->gid, a->gid) < 0 ||
	    setresuid(a->uid, a->uid, a->uid) < 0)
		return -1;
	/* Leaving uid 0 cleared the permitted, effective and ambient sets. */
	return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

static struct client *client_new(struct agent *a, int fd)
{
	struct client *c = calloc(1, sizeof(*c));
	struct client **ncl;

	if (!c)
		return NULL;
	ncl = realloc(a->cl, (a->ncl + 1) * sizeof(*ncl));
	if (!ncl) {
		free(c);
		return NULL;
	}
	a->cl = ncl;
	c->fd = fd;
	c->errpipe = -1;
	c->state = C_READING;
	a->cl[a->ncl++] = c;
	return c;
}

static void client_close_fds(struct client *c)
{
	for (int i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
}

static void client_free(struct agent *a, struct client *c)
{
	for (size_t i = 0; i < a->ncl; i++)
		if (a->cl[i] == c) {
			a->cl[i] = a->cl[--a->ncl];
			break;
		}
	if (c->fd >= 0)
		close(c->fd);
	if (c->errpipe >= 0)
		close(c->errpipe);
	client_close_fds(c);
	if (c->scriptpath[0])
		unlink(c->scriptpath);
	if (c->scriptdir[0])
		rmdir(c->scriptdir);
	free(c->payload);
	free(c);
}

static int send_msg(struct client *c, uint32_t type, const void *p, size_t len, const void *p2, size_t len2)
{
	struct sbx_agent_hdr h = { SBX_AGENT_MAGIC, type, (uint32_t)(len + len2) };
	struct iovec iov[3] = { { &h, sizeof(h) }, { (void *)p, len }, { (void *)p2, len2 } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 3 };
	ssize_t n;

	if (c->fd < 0)
		return -1;
	/* Replies are small; a client that does not read them loses its connection. */
	n = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	return n == (ssize_t)(sizeof(h) + len + len2) ? 0 : -1;
}

static void send_error(struct client *c, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void send_error(struct client *c, int e, const char *fmt, ...)
{
	struct sbx_agent_error er = { e };
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_msg(c, SBX_AGENT_ERROR, &er, sizeof(er), msg, strlen(msg) + 1);
}

struct proc_link {
	pid_t pid, ppid, sid;
};

/* Reads pid, parent and session of every process we can see; returns the count. */
static size_t scan_procs(struct proc_link *out, size_t max)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir("/proc");

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		char *end;
		long p = strtol(de->d_name, &end, 10);
		struct sbx_proc_stat st;

		if (*end || p <= 0 || sbx_proc_stat((pid_t)p, &st) < 0)
			continue;
		out[n].pid = (pid_t)p;
		out[n].ppid = st.ppid;
		out[n].sid = st.sid;
		n++;
	}
	closedir(d);
	return n;
}

/*
 * Kills the run's process group and, for SIGKILL, its whole tree: every
 * descendant by parent links (taken before anything dies, so `setsid cmd &`
 * children are still linked to the run) and everything in its session.
 * A few rounds catch what forked meanwhile.
 */
static void kill_run(pid_t pid, int sig)
{
	enum { MAX_PROCS = 8192 };
	struct proc_link *procs;

	if (pid <= 0)
		return;
	if (sig != SIGKILL) {
		kill(-pid, sig);
		kill(pid, sig);
		return;
	}
	procs = malloc(MAX_PROCS * sizeof(*procs));
	if (!procs) {
		kill(-pid, sig);
		kill(pid, sig);
		return;
	}
	for (int round = 0; round < 3; round++) {
		size_t n = scan_procs(procs, MAX_PROCS);
		bool *in_tree = calloc(n ? n : 1, sizeof(bool));
		bool grew = true;

		if (!in_tree)
			break;
		for (size_t i = 0; i < n; i++)
			in_tree[i] = procs[i].pid == pid || procs[i].sid == pid;
		while (grew) {
			grew = false;
			for (size_t i = 0; i < n; i++) {
				if (in_tree[i])
					continue;
				for (size_t j = 0; j < n; j++) {
					if (in_tree[j] && procs[i].ppid == procs[j].pid) {
						in_tree[i] = grew = true;
						break;
					}
				}
			}
		}
		kill(-pid, SIGKILL);
		for (size_t i = 0; i < n; i++)
			if (in_tree[i] && procs[i].pid != getpid())
				kill(procs[i].pid, SIGKILL);
		free(in_tree);
	}
	free(procs);
}

/* Splits the SPAWN payload; returns the number of strings or -1. */
static int split_strings(char *p, size_t len, char **out, int want)
{
	int n = 0;
	size_t off = 0;

	while (n < want) {
		char *z = memchr(p + off, '\0', len - off);

		if (!z)
			return -1;
		out[n++] = p + off;
		off = (size_t)(z - p) + 1;
	}
	return (int)off;
}

static void child_fail(int pipefd, int stage, int e) __attribute__((noreturn));
static void child_fail(int pipefd, int stage, int e)
{
	int32_t v[2] = { stage, e };
	ssize_t r = write(pipefd, v, sizeof(v));

	(void)r;
	_exit(127);
}

/* In the forked child: becomes the run. Never returns. */
static void child_exec(struct agent *a, struct client *c, char **argv, char **envp, const char *cwd,
		       uint32_t flags, int pipefd) __attribute__((noreturn));
static void child_exec(struct agent *a, struct client *c, char **argv, char **envp, const char *cwd,
		       uint32_t flags, int pipefd)
{
	int src[3];
	int k = 0;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (a->oom_protected)
		sbx_write_knob("/proc/self/oom_score_adj", "0", NULL);
	if (a->keep_root && run_become_user(a) < 0)
		child_fail(pipefd, 3, errno);
	for (int i = 0; i < 3; i++) {
		int fd;

		if (flags & (1u << i)) {
			fd = c->fds[k++];
		} else {
			fd = open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
			if (fd < 0)
				child_fail(pipefd, 3, errno);
		}
		src[i] = fcntl(fd, F_DUPFD_CLOEXEC, 10);
		if (src[i] < 0)
			child_fail(pipefd, 3, errno);
	}
	pipefd = fcntl(pipefd, F_DUPFD_CLOEXEC, 10 + 3);
	for (int i = 0; i < 3; i++)
		if (dup2(src[i], i) < 0)
			child_fail(pipefd, 3, errno);
	if (dup3(pipefd, 3, O_CLOEXEC) < 0)
		child_fail(pipefd, 3, errno);
	pipefd = 3;
	if (close_range(4, ~0U, 0) < 0) {
		for (int fd = 4; fd < 1024; fd++)
			close(fd);
	}
	if (chdir(cwd) < 0)
		child_fail(pipefd, 1, errno);
	environ = envp;
	execvp(argv[0], argv);
	child_fail(pipefd, 2, errno);
}

static int write_script_as(struct agent *a, struct client *c, const char *name, const char *data, size_t len);

static int write_script(struct agent *a, struct client *c, const char *name, const char *data, size_t len)
{
	int e;

	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") || strlen(name) > 200)
		return EINVAL;
	/* The run reads it as the sandbox user: create it as that user. */
	if (a->keep_root) {
		setfsgid(a->gid);
		setfsuid(a->uid);
	}
	e = write_script_as(a, c, name, data, len);
	if (a->keep_root) {
		setfsuid(0);
		setfsgid(0);
	}
	return e;
}

static int write_script_as(struct agent *a, struct client *c, const char *name, const char *data, size_t len)
{
	int fd;
	size_t off = 0;

	snprintf(c->scriptdir, sizeof(c->scriptdir), "%s/%lu", a->scripts, ++a->serial);
	if (mkdir(c->scriptdir, 0700) < 0) {
		int e = errno;

		c->scriptdir[0] = '\0';
		return e;
	}
	snprintf(c->scriptpath, sizeof(c->scriptpath), "%s/%s", c->scriptdir, name);
	fd = open(c->scriptpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;

		c->scriptpath[0] = '\0';
		return e;
	}
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0) {
			int e = errno;

			close(fd);
			return e;
		}
		off += (size_t)n;
	}
	close(fd);
	return 0;
}

static void handle_spawn(struct agent *a, struct client *c)
{
	struct sbx_agent_spawn sp;
	char **argv = NULL, **envp = NULL;
	char *strs[3];
	char *p;
	size_t len = c->hdr.len, off;
	int pipefds[2] = { -1, -1 };
	int n, expect = 0, e;
	const char *cwd;

	if (len < sizeof(sp)) {
		send_error(c, EPROTO, "malformed spawn request");
		goto fail;
	}
	memcpy(&sp, c->payload, sizeof(sp));
	for (int i = 0; i < 3; i++)
		if (sp.flags & (1u << i))
			expect++;
	if (sp.argc < 1 || sp.argc > SBX_AGENT_MAX_ARGS || sp.envc > SBX_AGENT_MAX_ARGS ||
	    sp.script_len > len - sizeof(sp) || expect != c->nfds) {
		send_error(c, EPROTO, "malformed spawn request");
		goto fail;
	}
	argv = calloc(sp.argc + 1, sizeof(char *));
	envp = calloc(sp.envc + 1, sizeof(char *));
	if (!argv || !envp) {
		send_error(c, ENOMEM, "out of memory");
		goto fail;
	}
	p = c->payload + sizeof(sp);
	len -= sizeof(sp) + sp.script_len;
	off = 0;
	n = split_strings(p, len, argv, (int)sp.argc);
	if (n < 0)
		goto bad;
	off = (size_t)n;
	n = split_strings(p + off, len - off, envp, (int)sp.envc);
	if (n < 0)
		goto bad;
	off += (size_t)n;
	n = split_strings(p + off, len - off, strs, 2);
	if (n < 0 || off + (size_t)n != len)
		goto bad;
	cwd = *strs[0] ? strs[0] : a->home;
	if (*strs[1]) {
		e = write_script(a, c, strs[1], p + len, sp.script_len);
		if (e) {
			send_error(c, e, "cannot write script '%s': %s", strs[1], sbx_errstr(e));
			goto fail;
		}
		for (uint32_t i = 0; i < sp.argc; i++)
			if (!strcmp(argv[i], "{script}"))
				argv[i] = c->scriptpath;
	}
	if (pipe2(pipefds, O_CLOEXEC) < 0) {
		e = errno;
		send_error(c, e, "cannot start '%s': %s", argv[0], sbx_errstr(e));
		goto fail;
	}
	c->pid = fork();
	if (c->pid < 0) {
		e = errno;
		send_error(c, e, "cannot start '%s': %s", argv[0], sbx_errstr(e));
		goto fail;
	}
	if (c->pid == 0) {
		close(pipefds[0]);
		child_exec(a, c, argv, envp, cwd, sp.flags, pipefds[1]);
	}
	close(pipefds[1]);
	c->errpipe = pipefds[0];
	fcntl(c->errpipe, F_SETFL, O_NONBLOCK);
	client_close_fds(c);
	c->state = C_STARTING;
	free(argv);
	free(envp);
	free(c->payload);
	c->payload = NULL;
	return;
bad:
	send_error(c, EPROTO, "malformed spawn request");
fail:
	if (pipefds[0] >= 0)
		close(pipefds[0]);
	if (pipefds[1] >= 0)
		close(pipefds[1]);
	free(argv);
	free(envp);
	client_free(a, c);
}

static void send_exit(struct client *c)
{
	struct sbx_agent_exit ex;

	if (WIFSIGNALED(c->wstatus)) {
		ex.signaled = 1;
		ex.code = WTERMSIG(c->wstatus);
	} else {
		ex.signaled = 0;
		ex.code = WEXITSTATUS(c->wstatus);
	}
	send_msg(c, SBX_AGENT_EXIT, &ex, sizeof(ex), NULL, 0);
}

/* The exec pipe of a starting run became readable: it exec'd or it failed. */
static void handle_errpipe(struct agent *a, struct client *c)
{
	int32_t v[2];
	ssize_t n = read(c->errpipe, v, sizeof(v));
	struct sbx_agent_started st = { c->pid };

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close(c->errpipe);
	c->errpipe = -1;
	if (n == (ssize_t)sizeof(v)) {
		int e = v[1];

		if (v[0] == 1)
			send_error(c, e, "cannot change to the working directory: %s", sbx_errstr(e));
		else if (v[0] == 2 && e == ENOENT)
			send_error(c, e, "command not found");
		else if (v[0] == 2)
			send_error(c, e, "cannot execute the command: %s", sbx_errstr(e));
		else
			send_error(c, e, "cannot set up the process: %s", sbx_errstr(e));
		/* It exits 127 by itself; reap it, then drop the client. */
		c->state = C_ORPHAN;
		if (c->exited)
			client_free(a, c);
		else if (c->fd >= 0) {
			close(c->fd);
			c->fd = -1;
		}
		return;
	}
	c->state = C_RUNNING;
	if (send_msg(c, SBX_AGENT_STARTED, &st, sizeof(st), NULL, 0) < 0) {
		kill_run(c->pid, SIGKILL);
		c->state = C_ORPHAN;
	}
	if (c->exited) {
		send_exit(c);
		client_free(a, c);
	}
}

static void reap(struct agent *a)
{
	struct signalfd_siginfo si;
	int st;
	pid_t pid;

	while (read(a->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (size_t i = 0; i < a->ncl; i++) {
			struct client *c = a->cl[i];

			if (c->pid != pid || c->exited)
				continue;
			c->exited = true;
			c->wstatus = st;
			if (c->state == C_RUNNING) {
				send_exit(c);
				client_free(a, c);
			} else if (c->state == C_ORPHAN && c->errpipe < 0) {
				client_free(a, c);
			}
			break;
		}
	}
}

/* Reads what is there; returns -1 when the client should go away. */
static int client_read(struct agent *a, struct client *c)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 3)];
	struct iovec iov;
	struct msghdr m = { 0 };
	ssize_t n;
	char drain[64];

	if (c->state == C_READING) {
		if (c->have < sizeof(c->hdr)) {
			iov.iov_base = (char *)&c->hdr + c->have;
			iov.iov_len = sizeof(c->hdr) - c->have;
		} else {
			iov.iov_base = c->payload + (c->have - sizeof(c->hdr));
			iov.iov_len = c->hdr.len - (c->have - sizeof(c->hdr));
		}
	} else {
		if (c->have < sizeof(c->hdr)) {
			iov.iov_base = (char *)&c->hdr + c->have;
			iov.iov_len = sizeof(c->hdr) - c->have;
		} else {
			iov.iov_base = drain;
			iov.iov_len = sizeof(drain);
		}
	}
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = cbuf;
	m.msg_controllen = sizeof(cbuf);
	n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			int cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			int fds[3];

			if (cnt > 3)
				cnt = 3;
			memcpy(fds, CMSG_DATA(cm), (size_t)cnt * sizeof(int));
			for (int i = 0; i < cnt; i++) {
				if (c->nfds < 3 && c->state == C_READING)
					c->fds[c->nfds++] = fds[i];
				else
					close(fds[i]);
			}
		}
	}
	if (n == 0)
		return -1;
	if (c->state != C_READING && c->have >= sizeof(c->hdr))
		return 0; /* junk after a message; ignored */
	c->have += (size_t)n;
	if (c->have == sizeof(c->hdr)) {
		if (c->hdr.magic != SBX_AGENT_MAGIC || c->hdr.len > SBX_AGENT_MAX_PAYLOAD)
			return -1;
		if (c->state == C_READING && c->hdr.len) {
			c->payload = malloc(c->hdr.len);
			if (!c->payload)
				return -1;
		}
	}
	if (c->state == C_READING ? c->have < sizeof(c->hdr) + c->hdr.len : c->have < sizeof(c->hdr))
		return 0;
	if (c->state != C_READING) {
		/* A control message while the process runs: KILL is the only one. */
		c->have = 0;
		if (c->hdr.type == SBX_AGENT_KILL && c->hdr.len == sizeof(struct sbx_agent_kill)) {
			struct sbx_agent_kill k;

			if (recv(c->fd, &k, sizeof(k), MSG_WAITALL) == (ssize_t)sizeof(k) && c->state != C_ORPHAN &&
			    !c->exited)
				kill_run(c->pid, k.sig);
			return 0;
		}
		return -1;
	}
	c->have = 0;
	switch (c->hdr.type) {
	case SBX_AGENT_HELLO:
		send_msg(c, SBX_AGENT_HELLO, NULL, 0, NULL, 0);
		return -1;
	case SBX_AGENT_SPAWN:
		handle_spawn(a, c);
		return 1; /* c may be gone */
	default:
		return -1;
	}
}

static void client_gone(struct agent *a, struct client *c)
{
	if (c->state == C_READING) {
		client_free(a, c);
		return;
	}
	/* The daemon hung up on a live run: the run dies with it. */
	if (c->state != C_ORPHAN && !c->exited)
		kill_run(c->pid, SIGKILL);
	close(c->fd);
	c->fd = -1;
	c->state = C_ORPHAN;
	if (c->exited && c->errpipe < 0)
		client_free(a, c);
}

static int agent_loop(struct agent *a)
{
	for (;;) {
		size_t n = 2 + 2 * a->ncl, k = 2;
		struct pollfd *pf = calloc(n, sizeof(*pf));
		struct client **who = calloc(n, sizeof(*who));

		if (!pf || !who) {
			free(pf);
			free(who);
			sleep(1);
			continue;
		}
		pf[0] = (struct pollfd){ a->sfd, POLLIN, 0 };
		pf[1] = (struct pollfd){ a->lfd, POLLIN, 0 };
		for (size_t i = 0; i < a->ncl; i++) {
			struct client *c = a->cl[i];

			if (c->fd >= 0) {
				who[k] = c;
				pf[k++] = (struct pollfd){ c->fd, POLLIN, 0 };
			}
			if (c->errpipe >= 0) {
				who[k] = c;
				pf[k++] = (struct pollfd){ c->errpipe, POLLIN, 0 };
			}
		}
		if (poll(pf, k, -1) < 0) {
			free(pf);
			free(who);
			if (errno == EINTR)
				continue;
			agent_log("poll: %s", sbx_errstr(errno));
			return 1;
		}
		if (pf[0].revents)
			reap(a);
		/* Handle one event per client per round: a handler may free its client. */
		for (size_t i = 2; i < k; i++) {
			struct client *c = who[i];
			bool alive = false;

			if (!pf[i].revents)
				continue;
			for (size_t j = 0; j < a->ncl; j++)
				alive |= a->cl[j] == c;
			if (!alive)
				continue;
			if (pf[i].fd == c->errpipe) {
				handle_errpipe(a, c);
			} else if (pf[i].fd == c->fd) {
				int r = client_read(a, c);

				if (r < 0)
					client_gone(a, c);
			}
			/* who[] may hold c twice; later entries are checked against a->cl again. */
			for (size_t j = i + 1; j < k; j++)
				if (who[j] == c)
					pf[j].revents = 0;
		}
		if (pf[1].revents & POLLIN) {
			for (int m = 0; m < 16; m++) {
				int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

				if (fd < 0)
					break;
				if (!client_new(a, fd))
					close(fd);
			}
		}
		free(pf);
		free(who);
	}
}

static int listen_path(const char *path)
{
	struct sbx_err err = { 0 };
	int fd = sbx_unix_listen(path, 0, &err);

	if (fd < 0)
		agent_log("%s", err.msg);
	return fd;
}

int main(int argc, char **argv)
{
	struct agent a = { .lfd = -1, .home = "/home/user", .scripts = "/run/sbxfs" };
	const char *listen_at = NULL;
	uid_t uid = 1000;
	gid_t gid = 1000;
	sigset_t mask;
	struct stat st;

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "--keep-root")) {
			a.keep_root = true;
			continue;
		}
		if (!v) {
			agent_log("missing value after %s", argv[i]);
			return 2;
		}
		if (!strcmp(argv[i], "--fd"))
			a.lfd = atoi(v);
		else if (!strcmp(argv[i], "--listen"))
			listen_at = v;
		else if (!strcmp(argv[i], "--uid"))
			uid = (uid_t)strtoul(v, NULL, 10);
		else if (!strcmp(argv[i], "--gid"))
			gid = (gid_t)strtoul(v, NULL, 10);
		else if (!strcmp(argv[i], "--home"))
			a.home = v;
		else if (!strcmp(argv[i], "--scripts"))
			a.scripts = v;
		else {
			agent_log("unknown option %s", argv[i]);
			return 2;
		}
		i++;
	}
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Keep the agent alive through a memory limit; its runs go back to 0.
	 * Writing -1000 succeeds without privilege when it is already -1000
	 * (set by whoever started us).
	 */
	a.oom_protected = sbx_write_knob("/proc/self/oom_score_adj", "-1000", NULL) == 0;
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (listen_at)
		a.lfd = listen_path(listen_at);
	if (a.lfd < 0 || fstat(a.lfd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		agent_log("no listening socket (use --fd N or --listen PATH)");
		return 2;
	}
	fcntl(a.lfd, F_SETFD, FD_CLOEXEC);
	fcntl(a.lfd, F_SETFL, O_NONBLOCK);
	/* Nothing else the launcher had open stays (bwrap's bind and seccomp descriptors). */
	for (int fd = 3; fd < a.lfd; fd++)
		close(fd);
	close_range((unsigned)a.lfd + 1, ~0U, 0);
	a.uid = uid;
	a.gid = gid;
	if (mkdir(a.scripts, 0700) < 0 && errno != EEXIST && getuid() != 0) {
		a.scripts = "/tmp/.sbxfs-agent";
		if (mkdir(a.scripts, 0700) < 0 && errno != EEXIST) {
			agent_log("cannot create %s: %s", a.scripts, sbx_errstr(errno));
			return 1;
		}
	} else if (access(a.scripts, F_OK) < 0) {
		agent_log("cannot create %s: %s", a.scripts, sbx_errstr(errno));
		return 1;
	}
	if (getuid() == 0 && chown(a.scripts, uid, gid) < 0) {
		agent_log("cannot chown %s: %s", a.scripts, sbx_errstr(errno));
		return 1;
	}
	if (a.keep_root && getuid() != 0) {
		agent_log("--keep-root needs to start as root of the sandbox's user namespace");
		return 1;
	}
	if (a.keep_root ? agent_keep_root() < 0 : agent_drop_privileges(uid, gid) < 0)
		return 1;
	if (chdir("/") < 0)
		return 1;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	a.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a.sfd < 0) {
		agent_log("signalfd: %s", sbx_errstr(errno));
		return 1;
	}
	return agent_loop(&a);
}
