/* texts.c - what a sandbox's status, info, metrics and env files read as. */
#include "sandbox.h"
#include "ctl_parse.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_words[] = {
	[SBX_STATUS_CREATING] = "creating", [SBX_STATUS_RUNNING] = "running",
	[SBX_STATUS_PAUSED] = "paused",     [SBX_STATUS_STOPPED] = "stopped",
	[SBX_STATUS_ERROR] = "error",
};

static enum sbx_status sandbox_status(struct sandbox *sb)
{
	enum sbx_status st = SBX_STATUS_STOPPED;

	struct sbx_instance *inst = inst_enter(sb, INST_SHARED, NULL);

	if (inst) {
		st = sb->ctl->ops->status(inst);
		inst_leave(sb, INST_SHARED);
	}
	return st;
}

char *sandbox_status_text(struct sandbox *sb)
{
	char *text;

	if (asprintf(&text, "%s\n", status_words[sandbox_status(sb)]) < 0)
		return NULL;
	return text;
}

static void add_time(json_object *o, const char *key, time_t t)
{
	char stamp[32], ukey[64];
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(o, key, json_object_new_string(stamp));
	snprintf(ukey, sizeof(ukey), "%s_unix", key);
	json_object_object_add(o, ukey, json_object_new_int64(t));
}

static char *json_text(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *text;

	if (asprintf(&text, "%s\n", s) < 0)
		text = NULL;
	json_object_put(o);
	return text;
}

/* The backend's words for an error status ("" when it has none). */
static void sandbox_error_reason(struct sandbox *sb, struct sbx_err *why)
{
	struct sbx_instance *inst;

	sbx_err_clear(why);
	if (!sb->ctl->ops->status_reason)
		return;
	inst = inst_enter(sb, INST_SHARED, NULL);
	if (inst) {
		sb->ctl->ops->status_reason(inst, why);
		inst_leave(sb, INST_SHARED);
	}
}

char *sandbox_info_json(struct sandbox *sb)
{
	enum sbx_status st = sandbox_status(sb);
	json_object *o = json_object_new_object(), *limits = json_object_new_object();
	struct sbx_err why;

	if (st == SBX_STATUS_ERROR)
		sandbox_error_reason(sb, &why);

	pthread_mutex_lock(&sb->lock);
	json_object_object_add(o, "name", json_object_new_string(sb->name));
	json_object_object_add(o, "id", json_object_new_string(sb->id));
	json_object_object_add(o, "template", json_object_new_string(sb->template_name));
	json_object_object_add(o, "backend", json_object_new_string(sb->ctl->ops->name));
	add_time(o, "created", sb->created);
	if (sb->ttl) {
		add_time(o, "expires", sb->last_active + (time_t)sb->ttl);
	} else {
		json_object_object_add(o, "expires", NULL);
		json_object_object_add(o, "expires_unix", NULL);
	}
	json_object_object_add(o, "ttl", json_object_new_int64((int64_t)sb->ttl));
	json_object_object_add(o, "timeout", json_object_new_int64((int64_t)sb->timeout));
	json_object_object_add(o, "status", json_object_new_string(status_words[st]));
	if (st == SBX_STATUS_ERROR)
		json_object_object_add(o, "error", json_object_new_string(why.code ? why.msg : "the backend says so"));
	json_object_object_add(limits, "mem", json_object_new_int64((int64_t)sb->limits.mem_bytes));
	json_object_object_add(limits, "cpus", json_object_new_double(sb->limits.cpu_millis / 1000.0));
	json_object_object_add(limits, "pids", json_object_new_int64(sb->limits.pids));
	json_object_object_add(limits, "disk", json_object_new_int64((int64_t)sb->limits.disk_bytes));
	json_object_object_add(o, "limits", limits);
	json_object_object_add(o, "meta", json_object_get(sb->meta));
	pthread_mutex_unlock(&sb->lock);
	return json_text(o);
}

char *sandbox_metrics_json(struct sandbox *sb)
{
	struct sbx_metrics m = { 0 };
	struct sbx_err err = { 0 };
	json_object *o;
	int ret = -ENOENT;

	struct sbx_instance *inst = inst_enter(sb, INST_SHARED, &err);

	if (inst) {
		ret = sb->ctl->ops->metrics(inst, &m, &err);
		inst_leave(sb, INST_SHARED);
	}
	o = json_object_new_object();
	json_object_object_add(o, "cpu_seconds", json_object_new_double(m.cpu_seconds));
	json_object_object_add(o, "cpu_percent", json_object_new_double(m.cpu_percent));
	json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)m.mem_used_bytes));
	json_object_object_add(o, "memory_limit_bytes", json_object_new_int64((int64_t)m.mem_limit_bytes));
	json_object_object_add(o, "pids", json_object_new_int64(m.pids));
	json_object_object_add(o, "disk_read_bytes", json_object_new_int64((int64_t)m.disk_read_bytes));
	json_object_object_add(o, "disk_write_bytes", json_object_new_int64((int64_t)m.disk_write_bytes));
	json_object_object_add(o, "disk_used_bytes", json_object_new_int64((int64_t)m.disk_used_bytes));
	json_object_object_add(o, "net_rx_bytes", json_object_new_int64((int64_t)m.net_rx_bytes));
	json_object_object_add(o, "net_tx_bytes", json_object_new_int64((int64_t)m.net_tx_bytes));
	if (ret)
		json_object_object_add(o, "error", json_object_new_string(err.msg[0] ? err.msg : "sandbox is not running"));
	return json_text(o);
}

char *sandbox_env_text(struct sandbox *sb)
{
	size_t total = 1, off = 0;
	char *text;

	pthread_mutex_lock(&sb->lock);
	for (char **e = sb->env; e && *e; e++)
		total += strlen(*e) + 1;
	text = malloc(total);
	if (text) {
		for (char **e = sb->env; e && *e; e++) {
			size_t n = strlen(*e);

			memcpy(text + off, *e, n);
			text[off + n] = '\n';
			off += n + 1;
		}
		text[off] = '\0';
	}
	pthread_mutex_unlock(&sb->lock);
	return text;
}

int sandbox_set_env(struct sandbox *sb, const char *buf, size_t len, struct sbx_err *err)
{
	char **env = NULL, **old;
	int ret = ctl_parse_env_file(buf, len, &env, err);

	if (ret)
		return ret;
	pthread_mutex_lock(&sb->lock);
	old = sb->env;
	sb->env = env;
	pthread_mutex_unlock(&sb->lock);
	ret = state_save(sb, err);
	if (ret) {
		/* A failed command changes nothing: runs keep the env that is on disk. */
		pthread_mutex_lock(&sb->lock);
		if (sb->env == env) {
			sb->env = old;
			old = env;
		}
		pthread_mutex_unlock(&sb->lock);
	}
	ctl_strv_free(old);
	return ret;
}

int sandbox_root_fd(struct sandbox *sb, int *fd, struct sbx_err *err)
{
	int ret;

	struct sbx_instance *inst;

	if (!sb->ctl->ops->root_fd)
		return sbx_err_set(err, ENOTSUP, "the %s backend has no files/", sb->ctl->ops->name);
	inst = inst_enter(sb, INST_SHARED, err);
	if (!inst)
		return -err->code;
	ret = sb->ctl->ops->root_fd(inst, fd, err);
	inst_leave(sb, INST_SHARED);
	return ret;
}

int sandbox_user_ids(struct sandbox *sb, uid_t *uid, gid_t *gid, struct sbx_err *err)
{
	int ret;

	struct sbx_instance *inst;

	if (!sb->ctl->ops->user_ids)
		return sbx_err_set(err, ENOTSUP, "the %s backend tells no sandbox user", sb->ctl->ops->name);
	inst = inst_enter(sb, INST_SHARED | INST_EVEN_DEAD, err);
	if (!inst)
		return -err->code;
	ret = sb->ctl->ops->user_ids(inst, uid, gid, err);
	inst_leave(sb, INST_SHARED | INST_EVEN_DEAD);
	return ret;
}
