/*
 * relay-t.h - one relayed direction's state (relay.h), for the session
 * that embeds two of them; the functions that move bytes are relay.h's.
 */
#ifndef WALGATE_RELAY_T_H
#define WALGATE_RELAY_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pg_scan.h"

/*
 * Called for every message once its prefix is known (sc->msg), with
 * captured false; a hook that needs more of it calls pg_scan_capture(sc,
 * ...) then, and is called again with captured true when that is in.
 */
typedef void (*relay_message_fn)(void *arg, struct pg_scanner *sc, bool captured);

struct relay_dir {
	struct pg_scanner scan;
	uint64_t bytes;			/* relayed so far */
	uint8_t last_type;		/* type of the last message seen */
	bool paused;			/* the source is not read: the sink is full */
	size_t high_water;
	relay_message_fn on_message;	/* may be NULL */
	void *arg;

	/* holding one message back (relay_hold), where relay_dir_holdable said so */
	bool holdable;
	bool hold_asked;		/* by the hook, during this pass */
	bool held;			/* the source is not read; the input keeps the message */
	size_t msg_start;		/* this pass: where the current message began, SIZE_MAX before it */
	size_t hold_from;		/* this pass: where the held message begins */
	size_t scan_end;		/* this pass: how far the scanner went */
	size_t scanned;			/* the input's first bytes, scanned already (the held message) */
};

#endif
