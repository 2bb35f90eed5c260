/*
 * test_metrics.c - control/metrics.c on its own: the text of the root
 * `metrics` file for a registry of 500 sandboxes (100 paused), counters and
 * cumulative histogram buckets after known observations, and how long one
 * rendering takes (the target: at most 5 ms with 500 sandboxes).
 * Run: meson test -C build metrics
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../control/sandbox.h"

static int failures;

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (!(cond)) {                                    \
			failures++;                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);             \
			fputc('\n', stderr);                      \
		}                                                 \
	} while (0)

#define NSB 500

static char *render(struct sbx_ctl *ctl)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	ctl_metrics_write(ctl, f);
	fclose(f);
	return text;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void check_text(struct sbx_ctl *ctl)
{
	char *t = render(ctl);

	CHECK(t && strstr(t, "sbxfs_sandboxes{state=\"running\"} 400\n"), "400 running");
	CHECK(t && strstr(t, "sbxfs_sandboxes{state=\"paused\"} 100\n"), "100 paused");
	CHECK(t && strstr(t, "sbxfs_sandboxes_created_total 3\n"), "3 created");
	CHECK(t && strstr(t, "sbxfs_create_duration_seconds_bucket{le=\"0.005\"} 1\n"), "4 ms in the first bucket");
	CHECK(t && strstr(t, "sbxfs_create_duration_seconds_bucket{le=\"0.05\"} 2\n"), "cumulative at 50 ms");
	CHECK(t && strstr(t, "sbxfs_create_duration_seconds_bucket{le=\"10\"} 2\n"), "20 s is past the last bound");
	CHECK(t && strstr(t, "sbxfs_create_duration_seconds_bucket{le=\"+Inf\"} 3\n"), "+Inf counts all");
	CHECK(t && strstr(t, "sbxfs_create_duration_seconds_sum 20.034000\n"), "the sum in seconds");
	CHECK(t && strstr(t, "sbxfs_sandbox_create_failures_total 1\n"), "1 failed create");
	CHECK(t && strstr(t, "sbxfs_sandboxes_expired_total 1\n"), "1 expired");
	CHECK(t && strstr(t, "sbxfs_sandboxes_killed_total 0\n"), "an expiry is not a kill");
	CHECK(t && strstr(t, "sbxfs_runs_total{language=\"node\",outcome=\"timeout\"} 1\n"), "the node timeout");
	CHECK(t && strstr(t, "sbxfs_run_duration_seconds_bucket{language=\"node\",outcome=\"timeout\",le=\"60\"} 1\n"),
	      "60 s in the last run bucket");
	CHECK(t && strstr(t, "sbxfs_failed_commands_total{errno=\"ENOENT\"} 2\n"), "ENOENT twice");
	CHECK(t && strstr(t, "sbxfs_failed_commands_total{errno=\"other\"} 1\n"), "an errno past the table");
	CHECK(t && !strstr(t, "errno=\"EINVAL\""), "errnos never seen are not listed");
	free(t);
}

int main(void)
{
	struct sbx_ctl ctl = { 0 };
	struct sbx_err err = { 0 };
	struct sandbox *sbs = calloc(NSB, sizeof(*sbs));
	double times[50];

	pthread_mutex_init(&ctl.lock, NULL);
	ctl.sandboxes = calloc(NSB, sizeof(*ctl.sandboxes));
	if (!sbs || !ctl.sandboxes || metrics_open(&ctl, &err))
		return 1;
	for (int i = 0; i < NSB; i++) {
		pthread_mutex_init(&sbs[i].lock, NULL);
		sbs[i].paused = i % 5 == 0;
		ctl.sandboxes[ctl.nsandboxes++] = &sbs[i];
	}
	metrics_created(&ctl, true, 4000);
	metrics_created(&ctl, true, 30000);
	metrics_created(&ctl, true, 20000000);
	metrics_created(&ctl, false, 0);
	metrics_gone(&ctl, true);
	metrics_run(&ctl, RUN_NODE, RUN_TIMEOUT, 60000000);
	metrics_failed_command(&ctl, -2);
	metrics_failed_command(&ctl, 2);
	metrics_failed_command(&ctl, 100000);
	check_text(&ctl);
	for (int i = 0; i < 50; i++) {
		double t0 = now_ms();

		free(render(&ctl));
		times[i] = now_ms() - t0;
	}
	qsort(times, 50, sizeof(double), cmp_double);
	printf("metrics with %d sandboxes: median %.3f ms, max %.3f ms\n", NSB, times[25], times[49]);
	CHECK(times[25] <= 5.0, "median rendering took %.3f ms", times[25]);
	metrics_close(&ctl);
	for (int i = 0; i < NSB; i++)
		pthread_mutex_destroy(&sbs[i].lock);
	free(sbs);
	free(ctl.sandboxes);
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	return failures ? 1 : 0;
}
