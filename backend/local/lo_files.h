/*
 * lo_files.h - what files/ and watch need to know of a local sandbox: whose
 * its files are on the host.
 */
#ifndef SBX_LO_FILES_H
#define SBX_LO_FILES_H

#include <sys/types.h>

#include "../backend.h"

/* The sandbox user's host uid/gid (backend op user_ids). */
int lo_user_ids(struct sbx_instance *in, uid_t *uid, gid_t *gid, struct sbx_err *err);

#endif
