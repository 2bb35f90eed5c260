/*
 * control.h - the control plane as the FUSE layer sees it.
 *
 * The control plane owns sandboxes: it parses ctl commands, keeps the registry
 * and each sandbox's state on disk, runs code through the backend, and reaps
 * sandboxes whose TTL has passed. It knows nothing of FUSE: waiting readers are
 * plain callbacks.
 */
#ifndef SBX_CONTROL_H
#define SBX_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "../backend/backend.h"

struct sbx_ctl;
struct sandbox;

struct ctl_config {
	const char *backend;       /* "local" or "docker" */
	const char *state_root;    /* absolute */
	const char *mountpoint;    /* absolute; used to announce changes through the mount */
	const char *docker_host;
	const char *helper_dir;
	uint64_t ttl;              /* default TTL, seconds; 0 = never */
	uint64_t timeout;          /* default run timeout, seconds */
	struct sbx_limits limits;  /* default limits */
	uint32_t history;          /* runs kept */
	uint64_t output_max;       /* bytes kept per stream per run */
	/* Names a sandbox cannot have: the mount root's own (the FUSE layer's table). */
	bool (*name_reserved)(const char *name);
};

/* Opens the state root, starts the backend and re-attaches every sandbox found. */
int ctl_open(const struct ctl_config *cfg, struct sbx_ctl **out, struct sbx_err *err);
/* Stops the reaper and releases (does not kill) every sandbox. */
void ctl_close(struct sbx_ctl *ctl);

/* Announces changes through the mount once it is up (see notify in fusefs). */
void ctl_set_announcer(struct sbx_ctl *ctl, void (*announce)(const char *name, const char *ctx, void *arg),
		       void *arg);

/*
 * Called (from any thread) after a sandbox was killed and left the registry,
 * so the FUSE layer can make the kernel drop what it caches under NAME/.
 */
void ctl_set_gone_hook(struct sbx_ctl *ctl, void (*gone)(const char *name, void *arg), void *arg);

/*
 * The root `events` stream (events.c): bytes [0, ctl_events_size) at offsets
 * that only grow (what was dropped from the start reads as empty lines).
 * ctl_events_read copies up to size bytes from off and returns how many (0:
 * nothing there yet). The hook is called, from the thread that added it and
 * with no lock held, after every new line.
 */
uint64_t ctl_events_size(struct sbx_ctl *ctl);
/* The control plane's part of the root `metrics` file (Prometheus text format) into f. */
void ctl_metrics_write(struct sbx_ctl *ctl, FILE *f);
size_t ctl_events_read(struct sbx_ctl *ctl, uint64_t off, char *buf, size_t size);
void ctl_set_events_hook(struct sbx_ctl *ctl, void (*hook)(void *arg), void *arg);

/* Registry. ctl_sandbox_get returns a reference (or NULL); drop it with sandbox_put. */
struct sandbox *ctl_sandbox_get(struct sbx_ctl *ctl, const char *name);
void sandbox_ref(struct sandbox *sb);
void sandbox_put(struct sandbox *sb);
/* NULL-terminated, sorted list of names; free with ctl_strv_free (ctl_parse.h).
 * NULL only when out of memory (never a shortened list). */
char **ctl_sandbox_names(struct sbx_ctl *ctl);
bool ctl_name_reserved(struct sbx_ctl *ctl, const char *name);

/*
 * Executes a ctl write. sb == NULL: the root ctl (new, kill). Lines run in
 * order and stop at the first bad one. Returns 0 or a negative errno; *reply
 * gets the text a read of the same open file gives back (malloc'd).
 * `where` names the ctl file for the errors log ("/ctl", "/box/ctl").
 */
int ctl_execute(struct sbx_ctl *ctl, struct sandbox *sb, const char *buf, size_t len,
		const char *where, char **reply);

/* mkdir / rmdir of a sandbox directory. */
int ctl_create_default(struct sbx_ctl *ctl, const char *name, struct sbx_err *err);
int ctl_kill(struct sbx_ctl *ctl, const char *name, struct sbx_err *err);

/* The `errors` file, newest last; malloc'd text. */
char *ctl_errors_text(struct sbx_ctl *ctl);
/* Records a failure that did not come through ctl (mkdir, a bad env write). */
void ctl_log_error(struct sbx_ctl *ctl, const char *where, const char *what, size_t what_len,
		   const char *reason);

/* Templates. */
const struct sbx_template_info *const *ctl_templates(struct sbx_ctl *ctl);
const char *ctl_backend_name(struct sbx_ctl *ctl);

/* Per-sandbox texts (malloc'd). */
const char *sandbox_name(const struct sandbox *sb);
bool sandbox_alive(struct sandbox *sb);
char *sandbox_status_text(struct sandbox *sb);
char *sandbox_info_json(struct sandbox *sb);
char *sandbox_metrics_json(struct sandbox *sb);
char *sandbox_env_text(struct sandbox *sb);
int sandbox_set_env(struct sandbox *sb, const char *buf, size_t len, struct sbx_err *err);
/* An O_PATH fd of the sandbox's root for files/. */
int sandbox_root_fd(struct sandbox *sb, int *fd, struct sbx_err *err);
/* The host uid/gid of the sandbox's user (files/ creates as it and maps chowns to it). */
int sandbox_user_ids(struct sandbox *sb, uid_t *uid, gid_t *gid, struct sbx_err *err);
/*
 * What the sandbox's code changes in its files (changes.c; the backend's
 * watch_* ops): fn is called from a backend thread; *complete says whether
 * every change is reported (see backend.h). sandbox_watch_sync delivers what
 * is pending in every sandbox; sandbox_watch_stop returns once fn is done.
 */
int sandbox_watch_start(struct sandbox *sb, sbx_change_fn fn, void *arg, bool *complete,
			struct sbx_err *err);
void sandbox_watch_sync(struct sandbox *sb);
void sandbox_watch_stop(struct sandbox *sb);

/* ---- runs ---- */

enum run_lang { RUN_PYTHON, RUN_NODE, RUN_BASH };
#define RUN_LANG_COUNT 3
/* "run.py" -> RUN_PYTHON; -1 when not a run file. */
int run_lang_from_file(const char *name);
const char *run_lang_file(enum run_lang lang);

typedef void (*run_done_fn)(void *arg, int exit_code);

/*
 * A waiter on a run queue. `fn` is called exactly once, from a control thread,
 * when the queue becomes idle (or the sandbox dies, with exit_code -1).
 */
struct run_waiter {
	struct run_waiter *next;
	run_done_fn fn;
	void *arg;
	/* Set before fn is called for a run: 0, or the errno (ENOSPC, EIO) of a run
	 * whose files (output, info, exit) could not all be written; the reason is
	 * in `errors`. The close() that started the run fails with it. */
	int error;
};

/*
 * Queues code to run (ctx NULL: a fresh process; else that context's
 * interpreter). Takes ownership of code (malloc'd). done->fn is called when
 * this run has ended. Returns 0 or a negative errno.
 */
int run_submit(struct sandbox *sb, const char *ctx, enum run_lang lang, char *code, size_t len,
	       struct run_waiter *done, struct sbx_err *err);

/* Adds a waiter for "no run in progress"; false when already idle (not added). */
bool run_wait_idle(struct sandbox *sb, const char *ctx, struct run_waiter *w);

/* Whether a run is queued or in progress. */
bool run_busy(struct sandbox *sb, const char *ctx);

/*
 * Files of the latest run, for stdout/stderr/exit/code reads: returns an fd
 * opened read-only (caller closes), or -ENOENT (no run yet; for "exit" also
 * while a run is in progress). which: "stdout", "stderr", "exit", "code".
 */
int run_open_latest(struct sandbox *sb, const char *ctx, const char *which);

/* Code last written to a run file (for reading run.py back). malloc'd; NULL if none. */
char *run_last_code(struct sandbox *sb, const char *ctx, enum run_lang lang, size_t *len);
/* Its size and when it was written (run.py's attributes): 0, or -ENOENT when there is none. */
int run_last_code_attr(struct sandbox *sb, const char *ctx, enum run_lang lang, size_t *len,
		       struct timespec *mtime);

/* History: the run numbers kept, ascending; free(). NULL only on failure, with errno
 * (ENOMEM; ENOENT when the context is gone): an empty history is an empty list. */
uint64_t *run_history(struct sandbox *sb, const char *ctx, size_t *n);
/* A file of run N: "code", "stdout", "stderr", "exit", "info". fd or -ENOENT. */
int run_open_file(struct sandbox *sb, const char *ctx, uint64_t n, const char *which);

/* stdin for the next runs: replaces the content. */
int run_set_stdin(struct sandbox *sb, const char *ctx, const char *buf, size_t len);

/* ---- contexts (contexts/CTX/) ---- */

/* mkdir contexts/NAME: 0, -EEXIST, -EINVAL (bad name), -ENOENT (sandbox gone). */
int ctx_create(struct sandbox *sb, const char *name, struct sbx_err *err);
/* rmdir contexts/NAME: stops its run in progress, ends its interpreters, removes its history. */
int ctx_destroy(struct sandbox *sb, const char *name, struct sbx_err *err);
bool ctx_exists(struct sandbox *sb, const char *name);
/* NULL-terminated, sorted; free with ctl_strv_free. NULL only when out of memory. */
char **ctx_names(struct sandbox *sb);
/*
 * Names of the extra files of run N (result, figure-K.png), NULL-terminated;
 * free with ctl_strv_free; NULL when out of memory (never a shortened list). A figure is also listed in the context's results/
 * as "N-figure-K.png".
 */
char **run_extra_files(struct sandbox *sb, const char *ctx, uint64_t n);

#endif
