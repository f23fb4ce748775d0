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
