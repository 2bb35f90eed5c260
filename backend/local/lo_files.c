/* lo_files.c - the local backend's answers for files/ and watch (see lo_files.h). */
#include "lo_files.h"

/*
 * Every local sandbox maps its "user" to host uid/gid 1000 today; a per-sandbox
 * host uid replaces this answer once sandboxes get their own id ranges.
 */
#define LO_USER_ID 1000

int lo_user_ids(struct sbx_instance *in, uid_t *uid, gid_t *gid, struct sbx_err *err)
{
	(void)in;
	*uid = LO_USER_ID;
	*gid = LO_USER_ID;
	sbx_err_clear(err);
	return 0;
}
