/*
 * synth_common.c - helpers shared by the benchmark's synthetic walsender
 * and sink: message building, timestamps, TLS contexts, addresses, sizes.
 */
#include "synth_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/err.h>

int64_t synth_pg_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - SYNTH_PG_EPOCH_US;
}

double synth_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *msg_room(struct synth_msg *m, size_t n)
{
	uint8_t *p;

	if (m->overflow || m->len + n > sizeof m->buf) {
		m->overflow = true;
		return NULL;
	}
	p = m->buf + m->len;
	m->len += n;
	return p;
}

void synth_msg_start(struct synth_msg *m, char type)
{
	m->len = 0;
	m->overflow = false;
	synth_msg_byte(m, (uint8_t)type);
	synth_msg_u32(m, 0);
}

void synth_msg_byte(struct synth_msg *m, uint8_t v)
{
	uint8_t *p = msg_room(m, 1);

	if (p)
		*p = v;
}

void synth_msg_u16(struct synth_msg *m, uint16_t v)
{
	uint8_t *p = msg_room(m, 2);

	if (p)
		synth_put_u16(p, v);
}

void synth_msg_u32(struct synth_msg *m, uint32_t v)
{
	uint8_t *p = msg_room(m, 4);

	if (p)
		pg_put_u32(p, v);
}

void synth_msg_u64(struct synth_msg *m, uint64_t v)
{
	uint8_t *p = msg_room(m, 8);

	if (p)
		synth_put_u64(p, v);
}

void synth_msg_bytes(struct synth_msg *m, const void *src, size_t n)
{
	uint8_t *p = msg_room(m, n);

	if (p && n)
		memcpy(p, src, n);
}

void synth_msg_str(struct synth_msg *m, const char *s)
{
	synth_msg_bytes(m, s, strlen(s) + 1);
}

int synth_msg_end(struct synth_msg *m, struct evbuffer *out)
{
	if (m->overflow || m->len < PG_MSG_HEADER_LEN)
		return -1;
	pg_put_u32(m->buf + 1, (uint32_t)(m->len - 1));
	return evbuffer_add(out, m->buf, m->len);
}

void synth_send(struct evbuffer *out, char type, const char *text)
{
	struct synth_msg m;

	synth_msg_start(&m, type);
	if (text)
		synth_msg_str(&m, text);
	synth_msg_end(&m, out);
}

void synth_send_ready(struct evbuffer *out)
{
	static const uint8_t z[6] = { 'Z', 0, 0, 0, 5, 'I' };

	evbuffer_add(out, z, sizeof z);
}

void synth_send_error(struct evbuffer *out, const char *code, const char *text)
{
	struct synth_msg m;

	synth_msg_start(&m, 'E');
	synth_msg_byte(&m, 'S');
	synth_msg_str(&m, "ERROR");
	synth_msg_byte(&m, 'C');
	synth_msg_str(&m, code);
	synth_msg_byte(&m, 'M');
	synth_msg_str(&m, text);
	synth_msg_byte(&m, 0);
	synth_msg_end(&m, out);
}

void synth_ssl_errors(const char *what)
{
	unsigned long e;
	char buf[256];

	fprintf(stderr, "%s", what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		fprintf(stderr, ": %s", buf);
	}
	fprintf(stderr, "\n");
}

SSL_CTX *synth_tls_ctx(bool server, const char *cert, const char *key, const char *suites)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (!SSL_CTX_set_ciphersuites(ctx, suites ? suites : SYNTH_DEFAULT_SUITES) ||
	    !SSL_CTX_set_cipher_list(ctx, SYNTH_DEFAULT_CIPHERS))
		goto fail;
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (server) {
		/* No tickets: every session is a full handshake, like a first login. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
			goto fail;
	}
	return ctx;
fail:
	synth_ssl_errors("TLS context");
	SSL_CTX_free(ctx);
	return NULL;
}

int synth_parse_addr(const char *s, struct sockaddr_storage *ss, int *sslen)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	size_t hlen;
	long port;
	char *end;

	if (!colon)
		return -1;
	hlen = (size_t)(colon - s);
	if (hlen >= sizeof host)
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -1;
	memset(ss, 0, sizeof *ss);
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		host[hlen - 1] = '\0';
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*sslen = (int)sizeof *sin6;
		return inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	*sslen = (int)sizeof *sin;
	return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

int synth_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	uint64_t mul = 1;

	if (end == s)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return -1;
	*out = (uint64_t)v * mul;
	return 0;
}

void synth_tune(struct bufferevent *bev, int fd)
{
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	bufferevent_set_max_single_read(bev, SYNTH_IO_CHUNK);
	bufferevent_set_max_single_write(bev, SYNTH_IO_CHUNK);
}
