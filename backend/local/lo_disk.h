/*
 * lo_disk.h - the writable layer of a local sandbox and its mounts.
 *
 *   state_dir/disk.img   sparse ext4 image, size = the disk limit
 *   state_dir/disk       the image, loop-mounted (upper/ and work/ inside)
 *   state_dir/root       overlay: lower = template rootfs, upper = disk/upper
 *   state_dir/root/usr   the host's /usr, bind-mounted read-only
 *
 * Formatted images come from a pool refilled by a background thread, so a
 * create does not wait for mkfs.
 */
#ifndef SBX_LO_DISK_H
#define SBX_LO_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "../backend.h"

struct lo_pool;

int lo_pool_start(const char *state_root, struct lo_pool **out, struct sbx_err *err);
void lo_pool_stop(struct lo_pool *p);
/* Puts a formatted image of `bytes` at dest (from the pool, else formats one now). */
int lo_pool_take(struct lo_pool *p, uint64_t bytes, const char *dest, struct sbx_err *err);

/* Makes path a private mount (bind-mounting it onto itself when it is not a mount point). */
int lo_make_private(const char *path, struct sbx_err *err);
bool lo_is_mountpoint(const char *path);

/* Mounts (what is not mounted yet of) disk, root and root/usr. loopdev gets "/dev/loopN" when attached. */
int lo_mount_all(const char *state_dir, const char *lowerdir, char *loopdev, size_t size, struct sbx_err *err);
/* Unmounts root/usr, root and disk; the loop device detaches itself. Fine when nothing is mounted. */
int lo_unmount_all(const char *state_dir, struct sbx_err *err);

#endif
