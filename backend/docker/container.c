/*
 * container.c - one sandbox is one container, named sbxfs-ID and labelled sbxfs=1, sbxfs.id,
 * sbxfs.name, sbxfs.template, sbxfs.state_root, with the isolation of a local sandbox: no
 * network, every capability dropped, no-new-privileges, the engine's default seccomp profile,
 * memory (no swap), CPU and pids limits, tini (Init) as PID 1 over a `sleep infinity` that keeps
 * the container up between runs. Those two run as root (with no capability); every exec runs
 * as 1000:1000 (exec.c).
 */
#include "dk.h"
#include "../log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct json_object *dk_strs(const char *const *v, size_t n)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

struct json_object *dk_limits_json(const struct sbx_limits *l, uint64_t unlimited_mem)
{
	struct json_object *o = json_object_new_object();
	uint64_t mem = l->mem_bytes ? l->mem_bytes : unlimited_mem;

	if (!o)
		return NULL;
	/*
	 * 0 = no limit. Memory and swap go together: without swap their sum is the memory. An
	 * update cannot lift a memory limit (0 means "unchanged" there, and cgroup v1 refuses a
	 * memory limit above the swap one), so the caller passes the engine's whole memory as
	 * unlimited_mem for both; on create 0 is fine.
	 */
	json_object_object_add(o, "Memory", json_object_new_int64((int64_t)mem));
	json_object_object_add(o, "MemorySwap", json_object_new_int64(mem ? (int64_t)mem : -1));
	if (l->cpu_millis)
		json_object_object_add(o, "NanoCpus",
				       json_object_new_int64((int64_t)l->cpu_millis * 1000000));
	else if (unlimited_mem)
		json_object_object_add(o, "CpuQuota", json_object_new_int64(-1));   /* lifts it */
	json_object_object_add(o, "PidsLimit", json_object_new_int64(l->pids ? (int64_t)l->pids : -1));
	return o;
}

struct json_object *dk_container_config(const char *image, const struct sbx_spec *spec,
					const char *state_root)
{
	static const char *const cmd[] = {"sleep", "infinity"};
	static const char *const capdrop[] = {"ALL"};
	static const char *const secopt[] = {"no-new-privileges"};
	struct json_object *c = json_object_new_object();
	struct json_object *labels, *hc;

	if (!c)
		return NULL;
	labels = json_object_new_object();
	json_object_object_add(labels, "sbxfs", json_object_new_string("1"));
	json_object_object_add(labels, "sbxfs.id", json_object_new_string(spec->id));
	json_object_object_add(labels, "sbxfs.name", json_object_new_string(spec->name));
	json_object_object_add(labels, "sbxfs.template",
			       json_object_new_string(spec->template_name ? spec->template_name : "default"));
	json_object_object_add(labels, "sbxfs.state_root", json_object_new_string(state_root ? state_root : ""));

	json_object_object_add(c, "Image", json_object_new_string(image));
	/* The image's own entrypoint is not wanted: PID 1 only has to stay alive. */
	json_object_object_add(c, "Entrypoint", dk_strs(cmd, 2));
	json_object_object_add(c, "Cmd", NULL);
	/* PID 1 and the keeper run as root with no capability at all, so the code (user 1000,
	 * every exec) can neither stop nor kill them: `kill -KILL -1` leaves the sandbox up. */
	json_object_object_add(c, "User", json_object_new_string("0:0"));
	json_object_object_add(c, "WorkingDir", json_object_new_string("/home/user"));
	json_object_object_add(c, "Hostname", json_object_new_string("sandbox"));
	json_object_object_add(c, "AttachStdin", json_object_new_boolean(0));
	json_object_object_add(c, "AttachStdout", json_object_new_boolean(0));
	json_object_object_add(c, "AttachStderr", json_object_new_boolean(0));
	json_object_object_add(c, "Tty", json_object_new_boolean(0));
	json_object_object_add(c, "StopSignal", json_object_new_string("SIGKILL"));
	json_object_object_add(c, "Labels", labels);

	hc = dk_limits_json(&spec->limits, 0);
	json_object_object_add(hc, "NetworkMode", json_object_new_string("none"));
	json_object_object_add(hc, "CapDrop", dk_strs(capdrop, 1));
	json_object_object_add(hc, "SecurityOpt", dk_strs(secopt, 1));
	json_object_object_add(hc, "Init", json_object_new_boolean(1));
	json_object_object_add(hc, "Privileged", json_object_new_boolean(0));
	json_object_object_add(hc, "IpcMode", json_object_new_string("private"));
	json_object_object_add(hc, "AutoRemove", json_object_new_boolean(0));
	json_object_object_add(c, "HostConfig", hc);
	return c;
}

static int dk_path(char **out, const struct sbx_instance *inst, const char *suffix)
{
	if (asprintf(out, "/containers/%s%s", inst->cname, suffix) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* One call on /containers/NAME + suffix. */
static int dk_call(struct sbx_instance *inst, const char *method, const char *suffix,
		   const char *body, long timeout_ms, struct dk_resp *resp, struct sbx_err *err)
{
	char *path;
	int r;

	if (dk_path(&path, inst, suffix) < 0)
		return sbx_err_set(err, ENOMEM, "out of memory");
	r = dk_request(&inst->be->eng, method, path, body, timeout_ms, resp, err);
	free(path);
	return r;
}

static int dk_create_call(struct sbx_instance *inst, const char *image, const struct sbx_spec *spec,
			  bool quota, struct sbx_err *err)
{
	struct json_object *cfg = dk_container_config(image, spec, inst->be->state_root);
	char *path = NULL, size[32];
	int r;

	if (!cfg || asprintf(&path, "/containers/create?name=%s", inst->cname) < 0) {
		json_object_put(cfg);
		return sbx_err_set(err, ENOMEM, "out of memory");
	}
	if (quota) {
		struct json_object *so = json_object_new_object();

		snprintf(size, sizeof(size), "%llu", (unsigned long long)spec->limits.disk_bytes);
		json_object_object_add(so, "size", json_object_new_string(size));
		json_object_object_add(dk_json_path(cfg, "HostConfig"), "StorageOpt", so);
	}
	r = dk_request(&inst->be->eng, "POST", path,
		       json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN), DK_TIMEOUT_LONG_MS,
		       NULL, err);
	free(path);
	json_object_put(cfg);
	return r;
}

int dk_container_create(struct sbx_instance *inst, const char *image, const struct sbx_spec *spec,
			struct sbx_err *err)
{
	struct sbx_backend *be = inst->be;
	bool quota = spec->limits.disk_bytes && atomic_load(&be->storage_quota) >= 0;
	int r = dk_create_call(inst, image, spec, quota, err);

	/* disk= is a size quota on the container's writable layer where the engine's storage
	 * can keep one; elsewhere the engine says so once, and disk= is not enforced. */
	if (r < 0 && quota && strstr(err->msg, "storage-opt")) {
		if (atomic_exchange(&be->storage_quota, -1) != -1)
			sbx_log(SBX_LOG_WARNING, NULL, 0, "docker engine at '%s' cannot limit a "
				"container's disk (%s): disk= is not enforced", be->eng.host, err->msg);
		sbx_err_clear(err);
		r = dk_create_call(inst, image, spec, false, err);
	} else if (r == 0 && quota) {
		atomic_store(&be->storage_quota, 1);
	}
	return r;
}

int dk_container_start(struct sbx_instance *inst, struct sbx_err *err)
{
	/* 304: already running, which is what was asked for. */
	int r = dk_call(inst, "POST", "/start", NULL, DK_TIMEOUT_LONG_MS, NULL, err);

	/* A cached `stopped` (a run starting the container again) is stale now. */
	pthread_mutex_lock(&inst->lock);
	inst->cached_at_ns = 0;
	pthread_mutex_unlock(&inst->lock);
	return r;
}

int dk_container_remove(struct sbx_instance *inst, struct sbx_err *err)
{
	int r = dk_call(inst, "DELETE", "?force=1&v=1", NULL, DK_TIMEOUT_LONG_MS, NULL, err);

	if (r == -ENOENT) {
		sbx_err_clear(err);
		return 0;
	}
	return r;
}

int dk_container_inspect(struct sbx_instance *inst, bool size, struct json_object **out,
			 struct sbx_err *err)
{
	struct dk_resp resp = {0};
	int r;

	*out = NULL;
	r = dk_call(inst, "GET", size ? "/json?size=1" : "/json", NULL, DK_TIMEOUT_MS, &resp, err);
	if (r == 0) {
		*out = dk_json_parse(&resp, "container inspect", err);
		if (!*out)
			r = -err->code;
	}
	dk_resp_free(&resp);
	return r;
}

int dk_container_action(struct sbx_instance *inst, const char *action, struct sbx_err *err)
{
	char suffix[64];

	snprintf(suffix, sizeof(suffix), "/%s", action);
	return dk_call(inst, "POST", suffix, NULL, DK_TIMEOUT_LONG_MS, NULL, err);
}

/* The engine's memory (GET /info MemTotal): "no limit" for an update. */
static uint64_t dk_engine_memory(struct sbx_backend *be, struct sbx_err *err)
{
	struct dk_resp resp = {0};
	struct json_object *obj = NULL;
	int64_t total = 0;

	if (dk_request(&be->eng, "GET", "/info", NULL, DK_TIMEOUT_MS, &resp, err) == 0)
		obj = dk_json_parse(&resp, "engine info", err);
	dk_resp_free(&resp);
	if (obj)
		total = dk_json_int(obj, "MemTotal", 0);
	json_object_put(obj);
	return total > 0 ? (uint64_t)total & ~(uint64_t)4095 : 0;
}

int dk_container_update(struct sbx_instance *inst, const struct sbx_limits *l, struct sbx_err *err)
{
	uint64_t unlimited = dk_engine_memory(inst->be, err);
	struct json_object *o;
	int r;

	if (!unlimited)
		return err->code ? -err->code : sbx_err_set(err, EIO, "docker: engine reports no memory size");
	o = dk_limits_json(l, unlimited);
	if (!o)
		return sbx_err_set(err, ENOMEM, "out of memory");
	r = dk_call(inst, "POST", "/update", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
		    DK_TIMEOUT_MS, NULL, err);
	json_object_put(o);
	return r;
}

int dk_container_stats(struct sbx_instance *inst, struct dk_sample *s, struct sbx_err *err)
{
	/* one-shot (API 1.41): one reading now, instead of two a second apart. */
	const char *q = inst->be->eng.api_minor >= 41 ? "/stats?stream=false&one-shot=true"
						      : "/stats?stream=false";
	struct dk_resp resp = {0};
	struct json_object *obj;
	int r;

	r = dk_call(inst, "GET", q, NULL, DK_TIMEOUT_MS, &resp, err);
	if (r < 0) {
		dk_resp_free(&resp);
		return r;
	}
	obj = dk_json_parse(&resp, "container stats", err);
	dk_resp_free(&resp);
	if (!obj)
		return -err->code;
	dk_stats_parse(obj, s);
	json_object_put(obj);
	return 0;
}
