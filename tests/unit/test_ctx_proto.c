/*
 * test_ctx_proto.c - the end-of-run frames of a context's driver
 * (control/ctx_proto.c), on streams cut at every byte: what an honest driver
 * sends comes out whole, and what a forger sends is refused or capped.
 * Run: meson test -C build ctx_proto
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../control/ctx_proto.h"

#define NONCE "00112233445566778899aabbccddeeff"
#define P "\x1e" "SBXFS" NONCE ":"

static int failures;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			failures++;                                             \
			fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);          \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
		}                                                               \
	} while (0)

struct got {
	char out[4096];
	size_t out_len;
	char item[8][256];
	size_t item_len[8];
	size_t nbegun;
	uint64_t keep_max;           /* items longer than this are not kept */
};

static void on_output(void *arg, const char *buf, size_t n)
{
	struct got *g = arg;

	if (g->out_len + n <= sizeof(g->out)) {
		memcpy(g->out + g->out_len, buf, n);
		g->out_len += n;
	}
}

static bool on_begin(void *arg, size_t idx, uint64_t len)
{
	struct got *g = arg;

	g->nbegun++;
	return idx < 8 && len <= g->keep_max;
}

static void on_data(void *arg, size_t idx, const char *buf, size_t n)
{
	struct got *g = arg;

	if (g->item_len[idx] + n <= sizeof(g->item[idx])) {
		memcpy(g->item[idx] + g->item_len[idx], buf, n);
		g->item_len[idx] += n;
	}
}

static void on_end(void *arg, size_t idx, bool kept)
{
	(void)arg;
	(void)idx;
	(void)kept;
}

/* Feeds s in pieces of `step` bytes; returns the bytes consumed. */
static size_t feed(struct ctx_parser *p, struct got *g, const char *s, size_t n, size_t step, bool meta)
{
	struct ctx_sink sink = { on_output, on_begin, on_data, on_end, g };
	size_t off = 0;

	memset(g, 0, sizeof(*g));
	g->keep_max = 1000;
	ctx_parser_init(p, NONCE, meta);
	while (off < n && p->state != CTX_P_DONE) {
		size_t k = n - off < step ? n - off : step;

		off += ctx_parser_feed(p, s + off, k, &sink);
	}
	if (p->state != CTX_P_DONE)
		ctx_parser_flush(p, &sink);
	return off;
}

static void test_honest_frame(void)
{
	static const char s[] = "out\x1e\n" P "3 5 2 4 3\n'abc'PNG1xyz" "after";
	struct ctx_parser p;
	struct got g;

	for (size_t step = 1; step <= sizeof(s); step++) {
		size_t used = feed(&p, &g, s, sizeof(s) - 1, step, true);

		CHECK(p.state == CTX_P_DONE && !p.bad, "step %zu: not done (%s)", step, p.bad ? p.bad : "");
		CHECK(p.exit_code == 3 && p.nitems == 3, "step %zu: exit %d items %zu", step, p.exit_code, p.nitems);
		CHECK(g.out_len == 5 && memcmp(g.out, "out\x1e\n", 5) == 0, "step %zu: output '%.*s'", step,
		      (int)g.out_len, g.out);
		CHECK(g.item_len[0] == 5 && memcmp(g.item[0], "'abc'", 5) == 0, "step %zu: result", step);
		CHECK(g.item_len[1] == 4 && memcmp(g.item[1], "PNG1", 4) == 0, "step %zu: figure 1", step);
		CHECK(g.item_len[2] == 3 && memcmp(g.item[2], "xyz", 3) == 0, "step %zu: figure 2", step);
		CHECK(used == sizeof(s) - 1 - 5, "step %zu: consumed %zu bytes, the frame has %zu", step, used,
		      sizeof(s) - 1 - 5);
	}
}

static void test_stdout_frame_and_other_nonces(void)
{
	static const char s[] = "a\x1eSBXFS" "ffffffffffffffffffffffffffffffff:0 0 0\nb" P "\nrest";
	struct ctx_parser p;
	struct got g;

	feed(&p, &g, s, sizeof(s) - 1, 7, false);
	CHECK(p.state == CTX_P_DONE && !p.bad, "stdout frame not taken");
	CHECK(g.out_len == 47 && memcmp(g.out, s, 47) == 0, "another nonce is output: got %zu bytes", g.out_len);
	feed(&p, &g, P "0 0 0\n", sizeof(P "0 0 0\n") - 1, 3, false);
	CHECK(p.bad != NULL, "a stdout frame with a header is malformed");
}

static void test_malformed_headers(void)
{
	static const char *const bad[] = {
		"{\"exit\":0,\"png\":[33554432]}", "", "0", "0 0", "256 0 0", "-1 0 0", "00 0 0",
		"0 2097153 0", "0 0 65 1", "0 0 1", "0 0 1 0", "0 0 1 33554433", "0 0 1 1 1",
		"0  0 0", "0 0 0 ", "0 0 0\r", "1e3 0 0", "0 99999999999 0",
	};
	char line[CTX_HEAD_MAX + 64];
	struct ctx_parser p;
	struct got g;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = snprintf(line, sizeof(line), P "%s\n", bad[i]);

		feed(&p, &g, line, (size_t)n, 5, true);
		CHECK(p.state == CTX_P_DONE && p.bad, "'%s' taken as a header", bad[i]);
		CHECK(g.nbegun == 0, "'%s' began an item", bad[i]);
	}
	/* a header line over the cap, without a newline for ever */
	memset(line, '1', sizeof(line));
	memcpy(line, P, sizeof(P) - 1);
	feed(&p, &g, line, sizeof(line), 100, true);
	CHECK(p.state == CTX_P_DONE && p.bad, "a header over the cap was held");
}

static void test_caps_and_dropping(void)
{
	char line[CTX_HEAD_MAX + 64];
	struct ctx_parser p;
	struct got g;
	int n = snprintf(line, sizeof(line), P "0 2097152 64");

	for (int i = 0; i < 64; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " 33554432");
	line[n++] = '\n';
	feed(&p, &g, line, (size_t)n, 64, true);
	CHECK(p.state == CTX_P_BODY && !p.bad && p.nitems == 65, "the largest legal claim is a header");
	CHECK(g.nbegun == 1 && g.item_len[0] == 0, "an item over the sink's limit is dropped");
}

int main(void)
{
	test_honest_frame();
	test_stdout_frame_and_other_nonces();
	test_malformed_headers();
	test_caps_and_dropping();
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	return failures ? 1 : 0;
}
