/*
 * fuzz_pg_repl_cmd.c - libFuzzer target: pg_repl_cmd_parse() on arbitrary
 * Query text must read no byte past min(len, PG_REPL_CMD_SCAN_MAX), fill
 * its fixed buffers with terminated strings, and agree with itself: a text
 * it accepts whole it must accept, with the same fields, when the text is
 * followed by more than the parser will look at.
 *
 * The input is the text. It is played three ways, each from a heap block
 * of exactly the bytes the parser may read: as the whole payload, as the
 * payload with a NUL added, and padded with blanks to a payload longer
 * than PG_REPL_CMD_SCAN_MAX of which only that much is handed in.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iprotocol \
 *     protocol/pg_repl_cmd.c protocol/pg_repl_lex.c \
 *     tests/fuzz/fuzz_pg_repl_cmd.c -o fuzz_repl_cmd
 *   ./fuzz_repl_cmd tests/fuzz/corpus/pg_repl_cmd
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pg_repl_cmd.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		if (b[i] != 0)
			return false;
	}
	return true;
}

/* What every verdict promises about *c. */
static void check_result(enum pg_repl_cmd_verdict v, const struct pg_repl_cmd *c, size_t len)
{
	CHECK(pg_repl_cmd_verdict_str(v) != NULL);
	CHECK(pg_repl_cmd_kind_str(c->kind) != NULL);
	CHECK(pg_repl_cmd_error_str(c->error) != NULL);
	CHECK(terminated(c->slot, sizeof(c->slot)));
	CHECK(terminated(c->plugin, sizeof(c->plugin)));
	CHECK(terminated(c->publication_names, sizeof(c->publication_names)));
	switch (v) {
	case PG_REPL_CMD_NOT_REPLICATION:
		CHECK(all_zero(c, sizeof(*c)));
		break;
	case PG_REPL_CMD_OK:
		CHECK(c->error == PG_REPL_ERR_NONE);
		CHECK(c->kind != PG_REPL_CMD_NONE);
		if (c->cut)
			CHECK(len > PG_REPL_CMD_SCAN_MAX);
		if (c->kind == PG_REPL_CMD_CREATE_SLOT || c->kind == PG_REPL_CMD_DROP_SLOT ||
		    c->kind == PG_REPL_CMD_READ_SLOT)
			CHECK(c->slot[0] != '\0');
		if (c->kind == PG_REPL_CMD_CREATE_SLOT)
			CHECK(c->repl_kind != PG_REPL_KIND_NONE);
		if (c->repl_kind == PG_REPL_KIND_LOGICAL && c->kind == PG_REPL_CMD_START_REPLICATION)
			CHECK(c->slot[0] != '\0');
		if (c->kind == PG_REPL_CMD_TIMELINE_HISTORY)
			CHECK(c->timeline > 0);
		CHECK(c->proto_version >= 0);
		break;
	case PG_REPL_CMD_MALFORMED:
		CHECK(c->error != PG_REPL_ERR_NONE);
		break;
	default:
		CHECK(!"verdict out of range");
	}
}

/* Parse bytes [0..have) of a payload of len bytes, from a block of exactly have. */
static enum pg_repl_cmd_verdict run(const uint8_t *bytes, size_t have, size_t len,
				    struct pg_repl_cmd *c)
{
	uint8_t *copy = malloc(have > 0 ? have : 1);
	enum pg_repl_cmd_verdict v;

	CHECK(copy != NULL);
	if (have > 0)
		memcpy(copy, bytes, have);
	v = pg_repl_cmd_parse(copy, len, c);
	free(copy);
	check_result(v, c, len);
	return v;
}

/*
 * The text followed by blanks past the view: everything the whole text
 * said must still be said, and only the cut flag may tell the difference.
 */
static void check_long(const uint8_t *data, size_t size, enum pg_repl_cmd_verdict whole,
		       const struct pg_repl_cmd *wc)
{
	uint8_t buf[PG_REPL_CMD_SCAN_MAX];
	struct pg_repl_cmd c, expect;
	enum pg_repl_cmd_verdict v;

	memset(buf, ' ', sizeof(buf));
	memcpy(buf, data, size);
	v = run(buf, sizeof(buf), PG_REPL_CMD_SCAN_MAX + 1 + size, &c);
	if (whole == PG_REPL_CMD_OK) {
		CHECK(v == PG_REPL_CMD_OK);
		CHECK(c.cut);
		expect = *wc;
		expect.cut = true;
		CHECK(memcmp(&c, &expect, sizeof(c)) == 0);
	} else if (whole == PG_REPL_CMD_NOT_REPLICATION) {
		CHECK(v == PG_REPL_CMD_NOT_REPLICATION ||
		      (v == PG_REPL_CMD_MALFORMED && c.error == PG_REPL_ERR_TOO_LONG));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pg_repl_cmd c, wc;
	enum pg_repl_cmd_verdict v;
	uint8_t *text;

	/* as the whole payload: right only if it ends in its one NUL */
	v = run(data, size < PG_REPL_CMD_SCAN_MAX ? size : PG_REPL_CMD_SCAN_MAX, size, &c);
	if (size == 0 || memchr(data, '\0', size) != data + size - 1)
		CHECK(v == PG_REPL_CMD_MALFORMED || size > PG_REPL_CMD_SCAN_MAX);

	/* as text with its NUL */
	if (size + 1 > PG_REPL_CMD_SCAN_MAX || memchr(data, '\0', size) != NULL)
		return 0;
	text = malloc(size + 1);
	CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	v = run(text, size + 1, size + 1, &wc);
	free(text);
	CHECK(!wc.cut);
	check_long(data, size, v, &wc);
	return 0;
}
