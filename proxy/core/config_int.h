/*
 * config_int.h - what config.c and config_parse.c share: the kinds of
 * setting and one row of the settings table, and the parser of one value.
 */
#ifndef WALGATE_CONFIG_INT_H
#define WALGATE_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

enum key_type {
	KT_STRING,
	KT_FILE,		/* char *, a path walgate reads: checked at load */
	KT_INT,
	KT_BOOL,
	KT_DURATION,		/* int64_t milliseconds */
	KT_DURATION_OFF,	/* int64_t milliseconds, or off: 0 */
	KT_SIZE,		/* int64_t bytes */
	KT_LOG_LEVEL,
	KT_LOG_FORMAT,
	KT_LISTEN,
	KT_ALLOWLIST,		/* struct allowlist * */
	KT_PROXY_MODE,		/* int, PROXY_ACCEPT_* bits */
	KT_CHOICE,		/* int, index into choices ("a|b|c") */
	KT_FLAGS,		/* int, bit i for each word of choices listed ("a, c") */
};

struct config_key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t offset;
	const char *def;	/* NULL: required or empty */
	int64_t min, max;	/* for KT_INT, KT_DURATION(_OFF), KT_SIZE */
	bool reloadable;
	const char *choices;	/* for KT_CHOICE and KT_FLAGS */
};


/* Room for the reason a value was refused, when it is not a constant string. */
#define WHY_LEN 300

/*
 * Parse value as k's type into its field of cfg. NULL on success, else the
 * reason (a constant, or why_buf of WHY_LEN bytes), which names the accepted
 * range or words where that helps.
 */
const char *config_parse_value(const struct config_key *k, const char *value, struct config *cfg,
			       char *why_buf);

/* config_file.c: the line of path that sets [section] name, or 0. */
int config_line_of_key(const char *path, const char *section, const char *name);

/* Let libinih read lines up to 64 KiB, where it allows that to be set. */
void config_lift_line_limit(void);

/* libinih's "syntax error" at line of path, in words, into buf. */
void config_describe_syntax_error(const char *path, int line, char *buf, size_t cap);

#endif
