/*
 * fanwatch.h - one fanotify group for every watched sandbox of the process,
 * for the backends' watch_* ops (local: a filesystem mark on each sandbox's
 * own disk; docker: inode marks on the directories of an overlay).
 *
 * The group reports directory entries and names (FAN_REPORT_DFID_NAME) and
 * the pid that made each change; this module reads the events, drops those of
 * this process (files/ writes), and hands each one, aligned, to the watch
 * whose filesystem id (fsid) it carries. One group, not one per sandbox:
 * fanotify allows 128 groups per user. It starts with the first watch and
 * ends with fan_fini().
 */
#ifndef SBX_FANWATCH_H
#define SBX_FANWATCH_H

#include <fcntl.h>          /* struct file_handle */
#include <stdbool.h>
#include <stdint.h>
#include <sys/fanotify.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include "error.h"

struct fan_watch {
	struct fan_watch *next;      /* the group's list */
	fsid_t fsid;                 /* events of this filesystem belong to this watch */
	/* One event; its records (struct fanotify_event_info_fid) follow m. */
	void (*event)(struct fan_watch *w, const struct fanotify_event_metadata *m);
	/* After a run of consecutive events of w: let go of what event() kept open. */
	void (*done)(struct fan_watch *w);
};

/* Adds w (fsid, event, done set) to the group, starting it. -EEXIST when its fsid is taken. */
int fan_watch_add(struct fan_watch *w, struct sbx_err *err);
/* Removes w; returns once no call for w is in progress (so w may be freed). */
void fan_watch_remove(struct fan_watch *w);
/* fanotify_mark on the group (flags: FAN_MARK_ADD | ..., the object: fd itself). */
int fan_mark(unsigned int flags, uint64_t mask, int fd, struct sbx_err *err);
/* Handles every event queued so far before it returns. */
void fan_sync(void);
/* Ends the group and its thread; no watch may be left. */
void fan_fini(void);

/*
 * The record types a DFID_NAME group gives: (directory handle, name) of the
 * object, or of the old and new names of a rename. Calls fn for each record
 * of m whose fsid is w's; kind is the record's info_type.
 */
void fan_records(struct fan_watch *w, const struct fanotify_event_metadata *m,
		 void (*fn)(void *arg, int kind, struct file_handle *fh, const char *name), void *arg);

#endif
