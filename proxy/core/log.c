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
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
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

/*
 * The length of the valid UTF-8 sequence of two to four bytes at s, with
 * its code point in *cp; 0 when s does not start one (a lone byte of 0x80
 * or above, an overlong form, a surrogate, beyond U+10FFFF).
 */
static size_t utf8_sequence(const unsigned char *s, uint32_t *cp)
{
	size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	static const uint32_t least[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t v;

	if (n == 0 || s[0] > 0xf4)
		return 0;
	v = s[0] & (0x3f >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)	/* a NUL ends it here too */
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < least[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

/* Code points a terminal or a reader takes for control: C1, bidi overrides and isolates. */
static bool is_invisible_control(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/*
 * Append s to buf, escaped: text mode writes \xNN for control bytes and
 * bytes that are not UTF-8, \uNNNN for invisible controls and \\ for a
 * backslash, so that every byte of a line is printable and readable one way
 * only; JSON mode does the same within JSON's rules (\u00NN, \\xNN for a
 * byte that is not UTF-8, so the line stays valid JSON). Returns the new
 * length; stops before cap.
 */
/* The escaped form of the character at s (n bytes of it, n set) into out[16]; its length. */
static size_t escape_one(const unsigned char *s, size_t *n, char out[16], bool json)
{
	uint32_t cp = 0;

	*n = *s >= 0x80 ? utf8_sequence(s, &cp) : 1;
	if (*n == 0) {
		*n = 1;
		return (size_t)snprintf(out, 16, json ? "\\\\x%02x" : "\\x%02x", *s);
	}
	if (*n > 1) {
		if (is_invisible_control(cp))
			return (size_t)snprintf(out, 16, "\\u%04x", (unsigned)cp);
		memcpy(out, s, *n);
		return *n;
	}
	if (*s == '\\' || (json && *s == '"'))
		return (size_t)snprintf(out, 16, "\\%c", *s);
	if (*s < 0x20 || *s == 0x7f)
		return (size_t)snprintf(out, 16, json ? "\\u%04x" : "\\x%02x", *s);
	out[0] = (char)*s;
	return 1;
}

/*
 * Append s to buf, escaped: text mode writes \xNN for control bytes and
 * bytes that are not UTF-8, \uNNNN for invisible controls and \\ for a
 * backslash, so that every byte of a line is printable and reads one way
 * only; JSON mode does the same within JSON's rules (\u00NN, and \\xNN
 * for a byte that is not UTF-8, so that the line stays valid JSON). Stops
 * before cap without splitting an escape; returns the new length.
 */
static size_t escape(char *buf, size_t len, size_t cap, const char *str, bool json)
{
	const unsigned char *s = (const unsigned char *)str;
	char piece[16];
	size_t n, k;

	while (*s && (k = escape_one(s, &n, piece, json)) < cap - len) {
		memcpy(buf + len, piece, k);
		len += k;
		s += n;
	}
	return len;
}

static size_t json_escape(char *buf, size_t len, size_t cap, const char *s)
{
	return escape(buf, len, cap, s, true);
}

size_t log_escape_text(char *buf, size_t len, size_t cap, const char *s)
{
	return escape(buf, len, cap, s, false);
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
