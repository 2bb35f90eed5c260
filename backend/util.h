/*
 * util.h - small helpers every layer needs once: /proc/PID/stat, removing a
 * tree, unix sockets, clocks, writing whole files, making directory chains.
 *
 * It lives in backend/, the lowest layer, so control/ and fusefs/ may use it
 * as they use error.h; it depends on libc only, so sbxfs-agent links it too.
 * Functions that can fail return 0 (or a descriptor) or a negative errno and,
 * when err is not NULL, fill it with the same errno and words.
 */
#ifndef SBX_UTIL_H
#define SBX_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* The fields of /proc/PID/stat that sbxfs uses (proc(5) field numbers). */
struct sbx_proc_stat {
	char state;                  /* 3: R, S, D, Z, X, ... */
	pid_t ppid;                  /* 4 */
	pid_t pgrp;                  /* 5 */
	pid_t sid;                   /* 6 */
	unsigned long long start;    /* 22: start time in clock ticks after boot */
};

/*
 * Reads /proc/PID/stat. The command name may hold spaces and parentheses, so
 * fields are taken after its last ')'.
 * 0, or -ENOENT (no such process), -EINVAL (unparsable) or -errno.
 */
int sbx_proc_stat(pid_t pid, struct sbx_proc_stat *st);

/* True when pid exists, is not a zombie and started at `start` (so it is not a reused pid). */
bool sbx_proc_alive(pid_t pid, unsigned long long start);

/* Removes path and all below it, staying on its file system and never following links. */
int sbx_rm_rf(const char *path);

/*
 * Creates path and its missing parents with mode. An existing directory is fine;
 * anything else that fails is an error (an existing non-directory is -ENOTDIR).
 */
int sbx_mkdir_p(const char *path, mode_t mode, struct sbx_err *err);

/*
 * A listening SOCK_STREAM unix socket at path (replacing a stale one); mode 0 keeps
 * the umask's. Paths longer than sun_path work (through their directory's descriptor)
 * as long as the last component is short.
 */
int sbx_unix_listen(const char *path, mode_t mode, struct sbx_err *err);

/* A connected SOCK_STREAM unix socket to path (of any length, as for sbx_unix_listen). */
int sbx_unix_connect(const char *path, struct sbx_err *err);

/* Milliseconds of CLOCK_MONOTONIC (durations, deadlines) and of CLOCK_REALTIME (time stamps). */
uint64_t sbx_mono_ms(void);
uint64_t sbx_real_ms(void);

/* qsort comparator for an array of char * (strcmp order). */
int sbx_cmp_str(const void *a, const void *b);

/* Writes all len bytes to fd, across short writes and EINTR. 0 or -errno. */
int sbx_write_all(int fd, const void *buf, size_t len);

/*
 * Writes s in one write to an existing file (cgroup, /proc knobs: they take one
 * value per write and must not be created or truncated). 0 or -errno.
 */
int sbx_write_knob(const char *path, const char *s, struct sbx_err *err);

/* Creates or truncates path (never through a symlink) and writes data to it. */
int sbx_write_file(const char *path, const void *data, size_t len, mode_t mode, struct sbx_err *err);

/*
 * Replaces path whole: writes a temporary file of its own beside it
 * (path.tmp-XXXXXX, so concurrent writers never share one), renames it over
 * path, so a reader sees the old or the new content, never a torn or empty
 * one. With SBX_WRITE_SYNC the file is fsynced before the rename and the
 * directory after it, so a crash at any point leaves the old or the new
 * content and a rename that returned is durable. Which of two concurrent
 * writers lands last is the callers' to order. Every failure (ENOSPC, EIO)
 * comes back with its errno.
 */
#define SBX_WRITE_SYNC 1
#define SBX_TMP_INFIX ".tmp-"   /* what a crash may leave: path.tmp-XXXXXX */
int sbx_write_file_atomic(const char *path, const void *data, size_t len, int flags,
			  struct sbx_err *err);

#endif
