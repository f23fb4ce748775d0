/*
 * synth_common.h - what the benchmark's synthetic walsender and its sink
 * share: big-endian writers, PostgreSQL timestamps, building backend and
 * frontend messages into an evbuffer, TLS contexts and socket set-up.
 *
 * Bench tools only: nothing in walgate links this.
 */
#ifndef WALGATE_BENCH_SYNTH_COMMON_H
#define WALGATE_BENCH_SYNTH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "protocol/pg_wire.h"

struct evbuffer;
struct bufferevent;

/* Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch). */
#define SYNTH_PG_EPOCH_US 946684800000000LL

/* TLS 1.3 suite and TLS 1.2 list used unless told otherwise: AES-256-GCM,
 * what libpq and PostgreSQL negotiate by default (run_bench.py measures the
 * negotiated cipher with `openssl speed -evp`). */
#define SYNTH_DEFAULT_SUITES  "TLS_AES_256_GCM_SHA384"
#define SYNTH_DEFAULT_CIPHERS "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"

/* Bytes libevent may move per read or write call (its default is 16 kB). */
#define SYNTH_IO_CHUNK (256u * 1024u)

static inline void synth_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void synth_put_u64(uint8_t *p, uint64_t v)
{
	pg_put_u32(p, (uint32_t)(v >> 32));
	pg_put_u32(p + 4, (uint32_t)v);
}

/* Now, in microseconds since 2000-01-01 (TimestampTz). */
int64_t synth_pg_now(void);
/* Monotonic seconds. */
double synth_mono(void);

/*
 * A typed message under construction: synth_msg_start appends the type and
 * a length placeholder, the synth_msg_* writers append fields, and
 * synth_msg_end patches the length. Only for short startup-phase messages
 * (at most SYNTH_MSG_MAX bytes).
 */
#define SYNTH_MSG_MAX 4096
struct synth_msg {
	uint8_t buf[SYNTH_MSG_MAX];
	size_t len;
	bool overflow;
};

void synth_msg_start(struct synth_msg *m, char type);
void synth_msg_byte(struct synth_msg *m, uint8_t v);
void synth_msg_u16(struct synth_msg *m, uint16_t v);
void synth_msg_u32(struct synth_msg *m, uint32_t v);
void synth_msg_u64(struct synth_msg *m, uint64_t v);
void synth_msg_str(struct synth_msg *m, const char *s);	/* with its NUL */
void synth_msg_bytes(struct synth_msg *m, const void *p, size_t n);
/* Patch the length and append the message to out; -1 if it overflowed. */
int synth_msg_end(struct synth_msg *m, struct evbuffer *out);

/* Append a message with an optional string body; ReadyForQuery (idle);
 * an ErrorResponse with SQLSTATE code and message. */
void synth_send(struct evbuffer *out, char type, const char *text);
void synth_send_ready(struct evbuffer *out);
void synth_send_error(struct evbuffer *out, const char *code, const char *text);

/* A TLS context: server (cert and key required) or client (no verification). */
SSL_CTX *synth_tls_ctx(bool server, const char *cert, const char *key, const char *suites);

/* Parse "HOST:PORT" (IPv4 or [IPv6]) into ss; 0 or -1. */
int synth_parse_addr(const char *s, struct sockaddr_storage *ss, int *sslen);
/* Parse a size: a number with an optional k, M or G suffix (1024-based). */
int synth_parse_size(const char *s, uint64_t *out);

/* Let a bufferevent move up to SYNTH_IO_CHUNK per call; TCP_NODELAY on fd. */
void synth_tune(struct bufferevent *bev, int fd);

/* Print an OpenSSL error queue with a prefix, to stderr. */
void synth_ssl_errors(const char *what);

#endif
