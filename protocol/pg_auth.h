/*
 * pg_auth.h - the authentication requests of the protocol (message 'R'
 * from the server) as far as a relay needs to read and adjust them.
 *
 * Pure: works on a whole message in the caller's buffers.
 */
#ifndef WALGATE_PG_AUTH_H
#define WALGATE_PG_AUTH_H

#include <stdbool.h>
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

/*
 * Builders: each writes a whole message into out[0..cap) and returns its
 * length, or 0 when it does not fit.
 */

/* AuthenticationOk, ...CleartextPassword and the like: 'R' with a bare code. */
size_t pg_auth_build_request(uint8_t *out, size_t cap, uint32_t code);

/* AuthenticationSASL offering the NULL-terminated list mechs. */
size_t pg_auth_build_sasl(uint8_t *out, size_t cap, const char *const *mechs);

/* AuthenticationSASLContinue / AuthenticationSASLFinal carrying data. */
size_t pg_auth_build_sasl_data(uint8_t *out, size_t cap, uint32_t code, const char *data,
			       size_t len);

/* SASLInitialResponse ('p'): mechanism, then the client-first-message. */
size_t pg_auth_build_sasl_initial(uint8_t *out, size_t cap, const char *mech, const char *data,
				  size_t len);

/* SASLResponse or PasswordMessage ('p'): just the bytes. */
size_t pg_auth_build_password(uint8_t *out, size_t cap, const char *data, size_t len,
			      bool nul_terminated);

/*
 * The client's SASLInitialResponse msg[0..len) (whole message): *mech
 * points at the NUL-terminated mechanism name, data[0..*data_len) at the
 * client-first-message. -1 when malformed (lengths that disagree, no data).
 */
int pg_auth_parse_sasl_initial(const uint8_t *msg, size_t len, const char **mech,
			       const char **data, size_t *data_len);

/* The bytes of a SASLResponse msg[0..len) (type 'p'); -1 when not one. */
int pg_auth_parse_sasl_response(const uint8_t *msg, size_t len, const char **data,
				size_t *data_len);

/* The data of an AuthenticationSASLContinue/Final msg[0..len). */
int pg_auth_parse_sasl_data(const uint8_t *msg, size_t len, const char **data, size_t *data_len);

#endif
