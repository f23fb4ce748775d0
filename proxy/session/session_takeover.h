/*
 * session_takeover.h - taking a replication slot over from a stale session
 * (see session_takeover.c).
 */
#ifndef WALGATE_SESSION_TAKEOVER_H
#define WALGATE_SESSION_TAKEOVER_H

struct session;
struct worker;

/*
 * A replication session begins to relay: follow its START_REPLICATIONs,
 * streams and status updates. resume moves what the client sent on to the
 * upstream (called when a START held back may go).
 */
void session_takeover_attach(struct session *s, void (*resume)(struct session *s));

/*
 * On w's thread, when its takeover event fires (worker.on_takeover):
 * close the streams of w whose slots a newcomer takes over.
 */
void session_takeover_evict(struct worker *w);

#endif
