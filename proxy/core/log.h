/*
 * log.h - walgate's log: one line per event on stderr (journald and
 * container runtimes collect it), as text or as JSON objects.
 */
#ifndef WALGATE_LOG_H
#define WALGATE_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void log_configure(enum log_level level, bool json);
bool log_enabled(enum log_level level);

/* Write one line; prefix names the connection ("C-12 127.0.0.1:5000") or is NULL. */
void log_write(enum log_level level, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Append s to buf[len..cap) with each control byte (0x00-0x1f, 0x7f) as
 * \xNN; stops short rather than split an escape. Returns the new length
 * (no terminating NUL is written).
 */
size_t log_escape_text(char *buf, size_t len, size_t cap, const char *s);

#define log_error(...)   log_write(LOG_LEVEL_ERROR, NULL, __VA_ARGS__)
#define log_warning(...) log_write(LOG_LEVEL_WARNING, NULL, __VA_ARGS__)
#define log_info(...)    log_write(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_enabled(LOG_LEVEL_DEBUG)) log_write(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__); } while (0)

#endif
