/*
 * config_value.c - the parsers of setting values that config.c's table of
 * keys refers to (config_value.h).
 */
#include "config_value.h"
#include "allowlist.h"
#include "proxy_header.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A whole decimal number, nothing else; leaves the unit suffix in *rest. */
bool config_parse_number(const char *s, int64_t *out, const char **rest)
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

const struct unit config_duration_units[] = {
	{ "ms", 1 }, { "s", 1000 }, { "", 1000 }, { "min", 60000 }, { "h", 3600000 },
};

const struct unit config_size_units[] = {
	{ "", 1 }, { "B", 1 }, { "kB", 1024 }, { "MB", 1 << 20 }, { "GB", 1 << 30 },
};

const char *config_parse_with_unit(const char *s, const struct unit *units, size_t n,
				   int64_t *out)
{
	const char *rest;
	int64_t v;

	if (!config_parse_number(s, &v, &rest))
		return "not a number";
	for (size_t i = 0; i < n; i++) {
		if (strcmp(rest, units[i].name))
			continue;
		if (v > INT64_MAX / units[i].factor)
			return "out of range";
		*out = v * units[i].factor;
		return NULL;
	}
	return "unknown unit";
}

const char *config_parse_bool(const char *s, int *out)
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
const char *config_parse_listen(const char *s, struct config_addr_list *out)
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

const char *config_parse_allowlist(const char *value, struct allowlist **slot, char *why)
{
	struct allowlist *al = allowlist_parse(value, why, CONFIG_WHY_LEN);

	if (!al)
		return why;
	allowlist_free(*slot);
	*slot = al;
	return NULL;
}

const char *config_parse_proxy_mode(const char *value, int *out)
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
const char *config_parse_choice(const char *value, const char *choices, int *out, char *why)
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
	snprintf(why, CONFIG_WHY_LEN, "expected one of %s", choices);
	return why;
}

/* A comma-separated list of words of choices, at least one; bit i for word i. */
const char *config_parse_flags(const char *value, const char *choices, int *out, char *why)
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
		if (config_parse_choice(word, choices, &i, why))
			break;
		bits |= 1 << i;
		value += strcspn(value, ", \t");
	}
	if (*value || !bits) {
		snprintf(why, CONFIG_WHY_LEN, "expected a comma-separated list of %s", choices);
		return why;
	}
	*out = bits;
	return NULL;
}
