/* node.c - the inode table: a hash of nodes by key, with lookup counts. */
#include "node.h"
#include "../control/control.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NODE_BUCKETS 65536

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node *buckets[NODE_BUCKETS];
static struct node root_node = { .kind = N_ROOT, .nlookup = 1, .fd = -1 };

void node_table_init(void)
{
	root_node.kind = N_ROOT;
	root_node.fd = -1;
}

struct node *node_root(void)
{
	return &root_node;
}

struct node *node_get(fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &root_node;
	return (struct node *)(uintptr_t)ino;
}

static size_t hash_synth(uint64_t parent, const char *name)
{
	uint64_t h = parent * 0x9E3779B97F4A7C15ull;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001B3ull;
	return (size_t)(h % NODE_BUCKETS);
}

static size_t hash_pt(const struct sandbox *sb, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)(uintptr_t)sb * 0x9E3779B97F4A7C15ull;

	h = (h ^ (uint64_t)dev) * 0x100000001B3ull;
	h = (h ^ (uint64_t)ino) * 0x100000001B3ull;
	return (size_t)(h % NODE_BUCKETS);
}

struct node *node_synth(struct node *parent, const char *name, enum node_kind kind,
			struct sandbox *sb, int lang, uint64_t run)
{
	uint64_t pino = node_ino(parent);
	size_t b = hash_synth(pino, name);
	struct node *n;

	pthread_mutex_lock(&table_lock);
	for (n = buckets[b]; n; n = n->hnext) {
		if (n->name && n->parent == pino && strcmp(n->name, name) == 0 && n->sb == sb) {
			n->nlookup++;
			pthread_mutex_unlock(&table_lock);
			return n;
		}
	}
	n = calloc(1, sizeof(*n));
	if (n) {
		n->name = strdup(name);
		if (kind == N_CTX)
			n->ctx = strdup(name);
		else if (parent->ctx)
			n->ctx = strdup(parent->ctx);
	}
	if (!n || !n->name || ((kind == N_CTX || parent->ctx) && !n->ctx)) {
		if (n) {
			free(n->name);
			free(n->ctx);
		}
		free(n);
		pthread_mutex_unlock(&table_lock);
		return NULL;
	}
	n->kind = kind;
	n->parent = pino;
	n->nlookup = 1;
	n->lang = lang;
	n->run = run;
	n->fd = -1;
	n->sb = sb;
	if (sb)
		sandbox_ref(sb);
	n->hnext = buckets[b];
	buckets[b] = n;
	pthread_mutex_unlock(&table_lock);
	return n;
}

struct node *node_pt(struct sandbox *sb, int fd, dev_t dev, ino_t ino)
{
	size_t b = hash_pt(sb, dev, ino);
	struct node *n;

	pthread_mutex_lock(&table_lock);
	for (n = buckets[b]; n; n = n->hnext) {
		if (!n->name && n->sb == sb && n->dev == dev && n->ino == ino) {
			n->nlookup++;
			pthread_mutex_unlock(&table_lock);
			close(fd);
			return n;
		}
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&table_lock);
		close(fd);
		return NULL;
	}
	n->kind = N_PT;
	n->nlookup = 1;
	n->fd = fd;
	n->dev = dev;
	n->ino = ino;
	n->sb = sb;
	sandbox_ref(sb);
	n->hnext = buckets[b];
	buckets[b] = n;
	pthread_mutex_unlock(&table_lock);
	return n;
}

fuse_ino_t node_find_pt(struct sandbox *sb, dev_t dev, ino_t ino)
{
	size_t b = hash_pt(sb, dev, ino);
	fuse_ino_t found = 0;

	pthread_mutex_lock(&table_lock);
	for (struct node *n = buckets[b]; n; n = n->hnext) {
		if (!n->name && n->sb == sb && n->dev == dev && n->ino == ino) {
			found = node_ino(n);
			break;
		}
	}
	pthread_mutex_unlock(&table_lock);
	return found;
}

void node_forget(struct node *n, uint64_t nlookup)
{
	struct node **pp;
	size_t b;

	if (n == &root_node)
		return;
	pthread_mutex_lock(&table_lock);
	if (n->nlookup > nlookup) {
		n->nlookup -= nlookup;
		pthread_mutex_unlock(&table_lock);
		return;
	}
	b = n->name ? hash_synth(n->parent, n->name) : hash_pt(n->sb, n->dev, n->ino);
	for (pp = &buckets[b]; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			break;
		}
	}
	pthread_mutex_unlock(&table_lock);
	if (n->fd >= 0)
		close(n->fd);
	if (n->sb)
		sandbox_put(n->sb);
	free(n->name);
	free(n->ctx);
	free(n);
}
