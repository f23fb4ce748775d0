/*
 * worker.c - setting up and tearing down one event loop and its resolver.
 */
#include "worker.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <string.h>

#include "authfile.h"
#include "log.h"

#include <openssl/ssl.h>

static const char *const reject_names[REJECT_REASONS] = {
	[REJECT_NOT_ALLOWED] = "not_allowed",
	[REJECT_PROXY_HEADER] = "proxy_header",
	[REJECT_PROXY_UNTRUSTED] = "proxy_untrusted",
	[REJECT_TOO_MANY] = "too_many_connections",
	[REJECT_PROTOCOL] = "protocol_violation",
	[REJECT_STARTUP_TIMEOUT] = "startup_timeout",
	[REJECT_TLS_REQUIRED] = "tls_required",
	[REJECT_TLS_HANDSHAKE] = "tls_handshake",
};

const char *reject_reason_name(enum reject_reason r)
{
	return r < REJECT_REASONS ? reject_names[r] : "unknown";
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

bool ratelimit_pass(struct ratelimit *rl, int64_t now, unsigned long *suppressed)
{
	if (now - rl->window_start >= rl->period) {
		rl->window_start = now;
		rl->used = 0;
	}
	if (rl->used >= rl->burst) {
		rl->suppressed++;
		return false;
	}
	rl->used++;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

int worker_init(struct worker *w)
{
	memset(w, 0, sizeof(*w));
	TAILQ_INIT(&w->sessions);
	slots_init(&w->slots);
	w->upstream_reachable = -1;
	w->started_at = time(NULL);
	w->deny_log.period = 10;
	w->deny_log.burst = 20;
	w->base = event_base_new();
	if (!w->base) {
		log_error("cannot create the event loop");
		return -1;
	}
	/*
	 * The resolver reads /etc/resolv.conf and /etc/hosts; names of the
	 * upstream are resolved anew for every connection, so DNS failover
	 * (a managed database moving) is followed without a restart.
	 */
	w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
				EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!w->dns) {
		/* No resolv.conf (minimal containers): numeric hosts and /etc/hosts still work. */
		w->dns = evdns_base_new(w->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (w->dns)
			evdns_base_load_hosts(w->dns, NULL);
	}
	if (!w->dns) {
		log_error("cannot create the DNS resolver");
		event_base_free(w->base);
		return -1;
	}
	return 0;
}

void worker_free(struct worker *w)
{
	slots_free(&w->slots);
	SSL_CTX_free(w->tls_server);
	SSL_CTX_free(w->tls_client);
	auth_users_free(w->auth_users);
	w->auth_users = NULL;
	w->tls_server = NULL;
	w->tls_client = NULL;
	if (w->dns)
		evdns_base_free(w->dns, 0);
	if (w->base)
		event_base_free(w->base);
	w->dns = NULL;
	w->base = NULL;
}
