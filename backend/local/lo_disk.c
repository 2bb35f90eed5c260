/*
 * lo_disk.c - disk images (pool + mkfs), loop devices and the mounts of a
 * local sandbox. All mounts are made in the daemon's (host) mount namespace
 * under a private state root, so they outlive the daemon and do not
 * propagate into other namespaces.
 */
#include "lo_disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/loop.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POOL_SIZES 4      /* image sizes kept ready at once */
#define POOL_DEPTH 2      /* ready images per size */
#define DEFAULT_DISK (UINT64_C(1) << 30)

struct lo_pool {
	char dir[PATH_MAX];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool stop;
	uint64_t sizes[POOL_SIZES];     /* most recently wanted first; 0 = unused */
	unsigned ready[POOL_SIZES];
	unsigned long seq;
	const char *mkfs;
	/* Images of destroyed sandboxes, renamed to .tmp-N.img, for the thread to delete. */
	unsigned long trash[64];
	unsigned ntrash;
};

#define POOL_TRASH_MAX 64

/* Deletes the discarded images (lock held; dropped while unlinking). */
static void pool_empty_trash(struct lo_pool *p)
{
	while (p->ntrash) {
		char path[PATH_MAX + 64];

		snprintf(path, sizeof(path), "%s/.tmp-%lu.img", p->dir, p->trash[--p->ntrash]);
		pthread_mutex_unlock(&p->lock);
		if (unlink(path) < 0 && errno != ENOENT)
			fprintf(stderr, "sbxfs: warning: cannot delete '%s': %s\n", path, sbx_errstr(errno));
		pthread_mutex_lock(&p->lock);
	}
}

extern char **environ;

static const char *find_mkfs(void)
{
	static const char *const cands[] = { "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4", "/usr/bin/mkfs.ext4" };

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	return NULL;
}

/* Creates a sparse file of `bytes` at path and formats it ext4 (no reserved blocks). */
static int make_image(const char *mkfs, const char *path, uint64_t bytes, struct sbx_err *err)
{
	char *argv[] = { (char *)mkfs, "-q", "-F", "-m", "0", "-E",
			 "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
			 (char *)path, NULL };
	char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	posix_spawn_file_actions_t fa;
	int fd, st, r;
	pid_t pid;

	if (!mkfs)
		return sbx_err_set(err, ENOENT, "mkfs.ext4 not found (install e2fsprogs)");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return sbx_err_sys(err, errno, "creating '%s'", path);
	if (ftruncate(fd, (off_t)bytes) < 0) {
		r = errno;
		close(fd);
		unlink(path);
		return sbx_err_sys(err, r, "sizing '%s'", path);
	}
	close(fd);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	r = posix_spawn(&pid, mkfs, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (r) {
		unlink(path);
		return sbx_err_sys(err, r, "running %s", mkfs);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		unlink(path);
		return sbx_err_set(err, EIO, "%s failed on '%s'", mkfs, path);
	}
	return 0;
}

static int pool_index(struct lo_pool *p, uint64_t bytes)
{
	for (int i = 0; i < POOL_SIZES; i++)
		if (p->sizes[i] == bytes)
			return i;
	return -1;
}

/* Remembers that `bytes` is wanted (most recent first); lock held. Returns its index. */
static int pool_want(struct lo_pool *p, uint64_t bytes)
{
	int i = pool_index(p, bytes);
	uint64_t sz;
	unsigned rd;

	if (i < 0) {
		i = POOL_SIZES - 1;
		if (p->sizes[i] && p->ready[i]) {
			/* Evict the least recently wanted size's images. */
			for (unsigned k = 0; k < p->ready[i]; k++) {
				char path[PATH_MAX + 64];

				snprintf(path, sizeof(path), "%s/%" PRIu64 "-%u.img", p->dir, p->sizes[i], k);
				unlink(path);
			}
		}
		p->sizes[i] = bytes;
		p->ready[i] = 0;
	}
	sz = p->sizes[i];
	rd = p->ready[i];
	for (; i > 0; i--) {
		p->sizes[i] = p->sizes[i - 1];
		p->ready[i] = p->ready[i - 1];
	}
	p->sizes[0] = sz;
	p->ready[0] = rd;
	return 0;
}

static void *pool_thread(void *arg)
{
	struct lo_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		int idx = -1;

		pool_empty_trash(p); /* drops the lock meanwhile: stop may have come */
		if (p->stop)
			break;
		for (int i = 0; i < POOL_SIZES; i++)
			if (p->sizes[i] && p->ready[i] < POOL_DEPTH) {
				idx = i;
				break;
			}
		if (idx < 0) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		{
			uint64_t bytes = p->sizes[idx];
			unsigned slot;
			char tmp[PATH_MAX + 64], path[PATH_MAX + 64];
			struct sbx_err err;
			int r;

			snprintf(tmp, sizeof(tmp), "%s/.tmp-%lu.img", p->dir, ++p->seq);
			pthread_mutex_unlock(&p->lock);
			r = make_image(p->mkfs, tmp, bytes, &err);
			pthread_mutex_lock(&p->lock);
			idx = pool_index(p, bytes);
			if (r < 0 || idx < 0 || p->ready[idx] >= POOL_DEPTH) {
				unlink(tmp);
				if (r < 0) {
					/* Do not spin on a broken mkfs: creates format inline and say why. */
					struct timespec ts;

					clock_gettime(CLOCK_REALTIME, &ts);
					ts.tv_sec += 5;
					pthread_cond_timedwait(&p->cond, &p->lock, &ts);
				}
				continue;
			}
			slot = p->ready[idx];
			snprintf(path, sizeof(path), "%s/%" PRIu64 "-%u.img", p->dir, bytes, slot);
			if (rename(tmp, path) == 0)
				p->ready[idx]++;
			else
				unlink(tmp);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Images left by an earlier daemon are complete (renamed after mkfs): keeps them, drops temps. */
static void pool_scan(struct lo_pool *p)
{
	DIR *d = opendir(p->dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		unsigned long long sz;
		unsigned slot;
		char path[PATH_MAX + 300];

		snprintf(path, sizeof(path), "%s/%s", p->dir, de->d_name);
		if (de->d_name[0] == '.' && strncmp(de->d_name, ".tmp-", 5) == 0) {
			unlink(path);
			continue;
		}
		if (sscanf(de->d_name, "%llu-%u.img", &sz, &slot) != 2)
			continue;
		/* Keep only a dense 0..n-1 numbering; the rest goes. */
		if (pool_index(p, sz) < 0 && slot < POOL_DEPTH)
			pool_want(p, sz);
		if (pool_index(p, sz) < 0 || slot >= POOL_DEPTH)
			unlink(path);
	}
	if (d)
		closedir(d);
}

/* How many images of size slot i are ready: 0..k-1 exist; anything past a gap is dropped now. */
static unsigned pool_count(struct lo_pool *p, int i)
{
	char path[PATH_MAX + 64];
	unsigned k = 0;

	while (k < POOL_DEPTH) {
		snprintf(path, sizeof(path), "%s/%" PRIu64 "-%u.img", p->dir, p->sizes[i], k);
		if (access(path, F_OK) < 0)
			break;
		k++;
	}
	for (unsigned j = k + 1; j < POOL_DEPTH; j++) {
		snprintf(path, sizeof(path), "%s/%" PRIu64 "-%u.img", p->dir, p->sizes[i], j);
		unlink(path);
	}
	return k;
}

int lo_pool_start(const char *state_root, struct lo_pool **out, struct sbx_err *err)
{
	struct lo_pool *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return sbx_err_set(err, ENOMEM, "out of memory");
	snprintf(p->dir, sizeof(p->dir), "%s/pool", state_root);
	if (mkdir(p->dir, 0700) < 0 && errno != EEXIST) {
		r = sbx_err_sys(err, errno, "creating '%s'", p->dir);
		free(p);
		return r;
	}
	p->mkfs = find_mkfs();
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->sizes[0] = DEFAULT_DISK;
	pool_scan(p);
	for (int i = 0; i < POOL_SIZES; i++)
		p->ready[i] = p->sizes[i] ? pool_count(p, i) : 0;
	r = pthread_create(&p->thread, NULL, pool_thread, p);
	if (r) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
		free(p);
		return sbx_err_sys(err, r, "starting the disk image pool");
	}
	*out = p;
	return 0;
}

void lo_pool_discard(struct lo_pool *p, const char *img)
{
	char path[PATH_MAX + 64];

	pthread_mutex_lock(&p->lock);
	snprintf(path, sizeof(path), "%s/.tmp-%lu.img", p->dir, ++p->seq);
	if (p->ntrash < POOL_TRASH_MAX && rename(img, path) == 0) {
		p->trash[p->ntrash++] = p->seq;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	pthread_mutex_unlock(&p->lock);
	if (unlink(img) < 0 && errno != ENOENT)
		fprintf(stderr, "sbxfs: warning: cannot delete '%s': %s\n", img, sbx_errstr(errno));
}

void lo_pool_stop(struct lo_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	pool_empty_trash(p);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* An image of *bytes_io (raised to the minimum; the size is told back) at dest: from the pool, else made now. */
static int pool_take_image(struct lo_pool *p, uint64_t *bytes_io, const char *dest, struct sbx_err *err)
{
	uint64_t bytes = *bytes_io;
	char path[PATH_MAX + 64];
	int idx, r;

	if (!bytes)
		bytes = DEFAULT_DISK;
	if (bytes < (UINT64_C(8) << 20))
		bytes = UINT64_C(8) << 20; /* ext4 needs room for its own metadata */
	*bytes_io = bytes;
	pthread_mutex_lock(&p->lock);
	pool_want(p, bytes);
	idx = 0;
	if (p->ready[idx] > 0) {
		snprintf(path, sizeof(path), "%s/%" PRIu64 "-%u.img", p->dir, bytes, p->ready[idx] - 1);
		if (rename(path, dest) == 0) {
			p->ready[idx]--;
			pthread_cond_signal(&p->cond);
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		p->ready[idx] = 0; /* something removed the pool; start it over */
	}
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	r = make_image(p->mkfs, dest, bytes, err);
	if (r < 0)
		sbx_err_wrap(err, "making the sandbox's disk");
	return r;
}

/*
 * Allocates every block of the image now, so the state filesystem keeps the
 * promise of disk= (a sparse image fails with I/O errors inside the sandbox
 * when the state filesystem fills up). Keeps the image's content.
 */
static int reserve(const char *path, uint64_t bytes, struct sbx_err *err)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return sbx_err_sys(err, errno, "opening '%s'", path);
	if (fallocate(fd, 0, 0, (off_t)bytes) < 0) {
		if (errno == ENOSPC)
			r = sbx_err_set(err, ENOSPC, "the state filesystem has no room for the sandbox's disk "
					"(%" PRIu64 " MiB, reserved whole)", bytes >> 20);
		else
			r = sbx_err_sys(err, errno, "reserving %" PRIu64 " MiB for the sandbox's disk", bytes >> 20);
	}
	close(fd);
	return r;
}

int lo_pool_take(struct lo_pool *p, uint64_t bytes, const char *dest, struct sbx_err *err)
{
	int r = pool_take_image(p, &bytes, dest, err);

	if (r == 0 && (r = reserve(dest, bytes, err)) < 0)
		unlink(dest);
	return r;
}

/* Attaches img to a free loop device (detached automatically when unmounted). Returns its fd. */
static int loop_attach(const char *img, char *dev, size_t size, struct sbx_err *err)
{
	int ctl, imgfd, lfd = -1, e = 0;

	imgfd = open(img, O_RDWR | O_CLOEXEC);
	if (imgfd < 0)
		return sbx_err_sys(err, errno, "opening '%s'", img);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		e = errno;
		close(imgfd);
		return sbx_err_sys(err, e, "opening /dev/loop-control");
	}
	for (int tries = 0; tries < 64; tries++) {
		struct loop_config cfg;
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (n < 0) {
			e = errno;
			break;
		}
		snprintf(dev, size, "/dev/loop%d", n);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			e = errno;
			if (e == ENOENT)
				continue; /* the node is on its way (udev-less /dev is devtmpfs) */
			break;
		}
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (uint32_t)imgfd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", img);
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
			e = 0;
			break;
		}
		e = errno;
		close(lfd);
		lfd = -1;
		if (e != EBUSY)
			break; /* EBUSY: another thread took this one first */
	}
	close(ctl);
	close(imgfd);
	if (lfd < 0)
		return sbx_err_sys(err, e ? e : EBUSY, "attaching '%s' to a loop device", img);
	return lfd;
}

int lo_disk_attach(const char *state_dir, char *loopdev, size_t size, struct sbx_err *err)
{
	char img[PATH_MAX + 32];

	snprintf(img, sizeof(img), "%s/disk.img", state_dir);
	return loop_attach(img, loopdev, size, err);
}

static int unmount_one(const char *path)
{
	for (int i = 0; i < 100; i++) {
		if (umount2(path, UMOUNT_NOFOLLOW) == 0)
			continue; /* stacked mounts: take every layer off */
		if (errno == EINVAL || errno == ENOENT)
			return 0; /* not (or no longer) a mount point */
		if (errno != EBUSY)
			return -errno;
		/* Something still holds it (a process leaving): detach lazily. */
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			continue;
		return -errno;
	}
	return -EBUSY;
}

int lo_unmount_all(const char *state_dir, struct sbx_err *err)
{
	static const char *const parts[] = { "root/usr", "root", "disk" };

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		char path[PATH_MAX + 32];
		int r;

		snprintf(path, sizeof(path), "%s/%s", state_dir, parts[i]);
		r = unmount_one(path);
		if (r < 0)
			return sbx_err_sys(err, -r, "unmounting '%s'", path);
	}
	return 0;
}
