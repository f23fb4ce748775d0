/*
 * pg_scan.h - streaming scanner of typed PostgreSQL messages (everything
 * after the startup packet, in either direction).
 *
 * The relay feeds it each chunk it is about to forward, in order, across
 * arbitrary read boundaries. It reports every message once, as soon as its
 * type, length and the first bytes of its payload (the prefix, at most
 * PG_SCAN_PREFIX_MAX) are known, so hooks can decode fixed headers without
 * the payload ever being copied or buffered whole. Cost is per message, not
 * per byte: payload bytes past the prefix are skipped by arithmetic.
 *
 * Pure: no I/O, no allocation.
 */
#ifndef WALGATE_PG_SCAN_H
#define WALGATE_PG_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Enough for CopyData 'w' (1 + 24 bytes) plus the longest fixed pgoutput
 * header walgate decodes (Commit, 1 + 25 bytes) with room to spare.
 */
#define PG_SCAN_PREFIX_MAX 64u

enum pg_scan_status {
	PG_SCAN_MORE = 0,	/* all given bytes consumed, no message completed its prefix */
	PG_SCAN_MESSAGE,	/* sc->msg describes a message: handle it, then call again */
	PG_SCAN_CAPTURED,	/* the capture asked for with pg_scan_capture() is complete */
	PG_SCAN_ERROR,		/* sc->error says why; the stream cannot be framed any more */
};

enum pg_scan_error {
	PG_SCAN_ERR_NONE = 0,
	PG_SCAN_ERR_SHORT_LENGTH,	/* length field < 4 */
	PG_SCAN_ERR_TOO_LONG,		/* length field > max_length */
};

struct pg_msg {
	uint8_t type;
	uint32_t length;			/* the length field: payload + 4 */
	uint32_t prefix_len;			/* min(payload, PG_SCAN_PREFIX_MAX) */
	uint8_t prefix[PG_SCAN_PREFIX_MAX];	/* first bytes of the payload */
};

struct pg_scanner {
	uint32_t max_length;		/* largest length field accepted */
	enum pg_scan_error error;
	struct pg_msg msg;		/* valid after PG_SCAN_MESSAGE */
	/* private */
	uint8_t hdr[5];
	uint8_t hdr_have;
	bool reported;			/* msg was reported, only payload left */
	uint32_t remaining;		/* payload bytes of msg not yet consumed */
	uint64_t messages;		/* messages reported so far */
	uint8_t *capture;		/* pg_scan_capture(): where payload bytes go */
	uint32_t capture_want;
	uint32_t capture_have;
};

/* Start a scanner at a message boundary; max_length caps the length field. */
void pg_scan_init(struct pg_scanner *sc, uint32_t max_length);

/*
 * Consume bytes from buf[0..len). Returns how many were consumed and sets
 * *status. On PG_SCAN_MESSAGE the caller handles sc->msg and calls again
 * with the rest (buf + consumed). On PG_SCAN_ERROR nothing further may be
 * fed. A message whose payload is shorter than the prefix is reported when
 * it is complete; a longer one when its prefix is.
 */
size_t pg_scan_feed(struct pg_scanner *sc, const uint8_t *buf, size_t len,
		    enum pg_scan_status *status);

/*
 * Right after PG_SCAN_MESSAGE, ask for more of this message than its
 * prefix: the first min(payload, cap) payload bytes are copied to buf
 * (the prefix included) as they are fed, and PG_SCAN_CAPTURED is reported
 * once they are all there. Returns the number of bytes that capture will
 * hold; when the prefix already held them, they are in buf on return and
 * no PG_SCAN_CAPTURED follows. For the rare message a hook must read
 * whole (a replication command): cap bounds what is ever copied.
 */
uint32_t pg_scan_capture(struct pg_scanner *sc, uint8_t *buf, uint32_t cap);

/* True between messages: nothing of a partial message has been fed. */
bool pg_scan_at_boundary(const struct pg_scanner *sc);

/*
 * Payload bytes of the message last reported that are still to be fed; 0
 * between messages and before a message is reported. Feeding no more than
 * this stops the scanner at the next boundary.
 */
uint32_t pg_scan_payload_left(const struct pg_scanner *sc);

const char *pg_scan_error_str(enum pg_scan_error e);

#endif
