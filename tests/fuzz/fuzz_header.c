/*
 * fuzz_header.c - libFuzzer target for the header line of a run
 * (`# sbxfs: timeout=5`, control/ctl_parse.c ctl_parse_run_header).
 *
 * The input is the code written to run.py, run.js or run.sh. The parser must
 * read only the first line, give a timeout of 0 (no header) or 1 second to 10
 * years, never one that wraps when the daemon multiplies it by 1000, and fail
 * only with EINVAL, ERANGE or E2BIG and a message.
 * Run: tests/fuzz/run-fuzz.sh [SECONDS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../control/ctl_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *code = (const char *)data;
	const char *nl = memchr(code, '\n', size);
	struct sbx_err err;
	uint64_t t = 12345, t2 = 0;
	int ret;

	sbx_err_clear(&err);
	ret = ctl_parse_run_header(code, size, &t, &err);
	if (ret) {
		fuzz_check(ret < 0 && err.code == -ret && err.msg[0]);
		fuzz_check(ret == -EINVAL || ret == -ERANGE || ret == -E2BIG || ret == -ENOMEM);
		fuzz_check(t == 0);
		return 0;
	}
	fuzz_check(t <= UINT64_C(10) * 365 * 86400);
	fuzz_check(t * 1000 / 1000 == t);
	/* Only the first line counts: what follows it changes nothing. */
	if (nl) {
		fuzz_check(ctl_parse_run_header(code, (size_t)(nl - code) + 1, &t2, NULL) == 0);
		fuzz_check(t2 == t);
	}
	return 0;
}
