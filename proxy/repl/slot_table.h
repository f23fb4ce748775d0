/*
 * slot_table.h - what walgate has seen of each replication slot streamed
 * through it: positions, lags, counts. One entry per slot name, shared by
 * the sessions that stream it one after another, kept for slot_expiry
 * after the last of them ends so that a reconnecting client continues its
 * counters and a scrape still sees the slot that just went away.
 *
 * Entries are created only when the server has accepted a
 * START_REPLICATION (its CopyBothResponse), so the table is bounded by the
 * upstream's max_replication_slots, not by what clients ask for.
 */
#ifndef WALGATE_SLOT_TABLE_H
#define WALGATE_SLOT_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "repl/slot_table-t.h"

void slots_init(struct slot_registry *r);
void slots_free(struct slot_registry *r);

/*
 * A session starts streaming `name`: find or create its entry. Returns
 * NULL when out of memory (the stream is then relayed without metrics).
 */
struct slot_stream *slots_attach(struct slot_registry *r, const char *name,
				 const char *database, enum pg_repl_kind kind);

/* Sent minus flushed (or minus the start, before any flush report); 0 when ahead. */
uint64_t slot_unacknowledged(const struct slot_stream *s);

/* That session's stream ended (CopyDone, an error, or the session closed). */
void slots_detach(struct slot_stream *s, int64_t now_us);

/*
 * Views of every entry into a new array (*out, free() it); returns the
 * count, or -1 when out of memory.
 */
long slots_view(const struct slot_registry *r, int64_t now_us, struct slot_view **out);

/*
 * Fold another worker's view of the same slot into v: counters add up,
 * positions take the furthest, the lags and timestamps of the one that
 * streams (or the later one).
 */
void slot_view_merge(struct slot_view *v, const struct slot_view *other);

/* Drop entries with no stream for longer than expiry_us. */
void slots_expire(struct slot_registry *r, int64_t now_us, int64_t expiry_us);

/* Seconds since the epoch, for timestamps shown to people. */
double slots_unix_now(void);

/* Monotonic microseconds (coarse: a few ms of resolution), the clock of every *_us above. */
int64_t slots_now_us(void);

#endif
