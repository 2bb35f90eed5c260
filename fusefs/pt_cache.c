/*
 * pt_cache.c - the descriptors of files/ nodes: a bounded cache that reopens.
 *
 * The kernel may hold an inode of files/ for as long as it likes (a `find`
 * over a sandbox's /usr makes 188,000 of them), so a node cannot keep an fd
 * for its whole life without running the daemon out of descriptors. A node
 * keeps an O_PATH fd while it is among the max_open most recently used; one
 * that lost it is opened again from where it was last seen: its parent
 * directory's node (itself reopened the same way, if need be) and its name,
 * with O_NOFOLLOW, and must still be the same (dev, ino), else ESTALE. Lookups
 * and renames through files/ keep "where" up to date. File handles
 * (open_by_handle_at) would not need the path, but overlayfs gives none
 * without nfs_export, which neither backend's overlay has.
 *
 * An fd in use by an operation is never closed under it (fd_users).
 */
#include "fs.h"
#include "../backend/log.h"
#include "pt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define PT_OPEN_MIN 64
#define PT_OPEN_MAX (1u << 16)
#define PT_REOPEN_DEPTH 4096     /* parents reopened in a chain at most (PATH_MAX / 2) */

void pt_init(void)
{
	struct pt_state *pt = &fs.pt;
	struct rlimit rl;
	rlim_t cur = 1024;

	pthread_mutex_init(&pt->lock, NULL);
	pthread_mutex_init(&pt->wait_lock, NULL);
	pthread_cond_init(&pt->wait_cond, NULL);
	/* The soft limit a shell gives (1024) is no limit for a filesystem: take the hard one. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl))
				sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot raise the descriptor limit");
		}
		getrlimit(RLIMIT_NOFILE, &rl);
		cur = rl.rlim_cur;
	}
	pt->max_open = cur / 4 < PT_OPEN_MIN ? PT_OPEN_MIN : cur / 4 > PT_OPEN_MAX ? PT_OPEN_MAX : cur / 4;
	pt->ready = true;
}

/* ---- the list; fs.pt.lock held ---- */

static void lru_unlink(struct pt_state *pt, struct node *n)
{
	if (n->lru_prev)
		n->lru_prev->lru_next = n->lru_next;
	else if (pt->lru_head == n)
		pt->lru_head = n->lru_next;
	if (n->lru_next)
		n->lru_next->lru_prev = n->lru_prev;
	else if (pt->lru_tail == n)
		pt->lru_tail = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
}

static void lru_front(struct pt_state *pt, struct node *n)
{
	lru_unlink(pt, n);
	n->lru_next = pt->lru_head;
	if (pt->lru_head)
		pt->lru_head->lru_prev = n;
	pt->lru_head = n;
	if (!pt->lru_tail)
		pt->lru_tail = n;
}

/* Gives n the fd (it has none); the list keeps at most want fds open. */
static void take_fd_locked(struct pt_state *pt, struct node *n, int fd)
{
	n->fd = fd;
	pt->nopen++;
	lru_front(pt, n);
}

/* Closes the least recently used fds no operation uses until at most want are open. */
static void evict_locked(struct pt_state *pt, size_t want)
{
	struct node *n = pt->lru_tail;

	while (n && pt->nopen > want) {
		struct node *prev = n->lru_prev;

		if (n->fd_users == 0 && !n->pt_root) {
			lru_unlink(pt, n);
			close(n->fd);
			n->fd = -1;
			pt->nopen--;
		}
		n = prev;
	}
}

/* ---- reopening ---- */

static int reopen(struct node *n, int depth);

/* n->fd if open (counted as used), else -1; fs.pt.lock taken here. */
static int get_open(struct node *n)
{
	struct pt_state *pt = &fs.pt;
	int fd = -1;

	pthread_mutex_lock(&pt->lock);
	if (n->fd >= 0) {
		n->fd_users++;
		lru_front(pt, n);
		fd = n->fd;
	}
	pthread_mutex_unlock(&pt->lock);
	return fd;
}

static int get_depth(struct node *n, int depth)
{
	struct pt_state *pt = &fs.pt;
	int fd = get_open(n);

	if (fd >= 0)
		return fd;
	fd = reopen(n, depth);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&pt->lock);
	if (n->fd >= 0)
		close(fd);           /* another operation was first */
	else
		take_fd_locked(pt, n, fd);
	n->fd_users++;
	fd = n->fd;
	evict_locked(pt, pt->max_open);
	pthread_mutex_unlock(&pt->lock);
	return fd;
}

int pt_get(struct node *n)
{
	return get_depth(n, 0);
}

void pt_put(struct node *n)
{
	pthread_mutex_lock(&fs.pt.lock);
	n->fd_users--;
	pthread_mutex_unlock(&fs.pt.lock);
}

static int open_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && pt_shrink(errno))
		fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Opens n again from its parent and name; the same inode, or -ESTALE. */
static int reopen(struct node *n, int depth)
{
	struct node *parent;
	struct stat st;
	char *name = NULL;
	dev_t pdev;
	ino_t pino;
	int pfd, fd;

	pthread_mutex_lock(&fs.pt.lock);
	pdev = n->pdev;
	pino = n->pino;
	if (n->pname && !n->pt_root)
		name = strdup(n->pname);
	pthread_mutex_unlock(&fs.pt.lock);
	if (!name)
		return n->pt_root ? -ESTALE : -ENOMEM;
	parent = depth < PT_REOPEN_DEPTH ? node_pt_hold(n->sb, pdev, pino) : NULL;
	if (!parent) {
		free(name);
		return -ESTALE;      /* the kernel forgot where it was */
	}
	pfd = get_depth(parent, depth + 1);
	fd = pfd < 0 ? pfd : open_at(pfd, name);
	if (pfd >= 0)
		pt_put(parent);
	node_forget(parent, 1);
	free(name);
	if (fd < 0)
		return fd == -ENOENT ? -ESTALE : fd;
	if (fstat(fd, &st) || st.st_dev != n->dev || st.st_ino != n->ino) {
		close(fd);
		return -ESTALE;      /* moved or replaced inside the sandbox */
	}
	return fd;
}

/* ---- what lookups and renames tell ---- */

/* Sets where n was seen; fs.pt.lock held. Keeps the old place when out of memory. */
static void seen_locked(struct node *n, struct node *parent, const char *name)
{
	char *copy;

	if (!parent) {
		n->pt_root = true;
		return;
	}
	if (n->pname && n->pdev == parent->dev && n->pino == parent->ino && strcmp(n->pname, name) == 0)
		return;
	copy = strdup(name);
	if (!copy)
		return;
	free(n->pname);
	n->pname = copy;
	n->pdev = parent->dev;
	n->pino = parent->ino;
}

void pt_adopt(struct node *n, int fd, struct node *parent, const char *name)
{
	struct pt_state *pt = &fs.pt;

	pthread_mutex_lock(&pt->lock);
	seen_locked(n, parent, name);
	if (n->fd >= 0) {
		close(fd);
		lru_front(pt, n);
	} else {
		take_fd_locked(pt, n, fd);
	}
	evict_locked(pt, pt->max_open);
	pthread_mutex_unlock(&pt->lock);
}

void pt_moved(struct node *n, struct node *newparent, const char *newname)
{
	pthread_mutex_lock(&fs.pt.lock);
	if (!n->pt_root)
		seen_locked(n, newparent, newname);
	pthread_mutex_unlock(&fs.pt.lock);
}

void pt_node_drop(struct node *n)
{
	struct pt_state *pt = &fs.pt;

	pthread_mutex_lock(&pt->lock);
	if (n->fd >= 0) {
		lru_unlink(pt, n);
		close(n->fd);
		n->fd = -1;
		pt->nopen--;
	}
	free(n->pname);
	n->pname = NULL;
	pthread_mutex_unlock(&pt->lock);
}

bool pt_shrink(int err)
{
	struct pt_state *pt = &fs.pt;

	if (err != EMFILE && err != ENFILE)
		return false;
	pthread_mutex_lock(&pt->lock);
	evict_locked(pt, pt->nopen / 2);
	pthread_mutex_unlock(&pt->lock);
	return true;
}
