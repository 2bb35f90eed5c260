/*
 * test_events.c - control/events.c on its own: lines that cannot be forged
 * (newlines and control bytes in names and details), the 1 KiB cut, the
 * bounded memory and rotated file, the backlog reloaded by a new start (a
 * line a crash cut in half skipped), a reader fallen behind, the hook.
 * Run: meson test -C build events
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../control/sandbox.h"

static int failures;

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (!(cond)) {                                    \
			failures++;                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);             \
			fputc('\n', stderr);                      \
		}                                                 \
	} while (0)

static int hook_calls;

static void hook(void *arg)
{
	(void)arg;
	hook_calls++;
}

/* The whole stream as a reader at off gets it now (malloc'd, NUL-terminated). */
static char *stream(struct sbx_ctl *ctl, uint64_t off, size_t *len)
{
	uint64_t size = ctl_events_size(ctl);
	size_t cap = (size_t)(size - off) + 1, n = 0;
	char *buf = malloc(cap);

	while (buf && off + n < size) {
		size_t got = ctl_events_read(ctl, off + n, buf + n, cap - 1 - n);

		if (!got)
			break;
		n += got;
	}
	if (buf)
		buf[n] = '\0';
	*len = n;
	return buf;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_forgery(struct sbx_ctl *ctl)
{
	char big[4000];
	size_t len;
	char *s;

	events_emit(ctl, "created", "bo\nx", "template=%s", "a\n2026-01-01T00:00:00.000Z killed other\\");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	events_emit(ctl, "error", "box", "%s", big);
	s = stream(ctl, 0, &len);
	CHECK(s && count_lines(s) == 2, "two events are two lines: %s", s ? s : "(none)");
	CHECK(s && strstr(s, " created bo\\x0ax template=a\\x0a2026-01-01T00:00:00.000Z killed other\\x5c\n"),
	      "newlines and backslashes escaped: %s", s ? s : "(none)");
	CHECK(s && strlen(strrchr(s, ' ')) <= 1024, "a line is cut at 1 KiB");
	CHECK(hook_calls == 2, "the hook was called %d times", hook_calls);
	free(s);
}

static void test_bounds_and_reload(struct sbx_ctl *ctl, const char *dir)
{
	char path[4300], *s;
	struct stat st;
	size_t len;
	int fd;

	for (int i = 0; i < 60000; i++)
		events_emit(ctl, "created", "box", "n=%d", i);
	CHECK(ctl_events_size(ctl) > (2u << 20) + (1u << 19), "the stream's offsets grow past what is kept");
	s = stream(ctl, ctl_events_size(ctl) - 40, &len);
	CHECK(s && strstr(s, "n=59999\n"), "the last line is there: %s", s ? s : "(none)");
	free(s);
	/* A reader behind what is kept gets empty lines, never bytes of another line. */
	s = stream(ctl, 10, &len);
	CHECK(s && s[0] == '\n', "a reader fallen behind gets empty lines first");
	free(s);
	snprintf(path, sizeof(path), "%s/events.log.1", dir);
	CHECK(stat(path, &st) == 0 && st.st_size <= (1 << 20), "events.log was rotated");
	snprintf(path, sizeof(path), "%s/events.log", dir);
	CHECK(stat(path, &st) == 0 && st.st_size <= (1 << 20), "events.log is bounded");

	/* A crash cut the last line in half: a new start skips it and keeps the rest. */
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, "- 2026-11-30T00:00:00.000Z cre", 30) == 30, "append a cut line");
	close(fd);
	events_close(ctl);
	struct sbx_err err = { 0 };
	CHECK(events_open(ctl, &err) == 0, "reopen: %s", err.msg);
	s = stream(ctl, 0, &len);
	/* Offsets start again at 0 after a start: what was trimmed at load reads as empty lines. */
	if (s) {
		size_t lead = strspn(s, "\n");

		memmove(s, s + lead, len - lead + 1);
		len -= lead;
	}
	CHECK(s && len <= (1u << 20) && len > (1u << 19), "the backlog reloaded is bounded: %zu", len);
	CHECK(s && strstr(s, "n=59999\n") && !strstr(s, " cre\n") && !strstr(s, "cre2026"),
	      "the last whole line is kept, the cut one skipped");
	CHECK(s && s[len - 1] == '\n' && strncmp(s, "20", 2) == 0, "whole lines only");
	free(s);
	events_emit(ctl, "killed", "box", "%s", "");
	s = stream(ctl, ctl_events_size(ctl) - 10, &len);
	CHECK(s && strcmp(s, "illed box\n") == 0, "the new line after the reload: %s", s ? s : "(none)");
	free(s);
}

int main(void)
{
	char dir[] = "/tmp/sbxfs-test-events-XXXXXX";
	struct sbx_ctl ctl = { 0 };
	struct sbx_err err = { 0 };

	if (!mkdtemp(dir))
		return 1;
	ctl.state_root = dir;
	if (events_open(&ctl, &err)) {
		fprintf(stderr, "events_open: %s\n", err.msg);
		return 1;
	}
	ctl_set_events_hook(&ctl, hook, NULL);
	test_forgery(&ctl);
	ctl_set_events_hook(&ctl, NULL, NULL);
	test_bounds_and_reload(&ctl, dir);
	events_close(&ctl);
	sbx_rm_rf(dir);
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	return failures ? 1 : 0;
}
