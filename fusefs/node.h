/*
 * node.h - the inode table of the mount, and what a node does.
 *
 * Every inode the kernel knows is a struct node; its FUSE inode number is the
 * node's address (as libfuse's passthrough_ll does). Nodes are found again by
 * key so one path keeps one inode number while the kernel holds it: inotify
 * watches live on inodes, and a changing number would silently drop them.
 *
 * A node carries a pointer to its operations (struct node_ops, like the
 * kernel's file_operations): synthetic nodes share synth_node_ops (synth_ops.c),
 * nodes of files/ share pt_node_ops (pt_table.c). fusefs/ops.c only
 * dispatches through it.
 */
#ifndef SBX_NODE_H
#define SBX_NODE_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sandbox;
struct node;
struct dirtab;

/*
 * The request handlers of one family of nodes. A NULL slot gets the default
 * answer written once in ops.c (EPERM for a change, ENOTSUP for xattrs...).
 * Handlers that create a name get the parent; the others the node itself.
 */
struct node_ops {
	void (*lookup)(fuse_req_t req, struct node *parent, const char *name);
	void (*getattr)(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
	void (*setattr)(fuse_req_t req, struct node *n, struct stat *attr, int to_set, struct fuse_file_info *fi);
	void (*readlink)(fuse_req_t req, struct node *n);
	void (*mknod)(fuse_req_t req, struct node *parent, const char *name, mode_t mode, dev_t rdev);
	void (*mkdir)(fuse_req_t req, struct node *parent, const char *name, mode_t mode);
	void (*unlink)(fuse_req_t req, struct node *parent, const char *name);
	void (*rmdir)(fuse_req_t req, struct node *parent, const char *name);
	void (*symlink)(fuse_req_t req, const char *link, struct node *parent, const char *name);
	/* rename and link are only called when both nodes have the same ops (else EXDEV). */
	void (*rename)(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		       const char *newname, unsigned int flags);
	void (*link)(fuse_req_t req, struct node *n, struct node *newparent, const char *newname);
	void (*open)(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
	void (*create)(fuse_req_t req, struct node *parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi);
	void (*read)(fuse_req_t req, struct node *n, size_t size, off_t off, struct fuse_file_info *fi);
	void (*write_buf)(fuse_req_t req, struct node *n, struct fuse_bufvec *in, off_t off,
			  struct fuse_file_info *fi);
	void (*flush)(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
	void (*release)(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
	void (*fsync)(fuse_req_t req, struct node *n, int datasync, struct fuse_file_info *fi);
	void (*opendir)(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
	void (*readdir)(fuse_req_t req, struct node *n, size_t size, off_t off, struct fuse_file_info *fi,
			bool plus);
	void (*releasedir)(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
	void (*statfs)(fuse_req_t req, struct node *n);
	void (*fallocate)(fuse_req_t req, struct node *n, int mode, off_t offset, off_t length,
			  struct fuse_file_info *fi);
	void (*lseek)(fuse_req_t req, struct node *n, off_t off, int whence, struct fuse_file_info *fi);
	/* Only called when both nodes have the same ops (else EXDEV). */
	void (*copy_file_range)(fuse_req_t req, struct fuse_file_info *fi_in, off_t off_in,
				struct fuse_file_info *fi_out, off_t off_out, size_t len, int flags);
	void (*setxattr)(fuse_req_t req, struct node *n, const char *name, const char *value, size_t size,
			 int flags);
	void (*getxattr)(fuse_req_t req, struct node *n, const char *name, size_t size);
	void (*listxattr)(fuse_req_t req, struct node *n, size_t size);
	void (*removexattr)(fuse_req_t req, struct node *n, const char *name);
	void (*getlk)(fuse_req_t req, struct node *n, struct fuse_file_info *fi, struct flock *lock);
	void (*setlk)(fuse_req_t req, struct node *n, struct fuse_file_info *fi, struct flock *lock, int sleep);
	void (*flock)(fuse_req_t req, struct node *n, struct fuse_file_info *fi, int op);
	void (*poll)(fuse_req_t req, struct node *n, struct fuse_file_info *fi, struct fuse_pollhandle *ph);
};

extern const struct node_ops synth_node_ops;   /* synth_ops.c */
extern const struct node_ops pt_node_ops;      /* pt_table.c */

struct node {
	struct node *hnext;       /* hash chain; guarded by the table lock */
	const struct node_ops *ops;
	uint64_t nlookup;         /* guarded by the table lock */
	/* key */
	uint64_t parent;          /* synthetic: parent inode; passthrough: 0 */
	char *name;               /* synthetic: entry name; passthrough: NULL */
	dev_t dev;                /* passthrough */
	ino_t ino;                /* passthrough */

	const struct dirtab *t;   /* synthetic: its table entry (mode, timeouts, operations) */
	struct sandbox *sb;       /* a reference, for every node below a sandbox */
	uint64_t run;             /* runs/N/ and what is in it, results/N-figure-K.png */
	char *ctx;                /* the context a node is in (contexts/CTX and below), else NULL */
	int fd;                   /* passthrough: O_PATH fd, or -1 while the cache has it closed */
	/* passthrough, the rest (pt_cache.c; guarded by fs.pt.lock) */
	unsigned int fd_users;    /* operations using fd now: it is not closed under them */
	bool pt_root;             /* files/ itself: keeps its fd */
	dev_t pdev;               /* where it was last seen: its parent directory's (dev, ino) */
	ino_t pino;
	char *pname;              /* and its name there */
	struct node *lru_prev, *lru_next;   /* fs.pt's list of nodes holding an fd */
	uid_t sb_uid;             /* the sandbox user's host ids, set at the node's making */
	gid_t sb_gid;
};

/*
 * The table. Its lock is a leaf in fusefs's lock order (docs/design.md):
 * nothing else is taken while it is held (sandbox_ref is an atomic count).
 */
#define NODE_BUCKETS 65536
struct node_table {
	pthread_mutex_t lock;                 /* guards buckets, every hnext and nlookup */
	struct node *buckets[NODE_BUCKETS];
	struct node root;
};

static inline fuse_ino_t node_ino(const struct node *n)
{
	return (fuse_ino_t)(uintptr_t)n;
}

/* The root is a synthetic directory whose table entry is root_dirtab. */
void node_table_init(const struct dirtab *root_dirtab);
struct node *node_root(void);
/* The node of an inode number the kernel gave us (root included). */
struct node *node_get(fuse_ino_t ino);

/*
 * Finds or makes the synthetic node (parent, name) of table entry t and
 * counts one lookup. sb is referenced when a new node is made; ctx names the
 * context (NULL: the parent's). Returns NULL on out of memory.
 */
struct node *node_synth(struct node *parent, const char *name, const struct dirtab *t,
			struct sandbox *sb, uint64_t run, const char *ctx);

/*
 * The inode number a directory listing shows for (parent, name): the node's
 * if the kernel holds one (no lookup counted), else a number made from a hash
 * of (parent inode, name) with the top bit set, which no node address has.
 * The kernel takes the real number from lookup; this only keeps `ls -i` and
 * find's d_ino stable and distinct. The one place readdir numbers come from.
 */
fuse_ino_t node_dirent_ino(const struct node *parent, const char *name);

/*
 * Finds or makes the passthrough node for (sb, dev, ino) and counts one
 * lookup. A new one gets the sandbox user's ids uid/gid and no fd (see
 * pt_adopt). NULL on out of memory.
 */
struct node *node_pt(struct sandbox *sb, dev_t dev, ino_t ino, uid_t uid, gid_t gid);

/*
 * The passthrough node (sb, dev, ino) with one lookup counted (drop it with
 * node_forget(n, 1)), or NULL when the table has none.
 */
struct node *node_pt_hold(struct sandbox *sb, dev_t dev, ino_t ino);

/*
 * The inode number of the passthrough node (sb, dev, ino) if the kernel holds
 * it, else 0. Counts no lookup: the number is only good for notifications.
 */
fuse_ino_t node_find_pt(struct sandbox *sb, dev_t dev, ino_t ino);

/* Drops nlookup lookups; frees the node at zero. */
void node_forget(struct node *n, uint64_t nlookup);

#endif
