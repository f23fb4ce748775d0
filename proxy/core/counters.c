/*
 * counters.c - the names of walgate's counter labels (see counters.h).
 */
#include "core/counters.h"

static const char *const reject_names[REJECT_REASONS] = {
	[REJECT_NOT_ALLOWED] = "not_allowed",
	[REJECT_PROXY_HEADER] = "proxy_header",
	[REJECT_PROXY_UNTRUSTED] = "proxy_untrusted",
	[REJECT_TOO_MANY] = "too_many_connections",
	[REJECT_PROTOCOL] = "protocol_violation",
	[REJECT_STARTUP_TIMEOUT] = "startup_timeout",
	[REJECT_TLS_REQUIRED] = "tls_required",
	[REJECT_TLS_HANDSHAKE] = "tls_handshake",
	[REJECT_PROXY_UNKNOWN] = "proxy_unknown_source",
	[REJECT_AUTH_TIMEOUT] = "auth_timeout",
};

const char *reject_reason_name(enum reject_reason r)
{
	return r < REJECT_REASONS ? reject_names[r] : "unknown";
}

static const char *const upstream_auth_refusal_names[UPAUTH_REASONS] = {
	[UPAUTH_METHOD] = "auth_method",
	[UPAUTH_CHANNEL_BINDING] = "channel_binding",
	[UPAUTH_SEQUENCE] = "sequence",
	[UPAUTH_SCRAM] = "scram",
};

const char *upstream_auth_refusal_name(enum upstream_auth_refusal r)
{
	return r < UPAUTH_REASONS ? upstream_auth_refusal_names[r] : "unknown";
}

static const char *const cancel_result_names[CANCEL_RESULTS] = {
	[CANCEL_FORWARDED] = "forwarded",
	[CANCEL_UNMATCHED] = "unmatched",
	[CANCEL_FAILED] = "failed",
};

const char *cancel_result_name(enum cancel_result r)
{
	return r < CANCEL_RESULTS ? cancel_result_names[r] : "unknown";
}

static const char *const protocol_error_names[PROTO_ERR_KINDS] = {
	[PROTO_ERR_CLIENT] = "client",
	[PROTO_ERR_UPSTREAM] = "upstream",
	[PROTO_ERR_REPL_COMMAND] = "replication_command",
	[PROTO_ERR_REPL_STREAM] = "replication_stream",
	[PROTO_ERR_PGOUTPUT] = "pgoutput",
};

const char *protocol_error_kind_name(enum protocol_error_kind k)
{
	return k < PROTO_ERR_KINDS ? protocol_error_names[k] : "unknown";
}

static const char *const takeover_result_names[TAKEOVER_RESULTS] = {
	[TAKEOVER_TAKEN_OVER] = "taken_over",
	[TAKEOVER_TIMED_OUT] = "timed_out",
	[TAKEOVER_REFUSED_LIVE] = "refused_live",
	[TAKEOVER_REFUSED_USER] = "refused_user",
	[TAKEOVER_REFUSED_BUSY] = "refused_busy",
};

const char *takeover_result_name(enum takeover_result r)
{
	return r < TAKEOVER_RESULTS ? takeover_result_names[r] : "unknown";
}
