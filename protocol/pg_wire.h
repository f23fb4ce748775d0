/*
 * pg_wire.h - constants of the PostgreSQL frontend/backend protocol and
 * the big-endian accessors every decoder in protocol/ uses.
 *
 * Pure: no I/O, no allocation.
 */
#ifndef WALGATE_PG_WIRE_H
#define WALGATE_PG_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Startup-phase request codes, sent where a StartupMessage has its version. */
#define PG_PROTOCOL_3_0         196608u		/* 3 << 16 */
#define PG_CANCEL_REQUEST_CODE  80877102u	/* 1234 << 16 | 5678 */
#define PG_SSL_REQUEST_CODE     80877103u	/* 1234 << 16 | 5679 */
#define PG_GSSENC_REQUEST_CODE  80877104u	/* 1234 << 16 | 5680 */

#define PG_PROTOCOL_MAJOR(v)    ((v) >> 16)
#define PG_PROTOCOL_MINOR(v)    ((v) & 0xffffu)

/*
 * The longest cancel key protocol 3.2 allows (PostgreSQL 18 hands out 32
 * bytes; the protocol reserves room for 256). Protocol 3.0 keys are 4.
 */
#define PG_CANCEL_KEY_MAX       256u

/* PostgreSQL's own limit for the startup packet (MAX_STARTUP_PACKET_LENGTH). */
#define PG_STARTUP_MAX_LEN      10000u
/* A typed message: 1 type byte, then an Int32 length that counts itself. */
#define PG_MSG_HEADER_LEN       5u
/* MaxAllocSize - 1: the largest message the server accepts from a client. */
#define PG_MSG_MAX_LEN          0x3fffffffu

/* Message types used by walgate itself (PostgreSQL docs, protocol-message-formats). */
enum {
	PG_MSG_AUTHENTICATION = 'R',
	PG_MSG_BACKEND_KEY_DATA = 'K',
	PG_MSG_PARAMETER_STATUS = 'S',
	PG_MSG_READY_FOR_QUERY = 'Z',
	PG_MSG_ERROR_RESPONSE = 'E',
	PG_MSG_NOTICE_RESPONSE = 'N',
	PG_MSG_NEGOTIATE_PROTOCOL = 'v',
	PG_MSG_QUERY = 'Q',
	PG_MSG_SYNC = 'S',		/* from the client (ParameterStatus from the server) */
	PG_MSG_FUNCTION_CALL = 'F',
	PG_MSG_TERMINATE = 'X',
	PG_MSG_COPY_DATA = 'd',
	PG_MSG_COPY_DONE = 'c',
	PG_MSG_COPY_FAIL = 'f',
	PG_MSG_COPY_IN_RESPONSE = 'G',
	PG_MSG_COPY_OUT_RESPONSE = 'H',
	PG_MSG_COPY_BOTH_RESPONSE = 'W',
	PG_MSG_COMMAND_COMPLETE = 'C',
};

static inline uint16_t pg_get_u16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t pg_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t pg_get_u64(const uint8_t *p)
{
	return (uint64_t)pg_get_u32(p) << 32 | pg_get_u32(p + 4);
}

/* TimestampTz and the like: two's complement, as the server writes them. */
static inline int64_t pg_get_i64(const uint8_t *p)
{
	return (int64_t)pg_get_u64(p);
}

static inline void pg_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
