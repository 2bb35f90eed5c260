/*
 * fuzz_ctx_proto.c - libFuzzer target for the end-of-run frames a context's
 * driver sends back (control/ctx_proto.c): bytes the code in a context
 * controls entirely.
 *
 * Input: the first byte picks the stream (odd: stderr, whose frame carries
 * exit, result and figures; even: stdout) and the chunk sizes the stream is
 * cut into (reads end anywhere); the rest is the stream, whose nonce is
 * NONCE below (so seeds can hold real frames). Checked on every input:
 * - an item's bytes come only between its begin and its end, and exactly as
 *   many as its length, which is within the caps; at most 64 figures;
 * - nothing is handed on twice or invented: output bytes + item bytes never
 *   exceed the input, and a stream without the prefix comes out unchanged;
 * - once the frame is done, feeding stops consuming.
 * Run: tests/fuzz/run-fuzz.sh [SECONDS]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../control/ctx_proto.h"

#define NONCE "0123456789abcdef0123456789abcdef"
#define PREFIX "\x1e" "SBXFS" NONCE ":"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	char *out;                   /* output bytes, in order */
	size_t out_len, cap;
	size_t items_bytes;
	bool in_item;
	size_t idx;
	uint64_t len, got;
	size_t begun;
};

static void fuzz_check(int cond)
{
	if (!cond)
		abort();
}

static void on_output(void *arg, const char *buf, size_t n)
{
	struct seen *s = arg;

	fuzz_check(n > 0 && !s->in_item);
	fuzz_check(s->out_len + n <= s->cap);
	memcpy(s->out + s->out_len, buf, n);
	s->out_len += n;
}

static bool on_begin(void *arg, size_t idx, uint64_t len)
{
	struct seen *s = arg;

	fuzz_check(!s->in_item && len > 0);
	fuzz_check(idx == 0 ? len <= CTX_RESULT_MAX : (idx <= CTX_FIGURES_MAX && len <= CTX_FIGURE_MAX));
	fuzz_check(s->begun == 0 || idx > s->idx);
	s->in_item = true;
	s->idx = idx;
	s->len = len;
	s->got = 0;
	s->begun++;
	return (idx & 1) == 0;       /* keep some, drop others: both paths */
}

static void on_data(void *arg, size_t idx, const char *buf, size_t n)
{
	struct seen *s = arg;

	(void)buf;
	fuzz_check(s->in_item && idx == s->idx && n > 0 && (idx & 1) == 0);
	s->got += n;
	s->items_bytes += n;
	fuzz_check(s->got <= s->len);
}

static void on_end(void *arg, size_t idx, bool kept)
{
	struct seen *s = arg;

	fuzz_check(s->in_item && idx == s->idx && kept == ((idx & 1) == 0));
	fuzz_check(!kept || s->got == s->len);
	s->in_item = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen s = { 0 };
	struct ctx_sink sink = { on_output, on_begin, on_data, on_end, &s };
	struct ctx_parser p;
	const char *in;
	size_t n, off = 0, step;
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	in = (const char *)data + 1;
	n = size - 1;
	s.cap = n + CTX_PREFIX_MAX;
	s.out = malloc(s.cap ? s.cap : 1);
	if (!s.out)
		return 0;
	ctx_parser_init(&p, NONCE, mode & 1);
	step = (size_t)(mode >> 1) + 1;
	while (off < n) {
		size_t chunk = n - off < step ? n - off : step;
		size_t used = ctx_parser_feed(&p, in + off, chunk, &sink);

		fuzz_check(used <= chunk);
		off += used;
		if (p.state == CTX_P_DONE)
			break;
		fuzz_check(used == chunk);
	}
	if (p.state == CTX_P_DONE) {
		fuzz_check(ctx_parser_feed(&p, in, n, &sink) == 0 || n == 0);
		fuzz_check(!s.in_item);
		fuzz_check(p.bad || p.nitems <= CTX_FIGURES_MAX + 1);
	} else {
		ctx_parser_flush(&p, &sink);
	}
	fuzz_check(s.out_len + s.items_bytes <= n);
	if (!memmem(in, n, PREFIX, sizeof(PREFIX) - 1))
		fuzz_check(p.state == CTX_P_SCAN && s.out_len == n && memcmp(s.out, in, n) == 0);
	free(s.out);
	return 0;
}
