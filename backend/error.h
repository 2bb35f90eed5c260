/*
 * error.h - the one error type of sbxfs: an errno and a message.
 *
 * The errno goes back through FUSE as the result of the system call; the
 * message goes to the file the user reads (a ctl reply, `errors`). Every layer
 * fills or extends the same struct, so the words written by the backend reach
 * the user unchanged.
 */
#ifndef SBX_ERROR_H
#define SBX_ERROR_H

#include <stddef.h>

#define SBX_ERR_MSG_MAX 512

struct sbx_err {
	int code;                    /* positive errno; 0 when no error */
	char msg[SBX_ERR_MSG_MAX];   /* lowercase, no final full stop */
};

/* Sets code and message; returns -code so callers can `return sbx_err_set(...)`. */
int sbx_err_set(struct sbx_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like sbx_err_set, appending ": " and the text of code (sbx_errstr). */
int sbx_err_sys(struct sbx_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with context ("creating 'x': <old>"); keeps the code. */
int sbx_err_wrap(struct sbx_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void sbx_err_clear(struct sbx_err *err);

/* Thread-safe text of an errno ("unknown error" for a number libc does not know). */
const char *sbx_errstr(int code);

#endif
