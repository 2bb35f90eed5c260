/* lo_cgroup.c - creating, limiting, freezing, emptying and reading sandbox cgroups (v1 and v2). */
#include "lo_cgroup.h"
#include "../util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const ctl_names[LO_NCTL] = { "memory", "cpu", "cpuacct", "pids", "freezer", "blkio" };

static int cg_write(const char *dir, const char *file, const char *val)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return sbx_write_knob(path, val, NULL);
}

/* Reads a small file into buf; returns length or -errno. */
static ssize_t cg_read(const char *dir, const char *file, char *buf, size_t size)
{
	char path[PATH_MAX + 64];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = -errno;
	else
		buf[n] = '\0';
	close(fd);
	return n;
}

static uint64_t cg_read_u64(const char *dir, const char *file)
{
	char buf[64];

	if (!*dir || cg_read(dir, file, buf, sizeof(buf)) <= 0)
		return 0;
	return strtoull(buf, NULL, 10);
}

int lo_cgroot_find(struct lo_cgroot *root, struct sbx_err *err)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;

	memset(root, 0, sizeof(*root));
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
		root->v2 = true;
		for (int i = 0; i < LO_NCTL; i++)
			strcpy(root->mnt[i], "/sys/fs/cgroup");
		/* cpuacct and freezer are built into v2 (cpu.stat, cgroup.freeze). */
		return 0;
	}
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return sbx_err_sys(err, errno, "reading /proc/self/mountinfo");
	while (getline(&line, &cap, f) > 0) {
		char mroot[PATH_MAX], mnt[PATH_MAX], fstype[64], src[256], opts[1024];
		char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %4095s %4095s", mroot, mnt) != 2)
			continue;
		if (sscanf(sep + 3, "%63s %255s %1023s", fstype, src, opts) != 3 || strcmp(fstype, "cgroup"))
			continue;
		if (strcmp(mroot, "/"))
			continue; /* a slice of a hierarchy (a container's view): not ours to use */
		for (int i = 0; i < LO_NCTL; i++) {
			char *save = NULL, tmp[1024];

			strcpy(tmp, opts);
			for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
				if (!strcmp(t, ctl_names[i]) && !root->mnt[i][0])
					snprintf(root->mnt[i], PATH_MAX, "%s", mnt);
		}
	}
	free(line);
	fclose(f);
	if (!root->mnt[LO_MEMORY][0] || !root->mnt[LO_FREEZER][0])
		return sbx_err_set(err, ENOTSUP, "the memory and freezer cgroup controllers are needed and not mounted");
	return 0;
}

int lo_cg_open(const struct lo_cgroot *root, const char *id, bool create, struct lo_cg *cg, struct sbx_err *err)
{
	memset(cg, 0, sizeof(*cg));
	cg->v2 = root->v2;
	if (create && root->v2) {
		char parent[PATH_MAX];

		/* Controllers must be delegated down to the sandbox's directory. */
		snprintf(parent, sizeof(parent), "%s/sbxfs", root->mnt[0]);
		if (mkdir(parent, 0755) < 0 && errno != EEXIST)
			return sbx_err_sys(err, errno, "creating cgroup '%s'", parent);
		cg_write(root->mnt[0], "cgroup.subtree_control", "+memory +cpu +pids +io");
		cg_write(parent, "cgroup.subtree_control", "+memory +cpu +pids +io");
	}
	for (int i = 0; i < LO_NCTL; i++) {
		bool dup = false;

		if (!root->mnt[i][0])
			continue;
		snprintf(cg->dir[i], PATH_MAX, "%s/sbxfs/%s", root->mnt[i], id);
		for (int j = 0; j < cg->ndistinct; j++)
			dup |= !strcmp(cg->uniq[j], cg->dir[i]);
		if (dup)
			continue;
		strcpy(cg->uniq[cg->ndistinct++], cg->dir[i]);
		if (!create)
			continue;
		if (!root->v2) {
			char parent[PATH_MAX];

			snprintf(parent, sizeof(parent), "%s/sbxfs", root->mnt[i]);
			if (mkdir(parent, 0755) < 0 && errno != EEXIST)
				return sbx_err_sys(err, errno, "creating cgroup '%s'", parent);
		}
		if (mkdir(cg->dir[i], 0755) < 0 && errno != EEXIST)
			return sbx_err_sys(err, errno, "creating cgroup '%s'", cg->dir[i]);
	}
	return 0;
}

/* n * scale then suffix, or `none` for 0 (no limit). */
static void limit_text(char *v, size_t size, uint64_t n, uint64_t scale, const char *suffix, const char *none)
{
	if (n)
		snprintf(v, size, "%" PRIu64 "%s", n * scale, suffix);
	else
		snprintf(v, size, "%s", none);
}

static int cg_put(const char *dir, const char *file, const char *v, const char *what, struct sbx_err *err)
{
	int r = cg_write(dir, file, v);

	return r < 0 ? sbx_err_sys(err, -r, "setting %s to %s", what, v) : 0;
}

static int cg_limits_v2(const struct lo_cg *cg, const struct sbx_limits *l, struct sbx_err *err)
{
	const char *d = cg->dir[LO_MEMORY];
	char v[64];
	int r;

	limit_text(v, sizeof(v), l->mem_bytes, 1, "", "max");
	if ((r = cg_put(d, "memory.max", v, "memory.max", err)) < 0)
		return r;
	cg_write(d, "memory.swap.max", "0");
	limit_text(v, sizeof(v), l->cpu_millis, 100, " 100000", "max 100000");
	if ((r = cg_put(d, "cpu.max", v, "cpu.max", err)) < 0)
		return r;
	limit_text(v, sizeof(v), l->pids, 1, "", "max");
	return cg_put(d, "pids.max", v, "pids.max", err);
}

static int cg_limits_v1(const struct lo_cg *cg, const struct sbx_limits *l, struct sbx_err *err)
{
	char v[64];
	int r;

	limit_text(v, sizeof(v), l->mem_bytes, 1, "", "-1");
	/* memsw must stay >= the memory limit: the order depends on the direction. */
	r = cg_write(cg->dir[LO_MEMORY], "memory.limit_in_bytes", v);
	if (cg_write(cg->dir[LO_MEMORY], "memory.memsw.limit_in_bytes", v) == 0 && r < 0)
		r = cg_write(cg->dir[LO_MEMORY], "memory.limit_in_bytes", v);
	if (r < 0)
		return sbx_err_sys(err, -r, "setting the memory limit to %s", v);
	if (!cg->dir[LO_CPU][0] && l->cpu_millis)
		return sbx_err_set(err, ENOTSUP, "cannot limit cpu: the cpu cgroup controller is not mounted");
	if (cg->dir[LO_CPU][0]) {
		limit_text(v, sizeof(v), l->cpu_millis, 100, "", "-1");
		cg_write(cg->dir[LO_CPU], "cpu.cfs_period_us", "100000");
		if ((r = cg_put(cg->dir[LO_CPU], "cpu.cfs_quota_us", v, "the cpu quota", err)) < 0)
			return r;
	}
	if (!cg->dir[LO_PIDS][0])
		return l->pids ? sbx_err_set(err, ENOTSUP,
					     "cannot limit processes: the pids cgroup controller is not mounted") : 0;
	limit_text(v, sizeof(v), l->pids, 1, "", "max");
	return cg_put(cg->dir[LO_PIDS], "pids.max", v, "pids.max", err);
}

int lo_cg_set_limits(const struct lo_cg *cg, const struct sbx_limits *l, struct sbx_err *err)
{
	return cg->v2 ? cg_limits_v2(cg, l, err) : cg_limits_v1(cg, l, err);
}

int lo_cg_procs_files(const struct lo_cg *cg, char (*out)[PATH_MAX], int max, bool *self)
{
	int n = 0;

	*self = !cg->v2;
	for (int i = 0; i < cg->ndistinct && n < max; i++)
		snprintf(out[n++], PATH_MAX, "%s/%s", cg->uniq[i], cg->v2 ? "cgroup.procs" : "tasks");
	return n;
}

static void sleep_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	nanosleep(&ts, NULL);
}

int lo_cg_is_frozen(const struct lo_cg *cg)
{
	char buf[64];
	ssize_t n;

	if (cg->v2) {
		n = cg_read(cg->dir[LO_FREEZER], "cgroup.events", buf, sizeof(buf));
		if (n < 0)
			return (int)n;
		return strstr(buf, "frozen 1") != NULL;
	}
	n = cg_read(cg->dir[LO_FREEZER], "freezer.state", buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return strncmp(buf, "FROZEN", 6) == 0;
}

int lo_cg_freeze(const struct lo_cg *cg, bool freeze, struct sbx_err *err)
{
	int r;

	if (!cg->dir[LO_FREEZER][0])
		return sbx_err_set(err, ENOTSUP, "the freezer cgroup controller is not mounted");
	if (cg->v2)
		r = cg_write(cg->dir[LO_FREEZER], "cgroup.freeze", freeze ? "1" : "0");
	else
		r = cg_write(cg->dir[LO_FREEZER], "freezer.state", freeze ? "FROZEN" : "THAWED");
	if (r < 0)
		return sbx_err_sys(err, -r, "%s the sandbox's processes", freeze ? "freezing" : "thawing");
	if (!freeze)
		return 0;
	/* Frozen means every task stopped, not just asked to. */
	for (int i = 0; i < 20000; i++) {
		r = lo_cg_is_frozen(cg);
		if (r == 1)
			return 0;
		if (r < 0)
			return sbx_err_sys(err, -r, "reading the freezer state");
		if (!cg->v2 && i % 50 == 49)
			cg_write(cg->dir[LO_FREEZER], "freezer.state", "FROZEN");
		sleep_us(i < 100 ? 100 : 1000);
	}
	return sbx_err_set(err, ETIMEDOUT, "the sandbox's processes did not freeze in time");
}

/* Sends SIGKILL to every pid listed in dir/cgroup.procs; returns how many. */
static int kill_listed(const char *dir)
{
	char path[PATH_MAX + 64];
	FILE *f;
	long pid;
	int n = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fscanf(f, "%ld", &pid) == 1)
		if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
			n++;
	fclose(f);
	return n;
}

static bool cg_empty(const char *dir)
{
	char buf[64];
	ssize_t n = cg_read(dir, "cgroup.procs", buf, sizeof(buf));

	return n <= 0;
}

int lo_cg_kill_all(const struct lo_cg *cg, struct sbx_err *err)
{
	const char *fz = cg->dir[LO_FREEZER];
	const char *any = cg->ndistinct ? cg->uniq[0] : "";
	bool frozen = false;

	if (!*any || access(any, F_OK) < 0)
		return 0;
	if (cg->v2) {
		char path[PATH_MAX + 32];

		snprintf(path, sizeof(path), "%s/cgroup.kill", any);
		if (access(path, F_OK) == 0 && cg_write(any, "cgroup.kill", "1") == 0)
			goto wait;
	}
	/*
	 * Freeze first so nothing forks between reading the list and the kill;
	 * the SIGKILLs land when the cgroup thaws.
	 */
	if (*fz && !cg_empty(any)) {
		struct sbx_err tmp;

		frozen = lo_cg_freeze(cg, true, &tmp) == 0;
	}
	for (int i = 0; i < cg->ndistinct; i++)
		kill_listed(cg->uniq[i]);
	if (*fz)
		cg->v2 ? cg_write(fz, "cgroup.freeze", "0") : cg_write(fz, "freezer.state", "THAWED");
	(void)frozen;
wait:
	for (int round = 0; round < 5000; round++) {
		bool empty = true;

		for (int i = 0; i < cg->ndistinct; i++)
			if (!cg_empty(cg->uniq[i])) {
				empty = false;
				if (round % 20 == 19)
					kill_listed(cg->uniq[i]);
			}
		if (empty)
			return 0;
		sleep_us(round < 200 ? 100 : 1000);
	}
	return sbx_err_set(err, EBUSY, "processes of the sandbox did not die");
}

int lo_cg_remove(const struct lo_cg *cg, struct sbx_err *err)
{
	int r = lo_cg_kill_all(cg, err);

	if (r < 0)
		return r;
	for (int i = 0; i < cg->ndistinct; i++) {
		/* An emptied cgroup can stay busy for a moment while its last task exits. */
		for (int t = 0; t < 1000; t++) {
			if (rmdir(cg->uniq[i]) == 0 || errno == ENOENT)
				break;
			if (errno != EBUSY || t == 999)
				return sbx_err_sys(err, errno, "removing cgroup '%s'", cg->uniq[i]);
			sleep_us(1000);
		}
	}
	return 0;
}

/* Sums "KEY=N" fields (v2 io.stat) or "MAJ:MIN Read N" lines (v1 blkio). */
static void io_bytes(const struct lo_cg *cg, uint64_t *rd, uint64_t *wr)
{
	char buf[8192];
	char *save = NULL;
	const char *d = cg->dir[cg->v2 ? LO_MEMORY : LO_BLKIO];

	*rd = *wr = 0;
	if (!*d)
		return;
	if (cg_read(d, cg->v2 ? "io.stat" : "blkio.throttle.io_service_bytes", buf, sizeof(buf)) <= 0)
		return;
	for (char *ln = strtok_r(buf, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
		char *p;

		if (cg->v2) {
			if ((p = strstr(ln, "rbytes=")))
				*rd += strtoull(p + 7, NULL, 10);
			if ((p = strstr(ln, "wbytes=")))
				*wr += strtoull(p + 7, NULL, 10);
		} else {
			char dev[32], op[16];
			unsigned long long v;

			if (sscanf(ln, "%31s %15s %llu", dev, op, &v) != 3)
				continue;
			if (!strcmp(op, "Read"))
				*rd += v;
			else if (!strcmp(op, "Write"))
				*wr += v;
		}
	}
}

void lo_cg_stats(const struct lo_cg *cg, struct sbx_metrics *m)
{
	char buf[4096];

	if (cg->v2) {
		const char *d = cg->dir[LO_MEMORY];
		char *p;

		if (cg_read(d, "cpu.stat", buf, sizeof(buf)) > 0 && (p = strstr(buf, "usage_usec ")))
			m->cpu_seconds = (double)strtoull(p + 11, NULL, 10) / 1e6;
		m->mem_used_bytes = cg_read_u64(d, "memory.current");
		if (cg_read(d, "memory.max", buf, sizeof(buf)) > 0 && strncmp(buf, "max", 3))
			m->mem_limit_bytes = strtoull(buf, NULL, 10);
		m->pids = (uint32_t)cg_read_u64(d, "pids.current");
	} else {
		uint64_t lim;

		m->cpu_seconds = (double)cg_read_u64(cg->dir[LO_CPUACCT], "cpuacct.usage") / 1e9;
		m->mem_used_bytes = cg_read_u64(cg->dir[LO_MEMORY], "memory.usage_in_bytes");
		lim = cg_read_u64(cg->dir[LO_MEMORY], "memory.limit_in_bytes");
		m->mem_limit_bytes = lim >= (UINT64_C(1) << 62) ? 0 : lim;
		m->pids = (uint32_t)cg_read_u64(cg->dir[LO_PIDS], "pids.current");
	}
	io_bytes(cg, &m->disk_read_bytes, &m->disk_write_bytes);
}
