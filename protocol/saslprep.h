/*
 * saslprep.h - SASLprep (RFC 4013) of a password, as PostgreSQL's
 * pg_saslprep() prepares it before SCRAM, by way of libidn's stringprep
 * "SASLprep" profile rather than tables of our own.
 *
 * PostgreSQL's rules, which both the server (building a verifier) and
 * libpq (logging in) follow, and so walgate on both of its legs:
 *  - pure ASCII is used as it is;
 *  - otherwise the password is mapped (non-ASCII spaces to U+0020, the
 *    "commonly mapped to nothing" characters removed), NFKC-normalized and
 *    checked (prohibited output, unassigned code points, bidi rules);
 *  - when that fails (invalid UTF-8, a prohibited character, nothing left),
 *    the raw bytes are used: the password still works, unnormalized.
 */
#ifndef WALGATE_SASLPREP_H
#define WALGATE_SASLPREP_H

#include <stdbool.h>
#include <stddef.h>

enum saslprep_result {
	SASLPREP_ASCII,		/* used as it is */
	SASLPREP_PREPARED,	/* normalized (possibly identical) */
	SASLPREP_RAW,		/* SASLprep refused it: the raw bytes are used */
	SASLPREP_TOO_LONG,	/* does not fit in out: nothing written */
};

/*
 * The password to feed SCRAM for password (NUL-terminated), into
 * out[0..cap) NUL-terminated. Allocates only inside libidn, freed before
 * returning; wipes its copies.
 */
enum saslprep_result saslprep_password(const char *password, char *out, size_t cap);

#endif
