/*
 * test_scratch.c - the scratch file store (fusefs/scratch.c) on its own:
 * its caps (file, directory, daemon), the byte count through unlink while
 * open, rename over another, take, expiry, a sandbox that is gone, and that
 * every sandbox reference it took is given back. Run by `meson test`.
 */
#include "../../fusefs/scratch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fs fs = { .scratch = { .lock = PTHREAD_MUTEX_INITIALIZER, .ttl_ms = 60000 } };

/* The sandbox as the store sees it: a reference count and whether it is gone. */
struct sandbox {
	int refs;
	bool dead;
};

bool sandbox_alive(struct sandbox *sb)
{
	return !sb->dead;
}

void sandbox_ref(struct sandbox *sb)
{
	sb->refs++;
}

void sandbox_put(struct sandbox *sb)
{
	sb->refs--;
}

static int failures;

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                              \
		}                                                                \
	} while (0)

static void test_caps(struct sandbox *sb)
{
	static char mib[1 << 20];
	struct scratch *s[5];
	char name[32];
	int ret = 0;

	CHECK(scratch_create(sb, NULL, "f", true) == 0);
	CHECK(scratch_create(sb, NULL, "f", true) == -EEXIST);
	CHECK(scratch_create(sb, NULL, "f", false) == 0);
	s[0] = scratch_get(sb, NULL, "f");
	CHECK(s[0] && scratch_write(s[0], "x", 1, SCRATCH_FILE_MAX) == -EFBIG);
	CHECK(scratch_truncate(s[0], SCRATCH_FILE_MAX + 1) == -EFBIG);
	scratch_put(s[0]);
	CHECK(scratch_unlink(sb, NULL, "f") == 0 && fs.scratch.total == 0);
	/* four full files fill the daemon's total; a fifth byte does not fit */
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "full-%d", i);
		CHECK(scratch_create(sb, "ctx", name, true) == 0);
		s[i] = scratch_get(sb, "ctx", name);
		for (size_t off = 0; s[i] && !ret && off < SCRATCH_FILE_MAX; off += sizeof(mib))
			ret = scratch_write(s[i], mib, sizeof(mib), (off_t)off);
		CHECK(i < 4 ? ret == 0 : ret == -ENOSPC);
	}
	CHECK(fs.scratch.total <= SCRATCH_TOTAL_MAX);
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "full-%d", i);
		CHECK(scratch_unlink(sb, "ctx", name) == 0);
		scratch_put(s[i]);
	}
	CHECK(fs.scratch.total == 0);
}

static void test_dir_cap(struct sandbox *sb)
{
	char name[32];

	for (int i = 0; i < SCRATCH_DIR_MAX; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		CHECK(scratch_create(sb, NULL, name, true) == 0);
	}
	CHECK(scratch_create(sb, NULL, "one-more", true) == -ENOSPC);
	CHECK(scratch_create(sb, "other", "one-more", true) == 0);      /* another directory */
	CHECK(scratch_create(NULL, NULL, "one-more", true) == 0);       /* the root */
	CHECK(scratch_exists(NULL, NULL, "one-more") && !scratch_exists(sb, NULL, "one-more"));
	for (int i = 0; i < SCRATCH_DIR_MAX; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		CHECK(scratch_unlink(sb, NULL, name) == 0);
	}
	CHECK(scratch_unlink(sb, "other", "one-more") == 0 && scratch_unlink(NULL, NULL, "one-more") == 0);
	CHECK(scratch_unlink(sb, NULL, "n0") == -ENOENT);
}

static void test_unlink_open_rename_take(struct sandbox *sb)
{
	struct scratch *s;
	struct stat st;
	char buf[16] = { 0 }, *data = NULL;
	size_t len = 0;

	CHECK(scratch_create(sb, NULL, "a", true) == 0);
	s = scratch_get(sb, NULL, "a");
	CHECK(scratch_write(s, "hello", 5, 0) == 0 && fs.scratch.total == 5);
	CHECK(scratch_unlink(sb, NULL, "a") == 0 && !scratch_exists(sb, NULL, "a"));
	CHECK(fs.scratch.total == 5);                      /* open: the bytes are still there */
	CHECK(scratch_read(s, buf, sizeof(buf), 0) == 5 && memcmp(buf, "hello", 5) == 0);
	scratch_put(s);
	CHECK(fs.scratch.total == 0);

	CHECK(scratch_create(sb, NULL, "b", true) == 0 && scratch_create(sb, NULL, "c", true) == 0);
	s = scratch_get(sb, NULL, "b");
	CHECK(scratch_write(s, "bbb", 3, 0) == 0);
	scratch_put(s);
	s = scratch_get(sb, NULL, "c");
	CHECK(scratch_write(s, "cc", 2, 0) == 0);
	scratch_put(s);
	CHECK(scratch_rename(sb, NULL, "b", "c", true) == -EEXIST);
	CHECK(scratch_rename(sb, NULL, "b", "c", false) == 0 && fs.scratch.total == 3);
	CHECK(scratch_stat(sb, NULL, "c", &st) == 0 && st.st_size == 3);
	CHECK(scratch_stat(sb, NULL, "b", &st) == -ENOENT);
	CHECK(scratch_take(sb, NULL, "c", &data, &len) == 0 && len == 3 && memcmp(data, "bbb", 3) == 0);
	free(data);
	CHECK(!scratch_exists(sb, NULL, "c") && fs.scratch.total == 0);
}

static void test_expiry_and_gone(struct sandbox *sb, struct sandbox *doomed)
{
	struct scratch *held;
	char **names;

	CHECK(scratch_create(sb, NULL, "idle", true) == 0 && scratch_create(sb, NULL, "held", true) == 0);
	CHECK(scratch_create(doomed, NULL, "x", true) == 0 && doomed->refs == 1);
	held = scratch_get(sb, NULL, "held");
	fs.scratch.ttl_ms = 0;
	usleep(5000);
	scratch_sweep();
	CHECK(!scratch_exists(sb, NULL, "idle") && scratch_exists(sb, NULL, "held"));
	fs.scratch.ttl_ms = 60000;
	doomed->dead = true;
	names = scratch_names(doomed, NULL);
	CHECK(names && !names[0] && doomed->refs == 0);   /* a gone sandbox's are dropped */
	free(names);
	scratch_put(held);
	CHECK(scratch_unlink(sb, NULL, "held") == 0);
}

int main(void)
{
	struct sandbox sb = { 0 }, doomed = { 0 };

	test_caps(&sb);
	test_dir_cap(&sb);
	test_unlink_open_rename_take(&sb);
	test_expiry_and_gone(&sb, &doomed);
	CHECK(scratch_create(&sb, NULL, "left", true) == 0);
	scratch_free_all();
	CHECK(fs.scratch.total == 0 && sb.refs == 0 && doomed.refs == 0);
	if (failures)
		return 1;
	printf("scratch store: ok\n");
	return 0;
}
