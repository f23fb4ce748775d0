/*
 * synth_sink.c - the benchmark's replication client. It opens --conns
 * sessions (at most --concurrency logging in at once), each with a
 * plaintext startup or, with --sslmode require, an SSLRequest and a TLS
 * handshake first. In stream mode every session sends START_REPLICATION
 * (slot --slot, or --slot_<i> for several) and reads the stream as fast as
 * it comes, counting bytes, answering keepalives that ask for a reply and
 * sending a standby status update every --status-every bytes; in login
 * mode sessions just log in. With --hold it prints "ready" once every
 * session is logged in (or streaming) and keeps them until stdin closes.
 * At the end it prints one JSON line: sessions, bytes, times.
 *   synth_sink --connect 127.0.0.1:6432 [--sslmode require] [--mode stream]
 */
#include "synth_common.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#define SCRATCH   (256u * 1024u)
#define D_NEED    23u		/* of a CopyData: header, 'w'/'k', two LSNs or LSN+time, flag */

enum state { S_CONNECT, S_SSL, S_AUTH, S_WAIT_W, S_STREAM, S_ENDING, S_IDLE, S_CLOSING, S_GONE };

static struct {
	struct sockaddr_storage addr;
	int addrlen;
	bool tls, stream, hold;
	const char *user, *dbname, *slot, *suites;
	unsigned conns, concurrency, timeout_s;
	uint64_t status_every;
} opt = { .user = "bench", .dbname = "bench", .slot = "bench_synth", .conns = 1,
	  .concurrency = 64, .timeout_s = 600, .status_every = 16u << 20, .stream = true };

struct sess {
	struct bufferevent *bev;
	int fd;
	unsigned idx;
	enum state st;
	bool tls, counted;
	uint64_t bytes, next_status, lsn, skip;
};

static struct event_base *base;
static SSL_CTX *tls_ctx;
static char cipher[64];			/* the first TLS session's, for the report */
static uint8_t scratch[SCRATCH];
static struct sess *sessions;
static unsigned launched, in_setup, steady, finished, failed;
static uint64_t total_bytes, status_updates;
static double t_start, t_steady, t_first_stream, t_end;
static bool ready_printed;

static void sess_read(struct bufferevent *bev, void *arg);
static void sess_write(struct bufferevent *bev, void *arg);
static void sess_event(struct bufferevent *bev, short what, void *arg);
static void launch_more(void);

static void check_all_done(void)
{
	if (finished + failed < opt.conns)
		return;
	t_end = synth_mono();
	event_base_loopexit(base, NULL);
}

static void check_steady(void)
{
	if (ready_printed || launched < opt.conns || in_setup > 0)
		return;
	ready_printed = true;
	t_steady = synth_mono();
	if (opt.hold) {
		printf("ready %u failed %u\n", steady, failed);
		fflush(stdout);
	}
}

/* Leave setup (logged in, streaming, or failed): let the next one start. */
static void setup_over(struct sess *s, bool ok)
{
	if (s->counted)
		return;
	s->counted = true;
	in_setup--;
	if (ok)
		steady++;
	launch_more();
	check_steady();
}

static void sess_close(struct sess *s, bool ok, const char *why)
{
	if (s->st == S_GONE)
		return;
	if (!ok && why)
		fprintf(stderr, "synth_sink: session %u: %s\n", s->idx, why);
	if (s->bev) {
		/* Before the TLS upgrade the socket is not the bufferevent's to close. */
		int fd = (opt.tls && !s->tls) ? bufferevent_getfd(s->bev) : -1;

		bufferevent_free(s->bev);
		if (fd >= 0)
			close(fd);
	}
	s->bev = NULL;
	s->st = S_GONE;
	setup_over(s, false);
	if (ok)
		finished++;
	else
		failed++;
	check_all_done();
}

static void send_status(struct sess *s)
{
	uint8_t m[39];
	int64_t now = synth_pg_now();

	m[0] = 'd';
	pg_put_u32(m + 1, 38);
	m[5] = 'r';
	synth_put_u64(m + 6, s->lsn);
	synth_put_u64(m + 14, s->lsn);
	synth_put_u64(m + 22, s->lsn);
	synth_put_u64(m + 30, (uint64_t)now);
	m[38] = 0;
	bufferevent_write(s->bev, m, sizeof m);
	status_updates++;
}

static void send_startup(struct sess *s)
{
	struct synth_msg m;

	/* A StartupMessage has no type byte: build it as one, then drop it. */
	synth_msg_start(&m, ' ');
	synth_msg_u32(&m, PG_PROTOCOL_3_0);
	synth_msg_str(&m, "user");
	synth_msg_str(&m, opt.user);
	synth_msg_str(&m, "database");
	synth_msg_str(&m, opt.dbname);
	if (opt.stream) {
		synth_msg_str(&m, "replication");
		synth_msg_str(&m, "database");
	}
	synth_msg_str(&m, "application_name");
	synth_msg_str(&m, "synth_sink");
	synth_msg_byte(&m, 0);
	pg_put_u32(m.buf + 1, (uint32_t)(m.len - 1));
	bufferevent_write(s->bev, m.buf + 1, m.len - 1);
	s->st = S_AUTH;
}

static void start_replication(struct sess *s)
{
	char q[512];

	if (opt.conns > 1)
		snprintf(q, sizeof q, "START_REPLICATION SLOT \"%s_%u\" LOGICAL 0/0 "
			 "(\"proto_version\" '1', \"publication_names\" 'p')", opt.slot, s->idx);
	else
		snprintf(q, sizeof q, "START_REPLICATION SLOT \"%s\" LOGICAL 0/0 "
			 "(\"proto_version\" '1', \"publication_names\" 'p')", opt.slot);
	synth_send(bufferevent_get_output(s->bev), 'Q', q);
	s->st = S_WAIT_W;
}

static const char *error_text(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && p[i]; ) {
		if (p[i] == 'M')
			return (const char *)p + i + 1;
		i += strnlen((const char *)p + i, n - i) + 1;
	}
	return "ErrorResponse";
}

/* A whole message other than CopyData; false if the session is gone. */
static bool message(struct sess *s, uint8_t type, const uint8_t *body, size_t n)
{
	if (type == 'E') {
		char why[256];

		snprintf(why, sizeof why, "server error: %.200s", error_text(body, n));
		sess_close(s, false, why);
		return false;
	}
	switch (s->st) {
	case S_AUTH:
		if (type == 'R' && (n < 4 || pg_get_u32(body) != 0)) {
			sess_close(s, false, "authentication other than trust is not supported");
			return false;
		}
		if (type == 'Z') {
			if (opt.stream) {
				start_replication(s);
			} else {
				s->st = S_IDLE;
				setup_over(s, true);
			}
		}
		return true;
	case S_WAIT_W:
		if (type == 'W') {
			s->st = S_STREAM;
			if (t_first_stream == 0)
				t_first_stream = synth_mono();
			setup_over(s, true);
		}
		return true;
	case S_STREAM:
		if (type == 'c') {
			synth_send(bufferevent_get_output(s->bev), 'c', NULL);
			s->st = S_ENDING;
		}
		return true;
	case S_ENDING:
		if (type == 'Z') {
			synth_send(bufferevent_get_output(s->bev), 'X', NULL);
			s->st = S_CLOSING;
			bufferevent_disable(s->bev, EV_READ);
			bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
			return false;
		}
		return true;
	default:
		return true;
	}
}

/* The first bytes (up to D_NEED) of a CopyData message. */
static void copy_data(struct sess *s, const uint8_t *p, size_t n)
{
	if (n >= 14 && p[5] == 'w') {
		s->lsn = pg_get_u64(p + 6);
	} else if (n >= D_NEED && p[5] == 'k') {
		s->lsn = pg_get_u64(p + 6);
		if (p[22])
			send_status(s);
	}
}

static void sess_read(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (s->st == S_SSL) {
		uint8_t c;

		if (evbuffer_remove(in, &c, 1) < 1)
			return;
		if (c != 'S' || evbuffer_get_length(in) > 0) {
			sess_close(s, false, "the server refused TLS");
			return;
		}
		bufferevent_free(s->bev);
		s->bev = bufferevent_openssl_socket_new(base, s->fd, SSL_new(tls_ctx),
							BUFFEREVENT_SSL_CONNECTING,
							BEV_OPT_CLOSE_ON_FREE);
		if (!s->bev) {
			sess_close(s, false, "bufferevent_openssl_socket_new failed");
			return;
		}
		s->tls = true;
		bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
		synth_tune(s->bev, -1);
		bufferevent_setcb(s->bev, sess_read, sess_write, sess_event, s);
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
		send_startup(s);
		return;
	}
	if (s->tls && !cipher[0]) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);

		if (ssl)
			snprintf(cipher, sizeof(cipher), "%s", SSL_get_cipher_name(ssl));
	}
	for (;;) {
		size_t n, off = 0;

		if (s->skip) {
			size_t d = evbuffer_get_length(in);

			d = d < s->skip ? d : s->skip;
			evbuffer_drain(in, d);
			s->skip -= d;
			s->bytes += d;
			total_bytes += d;
			if (s->skip)
				return;
		}
		n = (size_t)evbuffer_copyout(in, scratch, SCRATCH);
		if (n == 0)
			return;
		while (off + PG_MSG_HEADER_LEN <= n) {
			const uint8_t *p = scratch + off;
			size_t total = 1 + (size_t)pg_get_u32(p + 1), avail = n - off;

			if (total < PG_MSG_HEADER_LEN) {
				sess_close(s, false, "bad message length");
				return;
			}
			if (p[0] == 'd') {
				if (avail < (total < D_NEED ? total : D_NEED))
					break;
				copy_data(s, p, avail < total ? avail : total);
				if (avail < total) {
					s->skip = total - avail;
					off = n;
					break;
				}
			} else {
				if (total > SCRATCH) {
					sess_close(s, false, "message too large");
					return;
				}
				if (avail < total)
					break;
				if (!message(s, p[0], p + 5, total - 5)) {
					/* Closed, or closing: nothing more is read. */
					s->bytes += off + total;
					total_bytes += off + total;
					return;
				}
			}
			off += total;
		}
		s->bytes += off;
		total_bytes += off;
		evbuffer_drain(in, off);
		if (s->st == S_STREAM && s->bytes >= s->next_status) {
			send_status(s);
			s->next_status = s->bytes + opt.status_every;
		}
		if (off == 0 || n < SCRATCH)
			return;
	}
}

static void sess_write(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;

	if (s->st == S_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		sess_close(s, true, NULL);
}

static void sess_event(struct bufferevent *bev, short what, void *arg)
{
	struct sess *s = arg;
	char why[160];

	if ((what & BEV_EVENT_CONNECTED) && s->st == S_CONNECT && !opt.tls) {
		synth_tune(bev, bufferevent_getfd(bev));
		send_startup(s);
	} else if ((what & BEV_EVENT_CONNECTED) && s->st == S_CONNECT) {
		uint8_t req[8];

		s->fd = bufferevent_getfd(bev);
		synth_tune(bev, s->fd);
		pg_put_u32(req, 8);
		pg_put_u32(req + 4, PG_SSL_REQUEST_CODE);
		bufferevent_write(bev, req, 8);
		s->st = S_SSL;
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		unsigned long e = s->tls ? bufferevent_get_openssl_error(bev) : 0;

		snprintf(why, sizeof why, "%s in state %d: %s", (what & BEV_EVENT_EOF) ?
			 "server closed" : "error", (int)s->st, e ? ERR_reason_error_string(e) :
			 strerror(EVUTIL_SOCKET_ERROR()));
		/* A server that closes after the stream (--after close) ends it. */
		sess_close(s, s->st == S_STREAM && s->bytes > 0, why);
	}
}

static void launch_more(void)
{
	while (launched < opt.conns && in_setup < opt.concurrency) {
		struct sess *s = &sessions[launched];

		s->idx = launched++;
		s->fd = -1;
		s->st = S_CONNECT;
		s->next_status = opt.status_every;
		in_setup++;
		s->bev = bufferevent_socket_new(base, -1, opt.tls ? 0 : BEV_OPT_CLOSE_ON_FREE);
		if (!s->bev) {
			sess_close(s, false, "bufferevent_socket_new failed");
			continue;
		}
		bufferevent_setcb(s->bev, sess_read, sess_write, sess_event, s);
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
		if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&opt.addr,
					       opt.addrlen) < 0)
			sess_close(s, false, strerror(errno));
	}
}

/* stdin closed (--hold), or the --timeout: stop. */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];

	if (fd == 0 && read(0, buf, sizeof buf) > 0)
		return;
	if (fd != 0) {
		fprintf(stderr, "synth_sink: timed out after %u s\n", opt.timeout_s);
		failed = opt.conns;
	}
	t_end = synth_mono();
	event_base_loopexit(base, NULL);
}

static void usage(void)
{
	fprintf(stderr, "usage: synth_sink --connect HOST:PORT [--sslmode disable|require]\n"
		"  [--ciphersuites LIST] [--mode stream|login] [--conns N] [--concurrency N]\n"
		"  [--slot NAME] [--user U] [--dbname D] [--status-every SIZE] [--hold]\n"
		"  [--timeout SECONDS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "connect", 1, NULL, 'c' }, { "sslmode", 1, NULL, 's' },
		{ "ciphersuites", 1, NULL, 'S' }, { "mode", 1, NULL, 'm' },
		{ "conns", 1, NULL, 'n' }, { "concurrency", 1, NULL, 'k' },
		{ "slot", 1, NULL, 'l' }, { "user", 1, NULL, 'u' }, { "dbname", 1, NULL, 'd' },
		{ "status-every", 1, NULL, 'e' }, { "hold", 0, NULL, 'h' },
		{ "timeout", 1, NULL, 't' }, { NULL, 0, NULL, 0 },
	};
	const char *connect = NULL;
	struct event *tmo, *in = NULL;
	struct timeval tv = { 600, 0 };
	int o;

	while ((o = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (o) {
		case 'c': connect = optarg; break;
		case 's': opt.tls = !strcmp(optarg, "require"); break;
		case 'S': opt.suites = optarg; break;
		case 'm': opt.stream = !strcmp(optarg, "stream"); break;
		case 'n': opt.conns = (unsigned)atoi(optarg); break;
		case 'k': opt.concurrency = (unsigned)atoi(optarg); break;
		case 'l': opt.slot = optarg; break;
		case 'u': opt.user = optarg; break;
		case 'd': opt.dbname = optarg; break;
		case 'e': if (synth_parse_size(optarg, &opt.status_every) < 0) usage(); break;
		case 'h': opt.hold = true; break;
		case 't': opt.timeout_s = (unsigned)atoi(optarg); break;
		default: usage();
		}
	}
	if (optind != argc || !connect || opt.conns == 0 || opt.concurrency == 0 ||
	    synth_parse_addr(connect, &opt.addr, &opt.addrlen) < 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	tls_ctx = opt.tls ? synth_tls_ctx(false, NULL, NULL, opt.suites) : NULL;
	sessions = calloc(opt.conns, sizeof *sessions);
	base = event_base_new();
	if (!sessions || !base || (opt.tls && !tls_ctx))
		return 1;
	tv.tv_sec = opt.timeout_s;
	tmo = evtimer_new(base, stop_cb, NULL);
	evtimer_add(tmo, &tv);
	if (opt.hold) {
		in = event_new(base, 0, EV_READ | EV_PERSIST, stop_cb, NULL);
		event_add(in, NULL);
	}
	t_start = synth_mono();
	launch_more();
	event_base_dispatch(base);
	if (t_end == 0)
		t_end = synth_mono();
	printf("{\"sessions\": %u, \"steady\": %u, \"finished\": %u, \"failed\": %u, "
	       "\"bytes\": %llu, \"status_updates\": %llu, \"wall_s\": %.6f, \"setup_s\": %.6f, "
	       "\"stream_s\": %.6f, \"cipher\": \"%s\"}\n", opt.conns, steady, finished, failed,
	       (unsigned long long)total_bytes, (unsigned long long)status_updates,
	       t_end - t_start, t_steady ? t_steady - t_start : 0.0,
	       t_first_stream ? t_end - t_first_stream : 0.0, cipher);
	for (unsigned i = 0; i < launched; i++)
		if (sessions[i].st != S_GONE && sessions[i].bev)
			bufferevent_free(sessions[i].bev);
	if (in)
		event_free(in);
	event_free(tmo);
	event_base_free(base);
	SSL_CTX_free(tls_ctx);
	free(sessions);
	return failed ? 1 : 0;
}
