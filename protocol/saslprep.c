/*
 * saslprep.c - SASLprep of a password with libidn's "SASLprep" stringprep
 * profile, falling back to the raw bytes exactly where PostgreSQL's
 * pg_saslprep() does (see saslprep.h).
 *
 * Unassigned code points are refused (STRINGPREP_NO_UNASSIGNED), as
 * PostgreSQL treats a password as a stored string.
 */
#include "saslprep.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <stringprep.h>

static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

static enum saslprep_result copy_out(const char *s, char *out, size_t cap,
				     enum saslprep_result r)
{
	size_t n = strlen(s);

	if (n >= cap)
		return SASLPREP_TOO_LONG;
	memcpy(out, s, n + 1);
	return r;
}

enum saslprep_result saslprep_password(const char *password, char *out, size_t cap)
{
	enum saslprep_result r;
	char *prepared = NULL;

	if (is_ascii(password))
		return copy_out(password, out, cap, SASLPREP_ASCII);
	/* libidn checks the UTF-8 itself: invalid input is an error, as in PostgreSQL */
	if (stringprep_profile(password, &prepared, "SASLprep", STRINGPREP_NO_UNASSIGNED) !=
	    STRINGPREP_OK || prepared == NULL || prepared[0] == '\0')
		r = copy_out(password, out, cap, SASLPREP_RAW);
	else
		r = copy_out(prepared, out, cap, SASLPREP_PREPARED);
	if (prepared) {
		OPENSSL_cleanse(prepared, strlen(prepared));
		free(prepared);
	}
	return r;
}
