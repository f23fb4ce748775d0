/*
 * pg_message.c - write the ErrorResponse walgate sends on its own behalf
 * and read the fields of the ErrorResponse/NoticeResponse an upstream sent,
 * and its BackendKeyData.
 */
#include "pg_message.h"
#include "pg_wire.h"

#include <string.h>

/* Longest string put into one field: keeps a refusal small and bounded. */
#define ERROR_FIELD_MAX 1000u

/*
 * How many bytes of s go into a field: at most ERROR_FIELD_MAX, and never
 * half a UTF-8 character, which a strict client would reject as invalid
 * encoding instead of showing the error.
 */
static size_t field_len(const char *s)
{
	size_t n = strnlen(s, ERROR_FIELD_MAX);

	if (n == ERROR_FIELD_MAX) {
		/* back off over continuation bytes (10xxxxxx) to a lead byte */
		while (n > ERROR_FIELD_MAX - 3 && ((uint8_t)s[n] & 0xc0) == 0x80)
			n--;
	}
	return n;
}

/* A NULL for a mandatory field is a caller bug; send it empty, not crash. */
static const char *or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static size_t put_field(uint8_t *p, char type, const char *s)
{
	size_t n = field_len(s);

	p[0] = (uint8_t)type;
	memcpy(p + 1, s, n);
	p[1 + n] = '\0';
	return n + 2;
}

size_t pg_build_error(uint8_t *buf, size_t cap, const struct pg_error_fields *f)
{
	const char *sev = or_empty(f->severity);
	const char *code = or_empty(f->sqlstate);
	const char *msg = or_empty(f->message);
	size_t total, pos;

	/* type, length, S and V, C, M, final NUL; each field is type + string + NUL */
	total = PG_MSG_HEADER_LEN + 2 * (field_len(sev) + 2) +
		field_len(code) + 2 + field_len(msg) + 2 + 1;
	if (f->detail != NULL)
		total += field_len(f->detail) + 2;
	if (f->hint != NULL)
		total += field_len(f->hint) + 2;
	if (total > cap)
		return 0;

	buf[0] = PG_MSG_ERROR_RESPONSE;
	pg_put_u32(buf + 1, (uint32_t)(total - 1));
	pos = PG_MSG_HEADER_LEN;
	pos += put_field(buf + pos, 'S', sev);
	/* V (never localised) exists since 9.6; S alone is for older clients */
	pos += put_field(buf + pos, 'V', sev);
	pos += put_field(buf + pos, 'C', code);
	pos += put_field(buf + pos, 'M', msg);
	if (f->detail != NULL)
		pos += put_field(buf + pos, 'D', f->detail);
	if (f->hint != NULL)
		pos += put_field(buf + pos, 'H', f->hint);
	buf[pos++] = '\0';
	return pos;
}

/*
 * payload[0..len) is: (type byte, NUL-terminated string)*, then a 0 type
 * byte that must be the last byte of the payload. Fields walgate does not
 * use (position, file, line ...) are walked over but kept nowhere.
 */
int pg_parse_error(const uint8_t *payload, size_t len, struct pg_error_fields *out)
{
	const uint8_t *p = payload, *end = payload + len, *nul;
	const char *sev_s = NULL, *sev_v = NULL, *s;
	uint8_t type;

	memset(out, 0, sizeof(*out));
	for (;;) {
		if (p >= end)
			return -1;		/* no final 0 */
		type = *p++;
		if (type == '\0')
			break;
		nul = memchr(p, '\0', (size_t)(end - p));
		if (nul == NULL)
			return -1;		/* string runs off the payload */
		s = (const char *)p;
		p = nul + 1;
		switch (type) {
		case 'S': sev_s = s; break;
		case 'V': sev_v = s; break;
		case 'C': out->sqlstate = s; break;
		case 'M': out->message = s; break;
		case 'D': out->detail = s; break;
		case 'H': out->hint = s; break;
		default: break;
		}
	}
	/* bytes after the final 0 mean the length word and the fields disagree */
	if (p != end)
		return -1;
	/* V is the untranslated severity, S may be in the server's lc_messages */
	out->severity = sev_v != NULL ? sev_v : sev_s;
	return 0;
}

int pg_parse_backend_key(const uint8_t *payload, size_t len, uint32_t *pid,
			 const uint8_t **key, size_t *key_len)
{
	if (len <= 4 || len - 4 > PG_CANCEL_KEY_MAX)
		return -1;
	*pid = pg_get_u32(payload);
	*key = payload + 4;
	*key_len = len - 4;
	return 0;
}
