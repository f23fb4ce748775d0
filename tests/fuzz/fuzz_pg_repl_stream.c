/*
 * fuzz_pg_repl_stream.c - libFuzzer target: the replication CopyData and
 * pgoutput decoders on arbitrary payloads must read only the prefix they
 * are given, judge lengths by the payload length, and agree with
 * themselves: seeing less of a message may make them say TOO_SHORT (the
 * header is not in view) or OK (the rest is trusted), never anything else
 * than seeing all of it would; and no cut of a message they accept whole
 * is accepted.
 *
 * Input: byte 0 chooses the context (bit 0 from the server, bit 1 inside
 * a pgoutput stream, bits 2-4 the proto_version mod 6, bits 5-7 bytes the
 * payload is said to have beyond the input, times 13); the rest is the
 * CopyData payload. Every buffer handed in is a heap block of exactly the
 * bytes the decoder may read.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iprotocol \
 *     protocol/pg_repl_stream.c tests/fuzz/fuzz_pg_repl_stream.c -o fuzz_repl_stream
 *   ./fuzz_repl_stream tests/fuzz/corpus/pg_repl_stream
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pg_repl_stream.h"
#include "protocol/pg_scan.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The most of a pgoutput message the scanner's prefix can hold. */
#define PGOUTPUT_VIEW	(PG_SCAN_PREFIX_MAX - PG_REPL_XLOGDATA_HDR_LEN)

struct context {
	bool from_server;
	bool in_stream;
	int proto_version;
	size_t extra;		/* payload bytes beyond the input */
};

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *copy = calloc(n > 0 ? n : 1, 1);

	CHECK(copy != NULL);
	if (n > 0)
		memcpy(copy, p, n);
	return copy;
}

static bool valid_verdict(enum pg_repl_verdict v)
{
	return v == PG_REPL_OK || v == PG_REPL_TOO_SHORT || v == PG_REPL_BAD_LENGTH ||
	       v == PG_REPL_MALFORMED || v == PG_REPL_UNKNOWN;
}

static enum pg_repl_verdict pgoutput_run(const uint8_t *p, size_t have, size_t len,
					 const struct context *cx, struct pgoutput_msg *m)
{
	uint8_t *copy = dup_bytes(p, have);
	enum pg_repl_verdict v = pgoutput_decode(copy, have, len, cx->proto_version,
						 cx->in_stream, m);

	free(copy);
	CHECK(valid_verdict(v));
	CHECK(pg_repl_verdict_str(v) != NULL && pgoutput_kind_str(m->kind) != NULL);
	if (have > 0 && len > 0)
		CHECK(m->type == p[0]);
	CHECK((v == PG_REPL_UNKNOWN) == (m->kind == PGOUTPUT_UNKNOWN) || have == 0 || len == 0);
	return v;
}

static bool is_change(enum pgoutput_kind k)
{
	return k == PGOUTPUT_INSERT || k == PGOUTPUT_UPDATE || k == PGOUTPUT_DELETE;
}

/*
 * A pgoutput message of len bytes: seen whole, seen through the scanner's
 * view, and cut short.
 */
static void check_pgoutput(const uint8_t *p, size_t len, const struct context *cx)
{
	struct pgoutput_msg whole, part, cut;
	size_t view = len < PGOUTPUT_VIEW ? len : PGOUTPUT_VIEW;
	enum pg_repl_verdict vw, vp, vc;
	size_t n;

	vw = pgoutput_run(p, len, len, cx, &whole);
	vp = pgoutput_run(p, view, len, cx, &part);
	CHECK(part.kind == whole.kind);
	if (vp != PG_REPL_OK && vp != PG_REPL_TOO_SHORT)
		CHECK(vp == vw);
	if (vw == PG_REPL_OK)
		CHECK(vp == PG_REPL_OK || vp == PG_REPL_TOO_SHORT);
	if (vw == PG_REPL_OK && vp == PG_REPL_OK)
		CHECK(memcmp(&whole, &part, sizeof(whole)) == 0);
	if (vw != PG_REPL_OK || len > 2 * PG_SCAN_PREFIX_MAX)
		return;
	for (n = 0; n < len; n++) {
		vc = pgoutput_run(p, n, n, cx, &cut);
		/* a short Stream Abort is the start of a long one */
		if (whole.kind == PGOUTPUT_STREAM_ABORT && n == 9)
			continue;
		/* a change's tuples are never walked: cut inside them, it still decodes */
		CHECK(vc == PG_REPL_TOO_SHORT || (vc == PG_REPL_OK && is_change(whole.kind)));
	}
}

/* The fixed-size messages: OK only at their exact size. */
static void check_fixed(const struct pg_repl_copydata *cd, size_t payload_len)
{
	switch (cd->kind) {
	case PG_REPL_COPY_KEEPALIVE:
		CHECK(payload_len == PG_REPL_KEEPALIVE_LEN);
		break;
	case PG_REPL_COPY_STATUS:
		CHECK(payload_len == PG_REPL_STATUS_LEN);
		break;
	case PG_REPL_COPY_FEEDBACK:
		CHECK(payload_len == PG_REPL_FEEDBACK_LEN);
		break;
	default:
		break;
	}
}

/* The payload as the scanner reports it: a prefix and the real length. */
static void check_copydata(const uint8_t *payload, size_t size, const struct context *cx)
{
	size_t payload_len = size + cx->extra;
	size_t have = size < PG_SCAN_PREFIX_MAX ? size : PG_SCAN_PREFIX_MAX;
	uint8_t *prefix = dup_bytes(payload, have);
	struct pg_repl_copydata cd;
	struct pgoutput_msg m;
	enum pg_repl_verdict v;

	v = pg_repl_copydata_decode(prefix, have, payload_len, cx->from_server, &cd);
	CHECK(valid_verdict(v));
	if (have > 0)
		CHECK(cd.type == payload[0]);
	if (v == PG_REPL_OK)
		check_fixed(&cd, payload_len);
	if (cd.kind == PG_REPL_COPY_UNKNOWN)
		CHECK(v == PG_REPL_UNKNOWN || have == 0);
	if (cd.kind == PG_REPL_COPY_XLOGDATA || cd.kind == PG_REPL_COPY_KEEPALIVE)
		CHECK(cx->from_server);
	if (cd.kind == PG_REPL_COPY_STATUS || cd.kind == PG_REPL_COPY_FEEDBACK)
		CHECK(!cx->from_server);
	if (v == PG_REPL_OK && cd.kind == PG_REPL_COPY_XLOGDATA) {
		const struct pg_repl_xlogdata *x = &cd.u.xlogdata;

		CHECK(x->data == prefix + PG_REPL_XLOGDATA_HDR_LEN);
		CHECK(x->data_have <= PGOUTPUT_VIEW && x->data_have <= x->data_len);
		CHECK(x->data_len == payload_len - PG_REPL_XLOGDATA_HDR_LEN);
		v = pgoutput_decode(x->data, x->data_have, x->data_len, cx->proto_version,
				    cx->in_stream, &m);
		CHECK(valid_verdict(v));
	}
	free(prefix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct context cx;

	if (size < 1)
		return 0;
	cx.from_server = data[0] & 1;
	cx.in_stream = (data[0] >> 1) & 1;
	cx.proto_version = ((data[0] >> 2) & 7) % 6;
	cx.extra = (size_t)(data[0] >> 5) * 13;
	data++;
	size--;

	check_copydata(data, size, &cx);
	/* the pgoutput message of a 'w', or the whole input taken as one */
	if (size > PG_REPL_XLOGDATA_HDR_LEN && data[0] == 'w')
		check_pgoutput(data + PG_REPL_XLOGDATA_HDR_LEN, size - PG_REPL_XLOGDATA_HDR_LEN, &cx);
	else
		check_pgoutput(data, size, &cx);
	return 0;
}
