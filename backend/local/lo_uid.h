/*
 * lo_uid.h - host uid/gid ranges of local sandboxes.
 *
 * Every sandbox gets a block of 65536 host ids that no host account and no
 * other sandbox uses: its user namespace maps inside ids 0..65535 onto
 * [base, base + 65535], so the sandbox user (1000 inside) is base + 1000 on
 * the host and the agent (0 inside) is base. Blocks are taken from
 * LO_UID_FIRST.. (above systemd's container range, below its foreign range)
 * and recorded host-wide, for every sbxfs mount, as symlinks
 * LO_UID_DIR/SLOT -> the sandbox's state directory (under an flock), so a
 * slot whose sandbox directory is gone can be taken again. Blocks that
 * overlap an id of /etc/passwd, /etc/group, /etc/subuid or /etc/subgid are
 * skipped. docs/local-backend.md, "Users".
 */
#ifndef SBX_LO_UID_H
#define SBX_LO_UID_H

#include <stdint.h>
#include <sys/types.h>

#include "../backend.h"

#define LO_UID_FIRST UINT32_C(0x70000000)  /* 1879048192 */
#define LO_UID_BLOCK UINT32_C(65536)
#define LO_UID_SLOTS 4094u                 /* up to 0x7ffe0000, systemd's foreign range */
#define LO_UID_DIR "/var/lib/sbxfs/uid-slots"
#define LO_SANDBOX_USER 1000u              /* the user runs are, inside */

/*
 * Claims a block for the sandbox in state_dir. *base != 0: the block it had
 * (re-attach), claimed again when free or already its own; 0: a new one.
 */
int lo_uid_claim(const char *state_dir, uint32_t *base, struct sbx_err *err);

/* Gives the block back, when it is the sandbox's. */
void lo_uid_release(const char *state_dir, uint32_t base);

/* The host uid and gid of the sandbox user, for files/. */
void lo_inst_user_ids(struct sbx_instance *in, uid_t *uid, gid_t *gid);

#endif
