/*
 * slots.c - the table of replication slots streamed through walgate.
 *
 * A list searched by name: it is walked once per START_REPLICATION and
 * once per scrape, never per message (a session keeps its entry).
 */
#include "slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int64_t slots_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
