/*
 * slot_table.c - the table of replication slots streamed through walgate.
 *
 * A list searched by name: it is walked once per START_REPLICATION and
 * once per scrape, never per message (a session keeps its entry).
 */
#include "repl/slot_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

void slots_init(struct slot_registry *r)
{
	TAILQ_INIT(&r->slots);
	r->n = 0;
}

static void slot_free(struct slot_registry *r, struct slot_stream *s)
{
	TAILQ_REMOVE(&r->slots, s, link);
	r->n--;
	lag_tracker_free(&s->lag);
	free(s);
}

void slots_free(struct slot_registry *r)
{
	while (!TAILQ_EMPTY(&r->slots))
		slot_free(r, TAILQ_FIRST(&r->slots));
}

static struct slot_stream *slot_find(struct slot_registry *r, const char *name)
{
	struct slot_stream *s;

	TAILQ_FOREACH(s, &r->slots, link)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

struct slot_stream *slots_attach(struct slot_registry *r, const char *name,
				 const char *database, enum pg_repl_kind kind)
{
	struct slot_stream *s = slot_find(r, name);

	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		snprintf(s->name, sizeof(s->name), "%s", name);
		lag_tracker_init(&s->lag);
		TAILQ_INSERT_TAIL(&r->slots, s, link);
		r->n++;
	}
	snprintf(s->database, sizeof(s->database), "%s", database ? database : "");
	s->kind = kind;
	s->streaming++;
	/* Positions sent by an earlier session are not this one's to confirm. */
	lag_tracker_free(&s->lag);
	return s;
}

void slots_detach(struct slot_stream *s, int64_t now_us)
{
	if (s->streaming > 0)
		s->streaming--;
	if (s->streaming == 0) {
		s->ended_us = now_us;
		lag_tracker_stop(&s->lag);	/* nothing more will be confirmed */
	}
}

void slots_expire(struct slot_registry *r, int64_t now_us, int64_t expiry_us)
{
	struct slot_stream *s, *next;

	for (s = TAILQ_FIRST(&r->slots); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->streaming == 0 && now_us - s->ended_us >= expiry_us)
			slot_free(r, s);
	}
}

uint64_t slot_unacknowledged(const struct slot_stream *s)
{
	uint64_t confirmed = s->flushed_lsn > s->start_lsn ? s->flushed_lsn : s->start_lsn;

	return s->sent_lsn > confirmed ? s->sent_lsn - confirmed : 0;
}

static void view_of(const struct slot_stream *s, int64_t now_us, struct slot_view *v)
{
	memset(v, 0, sizeof(*v));
	memcpy(v->name, s->name, sizeof(v->name));
	memcpy(v->database, s->database, sizeof(v->database));
	v->kind = s->kind;
	v->streaming = s->streaming;
	v->sent_lsn = s->sent_lsn;
	v->written_lsn = s->written_lsn;
	v->flushed_lsn = s->flushed_lsn;
	v->unacknowledged = slot_unacknowledged(s);
	v->write_lag = lag_tracker_seconds(&s->lag, LAG_WRITE, now_us);
	v->flush_lag = lag_tracker_seconds(&s->lag, LAG_FLUSH, now_us);
	v->last_commit_time = s->last_commit_time;
	v->last_status_unix = s->last_status_unix;
	v->transactions = s->transactions;
	memcpy(v->changes, s->changes, sizeof(v->changes));
	v->bytes_to_client = s->bytes_to_client;
	v->bytes_to_server = s->bytes_to_server;
	v->messages_to_client = s->messages_to_client;
	v->keepalives = s->keepalives;
	v->status_updates = s->status_updates;
	v->malformed = s->malformed;
}

long slots_view(const struct slot_registry *r, int64_t now_us, struct slot_view **out)
{
	const struct slot_stream *s;
	long n = 0;

	*out = NULL;
	if (r->n == 0)
		return 0;
	*out = calloc(r->n, sizeof(**out));
	if (!*out)
		return -1;
	TAILQ_FOREACH(s, &r->slots, link)
		view_of(s, now_us, &(*out)[n++]);
	return n;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

void slot_view_merge(struct slot_view *v, const struct slot_view *o)
{
	/* whose gauges describe the slot now: the streaming one, else the latest */
	bool theirs = o->streaming > v->streaming ||
		      (o->streaming == v->streaming && o->last_status_unix > v->last_status_unix);

	if (theirs) {
		memcpy(v->database, o->database, sizeof(v->database));
		v->kind = o->kind;
		v->unacknowledged = o->unacknowledged;
		v->write_lag = o->write_lag;
		v->flush_lag = o->flush_lag;
	}
	v->streaming += o->streaming;
	v->sent_lsn = max_u64(v->sent_lsn, o->sent_lsn);
	v->written_lsn = max_u64(v->written_lsn, o->written_lsn);
	v->flushed_lsn = max_u64(v->flushed_lsn, o->flushed_lsn);
	if (o->last_commit_time > v->last_commit_time)
		v->last_commit_time = o->last_commit_time;
	if (o->last_status_unix > v->last_status_unix)
		v->last_status_unix = o->last_status_unix;
	v->transactions += o->transactions;
	for (int i = 0; i < SLOT_OPS; i++)
		v->changes[i] += o->changes[i];
	v->bytes_to_client += o->bytes_to_client;
	v->bytes_to_server += o->bytes_to_server;
	v->messages_to_client += o->messages_to_client;
	v->keepalives += o->keepalives;
	v->status_updates += o->status_updates;
	v->malformed += o->malformed;
}

double slots_unix_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int64_t slots_now_us(void)
{
	struct timespec ts;

	/*
	 * Once per XLogData: the coarse clock (a few ms of resolution, well
	 * under LAG_SAMPLE_SPACING_US) is read from memory, never from the
	 * clock source, which some virtual machines reach only by a syscall.
	 */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
