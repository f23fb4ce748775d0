/*
 * allowlist.h - a list of IPv4/IPv6 addresses and CIDR ranges, parsed once
 * and matched against a peer address in O(log n).
 *
 * Syntax: entries separated by commas and/or whitespace, each an address
 * as inet_pton(3) reads it, optionally followed by "/prefix":
 *
 *     10.0.0.0/8, 192.0.2.7 ::1/128,2001:db8::/32
 *
 * - A bare address is /32 (IPv4) or /128 (IPv6).
 * - The prefix is decimal, 0..32 or 0..128, with no sign and no leading
 *   zero ("0" itself is fine): "/08" is refused rather than guessed at.
 * - Host bits below the prefix are masked, not refused: "10.0.0.1/8" means
 *   10.0.0.0/8. pg_hba.conf is strict here, but operators paste egress IPs
 *   with a prefix after them, and masking is the only reading of that.
 * - An IPv4-mapped IPv6 rule of /96 or longer (::ffff:10.0.0.0/104) is the
 *   IPv4 rule it carries (10.0.0.0/8). A mapped rule shorter than /96 is
 *   an IPv6 rule only, and as such never matches a mapped peer.
 * - Zone ids ("fe80::1%eth0") are refused: a rule names addresses, and the
 *   peer's scope id is not looked at, so fe80::/10 admits every link.
 * - Empty entries ("a,,b", a leading or trailing comma) and an empty list
 *   are errors: an allow list that admits nobody is never what was meant.
 *
 * Matching: an AF_INET peer is matched against the IPv4 rules. An AF_INET6
 * peer that is IPv4-mapped (::ffff:a.b.c.d, what a dual-stack listener
 * reports for IPv4 clients) is matched as the IPv4 address it carries,
 * against the IPv4 rules only: 0.0.0.0/0 admits it and ::/0 does not. Any
 * other AF_INET6 peer is matched against the IPv6 rules. Other families
 * never match.
 *
 * Pure: no I/O, no logging; allocates with malloc. A parsed list is never
 * modified, so workers may share one without locking.
 */
#ifndef WALGATE_ALLOWLIST_H
#define WALGATE_ALLOWLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct allowlist;

/*
 * Parse spec. Returns NULL on error with err naming the bad entry and why,
 * e.g. `invalid entry "10.0.0.0/33": prefix length out of range`.
 */
struct allowlist *allowlist_parse(const char *spec, char *err, size_t errlen);

/* Does the peer address match any entry? (See "Matching" above.) */
bool allowlist_match(const struct allowlist *al, const struct sockaddr *sa);

/* Number of entries as written, before overlapping ranges were merged. */
size_t allowlist_entries(const struct allowlist *al);

void allowlist_free(struct allowlist *al);

#endif
