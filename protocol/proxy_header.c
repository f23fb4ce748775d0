/*
 * proxy_header.c - decide whether a connection starts with a PROXY protocol
 * header (v1 text line or v2 binary block) and decode it.
 *
 * The header comes from the network before any authentication, so nothing
 * in it is trusted: every length is checked against what was received and
 * against the spec's bounds before it is used. Verdicts are taken in byte
 * order, each from bytes already present, so a verdict other than
 * PROXY_NEED_MORE never changes when more bytes arrive; a bad header is
 * refused as soon as it can no longer become a good one, rather than after
 * the caller's read timeout.
 */
#include "proxy_header.h"
#include "pg_wire.h"

#include <arpa/inet.h>
#include <string.h>

#define V1_SIG_LEN		6u
#define V2_SIG_LEN		12u
/* signature, version/command, family/transport, 2-byte length */
#define V2_HEADER_LEN		16u
#define V2_VER_CMD		12u	/* offsets into the v2 header */
#define V2_FAM			13u
#define V2_LEN			14u
#define V2_TLV_HEADER_LEN	3u	/* type, 2-byte length */

#define V2_VERSION		2u
#define V2_CMD_LOCAL		0u
#define V2_CMD_PROXY		1u

/* Family and transport byte (proxy-protocol.txt 2.2). */
#define V2_FAM_UNSPEC		0x00u
#define V2_FAM_TCP4		0x11u
#define V2_FAM_UDP4		0x12u
#define V2_FAM_TCP6		0x21u
#define V2_FAM_UDP6		0x22u
#define V2_FAM_UNIX_STREAM	0x31u
#define V2_FAM_UNIX_DGRAM	0x32u

/* Address block sizes: two addresses, then two ports for INET families. */
#define V2_ADDR_INET_LEN	12u
#define V2_ADDR_INET6_LEN	36u
#define V2_ADDR_UNIX_LEN	216u

/* Longest text inet_pton() can accept, e.g. "ffff:...:255.255.255.255". */
#define V1_INET_TEXT_MAX	(INET_ADDRSTRLEN - 1)
#define V1_INET6_TEXT_MAX	(INET6_ADDRSTRLEN - 1)
#define V1_PORT_TEXT_MAX	5u	/* "65535" */
/* src, dst, sport, dport after "TCP4" or "TCP6" */
#define V1_TCP_FIELDS		4

static const uint8_t v1_sig[V1_SIG_LEN] = { 'P', 'R', 'O', 'X', 'Y', ' ' };
static const uint8_t v2_sig[V2_SIG_LEN] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

const char *proxy_verdict_str(enum proxy_verdict v)
{
	switch (v) {
	case PROXY_OK:
		return "ok";
	case PROXY_NEED_MORE:
		return "incomplete PROXY protocol header";
	case PROXY_NOT_PROXY:
		return "no PROXY protocol header";
	case PROXY_MALFORMED:
		return "malformed PROXY protocol header";
	case PROXY_UNSUPPORTED:
		return "unsupported PROXY protocol version, command or transport";
	}
	return "unknown PROXY protocol verdict";
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* What has arrived so far agrees with sig (both may still be short). */
static bool sig_matches(const uint8_t *buf, size_t len, const uint8_t *sig, size_t siglen)
{
	size_t n = min_size(len, siglen);

	return n == 0 || memcmp(buf, sig, n) == 0;
}

/* addr is 4 or 16 bytes in network order, as inet_pton and v2 both give it. */
static void set_inet(struct sockaddr_storage *ss, socklen_t *sslen, int family,
		     const uint8_t *addr, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, sizeof(sin->sin_addr));
		*sslen = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr, sizeof(sin6->sin6_addr));
		*sslen = sizeof(*sin6);
	}
}

/* ---- version 1: "PROXY TCP4 1.2.3.4 5.6.7.8 1234 5432\r\n" ---- */

/* The parsed fields of a v1 TCP line, kept until the line is known whole. */
struct v1_tcp {
	int family;
	uint8_t addr[2][sizeof(struct in6_addr)];
	uint16_t port[2];
};

/*
 * Where the line ends: the first CR, which must be followed by LF and
 * leave the line within PROXY_V1_MAX_LEN. CR or LF anywhere else is an
 * error, so the line is simply everything before the first of them.
 * *body_len is the length without CRLF; *body_done says whether the CR
 * has arrived (the fields are all there), *line_done whether the LF has.
 */
static enum proxy_verdict v1_find_end(const uint8_t *buf, size_t len, size_t *body_len,
				      bool *body_done, bool *line_done)
{
	size_t n = min_size(len, PROXY_V1_MAX_LEN);
	size_t i;

	*body_done = *line_done = false;
	for (i = 0; i < n; i++) {
		if (buf[i] == '\n')
			return PROXY_MALFORMED;	/* LF without CR */
		if (buf[i] == '\r')
			break;
	}
	*body_len = i;
	if (i == n)	/* no CR within what may be a line */
		return len >= PROXY_V1_MAX_LEN ? PROXY_MALFORMED : PROXY_OK;
	/* the LF would be byte PROXY_V1_MAX_LEN + 1 */
	if (i + 1 >= PROXY_V1_MAX_LEN)
		return PROXY_MALFORMED;
	*body_done = true;
	if (i + 1 == len)
		return PROXY_OK;
	if (buf[i + 1] != '\n')
		return PROXY_MALFORMED;
	*line_done = true;
	return PROXY_OK;
}

/* Bytes up to the next space, or to the end of what is there. */
static size_t v1_field_len(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *sp = memchr(p, ' ', (size_t)(end - p));

	return (size_t)((sp != NULL ? sp : end) - p);
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_addr_char(int family, uint8_t c)
{
	if (is_digit(c) || c == '.')
		return true;
	if (family == AF_INET)
		return false;
	return c == ':' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * Could p[0..n) be (the start of) an address of family? Only the alphabet
 * and the length are checked, which no prefix of a valid address fails;
 * it also keeps a NUL from cutting the text short for inet_pton.
 */
static bool v1_addr_chars(int family, const uint8_t *p, size_t n)
{
	size_t max = family == AF_INET ? V1_INET_TEXT_MAX : V1_INET6_TEXT_MAX;
	size_t i;

	if (n > max)
		return false;
	for (i = 0; i < n; i++) {
		if (!is_addr_char(family, p[i]))
			return false;
	}
	return true;
}

static bool v1_addr(int family, const uint8_t *p, size_t n, uint8_t *addr)
{
	char text[INET6_ADDRSTRLEN];

	if (n == 0 || !v1_addr_chars(family, p, n))
		return false;
	memcpy(text, p, n);
	text[n] = '\0';
	return inet_pton(family, text, addr) == 1;
}

/*
 * Could p[0..n) be (the start of) a port: decimal digits, no sign, no
 * leading zero unless the port is "0", at most 65535? A prefix of a valid
 * port passes, so the same test serves the last, incomplete field.
 */
static bool v1_port_chars(const uint8_t *p, size_t n, uint16_t *port)
{
	uint32_t v = 0;
	size_t i;

	if (n > V1_PORT_TEXT_MAX || (n > 1 && p[0] == '0'))
		return false;
	for (i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return false;
		v = v * 10 + (uint32_t)(p[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* Field i of a TCP line, complete (final) or still arriving. */
static bool v1_tcp_field(struct v1_tcp *t, int i, const uint8_t *p, size_t n, bool final)
{
	uint16_t port;

	if (i < 2) {
		if (!final)
			return v1_addr_chars(t->family, p, n);
		return v1_addr(t->family, p, n, t->addr[i]);
	}
	if (!v1_port_chars(p, n, &port))
		return false;
	if (final && n == 0)
		return false;
	t->port[i - 2] = port;
	return true;
}

/*
 * "<src> <dst> <sport> <dport>" in p[0..end), single spaces, nothing
 * after. Unless body_done, the last field seen may be cut short: it is
 * judged as a prefix, and NEED_MORE says the line may yet be valid.
 */
static enum proxy_verdict v1_tcp_fields(struct v1_tcp *t, const uint8_t *p,
					const uint8_t *end, bool body_done)
{
	size_t n;
	int i;

	for (i = 0; i < V1_TCP_FIELDS; i++) {
		n = v1_field_len(p, end);
		if (p + n == end && !body_done)
			return v1_tcp_field(t, i, p, n, false) ? PROXY_NEED_MORE : PROXY_MALFORMED;
		if (!v1_tcp_field(t, i, p, n, true))
			return PROXY_MALFORMED;	/* also an empty field: two spaces */
		p += n;
		if (i == V1_TCP_FIELDS - 1)
			break;
		if (p == end)
			return PROXY_MALFORMED;	/* fields missing */
		p++;	/* the one space */
	}
	/* a space after the port: a trailing blank or a fifth field */
	return p == end ? PROXY_OK : PROXY_MALFORMED;
}

static bool token_is(const uint8_t *p, size_t n, const char *word)
{
	return n == strlen(word) && memcmp(p, word, n) == 0;
}

static bool token_starts(const uint8_t *p, size_t n, const char *word)
{
	return n <= strlen(word) && memcmp(p, word, n) == 0;
}

/*
 * The line after "PROXY ": the protocol, then for TCP4/TCP6 the four
 * fields, for UNKNOWN nothing or a space and anything (the spec tells the
 * receiver to ignore it).
 */
static enum proxy_verdict v1_body(const uint8_t *p, const uint8_t *end, bool body_done,
				  struct proxy_header *out)
{
	size_t n = v1_field_len(p, end);
	struct v1_tcp t;
	enum proxy_verdict v;

	if (p + n == end && !body_done) {
		if (token_starts(p, n, "TCP4") || token_starts(p, n, "TCP6") ||
		    token_starts(p, n, "UNKNOWN"))
			return PROXY_NEED_MORE;
		return PROXY_MALFORMED;
	}
	if (token_is(p, n, "UNKNOWN")) {
		out->local = true;
		out->unknown_source = true;
		return PROXY_OK;
	}
	memset(&t, 0, sizeof(t));
	if (token_is(p, n, "TCP4"))
		t.family = AF_INET;
	else if (token_is(p, n, "TCP6"))
		t.family = AF_INET6;
	else
		return PROXY_MALFORMED;
	if (p + n == end)
		return PROXY_MALFORMED;	/* "PROXY TCP4\r\n" */
	v = v1_tcp_fields(&t, p + n + 1, end, body_done);
	if (v != PROXY_OK)
		return v;
	set_inet(&out->src, &out->srclen, t.family, t.addr[0], t.port[0]);
	set_inet(&out->dst, &out->dstlen, t.family, t.addr[1], t.port[1]);
	return PROXY_OK;
}

static enum proxy_verdict v1_parse(const uint8_t *buf, size_t len, struct proxy_header *out)
{
	size_t body_len;
	bool body_done, line_done;
	enum proxy_verdict v;

	if (len < V1_SIG_LEN)
		return PROXY_NEED_MORE;
	v = v1_find_end(buf, len, &body_len, &body_done, &line_done);
	if (v != PROXY_OK)
		return v;
	v = v1_body(buf + V1_SIG_LEN, buf + body_len, body_done, out);
	if (v != PROXY_OK)
		return v;
	if (!line_done)
		return PROXY_NEED_MORE;	/* all fields good, LF still to come */
	out->version = 1;
	out->length = body_len + 2;
	return PROXY_OK;
}

/* ---- version 2: 16-byte header, address block, TLVs ---- */

/* For the PROXY command: how many address bytes the family needs. */
static enum proxy_verdict v2_family(uint8_t fam, size_t *addr_len)
{
	switch (fam) {
	case V2_FAM_UNSPEC:
		*addr_len = 0;
		return PROXY_OK;
	case V2_FAM_TCP4:
		*addr_len = V2_ADDR_INET_LEN;
		return PROXY_OK;
	case V2_FAM_TCP6:
		*addr_len = V2_ADDR_INET6_LEN;
		return PROXY_OK;
	case V2_FAM_UNIX_STREAM:
		*addr_len = V2_ADDR_UNIX_LEN;
		return PROXY_OK;
	case V2_FAM_UDP4:
	case V2_FAM_UDP6:
	case V2_FAM_UNIX_DGRAM:
		return PROXY_UNSUPPORTED;	/* walgate relays streams only */
	default:
		return PROXY_MALFORMED;
	}
}

/*
 * The TLVs from pos to total must tile it exactly: each 3-byte TLV header
 * has to fit, and its value must not run past total. Only received bytes
 * are walked, so a TLV that overruns is refused before the rest arrives.
 * Each step advances at least 3 bytes and total is capped: bounded.
 */
static enum proxy_verdict v2_tlvs(const uint8_t *buf, size_t len, size_t pos, size_t total)
{
	while (pos < total) {
		if (total - pos < V2_TLV_HEADER_LEN)
			return PROXY_MALFORMED;
		if (len < pos + V2_TLV_HEADER_LEN)
			return PROXY_NEED_MORE;
		pos += V2_TLV_HEADER_LEN + pg_get_u16(buf + pos + 1);
		if (pos > total)
			return PROXY_MALFORMED;
	}
	return len < total ? PROXY_NEED_MORE : PROXY_OK;
}

static void v2_addresses(const uint8_t *buf, uint8_t fam, struct proxy_header *out)
{
	const uint8_t *a = buf + V2_HEADER_LEN;

	switch (fam) {
	case V2_FAM_TCP4:
		set_inet(&out->src, &out->srclen, AF_INET, a, pg_get_u16(a + 8));
		set_inet(&out->dst, &out->dstlen, AF_INET, a + 4, pg_get_u16(a + 10));
		break;
	case V2_FAM_TCP6:
		set_inet(&out->src, &out->srclen, AF_INET6, a, pg_get_u16(a + 32));
		set_inet(&out->dst, &out->dstlen, AF_INET6, a + 16, pg_get_u16(a + 34));
		break;
	default:
		/* a UNIX path says nothing walgate can use about the client */
		out->local = true;
		out->unknown_source = true;
		break;
	}
}

static enum proxy_verdict v2_parse(const uint8_t *buf, size_t len, struct proxy_header *out)
{
	size_t total, addr_len = 0;
	uint8_t cmd, fam;
	enum proxy_verdict v;

	if (len <= V2_VER_CMD)
		return PROXY_NEED_MORE;
	cmd = buf[V2_VER_CMD] & 0x0f;
	if (buf[V2_VER_CMD] >> 4 != V2_VERSION)
		return PROXY_UNSUPPORTED;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return PROXY_UNSUPPORTED;
	if (len <= V2_FAM)
		return PROXY_NEED_MORE;
	fam = buf[V2_FAM];
	/* LOCAL: "discard the protocol block including the family" */
	if (cmd == V2_CMD_PROXY) {
		v = v2_family(fam, &addr_len);
		if (v != PROXY_OK)
			return v;
	}
	if (len < V2_HEADER_LEN)
		return PROXY_NEED_MORE;
	total = V2_HEADER_LEN + pg_get_u16(buf + V2_LEN);
	if (total > PROXY_V2_MAX_LEN || total - V2_HEADER_LEN < addr_len)
		return PROXY_MALFORMED;
	if (cmd == V2_CMD_LOCAL || fam == V2_FAM_UNSPEC) {
		/* no layout is defined for what follows: skip it unread */
		if (len < total)
			return PROXY_NEED_MORE;
		out->local = true;
		out->unknown_source = cmd == V2_CMD_PROXY;
	} else {
		v = v2_tlvs(buf, len, V2_HEADER_LEN + addr_len, total);
		if (v != PROXY_OK)
			return v;
		v2_addresses(buf, fam, out);
	}
	out->version = 2;
	out->length = total;
	return PROXY_OK;
}

enum proxy_verdict proxy_header_parse(const uint8_t *buf, size_t len, unsigned accept,
				      struct proxy_header *out)
{
	enum proxy_verdict v = PROXY_NOT_PROXY;

	memset(out, 0, sizeof(*out));
	/* 'P' and 0x0D: one byte tells the two signatures apart */
	if ((accept & PROXY_ACCEPT_V1) && sig_matches(buf, len, v1_sig, V1_SIG_LEN))
		v = v1_parse(buf, len, out);
	else if ((accept & PROXY_ACCEPT_V2) && sig_matches(buf, len, v2_sig, V2_SIG_LEN))
		v = v2_parse(buf, len, out);
	if (v != PROXY_OK)
		memset(out, 0, sizeof(*out));
	return v;
}
