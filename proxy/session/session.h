/*
 * session.h - one client connection and its upstream connection, from
 * accept to close, as an explicit state machine:
 *
 *   [PROXY_HEADER] --> STARTUP --StartupMessage--> [AUTH] --> CONNECTING --connected--> LOGIN
 *                         |                            |                       |             |
 *                         |                            |                       |   AuthenticationOk
 *                         |                            |                       |             v
 *                         +--CancelRequest--> CANCEL   +-----------------------+----------> RELAY --> CLOSING
 *
 * LOGIN is the upstream's login exchange, taken message by message
 * (session_login.c) until AuthenticationOk; in RELAY both directions
 * stream. CONNECTING covers TCP, the upstream's SSLRequest and its TLS
 * handshake; AUTH exists only with auth = scram. Every state may go to
 * CLOSING.
 *
 * Deadlines: startup_timeout until the StartupMessage, auth_timeout from
 * accept until RELAY (every state before the stream: TLS handshakes,
 * AUTH, CONNECTING, LOGIN); none after it.
 *
 * CANCEL: a CancelRequest whose key a session registered (cancel_registry.h,
 * across all workers) is sent to that session's upstream address, opened
 * the same way (SSLRequest and TLS with the same check when its leg is TLS),
 * bounded by a timer; one that matches nothing closes at once, sending
 * nothing anywhere.
 *
 * The source address is checked against the allow list at accept, before
 * any byte is read; behind a trusted load balancer, once its PROXY header
 * has named the real source.
 *
 * CLOSING flushes what is already queued to each side (an error for the
 * client, a Terminate for the server), bounded by a timer, then frees.
 */
#ifndef WALGATE_SESSION_H
#define WALGATE_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "worker/cancel_registry.h"
#include "core/log.h"
#include "protocol/pg_startup.h"
#include "relay/relay-t.h"

struct worker;
struct worker_snapshot;
struct bufferevent;
struct event;
struct upstream_connect;
struct session_auth;
struct repl_track;
struct relay_io;
struct takeover;

enum session_state {
	SESSION_PROXY_HEADER,
	SESSION_STARTUP,
	SESSION_AUTH,			/* auth = scram: walgate's SCRAM exchange with the client */
	SESSION_CONNECTING,		/* TCP, then the upstream's SSLRequest and handshake */
	SESSION_LOGIN,			/* both legs open: the upstream's login exchange */
	SESSION_RELAY,			/* logged in: both directions stream */
	SESSION_CANCEL,
	SESSION_CLOSING,
};

struct session {
	TAILQ_ENTRY(session) link;
	struct worker *w;
	uint64_t id;
	unsigned open_rank;		/* client connections open when it was accepted, itself included */
	enum session_state state;
	/* Each leg is a bufferevent until RELAY, then walgate's own (relay_io.h); one or none. */
	struct bufferevent *client;
	struct bufferevent *server;
	struct relay_io *client_io;
	struct relay_io *server_io;
	struct upstream_connect *connecting;
	struct event *timer;		/* startup, authentication (until RELAY) and closing deadlines */
	struct timeval started;

	char prefix[160];		/* "C-12 127.0.0.1:5000", for log lines */
	char peer[64];			/* the client: the socket's peer, or the PROXY header's source */
	char via[64];			/* the load balancer that sent a PROXY header, or "" */
	struct sockaddr_storage client_addr;	/* what the allow list is checked against */
	uint64_t client_bytes_seen;	/* any bytes at all from the client */

	uint8_t *startup_pkt;		/* the StartupMessage, forwarded upstream */
	struct pg_startup startup;	/* its strings point into startup_pkt */
	bool refused_ssl;
	bool refused_gss;
	bool client_tls;		/* the client leg is (becoming) TLS */
	bool direct_tls;		/* ... opened with a ClientHello, no SSLRequest */
	bool server_tls;		/* the upstream leg is (becoming) TLS */
	bool tls_handshaking;		/* a handshake on either leg is under way */
	bool client_held;		/* auth = scram: client not read until AuthenticationOk */
	char upstream_label[280];	/* "host:port" as configured, for messages */
	char upstream_host[256];	/* the name verify-full checks */
	/*
	 * A refusal (too many connections, shutting down) waits for the startup
	 * packet: sent earlier, libpq would take it as the answer to its
	 * SSLRequest and hide the message.
	 */
	const char *refuse_sqlstate;
	char refuse_message[96];

	struct sockaddr_storage upstream_addr;
	socklen_t upstream_addrlen;
	enum tls_verify upstream_verify;	/* the certificate check of a TLS upstream leg */
	struct cancel_entry *cancel_entry;	/* BackendKeyData registered: a cancel can find us */
	uint8_t backend_key_msg[4 + PG_CANCEL_KEY_MAX];	/* its payload, captured whole */
	bool cancel_sent;		/* SESSION_CANCEL: the CancelRequest went upstream */

	struct session_auth *auth;	/* auth = scram, from the StartupMessage to AuthenticationOk */

	struct repl_track *repl;	/* replication connections, from the relay on */
	struct takeover *takeover;	/* ... and their claims on slots (session/takeover_state.h) */
	bool await_server_eof;		/* closing: the upstream leg stays until the server closes it */

	struct relay_dir to_server;
	struct relay_dir to_client;
	char close_reason[160];		/* a copy: reasons are often built on the caller's stack */
};

/* LOGIN or RELAY: both legs are open and the session reads both. */
static inline bool session_legs_open(const struct session *s)
{
	return s->state == SESSION_LOGIN || s->state == SESSION_RELAY;
}

/* Stop logins in progress; sessions already relaying go on. */
void session_drain_logins(struct worker *w);

/* Close every session, telling clients why where the protocol allows. */
void session_close_all(struct worker *w);

/* After a reload with enforce_on_reload: close sessions whose source is no longer allowed. */
void session_enforce_allowlist(struct worker *w);

/* Free whatever is left at exit, without waiting for anything. */
void session_free_all(struct worker *w);

/* Add w's open sessions to a snapshot: how many of each kind, and their bytes. */
void session_snapshot_add(const struct worker *w, struct worker_snapshot *out);

#define slog(s, level, ...) \
	do { if (log_enabled(level)) log_write(level, (s)->prefix, __VA_ARGS__); } while (0)
#define slog_error(s, ...)   slog(s, LOG_LEVEL_ERROR, __VA_ARGS__)
#define slog_warning(s, ...) slog(s, LOG_LEVEL_WARNING, __VA_ARGS__)
#define slog_info(s, ...)    slog(s, LOG_LEVEL_INFO, __VA_ARGS__)
#define slog_debug(s, ...)   slog(s, LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
