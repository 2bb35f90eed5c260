/*
 * metrics.c - the control plane's figures for the root `metrics` file, in
 * the Prometheus text exposition format (version 0.0.4): counters and
 * histograms are atomics bumped where things happen (no lock), the gauges
 * are read when the file is opened. docs/operations.md lists every name.
 *
 * Histogram buckets follow what was measured: a create takes 5-50 ms on
 * the local backend (more on docker), a run from 5 ms to its 60 s timeout.
 */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const double create_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const double run_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define NB_MAX 13
#define ERRNO_MAX 134                /* errnos counted by number; larger ones count as the last */

static const char *const outcome_names[RUN_OUTCOMES] = { "ok", "failed", "timeout", "error" };
static const char *const lang_names[RUN_LANG_COUNT] = { "python", "node", "bash" };

struct hist {
	_Atomic uint64_t bucket[NB_MAX];     /* not cumulative: one bucket per observation */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_us;
};

struct ctl_metrics {
	_Atomic uint64_t created, create_failed, killed, expired;
	struct hist create;
	struct hist run[RUN_LANG_COUNT][RUN_OUTCOMES];
	_Atomic uint64_t failed[ERRNO_MAX + 1];
};

#define INC(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)
#define GET(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void observe(struct hist *h, const double *bounds, size_t nb, uint64_t us)
{
	size_t i = 0;

	while (i < nb && (double)us > bounds[i] * 1e6)
		i++;
	if (i < nb)
		INC(h->bucket[i]);
	INC(h->count);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

uint64_t metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int metrics_open(struct sbx_ctl *ctl, struct sbx_err *err)
{
	ctl->metrics = calloc(1, sizeof(*ctl->metrics));
	return ctl->metrics ? 0 : sbx_err_set(err, ENOMEM, "out of memory");
}

void metrics_close(struct sbx_ctl *ctl)
{
	free(ctl->metrics);
	ctl->metrics = NULL;
}

void metrics_created(struct sbx_ctl *ctl, bool ok, uint64_t us)
{
	if (!ctl->metrics)
		return;
	if (!ok) {
		INC(ctl->metrics->create_failed);
		return;
	}
	INC(ctl->metrics->created);
	observe(&ctl->metrics->create, create_buckets, sizeof(create_buckets) / sizeof(double), us);
}

void metrics_gone(struct sbx_ctl *ctl, bool expired)
{
	if (ctl->metrics && expired)
		INC(ctl->metrics->expired);
	else if (ctl->metrics)
		INC(ctl->metrics->killed);
}

void metrics_run(struct sbx_ctl *ctl, enum run_lang lang, enum run_outcome outcome, uint64_t us)
{
	if (ctl->metrics && (unsigned)lang < RUN_LANG_COUNT && (unsigned)outcome < RUN_OUTCOMES)
		observe(&ctl->metrics->run[lang][outcome], run_buckets, sizeof(run_buckets) / sizeof(double), us);
}

void metrics_failed_command(struct sbx_ctl *ctl, int errnum)
{
	if (!ctl->metrics)
		return;
	if (errnum < 0)
		errnum = -errnum;
	INC(ctl->metrics->failed[errnum > ERRNO_MAX ? ERRNO_MAX : errnum]);
}

static void put_hist(FILE *f, const char *name, const char *labels, const struct hist *h, const double *bounds,
		     size_t nb)
{
	uint64_t cum = 0;
	const char *sep = labels[0] ? "," : "";

	for (size_t i = 0; i < nb; i++) {
		cum += GET(h->bucket[i]);
		fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i], (unsigned long long)cum);
	}
	fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)GET(h->count));
	fprintf(f, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
		(double)GET(h->sum_us) / 1e6);
	fprintf(f, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
		(unsigned long long)GET(h->count));
}

static void put_counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void put_sandboxes(FILE *f, struct sbx_ctl *ctl)
{
	size_t running = 0, paused = 0;

	pthread_mutex_lock(&ctl->lock);
	for (size_t i = 0; i < ctl->nsandboxes; i++) {
		struct sandbox *sb = ctl->sandboxes[i];

		pthread_mutex_lock(&sb->lock);
		if (sb->paused)
			paused++;
		else if (!sb->dead)
			running++;
		pthread_mutex_unlock(&sb->lock);
	}
	pthread_mutex_unlock(&ctl->lock);
	fprintf(f, "# HELP sbxfs_sandboxes Sandboxes of the mount by state.\n# TYPE sbxfs_sandboxes gauge\n"
		   "sbxfs_sandboxes{state=\"running\"} %zu\nsbxfs_sandboxes{state=\"paused\"} %zu\n",
		running, paused);
}

static void put_runs(FILE *f, const struct ctl_metrics *m)
{
	char labels[64];

	fprintf(f, "# HELP sbxfs_runs_total Runs ended, by language and outcome "
		   "(ok: exit 0, failed: another exit, timeout: killed at its timeout, error: could not run).\n"
		   "# TYPE sbxfs_runs_total counter\n");
	for (int l = 0; l < RUN_LANG_COUNT; l++)
		for (int o = 0; o < RUN_OUTCOMES; o++)
			fprintf(f, "sbxfs_runs_total{language=\"%s\",outcome=\"%s\"} %llu\n", lang_names[l],
				outcome_names[o], (unsigned long long)GET(m->run[l][o].count));
	fprintf(f, "# HELP sbxfs_run_duration_seconds How long runs took, by language and outcome.\n"
		   "# TYPE sbxfs_run_duration_seconds histogram\n");
	for (int l = 0; l < RUN_LANG_COUNT; l++) {
		for (int o = 0; o < RUN_OUTCOMES; o++) {
			snprintf(labels, sizeof(labels), "language=\"%s\",outcome=\"%s\"", lang_names[l],
				 outcome_names[o]);
			put_hist(f, "sbxfs_run_duration_seconds", labels, &m->run[l][o], run_buckets,
				 sizeof(run_buckets) / sizeof(double));
		}
	}
}

static void put_failed(FILE *f, const struct ctl_metrics *m)
{
	fprintf(f, "# HELP sbxfs_failed_commands_total Failed ctl commands, by errno.\n"
		   "# TYPE sbxfs_failed_commands_total counter\n");
	for (int e = 1; e <= ERRNO_MAX; e++) {
		uint64_t v = GET(m->failed[e]);
		const char *name = strerrorname_np(e);

		if (v)
			fprintf(f, "sbxfs_failed_commands_total{errno=\"%s\"} %llu\n",
				e < ERRNO_MAX && name ? name : "other", (unsigned long long)v);
	}
}

/*
 * Open descriptors of the daemon. Linux 6.2 and later give their number as
 * the size of /proc/self/fd (constant time, where a listing of thousands of
 * descriptors takes milliseconds); older kernels say 0 there and are counted.
 */
static size_t count_fds(void)
{
	struct stat st;
	size_t fds = 0;
	DIR *d;

	if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0)
		return (size_t)st.st_size;
	d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	while (readdir(d))
		fds++;
	closedir(d);
	return fds >= 3 ? fds - 3 : 0;   /* ".", ".." and the listing's own descriptor */
}

/* Open descriptors and resident memory of the daemon. */
static void put_process(FILE *f)
{
	unsigned long long pages = 0, rss = 0;
	size_t fds = count_fds();
	FILE *statm = fopen("/proc/self/statm", "re");

	if (statm) {
		if (fscanf(statm, "%llu %llu", &pages, &rss) != 2)
			rss = 0;
		fclose(statm);
	}
	fprintf(f, "# HELP sbxfs_process_open_fds Open file descriptors of the daemon.\n"
		   "# TYPE sbxfs_process_open_fds gauge\nsbxfs_process_open_fds %zu\n", fds);
	fprintf(f, "# HELP sbxfs_process_resident_memory_bytes Resident memory of the daemon.\n"
		   "# TYPE sbxfs_process_resident_memory_bytes gauge\nsbxfs_process_resident_memory_bytes %llu\n",
		rss * (unsigned long long)sysconf(_SC_PAGESIZE));
}

void ctl_metrics_write(struct sbx_ctl *ctl, FILE *f)
{
	const struct ctl_metrics *m = ctl->metrics;

	put_sandboxes(f, ctl);
	if (!m)
		return;
	put_counter(f, "sbxfs_sandboxes_created_total", "Sandboxes created.", GET(m->created));
	put_counter(f, "sbxfs_sandbox_create_failures_total", "Creates that failed after the name was taken.",
		    GET(m->create_failed));
	put_counter(f, "sbxfs_sandboxes_killed_total", "Sandboxes killed (kill, rmdir).", GET(m->killed));
	put_counter(f, "sbxfs_sandboxes_expired_total", "Sandboxes killed by their TTL.", GET(m->expired));
	fprintf(f, "# HELP sbxfs_create_duration_seconds How long a create took.\n"
		   "# TYPE sbxfs_create_duration_seconds histogram\n");
	put_hist(f, "sbxfs_create_duration_seconds", "", &m->create, create_buckets,
		 sizeof(create_buckets) / sizeof(double));
	put_runs(f, m);
	put_failed(f, m);
	put_process(f);
}
