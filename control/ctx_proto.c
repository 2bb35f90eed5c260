/*
 * ctx_proto.c - takes the end-of-run frames of a context's driver out of its
 * output streams (the format and why it is shaped so: ctx_proto.h).
 *
 * No allocation: the parser's state is a fixed struct, a header line is held
 * in a fixed buffer, and body bytes pass straight to the sink.
 */
#include "ctx_proto.h"

#include <stdio.h>
#include <string.h>

void ctx_parser_init(struct ctx_parser *p, const char *nonce, bool meta)
{
	memset(p, 0, sizeof(*p));
	p->plen = (size_t)snprintf(p->prefix, sizeof(p->prefix), "\x1eSBXFS%.*s:", CTX_NONCE_LEN, nonce);
	p->meta = meta;
	p->state = CTX_P_SCAN;
}

/* One decimal number of at most `max`, no sign, no leading zero; advances *pos. */
static bool take_number(const char *line, size_t len, size_t *pos, uint64_t max, uint64_t *out)
{
	size_t i = *pos, start = *pos;
	uint64_t v = 0;

	while (i < len && line[i] >= '0' && line[i] <= '9') {
		if (i - start >= 10)
			return false;
		v = v * 10 + (uint64_t)(line[i] - '0');
		i++;
	}
	if (i == start || (line[start] == '0' && i - start > 1) || v > max)
		return false;
	*pos = i;
	*out = v;
	return true;
}

/* A single space, then a number: the header's separator. */
static bool take_field(const char *line, size_t len, size_t *pos, uint64_t max, uint64_t *out)
{
	if (*pos >= len || line[*pos] != ' ')
		return false;
	(*pos)++;
	return take_number(line, len, pos, max, out);
}

const char *ctx_parse_head(const char *line, size_t len, bool meta, int *exit_code, uint64_t *lens,
			   size_t *nitems)
{
	uint64_t code, nfig;
	size_t pos = 0;

	*nitems = 0;
	if (!meta)
		return len ? "a stdout end frame that carries a header" : NULL;
	if (!take_number(line, len, &pos, 255, &code))
		return "no exit status from 0 to 255";
	if (!take_field(line, len, &pos, CTX_RESULT_MAX, &lens[0]))
		return "no result length within the cap";
	if (!take_field(line, len, &pos, CTX_FIGURES_MAX, &nfig))
		return "no figure count within the cap";
	for (uint64_t i = 1; i <= nfig; i++) {
		if (!take_field(line, len, &pos, CTX_FIGURE_MAX, &lens[i]) || lens[i] == 0)
			return "a figure length that is missing, zero or over the cap";
	}
	if (pos != len)
		return "more fields than the figure count says";
	*exit_code = (int)code;
	*nitems = (size_t)nfig + 1;
	return NULL;
}

/* Moves to the next item that has bytes; the frame is done after the last. */
static void next_item(struct ctx_parser *p, const struct ctx_sink *s)
{
	while (p->cur < p->nitems && p->len[p->cur] == 0)
		p->cur++;
	if (p->cur >= p->nitems) {
		p->state = CTX_P_DONE;
		return;
	}
	p->have = 0;
	p->keep = s->item_begin(s->arg, p->cur, p->len[p->cur]);
	p->state = CTX_P_BODY;
}

static void end_head(struct ctx_parser *p, const struct ctx_sink *s)
{
	p->bad = ctx_parse_head(p->head, p->head_len, p->meta, &p->exit_code, p->len, &p->nitems);
	if (p->bad) {
		p->state = CTX_P_DONE;
		return;
	}
	p->cur = 0;
	next_item(p, s);
}

/* Looks for the prefix; passes what is not part of it to the sink. Returns bytes used. */
static size_t feed_scan(struct ctx_parser *p, const char *buf, size_t n, const struct ctx_sink *s)
{
	const char *hit;

	if (p->matched) {
		if (buf[0] == p->prefix[p->matched]) {
			if (++p->matched == p->plen) {
				p->state = CTX_P_HEAD;
				p->head_len = 0;
			}
			return 1;
		}
		/* The prefix's first byte occurs nowhere else in it: the held bytes are output. */
		s->output(s->arg, p->prefix, p->matched);
		p->matched = 0;
		return 0;
	}
	hit = memchr(buf, p->prefix[0], n);
	if (!hit) {
		s->output(s->arg, buf, n);
		return n;
	}
	if (hit > buf)
		s->output(s->arg, buf, (size_t)(hit - buf));
	p->matched = 1;
	return (size_t)(hit - buf) + 1;
}

static size_t feed_head(struct ctx_parser *p, const char *buf, size_t n, const struct ctx_sink *s)
{
	const char *nl = memchr(buf, '\n', n);
	size_t take = nl ? (size_t)(nl - buf) : n;

	if (take > CTX_HEAD_MAX - p->head_len) {
		p->bad = "a header line over the cap";
		p->state = CTX_P_DONE;
		return n;
	}
	memcpy(p->head + p->head_len, buf, take);
	p->head_len += take;
	if (!nl)
		return n;
	end_head(p, s);
	return take + 1;
}

static size_t feed_body(struct ctx_parser *p, const char *buf, size_t n, const struct ctx_sink *s)
{
	uint64_t need = p->len[p->cur] - p->have;
	size_t take = need < n ? (size_t)need : n;

	if (p->keep)
		s->item_data(s->arg, p->cur, buf, take);
	p->have += take;
	if (p->have == p->len[p->cur]) {
		s->item_end(s->arg, p->cur, p->keep);
		p->cur++;
		next_item(p, s);
	}
	return take;
}

size_t ctx_parser_feed(struct ctx_parser *p, const char *buf, size_t n, const struct ctx_sink *s)
{
	size_t i = 0;

	while (i < n && p->state != CTX_P_DONE) {
		switch (p->state) {
		case CTX_P_SCAN:
			i += feed_scan(p, buf + i, n - i, s);
			break;
		case CTX_P_HEAD:
			i += feed_head(p, buf + i, n - i, s);
			break;
		case CTX_P_BODY:
			i += feed_body(p, buf + i, n - i, s);
			break;
		case CTX_P_DONE:
		default:
			return i;
		}
	}
	return i;
}

void ctx_parser_flush(struct ctx_parser *p, const struct ctx_sink *s)
{
	if (p->state == CTX_P_SCAN && p->matched)
		s->output(s->arg, p->prefix, p->matched);
	p->matched = 0;
}
