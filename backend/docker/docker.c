/*
 * docker.c - the `docker` backend: sandboxes as containers of a Docker Engine, reached over
 * its HTTP API (http.c). This file is the ops table of backend.h and the instance handles;
 * the work is done in image.c, container.c and exec.c. See docs/docker-backend.md.
 */
#include "dk.h"
#include "../log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* status() asks the engine at most this often per sandbox. */
#define DK_STATUS_CACHE_NS (250ULL * 1000000)
/* cpu_percent needs two readings at least this far apart. */
#define DK_CPU_INTERVAL_NS (100ULL * 1000000)

uint64_t dk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* userns-remap or not: what host ids the sandbox user has (dk_user_ids, files/). */
static int dk_engine_ids(struct sbx_backend *be, struct sbx_err *err)
{
	struct dk_resp resp = {0};
	struct json_object *info = NULL;
	int r = dk_request(&be->eng, "GET", "/info", NULL, DK_TIMEOUT_MS, &resp, err);

	if (r == 0 && !(info = dk_json_parse(&resp, "engine info", err)))
		r = -err->code;
	dk_resp_free(&resp);
	if (r == 0 && dk_userns_base(info, &be->remap_uid, &be->remap_gid) < 0)
		r = sbx_err_set(err, EPROTO, "docker engine at '%s' remaps user ids, but its data root "
				"'%s' does not say to what", be->eng.host,
				dk_json_str(info, "DockerRootDir") ? dk_json_str(info, "DockerRootDir") : "");
	json_object_put(info);
	return r;
}

static int docker_init(const struct sbx_backend_opts *opts, struct sbx_backend **out,
		       struct sbx_err *err)
{
	struct sbx_backend *be;
	int r;

	*out = NULL;
	be = calloc(1, sizeof(*be));
	if (!be)
		return sbx_err_set(err, ENOMEM, "out of memory");
	r = dk_engine_parse(&be->eng, opts ? opts->docker_host : NULL, err);
	if (r < 0) {
		free(be);
		return r;
	}
	r = dk_engine_negotiate(&be->eng, err);
	if (r < 0) {
		dk_engine_free(&be->eng);
		free(be);
		return r;
	}
	r = dk_engine_ids(be, err);
	if (r < 0) {
		dk_engine_free(&be->eng);
		free(be);
		return r;
	}
	be->state_root = strdup(opts && opts->state_root ? opts->state_root : "");
	be->rootfs_script = dk_image_find_script(opts ? opts->helper_dir : NULL);
	if (!be->state_root) {
		free(be->rootfs_script);
		dk_engine_free(&be->eng);
		free(be);
		return sbx_err_set(err, ENOMEM, "out of memory");
	}
	pthread_mutex_init(&be->img_lock, NULL);
	pthread_mutex_init(&be->tmpl_lock, NULL);
	be->tmpl_default.name = "default";
	be->tmpl_default.description =
		"Debian userland in a Docker container: bash and the usual shell tools, Python 3 "
		"with its standard library, Node.js.\n"
		"Runs as user (uid 1000) in /home/user, no network, all capabilities dropped.\n"
		"Image: " DK_DEFAULT_REPO ":" DK_DEFAULT_TAG " (built on first use from the host's "
		"packages).\n";
	be->tmpl_list[0] = &be->tmpl_default;
	be->tmpl_list[1] = NULL;
	dk_image_prepare_async(be);
	*out = be;
	return 0;
}

static void docker_fini(struct sbx_backend *be)
{
	if (!be)
		return;
	dk_watch_fini();
	dk_image_join(be);
	dk_image_templates_free(be);
	pthread_mutex_destroy(&be->tmpl_lock);
	pthread_mutex_destroy(&be->img_lock);
	free(be->rootfs_script);
	free(be->state_root);
	dk_engine_free(&be->eng);
	free(be);
}

static const struct sbx_template_info *const *docker_templates(struct sbx_backend *be)
{
	return dk_image_templates(be);
}

static void dk_inst_free(struct sbx_instance *inst)
{
	if (!inst)
		return;
	pthread_mutex_destroy(&inst->lock);
	free(inst->merged_dir);
	free(inst->cname);
	free(inst->name);
	free(inst->id);
	free(inst);
}

static struct sbx_instance *dk_inst_new(struct sbx_backend *be, const struct sbx_spec *spec)
{
	struct sbx_instance *inst = calloc(1, sizeof(*inst));

	if (!inst)
		return NULL;
	pthread_mutex_init(&inst->lock, NULL);
	inst->be = be;
	inst->limits = spec->limits;
	inst->id = strdup(spec->id);
	inst->name = strdup(spec->name);
	if (asprintf(&inst->cname, "sbxfs-%s", spec->id) < 0)
		inst->cname = NULL;
	if (!inst->id || !inst->name || !inst->cname) {
		dk_inst_free(inst);
		return NULL;
	}
	return inst;
}

static void dk_cache_set(struct sbx_instance *inst, enum sbx_status st)
{
	pthread_mutex_lock(&inst->lock);
	inst->cached = st;
	inst->cached_at_ns = dk_now_ns();
	pthread_mutex_unlock(&inst->lock);
}

static void dk_cache_drop(struct sbx_instance *inst)
{
	pthread_mutex_lock(&inst->lock);
	inst->cached_at_ns = 0;
	pthread_mutex_unlock(&inst->lock);
}

/* What attach or a clean-up could not do is no failure, but it is said: one line on stderr. */
static void dk_warn(const struct sbx_instance *inst, const char *what, const struct sbx_err *e)
{
	sbx_log(SBX_LOG_WARNING, inst->name, e->code, "%s: %s", what, e->msg);
}

static int docker_create(struct sbx_backend *be, const struct sbx_spec *spec,
			 struct sbx_instance **out, struct sbx_err *err)
{
	struct sbx_instance *inst;
	char *image = NULL;
	int r;

	*out = NULL;
	inst = dk_inst_new(be, spec);
	if (!inst)
		return sbx_err_set(err, ENOMEM, "out of memory");
	r = dk_image_for_template(be, spec->template_name, &image, err);
	if (r < 0)
		goto out_free;
	r = dk_container_create(inst, image, spec, err);
	if (r == -EEXIST) {
		/* A container of this id left by a create that died half-way: replace it. */
		sbx_err_clear(err);
		r = dk_container_remove(inst, err);
		if (r == 0)
			r = dk_container_create(inst, image, spec, err);
	}
	if (r < 0)
		goto out_free;
	r = dk_container_start(inst, err);
	if (r < 0) {
		struct sbx_err rerr = {0};

		if (dk_container_remove(inst, &rerr) < 0)
			dk_warn(inst, "removing the container that did not start", &rerr);
		goto out_free;
	}
	free(image);
	dk_cache_set(inst, SBX_STATUS_RUNNING);
	*out = inst;
	return 0;

out_free:
	free(image);
	dk_inst_free(inst);
	return sbx_err_wrap(err, "creating container for '%s'", spec->name);
}

static int docker_attach(struct sbx_backend *be, const struct sbx_spec *spec,
			 struct sbx_instance **out, struct sbx_err *err)
{
	struct sbx_instance *inst;
	struct json_object *obj = NULL;
	struct sbx_err ierr = {0};
	int r;

	*out = NULL;
	inst = dk_inst_new(be, spec);
	if (!inst)
		return sbx_err_set(err, ENOMEM, "out of memory");
	r = dk_container_inspect(inst, false, &obj, &ierr);
	if (r == 0) {
		enum sbx_status st = dk_state_status(obj);

		/* Stopped by an engine restart, or created by a `new` that a crash cut off before
		 * its start: start it, its files are all there. */
		const char *state = dk_json_str(obj, "State.Status");

		if (st == SBX_STATUS_STOPPED || (state && strcmp(state, "created") == 0)) {
			if (dk_container_start(inst, &ierr) == 0)
				st = SBX_STATUS_RUNNING;
			else
				dk_warn(inst, "starting its stopped container again", &ierr);
		}
		dk_cache_set(inst, st);
	} else if (r == -ENOENT) {
		/* Removed behind our back: attached as stopped, as backend.h asks. */
		sbx_log(SBX_LOG_WARNING, inst->name, 0, "its container '%s' is gone; it reads stopped, "
			"and kill removes what is left", inst->cname);
		dk_cache_set(inst, SBX_STATUS_STOPPED);
	} else {
		/* Engine unreachable: attach anyway; status() asks again later. */
		dk_warn(inst, "attached without its container's state", &ierr);
	}
	json_object_put(obj);
	*out = inst;
	return 0;
}

static int docker_destroy(struct sbx_instance *inst, struct sbx_err *err)
{
	int r;

	dk_watch_end(inst);
	r = dk_container_remove(inst, err);

	if (r < 0)
		sbx_err_wrap(err, "removing container '%s'", inst->cname);
	/* Freed also on failure, as backend.h says: the control plane forgets it either way. */
	dk_inst_free(inst);
	return r < 0 ? -err->code : 0;
}

static void docker_release(struct sbx_instance *inst)
{
	dk_watch_end(inst);
	dk_inst_free(inst);
}

static int dk_simple(struct sbx_instance *inst, const char *action, const char *what,
		     struct sbx_err *err)
{
	int r = dk_container_action(inst, action, err);

	dk_cache_drop(inst);
	return r < 0 ? sbx_err_wrap(err, "%s '%s'", what, inst->name) : 0;
}

static int docker_pause(struct sbx_instance *inst, struct sbx_err *err)
{
	return dk_simple(inst, "pause", "pausing", err);
}

static int docker_resume(struct sbx_instance *inst, struct sbx_err *err)
{
	return dk_simple(inst, "unpause", "resuming", err);
}

static int docker_restart(struct sbx_instance *inst, struct sbx_err *err)
{
	int r = dk_simple(inst, "restart?t=0", "restarting", err);

	if (r == 0)
		dk_watch_restart(inst);
	return r;
}

static int docker_set_limits(struct sbx_instance *inst, const struct sbx_limits *limits,
			     struct sbx_err *err)
{
	int r = dk_container_update(inst, limits, err);

	if (r < 0)
		return sbx_err_wrap(err, "setting limits of '%s'", inst->name);
	pthread_mutex_lock(&inst->lock);
	inst->limits = *limits;
	pthread_mutex_unlock(&inst->lock);
	return 0;
}

static enum sbx_status docker_status(struct sbx_instance *inst)
{
	struct json_object *obj = NULL;
	struct sbx_err err = {0};
	enum sbx_status st;
	int r;

	pthread_mutex_lock(&inst->lock);
	if (inst->cached_at_ns && dk_now_ns() - inst->cached_at_ns < DK_STATUS_CACHE_NS) {
		st = inst->cached;
		pthread_mutex_unlock(&inst->lock);
		return st;
	}
	pthread_mutex_unlock(&inst->lock);

	r = dk_container_inspect(inst, false, &obj, &err);
	if (r == 0)
		st = dk_state_status(obj);
	else if (r == -ENOENT)
		st = SBX_STATUS_STOPPED;
	else
		st = SBX_STATUS_ERROR;   /* engine unreachable */
	json_object_put(obj);
	dk_cache_set(inst, st);
	return st;
}

static int docker_metrics(struct sbx_instance *inst, struct sbx_metrics *m, struct sbx_err *err)
{
	struct json_object *obj = NULL;
	struct dk_sample s;
	uint64_t now;
	int r;

	memset(m, 0, sizeof(*m));
	r = dk_container_stats(inst, &s, err);
	if (r < 0)
		return sbx_err_wrap(err, "metrics of '%s'", inst->name);
	now = dk_now_ns();

	pthread_mutex_lock(&inst->lock);
	if (!inst->have_prev) {
		/* First reading: a second one shortly after, so the percentage means something. */
		inst->have_prev = true;
		inst->prev_cpu_ns = s.cpu_ns;
		inst->prev_at_ns = now;
		pthread_mutex_unlock(&inst->lock);
		nanosleep(&(struct timespec){0, (long)DK_CPU_INTERVAL_NS}, NULL);
		r = dk_container_stats(inst, &s, err);
		if (r < 0)
			return sbx_err_wrap(err, "metrics of '%s'", inst->name);
		now = dk_now_ns();
		pthread_mutex_lock(&inst->lock);
	}
	if (now - inst->prev_at_ns >= DK_CPU_INTERVAL_NS) {
		uint64_t dcpu = s.cpu_ns >= inst->prev_cpu_ns ? s.cpu_ns - inst->prev_cpu_ns : 0;

		inst->last_percent = 100.0 * (double)dcpu / (double)(now - inst->prev_at_ns);
		inst->prev_cpu_ns = s.cpu_ns;
		inst->prev_at_ns = now;
	}
	m->cpu_percent = inst->last_percent;
	/* Ours, not the engine's: it reports the host's memory when there is no limit. */
	m->mem_limit_bytes = inst->limits.mem_bytes;
	pthread_mutex_unlock(&inst->lock);

	m->cpu_seconds = (double)s.cpu_ns / 1e9;
	m->mem_used_bytes = s.mem_used;
	m->pids = s.pids;
	m->disk_read_bytes = s.blk_read;
	m->disk_write_bytes = s.blk_write;
	m->net_rx_bytes = s.net_rx;
	m->net_tx_bytes = s.net_tx;
	/* The writable layer's size: the engine walks it, fine for sandbox-sized trees. */
	if (dk_container_inspect(inst, true, &obj, err) == 0)
		m->disk_used_bytes = (uint64_t)dk_json_int(obj, "SizeRw", 0);
	sbx_err_clear(err);
	json_object_put(obj);
	return 0;
}

static int docker_spawn(struct sbx_instance *inst, const struct sbx_exec *ex,
			struct sbx_proc **out, struct sbx_err *err)
{
	return dk_exec_spawn(inst, ex, out, err);
}

static int docker_wait_proc(struct sbx_proc *proc, struct sbx_exit *out, struct sbx_err *err)
{
	return dk_exec_wait(proc, out, err);
}

static int docker_kill_proc(struct sbx_proc *proc, int sig)
{
	return dk_exec_kill(proc, sig);
}

static void docker_free_proc(struct sbx_proc *proc)
{
	dk_exec_free(proc);
}

static int docker_root_fd(struct sbx_instance *inst, int *fd_out, struct sbx_err *err)
{
	struct json_object *obj = NULL;
	const char *dir, *driver;
	char *merged;
	int r, fd;

	*fd_out = -1;
	if (!inst->be->eng.local)
		return sbx_err_set(err, ENOTSUP, "files/ needs a local engine; '%s' is remote",
				   inst->be->eng.host);
	pthread_mutex_lock(&inst->lock);
	merged = inst->merged_dir ? strdup(inst->merged_dir) : NULL;
	pthread_mutex_unlock(&inst->lock);
	if (!merged) {
		r = dk_container_inspect(inst, false, &obj, err);
		if (r < 0)
			return sbx_err_wrap(err, "files of '%s'", inst->name);
		driver = dk_json_str(obj, "GraphDriver.Name");
		dir = dk_json_str(obj, "GraphDriver.Data.MergedDir");
		if (!dir) {
			r = sbx_err_set(err, ENOTSUP, "files of '%s': storage driver '%s' shows no merged "
					"directory (overlay2 does)", inst->name, driver ? driver : "?");
			json_object_put(obj);
			return r;
		}
		merged = strdup(dir);
		json_object_put(obj);
		if (!merged)
			return sbx_err_set(err, ENOMEM, "out of memory");
		pthread_mutex_lock(&inst->lock);
		if (!inst->merged_dir)
			inst->merged_dir = strdup(merged);
		pthread_mutex_unlock(&inst->lock);
	}
	fd = open(merged, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = sbx_err_sys(err, errno, "files of '%s': opening '%s'", inst->name, merged);
		free(merged);
		return r;
	}
	free(merged);
	*fd_out = fd;
	return 0;
}

const struct sbx_backend_ops sbx_docker_backend = {
	.name = "docker",
	.init = docker_init,
	.fini = docker_fini,
	.templates = docker_templates,
	.create = docker_create,
	.attach = docker_attach,
	.destroy = docker_destroy,
	.release = docker_release,
	.pause = docker_pause,
	.resume = docker_resume,
	.restart = docker_restart,
	.set_limits = docker_set_limits,
	.status = docker_status,
	.metrics = docker_metrics,
	.spawn = docker_spawn,
	.wait_proc = docker_wait_proc,
	.kill_proc = docker_kill_proc,
	.free_proc = docker_free_proc,
	.root_fd = docker_root_fd,
	.user_ids = dk_user_ids,
	.watch_start = dk_watch_start,
	.watch_sync = dk_watch_sync,
	.watch_stop = dk_watch_end,
};
