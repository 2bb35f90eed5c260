/*
 * main.c - sbxfs: code-execution sandboxes as a FUSE filesystem.
 *
 *   sbxfs [-f] [-o backend=local,state=DIR,...] MOUNTPOINT
 *
 * Parses the options, opens the control plane (which re-attaches every
 * sandbox in the state directory), mounts, and serves requests until
 * unmounted. Unmounting leaves every sandbox running.
 */
#include "fs.h"
#include "dirtab.h"
#include "scratch.h"
#include "../control/ctl_parse.h"
#include "../backend/log.h"
#include "../backend/util.h"

#include <errno.h>
#include <fuse_opt.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const struct fuse_lowlevel_ops sbxfs_ops;

struct options {
	char *backend, *state, *ttl, *timeout, *mem, *cpus, *pids, *disk, *history, *output_max;
	char *docker_host;
	char *scratch_ttl;   /* hidden, for tests: seconds a scratch file left alone lives (default 60) */
	char *log, *log_level;
	int help, version;
};

#define OPT(t, p) { t, offsetof(struct options, p), 1 }
static const struct fuse_opt option_spec[] = {
	OPT("backend=%s", backend),   OPT("state=%s", state),   OPT("ttl=%s", ttl),
	OPT("timeout=%s", timeout),   OPT("mem=%s", mem),       OPT("cpus=%s", cpus),
	OPT("pids=%s", pids),         OPT("disk=%s", disk),     OPT("history=%s", history),
	OPT("output_max=%s", output_max), OPT("docker_host=%s", docker_host),
	OPT("scratch_ttl=%s", scratch_ttl), OPT("log=%s", log),      OPT("log_level=%s", log_level),
	OPT("-h", help),              OPT("--help", help),      OPT("-V", version),
	OPT("--version", version),    FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("usage: %s [options] [SOURCE] MOUNTPOINT   (SOURCE, as mount(8) passes it, is ignored)\n\n"
	       "sbxfs options (-o name=value, comma-separated):\n"
	       "    -o backend=local|docker  backend that runs sandboxes (default: local)\n"
	       "    -o state=DIR             where sandbox state lives (default: /var/lib/sbxfs for root,\n"
	       "                             $XDG_STATE_HOME/sbxfs or ~/.local/state/sbxfs otherwise)\n"
	       "    -o ttl=SECONDS           default time-to-live of a sandbox, 0 = never (default: 600)\n"
	       "    -o timeout=SECONDS       default run timeout (default: 60)\n"
	       "    -o mem=SIZE              default memory limit (default: 512M)\n"
	       "    -o cpus=N                default CPU limit in cores (default: 1)\n"
	       "    -o pids=N                default process limit (default: 256)\n"
	       "    -o disk=SIZE             default limit on what a sandbox writes (default: 1G)\n"
	       "    -o history=N             runs kept under runs/ (default: 20)\n"
	       "    -o output_max=SIZE       cap on stdout and on stderr of one run (default: 64M)\n"
	       "    -o docker_host=URL       docker engine: unix:///path or tcp://host:port\n"
	       "                             (default: $DOCKER_HOST or unix:///var/run/docker.sock)\n"
	       "    -o log=syslog|stderr|FILE where warnings and errors go (default: syslog, stderr with -f)\n"
	       "    -o log_level=LEVEL       error, warn, info or debug (default: warn)\n"
	       "\n", prog);
}

static int parse_options(const struct options *o, struct ctl_config *cfg, struct sbx_err *err)
{
	uint64_t v;
	int ret;

	cfg->backend = o->backend ? o->backend : "local";
	cfg->docker_host = o->docker_host;
	cfg->ttl = 600;
	cfg->timeout = 60;
	cfg->limits.mem_bytes = 512ull << 20;
	cfg->limits.cpu_millis = 1000;
	cfg->limits.pids = 256;
	cfg->limits.disk_bytes = 1ull << 30;
	cfg->history = 20;
	cfg->output_max = 64ull << 20;
	if (o->ttl && (ret = ctl_parse_seconds("ttl", o->ttl, &cfg->ttl, err)))
		return ret;
	if (o->timeout && (ret = ctl_parse_seconds("timeout", o->timeout, &cfg->timeout, err)))
		return ret;
	if (o->mem && (ret = ctl_parse_size("mem", o->mem, &cfg->limits.mem_bytes, err)))
		return ret;
	if (o->cpus && (ret = ctl_parse_cpus("cpus", o->cpus, &cfg->limits.cpu_millis, err)))
		return ret;
	if (o->pids) {
		ret = ctl_parse_uint("pids", o->pids, 8, 1u << 22, &v, err);
		if (ret)
			return ret;
		cfg->limits.pids = (uint32_t)v;
	}
	if (o->disk && (ret = ctl_parse_size("disk", o->disk, &cfg->limits.disk_bytes, err)))
		return ret;
	if (o->history) {
		ret = ctl_parse_uint("history", o->history, 1, 100000, &v, err);
		if (ret)
			return ret;
		cfg->history = (uint32_t)v;
	}
	if (o->output_max && (ret = ctl_parse_size("output_max", o->output_max, &cfg->output_max, err)))
		return ret;
	if (cfg->timeout == 0)
		return sbx_err_set(err, ERANGE, "timeout must be at least 1 second");
	return 0;
}

/* The FUSE layer's own options. */
static int parse_fs_options(const struct options *o, struct sbx_err *err)
{
	uint64_t v;
	int ret;

	if (o->scratch_ttl) {
		ret = ctl_parse_seconds("scratch_ttl", o->scratch_ttl, &v, err);
		if (ret)
			return ret;
		fs.scratch.ttl_ms = v * 1000;
	}
	return 0;
}

static char *default_state_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *dir;

	if (geteuid() == 0)
		return strdup("/var/lib/sbxfs");
	if (xdg && xdg[0] == '/')
		return asprintf(&dir, "%s/sbxfs", xdg) < 0 ? NULL : dir;
	return asprintf(&dir, "%s/.local/state/sbxfs", home ? home : "/tmp") < 0 ? NULL : dir;
}

/* Where sbxfs-agent is: beside this binary in a build tree, else the install dir. */
static char *find_helper_dir(void)
{
	static const char *const rel[] = { "backend/local", "." };
	char exe[PATH_MAX], probe[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		dirname(exe);
		for (size_t i = 0; i < 2; i++) {
			snprintf(probe, sizeof(probe), "%s/%s/sbxfs-agent", exe, rel[i]);
			if (access(probe, X_OK) == 0) {
				snprintf(probe, sizeof(probe), "%s/%s", exe, rel[i]);
				return realpath(probe, NULL);
			}
		}
	}
	return strdup(SBX_HELPER_DIR);
}

/*
 * Backgrounding: the parent waits until the child has mounted (or failed),
 * so `sbxfs MNT && ls MNT` never races the mount.
 */
static int daemonize_wait(int *notify_fd)
{
	int pipefd[2];
	pid_t pid;
	char status = 1;

	if (pipe(pipefd))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pipefd[1]);
		if (read(pipefd[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(pipefd[0]);
	setsid();
	*notify_fd = pipefd[1];
	return 0;
}

static void daemon_ready(int notify_fd, char status)
{
	int devnull;

	if (notify_fd < 0)
		return;
	if (status == 0) {
		devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
			if (devnull > 2)
				close(devnull);
		}
		if (chdir("/"))
			status = 1;
	}
	if (write(notify_fd, &status, 1) != 1)
		status = 1;
	close(notify_fd);
}

/* What main() gathers before it mounts, and frees at the end. */
struct startup {
	struct fuse_args args;
	struct fuse_cmdline_opts cmd;
	struct options o;
	struct ctl_config cfg;
	char *state, *helper, *mnt_abs;
	char *source;       /* mount(8)'s first argument (mount -t fuse.sbxfs SOURCE DIR): ignored */
	int nonopts;
};

/*
 * mount.fuse3 runs `sbxfs SOURCE MOUNTPOINT -o ...`: the first of two plain
 * arguments is the source, which names nothing here; libfuse's own parser
 * takes only the mount point.
 */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct startup *s = (struct startup *)((char *)data - offsetof(struct startup, o));

	(void)outargs;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (s->nonopts++ == 0) {
		s->source = strdup(arg);
		return s->source ? 0 : -1;
	}
	return 1;
}

static void startup_free(struct startup *s)
{
	char **opts[] = { &s->o.backend, &s->o.state, &s->o.ttl, &s->o.timeout, &s->o.mem, &s->o.cpus,
			  &s->o.pids, &s->o.disk, &s->o.history, &s->o.output_max, &s->o.docker_host,
			  &s->o.scratch_ttl, &s->o.log, &s->o.log_level, &s->state, &s->helper, &s->mnt_abs,
			  &s->source, &s->cmd.mountpoint };

	fuse_opt_free_args(&s->args);
	free((char *)s->cfg.state_root);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		free(*opts[i]);
}

/* The state directory, the mount point and the agent's directory, made absolute. */
static int startup_paths(struct startup *s)
{
	struct sbx_err err = { 0 };

	s->state = s->o.state ? strdup(s->o.state) : default_state_dir();
	if (!s->state) {
		fprintf(stderr, "sbxfs: out of memory\n");
		return -1;
	}
	if (sbx_mkdir_p(s->state, 0700, &err) < 0) {
		fprintf(stderr, "sbxfs: cannot create state directory: %s\n", err.msg);
		return -1;
	}
	s->cfg.state_root = realpath(s->state, NULL);
	s->mnt_abs = realpath(s->cmd.mountpoint, NULL);
	if (!s->cfg.state_root || !s->mnt_abs) {
		fprintf(stderr, "sbxfs: cannot resolve '%s': %m\n", s->cfg.state_root ? s->cmd.mountpoint : s->state);
		return -1;
	}
	s->helper = find_helper_dir();
	s->cfg.helper_dir = s->helper;
	s->cfg.mountpoint = s->mnt_abs;
	s->cfg.name_reserved = root_name_reserved;
	fs.mountpoint = s->mnt_abs;
	fs.uid = getuid();
	fs.gid = getgid();
	return 0;
}

/* Options and paths: 0 to go on, else *code is what main returns. */
static int startup_parse(struct startup *s, const char *prog, int *code)
{
	struct sbx_err err = { 0 };

	*code = 1;
	if (fuse_opt_parse(&s->args, &s->o, option_spec, opt_proc) == -1)
		return -1;
	/* One plain argument: it was the mount point after all. */
	if (s->nonopts == 1 && fuse_opt_add_arg(&s->args, s->source))
		return -1;
	if (s->o.version) {
		printf("sbxfs %s (libfuse %s)\n", SBX_VERSION, fuse_pkgversion());
		*code = 0;
		return -1;
	}
	if (fuse_parse_cmdline(&s->args, &s->cmd) != 0)
		return -1;
	if (s->o.help || s->cmd.show_help) {
		usage(prog);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		*code = 0;
		return -1;
	}
	if (!s->cmd.mountpoint) {
		fprintf(stderr, "sbxfs: no mount point given (see sbxfs --help)\n");
		return -1;
	}
	if (parse_options(&s->o, &s->cfg, &err) || parse_fs_options(&s->o, &err) ||
	    sbx_log_setup(s->o.log ? s->o.log : s->cmd.foreground ? "stderr" : "syslog", s->o.log_level, &err)) {
		fprintf(stderr, "sbxfs: %s\n", err.msg);
		return -1;
	}
	return startup_paths(s);
}

/* Serves requests until unmounted; returns libfuse's loop result. */
static int serve_loop(const struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	int ret;

	fuse_loop_cfg_set_clone_fd(loop, cmd->clone_fd);
	fuse_loop_cfg_set_idle_threads(loop, cmd->max_idle_threads);
	if (cmd->max_threads > 0 && cmd->max_threads <= 100000)
		fuse_loop_cfg_set_max_threads(loop, cmd->max_threads);
	ret = cmd->singlethread ? fuse_session_loop(fs.se) : fuse_session_loop_mt(fs.se, loop);
	fuse_loop_cfg_destroy(loop);
	return ret;
}

/* Mounts, serves, and takes everything down in order; the control plane is open. */
static int serve(struct startup *s, int *notify_fd)
{
	int ret = 1;

	fs.se = fuse_session_new(&s->args, &sbxfs_ops, sizeof(sbxfs_ops), &fs);
	if (!fs.se)
		return 1;
	if (fuse_set_signal_handlers(fs.se))
		goto out_session;
	if (fuse_session_mount(fs.se, s->mnt_abs)) {
		fprintf(stderr, "sbxfs: cannot mount on '%s'\n", s->mnt_abs);
		goto out_signals;
	}
	guard_start(s->mnt_abs);
	if (notify_start() == 0) {
		ctl_set_announcer(fs.ctl, notify_announce, NULL);
		ctl_set_gone_hook(fs.ctl, notify_gone, NULL);
		ctl_set_events_hook(fs.ctl, notify_events, NULL);
	}
	daemon_ready(*notify_fd, 0);
	*notify_fd = -1;
	ret = serve_loop(&s->cmd);

	ctl_set_announcer(fs.ctl, NULL, NULL);
	ctl_set_gone_hook(fs.ctl, NULL, NULL);
	ctl_set_events_hook(fs.ctl, NULL, NULL);
	notify_stop();
	events_stop();
	watch_stop();
	pt_locks_stop();        /* blocked lock requests answered while the session exists */
	fuse_session_unmount(fs.se);
	/*
	 * Runs still going end now, while the session exists: the requests they
	 * hold (a close() waiting for its run, a blocked `wait`) get their reply,
	 * which fails harmlessly on the unmounted channel.
	 */
	ctl_close(fs.ctl);
	fs.ctl = NULL;
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_session:
	fuse_session_destroy(fs.se);
	synth_free_handles();
	scratch_free_all();
	return ret;
}

int main(int argc, char *argv[])
{
	struct startup s = { .args = FUSE_ARGS_INIT(argc, argv) };
	struct sbx_err err = { 0 };
	int code, notify_fd = -1;

	signal(SIGPIPE, SIG_IGN);
	if (startup_parse(&s, argv[0], &code))
		goto out;
	code = 1;
	if (!s.cmd.foreground && daemonize_wait(&notify_fd)) {
		fprintf(stderr, "sbxfs: cannot go to the background: %m\n");
		goto out;
	}
	node_table_init(&root_dirtab);
	pt_init();      /* raises RLIMIT_NOFILE to its hard limit, before any thread */
	watch_init();
	if (ctl_open(&s.cfg, &fs.ctl, &err)) {
		fprintf(stderr, "sbxfs: %s\n", err.msg);
		daemon_ready(notify_fd, 1);
		goto out;
	}
	code = serve(&s, &notify_fd) ? 1 : 0;
	ctl_close(fs.ctl);
	daemon_ready(notify_fd, 1);
out:
	startup_free(&s);
	sbx_log_close();
	return code;
}
