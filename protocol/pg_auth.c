/*
 * pg_auth.c - reading an Authentication request and rewriting the
 * mechanism list of AuthenticationSASL.
 *
 * Why rewrite: behind a relay whose client leg is plaintext but whose
 * upstream leg is TLS, the server offers SCRAM-SHA-256-PLUS, and libpq
 * refuses an offer of channel binding over a connection without TLS.
 * Without that mechanism the client chooses SCRAM-SHA-256 with the gs2
 * flag 'n' (it cannot bind), which the server accepts.
 */
#include "pg_auth.h"
#include "pg_wire.h"

#include <string.h>

int pg_auth_code(const uint8_t *msg, size_t len)
{
	if (len < PG_MSG_HEADER_LEN + 4 || msg[0] != PG_MSG_AUTHENTICATION)
		return -1;
	if (pg_get_u32(msg + 1) != len - 1)
		return -1;
	return (int)pg_get_u32(msg + PG_MSG_HEADER_LEN);
}

size_t pg_auth_sasl_without(const uint8_t *msg, size_t len, const char *mech, uint8_t *out,
			    size_t cap)
{
	const uint8_t *p, *end = msg + len;
	size_t pos, kept = 0;

	if (pg_auth_code(msg, len) != PG_AUTH_SASL || cap < PG_MSG_HEADER_LEN + 5)
		return 0;
	memcpy(out, msg, PG_MSG_HEADER_LEN + 4);
	pos = PG_MSG_HEADER_LEN + 4;
	for (p = msg + PG_MSG_HEADER_LEN + 4;; ) {
		const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
		size_t n;

		if (!nul)
			return 0;		/* a name runs off the message */
		n = (size_t)(nul - p);
		if (n == 0)
			break;			/* the empty name ends the list */
		if (strlen(mech) != n || memcmp(p, mech, n)) {
			if (pos + n + 2 > cap)
				return 0;
			memcpy(out + pos, p, n + 1);
			pos += n + 1;
			kept++;
		}
		p = nul + 1;
	}
	if (p + 1 != end || kept == 0)
		return 0;			/* bytes after the list, or nothing left to offer */
	out[pos++] = '\0';
	pg_put_u32(out + 1, (uint32_t)(pos - 1));
	return pos;
}

static size_t put_header(uint8_t *out, uint8_t type, size_t total)
{
	out[0] = type;
	pg_put_u32(out + 1, (uint32_t)(total - 1));
	return PG_MSG_HEADER_LEN;
}

size_t pg_auth_build_request(uint8_t *out, size_t cap, uint32_t code)
{
	size_t total = PG_MSG_HEADER_LEN + 4;

	if (cap < total)
		return 0;
	put_header(out, PG_MSG_AUTHENTICATION, total);
	pg_put_u32(out + PG_MSG_HEADER_LEN, code);
	return total;
}

size_t pg_auth_build_sasl(uint8_t *out, size_t cap, const char *const *mechs)
{
	size_t total = PG_MSG_HEADER_LEN + 4 + 1, pos;

	for (const char *const *m = mechs; *m; m++)
		total += strlen(*m) + 1;
	if (cap < total)
		return 0;
	pos = put_header(out, PG_MSG_AUTHENTICATION, total);
	pg_put_u32(out + pos, PG_AUTH_SASL);
	pos += 4;
	for (const char *const *m = mechs; *m; m++) {
		size_t n = strlen(*m) + 1;

		memcpy(out + pos, *m, n);
		pos += n;
	}
	out[pos++] = '\0';
	return pos;
}

size_t pg_auth_build_sasl_data(uint8_t *out, size_t cap, uint32_t code, const char *data,
			       size_t len)
{
	size_t total = PG_MSG_HEADER_LEN + 4 + len;

	if (cap < total)
		return 0;
	put_header(out, PG_MSG_AUTHENTICATION, total);
	pg_put_u32(out + PG_MSG_HEADER_LEN, code);
	memcpy(out + PG_MSG_HEADER_LEN + 4, data, len);
	return total;
}

size_t pg_auth_build_sasl_initial(uint8_t *out, size_t cap, const char *mech, const char *data,
				  size_t len)
{
	size_t mlen = strlen(mech) + 1;
	size_t total = PG_MSG_HEADER_LEN + mlen + 4 + len;

	if (cap < total)
		return 0;
	put_header(out, 'p', total);
	memcpy(out + PG_MSG_HEADER_LEN, mech, mlen);
	pg_put_u32(out + PG_MSG_HEADER_LEN + mlen, (uint32_t)len);
	memcpy(out + PG_MSG_HEADER_LEN + mlen + 4, data, len);
	return total;
}

size_t pg_auth_build_password(uint8_t *out, size_t cap, const char *data, size_t len,
			      bool nul_terminated)
{
	size_t total = PG_MSG_HEADER_LEN + len + (nul_terminated ? 1 : 0);

	if (cap < total)
		return 0;
	put_header(out, 'p', total);
	memcpy(out + PG_MSG_HEADER_LEN, data, len);
	if (nul_terminated)
		out[total - 1] = '\0';
	return total;
}

/* Is msg[0..len) a whole message of this type whose length word agrees? */
static bool whole_message(const uint8_t *msg, size_t len, uint8_t type)
{
	return len >= PG_MSG_HEADER_LEN && msg[0] == type && pg_get_u32(msg + 1) == len - 1;
}

int pg_auth_parse_sasl_initial(const uint8_t *msg, size_t len, const char **mech,
			       const char **data, size_t *data_len)
{
	const uint8_t *p = msg + PG_MSG_HEADER_LEN, *end = msg + len, *nul;
	uint32_t n;

	if (!whole_message(msg, len, 'p'))
		return -1;
	nul = memchr(p, '\0', (size_t)(end - p));
	if (!nul || nul == p || (size_t)(end - (nul + 1)) < 4)
		return -1;
	n = pg_get_u32(nul + 1);
	/* -1 means "no initial response": SCRAM always has one */
	if (n == 0xffffffffu || n != (size_t)(end - (nul + 5)))
		return -1;
	*mech = (const char *)p;
	*data = (const char *)(nul + 5);
	*data_len = n;
	return 0;
}

int pg_auth_parse_sasl_response(const uint8_t *msg, size_t len, const char **data,
				size_t *data_len)
{
	if (!whole_message(msg, len, 'p'))
		return -1;
	*data = (const char *)(msg + PG_MSG_HEADER_LEN);
	*data_len = len - PG_MSG_HEADER_LEN;
	return 0;
}

int pg_auth_parse_sasl_data(const uint8_t *msg, size_t len, const char **data, size_t *data_len)
{
	int code = pg_auth_code(msg, len);

	if (code != PG_AUTH_SASL_CONTINUE && code != PG_AUTH_SASL_FINAL)
		return -1;
	*data = (const char *)(msg + PG_MSG_HEADER_LEN + 4);
	*data_len = len - PG_MSG_HEADER_LEN - 4;
	return 0;
}
