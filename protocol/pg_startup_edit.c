/*
 * pg_startup_edit.c - rewriting the user of a StartupMessage (see
 * pg_startup_edit.h). Every string is found with a bounded search before
 * it is copied; the output is built with a bounded writer.
 */
#include "pg_startup_edit.h"

#include <stdbool.h>
#include <string.h>

#include "pg_wire.h"

struct writer {
	uint8_t *p, *end;
	bool ok;
};

static void put(struct writer *w, const void *src, size_t n)
{
	if (!w->ok || (size_t)(w->end - w->p) < n) {
		w->ok = false;
		return;
	}
	memcpy(w->p, src, n);
	w->p += n;
}

static void put_string(struct writer *w, const char *s)
{
	put(w, s, strlen(s) + 1);
}

/* The NUL-terminated string at *p, before end; NULL when unterminated. */
static const char *take_string(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	const char *s = (const char *)*p;

	if (!nul)
		return NULL;
	*p = nul + 1;
	return s;
}

/* Copy the parameters, replacing user's value; *client_user gets the old one. */
static bool copy_params(struct writer *w, const uint8_t *p, const uint8_t *end, const char *user,
			const char **client_user, bool *has_database)
{
	for (;;) {
		const char *key = take_string(&p, end), *value;

		if (!key)
			return false;
		if (!*key)
			return p == end;	/* the terminator ends the packet */
		if (!(value = take_string(&p, end)))
			return false;
		if (!strcmp(key, "user")) {
			*client_user = value;
			value = user;
		} else if (!strcmp(key, "database")) {
			*has_database = *value != '\0';	/* the last one counts; empty is none */
		}
		put_string(w, key);
		put_string(w, value);
	}
}

size_t pg_startup_with_user(const uint8_t *pkt, size_t len, const char *user,
			    uint8_t *out, size_t cap)
{
	struct writer w = { .p = out, .end = out + cap, .ok = true };
	const char *client_user = NULL;
	bool has_database = false;
	size_t n;

	if (len < 9 || pg_get_u32(pkt) != len || !user || !*user)
		return 0;
	put(&w, pkt, 8);		/* length (fixed below) and protocol version */
	if (!copy_params(&w, pkt + 8, pkt + len, user, &client_user, &has_database) || !client_user)
		return 0;
	if (!has_database) {
		put_string(&w, "database");
		put_string(&w, client_user);
	}
	put(&w, "", 1);
	if (!w.ok)
		return 0;
	n = (size_t)(w.p - out);
	pg_put_u32(out, (uint32_t)n);
	return n;
}
