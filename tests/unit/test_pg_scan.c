/*
 * test_pg_scan.c - the streaming scanner must report the same messages,
 * with the same prefixes, however the stream is cut into reads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/pg_scan.h"
#include "protocol/pg_wire.h"

#define STREAM_CAP	(128 * 1024)
#define MAX_MSGS	32
#define BIG_PAYLOAD	100000u

struct rec {
	uint8_t type;
	uint32_t length;
	uint32_t prefix_len;
	uint8_t prefix[PG_SCAN_PREFIX_MAX];
};

/* The stream under test, and what a correct scanner must say about it. */
static uint8_t stream[STREAM_CAP];
static size_t stream_len;
static struct rec expect[MAX_MSGS];
static size_t nexpect;
static bool boundary[STREAM_CAP + 1];	/* offsets where a message starts */

static void put_u64(uint8_t *p, uint64_t v)
{
	pg_put_u32(p, (uint32_t)(v >> 32));
	pg_put_u32(p + 4, (uint32_t)v);
}

/* Append one message and record what the scanner should report for it. */
static void add_msg(uint8_t type, const uint8_t *payload, uint32_t plen)
{
	struct rec *r = &expect[nexpect++];

	assert_true(nexpect <= MAX_MSGS);
	assert_true(stream_len + 5 + plen <= STREAM_CAP);
	stream[stream_len] = type;
	pg_put_u32(stream + stream_len + 1, plen + 4);
	if (plen > 0)
		memcpy(stream + stream_len + 5, payload, plen);
	stream_len += 5 + plen;
	boundary[stream_len] = true;

	memset(r, 0, sizeof(*r));
	r->type = type;
	r->length = plen + 4;
	r->prefix_len = plen < PG_SCAN_PREFIX_MAX ? plen : PG_SCAN_PREFIX_MAX;
	if (plen > 0)
		memcpy(r->prefix, payload, r->prefix_len);
}

/* CopyData 'w' XLogData carrying a pgoutput Begin message: 46 bytes. */
static uint32_t xlogdata_begin(uint8_t *p)
{
	p[0] = 'w';
	put_u64(p + 1, 0x0000000016B374D8ull);	/* dataStart */
	put_u64(p + 9, 0x0000000016B37520ull);	/* walEnd */
	put_u64(p + 17, 0x0002A1B2C3D4E5F6ull);	/* sendTime */
	p[25] = 'B';
	put_u64(p + 26, 0x0000000016B37600ull);	/* final LSN of the transaction */
	put_u64(p + 34, 0x0002A1B2C3D40000ull);	/* commit timestamp */
	pg_put_u32(p + 42, 747);		/* xid */
	return 46;
}

static void build_stream(void)
{
	static uint8_t big[BIG_PAYLOAD];
	uint8_t p[256];
	uint32_t i, n;

	stream_len = 0;
	nexpect = 0;
	memset(boundary, 0, sizeof(boundary));
	boundary[0] = true;

	add_msg('R', (const uint8_t *)"\0\0\0\0", 4);		/* AuthenticationOk */
	add_msg('S', (const uint8_t *)"server_version\0" "17.2\0", 20);
	add_msg('K', (const uint8_t *)"\0\0\x30\x39\xde\xad\xbe\xef", 8);
	add_msg('Z', (const uint8_t *)"I", 1);
	add_msg('W', (const uint8_t *)"\0\0\0", 3);		/* CopyBothResponse */
	n = xlogdata_begin(p);
	add_msg('d', p, n);
	add_msg('c', NULL, 0);					/* CopyDone */
	add_msg('c', NULL, 0);
	/* payload of exactly the prefix size, then one byte more */
	for (i = 0; i < 65; i++)
		p[i] = (uint8_t)(i * 7 + 1);
	add_msg('d', p, 64);
	add_msg('d', p, 65);
	for (i = 0; i < BIG_PAYLOAD; i++)
		big[i] = (uint8_t)(i * 131 + (i >> 8));
	add_msg('d', big, BIG_PAYLOAD);
	add_msg('c', NULL, 0);
	add_msg('C', (const uint8_t *)"COPY 0\0", 7);		/* CommandComplete */
	add_msg('Z', (const uint8_t *)"I", 1);
	add_msg('X', NULL, 0);					/* Terminate, last */
}

static void record(struct rec *out, const struct pg_msg *m)
{
	memset(out, 0, sizeof(*out));
	out->type = m->type;
	out->length = m->length;
	out->prefix_len = m->prefix_len;
	memcpy(out->prefix, m->prefix, m->prefix_len);
}

/* Feed one read's worth, handling every message it completes. */
static void feed(struct pg_scanner *sc, const uint8_t *p, size_t n,
		 struct rec *got, size_t *ngot)
{
	enum pg_scan_status st;
	size_t used;

	while (n > 0) {
		used = pg_scan_feed(sc, p, n, &st);
		assert_int_not_equal(st, PG_SCAN_ERROR);
		assert_true(used > 0 && used <= n);
		if (st == PG_SCAN_MESSAGE) {
			assert_true(*ngot < MAX_MSGS);
			record(&got[(*ngot)++], &sc->msg);
		} else {
			assert_int_equal(used, n);
		}
		p += used;
		n -= used;
	}
}

static void check_all(const struct pg_scanner *sc, const struct rec *got, size_t ngot)
{
	size_t i;

	assert_int_equal(ngot, nexpect);
	assert_int_equal(sc->messages, nexpect);
	for (i = 0; i < ngot; i++) {
		assert_int_equal(got[i].type, expect[i].type);
		assert_int_equal(got[i].length, expect[i].length);
		assert_int_equal(got[i].prefix_len, expect[i].prefix_len);
		assert_memory_equal(got[i].prefix, expect[i].prefix, PG_SCAN_PREFIX_MAX);
	}
	assert_true(pg_scan_at_boundary(sc));
	assert_int_equal(sc->error, PG_SCAN_ERR_NONE);
}

static int setup(void **state)
{
	(void)state;
	build_stream();
	return 0;
}

static void test_expected_vectors(void **state)
{
	(void)state;
	/* the hand-made expectations themselves, so the comparisons mean something */
	assert_int_equal(nexpect, 15);
	assert_int_equal(stream_len, 5 * 15 + 4 + 20 + 8 + 1 + 3 + 46 + 64 + 65 +
			 BIG_PAYLOAD + 7 + 1);
	assert_int_equal(expect[5].type, 'd');
	assert_int_equal(expect[5].length, 50);
	assert_int_equal(expect[5].prefix_len, 46);
	assert_int_equal(expect[5].prefix[0], 'w');
	assert_int_equal(expect[5].prefix[25], 'B');
	assert_int_equal(pg_get_u32(expect[5].prefix + 42), 747);
	assert_int_equal(expect[6].length, 4);
	assert_int_equal(expect[6].prefix_len, 0);
	assert_int_equal(expect[9].prefix_len, 64);
	assert_int_equal(expect[10].length, BIG_PAYLOAD + 4);
	assert_int_equal(expect[10].prefix_len, 64);
}

static void test_whole(void **state)
{
	struct pg_scanner sc;
	struct rec got[MAX_MSGS];
	size_t ngot = 0;

	(void)state;
	pg_scan_init(&sc, PG_MSG_MAX_LEN);
	feed(&sc, stream, stream_len, got, &ngot);
	check_all(&sc, got, ngot);
}

static void test_every_split(void **state)
{
	struct pg_scanner sc;
	struct rec got[MAX_MSGS];
	size_t k, ngot;

	(void)state;
	for (k = 0; k <= stream_len; k++) {
		ngot = 0;
		pg_scan_init(&sc, PG_MSG_MAX_LEN);
		feed(&sc, stream, k, got, &ngot);
		assert_int_equal(pg_scan_at_boundary(&sc), boundary[k]);
		feed(&sc, stream + k, stream_len - k, got, &ngot);
		check_all(&sc, got, ngot);
	}
}

static void test_byte_at_a_time(void **state)
{
	struct pg_scanner sc;
	struct rec got[MAX_MSGS];
	size_t i, ngot = 0;

	(void)state;
	pg_scan_init(&sc, PG_MSG_MAX_LEN);
	for (i = 0; i < stream_len; i++) {
		/* a lone byte on the stack: any read past it is an ASan error */
		uint8_t one = stream[i];

		feed(&sc, &one, 1, got, &ngot);
		assert_int_equal(pg_scan_at_boundary(&sc), boundary[i + 1]);
	}
	check_all(&sc, got, ngot);
}

/* Reads of assorted sizes, as a socket hands them over. */
static void test_odd_chunks(void **state)
{
	static const size_t sizes[] = { 3, 7, 1, 64, 5, 4096, 2, 69 };
	struct pg_scanner sc;
	struct rec got[MAX_MSGS];
	size_t pos = 0, i = 0, n, ngot = 0;

	(void)state;
	pg_scan_init(&sc, PG_MSG_MAX_LEN);
	while (pos < stream_len) {
		n = sizes[i++ % (sizeof(sizes) / sizeof(sizes[0]))];
		if (n > stream_len - pos)
			n = stream_len - pos;
		feed(&sc, stream + pos, n, got, &ngot);
		pos += n;
	}
	check_all(&sc, got, ngot);
}

static void test_report_points(void **state)
{
	static const uint8_t s[] =
		"c\0\0\0\x04"				/* empty: reported at its header */
		"Z\0\0\0\x05" "I"			/* short: reported when whole */
		"d\0\0\0\x48" "0123456789012345678901234567890123456789"
		"012345678901234567890123" "ABCD";	/* 68 bytes: at 64 */
	struct pg_scanner sc;
	enum pg_scan_status st;
	size_t used;

	(void)state;
	pg_scan_init(&sc, PG_MSG_MAX_LEN);
	assert_true(pg_scan_at_boundary(&sc));

	used = pg_scan_feed(&sc, s, sizeof(s) - 1, &st);
	assert_int_equal(st, PG_SCAN_MESSAGE);
	assert_int_equal(used, 5);
	assert_int_equal(sc.msg.type, 'c');
	assert_int_equal(sc.msg.length, 4);
	assert_int_equal(sc.msg.prefix_len, 0);
	assert_true(pg_scan_at_boundary(&sc));
	assert_int_equal(sc.messages, 1);

	used += pg_scan_feed(&sc, s + used, sizeof(s) - 1 - used, &st);
	assert_int_equal(st, PG_SCAN_MESSAGE);
	assert_int_equal(used, 11);
	assert_int_equal(sc.msg.type, 'Z');
	assert_int_equal(sc.msg.prefix_len, 1);
	assert_int_equal(sc.msg.prefix[0], 'I');
	assert_true(pg_scan_at_boundary(&sc));

	used += pg_scan_feed(&sc, s + used, sizeof(s) - 1 - used, &st);
	assert_int_equal(st, PG_SCAN_MESSAGE);
	assert_int_equal(used, 11 + 5 + 64);
	assert_int_equal(sc.msg.type, 'd');
	assert_int_equal(sc.msg.length, 0x48);
	assert_int_equal(sc.msg.prefix_len, 64);
	assert_memory_equal(sc.msg.prefix, s + 16, 64);
	/* four payload bytes still to come */
	assert_false(pg_scan_at_boundary(&sc));
	assert_int_equal(sc.messages, 3);

	used += pg_scan_feed(&sc, s + used, 3, &st);
	assert_int_equal(st, PG_SCAN_MORE);
	assert_false(pg_scan_at_boundary(&sc));
	used += pg_scan_feed(&sc, s + used, 1, &st);
	assert_int_equal(st, PG_SCAN_MORE);
	assert_int_equal(used, sizeof(s) - 1);
	assert_true(pg_scan_at_boundary(&sc));
	assert_int_equal(sc.messages, 3);

	/* nothing fed, nothing happens */
	assert_int_equal(pg_scan_feed(&sc, s, 0, &st), 0);
	assert_int_equal(st, PG_SCAN_MORE);
	assert_true(pg_scan_at_boundary(&sc));
}

static void test_boundary_inside_header(void **state)
{
	static const uint8_t s[] = { 'Z', 0, 0, 0, 5, 'I' };
	struct pg_scanner sc;
	enum pg_scan_status st;
	size_t i;

	(void)state;
	pg_scan_init(&sc, PG_MSG_MAX_LEN);
	for (i = 0; i < 5; i++) {
		assert_int_equal(pg_scan_feed(&sc, s + i, 1, &st), 1);
		assert_int_equal(st, PG_SCAN_MORE);
		assert_false(pg_scan_at_boundary(&sc));
	}
	assert_int_equal(pg_scan_feed(&sc, s + 5, 1, &st), 1);
	assert_int_equal(st, PG_SCAN_MESSAGE);
	assert_true(pg_scan_at_boundary(&sc));
	assert_int_equal(sc.messages, 1);
}

/* Feed s one byte at a time: MORE until its 5th byte, then err. */
static void expect_error_at_header(const uint8_t *s, uint32_t max, enum pg_scan_error err)
{
	struct pg_scanner sc;
	enum pg_scan_status st;
	size_t i;

	pg_scan_init(&sc, max);
	for (i = 0; i < 4; i++) {
		assert_int_equal(pg_scan_feed(&sc, s + i, 1, &st), 1);
		assert_int_equal(st, PG_SCAN_MORE);
	}
	pg_scan_feed(&sc, s + 4, 1, &st);
	assert_int_equal(st, PG_SCAN_ERROR);
	assert_int_equal(sc.error, err);
	assert_int_equal(sc.messages, 0);
	/* nothing more is accepted */
	assert_int_equal(pg_scan_feed(&sc, s, 5, &st), 0);
	assert_int_equal(st, PG_SCAN_ERROR);
	assert_int_equal(sc.error, err);

	/* the same with the header whole and payload bytes behind it */
	pg_scan_init(&sc, max);
	pg_scan_feed(&sc, s, 9, &st);
	assert_int_equal(st, PG_SCAN_ERROR);
	assert_int_equal(sc.error, err);
}

static void test_errors(void **state)
{
	static const uint8_t len3[] = { 'Q', 0, 0, 0, 3, 'x', 'x', 'x', 'x' };
	static const uint8_t len0[] = { 'Q', 0, 0, 0, 0, 'x', 'x', 'x', 'x' };
	static const uint8_t huge[] = { 'd', 0x7f, 0xff, 0xff, 0xff, 'x', 'x', 'x', 'x' };
	static const uint8_t neg[] = { 'd', 0xff, 0xff, 0xff, 0xfc, 'x', 'x', 'x', 'x' };

	(void)state;
	expect_error_at_header(len3, 1u << 30, PG_SCAN_ERR_SHORT_LENGTH);
	expect_error_at_header(len0, 1u << 30, PG_SCAN_ERR_SHORT_LENGTH);
	expect_error_at_header(huge, 1u << 30, PG_SCAN_ERR_TOO_LONG);
	expect_error_at_header(neg, 1u << 30, PG_SCAN_ERR_TOO_LONG);
	assert_string_not_equal(pg_scan_error_str(PG_SCAN_ERR_SHORT_LENGTH),
				pg_scan_error_str(PG_SCAN_ERR_TOO_LONG));
	assert_non_null(pg_scan_error_str(PG_SCAN_ERR_NONE));
}

static void test_max_length_edge(void **state)
{
	uint8_t s[5] = { 'd', 0, 0, 0, 0 };
	struct pg_scanner sc;
	enum pg_scan_status st;

	(void)state;
	/* exactly max: accepted, waiting for the payload */
	pg_put_u32(s + 1, 1u << 30);
	pg_scan_init(&sc, 1u << 30);
	assert_int_equal(pg_scan_feed(&sc, s, 5, &st), 5);
	assert_int_equal(st, PG_SCAN_MORE);
	assert_int_equal(sc.error, PG_SCAN_ERR_NONE);
	assert_false(pg_scan_at_boundary(&sc));
	/* one more: refused */
	pg_put_u32(s + 1, (1u << 30) + 1);
	pg_scan_init(&sc, 1u << 30);
	pg_scan_feed(&sc, s, 5, &st);
	assert_int_equal(st, PG_SCAN_ERROR);
	assert_int_equal(sc.error, PG_SCAN_ERR_TOO_LONG);
}

static void test_error_after_message(void **state)
{
	static const uint8_t s[] = { 'Z', 0, 0, 0, 5, 'I', 'Q', 0, 0, 0, 2 };
	struct pg_scanner sc;
	enum pg_scan_status st;
	size_t used;

	(void)state;
	pg_scan_init(&sc, PG_MSG_MAX_LEN);
	used = pg_scan_feed(&sc, s, sizeof(s), &st);
	assert_int_equal(st, PG_SCAN_MESSAGE);
	assert_int_equal(used, 6);
	assert_int_equal(sc.msg.type, 'Z');
	used += pg_scan_feed(&sc, s + used, sizeof(s) - used, &st);
	assert_int_equal(st, PG_SCAN_ERROR);
	assert_int_equal(sc.error, PG_SCAN_ERR_SHORT_LENGTH);
	assert_int_equal(sc.messages, 1);
}


/*
 * pg_scan_capture(): a hook asks for more than the prefix and gets exactly
 * the first min(payload, cap) bytes, however the stream is cut.
 */
#define CAPTURE_CAP 1024u

struct capture_run {
	uint8_t buf[CAPTURE_CAP];
	uint32_t want;
	unsigned done;			/* captures completed (or whole at once) */
	uint8_t got[4][CAPTURE_CAP];
	uint32_t got_len[4];
};

static void capture_feed(struct pg_scanner *sc, struct capture_run *r, const uint8_t *p, size_t n)
{
	enum pg_scan_status st;

	while (n > 0) {
		size_t used = pg_scan_feed(sc, p, n, &st);

		assert_int_not_equal(st, PG_SCAN_ERROR);
		p += used;
		n -= used;
		if (st == PG_SCAN_MESSAGE) {
			uint32_t want = pg_scan_capture(sc, r->buf, CAPTURE_CAP);
			bool pending = want > sc->msg.prefix_len;

			r->want = want;
			if (!pending) {
				memcpy(r->got[r->done], r->buf, want);
				r->got_len[r->done++] = want;
			}
		} else if (st == PG_SCAN_CAPTURED) {
			memcpy(r->got[r->done], r->buf, r->want);
			r->got_len[r->done++] = r->want;
		}
	}
}

static void test_capture_every_split(void **state)
{
	static uint8_t s[4096];
	static uint8_t q[500], d[2000];
	static struct capture_run r;
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(q); i++)
		q[i] = (uint8_t)(i * 3 + 1);
	for (size_t i = 0; i < sizeof(d); i++)
		d[i] = (uint8_t)(i * 5 + 2);
#define PUT(t, buf, n) do { s[len] = (t); pg_put_u32(s + len + 1, (uint32_t)(n) + 4); \
	memcpy(s + len + 5, (buf), (n)); len += 5 + (n); } while (0)
	PUT('Q', q, sizeof(q));
	PUT('Q', q, 30u);
	PUT('d', d, sizeof(d));
	PUT('Z', "I", 1u);
#undef PUT
	for (size_t cut = 0; cut <= len; cut++) {
		struct pg_scanner sc;

		memset(&r, 0, sizeof(r));
		pg_scan_init(&sc, 1u << 20);
		capture_feed(&sc, &r, s, cut);
		capture_feed(&sc, &r, s + cut, len - cut);
		assert_int_equal(r.done, 4);
		assert_int_equal(r.got_len[0], sizeof(q));
		assert_memory_equal(r.got[0], q, sizeof(q));
		assert_int_equal(r.got_len[1], 30);
		assert_memory_equal(r.got[1], q, 30);
		assert_int_equal(r.got_len[2], CAPTURE_CAP);
		assert_memory_equal(r.got[2], d, CAPTURE_CAP);
		assert_int_equal(r.got_len[3], 1);
		assert_true(pg_scan_at_boundary(&sc));
		assert_int_equal(sc.messages, 4);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expected_vectors),
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_odd_chunks),
		cmocka_unit_test(test_report_points),
		cmocka_unit_test(test_boundary_inside_header),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_max_length_edge),
		cmocka_unit_test(test_error_after_message),
		cmocka_unit_test(test_capture_every_split),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
