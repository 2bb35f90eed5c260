/*
 * registry.c - the set of sandboxes of one mount: creating, finding, killing,
 * re-attaching at start-up, and the TTL reaper.
 */
#include "sandbox.h"
#include "ctl_parse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static void tell_gone(struct sbx_ctl *ctl, const char *name);

/* The mount root's names come from the FUSE layer (ctl_config): control knows no file names. */
bool ctl_name_reserved(struct sbx_ctl *ctl, const char *name)
{
	return ctl->cfg.name_reserved && ctl->cfg.name_reserved(name);
}

struct sandbox *sandbox_new(struct sbx_ctl *ctl, const char *name)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return NULL;
	atomic_init(&sb->refs, 1);
	sb->ctl = ctl;
	pthread_mutex_init(&sb->lock, NULL);
	pthread_cond_init(&sb->inst_cond, NULL);
	pthread_mutex_init(&sb->save_lock, NULL);
	pthread_cond_init(&sb->idle_cond, NULL);
	snprintf(sb->name, sizeof(sb->name), "%s", name);
	snprintf(sb->dir, sizeof(sb->dir), "%s/sandboxes/%s", ctl->state_root, name);
	sb->runs.next = 1;
	return sb;
}

void sandbox_get(struct sandbox *sb)
{
	atomic_fetch_add(&sb->refs, 1);
}

void sandbox_ref(struct sandbox *sb)
{
	sandbox_get(sb);
}

void sandbox_put(struct sandbox *sb)
{
	if (!sb || atomic_fetch_sub(&sb->refs, 1) != 1)
		return;
	ctx_free_all(sb);
	run_queue_free(&sb->runs);
	ctl_strv_free(sb->env);
	if (sb->meta)
		json_object_put(sb->meta);
	pthread_mutex_destroy(&sb->lock);
	pthread_cond_destroy(&sb->inst_cond);
	pthread_mutex_destroy(&sb->save_lock);
	pthread_cond_destroy(&sb->idle_cond);
	free(sb);
}

const char *sandbox_name(const struct sandbox *sb)
{
	return sb->name;
}

bool sandbox_alive(struct sandbox *sb)
{
	bool alive;

	pthread_mutex_lock(&sb->lock);
	alive = !sb->dead;
	pthread_mutex_unlock(&sb->lock);
	return alive;
}

void sandbox_touch(struct sandbox *sb)
{
	pthread_mutex_lock(&sb->lock);
	sb->last_active = time(NULL);
	pthread_mutex_unlock(&sb->lock);
}

static struct sandbox *registry_find_locked(struct sbx_ctl *ctl, const char *name)
{
	for (size_t i = 0; i < ctl->nsandboxes; i++)
		if (strcmp(ctl->sandboxes[i]->name, name) == 0)
			return ctl->sandboxes[i];
	return NULL;
}

struct sandbox *ctl_sandbox_get(struct sbx_ctl *ctl, const char *name)
{
	struct sandbox *sb;

	pthread_mutex_lock(&ctl->lock);
	sb = registry_find_locked(ctl, name);
	if (sb)
		sandbox_get(sb);
	pthread_mutex_unlock(&ctl->lock);
	return sb;
}

int registry_add(struct sbx_ctl *ctl, struct sandbox *sb, struct sbx_err *err)
{
	int ret = 0;

	pthread_mutex_lock(&ctl->lock);
	if (registry_find_locked(ctl, sb->name)) {
		ret = sbx_err_set(err, EEXIST, "sandbox '%s' already exists", sb->name);
		goto out;
	}
	if (ctl->nsandboxes == ctl->cap) {
		size_t cap = ctl->cap ? ctl->cap * 2 : 64;
		struct sandbox **grown = realloc(ctl->sandboxes, cap * sizeof(*grown));

		if (!grown) {
			ret = sbx_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		ctl->sandboxes = grown;
		ctl->cap = cap;
	}
	sandbox_get(sb);
	ctl->sandboxes[ctl->nsandboxes++] = sb;
out:
	pthread_mutex_unlock(&ctl->lock);
	return ret;
}

void registry_remove(struct sbx_ctl *ctl, struct sandbox *sb)
{
	bool found = false;

	pthread_mutex_lock(&ctl->lock);
	for (size_t i = 0; i < ctl->nsandboxes; i++) {
		if (ctl->sandboxes[i] == sb) {
			ctl->sandboxes[i] = ctl->sandboxes[--ctl->nsandboxes];
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&ctl->lock);
	if (found)
		sandbox_put(sb);
}

char **ctl_sandbox_names(struct sbx_ctl *ctl)
{
	char **names;
	size_t n = 0;

	pthread_mutex_lock(&ctl->lock);
	names = calloc(ctl->nsandboxes + 1, sizeof(*names));
	for (size_t i = 0; names && i < ctl->nsandboxes; i++) {
		names[n] = strdup(ctl->sandboxes[i]->name);
		if (!names[n]) {
			/* never a shortened list: NULL says out of memory */
			ctl_strv_free(names);
			names = NULL;
			break;
		}
		n++;
	}
	pthread_mutex_unlock(&ctl->lock);
	if (names)
		qsort(names, n, sizeof(*names), sbx_cmp_str);
	return names;
}

void sandbox_spec(const struct sandbox *sb, struct sbx_spec *spec, char *state_dir, size_t size)
{
	snprintf(state_dir, size, "%s/backend", sb->dir);
	spec->name = sb->name;
	spec->id = sb->id;
	spec->template_name = sb->template_name;
	spec->state_dir = state_dir;
	spec->limits = sb->limits;
}

static void make_id(char id[33])
{
	unsigned char raw[16];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		/* getrandom on a booted kernel does not fail for 16 bytes; fall back anyway */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		for (size_t i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)((ts.tv_nsec >> (i % 8)) ^ (getpid() >> (i % 4)) ^ i);
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
}

static bool template_known(struct sbx_ctl *ctl, const char *name)
{
	const struct sbx_template_info *const *t = ctl_templates(ctl);

	/* "image:REF" names an engine image directly; the backend says whether it can. */
	if (strncmp(name, "image:", 6) == 0 && name[6])
		return true;

	for (; t && *t; t++)
		if (strcmp((*t)->name, name) == 0)
			return true;
	return false;
}

/*
 * The backend's create between two saves: `"creating": true` before it, so a
 * crash in the middle leaves a record the next start finishes as a kill (the
 * `new` never said ok), and without the mark after it. A `new` whose second
 * save fails destroys what it made and fails: it is not half kept.
 */
static int create_recorded(struct sbx_ctl *ctl, struct sandbox *sb, struct sbx_instance **inst,
			   struct sbx_err *err)
{
	char state_dir[4200];
	struct sbx_spec spec;
	struct sbx_err derr = { 0 };
	int ret;

	sandbox_spec(sb, &spec, state_dir, sizeof(state_dir));
	if (mkdir(state_dir, 0700) && errno != EEXIST)
		return sbx_err_sys(err, errno, "cannot create state directory '%s'", state_dir);
	pthread_mutex_lock(&sb->lock);
	sb->creating = true;
	pthread_mutex_unlock(&sb->lock);
	ret = state_save(sb, err);
	if (ret)
		return ret;
	ret = ctl->ops->create(ctl->be, &spec, inst, err);
	if (ret)
		return sbx_err_wrap(err, "cannot create sandbox '%s'", sb->name);
	pthread_mutex_lock(&sb->lock);
	sb->creating = false;
	pthread_mutex_unlock(&sb->lock);
	ret = state_save(sb, err);
	if (ret && ctl->ops->destroy(*inst, &derr))
		sbx_log(SBX_LOG_WARNING, NULL, 0, "cannot undo the half-made sandbox '%s': %s", sb->name,
			derr.msg);
	return ret;
}

/* Takes ownership of env and meta, also on failure. */
int sandbox_create(struct sbx_ctl *ctl, const char *name, const char *template_name, uint64_t ttl,
		   uint64_t timeout, const struct sbx_limits *limits, char **env,
		   struct json_object *meta, struct sbx_err *err)
{
	struct sbx_instance *inst;
	uint64_t t0 = metrics_now_us();
	struct sandbox *sb;
	int ret;

	if (!template_known(ctl, template_name)) {
		ret = sbx_err_set(err, ENOENT, "no template '%s' (see templates/)", template_name);
		goto out_free_args;
	}
	sb = sandbox_new(ctl, name);
	if (!sb) {
		ret = sbx_err_set(err, ENOMEM, "out of memory");
		goto out_free_args;
	}
	make_id(sb->id);
	snprintf(sb->template_name, sizeof(sb->template_name), "%s", template_name);
	sb->created = sb->last_active = time(NULL);
	sb->ttl = ttl;
	sb->timeout = timeout;
	sb->limits = *limits;
	sb->env = env;
	sb->meta = meta ? meta : json_object_new_object();
	env = NULL;
	meta = NULL;

	/* Claim the name first so two concurrent `new`s of one name cannot both build it;
	 * claim the instance too, so a kill that comes meanwhile waits for it. */
	inst_claim_new(sb);
	ret = registry_add(ctl, sb, err);
	if (ret)
		goto out_put;

	if (mkdir(sb->dir, 0700) && errno != EEXIST) {
		ret = sbx_err_sys(err, errno, "cannot create state directory '%s'", sb->dir);
		goto out_unregister;
	}
	ret = create_recorded(ctl, sb, &inst, err);
	if (ret)
		goto out_rmdir;
	inst_publish(sb, inst);
	metrics_created(ctl, true, metrics_now_us() - t0);
	events_emit(ctl, "created", name, "template=%s", template_name);
	sandbox_put(sb);
	return 0;

out_rmdir:
	sbx_rm_rf(sb->dir);
out_unregister:
	metrics_created(ctl, false, 0);
	events_emit(ctl, "error", name, "create failed: %s", err->msg);
	pthread_mutex_lock(&sb->lock);
	sb->dead = true;
	pthread_mutex_unlock(&sb->lock);
	inst_publish(sb, NULL);
	registry_remove(ctl, sb);
out_put:
	sandbox_put(sb);
out_free_args:
	ctl_strv_free(env);
	if (meta)
		json_object_put(meta);
	return ret;
}

/*
 * Removes a killed sandbox's state. The directory is renamed out of the way
 * first (one atomic step: the name is free at once, and a crash in the middle
 * of the removal leaves a `.gone-ID` directory that the next start removes,
 * never a half-deleted sandbox that would be listed again).
 */
static void state_dir_remove(struct sbx_ctl *ctl, const char *dir, const char *id)
{
	char gone[4200];

	snprintf(gone, sizeof(gone), "%s/sandboxes/" GONE_PREFIX "%s", ctl->state_root, id);
	if (rename(dir, gone) == 0)
		sbx_rm_rf(gone);
	else
		sbx_rm_rf(dir);
}

/* Records that the kill has begun, so a crash from here on is finished by the next start. */
static void record_kill(struct sandbox *sb)
{
	struct sbx_err err = { 0 };

	if (state_save(sb, &err))
		sbx_log(SBX_LOG_WARNING, NULL, 0, "the kill of '%s' goes on unrecorded: %s", sb->name,
			err.msg);
}

int sandbox_destroy(struct sbx_ctl *ctl, struct sandbox *sb, struct sbx_err *err)
{
	return sandbox_destroy_as(ctl, sb, "killed", err);
}

int sandbox_destroy_as(struct sbx_ctl *ctl, struct sandbox *sb, const char *event, struct sbx_err *err)
{
	struct sbx_instance *inst;
	int ret = 0;

	pthread_mutex_lock(&sb->lock);
	if (sb->dead) {
		pthread_mutex_unlock(&sb->lock);
		return sbx_err_set(err, ENOENT, "no sandbox '%s'", sb->name);
	}
	sb->dead = true;
	sb->killing = true;
	pthread_mutex_unlock(&sb->lock);
	record_kill(sb);

	/* Removed from the listing (and the kernel's cache) first so it disappears at once. */
	registry_remove(ctl, sb);
	tell_gone(ctl, sb->name);
	inst = inst_enter(sb, INST_EXCL | INST_EVEN_DEAD, NULL);
	if (inst) {
		/* destroy frees inst whether or not it succeeds */
		ret = ctl->ops->destroy(inst, err);
		inst_forget(sb);
		inst_leave(sb, INST_EXCL | INST_EVEN_DEAD);
	}
	run_abort_all(sb);
	run_wait_worker(sb);
	if (ret) {
		/* The state stays, marked `killing`: the next start tries again. */
		sbx_err_wrap(err, "cannot kill sandbox '%s'", sb->name);
		events_emit(ctl, "error", sb->name, "kill failed: %s", err->msg);
		return ret;
	}
	state_dir_remove(ctl, sb->dir, sb->id);
	metrics_gone(ctl, strcmp(event, "expired") == 0);
	events_emit(ctl, event, sb->name, "%s", "");
	return 0;
}

int ctl_kill(struct sbx_ctl *ctl, const char *name, struct sbx_err *err)
{
	struct sandbox *sb = ctl_sandbox_get(ctl, name);
	int ret;

	if (!sb)
		return sbx_err_set(err, ENOENT, "no sandbox '%s'", name);
	ret = sandbox_destroy(ctl, sb, err);
	sandbox_put(sb);
	return ret;
}

int ctl_create_default(struct sbx_ctl *ctl, const char *name, struct sbx_err *err)
{
	int ret = ctl_check_name(name, err);

	if (ret)
		return ret;
	if (ctl_name_reserved(ctl, name))
		return sbx_err_set(err, EINVAL, "name '%s' is reserved", name);
	return sandbox_create(ctl, name, "default", ctl->cfg.ttl, ctl->cfg.timeout, &ctl->cfg.limits,
			      NULL, NULL, err);
}

const struct sbx_template_info *const *ctl_templates(struct sbx_ctl *ctl)
{
	return ctl->ops->templates ? ctl->ops->templates(ctl->be) : NULL;
}

const char *ctl_backend_name(struct sbx_ctl *ctl)
{
	return ctl->ops->name;
}

void ctl_set_gone_hook(struct sbx_ctl *ctl, void (*gone)(const char *name, void *arg), void *arg)
{
	pthread_mutex_lock(&ctl->lock);
	ctl->gone = gone;
	ctl->gone_arg = arg;
	pthread_mutex_unlock(&ctl->lock);
}

static void tell_gone(struct sbx_ctl *ctl, const char *name)
{
	void (*gone)(const char *, void *);
	void *arg;

	pthread_mutex_lock(&ctl->lock);
	gone = ctl->gone;
	arg = ctl->gone_arg;
	pthread_mutex_unlock(&ctl->lock);
	if (gone)
		gone(name, arg);
}

void ctl_set_announcer(struct sbx_ctl *ctl, void (*announce)(const char *name, const char *ctx, void *arg),
		       void *arg)
{
	pthread_mutex_lock(&ctl->lock);
	ctl->announce = announce;
	ctl->announce_arg = arg;
	pthread_mutex_unlock(&ctl->lock);
}

/* ---- TTL ---- */

static bool sandbox_expired(struct sandbox *sb, time_t now)
{
	bool expired;

	pthread_mutex_lock(&sb->lock);
	expired = !sb->dead && sb->ttl && !run_busy_locked_hint(sb) &&
		  now >= sb->last_active + (time_t)sb->ttl;
	pthread_mutex_unlock(&sb->lock);
	return expired;
}

static void *reaper_main(void *arg)
{
	struct sbx_ctl *ctl = arg;

	pthread_mutex_lock(&ctl->lock);
	while (!ctl->stopping) {
		struct timespec deadline;
		struct sandbox *victim = NULL;
		time_t now = time(NULL);

		for (size_t i = 0; i < ctl->nsandboxes && !victim; i++) {
			if (sandbox_expired(ctl->sandboxes[i], now)) {
				victim = ctl->sandboxes[i];
				sandbox_get(victim);
			}
		}
		if (victim) {
			struct sbx_err err = { 0 };

			pthread_mutex_unlock(&ctl->lock);
			if (sandbox_destroy_as(ctl, victim, "expired", &err))
				sbx_log(SBX_LOG_WARNING, NULL, 0, "ttl kill of '%s' failed: %s",
					victim->name, err.msg);
			sandbox_put(victim);
			pthread_mutex_lock(&ctl->lock);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += 250L * 1000 * 1000;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ctl->reaper_cond, &ctl->lock, &deadline);
	}
	pthread_mutex_unlock(&ctl->lock);
	return NULL;
}

/* ---- start-up and shut-down ---- */

/*
 * A sandbox whose kill a crash interrupted: the backend's destroy again (it
 * copes with what a half-done destroy left), then its state goes. Never listed.
 */
static void finish_kill(struct sbx_ctl *ctl, struct sandbox *sb, const struct sbx_spec *spec)
{
	struct sbx_err err = { 0 };

	/* A few tries: the engine may still be busy with the removal the dead daemon began. */
	for (int i = 0; i < 4; i++) {
		struct sbx_instance *inst = NULL;

		if (i)
			usleep(250000u << i);
		if (ctl->ops->attach(ctl->be, spec, &inst, &err) == 0 && ctl->ops->destroy(inst, &err) == 0) {
			state_dir_remove(ctl, sb->dir, sb->id);
			return;
		}
	}
	sbx_log(SBX_LOG_WARNING, NULL, 0,
		"cannot finish the kill of sandbox '%s' (tried again at the next start): %s", sb->name, err.msg);
}

/*
 * A `new` that a crash cut off before its first record: sandbox.json is
 * written before the backend is asked for anything, so without it there is
 * nothing of the backend's to undo, only the directory. True if it was that.
 */
static bool drop_unrecorded(struct sbx_ctl *ctl, const char *name)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/sandboxes/%s/sandbox.json", ctl->state_root, name);
	if (access(path, F_OK) == 0 || errno != ENOENT)
		return false;
	snprintf(path, sizeof(path), "%s/sandboxes/%s", ctl->state_root, name);
	sbx_rm_rf(path);
	return true;
}

static void attach_one(struct sbx_ctl *ctl, const char *name)
{
	struct sbx_err err = { 0 };
	char state_dir[4200];
	struct sbx_spec spec;
	struct sandbox *sb;

	if (state_load(ctl, name, &sb, &err)) {
		if (drop_unrecorded(ctl, name))
			return;
		sbx_log(SBX_LOG_WARNING, NULL, 0, "skipping sandbox '%s': %s", name, err.msg);
		return;
	}
	sandbox_spec(sb, &spec, state_dir, sizeof(state_dir));
	if (sb->killing || sb->creating) {
		/* A kill, or a `new` that never said ok, that a crash cut off. */
		finish_kill(ctl, sb, &spec);
		sandbox_put(sb);
		return;
	}
	if (ctl->ops->attach(ctl->be, &spec, &sb->inst, &err)) {
		sbx_log(SBX_LOG_WARNING, NULL, 0, "cannot re-attach sandbox '%s': %s", sb->name, err.msg);
		sb->inst = NULL;
	}
	run_load_history(sb);
	if (registry_add(ctl, sb, &err)) {
		sbx_log(SBX_LOG_WARNING, NULL, 0, "%s", err.msg);
		if (sb->inst)
			ctl->ops->release(sb->inst);
		sb->inst = NULL;
	}
	sandbox_put(sb);
}

static void attach_all(struct sbx_ctl *ctl)
{
	char path[4200];
	struct dirent *de;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/sandboxes", ctl->state_root);
	dir = opendir(path);
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, GONE_PREFIX, strlen(GONE_PREFIX)) == 0) {
			/* A removal a crash cut short: the backend had already let go of it. */
			snprintf(path, sizeof(path), "%s/sandboxes/%s", ctl->state_root, de->d_name);
			sbx_rm_rf(path);
			continue;
		}
		if (de->d_name[0] == '.')
			continue;
		attach_one(ctl, de->d_name);
	}
	closedir(dir);
}

int ctl_open(const struct ctl_config *cfg, struct sbx_ctl **out, struct sbx_err *err)
{
	struct sbx_backend_opts opts = { 0 };
	struct sbx_ctl *ctl;
	char path[4200];
	int ret;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return sbx_err_set(err, ENOMEM, "out of memory");
	ctl->cfg = *cfg;
	ctl->state_lock_fd = -1;
	ctl->state_root = strdup(cfg->state_root);
	ctl->mountpoint = strdup(cfg->mountpoint ? cfg->mountpoint : "");
	if (!ctl->state_root || !ctl->mountpoint) {
		ret = sbx_err_set(err, ENOMEM, "out of memory");
		goto out_free;
	}
	ctl->cfg.state_root = ctl->state_root;
	ctl->cfg.mountpoint = ctl->mountpoint;
	pthread_mutex_init(&ctl->lock, NULL);
	pthread_cond_init(&ctl->reaper_cond, NULL);

	ctl->ops = sbx_backend_find(cfg->backend);
	if (!ctl->ops || !ctl->ops->create) {
		ret = sbx_err_set(err, EINVAL, "unknown backend '%s' (known: local, docker)", cfg->backend);
		goto out_free;
	}
	snprintf(path, sizeof(path), "%s/sandboxes", ctl->state_root);
	ret = sbx_mkdir_p(path, 0700, NULL);
	if (ret) {
		sbx_err_sys(err, -ret, "cannot create state directory '%s'", path);
		goto out_free;
	}
	ctl->state_lock_fd = ret = state_lock(ctl->state_root, err);
	if (ret >= 0)
		ret = state_claim_backend(ctl->state_root, ctl->ops->name, err);
	if (ret < 0)
		goto out_free;
	opts.state_root = ctl->state_root;
	opts.docker_host = cfg->docker_host;
	opts.helper_dir = cfg->helper_dir;
	ret = ctl->ops->init(&opts, &ctl->be, err);
	if (ret) {
		sbx_err_wrap(err, "cannot start the %s backend", ctl->ops->name);
		goto out_free;
	}
	ret = metrics_open(ctl, err);
	if (!ret)
		ret = events_open(ctl, err);
	if (ret)
		goto out_fini_backend;
	attach_all(ctl);
	ret = pthread_create(&ctl->reaper, NULL, reaper_main, ctl);
	if (ret) {
		sbx_err_sys(err, ret, "cannot start the ttl reaper");
		ret = -ret;
		goto out_fini;
	}
	*out = ctl;
	return 0;

out_fini:
	ctl_close_sandboxes(ctl);
	events_close(ctl);
out_fini_backend:
	metrics_close(ctl);
	ctl->ops->fini(ctl->be);
out_free:
	if (ctl->state_lock_fd >= 0)
		close(ctl->state_lock_fd);
	free(ctl->state_root);
	free(ctl->mountpoint);
	free(ctl);
	return ret;
}

void ctl_close_sandboxes(struct sbx_ctl *ctl)
{
	pthread_mutex_lock(&ctl->lock);
	while (ctl->nsandboxes) {
		struct sandbox *sb = ctl->sandboxes[--ctl->nsandboxes];
		struct sbx_instance *inst;

		pthread_mutex_unlock(&ctl->lock);
		/* Dead to new work first, then let the current run end, then let go. */
		pthread_mutex_lock(&sb->lock);
		sb->dead = true;
		pthread_mutex_unlock(&sb->lock);
		run_abort_all(sb);
		run_wait_worker(sb);
		inst = inst_enter(sb, INST_EXCL | INST_EVEN_DEAD, NULL);
		if (inst) {
			ctl->ops->release(inst);
			inst_forget(sb);
			inst_leave(sb, INST_EXCL | INST_EVEN_DEAD);
		}
		sandbox_put(sb);
		pthread_mutex_lock(&ctl->lock);
	}
	pthread_mutex_unlock(&ctl->lock);
}

void ctl_close(struct sbx_ctl *ctl)
{
	if (!ctl)
		return;
	pthread_mutex_lock(&ctl->lock);
	ctl->stopping = true;
	pthread_cond_broadcast(&ctl->reaper_cond);
	pthread_mutex_unlock(&ctl->lock);
	pthread_join(ctl->reaper, NULL);
	ctl_close_sandboxes(ctl);
	ctl->ops->fini(ctl->be);
	events_close(ctl);
	metrics_close(ctl);
	for (size_t i = 0; i < 100; i++)
		free(ctl->errors[i]);
	free(ctl->sandboxes);
	pthread_mutex_destroy(&ctl->lock);
	pthread_cond_destroy(&ctl->reaper_cond);
	close(ctl->state_lock_fd);
	free(ctl->state_root);
	free(ctl->mountpoint);
	free(ctl);
}
