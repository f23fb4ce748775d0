/*
 * netutil.c - socket options, address formatting, the evdns resolver.
 */
#include "core/netutil.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"

static void set_int(int fd, int level, int name, int value)
{
	/* Best effort: a socket that refuses an option still relays correctly. */
	(void)setsockopt(fd, level, name, &value, sizeof(value));
}

void net_tune_socket(int fd, const struct config *cfg)
{
	set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	if (!cfg->tcp_keepalive)
		return;
	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)(cfg->tcp_keepalive_idle_ms / 1000));
	set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)(cfg->tcp_keepalive_interval_ms / 1000));
	set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, cfg->tcp_keepalive_count);
}

void net_format_addr(const struct sockaddr *sa, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, cap, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof(host));
			snprintf(buf, cap, "%s:%u", host, ntohs(in6->sin6_port));
		} else {
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
			snprintf(buf, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
		}
	} else {
		snprintf(buf, cap, "(family %d)", sa->sa_family);
	}
}

static const void *addr_bytes(const struct sockaddr_storage *ss, size_t *len)
{
	if (ss->ss_family == AF_INET) {
		*len = 4;
		return &((const struct sockaddr_in *)ss)->sin_addr;
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			*len = 4;
			return &a->s6_addr[12];
		}
		*len = 16;
		return a;
	}
	*len = 0;
	return NULL;
}

bool net_peer_is_self(int fd)
{
	struct sockaddr_storage peer, self;
	socklen_t plen = sizeof(peer), slen = sizeof(self);
	const unsigned char *p, *s;
	size_t pn, sn;

	if (fd < 0 || getpeername(fd, (struct sockaddr *)&peer, &plen) < 0 ||
	    getsockname(fd, (struct sockaddr *)&self, &slen) < 0)
		return false;
	p = addr_bytes(&peer, &pn);
	s = addr_bytes(&self, &sn);
	if (!p || !s)
		return false;
	return pn == sn && !memcmp(p, s, pn);
}

struct evdns_base *net_dns_new(struct event_base *base)
{
	/*
	 * Names are resolved anew for every connection, so DNS failover (a
	 * managed database moving) is followed without a restart.
	 */
	struct evdns_base *dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						EVDNS_BASE_DISABLE_WHEN_INACTIVE);

	if (!dns) {
		/* No resolv.conf (minimal containers): numeric hosts and /etc/hosts still work. */
		dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (dns)
			evdns_base_load_hosts(dns, NULL);
	}
	if (!dns)
		log_error("cannot create the DNS resolver");
	return dns;
}
