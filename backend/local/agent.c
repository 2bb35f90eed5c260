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
static bool parent_in_tree(const struct proc_link *procs, size_t n, const bool *in_tree, pid_t ppid)
{
	for (size_t j = 0; j < n; j++)
		if (in_tree[j] && procs[j].pid == ppid)
			return true;
	return false;
}

/* Marks pid, its session and every descendant of either by parent links. */
static void mark_tree(const struct proc_link *procs, size_t n, pid_t pid, bool *in_tree)
{
	bool grew = true;

	for (size_t i = 0; i < n; i++)
		in_tree[i] = procs[i].pid == pid || procs[i].sid == pid;
	while (grew) {
		grew = false;
		for (size_t i = 0; i < n; i++)
			if (!in_tree[i] && parent_in_tree(procs, n, in_tree, procs[i].ppid))
				in_tree[i] = grew = true;
	}
}

static void kill_run(pid_t pid, int sig)
{
	enum { MAX_PROCS = 8192 };
	struct proc_link *procs;

	if (pid <= 0)
		return;
	procs = sig == SIGKILL ? malloc(MAX_PROCS * sizeof(*procs)) : NULL;
	if (!procs) {
		kill(-pid, sig);
		kill(pid, sig);
		return;
	}
	for (int round = 0; round < 3; round++) {
		size_t n = scan_procs(procs, MAX_PROCS);
		bool *in_tree = calloc(n ? n : 1, sizeof(bool));

		if (!in_tree)
			break;
		mark_tree(procs, n, pid, in_tree);
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

/* A SPAWN request, split: the strings point into the client's payload. */
struct spawn_req {
	struct sbx_agent_spawn sp;
	char **argv, **envp;      /* malloc'd arrays, NULL-terminated */
	const char *cwd;          /* "" for the home directory */
	const char *script_name;  /* "" for none */
	const char *script;       /* sp.script_len bytes */
};

/* Checks and splits c's SPAWN payload (bytes the daemon sent, bounded by hdr.len). */
static int parse_spawn(struct client *c, struct spawn_req *r)
{
	size_t len = c->hdr.len, off;
	char *p, *strs[2];
	int n, expect = 0;

	if (len < sizeof(r->sp))
		return -EPROTO;
	memcpy(&r->sp, c->payload, sizeof(r->sp));
	for (int i = 0; i < 3; i++)
		if (r->sp.flags & (1u << i))
			expect++;
	if (r->sp.argc < 1 || r->sp.argc > SBX_AGENT_MAX_ARGS || r->sp.envc > SBX_AGENT_MAX_ARGS ||
	    r->sp.script_len > len - sizeof(r->sp) || expect != c->nfds)
		return -EPROTO;
	r->argv = calloc(r->sp.argc + 1, sizeof(char *));
	r->envp = calloc(r->sp.envc + 1, sizeof(char *));
	if (!r->argv || !r->envp)
		return -ENOMEM;
	p = c->payload + sizeof(r->sp);
	len -= sizeof(r->sp) + r->sp.script_len;
	n = split_strings(p, len, r->argv, (int)r->sp.argc);
	if (n < 0)
		return -EPROTO;
	off = (size_t)n;
	n = split_strings(p + off, len - off, r->envp, (int)r->sp.envc);
	if (n < 0)
		return -EPROTO;
	off += (size_t)n;
	n = split_strings(p + off, len - off, strs, 2);
	if (n < 0 || off + (size_t)n != len)
		return -EPROTO;
	r->cwd = strs[0];
	r->script_name = strs[1];
	r->script = p + len;
	return 0;
}

/* Writes the script, forks the run; 0, or -1 once the error is sent. */
static int start_spawn(struct agent *a, struct client *c, struct spawn_req *r)
{
	const char *cwd = *r->cwd ? r->cwd : a->home;
	int pipefds[2], e;

	if (*r->script_name) {
		e = write_script(a, c, r->script_name, r->script, r->sp.script_len);
		if (e) {
			send_error(c, e, "cannot write script '%s': %s", r->script_name, sbx_errstr(e));
			return -1;
		}
		for (uint32_t i = 0; i < r->sp.argc; i++)
			if (!strcmp(r->argv[i], "{script}"))
				r->argv[i] = c->scriptpath;
	}
	if (pipe2(pipefds, O_CLOEXEC) < 0) {
		e = errno;
		send_error(c, e, "cannot start '%s': %s", r->argv[0], sbx_errstr(e));
		return -1;
	}
	c->pid = fork();
	if (c->pid < 0) {
		e = errno;
		close(pipefds[0]);
		close(pipefds[1]);
		send_error(c, e, "cannot start '%s': %s", r->argv[0], sbx_errstr(e));
		return -1;
	}
	if (c->pid == 0) {
		close(pipefds[0]);
		child_exec(a, c, r->argv, r->envp, cwd, r->sp.flags, pipefds[1]);
	}
	close(pipefds[1]);
	c->errpipe = pipefds[0];
	fcntl(c->errpipe, F_SETFL, O_NONBLOCK);
	client_close_fds(c);
	c->state = C_STARTING;
	return 0;
}

static void handle_spawn(struct agent *a, struct client *c)
{
	struct spawn_req r = { 0 };
	int ret = parse_spawn(c, &r);

	if (ret == -ENOMEM)
		send_error(c, ENOMEM, "out of memory");
	else if (ret < 0)
		send_error(c, EPROTO, "malformed spawn request");
	else
		ret = start_spawn(a, c, &r);
	free(r.argv);
	free(r.envp);
	if (ret < 0) {
		client_free(a, c);
		return;
	}
	free(c->payload);
	c->payload = NULL;
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

/* Where the next bytes go: the header, the payload, or (after a message while a run lives) a drain. */
static struct iovec client_iov(struct client *c, char *drain, size_t drain_size)
{
	if (c->have < sizeof(c->hdr))
		return (struct iovec){ (char *)&c->hdr + c->have, sizeof(c->hdr) - c->have };
	if (c->state != C_READING)
		return (struct iovec){ drain, drain_size };
	return (struct iovec){ c->payload + (c->have - sizeof(c->hdr)), c->hdr.len - (c->have - sizeof(c->hdr)) };
}

/* Keeps up to three passed descriptors while a request is read; closes any other. */
static void client_take_fds(struct client *c, struct msghdr *m)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
		int cnt, fds[3];

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
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

/* A control message while the process runs: KILL is the only one. */
static int client_control(struct client *c)
{
	struct sbx_agent_kill k;

	c->have = 0;
	if (c->hdr.type != SBX_AGENT_KILL || c->hdr.len != sizeof(struct sbx_agent_kill))
		return -1;
	if (recv(c->fd, &k, sizeof(k), MSG_WAITALL) == (ssize_t)sizeof(k) && c->state != C_ORPHAN && !c->exited)
		kill_run(c->pid, k.sig);
	return 0;
}

static int client_request(struct agent *a, struct client *c)
{
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

/* Counts n received bytes; 0 to read on, 1 when a whole message is in, -1 to drop the client. */
static int client_got(struct client *c, size_t n)
{
	c->have += n;
	if (c->have == sizeof(c->hdr)) {
		if (c->hdr.magic != SBX_AGENT_MAGIC || c->hdr.len > SBX_AGENT_MAX_PAYLOAD)
			return -1;
		if (c->state == C_READING && c->hdr.len) {
			c->payload = malloc(c->hdr.len);
			if (!c->payload)
				return -1;
		}
	}
	if (c->state == C_READING)
		return c->have < sizeof(c->hdr) + c->hdr.len ? 0 : 1;
	return c->have < sizeof(c->hdr) ? 0 : 1;
}

/* Reads what is there; returns -1 when the client should go away. */
static int client_read(struct agent *a, struct client *c)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 3)], drain[64];
	struct iovec iov = client_iov(c, drain, sizeof(drain));
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int r;

	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	client_take_fds(c, &m);
	if (n == 0)
		return -1;
	if (c->state != C_READING && c->have >= sizeof(c->hdr))
		return 0; /* junk after a message; ignored */
	r = client_got(c, (size_t)n);
	if (r <= 0)
		return r;
	return c->state != C_READING ? client_control(c) : client_request(a, c);
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

/* One poll entry per descriptor to watch: signals, the listener, each client's socket and exec pipe. */
static size_t poll_set(struct agent *a, struct pollfd *pf, struct client **who)
{
	size_t k = 2;

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
	return k;
}

static bool client_alive(struct agent *a, const struct client *c)
{
	for (size_t j = 0; j < a->ncl; j++)
		if (a->cl[j] == c)
			return true;
	return false;
}

/* Handles one event per client per round: a handler may free its client. */
static void serve_clients(struct agent *a, struct pollfd *pf, struct client **who, size_t k)
{
	for (size_t i = 2; i < k; i++) {
		struct client *c = who[i];

		if (!pf[i].revents || !client_alive(a, c))
			continue;
		if (pf[i].fd == c->errpipe)
			handle_errpipe(a, c);
		else if (pf[i].fd == c->fd && client_read(a, c) < 0)
			client_gone(a, c);
		/* who[] may hold c twice; later entries are checked against a->cl again. */
		for (size_t j = i + 1; j < k; j++)
			if (who[j] == c)
				pf[j].revents = 0;
	}
}

static void accept_clients(struct agent *a)
{
	for (int m = 0; m < 16; m++) {
		int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0)
			break;
		if (!client_new(a, fd))
			close(fd);
	}
}

static int agent_loop(struct agent *a)
{
	for (;;) {
		size_t n = 2 + 2 * a->ncl, k;
		struct pollfd *pf = calloc(n, sizeof(*pf));
		struct client **who = calloc(n, sizeof(*who));

		if (!pf || !who) {
			free(pf);
			free(who);
			sleep(1);
			continue;
		}
		k = poll_set(a, pf, who);
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
		serve_clients(a, pf, who, k);
		if (pf[1].revents & POLLIN)
			accept_clients(a);
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

struct agent_opts {
	const char *listen_at;
	uid_t uid;
	gid_t gid;
};

/* 0, or 2 (the exit status) after saying what is wrong. */
static int parse_args(int argc, char **argv, struct agent *a, struct agent_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "--keep-root")) {
			a->keep_root = true;
			continue;
		}
		if (!v) {
			agent_log("missing value after %s", argv[i]);
			return 2;
		}
		if (!strcmp(argv[i], "--fd"))
			a->lfd = atoi(v);
		else if (!strcmp(argv[i], "--listen"))
			o->listen_at = v;
		else if (!strcmp(argv[i], "--uid"))
			o->uid = (uid_t)strtoul(v, NULL, 10);
		else if (!strcmp(argv[i], "--gid"))
			o->gid = (gid_t)strtoul(v, NULL, 10);
		else if (!strcmp(argv[i], "--home"))
			a->home = v;
		else if (!strcmp(argv[i], "--scripts"))
			a->scripts = v;
		else {
			agent_log("unknown option %s", argv[i]);
			return 2;
		}
		i++;
	}
	return 0;
}

/* The listening socket: given (--fd) or made (--listen); nothing else the launcher had open stays. */
static int setup_listener(struct agent *a, const char *listen_at)
{
	struct stat st;

	if (listen_at)
		a->lfd = listen_path(listen_at);
	if (a->lfd < 0 || fstat(a->lfd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		agent_log("no listening socket (use --fd N or --listen PATH)");
		return -1;
	}
	fcntl(a->lfd, F_SETFD, FD_CLOEXEC);
	fcntl(a->lfd, F_SETFL, O_NONBLOCK);
	/* bwrap's bind and seccomp descriptors go */
	for (int fd = 3; fd < a->lfd; fd++)
		close(fd);
	close_range((unsigned)a->lfd + 1, ~0U, 0);
	return 0;
}

/* Where scripts are written, owned by the sandbox user. */
static int setup_scripts(struct agent *a)
{
	if (mkdir(a->scripts, 0700) < 0 && errno != EEXIST && getuid() != 0) {
		a->scripts = "/tmp/.sbxfs-agent";
		if (mkdir(a->scripts, 0700) < 0 && errno != EEXIST) {
			agent_log("cannot create %s: %s", a->scripts, sbx_errstr(errno));
			return -1;
		}
	} else if (access(a->scripts, F_OK) < 0) {
		agent_log("cannot create %s: %s", a->scripts, sbx_errstr(errno));
		return -1;
	}
	if (getuid() == 0 && chown(a->scripts, a->uid, a->gid) < 0) {
		agent_log("cannot chown %s: %s", a->scripts, sbx_errstr(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct agent a = { .lfd = -1, .home = "/home/user", .scripts = "/run/sbxfs" };
	struct agent_opts o = { .uid = 1000, .gid = 1000 };
	sigset_t mask;

	if (parse_args(argc, argv, &a, &o))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Keep the agent alive through a memory limit; its runs go back to 0.
	 * Writing -1000 succeeds without privilege when it is already -1000
	 * (set by whoever started us).
	 */
	a.oom_protected = sbx_write_knob("/proc/self/oom_score_adj", "-1000", NULL) == 0;
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (setup_listener(&a, o.listen_at) < 0)
		return 2;
	a.uid = o.uid;
	a.gid = o.gid;
	if (setup_scripts(&a) < 0)
		return 1;
	if (a.keep_root && getuid() != 0) {
		agent_log("--keep-root needs to start as root of the sandbox's user namespace");
		return 1;
	}
	if (a.keep_root ? agent_keep_root() < 0 : agent_drop_privileges(o.uid, o.gid) < 0)
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
