/*
 * ctx_proto.h - the end-of-run frames a context's driver sends back, and the
 * parser that takes them out of the driver's stdout and stderr.
 *
 * The driver runs in the same process as the code it carries, so the code can
 * always read the run's nonce and write a frame of its own. Nothing in a frame
 * is trusted beyond its syntax: the header is one short line of decimal
 * numbers under hard caps, the parser holds no more than that line, and the
 * bytes of the result and figures go to the caller's sink as they come (the
 * sink decides, against output_max, what it keeps). A forged frame can end
 * its own run early with a wrong result; it cannot make the daemon allocate.
 *
 * The frame (docs/execution.md, "How a context run works"):
 *   PREFIX HEADER "\n" BODY     PREFIX = "\x1e" "SBXFS" NONCE ":"
 *   stdout: HEADER is empty and there is no BODY
 *   stderr: HEADER = EXIT " " RESULT_LEN " " NFIG (" " FIG_LEN){NFIG}
 *           BODY   = RESULT_LEN bytes of result text, then each figure's bytes
 * Fuzzed by tests/fuzz/fuzz_ctx_proto.c.
 */
#ifndef SBX_CTX_PROTO_H
#define SBX_CTX_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTX_NONCE_LEN 32                 /* hex digits */
#define CTX_PREFIX_MAX (6 + CTX_NONCE_LEN + 1)   /* "\x1eSBXFS" NONCE ":" */
#define CTX_HEAD_MAX 1024                /* bytes of a header line, without its newline */
#define CTX_FIGURES_MAX 64
#define CTX_RESULT_MAX (2u << 20)        /* bytes of a result */
#define CTX_FIGURE_MAX (32u << 20)       /* bytes of one figure */

/* Where the parser sends what it takes apart; every callback may be called with n > 0 only. */
struct ctx_sink {
	/* bytes of the stream that belong to the run (the code's own output) */
	void (*output)(void *arg, const char *buf, size_t n);
	/* item 0 is the result, 1.. the figures; returns whether to keep its bytes */
	bool (*item_begin)(void *arg, size_t idx, uint64_t len);
	void (*item_data)(void *arg, size_t idx, const char *buf, size_t n);
	void (*item_end)(void *arg, size_t idx, bool kept);
	void *arg;
};

enum ctx_pstate { CTX_P_SCAN, CTX_P_HEAD, CTX_P_BODY, CTX_P_DONE };

struct ctx_parser {
	char prefix[CTX_PREFIX_MAX + 1];
	size_t plen;
	size_t matched;                  /* prefix bytes seen and held back */
	bool meta;                       /* stderr's frame: exit, result and figures */
	enum ctx_pstate state;
	char head[CTX_HEAD_MAX];
	size_t head_len;
	const char *bad;                 /* what was malformed (static text), NULL if nothing */
	int exit_code;
	size_t nitems;                   /* the result and the figures */
	uint64_t len[1 + CTX_FIGURES_MAX];
	size_t cur;                      /* the item whose bytes come next */
	uint64_t have;                   /* of that item */
	bool keep;
};

/* nonce: CTX_NONCE_LEN characters. */
void ctx_parser_init(struct ctx_parser *p, const char *nonce, bool meta);
/*
 * Feeds bytes of the stream. Returns how many were consumed: all of them,
 * unless the frame ended inside buf (what follows is not this run's).
 */
size_t ctx_parser_feed(struct ctx_parser *p, const char *buf, size_t n, const struct ctx_sink *s);
/* The stream ended without a frame: gives back the prefix bytes held back. */
void ctx_parser_flush(struct ctx_parser *p, const struct ctx_sink *s);
/*
 * Parses a header line (without its newline). Returns NULL, or what is wrong.
 * Checks every number against the caps above before anything is used.
 */
const char *ctx_parse_head(const char *line, size_t len, bool meta, int *exit_code, uint64_t *lens,
			   size_t *nitems);

#endif
