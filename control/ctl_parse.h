/*
 * ctl_parse.h - the ctl command language: tokenising a line and parsing values.
 *
 * A ctl write is one or more lines; each line is a verb followed by words.
 * Words are separated by blanks; single quotes take everything literally,
 * double quotes allow \" \\ \n \t escapes, a backslash outside quotes escapes
 * the next byte. A word whose unquoted start is KEY= (KEY of [A-Za-z0-9_.-]+,
 * not starting with '.') is a key=value pair; the rest are positional args.
 * Example:  new box1 mem=512M env.GREETING="hello world" meta.owner='a b'
 *
 * Everything here is pure: no I/O, no global state. Input is untrusted (any
 * bytes, any length); a line with a NUL byte or other control characters
 * (except tab) is rejected with EINVAL.
 */
#ifndef SBX_CTL_PARSE_H
#define SBX_CTL_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "../backend/error.h"

#define CTL_LINE_MAX 65536     /* longer lines fail with E2BIG */
#define CTL_MAX_WORDS 256      /* more words fail with E2BIG */

struct ctl_kv {
	char *key;
	char *value;
};

struct ctl_cmd {
	char *verb;
	char **args;       /* positional words after the verb, in order */
	size_t nargs;
	struct ctl_kv *kvs;  /* key=value words, in order */
	size_t nkvs;
};

/*
 * Parses one line (without its newline; a trailing "\r" is ignored).
 * Returns 0 and fills *cmd, or a negative errno with err filled (the message
 * quotes the offending input, shortened). An empty or blank line gives
 * -ENODATA (callers skip it). On error *cmd is left empty (nothing to free).
 */
int ctl_parse_line(const char *line, size_t len, struct ctl_cmd *cmd, struct sbx_err *err);

void ctl_cmd_free(struct ctl_cmd *cmd);

/*
 * Splits a write buffer into lines. Calls back once per line (without the
 * newline); stops at the first callback that returns non-zero and returns
 * that value. A final line without newline counts as a line.
 */
int ctl_for_each_line(const char *buf, size_t len,
		      int (*fn)(const char *line, size_t len, void *arg), void *arg);

/* Value parsers: return 0 or -EINVAL/-ERANGE with a message naming the key. */

/* "512M", "1G", "1.5G", "4096", "64k"; suffixes K M G T (powers of 1024),
 * optionally followed by "i", "B" or "iB"; range 0..2^50. */
int ctl_parse_size(const char *key, const char *s, uint64_t *out, struct sbx_err *err);

/* "0.5", "2", "1.25" -> millicpus (500, 2000, 1250); range 0.01..1024. */
int ctl_parse_cpus(const char *key, const char *s, uint32_t *out, struct sbx_err *err);

/* Whole non-negative decimal with an optional s/m/h/d suffix -> seconds; max 10 years. */
int ctl_parse_seconds(const char *key, const char *s, uint64_t *out, struct sbx_err *err);

/* Whole decimal in [min, max]. */
int ctl_parse_uint(const char *key, const char *s, uint64_t min, uint64_t max,
		   uint64_t *out, struct sbx_err *err);

/*
 * A sandbox (or context) name: 1-64 bytes of [A-Za-z0-9_.-], not starting with
 * '.'. Reserved names are checked by the caller. Returns 0 or -EINVAL.
 */
int ctl_check_name(const char *name, struct sbx_err *err);

/* An environment key: [A-Za-z_][A-Za-z0-9_]*, at most 255 bytes. */
int ctl_check_env_key(const char *key, struct sbx_err *err);

/*
 * Parses a whole `env` file (KEY=VALUE lines; blank lines and lines starting
 * with '#' ignored; the value is everything after the first '=', verbatim).
 * Fills a NULL-terminated array of "KEY=VALUE" strings (later duplicates of a
 * key replace earlier ones). Returns 0 or -EINVAL naming the bad line.
 */
int ctl_parse_env_file(const char *buf, size_t len, char ***out, struct sbx_err *err);

void ctl_strv_free(char **v);

#endif
