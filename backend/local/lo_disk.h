/*
 * lo_disk.h - the writable layer of a local sandbox and its mounts.
 *
 *   state_dir/disk.img   ext4 image, size = the disk limit; loop-attached here and
 *                        mounted in the sandbox's launch namespace (lo_launch.h)
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
/*
 * Deletes a destroyed sandbox's image in the pool's thread: freeing the
 * blocks of a fully allocated image takes tens of milliseconds that destroy
 * need not wait for. It moves into the pool's directory at once (a crash
 * leaves it there as a .tmp- file, which the next start deletes).
 */
void lo_pool_discard(struct lo_pool *p, const char *img);
/*
 * Puts a formatted image of `bytes` at dest (from the pool, else formats one
 * now), every block of it allocated: ENOSPC, in words, when the state
 * filesystem cannot hold it.
 */
int lo_pool_take(struct lo_pool *p, uint64_t bytes, const char *dest, struct sbx_err *err);

/*
 * Attaches state_dir/disk.img to a free loop device (LO_FLAGS_AUTOCLEAR: it
 * detaches when its last user goes). Returns the device's fd, which the
 * caller holds until the image is mounted; loopdev gets "/dev/loopN".
 */
int lo_disk_attach(const char *state_dir, char *loopdev, size_t size, struct sbx_err *err);
/*
 * Unmounts root/usr, root and disk under state_dir, where sandboxes made
 * before the launch namespace (lo_launch.h) had them in the host's mount
 * table. Fine when nothing is mounted.
 */
int lo_unmount_all(const char *state_dir, struct sbx_err *err);

#endif
