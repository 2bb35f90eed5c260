/*
 * ctl_parse.c - the ctl command language: tokenising lines, parsing values.
 *
 * Everything that arrives here was written by a user into a ctl or env file,
 * so it is untrusted: any bytes, any length, no NUL terminator. The parsers
 * are strict (a value either matches exactly or is rejected with a message
 * that quotes it) and every error path frees what it allocated, so that a
 * failed parse leaves nothing behind for the caller to clean up.
 *
 * Unit tests: tests/unit/test_ctl_parse.c; fuzzing: tests/fuzz/run-fuzz.sh.
 */
#include "ctl_parse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Quoted input in messages is cut to this many bytes, so one bad word in a
 * 64 KiB line does not flood the reply file. */
#define CTL_QUOTE_SHOWN 40
/* Worst case: every byte shown as \xNN, plus "..." and the NUL. */
#define CTL_QUOTE_BUF (CTL_QUOTE_SHOWN * 4 + 4)

#define CTL_SIZE_MAX (UINT64_C(1) << 50)
#define CTL_CPUS_MIN 10u            /* millicpus */
#define CTL_CPUS_MAX 1024000u       /* millicpus */
#define CTL_SECONDS_MAX (UINT64_C(10) * 365 * 86400)
#define CTL_ENV_KEY_MAX 255
#define CTL_NAME_MAX 64

#define CTL_NO_EQ ((size_t)-1)

/*
 * Renders s[0..len) for an error message: printable ASCII as is, anything
 * else as \xNN (messages end up in files read by terminals and agents, so no
 * raw control bytes or half UTF-8 sequences), cut at CTL_QUOTE_SHOWN bytes.
 */
static const char *ctl_quote(char *dst, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t shown = len > CTL_QUOTE_SHOWN ? CTL_QUOTE_SHOWN : len;
	size_t o = 0;

	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	if (shown < len) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

/* Value parsers get a key from the caller's table, but callers may pass a
 * user-written one (env.X); quote it the same way to be safe. */
static const char *ctl_quote_key(char *dst, const char *key)
{
	if (!key)
		key = "value";
	return ctl_quote(dst, key, strlen(key));
}

static bool ctl_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool ctl_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool ctl_is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool ctl_is_name_char(char c)
{
	return ctl_is_alpha(c) || ctl_is_digit(c) || c == '_' || c == '.' || c == '-';
}

/* The same alphabet serves sandbox names and ctl keys: [A-Za-z0-9_.-]+, no
 * leading '.' (so neither can be "." or ".." or a hidden file). */
static bool ctl_is_name(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!ctl_is_name_char(s[i]))
			return false;
	return true;
}

/* ---- tokenising a line ---- */

void ctl_cmd_free(struct ctl_cmd *cmd)
{
	if (!cmd)
		return;
	free(cmd->verb);
	for (size_t i = 0; i < cmd->nargs; i++)
		free(cmd->args[i]);
	free(cmd->args);
	for (size_t i = 0; i < cmd->nkvs; i++) {
		free(cmd->kvs[i].key);
		free(cmd->kvs[i].value);
	}
	free(cmd->kvs);
	memset(cmd, 0, sizeof(*cmd));
}

/* Where each word landed in the scratch buffer and where its '=' is. */
struct ctl_words {
	size_t n;
	size_t start[CTL_MAX_WORDS];
	size_t eq[CTL_MAX_WORDS];   /* offset of the key's '=', or CTL_NO_EQ */
};

/* A line being split: input position i, output position o in buf. */
struct ctl_scan {
	const char *line;
	size_t len, i;
	char *buf;
	size_t o;
};

/* '...': everything literally. false when the quote is not closed. */
static bool ctl_scan_single(struct ctl_scan *s)
{
	const char *end = memchr(s->line + s->i + 1, '\'', s->len - s->i - 1);
	size_t n;

	if (!end)
		return false;
	n = (size_t)(end - (s->line + s->i + 1));
	memcpy(s->buf + s->o, s->line + s->i + 1, n);
	s->o += n;
	s->i += n + 2;
	return true;
}

/* The byte an escape inside double quotes gives, or 0 when it stays as written. */
static char ctl_dq_escape(char e)
{
	switch (e) {
	case '"': case '\\': case '$': return e;
	case 'n': return '\n';
	case 't': return '\t';
	default: return 0;
	}
}

/* "...": \" \\ \$ \n \t; any other escape stays as written, as in the shell
 * ("C:\dir" means what it says). false when the quote is not closed. */
static bool ctl_scan_double(struct ctl_scan *s)
{
	for (s->i++; s->i < s->len && s->line[s->i] != '"'; s->i++) {
		char e = s->line[s->i] == '\\' && s->i + 1 < s->len ? ctl_dq_escape(s->line[s->i + 1]) : 0;

		if (e) {
			s->buf[s->o++] = e;
			s->i++;
		} else {
			s->buf[s->o++] = s->line[s->i];
		}
	}
	if (s->i == s->len)
		return false;
	s->i++;
	return true;
}

/* One word, from s->i (not blank) to the next blank outside quotes. */
static int ctl_scan_word(struct ctl_scan *s, struct ctl_words *w, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF];
	size_t wstart = s->i, wout = s->o;
	bool plain = true;   /* no quote or escape seen yet in this word */

	w->start[w->n] = s->o;
	w->eq[w->n] = CTL_NO_EQ;
	while (s->i < s->len && !ctl_is_blank(s->line[s->i])) {
		char c = s->line[s->i];
		bool closed = true;

		if (c == '\'' || c == '"') {
			closed = c == '\'' ? ctl_scan_single(s) : ctl_scan_double(s);
			plain = false;
		} else if (c == '\\') {
			if (s->i + 1 == s->len)
				return sbx_err_set(err, EINVAL, "trailing backslash in '%s'",
						   ctl_quote(q, s->line + wstart, s->len - wstart));
			s->buf[s->o++] = s->line[s->i + 1];
			s->i += 2;
			plain = false;
		} else {
			/* Only the first '=' of an unquoted start can make a key;
			 * after it the word is settled either way. */
			if (c == '=' && plain) {
				if (ctl_is_name(s->buf + wout, s->o - wout))
					w->eq[w->n] = s->o;
				plain = false;
			}
			s->buf[s->o++] = c;
			s->i++;
		}
		if (!closed)
			return sbx_err_set(err, EINVAL, "unterminated quote in '%s'",
					   ctl_quote(q, s->line + wstart, s->len - wstart));
	}
	s->buf[s->o++] = '\0';
	w->n++;
	return 0;
}

/*
 * Splits line[0..len) into words written NUL-separated into buf (which has
 * room for len + 1 bytes: unquoting and unescaping never grow a word, and a
 * word of n output bytes took at least n input bytes plus a separator or a
 * pair of quotes).
 */
static int ctl_split(const char *line, size_t len, char *buf, struct ctl_words *w,
		     struct sbx_err *err)
{
	struct ctl_scan s = { .line = line, .len = len, .buf = buf };
	char q[CTL_QUOTE_BUF];
	int ret;

	w->n = 0;
	for (;;) {
		while (s.i < len && ctl_is_blank(line[s.i]))
			s.i++;
		if (s.i == len)
			return 0;
		if (w->n == CTL_MAX_WORDS)
			return sbx_err_set(err, E2BIG, "too many words in '%s': at most %d",
					   ctl_quote(q, line, len), CTL_MAX_WORDS);
		ret = ctl_scan_word(&s, w, err);
		if (ret)
			return ret;
	}
}

static int ctl_build_cmd(const char *buf, const struct ctl_words *w, struct ctl_cmd *cmd,
			 struct sbx_err *err)
{
	size_t nargs = 0, nkvs = 0;

	for (size_t k = 1; k < w->n; k++) {
		if (w->eq[k] == CTL_NO_EQ)
			nargs++;
		else
			nkvs++;
	}
	cmd->verb = strdup(buf + w->start[0]);
	if (!cmd->verb)
		goto nomem;
	if (nargs) {
		cmd->args = calloc(nargs, sizeof(*cmd->args));
		if (!cmd->args)
			goto nomem;
	}
	if (nkvs) {
		cmd->kvs = calloc(nkvs, sizeof(*cmd->kvs));
		if (!cmd->kvs)
			goto nomem;
	}
	/* Counts rise only as entries are filled, so ctl_cmd_free() is safe
	 * at any point below. */
	for (size_t k = 1; k < w->n; k++) {
		const char *word = buf + w->start[k];

		if (w->eq[k] == CTL_NO_EQ) {
			cmd->args[cmd->nargs] = strdup(word);
			if (!cmd->args[cmd->nargs])
				goto nomem;
			cmd->nargs++;
		} else {
			struct ctl_kv *kv = &cmd->kvs[cmd->nkvs];
			size_t klen = w->eq[k] - w->start[k];

			kv->key = strndup(word, klen);
			kv->value = strdup(word + klen + 1);
			cmd->nkvs++;
			if (!kv->key || !kv->value)
				goto nomem;
		}
	}
	return 0;
nomem:
	ctl_cmd_free(cmd);
	return sbx_err_set(err, ENOMEM, "out of memory parsing a command");
}

int ctl_parse_line(const char *line, size_t len, struct ctl_cmd *cmd, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF];
	struct ctl_words *w = NULL;
	char *buf = NULL;
	int ret;

	memset(cmd, 0, sizeof(*cmd));
	if (!line)
		len = 0;
	if (len && line[len - 1] == '\r')
		len--;
	if (len > CTL_LINE_MAX)
		return sbx_err_set(err, E2BIG, "command line '%s' too long: %zu bytes, at most %d",
				   ctl_quote(q, line, len), len, CTL_LINE_MAX);
	/* Checked up front so no quoting can smuggle a control byte into a
	 * word, and the message can point at the byte. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			char hex[8];

			return sbx_err_set(err, EINVAL, "control character %s at byte %zu in '%s'",
					   ctl_quote(hex, line + i, 1), i + 1,
					   ctl_quote(q, line, len));
		}
	}

	buf = malloc(len + 1);
	w = malloc(sizeof(*w));
	if (!buf || !w) {
		ret = sbx_err_set(err, ENOMEM, "out of memory parsing a command");
		goto out;
	}
	ret = ctl_split(line, len, buf, w, err);
	if (ret)
		goto out;
	if (w->n == 0) {
		ret = sbx_err_set(err, ENODATA, "empty command");
		goto out;
	}
	if (w->eq[0] != CTL_NO_EQ) {
		ret = sbx_err_set(err, EINVAL, "missing command before '%s'",
				  ctl_quote(q, buf, strlen(buf)));
		goto out;
	}
	if (buf[0] == '\0') {
		ret = sbx_err_set(err, EINVAL, "empty command word in '%s'",
				  ctl_quote(q, line, len));
		goto out;
	}
	ret = ctl_build_cmd(buf, w, cmd, err);
out:
	free(w);
	free(buf);
	return ret;
}

int ctl_for_each_line(const char *buf, size_t len,
		      int (*fn)(const char *line, size_t len, void *arg), void *arg)
{
	size_t i = 0;

	if (!buf)
		return 0;
	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) : len - i;
		int ret = fn(buf + i, n, arg);

		if (ret)
			return ret;
		i += n + 1;
	}
	return 0;
}

/* ---- values ---- */

/*
 * Reads decimal digits at *pp, advancing it. Returns how many were read; the
 * value saturates at UINT64_MAX with *overflow set, so syntax errors can still
 * be told apart from range errors after the whole string is read.
 */
static size_t ctl_digits(const char **pp, uint64_t *out, bool *overflow)
{
	const char *p = *pp;
	uint64_t v = 0;
	bool over = false;
	size_t n;

	while (ctl_is_digit(*p)) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			over = true;
		else if (!over)
			v = v * 10 + d;
		p++;
	}
	*out = over ? UINT64_MAX : v;
	*overflow = over;
	n = (size_t)(p - *pp);
	*pp = p;
	return n;
}

int ctl_parse_size(const char *key, const char *s, uint64_t *out, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF], k[CTL_QUOTE_BUF];
	const char *p = s;
	uint64_t ip, frac = 0, scale = 1, v;
	unsigned shift = 0;
	bool over, has_frac = false, has_mult = false;

	if (!s)
		s = p = "";
	if (!ctl_digits(&p, &ip, &over))
		goto bad;
	if (*p == '.') {
		p++;
		if (!ctl_is_digit(*p))
			goto bad;
		/* Six decimals are finer than a byte at any multiplier we
		 * accept; the rest must still be digits but cannot count. */
		for (; ctl_is_digit(*p); p++) {
			if (scale < 1000000) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				scale *= 10;
			}
		}
		has_frac = true;
	}
	switch (*p) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default: break;
	}
	if (shift) {
		has_mult = true;
		p++;
		if (*p == 'i')
			p++;
	}
	if (*p == 'B')
		p++;
	/* A fraction of a byte means nothing, so "1.5" alone is a typo. */
	if (*p || (has_frac && !has_mult))
		goto bad;

	if (over || ip > (CTL_SIZE_MAX >> shift))
		goto range;
	v = (ip << shift) + ((frac << shift) / scale);
	if (v > CTL_SIZE_MAX)
		goto range;
	*out = v;
	return 0;
bad:
	return sbx_err_set(err, EINVAL,
			   "bad size '%s' for %s: expected a number with an optional K, M, G or T suffix",
			   ctl_quote(q, s, strlen(s)), ctl_quote_key(k, key));
range:
	return sbx_err_set(err, ERANGE, "size '%s' for %s is out of range: at most 1024T",
			   ctl_quote(q, s, strlen(s)), ctl_quote_key(k, key));
}

int ctl_parse_cpus(const char *key, const char *s, uint32_t *out, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF], k[CTL_QUOTE_BUF];
	const char *p = s;
	uint64_t ip, millis;
	unsigned frac = 0, nfrac = 0;
	bool over;

	if (!s)
		s = p = "";
	if (!ctl_digits(&p, &ip, &over))
		goto bad;
	if (*p == '.') {
		p++;
		if (!ctl_is_digit(*p))
			goto bad;
		for (; ctl_is_digit(*p); p++) {
			/* Below a millicpu the scheduler cannot tell the
			 * difference; refuse rather than silently round. */
			if (++nfrac > 3)
				goto bad;
			frac = frac * 10 + (unsigned)(*p - '0');
		}
		for (; nfrac < 3; nfrac++)
			frac *= 10;
	}
	if (*p)
		goto bad;
	if (over || ip > CTL_CPUS_MAX / 1000)
		goto range;
	millis = ip * 1000 + frac;
	if (millis < CTL_CPUS_MIN || millis > CTL_CPUS_MAX)
		goto range;
	*out = (uint32_t)millis;
	return 0;
bad:
	return sbx_err_set(err, EINVAL,
			   "bad cpu count '%s' for %s: expected a number such as 0.5 or 2, with at most 3 decimals",
			   ctl_quote(q, s, strlen(s)), ctl_quote_key(k, key));
range:
	return sbx_err_set(err, ERANGE, "cpu count '%s' for %s is out of range: expected 0.01 to 1024",
			   ctl_quote(q, s, strlen(s)), ctl_quote_key(k, key));
}

int ctl_parse_seconds(const char *key, const char *s, uint64_t *out, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF], k[CTL_QUOTE_BUF];
	const char *p = s;
	uint64_t v, mult = 1;
	bool over;

	if (!s)
		s = p = "";
	if (!ctl_digits(&p, &v, &over))
		goto bad;
	/* Lowercase only: "M" would read as months to some people. */
	switch (*p) {
	case 's': mult = 1; p++; break;
	case 'm': mult = 60; p++; break;
	case 'h': mult = 3600; p++; break;
	case 'd': mult = 86400; p++; break;
	default: break;
	}
	if (*p)
		goto bad;
	if (over || v > CTL_SECONDS_MAX / mult)
		goto range;
	*out = v * mult;
	return 0;
bad:
	return sbx_err_set(err, EINVAL,
			   "bad duration '%s' for %s: expected whole seconds with an optional s, m, h or d suffix",
			   ctl_quote(q, s, strlen(s)), ctl_quote_key(k, key));
range:
	return sbx_err_set(err, ERANGE, "duration '%s' for %s is out of range: at most 10 years",
			   ctl_quote(q, s, strlen(s)), ctl_quote_key(k, key));
}

int ctl_parse_uint(const char *key, const char *s, uint64_t min, uint64_t max,
		   uint64_t *out, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF], k[CTL_QUOTE_BUF];
	const char *p = s;
	uint64_t v;
	bool over;

	if (!s)
		s = p = "";
	if (!ctl_digits(&p, &v, &over) || *p)
		return sbx_err_set(err, EINVAL, "bad number '%s' for %s: expected a whole number",
				   ctl_quote(q, s, strlen(s)), ctl_quote_key(k, key));
	if (over || v < min || v > max)
		return sbx_err_set(err, ERANGE,
				   "number '%s' for %s is out of range: expected %llu to %llu",
				   ctl_quote(q, s, strlen(s)), ctl_quote_key(k, key),
				   (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}

int ctl_check_name(const char *name, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF];
	size_t len;

	if (!name)
		name = "";
	len = strlen(name);
	if (len > CTL_NAME_MAX || !ctl_is_name(name, len))
		return sbx_err_set(err, EINVAL,
				   "bad name '%s': expected 1 to %d characters of A-Z a-z 0-9 _ . - not starting with '.'",
				   ctl_quote(q, name, len), CTL_NAME_MAX);
	return 0;
}

static int ctl_check_env_key_n(const char *key, size_t len, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF];
	bool ok = len > 0 && (ctl_is_alpha(key[0]) || key[0] == '_');

	for (size_t i = 1; ok && i < len; i++)
		ok = ctl_is_alpha(key[i]) || ctl_is_digit(key[i]) || key[i] == '_';
	if (!ok)
		return sbx_err_set(err, EINVAL,
				   "bad environment key '%s': expected a letter or _ followed by letters, digits or _",
				   ctl_quote(q, key, len));
	if (len > CTL_ENV_KEY_MAX)
		return sbx_err_set(err, EINVAL, "environment key '%s' is too long: at most %d bytes",
				   ctl_quote(q, key, len), CTL_ENV_KEY_MAX);
	return 0;
}

int ctl_check_env_key(const char *key, struct sbx_err *err)
{
	if (!key)
		key = "";
	return ctl_check_env_key_n(key, strlen(key), err);
}

/* ---- environment limits ---- */

int ctl_check_env(char *const *env, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF];
	size_t n = 0, total = 0;

	for (; env && env[n]; n++) {
		size_t len = strlen(env[n]);
		const char *eq = strchr(env[n], '=');
		size_t klen = eq ? (size_t)(eq - env[n]) : len;

		if (n == CTL_ENV_MAX_VARS)
			return sbx_err_set(err, E2BIG, "env has more than %d variables", CTL_ENV_MAX_VARS);
		if (len > CTL_ENV_MAX_ENTRY)
			return sbx_err_set(err, E2BIG, "env variable '%s' is %zu bytes: at most %d for KEY=VALUE",
					   ctl_quote(q, env[n], klen), len, CTL_ENV_MAX_ENTRY);
		if (strchr(env[n], '\n'))
			return sbx_err_set(err, EINVAL,
					   "env variable '%s' holds a newline: env is one KEY=VALUE per line",
					   ctl_quote(q, env[n], klen));
		total += len + 1;
	}
	if (total > CTL_ENV_MAX_TOTAL)
		return sbx_err_set(err, E2BIG, "env is %zu bytes in all: at most %d", total, CTL_ENV_MAX_TOTAL);
	return 0;
}

/* ---- the header line of a run ---- */

/* The text after `sbxfs:` when line is a header comment, else NULL. */
static const char *ctl_header_text(const char *line, size_t len, size_t *rest)
{
	size_t i = 0;

	while (i < len && ctl_is_blank(line[i]))
		i++;
	if (i < len && line[i] == '#')
		i++;
	else if (i + 1 < len && line[i] == '/' && line[i + 1] == '/')
		i += 2;
	else
		return NULL;
	while (i < len && ctl_is_blank(line[i]))
		i++;
	if (len - i < 6 || memcmp(line + i, "sbxfs:", 6) != 0)
		return NULL;
	*rest = len - i - 6;
	return line + i + 6;
}

static int ctl_header_words(const struct ctl_cmd *c, uint64_t *timeout, struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF];
	int ret;

	if (c->nargs)
		return sbx_err_set(err, EINVAL, "unexpected '%s': expected timeout=SECONDS",
				   ctl_quote(q, c->args[0], strlen(c->args[0])));
	if (!c->nkvs)
		return sbx_err_set(err, EINVAL, "nothing after 'sbxfs:': expected timeout=SECONDS");
	for (size_t i = 0; i < c->nkvs; i++) {
		if (strcmp(c->kvs[i].key, "timeout") != 0)
			return sbx_err_set(err, EINVAL, "unknown key '%s' (known: timeout)",
					   ctl_quote(q, c->kvs[i].key, strlen(c->kvs[i].key)));
		ret = ctl_parse_seconds("timeout", c->kvs[i].value, timeout, err);
		if (!ret && *timeout == 0)
			ret = sbx_err_set(err, ERANGE, "timeout must be at least 1 second");
		if (ret)
			return ret;
	}
	return 0;
}

int ctl_parse_run_header(const char *code, size_t len, uint64_t *timeout, struct sbx_err *err)
{
	const char *nl = code ? memchr(code, '\n', len) : NULL;
	size_t llen = nl ? (size_t)(nl - code) : (code ? len : 0), rest;
	const char *text;
	struct ctl_cmd c;
	char line[CTL_HEADER_MAX + 8];
	int ret;

	*timeout = 0;
	text = ctl_header_text(code, llen, &rest);
	if (!text)
		return 0;
	if (llen > CTL_HEADER_MAX)
		return sbx_err_set(err, E2BIG, "run header is %zu bytes: at most %d", llen, CTL_HEADER_MAX);
	/* The words after `sbxfs:` as a ctl line of the verb `sbxfs`. */
	memcpy(line, "sbxfs ", 6);
	memcpy(line + 6, text, rest);
	ret = ctl_parse_line(line, rest + 6, &c, err);
	if (ret) {
		if (err)
			sbx_err_wrap(err, "run header");
		return ret;
	}
	ret = ctl_header_words(&c, timeout, err);
	ctl_cmd_free(&c);
	if (ret) {
		*timeout = 0;
		if (err)
			sbx_err_wrap(err, "run header");
	}
	return ret;
}

/* ---- env files ---- */

void ctl_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

struct ctl_env_ent {
	const char *line;   /* "KEY=VALUE", not NUL-terminated */
	size_t len;
	size_t klen;
	size_t pos;         /* order in the file, to keep sorting stable */
};

static int ctl_env_cmp_key(const struct ctl_env_ent *x, const struct ctl_env_ent *y)
{
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->line, y->line, n);

	if (c)
		return c;
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	return 0;
}

static int ctl_env_cmp(const void *a, const void *b)
{
	const struct ctl_env_ent *x = a, *y = b;
	int c = ctl_env_cmp_key(x, y);

	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int ctl_env_pos_cmp(const void *a, const void *b)
{
	const struct ctl_env_ent *x = a, *y = b;

	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * Collects the KEY=VALUE lines of buf into ents (room for one per line).
 * Returns how many, or a negative errno.
 */
static long ctl_env_scan(const char *buf, size_t len, struct ctl_env_ent *ents,
			 struct sbx_err *err)
{
	char q[CTL_QUOTE_BUF];
	size_t i = 0, lineno = 0, n = 0;

	while (i < len) {
		const char *line = buf + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t llen = nl ? (size_t)(nl - line) : len - i;
		const char *eq;
		size_t j;
		int ret;

		i += llen + 1;
		lineno++;
		/* Files saved by Windows editors end lines with \r\n. */
		if (llen && line[llen - 1] == '\r')
			llen--;
		for (j = 0; j < llen && ctl_is_blank(line[j]); j++)
			;
		if (j == llen || line[0] == '#')
			continue;
		/* The result is a C string: a NUL would cut the value short
		 * without anyone noticing. */
		if (memchr(line, '\0', llen))
			return sbx_err_set(err, EINVAL, "line %zu of env: NUL byte in '%s'",
					   lineno, ctl_quote(q, line, llen));
		eq = memchr(line, '=', llen);
		if (!eq)
			return sbx_err_set(err, EINVAL, "line %zu of env: expected KEY=VALUE, got '%s'",
					   lineno, ctl_quote(q, line, llen));
		ret = ctl_check_env_key_n(line, (size_t)(eq - line), err);
		if (ret) {
			if (err)
				sbx_err_wrap(err, "line %zu of env", lineno);
			return ret;
		}
		ents[n].line = line;
		ents[n].len = llen;
		ents[n].klen = (size_t)(eq - line);
		ents[n].pos = n;
		n++;
	}
	return (long)n;
}

int ctl_parse_env_file(const char *buf, size_t len, char ***out, struct sbx_err *err)
{
	struct ctl_env_ent *ents = NULL;
	char **v = NULL;
	size_t nlines = 1, n, kept = 0;
	long scanned;
	int ret = 0;

	*out = NULL;
	if (!buf)
		len = 0;
	if (len > CTL_ENV_FILE_MAX)
		return sbx_err_set(err, E2BIG, "env is %zu bytes: at most %d", len, CTL_ENV_FILE_MAX);
	for (size_t i = 0; i < len; i++)
		nlines += buf[i] == '\n';
	ents = calloc(nlines, sizeof(*ents));
	if (!ents)
		return sbx_err_set(err, ENOMEM, "out of memory parsing env");
	scanned = ctl_env_scan(buf, len, ents, err);
	if (scanned < 0) {
		ret = (int)scanned;
		goto out;
	}
	n = (size_t)scanned;

	/*
	 * Later duplicates replace earlier ones in the earlier place (as an
	 * assignment to an existing variable would). Sorting by key keeps this
	 * O(n log n) for files with many lines: in each run of equal keys the
	 * first keeps its place and takes the last one's text.
	 */
	qsort(ents, n, sizeof(*ents), ctl_env_cmp);
	for (size_t a = 0; a < n;) {
		size_t b = a + 1;

		while (b < n && ctl_env_cmp_key(&ents[a], &ents[b]) == 0)
			b++;
		ents[a].line = ents[b - 1].line;
		ents[a].len = ents[b - 1].len;
		ents[kept++] = ents[a];
		a = b;
	}
	qsort(ents, kept, sizeof(*ents), ctl_env_pos_cmp);

	v = calloc(kept + 1, sizeof(*v));
	if (!v)
		goto nomem;
	for (size_t k = 0; k < kept; k++) {
		v[k] = strndup(ents[k].line, ents[k].len);
		if (!v[k])
			goto nomem;
	}
	ret = ctl_check_env(v, err);
	if (ret)
		goto out;
	*out = v;
	v = NULL;
	goto out;
nomem:
	ret = sbx_err_set(err, ENOMEM, "out of memory parsing env");
out:
	ctl_strv_free(v);
	free(ents);
	return ret;
}
