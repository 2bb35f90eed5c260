/* dk_files.c - the docker backend's answers for files/ and watch. */
#include "dk.h"

/*
 * The `default` image's "user" is uid/gid 1000. Without a user namespace (the engine's default)
 * that is 1000 on the host too; an engine with userns-remap maps it to its base + 1000 (read at
 * init from GET /info). An image:NAME template whose user differs still gets 1000: files/ is
 * for the default layout.
 */
#define DK_USER_ID 1000

int dk_user_ids(struct sbx_instance *inst, uid_t *uid, gid_t *gid, struct sbx_err *err)
{
	*uid = (uid_t)inst->be->remap_uid + DK_USER_ID;
	*gid = (gid_t)inst->be->remap_gid + DK_USER_ID;
	sbx_err_clear(err);
	return 0;
}
