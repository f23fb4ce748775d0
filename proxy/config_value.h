/*
 * config_value.h - parsing one setting's value (config.c's table says which
 * parser a key takes): numbers with units, booleans, address lists, allow
 * lists, PROXY modes, one choice of several, and lists of choices. Each
 * returns NULL when it took the value, else why not (a constant string, or
 * why[0..CONFIG_WHY_LEN) filled in).
 */
#ifndef WALGATE_CONFIG_VALUE_H
#define WALGATE_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Room for the reason a value was refused, when it is not a constant string. */
#define CONFIG_WHY_LEN 300

struct unit {
	const char *name;
	int64_t factor;
};

extern const struct unit config_duration_units[5];	/* ms, s, (bare: s), min, h */
extern const struct unit config_size_units[5];		/* (bare: B), B, kB, MB, GB */

/* A whole decimal number, nothing else; leaves the unit suffix in *rest. */
bool config_parse_number(const char *s, int64_t *out, const char **rest);
const char *config_parse_with_unit(const char *s, const struct unit *units, size_t n,
				   int64_t *out);
const char *config_parse_bool(const char *s, int *out);
/* A list of numeric "host:port" / "[v6]:port"; "off" is the empty list. */
const char *config_parse_listen(const char *s, struct config_addr_list *out);
const char *config_parse_allowlist(const char *value, struct allowlist **slot, char *why);
const char *config_parse_proxy_mode(const char *value, int *out);
/* value must be one of the '|'-separated words of choices; *out is its index. */
const char *config_parse_choice(const char *value, const char *choices, int *out, char *why);
/* A comma-separated list of words of choices, at least one; bit i for word i. */
const char *config_parse_flags(const char *value, const char *choices, int *out, char *why);

#endif
