/*
 * dirtab.h - synthetic files as data (Plan 9's Dirtab and generators).
 *
 * Each kind of synthetic directory is a struct sdir: a table of fixed
 * entries, in listing order, and for names that come and go (sandboxes,
 * contexts, runs, figures) a function that lists them and one that checks
 * one name. Each entry is a struct dirtab: name, mode, cache timeouts and the
 * operations of the file (struct sfile_ops) or what is inside the directory.
 *
 * One generator (synth_find by name, synth_gen by index; synth_gen.c) turns
 * (directory, name or index) into an entry; lookup, readdir, readdirplus and
 * getattr are all written once on top of it. To add a file to a sandbox
 * directory, add a row to its table (tab_sandbox.c) and, if no family fits,
 * a struct sfile_ops (f_*.c). Nothing else changes.
 */
#ifndef SBX_DIRTAB_H
#define SBX_DIRTAB_H

#include "fs.h"

/* Cache timeouts (seconds). */
#define TTL_FIXED 1.0   /* names that live as long as their directory; kill and rmdir invalidate */
#define TTL_LIVE  0.0   /* asked again every time: names that come and go, sizes that grow */

/* Modes. */
#define M_DIR (S_IFDIR | 0755)
#define M_RO  (S_IFREG | 0444)
#define M_RW  (S_IFREG | 0644)      /* writable: a write is a command or new content */

/* commit's answer when the request is kept and answered later (a run's close). */
#define SYNTH_LATER 1

/* What a synthetic file does. A NULL slot means the default named here. */
struct sfile_ops {
	/* Fills a new handle (h->data, h->fd, h->wbuf). Default: nothing. 0 or -errno. */
	int (*open)(struct handle *h, int flags);
	/* Default: the bytes of h->fd if it has one, else of h->data. */
	void (*read)(fuse_req_t req, struct handle *h, size_t size, off_t off);
	/* Default: kept in h->wbuf (at most CODE_MAX bytes) for commit. */
	void (*write)(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off);
	/*
	 * Applies content written to the file n (takes data): at flush (req set)
	 * and release (req NULL) of a writer, and for a rename of a scratch file
	 * onto it. 0, -errno, or SYNTH_LATER: req is answered later.
	 */
	int (*commit)(struct node *n, char *data, size_t len, fuse_req_t req);
	/* Drops what open took (h->priv). */
	void (*release)(struct handle *h);
	/* Size and times; default: size 0, times now. -errno when the file is gone. */
	int (*stat)(struct node *n, struct stat *st);
	/* Truncation outside a write (`: > stdin`): 0 or -errno. Default: accepted, nothing done. */
	int (*truncate)(struct node *n, off_t size);
	/*
	 * The kernel truncates for open(O_TRUNC) before any write, and without
	 * the file handle: set, a truncation to 0 makes every writer open now
	 * commit what it writes after it, or nothing at its last close if it
	 * writes nothing (`: > env` empties env; a rejected `echo BAD > env`
	 * leaves it as it was).
	 */
	bool truncate_commits;
	/* chmod, chown: 0 or -errno. Default: EPERM. */
	int (*chattr)(struct node *n, const struct stat *attr, int to_set);
	/* poll(2) on an open handle. Default: always ready. */
	void (*poll)(fuse_req_t req, struct handle *h, struct fuse_pollhandle *ph);
};

struct sdir;
struct sentry;

/* One entry of a directory table. */
struct dirtab {
	const char *name;          /* NULL in a directory's gen_tab: the name is made at run time */
	mode_t mode;               /* M_DIR, M_RO or M_RW */
	double entry_timeout;      /* how long the kernel may keep the name */
	double attr_timeout;       /* and the attributes */
	const struct sfile_ops *fops;   /* a file's operations */
	const struct sdir *dir;         /* a directory's contents */
	int arg;                   /* a parameter of the family: the language of run.* */
	/* Entries that exist only sometimes (exit, runs/N/stdout...). NULL: always. */
	bool (*present)(fuse_req_t req, struct node *dir, const struct dirtab *t);
	/* Entries that are not synthetic (files/): fills the entry with a lookup counted. */
	int (*make_entry)(struct node *dir, struct fuse_entry_param *e);
};

/* What a directory holds. */
struct sdir {
	const struct dirtab *tab;       /* fixed entries, listed first, in this order */
	size_t ntab;
	const struct dirtab *gen_tab;   /* what every generated entry is; NULL: none */
	/* The generated names now: a NULL-terminated list (ctl_strv_free), NULL on out of memory. */
	char **(*list)(struct node *dir);
	/* Whether name is one of them: fills e->sb, e->run, e->ctx. 0 or -ENOENT. */
	int (*find)(struct node *dir, const char *name, struct sentry *e);
	/* Before a lookup in it: -ENOENT when the directory itself is gone. */
	int (*enter)(struct node *dir);
	/* New files here are scratch files (scratch.c): the directory holds writable control files. */
	bool scratch;
	/* mkdir/rmdir of a name in it; NULL: EPERM. */
	void (*mkdir)(fuse_req_t req, struct node *dir, const char *name);
	void (*rmdir)(fuse_req_t req, struct node *dir, const char *name);
};

#define SDIR_TAB(t) .tab = (t), .ntab = sizeof(t) / sizeof((t)[0])

/* An entry the generator found. */
struct sentry {
	const struct dirtab *t;
	const char *name;
	struct sandbox *sb;        /* the sandbox of the node to make */
	bool own_sb;               /* sb is a reference the entry holds (sentry_done drops it) */
	uint64_t run;
	const char *ctx;           /* the node's context when it starts one (contexts/CTX); else NULL */
};

/* A listing in progress: the generated names and scratch files, fetched once. */
struct gen_pass {
	char **names;
	size_t count;
	char **scratch;
	size_t nscratch;
	bool fetched;
};

enum { GEN_END = -1, GEN_SKIP = 0, GEN_FOUND = 1 };

/* The entry called name in dir: 0, or -ENOENT / -ENOMEM. Drop it with sentry_done. */
int synth_find(fuse_req_t req, struct node *dir, const char *name, struct sentry *e);
/*
 * Entry number index of dir (fixed entries first, then generated ones):
 * GEN_FOUND, GEN_SKIP (no entry there now) or GEN_END. With resolve, a
 * generated entry is checked by name as a lookup would (sb, run filled).
 */
int synth_gen(fuse_req_t req, struct node *dir, struct gen_pass *pass, size_t index, bool resolve,
	      struct sentry *e);
void gen_pass_done(struct gen_pass *pass);
void sentry_done(struct sentry *e);
/* The fixed entry called name in dir's table, present or not; NULL if none. */
const struct dirtab *dirtab_fixed(const struct node *dir, const char *name);
/* The attributes of a synthetic node: 0 or -errno (-ENOENT once its sandbox is gone). */
int synth_stat(struct node *n, struct stat *st);
/* Replies a lookup of n (counted already); forgets it again if the reply fails. */
void synth_reply_entry(fuse_req_t req, struct node *n);

/* The requests written on the generator (synth_gen.c), in synth_node_ops. */
void synth_lookup(fuse_req_t req, struct node *dir, const char *name);
void synth_getattr(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
void synth_readdir(fuse_req_t req, struct node *dir, size_t size, off_t off, struct fuse_file_info *fi,
		   bool plus);

/* Scratch files (f_scratch.c): the row every one of them is, and the directory requests. */
extern const struct dirtab scratch_dirtab;
int scratch_create_file(fuse_req_t req, struct node *dir, const char *name, int flags, struct node **out);
void scratch_unlink_req(fuse_req_t req, struct node *dir, const char *name);
void scratch_rename_req(fuse_req_t req, struct node *dir, const char *name, struct node *newdir,
			const char *newname, unsigned int flags);

/* The tables (tab_*.c). */
extern const struct dirtab root_dirtab;
extern const struct sdir sandbox_sdir;
extern const struct sdir ctx_sdir;
extern const struct sdir templates_sdir, contexts_sdir, runs_sdir, run_sdir, results_sdir;
extern const struct dirtab sandbox_dirtab, ctx_dirtab;
/* Whether the root's table has name: control refuses it for a sandbox (ctl_config). */
bool root_name_reserved(const char *name);

/* File families (f_*.c). */
extern const struct sfile_ops ctl_fops;         /* f_ctl.c: root ctl and sandbox ctl */
extern const struct sfile_ops readme_fops, errors_fops, template_fops;      /* f_text.c */
extern const struct sfile_ops status_fops, info_fops, metrics_fops;         /* f_text.c */
extern const struct sfile_ops env_fops, code_fops, stdin_fops;              /* f_input.c */
extern const struct sfile_ops stream_fops, exit_fops, result_fops;          /* f_output.c */
extern const struct sfile_ops run_file_fops, figure_fops;                   /* f_output.c */
extern const struct sfile_ops wait_fops, watch_fops;                        /* f_block.c */
extern const struct sfile_ops events_fops;                                  /* f_events.c */
extern const struct sfile_ops daemon_metrics_fops;                          /* f_metrics.c: root metrics */

/* Helpers the families share (synth_ops.c). */
/* The default read: the bytes of h->fd if it has one, else of h->data. */
void spooled_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void synth_reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off);
/* Replaces the handle's text (takes text; NULL = empty). Call with h->lock held or before sharing. */
void handle_set_data(struct handle *h, char *text);
/* Where a file is, for the errors log: "/NAME/env", "/NAME/contexts/CTX/run.py". */
void synth_where(const struct node *n, const char *suffix, char *out, size_t size);

#endif
