/* error.c - building and wrapping struct sbx_err. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The format attribute lets clang's -Wformat-nonliteral (the fuzz build) check the callers. */
__attribute__((format(printf, 3, 0)))
static void err_vset(struct sbx_err *err, int code, const char *fmt, va_list ap)
{
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int sbx_err_set(struct sbx_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -code;
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
	return -code;
}

int sbx_err_sys(struct sbx_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	size_t used;

	if (!err)
		return -code;
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
	used = strlen(err->msg);
	snprintf(err->msg + used, sizeof(err->msg) - used, ": %s", sbx_errstr(code));
	return -code;
}

int sbx_err_wrap(struct sbx_err *err, const char *fmt, ...)
{
	char prefix[SBX_ERR_MSG_MAX];
	char old[SBX_ERR_MSG_MAX];
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	return -err->code;
}

void sbx_err_clear(struct sbx_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

const char *sbx_errstr(int code)
{
	/* strerror() may share one buffer between threads; these texts are constants. */
	const char *s = strerrordesc_np(code);

	return s ? s : "unknown error";
}
