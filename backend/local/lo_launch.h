/*
 * lo_launch.h - starting a local sandbox's processes: bubblewrap, whose pid 2
 * is sbxfs-agent, in the sandbox's cgroups and (when it has an id block) its
 * own user namespace.
 *
 * The daemon forks twice so the sandbox is not its child and outlives it. The
 * grandchild joins the cgroups, then, with an id block, becomes the block's
 * first id (0 inside), unshares a user namespace owned by that id, waits for
 * the daemon to write its maps (inside 0..65535 -> base..base+65535) and
 * execs bwrap as root of that namespace. The namespace is owned by a uid of
 * the sandbox's own, so per-user kernel counts (inotify instances, processes,
 * pipe buffers), charged up the chain of owners, are the sandbox's alone.
 * The sandbox's mounts (its disk, the overlay root) are clones of detached
 * mounts (lo_mnt.h) in the launch namespace: the host's mount table names no
 * sandbox.
 */
#ifndef SBX_LO_LAUNCH_H
#define SBX_LO_LAUNCH_H

#include <stdint.h>
#include <sys/types.h>

#include "../backend.h"
#include "lo_cgroup.h"
#include "lo_mnt.h"

#define LO_AGENT_IN "/run/sbxfs-agent"

struct lo_launch {
	const char *bwrap;        /* the bwrap binary */
	const char *agent;        /* sbxfs-agent on the host */
	const char *hostname;     /* the sandbox's name */
	const struct lo_mnt *mnt; /* the sandbox's disk and root (detached mounts) */
	const char *sock;         /* where the agent listens */
	const char *log;          /* what bwrap and the agent print */
	const struct lo_cg *cg;
	const char *bpf;          /* the seccomp filter */
	size_t bpf_len;
	uint32_t uid_base;        /* host id of root inside; 0 = no user namespace (older sandboxes) */
};

/*
 * Starts bwrap and the agent, the sandbox's disk and root cloned into the
 * launch namespace (/disk, /root); returns bwrap's host pid once exec'd (the
 * agent may not answer yet).
 */
int lo_launch(const struct lo_launch *l, pid_t *bwrap_pid, struct sbx_err *err);

#endif
