/*
 * f_metrics.c - the root `metrics` file: the daemon's own figures in the
 * Prometheus text exposition format. The control plane writes its part
 * (sandboxes, creates, kills, runs, failed commands, the process), this file
 * adds the FUSE requests by opcode. Made once per open, read as a snapshot:
 * with 500 sandboxes it takes well under a millisecond (one lock pair per
 * sandbox, no backend call).
 */
#include "dirtab.h"
#include "fop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const fop_names[FOP_COUNT] = {
#define FOP_NAME(name) #name,
	FOP_LIST(FOP_NAME)
#undef FOP_NAME
};

static void put_fuse(FILE *f)
{
	fprintf(f, "# HELP sbxfs_fuse_requests_total FUSE requests served, by opcode.\n"
		   "# TYPE sbxfs_fuse_requests_total counter\n");
	for (int i = 0; i < FOP_COUNT; i++)
		fprintf(f, "sbxfs_fuse_requests_total{opcode=\"%s\"} %llu\n", fop_names[i],
			(unsigned long long)atomic_load_explicit(&fop_count[i], memory_order_relaxed));
}

static int daemon_metrics_open(struct handle *h, int flags)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)flags;
	if (!f)
		return -ENOMEM;
	ctl_metrics_write(fs.ctl, f);
	put_fuse(f);
	if (fclose(f) || !text) {
		free(text);
		return -ENOMEM;
	}
	handle_set_data(h, text);
	return 0;
}

const struct sfile_ops daemon_metrics_fops = { .open = daemon_metrics_open };
