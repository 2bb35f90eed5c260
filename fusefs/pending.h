/*
 * pending.h - requests answered later: a blocked `wait` read, the close() of
 * a run file that returns when the run has ended.
 *
 * No worker thread waits for them: the request is kept and answered from the
 * control plane's thread when the event comes, or with EINTR when the caller
 * is interrupted (Ctrl-C), whichever is first. Exactly one reply is sent.
 */
#ifndef SBX_PENDING_H
#define SBX_PENDING_H

#include "fs.h"

enum pending_kind { PENDING_FLUSH, PENDING_WAIT };

struct pending {
	struct run_waiter waiter;     /* what control calls */
	enum pending_kind kind;
	fuse_req_t req;               /* NULL once answered */
	struct sandbox *sb;           /* a reference: whose files/ is synced before the answer */
	struct handle *h;             /* PENDING_WAIT: where the exit text goes */
	size_t size;                  /* PENDING_WAIT: bytes asked for */
	bool interrupted;
};

/* Makes a pending request on sb's files (h: the `wait` handle) and arms the interrupt callback. */
struct pending *pending_new(fuse_req_t req, enum pending_kind kind, struct sandbox *sb, struct handle *h,
			    size_t size);
/* Drops a pending request that was never handed to control (its submit failed). */
void pending_cancel(struct pending *p);
/*
 * Called when it turned out there is nothing to wait for (not queued): answers
 * at once (or with EINTR if already interrupted) and frees p.
 */
void pending_answer_now(struct pending *p, int exit_code);

#endif
