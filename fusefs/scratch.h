/*
 * scratch.h - scratch files: the new regular files clients make beside
 * control files (an editor's swap file, `sed -i`'s and an agent's temporary
 * file before its rename onto run.py, env or ctl).
 *
 * They live in the daemon's memory, keyed by their directory (sandbox and
 * context; the root has neither) and name, and are bounded: at most
 * SCRATCH_FILE_MAX bytes each (the run-file cap), SCRATCH_DIR_MAX files in
 * one directory, SCRATCH_TOTAL_MAX bytes in the whole daemon (ENOSPC beyond,
 * EFBIG past the file cap). One left alone (not open) for fs.scratch.ttl_ms
 * (a minute; -o scratch_ttl=SECONDS) is dropped, as is every one of a
 * sandbox that is gone.
 */
#ifndef SBX_SCRATCH_H
#define SBX_SCRATCH_H

#include "fs.h"

#define SCRATCH_FILE_MAX CODE_MAX
#define SCRATCH_DIR_MAX 64
#define SCRATCH_TOTAL_MAX (64u << 20)
#define SCRATCH_TTL_MS 60000

struct scratch;

/* Makes (sb, ctx, name): 0, -EEXIST (excl and it exists), -ENOSPC, -ENOMEM. Existing and !excl: 0. */
int scratch_create(struct sandbox *sb, const char *ctx, const char *name, bool excl);
/* The scratch file, held open until scratch_put; NULL if there is none. */
struct scratch *scratch_get(struct sandbox *sb, const char *ctx, const char *name);
void scratch_put(struct scratch *s);
bool scratch_exists(struct sandbox *sb, const char *ctx, const char *name);
/* The names in a directory, NULL-terminated (ctl_strv_free); NULL on out of memory. */
char **scratch_names(struct sandbox *sb, const char *ctx);
/* Size, mode and times: 0 or -ENOENT. */
int scratch_stat(struct sandbox *sb, const char *ctx, const char *name, struct stat *st);
/* Bytes read into buf. */
size_t scratch_read(struct scratch *s, char *buf, size_t size, off_t off);
/* 0, -EFBIG, -ENOSPC or -ENOMEM. */
int scratch_write(struct scratch *s, const char *buf, size_t size, off_t off);
int scratch_truncate(struct scratch *s, off_t size);
/* Removes the name: 0 or -ENOENT. Open handles keep the bytes until they close. */
int scratch_unlink(struct sandbox *sb, const char *ctx, const char *name);
/* Renames within the directory, replacing a scratch called newname: 0, -ENOENT, -EEXIST (noreplace). */
int scratch_rename(struct sandbox *sb, const char *ctx, const char *name, const char *newname, bool noreplace);
/* Removes the name and gives its content (malloc'd; *len bytes): 0, -ENOENT or -ENOMEM. */
int scratch_take(struct sandbox *sb, const char *ctx, const char *name, char **data, size_t *len);
/* Drops the scratch files left alone too long and those of sandboxes that are gone. */
void scratch_sweep(void);
/* At shutdown: frees every scratch file. */
void scratch_free_all(void);

#endif
