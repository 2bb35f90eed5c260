/* lo_uid.c - host-wide allocation of sandbox id blocks (see lo_uid.h). */
#include "lo_uid.h"
#include "../log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util.h"

/* Does any id of an account, a group or a subordinate range fall in [lo, hi]? */
static bool file_overlaps(const char *path, bool subid, uint32_t lo, uint32_t hi)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	bool hit = false;

	if (!f)
		return false;
	while (!hit && fgets(line, sizeof(line), f)) {
		char *save = NULL, *field = strtok_r(line, ":", &save);
		unsigned long long first, count = 1;

		/* passwd/group: the third field; subuid/subgid: name:first:count */
		for (int i = 0; field && i < (subid ? 1 : 2); i++)
			field = strtok_r(NULL, ":", &save);
		if (!field)
			continue;
		first = strtoull(field, NULL, 10);
		if (subid) {
			field = strtok_r(NULL, ":\n", &save);
			count = field ? strtoull(field, NULL, 10) : 0;
			if (!count)
				continue;
		}
		hit = first <= hi && first + count - 1 >= lo;
	}
	fclose(f);
	return hit;
}

static bool host_uses(uint32_t lo, uint32_t hi)
{
	return file_overlaps("/etc/passwd", false, lo, hi) || file_overlaps("/etc/group", false, lo, hi) ||
	       file_overlaps("/etc/subuid", true, lo, hi) || file_overlaps("/etc/subgid", true, lo, hi);
}

/* 1: the slot is now (or already was) the sandbox's; 0: another's; < 0: -errno. */
static int try_slot(int dfd, unsigned slot, const char *state_dir)
{
	char name[16], target[PATH_MAX];
	struct stat st;
	ssize_t n;

	snprintf(name, sizeof(name), "%u", slot);
	if (symlinkat(state_dir, dfd, name) == 0)
		return 1;
	if (errno != EEXIST)
		return -errno;
	n = readlinkat(dfd, name, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	target[n] = '\0';
	if (!strcmp(target, state_dir))
		return 1;
	/* Its sandbox is gone without giving it back (a crash, a removed state): take it over. */
	if (stat(target, &st) == 0 || errno != ENOENT)
		return 0;
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return symlinkat(state_dir, dfd, name) == 0 ? 1 : (errno == EEXIST ? 0 : -errno);
}

static int open_locked_dir(struct sbx_err *err)
{
	int dfd, r;

	if ((r = sbx_mkdir_p(LO_UID_DIR, 0700, err)) < 0)
		return r;
	dfd = open(LO_UID_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return sbx_err_sys(err, errno, "opening '%s'", LO_UID_DIR);
	/* Host-wide: every sbxfs daemon allocates under this lock. */
	while (flock(dfd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			r = sbx_err_sys(err, errno, "locking '%s'", LO_UID_DIR);
			close(dfd);
			return r;
		}
	}
	return dfd;
}

int lo_uid_claim(const char *state_dir, uint32_t *base, struct sbx_err *err)
{
	static unsigned hint;   /* where the last search ended; a hint only, races are harmless */
	int dfd = open_locked_dir(err), r = 0;

	if (dfd < 0)
		return dfd;
	if (*base) {
		unsigned slot = (*base - LO_UID_FIRST) / LO_UID_BLOCK;

		if (*base < LO_UID_FIRST || (*base - LO_UID_FIRST) % LO_UID_BLOCK || slot >= LO_UID_SLOTS)
			r = sbx_err_set(err, EINVAL, "recorded uid range %u is not one of sbxfs's", *base);
		else if ((r = try_slot(dfd, slot, state_dir)) == 0)
			r = sbx_err_set(err, EEXIST, "uid range %u is recorded for another sandbox in '%s'", *base,
					LO_UID_DIR);
		else if (r < 0)
			r = sbx_err_sys(err, -r, "recording uid range %u in '%s'", *base, LO_UID_DIR);
		close(dfd);
		return r < 0 ? r : 0;
	}
	for (unsigned i = 0; i < LO_UID_SLOTS; i++) {
		unsigned slot = (hint + i) % LO_UID_SLOTS;
		uint32_t lo = LO_UID_FIRST + slot * LO_UID_BLOCK;

		if (host_uses(lo, lo + LO_UID_BLOCK - 1))
			continue;
		r = try_slot(dfd, slot, state_dir);
		if (r < 0) {
			r = sbx_err_sys(err, -r, "recording a uid range in '%s'", LO_UID_DIR);
			break;
		}
		if (r == 1) {
			*base = lo;
			hint = slot + 1;
			break;
		}
	}
	close(dfd);
	if (r < 0)
		return r;
	if (!*base)
		return sbx_err_set(err, EUSERS, "every sandbox uid range (%u) is in use", LO_UID_SLOTS);
	return 0;
}

void lo_uid_release(const char *state_dir, uint32_t base)
{
	struct sbx_err err = { 0 };
	char name[16], target[PATH_MAX];
	int dfd;
	ssize_t n;

	if (base < LO_UID_FIRST || (base - LO_UID_FIRST) % LO_UID_BLOCK)
		return;
	dfd = open_locked_dir(&err);
	if (dfd < 0) {
		sbx_log(SBX_LOG_WARNING, NULL, 0, "cannot free uid range %u: %s (%s)", base, err.msg,
			sbx_errstr(err.code));
		return;
	}
	snprintf(name, sizeof(name), "%u", (base - LO_UID_FIRST) / LO_UID_BLOCK);
	n = readlinkat(dfd, name, target, sizeof(target) - 1);
	if (n >= 0) {
		target[n] = '\0';
		if (!strcmp(target, state_dir) && unlinkat(dfd, name, 0) < 0)
			sbx_log(SBX_LOG_WARNING, NULL, 0, "cannot free uid range %u: %s", base,
				sbx_errstr(errno));
	}
	close(dfd);
}
