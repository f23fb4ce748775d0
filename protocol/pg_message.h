/*
 * pg_message.h - building the few messages walgate originates itself
 * (ErrorResponse, the one-byte SSL/GSS refusal) and reading the fields of
 * an ErrorResponse or NoticeResponse, or a BackendKeyData, the upstream sent.
 *
 * Pure: builders write into a caller's buffer and never allocate.
 */
#ifndef WALGATE_PG_MESSAGE_H
#define WALGATE_PG_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

/* SQLSTATEs walgate sends (PostgreSQL errcodes.txt). */
#define PG_SQLSTATE_CONNECTION_FAILURE		"08006"
#define PG_SQLSTATE_PROTOCOL_VIOLATION		"08P01"
#define PG_SQLSTATE_FEATURE_NOT_SUPPORTED	"0A000"
#define PG_SQLSTATE_INVALID_AUTHORIZATION	"28000"
#define PG_SQLSTATE_INVALID_PASSWORD		"28P01"
#define PG_SQLSTATE_TOO_MANY_CONNECTIONS	"53300"
#define PG_SQLSTATE_QUERY_CANCELED		"57014"
#define PG_SQLSTATE_ADMIN_SHUTDOWN		"57P01"
#define PG_SQLSTATE_CANNOT_CONNECT_NOW		"57P03"

struct pg_error_fields {
	const char *severity;	/* "FATAL", "ERROR" ... (S and V fields) */
	const char *sqlstate;	/* five characters (C) */
	const char *message;	/* (M) */
	const char *detail;	/* (D), may be NULL */
	const char *hint;	/* (H), may be NULL */
};

/*
 * Write an ErrorResponse ('E') into buf[0..cap). Returns its length, or 0
 * when it does not fit (the caller's buffer is then untouched beyond cap).
 * Strings are cut at 1000 bytes each so that a message stays small.
 */
size_t pg_build_error(uint8_t *buf, size_t cap, const struct pg_error_fields *f);

/*
 * Read the fields of an ErrorResponse/NoticeResponse payload (after the
 * type and length). The strings point into payload; returns 0 on success,
 * -1 when the payload is not a well-formed field list.
 */
int pg_parse_error(const uint8_t *payload, size_t len, struct pg_error_fields *out);

/*
 * Read a BackendKeyData payload (after the type and length): the backend's
 * pid, then its cancel key, 4 bytes in protocol 3.0 and up to
 * PG_CANCEL_KEY_MAX in 3.2. *key points into payload. Returns 0, or -1
 * when the key is empty or longer than that.
 */
int pg_parse_backend_key(const uint8_t *payload, size_t len, uint32_t *pid,
			 const uint8_t **key, size_t *key_len);

#endif
