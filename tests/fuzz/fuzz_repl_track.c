/*
 * fuzz_repl_track.c - libFuzzer target for following a replication
 * connection: both directions of a session, framed by the scanner and
 * handed to repl_track as the relay does, capture of long commands
 * included. The input is a list of records, each [direction][length:2]
 * [bytes], so that the two directions interleave as on the wire.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "protocol/pg_scan.h"
#include "repl/repl_track.h"
#include "repl/slot_table.h"
#include "worker/worker.h"

struct side {
	struct pg_scanner scan;
	bool from_client;
};

static void feed(struct repl_track *t, struct side *sd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		enum pg_scan_status st;
		size_t used = pg_scan_feed(&sd->scan, p, n, &st);

		p += used;
		n -= used;
		if (st == PG_SCAN_ERROR)
			return;
		if (st == PG_SCAN_MESSAGE && sd->from_client)
			repl_track_from_client(t, &sd->scan, false);
		else if (st == PG_SCAN_MESSAGE)
			repl_track_from_server(t, &sd->scan.msg);
		else if (st == PG_SCAN_CAPTURED && sd->from_client)
			repl_track_from_client(t, &sd->scan, true);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t errors[PROTO_ERR_KINDS];
	struct slot_registry reg;
	struct side client = { .from_client = true }, server = { .from_client = false };
	struct repl_track *t;

	log_configure(LOG_LEVEL_ERROR, false);
	slots_init(&reg);
	pg_scan_init(&client.scan, 1u << 20);
	pg_scan_init(&server.scan, UINT32_MAX);
	t = repl_track_new(&reg, errors, "fuzz", "db");
	if (!t)
		abort();
	while (size >= 3) {
		size_t len = (size_t)data[1] << 8 | data[2];
		struct side *sd = data[0] & 1 ? &server : &client;

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		feed(t, sd, data, len);
		data += len;
		size -= len;
	}
	repl_track_free(t);
	/* every stream has ended: nothing may stay attached past its expiry */
	slots_expire(&reg, INT64_MAX, 0);
	if (reg.n != 0)
		abort();
	slots_free(&reg);
	return 0;
}
