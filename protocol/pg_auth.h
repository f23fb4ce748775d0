/*
 * pg_auth.h - the authentication requests of the protocol (message 'R'
 * from the server) as far as a relay needs to read and adjust them.
 *
 * Pure: works on a whole message in the caller's buffers.
 */
#ifndef WALGATE_PG_AUTH_H
#define WALGATE_PG_AUTH_H

#include <stddef.h>
#include <stdint.h>

enum {
	PG_AUTH_OK = 0,
	PG_AUTH_CLEARTEXT_PASSWORD = 3,
	PG_AUTH_MD5_PASSWORD = 5,
	PG_AUTH_SASL = 10,
	PG_AUTH_SASL_CONTINUE = 11,
	PG_AUTH_SASL_FINAL = 12,
};

/*
 * The request code of an Authentication message msg[0..len) (type 'R',
 * length, Int32 code ...), or -1 when it is not one.
 */
int pg_auth_code(const uint8_t *msg, size_t len);

/*
 * Copy the AuthenticationSASL message msg[0..len) into out[0..cap) without
 * the mechanism `mech`, fixing the length. Returns the new length; 0 when
 * msg is not a well-formed AuthenticationSASL, leaves no mechanism, or out
 * is too small.
 */
size_t pg_auth_sasl_without(const uint8_t *msg, size_t len, const char *mech, uint8_t *out,
			    size_t cap);

#endif
