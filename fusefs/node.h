/*
 * node.h - the inode table of the mount.
 *
 * Every inode the kernel knows is a struct node; its FUSE inode number is the
 * node's address (as libfuse's passthrough_ll does). Nodes are found again by
 * key so one path keeps one inode number while the kernel holds it: inotify
 * watches live on inodes, and a changing number would silently drop them.
 */
#ifndef SBX_NODE_H
#define SBX_NODE_H

#include <fuse_lowlevel.h>
#include <stdint.h>
#include <sys/types.h>

struct sandbox;

enum node_kind {
	N_ROOT,
	N_ROOT_README,
	N_ROOT_CTL,
	N_ROOT_ERRORS,
	N_TEMPLATES,
	N_TEMPLATE,        /* templates/NAME */
	N_SBX,             /* NAME/ */
	N_SBX_CTL,
	N_SBX_STATUS,
	N_SBX_INFO,
	N_SBX_METRICS,
	N_SBX_ENV,
	N_SBX_RUN,         /* run.py, run.js, run.sh (lang) */
	N_SBX_STDOUT,
	N_SBX_STDERR,
	N_SBX_EXIT,
	N_SBX_WAIT,
	N_SBX_STDIN,
	N_SBX_WATCH,       /* watch: changes inside under /home/user (watch.c) */
	N_RUNS,            /* runs/ */
	N_RUN,             /* runs/N/ */
	N_RUN_FILE,        /* runs/N/{code,stdout,stderr,exit,info,result,figure-K.png} */
	N_CONTEXTS,        /* contexts/ */
	N_CTX,             /* contexts/CTX/: holds the run.*, stdout, ... kinds above, with ctx set */
	N_CTX_RESULT,      /* contexts/CTX/result */
	N_RESULTS,         /* contexts/CTX/results/ */
	N_RESULT_FILE,     /* contexts/CTX/results/N-figure-K.png (run N) */
	N_PT,              /* files/ and everything below: passthrough */
};

struct node {
	struct node *hnext;       /* hash chain */
	enum node_kind kind;
	uint64_t nlookup;         /* guarded by the table lock */
	/* key */
	uint64_t parent;          /* synthetic: parent inode; passthrough: 0 */
	char *name;               /* synthetic: entry name; passthrough: NULL */
	dev_t dev;                /* passthrough */
	ino_t ino;                /* passthrough */

	struct sandbox *sb;       /* a reference, for every kind below a sandbox */
	int lang;                 /* N_SBX_RUN */
	uint64_t run;             /* N_RUN, N_RUN_FILE, N_RESULT_FILE */
	char *ctx;                /* the context a node is in (contexts/CTX and below), else NULL;
	                           * node_synth takes it from the parent, or the name for N_CTX */
	int fd;                   /* N_PT: O_PATH fd, owned */
};

static inline fuse_ino_t node_ino(const struct node *n)
{
	return (fuse_ino_t)(uintptr_t)n;
}

void node_table_init(void);
struct node *node_root(void);
/* The node of an inode number the kernel gave us (root included). */
struct node *node_get(fuse_ino_t ino);

/*
 * Finds or makes the synthetic node (parent, name) and counts one lookup.
 * sb is referenced when a new node is made. Returns NULL on out of memory.
 */
struct node *node_synth(struct node *parent, const char *name, enum node_kind kind,
			struct sandbox *sb, int lang, uint64_t run);

/*
 * Finds or makes the passthrough node for (sb, dev, ino) and counts one
 * lookup. Takes ownership of fd (closes it when a node already exists).
 */
struct node *node_pt(struct sandbox *sb, int fd, dev_t dev, ino_t ino);

/*
 * The inode number of the passthrough node (sb, dev, ino) if the kernel holds
 * it, else 0. Counts no lookup: the number is only good for notifications.
 */
fuse_ino_t node_find_pt(struct sandbox *sb, dev_t dev, ino_t ino);

/* Drops nlookup lookups; frees the node at zero. */
void node_forget(struct node *n, uint64_t nlookup);

#endif
