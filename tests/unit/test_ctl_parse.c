/*
 * test_ctl_parse.c - unit tests for control/ctl_parse.c.
 *
 * Plain C, no framework: each CHECK counts a pass or prints the failing
 * expression with its line. Exits non-zero if anything failed.
 * Run: meson test -C build ctl_parse (or build/tests/unit/test_ctl_parse).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../control/ctl_parse.h"

static int passed, failed;

#define CHECK(expr) do { \
	if (expr) { \
		passed++; \
	} else { \
		failed++; \
		fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #expr); \
	} \
} while (0)

#define CHECK_STR(got, want) do { \
	const char *g_ = (got), *w_ = (want); \
	if (g_ && w_ && strcmp(g_, w_) == 0) { \
		passed++; \
	} else { \
		failed++; \
		fprintf(stderr, "%s:%d: failed: %s is '%s', want '%s'\n", __FILE__, __LINE__, \
			#got, g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
	} \
} while (0)

static bool cmd_is_empty(const struct ctl_cmd *c)
{
	return !c->verb && !c->args && !c->nargs && !c->kvs && !c->nkvs;
}

/* Parses a NUL-terminated line; returns the result, cmd and err filled. */
static int parse(const char *line, struct ctl_cmd *cmd, struct sbx_err *err)
{
	sbx_err_clear(err);
	/* Garbage in *cmd must not matter: the parser sets it. */
	memset(cmd, 0xa5, sizeof(*cmd));
	return ctl_parse_line(line, strlen(line), cmd, err);
}

/* Checks that a line fails with code (and, if msg, that exact message). */
static void parse_fails(const char *line, int code, const char *msg, int lineno)
{
	struct ctl_cmd cmd;
	struct sbx_err err;
	int ret = parse(line, &cmd, &err);

	if (ret == -code && err.code == code && cmd_is_empty(&cmd) &&
	    (!msg || strcmp(err.msg, msg) == 0)) {
		passed++;
		return;
	}
	failed++;
	fprintf(stderr, "%s:%d: parsing '%s': got %d '%s', want %d%s%s\n", __FILE__, lineno,
		line, ret, err.msg, -code, msg ? " " : "", msg ? msg : "");
	if (ret == 0)
		ctl_cmd_free(&cmd);
}
#define PARSE_FAILS(line, code, msg) parse_fails(line, code, msg, __LINE__)

static void test_words(void)
{
	struct ctl_cmd c;
	struct sbx_err err;

	CHECK(parse("new box1 mem=512M env.GREETING=\"hello world\" meta.owner='a b'", &c, &err) == 0);
	CHECK_STR(c.verb, "new");
	CHECK(c.nargs == 1);
	CHECK_STR(c.args[0], "box1");
	CHECK(c.nkvs == 3);
	CHECK_STR(c.kvs[0].key, "mem");
	CHECK_STR(c.kvs[0].value, "512M");
	CHECK_STR(c.kvs[1].key, "env.GREETING");
	CHECK_STR(c.kvs[1].value, "hello world");
	CHECK_STR(c.kvs[2].key, "meta.owner");
	CHECK_STR(c.kvs[2].value, "a b");
	ctl_cmd_free(&c);
	CHECK(cmd_is_empty(&c));
	ctl_cmd_free(&c);   /* twice is harmless */

	/* Verb alone: no arrays at all. */
	CHECK(parse("  \tkill\t ", &c, &err) == 0);
	CHECK_STR(c.verb, "kill");
	CHECK(c.nargs == 0 && c.args == NULL && c.nkvs == 0 && c.kvs == NULL);
	ctl_cmd_free(&c);

	/* Order of args and kvs is kept, interleaved or not. */
	CHECK(parse("set a=1 x b=2 y", &c, &err) == 0);
	CHECK(c.nargs == 2 && c.nkvs == 2);
	CHECK_STR(c.args[0], "x");
	CHECK_STR(c.args[1], "y");
	CHECK_STR(c.kvs[0].key, "a");
	CHECK_STR(c.kvs[1].value, "2");
	ctl_cmd_free(&c);

	/* Trailing \r is ignored (CRLF writers). */
	CHECK(parse("kill box\r", &c, &err) == 0);
	CHECK_STR(c.args[0], "box");
	ctl_cmd_free(&c);

	/* Non-ASCII bytes are ordinary word bytes. */
	CHECK(parse("new caf\xc3\xa9 meta.x=\xe2\x82\xac", &c, &err) == 0);
	CHECK_STR(c.args[0], "caf\xc3\xa9");
	CHECK_STR(c.kvs[0].value, "\xe2\x82\xac");
	ctl_cmd_free(&c);

	/* Lengths are honoured: no NUL terminator needed, bytes past len ignored. */
	{
		const char buf[] = { 'k', 'i', 'l', 'l', ' ', 'a', 'b', 'X', 'Y' };

		CHECK(ctl_parse_line(buf, 7, &c, &err) == 0);
		CHECK_STR(c.args[0], "ab");
		ctl_cmd_free(&c);
	}
}

static void test_quoting(void)
{
	struct ctl_cmd c;
	struct sbx_err err;

	/* Single quotes: everything literal, including backslashes and ". */
	CHECK(parse("v 'a\\n\"b' ''", &c, &err) == 0);
	CHECK(c.nargs == 2);
	CHECK_STR(c.args[0], "a\\n\"b");
	CHECK_STR(c.args[1], "");
	ctl_cmd_free(&c);

	/* Double quotes: \" \\ \n \t \$; anything else stays as written. */
	CHECK(parse("v \"q\\\"b\\\\s\\nn\\tt\\$d\\x\" \"C:\\dir\"", &c, &err) == 0);
	CHECK_STR(c.args[0], "q\"b\\s\nn\tt$d\\x");
	CHECK_STR(c.args[1], "C:\\dir");
	ctl_cmd_free(&c);

	/* Backslash outside quotes escapes the next byte, blanks included. */
	CHECK(parse("v a\\ b \\'x\\\" \\\\", &c, &err) == 0);
	CHECK(c.nargs == 3);
	CHECK_STR(c.args[0], "a b");
	CHECK_STR(c.args[1], "'x\"");
	CHECK_STR(c.args[2], "\\");
	ctl_cmd_free(&c);

	/* Adjacent pieces join into one word. */
	CHECK(parse("v a'b c'\"d e\"f", &c, &err) == 0);
	CHECK(c.nargs == 1);
	CHECK_STR(c.args[0], "ab cd ef");
	ctl_cmd_free(&c);

	/* A quoted verb is fine; the caller looks it up. */
	CHECK(parse("'new' x", &c, &err) == 0);
	CHECK_STR(c.verb, "new");
	ctl_cmd_free(&c);

	PARSE_FAILS("new x env.A=\"abc", EINVAL, "unterminated quote in 'env.A=\"abc'");
	PARSE_FAILS("new x 'abc", EINVAL, "unterminated quote in ''abc'");
	PARSE_FAILS("'", EINVAL, NULL);
	PARSE_FAILS("v \"a\\\"", EINVAL, NULL);
	PARSE_FAILS("v abc\\", EINVAL, "trailing backslash in 'abc\\'");
	/* Long offending input is cut in the message. */
	PARSE_FAILS("v '0123456789012345678901234567890123456789abcdef", EINVAL,
		    "unterminated quote in ''012345678901234567890123456789012345678...'");
}

static void test_kv(void)
{
	struct ctl_cmd c;
	struct sbx_err err;

	CHECK(parse("v env.A=\"x y\" \"a=b\" a\\=b 'k'=v k'=v' .a=b =x a!=b -x=1 _=", &c, &err) == 0);
	CHECK(c.nkvs == 3);
	CHECK_STR(c.kvs[0].key, "env.A");
	CHECK_STR(c.kvs[0].value, "x y");
	CHECK_STR(c.kvs[1].key, "-x");
	CHECK_STR(c.kvs[1].value, "1");
	CHECK_STR(c.kvs[2].key, "_");
	CHECK_STR(c.kvs[2].value, "");
	CHECK(c.nargs == 7);
	CHECK_STR(c.args[0], "a=b");
	CHECK_STR(c.args[1], "a=b");
	CHECK_STR(c.args[2], "k=v");
	/* k'=v': the '=' is quoted, so there is no unquoted KEY= start. */
	CHECK_STR(c.args[3], "k=v");
	CHECK_STR(c.args[4], ".a=b");
	CHECK_STR(c.args[5], "=x");
	CHECK_STR(c.args[6], "a!=b");
	ctl_cmd_free(&c);

	/* Only the first '=' splits; the value keeps the rest verbatim. */
	CHECK(parse("set a=b=c x=' q '", &c, &err) == 0);
	CHECK_STR(c.kvs[0].key, "a");
	CHECK_STR(c.kvs[0].value, "b=c");
	CHECK_STR(c.kvs[1].value, " q ");
	ctl_cmd_free(&c);

	/* The verb cannot be a key=value or empty. */
	PARSE_FAILS("mem=1G", EINVAL, "missing command before 'mem=1G'");
	PARSE_FAILS("'' x", EINVAL, "empty command word in ''' x'");
	PARSE_FAILS("\"\"", EINVAL, NULL);
}

static void test_bad_lines(void)
{
	char *big;

	PARSE_FAILS("", ENODATA, NULL);
	PARSE_FAILS("   \t ", ENODATA, NULL);
	PARSE_FAILS("\r", ENODATA, NULL);
	PARSE_FAILS("kill a\x01", EINVAL, "control character \\x01 at byte 7 in 'kill a\\x01'");
	PARSE_FAILS("kill 'a\nb'", EINVAL, NULL);
	PARSE_FAILS("kill a\rb", EINVAL, NULL);
	PARSE_FAILS("kill a\r\r", EINVAL, NULL);
	PARSE_FAILS("kill \x7f", EINVAL, NULL);
	{
		struct ctl_cmd c;
		struct sbx_err err;

		memset(&c, 0xa5, sizeof(c));
		CHECK(ctl_parse_line("kill a\0b", 8, &c, &err) == -EINVAL);
		CHECK(cmd_is_empty(&c));
		memset(&c, 0xa5, sizeof(c));
		CHECK(ctl_parse_line(NULL, 0, &c, &err) == -ENODATA);
		CHECK(cmd_is_empty(&c));
	}

	/* Limits: exactly at them passes, one over fails with E2BIG. */
	big = malloc(CTL_LINE_MAX + 8);
	if (!big)
		abort();
	{
		struct ctl_cmd c;
		struct sbx_err err;

		memset(big, 'a', CTL_LINE_MAX + 2);
		CHECK(ctl_parse_line(big, CTL_LINE_MAX, &c, &err) == 0);
		CHECK(c.verb && strlen(c.verb) == CTL_LINE_MAX);
		ctl_cmd_free(&c);
		big[CTL_LINE_MAX] = '\r';
		CHECK(ctl_parse_line(big, CTL_LINE_MAX + 1, &c, &err) == 0);
		ctl_cmd_free(&c);
		big[CTL_LINE_MAX] = 'a';
		memset(&c, 0xa5, sizeof(c));
		CHECK(ctl_parse_line(big, CTL_LINE_MAX + 1, &c, &err) == -E2BIG);
		CHECK(err.code == E2BIG && cmd_is_empty(&c));
		CHECK_STR(err.msg, "command line 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' too long: 65537 bytes, at most 65536");

		for (size_t i = 0; i < CTL_MAX_WORDS; i++) {
			big[2 * i] = 'w';
			big[2 * i + 1] = ' ';
		}
		CHECK(ctl_parse_line(big, 2 * CTL_MAX_WORDS, &c, &err) == 0);
		CHECK(c.nargs == CTL_MAX_WORDS - 1);
		ctl_cmd_free(&c);
		big[2 * CTL_MAX_WORDS] = 'w';
		memset(&c, 0xa5, sizeof(c));
		CHECK(ctl_parse_line(big, 2 * CTL_MAX_WORDS + 1, &c, &err) == -E2BIG);
		CHECK(cmd_is_empty(&c));
		CHECK(strncmp(err.msg, "too many words in 'w w w", 24) == 0);
	}
	free(big);
}

struct lines {
	int n;
	char seen[8][32];
	int stop_at;
};

static int collect(const char *line, size_t len, void *arg)
{
	struct lines *l = arg;

	if (l->n < 8)
		snprintf(l->seen[l->n], sizeof(l->seen[0]), "%.*s", (int)len, line);
	l->n++;
	return l->n == l->stop_at ? 42 : 0;
}

static void test_lines(void)
{
	struct lines l;

	memset(&l, 0, sizeof(l));
	CHECK(ctl_for_each_line("a b\n\nc", 6, collect, &l) == 0);
	CHECK(l.n == 3);
	CHECK_STR(l.seen[0], "a b");
	CHECK_STR(l.seen[1], "");
	CHECK_STR(l.seen[2], "c");

	memset(&l, 0, sizeof(l));
	CHECK(ctl_for_each_line("a\nb\n", 4, collect, &l) == 0);
	CHECK(l.n == 2);

	memset(&l, 0, sizeof(l));
	CHECK(ctl_for_each_line("", 0, collect, &l) == 0);
	CHECK(l.n == 0);

	memset(&l, 0, sizeof(l));
	CHECK(ctl_for_each_line("\n", 1, collect, &l) == 0);
	CHECK(l.n == 1 && l.seen[0][0] == '\0');

	memset(&l, 0, sizeof(l));
	l.stop_at = 2;
	CHECK(ctl_for_each_line("a\nb\nc\n", 6, collect, &l) == 42);
	CHECK(l.n == 2);
}

static void test_size(void)
{
	struct sbx_err err;
	uint64_t v = 7;
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "4096", 4096 }, { "64k", 65536 }, { "64K", 65536 },
		{ "512M", 512ull << 20 }, { "1G", 1ull << 30 }, { "1.5G", 3ull << 29 },
		{ "1T", 1ull << 40 }, { "1024T", 1ull << 50 }, { "1125899906842624", 1ull << 50 },
		{ "2Ki", 2048 }, { "2KB", 2048 }, { "2KiB", 2048 }, { "100B", 100 },
		{ "0.5k", 512 }, { "1.0000001K", 1024 }, { "007M", 7ull << 20 },
		{ "1.999999999999999999999999K", 2047 },
	};
	static const char *const bad[] = {
		"", "12Q", "+1", "-1", " 1", "1 ", "1.", ".5G", "1.5", "1.5B", "1KK", "1iB",
		"1Bi", "1GiBx", "0x10", "1e3", "1,5G", "G", "1\n", "1P",
	};
	static const char *const range[] = {
		"1025T", "1125899906842625", "99999999999999999999999999", "1048577G",
		"1024.001T", "18446744073709551616",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 7;
		if (ctl_parse_size("mem", good[i].s, &v, &err) != 0 || v != good[i].v) {
			failed++;
			fprintf(stderr, "size '%s': got %llu\n", good[i].s, (unsigned long long)v);
		} else {
			passed++;
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		CHECK(ctl_parse_size("mem", bad[i], &v, &err) == -EINVAL && v == 7);
	}
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++)
		CHECK(ctl_parse_size("mem", range[i], &v, &err) == -ERANGE && err.code == ERANGE);
	CHECK(ctl_parse_size("mem", "12Q", &v, &err) == -EINVAL);
	CHECK_STR(err.msg, "bad size '12Q' for mem: expected a number with an optional K, M, G or T suffix");
	CHECK(ctl_parse_size("disk", "2000T", &v, &err) == -ERANGE);
	CHECK_STR(err.msg, "size '2000T' for disk is out of range: at most 1024T");
	CHECK(ctl_parse_size("mem", NULL, &v, &err) == -EINVAL);
	CHECK(ctl_parse_size("mem", "1\x1b[31m", &v, &err) == -EINVAL);
	CHECK(strstr(err.msg, "'1\\x1b[31m'") != NULL);
}

static void test_cpus(void)
{
	struct sbx_err err;
	uint32_t v = 7;
	static const struct { const char *s; uint32_t v; } good[] = {
		{ "0.5", 500 }, { "2", 2000 }, { "1.25", 1250 }, { "0.01", 10 }, { "1024", 1024000 },
		{ "1024.000", 1024000 }, { "0.010", 10 }, { "3.1", 3100 },
	};
	static const char *const bad[] = {
		"", "+1", "-1", "1.", ".5", "1.2345", "1 ", " 1", "1m", "0x1", "1e2", "nan", "1.0000",
	};
	static const char *const range[] = {
		"0", "0.0", "0.009", "0.001", "1024.001", "1025", "99999999999999999999999",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 7;
		CHECK(ctl_parse_cpus("cpus", good[i].s, &v, &err) == 0 && v == good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		CHECK(ctl_parse_cpus("cpus", bad[i], &v, &err) == -EINVAL && v == 7);
	}
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		v = 7;
		CHECK(ctl_parse_cpus("cpus", range[i], &v, &err) == -ERANGE && v == 7);
	}
	CHECK(ctl_parse_cpus("cpus", "0", &v, &err) == -ERANGE);
	CHECK_STR(err.msg, "cpu count '0' for cpus is out of range: expected 0.01 to 1024");
}

static void test_seconds(void)
{
	struct sbx_err err;
	uint64_t v = 7;
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "30", 30 }, { "30s", 30 }, { "5m", 300 }, { "2h", 7200 },
		{ "1d", 86400 }, { "3650d", 315360000 }, { "315360000", 315360000 },
	};
	static const char *const bad[] = {
		"", "-1", "+1", "1.5", "1 ", "1M", "1H", "1ms", "1w", "s", "10ss", "1e3",
	};
	static const char *const range[] = {
		"3651d", "315360001", "99999999999999999999999m", "5256001m", "87601h",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 7;
		CHECK(ctl_parse_seconds("ttl", good[i].s, &v, &err) == 0 && v == good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(ctl_parse_seconds("ttl", bad[i], &v, &err) == -EINVAL);
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++)
		CHECK(ctl_parse_seconds("ttl", range[i], &v, &err) == -ERANGE);
	CHECK(ctl_parse_seconds("timeout", "1w", &v, &err) == -EINVAL);
	CHECK_STR(err.msg, "bad duration '1w' for timeout: expected whole seconds with an optional s, m, h or d suffix");
}

static void test_uint(void)
{
	struct sbx_err err;
	uint64_t v = 7;

	CHECK(ctl_parse_uint("pids", "64", 1, 100, &v, &err) == 0 && v == 64);
	CHECK(ctl_parse_uint("pids", "1", 1, 100, &v, &err) == 0 && v == 1);
	CHECK(ctl_parse_uint("pids", "100", 1, 100, &v, &err) == 0 && v == 100);
	CHECK(ctl_parse_uint("n", "18446744073709551615", 0, UINT64_MAX, &v, &err) == 0 &&
	      v == UINT64_MAX);
	CHECK(ctl_parse_uint("n", "18446744073709551616", 0, UINT64_MAX, &v, &err) == -ERANGE);
	CHECK(ctl_parse_uint("n", "99999999999999999999999", 0, UINT64_MAX, &v, &err) == -ERANGE);
	CHECK(ctl_parse_uint("pids", "0", 1, 100, &v, &err) == -ERANGE);
	CHECK(ctl_parse_uint("pids", "101", 1, 100, &v, &err) == -ERANGE);
	CHECK_STR(err.msg, "number '101' for pids is out of range: expected 1 to 100");
	v = 7;
	CHECK(ctl_parse_uint("pids", "", 1, 100, &v, &err) == -EINVAL);
	CHECK(ctl_parse_uint("pids", "-1", 0, 100, &v, &err) == -EINVAL);
	CHECK(ctl_parse_uint("pids", "+1", 0, 100, &v, &err) == -EINVAL);
	CHECK(ctl_parse_uint("pids", " 1", 0, 100, &v, &err) == -EINVAL);
	CHECK(ctl_parse_uint("pids", "1 ", 0, 100, &v, &err) == -EINVAL);
	CHECK(ctl_parse_uint("pids", "1k", 0, 100, &v, &err) == -EINVAL);
	CHECK(ctl_parse_uint("pids", "0x1", 0, 100, &v, &err) == -EINVAL);
	CHECK(v == 7);
	CHECK_STR(err.msg, "bad number '0x1' for pids: expected a whole number");
}

static void test_names(void)
{
	struct sbx_err err;
	char name[80];

	CHECK(ctl_check_name("box1", &err) == 0);
	CHECK(ctl_check_name("a", &err) == 0);
	CHECK(ctl_check_name("my_box-2.test", &err) == 0);
	CHECK(ctl_check_name("-x", &err) == 0);
	memset(name, 'n', 64);
	name[64] = '\0';
	CHECK(ctl_check_name(name, &err) == 0);
	name[64] = 'n';
	name[65] = '\0';
	CHECK(ctl_check_name(name, &err) == -EINVAL);
	CHECK(ctl_check_name("", &err) == -EINVAL);
	CHECK(ctl_check_name(".", &err) == -EINVAL);
	CHECK(ctl_check_name("..", &err) == -EINVAL);
	CHECK(ctl_check_name(".hidden", &err) == -EINVAL);
	CHECK(ctl_check_name("a/b", &err) == -EINVAL);
	CHECK(ctl_check_name("a b", &err) == -EINVAL);
	CHECK(ctl_check_name("caf\xc3\xa9", &err) == -EINVAL);
	CHECK(ctl_check_name(NULL, &err) == -EINVAL);
	CHECK(ctl_check_name("a/b", &err) == -EINVAL);
	CHECK_STR(err.msg, "bad name 'a/b': expected 1 to 64 characters of A-Z a-z 0-9 _ . - not starting with '.'");

	CHECK(ctl_check_env_key("PATH", &err) == 0);
	CHECK(ctl_check_env_key("_x1", &err) == 0);
	CHECK(ctl_check_env_key("_", &err) == 0);
	CHECK(ctl_check_env_key("", &err) == -EINVAL);
	CHECK(ctl_check_env_key("1A", &err) == -EINVAL);
	CHECK(ctl_check_env_key("A-B", &err) == -EINVAL);
	CHECK(ctl_check_env_key("A.B", &err) == -EINVAL);
	CHECK(ctl_check_env_key("A=B", &err) == -EINVAL);
	CHECK(ctl_check_env_key(NULL, &err) == -EINVAL);
	{
		char key[300];

		memset(key, 'K', 255);
		key[255] = '\0';
		CHECK(ctl_check_env_key(key, &err) == 0);
		key[255] = 'K';
		key[256] = '\0';
		CHECK(ctl_check_env_key(key, &err) == -EINVAL);
		CHECK(strstr(err.msg, "too long") != NULL);
	}
	/* A NULL err is allowed everywhere: only the code comes back. */
	CHECK(ctl_check_env_key("1", NULL) == -EINVAL);
}

static size_t strv_len(char **v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static void test_env_file(void)
{
	struct sbx_err err;
	char **v = (char **)1;
	const char *f;

	f = "# comment\nA=1\n\n  \t\nB=x y = z \nC=\r\nA=2\n_D='q'\nB=3";
	CHECK(ctl_parse_env_file(f, strlen(f), &v, &err) == 0);
	CHECK(strv_len(v) == 4);
	if (strv_len(v) == 4) {
		CHECK_STR(v[0], "A=2");
		CHECK_STR(v[1], "B=3");
		CHECK_STR(v[2], "C=");
		CHECK_STR(v[3], "_D='q'");
	}
	ctl_strv_free(v);

	/* Values are verbatim: leading blanks, '#', quotes, more '='. */
	f = "X= a#b\"c=d\n";
	CHECK(ctl_parse_env_file(f, strlen(f), &v, &err) == 0);
	CHECK(strv_len(v) == 1);
	if (v)
		CHECK_STR(v[0], "X= a#b\"c=d");
	ctl_strv_free(v);

	CHECK(ctl_parse_env_file("", 0, &v, &err) == 0);
	CHECK(v && v[0] == NULL);
	ctl_strv_free(v);
	CHECK(ctl_parse_env_file(NULL, 0, &v, &err) == 0);
	CHECK(v && v[0] == NULL);
	ctl_strv_free(v);

	f = "A=1\n\nnoequals\n";
	v = (char **)1;
	CHECK(ctl_parse_env_file(f, strlen(f), &v, &err) == -EINVAL && v == NULL);
	CHECK_STR(err.msg, "line 3 of env: expected KEY=VALUE, got 'noequals'");

	f = "A=1\n1B=2\n";
	CHECK(ctl_parse_env_file(f, strlen(f), &v, &err) == -EINVAL && v == NULL);
	CHECK(strncmp(err.msg, "line 2 of env: bad environment key '1B'", 39) == 0);

	f = " A=1\n";
	CHECK(ctl_parse_env_file(f, strlen(f), &v, &err) == -EINVAL && v == NULL);
	f = "A =1\n";
	CHECK(ctl_parse_env_file(f, strlen(f), &v, &err) == -EINVAL && v == NULL);
	f = "=1\n";
	CHECK(ctl_parse_env_file(f, strlen(f), &v, &err) == -EINVAL && v == NULL);
	CHECK(ctl_parse_env_file("A=1\0x\n", 6, &v, &err) == -EINVAL && v == NULL);
	CHECK(ctl_parse_env_file("A=1\nB", 5, &v, &err) == -EINVAL && v == NULL);
	CHECK(ctl_parse_env_file("A=1\nB", 5, &v, NULL) == -EINVAL && v == NULL);

	/* Many duplicates stay fast and keep the first place, last value. */
	{
		size_t n = 60000, len = 0;   /* ~700 KB: under CTL_ENV_FILE_MAX */
		char *big = malloc(n * 16);

		if (!big)
			abort();
		for (size_t i = 0; i < n; i++)
			len += (size_t)sprintf(big + len, "%c=%zu\n", i % 2 ? 'B' : 'A', i);
		CHECK(ctl_parse_env_file(big, len, &v, &err) == 0);
		CHECK(strv_len(v) == 2);
		if (strv_len(v) == 2) {
			CHECK_STR(v[0], "A=59998");
			CHECK_STR(v[1], "B=59999");
		}
		ctl_strv_free(v);
		free(big);
	}
	ctl_strv_free(NULL);
}

static void test_env_limits(void)
{
	struct sbx_err err;
	char **v = (char **)1;
	size_t big = CTL_ENV_MAX_ENTRY + 10, n;
	char *f = malloc(CTL_ENV_FILE_MAX + 2);

	if (!f)
		return;
	/* One entry over 64 KiB: E2BIG naming the key. */
	n = (size_t)sprintf(f, "HUGE=");
	memset(f + n, 'x', big);
	CHECK(ctl_parse_env_file(f, n + big, &v, &err) == -E2BIG && v == NULL);
	CHECK(strstr(err.msg, "'HUGE'") != NULL && strstr(err.msg, "at most 65536") != NULL);
	/* Exactly at the entry limit is fine. */
	CHECK(ctl_parse_env_file(f, CTL_ENV_MAX_ENTRY, &v, &err) == 0 && strv_len(v) == 1);
	ctl_strv_free(v);
	/* 1,001 variables: E2BIG; 1,000: fine. */
	n = 0;
	for (int i = 0; i < CTL_ENV_MAX_VARS + 1; i++)
		n += (size_t)sprintf(f + n, "V%d=1\n", i);
	CHECK(ctl_parse_env_file(f, n, &v, &err) == -E2BIG && strstr(err.msg, "more than 1000 variables"));
	CHECK(ctl_parse_env_file(f, n - strlen("V1000=1\n"), &v, &err) == 0 && strv_len(v) == 1000);
	ctl_strv_free(v);
	/* All together over 512 KiB: E2BIG. */
	n = 0;
	for (int i = 0; i < 9; i++) {
		n += (size_t)sprintf(f + n, "K%d=", i);
		memset(f + n, 'y', 60000);
		n += 60000;
		f[n++] = '\n';
	}
	CHECK(ctl_parse_env_file(f, n, &v, &err) == -E2BIG && strstr(err.msg, "in all"));
	/* A file over 1 MiB is refused before it is looked at. */
	memset(f, '#', CTL_ENV_FILE_MAX + 1);
	CHECK(ctl_parse_env_file(f, CTL_ENV_FILE_MAX + 1, &v, &err) == -E2BIG);
	free(f);
	/* A value with a newline (from `new ... env.K="a\nb"`) cannot be one line of env. */
	{
		char *env[] = { "A=1", "B=x\ny", NULL };

		CHECK(ctl_check_env(env, &err) == -EINVAL && strstr(err.msg, "'B'"));
		CHECK(ctl_check_env(NULL, &err) == 0);
	}
}

static void test_run_header(void)
{
	struct sbx_err err;
	uint64_t t = 7;
	const char *c;

#define HDR(code) ctl_parse_run_header((code), strlen(code), &t, &err)
	CHECK(HDR("# sbxfs: timeout=5\nprint(1)\n") == 0 && t == 5);
	CHECK(HDR("// sbxfs: timeout=2m\n") == 0 && t == 120);
	CHECK(HDR("  #sbxfs:   timeout=\"3\"") == 0 && t == 3);
	CHECK(HDR("print(1)\n# sbxfs: timeout=5\n") == 0 && t == 0);
	CHECK(HDR("#!/bin/bash\n") == 0 && t == 0);
	CHECK(HDR("# a comment about sbxfs: timeout=5\n") == 0 && t == 0);
	CHECK(HDR("") == 0 && t == 0);
	CHECK(HDR("# sbxfs: timeout=-1\n") == -EINVAL && t == 0);
	CHECK(strstr(err.msg, "run header") && strstr(err.msg, "-1"));
	CHECK(HDR("# sbxfs: timeout=99999999999999999999\n") == -ERANGE);
	CHECK(HDR("# sbxfs: timeout=abc\n") == -EINVAL);
	CHECK(HDR("# sbxfs: timeout=0\n") == -ERANGE);
	CHECK(HDR("# sbxfs: timeout=5 memory=1G\n") == -EINVAL && strstr(err.msg, "unknown key 'memory'"));
	CHECK(HDR("# sbxfs: fast\n") == -EINVAL);
	CHECK(HDR("# sbxfs:\n") == -EINVAL);
	CHECK(HDR("# sbxfs: timeout=3651d\n") == -ERANGE);
	c = "# sbxfs: timeout=5\0x\n";
	CHECK(ctl_parse_run_header(c, 21, &t, &err) == -EINVAL);
#undef HDR
}

int main(void)
{
	test_words();
	test_quoting();
	test_kv();
	test_bad_lines();
	test_lines();
	test_size();
	test_cpus();
	test_seconds();
	test_uint();
	test_names();
	test_env_file();
	test_env_limits();
	test_run_header();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
