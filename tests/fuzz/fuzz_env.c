/*
 * fuzz_env.c - libFuzzer target for the env file parser (control/ctl_parse.c).
 *
 * The input is what a sandbox's user (or code that reached the host side)
 * writes to NAME/env. A parse that succeeds must give a list that obeys every
 * documented limit (CTL_ENV_MAX_VARS, CTL_ENV_MAX_ENTRY, CTL_ENV_MAX_TOTAL),
 * unique keys, no newline and no NUL in any entry; one that fails must say why
 * with its errno. ASan, UBSan and LeakSanitizer catch the rest.
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
	struct sbx_err err;
	char **env = NULL;
	size_t n = 0, total = 0;
	int ret;

	sbx_err_clear(&err);
	ret = ctl_parse_env_file((const char *)data, size, &env, &err);
	if (ret) {
		fuzz_check(ret < 0 && err.code == -ret && err.msg[0]);
		fuzz_check(ret == -EINVAL || ret == -E2BIG || ret == -ENOMEM);
		fuzz_check(env == NULL);
		return 0;
	}
	fuzz_check(env != NULL);
	for (; env[n]; n++) {
		const char *eq = strchr(env[n], '=');
		size_t len = strlen(env[n]);

		fuzz_check(eq != NULL && eq != env[n]);
		fuzz_check(len <= CTL_ENV_MAX_ENTRY && !strchr(env[n], '\n'));
		total += len + 1;
		for (size_t j = 0; j < n; j++)
			fuzz_check(strncmp(env[j], env[n], (size_t)(eq - env[n]) + 1) != 0);
	}
	fuzz_check(n <= CTL_ENV_MAX_VARS && total <= CTL_ENV_MAX_TOTAL);
	fuzz_check(ctl_check_env(env, &err) == 0);
	ctl_strv_free(env);
	return 0;
}
