/*
 * f_text.c - read-only files whose content is a text made at open: README,
 * errors, templates/NAME, and a sandbox's status, info and metrics. A read
 * sees the snapshot of its open, so one reader sees one consistent text.
 */
#include "dirtab.h"

#include <stdlib.h>
#include <string.h>

/* A NULL text (the object went away meanwhile) reads as empty, as it did before the tables. */
static int snapshot(struct handle *h, char *text)
{
	handle_set_data(h, text);
	return 0;
}

static int readme_open(struct handle *h, int flags)
{
	(void)flags;
	return snapshot(h, strdup(root_readme));
}

static int readme_stat(struct node *n, struct stat *st)
{
	(void)n;
	st->st_size = (off_t)strlen(root_readme);
	return 0;
}

const struct sfile_ops readme_fops = { .open = readme_open, .stat = readme_stat };

static int errors_open(struct handle *h, int flags)
{
	(void)flags;
	return snapshot(h, ctl_errors_text(fs.ctl));
}

const struct sfile_ops errors_fops = { .open = errors_open };

static int template_open(struct handle *h, int flags)
{
	(void)flags;
	for (const struct sbx_template_info *const *t = ctl_templates(fs.ctl); t && *t; t++)
		if (strcmp((*t)->name, h->node->name) == 0)
			return snapshot(h, strdup((*t)->description));
	return snapshot(h, NULL);
}

const struct sfile_ops template_fops = { .open = template_open };

static int status_open(struct handle *h, int flags)
{
	(void)flags;
	return snapshot(h, sandbox_status_text(h->node->sb));
}

const struct sfile_ops status_fops = { .open = status_open };

static int info_open(struct handle *h, int flags)
{
	(void)flags;
	return snapshot(h, sandbox_info_json(h->node->sb));
}

const struct sfile_ops info_fops = { .open = info_open };

static int metrics_open(struct handle *h, int flags)
{
	(void)flags;
	return snapshot(h, sandbox_metrics_json(h->node->sb));
}

const struct sfile_ops metrics_fops = { .open = metrics_open };
