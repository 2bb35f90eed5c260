/*
 * synth_gen.c - the one generator of synthetic directories, and the
 * requests written on top of it: lookup, getattr, readdir and readdirplus.
 *
 * A directory's entries are its table's fixed entries (index 0..ntab-1,
 * each shown when present) followed by its generated ones (the names its
 * list function gives, each an instance of its gen_tab). A listing offset is
 * the entry index + 1 (after "." and ".."), the same in readdir and
 * readdirplus: the kernel may mix both on one open directory.
 */
#include "dirtab.h"
#include "scratch.h"
#include "../control/ctl_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const struct dirtab *dirtab_fixed(const struct node *dir, const char *name)
{
	const struct sdir *d = dir->t->dir;

	for (size_t i = 0; d && i < d->ntab; i++)
		if (strcmp(d->tab[i].name, name) == 0)
			return &d->tab[i];
	return NULL;
}

void sentry_done(struct sentry *e)
{
	if (e->own_sb && e->sb)
		sandbox_put(e->sb);
	e->sb = NULL;
	e->own_sb = false;
}

static void sentry_init(struct sentry *e, struct node *dir, const struct dirtab *t, const char *name)
{
	memset(e, 0, sizeof(*e));
	e->t = t;
	e->name = name;
	e->sb = dir->sb;
	e->run = dir->run;
}

int synth_find(fuse_req_t req, struct node *dir, const char *name, struct sentry *e)
{
	const struct sdir *d = dir->t->dir;
	const struct dirtab *t;
	int ret;

	if (!d)
		return -ENOTDIR;
	if (d->enter && (ret = d->enter(dir)))
		return ret;
	t = dirtab_fixed(dir, name);
	if (t) {
		sentry_init(e, dir, t, t->name);
		return !t->present || t->present(req, dir, t) ? 0 : -ENOENT;
	}
	if (d->gen_tab && d->find) {
		sentry_init(e, dir, d->gen_tab, name);
		ret = d->find(dir, name, e);
		if (ret != -ENOENT)
			return ret;
		sentry_done(e);
	}
	if (d->scratch && scratch_exists(dir->sb, dir->ctx, name)) {
		sentry_init(e, dir, &scratch_dirtab, name);
		return 0;
	}
	return -ENOENT;
}

void gen_pass_done(struct gen_pass *pass)
{
	ctl_strv_free(pass->names);
	ctl_strv_free(pass->scratch);
	memset(pass, 0, sizeof(*pass));
}

static int gen_fetch(struct node *dir, struct gen_pass *pass)
{
	const struct sdir *d = dir->t->dir;

	if (pass->fetched)
		return 0;
	pass->fetched = true;
	if (d->scratch) {
		pass->scratch = scratch_names(dir->sb, dir->ctx);
		if (!pass->scratch)
			return -ENOMEM;
		while (pass->scratch[pass->nscratch])
			pass->nscratch++;
	}
	if (!d->gen_tab || !d->list)
		return 0;
	pass->names = d->list(dir);
	if (!pass->names)
		return -ENOMEM;
	while (pass->names[pass->count])
		pass->count++;
	return 0;
}

int synth_gen(fuse_req_t req, struct node *dir, struct gen_pass *pass, size_t index, bool resolve,
	      struct sentry *e)
{
	const struct sdir *d = dir->t->dir;
	const char *name;

	if (index < d->ntab) {
		const struct dirtab *t = &d->tab[index];

		if (t->present && !t->present(req, dir, t))
			return GEN_SKIP;
		sentry_init(e, dir, t, t->name);
		return GEN_FOUND;
	}
	index -= d->ntab;
	if (gen_fetch(dir, pass))
		return GEN_END;
	if (index >= pass->count) {
		/* Scratch files come last; one whose name a real entry took since is hidden. */
		index -= pass->count;
		if (index >= pass->nscratch)
			return GEN_END;
		if (dirtab_fixed(dir, pass->scratch[index]))
			return GEN_SKIP;
		sentry_init(e, dir, &scratch_dirtab, pass->scratch[index]);
		return GEN_FOUND;
	}
	name = pass->names[index];
	sentry_init(e, dir, d->gen_tab, name);
	if (resolve && d->find(dir, name, e)) {
		sentry_done(e);
		return GEN_SKIP;        /* gone meanwhile */
	}
	return GEN_FOUND;
}

/* Sizes and times come from the file's family; the rest from its table entry. */
int synth_stat(struct node *n, struct stat *st)
{
	const struct dirtab *t = n->t;
	struct timespec now;

	memset(st, 0, sizeof(*st));
	clock_gettime(CLOCK_REALTIME, &now);
	st->st_ino = node_ino(n);
	st->st_uid = fs.uid;
	st->st_gid = fs.gid;
	st->st_atim = st->st_mtim = st->st_ctim = now;
	st->st_blksize = 4096;
	st->st_mode = t->mode;
	st->st_nlink = S_ISDIR(t->mode) ? 2 : 1;
	if (n->sb && !sandbox_alive(n->sb))
		return -ENOENT;
	return t->fops && t->fops->stat ? t->fops->stat(n, st) : 0;
}

void synth_reply_entry(fuse_req_t req, struct node *n)
{
	struct fuse_entry_param e;
	int ret;

	memset(&e, 0, sizeof(e));
	ret = synth_stat(n, &e.attr);
	if (ret) {
		node_forget(n, 1);
		fuse_reply_err(req, -ret);
		return;
	}
	e.ino = node_ino(n);
	e.attr_timeout = n->t->attr_timeout;
	e.entry_timeout = n->t->entry_timeout;
	if (fuse_reply_entry(req, &e) == -ENOENT)
		node_forget(n, 1);
}

static struct node *sentry_node(struct node *dir, const struct sentry *e)
{
	return node_synth(dir, e->name, e->t, e->sb, e->run, e->ctx);
}

void synth_lookup(fuse_req_t req, struct node *dir, const char *name)
{
	struct fuse_entry_param fe;
	struct sentry e;
	struct node *n;
	int ret = synth_find(req, dir, name, &e);

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (e.t->make_entry) {
		ret = e.t->make_entry(dir, &fe);
		sentry_done(&e);
		if (ret)
			fuse_reply_err(req, -ret);
		else
			fuse_reply_entry(req, &fe);
		return;
	}
	n = sentry_node(dir, &e);
	sentry_done(&e);
	if (!n)
		fuse_reply_err(req, ENOMEM);
	else
		synth_reply_entry(req, n);
}

void synth_getattr(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct stat st;
	int ret = synth_stat(n, &st);

	(void)fi;
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, n->t->attr_timeout);
}

/* The reply buffer of one readdir request. */
struct dirbuf {
	fuse_req_t req;
	char *p;
	size_t size, len;
	bool plus;
};

/* Adds one entry; false when it does not fit. */
static bool dirbuf_add(struct dirbuf *b, const char *name, const struct fuse_entry_param *e, off_t next)
{
	size_t need;

	if (b->plus)
		need = fuse_add_direntry_plus(b->req, b->p + b->len, b->size - b->len, name, e, next);
	else
		need = fuse_add_direntry(b->req, b->p + b->len, b->size - b->len, name, &e->attr, next);
	if (need > b->size - b->len)
		return false;
	b->len += need;
	return true;
}

/*
 * The full entry readdirplus gives (a lookup counted, so listing a directory
 * needs no lookup per name), or a bare one: inode 0 in readdirplus tells the
 * kernel "no attributes here; look it up". 1: added, 0: skipped, -1: full.
 */
static int add_entry(struct dirbuf *b, struct node *dir, struct sentry *e, off_t next)
{
	struct fuse_entry_param fe;
	struct node *n;

	memset(&fe, 0, sizeof(fe));
	fe.attr.st_mode = e->t->mode;
	fe.attr.st_ino = node_dirent_ino(dir, e->name);
	if (!b->plus || e->t->make_entry)
		return dirbuf_add(b, e->name, &fe, next) ? 1 : -1;
	n = sentry_node(dir, e);
	if (!n)
		return -1;
	if (synth_stat(n, &fe.attr)) {
		node_forget(n, 1);
		return 0;
	}
	fe.ino = node_ino(n);
	fe.attr_timeout = n->t->attr_timeout;
	fe.entry_timeout = n->t->entry_timeout;
	if (dirbuf_add(b, e->name, &fe, next))
		return 1;
	node_forget(n, 1);
	return -1;
}

static bool add_dots(struct dirbuf *b, struct node *dir, off_t off)
{
	struct fuse_entry_param fe;

	memset(&fe, 0, sizeof(fe));
	fe.attr.st_mode = S_IFDIR;
	for (off_t k = off; k < 2; k++) {
		fe.attr.st_ino = k == 0 ? node_ino(dir) : dir->parent ? dir->parent : FUSE_ROOT_ID;
		if (!dirbuf_add(b, k == 0 ? "." : "..", &fe, k + 1))
			return false;
	}
	return true;
}

void synth_readdir(fuse_req_t req, struct node *dir, size_t size, off_t off, struct fuse_file_info *fi,
			  bool plus)
{
	struct dirbuf b = { .req = req, .size = size, .plus = plus };
	struct gen_pass pass = { 0 };
	struct sentry e;

	(void)fi;
	if (!dir->t->dir) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	b.p = malloc(size ? size : 1);
	if (!b.p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (add_dots(&b, dir, off)) {
		for (size_t i = off > 2 ? (size_t)off - 2 : 0;; i++) {
			int got = synth_gen(req, dir, &pass, i, plus, &e), added;

			if (got == GEN_END)
				break;
			if (got == GEN_SKIP)
				continue;
			added = add_entry(&b, dir, &e, (off_t)(i + 3));
			sentry_done(&e);
			if (added < 0)
				break;
		}
	}
	gen_pass_done(&pass);
	fuse_reply_buf(req, b.p, b.len);
	free(b.p);
}
