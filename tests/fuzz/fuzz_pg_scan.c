/*
 * fuzz_pg_scan.c - libFuzzer target for the streaming message scanner:
 * the input is fed whole and again in chunks whose sizes come from the
 * input itself; both runs must report the same messages and the same end.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pg_scan.h"

struct outcome {
	uint64_t messages;
	uint32_t last_length;
	uint8_t last_type;
	enum pg_scan_error error;
	bool boundary;
	uint64_t captured;		/* checksum of every completed capture */
};

static uint64_t capture_sum(const uint8_t *p, uint32_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static struct outcome run(const uint8_t *data, size_t size, size_t chunk_seed)
{
	struct pg_scanner sc;
	struct outcome o = { 0 };
	static uint8_t capture[1024];
	uint32_t want = 0;
	size_t off = 0;

	pg_scan_init(&sc, 1u << 20);
	while (off < size) {
		size_t chunk = chunk_seed ? 1 + (data[off] + chunk_seed) % 17 : size - off;
		const uint8_t *p;
		enum pg_scan_status st;

		if (chunk > size - off)
			chunk = size - off;
		p = data + off;
		off += chunk;
		while (chunk > 0) {
			size_t used = pg_scan_feed(&sc, p, chunk, &st);

			if (used > chunk)
				abort();
			p += used;
			chunk -= used;
			if (st == PG_SCAN_ERROR)
				goto out;
			if (st == PG_SCAN_MESSAGE) {
				if (sc.msg.length < 4 || sc.msg.prefix_len > PG_SCAN_PREFIX_MAX)
					abort();
				o.last_type = sc.msg.type;
				o.last_length = sc.msg.length;
				/* replication commands are captured whole, up to a bound */
				if (sc.msg.type == 'Q')
					want = pg_scan_capture(&sc, capture, sizeof(capture));
			}
			if (st == PG_SCAN_CAPTURED)
				o.captured += capture_sum(capture, want);
		}
	}
out:
	o.messages = sc.messages;
	o.error = sc.error;
	o.boundary = pg_scan_at_boundary(&sc);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole = run(data, size, 0);
	struct outcome split = run(data, size, size ? data[0] : 1);

	if (whole.messages != split.messages || whole.error != split.error ||
	    whole.last_type != split.last_type || whole.last_length != split.last_length ||
	    whole.boundary != split.boundary || whole.captured != split.captured)
		abort();
	return 0;
}
