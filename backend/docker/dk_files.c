/* dk_files.c - the docker backend's answers for files/ and watch. */
#include "dk.h"

/*
 * The `default` image's "user" is uid/gid 1000 and containers run without a
 * user namespace, so its files are 1000 on the host too. An image:NAME template
 * whose user differs still gets 1000: files/ is for the default layout.
 */
#define DK_USER_ID 1000

int dk_user_ids(struct sbx_instance *inst, uid_t *uid, gid_t *gid, struct sbx_err *err)
{
	(void)inst;
	*uid = DK_USER_ID;
	*gid = DK_USER_ID;
	sbx_err_clear(err);
	return 0;
}
