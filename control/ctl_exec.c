/*
 * ctl_exec.c - what each ctl command does, and the `errors` log.
 *
 * Commands are looked up in tables of name and argument count (as Plan 9's
 * ctl files do); a write of several lines runs them in order and stops at the
 * first bad one.
 */
#include "sandbox.h"
#include "ctl_parse.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERRORS_MAX 100
#define ECHO_MAX 200

/* ---- errors log ---- */

static void quote_bytes(char *out, size_t size, const char *in, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && i < ECHO_MAX && o + 5 < size; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x20 && c < 0x7f)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
	}
	if (len > ECHO_MAX && o + 4 < size)
		o += (size_t)snprintf(out + o, size - o, "...");
	out[o < size ? o : size - 1] = '\0';
}

void errors_add(struct sbx_ctl *ctl, const char *where, const char *cmd, size_t cmd_len,
		const char *reason)
{
	char echo[ECHO_MAX * 4 + 8], stamp[32], *line;
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	while (cmd_len && (cmd[cmd_len - 1] == '\n' || cmd[cmd_len - 1] == '\r'))
		cmd_len--;
	quote_bytes(echo, sizeof(echo), cmd, cmd_len);
	/* An operator sees failed commands in the log too (the errno's words end the reason). */
	sbx_log(SBX_LOG_WARNING, NULL, 0, "%s: %s: %s", where, echo, reason);
	if (asprintf(&line, "%s %s: %s: %s\n", stamp, where, echo, reason) < 0)
		return;
	pthread_mutex_lock(&ctl->lock);
	if (ctl->nerrors == ERRORS_MAX) {
		free(ctl->errors[ctl->errors_head]);
		ctl->errors[ctl->errors_head] = line;
		ctl->errors_head = (ctl->errors_head + 1) % ERRORS_MAX;
	} else {
		ctl->errors[(ctl->errors_head + ctl->nerrors) % ERRORS_MAX] = line;
		ctl->nerrors++;
	}
	pthread_mutex_unlock(&ctl->lock);
}

void ctl_log_error(struct sbx_ctl *ctl, const char *where, const char *what, size_t what_len,
		   const char *reason)
{
	errors_add(ctl, where, what, what_len, reason);
}

char *ctl_errors_text(struct sbx_ctl *ctl)
{
	size_t total = 1, off = 0;
	char *text;

	pthread_mutex_lock(&ctl->lock);
	for (size_t i = 0; i < ctl->nerrors; i++)
		total += strlen(ctl->errors[(ctl->errors_head + i) % ERRORS_MAX]);
	text = malloc(total);
	if (text) {
		for (size_t i = 0; i < ctl->nerrors; i++) {
			const char *l = ctl->errors[(ctl->errors_head + i) % ERRORS_MAX];
			size_t n = strlen(l);

			memcpy(text + off, l, n);
			off += n;
		}
		text[off] = '\0';
	}
	pthread_mutex_unlock(&ctl->lock);
	return text;
}

/* ---- shared key parsing ---- */

static const char *const limit_keys[] = { "mem", "cpus", "pids", "disk", NULL };

static bool is_limit_key(const char *key)
{
	for (size_t i = 0; limit_keys[i]; i++)
		if (strcmp(key, limit_keys[i]) == 0)
			return true;
	return false;
}

/* Applies a limit key (one is_limit_key accepts) to *l: 0 or a negative errno. */
static int apply_limit(const char *key, const char *value, struct sbx_limits *l, struct sbx_err *err)
{
	uint64_t u;
	int ret;

	if (strcmp(key, "mem") == 0) {
		ret = ctl_parse_size(key, value, &l->mem_bytes, err);
		if (!ret && l->mem_bytes && l->mem_bytes < 16ull << 20)
			return sbx_err_set(err, ERANGE, "mem %s is too small: at least 16M", value);
		return ret;
	}
	if (strcmp(key, "cpus") == 0)
		return ctl_parse_cpus(key, value, &l->cpu_millis, err);
	if (strcmp(key, "pids") == 0) {
		ret = ctl_parse_uint(key, value, 8, 1u << 22, &u, err);
		if (!ret)
			l->pids = (uint32_t)u;
		return ret;
	}
	ret = ctl_parse_size(key, value, &l->disk_bytes, err);
	if (!ret && l->disk_bytes && l->disk_bytes < 16ull << 20)
		return sbx_err_set(err, ERANGE, "disk %s is too small: at least 16M", value);
	return ret;
}

static int env_set(char ***envp, const char *key, const char *value)
{
	size_t klen = strlen(key), n = 0;
	char *entry, **grown;

	if (asprintf(&entry, "%s=%s", key, value) < 0)
		return -ENOMEM;
	for (char **e = *envp; e && *e; e++, n++) {
		if (strncmp(*e, key, klen) == 0 && (*e)[klen] == '=') {
			free(*e);
			*e = entry;
			return 0;
		}
	}
	grown = realloc(*envp, (n + 2) * sizeof(char *));
	if (!grown) {
		free(entry);
		return -ENOMEM;
	}
	grown[n] = entry;
	grown[n + 1] = NULL;
	*envp = grown;
	return 0;
}

/* ---- root commands ---- */

/* One key=value of `new` other than a limit; template points into kv. */
static int new_key(const struct ctl_kv *kv, const char **template_name, uint64_t *ttl, uint64_t *timeout,
		   char ***env, json_object *meta, struct sbx_err *err)
{
	const char *k = kv->key, *v = kv->value;
	int ret;

	if (strcmp(k, "template") == 0) {
		*template_name = v;
		return strlen(v) > 64 || !v[0] ? sbx_err_set(err, EINVAL, "template name '%.40s' must be 1-64 bytes", v)
					       : 0;
	}
	if (strcmp(k, "ttl") == 0)
		return ctl_parse_seconds(k, v, ttl, err);
	if (strcmp(k, "timeout") == 0) {
		ret = ctl_parse_seconds(k, v, timeout, err);
		return !ret && *timeout == 0 ? sbx_err_set(err, ERANGE, "timeout must be at least 1 second") : ret;
	}
	if (strncmp(k, "env.", 4) == 0) {
		ret = ctl_check_env_key(k + 4, err);
		if (!ret && env_set(env, k + 4, v))
			ret = sbx_err_set(err, ENOMEM, "out of memory");
		return ret;
	}
	if (strncmp(k, "meta.", 5) == 0 && k[5]) {
		json_object_object_add(meta, k + 5, json_object_new_string(v));
		return 0;
	}
	return sbx_err_set(err, EINVAL,
			   "unknown key '%s' (known: template, ttl, timeout, mem, cpus, pids, disk, env.KEY, meta.KEY)",
			   k);
}

static int cmd_new(struct sbx_ctl *ctl, const struct ctl_cmd *c, char **reply, struct sbx_err *err)
{
	const char *name = c->args[0], *template_name = "default";
	struct sbx_limits limits = ctl->cfg.limits;
	uint64_t ttl = ctl->cfg.ttl, timeout = ctl->cfg.timeout;
	json_object *meta = json_object_new_object();
	char **env = NULL;
	int ret;

	ret = ctl_check_name(name, err);
	if (ret)
		goto out_free;
	if (ctl_name_reserved(ctl, name)) {
		ret = sbx_err_set(err, EINVAL, "name '%s' is reserved", name);
		goto out_free;
	}
	if (!meta) {
		ret = sbx_err_set(err, ENOMEM, "out of memory");
		goto out_free;
	}
	for (size_t i = 0; i < c->nkvs && !ret; i++) {
		if (is_limit_key(c->kvs[i].key))
			ret = apply_limit(c->kvs[i].key, c->kvs[i].value, &limits, err);
		else
			ret = new_key(&c->kvs[i], &template_name, &ttl, &timeout, &env, meta, err);
	}
	if (!ret)
		ret = ctl_check_env(env, err);
	if (ret)
		goto out_free;
	ret = sandbox_create(ctl, name, template_name, ttl, timeout, &limits, env, meta, err);
	env = NULL;
	meta = NULL;
	if (!ret && asprintf(reply, "ok %s\n", name) < 0)
		*reply = NULL;
out_free:
	ctl_strv_free(env);
	if (meta)
		json_object_put(meta);
	return ret;
}

static int cmd_kill_root(struct sbx_ctl *ctl, const struct ctl_cmd *c, char **reply, struct sbx_err *err)
{
	int ret;

	(void)reply;
	ret = ctl_check_name(c->args[0], err);
	if (ret)
		return ret;
	return ctl_kill(ctl, c->args[0], err);
}

/* ---- sandbox commands ---- */

static int with_inst(struct sandbox *sb, int (*op)(struct sbx_instance *, struct sbx_err *),
		     struct sbx_err *err)
{
	int ret;

	struct sbx_instance *inst = inst_enter(sb, INST_EXCL, err);

	if (!inst)
		return -err->code;
	ret = op(inst, err);
	inst_leave(sb, INST_EXCL);
	return ret;
}

static int cmd_kill_sb(struct sandbox *sb, const struct ctl_cmd *c, struct sbx_err *err)
{
	(void)c;
	return sandbox_destroy(sb->ctl, sb, err);
}

/* pause, resume, restart: the backend call, then the state it leaves, saved. */
static int lifecycle(struct sandbox *sb, int (*op)(struct sbx_instance *, struct sbx_err *), bool paused,
		     const char *event, struct sbx_err *err)
{
	int ret = with_inst(sb, op, err);

	if (ret) {
		events_emit(sb->ctl, "error", sb->name, "could not be %s: %s", event, err->msg);
		return ret;
	}
	events_emit(sb->ctl, event, sb->name, "%s", "");
	pthread_mutex_lock(&sb->lock);
	sb->paused = paused;
	if (!paused)
		sb->last_active = time(NULL);   /* the TTL counts from a resume or restart */
	pthread_mutex_unlock(&sb->lock);
	return state_save(sb, err);
}

static int cmd_pause(struct sandbox *sb, const struct ctl_cmd *c, struct sbx_err *err)
{
	(void)c;
	return lifecycle(sb, sb->ctl->ops->pause, true, "paused", err);
}

static int cmd_resume(struct sandbox *sb, const struct ctl_cmd *c, struct sbx_err *err)
{
	(void)c;
	return lifecycle(sb, sb->ctl->ops->resume, false, "resumed", err);
}

static int cmd_restart(struct sandbox *sb, const struct ctl_cmd *c, struct sbx_err *err)
{
	(void)c;
	return lifecycle(sb, sb->ctl->ops->restart, false, "restarted", err);
}

static int cmd_ttl(struct sandbox *sb, const struct ctl_cmd *c, struct sbx_err *err)
{
	uint64_t ttl, old;
	int ret = ctl_parse_seconds("ttl", c->args[0], &ttl, err);

	if (ret)
		return ret;
	pthread_mutex_lock(&sb->lock);
	old = sb->ttl;
	sb->ttl = ttl;
	sb->last_active = time(NULL);
	pthread_mutex_unlock(&sb->lock);
	ret = state_save(sb, err);
	if (ret) {
		/* A failed command changes nothing (unless another one changed it since). */
		pthread_mutex_lock(&sb->lock);
		if (sb->ttl == ttl)
			sb->ttl = old;
		pthread_mutex_unlock(&sb->lock);
	}
	return ret;
}

static int cmd_timeout(struct sandbox *sb, const struct ctl_cmd *c, struct sbx_err *err)
{
	uint64_t timeout, old;
	int ret = ctl_parse_seconds("timeout", c->args[0], &timeout, err);

	if (ret)
		return ret;
	if (timeout == 0)
		return sbx_err_set(err, ERANGE, "timeout must be at least 1 second");
	pthread_mutex_lock(&sb->lock);
	old = sb->timeout;
	sb->timeout = timeout;
	pthread_mutex_unlock(&sb->lock);
	ret = state_save(sb, err);
	if (ret) {
		pthread_mutex_lock(&sb->lock);
		if (sb->timeout == timeout)
			sb->timeout = old;
		pthread_mutex_unlock(&sb->lock);
	}
	return ret;
}

static int cmd_set(struct sandbox *sb, const struct ctl_cmd *c, struct sbx_err *err)
{
	struct sbx_instance *inst;
	struct sbx_limits limits;
	int ret;

	if (c->nkvs == 0)
		return sbx_err_set(err, EINVAL, "set needs KEY=VALUE (mem, cpus, pids, disk)");
	pthread_mutex_lock(&sb->lock);
	limits = sb->limits;
	pthread_mutex_unlock(&sb->lock);
	for (size_t i = 0; i < c->nkvs; i++) {
		if (!is_limit_key(c->kvs[i].key))
			return sbx_err_set(err, EINVAL, "unknown limit '%s' (known: mem, cpus, pids, disk)",
					   c->kvs[i].key);
		ret = apply_limit(c->kvs[i].key, c->kvs[i].value, &limits, err);
		if (ret)
			return ret;
	}
	inst = inst_enter(sb, INST_EXCL, err);
	if (!inst)
		return -err->code;
	ret = sb->ctl->ops->set_limits(inst, &limits, err);
	inst_leave(sb, INST_EXCL);
	if (ret)
		return ret;
	pthread_mutex_lock(&sb->lock);
	sb->limits = limits;
	pthread_mutex_unlock(&sb->lock);
	return state_save(sb, err);
}

struct root_cmd {
	const char *verb;
	size_t nargs;
	bool kvs;
	const char *usage;
	int (*fn)(struct sbx_ctl *, const struct ctl_cmd *, char **, struct sbx_err *);
};

static const struct root_cmd root_cmds[] = {
	{ "new", 1, true, "new NAME [key=value ...]", cmd_new },
	{ "kill", 1, false, "kill NAME", cmd_kill_root },
};

struct sb_cmd {
	const char *verb;
	size_t nargs;
	bool kvs;
	const char *usage;
	int (*fn)(struct sandbox *, const struct ctl_cmd *, struct sbx_err *);
};

static const struct sb_cmd sb_cmds[] = {
	{ "kill", 0, false, "kill", cmd_kill_sb },
	{ "pause", 0, false, "pause", cmd_pause },
	{ "resume", 0, false, "resume", cmd_resume },
	{ "restart", 0, false, "restart", cmd_restart },
	{ "ttl", 1, false, "ttl SECONDS", cmd_ttl },
	{ "timeout", 1, false, "timeout SECONDS", cmd_timeout },
	{ "set", 0, true, "set KEY=VALUE ...", cmd_set },
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int check_shape(const struct ctl_cmd *c, size_t nargs, bool kvs, const char *usage,
		       struct sbx_err *err)
{
	if (c->nargs != nargs || (!kvs && c->nkvs))
		return sbx_err_set(err, EINVAL, "usage: %s", usage);
	return 0;
}

struct exec_state {
	struct sbx_ctl *ctl;
	struct sandbox *sb;
	const char *where;
	char *reply;
	size_t reply_len;
	int ret;
};

static void reply_append(struct exec_state *st, const char *text)
{
	size_t n = strlen(text);
	char *grown = realloc(st->reply, st->reply_len + n + 1);

	if (!grown)
		return;
	memcpy(grown + st->reply_len, text, n + 1);
	st->reply = grown;
	st->reply_len += n;
}

static int exec_root(struct exec_state *st, const struct ctl_cmd *c, char **ok, struct sbx_err *err)
{
	for (size_t i = 0; i < ARRAY_LEN(root_cmds); i++) {
		const struct root_cmd *rc = &root_cmds[i];
		int ret;

		if (strcmp(rc->verb, c->verb) != 0)
			continue;
		ret = check_shape(c, rc->nargs, rc->kvs, rc->usage, err);
		return ret ? ret : rc->fn(st->ctl, c, ok, err);
	}
	return sbx_err_set(err, EINVAL, "unknown command '%.40s' (known: new, kill)", c->verb);
}

static int exec_sb(struct exec_state *st, const struct ctl_cmd *c, struct sbx_err *err)
{
	for (size_t i = 0; i < ARRAY_LEN(sb_cmds); i++) {
		const struct sb_cmd *sc = &sb_cmds[i];
		int ret;

		if (strcmp(sc->verb, c->verb) != 0)
			continue;
		ret = check_shape(c, sc->nargs, sc->kvs, sc->usage, err);
		if (!ret && !sandbox_alive(st->sb))
			ret = sbx_err_set(err, ENOENT, "sandbox '%s' is gone", st->sb->name);
		return ret ? ret : sc->fn(st->sb, c, err);
	}
	return sbx_err_set(err, EINVAL,
			   "unknown command '%.40s' (known: kill, pause, resume, restart, ttl, timeout, set)",
			   c->verb);
}

static int exec_line(const char *line, size_t len, void *arg)
{
	struct exec_state *st = arg;
	struct sbx_err err = { 0 };
	char *ok = NULL, *text;
	struct ctl_cmd c;
	int ret;

	ret = ctl_parse_line(line, len, &c, &err);
	if (ret == -ENODATA)
		return 0;
	if (!ret) {
		ret = st->sb ? exec_sb(st, &c, &err) : exec_root(st, &c, &ok, &err);
		ctl_cmd_free(&c);
	}
	if (!ret) {
		reply_append(st, ok ? ok : "ok\n");
		free(ok);
		return 0;
	}
	free(ok);
	if (asprintf(&text, "error: %s\n", err.msg) >= 0) {
		reply_append(st, text);
		free(text);
	}
	errors_add(st->ctl, st->where, line, len, err.msg);
	metrics_failed_command(st->ctl, ret);
	st->ret = ret;
	return ret;
}

int ctl_execute(struct sbx_ctl *ctl, struct sandbox *sb, const char *buf, size_t len,
		const char *where, char **reply)
{
	struct exec_state st = { .ctl = ctl, .sb = sb, .where = where };

	if (len > (size_t)CTL_LINE_MAX * 4) {
		struct sbx_err err;

		sbx_err_set(&err, E2BIG, "command too long (%zu bytes; at most %d per line)", len, CTL_LINE_MAX);
		errors_add(ctl, where, buf, len, err.msg);
		metrics_failed_command(ctl, E2BIG);
		if (asprintf(reply, "error: %s\n", err.msg) < 0)
			*reply = NULL;
		return -E2BIG;
	}
	ctl_for_each_line(buf, len, exec_line, &st);
	if (!st.reply && !st.ret)
		reply_append(&st, "");
	*reply = st.reply;
	return st.ret;
}
