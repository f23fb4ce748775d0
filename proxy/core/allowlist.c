/*
 * allowlist.c - parse an allow list into two sorted tables of disjoint
 * address ranges (IPv4, IPv6) and match a peer by binary search.
 *
 * Every rule becomes a closed range [lo, hi] at parse time. The ranges of
 * each family are sorted by lo and overlapping or adjacent ones merged, so
 * a table is a strictly increasing run of disjoint ranges and a lookup is
 * one binary search however the rules were written, repeated or nested.
 * IPv6 addresses are kept as two host-order 64-bit halves so that ranges
 * compare as integers.
 */
#include "core/allowlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct u128 {
	uint64_t hi, lo;
};

struct range4 {
	uint32_t lo, hi;
};

struct range6 {
	struct u128 lo, hi;
};

struct allowlist {
	size_t entries;			/* as written */
	struct range4 *v4;		/* sorted, disjoint, not adjacent */
	size_t n4;
	struct range6 *v6;
	size_t n6;
};

/* The tables while they are filled, one range per rule, unsorted. */
struct builder {
	struct range4 *v4;
	size_t n4, cap4;
	struct range6 *v6;
	size_t n6, cap6;
	size_t entries;
};

/* Characters that separate entries, besides the comma; the C locale's isspace. */
#define SPACE_CHARS	" \t\n\v\f\r"

/* How much of a bad entry an error message quotes. */
#define ECHO_MAX	64

static const char oom[] = "out of memory";

/* ---- 32- and 128-bit address arithmetic ---- */

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t load_be64(const uint8_t *p)
{
	return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

static struct u128 load_be128(const uint8_t *p)
{
	struct u128 v = { load_be64(p), load_be64(p + 8) };

	return v;
}

/* The top bits of a 32-bit value; shifting by 32 would be undefined. */
static uint32_t mask32(unsigned bits)
{
	return bits == 0 ? 0 : UINT32_MAX << (32 - bits);
}

static uint64_t mask64(unsigned bits)
{
	return bits == 0 ? 0 : UINT64_MAX << (64 - bits);
}

static bool u128_lt(struct u128 a, struct u128 b)
{
	return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}

static bool u128_le(struct u128 a, struct u128 b)
{
	return !u128_lt(b, a);
}

static bool u128_is_max(struct u128 a)
{
	return a.hi == UINT64_MAX && a.lo == UINT64_MAX;
}

/* a + 1; the caller has checked that a is not the largest address. */
static struct u128 u128_inc(struct u128 a)
{
	a.lo++;
	if (a.lo == 0)
		a.hi++;
	return a;
}

/* ::ffff:0:0/96, the block a dual-stack socket reports IPv4 peers in. */
static bool is_v4_mapped(const uint8_t *a)
{
	static const uint8_t pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return memcmp(a, pfx, sizeof(pfx)) == 0;
}

/* ---- building the tables ---- */

/* Double an array's capacity; NULL (the array untouched) if that fails. */
static void *grow(void *arr, size_t *cap, size_t elem)
{
	size_t ncap;
	void *p;

	if (*cap > SIZE_MAX / 2 / elem)
		return NULL;
	ncap = *cap ? *cap * 2 : 16;
	p = realloc(arr, ncap * elem);
	if (p)
		*cap = ncap;
	return p;
}

static bool add_v4(struct builder *b, const uint8_t *addr, unsigned prefix)
{
	uint32_t m = mask32(prefix), a = load_be32(addr);

	if (b->n4 == b->cap4) {
		struct range4 *p = grow(b->v4, &b->cap4, sizeof(*p));

		if (!p)
			return false;
		b->v4 = p;
	}
	b->v4[b->n4].lo = a & m;
	b->v4[b->n4].hi = (a & m) | ~m;
	b->n4++;
	return true;
}

static bool add_v6(struct builder *b, const uint8_t *addr, unsigned prefix)
{
	struct u128 a = load_be128(addr), m;
	struct range6 *r;

	if (b->n6 == b->cap6) {
		struct range6 *p = grow(b->v6, &b->cap6, sizeof(*p));

		if (!p)
			return false;
		b->v6 = p;
	}
	m.hi = mask64(prefix > 64 ? 64 : prefix);
	m.lo = mask64(prefix > 64 ? prefix - 64 : 0);
	r = &b->v6[b->n6++];
	r->lo.hi = a.hi & m.hi;
	r->lo.lo = a.lo & m.lo;
	r->hi.hi = r->lo.hi | ~m.hi;
	r->hi.lo = r->lo.lo | ~m.lo;
	return true;
}

/*
 * Digits only, no leading zero, at most max. "/08" is refused rather than
 * read as 8: prefixes are never written that way, so it is more likely a
 * typo than an intent, and inet_pton is just as strict about addresses.
 */
static const char *parse_prefix(const char *s, size_t len, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (len == 0)
		return "missing prefix length";
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return "invalid prefix length";
	if (s[0] == '0' && len > 1)
		return "prefix length has a leading zero";
	if (len > 3)
		return "prefix length out of range";
	for (size_t i = 0; i < len; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (v > max)
		return "prefix length out of range";
	*out = v;
	return NULL;
}

/* Why s (the address part of an entry) is not an address, as best told. */
static const char *bad_address(const char *s, size_t len)
{
	size_t i;

	if (memchr(s, ':', len))
		return "not a valid IPv6 address";
	for (i = 0; i < len; i++)
		if ((s[i] < '0' || s[i] > '9') && s[i] != '.')
			break;
	if (i == len)
		return "not a valid IPv4 address";
	return "not an IP address (host names are not resolved)";
}

/* One delimited entry: NULL, or why it is refused. */
static const char *parse_entry(struct builder *b, const char *s, size_t len)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash ? (size_t)(slash - s) : len;
	char text[INET6_ADDRSTRLEN];
	uint8_t addr[16];
	unsigned prefix;
	const char *why;
	bool v6;

	if (alen == 0)
		return "missing address";
	if (memchr(s, '%', alen))
		return "zone ids are not allowed";
	/* longer than any address inet_pton would take */
	if (alen >= sizeof(text))
		return bad_address(s, alen);
	memcpy(text, s, alen);
	text[alen] = '\0';
	v6 = memchr(text, ':', alen) != NULL;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, text, addr) != 1)
		return bad_address(s, alen);
	prefix = v6 ? 128 : 32;
	if (slash) {
		why = parse_prefix(slash + 1, len - alen - 1, prefix, &prefix);
		if (why)
			return why;
	}
	/* the first 96 bits are all the prefix covers: the rule is an IPv4 one */
	if (v6 && prefix >= 96 && is_v4_mapped(addr))
		return add_v4(b, addr + 12, prefix - 96) ? NULL : oom;
	if (v6)
		return add_v6(b, addr, prefix) ? NULL : oom;
	return add_v4(b, addr, prefix) ? NULL : oom;
}

static int cmp_range4(const void *a, const void *b)
{
	const struct range4 *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return 0;
}

static int cmp_range6(const void *a, const void *b)
{
	const struct range6 *x = a, *y = b;

	if (u128_lt(x->lo, y->lo))
		return -1;
	return u128_lt(y->lo, x->lo);
}

/*
 * Sorted by lo, fold each range into the last kept one when it overlaps or
 * touches it. Once the kept range reaches the top of the address space
 * everything after is inside it, and hi + 1 must not be computed.
 */
static size_t merge4(struct range4 *r, size_t n)
{
	size_t out = 0;

	if (n == 0)
		return 0;
	qsort(r, n, sizeof(*r), cmp_range4);
	for (size_t i = 1; i < n; i++) {
		if (r[out].hi == UINT32_MAX || r[i].lo <= r[out].hi + 1) {
			if (r[i].hi > r[out].hi)
				r[out].hi = r[i].hi;
		} else {
			r[++out] = r[i];
		}
	}
	return out + 1;
}

static size_t merge6(struct range6 *r, size_t n)
{
	size_t out = 0;

	if (n == 0)
		return 0;
	qsort(r, n, sizeof(*r), cmp_range6);
	for (size_t i = 1; i < n; i++) {
		if (u128_is_max(r[out].hi) || u128_le(r[i].lo, u128_inc(r[out].hi))) {
			if (u128_lt(r[out].hi, r[i].hi))
				r[out].hi = r[i].hi;
		} else {
			r[++out] = r[i];
		}
	}
	return out + 1;
}

/* Give back what merging freed; keeping the larger block is harmless. */
static void *shrink(void *arr, size_t n, size_t elem)
{
	void *p;

	if (n == 0) {
		free(arr);
		return NULL;
	}
	p = realloc(arr, n * elem);
	return p ? p : arr;
}

static struct allowlist *build(struct builder *b)
{
	struct allowlist *al = malloc(sizeof(*al));

	if (!al)
		return NULL;
	al->entries = b->entries;
	al->n4 = merge4(b->v4, b->n4);
	al->v4 = shrink(b->v4, al->n4, sizeof(*al->v4));
	al->n6 = merge6(b->v6, b->n6);
	al->v6 = shrink(b->v6, al->n6, sizeof(*al->v6));
	return al;
}

/* ---- parsing the list ---- */

/* The entry as written, bounded and printable only: it ends up in a log line. */
static void echo_entry(char out[ECHO_MAX + 4], const char *s, size_t len)
{
	size_t n = len < ECHO_MAX ? len : ECHO_MAX;

	for (size_t i = 0; i < n; i++)
		out[i] = s[i] > ' ' && s[i] < 0x7f ? s[i] : '?';
	if (n < len)
		memcpy(out + n, "...", 4);
	else
		out[n] = '\0';
}

static void entry_error(char *err, size_t errlen, const char *s, size_t len, const char *why)
{
	char echo[ECHO_MAX + 4];

	if (!err || errlen == 0)
		return;
	if (why == oom) {
		snprintf(err, errlen, "%s", why);
		return;
	}
	echo_entry(echo, s, len);
	snprintf(err, errlen, "invalid entry \"%s\": %s", echo, why);
}

/* prev: the entry before the empty one, NULL at the start of the list. */
static void empty_error(char *err, size_t errlen, const char *prev, size_t prevlen)
{
	char echo[ECHO_MAX + 4];

	if (!err || errlen == 0)
		return;
	if (!prev) {
		snprintf(err, errlen, "empty entry at the start of the list");
		return;
	}
	echo_entry(echo, prev, prevlen);
	snprintf(err, errlen, "empty entry after \"%s\"", echo);
}

static void plain_error(char *err, size_t errlen, const char *msg)
{
	if (err && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/*
 * Entries are runs of characters other than commas and space. Space alone
 * separates; a comma must have an entry on each side of it, so "a,,b" and
 * "a," are refused (they read like a value lost in an edit).
 */
struct allowlist *allowlist_parse(const char *spec, char *err, size_t errlen)
{
	struct builder b = { 0 };
	struct allowlist *al;
	const char *p = spec, *prev = NULL, *why;
	size_t len, prevlen = 0;
	bool after_comma = false;

	for (;;) {
		p += strspn(p, SPACE_CHARS);
		if (*p == ',' || (*p == '\0' && after_comma)) {
			empty_error(err, errlen, prev, prevlen);
			goto fail;
		}
		if (*p == '\0')
			break;
		len = strcspn(p, "," SPACE_CHARS);
		why = parse_entry(&b, p, len);
		if (why) {
			entry_error(err, errlen, p, len, why);
			goto fail;
		}
		b.entries++;
		prev = p;
		prevlen = len;
		p += len;
		p += strspn(p, SPACE_CHARS);
		after_comma = *p == ',';
		if (after_comma)
			p++;
	}
	if (b.entries == 0) {
		plain_error(err, errlen, "empty allow list");
		goto fail;
	}
	al = build(&b);
	if (!al) {
		plain_error(err, errlen, oom);
		goto fail;
	}
	return al;
fail:
	free(b.v4);
	free(b.v6);
	return NULL;
}

/* ---- matching ---- */

/* Index of the first range whose lo is above a: a can only be in the one before. */
static bool find4(const struct range4 *r, size_t n, uint32_t a)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r[mid].lo <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && a <= r[lo - 1].hi;
}

static bool find6(const struct range6 *r, size_t n, struct u128 a)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (u128_le(r[mid].lo, a))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && u128_le(a, r[lo - 1].hi);
}

bool allowlist_match(const struct allowlist *al, const struct sockaddr *sa)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	const uint8_t *a;

	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		return find4(al->v4, al->n4, ntohl(sin->sin_addr.s_addr));
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		a = sin6->sin6_addr.s6_addr;
		if (is_v4_mapped(a))
			return find4(al->v4, al->n4, load_be32(a + 12));
		return find6(al->v6, al->n6, load_be128(a));
	}
	return false;
}

size_t allowlist_entries(const struct allowlist *al)
{
	return al->entries;
}

void allowlist_free(struct allowlist *al)
{
	if (!al)
		return;
	free(al->v4);
	free(al->v6);
	free(al);
}
