/*
 * log.h - the daemon's one logging call, for every layer (it lives in the
 * lowest one so that backends use it too).
 *
 *     sbx_log(SBX_LOG_WARNING, "box", errno, "cannot remove '%s'", path);
 *
 * gives one line: the level, the sandbox's name (NULL: none), the message
 * and the errno in words (0: none), e.g.
 *     sbxfs: warning: sandbox 'box': cannot remove '/x': Device or resource busy
 * It goes to syslog (the journal), to stderr or to a file (-o log=), and only
 * when its level is at most the one chosen (-o log_level=, default warn).
 * Safe from any thread; it keeps errno as it was.
 */
#ifndef SBX_LOG_H
#define SBX_LOG_H

#include "error.h"

/* The levels are syslog(3)'s numbers. */
enum sbx_log_level {
	SBX_LOG_ERROR = 3,
	SBX_LOG_WARNING = 4,
	SBX_LOG_INFO = 6,
	SBX_LOG_DEBUG = 7,
};

/*
 * Where the log goes: "syslog", "stderr", or an absolute path of a file
 * (appended to, created 0600); level: "error", "warn", "info" or "debug"
 * (NULL: warn). Before it is called, lines go to stderr at level warn.
 */
int sbx_log_setup(const char *target, const char *level, struct sbx_err *err);
/* Closes the file or syslog (at exit). */
void sbx_log_close(void);
/* Whether a line of this level would be written (to skip costly messages). */
int sbx_log_enabled(int level);

void sbx_log(int level, const char *sb_name, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
