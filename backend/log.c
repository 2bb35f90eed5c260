/*
 * log.c - sbx_log: one line per event, to syslog, stderr or a file.
 *
 * A line is built whole and written with one write(2) (a file opened
 * O_APPEND, or stderr), so lines of different threads never mix. syslog(3)
 * is glibc's, thread-safe.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum sink { SINK_STDERR, SINK_SYSLOG, SINK_FILE };

/* Set once at start-up, before any thread logs; read without a lock after. */
static enum sink sink = SINK_STDERR;
static atomic_int max_level = SBX_LOG_WARNING;
static int log_fd = -1;

static const char *level_word(int level)
{
	switch (level) {
	case SBX_LOG_ERROR:
		return "error";
	case SBX_LOG_WARNING:
		return "warning";
	case SBX_LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

static int parse_level(const char *s, int *out)
{
	static const struct { const char *word; int level; } words[] = {
		{ "error", SBX_LOG_ERROR }, { "warn", SBX_LOG_WARNING }, { "warning", SBX_LOG_WARNING },
		{ "info", SBX_LOG_INFO }, { "debug", SBX_LOG_DEBUG },
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcmp(s, words[i].word) == 0) {
			*out = words[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

int sbx_log_setup(const char *target, const char *level, struct sbx_err *err)
{
	int lv = SBX_LOG_WARNING;

	if (level && parse_level(level, &lv))
		return sbx_err_set(err, EINVAL, "log_level '%s' is not one of error, warn, info, debug", level);
	if (!target || strcmp(target, "stderr") == 0) {
		sink = SINK_STDERR;
	} else if (strcmp(target, "syslog") == 0) {
		openlog("sbxfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		sink = SINK_SYSLOG;
	} else if (target[0] == '/') {
		log_fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (log_fd < 0)
			return sbx_err_sys(err, errno, "cannot open the log file '%s'", target);
		sink = SINK_FILE;
	} else {
		return sbx_err_set(err, EINVAL, "log '%s' is not syslog, stderr or an absolute path", target);
	}
	atomic_store(&max_level, lv);
	return 0;
}

void sbx_log_close(void)
{
	if (sink == SINK_SYSLOG)
		closelog();
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	sink = SINK_STDERR;
}

int sbx_log_enabled(int level)
{
	return level <= atomic_load(&max_level);
}

/* "sandbox 'NAME': MESSAGE: ERRNO WORDS" into out. */
__attribute__((format(printf, 5, 0)))
static void log_body(char *out, size_t size, const char *sb_name, int errnum, const char *fmt, va_list ap)
{
	size_t used = 0;

	if (sb_name)
		used = (size_t)snprintf(out, size, "sandbox '%s': ", sb_name);
	if (used < size)
		vsnprintf(out + used, size - used, fmt, ap);
	used = strlen(out);
	if (errnum && used < size)
		snprintf(out + used, size - used, ": %s", sbx_errstr(errnum));
}

static void write_line(int fd, const char *line, size_t len)
{
	while (len) {
		ssize_t n = write(fd, line, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		line += n;
		len -= (size_t)n;
	}
}

void sbx_log(int level, const char *sb_name, int errnum, const char *fmt, ...)
{
	char body[2048], line[2200], stamp[40] = "";
	int saved = errno, n;
	va_list ap;

	if (!sbx_log_enabled(level))
		return;
	va_start(ap, fmt);
	log_body(body, sizeof(body), sb_name, errnum, fmt, ap);
	va_end(ap);
	if (sink == SINK_SYSLOG) {
		syslog(level, "%s: %s", level_word(level), body);
		errno = saved;
		return;
	}
	if (sink == SINK_FILE) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	}
	n = snprintf(line, sizeof(line), "%ssbxfs: %s: %s\n", stamp, level_word(level), body);
	if (n > (int)sizeof(line) - 1) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	write_line(sink == SINK_FILE ? log_fd : STDERR_FILENO, line, (size_t)n);
	errno = saved;
}
