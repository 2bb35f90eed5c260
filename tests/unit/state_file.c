/*
 * state_file.c - sbx_write_file_atomic (backend/util.c), as state.c saves, under two writers and a reader.
 *
 * Issue 11: with one fixed PATH.tmp, two threads saving one sandbox made the
 * live file empty or unparsable for a reader, and saves failed with ENOENT.
 * Here two writers replace one file with whole documents of different sizes
 * while a reader reads it as fast as it can: every read must be one of the
 * documents, whole, and every write must succeed. Then a write into a
 * directory that does not exist must fail with its errno, and no temporary
 * file may be left behind.
 *
 * Run: meson test -C build state_file
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/util.h"

#define WRITES 4000

static char path[256];
static char docs[2][8192];
static size_t doc_len[2];
static atomic_bool writers_done;
static atomic_long write_failures, bad_reads, reads;

static void *writer_main(void *arg)
{
	int which = (int)(long)arg;

	for (int i = 0; i < WRITES; i++) {
		struct sbx_err err = { 0 };

		if (sbx_write_file_atomic(path, docs[which], doc_len[which], SBX_WRITE_SYNC, &err)) {
			fprintf(stderr, "write failed: %s\n", err.msg);
			atomic_fetch_add(&write_failures, 1);
		}
	}
	return NULL;
}

static void *reader_main(void *arg)
{
	static char buf[16384];

	(void)arg;
	while (!atomic_load(&writers_done)) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n;

		if (fd < 0) {
			atomic_fetch_add(&bad_reads, 1);
			continue;
		}
		n = read(fd, buf, sizeof(buf));
		close(fd);
		atomic_fetch_add(&reads, 1);
		if (!((n == (ssize_t)doc_len[0] && !memcmp(buf, docs[0], doc_len[0])) ||
		      (n == (ssize_t)doc_len[1] && !memcmp(buf, docs[1], doc_len[1]))))
			atomic_fetch_add(&bad_reads, 1);
	}
	return NULL;
}

static int leftovers(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	while (d && (de = readdir(d)))
		if (strstr(de->d_name, SBX_TMP_INFIX))
			n++;
	if (d)
		closedir(d);
	return n;
}

int main(void)
{
	char dir[] = "/tmp/sbxfs-state-file-XXXXXX", bad[300];
	struct sbx_err err = { 0 };
	pthread_t w[2], r;
	int fails = 0;

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/sandbox.json", dir);
	for (int k = 0; k < 2; k++) {
		doc_len[k] = (size_t)snprintf(docs[k], sizeof(docs[k]), "{ \"writer\": %d, \"pad\": \"%0*d\" }\n", k,
					      k ? 6000 : 10, 0);
	}
	if (sbx_write_file_atomic(path, docs[0], doc_len[0], SBX_WRITE_SYNC, &err))
		return 1;
	pthread_create(&r, NULL, reader_main, NULL);
	pthread_create(&w[0], NULL, writer_main, (void *)0L);
	pthread_create(&w[1], NULL, writer_main, (void *)1L);
	pthread_join(w[0], NULL);
	pthread_join(w[1], NULL);
	atomic_store(&writers_done, true);
	pthread_join(r, NULL);
	printf("%d writes, %ld reads: %ld failed writes, %ld empty or torn reads\n", 2 * WRITES,
	       atomic_load(&reads), atomic_load(&write_failures), atomic_load(&bad_reads));
	fails += atomic_load(&write_failures) || atomic_load(&bad_reads) || atomic_load(&reads) == 0;

	snprintf(bad, sizeof(bad), "%s/missing/sandbox.json", dir);
	if (sbx_write_file_atomic(bad, "x", 1, SBX_WRITE_SYNC, &err) != -ENOENT || err.code != ENOENT ||
	    !strstr(err.msg, "missing")) {
		fprintf(stderr, "a write into a missing directory gave %d '%s'\n", err.code, err.msg);
		fails++;
	}
	if (leftovers(dir)) {
		fprintf(stderr, "temporary files left in %s\n", dir);
		fails++;
	}
	unlink(path);
	rmdir(dir);
	return fails ? 1 : 0;
}
