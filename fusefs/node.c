/* node.c - the inode table: a hash of nodes by key, with lookup counts. */
#include "fs.h"
#include "pt.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void node_table_init(const struct dirtab *root_dirtab)
{
	struct node_table *tab = &fs.nodes;

	pthread_mutex_init(&tab->lock, NULL);
	memset(&tab->root, 0, sizeof(tab->root));
	tab->root.ops = &synth_node_ops;
	tab->root.t = root_dirtab;
	tab->root.nlookup = 1;
	tab->root.fd = -1;
}

struct node *node_root(void)
{
	return &fs.nodes.root;
}

struct node *node_get(fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs.nodes.root;
	return (struct node *)(uintptr_t)ino;
}

static uint64_t hash_name(uint64_t parent, const char *name)
{
	uint64_t h = parent * 0x9E3779B97F4A7C15ull;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001B3ull;
	return h;
}

static size_t hash_synth(uint64_t parent, const char *name)
{
	return (size_t)(hash_name(parent, name) % NODE_BUCKETS);
}

static size_t hash_pt(const struct sandbox *sb, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)(uintptr_t)sb * 0x9E3779B97F4A7C15ull;

	h = (h ^ (uint64_t)dev) * 0x100000001B3ull;
	h = (h ^ (uint64_t)ino) * 0x100000001B3ull;
	return (size_t)(h % NODE_BUCKETS);
}

fuse_ino_t node_dirent_ino(const struct node *parent, const char *name)
{
	uint64_t pino = node_ino(parent);
	fuse_ino_t ino = 0;

	pthread_mutex_lock(&fs.nodes.lock);
	for (struct node *n = fs.nodes.buckets[hash_synth(pino, name)]; n; n = n->hnext) {
		if (n->name && n->parent == pino && strcmp(n->name, name) == 0) {
			ino = node_ino(n);
			break;
		}
	}
	pthread_mutex_unlock(&fs.nodes.lock);
	return ino ? ino : (fuse_ino_t)(hash_name(pino, name) | (1ull << 63));
}

static struct node *synth_new(struct node *parent, const char *name, const char *ctx)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->name = strdup(name);
	if (ctx || parent->ctx)
		n->ctx = strdup(ctx ? ctx : parent->ctx);
	if (!n->name || ((ctx || parent->ctx) && !n->ctx)) {
		free(n->name);
		free(n->ctx);
		free(n);
		return NULL;
	}
	return n;
}

struct node *node_synth(struct node *parent, const char *name, const struct dirtab *t,
			struct sandbox *sb, uint64_t run, const char *ctx)
{
	uint64_t pino = node_ino(parent);
	size_t b = hash_synth(pino, name);
	struct node *n;

	pthread_mutex_lock(&fs.nodes.lock);
	for (n = fs.nodes.buckets[b]; n; n = n->hnext) {
		if (n->name && n->parent == pino && strcmp(n->name, name) == 0 && n->sb == sb && n->t == t) {
			n->nlookup++;
			pthread_mutex_unlock(&fs.nodes.lock);
			return n;
		}
	}
	n = synth_new(parent, name, ctx);
	if (!n) {
		pthread_mutex_unlock(&fs.nodes.lock);
		return NULL;
	}
	n->ops = &synth_node_ops;
	n->t = t;
	n->parent = pino;
	n->nlookup = 1;
	n->run = run;
	n->fd = -1;
	n->sb = sb;
	if (sb)
		sandbox_ref(sb);
	n->hnext = fs.nodes.buckets[b];
	fs.nodes.buckets[b] = n;
	pthread_mutex_unlock(&fs.nodes.lock);
	return n;
}

struct node *node_pt(struct sandbox *sb, dev_t dev, ino_t ino, uid_t uid, gid_t gid)
{
	size_t b = hash_pt(sb, dev, ino);
	struct node *n;

	pthread_mutex_lock(&fs.nodes.lock);
	for (n = fs.nodes.buckets[b]; n; n = n->hnext) {
		if (!n->name && n->sb == sb && n->dev == dev && n->ino == ino) {
			n->nlookup++;
			pthread_mutex_unlock(&fs.nodes.lock);
			return n;
		}
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&fs.nodes.lock);
		return NULL;
	}
	n->ops = &pt_node_ops;
	n->nlookup = 1;
	n->fd = -1;
	n->dev = dev;
	n->ino = ino;
	n->sb_uid = uid;
	n->sb_gid = gid;
	n->sb = sb;
	sandbox_ref(sb);
	n->hnext = fs.nodes.buckets[b];
	fs.nodes.buckets[b] = n;
	pthread_mutex_unlock(&fs.nodes.lock);
	return n;
}

struct node *node_pt_hold(struct sandbox *sb, dev_t dev, ino_t ino)
{
	size_t b = hash_pt(sb, dev, ino);
	struct node *n;

	pthread_mutex_lock(&fs.nodes.lock);
	for (n = fs.nodes.buckets[b]; n; n = n->hnext)
		if (!n->name && n->sb == sb && n->dev == dev && n->ino == ino) {
			n->nlookup++;
			break;
		}
	pthread_mutex_unlock(&fs.nodes.lock);
	return n;
}

fuse_ino_t node_find_pt(struct sandbox *sb, dev_t dev, ino_t ino)
{
	size_t b = hash_pt(sb, dev, ino);
	fuse_ino_t found = 0;

	pthread_mutex_lock(&fs.nodes.lock);
	for (struct node *n = fs.nodes.buckets[b]; n; n = n->hnext) {
		if (!n->name && n->sb == sb && n->dev == dev && n->ino == ino) {
			found = node_ino(n);
			break;
		}
	}
	pthread_mutex_unlock(&fs.nodes.lock);
	return found;
}

void node_forget(struct node *n, uint64_t nlookup)
{
	struct node **pp;
	size_t b;

	if (n == &fs.nodes.root)
		return;
	pthread_mutex_lock(&fs.nodes.lock);
	if (n->nlookup > nlookup) {
		n->nlookup -= nlookup;
		pthread_mutex_unlock(&fs.nodes.lock);
		return;
	}
	b = n->name ? hash_synth(n->parent, n->name) : hash_pt(n->sb, n->dev, n->ino);
	for (pp = &fs.nodes.buckets[b]; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			break;
		}
	}
	pthread_mutex_unlock(&fs.nodes.lock);
	if (n->ops == &pt_node_ops)
		pt_node_drop(n);        /* its fd and where it was seen */
	if (n->sb)
		sandbox_put(n->sb);
	free(n->name);
	free(n->ctx);
	free(n);
}
