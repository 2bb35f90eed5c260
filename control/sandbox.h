/*
 * sandbox.h - the control plane's internal view of one sandbox and of the
 * registry. Not for fusefs/: it uses control.h.
 */
#ifndef SBX_SANDBOX_H
#define SBX_SANDBOX_H

#include <pthread.h>
#include <stdatomic.h>

#include "control.h"
#include "../backend/util.h"

struct json_object;

struct context;

/* One queue of runs: the sandbox's own, or a context's. */
struct run_queue {
	struct sandbox *sb;             /* set when the first run is queued */
	struct context *ctx;            /* NULL: the sandbox's own queue */
	struct run_item *head, *tail;   /* waiting, in order */
	bool running;                   /* a worker thread owns the queue */
	uint64_t latest;                /* number of the latest run started, 0 = none */
	bool latest_done;
	uint64_t next;                  /* number the next run gets */
	struct run_waiter *idle_waiters;
	char *last_code[RUN_LANG_COUNT];
	size_t last_code_len[RUN_LANG_COUNT];
	char *stdin_buf;
	size_t stdin_len;
};

struct sandbox {
	atomic_int refs;
	struct sbx_ctl *ctl;
	pthread_mutex_t lock;           /* guards everything below but `ops` calls on inst */
	pthread_mutex_t op_lock;        /* serialises backend calls on inst */
	/* Serialises state_save of this sandbox: snapshot and write as one, so the
	 * newest state wins. Order: after op_lock, before sb->lock; no backend call
	 * is made under it. */
	pthread_mutex_t save_lock;
	pthread_cond_t idle_cond;       /* signalled when the run worker exits */

	char name[65];
	char id[33];
	char template_name[65];
	char dir[4096];                 /* state_root/sandboxes/NAME */

	time_t created;
	time_t last_active;             /* TTL counts from here */
	uint64_t ttl;                   /* seconds; 0 = never */
	uint64_t timeout;               /* default run timeout, seconds */
	struct sbx_limits limits;
	char **env;                     /* KEY=VALUE, NULL-terminated */
	struct json_object *meta;       /* object of string values */
	bool paused;
	bool killing;                   /* a kill has begun: saved, and finished on the next start */

	struct sbx_instance *inst;
	bool dead;                      /* killed: every call fails with ENOENT */

	struct run_queue runs;
	struct context *contexts;       /* contexts/, a list */

	/* for cpu_percent */
	double prev_cpu;
	struct timespec prev_cpu_at;
};

struct sbx_ctl {
	struct ctl_config cfg;
	char *state_root;
	char *mountpoint;
	const struct sbx_backend_ops *ops;
	struct sbx_backend *be;

	pthread_mutex_t lock;           /* guards the registry and the errors log */
	struct sandbox **sandboxes;
	size_t nsandboxes, cap;

	char *errors[100];
	size_t nerrors, errors_head;

	pthread_t reaper;
	pthread_cond_t reaper_cond;
	bool stopping;

	void (*announce)(const char *name, const char *ctx, void *arg);
	void *announce_arg;
	void (*gone)(const char *name, void *arg);
	void *gone_arg;
};

/* registry.c */
struct sandbox *sandbox_new(struct sbx_ctl *ctl, const char *name);
void sandbox_get(struct sandbox *sb);
int registry_add(struct sbx_ctl *ctl, struct sandbox *sb, struct sbx_err *err);
void registry_remove(struct sbx_ctl *ctl, struct sandbox *sb);
int sandbox_create(struct sbx_ctl *ctl, const char *name, const char *template_name, uint64_t ttl,
		   uint64_t timeout, const struct sbx_limits *limits, char **env,
		   struct json_object *meta, struct sbx_err *err);
int sandbox_destroy(struct sbx_ctl *ctl, struct sandbox *sb, struct sbx_err *err);
void sandbox_touch(struct sandbox *sb);
void sandbox_spec(const struct sandbox *sb, struct sbx_spec *spec, char *state_dir, size_t size);
/* A killed sandbox's state directory while it is removed: sandboxes/.gone-ID */
#define GONE_PREFIX ".gone-"

/* registry.c, internal */
void ctl_close_sandboxes(struct sbx_ctl *ctl);

/* state.c: sandbox.json, written atomically; saves of one sandbox in order (save_lock) */
int state_save(struct sandbox *sb, struct sbx_err *err);
int state_load(struct sbx_ctl *ctl, const char *name, struct sandbox **out, struct sbx_err *err);

/* run.c */
/* The exit status of a run the daemon was killed during (128 + SIGKILL). */
#define RUN_EXIT_INTERRUPTED 137
void run_queue_free(struct run_queue *q);
void run_abort_all(struct sandbox *sb);
void run_load_history(struct sandbox *sb);
/* With sb->lock held: whether a run is queued or running (TTL does not expire then). */
bool run_busy_locked_hint(struct sandbox *sb);
/* The run workers hold the sandbox; waits until they are done (with sb->lock not held). */
void run_wait_worker(struct sandbox *sb);
/* Tells each item's and waiter's caller that nothing will run (exit -1); frees the items. */
void run_fail_items(struct run_item *items, struct run_waiter *idle);

/* run.c: output spooled to a file with a cap */
struct spool {
	int in;          /* pipe read end, -1 once at EOF */
	int out;         /* the file */
	uint64_t kept;
	bool cut;
	int werr;        /* first errno writing the file (ENOSPC, EIO): the output is incomplete */
};
void spool_put(struct spool *s, const char *buf, size_t n, uint64_t cap);
/* Reads what is ready from s->in (non-blocking) into the file; closes s->in at EOF. */
void spool_drain(struct spool *s, uint64_t cap);
/* The environment of a run: the sandbox's env over the defaults. */
char **run_envp(struct sandbox *sb);

/* context.c: contexts/NAME, one long-lived interpreter per language. */
struct ctx_interp {
	struct sbx_proc *proc;          /* NULL: not started */
	int in_fd, out_fd, err_fd;      /* the driver's stdin, stdout, stderr (daemon ends) */
	bool lost;                      /* one lived when the daemon last stopped: say so at the next run */
};

struct context {
	struct context *next;
	char name[65];
	char dir[4200];                 /* sb->dir/contexts/NAME */
	struct run_queue runs;
	/* Used by the queue's worker only, or once the worker is gone. */
	struct ctx_interp interp[RUN_LANG_COUNT];
	int abort_fd;                   /* eventfd: stop the run in progress (rmdir, shutdown) */
	bool dead;
};

/* What a run in a context gave back besides its output. */
struct ctx_outcome {
	const char *dir;                /* in: runs/N, where `result` and figure-K.png are written */
	int exit_code;
	bool timed_out;
	size_t npng;                    /* figures written whole */
};

/* With sb->lock held. */
struct context *ctx_find_locked(struct sandbox *sb, const char *name);
/*
 * Runs code in the context's interpreter for lang, starting it if needed.
 * stdin_len < 0: no stdin. Output goes to out/err (their `out` files; `in`
 * unused); the result and figures go to files in o->dir as they come, at most
 * output_max bytes together. Fills *o; returns 0, or a negative errno when
 * nothing could run.
 */
int ctx_exec(struct sandbox *sb, struct context *c, enum run_lang lang, const char *code, size_t len,
	     const char *stdin_buf, ssize_t stdin_len, uint64_t timeout_s, struct spool *out,
	     struct spool *err_spool, struct ctx_outcome *o, struct sbx_err *err);
/* Refuses code the interpreter of lang cannot take (EINVAL with the reason): NUL bytes for bash. */
int ctx_check_code(enum run_lang lang, const char *code, size_t len, struct sbx_err *err);
/* Loads contexts/ of a sandbox found at start-up (names and history). */
void ctx_load_all(struct sandbox *sb);
/* Kills every interpreter (workers must be gone) and frees the contexts. */
void ctx_free_all(struct sandbox *sb);
void ctx_kill_interps(struct sandbox *sb, struct context *c);

/* errors log (ctl_exec.c) */
void errors_add(struct sbx_ctl *ctl, const char *where, const char *cmd, size_t cmd_len,
		const char *reason);

#endif
