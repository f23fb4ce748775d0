/*
 * synth_pgoutput.c - generates the synthetic walsender's stream: each
 * message is a CopyData 'w' (XLogData: start and end LSN, send time)
 * around one pgoutput message - Begin, a Relation before the first
 * change, Inserts of (id int4, payload text) as text tuples, Commit - with
 * LSNs that only grow and the current time in every timestamp.
 */
#include "synth_pgoutput.h"
#include "synth_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROW_LSN  64u		/* WAL bytes each change advances the LSN by */
#define XLOG_HDR 30u		/* 'd', length, 'w', start, end, time */
#define RELID    16384u

static unsigned row_size, txn_rows;
static uint8_t *payload;		/* row_size hex characters */
static uint8_t relation[128];
static size_t relation_len, max_msg;

size_t synth_pgoutput_init(unsigned rsize, unsigned trows)
{
	static const char hex[] = "0123456789abcdef";
	struct synth_msg m;

	if (rsize > (1u << 20) || trows == 0 || !(payload = malloc(rsize ? rsize : 1)))
		return 0;
	row_size = rsize;
	txn_rows = trows;
	for (unsigned i = 0; i < rsize; i++)
		payload[i] = (uint8_t)hex[(i * 7 + i / 16) & 15];
	/* Relation: relid, namespace, name, replica identity, then per column
	 * flags (1 = part of the key), name, type OID, typmod (-1). */
	synth_msg_start(&m, 'R');
	synth_msg_u32(&m, RELID);
	synth_msg_str(&m, "public");
	synth_msg_str(&m, "bench_synth");
	synth_msg_byte(&m, 'd');
	synth_msg_u16(&m, 2);
	synth_msg_byte(&m, 1);
	synth_msg_str(&m, "id");
	synth_msg_u32(&m, 23);
	synth_msg_u32(&m, UINT32_MAX);
	synth_msg_byte(&m, 0);
	synth_msg_str(&m, "payload");
	synth_msg_u32(&m, 25);
	synth_msg_u32(&m, UINT32_MAX);
	relation_len = m.len - PG_MSG_HEADER_LEN;	/* the pgoutput bytes only */
	memcpy(relation, m.buf + PG_MSG_HEADER_LEN, relation_len);
	max_msg = XLOG_HDR + 13 + 20 + 5 + row_size;
	if (max_msg < XLOG_HDR + relation_len)
		max_msg = XLOG_HDR + relation_len;
	return max_msg;
}

/* CopyData 'w' header for a payload of n bytes at lsn; returns its size. */
static size_t xlog_header(uint8_t *p, size_t n, uint64_t lsn, int64_t now)
{
	p[0] = 'd';
	pg_put_u32(p + 1, (uint32_t)(4 + 1 + 24 + n));
	p[5] = 'w';
	synth_put_u64(p + 6, lsn);
	synth_put_u64(p + 14, lsn);
	synth_put_u64(p + 22, (uint64_t)now);
	return XLOG_HDR;
}

size_t synth_keepalive(uint8_t *p, uint64_t lsn, int64_t now, bool reply)
{
	p[0] = 'd';
	pg_put_u32(p + 1, 4 + 18);
	p[5] = 'k';
	synth_put_u64(p + 6, lsn);
	synth_put_u64(p + 14, (uint64_t)now);
	p[22] = reply ? 1 : 0;
	return 23;
}

static size_t insert(struct synth_stream *st, uint8_t *q)
{
	char digits[24];
	size_t nd, n;

	nd = (size_t)snprintf(digits, sizeof digits, "%llu", (unsigned long long)++st->rowno);
	q[0] = 'I';
	pg_put_u32(q + 1, RELID);
	q[5] = 'N';
	synth_put_u16(q + 6, 2);
	q[8] = 't';
	pg_put_u32(q + 9, (uint32_t)nd);
	memcpy(q + 13, digits, nd);
	n = 13 + nd;
	q[n] = 't';
	pg_put_u32(q + n + 1, row_size);
	memcpy(q + n + 5, payload, row_size);
	if (row_size >= 8)	/* vary the rows a little */
		memcpy(q + n + 5, digits, nd < 8 ? nd : 8);
	return n + 5 + row_size;
}

/* One message at p (room for max_msg bytes); its size. */
static size_t one(struct synth_stream *st, uint8_t *p, int64_t now)
{
	uint8_t *q = p + XLOG_HDR;
	size_t n;

	if (st->keepalive_due) {
		st->keepalive_due = false;
		return synth_keepalive(p, st->lsn, now, true);
	}
	if (!st->in_txn) {	/* Begin: final LSN, commit time, xid */
		st->in_txn = true;
		st->txn_left = txn_rows;
		st->txn_end = st->lsn + (uint64_t)(txn_rows + 1) * ROW_LSN;
		q[0] = 'B';
		synth_put_u64(q + 1, st->txn_end);
		synth_put_u64(q + 9, (uint64_t)now);
		pg_put_u32(q + 17, ++st->xid);
		return xlog_header(p, 21, st->lsn, now) + 21;
	}
	if (!st->relation_sent) {
		st->relation_sent = true;
		memcpy(q, relation, relation_len);
		return xlog_header(p, relation_len, st->lsn, now) + relation_len;
	}
	if (st->txn_left > 0) {
		st->txn_left--;
		n = insert(st, q);
		xlog_header(p, n, st->lsn, now);
		st->lsn += ROW_LSN;
		return XLOG_HDR + n;
	}
	/* Commit: flags, commit LSN, end LSN, commit time. */
	st->in_txn = false;
	q[0] = 'C';
	q[1] = 0;
	synth_put_u64(q + 2, st->txn_end);
	synth_put_u64(q + 10, st->txn_end + ROW_LSN);
	synth_put_u64(q + 18, (uint64_t)now);
	xlog_header(p, 26, st->txn_end, now);
	st->lsn = st->txn_end + ROW_LSN;
	return XLOG_HDR + 26;
}

size_t synth_pgoutput_fill(struct synth_stream *st, uint8_t *p, size_t room, uint64_t budget,
			   int64_t now)
{
	size_t used = 0;

	while (used + max_msg <= room && used < budget)
		used += one(st, p + used, now);
	return used;
}
