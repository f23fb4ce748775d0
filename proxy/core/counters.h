/*
 * counters.h - what walgate counts by label: why a connection was turned
 * away, why a login upstream was broken off, who broke the protocol, what
 * became of a cancel and of a slot takeover. One enum each, with one table of the names that the
 * metrics show (counters.c).
 */
#ifndef WALGATE_COUNTERS_H
#define WALGATE_COUNTERS_H

/* Why a connection was turned away before it reached the upstream. */
enum reject_reason {
	REJECT_NOT_ALLOWED,		/* source address not on the allow list */
	REJECT_PROXY_HEADER,		/* trusted peer: PROXY header missing, malformed or late */
	REJECT_PROXY_UNTRUSTED,		/* a PROXY header from a peer not trusted to send one */
	REJECT_TOO_MANY,		/* max_client_conn reached */
	REJECT_PROTOCOL,		/* invalid startup packet */
	REJECT_STARTUP_TIMEOUT,		/* no complete startup packet in time */
	REJECT_TLS_REQUIRED,		/* a plaintext login where client_tls = require */
	REJECT_TLS_HANDSHAKE,		/* the client's TLS handshake failed */
	REJECT_PROXY_UNKNOWN,		/* a PROXY header naming no source, proxy_protocol_unknown = refuse */
	REJECT_AUTH_TIMEOUT,		/* not logged in within auth_timeout */
	REJECT_REASONS
};

const char *reject_reason_name(enum reject_reason r);

/* Why walgate broke off its own login upstream (auth = scram). */
enum upstream_auth_refusal {
	UPAUTH_METHOD,			/* a method [auth] server_auth_methods does not allow */
	UPAUTH_CHANNEL_BINDING,		/* server_channel_binding = require, and no -PLUS */
	UPAUTH_SEQUENCE,		/* a message out of the login's order */
	UPAUTH_SCRAM,			/* the server's SCRAM messages: malformed, wrong signature */
	UPAUTH_REASONS
};

const char *upstream_auth_refusal_name(enum upstream_auth_refusal r);

/* Who broke the protocol, for walgate_protocol_errors_total{kind}. */
enum protocol_error_kind {
	PROTO_ERR_CLIENT,		/* startup packet or message framing from the client */
	PROTO_ERR_UPSTREAM,		/* message framing from the upstream */
	PROTO_ERR_REPL_COMMAND,		/* a replication command the server will refuse */
	PROTO_ERR_REPL_STREAM,		/* XLogData, keepalive, status update, feedback */
	PROTO_ERR_PGOUTPUT,		/* a pgoutput message inside XLogData */
	PROTO_ERR_KINDS
};

const char *protocol_error_kind_name(enum protocol_error_kind k);

/* What became of a CancelRequest, for walgate_cancel_requests_total{result}. */
enum cancel_result {
	CANCEL_FORWARDED,		/* sent to its session's backend, the way the session's leg was opened */
	CANCEL_UNMATCHED,		/* no session has that key: no upstream connection opened */
	CANCEL_FAILED,			/* matched, but the connect or the TLS handshake failed */
	CANCEL_RESULTS
};

const char *cancel_result_name(enum cancel_result r);

/*
 * What became of a START_REPLICATION naming a slot another session
 * streams, for walgate_slot_takeovers_total{result}.
 */
enum takeover_result {
	TAKEOVER_TAKEN_OVER,		/* the stale stream closed, its slot released: forwarded */
	TAKEOVER_TIMED_OUT,		/* the stale stream was closed, not gone in time: forwarded */
	TAKEOVER_REFUSED_LIVE,		/* its client sends status updates: forwarded unchanged */
	TAKEOVER_REFUSED_USER,		/* another user's stream (client's or upstream): forwarded unchanged */
	TAKEOVER_REFUSED_BUSY,		/* another connection is taking it over: forwarded unchanged */
	TAKEOVER_RESULTS
};

const char *takeover_result_name(enum takeover_result r);

#endif
