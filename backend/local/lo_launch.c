/* lo_launch.c - bubblewrap and the agent of a local sandbox (see lo_launch.h). */
#include "lo_launch.h"
#include "../log.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../util.h"
#include "lo_seccomp.h"

#define LO_MAX_CGFILES LO_NCTL
/* The grandchild's stage reports; USERNS asks the daemon for the id maps. */
enum { ST_CGROUP = 1, ST_EXEC = 2, ST_IDS = 3, ST_MOUNT = 4, ST_DISK = 5, ST_ROOT = 6, ST_USERNS = 0x5553 };
/* Descriptors as bwrap gets them. */
enum { FD_NULL, FD_LOG1, FD_LOG2, FD_LISTEN, FD_SECCOMP, FD_STATUS, FD_ARGS, FD_N };
/*
 * The grandchild starts bwrap from a mount namespace of its own whose root is
 * a small tmpfs: /root (the sandbox's root), /agent, and the host's /usr,
 * /dev and /proc; the rest of the host's mounts are dropped. bwrap resolves
 * its sources by path as the sandbox's ids, which may not search the state
 * directory; and bwrap's outer process stays in this namespace for the
 * sandbox's life, so it must pin no other mount of the host (an sbxfs FUSE
 * mount among them: its connection would never end).
 */
#define LAUNCH_DIR "/mnt"

struct child_fds {
	int src[FD_N];            /* what goes to each number (FD_LOG2 is unused: the log twice) */
	const char *agent;        /* the agent binary (host path) */
	int disk, rootmnt;        /* the sandbox's detached mounts (lo_mnt.h) */
	uid_t home_uid;           /* owner of /home/user; 0 = leave it */
	int cg[LO_MAX_CGFILES];
	int ncg;
	bool cg_self;
	int go;                   /* read end: the daemon wrote the id maps */
	uint32_t uid_base;
};

/* Writes v as decimal into buf (async-signal-safe); returns the length. */
static size_t fmt_uint(char *buf, unsigned long v)
{
	char tmp[24];
	size_t n = 0, i = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		buf[i++] = tmp[--n];
	return i;
}

static void child_report(int fd, int stage, int e) __attribute__((noreturn));
static void child_report(int fd, int stage, int e)
{
	int v[2] = { stage, e };
	ssize_t r = write(fd, v, sizeof(v));

	(void)r;
	_exit(127);
}

static bool child_bind(const char *src, const char *dst, unsigned long flags)
{
	return mount(src, dst, NULL, MS_BIND | flags, NULL) == 0;
}

/* Puts a clone of the detached mount mfd on dst (same filesystem, a mount of this namespace). */
static bool child_attach(int mfd, const char *dst)
{
	int c = open_tree(mfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);

	if (c < 0)
		return false;
	if (move_mount(c, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		int e = errno;

		close(c);
		errno = e;
		return false;
	}
	close(c);
	return true;
}

/* Grandchild, as host root: the launch namespace's root, then a pivot into it. */
static void child_launch_root(const struct child_fds *f)
{
	static const char *const dirs[] = { LAUNCH_DIR "/root", LAUNCH_DIR "/disk",
					    LAUNCH_DIR "/usr", LAUNCH_DIR "/dev", LAUNCH_DIR "/proc",
					    LAUNCH_DIR "/tmp", LAUNCH_DIR "/old" };
	static const char *const links[][2] = { { "usr/bin", LAUNCH_DIR "/bin" }, { "usr/lib", LAUNCH_DIR "/lib" },
						{ "usr/lib64", LAUNCH_DIR "/lib64" } };
	int statfd = f->src[FD_STATUS], fd;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("sbxfs", LAUNCH_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16k") < 0)
		child_report(statfd, ST_MOUNT, errno);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (mkdir(dirs[i], 0755) < 0)
			child_report(statfd, ST_MOUNT, errno);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0)
			child_report(statfd, ST_MOUNT, errno);
	fd = open(LAUNCH_DIR "/agent", O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	if (fd < 0)
		child_report(statfd, ST_MOUNT, errno);
	close(fd);
	if (!child_bind(f->agent, LAUNCH_DIR "/agent", 0) || !child_bind("/usr", LAUNCH_DIR "/usr", MS_REC) ||
	    !child_bind("/dev", LAUNCH_DIR "/dev", MS_REC) || !child_bind("/proc", LAUNCH_DIR "/proc", MS_REC))
		child_report(statfd, ST_MOUNT, errno);
	/* The sandbox's disk and root: clones of the daemon's detached mounts (lo_mnt.h). */
	if (!child_attach(f->disk, LAUNCH_DIR "/disk"))
		child_report(statfd, ST_DISK, errno);
	if (!child_attach(f->rootmnt, LAUNCH_DIR "/root"))
		child_report(statfd, ST_ROOT, errno);
	if (syscall(SYS_pivot_root, LAUNCH_DIR, LAUNCH_DIR "/old") < 0 || chdir("/") < 0 ||
	    umount2("/old", MNT_DETACH) < 0 || rmdir("/old") < 0)
		child_report(statfd, ST_MOUNT, errno);
}

/*
 * Grandchild, in the launch namespace: the user's home (from the template,
 * owned by 1000 there) is given to the sandbox's user.
 */
static void child_sandbox_mounts(const struct child_fds *f)
{
	int statfd = f->src[FD_STATUS];
	struct stat st;

	if (f->home_uid && lstat("/root/home/user", &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_uid != f->home_uid || st.st_gid != f->home_uid) &&
	    lchown("/root/home/user", f->home_uid, f->home_uid) < 0)
		child_report(statfd, ST_ROOT, errno);
}

/* Grandchild: becomes the block's root and unshares a user namespace it owns; the daemon maps it. */
static void child_userns(const struct child_fds *f)
{
	int tag = ST_USERNS, statfd = f->src[FD_STATUS];
	gid_t g = (gid_t)f->uid_base;
	struct pollfd pf = { .fd = f->go, .events = POLLIN };
	char go;

	if (setgroups(0, NULL) < 0 || setresgid(g, g, g) < 0 || setresuid(f->uid_base, f->uid_base, f->uid_base) < 0 ||
	    unshare(CLONE_NEWUSER) < 0)
		child_report(statfd, ST_IDS, errno);
	/* Bounded: a launch forked at the same moment by another thread may hold this pipe's
	 * write end too, and would keep a dead daemon's child waiting for ever. */
	if (write(statfd, &tag, sizeof(tag)) != (ssize_t)sizeof(tag) || poll(&pf, 1, 60000) != 1 ||
	    read(f->go, &go, 1) != 1)
		_exit(127);
}

/*
 * Grandchild: closes every descriptor of the daemon but the ones it passes on
 * (0-2 until they are replaced, src[], the cgroup files, the go pipe), first
 * of all. A copy of /dev/fuse would keep the mount's connection alive if the
 * daemon died meanwhile, and a copy of the go pipe's write end would leave
 * this process waiting for ever.
 */
static void child_keep_only(const struct child_fds *f)
{
	int keep[FD_N + LO_MAX_CGFILES + 3], n = 0;
	unsigned next = 3;

	for (int i = 0; i < FD_N; i++)
		if (f->src[i] >= 0)
			keep[n++] = f->src[i];
	for (int i = 0; i < f->ncg; i++)
		keep[n++] = f->cg[i];
	if (f->go >= 0)
		keep[n++] = f->go;
	keep[n++] = f->disk;
	keep[n++] = f->rootmnt;
	for (int i = 1; i < n; i++) /* insertion sort: no allocation here */
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];

			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	for (int i = 0; i < n; i++) {
		if ((unsigned)keep[i] > next)
			close_range(next, (unsigned)keep[i] - 1, 0);
		if ((unsigned)keep[i] >= next)
			next = (unsigned)keep[i] + 1;
	}
	close_range(next, ~0U, 0);
}

/* Grandchild, from cgroups to fd layout; only async-signal-safe calls (a fork of a threaded daemon). */
static void child_start(const char *bwrap, char *const argv[], char *const envp[], struct child_fds *f)
	__attribute__((noreturn));
static void child_start(const char *bwrap, char *const argv[], char *const envp[], struct child_fds *f)
{
	char num[24];
	int statfd = f->src[FD_STATUS], pid32, fd;
	size_t n;
	sigset_t none;
	struct sigaction dfl;

	child_keep_only(f);
	setsid();
	pid32 = (int)getpid();
	n = f->cg_self ? fmt_uint(num, 0) : fmt_uint(num, (unsigned long)pid32);
	/* Join the cgroups before anything else exists to escape them. */
	for (int i = 0; i < f->ncg; i++)
		if (write(f->cg[i], num, n) != (ssize_t)n)
			child_report(statfd, ST_CGROUP, errno);
	/*
	 * -1000 is inherited by bwrap and the agent (which cannot lower it
	 * itself, having no CAP_SYS_RESOURCE); the agent puts each run back to 0
	 * so a memory hog is what the OOM killer picks. Best effort.
	 */
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "-1000", 5) != 5) {
			/* no CAP_SYS_RESOURCE: runs and agent share the default score */
		}
		close(fd);
	}
	if (write(statfd, &pid32, sizeof(pid32)) != (ssize_t)sizeof(pid32))
		_exit(127);
	child_launch_root(f);
	child_sandbox_mounts(f);
	if (f->uid_base)
		child_userns(f);
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Move everything high first so the dup2s below cannot clobber a source. */
	f->src[FD_LOG2] = f->src[FD_LOG1];
	for (int i = 0; i < FD_N; i++) {
		f->src[i] = fcntl(f->src[i], F_DUPFD_CLOEXEC, 100);
		if (f->src[i] < 0)
			child_report(statfd, ST_EXEC, errno);
	}
	statfd = f->src[FD_STATUS];
	for (int i = 0; i < FD_N; i++)
		if ((i == FD_STATUS ? dup3(f->src[i], i, O_CLOEXEC) : dup2(f->src[i], i)) < 0)
			child_report(statfd, ST_EXEC, errno);
	statfd = FD_STATUS;
	if (close_range(FD_N, ~0U, 0) < 0)
		for (fd = FD_N; fd < 4096; fd++)
			close(fd);
	execve(bwrap, argv, envp);
	child_report(statfd, ST_EXEC, errno);
}

/* bwrap's options (argv up to end), NUL-separated, in a memory file for --args. */
static int args_memfd(char *const argv[], char *const *end, struct sbx_err *err)
{
	int fd = memfd_create("bwrap-args", MFD_CLOEXEC);

	if (fd < 0)
		return sbx_err_sys(err, errno, "creating the bwrap argument file");
	for (size_t i = 0; argv + i < end; i++) {
		int r = sbx_write_all(fd, argv[i], strlen(argv[i]) + 1);

		if (r < 0) {
			close(fd);
			return sbx_err_sys(err, -r, "writing the bwrap argument file");
		}
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		int saved = errno;

		close(fd);
		return sbx_err_sys(err, saved, "rewinding the bwrap argument file");
	}
	return fd;
}

static void fds_close(struct child_fds *f, int *go_w)
{
	for (int i = 0; i < FD_N; i++)
		if (i != FD_LOG2 && f->src[i] >= 0)
			close(f->src[i]);
	for (int i = 0; i < f->ncg; i++)
		if (f->cg[i] >= 0)
			close(f->cg[i]);
	if (f->go >= 0)
		close(f->go);

	if (*go_w >= 0)
		close(*go_w);
}

/* Opens everything the grandchild passes on; f->src[FD_STATUS] is the write end of *statr. */
static int fds_open(const struct lo_launch *l, char *const bw_argv[], char *const *command, struct child_fds *f,
		    int *statr, int *go_w, struct sbx_err *err)
{
	char cgfiles[LO_MAX_CGFILES][PATH_MAX];
	int sp[2], gp[2];
	struct stat sb;

	f->ncg = lo_cg_procs_files(l->cg, cgfiles, LO_MAX_CGFILES, &f->cg_self);
	for (int i = 0; i < f->ncg; i++) {
		f->cg[i] = open(cgfiles[i], O_WRONLY | O_CLOEXEC);
		if (f->cg[i] < 0)
			return sbx_err_sys(err, errno, "opening '%s'", cgfiles[i]);
	}
	/* A log that only grows is cut back when it gets large. */
	if (stat(l->log, &sb) == 0 && sb.st_size > (1 << 20) && truncate(l->log, 0) < 0)
		sbx_log(SBX_LOG_WARNING, NULL, 0, "cannot cut back '%s': %s", l->log, sbx_errstr(errno));
	f->src[FD_LOG1] = open(l->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (f->src[FD_LOG1] < 0)
		return sbx_err_sys(err, errno, "opening '%s'", l->log);
	f->src[FD_NULL] = open("/dev/null", O_RDWR | O_CLOEXEC);
	f->agent = l->agent;
	f->disk = l->mnt->disk;
	f->rootmnt = l->mnt->root;
	f->home_uid = l->uid_base ? l->uid_base + 1000 : 0;
	if (f->src[FD_NULL] < 0)
		return sbx_err_sys(err, errno, "opening what the sandbox is made of");
	if ((f->src[FD_SECCOMP] = lo_seccomp_fd(l->bpf, l->bpf_len, err)) < 0 ||
	    (f->src[FD_ARGS] = args_memfd(bw_argv + 1, command, err)) < 0)
		return -err->code;
	/* The socket exists before the agent: a client's connect() waits in the backlog. */
	if ((f->src[FD_LISTEN] = sbx_unix_listen(l->sock, 0600, err)) < 0)
		return -err->code;
	if (pipe2(sp, O_CLOEXEC) < 0)
		return sbx_err_sys(err, errno, "creating a pipe");
	*statr = sp[0];
	f->src[FD_STATUS] = sp[1];
	if (pipe2(gp, O_CLOEXEC) < 0)
		return sbx_err_sys(err, errno, "creating a pipe");
	f->go = gp[0];
	*go_w = gp[1];
	return 0;
}

/* The maps of the grandchild's new user namespace: inside 0..65535 -> base.. */
static int write_maps(pid_t pid, uint32_t base, struct sbx_err *err)
{
	static const char *const files[] = { "uid_map", "gid_map" };
	char path[64], map[64];

	snprintf(map, sizeof(map), "0 %" PRIu32 " 65536\n", base);
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i]);
		if (sbx_write_knob(path, map, err) < 0)
			return sbx_err_wrap(err, "mapping the sandbox's ids");
	}
	return 0;
}

static int read_int(int fd, int *v)
{
	ssize_t n;

	do
		n = read(fd, v, sizeof(*v));
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(*v) ? 1 : (n == 0 ? 0 : -1);
}

/* Follows the grandchild's reports until its exec (the pipe closes) or a failure. */
/* What the launch child was doing when it reported a failure with this tag. */
static const char *stage_words(int tag)
{
	switch (tag) {
	case ST_CGROUP:
		return "joining the sandbox's cgroups";
	case ST_IDS:
		return "taking the sandbox's ids";
	case ST_MOUNT:
		return "preparing the mounts for bwrap";
	case ST_DISK:
		return "mounting the sandbox's disk";
	case ST_ROOT:
		return "mounting the sandbox's root";
	default:
		return "starting bwrap";
	}
}

/* bwrap made its user namespace: map the ids, then let it go on. */
static int release_userns(pid_t pid, uint32_t uid_base, int *go_w, struct sbx_err *err)
{
	if (write_maps(pid, uid_base, err) < 0)
		return -err->code;
	if (write(*go_w, "g", 1) != 1)
		return sbx_err_sys(err, errno, "starting bwrap");
	close(*go_w);
	*go_w = -1;
	return 0;
}

static int follow(int statr, int *go_w, uint32_t uid_base, pid_t *bw, struct sbx_err *err)
{
	int pid32 = 0, tag, e;

	if (read_int(statr, &pid32) != 1 || pid32 <= 0)
		return sbx_err_set(err, ECHILD, "starting bwrap: no process");
	*bw = pid32;
	for (;;) {
		int r = read_int(statr, &tag);

		if (r == 0)
			return 0; /* exec'd: the close-on-exec pipe closed */
		if (r < 0)
			return sbx_err_sys(err, ECHILD, "starting bwrap");
		if (tag != ST_USERNS || !uid_base)
			break;
		if ((r = release_userns(pid32, uid_base, go_w, err)) < 0)
			return r;
	}
	if (read_int(statr, &e) != 1)
		e = ECHILD;
	return sbx_err_sys(err, e, "%s", stage_words(tag));
}

int lo_launch(const struct lo_launch *l, pid_t *bwrap_pid, struct sbx_err *err)
{
	char *const envp[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	bool ns = l->uid_base != 0;
	char *const argv[] = {
		(char *)l->bwrap, "--new-session", "--unshare-pid", "--unshare-net", "--unshare-uts",
		"--unshare-ipc", "--unshare-cgroup-try", "--hostname", (char *)l->hostname, "--bind", "/root", "/",
		"--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm",
		"--perms", "0755", "--size", "268435456", "--tmpfs", "/run",
		"--ro-bind", "/agent", LO_AGENT_IN,
		"--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
		"--cap-add", "CAP_SETPCAP", "--cap-add", "CAP_CHOWN", "--cap-add", ns ? "CAP_KILL" : "CAP_CHOWN",
		"--seccomp", "4", "--chdir", "/", "--",
		LO_AGENT_IN, "--fd", "3", "--uid", "1000", "--gid", "1000", "--home", "/home/user",
		"--scripts", "/run/sbxfs", ns ? "--keep-root" : NULL, NULL,
	};
	/* bwrap's options come through fd 6 (--args): /proc/1/cmdline names no host path. */
	char *bw_argv[32] = { (char *)l->bwrap, "--args", "6" };
	struct child_fds f = { .go = -1, .uid_base = l->uid_base };
	char *const *command;
	int statr = -1, go_w = -1, r, st;
	size_t k = 3;
	pid_t a;

	for (int i = 0; i < FD_N; i++)
		f.src[i] = -1;
	for (int i = 0; i < LO_MAX_CGFILES; i++)
		f.cg[i] = -1;
	for (command = argv + 1; *command && strcmp(*command, "--"); command++)
		;
	for (char *const *c = command; *c && k < 31; c++)
		bw_argv[k++] = *c;
	bw_argv[k] = NULL;
	r = fds_open(l, argv, command, &f, &statr, &go_w, err);
	if (r < 0)
		goto out;
	a = fork();
	if (a < 0) {
		r = sbx_err_sys(err, errno, "forking");
		goto out;
	}
	if (a == 0) {
		pid_t b = fork();

		if (b != 0)
			_exit(b < 0 ? 1 : 0);
		/* Only the daemon may hold the write end: if it dies, the child's read sees EOF. */
		close(go_w);
		child_start(l->bwrap, bw_argv, envp, &f);
	}
	close(f.src[FD_STATUS]);
	f.src[FD_STATUS] = -1;
	close(f.go);
	f.go = -1;
	while (waitpid(a, &st, 0) < 0 && errno == EINTR)
		;
	r = follow(statr, &go_w, l->uid_base, bwrap_pid, err);
out:
	fds_close(&f, &go_w);
	if (statr >= 0)
		close(statr);
	return r;
}
