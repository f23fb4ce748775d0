/*
 * synth_pgoutput.h - the synthetic walsender's stream generator: XLogData
 * CopyData messages carrying pgoutput (proto_version 1) transactions of
 * inserts, and keepalives, written into a caller's buffer.
 */
#ifndef WALGATE_BENCH_SYNTH_PGOUTPUT_H
#define WALGATE_BENCH_SYNTH_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYNTH_START_LSN 0x16B3748ull

/* Where one session's stream is: LSN, open transaction, rows so far. */
struct synth_stream {
	uint64_t lsn, txn_end, rowno;
	uint32_t txn_left, xid;
	bool in_txn, relation_sent, keepalive_due;
};

/* Set the row shape once: payload bytes per row, rows per transaction.
 * Returns the largest message the generator writes, or 0 on bad input. */
size_t synth_pgoutput_init(unsigned row_size, unsigned txn_rows);

/* Write whole messages into p (room bytes) until fewer than the largest
 * message would fit or budget bytes are written; returns bytes written. */
size_t synth_pgoutput_fill(struct synth_stream *st, uint8_t *p, size_t room, uint64_t budget,
			   int64_t now);

/* A primary keepalive ('k') CopyData message at p (23 bytes); its size. */
size_t synth_keepalive(uint8_t *p, uint64_t lsn, int64_t now, bool reply);

#endif
