/*
 * sandbox.h - the control plane's internal view of one sandbox and of the
 * registry. Not for fusefs/: it uses control.h.
 */
#ifndef SBX_SANDBOX_H
#define SBX_SANDBOX_H

#include <pthread.h>
#include <stdatomic.h>

#include "control.h"
#include "../backend/log.h"
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
	struct timespec last_code_time[RUN_LANG_COUNT];   /* when it was written: run.*'s mtime */
	char *stdin_buf;
	size_t stdin_len;
};

/*
 * One sandbox. Lock order (docs/design.md, "Locks"): ctl->lock > save_lock >
 * sb->lock; a context's fields are under its sandbox's lock. No mutex is held
 * across a backend call that may block: a call on inst announces itself with
 * inst_enter (inst.c) and waits, if it must, on inst_cond.
 */
struct sandbox {
	atomic_int refs;
	struct sbx_ctl *ctl;            /* set once */
	/*
	 * sb->lock guards every field below that is not marked "set once", and the
	 * run queues and contexts list. A leaf below save_lock: nothing else is
	 * taken under it, and no backend call or file I/O is made while it is held
	 * (the run worker copies what it needs and lets go).
	 */
	pthread_mutex_t lock;
	/* Serialises state_save of this sandbox: snapshot and write as one, so the
	 * newest state wins. Taken before sb->lock; no backend call under it. */
	pthread_mutex_t save_lock;
	pthread_cond_t idle_cond;       /* with sb->lock: a run worker exited */

	char name[65];                  /* set once */
	char id[33];                    /* set once */
	char template_name[65];         /* set once */
	char dir[4096];                 /* set once: state_root/sandboxes/NAME */

	time_t created;
	time_t last_active;             /* TTL counts from here */
	uint64_t ttl;                   /* seconds; 0 = never */
	uint64_t timeout;               /* default run timeout, seconds */
	struct sbx_limits limits;
	char **env;                     /* KEY=VALUE, NULL-terminated */
	struct json_object *meta;       /* object of string values */
	bool paused;
	bool killing;                   /* a kill has begun: saved, and finished on the next start */
	bool creating;                  /* the backend's create is under way: saved; a start that
	                                 * finds it finishes it as a kill (the `new` never said ok) */
	bool dead;                      /* killed or let go: every call fails with ENOENT */

	/*
	 * The backend's handle. Read and replaced under sb->lock; used only between
	 * inst_enter and inst_leave (inst.c), which keep it alive: shared calls
	 * count in inst_shared, one exclusive call (destroy, release, lifecycle,
	 * set_limits) sets inst_excl and is the only one that may free it.
	 */
	struct sbx_instance *inst;
	unsigned inst_shared;
	unsigned inst_excl_waiting;     /* holds back new shared calls: no starved kill */
	bool inst_excl;
	pthread_cond_t inst_cond;       /* with sb->lock: a call on inst ended */

	struct run_queue runs;
	struct context *contexts;       /* contexts/, a list */
};

struct sbx_ctl {
	struct ctl_config cfg;
	char *state_root;
	int state_lock_fd;           /* state_lock's, held while the daemon lives */
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

	struct ctl_events *events;      /* events.c: the root `events` stream; set once */
	struct ctl_metrics *metrics;    /* metrics.c: counters (atomics); set once */
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
/* The same, saying in `events` why it went: "killed", "expired". */
int sandbox_destroy_as(struct sbx_ctl *ctl, struct sandbox *sb, const char *event, struct sbx_err *err);
void sandbox_touch(struct sandbox *sb);
void sandbox_spec(const struct sandbox *sb, struct sbx_spec *spec, char *state_dir, size_t size);
/* A killed sandbox's state directory while it is removed: sandboxes/.gone-ID */
#define GONE_PREFIX ".gone-"

/* registry.c, internal */
void ctl_close_sandboxes(struct sbx_ctl *ctl);

/*
 * inst.c: a call on sb->inst. inst_enter waits (on inst_cond, no mutex held)
 * until the call may run and returns inst, or NULL with err ENOENT when the
 * sandbox has none or is dead (INST_EVEN_DEAD: only when it has none).
 * inst_leave(sb, the same mode) ends the call. inst_forget, by an exclusive
 * holder, drops the handle it has freed (destroy) or let go (release).
 */
#define INST_SHARED 0u
#define INST_EXCL 1u
#define INST_EVEN_DEAD 2u
struct sbx_instance *inst_enter(struct sandbox *sb, unsigned mode, struct sbx_err *err);
void inst_leave(struct sandbox *sb, unsigned mode);
void inst_forget(struct sandbox *sb);
/*
 * Creating: inst_claim_new before the sandbox is visible, so a kill that finds
 * it waits for the create; inst_publish(sb, the new inst or NULL) after it.
 */
void inst_claim_new(struct sandbox *sb);
void inst_publish(struct sandbox *sb, struct sbx_instance *inst);

/* state.c: sandbox.json, written atomically; saves of one sandbox in order (save_lock) */
int state_save(struct sandbox *sb, struct sbx_err *err);
int state_load(struct sbx_ctl *ctl, const char *name, struct sandbox **out, struct sbx_err *err);
/* The daemon's lock on the state directory: a descriptor to keep open, or -errno (EBUSY: taken). */
int state_lock(const char *root, struct sbx_err *err);
/* Records the backend of a new state directory; EINVAL when it is another's. */
int state_claim_backend(const char *root, const char *backend, struct sbx_err *err);

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
/* The environment of a run: the sandbox's env over the defaults. NULL only when out of memory. */
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

/*
 * events.c: the lifecycle events (the root `events` file, STATE/events.log).
 * events_emit(ctl, "killed", "box", "reason=%s", why) adds the line
 * `TIME killed box reason=...`; any thread, no lock of control held needed
 * (it takes only its own leaf lock). owner: the uid whose sandbox it is, or
 * EV_OWNER_ANY (every reader may see it).
 */
#define EV_OWNER_ANY UINT32_MAX
void events_emit_owned(struct sbx_ctl *ctl, uint32_t owner, const char *event, const char *name,
		       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define events_emit(ctl, event, name, ...) events_emit_owned((ctl), EV_OWNER_ANY, (event), (name), __VA_ARGS__)
int events_open(struct sbx_ctl *ctl, struct sbx_err *err);
void events_close(struct sbx_ctl *ctl);

/* metrics.c: the figures of the root `metrics` file; any thread, no lock. */
enum run_outcome { RUN_OK, RUN_FAILED, RUN_TIMEOUT, RUN_ERROR };
#define RUN_OUTCOMES 4
int metrics_open(struct sbx_ctl *ctl, struct sbx_err *err);
void metrics_close(struct sbx_ctl *ctl);
uint64_t metrics_now_us(void);
/* A create ended: ok, and how long it took (microseconds). */
void metrics_created(struct sbx_ctl *ctl, bool ok, uint64_t us);
/* A sandbox was killed, or expired. */
void metrics_gone(struct sbx_ctl *ctl, bool expired);
void metrics_run(struct sbx_ctl *ctl, enum run_lang lang, enum run_outcome outcome, uint64_t us);
/* A ctl command failed with errnum (negative or positive). */
void metrics_failed_command(struct sbx_ctl *ctl, int errnum);

/* errors log (ctl_exec.c) */
void errors_add(struct sbx_ctl *ctl, const char *where, const char *cmd, size_t cmd_len,
		const char *reason);

#endif
