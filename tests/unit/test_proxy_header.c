/*
 * test_proxy_header.c - the PROXY protocol decoder against the spec's own
 * example lines, hand-built v2 blocks, and every way a header can lie or
 * arrive cut short.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>

#include "protocol/proxy_header.h"

#define ACCEPT_ALL	(PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2)
#define V2_SIG		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A

/* What a client would send right after the header: a PostgreSQL SSLRequest. */
static const uint8_t ssl_request[] = { 0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f };

/*
 * The verdict on a copy of bytes in a block of exactly len bytes, so that
 * AddressSanitizer catches any read past the end.
 */
static enum proxy_verdict parse_exact(const void *bytes, size_t len, unsigned accept,
				      struct proxy_header *h)
{
	enum proxy_verdict v;
	uint8_t *copy = malloc(len > 0 ? len : 1);

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, bytes, len);
	v = proxy_header_parse(copy, len, accept, h);
	free(copy);
	return v;
}

/* lit is a string literal; its implicit NUL is not part of the input */
#define PARSE(lit, accept, h)	parse_exact((lit), sizeof(lit) - 1, (accept), (h))

static enum proxy_verdict verdict_of(const void *bytes, size_t len, unsigned accept)
{
	struct proxy_header h;

	return parse_exact(bytes, len, accept, &h);
}

#define VERDICT(lit)		verdict_of((lit), sizeof(lit) - 1, ACCEPT_ALL)

static void assert_inet4(const struct sockaddr_storage *ss, socklen_t len,
			 const char *addr, uint16_t port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	struct in_addr want;

	assert_int_equal(inet_pton(AF_INET, addr, &want), 1);
	assert_int_equal(ss->ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_memory_equal(&sin->sin_addr, &want, sizeof(want));
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void assert_inet6(const struct sockaddr_storage *ss, socklen_t len,
			 const char *addr, uint16_t port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	struct in6_addr want;

	assert_int_equal(inet_pton(AF_INET6, addr, &want), 1);
	assert_int_equal(ss->ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_memory_equal(&sin6->sin6_addr, &want, sizeof(want));
	assert_int_equal(ntohs(sin6->sin6_port), port);
	assert_int_equal(sin6->sin6_scope_id, 0);
}

/* No source address: a v2 LOCAL (the balancer's own connection) or an unknown relayed source. */
static void assert_no_source(const struct proxy_header *h, int version, size_t length)
{
	assert_int_equal(h->version, version);
	assert_true(h->local);
	assert_int_equal(h->length, length);
	assert_int_equal(h->srclen, 0);
	assert_int_equal(h->dstlen, 0);
	assert_int_equal(h->src.ss_family, AF_UNSPEC);
	assert_int_equal(h->dst.ss_family, AF_UNSPEC);
}

static void assert_local(const struct proxy_header *h, int version, size_t length)
{
	assert_no_source(h, version, length);
	assert_false(h->unknown_source);
}

static void assert_unknown(const struct proxy_header *h, int version, size_t length)
{
	assert_no_source(h, version, length);
	assert_true(h->unknown_source);
}

/*
 * A valid header must parse alike alone and followed by client traffic,
 * and every proper prefix of it must ask for more, never anything else.
 */
static void parse_valid(const uint8_t *hdr, size_t len, unsigned accept,
			struct proxy_header *h)
{
	uint8_t buf[PROXY_V2_MAX_LEN + sizeof(ssl_request)];
	struct proxy_header with_tail;
	size_t n;

	assert_true(len <= PROXY_V2_MAX_LEN);
	for (n = 0; n < len; n++) {
		assert_int_equal(verdict_of(hdr, n, accept), PROXY_NEED_MORE);
		assert_int_equal(verdict_of(hdr, n, ACCEPT_ALL), PROXY_NEED_MORE);
	}
	memcpy(buf, hdr, len);
	memcpy(buf + len, ssl_request, sizeof(ssl_request));
	assert_int_equal(parse_exact(buf, len + sizeof(ssl_request), accept, &with_tail), PROXY_OK);
	assert_int_equal(parse_exact(hdr, len, accept, h), PROXY_OK);
	assert_int_equal(h->length, len);
	assert_memory_equal(h, &with_tail, sizeof(*h));
}

#define PARSE_VALID_V1(lit, h)	parse_valid((const uint8_t *)(lit), sizeof(lit) - 1, PROXY_ACCEPT_V1, (h))
#define PARSE_VALID_V2(arr, h)	parse_valid((arr), sizeof(arr), PROXY_ACCEPT_V2, (h))

/* ---- version 1 ---- */

static void test_v1_tcp4(void **state)
{
	struct proxy_header h;

	(void)state;
	/* proxy-protocol.txt 2.1, the example of a complete line */
	PARSE_VALID_V1("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", &h);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_false(h.unknown_source);
	assert_int_equal(h.length, 47);
	assert_inet4(&h.src, h.srclen, "192.168.0.1", 56324);
	assert_inet4(&h.dst, h.dstlen, "192.168.0.11", 443);

	/* the spec's longest TCP4 line, 56 chars */
	PARSE_VALID_V1("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", &h);
	assert_int_equal(h.length, 56);
	assert_inet4(&h.src, h.srclen, "255.255.255.255", 65535);
	assert_inet4(&h.dst, h.dstlen, "255.255.255.255", 65535);

	PARSE_VALID_V1("PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n", &h);
	assert_inet4(&h.src, h.srclen, "0.0.0.0", 0);
	assert_inet4(&h.dst, h.dstlen, "10.0.0.1", 0);
}

static void test_v1_tcp6(void **state)
{
	struct proxy_header h;

	(void)state;
	/* the spec's longest TCP6 line, 104 chars */
	PARSE_VALID_V1("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", &h);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_false(h.unknown_source);
	assert_int_equal(h.length, 104);
	assert_inet6(&h.src, h.srclen, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	assert_inet6(&h.dst, h.dstlen, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);

	PARSE_VALID_V1("PROXY TCP6 2001:db8::1 ::1 50000 5432\r\n", &h);
	assert_int_equal(h.length, 39);
	assert_inet6(&h.src, h.srclen, "2001:db8::1", 50000);
	assert_inet6(&h.dst, h.dstlen, "::1", 5432);

	/* IPv4-mapped notation and upper-case hex are what inet_pton takes */
	PARSE_VALID_V1("PROXY TCP6 ::ffff:192.0.2.1 2001:DB8::A 1 65535\r\n", &h);
	assert_inet6(&h.src, h.srclen, "::ffff:192.0.2.1", 1);
	assert_inet6(&h.dst, h.dstlen, "2001:db8::a", 65535);
}

static void test_v1_unknown(void **state)
{
	struct proxy_header h;

	(void)state;
	/* the spec's short form, 15 chars */
	PARSE_VALID_V1("PROXY UNKNOWN\r\n", &h);
	assert_unknown(&h, 1, 15);

	/* whatever follows UNKNOWN is ignored, as the spec asks */
	PARSE_VALID_V1("PROXY UNKNOWN 10.0.0.1 junk\r\n", &h);
	assert_unknown(&h, 1, 29);
	PARSE_VALID_V1("PROXY UNKNOWN \r\n", &h);
	assert_unknown(&h, 1, 16);
}

static void test_v1_max_length(void **state)
{
	/* the spec's worst case: exactly PROXY_V1_MAX_LEN with the CRLF */
	static const char worst[] =
		"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	char line[PROXY_V1_MAX_LEN + 2];
	struct proxy_header h;

	(void)state;
	assert_int_equal(sizeof(worst) - 1, PROXY_V1_MAX_LEN);
	PARSE_VALID_V1(worst, &h);
	assert_unknown(&h, 1, PROXY_V1_MAX_LEN);

	/* "PROXY UNKNOWN " and padding, without CR or LF */
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	assert_int_equal(verdict_of(line, PROXY_V1_MAX_LEN - 1, ACCEPT_ALL), PROXY_NEED_MORE);
	assert_int_equal(verdict_of(line, PROXY_V1_MAX_LEN, ACCEPT_ALL), PROXY_MALFORMED);
	assert_int_equal(verdict_of(line, PROXY_V1_MAX_LEN + 1, ACCEPT_ALL), PROXY_MALFORMED);

	/* a CR as byte 107: its LF would be byte 108 */
	line[PROXY_V1_MAX_LEN - 1] = '\r';
	assert_int_equal(verdict_of(line, PROXY_V1_MAX_LEN, ACCEPT_ALL), PROXY_MALFORMED);
	line[PROXY_V1_MAX_LEN] = '\n';
	assert_int_equal(verdict_of(line, PROXY_V1_MAX_LEN + 1, ACCEPT_ALL), PROXY_MALFORMED);

	/* CRLF as bytes 106-107: fine */
	line[PROXY_V1_MAX_LEN - 2] = '\r';
	line[PROXY_V1_MAX_LEN - 1] = '\n';
	assert_int_equal(parse_exact(line, PROXY_V1_MAX_LEN + 1, ACCEPT_ALL, &h), PROXY_OK);
	assert_unknown(&h, 1, PROXY_V1_MAX_LEN);

	/* legal addresses, but too long a line in total: refused at byte 107 */
	assert_int_equal(VERDICT("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
				 "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n"),
			 PROXY_MALFORMED);
	assert_int_equal(verdict_of("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
				    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535",
				    PROXY_V1_MAX_LEN, ACCEPT_ALL), PROXY_MALFORMED);
}

static void test_v1_bad_addresses(void **state)
{
	(void)state;
	assert_int_equal(VERDICT("PROXY TCP4 256.0.0.1 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4.5 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 10.0.0 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 localhost 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 0x7f.0.0.1 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP6 2001:db8:::1 ::1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP6 2001:db8::g ::1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"), PROXY_MALFORMED);
	/* a zone index is not an address inet_pton knows */
	assert_int_equal(VERDICT("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), PROXY_MALFORMED);
	/* a NUL must not end the address early */
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4\0 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4\0x 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
}

static void test_v1_family_mismatch(void **state)
{
	(void)state;
	assert_int_equal(VERDICT("PROXY TCP4 ::1 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 10.0.0.1 ::1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 ::ffff:10.0.0.1 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP6 10.0.0.1 ::1 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP6 ::1 10.0.0.1 1 2\r\n"), PROXY_MALFORMED);
}

static void test_v1_bad_ports(void **state)
{
	(void)state;
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n"), PROXY_MALFORMED);
	/* empty ports: between two spaces, or after a trailing one */
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n"), PROXY_MALFORMED);
	/* a port too big is refused before the line ends */
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 65536"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 06"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 6553"), PROXY_NEED_MORE);
}

static void test_v1_bad_layout(void **state)
{
	(void)state;
	/* double spaces anywhere */
	assert_int_equal(VERDICT("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY  UNKNOWN\r\n"), PROXY_MALFORMED);
	/* other blanks are not separators */
	assert_int_equal(VERDICT("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_MALFORMED);
	/* missing, extra, or no fields at all */
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 \r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY \r\n"), PROXY_MALFORMED);
	/* protocol names are exact and case-sensitive */
	assert_int_equal(VERDICT("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY UNKNOWNX\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY UNKNOWN4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_MALFORMED);
	/* line ends: LF without CR, CR without LF, stray CR */
	assert_int_equal(VERDICT("PROXY UNKNOWN\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY UNKNOWN \rjunk\r\n"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY UNKNOWN \njunk\r\n"), PROXY_MALFORMED);
}

/* Lines that can no longer become valid are refused before their CRLF. */
static void test_v1_early_malformed(void **state)
{
	(void)state;
	assert_int_equal(VERDICT("PROXY X"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4X"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY  "), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 ::"), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4  "), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 "), PROXY_MALFORMED);
	assert_int_equal(VERDICT("PROXY UNKNOWN\n"), PROXY_MALFORMED);
	/* ... but not while they still could */
	assert_int_equal(VERDICT("PROXY TCP"), PROXY_NEED_MORE);
	assert_int_equal(VERDICT("PROXY UNKNOWN with some text"), PROXY_NEED_MORE);
	assert_int_equal(VERDICT("PROXY TCP6 2001:db8::"), PROXY_NEED_MORE);
	assert_int_equal(VERDICT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), PROXY_NEED_MORE);
}

/* ---- version 2 ---- */

static const uint8_t v2_tcp4[] = {
	V2_SIG, 0x21, 0x11, 0x00, 0x0C,
	192, 0, 2, 10,			/* src 192.0.2.10 */
	198, 51, 100, 20,		/* dst 198.51.100.20 */
	0xD4, 0x31,			/* sport 54321 */
	0x15, 0x38,			/* dport 5432 */
};

static const uint8_t v2_tcp4_tlv[] = {
	V2_SIG, 0x21, 0x11, 0x00, 0x20,
	10, 1, 2, 3, 10, 9, 8, 7, 0x04, 0x00, 0x15, 0x38,
	/* PP2_TYPE_AUTHORITY "db.example.com" */
	0x02, 0x00, 0x0E, 'd', 'b', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
	/* PP2_TYPE_NOOP, empty */
	0x04, 0x00, 0x00,
};

static const uint8_t v2_tcp6[] = {
	V2_SIG, 0x21, 0x21, 0x00, 0x24,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,	/* 2001:db8::1 */
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x01,	/* 2001:db8::2:1 */
	0xC3, 0x50,			/* sport 50000 */
	0x15, 0x38,			/* dport 5432 */
};

static const uint8_t v2_tcp6_tlv[] = {
	V2_SIG, 0x21, 0x21, 0x00, 0x36,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,			/* ::1 */
	0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,	/* fe80::2 */
	0x00, 0x00, 0xFF, 0xFF,
	/* PP2_TYPE_CRC32C: its contents are not checked */
	0x03, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef,
	/* PP2_TYPE_UNIQUE_ID */
	0x05, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8,
};

/* What HAProxy sends for its health checks. */
static const uint8_t v2_local[] = { V2_SIG, 0x20, 0x00, 0x00, 0x00 };

static const uint8_t v2_local_tcp4[] = {
	V2_SIG, 0x20, 0x11, 0x00, 0x0C,
	127, 0, 0, 1, 127, 0, 0, 1, 0x30, 0x39, 0x15, 0x38,
};

static const uint8_t v2_unspec[] = { V2_SIG, 0x21, 0x00, 0x00, 0x00 };

static void test_v2_tcp4(void **state)
{
	struct proxy_header h;

	(void)state;
	PARSE_VALID_V2(v2_tcp4, &h);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_false(h.unknown_source);
	assert_int_equal(h.length, 28);
	assert_inet4(&h.src, h.srclen, "192.0.2.10", 54321);
	assert_inet4(&h.dst, h.dstlen, "198.51.100.20", 5432);

	PARSE_VALID_V2(v2_tcp4_tlv, &h);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_false(h.unknown_source);
	assert_int_equal(h.length, 48);
	assert_inet4(&h.src, h.srclen, "10.1.2.3", 1024);
	assert_inet4(&h.dst, h.dstlen, "10.9.8.7", 5432);
}

static void test_v2_tcp6(void **state)
{
	struct proxy_header h;

	(void)state;
	PARSE_VALID_V2(v2_tcp6, &h);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_false(h.unknown_source);
	assert_int_equal(h.length, 52);
	assert_inet6(&h.src, h.srclen, "2001:db8::1", 50000);
	assert_inet6(&h.dst, h.dstlen, "2001:db8::2:1", 5432);

	PARSE_VALID_V2(v2_tcp6_tlv, &h);
	assert_int_equal(h.length, 70);
	assert_inet6(&h.src, h.srclen, "::1", 0);
	assert_inet6(&h.dst, h.dstlen, "fe80::2", 65535);
}

static void test_v2_local(void **state)
{
	uint8_t odd[] = { V2_SIG, 0x20, 0xFF, 0x00, 0x03, 1, 2, 3 };
	struct proxy_header h;

	(void)state;
	PARSE_VALID_V2(v2_local, &h);
	assert_local(&h, 2, 16);
	/* the address block of a LOCAL header is skipped unread */
	PARSE_VALID_V2(v2_local_tcp4, &h);
	assert_local(&h, 2, 28);
	/* "discard the protocol block including the family" */
	PARSE_VALID_V2(odd, &h);
	assert_local(&h, 2, 19);
	odd[13] = 0x12;		/* even a DGRAM one */
	PARSE_VALID_V2(odd, &h);
	assert_local(&h, 2, 19);
}

static void test_v2_unspec_unix(void **state)
{
	uint8_t unspec_junk[] = { V2_SIG, 0x21, 0x00, 0x00, 0x02, 0xAA, 0xBB };
	uint8_t unix_block[16 + 216 + 3];
	struct proxy_header h;

	(void)state;
	PARSE_VALID_V2(v2_unspec, &h);
	assert_unknown(&h, 2, 16);
	/* no address layout is defined for UNSPEC: whatever follows is skipped */
	PARSE_VALID_V2(unspec_junk, &h);
	assert_unknown(&h, 2, 18);

	/* AF_UNIX stream: two 108-byte paths, then a NOOP TLV */
	memset(unix_block, 0, sizeof(unix_block));
	memcpy(unix_block, v2_local, 12);
	unix_block[12] = 0x21;
	unix_block[13] = 0x31;
	unix_block[14] = 0x00;
	unix_block[15] = 216 + 3;
	memcpy(unix_block + 16, "/run/haproxy.sock", 17);
	memcpy(unix_block + 16 + 108, "/run/walgate.sock", 17);
	unix_block[16 + 216] = 0x04;
	PARSE_VALID_V2(unix_block, &h);
	assert_unknown(&h, 2, sizeof(unix_block));

	/* a UNIX block shorter than its two paths */
	unix_block[14] = 0x00;
	unix_block[15] = 0xD7;
	assert_int_equal(verdict_of(unix_block, 16, PROXY_ACCEPT_V2), PROXY_MALFORMED);
}

static void test_v2_unsupported(void **state)
{
	uint8_t hdr[sizeof(v2_tcp4)];
	static const uint8_t dgram[] = { 0x12, 0x22, 0x32 };
	static const uint8_t versions[] = { 0x0, 0x1, 0x3, 0xF };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(dgram); i++) {
		memcpy(hdr, v2_tcp4, sizeof(hdr));
		hdr[13] = dgram[i];
		/* decided by byte 14, and the same with the whole header */
		assert_int_equal(verdict_of(hdr, 14, PROXY_ACCEPT_V2), PROXY_UNSUPPORTED);
		assert_int_equal(verdict_of(hdr, sizeof(hdr), PROXY_ACCEPT_V2), PROXY_UNSUPPORTED);
	}
	for (i = 0; i < sizeof(versions); i++) {
		memcpy(hdr, v2_tcp4, sizeof(hdr));
		hdr[12] = (uint8_t)(versions[i] << 4 | 0x1);
		assert_int_equal(verdict_of(hdr, 13, PROXY_ACCEPT_V2), PROXY_UNSUPPORTED);
		assert_int_equal(verdict_of(hdr, sizeof(hdr), PROXY_ACCEPT_V2), PROXY_UNSUPPORTED);
	}
	/* commands other than LOCAL and PROXY */
	memcpy(hdr, v2_tcp4, sizeof(hdr));
	hdr[12] = 0x22;
	assert_int_equal(verdict_of(hdr, 13, PROXY_ACCEPT_V2), PROXY_UNSUPPORTED);
	hdr[12] = 0x2F;
	assert_int_equal(verdict_of(hdr, sizeof(hdr), PROXY_ACCEPT_V2), PROXY_UNSUPPORTED);
}

static void test_v2_bad_family(void **state)
{
	uint8_t hdr[sizeof(v2_tcp4)];
	static const uint8_t bad[] = { 0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x41, 0xFF };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad); i++) {
		memcpy(hdr, v2_tcp4, sizeof(hdr));
		hdr[13] = bad[i];
		assert_int_equal(verdict_of(hdr, 14, PROXY_ACCEPT_V2), PROXY_MALFORMED);
		assert_int_equal(verdict_of(hdr, sizeof(hdr), PROXY_ACCEPT_V2), PROXY_MALFORMED);
	}
}

static void test_v2_bad_lengths(void **state)
{
	uint8_t hdr[sizeof(v2_tcp6_tlv)];

	(void)state;
	/* TCP4 with fewer than 12 address bytes, refused on the length word */
	memcpy(hdr, v2_tcp4, sizeof(v2_tcp4));
	hdr[15] = 0x0B;
	assert_int_equal(verdict_of(hdr, 16, PROXY_ACCEPT_V2), PROXY_MALFORMED);
	assert_int_equal(verdict_of(hdr, 27, PROXY_ACCEPT_V2), PROXY_MALFORMED);
	/* TCP6 with an IPv4-sized block */
	memcpy(hdr, v2_tcp6, sizeof(v2_tcp6));
	hdr[15] = 0x0C;
	assert_int_equal(verdict_of(hdr, 28, PROXY_ACCEPT_V2), PROXY_MALFORMED);

	/* a TLV whose value runs past the end: known as soon as its header is */
	memcpy(hdr, v2_tcp6_tlv, sizeof(v2_tcp6_tlv));
	hdr[sizeof(hdr) - 9] = 0x09;
	assert_int_equal(verdict_of(hdr, sizeof(hdr), PROXY_ACCEPT_V2), PROXY_MALFORMED);
	assert_int_equal(verdict_of(hdr, sizeof(hdr) - 8, PROXY_ACCEPT_V2), PROXY_MALFORMED);
	assert_int_equal(verdict_of(hdr, sizeof(hdr) - 9, PROXY_ACCEPT_V2), PROXY_NEED_MORE);
	/* a TLV shorter than it could be: leaves bytes that are no TLV */
	hdr[sizeof(hdr) - 9] = 0x07;
	assert_int_equal(verdict_of(hdr, sizeof(hdr), PROXY_ACCEPT_V2), PROXY_MALFORMED);
	/* the length word cutting the last TLV's header: 1 or 2 bytes of it */
	memcpy(hdr, v2_tcp6_tlv, sizeof(v2_tcp6_tlv));
	hdr[15] = 0x36 - 11 + 1;
	assert_int_equal(verdict_of(hdr, 16 + 0x36 - 11 + 1, PROXY_ACCEPT_V2), PROXY_MALFORMED);
	hdr[15] = 0x36 - 11 + 2;
	assert_int_equal(verdict_of(hdr, 16 + 0x36 - 11 + 2, PROXY_ACCEPT_V2), PROXY_MALFORMED);
	/* ... or a value */
	hdr[15] = 0x36 - 1;
	assert_int_equal(verdict_of(hdr, 16 + 0x36 - 1, PROXY_ACCEPT_V2), PROXY_MALFORMED);
}

static void test_v2_length_cap(void **state)
{
	static uint8_t hdr[PROXY_V2_MAX_LEN + 1];
	size_t tlv = PROXY_V2_MAX_LEN - 16 - 12 - 3;	/* one TLV filling the cap */
	struct proxy_header h;

	(void)state;
	memset(hdr, 0x5A, sizeof(hdr));
	memcpy(hdr, v2_tcp4, sizeof(v2_tcp4));
	hdr[14] = (uint8_t)((PROXY_V2_MAX_LEN - 16) >> 8);
	hdr[15] = (uint8_t)(PROXY_V2_MAX_LEN - 16);
	hdr[28] = 0xEE;
	hdr[29] = (uint8_t)(tlv >> 8);
	hdr[30] = (uint8_t)tlv;
	parse_valid(hdr, PROXY_V2_MAX_LEN, PROXY_ACCEPT_V2, &h);
	assert_int_equal(h.length, PROXY_V2_MAX_LEN);
	assert_inet4(&h.src, h.srclen, "192.0.2.10", 54321);

	/* one byte more is refused on the length word alone, whatever the command */
	hdr[15] = (uint8_t)(PROXY_V2_MAX_LEN - 16 + 1);
	assert_int_equal(verdict_of(hdr, 16, PROXY_ACCEPT_V2), PROXY_MALFORMED);
	assert_int_equal(verdict_of(hdr, sizeof(hdr), PROXY_ACCEPT_V2), PROXY_MALFORMED);
	hdr[12] = 0x20;
	assert_int_equal(verdict_of(hdr, 16, PROXY_ACCEPT_V2), PROXY_MALFORMED);
	hdr[14] = 0xFF;
	hdr[15] = 0xFF;
	assert_int_equal(verdict_of(hdr, 16, PROXY_ACCEPT_V2), PROXY_MALFORMED);
}

/* ---- telling PROXY from PostgreSQL ---- */

static void test_not_proxy(void **state)
{
	static const uint8_t startup[] = {
		0x00, 0x00, 0x00, 0x17, 0x00, 0x03, 0x00, 0x00,
		'u', 's', 'e', 'r', 0, 'a', 'l', 'i', 'c', 'e', 0, 0,
	};
	static const uint8_t tls_hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
	static const unsigned masks[] = { PROXY_ACCEPT_V1, PROXY_ACCEPT_V2, ACCEPT_ALL };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		assert_int_equal(verdict_of(startup, 1, masks[i]), PROXY_NOT_PROXY);
		assert_int_equal(verdict_of(startup, sizeof(startup), masks[i]), PROXY_NOT_PROXY);
		assert_int_equal(verdict_of(ssl_request, 1, masks[i]), PROXY_NOT_PROXY);
		assert_int_equal(verdict_of(ssl_request, sizeof(ssl_request), masks[i]),
				 PROXY_NOT_PROXY);
		assert_int_equal(verdict_of(tls_hello, 1, masks[i]), PROXY_NOT_PROXY);
	}
	assert_int_equal(VERDICT("GET / HTTP/1.1\r\n"), PROXY_NOT_PROXY);
	assert_int_equal(VERDICT("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_NOT_PROXY);
	assert_int_equal(VERDICT("PROXY\r\n"), PROXY_NOT_PROXY);
	assert_int_equal(VERDICT("PROXX"), PROXY_NOT_PROXY);
	/* the v2 signature differing in its last byte */
	assert_int_equal(VERDICT("\r\n\r\n\0\r\nQUIT\r"), PROXY_NOT_PROXY);
	assert_int_equal(VERDICT("\r\n\r\n\0\r\nQUIT"), PROXY_NEED_MORE);
	assert_int_equal(VERDICT("\r\n\r\n\0\r\nQUIT\n"), PROXY_NEED_MORE);
}

static void test_accept_mask(void **state)
{
	static const char v1[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
	struct proxy_header h;
	size_t n;

	(void)state;
	for (n = 0; n <= sizeof(v2_tcp4); n++) {
		assert_int_equal(verdict_of(v2_tcp4, n, PROXY_ACCEPT_V1),
				 n == 0 ? PROXY_NEED_MORE : PROXY_NOT_PROXY);
		assert_int_equal(verdict_of(v2_tcp4, n, 0), PROXY_NOT_PROXY);
	}
	for (n = 0; n <= sizeof(v1) - 1; n++) {
		assert_int_equal(verdict_of(v1, n, PROXY_ACCEPT_V2),
				 n == 0 ? PROXY_NEED_MORE : PROXY_NOT_PROXY);
		assert_int_equal(verdict_of(v1, n, 0), PROXY_NOT_PROXY);
	}
	assert_int_equal(PARSE(v1, ACCEPT_ALL, &h), PROXY_OK);
	assert_int_equal(h.version, 1);
	assert_int_equal(parse_exact(v2_tcp4, sizeof(v2_tcp4), ACCEPT_ALL, &h), PROXY_OK);
	assert_int_equal(h.version, 2);
}

/* Any verdict but PROXY_OK leaves nothing behind in *out. */
static void test_out_zeroed(void **state)
{
	struct proxy_header h, zero;

	(void)state;
	memset(&zero, 0, sizeof(zero));
	memset(&h, 0xA5, sizeof(h));
	assert_int_equal(PARSE("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", ACCEPT_ALL, &h),
			 PROXY_MALFORMED);
	assert_memory_equal(&h, &zero, sizeof(h));
	memset(&h, 0xA5, sizeof(h));
	assert_int_equal(PARSE("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", ACCEPT_ALL, &h),
			 PROXY_NEED_MORE);
	assert_memory_equal(&h, &zero, sizeof(h));
}

static void test_strings(void **state)
{
	(void)state;
	assert_string_equal(proxy_verdict_str(PROXY_OK), "ok");
	assert_non_null(proxy_verdict_str(PROXY_NEED_MORE));
	assert_non_null(proxy_verdict_str(PROXY_NOT_PROXY));
	assert_non_null(proxy_verdict_str(PROXY_MALFORMED));
	assert_non_null(proxy_verdict_str(PROXY_UNSUPPORTED));
	assert_non_null(proxy_verdict_str((enum proxy_verdict)99));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_max_length),
		cmocka_unit_test(test_v1_bad_addresses),
		cmocka_unit_test(test_v1_family_mismatch),
		cmocka_unit_test(test_v1_bad_ports),
		cmocka_unit_test(test_v1_bad_layout),
		cmocka_unit_test(test_v1_early_malformed),
		cmocka_unit_test(test_v2_tcp4),
		cmocka_unit_test(test_v2_tcp6),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v2_unspec_unix),
		cmocka_unit_test(test_v2_unsupported),
		cmocka_unit_test(test_v2_bad_family),
		cmocka_unit_test(test_v2_bad_lengths),
		cmocka_unit_test(test_v2_length_cap),
		cmocka_unit_test(test_not_proxy),
		cmocka_unit_test(test_accept_mask),
		cmocka_unit_test(test_out_zeroed),
		cmocka_unit_test(test_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
