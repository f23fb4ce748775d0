/*
 * pg_startup.h - the startup phase of a PostgreSQL connection: the first
 * untyped packet a client sends (SSLRequest, GSSENCRequest, CancelRequest
 * or StartupMessage), its length check and its parameters.
 *
 * Pure: the caller hands in bytes it has buffered; nothing is copied, the
 * parsed strings point into the caller's packet.
 */
#ifndef WALGATE_PG_STARTUP_H
#define WALGATE_PG_STARTUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pg_startup_verdict {
	PG_STARTUP_OK = 0,
	PG_STARTUP_NEED_MORE,		/* not a whole packet yet */
	PG_STARTUP_BAD_LENGTH,		/* length field < 8 or > PG_STARTUP_MAX_LEN */
	PG_STARTUP_BAD_PROTOCOL,	/* a version walgate cannot relay (not 3.x) */
	PG_STARTUP_MALFORMED,		/* wrong size for its kind, strings not terminated ... */
	PG_STARTUP_NO_USER,		/* a StartupMessage without "user" */
};

enum pg_startup_kind {
	PG_STARTUP_SSL_REQUEST,
	PG_STARTUP_GSSENC_REQUEST,
	PG_STARTUP_CANCEL_REQUEST,
	PG_STARTUP_MESSAGE,
};

enum pg_replication_mode {
	PG_REPLICATION_NONE = 0,	/* absent, or false/off/no/0 */
	PG_REPLICATION_PHYSICAL,	/* true/on/yes/1 */
	PG_REPLICATION_LOGICAL,		/* database */
	PG_REPLICATION_INVALID,		/* any other value: the server will refuse it */
};

struct pg_startup {
	enum pg_startup_kind kind;
	uint32_t length;		/* whole packet, length field included */
	uint32_t code;			/* protocol version or request code */

	/* PG_STARTUP_CANCEL_REQUEST: the key points into the packet */
	uint32_t cancel_pid;
	const uint8_t *cancel_key;
	uint32_t cancel_key_len;	/* 4 in protocol 3.0, up to PG_CANCEL_KEY_MAX in 3.2 */

	/* PG_STARTUP_MESSAGE: NUL-terminated, pointing into the packet, NULL when absent */
	const char *user;
	const char *database;		/* the server defaults it to user */
	const char *application_name;
	const char *options;
	const char *replication;
	enum pg_replication_mode replication_mode;
	unsigned nparams;
};

/*
 * How long the packet at the start of buf is. Needs 4 bytes; returns
 * PG_STARTUP_NEED_MORE with fewer, PG_STARTUP_BAD_LENGTH for a length that
 * no valid packet has, otherwise PG_STARTUP_OK with *pktlen set.
 */
enum pg_startup_verdict pg_startup_length(const uint8_t *buf, size_t len,
					  uint32_t *pktlen);

/*
 * Parse the whole packet pkt[0..len) (len is the value pg_startup_length
 * gave). On PG_STARTUP_OK, *out describes it; its strings point into pkt.
 */
enum pg_startup_verdict pg_startup_parse(const uint8_t *pkt, size_t len,
					 struct pg_startup *out);

/* Short human-readable reason for a verdict, for logs and ErrorResponses. */
const char *pg_startup_verdict_str(enum pg_startup_verdict v);

/* Classify the value of the "replication" parameter (NULL means absent). */
enum pg_replication_mode pg_replication_mode_parse(const char *value);
const char *pg_replication_mode_str(enum pg_replication_mode m);

/*
 * True when buf starts like a TLS handshake record (0x16 0x03 ...), as a
 * PostgreSQL 17 client with sslnegotiation=direct sends. Needs 2 bytes;
 * with fewer it returns false (no startup packet of a valid length starts
 * with 0x16 either, so the caller can simply wait for the length word).
 */
bool pg_startup_is_tls_hello(const uint8_t *buf, size_t len);

#endif
