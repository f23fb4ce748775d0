/*
 * session_takeover.c - a replication session's claim on the slot it
 * streams (slot_claims.h), and taking a slot over from a stale session:
 *
 * - The owner: claims its slot when the server accepts its
 *   START_REPLICATION, records its client's standby status updates, gives
 *   the claim up when the stream ends or its upstream leg closes. When a
 *   newcomer takes the slot over, the owner's worker closes it: FATAL to
 *   its client, Terminate to the server, and the upstream leg kept until
 *   the server closes it, since then the walsender has released the slot.
 * - The newcomer: a START_REPLICATION naming a slot whose stream has been
 *   silent for longer than [replication] takeover_after, by the same
 *   user (the client's, and the upstream one), is held back (the relay
 *   stops reading the client), the stale stream evicted, and the command
 *   forwarded once that stream's claim is gone, or after TAKEOVER_WAIT_MS
 *   anyway. A live stream, another
 *   user's, or one being taken over already is left alone: the command
 *   goes on unchanged and the server answers it (55006, "replication slot
 *   ... is active for PID ...").
 *
 * Nothing here blocks: the newcomer polls the claims on a timer.
 */
#include "session/session_takeover.h"

#include "session/session.h"
#include "session/session_int.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "protocol/pg_message.h"
#include "relay/relay_io.h"
#include "relay/relay.h"
#include "repl/repl_track.h"
#include "repl/slot_table.h"
#include "session/session_cred.h"
#include "session/takeover_state.h"
#include "worker/slot_claims.h"
#include "worker/worker.h"

/* How long a newcomer waits for the stale stream to end, and how often it looks. */
#define TAKEOVER_WAIT_MS 5000
#define TAKEOVER_POLL_MS 20

/* Owners handed over per lock. */
#define EVICT_BATCH 16

static struct slot_claims *claims_of(const struct session *s)
{
	return &s->w->shared->claims;
}

static void key_of(const struct session *s, const char *slot, struct slot_claim_key *k)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->upstream, sizeof(k->upstream), "%s", s->upstream_label);
	snprintf(k->database, sizeof(k->database), "%s", s->repl->database);
	snprintf(k->slot, sizeof(k->slot), "%s", slot);
	k->kind = s->repl->start_kind;
}

static void wake_worker(void *arg)
{
	struct worker *w = arg;

	event_active(w->takeover_ev, EV_READ, 0);
}

static struct slot_claim_owner owner_of(struct session *s)
{
	struct slot_claim_owner o = { s->takeover->upstream_user, s->startup.user, s, wake_worker, s->w };

	return o;
}

/* ---- the owner ------------------------------------------------------- */

static void on_streaming(void *arg, bool on)
{
	struct takeover *tk = arg;
	struct session *s = tk->s;
	struct slot_claim_owner o = owner_of(s);
	struct slot_claim *reservation = tk->claim;	/* made while taking the slot over, if any */
	struct slot_claim_key k;

	tk->claim = NULL;
	if (on && s->repl->start_slot[0]) {	/* a physical stream without a slot: nothing to take */
		key_of(s, s->repl->start_slot, &k);
		tk->claim = slot_claims_add(claims_of(s), &k, &o, slots_now_us());
		if (!tk->claim)
			slog_warning(s, "out of memory: the stream of slot \"%s\" cannot be taken over",
				     k.slot);
	}
	/* given up only now: the slot is never unclaimed in between */
	if (reservation)
		slot_claims_remove(claims_of(s), reservation);
}

static void on_status(void *arg)
{
	struct takeover *tk = arg;

	if (tk->claim)
		slot_claim_touch(tk->claim, slots_now_us());
}

/*
 * A newcomer takes this session's slot over. The server's close of the
 * upstream leg is awaited (session.c), bounded by the closing timer.
 */
static void close_stale(struct session *s, uint64_t taker)
{
	static const uint8_t terminate[5] = { PG_MSG_TERMINATE, 0, 0, 0, 4 };
	int64_t idle = s->takeover->claim ?
		slots_now_us() - atomic_load(&s->takeover->claim->last_status_us) : 0;
	char msg[256];

	if (s->state != SESSION_RELAY)
		return;		/* ending already: its claim goes with its upstream leg */
	slog_info(s, "replication: slot \"%s\" taken over by C-%llu: no standby status update from "
		  "this client for %.1f s; closing this stream", s->repl->start_slot,
		  (unsigned long long)taker, (double)idle / 1e6);
	snprintf(msg, sizeof(msg), "terminating replication connection: slot \"%s\" was taken over "
		 "by a new connection after %.0f s without a standby status update",
		 s->repl->start_slot, (double)idle / 1e6);
	session_tell_client(s, "FATAL", PG_SQLSTATE_ADMIN_SHUTDOWN, msg);
	/*
	 * A Terminate where the server expects a message to begin, and its
	 * close awaited; else (the client stopped mid-message) the upstream
	 * leg just closes.
	 */
	if (s->server_io && pg_scan_at_boundary(&s->to_server.scan)) {
		relay_io_write(s->server_io, terminate, sizeof(terminate));
		s->await_server_eof = true;
	}
	session_close(s, "replication slot taken over by a new connection");
}

void session_takeover_evict(struct worker *w)
{
	void *owners[EVICT_BATCH];
	uint64_t takers[EVICT_BATCH];
	size_t n;

	/* each owner is handed out once: the loop ends */
	do {
		n = slot_claims_evicted(&w->shared->claims, w, owners, takers, EVICT_BATCH);
		for (size_t i = 0; i < n; i++)
			close_stale(owners[i], takers[i]);	/* never frees at once (session.c) */
	} while (n == EVICT_BATCH);
}

/* ---- the newcomer ---------------------------------------------------- */

static void count(struct session *s, enum takeover_result r)
{
	s->w->stats.takeovers[r]++;
}

/* The held START_REPLICATION goes on. */
static void release(struct takeover *tk, enum takeover_result r)
{
	struct session *s = tk->s;

	tk->waiting = false;
	count(s, r);
	relay_release(&s->to_server, s->client_io);
	tk->resume(s);
}

static void poll_stale(evutil_socket_t fd, short what, void *arg)
{
	struct takeover *tk = arg;
	struct session *s = tk->s;
	int64_t waited = slots_now_us() - tk->began_us;
	struct timeval tv = { 0, TAKEOVER_POLL_MS * 1000 };

	if (!tk->waiting || s->state != SESSION_RELAY)
		return;
	if (!slot_claims_waiting(claims_of(s), &tk->key, s->id)) {
		slog_info(s, "replication: slot \"%s\" taken over: the stale stream ended after %.0f ms; "
			  "START_REPLICATION forwarded", tk->key.slot, (double)waited / 1e3);
		release(tk, TAKEOVER_TAKEN_OVER);
	} else if (waited >= TAKEOVER_WAIT_MS * 1000LL) {
		slog_warning(s, "replication: slot \"%s\": the stale stream did not end within %d ms; "
			     "START_REPLICATION forwarded anyway", tk->key.slot, TAKEOVER_WAIT_MS);
		release(tk, TAKEOVER_TIMED_OUT);
	} else {
		evtimer_add(tk->poll, &tv);
	}
}

static void begin_wait(struct takeover *tk)
{
	struct timeval tv = { 0, TAKEOVER_POLL_MS * 1000 };

	tk->waiting = true;
	tk->began_us = slots_now_us();
	evtimer_add(tk->poll, &tv);
}

/* Another session streams the slot: why this START goes on unchanged. */
static void refused(struct session *s, enum slot_take v, const char *slot, int64_t idle_us)
{
	if (v == SLOT_TAKE_LIVE) {
		count(s, TAKEOVER_REFUSED_LIVE);
		slog_info(s, "replication: slot \"%s\" is streamed by another session whose client sent "
			  "a standby status update %.1f s ago: not taken over, START_REPLICATION "
			  "forwarded unchanged", slot, (double)idle_us / 1e6);
	} else if (v == SLOT_TAKE_OTHER_USER) {
		count(s, TAKEOVER_REFUSED_USER);
		slog_warning(s, "replication: slot \"%s\" is streamed by another user's session: not taken "
			     "over, START_REPLICATION forwarded unchanged", slot);
	} else if (v == SLOT_TAKE_BUSY) {
		count(s, TAKEOVER_REFUSED_BUSY);
		slog_info(s, "replication: slot \"%s\" is being taken over by another connection: "
			  "START_REPLICATION forwarded unchanged", slot);
	}
}

/* In the relay's hook: the START_REPLICATION is still in the client's input. */
static void on_start(void *arg, const char *slot)
{
	struct takeover *tk = arg;
	struct session *s = tk->s;
	int64_t after_us = config_current()->takeover_after_ms * 1000, idle_us;
	struct slot_claim_owner o = owner_of(s);
	struct slot_claim *reserved;
	enum slot_take v;

	/*
	 * Only a logged-in client's START, sent with nothing unanswered ahead of
	 * it, is judged: a START pipelined into the login (passthrough: not yet
	 * authenticated) or behind commands the server may refuse goes on as sent.
	 */
	if (after_us <= 0 || !slot[0] || tk->waiting || s->state != SESSION_RELAY ||
	    s->repl->ahead > 0)
		return;
	if (!relay_can_hold(&s->to_server)) {
		slog_debug(s, "replication: START_REPLICATION came in pieces: no takeover of slot \"%s\"", slot);
		return;
	}
	key_of(s, slot, &tk->key);
	takeover_unclaim(tk);
	v = slot_claims_take(claims_of(s), &tk->key, &o, s->id, slots_now_us(), after_us, &idle_us,
			     &reserved);
	tk->claim = reserved;	/* until the server answers this START */
	if (v != SLOT_TAKE_YES) {
		refused(s, v, slot, idle_us);
		return;
	}
	slog_info(s, "replication: slot \"%s\" is streamed by a session whose client sent no standby "
		  "status update for %.1f s (takeover_after = %lld ms): taking it over", slot,
		  (double)idle_us / 1e6, (long long)config_current()->takeover_after_ms);
	relay_hold(&s->to_server);
	begin_wait(tk);
}

/* ---- the session's ---------------------------------------------------- */

void session_takeover_attach(struct session *s, void (*resume)(struct session *s))
{
	struct takeover *tk = calloc(1, sizeof(*tk));
	struct repl_track_events ev = { on_start, on_streaming, on_status, tk };

	if (tk)
		tk->poll = evtimer_new(s->w->base, poll_stale, tk);
	if (!tk || !tk->poll) {
		free(tk);
		slog_warning(s, "out of memory: this session's streams cannot take over or be taken over");
		return;
	}
	tk->s = s;
	tk->registry = claims_of(s);
	tk->resume = resume;
	/* before the login: under auth = scram its credentials are freed at its end */
	snprintf(tk->upstream_user, sizeof(tk->upstream_user), "%s", session_upstream_user(s));
	s->takeover = tk;
	relay_dir_holdable(&s->to_server);
	repl_track_observe(s->repl, &ev);
}
