/*
 * config_parse.c - the parsers of one setting's value: numbers with their
 * units, booleans, addresses, allow lists and choices, each giving the
 * reason a value is refused in words that name what is accepted.
 */
#include "core/config_int.h"
#include "core/allowlist.h"
#include "protocol/proxy_header.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A whole decimal number, nothing else; leaves the unit suffix in *rest. */
static bool parse_number(const char *s, int64_t *out, const char **rest)
{
	char *end;
	long long v;

	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s)
		return false;
	while (isspace((unsigned char)*end))
		end++;
	*out = v;
	*rest = end;
	return true;
}

struct unit {
	const char *name;
	int64_t factor;
};

/* Largest first, so that a limit is written in the largest exact unit. */
static const struct unit duration_units[] = {
	{ "h", 3600000 }, { "min", 60000 }, { "s", 1000 }, { "ms", 1 }, { "", 1000 },
};

static const struct unit size_units[] = {
	{ "GB", 1 << 30 }, { "MB", 1 << 20 }, { "kB", 1024 }, { "B", 1 }, { "", 1 },
};

#define NUNITS 5

/* Units are matched without regard to case: "10S", "1gb" and "5Min" are fine. */
static const char *parse_with_unit(const char *s, const struct unit *units, const char *names,
				   int64_t *out, char *why)
{
	const char *rest;
	int64_t v;

	if (!parse_number(s, &v, &rest)) {
		snprintf(why, WHY_LEN, "not a number with a unit (%s)", names);
		return why;
	}
	for (size_t i = 0; i < NUNITS; i++) {
		if (strcasecmp(rest, units[i].name))
			continue;
		if (v > INT64_MAX / units[i].factor)
			return "too large";
		*out = v * units[i].factor;
		return NULL;
	}
	snprintf(why, WHY_LEN, "unknown unit \"%.40s\": use %s", rest, names);
	return why;
}

/* v written with the largest unit that divides it: "100ms", "1h", "64MB". */
static void format_amount(enum key_type type, int64_t v, char *buf, size_t cap)
{
	const struct unit *units = type == KT_SIZE ? size_units : duration_units;

	if (type == KT_INT || v == 0) {
		snprintf(buf, cap, "%lld", (long long)v);
		return;
	}
	for (size_t i = 0; i < NUNITS - 1; i++) {
		if (v % units[i].factor == 0) {
			snprintf(buf, cap, "%lld%s", (long long)(v / units[i].factor), units[i].name);
			return;
		}
	}
	snprintf(buf, cap, "%lld", (long long)v);
}

/* "out of range: accepted from 100ms to 24h" (and 0 for durations that allow it). */
static const char *range_reason(const struct config_key *k, const char *what, char *why)
{
	char lo[32], hi[32];

	format_amount(k->type, k->min, lo, sizeof(lo));
	format_amount(k->type, k->max, hi, sizeof(hi));
	snprintf(why, WHY_LEN, "%s: accepted from %s to %s%s", what, lo, hi,
		 k->type == KT_DURATION_OFF ? ", or off" : "");
	return why;
}

/* An integer, a duration or a size, within the key's range. */
static const char *parse_amount(const struct config_key *k, const char *value, void *field,
				char *why)
{
	int64_t v = 0;
	const char *rest, *err = NULL;

	if (k->type == KT_INT) {
		if (!parse_number(value, &v, &rest) || *rest)
			return range_reason(k, "not a whole number", why);
	} else if (k->type == KT_DURATION_OFF && !strcasecmp(value, "off")) {
		v = 0;
	} else if (k->type != KT_SIZE) {
		err = parse_with_unit(value, duration_units, k->type == KT_DURATION_OFF ?
				      "ms, s, min or h; a bare number is seconds; or off" :
				      "ms, s, min or h; a bare number is seconds", &v, why);
	} else {
		err = parse_with_unit(value, size_units, "B, kB, MB or GB; a bare number is bytes",
				      &v, why);
	}
	if (err)
		return err;
	if ((v < k->min || v > k->max) && !(k->type == KT_DURATION && v == 0 && k->min == 0) &&
	    !(k->type == KT_DURATION_OFF && v == 0))
		return range_reason(k, "out of range", why);
	if (k->type == KT_INT)
		*(int *)field = (int)v;
	else
		*(int64_t *)field = v;
	return NULL;
}

static const char *parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "on", "true", "yes", "1" };
	static const char *const no[] = { "off", "false", "no", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = 1;
			return NULL;
		}
		if (!strcasecmp(s, no[i])) {
			*out = 0;
			return NULL;
		}
	}
	return "expected on or off";
}

/* One "host:port" or "[v6]:port" with a numeric host. */
static const char *parse_one_addr(const char *s, size_t len, struct config_addr *a)
{
	char buf[64], host[64];
	const char *colon, *port;
	struct addrinfo hints = { 0 }, *res;

	if (len == 0 || len >= sizeof(buf))
		return "bad address";
	memcpy(buf, s, len);
	buf[len] = '\0';
	colon = strrchr(buf, ':');
	if (!colon || colon == buf)
		return "address needs host:port";
	port = colon + 1;
	if (buf[0] == '[') {
		if (colon[-1] != ']')
			return "IPv6 address needs [addr]:port";
		snprintf(host, sizeof(host), "%.*s", (int)(colon - buf - 2), buf + 1);
	} else {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - buf), buf);
		if (strchr(host, ':'))
			return "IPv6 address needs [addr]:port";
	}
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res))
		return "not a numeric address and port";
	memcpy(&a->addr, res->ai_addr, res->ai_addrlen);
	a->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(a->text, sizeof(a->text), "%s", buf);
	return NULL;
}

/* A list of addresses; "off" is the empty list, which validate() may refuse. */
static const char *parse_listen(const char *s, struct config_addr_list *out)
{
	struct config_addr *list = NULL;
	size_t n = 0;

	if (!strcasecmp(s, "off")) {
		free(out->v);
		out->v = NULL;
		out->n = 0;
		return NULL;
	}
	while (*s) {
		size_t len;
		const char *why;
		struct config_addr *grown;

		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		len = strcspn(s, ", \t");
		if (len == 0)
			break;
		grown = realloc(list, (n + 1) * sizeof(*list));
		if (!grown) {
			free(list);
			return "out of memory";
		}
		list = grown;
		why = parse_one_addr(s, len, &list[n]);
		if (why) {
			free(list);
			return why;
		}
		n++;
		s += len;
	}
	if (n == 0) {
		free(list);
		return "at least one address is needed";
	}
	free(out->v);
	out->v = list;
	out->n = n;
	return NULL;
}

static const char *parse_allowlist(const char *value, struct allowlist **slot, char *why)
{
	struct allowlist *al = allowlist_parse(value, why, WHY_LEN);

	if (!al)
		return why;
	allowlist_free(*slot);
	*slot = al;
	return NULL;
}

static const char *parse_proxy_mode(const char *value, int *out)
{
	static const struct { const char *name; int bits; } modes[] = {
		{ "off", 0 },
		{ "v1", PROXY_ACCEPT_V1 },
		{ "v2", PROXY_ACCEPT_V2 },
		{ "any", PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2 },
	};

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (!strcasecmp(value, modes[i].name)) {
			*out = modes[i].bits;
			return NULL;
		}
	}
	return "expected off, v1, v2 or any";
}

/* value must be one of the '|'-separated words of choices; *out is its index. */
static const char *parse_choice(const char *value, const char *choices, int *out, char *why)
{
	const char *p = choices;
	size_t vlen = strlen(value);

	for (int i = 0; *p; i++) {
		size_t len = strcspn(p, "|");

		if (len == vlen && !strncasecmp(p, value, len)) {
			*out = i;
			return NULL;
		}
		p += len + (p[len] == '|');
	}
	snprintf(why, WHY_LEN, "expected one of %s", choices);
	return why;
}

/* A comma-separated list of words of choices; bit i of *out for the i-th word. */
static const char *parse_flags(const char *value, const char *choices, int *out, char *why)
{
	int bits = 0, i;
	char word[32];

	for (;;) {
		size_t len;

		value += strspn(value, ", \t");
		len = strcspn(value, ", \t");
		if (len == 0)
			break;
		if (len >= sizeof(word))
			len = sizeof(word) - 1;	/* too long for any choice: refused below */
		memcpy(word, value, len);
		word[len] = '\0';
		if (parse_choice(word, choices, &i, why))
			break;
		bits |= 1 << i;
		value += strcspn(value, ", \t");
	}
	if (*value || !bits) {
		snprintf(why, WHY_LEN, "expected a comma-separated list of %s", choices);
		return why;
	}
	*out = bits;
	return NULL;
}

const char *config_parse_value(const struct config_key *k, const char *value, struct config *cfg,
			       char *why_buf)
{
	void *field = (char *)cfg + k->offset;
	const char *why = NULL;
	int b;

	switch (k->type) {
	case KT_STRING:
	case KT_FILE:
		if (!*value)
			return "must not be empty";
		free(*(char **)field);
		*(char **)field = strdup(value);
		return *(char **)field ? NULL : "out of memory";
	case KT_LISTEN:
		return parse_listen(value, (struct config_addr_list *)field);
	case KT_ALLOWLIST:
		return parse_allowlist(value, (struct allowlist **)field, why_buf);
	case KT_PROXY_MODE:
		return parse_proxy_mode(value, (int *)field);
	case KT_CHOICE:
		return parse_choice(value, k->choices, (int *)field, why_buf);
	case KT_FLAGS:
		return parse_flags(value, k->choices, (int *)field, why_buf);
	case KT_BOOL:
		if ((why = parse_bool(value, &b)) == NULL)
			*(int *)field = b;
		return why;
	case KT_LOG_LEVEL:
		for (int i = LOG_LEVEL_ERROR; i <= LOG_LEVEL_DEBUG; i++) {
			static const char *const names[] = { "error", "warning", "info", "debug" };

			if (!strcasecmp(value, names[i])) {
				*(enum log_level *)field = (enum log_level)i;
				return NULL;
			}
		}
		return "expected error, warning, info or debug";
	case KT_LOG_FORMAT:
		if (!strcasecmp(value, "text") || !strcasecmp(value, "json")) {
			*(int *)field = !strcasecmp(value, "json");
			return NULL;
		}
		return "expected text or json";
	case KT_INT:
	case KT_DURATION:
	case KT_DURATION_OFF:
	case KT_SIZE:
		return parse_amount(k, value, field, why_buf);
	}
	return "unknown type";
}
