/*
 * json.c - json-c helpers and the pure parsers of engine answers: stats -> a metrics sample,
 * inspect -> status, the exec wrapper's exit status -> struct sbx_exit. No I/O here, so
 * tests/unit/docker_json.c checks them on canned answers.
 */
#include "dk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct json_object *dk_json_path(struct json_object *obj, const char *path)
{
	char key[128];

	while (obj && *path) {
		size_t n = strcspn(path, ".");

		if (n >= sizeof(key) || !json_object_is_type(obj, json_type_object))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(obj, key, &obj))
			return NULL;
		path += n;
		if (*path == '.')
			path++;
	}
	return obj;
}

const char *dk_json_str(struct json_object *obj, const char *path)
{
	struct json_object *v = dk_json_path(obj, path);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int64_t dk_json_int(struct json_object *obj, const char *path, int64_t dflt)
{
	struct json_object *v = dk_json_path(obj, path);

	if (!v || !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return dflt;
	return json_object_get_int64(v);
}

bool dk_json_bool(struct json_object *obj, const char *path)
{
	struct json_object *v = dk_json_path(obj, path);

	return v && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

struct json_object *dk_json_parse(const struct dk_resp *resp, const char *what, struct sbx_err *err)
{
	struct json_object *obj = resp->body ? json_tokener_parse(resp->body) : NULL;

	if (!obj)
		sbx_err_set(err, EIO, "docker: unreadable %s answer", what);
	return obj;
}

static uint64_t dk_u64(struct json_object *obj, const char *path)
{
	int64_t v = dk_json_int(obj, path, 0);

	return v > 0 ? (uint64_t)v : 0;
}

/* Sums io_service_bytes_recursive entries by op ("Read"/"read", "Write"/"write"). */
static void dk_blkio(struct json_object *stats, uint64_t *rd, uint64_t *wr)
{
	struct json_object *arr = dk_json_path(stats, "blkio_stats.io_service_bytes_recursive");
	size_t n;

	*rd = *wr = 0;
	if (!arr || !json_object_is_type(arr, json_type_array))
		return;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		const char *op = dk_json_str(e, "op");
		uint64_t v = dk_u64(e, "value");

		if (!op)
			continue;
		if (strcasecmp(op, "read") == 0)
			*rd += v;
		else if (strcasecmp(op, "write") == 0)
			*wr += v;
	}
}

int dk_stats_parse(struct json_object *stats, struct dk_sample *s)
{
	struct json_object *nets;
	uint64_t usage, inactive;

	memset(s, 0, sizeof(*s));
	if (!stats || !json_object_is_type(stats, json_type_object))
		return -EINVAL;
	s->cpu_ns = dk_u64(stats, "cpu_stats.cpu_usage.total_usage");

	/* What `docker stats` shows: usage less the inactive file cache (v1 and v2 names). */
	usage = dk_u64(stats, "memory_stats.usage");
	inactive = dk_u64(stats, "memory_stats.stats.total_inactive_file");
	if (!inactive)
		inactive = dk_u64(stats, "memory_stats.stats.inactive_file");
	s->mem_used = usage > inactive ? usage - inactive : usage;
	s->mem_limit = dk_u64(stats, "memory_stats.limit");
	s->pids = (uint32_t)dk_u64(stats, "pids_stats.current");
	dk_blkio(stats, &s->blk_read, &s->blk_write);

	nets = dk_json_path(stats, "networks");
	if (nets && json_object_is_type(nets, json_type_object)) {
		json_object_object_foreach(nets, key, val) {
			(void)key;
			s->net_rx += dk_u64(val, "rx_bytes");
			s->net_tx += dk_u64(val, "tx_bytes");
		}
	}
	return 0;
}

enum sbx_status dk_state_status(struct json_object *inspect)
{
	const char *st = dk_json_str(inspect, "State.Status");

	if (!st)
		return SBX_STATUS_ERROR;
	if (strcmp(st, "running") == 0)
		return dk_json_bool(inspect, "State.Paused") ? SBX_STATUS_PAUSED : SBX_STATUS_RUNNING;
	if (strcmp(st, "paused") == 0)
		return SBX_STATUS_PAUSED;
	if (strcmp(st, "created") == 0 || strcmp(st, "restarting") == 0)
		return SBX_STATUS_CREATING;
	if (strcmp(st, "exited") == 0 || strcmp(st, "removing") == 0)
		return SBX_STATUS_STOPPED;
	return SBX_STATUS_ERROR;   /* "dead" and anything new */
}

void dk_exit_from_code(int64_t code, struct sbx_exit *out)
{
	/* The wrapper's shell reports a child killed by signal N as 128+N (see exec.c). */
	if (code > 128 && code <= 128 + 64) {
		out->signaled = true;
		out->code = (int)(code - 128);
	} else {
		out->signaled = false;
		out->code = code < 0 ? 255 : (int)code;
	}
}

int dk_userns_base(struct json_object *info, uint32_t *uid, uint32_t *gid)
{
	struct json_object *opts = dk_json_path(info, "SecurityOptions");
	const char *root = dk_json_str(info, "DockerRootDir"), *base;
	bool userns = false;
	unsigned long u, g;
	char tail;

	*uid = *gid = 0;
	for (size_t i = 0; opts && json_object_is_type(opts, json_type_array) &&
			   i < json_object_array_length(opts); i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(opts, i));

		userns = userns || (o && strcmp(o, "name=userns") == 0);
	}
	if (!userns)
		return 0;
	/* A remapped engine keeps its data under DATA_ROOT/UID.GID: its root's ids on the host. */
	base = root ? strrchr(root, '/') : NULL;
	if (!base || sscanf(base + 1, "%lu.%lu%c", &u, &g, &tail) != 2 || !u || !g ||
	    u > UINT32_MAX - 65536 || g > UINT32_MAX - 65536)
		return -EPROTO;
	*uid = (uint32_t)u;
	*gid = (uint32_t)g;
	return 1;
}
