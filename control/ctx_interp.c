/*
 * ctx_interp.c - the long-lived interpreters of contexts: a driver program
 * (control/drivers/) started through the backend like any run, with three
 * pipes whose daemon ends stay open between runs.
 *
 * While an interpreter lives, a file CTX/.live-LANG says so on disk. The
 * interpreters do not outlive the daemon (they are children of its connection
 * to the sandbox), so a file found at start-up means that state was lost, and
 * the next run of that language says so. A run that ends an interpreter itself
 * (timeout, crash, malformed frame) tells the user then and removes the file.
 */
#include "context.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_parse.h"

static const char *const driver_files[RUN_LANG_COUNT] = { "python_ctx.py", "node_ctx.js", "bash_ctx.sh" };
const char *const ctx_interp_names[RUN_LANG_COUNT] = { "python", "node", "bash" };

static void live_path(const struct context *c, enum run_lang lang, char *out, size_t size)
{
	snprintf(out, size, "%s/.live-%s", c->dir, ctx_interp_names[lang]);
}

static void interp_close(struct ctx_interp *ip)
{
	if (ip->in_fd >= 0)
		close(ip->in_fd);
	if (ip->out_fd >= 0)
		close(ip->out_fd);
	if (ip->err_fd >= 0)
		close(ip->err_fd);
	ip->in_fd = ip->out_fd = ip->err_fd = -1;
}

void interp_end(struct sandbox *sb, struct ctx_interp *ip, bool kill, struct sbx_exit *how)
{
	struct sbx_exit ex = { .signaled = true, .code = SIGKILL };
	struct sbx_err err = { 0 };

	if (!ip->proc)
		return;
	if (kill)
		sb->ctl->ops->kill_proc(ip->proc, SIGKILL);
	/*
	 * Our ends go first: a backend that copies the process's output into
	 * these pipes (docker) may be blocked on a full one, and its wait
	 * would wait for that copy.
	 */
	interp_close(ip);
	if (sb->ctl->ops->wait_proc(ip->proc, &ex, &err))
		ex = (struct sbx_exit){ .signaled = true, .code = SIGKILL };
	/* Only the queue's worker (or the last thread, once it is gone) kills an interpreter. */
	sb->ctl->ops->free_proc(ip->proc);
	ip->proc = NULL;
	if (how)
		*how = ex;
}

void interp_stop(struct sandbox *sb, struct context *c, enum run_lang lang, struct sbx_exit *how)
{
	char path[4400];

	interp_end(sb, &c->interp[lang], true, how);
	live_path(c, lang, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot remove '%s'", path);
}

void ctx_kill_interps(struct sandbox *sb, struct context *c)
{
	/* The .live files stay: the state of these interpreters is lost unannounced. */
	for (int i = 0; i < RUN_LANG_COUNT; i++)
		interp_end(sb, &c->interp[i], true, NULL);
}

void interp_find_lost(struct context *c)
{
	char path[4400];

	for (int i = 0; i < RUN_LANG_COUNT; i++) {
		live_path(c, (enum run_lang)i, path, sizeof(path));
		c->interp[i].lost = access(path, F_OK) == 0;
	}
}

/* The driver's source: beside sbxfs-agent once installed, or in the build tree's control/drivers/. */
static char *driver_source(struct sbx_ctl *ctl, enum run_lang lang, size_t *len, struct sbx_err *err)
{
	const char *dir = ctl->cfg.helper_dir ? ctl->cfg.helper_dir : SBX_HELPER_DIR;
	char path[4200];
	char *buf = NULL;
	struct stat st;
	int fd = -1;

	for (size_t i = 0; i < 2 && fd < 0; i++) {
		if (i == 0)
			snprintf(path, sizeof(path), "%s/%s", dir, driver_files[lang]);
		else
			snprintf(path, sizeof(path), "%s/../../control/drivers/%s", dir, driver_files[lang]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		sbx_err_sys(err, ENOENT, "cannot find the context driver '%s' in '%s'", driver_files[lang], dir);
		return NULL;
	}
	if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < (1 << 20))
		buf = malloc((size_t)st.st_size);
	if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size) {
		sbx_err_set(err, EIO, "cannot read the context driver '%s'", path);
		free(buf);
		close(fd);
		return NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
}

/* Spawns the driver with the pipes' far ends as its 0, 1, 2. */
static int interp_spawn(struct sandbox *sb, struct ctx_interp *ip, enum run_lang lang, int fds[3],
			struct sbx_err *err)
{
	static const char node_shell[] = "exec 3<&0 0</dev/null; exec node \"$0\"";
	const char *argv_py[] = { "python3", "{script}", NULL };
	const char *argv_js[] = { "bash", "-c", node_shell, "{script}", NULL };
	const char *argv_sh[] = { "bash", "--noprofile", "--norc", "{script}", NULL };
	const char *const *argv[RUN_LANG_COUNT] = { argv_py, argv_js, argv_sh };
	struct sbx_exec ex = { 0 };
	char **envp = NULL, *script;
	struct sbx_instance *inst;
	size_t script_len = 0;
	int ret;

	script = driver_source(sb->ctl, lang, &script_len, err);
	if (!script)
		return -err->code;
	envp = run_envp(sb);
	if (!envp) {
		free(script);
		return sbx_err_set(err, ENOMEM, "out of memory");
	}
	ex.argv = argv[lang];
	ex.envp = (const char *const *)envp;
	ex.cwd = "/home/user";
	ex.stdin_fd = fds[0];
	ex.stdout_fd = fds[1];
	ex.stderr_fd = fds[2];
	ex.script = script;
	ex.script_len = script_len;
	ex.script_name = driver_files[lang];
	inst = inst_enter(sb, INST_SHARED, err);
	ret = inst ? sb->ctl->ops->spawn(inst, &ex, &ip->proc, err) : -err->code;
	if (inst)
		inst_leave(sb, INST_SHARED);
	if (ret) {
		ip->proc = NULL;
		sbx_err_wrap(err, "cannot start the %s interpreter", ctx_interp_names[lang]);
	}
	ctl_strv_free(envp);
	free(script);
	return ret;
}

static void note_live(struct context *c, enum run_lang lang)
{
	char path[4400];
	int fd;

	live_path(c, lang, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		sbx_log(SBX_LOG_WARNING, NULL, errno, "cannot create '%s'", path);
	else
		close(fd);
}

int interp_start(struct sandbox *sb, struct context *c, enum run_lang lang, struct sbx_err *err)
{
	struct ctx_interp *ip = &c->interp[lang];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, er[2] = { -1, -1 };
	int ret;

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC)) {
		ret = sbx_err_sys(err, errno, "cannot make pipes");
		goto out;
	}
	ret = interp_spawn(sb, ip, lang, (int[3]){ in[0], out[1], er[1] }, err);
	if (ret)
		goto out;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(er[0], F_SETFL, O_NONBLOCK);
	ip->in_fd = in[1];
	ip->out_fd = out[0];
	ip->err_fd = er[0];
	in[1] = out[0] = er[0] = -1;
	note_live(c, lang);
out:
	close_pair(in);
	close_pair(out);
	close_pair(er);
	return ret;
}

bool interp_drop_stale(struct ctx_interp *ip)
{
	char buf[65536];
	int fds[2] = { ip->out_fd, ip->err_fd };

	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < 64; k++) {
			ssize_t n = read(fds[i], buf, sizeof(buf));

			if (n == 0)
				return false;
			if (n < 0)
				break;
		}
	}
	return true;
}
