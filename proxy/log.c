/*
 * log.c - formatting and writing log lines.
 *
 * Each line is built whole in a stack buffer and written with one write(2),
 * so lines never interleave. Text lines read
 *   2026-11-24 13:47:01.123 UTC LOG C-12 127.0.0.1:5000: message
 * and JSON lines carry the same fields as an object.
 *
 * Messages carry strings the client chose (user, database,
 * application_name, before any authentication), so a line never holds a
 * raw control character: in text lines each byte 0x00-0x1f and 0x7f is
 * written as \xNN (a newline in a user name cannot start a forged line,
 * an escape sequence cannot reach a terminal); JSON strings escape them as
 * \u00NN.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Set by the control thread on reload, read by every thread: relaxed atomics. */
static _Atomic int log_max_level = LOG_LEVEL_INFO;
static atomic_bool log_json;

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "ERROR",
	[LOG_LEVEL_WARNING] = "WARNING",
	[LOG_LEVEL_INFO] = "LOG",
	[LOG_LEVEL_DEBUG] = "DEBUG",
};

static const char *const json_level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void log_configure(enum log_level level, bool json)
{
	atomic_store_explicit(&log_max_level, (int)level, memory_order_relaxed);
	atomic_store_explicit(&log_json, json, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_max_level, memory_order_relaxed);
}

static size_t format_time(char *buf, size_t cap)
{
	struct timeval tv;
	struct tm tm;
	size_t n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, cap, log_json ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, cap - n, log_json ? ".%03dZ" : ".%03d UTC",
			      (int)(tv.tv_usec / 1000));
	return n;
}

/* Append s to buf as the inside of a JSON string; returns the new length. */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s)
{
	for (; *s && len + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char)c;
		} else if (c < 0x20) {
			len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
		} else {
			buf[len++] = (char)c;
		}
	}
	return len;
}

size_t log_escape_text(char *buf, size_t len, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s && len + 5 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f) {
			buf[len++] = '\\';
			buf[len++] = 'x';
			buf[len++] = hex[c >> 4];
			buf[len++] = hex[c & 0x0f];
		} else {
			buf[len++] = (char)c;
		}
	}
	return len;
}

static size_t add(char *buf, size_t len, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (len + n >= cap)
		n = cap - len - 1;
	memcpy(buf + len, s, n);
	return len + n;
}

void log_write(enum log_level level, const char *prefix, const char *fmt, ...)
{
	char msg[2048], line[4608], ts[48];
	size_t len = 0, cap = sizeof(line) - 1;
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	format_time(ts, sizeof(ts));

	if (log_json) {
		len = add(line, len, cap, "{\"time\":\"");
		len = add(line, len, cap, ts);
		len = add(line, len, cap, "\",\"level\":\"");
		len = add(line, len, cap, json_level_names[level]);
		if (prefix) {
			len = add(line, len, cap, "\",\"session\":\"");
			len = json_escape(line, len, cap, prefix);
		}
		len = add(line, len, cap, "\",\"msg\":\"");
		len = json_escape(line, len, cap, msg);
		len = add(line, len, cap, "\"}");
	} else {
		len = add(line, len, cap, ts);
		len = add(line, len, cap, " ");
		len = add(line, len, cap, level_names[level]);
		len = add(line, len, cap, " ");
		if (prefix) {
			len = log_escape_text(line, len, cap, prefix);
			len = add(line, len, cap, ": ");
		}
		len = log_escape_text(line, len, cap, msg);
	}
	line[len++] = '\n';
	/* Nothing sensible to do when stderr is gone. */
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}
