/*
 * proxy_header.h - recognise and decode the PROXY protocol header (HAProxy
 * doc/proxy-protocol.txt, versions 1 and 2) that a load balancer sends
 * before the client's first byte, telling who the client really is.
 *
 * Pure: the caller hands in the bytes it has buffered so far and learns
 * whether they are a whole header, the start of one, or something else;
 * nothing is copied or allocated, no socket is touched.
 */
#ifndef WALGATE_PROXY_HEADER_H
#define WALGATE_PROXY_HEADER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The spec's own bound on a v1 line, "PROXY" through CRLF. */
#define PROXY_V1_MAX_LEN 107
#define PROXY_V2_MAX_LEN 4096          /* 16-byte header + address block + TLVs, our cap */

enum proxy_verdict {
	PROXY_OK = 0,          /* *out filled, out->length bytes form the header */
	PROXY_NEED_MORE,       /* could still become a valid header: read more (caller bounds the wait) */
	PROXY_NOT_PROXY,       /* the bytes do not start with a v1 or v2 signature (of an allowed version) */
	PROXY_MALFORMED,       /* a signature, but the rest is invalid (bad line, bad lengths, bad address, too long) */
	PROXY_UNSUPPORTED,     /* valid but unusable: v2 version != 2, command not LOCAL/PROXY, UDP/DGRAM transport */
};

/* Bits of the accept mask: which versions the listener lets in. */
#define PROXY_ACCEPT_V1 1u
#define PROXY_ACCEPT_V2 2u

struct proxy_header {
	int version;                  /* 1 or 2 */
	bool local;                   /* v2 LOCAL, v1 UNKNOWN, or v2 AF_UNSPEC/AF_UNIX: no source address to use */
	bool unknown_source;          /* v1 UNKNOWN, v2 PROXY with AF_UNSPEC/AF_UNIX: a relayed client the header does not name (not a v2 LOCAL, the balancer's own connection) */
	struct sockaddr_storage src;  /* valid when !local: AF_INET or AF_INET6 with port */
	struct sockaddr_storage dst;
	socklen_t srclen, dstlen;
	size_t length;                /* total bytes of the header, to be consumed */
};

/*
 * Look at buf[0..len), the first bytes the client sent, and say whether a
 * PROXY header of a version allowed by accept (PROXY_ACCEPT_* bits) starts
 * there. Bytes after the header (the client's own traffic) are never
 * looked at. The verdict is final as soon as it is not PROXY_NEED_MORE:
 * more bytes would not change it, so PROXY_NOT_PROXY comes after the first
 * byte that differs from every allowed signature. *out is filled on
 * PROXY_OK and zeroed on every other verdict. Never reads past len.
 */
enum proxy_verdict proxy_header_parse(const uint8_t *buf, size_t len, unsigned accept,
				      struct proxy_header *out);

/* Short human-readable reason for a verdict, for logs. */
const char *proxy_verdict_str(enum proxy_verdict v);

#endif
