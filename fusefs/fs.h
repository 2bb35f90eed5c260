/*
 * fs.h - what the files of fusefs/ share: the mount's globals, open-file
 * handles, and the halves of the request handlers (synthetic files in the
 * synth_*.c, tab_*.c and f_*.c files, files/ passthrough in passthrough.c).
 */
#ifndef SBX_FS_H
#define SBX_FS_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../control/control.h"
#include "node.h"
#include "pt.h"

/* An open synthetic file. */
struct handle {
	struct node *node;
	pthread_mutex_t lock;  /* guards the fields below; a leaf: nothing is taken while held */
	char *data;          /* snapshot for reads, or the reply of the last ctl write */
	size_t len;
	char *wbuf;          /* bytes written, for run/env/stdin files */
	size_t wlen;
	bool dirty;          /* written since the last run/commit */
	int fd;              /* stdout/stderr/exit/run files: the spooled file */
	off_t reply_base;    /* ctl: file offset where the reply of the last write starts */
	void *priv;          /* what the file's family keeps (a scratch file) */
	bool nonblock;       /* the read being served is O_NONBLOCK */
	bool writer;         /* opened for writing; set before it is tracked, never changed */
	/* truncated to 0 since its last commit (`: > env`): its commit is of nothing if not written */
	atomic_bool truncated;
	struct handle *prev, *next;   /* every open handle (fs.handles), guarded by fs.handles_lock */
};

#define CODE_MAX (16u << 20)   /* a run file larger than this fails with EFBIG */

/* What notify.c keeps: the queue of files to create through the mount. */
struct notify_state {
	pthread_mutex_t lock;      /* guards head, tail, gone, gone_done, stop; a leaf */
	pthread_cond_t cond;       /* signalled when a note is queued, root_busy falls to 0, or stop is set */
	pthread_cond_t done;       /* broadcast when gone_done grows or stop is set */
	struct note *head, *tail;
	struct note *gone, *gone_tail; /* root invalidations, held while root_busy is not 0 */
	uint64_t gone_queued, gone_done; /* gone notes queued and taken so far (their order) */
	_Atomic int root_busy;     /* requests on the root directory being handled (ops.c) */
	bool stop;
	bool running;
	pthread_t thread;
	_Atomic pid_t tid;         /* the notifier thread's id, read by every lookup of exit */
};

/* What scratch.c keeps: every scratch file of the mount. */
struct scratch_state {
	pthread_mutex_t lock;      /* guards the list, every scratch's fields and bytes, total;
	                            * taken before a sandbox's sb->lock (sandbox_alive), nothing after */
	struct scratch *list;
	size_t total;              /* bytes held by all scratch files, open unlinked ones included */
	uint64_t ttl_ms;           /* a scratch not open for this long is dropped */
};

/* What watch.c keeps: the watched sandboxes (their `watch` streams) and the reaper. */
struct watch_state {
	pthread_mutex_t lock;      /* guards the fields below and every stream and reader; a leaf:
	                            * backend calls and kernel notifications happen outside it */
	struct wsb *list;
	pthread_t reaper;          /* ends the streams of sandboxes that died, once a second */
	bool running, stopped;
	int stop_pipe[2];
};

/*
 * The FUSE layer's state: one instance (ops.c), handed to libfuse as the
 * session's userdata, so request handlers can reach it by
 * fuse_req_userdata(req) and every other thread by its owner's pointer.
 *
 * Lock order inside fusefs (docs/design.md): control/ never calls into
 * fusefs with one of its locks held, and fusefs holds none of its own while
 * calling control/, with one exception: scratch.lock is held across
 * sandbox_alive(), so it comes before sb->lock. Every fusefs lock below is a
 * leaf among fusefs's: nodes.lock, handles_lock, a handle's lock,
 * pending_lock, notify.lock, scratch.lock, watch.lock; files/'s are in pt.h
 * (pt.lock a leaf; pt.wait_lock before a lock waiter's own).
 */
struct fs {
	struct sbx_ctl *ctl;
	struct fuse_session *se;
	char *mountpoint;
	uid_t uid;          /* owner shown for synthetic files: the mounting user */
	gid_t gid;

	struct node_table nodes;           /* node.c */
	pthread_mutex_t handles_lock;      /* guards the handles list (not the handles); a leaf */
	struct handle *handles;            /* every open synthetic handle, freed at shutdown */
	pthread_mutex_t pending_lock;      /* pending.c: who answers a kept request; a leaf */
	struct notify_state notify;        /* notify.c */
	struct pt_state pt;                /* pt.h: descriptors of files/ nodes, waiting locks */
	struct scratch_state scratch;      /* scratch.c */
	struct watch_state watch;          /* watch.c */
};

extern struct fs fs;

/* The state of the mount a request came through. */
static inline struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* synth_ops.c: at shutdown, frees the handles whose release never came (a file open at unmount). */
void synth_free_handles(void);

/* passthrough.c: files/ */
int pt_files_root(struct node *sbx_node, struct fuse_entry_param *e);
void pt_lookup(fuse_req_t req, struct node *parent, const char *name);
void pt_getattr(fuse_req_t req, struct node *n);
void pt_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set, struct fuse_file_info *fi);
void pt_readlink(fuse_req_t req, struct node *n);
void pt_mknod(fuse_req_t req, struct node *parent, const char *name, mode_t mode, dev_t rdev);
void pt_mkdir(fuse_req_t req, struct node *parent, const char *name, mode_t mode);
void pt_symlink(fuse_req_t req, const char *link, struct node *parent, const char *name);
void pt_link(fuse_req_t req, struct node *n, struct node *newparent, const char *newname);
void pt_unlink(fuse_req_t req, struct node *parent, const char *name);
void pt_rmdir(fuse_req_t req, struct node *parent, const char *name);
void pt_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
	       const char *newname, unsigned int flags);
void pt_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
void pt_create(fuse_req_t req, struct node *parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void pt_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi);
void pt_write_buf(fuse_req_t req, struct fuse_bufvec *in, off_t off, struct fuse_file_info *fi);
void pt_flush(fuse_req_t req, struct fuse_file_info *fi);
void pt_release(fuse_req_t req, struct fuse_file_info *fi);
void pt_fsync(fuse_req_t req, int datasync, struct fuse_file_info *fi);
void pt_opendir(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
void pt_readdir(fuse_req_t req, struct node *n, size_t size, off_t off, struct fuse_file_info *fi,
		bool plus);
void pt_releasedir(fuse_req_t req, struct fuse_file_info *fi);
void pt_statfs(fuse_req_t req, struct node *n);
void pt_fallocate(fuse_req_t req, int mode, off_t offset, off_t length, struct fuse_file_info *fi);
void pt_lseek(fuse_req_t req, off_t off, int whence, struct fuse_file_info *fi);
void pt_copy_file_range(fuse_req_t req, struct fuse_file_info *fi_in, off_t off_in,
			struct fuse_file_info *fi_out, off_t off_out, size_t len, int flags);
void pt_setxattr(fuse_req_t req, struct node *n, const char *name, const char *value, size_t size,
		 int flags);
void pt_getxattr(fuse_req_t req, struct node *n, const char *name, size_t size);
void pt_listxattr(fuse_req_t req, struct node *n, size_t size);
void pt_removexattr(fuse_req_t req, struct node *n, const char *name);
void pt_locks_init(void);
void pt_getlk(fuse_req_t req, struct fuse_file_info *fi, struct flock *lock);
void pt_setlk(fuse_req_t req, struct fuse_file_info *fi, struct flock *lock, int sleep);
void pt_flock(fuse_req_t req, struct fuse_file_info *fi, int op);

/* watch.c: changes made inside sandboxes (cache invalidation, the `watch` file) */
/* Starts watching a sandbox (cheap when it already is). */
void watch_sandbox(struct sandbox *sb);
/* Whether changes inside are watched, so the kernel may cache files/. */
bool watch_caching(struct sandbox *sb);
/* Applies every change queued so far (not from a request handler: it invalidates). */
void watch_sync(struct sandbox *sb);
/* A read of `watch`: answered now, or kept until a line comes. */
void watch_read(fuse_req_t req, struct sandbox *sb, size_t size, off_t off);
/* The length of the `watch` stream so far. */
off_t watch_size(struct sandbox *sb);
/* Once at start, before any thread. */
void watch_init(void);
void watch_stop(void);

/* f_events.c: the root `events` file's waiting readers */
/* Answers the readers a new line reached (from the notifier thread). */
void events_wake(void);
/* At unmount: every waiting reader gets what is there (end of file). */
void events_stop(void);

/* guard.c: a child that aborts the mount's connection once the daemon's main thread is gone */
void guard_start(const char *mnt);

/* notify.c: make daemon-side changes visible to inotify */
int notify_start(void);
void notify_stop(void);
void notify_announce(const char *name, const char *ctx, void *arg);
void notify_gone(const char *name, void *arg);
/* A new line in `events` (control's hook): its readers are answered and inotify told, off this thread. */
void notify_events(void *arg);
/* Set around an rmdir of NAME: its invalidation then goes through the notifier thread. */
void notify_defer_gone(bool on);
/*
 * Around every request on the root directory (ops.c): the kernel holds the
 * root's lock until it is answered, so the notifier keeps the root's
 * invalidations until no such request is in hand.
 */
void notify_root_enter(void);
void notify_root_leave(void);
/* Whether the request comes from the notifier thread itself. */
bool notify_is_self(fuse_req_t req);

/* readme.c */
extern const char root_readme[];

#endif
