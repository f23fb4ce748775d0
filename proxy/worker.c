/*
 * worker.c - setting up and tearing down one event loop and its resolver.
 */
#include "worker.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <string.h>

#include "log.h"

int worker_init(struct worker *w)
{
	memset(w, 0, sizeof(*w));
	TAILQ_INIT(&w->sessions);
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
	if (w->dns)
		evdns_base_free(w->dns, 0);
	if (w->base)
		event_base_free(w->base);
	w->dns = NULL;
	w->base = NULL;
}
