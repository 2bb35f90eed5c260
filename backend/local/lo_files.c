/* lo_files.c - the local backend's answers for files/ and watch (see lo_files.h). */
#include "lo_files.h"
#include "lo_uid.h"

int lo_user_ids(struct sbx_instance *in, uid_t *uid, gid_t *gid, struct sbx_err *err)
{
	/* The sandbox's own host ids (lo_uid.h): base + 1000. */
	lo_inst_user_ids(in, uid, gid);
	sbx_err_clear(err);
	return 0;
}
