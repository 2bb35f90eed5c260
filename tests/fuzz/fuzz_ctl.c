/*
 * fuzz_ctl.c - libFuzzer target for the ctl language (control/ctl_parse.c).
 *
 * The input is a ctl write: it is split into lines, each line is parsed, and
 * every argument and value is fed to every value parser and name check, so
 * one input reaches all the code an attacker can reach through a ctl or env
 * file. The whole input is also parsed as an env file. ASan and UBSan catch
 * out-of-bounds reads and undefined arithmetic; LeakSanitizer catches error
 * paths that forget to free.
 * Run: tests/fuzz/run-fuzz.sh [SECONDS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../control/ctl_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Any broken invariant becomes a crash so the fuzzer reports it. */
static void fuzz_check(int cond)
{
	if (!cond)
		abort();
}

/* A failed call must have set a positive code and a terminated message. */
static void fuzz_check_err(int ret, const struct sbx_err *err)
{
	if (ret == 0)
		return;
	fuzz_check(ret < 0 && err->code == -ret);
	fuzz_check(memchr(err->msg, '\0', sizeof(err->msg)) != NULL);
	fuzz_check(err->msg[0] != '\0');
}

static void fuzz_value(const char *v)
{
	struct sbx_err err;
	uint64_t u;
	uint32_t m;
	int ret;

	sbx_err_clear(&err);
	ret = ctl_parse_size("mem", v, &u, &err);
	fuzz_check_err(ret, &err);
	fuzz_check(ret || u <= (UINT64_C(1) << 50));
	ret = ctl_parse_cpus("cpus", v, &m, &err);
	fuzz_check_err(ret, &err);
	fuzz_check(ret || (m >= 10 && m <= 1024000));
	ret = ctl_parse_seconds("ttl", v, &u, &err);
	fuzz_check_err(ret, &err);
	fuzz_check(ret || u <= UINT64_C(10) * 365 * 86400);
	ret = ctl_parse_uint("pids", v, 1, 4096, &u, &err);
	fuzz_check_err(ret, &err);
	fuzz_check(ret || (u >= 1 && u <= 4096));
	fuzz_check_err(ctl_check_name(v, &err), &err);
	fuzz_check_err(ctl_check_env_key(v, &err), &err);
}

static int fuzz_line(const char *line, size_t len, void *arg)
{
	struct ctl_cmd cmd;
	struct sbx_err err;
	int ret;

	(void)arg;
	sbx_err_clear(&err);
	ret = ctl_parse_line(line, len, &cmd, &err);
	if (ret) {
		fuzz_check_err(ret, &err);
		fuzz_check(!cmd.verb && !cmd.args && !cmd.nargs && !cmd.kvs && !cmd.nkvs);
		return 0;
	}
	fuzz_check(cmd.verb && cmd.verb[0] != '\0');
	fuzz_check(1 + cmd.nargs + cmd.nkvs <= CTL_MAX_WORDS);
	fuzz_value(cmd.verb);
	for (size_t i = 0; i < cmd.nargs; i++)
		fuzz_value(cmd.args[i]);
	for (size_t i = 0; i < cmd.nkvs; i++) {
		fuzz_check(cmd.kvs[i].key[0] != '\0' && cmd.kvs[i].key[0] != '.');
		fuzz_value(cmd.kvs[i].key);
		fuzz_value(cmd.kvs[i].value);
	}
	ctl_cmd_free(&cmd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct sbx_err err;
	char **env = NULL;
	int ret;

	ctl_for_each_line(buf, size, fuzz_line, NULL);
	/* The whole input as one line too: reaches the length and word limits
	 * and the control-character check on embedded newlines. */
	fuzz_line(buf, size, NULL);

	sbx_err_clear(&err);
	ret = ctl_parse_env_file(buf, size, &env, &err);
	fuzz_check_err(ret, &err);
	fuzz_check(ret ? env == NULL : env != NULL);
	for (size_t i = 0; env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');

		fuzz_check(eq != NULL);
		/* Keys come out unique: later lines replaced earlier ones. */
		for (size_t j = 0; j < i; j++)
			fuzz_check(strncmp(env[j], env[i], (size_t)(eq - env[i]) + 1) != 0);
	}
	ctl_strv_free(env);
	return 0;
}
