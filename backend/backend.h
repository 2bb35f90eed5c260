/*
 * backend.h - the interface every sandbox backend implements.
 *
 * A backend is a table of operations (struct sbx_backend_ops). The control
 * plane (control/) calls only these; the FUSE layer (fusefs/) never sees a
 * backend at all. Backends: `local` (namespaces + overlay + cgroups, in
 * backend/local/) and `docker` (Docker Engine API, in backend/docker/).
 *
 * Threading: every operation may be called from any thread, and different
 * sandboxes concurrently. On one sandbox, the control plane runs destroy,
 * release, pause, resume, restart and set_limits alone (no other call on that
 * instance overlaps them); spawn, status, metrics, root_fd, user_ids and the
 * watch_* calls may run concurrently with each other (control/inst.c). kill_proc
 * may race with wait_proc and must be safe against it.
 *
 * A process handle (struct sbx_proc) lives from spawn until free_proc. The
 * thread that waits owns it: it calls free_proc once wait_proc has returned and
 * every thread that may call kill_proc on it is done with it. Neither
 * wait_proc nor kill_proc ever frees it, so a kill at a run's deadline can
 * never touch freed memory however it interleaves with the process's end.
 *
 * Errors: an operation returns 0 or a negative errno, and fills *err with the
 * same errno and a message in words (lowercase, no final full stop).
 */
#ifndef SBX_BACKEND_H
#define SBX_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Limits of one sandbox. 0 in a field means "no limit". */
struct sbx_limits {
	uint64_t mem_bytes;    /* memory (RSS + page cache) */
	uint32_t cpu_millis;   /* CPU bandwidth: 1000 = one full core, 500 = half */
	uint32_t pids;         /* processes and threads */
	uint64_t disk_bytes;   /* bytes the sandbox may write to its own filesystem */
};

enum sbx_status {
	SBX_STATUS_CREATING,
	SBX_STATUS_RUNNING,
	SBX_STATUS_PAUSED,
	SBX_STATUS_STOPPED,
	SBX_STATUS_ERROR,
};

/* What the control plane asks a backend to create or re-attach. */
struct sbx_spec {
	const char *name;         /* [A-Za-z0-9_.-]{1,64} */
	const char *id;           /* unique id (hex), stable for the sandbox's life */
	const char *template_name;
	const char *state_dir;    /* absolute; a directory that exists and belongs to the
	                           * backend for this sandbox alone (images, mount points,
	                           * sockets). It survives daemon restarts. Removed by the
	                           * control plane after destroy succeeds. */
	struct sbx_limits limits;
};

struct sbx_metrics {
	double cpu_seconds;        /* user + system since creation */
	double cpu_percent;        /* over the last sampling interval; backend may compute
	                            * it from two readings taken >= 100 ms apart */
	uint64_t mem_used_bytes;
	uint64_t mem_limit_bytes;  /* 0 = none */
	uint32_t pids;
	uint64_t disk_read_bytes;
	uint64_t disk_write_bytes;
	uint64_t disk_used_bytes;  /* bytes used on the sandbox's writable layer */
	uint64_t net_rx_bytes;
	uint64_t net_tx_bytes;
};

/* A process to start inside a sandbox. */
struct sbx_exec {
	const char *const *argv;  /* NULL-terminated; argv[0] is looked up in PATH inside */
	const char *const *envp;  /* NULL-terminated; the whole environment */
	const char *cwd;          /* inside the sandbox; NULL = /home/user */
	/*
	 * Daemon-side file descriptors that become the process's stdin, stdout and
	 * stderr. -1 means /dev/null. The backend does not close them; it may dup
	 * them or pass them over a socket. Writes to stdout_fd/stderr_fd are pipes
	 * the control plane drains.
	 */
	int stdin_fd, stdout_fd, stderr_fd;
	/*
	 * Optional script: when script is non-NULL, the backend writes these bytes to
	 * a private file inside the sandbox named `script_name` (e.g. "run.py") in a
	 * fresh directory, and replaces every argv element equal to "{script}" by that
	 * file's path. The file is removed when the process ends.
	 */
	const char *script;
	size_t script_len;
	const char *script_name;
};

/* How a process ended. */
struct sbx_exit {
	bool signaled;
	int code;                 /* exit code, or signal number when signaled */
};

/* A change a sandbox's own code made to its files, as the backend reports it (watch_start). */
enum sbx_change_kind {
	SBX_CHANGE_CREATED,
	SBX_CHANGE_DELETED,
	SBX_CHANGE_MODIFIED,      /* content or attributes */
	SBX_CHANGE_RENAMED,
};

struct sbx_change {
	enum sbx_change_kind kind;
	const char *path;         /* absolute, inside the sandbox: "/home/user/a.txt" */
	const char *to;           /* RENAMED: the new path; else NULL */
	bool dir;                 /* of a directory */
	bool data;                /* MODIFIED: the content changed (cached pages are stale) */
	/*
	 * Whether the user's change stream (`watch`) shows path / to: below the
	 * sandbox user's home, and a change the code made rather than the
	 * filesystem's own bookkeeping. Every change is given for cache
	 * invalidation either way.
	 */
	bool shown, to_shown;
	int root_fd;              /* O_PATH of the sandbox's "/", valid during the call only */
};

/*
 * Called from a backend thread, one change at a time, in the order they
 * happened. It must not call back into the backend for the same sandbox
 * (destroy and watch_stop wait for a call in progress to return).
 */
typedef void (*sbx_change_fn)(void *arg, const struct sbx_change *ch);

struct sbx_backend;           /* a backend instance (one per mount) */
struct sbx_instance;          /* one sandbox, as the backend keeps it */
struct sbx_proc;              /* one process started by spawn */

/* Options given at mount time (-o ...). Unknown fields are ignored by backends. */
struct sbx_backend_opts {
	const char *state_root;   /* the mount's state directory (absolute) */
	const char *docker_host;  /* docker: "unix:///path" or "tcp://host:port"; NULL = default */
	const char *helper_dir;   /* where sbxfs-agent and helper scripts live */
};

/* A template as the backend offers it. */
struct sbx_template_info {
	const char *name;
	const char *description;  /* one or more lines of text for templates/NAME */
};

struct sbx_backend_ops {
	const char *name;

	/* Sets up the backend (checks the engine, prepares templates lazily). */
	int (*init)(const struct sbx_backend_opts *opts, struct sbx_backend **out, struct sbx_err *err);
	void (*fini)(struct sbx_backend *be);

	/* NULL-terminated array of templates this backend can create; owned by be. */
	const struct sbx_template_info *const *(*templates)(struct sbx_backend *be);

	/*
	 * Creates the sandbox and starts it; returns once processes can be
	 * spawned in it. On failure nothing of it is left behind (other than
	 * files in spec->state_dir, which the caller removes).
	 */
	int (*create)(struct sbx_backend *be, const struct sbx_spec *spec,
		      struct sbx_instance **out, struct sbx_err *err);

	/*
	 * Re-attaches a sandbox created by an earlier daemon (the same spec and
	 * state_dir). A sandbox whose processes are gone is attached with status
	 * STOPPED rather than failing, so its files stay reachable.
	 */
	int (*attach)(struct sbx_backend *be, const struct sbx_spec *spec,
		      struct sbx_instance **out, struct sbx_err *err);

	/*
	 * Kills every process, removes mounts, cgroups, containers; then frees inst,
	 * also when it fails (a later attach gives a new handle to try again with).
	 * Must cope with what an earlier, interrupted destroy left.
	 */
	int (*destroy)(struct sbx_instance *inst, struct sbx_err *err);

	/* Frees the in-memory handle only; the sandbox goes on running (unmount). */
	void (*release)(struct sbx_instance *inst);

	int (*pause)(struct sbx_instance *inst, struct sbx_err *err);
	int (*resume)(struct sbx_instance *inst, struct sbx_err *err);

	/* Kills all processes and starts the sandbox again, keeping its files. */
	int (*restart)(struct sbx_instance *inst, struct sbx_err *err);

	/* Applies new limits to a live sandbox (fields as in sbx_limits). */
	int (*set_limits)(struct sbx_instance *inst, const struct sbx_limits *limits,
			  struct sbx_err *err);

	enum sbx_status (*status)(struct sbx_instance *inst);

	/*
	 * Optional: why status() says SBX_STATUS_ERROR, in *why (errno and words);
	 * 0 when there is nothing wrong. NULL when the backend has no such state.
	 */
	int (*status_reason)(struct sbx_instance *inst, struct sbx_err *why);

	int (*metrics)(struct sbx_instance *inst, struct sbx_metrics *out, struct sbx_err *err);

	/*
	 * Starts a process (new process group / session inside the sandbox). Returns
	 * once it has been started or has failed to start.
	 */
	int (*spawn)(struct sbx_instance *inst, const struct sbx_exec *ex,
		     struct sbx_proc **out, struct sbx_err *err);

	/* Blocks until the process ends and fills *out; called once. Does not free proc. */
	int (*wait_proc)(struct sbx_proc *proc, struct sbx_exit *out, struct sbx_err *err);

	/*
	 * Sends sig to the process's whole tree (its process group and everything
	 * it started). Safe to call while another thread is in wait_proc, and after
	 * wait_proc has returned (then there is nothing to signal: it returns 0).
	 * Does not free proc.
	 */
	int (*kill_proc)(struct sbx_proc *proc, int sig);

	/*
	 * Frees proc, exactly once, after wait_proc has returned and no kill_proc
	 * call on it is in progress or will follow.
	 */
	void (*free_proc)(struct sbx_proc *proc);

	/*
	 * An O_PATH|O_DIRECTORY fd of the sandbox's "/" as seen from the host, for
	 * files/. The caller owns the fd. -ENOTSUP when the backend cannot offer it
	 * (a remote engine).
	 */
	int (*root_fd)(struct sbx_instance *inst, int *fd_out, struct sbx_err *err);

	/*
	 * The host uid/gid of the sandbox's user ("user", /home/user inside): what
	 * files/ creates files as and maps chowns to. Fixed for the sandbox's life.
	 */
	int (*user_ids)(struct sbx_instance *inst, uid_t *uid, gid_t *gid, struct sbx_err *err);

	/*
	 * Starts reporting the changes the sandbox's processes make to its files
	 * (not those this daemon makes through root_fd) to fn(arg, change).
	 * *complete is true when every change anywhere in the sandbox is reported
	 * (the caller may then let the kernel cache files/), false when only those
	 * below the user's home are. -ENOTSUP when the backend cannot watch. At most
	 * one watch per sandbox; destroy, release and watch_stop end it.
	 */
	int (*watch_start)(struct sbx_instance *inst, sbx_change_fn fn, void *arg, bool *complete,
			   struct sbx_err *err);
	/*
	 * Delivers every change made so far in every watched sandbox before it
	 * returns (a run's end calls it). Per backend, so no sandbox lock is needed.
	 */
	void (*watch_sync)(struct sbx_backend *be);
	/* Ends the watch; fn is not called after it returns. Fine when not watching. */
	void (*watch_stop)(struct sbx_instance *inst);
};

/* Looks up a backend by name ("local", "docker"); NULL when unknown. */
const struct sbx_backend_ops *sbx_backend_find(const char *name);

extern const struct sbx_backend_ops sbx_local_backend;
extern const struct sbx_backend_ops sbx_docker_backend;

#endif
