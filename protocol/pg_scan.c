/*
 * pg_scan.c - frame a stream of typed PostgreSQL messages, chunk by chunk,
 * reporting each message's type, length and payload prefix once.
 *
 * Only the 5-byte header and at most PG_SCAN_PREFIX_MAX payload bytes are
 * ever copied; the rest of a payload is skipped by counting, so a 1 GB
 * CopyData costs the same as an empty one. The three states are implied by
 * the private fields:
 *   hdr_have < 5                  reading the header
 *   hdr_have == 5, !reported      reading the prefix
 *   hdr_have == 5, reported       skipping the rest of the payload
 *                                 (or copying it, while a capture lasts)
 */
#include "pg_scan.h"
#include "pg_wire.h"

#include <string.h>

void pg_scan_init(struct pg_scanner *sc, uint32_t max_length)
{
	memset(sc, 0, sizeof(*sc));
	sc->max_length = max_length;
}

bool pg_scan_at_boundary(const struct pg_scanner *sc)
{
	return sc->hdr_have == 0;
}

uint32_t pg_scan_payload_left(const struct pg_scanner *sc)
{
	return sc->hdr_have == PG_MSG_HEADER_LEN && sc->reported ? sc->remaining : 0;
}

const char *pg_scan_error_str(enum pg_scan_error e)
{
	switch (e) {
	case PG_SCAN_ERR_NONE:
		return "no error";
	case PG_SCAN_ERR_SHORT_LENGTH:
		return "invalid message length (less than 4)";
	case PG_SCAN_ERR_TOO_LONG:
		return "message length exceeds the limit";
	}
	return "unknown scanner error";
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Back at a boundary: the next byte fed is the type of a new message. */
static void scan_next_message(struct pg_scanner *sc)
{
	sc->hdr_have = 0;
	sc->reported = false;
	sc->remaining = 0;
}

/*
 * The message is known well enough for the caller. If nothing of its
 * payload is left the scanner is already at the next boundary, so that
 * pg_scan_at_boundary() is true while the caller handles it.
 */
static enum pg_scan_status scan_report(struct pg_scanner *sc)
{
	sc->messages++;
	if (sc->remaining == 0)
		scan_next_message(sc);
	else
		sc->reported = true;
	return PG_SCAN_MESSAGE;
}

static enum pg_scan_status scan_error(struct pg_scanner *sc, enum pg_scan_error e)
{
	sc->error = e;
	return PG_SCAN_ERROR;
}

/*
 * The header has just become complete: validate its length word before
 * anything of the payload is looked at, since everything after it would
 * be framed by that number.
 */
static enum pg_scan_status scan_header_done(struct pg_scanner *sc)
{
	uint32_t length = pg_get_u32(sc->hdr + 1);
	uint32_t payload;

	if (length < 4)
		return scan_error(sc, PG_SCAN_ERR_SHORT_LENGTH);
	if (length > sc->max_length)
		return scan_error(sc, PG_SCAN_ERR_TOO_LONG);
	payload = length - 4;
	sc->msg.type = sc->hdr[0];
	sc->msg.length = length;
	sc->msg.prefix_len = payload < PG_SCAN_PREFIX_MAX ? payload : PG_SCAN_PREFIX_MAX;
	sc->remaining = payload;
	sc->reported = false;
	if (payload == 0)
		return scan_report(sc);
	return PG_SCAN_MORE;
}

static size_t scan_header(struct pg_scanner *sc, const uint8_t *buf, size_t len,
			  enum pg_scan_status *st)
{
	size_t take = min_size(PG_MSG_HEADER_LEN - sc->hdr_have, len);

	memcpy(sc->hdr + sc->hdr_have, buf, take);
	sc->hdr_have = (uint8_t)(sc->hdr_have + take);
	if (sc->hdr_have == PG_MSG_HEADER_LEN)
		*st = scan_header_done(sc);
	return take;
}

/* Bytes of the prefix already copied follow from what is left to read. */
static size_t scan_prefix(struct pg_scanner *sc, const uint8_t *buf, size_t len,
			  enum pg_scan_status *st)
{
	uint32_t have = sc->msg.length - 4 - sc->remaining;
	size_t take = min_size(sc->msg.prefix_len - have, len);

	memcpy(sc->msg.prefix + have, buf, take);
	sc->remaining -= (uint32_t)take;
	if (have + take == sc->msg.prefix_len)
		*st = scan_report(sc);
	return take;
}

uint32_t pg_scan_capture(struct pg_scanner *sc, uint8_t *buf, uint32_t cap)
{
	uint32_t payload = sc->msg.length - 4;
	uint32_t want = payload < cap ? payload : cap;
	uint32_t have = sc->msg.prefix_len < want ? sc->msg.prefix_len : want;

	memcpy(buf, sc->msg.prefix, have);
	/* still in this message's payload, and the capture goes past the prefix */
	if (sc->reported && want > have) {
		sc->capture = buf;
		sc->capture_want = want;
		sc->capture_have = have;
	}
	return want;
}

/* Payload past the prefix: counted away, or copied while a capture lasts. */
static size_t scan_skip(struct pg_scanner *sc, const uint8_t *buf, size_t len,
			enum pg_scan_status *st)
{
	size_t take = min_size(sc->remaining, len);

	if (sc->capture) {
		take = min_size(take, sc->capture_want - sc->capture_have);
		memcpy(sc->capture + sc->capture_have, buf, take);
		sc->capture_have += (uint32_t)take;
		if (sc->capture_have == sc->capture_want) {
			sc->capture = NULL;
			*st = PG_SCAN_CAPTURED;
		}
	}
	sc->remaining -= (uint32_t)take;
	if (sc->remaining == 0)
		scan_next_message(sc);
	return take;
}

size_t pg_scan_feed(struct pg_scanner *sc, const uint8_t *buf, size_t len,
		    enum pg_scan_status *status)
{
	enum pg_scan_status st = PG_SCAN_MORE;
	size_t used = 0;

	/* a stream that lost its framing stays lost */
	if (sc->error != PG_SCAN_ERR_NONE) {
		*status = PG_SCAN_ERROR;
		return 0;
	}
	while (used < len && st == PG_SCAN_MORE) {
		if (sc->hdr_have < PG_MSG_HEADER_LEN)
			used += scan_header(sc, buf + used, len - used, &st);
		else if (!sc->reported)
			used += scan_prefix(sc, buf + used, len - used, &st);
		else
			used += scan_skip(sc, buf + used, len - used, &st);
	}
	*status = st;
	return used;
}
