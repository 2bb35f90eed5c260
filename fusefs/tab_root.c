/*
 * tab_root.c - the tables of the mount root and templates/: README, ctl,
 * errors, templates/, and one directory per sandbox (mkdir and rmdir make
 * and kill them).
 */
#include "dirtab.h"
#include "../control/ctl_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- templates/ ---- */

static char **template_names(struct node *dir)
{
	const struct sbx_template_info *const *t = ctl_templates(fs.ctl), *const *p;
	size_t count = 0;
	char **names;

	(void)dir;
	for (p = t; p && *p; p++)
		count++;
	names = calloc(count + 1, sizeof(*names));
	for (size_t i = 0; names && i < count; i++) {
		names[i] = strdup(t[i]->name);
		if (!names[i]) {
			ctl_strv_free(names);
			return NULL;
		}
	}
	return names;
}

static int template_find(struct node *dir, const char *name, struct sentry *e)
{
	(void)dir;
	(void)e;
	for (const struct sbx_template_info *const *t = ctl_templates(fs.ctl); t && *t; t++)
		if (strcmp((*t)->name, name) == 0)
			return 0;
	return -ENOENT;
}

static const struct dirtab template_dirtab = {
	.mode = M_RO, .entry_timeout = TTL_LIVE, .attr_timeout = TTL_LIVE, .fops = &template_fops,
};

const struct sdir templates_sdir = {
	.gen_tab = &template_dirtab, .list = template_names, .find = template_find,
};

/* ---- the root ---- */

static char **sandbox_names(struct node *dir)
{
	(void)dir;
	return ctl_sandbox_names(fs.ctl);
}

static int sandbox_find(struct node *dir, const char *name, struct sentry *e)
{
	(void)dir;
	e->sb = ctl_sandbox_get(fs.ctl, name);
	e->own_sb = e->sb != NULL;
	return e->sb ? 0 : -ENOENT;
}

static void root_mkdir(fuse_req_t req, struct node *dir, const char *name)
{
	struct sbx_err err = { 0 };
	struct sentry e;
	struct node *n;
	int ret = ctl_create_default(fs.ctl, name, &err);

	if (ret) {
		ctl_log_error(fs.ctl, "/ (mkdir)", name, strlen(name), err.msg);
		fuse_reply_err(req, -ret);
		return;
	}
	ret = synth_find(req, dir, name, &e);
	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	n = node_synth(dir, name, e.t, e.sb, 0, NULL);
	sentry_done(&e);
	if (!n)
		fuse_reply_err(req, ENOMEM);
	else
		synth_reply_entry(req, n);
}

static void root_rmdir(fuse_req_t req, struct node *dir, const char *name)
{
	const struct dirtab *t = dirtab_fixed(dir, name);
	struct sbx_err err = { 0 };
	int ret;

	if (t) {
		fuse_reply_err(req, S_ISDIR(t->mode) ? EBUSY : ENOTDIR);
		return;
	}
	notify_defer_gone(true);
	ret = ctl_kill(fs.ctl, name, &err);
	notify_defer_gone(false);
	if (ret)
		ctl_log_error(fs.ctl, "/ (rmdir)", name, strlen(name), err.msg);
	fuse_reply_err(req, ret ? -ret : 0);
}

/*
 * A file that exists only when the daemon starts with SBXFS_TEST_TABLE=1 in
 * its environment: tests/pytest/test_tables.py shows that a table row alone
 * makes a file that is listed, looked up, read and refused on write.
 */
static bool test_row_present(fuse_req_t req, struct node *dir, const struct dirtab *t)
{
	const char *v = getenv("SBXFS_TEST_TABLE");

	(void)req;
	(void)dir;
	(void)t;
	return v && strcmp(v, "1") == 0;
}

static const struct dirtab root_tab[] = {
	{ "README", M_RO, TTL_FIXED, TTL_FIXED, .fops = &readme_fops },
	{ "ctl", M_RW, TTL_FIXED, TTL_FIXED, .fops = &ctl_fops },
	{ "errors", M_RO, TTL_FIXED, TTL_FIXED, .fops = &errors_fops },
	{ "events", M_RO, TTL_FIXED, TTL_LIVE, .fops = &events_fops },
	{ "metrics", M_RO, TTL_FIXED, TTL_LIVE, .fops = &daemon_metrics_fops },
	{ "templates", M_DIR, TTL_FIXED, TTL_FIXED, .dir = &templates_sdir },
	{ "test-table", M_RO, TTL_LIVE, TTL_LIVE, .fops = &readme_fops, .present = test_row_present },
};

static const struct sdir root_sdir = {
	SDIR_TAB(root_tab),
	.gen_tab = &sandbox_dirtab, .list = sandbox_names, .find = sandbox_find,
	.scratch = true, .mkdir = root_mkdir, .rmdir = root_rmdir,
};

const struct dirtab root_dirtab = {
	"", M_DIR, TTL_LIVE, TTL_LIVE, .dir = &root_sdir,
};

bool root_name_reserved(const char *name)
{
	return dirtab_fixed(node_root(), name) != NULL;
}
