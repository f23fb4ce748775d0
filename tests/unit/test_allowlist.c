/*
 * test_allowlist.c - the allow list must admit exactly the addresses its
 * rules cover, at every edge, and refuse bad lists with a useful message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/allowlist.h"

/* ---- helpers ---- */

static struct allowlist *parse_ok(const char *spec)
{
	char err[300] = "";
	struct allowlist *al = allowlist_parse(spec, err, sizeof(err));

	if (!al)
		fail_msg("\"%s\" refused: %s", spec, err);
	return al;
}

static void parse_fails(const char *spec, const char *want)
{
	char err[300] = "";
	struct allowlist *al = allowlist_parse(spec, err, sizeof(err));

	if (al) {
		allowlist_free(al);
		fail_msg("\"%s\" accepted, expected: %s", spec, want);
	}
	assert_string_equal(err, want);
}

/* A peer address from text: AF_INET6 if it has a colon, AF_INET if not. */
static void make_peer(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(50000);
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(50000);
		assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
}

static bool match(const struct allowlist *al, const char *text)
{
	struct sockaddr_storage ss;

	make_peer(text, &ss);
	return allowlist_match(al, (struct sockaddr *)&ss);
}

#define assert_admits(al, text)		assert_true(match(al, text))
#define assert_refuses(al, text)	assert_false(match(al, text))

/* ---- syntax ---- */

static void test_parse_example(void **state)
{
	struct allowlist *al = parse_ok("10.0.0.0/8, 192.0.2.7, ::1/128, 2001:db8::/32");

	(void)state;
	assert_int_equal(allowlist_entries(al), 4);
	assert_admits(al, "10.20.30.40");
	assert_admits(al, "192.0.2.7");
	assert_admits(al, "::1");
	assert_admits(al, "2001:db8:ffff::1");
	assert_refuses(al, "192.0.2.8");
	assert_refuses(al, "11.0.0.0");
	assert_refuses(al, "::2");
	assert_refuses(al, "2001:db9::");
	allowlist_free(al);
}

static void test_separators(void **state)
{
	static const char *const specs[] = {
		"10.0.0.1 10.0.0.2 ::3",
		"10.0.0.1,10.0.0.2,::3",
		"10.0.0.1 , 10.0.0.2 ,::3",
		"  \t10.0.0.1\n,\r\n10.0.0.2\v\f::3  \n",
		"10.0.0.1,\n\t10.0.0.2 ::3",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		struct allowlist *al = parse_ok(specs[i]);

		assert_int_equal(allowlist_entries(al), 3);
		assert_admits(al, "10.0.0.1");
		assert_admits(al, "10.0.0.2");
		assert_admits(al, "::3");
		assert_refuses(al, "10.0.0.3");
		assert_refuses(al, "::2");
		allowlist_free(al);
	}
}

/* Entries are counted as written, even when they merge into one range. */
static void test_entries_as_written(void **state)
{
	struct allowlist *al = parse_ok("10.0.0.0/8 10.0.0.0/8, 10.1.0.0/16 10.1.2.3 ::1 ::1");

	(void)state;
	assert_int_equal(allowlist_entries(al), 6);
	allowlist_free(al);
	al = parse_ok("192.0.2.1");
	assert_int_equal(allowlist_entries(al), 1);
	allowlist_free(al);
}

/* ---- prefix edges ---- */

static void test_v4_slash0(void **state)
{
	struct allowlist *al = parse_ok("0.0.0.0/0");

	(void)state;
	assert_int_equal(allowlist_entries(al), 1);
	assert_admits(al, "0.0.0.0");
	assert_admits(al, "1.2.3.4");
	assert_admits(al, "127.0.0.1");
	assert_admits(al, "255.255.255.255");
	assert_admits(al, "::ffff:0.0.0.0");
	assert_admits(al, "::ffff:10.1.2.3");
	assert_admits(al, "::ffff:255.255.255.255");
	assert_refuses(al, "::");
	assert_refuses(al, "::1");
	assert_refuses(al, "2001:db8::1");
	assert_refuses(al, "::10.1.2.3");		/* IPv4-compatible is not mapped */
	assert_refuses(al, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	allowlist_free(al);

	/* host bits on a /0 are masked too */
	al = parse_ok("192.0.2.1/0");
	assert_admits(al, "0.0.0.0");
	assert_admits(al, "255.255.255.255");
	allowlist_free(al);
}

static void test_v6_slash0(void **state)
{
	struct allowlist *al = parse_ok("::/0");

	(void)state;
	assert_admits(al, "::");
	assert_admits(al, "::1");
	assert_admits(al, "2001:db8::1");
	assert_admits(al, "fe80::1");
	assert_admits(al, "::10.1.2.3");
	assert_admits(al, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_refuses(al, "0.0.0.0");
	assert_refuses(al, "1.2.3.4");
	assert_refuses(al, "255.255.255.255");
	/* a mapped peer is an IPv4 client: IPv6 rules are not asked */
	assert_refuses(al, "::ffff:1.2.3.4");
	assert_refuses(al, "::ffff:0.0.0.0");
	allowlist_free(al);

	/* both: everyone */
	al = parse_ok("0.0.0.0/0, ::/0");
	assert_admits(al, "1.2.3.4");
	assert_admits(al, "::ffff:1.2.3.4");
	assert_admits(al, "2001:db8::1");
	allowlist_free(al);
}

static void test_v4_exact(void **state)
{
	struct allowlist *bare = parse_ok("192.0.2.7");
	struct allowlist *full = parse_ok("192.0.2.7/32");
	struct allowlist *lists[] = { bare, full };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		assert_admits(lists[i], "192.0.2.7");
		assert_admits(lists[i], "::ffff:192.0.2.7");
		assert_refuses(lists[i], "192.0.2.6");
		assert_refuses(lists[i], "192.0.2.8");
		assert_refuses(lists[i], "::ffff:192.0.2.8");
		assert_refuses(lists[i], "::c000:207");	/* same low 32 bits, IPv6 */
		allowlist_free(lists[i]);
	}
}

static void test_v6_exact(void **state)
{
	struct allowlist *bare = parse_ok("2001:db8::7");
	struct allowlist *full = parse_ok("2001:db8::7/128");
	struct allowlist *lists[] = { bare, full };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		assert_admits(lists[i], "2001:db8::7");
		assert_admits(lists[i], "2001:db8:0:0:0:0:0:7");
		assert_refuses(lists[i], "2001:db8::6");
		assert_refuses(lists[i], "2001:db8::8");
		assert_refuses(lists[i], "2001:db8:0:1::7");
		assert_refuses(lists[i], "0.0.0.7");
		allowlist_free(lists[i]);
	}
}

static void test_slash31_slash127(void **state)
{
	struct allowlist *al = parse_ok("192.0.2.6/31, 2001:db8::6/127");

	(void)state;
	assert_refuses(al, "192.0.2.5");
	assert_admits(al, "192.0.2.6");
	assert_admits(al, "192.0.2.7");
	assert_refuses(al, "192.0.2.8");
	assert_refuses(al, "2001:db8::5");
	assert_admits(al, "2001:db8::6");
	assert_admits(al, "2001:db8::7");
	assert_refuses(al, "2001:db8::8");
	allowlist_free(al);

	/* host bit set on a /31 and /127 */
	al = parse_ok("192.0.2.7/31 2001:db8::7/127");
	assert_admits(al, "192.0.2.6");
	assert_admits(al, "2001:db8::6");
	assert_refuses(al, "192.0.2.8");
	allowlist_free(al);
}

/* The first and last address of each space, where hi + 1 would wrap. */
static void test_extreme_addresses(void **state)
{
	struct allowlist *al = parse_ok("255.255.255.255, 0.0.0.0, ::, "
					"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

	(void)state;
	assert_admits(al, "255.255.255.255");
	assert_admits(al, "0.0.0.0");
	assert_refuses(al, "255.255.255.254");
	assert_refuses(al, "0.0.0.1");
	assert_admits(al, "::");
	assert_admits(al, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_refuses(al, "::1");
	assert_refuses(al, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
	allowlist_free(al);

	/*
	 * A range ending at the top, then rules inside it: merging must not
	 * compute hi + 1 there, or the inner rules would split the range.
	 */
	al = parse_ok("255.0.0.0/8 255.1.0.0/16 255.255.255.254/31 255.255.255.255 "
		      "ff00::/8 ff01::/16 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127 "
		      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_refuses(al, "254.255.255.255");
	assert_admits(al, "255.0.0.0");
	assert_admits(al, "255.1.0.0");
	assert_admits(al, "255.2.0.0");
	assert_admits(al, "255.255.255.253");
	assert_admits(al, "255.255.255.255");
	assert_refuses(al, "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_admits(al, "ff00::");
	assert_admits(al, "ff01::");
	assert_admits(al, "ff02::");
	assert_admits(al, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd");
	assert_admits(al, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	allowlist_free(al);
}

static void test_host_bits_masked(void **state)
{
	struct allowlist *al = parse_ok("10.0.0.1/8, 2001:db8:1:2:3:4:5:6/32, 192.0.2.77/24");

	(void)state;
	assert_int_equal(allowlist_entries(al), 3);
	assert_refuses(al, "9.255.255.255");
	assert_admits(al, "10.0.0.0");
	assert_admits(al, "10.0.0.1");
	assert_admits(al, "10.255.255.255");
	assert_refuses(al, "11.0.0.0");
	assert_admits(al, "192.0.2.0");
	assert_admits(al, "192.0.2.255");
	assert_refuses(al, "192.0.3.0");
	assert_refuses(al, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_admits(al, "2001:db8::");
	assert_admits(al, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_refuses(al, "2001:db9::");
	allowlist_free(al);
}

/* ---- merging ---- */

/* lo - 1, lo, hi, hi + 1 of each range, with the range alone in the list. */
static void test_range_boundaries(void **state)
{
	struct allowlist *al = parse_ok("192.168.4.0/22");

	(void)state;
	assert_refuses(al, "192.168.3.255");
	assert_admits(al, "192.168.4.0");
	assert_admits(al, "192.168.5.128");
	assert_admits(al, "192.168.7.255");
	assert_refuses(al, "192.168.8.0");
	allowlist_free(al);

	al = parse_ok("2001:db8:1::/48");
	assert_refuses(al, "2001:db8:0:ffff:ffff:ffff:ffff:ffff");
	assert_admits(al, "2001:db8:1::");
	assert_admits(al, "2001:db8:1:ffff:ffff:ffff:ffff:ffff");
	assert_refuses(al, "2001:db8:2::");
	allowlist_free(al);

	/* a /64's hi + 1 carries from the low 64 bits into the high ones */
	al = parse_ok("2001:db8:0:5::/64");
	assert_refuses(al, "2001:db8:0:4:ffff:ffff:ffff:ffff");
	assert_admits(al, "2001:db8:0:5::");
	assert_admits(al, "2001:db8:0:5:ffff:ffff:ffff:ffff");
	assert_refuses(al, "2001:db8:0:6::");
	allowlist_free(al);

	/* a prefix inside the low half */
	al = parse_ok("2001:db8::1:0:0/96");
	assert_refuses(al, "2001:db8::0:ffff:ffff");
	assert_admits(al, "2001:db8::1:0:0");
	assert_admits(al, "2001:db8::1:ffff:ffff");
	assert_refuses(al, "2001:db8::2:0:0");
	allowlist_free(al);
}

static void check_like_10_slash_8(const struct allowlist *al)
{
	assert_refuses(al, "9.255.255.255");
	assert_admits(al, "10.0.0.0");
	assert_admits(al, "10.127.255.255");
	assert_admits(al, "10.128.0.0");
	assert_admits(al, "10.255.255.255");
	assert_refuses(al, "11.0.0.0");
}

static void test_merge_adjacent(void **state)
{
	struct allowlist *al = parse_ok("10.0.0.0/9, 10.128.0.0/9");

	(void)state;
	check_like_10_slash_8(al);
	assert_int_equal(allowlist_entries(al), 2);
	allowlist_free(al);
	al = parse_ok("10.128.0.0/9 10.0.0.0/9");
	check_like_10_slash_8(al);
	allowlist_free(al);
	al = parse_ok("10.0.0.0/9 10.128.0.0/10 10.192.0.0/10");
	check_like_10_slash_8(al);
	allowlist_free(al);

	/* IPv6, adjacent across the boundary of the two 64-bit halves */
	al = parse_ok("2001:db8:0:1::/64, 2001:db8:0:0:8000::/65, 2001:db8::/65");
	assert_refuses(al, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_admits(al, "2001:db8::");
	assert_admits(al, "2001:db8:0:0:7fff:ffff:ffff:ffff");
	assert_admits(al, "2001:db8:0:0:8000::");
	assert_admits(al, "2001:db8:0:0:ffff:ffff:ffff:ffff");
	assert_admits(al, "2001:db8:0:1::");
	assert_admits(al, "2001:db8:0:1:ffff:ffff:ffff:ffff");
	assert_refuses(al, "2001:db8:0:2::");
	allowlist_free(al);
}

/* 256 adjacent /24s in scrambled order are one /16. */
static void test_merge_many_adjacent(void **state)
{
	char spec[256 * 20], *p = spec;
	struct allowlist *al;

	(void)state;
	for (unsigned i = 0; i < 256; i++)
		p += sprintf(p, "10.1.%u.0/24 ", (i * 97u) % 256u);
	al = parse_ok(spec);
	assert_int_equal(allowlist_entries(al), 256);
	assert_refuses(al, "10.0.255.255");
	assert_admits(al, "10.1.0.0");
	assert_admits(al, "10.1.127.255");
	assert_admits(al, "10.1.128.0");
	assert_admits(al, "10.1.255.255");
	assert_refuses(al, "10.2.0.0");
	allowlist_free(al);
}

static void test_overlap_and_nesting(void **state)
{
	struct allowlist *al = parse_ok(
		"10.1.2.3, 10.1.0.0/16, 10.0.0.0/8, 10.1.2.0/24, 10.0.0.0/8, "
		"192.168.0.0/24, 192.168.2.0/24, 192.168.0.128/25, "
		"2001:db8::/32, 2001:db8:1::/48, 2001:db8::1");

	(void)state;
	check_like_10_slash_8(al);
	/* nested and repeated rules fold into the outer one */
	assert_admits(al, "10.1.2.3");
	assert_admits(al, "10.1.2.4");
	/* disjoint ranges with a gap between them are not joined */
	assert_admits(al, "192.168.0.255");
	assert_refuses(al, "192.168.1.0");
	assert_refuses(al, "192.168.1.255");
	assert_admits(al, "192.168.2.0");
	assert_admits(al, "192.168.2.255");
	assert_refuses(al, "192.168.3.0");
	assert_admits(al, "2001:db8:ffff::");
	assert_refuses(al, "2001:db9::");
	allowlist_free(al);
}

/* ---- mapped addresses ---- */

static void test_mapped_peers(void **state)
{
	struct allowlist *al = parse_ok("10.0.0.0/8, 2001:db8::/32");

	(void)state;
	assert_admits(al, "10.1.2.3");
	assert_admits(al, "::ffff:10.1.2.3");
	assert_admits(al, "::ffff:a01:203");
	assert_refuses(al, "::ffff:11.0.0.0");
	assert_refuses(al, "::ffff:9.255.255.255");
	assert_refuses(al, "::10.1.2.3");		/* IPv4-compatible: IPv6 */
	assert_refuses(al, "::fffe:10.1.2.3");
	allowlist_free(al);
}

static void test_mapped_rules(void **state)
{
	struct allowlist *al = parse_ok("::ffff:10.0.0.0/104");

	(void)state;
	check_like_10_slash_8(al);
	assert_admits(al, "::ffff:10.1.2.3");
	assert_refuses(al, "::ffff:11.0.0.0");
	assert_refuses(al, "::10.1.2.3");
	assert_refuses(al, "2001:db8::1");
	allowlist_free(al);

	/* the whole mapped block is 0.0.0.0/0 */
	al = parse_ok("::ffff:0:0/96");
	assert_admits(al, "0.0.0.0");
	assert_admits(al, "255.255.255.255");
	assert_admits(al, "::ffff:1.2.3.4");
	assert_refuses(al, "::1");
	assert_refuses(al, "::fffe:1.2.3.4");
	allowlist_free(al);

	/* a bare mapped address is /128, so /32 */
	al = parse_ok("::ffff:192.0.2.7, ::ffff:198.51.100.0/127");
	assert_admits(al, "192.0.2.7");
	assert_refuses(al, "192.0.2.6");
	assert_refuses(al, "192.0.2.8");
	assert_admits(al, "198.51.100.0");
	assert_admits(al, "198.51.100.1");
	assert_refuses(al, "198.51.100.2");
	assert_admits(al, "::ffff:198.51.100.1");
	allowlist_free(al);

	/* shorter than /96: an IPv6 rule only, mapped peers are IPv4 */
	al = parse_ok("::ffff:0:0/95");
	assert_admits(al, "::fffe:0:0");
	assert_admits(al, "::fffe:1.2.3.4");
	assert_refuses(al, "::ffff:1.2.3.4");
	assert_refuses(al, "1.2.3.4");
	assert_refuses(al, "::fffd:ffff:ffff");
	allowlist_free(al);
}

/* ---- other peers ---- */

static void test_other_families(void **state)
{
	struct allowlist *al = parse_ok("0.0.0.0/0 ::/0");
	struct sockaddr_un un;
	struct sockaddr_storage ss;

	(void)state;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	strcpy(un.sun_path, "/tmp/.s.PGSQL.5432");
	assert_false(allowlist_match(al, (struct sockaddr *)&un));
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNSPEC;
	assert_false(allowlist_match(al, (struct sockaddr *)&ss));
	allowlist_free(al);
}

/* The peer's scope id is not looked at: rules cannot name one. */
static void test_link_local_scope(void **state)
{
	struct allowlist *al = parse_ok("fe80::/10");
	struct sockaddr_storage ss;

	(void)state;
	make_peer("fe80::1", &ss);
	((struct sockaddr_in6 *)&ss)->sin6_scope_id = 3;
	assert_true(allowlist_match(al, (struct sockaddr *)&ss));
	make_peer("fec0::1", &ss);
	assert_false(allowlist_match(al, (struct sockaddr *)&ss));
	allowlist_free(al);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
	static const struct {
		const char *spec, *err;
	} cases[] = {
		{ "", "empty allow list" },
		{ " \t\r\n ", "empty allow list" },
		{ ",", "empty entry at the start of the list" },
		{ " , 10.0.0.0/8", "empty entry at the start of the list" },
		{ "10.0.0.0/8,,::1", "empty entry after \"10.0.0.0/8\"" },
		{ "10.0.0.0/8 , , ::1", "empty entry after \"10.0.0.0/8\"" },
		{ "10.0.0.0/8,", "empty entry after \"10.0.0.0/8\"" },
		{ "10.0.0.0/8 ::1 , ", "empty entry after \"::1\"" },
		{ "10.0.0.256", "invalid entry \"10.0.0.256\": not a valid IPv4 address" },
		{ "10.0.0", "invalid entry \"10.0.0\": not a valid IPv4 address" },
		{ "10.0.0.0.0", "invalid entry \"10.0.0.0.0\": not a valid IPv4 address" },
		{ "010.0.0.1", "invalid entry \"010.0.0.1\": not a valid IPv4 address" },
		{ "2001:db8:::1", "invalid entry \"2001:db8:::1\": not a valid IPv6 address" },
		{ "[::1]", "invalid entry \"[::1]\": not a valid IPv6 address" },
		{ "1:2:3:4:5:6:7:8:9", "invalid entry \"1:2:3:4:5:6:7:8:9\": not a valid IPv6 address" },
		{ "db.example.com",
		  "invalid entry \"db.example.com\": not an IP address (host names are not resolved)" },
		{ "10.0.0.0/33", "invalid entry \"10.0.0.0/33\": prefix length out of range" },
		{ "::/129", "invalid entry \"::/129\": prefix length out of range" },
		{ "::ffff:10.0.0.0/129", "invalid entry \"::ffff:10.0.0.0/129\": prefix length out of range" },
		{ "10.0.0.0/1000", "invalid entry \"10.0.0.0/1000\": prefix length out of range" },
		{ "10.0.0.0/99999999999999999999999",
		  "invalid entry \"10.0.0.0/99999999999999999999999\": prefix length out of range" },
		{ "10.0.0.0/-1", "invalid entry \"10.0.0.0/-1\": invalid prefix length" },
		{ "10.0.0.0/+8", "invalid entry \"10.0.0.0/+8\": invalid prefix length" },
		{ "10.0.0.0/8a", "invalid entry \"10.0.0.0/8a\": invalid prefix length" },
		{ "10.0.0.0/8/8", "invalid entry \"10.0.0.0/8/8\": invalid prefix length" },
		{ "10.0.0.0/08", "invalid entry \"10.0.0.0/08\": prefix length has a leading zero" },
		{ "::/00", "invalid entry \"::/00\": prefix length has a leading zero" },
		{ "1.2.3.4/", "invalid entry \"1.2.3.4/\": missing prefix length" },
		{ "/8", "invalid entry \"/8\": missing address" },
		{ "10.0.0.0 /8", "invalid entry \"/8\": missing address" },
		{ "fe80::1%eth0", "invalid entry \"fe80::1%eth0\": zone ids are not allowed" },
		{ "fe80::%2/64", "invalid entry \"fe80::%2/64\": zone ids are not allowed" },
		{ "1.2.3.4, ::1, 1.2.3.x", "invalid entry \"1.2.3.x\": not an IP address (host names are not resolved)" },
		{ "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa",
		  "invalid entry \"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa\": not a valid IPv6 address" },
		{ "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20/8",
		  "invalid entry \"1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20/8\": not a valid IPv4 address" },
		{ "10.0.0.0/8\001", "invalid entry \"10.0.0.0/8?\": invalid prefix length" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_fails(cases[i].spec, cases[i].err);
}

/* A long bad entry is quoted in part; a short or absent buffer is fine. */
static void test_error_buffer(void **state)
{
	char spec[200], want[200], err[16];

	(void)state;
	memset(spec, 'x', 100);
	spec[100] = '\0';
	snprintf(want, sizeof(want), "invalid entry \"%.64s...\": not an IP address "
		 "(host names are not resolved)", spec);
	parse_fails(spec, want);

	assert_null(allowlist_parse("10.0.0.0/33", err, sizeof(err)));
	assert_string_equal(err, "invalid entry \"");
	assert_null(allowlist_parse("10.0.0.0/33", NULL, 0));
	assert_null(allowlist_parse("", NULL, 0));
	err[0] = 'z';
	assert_null(allowlist_parse("", err, 0));
	assert_int_equal(err[0], 'z');
}

/* ---- against a brute-force matcher ---- */

#define RANDOM_RULES	5000
#define RANDOM_PEERS	100000

/* A rule as written, matched by comparing leading bits one at a time. */
struct ref_rule {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

static uint64_t rng_state;

/* splitmix64: deterministic, so a failure is reproducible. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static void rnd_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* The rule's family and address once ::ffff:a.b.c.d/96+ is read as IPv4. */
static void ref_normalize(const struct ref_rule *r, struct ref_rule *out)
{
	*out = *r;
	if (r->family == AF_INET6 && r->prefix >= 96 &&
	    memcmp(r->addr, mapped_prefix, 12) == 0) {
		memset(out, 0, sizeof(*out));
		out->family = AF_INET;
		memcpy(out->addr, r->addr + 12, 4);
		out->prefix = r->prefix - 96;
	}
}

/* Do the first prefix bits of a and b agree? Whole bytes, then the rest. */
static bool same_prefix(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	return rest == 0 || ((a[full] ^ b[full]) & (0xff00u >> rest) & 0xff) == 0;
}

/* Linear over the normalized rules: what the allow list must answer. */
static bool ref_match(const struct ref_rule *norm, size_t n, int family, const uint8_t *a)
{
	if (family == AF_INET6 && memcmp(a, mapped_prefix, 12) == 0) {
		family = AF_INET;
		a += 12;
	}
	for (size_t i = 0; i < n; i++)
		if (norm[i].family == family && same_prefix(norm[i].addr, a, norm[i].prefix))
			return true;
	return false;
}

/*
 * Rules crowd a few small blocks so that they overlap, nest and touch; a
 * few land anywhere, with shorter prefixes.
 */
static void random_rule(struct ref_rule *r)
{
	unsigned kind = rnd_below(20);

	memset(r, 0, sizeof(*r));
	if (kind < 10) {				/* 10.0.0.0/12 */
		r->family = AF_INET;
		r->addr[0] = 10;
		rnd_bytes(r->addr + 1, 3);
		r->addr[1] &= 0x0f;
		r->prefix = rnd_below(10) ? 24 + rnd_below(9) : 16 + rnd_below(8);
	} else if (kind < 12) {				/* anywhere */
		r->family = AF_INET;
		rnd_bytes(r->addr, 4);
		r->prefix = 8 + rnd_below(25);
	} else if (kind < 14) {				/* the same, written mapped */
		r->family = AF_INET6;
		memcpy(r->addr, mapped_prefix, 12);
		r->addr[12] = 10;
		rnd_bytes(r->addr + 13, 3);
		r->addr[13] &= 0x0f;
		r->prefix = 96 + 24 + rnd_below(9);
	} else if (kind < 19) {				/* 2001:db8:0:0-fff::/52ish */
		r->family = AF_INET6;
		memcpy(r->addr, "\x20\x01\x0d\xb8", 4);
		r->addr[6] = (uint8_t)(rnd_below(16));
		r->addr[7] = (uint8_t)rnd();
		if (rnd_below(2))
			rnd_bytes(r->addr + 8, 8);
		else
			rnd_bytes(r->addr + 14, 2);
		r->prefix = rnd_below(10) ? 104 + rnd_below(25) : 58 + rnd_below(11);
	} else {					/* anywhere, or mapped but short */
		r->family = AF_INET6;
		rnd_bytes(r->addr, 16);
		if (rnd_below(4) == 0)
			memcpy(r->addr, mapped_prefix, 12);
		r->prefix = 16 + rnd_below(80);
	}
}

static size_t append_rule(char *p, const struct ref_rule *r)
{
	static const char *const seps[] = { ", ", " ", ",", "\n", " ,\t" };
	char text[INET6_ADDRSTRLEN];
	bool bare = r->prefix == (r->family == AF_INET ? 32u : 128u) && rnd_below(2);

	assert_non_null(inet_ntop(r->family, r->addr, text, sizeof(text)));
	if (bare)
		return (size_t)sprintf(p, "%s%s", text, seps[rnd_below(5)]);
	return (size_t)sprintf(p, "%s/%u%s", text, r->prefix, seps[rnd_below(5)]);
}

static void add_one(uint8_t *a, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (++a[i] != 0)
			break;
}

static void sub_one(uint8_t *a, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (a[i]-- != 0)
			break;
}

/* First (or last) address of a normalized rule. */
static void rule_edge(const struct ref_rule *r, bool last, int *family, uint8_t *out)
{
	size_t n = r->family == AF_INET ? 4 : 16;

	*family = r->family;
	memcpy(out, r->addr, n);
	for (unsigned b = r->prefix; b < n * 8; b++) {
		uint8_t m = (uint8_t)(0x80 >> (b % 8));

		out[b / 8] = last ? out[b / 8] | m : out[b / 8] & (uint8_t)~m;
	}
}

/* Peers at the rules' edges (and one past), inside their blocks, and anywhere. */
static void random_peer(const struct ref_rule *norm, size_t n, int *family, uint8_t *a)
{
	unsigned kind = rnd_below(10);
	struct ref_rule r, rn;

	memset(a, 0, 16);
	if (kind < 5) {
		unsigned edge = rnd_below(4);

		rule_edge(&norm[rnd_below((unsigned)n)], edge >= 2, family, a);
		if (edge == 0)
			sub_one(a, *family == AF_INET ? 4 : 16);
		else if (edge == 3)
			add_one(a, *family == AF_INET ? 4 : 16);
	} else if (kind < 8) {
		random_rule(&r);
		ref_normalize(&r, &rn);
		rule_edge(&rn, rnd_below(2), family, a);
	} else {
		*family = rnd_below(2) ? AF_INET : AF_INET6;
		rnd_bytes(a, *family == AF_INET ? 4 : 16);
	}
	/* IPv4 peers also arrive mapped, from a dual-stack listener */
	if (*family == AF_INET && rnd_below(3) == 0) {
		memmove(a + 12, a, 4);
		memcpy(a, mapped_prefix, 12);
		*family = AF_INET6;
	}
}

static void to_sockaddr(int family, const uint8_t *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, a, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, a, 16);
	}
}

static void test_random_vs_brute_force(void **state)
{
	struct ref_rule *norm = calloc(RANDOM_RULES, sizeof(*norm));
	char *spec = malloc(RANDOM_RULES * 64 + 1), *p = spec;
	struct allowlist *al;
	size_t admitted = 0;

	(void)state;
	assert_non_null(norm);
	assert_non_null(spec);
	rng_state = 20240601;
	for (size_t i = 0; i < RANDOM_RULES; i++) {
		struct ref_rule r;

		random_rule(&r);
		p += append_rule(p, &r);
		ref_normalize(&r, &norm[i]);
	}
	/* a trailing comma would be an empty entry */
	while (p > spec && strchr(", \t\n", p[-1]))
		*--p = '\0';
	al = parse_ok(spec);
	assert_int_equal(allowlist_entries(al), RANDOM_RULES);

	for (size_t i = 0; i < RANDOM_PEERS; i++) {
		struct sockaddr_storage ss;
		uint8_t a[16];
		int family;
		bool want, got;

		random_peer(norm, RANDOM_RULES, &family, a);
		to_sockaddr(family, a, &ss);
		want = ref_match(norm, RANDOM_RULES, family, a);
		got = allowlist_match(al, (struct sockaddr *)&ss);
		if (want != got) {
			char text[INET6_ADDRSTRLEN];

			inet_ntop(family, a, text, sizeof(text));
			fail_msg("peer %s: brute force says %d, allow list %d", text, want, got);
		}
		admitted += got;
	}
	/* the test means something only if both answers are common */
	assert_in_range(admitted, RANDOM_PEERS / 5, RANDOM_PEERS * 4 / 5);
	allowlist_free(al);
	free(spec);
	free(norm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_example),
		cmocka_unit_test(test_separators),
		cmocka_unit_test(test_entries_as_written),
		cmocka_unit_test(test_v4_slash0),
		cmocka_unit_test(test_v6_slash0),
		cmocka_unit_test(test_v4_exact),
		cmocka_unit_test(test_v6_exact),
		cmocka_unit_test(test_slash31_slash127),
		cmocka_unit_test(test_extreme_addresses),
		cmocka_unit_test(test_host_bits_masked),
		cmocka_unit_test(test_range_boundaries),
		cmocka_unit_test(test_merge_adjacent),
		cmocka_unit_test(test_merge_many_adjacent),
		cmocka_unit_test(test_overlap_and_nesting),
		cmocka_unit_test(test_mapped_peers),
		cmocka_unit_test(test_mapped_rules),
		cmocka_unit_test(test_other_families),
		cmocka_unit_test(test_link_local_scope),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_random_vs_brute_force),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
