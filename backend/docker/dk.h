/*
 * dk.h - what the files of the docker backend share; nothing outside backend/docker/ includes it.
 *
 *   http.c       the engine connection: addresses, API version, requests, hijacked streams, errors
 *   json.c       small json-c helpers and the pure parsers (stats -> metrics, inspect -> status)
 *   image.c      templates -> images (the `default` rootfs import, `image:NAME`)
 *   container.c  container create/start/inspect/pause/kill/remove/update/stats
 *   exec.c       spawn/wait_proc/kill_proc over the exec API
 *   docker.c     the ops table
 */
#ifndef SBX_DK_H
#define SBX_DK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "../backend.h"

/* The newest Engine API this code knows; the engine's own version is used when lower. */
#define DK_API_MAJOR 1
#define DK_API_MINOR_MAX 43
/* The oldest it accepts: one-shot stats and the 101 upgrade on exec start are older than this. */
#define DK_API_MINOR_MIN 25

/* Timeouts (ms). No call may hang on a stuck engine; only a hijacked exec stream is unbounded. */
#define DK_CONNECT_TIMEOUT_MS 3000L
#define DK_TIMEOUT_MS 30000L
#define DK_TIMEOUT_LONG_MS 120000L
#define DK_TIMEOUT_BUILD_MS 600000L   /* building the default image */

/* --- http.c --------------------------------------------------------------- */

struct dk_engine {
	char *host;        /* "unix:///run/docker.sock" or "tcp://127.0.0.1:2375", as given */
	char *sock_path;   /* unix socket path; NULL for tcp */
	char *base_url;    /* "http://docker" (unix) or "http://HOST:PORT" */
	char prefix[16];   /* "/v1.41": the negotiated API version */
	int api_minor;
	bool local;        /* same host: a unix socket (root_fd, host-side kill) */
};

struct dk_resp {
	long status;       /* HTTP status; 0 when no answer came */
	char *body;        /* NUL-terminated; owned, free with dk_resp_free */
	size_t len;
};

/* Parses "unix:///path" or "tcp://host:port" (NULL: $DOCKER_HOST, else the default socket). */
int dk_engine_parse(struct dk_engine *eng, const char *host, struct sbx_err *err);
/* GET /version and picks the API version. */
int dk_engine_negotiate(struct dk_engine *eng, struct sbx_err *err);
void dk_engine_free(struct dk_engine *eng);

/*
 * One request to PREFIX + path (path starts with '/'). body: JSON text or NULL. Returns 0 on a
 * 2xx or 304 answer; else a negative errno with the engine's message in err. resp may be NULL;
 * when given it holds the answer in both cases and the caller frees it.
 */
int dk_request(const struct dk_engine *eng, const char *method, const char *path,
	       const char *body, long timeout_ms, struct dk_resp *resp, struct sbx_err *err);
/* POST with a body read from upload_fd until EOF (image import). */
int dk_request_upload(const struct dk_engine *eng, const char *path, const char *content_type,
		      int upload_fd, long timeout_ms, struct dk_resp *resp, struct sbx_err *err);
void dk_resp_free(struct dk_resp *resp);

/* A hijacked connection (exec start): the raw multiplexed stream after the HTTP answer. */
struct dk_stream {
	void *curl;        /* CURL *, connect-only */
	int fd;            /* its socket, for poll() and shutdown() */
	char *pending;     /* stream bytes that came in with the HTTP answer */
	size_t pending_len;
};

int dk_hijack(const struct dk_engine *eng, const char *path, const char *body,
	      struct dk_stream *st, struct sbx_err *err);
/* Like recv/send on the stream: bytes, 0 at EOF (recv), -EAGAIN, or another negative errno. */
long dk_stream_recv(struct dk_stream *st, void *buf, size_t len);
long dk_stream_send(struct dk_stream *st, const void *buf, size_t len);
void dk_stream_close(struct dk_stream *st);

/* The errno for an HTTP status of the engine (pure; unit-tested). */
int dk_http_errno(long status, const char *message);
/* Percent-encodes s for a query string; caller frees. */
char *dk_urlencode(const char *s);

/* --- json.c --------------------------------------------------------------- */

/* The value at a dotted path ("State.Status"), or NULL. */
struct json_object *dk_json_path(struct json_object *obj, const char *path);
const char *dk_json_str(struct json_object *obj, const char *path);
int64_t dk_json_int(struct json_object *obj, const char *path, int64_t dflt);
bool dk_json_bool(struct json_object *obj, const char *path);
/* Parses resp->body; on bad JSON fills err (EIO) and returns NULL. */
struct json_object *dk_json_parse(const struct dk_resp *resp, const char *what, struct sbx_err *err);

/* One reading of GET /containers/ID/stats. */
struct dk_sample {
	uint64_t cpu_ns;           /* cpu_stats.cpu_usage.total_usage */
	uint64_t mem_used;         /* usage less inactive file pages, as `docker stats` shows */
	uint64_t mem_limit;
	uint32_t pids;
	uint64_t blk_read, blk_write;
	uint64_t net_rx, net_tx;
};

/* Fills s from a stats answer (cgroup v1 or v2 shapes). Pure; unit-tested. */
int dk_stats_parse(struct json_object *stats, struct dk_sample *s);
/* State of an inspect answer -> status word. Pure; unit-tested. */
enum sbx_status dk_state_status(struct json_object *inspect);
/*
 * The host ids of root inside on an engine with userns-remap (GET /info): 1 with *uid and *gid set,
 * 0 without remapping, -EPROTO when remapped but the ids cannot be read. Pure; unit-tested.
 */
int dk_userns_base(struct json_object *info, uint32_t *uid, uint32_t *gid);
/* Exit status of the exec wrapper -> struct sbx_exit (128+N reads as signal N). */
void dk_exit_from_code(int64_t code, struct sbx_exit *out);

/* --- the backend and its instances ---------------------------------------- */

struct sbx_backend {
	struct dk_engine eng;
	char *state_root;
	char *rootfs_script;       /* sbxfs-docker-rootfs */

	pthread_mutex_t img_lock;  /* held while the default image is looked up or built */
	bool default_ready;
	pthread_t builder;         /* builds the default image in the background after init */
	bool builder_running;

	/* Whether the engine limits a container's writable layer (HostConfig.StorageOpt size:
	 * overlay2 on xfs with pquota): 0 not known yet, 1 yes, -1 it refused once. */
	_Atomic int storage_quota;
	/* userns-remap: host uid/gid of root inside (the sandbox user is these + 1000); 0: none. */
	uint32_t remap_uid, remap_gid;

	struct sbx_template_info tmpl_default;
	const struct sbx_template_info *tmpl_list[2];   /* default alone: engine unreachable */
	pthread_mutex_t tmpl_lock;
	struct dk_tmpl_gen *tmpl_gen;                    /* newest first; older ones kept */
	uint64_t tmpl_at_ns;
};

/* One answer of templates(): kept until fini, since callers may hold it. */
struct dk_tmpl_gen {
	struct dk_tmpl_gen *older;
	size_t n;                                   /* labelled images (default not counted) */
	struct sbx_template_info *infos;
	const struct sbx_template_info **list;      /* default, infos..., NULL */
};

struct sbx_instance {
	struct sbx_backend *be;
	char *id;
	char *name;
	char *cname;               /* container name: "sbxfs-" + id */
	struct sbx_limits limits;

	pthread_mutex_t lock;      /* the fields below */
	enum sbx_status cached;
	uint64_t cached_at_ns;     /* 0: nothing cached */
	bool have_prev;            /* previous stats reading, for cpu_percent */
	uint64_t prev_cpu_ns, prev_at_ns;
	double last_percent;
	char *merged_dir;          /* GraphDriver MergedDir, once known */
	uint64_t exec_seq;
};

uint64_t dk_now_ns(void);

/* --- image.c -------------------------------------------------------------- */

#define DK_DEFAULT_REPO "sbxfs/default"
#define DK_DEFAULT_TAG "1"      /* bump when the rootfs script or image config changes */

/* The image reference for a template name; caller frees *ref. */
int dk_image_for_template(struct sbx_backend *be, const char *template_name, char **ref,
			  struct sbx_err *err);
/* templates(): default plus local images labelled sbxfs.template=NAME. */
#define DK_TMPL_REFRESH_NS (5ULL * 1000000000)
const struct sbx_template_info *const *dk_image_templates(struct sbx_backend *be);
void dk_image_templates_free(struct sbx_backend *be);
/* Starts the background build of the default image (init); joins it (fini). */
void dk_image_prepare_async(struct sbx_backend *be);
void dk_image_join(struct sbx_backend *be);
/* Where sbxfs-docker-rootfs is; caller frees. */
char *dk_image_find_script(const char *helper_dir);

/* --- container.c ---------------------------------------------------------- */

int dk_container_create(struct sbx_instance *inst, const char *image, const struct sbx_spec *spec,
			struct sbx_err *err);
int dk_container_start(struct sbx_instance *inst, struct sbx_err *err);
int dk_container_remove(struct sbx_instance *inst, struct sbx_err *err);
/* GET /containers/NAME/json; *out owned by caller (json_object_put). -ENOENT when gone. */
int dk_container_inspect(struct sbx_instance *inst, bool size, struct json_object **out,
			 struct sbx_err *err);
/* POST /containers/NAME/<action> (pause, unpause, restart?t=0, ...). */
int dk_container_action(struct sbx_instance *inst, const char *action, struct sbx_err *err);
int dk_container_update(struct sbx_instance *inst, const struct sbx_limits *l, struct sbx_err *err);
int dk_container_stats(struct sbx_instance *inst, struct dk_sample *s, struct sbx_err *err);
/* The body of POST /containers/create (pure; unit-tested). Caller puts the object. */
struct json_object *dk_container_config(const char *image, const struct sbx_spec *spec,
					const char *state_root);
/* Limits as HostConfig fields; unlimited_mem: 0 on create, the engine's memory on update. */
struct json_object *dk_limits_json(const struct sbx_limits *l, uint64_t unlimited_mem);

/* --- exec.c --------------------------------------------------------------- */

int dk_exec_spawn(struct sbx_instance *inst, const struct sbx_exec *ex, struct sbx_proc **out,
		  struct sbx_err *err);
int dk_exec_wait(struct sbx_proc *proc, struct sbx_exit *out, struct sbx_err *err);
int dk_exec_kill(struct sbx_proc *proc, int sig);
void dk_exec_free(struct sbx_proc *proc);

/* Demultiplexer of the exec stream: 8-byte frame headers, then payload. Pure; unit-tested. */
struct dk_demux {
	unsigned char hdr[8];
	size_t hdr_len;       /* header bytes gathered so far */
	uint32_t left;        /* payload bytes left in the current frame */
	int stream;           /* of the current frame: 1 stdout, 2 stderr */
};

/* Feeds len bytes; calls emit(ctx, stream, data, n) for each payload piece. Returns 0, or what
 * emit returned when negative. */
int dk_demux_feed(struct dk_demux *d, const char *buf, size_t len,
		  int (*emit)(void *ctx, int stream, const char *data, size_t n), void *ctx);

/* --- dk_files.c ----------------------------------------------------------- */

/* The sandbox user's host uid/gid (backend op user_ids). */
int dk_user_ids(struct sbx_instance *inst, uid_t *uid, gid_t *gid, struct sbx_err *err);

/* --- dk_watch.c: the watch_* ops (inode marks below /home/user) --------------- */

int dk_watch_start(struct sbx_instance *inst, sbx_change_fn fn, void *arg, bool *complete,
		   struct sbx_err *err);
void dk_watch_sync(struct sbx_backend *be);
/* watch_stop; also called when the instance is freed. */
void dk_watch_end(struct sbx_instance *inst);
/* After a restart mounted the container's files again: marks them anew. */
void dk_watch_restart(struct sbx_instance *inst);
void dk_watch_fini(void);

#endif
