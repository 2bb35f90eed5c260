/*
 * lo_cgroup.h - the cgroups of one local sandbox, on cgroup v1 or v2.
 *
 * v1: one directory per controller (memory, cpu, cpuacct, pids, freezer,
 * blkio), each <mount>/sbxfs/<id>; co-mounted controllers share one. v2 (a
 * pure unified hierarchy, /sys/fs/cgroup/cgroup.controllers exists): one
 * directory <mount>/sbxfs/<id>. A controller that is not mounted is skipped;
 * what needs it fails with ENOTSUP.
 */
#ifndef SBX_LO_CGROUP_H
#define SBX_LO_CGROUP_H

#include <limits.h>
#include <stdbool.h>

#include "../backend.h"

enum lo_ctl { LO_MEMORY, LO_CPU, LO_CPUACCT, LO_PIDS, LO_FREEZER, LO_BLKIO, LO_NCTL };

/* Where the hierarchies are mounted; found once per backend. */
struct lo_cgroot {
	bool v2;
	char mnt[LO_NCTL][PATH_MAX];   /* v1: per controller ("" = absent); v2: all the same */
};

struct lo_cg {
	bool v2;
	char dir[LO_NCTL][PATH_MAX];   /* "" = controller absent */
	int ndistinct;
	char uniq[LO_NCTL][PATH_MAX];  /* distinct directories, for join/remove */
};

int lo_cgroot_find(struct lo_cgroot *root, struct sbx_err *err);
/* Computes the paths; with create, makes the directories. */
int lo_cg_open(const struct lo_cgroot *root, const char *id, bool create, struct lo_cg *cg, struct sbx_err *err);
int lo_cg_set_limits(const struct lo_cg *cg, const struct sbx_limits *l, struct sbx_err *err);
/*
 * The files a new single-threaded process writes itself into. On v1 that is
 * `tasks` with "0" (*self = true): moving only the calling thread skips the
 * global threadgroup lock, whose RCU grace period cost ~10 ms per create.
 * On v2 it is cgroup.procs with the pid (*self = false).
 */
int lo_cg_procs_files(const struct lo_cg *cg, char (*out)[PATH_MAX], int max, bool *self);
int lo_cg_freeze(const struct lo_cg *cg, bool freeze, struct sbx_err *err);
/* 1 frozen, 0 not, -errno */
int lo_cg_is_frozen(const struct lo_cg *cg);
/* Kills every process until the cgroups are empty; leaves them thawed. */
int lo_cg_kill_all(const struct lo_cg *cg, struct sbx_err *err);
/* Kills everything and removes the directories; fine when they are gone. */
int lo_cg_remove(const struct lo_cg *cg, struct sbx_err *err);
/* Fills cpu_seconds, mem_*, pids, disk_read/write in m. */
void lo_cg_stats(const struct lo_cg *cg, struct sbx_metrics *m);

#endif
