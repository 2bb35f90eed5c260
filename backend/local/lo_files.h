/*
 * lo_files.h - what files/ and watch need to know of a local sandbox: whose
 * its files are on the host, and what its code changes in them.
 */
#ifndef SBX_LO_FILES_H
#define SBX_LO_FILES_H

#include <stdbool.h>
#include <sys/types.h>

#include "../backend.h"

/* The sandbox user's host uid/gid (backend op user_ids). */
int lo_user_ids(struct sbx_instance *in, uid_t *uid, gid_t *gid, struct sbx_err *err);

/*
 * An O_RDONLY|O_DIRECTORY fd of the sandbox's writable layer (the overlay's
 * upper directory), for watching it. local.c knows where it is.
 */
int lo_upper_fd(struct sbx_instance *in, int *fd, struct sbx_err *err);

/* lo_watch.c: the watch_* ops. One fanotify group for every sandbox of the process. */
int lo_watch_start(struct sbx_instance *in, sbx_change_fn fn, void *arg, bool *complete,
		   struct sbx_err *err);
void lo_watch_sync(struct sbx_backend *be);
/* watch_stop; also called when the instance is freed (destroy, release). */
void lo_watch_end(struct sbx_instance *in);
/* Ends the group and its thread (backend fini). */
void lo_watch_fini(void);

#endif
