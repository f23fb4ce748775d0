/*
 * fuzz_proxy_header.c - libFuzzer target: proxy_header_parse() on arbitrary
 * bytes, under every accept mask, must keep its promises: never read past
 * the input, never report a header longer than the input or than the spec
 * allows, never change a verdict other than NEED_MORE when more bytes
 * arrive, and flag exactly the headers that relay an unnamed source.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iprotocol \
 *     protocol/proxy_header.c tests/fuzz/fuzz_proxy_header.c -o fuzz_ph
 *   ./fuzz_ph tests/fuzz/corpus/proxy_header
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proxy_header.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned masks[] = {
	0, PROXY_ACCEPT_V1, PROXY_ACCEPT_V2, PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2,
};

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		if (b[i] != 0)
			return false;
	}
	return true;
}

static void check_addr(const struct sockaddr_storage *ss, socklen_t len)
{
	if (ss->ss_family == AF_INET)
		CHECK(len == sizeof(struct sockaddr_in));
	else
		CHECK(ss->ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6));
}

/*
 * A TCP4 line is canonical once parsed strictly (no leading zeros, single
 * spaces), so printing the result again must give back the very bytes.
 */
static void check_v1_tcp4_roundtrip(const uint8_t *data, const struct proxy_header *h)
{
	const struct sockaddr_in *s = (const struct sockaddr_in *)&h->src;
	const struct sockaddr_in *d = (const struct sockaddr_in *)&h->dst;
	char sa[INET_ADDRSTRLEN], da[INET_ADDRSTRLEN], line[PROXY_V1_MAX_LEN + 64];
	int n;

	CHECK(inet_ntop(AF_INET, &s->sin_addr, sa, sizeof(sa)) != NULL);
	CHECK(inet_ntop(AF_INET, &d->sin_addr, da, sizeof(da)) != NULL);
	n = snprintf(line, sizeof(line), "PROXY TCP4 %s %s %u %u\r\n", sa, da,
		     (unsigned)ntohs(s->sin_port), (unsigned)ntohs(d->sin_port));
	CHECK(n > 0 && (size_t)n == h->length);
	CHECK(memcmp(line, data, h->length) == 0);
}

static void check_ok(const uint8_t *data, size_t size, unsigned mask,
		     const struct proxy_header *h)
{
	CHECK(h->length > 0 && h->length <= size);
	if (h->version == 1) {
		CHECK(mask & PROXY_ACCEPT_V1);
		CHECK(h->length <= PROXY_V1_MAX_LEN);
		CHECK(memcmp(data, "PROXY ", 6) == 0);
		CHECK(data[h->length - 2] == '\r' && data[h->length - 1] == '\n');
		CHECK(memchr(data, '\n', h->length - 1) == NULL);
	} else {
		CHECK(h->version == 2);
		CHECK(mask & PROXY_ACCEPT_V2);
		CHECK(h->length >= 16 && h->length <= PROXY_V2_MAX_LEN);
		CHECK(h->length == 16 + ((size_t)data[14] << 8 | data[15]));
	}
	/* No source named: v1 UNKNOWN, or a v2 PROXY command (never LOCAL) without an inet family. */
	CHECK(!h->unknown_source || h->local);
	if (h->version == 1)
		CHECK(h->unknown_source == (memcmp(data, "PROXY UNKNOWN", 13) == 0));
	else if (h->local)
		CHECK(h->unknown_source == ((data[12] & 0x0f) == 1));
	if (h->local) {
		CHECK(h->srclen == 0 && h->dstlen == 0);
		CHECK(all_zero(&h->src, sizeof(h->src)) && all_zero(&h->dst, sizeof(h->dst)));
		return;
	}
	check_addr(&h->src, h->srclen);
	check_addr(&h->dst, h->dstlen);
	CHECK(h->src.ss_family == h->dst.ss_family);
	if (h->version == 1 && h->src.ss_family == AF_INET)
		check_v1_tcp4_roundtrip(data, h);
}

/*
 * The input cut at n must not contradict the whole input: a final verdict
 * on the prefix must be the whole input's verdict, and an OK the same
 * header. (A NEED_MORE on the whole thus implies NEED_MORE on every
 * prefix, and an OK implies NEED_MORE on every prefix shorter than it.)
 */
static void check_prefix(const uint8_t *data, size_t n, unsigned mask,
			 enum proxy_verdict whole, const struct proxy_header *h)
{
	struct proxy_header ph;
	enum proxy_verdict v;
	uint8_t *copy = malloc(n > 0 ? n : 1);

	CHECK(copy != NULL);
	if (n > 0)
		memcpy(copy, data, n);
	v = proxy_header_parse(copy, n, mask, &ph);
	free(copy);
	if (v == PROXY_NEED_MORE)
		return;
	CHECK(v == whole);
	if (v == PROXY_OK)
		CHECK(memcmp(&ph, h, sizeof(ph)) == 0);
}

/* The header without the bytes after it parses the same. */
static void check_header_alone(const uint8_t *data, unsigned mask, const struct proxy_header *h)
{
	struct proxy_header ph;
	uint8_t *copy = malloc(h->length);

	CHECK(copy != NULL);
	memcpy(copy, data, h->length);
	CHECK(proxy_header_parse(copy, h->length, mask, &ph) == PROXY_OK);
	free(copy);
	CHECK(memcmp(&ph, h, sizeof(ph)) == 0);
}

/* Every cut up to a few hundred bytes, then a sample: inputs can be 4 kB. */
static size_t next_cut(size_t n)
{
	return n < 300 ? n + 1 : n + 1 + n / 16;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_header h;
	enum proxy_verdict v;
	size_t i, n;

	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		v = proxy_header_parse(data, size, masks[i], &h);
		CHECK(proxy_verdict_str(v) != NULL);
		if (masks[i] == 0)
			CHECK(v == PROXY_NOT_PROXY);
		if (size > 0 && data[0] != 'P' && data[0] != 0x0D)
			CHECK(v == PROXY_NOT_PROXY);
		if (v == PROXY_OK)
			check_ok(data, size, masks[i], &h);
		else
			CHECK(all_zero(&h, sizeof(h)));
		for (n = 0; n < size; n = next_cut(n))
			check_prefix(data, n, masks[i], v, &h);
		/* only the header is read: what follows it cannot matter */
		if (v == PROXY_OK && h.length < size)
			check_header_alone(data, masks[i], &h);
	}
	return 0;
}
