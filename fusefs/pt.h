/*
 * pt.h - what the files of files/ (passthrough) share:
 *
 *   passthrough.c  the operations on names, attributes, files, directories
 *   pt_cache.c     the descriptors of nodes: a bounded cache that reopens
 *   pt_links.c     readlink: targets rewritten so they never leave files/
 *   pt_xattr.c     extended attributes (user.* only)
 *   pt_locks.c     POSIX locks and flock, blocking ones waiting off the worker threads
 *
 * fs.h declares the operations the node table (pt_table.c) calls.
 */
#ifndef SBX_PT_H
#define SBX_PT_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct node;
struct sandbox;

/*
 * The descriptor cache (pt_cache.c). Each passthrough node may hold an O_PATH
 * fd of its inode; at most max_open of them are open at once, the least
 * recently used closed first, and a node without one is opened again from
 * where it was last seen (its parent directory's node and its name), its
 * (dev, ino) checked. The files/ root of each sandbox keeps its fd.
 */
struct pt_state {
	pthread_mutex_t lock;        /* guards the fields below and every node's fd, fd_users,
	                              * where it was seen, LRU links; a leaf */
	struct node *lru_head, *lru_tail;   /* nodes holding an fd, most recently used first */
	size_t nopen;                /* fds held by nodes */
	size_t max_open;             /* the bound: a quarter of RLIMIT_NOFILE */
	bool ready;

	/* pt_locks.c: lock requests waiting off the worker pool */
	pthread_mutex_t wait_lock;   /* guards the fields below; taken before a waiter's own lock */
	pthread_cond_t wait_cond;    /* signalled when a waiter leaves */
	struct pt_lock_wait *waiters;
	size_t nwaiters;
	bool wait_stopping;
};

/*
 * Raises RLIMIT_NOFILE to its hard limit and sizes the cache by it. Once, at
 * start, before any thread.
 */
void pt_init(void);

/*
 * The O_PATH fd of n for the duration of one operation: the node keeps it
 * open until pt_put(n). -errno (-ESTALE: it is not where it was seen).
 */
int pt_get(struct node *n);
void pt_put(struct node *n);

/*
 * Gives a node found by a lookup its fd (taken: closed when it has one) and
 * where it was seen: parent's node and name (parent NULL: the files/ root,
 * which keeps its fd).
 */
void pt_adopt(struct node *n, int fd, struct node *parent, const char *name);
/* n was renamed through files/: it is now newparent/newname. */
void pt_moved(struct node *n, struct node *newparent, const char *newname);
/* The node is being freed: closes its fd, forgets where it was. */
void pt_node_drop(struct node *n);

/*
 * An fd for an open(), opendir() or openat() that failed with EMFILE/ENFILE:
 * closes half the cache and says whether to try again.
 */
bool pt_shrink(int err);

/* pt_locks.c: answers every waiting lock request (EINTR) and waits for their threads; at unmount. */
void pt_locks_stop(void);

/* passthrough.c: what the other pt_*.c files share */
double pt_ttl(struct sandbox *sb);
void pt_proc_path(char *buf, size_t size, int fd);
/* pt_get(n), answering the error when there is no fd; -1 then. */
int pt_fd(fuse_req_t req, struct node *n);
bool pt_is_symlink(int fd);
bool pt_name_ok(fuse_req_t req, const char *name);
/* Looks name up in parent: a node with one lookup counted, in e. 0 or -errno. */
int pt_lookup_at(struct node *parent, const char *name, struct fuse_entry_param *e);
/* Replies e (or -ret); forgets the node when the kernel did not get the answer. */
void pt_reply_entry(fuse_req_t req, int ret, struct fuse_entry_param *e);

#endif
