/*
 * fuzz_pg_startup.c - libFuzzer target for the startup-phase parser: the
 * length check and the packet parser must agree, never read past the
 * packet, and only point into it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pg_startup.h"

static void check_in(const char *p, const uint8_t *pkt, size_t len)
{
	if (p && ((const uint8_t *)p < pkt || (const uint8_t *)p >= pkt + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t len;
	struct pg_startup st;
	uint8_t *pkt;

	(void)pg_startup_is_tls_hello(data, size);
	if (pg_startup_length(data, size, &len) != PG_STARTUP_OK)
		return 0;
	if (len < 8 || len > 10000)
		abort();
	if (size < len)
		return 0;
	/* an exact-size copy, so that any over-read is caught */
	pkt = malloc(len);
	memcpy(pkt, data, len);
	if (pg_startup_parse(pkt, len, &st) == PG_STARTUP_OK && st.kind == PG_STARTUP_CANCEL_REQUEST) {
		/* the whole key inside the packet, right after the pid */
		if (st.cancel_key != pkt + 12 || st.cancel_key_len < 1 || st.cancel_key_len > 256 ||
		    12 + st.cancel_key_len != len)
			abort();
	}
	if (pg_startup_parse(pkt, len, &st) == PG_STARTUP_OK && st.kind == PG_STARTUP_MESSAGE) {
		check_in(st.user, pkt, len);
		check_in(st.database, pkt, len);
		check_in(st.options, pkt, len);
		check_in(st.replication, pkt, len);
		check_in(st.application_name, pkt, len);
		if (!st.user)
			abort();
	}
	free(pkt);
	return 0;
}
