/*
 * lo_mnt.h - a local sandbox's disk and root as detached mounts.
 *
 * The daemon makes the sandbox's ext4 disk and its overlay root with the new
 * mount API (fsopen/fsconfig/fsmount): mounts in an anonymous namespace that
 * no mount table lists, reached through two descriptors the instance keeps.
 * Each start clones them (open_tree) into bwrap's launch namespace
 * (lo_launch.h), so a restart finds the very same filesystems and never
 * mounts the image twice; files/, watch and metrics use the descriptors.
 * The overlay is told its layers as /proc/self/fd/N paths, which is what its
 * options (and so the sandbox's mountinfo) show: no host path.
 */
#ifndef SBX_LO_MNT_H
#define SBX_LO_MNT_H

#include <sys/types.h>

#include "../backend.h"

struct lo_mnt {
	int disk;   /* the ext4 image's root (upper/, work/ inside); -1 = none */
	int root;   /* the overlay: the sandbox's "/"; -1 = none */
};

#define LO_MNT_NONE { -1, -1 }

/* Mounts loopdev (the attached image) and the overlay over lower (the template's rootfs). */
int lo_mnt_make(const char *loopdev, const char *lower, struct lo_mnt *m, struct sbx_err *err);

/*
 * Takes the mounts of a sandbox started by an earlier daemon from its launch
 * namespace (bwrap's outer process pid: its /disk and /root), as detached
 * clones of the same filesystems.
 */
int lo_mnt_adopt(pid_t bwrap_pid, struct lo_mnt *m, struct sbx_err *err);

void lo_mnt_close(struct lo_mnt *m);

#endif
