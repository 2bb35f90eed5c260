/*
 * context.h - what the files of contexts share among themselves (context.c:
 * the list and its life; ctx_interp.c: the interpreters; ctx_exec.c: one run;
 * ctx_proto.c: the frames a driver sends back). The rest of the control plane
 * uses the ctx_* calls of sandbox.h.
 */
#ifndef SBX_CONTEXT_H
#define SBX_CONTEXT_H

#include "sandbox.h"

extern const char *const ctx_interp_names[RUN_LANG_COUNT];

/*
 * Starts the driver of lang in the sandbox and notes on disk that it lives
 * (its state would be lost if the daemon stopped: ctx_interp_lost).
 */
int interp_start(struct sandbox *sb, struct context *c, enum run_lang lang, struct sbx_err *err);
/* Ends an interpreter: SIGKILL to its tree (when kill), then reaps it; *how gets its end. */
void interp_end(struct sandbox *sb, struct ctx_interp *ip, bool kill, struct sbx_exit *how);
/* interp_end for a run that tells the user: the note on disk goes too. */
void interp_stop(struct sandbox *sb, struct context *c, enum run_lang lang, struct sbx_exit *how);
/* Reads and drops what an idle interpreter wrote since its last run; false at EOF (it is gone). */
bool interp_drop_stale(struct ctx_interp *ip);
/* At start-up: marks the interpreters that lived when the daemon stopped. */
void interp_find_lost(struct context *c);

#endif
