/*
 * local.c - the `local` backend: sandboxes on this machine, as root.
 *
 * A sandbox is an overlay (template skeleton + a loop-mounted ext4 image that
 * bounds what it can write) with the host's /usr read-only on top, cgroups
 * for memory/cpu/pids and pause, and a bubblewrap process tree (new pid, net,
 * uts, ipc, mount and cgroup namespaces; a seccomp filter) whose pid 2 is
 * sbxfs-agent, which starts every process on request. Design and numbers:
 * docs/local-backend.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../backend.h"
#include "../log.h"
#include "../util.h"
#include "agent_client.h"
#include "lo_cgroup.h"
#include "lo_disk.h"
#include "lo_files.h"
#include "lo_launch.h"
#include "lo_mnt.h"
#include "lo_seccomp.h"
#include "lo_template.h"
#include "lo_uid.h"

#define LO_HELLO_MS 10000
#define LO_SPAWN_MS 30000
/* How long the agent gets to act on a SIGKILL before the host ends the run itself. */
#define LO_KILL_GRACE_MS 1000

struct sbx_backend {
	char state_root[PATH_MAX];
	char agent[PATH_MAX];
	const char *bwrap;
	struct lo_cgroot cgroot;
	char *bpf;
	size_t bpf_len;
	struct lo_pool *pool;
	pthread_mutex_t tmpl_lock;
	struct sbx_template_info tinfo;
	const struct sbx_template_info *tlist[2];
};

struct sbx_instance {
	struct sbx_backend *be;
	char name[80];
	char id[80];
	char state_dir[PATH_MAX];
	char sock[PATH_MAX + 16];
	char loopdev[32];
	uint32_t uid_base;               /* host id of root inside (lo_uid.h); 0 = none (older sandboxes) */
	struct sbx_limits limits;
	struct lo_cg cg;
	/*
	 * Serialises (re)starting and ending the sandbox's processes (create,
	 * restart, attach, destroy, and the host-side end of a stuck run, which
	 * comes from a waiter thread outside the control plane's exclusive calls). Taken
	 * before in->lock; backend-internal, below the control plane's locks.
	 */
	pthread_mutex_t start_lock;
	bool gone;                       /* destroyed: nothing may start it again (start_lock) */
	bool launch_ns;                  /* its mounts are in bwrap's launch namespace (lock) */
	struct lo_mnt mnt;               /* its disk and root, detached (lo_mnt.h); set under start_lock + lock */
	pthread_mutex_t lock;            /* a leaf: pids, refs, metrics readings */
	unsigned refs;                   /* the control plane's handle + one per live process */
	pid_t bwrap_pid, agent_pid;
	unsigned long long bwrap_start, agent_start;
	bool have_reading;
	double last_cpu, last_pct;
	struct timespec last_ts;
};

struct sbx_proc {
	struct sbx_agent_proc *ap;
	struct sbx_instance *in;         /* holds a reference */
	unsigned long long agent_start;  /* the agent that started it (its start time) */
};

/* --- small helpers --- */

/* Reports an error that does not fail the operation: one line, the sandbox, what, the errno in words. */
static void lo_warn(const struct sbx_instance *in, const char *what, const struct sbx_err *e)
{
	sbx_log(SBX_LOG_WARNING, in->name, 0, "%s: %s (%s)", what, e->msg[0] ? e->msg : "failed",
		sbx_errstr(e->code));
}

/* A process's start time, 0 when it is gone or a zombie (0 never matches a live one). */
static unsigned long long proc_starttime(pid_t pid)
{
	struct sbx_proc_stat st;

	if (sbx_proc_stat(pid, &st) < 0 || st.state == 'Z' || st.state == 'X')
		return 0;
	return st.start;
}

static bool inst_agent_alive(struct sbx_instance *in)
{
	bool alive;

	pthread_mutex_lock(&in->lock);
	alive = in->agent_pid > 0 && in->agent_start && proc_starttime(in->agent_pid) == in->agent_start;
	pthread_mutex_unlock(&in->lock);
	return alive;
}

static int write_state(struct sbx_instance *in, int flags, struct sbx_err *err)
{
	char path[PATH_MAX + 32];
	json_object *o = json_object_new_object();
	const char *s;
	int r;

	if (!o)
		return sbx_err_set(err, ENOMEM, "out of memory");
	pthread_mutex_lock(&in->lock);
	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "id", json_object_new_string(in->id));
	json_object_object_add(o, "loop", json_object_new_string(in->loopdev));
	json_object_object_add(o, "bwrap_pid", json_object_new_int(in->bwrap_pid));
	json_object_object_add(o, "bwrap_start", json_object_new_int64((int64_t)in->bwrap_start));
	json_object_object_add(o, "agent_pid", json_object_new_int(in->agent_pid));
	json_object_object_add(o, "agent_start", json_object_new_int64((int64_t)in->agent_start));
	json_object_object_add(o, "cgroup", json_object_new_string(in->cg.v2 ? "v2" : "v1"));
	json_object_object_add(o, "uid_base", json_object_new_int64(in->uid_base));
	json_object_object_add(o, "mounts", json_object_new_string(in->launch_ns ? "launch" : "host"));
	pthread_mutex_unlock(&in->lock);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	snprintf(path, sizeof(path), "%s/local.json", in->state_dir);
	/*
	 * fsync'd only at create (flags), for the uid block its files are owned
	 * by; later writes change pids, which matter after a daemon crash, when
	 * the page cache survives, and are stale after a host crash anyway.
	 */
	r = sbx_write_file_atomic(path, s, strlen(s), flags, err);
	json_object_put(o);
	return r;
}

static void read_state(struct sbx_instance *in)
{
	char path[PATH_MAX + 32];
	json_object *o, *v;

	snprintf(path, sizeof(path), "%s/local.json", in->state_dir);
	o = json_object_from_file(path);
	if (!o)
		return;
	if (json_object_object_get_ex(o, "loop", &v))
		snprintf(in->loopdev, sizeof(in->loopdev), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(o, "bwrap_pid", &v))
		in->bwrap_pid = json_object_get_int(v);
	if (json_object_object_get_ex(o, "bwrap_start", &v))
		in->bwrap_start = (unsigned long long)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "agent_pid", &v))
		in->agent_pid = json_object_get_int(v);
	if (json_object_object_get_ex(o, "agent_start", &v))
		in->agent_start = (unsigned long long)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "uid_base", &v))
		in->uid_base = (uint32_t)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "mounts", &v))
		in->launch_ns = !strcmp(json_object_get_string(v), "launch");
	json_object_put(o);
}

/* The last line of the agent's log, to explain a sandbox that did not start. */
static void agent_log_tail(struct sbx_instance *in, char *out, size_t size)
{
	char path[PATH_MAX + 32], buf[4096];
	ssize_t n;
	int fd;
	char *end, *start;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/agent.log", in->state_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = pread(fd, buf, sizeof(buf) - 1, lseek(fd, 0, SEEK_END) > (off_t)sizeof(buf) - 1 ?
					       lseek(fd, 0, SEEK_END) - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	end = buf + n;
	while (end > buf && end[-1] == '\n')
		*--end = '\0';
	start = strrchr(buf, '\n');
	snprintf(out, size, "%s", start ? start + 1 : buf);
}

/*
 * The sandbox's disk and root as detached mounts, made once: a restart clones
 * the same ones again (lo_mnt.h), so the image is never mounted twice.
 */
static int ensure_mounts(struct sbx_instance *in, struct sbx_err *err)
{
	struct sbx_backend *be = in->be;
	char lower[PATH_MAX];
	struct lo_mnt m = LO_MNT_NONE;
	int r, loopfd;

	if (in->mnt.root >= 0)
		return 0;
	/* What a sandbox made before the launch namespace left mounted on the host goes first. */
	if ((r = lo_unmount_all(in->state_dir, err)) < 0 ||
	    (r = lo_template_ensure(&be->tmpl_lock, be->state_root, "default", lower, sizeof(lower), err)) < 0)
		return r;
	loopfd = lo_disk_attach(in->state_dir, in->loopdev, sizeof(in->loopdev), err);
	if (loopfd < 0)
		return loopfd;
	r = lo_mnt_make(in->loopdev, lower, &m, err);
	close(loopfd); /* the disk's mount holds the device now; autoclear frees it with the mount */
	if (r < 0)
		return r;
	pthread_mutex_lock(&in->lock);
	in->mnt = m;
	pthread_mutex_unlock(&in->lock);
	return 0;
}

/* Starts bubblewrap and the agent in the sandbox's cgroups; returns once the agent answers. */
static int lo_start(struct sbx_instance *in, struct sbx_err *err)
{
	struct sbx_backend *be = in->be;
	char logp[PATH_MAX + 16];
	struct lo_launch l = {
		.bwrap = be->bwrap, .agent = be->agent, .hostname = in->name, .mnt = &in->mnt, .sock = in->sock,
		.log = logp, .cg = &in->cg, .bpf = be->bpf, .bpf_len = be->bpf_len, .uid_base = in->uid_base,
	};
	pid_t bw = 0, agent = 0;
	int r;

	snprintf(logp, sizeof(logp), "%s/agent.log", in->state_dir);
	if ((r = ensure_mounts(in, err)) < 0 || (r = lo_launch(&l, &bw, err)) < 0)
		return r;
	pthread_mutex_lock(&in->lock);
	in->launch_ns = true;
	in->bwrap_pid = bw;
	in->bwrap_start = proc_starttime(bw);
	pthread_mutex_unlock(&in->lock);
	r = sbx_agent_hello(in->sock, LO_HELLO_MS, &agent, err);
	if (r < 0) {
		char tail[256];

		agent_log_tail(in, tail, sizeof(tail));
		if (tail[0])
			return sbx_err_set(err, err->code, "starting the sandbox's processes: %s", tail);
		return sbx_err_wrap(err, "starting the sandbox's processes");
	}
	pthread_mutex_lock(&in->lock);
	in->agent_pid = agent;
	in->agent_start = proc_starttime(agent);
	in->have_reading = false;
	pthread_mutex_unlock(&in->lock);
	return 0;
}

/*
 * Where the host reaches the sandbox's mounts: through bwrap's launch
 * namespace (/proc/PID/root/REL) while it runs, or, for a sandbox made before
 * it, under the state directory. ENOENT when the sandbox is not running.
 */
static int inst_path(struct sbx_instance *in, const char *rel, char *out, size_t size, struct sbx_err *err)
{
	unsigned long long start;
	bool ns;
	pid_t bw;

	pthread_mutex_lock(&in->lock);
	bw = in->bwrap_pid;
	start = in->bwrap_start;
	ns = in->launch_ns;
	pthread_mutex_unlock(&in->lock);
	if (!ns) {
		snprintf(out, size, "%s/%s", in->state_dir, rel);
		return 0;
	}
	if (bw <= 0 || !start || proc_starttime(bw) != start)
		return sbx_err_set(err, ENOENT, "sandbox '%s' is not running (its files are mounted while it runs)",
				   in->name);
	snprintf(out, size, "/proc/%d/root/%s", (int)bw, rel);
	return 0;
}

/*
 * Opens a directory of the sandbox's mounts: below its detached root or disk
 * (rel "root..." or "disk..."), else by inst_path (a sandbox made before, or
 * adopted without its mounts), checking that bwrap did not change meanwhile.
 */
static int inst_open(struct sbx_instance *in, const char *rel, int flags, int *fd_out, struct sbx_err *err)
{
	bool disk = !strncmp(rel, "disk", 4);
	const char *below = rel + 4 + (rel[4] == '/');
	char path[PATH_MAX + 64];
	int fd, base, r;

	pthread_mutex_lock(&in->lock);
	base = disk ? in->mnt.disk : in->mnt.root;
	fd = base >= 0 ? openat(base, *below ? below : ".", flags | O_DIRECTORY | O_CLOEXEC) : -1;
	r = base >= 0 && fd < 0 ? -errno : 0;
	pthread_mutex_unlock(&in->lock);
	if (base >= 0) {
		if (r < 0)
			return sbx_err_sys(err, -r, "opening '%s' of sandbox '%s'", rel, in->name);
		*fd_out = fd;
		return 0;
	}
	r = inst_path(in, rel, path, sizeof(path), err);
	if (r < 0)
		return r;
	fd = open(path, flags | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return sbx_err_sys(err, errno, "opening '%s' of sandbox '%s'", rel, in->name);
	r = inst_path(in, rel, path, sizeof(path), err);
	if (r < 0) {
		close(fd);
		return r;
	}
	*fd_out = fd;
	return 0;
}

/* --- the operations --- */

/* What sandboxes are made with: bwrap, the agent, /mnt (lo_launch.c) and the loop devices. */
static int lo_find_tools(struct sbx_backend *be, struct sbx_err *err)
{
	static const char *const bwraps[] = { "/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap" };

	for (size_t i = 0; i < sizeof(bwraps) / sizeof(bwraps[0]) && !be->bwrap; i++)
		if (access(bwraps[i], X_OK) == 0)
			be->bwrap = bwraps[i];
	if (!be->bwrap)
		return sbx_err_set(err, ENOENT, "local backend: bwrap not found (install bubblewrap)");
	if (access(be->agent, X_OK) < 0)
		return sbx_err_sys(err, errno, "local backend: helper '%s'", be->agent);
	/* bwrap is started from a tmpfs mounted on /mnt in a namespace of its own (lo_launch.c). */
	if (mkdir("/mnt", 0755) < 0 && errno != EEXIST)
		return sbx_err_sys(err, errno, "local backend: creating /mnt");
	if (access("/dev/loop-control", R_OK | W_OK) < 0)
		return sbx_err_sys(err, errno, "local backend: /dev/loop-control");
	return 0;
}

static int lo_init(const struct sbx_backend_opts *opts, struct sbx_backend **out, struct sbx_err *err)
{
	struct sbx_backend *be;
	struct sbx_err tmp;
	char rootfs[PATH_MAX];
	int r;

	*out = NULL;
	if (!opts->state_root || opts->state_root[0] != '/')
		return sbx_err_set(err, EINVAL, "local backend: the state directory must be an absolute path");
	if (geteuid() != 0)
		return sbx_err_set(err, EPERM, "local backend: needs root (mounts, loop devices, cgroups)");
	be = calloc(1, sizeof(*be));
	if (!be)
		return sbx_err_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&be->tmpl_lock, NULL);
	snprintf(be->state_root, sizeof(be->state_root), "%s", opts->state_root);
	snprintf(be->agent, sizeof(be->agent), "%s/sbxfs-agent", opts->helper_dir ? opts->helper_dir : SBX_HELPER_DIR);
	if ((r = lo_find_tools(be, err)) < 0)
		goto fail;
	if ((r = lo_cgroot_find(&be->cgroot, err)) < 0 || (r = lo_seccomp_build(&be->bpf, &be->bpf_len, err)) < 0) {
		sbx_err_wrap(err, "local backend");
		goto fail;
	}
	if (mkdir(be->state_root, 0700) < 0 && errno != EEXIST) {
		r = sbx_err_sys(err, errno, "local backend: creating '%s'", be->state_root);
		goto fail;
	}
	/*
	 * Sandboxes mount nothing in the host's mount table (lo_launch.h), so
	 * the state directory is left as it is: nothing to undo at unmount.
	 */
	if ((r = lo_pool_start(be->state_root, &be->pool, err)) < 0) {
		sbx_err_wrap(err, "local backend");
		goto fail;
	}
	/* Build the template now so the first create is as fast as the others; create retries on failure. */
	if (lo_template_ensure(&be->tmpl_lock, be->state_root, "default", rootfs, sizeof(rootfs), &tmp) < 0)
		sbx_log(SBX_LOG_WARNING, NULL, 0, "local backend: %s (%s)", tmp.msg, sbx_errstr(tmp.code));
	be->tinfo.name = "default";
	be->tinfo.description =
		"Debian userland of the host: Python 3, Node.js and Bash (the host's /usr, read-only)\n"
		"runs as user (uid 1000) in /home/user; network: loopback only\n"
		"default limits: mem 512M, cpus 1, pids 256, disk 1G (mount options change them)\n";
	be->tlist[0] = &be->tinfo;
	be->tlist[1] = NULL;
	*out = be;
	return 0;
fail:
	free(be->bpf);
	pthread_mutex_destroy(&be->tmpl_lock);
	free(be);
	return r;
}

static void lo_fini(struct sbx_backend *be)
{
	if (!be)
		return;
	lo_watch_fini();
	lo_pool_stop(be->pool);
	free(be->bpf);
	pthread_mutex_destroy(&be->tmpl_lock);
	free(be);
}

static const struct sbx_template_info *const *lo_templates(struct sbx_backend *be)
{
	return be->tlist;
}

static struct sbx_instance *inst_new(struct sbx_backend *be, const struct sbx_spec *spec, struct sbx_err *err)
{
	struct sbx_instance *in = calloc(1, sizeof(*in));

	if (!in) {
		sbx_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	in->be = be;
	snprintf(in->name, sizeof(in->name), "%s", spec->name);
	snprintf(in->id, sizeof(in->id), "%s", spec->id);
	snprintf(in->state_dir, sizeof(in->state_dir), "%s", spec->state_dir);
	snprintf(in->sock, sizeof(in->sock), "%s/agent.sock", spec->state_dir);
	in->limits = spec->limits;
	in->refs = 1;
	in->mnt.disk = in->mnt.root = -1;
	pthread_mutex_init(&in->lock, NULL);
	pthread_mutex_init(&in->start_lock, NULL);
	return in;
}

static void inst_ref(struct sbx_instance *in)
{
	pthread_mutex_lock(&in->lock);
	in->refs++;
	pthread_mutex_unlock(&in->lock);
}

/* Drops a reference; the last one frees (a process may outlive the control plane's handle). */
static void inst_free(struct sbx_instance *in)
{
	unsigned left;

	pthread_mutex_lock(&in->lock);
	left = --in->refs;
	pthread_mutex_unlock(&in->lock);
	if (left)
		return;
	lo_mnt_close(&in->mnt);
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_destroy(&in->start_lock);
	free(in);
}

/* Undoes everything of a sandbox, whatever state it is in. */
static int lo_teardown(struct sbx_instance *in, struct sbx_err *err)
{
	struct sbx_err tmp = { 0 };
	int r = 0, r2;

	/* Processes go first: with them go the mounts of their launch namespace. */
	if (in->cg.ndistinct)
		r = lo_cg_kill_all(&in->cg, err);
	/* A sandbox made before the launch namespace has its mounts on the host. */
	r2 = lo_unmount_all(in->state_dir, r < 0 ? &tmp : err);
	if (r2 < 0 && r < 0)
		lo_warn(in, "unmounting", &tmp);
	if (r == 0)
		r = r2;
	if (in->cg.ndistinct) {
		r2 = lo_cg_remove(&in->cg, r < 0 ? &tmp : err);
		if (r2 < 0 && r < 0)
			lo_warn(in, "removing its cgroups", &tmp);
		if (r == 0)
			r = r2;
	}
	if (unlink(in->sock) < 0 && errno != ENOENT) {
		sbx_err_sys(&tmp, errno, "removing '%s'", in->sock);
		lo_warn(in, "cleaning up", &tmp);
	}
	return r;
}

static int lo_create(struct sbx_backend *be, const struct sbx_spec *spec, struct sbx_instance **out,
		     struct sbx_err *err)
{
	struct sbx_instance *in;
	char rootfs[PATH_MAX], img[PATH_MAX + 16];
	struct sbx_err tmp;
	int r;

	*out = NULL;
	in = inst_new(be, spec, err);
	if (!in)
		return -ENOMEM;
	snprintf(img, sizeof(img), "%s/disk.img", in->state_dir);
	if ((r = lo_template_ensure(&be->tmpl_lock, be->state_root, spec->template_name ? spec->template_name : "default",
				    rootfs, sizeof(rootfs), err)) < 0)
		goto fail_free;
	(void)rootfs;
	if ((r = lo_uid_claim(in->state_dir, &in->uid_base, err)) < 0)
		goto fail_free;
	if ((r = lo_cg_open(&be->cgroot, in->id, true, &in->cg, err)) < 0 ||
	    (r = lo_cg_set_limits(&in->cg, &in->limits, err)) < 0 ||
	    (r = lo_pool_take(be->pool, in->limits.disk_bytes, img, err)) < 0 || (r = lo_start(in, err)) < 0 || (r = write_state(in, SBX_WRITE_SYNC, err)) < 0)
		goto fail;
	*out = in;
	return 0;
fail:
	lo_teardown(in, &tmp);
	unlink(img);
	lo_uid_release(in->state_dir, in->uid_base);
fail_free:
	sbx_err_wrap(err, "cannot create sandbox '%s'", spec->name);
	inst_free(in);
	return r;
}

static int lo_attach(struct sbx_backend *be, const struct sbx_spec *spec, struct sbx_instance **out,
		     struct sbx_err *err)
{
	struct sbx_instance *in;
	struct sbx_err tmp = { 0 };
	int r;

	*out = NULL;
	in = inst_new(be, spec, err);
	if (!in)
		return -ENOMEM;
	read_state(in);
	/* Its id block stays recorded as its own (the record may be gone with a reinstalled host). */
	if (in->uid_base && lo_uid_claim(in->state_dir, &in->uid_base, &tmp) < 0)
		lo_warn(in, "keeping its uid range", &tmp);
	/* After a host reboot the cgroups are gone: make them again. */
	if ((r = lo_cg_open(&be->cgroot, in->id, true, &in->cg, err)) < 0) {
		sbx_err_wrap(err, "cannot attach sandbox '%s'", spec->name);
		inst_free(in);
		return r;
	}
	if (lo_cg_set_limits(&in->cg, &in->limits, &tmp) < 0)
		lo_warn(in, "setting its limits again", &tmp);
	/* Running: take its mounts back from its launch namespace, so a restart reuses them. */
	if (inst_agent_alive(in) && in->launch_ns && lo_mnt_adopt(in->bwrap_pid, &in->mnt, &tmp) < 0)
		lo_warn(in, "taking over its mounts", &tmp);
	if (!inst_agent_alive(in)) {
		char img[PATH_MAX + 16];

		if (lo_cg_kill_all(&in->cg, &tmp) < 0)
			lo_warn(in, "ending what was left of its processes", &tmp);
		/* A kill cut off by a crash may have taken its disk: it stays STOPPED, for destroy to finish. */
		snprintf(img, sizeof(img), "%s/disk.img", in->state_dir);
		if (access(img, F_OK) < 0) {
			sbx_err_sys(&tmp, errno, "'%s'", img);
			lo_warn(in, "its disk image is gone; it stays stopped", &tmp);
			*out = in;
			return 0;
		}
		pthread_mutex_lock(&in->lock);
		in->agent_pid = 0;
		in->agent_start = 0;
		pthread_mutex_unlock(&in->lock);
		/* If it does not start it is STOPPED: its state stays there to look at, restart or destroy. */
		if (lo_start(in, &tmp) < 0 || write_state(in, 0, &tmp) < 0)
			lo_warn(in, "starting it again", &tmp);
	}
	*out = in;
	return 0;
}

static int lo_destroy(struct sbx_instance *in, struct sbx_err *err)
{
	char img[PATH_MAX + 16], st[PATH_MAX + 16];
	int r;

	lo_watch_end(in);
	pthread_mutex_lock(&in->start_lock);
	in->gone = true;
	/* A sandbox attached without cgroup paths (attach failure) still gets them computed. */
	if (!in->cg.ndistinct)
		lo_cg_open(&in->be->cgroot, in->id, false, &in->cg, err);
	r = lo_teardown(in, err);
	/* Its processes are gone: the last mounts of its disk and root are ours. */
	pthread_mutex_lock(&in->lock);
	lo_mnt_close(&in->mnt);
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_unlock(&in->start_lock);
	if (r == 0) {
		snprintf(img, sizeof(img), "%s/disk.img", in->state_dir);
		snprintf(st, sizeof(st), "%s/local.json", in->state_dir);
		lo_pool_discard(in->be->pool, img);
		unlink(st);
		lo_uid_release(in->state_dir, in->uid_base);
	} else {
		sbx_err_wrap(err, "cannot destroy sandbox '%s'", in->name);
	}
	inst_free(in);
	return r;
}

static void lo_release(struct sbx_instance *in)
{
	if (!in)
		return;
	lo_watch_end(in);
	inst_free(in);
}

/* Why the sandbox is in error: its disk went read-only (the kernel does that on an I/O error). */
static int lo_status_reason(struct sbx_instance *in, struct sbx_err *why)
{
	struct sbx_err none;
	struct statvfs sv;
	int fd, r = 0;

	sbx_err_clear(why);
	if (inst_open(in, "disk", O_PATH, &fd, &none) < 0)
		return 0;
	if (fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_RDONLY))
		r = sbx_err_set(why, EROFS, "the sandbox's disk went read-only (an I/O error: see the kernel log); "
				"its files can still be read (files/), nothing more is written until it is made anew");
	close(fd);
	return r;
}

static enum sbx_status lo_status(struct sbx_instance *in)
{
	struct sbx_err why;

	if (!inst_agent_alive(in))
		return SBX_STATUS_STOPPED;
	if (lo_status_reason(in, &why) < 0)
		return SBX_STATUS_ERROR;
	return lo_cg_is_frozen(&in->cg) == 1 ? SBX_STATUS_PAUSED : SBX_STATUS_RUNNING;
}

static int lo_pause(struct sbx_instance *in, struct sbx_err *err)
{
	int r;

	if (!inst_agent_alive(in))
		return sbx_err_set(err, EINVAL, "cannot pause sandbox '%s': it is not running", in->name);
	r = lo_cg_freeze(&in->cg, true, err);
	if (r < 0) {
		struct sbx_err tmp;

		lo_cg_freeze(&in->cg, false, &tmp);
		sbx_err_wrap(err, "cannot pause sandbox '%s'", in->name);
	}
	return r;
}

static int lo_resume(struct sbx_instance *in, struct sbx_err *err)
{
	int r = lo_cg_freeze(&in->cg, false, err);

	if (r < 0)
		sbx_err_wrap(err, "cannot resume sandbox '%s'", in->name);
	return r;
}

/* Kills every process of the sandbox and starts it again; start_lock held. */
static int restart_locked(struct sbx_instance *in, struct sbx_err *err)
{
	int r;

	if (in->gone)
		return sbx_err_set(err, ENOENT, "the sandbox is being destroyed");
	if ((r = lo_cg_kill_all(&in->cg, err)) < 0 || (r = lo_start(in, err)) < 0 || (r = write_state(in, 0, err)) < 0)
		return r;
	return 0;
}

static int lo_restart(struct sbx_instance *in, struct sbx_err *err)
{
	int r;

	pthread_mutex_lock(&in->start_lock);
	r = restart_locked(in, err);
	pthread_mutex_unlock(&in->start_lock);
	if (r < 0)
		sbx_err_wrap(err, "cannot restart sandbox '%s'", in->name);
	return r;
}

static int lo_set_limits(struct sbx_instance *in, const struct sbx_limits *l, struct sbx_err *err)
{
	int r;

	if (l->disk_bytes != in->limits.disk_bytes)
		return sbx_err_set(err, ENOTSUP, "cannot change the disk limit of sandbox '%s' while it exists",
				   in->name);
	r = lo_cg_set_limits(&in->cg, l, err);
	if (r < 0)
		return sbx_err_wrap(err, "cannot set limits of sandbox '%s'", in->name);
	in->limits = *l;
	return 0;
}

static void net_bytes(pid_t pid, uint64_t *rx, uint64_t *tx)
{
	char path[64], line[512];
	FILE *f;

	*rx = *tx = 0;
	snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');
		unsigned long long r, t;

		if (!c || sscanf(c + 1, "%llu %*u %*u %*u %*u %*u %*u %*u %llu", &r, &t) != 2)
			continue;
		*rx += r;
		*tx += t;
	}
	fclose(f);
}

static int lo_metrics(struct sbx_instance *in, struct sbx_metrics *m, struct sbx_err *err)
{
	struct sbx_err none;
	int dfd;
	struct statfs sf;
	struct timespec now;
	pid_t agent;

	(void)err;
	memset(m, 0, sizeof(*m));
	lo_cg_stats(&in->cg, m);
	/* Not running: no disk figures (ENOENT from inst_open is the answer, not an error). */
	if (inst_open(in, "disk", O_PATH, &dfd, &none) == 0) {
		if (fstatfs(dfd, &sf) == 0 && sf.f_type == 0xEF53)
			m->disk_used_bytes = (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_frsize;
		close(dfd);
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&in->lock);
	agent = in->agent_pid;
	if (in->have_reading) {
		double dt = (double)(now.tv_sec - in->last_ts.tv_sec) + (double)(now.tv_nsec - in->last_ts.tv_nsec) / 1e9;

		if (dt >= 0.1) {
			double d = m->cpu_seconds - in->last_cpu;

			in->last_pct = d > 0 ? d / dt * 100.0 : 0;
			in->last_cpu = m->cpu_seconds;
			in->last_ts = now;
		}
	} else {
		in->have_reading = true;
		in->last_cpu = m->cpu_seconds;
		in->last_ts = now;
		in->last_pct = 0;
	}
	m->cpu_percent = in->last_pct;
	pthread_mutex_unlock(&in->lock);
	if (agent > 0 && inst_agent_alive(in))
		net_bytes(agent, &m->net_rx_bytes, &m->net_tx_bytes);
	return 0;
}

static int lo_spawn(struct sbx_instance *in, const struct sbx_exec *ex, struct sbx_proc **out, struct sbx_err *err)
{
	struct sbx_proc *p;
	int r;

	*out = NULL;
	if (!inst_agent_alive(in)) {
		/* Its processes were ended (a stuck run, the OOM killer): start it again. */
		pthread_mutex_lock(&in->start_lock);
		r = inst_agent_alive(in) ? 0 : restart_locked(in, err);
		pthread_mutex_unlock(&in->start_lock);
		if (r < 0)
			return sbx_err_wrap(err, "sandbox '%s' is not running and does not start", in->name);
	}
	if (lo_cg_is_frozen(&in->cg) == 1)
		return sbx_err_set(err, EBUSY, "sandbox '%s' is paused", in->name);
	p = calloc(1, sizeof(*p));
	if (!p)
		return sbx_err_set(err, ENOMEM, "out of memory");
	pthread_mutex_lock(&in->lock);
	p->agent_start = in->agent_start;
	pthread_mutex_unlock(&in->lock);
	r = sbx_agent_spawn(in->sock, ex, LO_SPAWN_MS, &p->ap, err);
	if (r < 0) {
		free(p);
		return r;
	}
	p->in = in;
	inst_ref(in);
	*out = p;
	return 0;
}

/*
 * A SIGKILL went unanswered for LO_KILL_GRACE_MS: the agent is stopped or
 * unresponsive (code can signal what runs as its own uid). The run's tree
 * cannot be told apart from outside without the agent, so every process of
 * the sandbox ends (freeze, kill, thaw) and a new agent starts, unless another
 * stuck run or a restart has already done it.
 */
static void lo_proc_stuck(void *arg)
{
	struct sbx_proc *p = arg;
	struct sbx_instance *in = p->in;
	struct sbx_err err = { 0 };
	bool same;

	pthread_mutex_lock(&in->start_lock);
	pthread_mutex_lock(&in->lock);
	same = in->agent_start == p->agent_start;
	pthread_mutex_unlock(&in->lock);
	if (same && !in->gone && lo_cg_is_frozen(&in->cg) != 1) {
		sbx_log(SBX_LOG_WARNING, in->name, 0,
			"the agent did not end a run within %d ms; "
			"ending every process of the sandbox and starting it again",
			LO_KILL_GRACE_MS);
		if (restart_locked(in, &err) < 0)
			sbx_log(SBX_LOG_WARNING, in->name, 0, "%s (%s)", err.msg, sbx_errstr(err.code));
	}
	pthread_mutex_unlock(&in->start_lock);
}

static int lo_wait_proc(struct sbx_proc *p, struct sbx_exit *out, struct sbx_err *err)
{
	return sbx_agent_wait_guarded(p->ap, LO_KILL_GRACE_MS, lo_proc_stuck, p, out, err);
}

static void lo_free_proc(struct sbx_proc *p)
{
	struct sbx_instance *in = p->in;

	sbx_agent_proc_free(p->ap);
	free(p);
	inst_free(in);
}

static int lo_kill_proc(struct sbx_proc *p, int sig)
{
	int r = sbx_agent_kill(p->ap, sig);

	/*
	 * A paused sandbox's agent cannot act until resumed: the caller is
	 * told at once that the process ended, and the agent, seeing the
	 * connection gone, kills it when the sandbox is resumed.
	 */
	if (sig == SIGKILL && lo_cg_is_frozen(&p->in->cg) == 1)
		sbx_agent_hangup(p->ap);
	return r;
}

static int lo_root_fd(struct sbx_instance *in, int *fd_out, struct sbx_err *err)
{
	return inst_open(in, "root", O_PATH, fd_out, err);
}

int lo_upper_fd(struct sbx_instance *in, int *fd_out, struct sbx_err *err)
{
	return inst_open(in, "disk/upper", O_RDONLY | O_NOFOLLOW, fd_out, err);
}

const struct sbx_backend_ops sbx_local_backend = {
	.name = "local",
	.init = lo_init,
	.fini = lo_fini,
	.templates = lo_templates,
	.create = lo_create,
	.attach = lo_attach,
	.destroy = lo_destroy,
	.release = lo_release,
	.pause = lo_pause,
	.resume = lo_resume,
	.restart = lo_restart,
	.set_limits = lo_set_limits,
	.status = lo_status,
	.status_reason = lo_status_reason,
	.metrics = lo_metrics,
	.spawn = lo_spawn,
	.wait_proc = lo_wait_proc,
	.kill_proc = lo_kill_proc,
	.free_proc = lo_free_proc,
	.root_fd = lo_root_fd,
	.user_ids = lo_user_ids,
	.watch_start = lo_watch_start,
	.watch_sync = lo_watch_sync,
	.watch_stop = lo_watch_end,
};

void lo_inst_user_ids(struct sbx_instance *in, uid_t *uid, gid_t *gid)
{
	/* Sandboxes made before id blocks run as host 1000, as they always did. */
	*uid = in->uid_base ? in->uid_base + LO_SANDBOX_USER : LO_SANDBOX_USER;
	*gid = *uid;
}
