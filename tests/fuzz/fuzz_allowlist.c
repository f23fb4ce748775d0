/*
 * fuzz_allowlist.c - libFuzzer target: allowlist_parse() on arbitrary text
 * must either refuse it with a printable message or build a list that
 * admits every address it was written with, answers the same for an IPv4
 * peer and its mapped form, and can be matched against any address.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Iproxy \
 *     proxy/core/allowlist.c tests/fuzz/fuzz_allowlist.c -o fuzz_al
 *   ./fuzz_al tests/fuzz/corpus/allowlist
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/allowlist.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Lists longer than this teach the parser nothing new, only run slower. */
#define MAX_SPEC	65536

#define SEPARATORS	", \t\n\v\f\r"

static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool match4(const struct allowlist *al, const uint8_t *a)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	memcpy(&sin.sin_addr, a, 4);
	return allowlist_match(al, (const struct sockaddr *)&sin);
}

static bool match6(const struct allowlist *al, const uint8_t *a)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	memcpy(&sin6.sin6_addr, a, 16);
	return allowlist_match(al, (const struct sockaddr *)&sin6);
}

/* An IPv4 peer and the same peer seen by a dual-stack socket are one client. */
static bool match4_both(const struct allowlist *al, const uint8_t *a)
{
	uint8_t m[16];
	bool plain = match4(al, a);

	memcpy(m, mapped_prefix, 12);
	memcpy(m + 12, a, 4);
	CHECK(match6(al, m) == plain);
	return plain;
}

/*
 * Each entry of an accepted list covers the address it was written with,
 * except a mapped address under a prefix shorter than /96: that rule is
 * IPv6-only and the address, as a peer, is an IPv4 client.
 */
static void check_entry(const struct allowlist *al, const char *s, size_t len)
{
	char text[64];
	uint8_t a[16];
	size_t alen = strcspn(s, "/");
	unsigned long prefix = 128;

	if (alen > len)
		alen = len;
	CHECK(alen > 0 && alen < sizeof(text));
	memcpy(text, s, alen);
	text[alen] = '\0';
	if (alen < len)
		prefix = strtoul(s + alen + 1, NULL, 10);
	if (inet_pton(AF_INET, text, a) == 1) {
		CHECK(match4_both(al, a));
		return;
	}
	CHECK(inet_pton(AF_INET6, text, a) == 1);
	if (memcmp(a, mapped_prefix, 12) == 0 && prefix < 96)
		return;
	CHECK(match6(al, a));
}

static void check_entries(const struct allowlist *al, const char *spec)
{
	const char *p = spec;
	size_t n = 0, len;

	for (;;) {
		p += strspn(p, SEPARATORS);
		if (*p == '\0')
			break;
		len = strcspn(p, SEPARATORS);
		check_entry(al, p, len);
		n++;
		p += len;
	}
	CHECK(n == allowlist_entries(al));
}

/* Addresses made of the input's own bytes, at the start and at the end. */
static void check_derived(const struct allowlist *al, const uint8_t *data, size_t size)
{
	uint8_t a[16] = { 0 };
	size_t n = size < 16 ? size : 16;

	memcpy(a, data, n);
	match4_both(al, a);
	match6(al, a);
	memcpy(a, data + size - n, n);
	match4_both(al, a);
	match6(al, a);
	memcpy(a, mapped_prefix, 12);
	match6(al, a);
}

static void check_error(const char *err)
{
	CHECK(err[0] != '\0');
	for (const char *p = err; *p; p++)
		CHECK(*p >= ' ' && *p < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[300], *spec;
	struct allowlist *al;

	if (size > MAX_SPEC)
		return 0;
	spec = malloc(size + 1);
	if (!spec)
		return 0;
	memcpy(spec, data, size);
	spec[size] = '\0';
	err[0] = '\0';
	al = allowlist_parse(spec, err, sizeof(err));
	if (!al) {
		check_error(err);
	} else {
		CHECK(size > 0);
		check_entries(al, spec);
		check_derived(al, data, size);
		allowlist_free(al);
	}
	free(spec);
	return 0;
}
