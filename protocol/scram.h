/*
 * scram.h - SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, for
 * both legs walgate terminates: verifying a client against a verifier, and
 * logging in to an upstream with a password or a recovered ClientKey.
 *
 * PostgreSQL's dialect: the user name inside the client-first-message is
 * ignored (the startup packet's "user" counts), no authzid, and the only
 * channel-binding type is tls-server-end-point. The channel-binding data
 * itself (a certificate hash) is computed by tls/ and handed in here.
 *
 * Pure: no sockets, no allocation, libcrypto only. Messages travel with
 * explicit lengths on the wire, so every parser takes (msg, len), reads
 * nothing past len and refuses a NUL byte anywhere. Every builder writes
 * into a caller's buffer, reports the length and NUL-terminates it (the
 * NUL is not part of the message). Randomness comes in as arguments
 * (nonce, salt), made by scram_make_nonce()/scram_make_salt() in
 * production and fixed in tests.
 */
#ifndef WALGATE_SCRAM_H
#define WALGATE_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN		32	/* SHA-256: StoredKey, ServerKey, ClientKey, proofs */
#define SCRAM_SALT_LEN		16	/* the salt walgate makes (PostgreSQL's default) */
#define SCRAM_SALT_MAX		64	/* longest salt taken from a verifier or a server */
#define SCRAM_NONCE_LEN		24	/* base64 of 18 random bytes, as PostgreSQL makes */
#define SCRAM_NONCE_MAX		64	/* longest nonce walgate contributes itself */
#define SCRAM_CBIND_MAX		64	/* channel-binding data: at most a SHA-512 hash */
#define SCRAM_MSG_MAX		1024	/* longest SCRAM message taken from a peer */
#define SCRAM_AUTH_MAX		4096	/* AuthMessage: three messages and two commas */
#define SCRAM_ERROR_MAX		128	/* kept part of a server-final "e=" */
#define SCRAM_DEFAULT_ITERATIONS 4096
#define SCRAM_MAX_ITERATIONS	(1 << 20)	/* most PBKDF2 rounds walgate computes */
#define SCRAM_VERIFIER_PREFIX	"SCRAM-SHA-256$"
#define SCRAM_VERIFIER_TEXT_MAX	256	/* pg_authid text of any verifier walgate holds */

/* SASL mechanism names, as offered in AuthenticationSASL. */
#define SCRAM_MECH_NAME		"SCRAM-SHA-256"
#define SCRAM_MECH_NAME_PLUS	"SCRAM-SHA-256-PLUS"

enum scram_result {
	SCRAM_OK = 0,
	SCRAM_UNVERIFIED,		/* client: logged in, but no ServerKey to check "v=" */
	SCRAM_ERR_INVALID,		/* the caller's arguments are unusable */
	SCRAM_ERR_STATE,		/* call out of order, or after a failure */
	SCRAM_ERR_BUFFER,		/* the caller's output buffer is too small */
	SCRAM_ERR_CRYPTO,		/* libcrypto failed */
	SCRAM_ERR_TOO_LONG,		/* a peer's message over SCRAM_MSG_MAX */
	SCRAM_ERR_MALFORMED,		/* syntax, attribute order, base64, NUL byte */
	SCRAM_ERR_EXTENSION,		/* an extension attribute ("m=" or any other) */
	SCRAM_ERR_AUTHZID,		/* an authorization identity: not supported */
	SCRAM_ERR_CBIND_TYPE,		/* "p=" with a type other than tls-server-end-point */
	SCRAM_ERR_CBIND_NEGOTIATION,	/* gs2 flag disagrees with the mechanism chosen */
	SCRAM_ERR_CBIND,		/* "c=" is not the first message's header + data */
	SCRAM_ERR_NONCE,		/* nonce unprintable, not extended, or changed */
	SCRAM_ERR_ITERATIONS,		/* iteration count 0 or over the limit */
	SCRAM_ERR_KEY_MISMATCH,		/* server's salt/iterations differ from the key's */
	SCRAM_ERR_PROOF,		/* wrong password (or a mock verifier) */
	SCRAM_ERR_SERVER_SIGNATURE,	/* the server's "v=" is wrong */
	SCRAM_ERR_SERVER_ERROR,		/* the server sent "e=": see scram_client_error() */
	SCRAM_ERR_VERIFIER,		/* verifier text malformed */
};

/* Short human-readable reason, for logs and ErrorResponses. */
const char *scram_result_str(enum scram_result r);

/*
 * What a server stores for a user (pg_authid's rolpassword, decoded).
 * mock marks a made-up verifier: an exchange against it never succeeds.
 */
struct scram_verifier {
	int iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_SALT_MAX];
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	bool mock;
};

/*
 * "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" (NUL-terminated),
 * as pg_authid holds it. SCRAM_ERR_VERIFIER for anything else; a caller
 * that also accepts plaintext passwords should treat text starting with
 * SCRAM_VERIFIER_PREFIX as a verifier or an error, never as a password.
 */
enum scram_result scram_verifier_parse(const char *text, struct scram_verifier *out);

/* The pg_authid text of v, into out[0..cap). */
enum scram_result scram_verifier_format(const struct scram_verifier *v,
					char *out, size_t cap);

/*
 * The verifier PostgreSQL would store for password with this salt and
 * iteration count (1..SCRAM_MAX_ITERATIONS). password as it goes into
 * SCRAM: the caller applies SASLprep first (saslprep.h), as PostgreSQL does.
 */
enum scram_result scram_verifier_from_password(const char *password,
					       const uint8_t *salt, size_t salt_len,
					       int iterations,
					       struct scram_verifier *out);

/*
 * A made-up verifier for a user walgate does not know, so that the
 * exchange looks the same as for a real one: its salt is derived from the
 * user name and secret (the same salt every time, as with PostgreSQL's
 * scram_mock_salt()), its iteration count is the caller's (that of the
 * real entries), and the exchange always ends in SCRAM_ERR_PROOF.
 */
enum scram_result scram_mock_verifier(const char *username,
				      const uint8_t *secret, size_t secret_len,
				      int iterations, struct scram_verifier *out);

/*
 * SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations): the one
 * costly step of a login, which a caller may run on another thread.
 * password as it goes into SCRAM (after SASLprep); iterations
 * 1..SCRAM_MAX_ITERATIONS.
 */
bool scram_salted_password(const char *password, const uint8_t *salt, size_t salt_len,
			   int iterations, uint8_t out[SCRAM_KEY_LEN]);

/* Fresh randomness from RAND_bytes: a printable nonce, a raw salt. */
enum scram_result scram_make_nonce(char out[SCRAM_NONCE_LEN + 1]);
enum scram_result scram_make_salt(uint8_t out[SCRAM_SALT_LEN]);

/*
 * Server side: walgate verifying a client.
 *
 *   scram_server_init()   verifier, mechanism chosen, walgate's cbind data
 *   scram_server_first()  client-first-message  -> server-first-message
 *   scram_server_final()  client-final-message  -> server-final-message
 *
 * On SCRAM_OK from scram_server_final() the client knew the password and
 * scram_server_client_key() gives its ClientKey. Any failure is final.
 */
enum scram_server_state {
	SCRAM_SERVER_START,
	SCRAM_SERVER_WAIT_FINAL,
	SCRAM_SERVER_DONE,
	SCRAM_SERVER_FAILED,
};

struct scram_server {
	enum scram_server_state state;
	struct scram_verifier verifier;
	bool plus;			/* the client chose SCRAM-SHA-256-PLUS */
	char cbind_flag;		/* 'n', 'y' or 'p' once the first message is read */
	size_t cbind_len;
	uint8_t cbind[SCRAM_CBIND_MAX];
	size_t nonce_off, nonce_len;	/* the whole nonce, inside auth */
	size_t auth_len;
	char auth[SCRAM_AUTH_MAX];	/* AuthMessage, built as the exchange goes */
	uint8_t client_key[SCRAM_KEY_LEN];
};

/*
 * plus: the mechanism in the client's SASLInitialResponse was
 * SCRAM-SHA-256-PLUS. cbind[0..cbind_len): tls_server_end_point() of
 * walgate's own certificate, or NULL/0 without TLS (PLUS is then refused).
 */
enum scram_result scram_server_init(struct scram_server *s,
				    const struct scram_verifier *v, bool plus,
				    const uint8_t *cbind, size_t cbind_len);

/* server_nonce: printable, 1..SCRAM_NONCE_MAX chars, NUL-terminated. */
enum scram_result scram_server_first(struct scram_server *s,
				     const char *msg, size_t len,
				     const char *server_nonce,
				     char *out, size_t cap, size_t *outlen);

enum scram_result scram_server_final(struct scram_server *s,
				     const char *msg, size_t len,
				     char *out, size_t cap, size_t *outlen);

/*
 * The client's gs2 flag, 0 before the first message. 'y' means "I could
 * bind but you did not offer PLUS": PostgreSQL refuses it when it did.
 */
char scram_server_cbind_flag(const struct scram_server *s);

/* The client's ClientKey after a successful exchange, otherwise NULL. */
const uint8_t *scram_server_client_key(const struct scram_server *s);

/* Wipe the keys from memory. */
void scram_server_clear(struct scram_server *s);

/*
 * Client side: walgate logging in upstream.
 *
 *   scram_client_init() / scram_client_init_key()
 *   scram_client_first()   -> client-first-message (SASLInitialResponse)
 *   scram_client_final()   server-first-message -> client-final-message
 *   scram_client_verify()  server-final-message
 *
 * scram_client_final() is three steps a caller may take one by one, so as
 * to compute the salted password elsewhere (the server picks the cost):
 *   scram_client_take_first()   reads server-first-message
 *   scram_client_set_salted()   when scram_client_needs_salted()
 *   scram_client_final_message()
 */
enum scram_client_state {
	SCRAM_CLIENT_START,
	SCRAM_CLIENT_WAIT_FIRST,
	SCRAM_CLIENT_WAIT_SALTED,	/* password login: SaltedPassword wanted */
	SCRAM_CLIENT_READY_FINAL,	/* keys known: client-final-message next */
	SCRAM_CLIENT_WAIT_FINAL,
	SCRAM_CLIENT_DONE,
	SCRAM_CLIENT_FAILED,
};

struct scram_client {
	enum scram_client_state state;
	const char *user;		/* for "n="; PostgreSQL sends it empty */
	const char *password;		/* password login */
	bool key_login;			/* ClientKey login */
	bool have_verifier;		/* key login: salt/iterations known */
	bool have_server_key;
	int iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_SALT_MAX];
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	uint8_t server_signature[SCRAM_KEY_LEN];
	char cbind_flag;
	size_t cbind_len;
	uint8_t cbind[SCRAM_CBIND_MAX];
	size_t nonce_off, nonce_len;	/* our nonce, inside auth */
	size_t full_nonce_off, full_nonce_len;	/* the server's whole nonce, inside auth */
	size_t auth_len;
	char auth[SCRAM_AUTH_MAX];
	char error[SCRAM_ERROR_MAX];	/* the server's "e=", printable */
};

/*
 * Log in with a password (after SASLprep, see saslprep.h). user and
 * password are kept by reference and must outlive the exchange; user may
 * be NULL (sent as "n="). password may be NULL when the caller computes
 * the salted password itself (scram_client_set_salted()).
 */
void scram_client_init(struct scram_client *c, const char *user,
		       const char *password);

/*
 * Log in with a ClientKey recovered from a client. v, when not NULL, is the
 * verifier the key belongs to: its salt and iterations must be what the
 * server sends (else SCRAM_ERR_KEY_MISMATCH, before any proof is sent),
 * and its ServerKey lets scram_client_verify() check the server. Without
 * it scram_client_verify() can only answer SCRAM_UNVERIFIED.
 */
void scram_client_init_key(struct scram_client *c, const char *user,
			   const uint8_t client_key[SCRAM_KEY_LEN],
			   const struct scram_verifier *v);

/*
 * cbind_flag 'n' (no TLS), 'y' (TLS, but the server offered no PLUS) or
 * 'p' (SCRAM-SHA-256-PLUS, with cbind = tls_server_end_point() of the
 * server's certificate); cbind must be NULL/0 unless 'p'. nonce: printable,
 * 1..SCRAM_NONCE_MAX chars, NUL-terminated.
 */
enum scram_result scram_client_first(struct scram_client *c, char cbind_flag,
				     const uint8_t *cbind, size_t cbind_len,
				     const char *nonce,
				     char *out, size_t cap, size_t *outlen);

enum scram_result scram_client_final(struct scram_client *c,
				     const char *msg, size_t len,
				     char *out, size_t cap, size_t *outlen);

/* server-first-message: nonce, salt and iteration count checked and kept. */
enum scram_result scram_client_take_first(struct scram_client *c,
					  const char *msg, size_t len);

/*
 * After scram_client_take_first() of a password login: the salted password
 * of (password, c->salt[0..c->salt_len), c->iterations) is wanted.
 */
bool scram_client_needs_salted(const struct scram_client *c);
enum scram_result scram_client_set_salted(struct scram_client *c,
					  const uint8_t salted[SCRAM_KEY_LEN]);

/* The client-final-message, once the keys are known. */
enum scram_result scram_client_final_message(struct scram_client *c,
					     char *out, size_t cap, size_t *outlen);

/* SCRAM_OK, SCRAM_UNVERIFIED (no ServerKey) or an error. */
enum scram_result scram_client_verify(struct scram_client *c,
				      const char *msg, size_t len);

/* The server's "e=" value after SCRAM_ERR_SERVER_ERROR, else "". */
const char *scram_client_error(const struct scram_client *c);

void scram_client_clear(struct scram_client *c);

/*
 * Strict base64 (RFC 4648, with padding): decoding refuses characters
 * outside the alphabet, missing or misplaced '=', and non-zero bits in a
 * padded final group, so each byte string has exactly one encoding.
 */
size_t scram_b64_encoded_len(size_t n);
bool scram_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap,
		      size_t *outlen);
bool scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap,
		      size_t *outlen);

#endif
