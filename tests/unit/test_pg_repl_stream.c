/*
 * test_pg_repl_stream.c - replication CopyData and pgoutput decoding on
 * bytes captured from PostgreSQL 15.20 (pgoutput v1 to v3, streamed and
 * two-phase transactions, pg_recvlogical's and pg_receivewal's status
 * updates; only 'h' and the v4 Stream Abort are built by hand, the 15.20
 * capture having neither), as the scanner hands them over: a prefix of at most
 * PG_SCAN_PREFIX_MAX bytes and the real length. Every cut of every vector
 * must be TOO_SHORT, never a crash or a read past the bytes given (each
 * buffer is a heap block of exactly that size, for the sanitizers).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/pg_repl_stream.h"
#include "protocol/pg_scan.h"

/* 25 bytes of text: "x" * 25 */
#define X25 "78787878787878787878787878787878787878787878787878"

/* The 25-byte header of one captured XLogData, put before each pgoutput message. */
#define W_HDR "770000000001581b300000000001581b3000030405b04cb4bf"

struct vector {
	const char *name;
	bool from_server;
	const char *hex;	/* the whole CopyData payload */
	int proto_version;	/* pgoutput in a 'w': how to decode it */
	bool in_stream;
	size_t hdr;		/* the pgoutput header that must be in view */
};

static const struct vector vectors[] = {
	/* keepalives, the second asking for a reply (wal_sender_timeout = 2s) */
	{"k", true, "6b0000000001581a1000030405b3d1d3e400", 0, false, 0},
	{"k reply", true, "6b000000000167bfd800030405b3e11b4d01", 0, false, 0},
	/* pg_recvlogical: all zero but the time; pg_receivewal: write and flush */
	{"r recvlogical", false,
	 "7200000000000000000000000000000000000000000000000000030405b24c54c400", 0, false, 0},
	{"r receivewal", false,
	 "72000000000167bfa00000000001000000000000000000000000030405b2c7bab300", 0, false, 0},
	{"h", false, "6800030405b2c7bab3000002eb00000000000002e400000000", 0, false, 0},

	/* pgoutput v1: INSERT (1,'a'); UPDATE; DELETE; TRUNCATE, in four transactions */
	{"w B", true, W_HDR "420000000001587cc000030405b044cc68000002e0", 1, false, 21},
	{"w R", true, W_HDR "52000040057075626c69630074006400020169640000000017ffffffff00"
	 "760000000019ffffffff", 1, false, 1},
	{"w I", true, W_HDR "49000040054e0002740000000131740000000161", 1, false, 1},
	{"w U", true, W_HDR "55000040054e0002740000000131740000000162", 1, false, 1},
	{"w D", true, W_HDR "44000040054b00027400000001316e", 1, false, 1},
	{"w T", true, W_HDR "54000000010000004005", 1, false, 6},
	{"w C", true, W_HDR "43000000000001587cc00000000001587e3000030405b044cc68", 1, false, 26},
	/* v2 with messages 'true': pg_logical_emit_message(true, 'pfx', 'hello') */
	{"w M", true, W_HDR "4d010000000001587cc0706678000000000568656c6c6f", 2, false, 10},
	/* v2, streaming 'on': a transaction too big for logical_decoding_work_mem */
	{"w S", true, W_HDR "53000002e101", 2, false, 6},
	{"w R streamed", true, W_HDR "52000002e1000040057075626c69630074006400020169640000000017"
	 "ffffffff00760000000019ffffffff", 2, true, 5},
	/* INSERT INTO t SELECT g, repeat('x', 100) ...: (10, 'xxx...') */
	{"w I streamed", true, W_HDR "49000002e1000040054e0002740000000231307400000064"
	 X25 X25 X25 X25, 2, true, 5},
	{"w E", true, W_HDR "45", 2, true, 1},
	{"w c", true, W_HDR "63000002e10000000000015f610000000000015f613000030405b045e133", 2, false, 30},
	{"w A", true, W_HDR "41000002e6000002e6", 3, false, 9},
	/* v3, two_phase 'on': PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED */
	{"w b", true, W_HDR "6200000000015f61b000000000015f62a800030405b046a578000002e26769643100",
	 3, false, 29},
	{"w P", true, W_HDR "500000000000015f61b000000000015f62a800030405b046a578000002e26769643100",
	 3, false, 30},
	{"w K", true, W_HDR "4b0000000000015f62a800000000015f62e000030405b046b370000002e26769643100",
	 3, false, 30},
	{"w r", true, W_HDR "720000000000015f645800000000015f649000030405b047fc5500030405b0480024"
	 "000002e36769643200", 3, false, 38},
	{"w p", true, W_HDR "7000000000000167bb10000000000167bc0800030405b176daed000002e76769643300",
	 3, false, 30},
	/* an enum column's type; a transaction replayed under replication origin o1 */
	{"w Y", true, W_HDR "59000040137075626c6963006d6f6f6400", 3, false, 1},
	{"w O", true, W_HDR "4f0000000000abcdef6f3100", 3, false, 9},
	/* v4, streaming 'parallel': Stream Abort with its abort LSN and time */
	{"w A v4", true, W_HDR "41000002e6000002e600000000016446b800030405b17d2957", 4, false, 25},
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2, i;
	unsigned v;

	assert_true(strlen(hex) % 2 == 0 && n <= cap);
	for (i = 0; i < n; i++) {
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* The vector's first n bytes, in a heap block of exactly n bytes. */
static uint8_t *vector_bytes(const struct vector *vec, size_t *len, size_t n)
{
	uint8_t tmp[512];
	uint8_t *buf;

	*len = unhex(vec->hex, tmp, sizeof(tmp));
	if (n > *len)
		n = *len;
	buf = malloc(n > 0 ? n : 1);
	assert_non_null(buf);
	memcpy(buf, tmp, n);
	return buf;
}

/* Decode the pgoutput message in a 'w' given as the scanner would. */
static enum pg_repl_verdict decode_w(const uint8_t *p, size_t have, size_t len,
				     const struct vector *vec, struct pgoutput_msg *m)
{
	struct pg_repl_xlogdata x;
	enum pg_repl_verdict v = pg_repl_xlogdata_decode(p, have, len, &x);

	if (v != PG_REPL_OK)
		return v;
	return pgoutput_decode(x.data, x.data_have, x.data_len, vec->proto_version,
			       vec->in_stream, m);
}

/* A vector, decoded whole, through the dispatcher and pgoutput. */
static enum pg_repl_verdict decode_vector(const struct vector *vec, size_t have, size_t len,
					  const uint8_t *p, struct pgoutput_msg *m)
{
	struct pg_repl_copydata cd;
	enum pg_repl_verdict v = pg_repl_copydata_decode(p, have, len, vec->from_server, &cd);

	if (v != PG_REPL_OK || cd.kind != PG_REPL_COPY_XLOGDATA)
		return v;
	return decode_w(p, have, len, vec, m);
}

static void test_all_vectors_whole(void **state)
{
	struct pgoutput_msg m;
	size_t i, len;
	uint8_t *p;

	(void)state;
	for (i = 0; i < NVECTORS; i++) {
		p = vector_bytes(&vectors[i], &len, SIZE_MAX);
		if (decode_vector(&vectors[i], len, len, p, &m) != PG_REPL_OK)
			fail_msg("%s", vectors[i].name);
		free(p);
	}
}

/* As the scanner hands them over: at most PG_SCAN_PREFIX_MAX bytes. */
static void test_all_vectors_prefix(void **state)
{
	struct pgoutput_msg m;
	size_t i, len, have;
	uint8_t *p;

	(void)state;
	for (i = 0; i < NVECTORS; i++) {
		p = vector_bytes(&vectors[i], &len, PG_SCAN_PREFIX_MAX);
		have = len < PG_SCAN_PREFIX_MAX ? len : PG_SCAN_PREFIX_MAX;
		if (decode_vector(&vectors[i], have, len, p, &m) != PG_REPL_OK)
			fail_msg("%s", vectors[i].name);
		free(p);
	}
}

/*
 * Every cut: a payload of n bytes is TOO_SHORT; the full length with only
 * n bytes of prefix is TOO_SHORT until the fixed part is in view, OK after.
 */
static bool is_change(enum pgoutput_kind k)
{
	return k == PGOUTPUT_INSERT || k == PGOUTPUT_UPDATE || k == PGOUTPUT_DELETE;
}

static void test_every_cut(void **state)
{
	struct pgoutput_msg m;
	const struct vector *vec;
	size_t i, n, len, fixed;
	enum pg_repl_verdict v;
	uint8_t *p;

	(void)state;
	for (i = 0; i < NVECTORS; i++) {
		vec = &vectors[i];
		p = vector_bytes(vec, &len, SIZE_MAX);
		free(p);
		fixed = vec->hdr > 0 ? PG_REPL_XLOGDATA_HDR_LEN + vec->hdr : len;
		for (n = 0; n < len; n++) {
			p = vector_bytes(vec, &len, n);
			v = decode_vector(vec, n, n, p, &m);
			/* the one cut that is itself a whole message: a short Stream Abort */
			if (strcmp(vec->name, "w A v4") == 0 && n == 25 + 9)
				v = v == PG_REPL_OK ? PG_REPL_TOO_SHORT : PG_REPL_OK;
			/* a change whose relation and marker are in decodes: its tuples are never walked */
			if (v != PG_REPL_TOO_SHORT && !(v == PG_REPL_OK && is_change(m.kind)))
				fail_msg("%s cut at %zu: %s", vec->name, n, pg_repl_verdict_str(v));
			v = decode_vector(vec, n, len, p, &m);
			if (v != (n < fixed ? PG_REPL_TOO_SHORT : PG_REPL_OK))
				fail_msg("%s, %zu of %zu in view: %s", vec->name, n, len,
					 pg_repl_verdict_str(v));
			free(p);
		}
	}
}

static void test_keepalive(void **state)
{
	struct pg_repl_keepalive k;
	uint8_t p[64];
	size_t n;

	(void)state;
	n = unhex(vectors[1].hex, p, sizeof(p));
	assert_int_equal(pg_repl_keepalive_decode(p, n, n, &k), PG_REPL_OK);
	assert_int_equal(k.wal_end, 0x167BFD8);
	assert_int_equal(k.send_time, 0x030405b3e11b4d);
	assert_true(k.reply_requested);
	n = unhex(vectors[0].hex, p, sizeof(p));
	assert_int_equal(pg_repl_keepalive_decode(p, n, n, &k), PG_REPL_OK);
	assert_int_equal(k.wal_end, 0x1581A10);
	assert_false(k.reply_requested);

	/* exactly 18 bytes: one more is not a keepalive */
	p[18] = 0;
	assert_int_equal(pg_repl_keepalive_decode(p, 19, 19, &k), PG_REPL_BAD_LENGTH);
	assert_int_equal(pg_repl_keepalive_decode(p, 18, 1000, &k), PG_REPL_BAD_LENGTH);
	assert_int_equal(pg_repl_keepalive_decode(p, 17, 17, &k), PG_REPL_TOO_SHORT);
	assert_int_equal(pg_repl_keepalive_decode(p, 0, 0, &k), PG_REPL_TOO_SHORT);
	p[0] = 'w';
	assert_int_equal(pg_repl_keepalive_decode(p, 18, 18, &k), PG_REPL_UNKNOWN);
}

static void test_status_update(void **state)
{
	struct pg_repl_status s;
	uint8_t p[64];
	size_t n;

	(void)state;
	n = unhex(vectors[3].hex, p, sizeof(p));
	assert_int_equal(n, PG_REPL_STATUS_LEN);
	assert_int_equal(pg_repl_status_decode(p, n, n, &s), PG_REPL_OK);
	assert_int_equal(s.written, 0x167BFA0);
	assert_int_equal(s.flushed, 0x1000000);
	assert_int_equal(s.applied, 0);
	assert_int_equal(s.client_time, 0x030405b2c7bab3);
	assert_false(s.reply_requested);
	p[33] = 1;
	assert_int_equal(pg_repl_status_decode(p, n, n, &s), PG_REPL_OK);
	assert_true(s.reply_requested);
	assert_int_equal(pg_repl_status_decode(p, n, n + 1, &s), PG_REPL_BAD_LENGTH);
	assert_int_equal(pg_repl_status_decode(p, n - 1, n - 1, &s), PG_REPL_TOO_SHORT);
	assert_int_equal(pg_repl_status_decode(p, n - 1, n, &s), PG_REPL_TOO_SHORT);
}

static void test_feedback(void **state)
{
	struct pg_repl_feedback f;
	uint8_t p[64];
	size_t n;

	(void)state;
	n = unhex(vectors[4].hex, p, sizeof(p));
	assert_int_equal(n, PG_REPL_FEEDBACK_LEN);
	assert_int_equal(pg_repl_feedback_decode(p, n, n, &f), PG_REPL_OK);
	assert_int_equal(f.time, 0x030405b2c7bab3);
	assert_int_equal(f.xmin, 747);
	assert_int_equal(f.xmin_epoch, 0);
	assert_int_equal(f.catalog_xmin, 740);
	assert_int_equal(f.catalog_xmin_epoch, 0);
	assert_int_equal(pg_repl_feedback_decode(p, n, 26, &f), PG_REPL_BAD_LENGTH);
	assert_int_equal(pg_repl_feedback_decode(p, n, 24, &f), PG_REPL_TOO_SHORT);
}

static void test_copydata_dispatch(void **state)
{
	struct pg_repl_copydata cd;
	uint8_t p[64];
	size_t n;

	(void)state;
	n = unhex(vectors[2].hex, p, sizeof(p));
	assert_int_equal(pg_repl_copydata_decode(p, n, n, false, &cd), PG_REPL_OK);
	assert_int_equal(cd.kind, PG_REPL_COPY_STATUS);
	assert_int_equal(cd.type, 'r');
	/* 'r' and 'h' come from the client only, 'w' and 'k' from the server */
	assert_int_equal(pg_repl_copydata_decode(p, n, n, true, &cd), PG_REPL_UNKNOWN);
	assert_int_equal(cd.kind, PG_REPL_COPY_UNKNOWN);
	assert_int_equal(cd.type, 'r');
	n = unhex(vectors[0].hex, p, sizeof(p));
	assert_int_equal(pg_repl_copydata_decode(p, n, n, false, &cd), PG_REPL_UNKNOWN);
	assert_int_equal(pg_repl_copydata_decode(p, n, n, true, &cd), PG_REPL_OK);
	assert_int_equal(cd.kind, PG_REPL_COPY_KEEPALIVE);
	assert_int_equal(cd.u.keepalive.wal_end, 0x1581A10);
	/* keepalive-sized but another type: a newer server's 's', say */
	p[0] = 's';
	assert_int_equal(pg_repl_copydata_decode(p, n, n, true, &cd), PG_REPL_UNKNOWN);
	assert_int_equal(cd.type, 's');
	/* a kind known, its length wrong */
	p[0] = 'k';
	assert_int_equal(pg_repl_copydata_decode(p, n, n + 5, true, &cd), PG_REPL_BAD_LENGTH);
	assert_int_equal(cd.kind, PG_REPL_COPY_KEEPALIVE);
	assert_int_equal(pg_repl_copydata_decode(p, 0, 0, true, &cd), PG_REPL_TOO_SHORT);
	assert_int_equal(cd.type, 0);
}

static void test_xlogdata(void **state)
{
	struct pg_repl_xlogdata x;
	struct pgoutput_msg m;
	uint8_t p[256];
	size_t n;

	(void)state;
	n = unhex(vectors[15].hex, p, sizeof(p));	/* streamed Insert, 149 bytes */
	assert_string_equal(vectors[15].name, "w I streamed");
	assert_int_equal(pg_repl_xlogdata_decode(p, PG_SCAN_PREFIX_MAX, n, &x), PG_REPL_OK);
	assert_int_equal(x.data_start, 0x1581B30);
	assert_int_equal(x.wal_end, 0x1581B30);
	assert_int_equal(x.send_time, 0x030405b04cb4bf);
	assert_ptr_equal(x.data, p + 25);
	assert_int_equal(x.data_have, PG_SCAN_PREFIX_MAX - 25);
	assert_int_equal(x.data_len, n - 25);
	assert_int_equal(pgoutput_decode(x.data, x.data_have, x.data_len, 2, true, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_INSERT);
	assert_true(m.has_xid);
	assert_int_equal(m.xid, 0x2e1);

	/* a prefix longer than the payload is cut to it */
	assert_int_equal(pg_repl_xlogdata_decode(p, n, 30, &x), PG_REPL_OK);
	assert_int_equal(x.data_have, 5);
	assert_int_equal(x.data_len, 5);
	/* an empty 'w' is legal */
	assert_int_equal(pg_repl_xlogdata_decode(p, 25, 25, &x), PG_REPL_OK);
	assert_int_equal(x.data_len, 0);
	assert_int_equal(pgoutput_decode(x.data, 0, 0, 1, false, &m), PG_REPL_TOO_SHORT);
	p[0] = 'k';
	assert_int_equal(pg_repl_xlogdata_decode(p, 25, 25, &x), PG_REPL_UNKNOWN);
}

/* The pgoutput part of a vector, as a heap block of exactly its size. */
static uint8_t *pgoutput_of(const char *name, size_t *len)
{
	const struct vector *vec = NULL;
	size_t i, total;
	uint8_t *whole, *p;

	for (i = 0; i < NVECTORS; i++) {
		if (strcmp(vectors[i].name, name) == 0)
			vec = &vectors[i];
	}
	assert_non_null(vec);
	whole = vector_bytes(vec, &total, SIZE_MAX);
	*len = total - 25;
	p = malloc(*len);
	assert_non_null(p);
	memcpy(p, whole + 25, *len);
	free(whole);
	return p;
}

static enum pg_repl_verdict decode_named(const char *name, int version, bool in_stream,
					 struct pgoutput_msg *m)
{
	size_t len;
	uint8_t *p = pgoutput_of(name, &len);
	enum pg_repl_verdict v = pgoutput_decode(p, len, len, version, in_stream, m);

	free(p);
	return v;
}

static void test_pgoutput_fields(void **state)
{
	struct pgoutput_msg m;

	(void)state;
	assert_int_equal(decode_named("w B", 1, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_BEGIN);
	assert_int_equal(m.lsn, 0x1587CC0);
	assert_int_equal(m.time, 0x030405b044cc68);
	assert_true(m.has_xid);
	assert_int_equal(m.xid, 736);

	assert_int_equal(decode_named("w C", 1, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_COMMIT);
	assert_int_equal(m.flags, 0);
	assert_int_equal(m.lsn, 0x1587CC0);
	assert_int_equal(m.end_lsn, 0x1587E30);
	assert_int_equal(m.time, 0x030405b044cc68);
	assert_false(m.has_xid);

	assert_int_equal(decode_named("w T", 1, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_TRUNCATE);
	assert_int_equal(m.nrels, 1);
	assert_int_equal(m.flags, 0);

	assert_int_equal(decode_named("w I", 1, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_INSERT);
	assert_false(m.has_xid);
	assert_int_equal(decode_named("w U", 1, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_UPDATE);
	assert_int_equal(decode_named("w D", 1, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_DELETE);
	assert_int_equal(decode_named("w R", 1, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_RELATION);
	assert_int_equal(decode_named("w Y", 3, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_TYPE);

	assert_int_equal(decode_named("w O", 3, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_ORIGIN);
	assert_int_equal(m.lsn, 0xABCDEF);

	assert_int_equal(decode_named("w M", 2, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_MESSAGE);
	assert_int_equal(m.flags, 1);
	assert_int_equal(m.lsn, 0x1587CC0);

	assert_int_equal(decode_named("w S", 2, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_STREAM_START);
	assert_int_equal(m.xid, 0x2e1);
	assert_true(m.first_segment);

	assert_int_equal(decode_named("w c", 2, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_STREAM_COMMIT);
	assert_int_equal(m.xid, 0x2e1);
	assert_int_equal(m.flags, 0);
	assert_int_equal(m.lsn, 0x15F6100);
	assert_int_equal(m.end_lsn, 0x15F6130);
	assert_int_equal(m.time, 0x030405b045e133);

	assert_int_equal(decode_named("w A", 3, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_STREAM_ABORT);
	assert_int_equal(m.xid, 0x2e6);
	assert_int_equal(m.subxid, 0x2e6);
	assert_int_equal(m.lsn, 0);
	assert_int_equal(decode_named("w A", 4, false, &m), PG_REPL_OK);
	assert_int_equal(decode_named("w A v4", 4, false, &m), PG_REPL_OK);
	assert_int_equal(m.lsn, 0x16446B8);
	assert_int_equal(m.time, 0x030405b17d2957);
	assert_int_equal(decode_named("w A v4", 3, false, &m), PG_REPL_BAD_LENGTH);

	assert_int_equal(decode_named("w b", 3, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_BEGIN_PREPARE);
	assert_int_equal(m.lsn, 0x15F61B0);
	assert_int_equal(m.end_lsn, 0x15F62A8);
	assert_int_equal(m.time, 0x030405b046a578);
	assert_int_equal(m.xid, 0x2e2);

	assert_int_equal(decode_named("w P", 3, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_PREPARE);
	assert_int_equal(m.lsn, 0x15F61B0);
	assert_int_equal(m.end_lsn, 0x15F62A8);
	assert_int_equal(m.xid, 0x2e2);

	assert_int_equal(decode_named("w K", 3, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_COMMIT_PREPARED);
	assert_int_equal(m.lsn, 0x15F62A8);
	assert_int_equal(m.end_lsn, 0x15F62E0);
	assert_int_equal(m.time, 0x030405b046b370);
	assert_int_equal(m.xid, 0x2e2);

	assert_int_equal(decode_named("w r", 3, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_ROLLBACK_PREPARED);
	assert_int_equal(m.lsn, 0x15F6458);
	assert_int_equal(m.end_lsn, 0x15F6490);
	assert_int_equal(m.prepare_time, 0x030405b047fc55);
	assert_int_equal(m.time, 0x030405b0480024);
	assert_int_equal(m.xid, 0x2e3);

	assert_int_equal(decode_named("w p", 3, false, &m), PG_REPL_OK);
	assert_int_equal(m.kind, PGOUTPUT_STREAM_PREPARE);
	assert_int_equal(m.lsn, 0x167BB10);
	assert_int_equal(m.end_lsn, 0x167BC08);
	assert_int_equal(m.xid, 0x2e7);
}

/* The order of a captured streamed transaction, through the caller's state. */
static void test_streamed_transaction(void **state)
{
	static const char *const seq[] = {
		"w S", "w R streamed", "w I streamed", "w I streamed", "w E", "w c", "w B", "w I",
	};
	static const enum pgoutput_kind kinds[] = {
		PGOUTPUT_STREAM_START, PGOUTPUT_RELATION, PGOUTPUT_INSERT, PGOUTPUT_INSERT,
		PGOUTPUT_STREAM_STOP, PGOUTPUT_STREAM_COMMIT, PGOUTPUT_BEGIN, PGOUTPUT_INSERT,
	};
	struct pgoutput_state st;
	struct pgoutput_msg m;
	size_t i, len;
	uint8_t *p;

	(void)state;
	pgoutput_state_init(&st, 2);
	assert_false(st.in_stream);
	for (i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		p = pgoutput_of(seq[i], &len);
		assert_int_equal(pgoutput_decode(p, len, len, st.proto_version, st.in_stream, &m),
				 PG_REPL_OK);
		free(p);
		assert_int_equal(m.kind, kinds[i]);
		/* every change inside the stream names its transaction */
		if (kinds[i] == PGOUTPUT_RELATION || (kinds[i] == PGOUTPUT_INSERT && st.in_stream)) {
			assert_true(m.has_xid);
			assert_int_equal(m.xid, 0x2e1);
		}
		if (i == 7)
			assert_false(m.has_xid);
		pgoutput_state_update(&st, &m);
		assert_int_equal(st.in_stream, i < 4);
	}
}

/* Read with the wrong idea of the stream, a change is caught by its layout. */
static void test_stream_mismatch(void **state)
{
	struct pgoutput_msg m;

	(void)state;
	/* the xid taken for the relation, then 00 00 where 'N' should be */
	assert_int_equal(decode_named("w I streamed", 2, false, &m), PG_REPL_MALFORMED);
	assert_int_equal(m.kind, PGOUTPUT_INSERT);
	/* the relation taken for an xid, then 'N' 00 02 74 as the relation */
	assert_int_equal(decode_named("w I", 2, true, &m), PG_REPL_MALFORMED);
	assert_int_equal(decode_named("w D", 2, true, &m), PG_REPL_MALFORMED);
	/* a Truncate read off by the xid asks for 0x40 relations it does not have */
	assert_int_equal(decode_named("w T", 2, true, &m), PG_REPL_TOO_SHORT);
	/* below v2 there is no stream to be in */
	assert_int_equal(decode_named("w I", 1, true, &m), PG_REPL_OK);
	assert_false(m.has_xid);
	/* with the version unknown, in_stream decides */
	assert_int_equal(decode_named("w I streamed", 0, true, &m), PG_REPL_OK);
	assert_int_equal(m.xid, 0x2e1);
}

static void test_version_gating(void **state)
{
	static const struct {
		const char *name;
		int min;
	} gated[] = {
		{"w S", 2}, {"w E", 2}, {"w c", 2}, {"w A", 2},
		{"w b", 3}, {"w P", 3}, {"w K", 3}, {"w r", 3}, {"w p", 3},
	};
	struct pgoutput_msg m;
	size_t i;
	int v;

	(void)state;
	for (i = 0; i < sizeof(gated) / sizeof(gated[0]); i++) {
		for (v = 1; v <= 5; v++) {
			enum pg_repl_verdict got = decode_named(gated[i].name, v, false, &m);

			assert_int_equal(got, v < gated[i].min ? PG_REPL_UNKNOWN : PG_REPL_OK);
			assert_int_equal(m.type, (uint8_t)gated[i].name[2]);
		}
		assert_int_equal(decode_named(gated[i].name, 0, false, &m), PG_REPL_OK);
	}
	assert_int_equal(decode_named("w B", 1, false, &m), PG_REPL_OK);
}

static enum pg_repl_verdict decode_hex(const char *hex, int version, bool in_stream,
				       struct pgoutput_msg *m)
{
	uint8_t tmp[256], *p;
	size_t n = unhex(hex, tmp, sizeof(tmp));
	enum pg_repl_verdict v;

	p = malloc(n > 0 ? n : 1);
	assert_non_null(p);
	memcpy(p, tmp, n);
	v = pgoutput_decode(p, n, n, version, in_stream, m);
	free(p);
	return v;
}

static void test_pgoutput_lengths(void **state)
{
	struct pgoutput_msg m;

	(void)state;
	/* fixed sizes: one byte more is BAD_LENGTH */
	assert_int_equal(decode_hex("420000000001587cc000030405b044cc68000002e000", 1, false, &m),
			 PG_REPL_BAD_LENGTH);
	assert_int_equal(decode_hex("4500", 2, false, &m), PG_REPL_BAD_LENGTH);
	assert_int_equal(decode_hex("53000002e10100", 2, false, &m), PG_REPL_BAD_LENGTH);
	/* Stream Abort: 9 bytes, or from v4 on 25 */
	assert_int_equal(decode_hex("41000002e6000002e600", 3, false, &m), PG_REPL_BAD_LENGTH);
	assert_int_equal(decode_hex("41000002e6000002e600", 4, false, &m), PG_REPL_TOO_SHORT);
	/* Truncate: exactly one oid per relation, and no overflow from nrels */
	assert_int_equal(decode_hex("54000000020000004005", 1, false, &m), PG_REPL_TOO_SHORT);
	assert_int_equal(m.nrels, 2);
	assert_int_equal(decode_hex("5400000001000000400500", 1, false, &m), PG_REPL_BAD_LENGTH);
	assert_int_equal(decode_hex("54ffffffff0000004005", 1, false, &m), PG_REPL_TOO_SHORT);
	assert_int_equal(decode_hex("540000000000", 1, false, &m), PG_REPL_OK);
	/*
	 * Insert, Update, Delete: the relation and the first marker are read,
	 * the tuples never (what they hold, even malformed, is the payload)
	 */
	assert_int_equal(decode_hex("49000040054e000174000000016100", 1, false, &m), PG_REPL_OK);
	assert_int_equal(decode_hex("49000040054e0001780000000161", 1, false, &m), PG_REPL_OK);
	assert_int_equal(decode_hex("49000040054e000174ffffffff61", 1, false, &m), PG_REPL_OK);
	assert_int_equal(decode_hex("49000040054e00036e756e", 1, false, &m), PG_REPL_OK);
	assert_int_equal(decode_hex("49000040054e0000", 1, false, &m), PG_REPL_OK);
	assert_int_equal(decode_hex("49000040054b0000", 1, false, &m), PG_REPL_MALFORMED);
	assert_int_equal(decode_hex("4900004005", 1, false, &m), PG_REPL_TOO_SHORT);
	assert_int_equal(decode_hex("55000040054b00016e4e00016e", 1, false, &m), PG_REPL_OK);
	assert_int_equal(decode_hex("55000040054f00016e4e00016e", 1, false, &m), PG_REPL_OK);
	assert_int_equal(decode_hex("55000040054e00016e", 1, false, &m), PG_REPL_OK);
	assert_int_equal(decode_hex("55000040055800016e", 1, false, &m), PG_REPL_MALFORMED);
	assert_int_equal(decode_hex("44000040054f00016e", 1, false, &m), PG_REPL_OK);
	assert_int_equal(decode_hex("44000040054e00016e", 1, false, &m), PG_REPL_MALFORMED);
	/* strings must end inside the message */
	assert_int_equal(decode_hex("4f0000000000abcdef6f31", 1, false, &m), PG_REPL_TOO_SHORT);
	assert_int_equal(decode_hex("4f0000000000abcdef6f31000000", 1, false, &m),
			 PG_REPL_BAD_LENGTH);
	/* Message content length past the end */
	assert_int_equal(decode_hex("4d010000000001587cc070667800000000066865", 1, false, &m),
			 PG_REPL_TOO_SHORT);

	/* a change's tuples are trusted, in view or not */
	{
		uint8_t p[40];

		memset(p, 0, sizeof(p));
		p[0] = 'I';
		p[5] = 'N';
		p[7] = 1;
		p[8] = '?';		/* not a column kind: not looked at */
		p[12] = 200;
		assert_int_equal(pgoutput_decode(p, 39, 213, 1, false, &m), PG_REPL_OK);
		assert_int_equal(pgoutput_decode(p, 39, 7, 1, false, &m), PG_REPL_OK);
		assert_int_equal(m.kind, PGOUTPUT_INSERT);
	}
}

static void test_unknown(void **state)
{
	struct pgoutput_msg m;

	(void)state;
	assert_int_equal(decode_hex("5a00000000", 4, false, &m), PG_REPL_UNKNOWN);
	assert_int_equal(m.kind, PGOUTPUT_UNKNOWN);
	assert_int_equal(m.type, 'Z');
	assert_int_equal(decode_hex("00", 0, false, &m), PG_REPL_UNKNOWN);
	assert_int_equal(pgoutput_decode((const uint8_t *)"", 0, 0, 1, false, &m),
			 PG_REPL_TOO_SHORT);
	assert_int_equal(m.kind, PGOUTPUT_UNKNOWN);
	/* the kind is known even when the length is not right */
	assert_int_equal(decode_hex("43", 1, false, &m), PG_REPL_TOO_SHORT);
	assert_int_equal(m.kind, PGOUTPUT_COMMIT);
	assert_string_equal(pgoutput_kind_str(PGOUTPUT_STREAM_PREPARE), "stream prepare");
	assert_string_equal(pg_repl_verdict_str(PG_REPL_UNKNOWN), "unknown message type");
}

/* Stream Start and Stop drive in_stream, whatever their verdict. */
static void test_state(void **state)
{
	struct pgoutput_state st;
	struct pgoutput_msg m;

	(void)state;
	pgoutput_state_init(&st, 3);
	assert_int_equal(st.proto_version, 3);
	assert_int_equal(decode_hex("53000002e1", 3, false, &m), PG_REPL_TOO_SHORT);
	pgoutput_state_update(&st, &m);
	assert_true(st.in_stream);
	assert_int_equal(decode_hex("420000000001587cc000030405b044cc68000002e0", 3, true, &m),
			 PG_REPL_OK);
	pgoutput_state_update(&st, &m);
	assert_true(st.in_stream);
	assert_int_equal(decode_hex("45", 3, true, &m), PG_REPL_OK);
	pgoutput_state_update(&st, &m);
	assert_false(st.in_stream);
	assert_int_equal(decode_hex("45", 1, false, &m), PG_REPL_UNKNOWN);
	pgoutput_state_update(&st, &m);
	assert_false(st.in_stream);
}

static void test_time(void **state)
{
	(void)state;
	assert_true(pg_time_to_unix_seconds(0) == 946684800.0);
	assert_true(pg_time_to_unix_seconds(-946684800000000LL) == 0.0);
	/* the commit time of the captured transactions: 2026-11-24 14:56:48.778344 */
	assert_true(pg_time_to_unix_seconds(0x030405b044cc68) > 1795532208.778344 - 1e-6);
	assert_true(pg_time_to_unix_seconds(0x030405b044cc68) < 1795532208.778344 + 1e-6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_vectors_whole),
		cmocka_unit_test(test_all_vectors_prefix),
		cmocka_unit_test(test_every_cut),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_status_update),
		cmocka_unit_test(test_feedback),
		cmocka_unit_test(test_copydata_dispatch),
		cmocka_unit_test(test_xlogdata),
		cmocka_unit_test(test_pgoutput_fields),
		cmocka_unit_test(test_streamed_transaction),
		cmocka_unit_test(test_stream_mismatch),
		cmocka_unit_test(test_version_gating),
		cmocka_unit_test(test_pgoutput_lengths),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
