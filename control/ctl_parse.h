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
 * (except tab; DEL counts as one) is rejected with EINVAL. Bytes >= 0x80 are
 * ordinary word bytes. Inside double quotes an unknown escape such as \x is
 * kept as written (both bytes), as the shell does; \$ gives $.
 *
 * Every function accepts err == NULL (only the code comes back). Messages
 * quote the input cut to 40 bytes, non-printable bytes shown as \xNN.
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
 * Errors: -E2BIG (line over CTL_LINE_MAX bytes, more than CTL_MAX_WORDS words
 * counting the verb), -EINVAL (control byte, unterminated quote, trailing
 * backslash, first word empty or a key=value), -ENOMEM.
 * line may be NULL when len is 0. cmd need not be initialised.
 */
int ctl_parse_line(const char *line, size_t len, struct ctl_cmd *cmd, struct sbx_err *err);

void ctl_cmd_free(struct ctl_cmd *cmd);

/*
 * Splits a write buffer into lines. Calls back once per line (without the
 * newline); stops at the first callback that returns non-zero and returns
 * that value. A final line without newline counts as a line: "a\nb" and
 * "a\nb\n" are two lines, "" is none, "\n" is one empty line.
 */
int ctl_for_each_line(const char *buf, size_t len,
		      int (*fn)(const char *line, size_t len, void *arg), void *arg);

/*
 * Value parsers: return 0 or -EINVAL (syntax) / -ERANGE (well-formed but out
 * of range) with a message naming the key; *out is only written on success.
 * s must be NUL-terminated; no sign, blanks or trailing junk are accepted.
 */

/* "512M", "1G", "1.5G", "4096", "64k"; suffixes K M G T (powers of 1024, any
 * case), optionally followed by "i", "B" or "iB"; a bare "B" ("100B") is
 * bytes. A fraction needs a suffix and is rounded down to whole bytes (only
 * its first 6 digits count). Range 0..2^50 (1024T). */
int ctl_parse_size(const char *key, const char *s, uint64_t *out, struct sbx_err *err);

/* "0.5", "2", "1.25" -> millicpus (500, 2000, 1250); range 0.01..1024.
 * At most 3 decimals ("0.0005" is EINVAL, not rounded). */
int ctl_parse_cpus(const char *key, const char *s, uint32_t *out, struct sbx_err *err);

/* Whole non-negative decimal with an optional s/m/h/d suffix (lowercase) ->
 * seconds; max 10 years = 3650 days. 0 is accepted (ttl=0 means never). */
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
 * key replace earlier ones, keeping the earlier one's place). Returns 0 or
 * -EINVAL naming the bad line (no '=', bad key, NUL byte); *out is NULL on
 * error. A trailing "\r" is dropped from each line (CRLF files); blank means
 * only spaces and tabs; the '#' must be the line's first byte.
 */
int ctl_parse_env_file(const char *buf, size_t len, char ***out, struct sbx_err *err);

/*
 * Limits of a sandbox's environment, checked when it is written (the env file
 * and `new ... env.K=V`) so that no run fails later for it. They sit below
 * what execve takes (MAX_ARG_STRLEN, 128 KiB, per string; ARG_MAX, 2 MiB with
 * the default 8 MiB stack, for argv and envp together) and what sbxfs-agent
 * takes (4,096 strings, SBX_AGENT_MAX_ARGS), leaving room for the default
 * variables, argv and the script's path.
 */
#define CTL_ENV_MAX_VARS 1000            /* KEY=VALUE entries */
#define CTL_ENV_MAX_ENTRY (64 * 1024)    /* bytes of one KEY=VALUE */
#define CTL_ENV_MAX_TOTAL (512 * 1024)   /* bytes of all of them, a NUL each */
#define CTL_ENV_FILE_MAX (1024 * 1024)   /* bytes of an env file, comments included */

/*
 * Checks an environment (NULL-terminated KEY=VALUE strings, env may be NULL)
 * against the limits above: 0, or -E2BIG saying which limit and by how much,
 * or -EINVAL for a value holding a newline (the env file could not give it
 * back as one line).
 */
int ctl_check_env(char *const *env, struct sbx_err *err);

/*
 * The header line of a run: the code's first line, when it is a comment
 * (`#` or `//`, blanks allowed before and after) whose text starts with
 * `sbxfs:`, e.g. `# sbxfs: timeout=5`. What follows is parsed as ctl words:
 * key=value pairs only, the one key `timeout`, a duration as ctl's `timeout`
 * takes it (ctl_parse_seconds, at least 1). A first line that is not such a
 * comment is no header (*timeout = 0). A header that does not parse is an
 * error: -EINVAL (syntax, unknown key, stray word), -ERANGE (0, or over 10
 * years), -E2BIG (a first line over CTL_HEADER_MAX bytes that is a header).
 * Pure; code may hold any bytes.
 */
#define CTL_HEADER_MAX 1024
int ctl_parse_run_header(const char *code, size_t len, uint64_t *timeout, struct sbx_err *err);

void ctl_strv_free(char **v);

#endif
