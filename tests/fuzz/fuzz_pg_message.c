/*
 * fuzz_pg_message.c - libFuzzer target for the readers of upstream
 * messages walgate decodes itself: the ErrorResponse field list and
 * BackendKeyData. Both must stay inside the payload they are given.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pg_message.h"
#include "protocol/pg_wire.h"

static void check_in(const void *p, const uint8_t *buf, size_t len)
{
	if (p && ((const uint8_t *)p < buf || (const uint8_t *)p >= buf + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size > 0 ? size : 1);
	struct pg_error_fields f;
	const uint8_t *key;
	size_t key_len;
	uint32_t pid;

	/* an exact-size copy, so that any over-read is caught */
	memcpy(copy, data, size);
	if (pg_parse_error(copy, size, &f) == 0) {
		check_in(f.severity, copy, size);
		check_in(f.sqlstate, copy, size);
		check_in(f.message, copy, size);
		check_in(f.detail, copy, size);
		check_in(f.hint, copy, size);
	}
	if (pg_parse_backend_key(copy, size, &pid, &key, &key_len) == 0) {
		if (key != copy + 4 || key_len < 1 || key_len > PG_CANCEL_KEY_MAX || key_len + 4 != size)
			abort();
	}
	free(copy);
	return 0;
}
