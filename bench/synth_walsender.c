/*
 * synth_walsender.c - a fake PostgreSQL walsender for benchmarks. It
 * accepts plaintext or TLS (an SSLRequest is answered 'S' and a handshake
 * follows when it has a certificate, else 'N'), logs anyone in without a
 * password, answers IDENTIFY_SYSTEM, and on START_REPLICATION streams
 * XLogData messages carrying pgoutput (proto_version 1) transactions -
 * Begin, a Relation once, N Inserts, Commit, with increasing LSNs and real
 * timestamps - as fast as the socket takes them, until --bytes per
 * session. It sends a keepalive asking for a reply every --keepalive-ms
 * and accepts standby status updates. Nothing here is PostgreSQL's code.
 *
 *   synth_walsender --listen 127.0.0.1:6000 [--cert F --key F] [--bytes 1G]
 *       [--row-size 80] [--txn-rows 1000] [--after done|close|idle] [--procs N]
 *
 * One process runs one event loop, so all its sessions share one CPU. With
 * --procs N (N > 1) the process binds the port and forks N children that
 * accept on the same socket; a child with a session open stops accepting
 * until it ends, so N concurrent sessions land on N processes. The parent
 * only waits and passes SIGTERM/SIGINT on.
 */
#include "synth_common.h"
#include "synth_pgoutput.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#define FILL_TARGET   (1024u * 1024u)	/* queue this much, then wait */
#define FILL_LOW      (256u * 1024u)	/* refill when the output drains below */
#define GEN_CHUNK     (64u * 1024u)

enum after { AFTER_DONE, AFTER_CLOSE, AFTER_IDLE };
enum state { ST_STARTUP, ST_READY, ST_STREAM, ST_WAIT_COPYDONE, ST_IDLE, ST_CLOSING };

static struct {
	const char *listen, *cert, *key, *suites;
	uint64_t budget;
	unsigned row_size, txn_rows, keepalive_ms, procs;
	enum after after;
	bool verbose;
} opt = { "127.0.0.1:0", NULL, NULL, NULL, 1ull << 30, 80, 1000, 10000, 1, AFTER_DONE, false };

static struct event_base *base;
static SSL_CTX *tls_ctx;
static size_t max_msg;
static uint64_t total_bytes, total_sessions, total_streams;
static uint32_t next_pid = 40000;
static struct evconnlistener *listener;
static unsigned live_conns;	/* --procs > 1: sessions of this child */

struct conn {
	struct bufferevent *bev;
	int fd;
	enum state st;
	bool tls;
	uint64_t sent, acked;
	struct synth_stream gen;
	struct event *ka;
};

static void conn_read(struct bufferevent *bev, void *arg);
static void conn_write(struct bufferevent *bev, void *arg);
static void conn_event(struct bufferevent *bev, short what, void *arg);

static void conn_free(struct conn *c)
{
	if (opt.procs > 1 && live_conns > 0 && --live_conns == 0)
		evconnlistener_enable(listener);
	if (c->ka)
		event_free(c->ka);
	if (c->bev)
		bufferevent_free(c->bev);
	if (!c->tls && c->fd >= 0)
		close(c->fd);
	free(c);
}

/* The stream's budget is spent: end it as --after says. */
static void stream_finished(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (opt.after == AFTER_DONE) {
		synth_send(out, 'c', NULL);
		c->st = ST_WAIT_COPYDONE;
	} else if (opt.after == AFTER_IDLE) {
		c->st = ST_IDLE;
	} else {
		c->st = ST_CLOSING;
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		bufferevent_disable(c->bev, EV_READ);
	}
}

static void fill(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int64_t now = synth_pg_now();

	while (c->st == ST_STREAM && evbuffer_get_length(out) < FILL_TARGET) {
		struct evbuffer_iovec v;
		size_t used = 0;

		if (c->sent >= opt.budget) {
			stream_finished(c);
			return;
		}
		if (evbuffer_reserve_space(out, GEN_CHUNK + max_msg, &v, 1) < 1)
			return;
		used = synth_pgoutput_fill(&c->gen, v.iov_base, v.iov_len, opt.budget - c->sent, now);
		v.iov_len = used;
		evbuffer_commit_space(out, &v, 1);
		c->sent += used;
		total_bytes += used;
	}
}

static void keepalive_tick(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint8_t k[32];

	if (c->st == ST_STREAM) {
		c->gen.keepalive_due = true;
	} else if (c->st == ST_IDLE) {
		evbuffer_add(bufferevent_get_output(c->bev), k, synth_keepalive(k, c->gen.lsn,
								      synth_pg_now(), true));
	}
}

static void start_replication(struct conn *c, const char *q)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct synth_msg m;
	struct timeval tv = { opt.keepalive_ms / 1000, (opt.keepalive_ms % 1000) * 1000 };
	unsigned hi, lo;
	const char *l = strstr(q, " LOGICAL ");

	if (l && sscanf(l + 9, "%X/%X", &hi, &lo) == 2 && ((uint64_t)hi << 32 | lo) > c->gen.lsn)
		c->gen.lsn = (uint64_t)hi << 32 | lo;
	synth_msg_start(&m, 'W');
	synth_msg_byte(&m, 0);
	synth_msg_u16(&m, 0);
	synth_msg_end(&m, out);
	c->st = ST_STREAM;
	c->sent = 0;
	total_streams++;
	if (opt.verbose)
		fprintf(stderr, "synth_walsender: %s\n", q);
	if (opt.keepalive_ms) {
		c->ka = event_new(base, -1, EV_PERSIST, keepalive_tick, c);
		event_add(c->ka, &tv);
	}
	bufferevent_setwatermark(c->bev, EV_WRITE, FILL_LOW, 0);
	fill(c);
}

static void identify_system(struct evbuffer *out)
{
	static const struct { const char *name; uint32_t oid; uint16_t len; } cols[4] = {
		{ "systemid", 25, 0xffff }, { "timeline", 23, 4 },
		{ "xlogpos", 25, 0xffff }, { "dbname", 25, 0xffff },
	};
	const char *vals[4] = { "7311111111111111111", "1", "0/16B3748", "synth" };
	struct synth_msg m;

	synth_msg_start(&m, 'T');
	synth_msg_u16(&m, 4);
	for (int i = 0; i < 4; i++) {
		synth_msg_str(&m, cols[i].name);
		synth_msg_u32(&m, 0);
		synth_msg_u16(&m, 0);
		synth_msg_u32(&m, cols[i].oid);
		synth_msg_u16(&m, cols[i].len);
		synth_msg_u32(&m, UINT32_MAX);
		synth_msg_u16(&m, 0);
	}
	synth_msg_end(&m, out);
	synth_msg_start(&m, 'D');
	synth_msg_u16(&m, 4);
	for (int i = 0; i < 4; i++) {
		synth_msg_u32(&m, (uint32_t)strlen(vals[i]));
		synth_msg_bytes(&m, vals[i], strlen(vals[i]));
	}
	synth_msg_end(&m, out);
	synth_send(out, 'C', "IDENTIFY_SYSTEM");
	synth_send_ready(out);
}

static void query(struct conn *c, const char *q)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (*q == ' ' || *q == '\n' || *q == '\t')
		q++;
	if (strncasecmp(q, "IDENTIFY_SYSTEM", 15) == 0) {
		identify_system(out);
	} else if (strncasecmp(q, "START_REPLICATION", 17) == 0) {
		start_replication(c, q);
	} else if (*q == '\0' || *q == ';') {
		synth_send(out, 'I', NULL);
		synth_send_ready(out);
	} else {
		synth_send_error(out, "0A000", "synth_walsender: unsupported command");
		synth_send_ready(out);
	}
}

static void login(struct conn *c)
{
	static const char *params[][2] = {
		{ "server_version", "15.20" }, { "server_encoding", "UTF8" },
		{ "client_encoding", "UTF8" }, { "DateStyle", "ISO, MDY" },
		{ "integer_datetimes", "on" }, { "standard_conforming_strings", "on" },
		{ "TimeZone", "UTC" },
	};
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct synth_msg m;

	synth_msg_start(&m, 'R');
	synth_msg_u32(&m, 0);
	synth_msg_end(&m, out);
	for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
		synth_msg_start(&m, 'S');
		synth_msg_str(&m, params[i][0]);
		synth_msg_str(&m, params[i][1]);
		synth_msg_end(&m, out);
	}
	synth_msg_start(&m, 'K');
	synth_msg_u32(&m, next_pid++);
	synth_msg_u32(&m, (uint32_t)random());
	synth_msg_end(&m, out);
	synth_send_ready(out);
	c->st = ST_READY;
	total_sessions++;
}

/* After an SSLRequest: 'S', then a TLS bufferevent on the same socket. */
static int upgrade(struct conn *c)
{
	SSL *ssl;

	bufferevent_free(c->bev);
	c->bev = NULL;
	if (send(c->fd, "S", 1, MSG_NOSIGNAL) != 1 || !(ssl = SSL_new(tls_ctx)))
		return -1;
	c->bev = bufferevent_openssl_socket_new(base, c->fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		return -1;
	c->tls = true;
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	synth_tune(c->bev, -1);
	bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return 0;
}

/* The startup phase; 1 to go on, 0 to wait for more, -1 to close. */
static int startup(struct conn *c, struct evbuffer *in)
{
	uint8_t hdr[8];
	uint32_t len, code;

	if (evbuffer_copyout(in, hdr, 8) < 8)
		return 0;
	len = pg_get_u32(hdr);
	code = pg_get_u32(hdr + 4);
	if (len < 8 || len > PG_STARTUP_MAX_LEN)
		return -1;
	if (evbuffer_get_length(in) < len)
		return 0;
	evbuffer_drain(in, len);
	if (code == PG_SSL_REQUEST_CODE) {
		if (tls_ctx && !c->tls) {
			if (evbuffer_get_length(in) > 0 || upgrade(c) < 0)
				return -1;
			return 0;
		}
		evbuffer_add(bufferevent_get_output(c->bev), "N", 1);
		return 1;
	}
	if (code == PG_GSSENC_REQUEST_CODE) {
		evbuffer_add(bufferevent_get_output(c->bev), "N", 1);
		return 1;
	}
	if (PG_PROTOCOL_MAJOR(code) != 3)
		return -1;
	login(c);
	return 1;
}

static int message(struct conn *c, char type, const uint8_t *body, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	switch (type) {
	case 'X':
		return -1;
	case 'Q':
		if (n == 0 || body[n - 1] != '\0')
			return -1;
		if (c->st != ST_READY)
			return -1;
		query(c, (const char *)body);
		return 0;
	case 'd':
		if (n >= 9 && body[0] == 'r')
			c->acked = pg_get_u64(body + 9);	/* flushed */
		return 0;
	case 'c':
		if (c->st == ST_STREAM || c->st == ST_IDLE)
			synth_send(out, 'c', NULL);
		if (c->st == ST_STREAM || c->st == ST_IDLE || c->st == ST_WAIT_COPYDONE) {
			synth_send(out, 'C', "COPY 0");
			synth_send_ready(out);
			c->st = ST_READY;
			bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
			if (c->ka) {
				event_free(c->ka);
				c->ka = NULL;
			}
		}
		return 0;
	case 'S':
		synth_send_ready(out);
		return 0;
	default:
		return 0;
	}
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hdr[5];

	for (;;) {
		if (c->st == ST_CLOSING)
			return;
		if (c->st == ST_STARTUP) {
			int r = startup(c, in);

			if (r < 0)
				goto close;
			if (r == 0)
				return;
			continue;
		}
		if (evbuffer_copyout(in, hdr, 5) < 5)
			return;
		uint32_t len = pg_get_u32(hdr + 1);

		if (len < 4 || len > (1u << 20))
			goto close;
		if (evbuffer_get_length(in) < 1 + (size_t)len)
			return;
		const uint8_t *p = evbuffer_pullup(in, 1 + (ssize_t)len);
		int r = message(c, (char)hdr[0], p + 5, len - 4);

		evbuffer_drain(in, 1 + (size_t)len);
		if (r < 0)
			goto close;
	}
close:
	conn_free(c);
}

static void conn_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->st == ST_STREAM)
		fill(c);
	if (c->st == ST_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(arg);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct conn *c = calloc(1, sizeof *c);

	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->gen.lsn = SYNTH_START_LSN;
	if (opt.procs > 1 && live_conns++ == 0)
		evconnlistener_disable(l);	/* the next session goes to another child */
	c->bev = bufferevent_socket_new(base, fd, 0);
	if (!c->bev) {
		conn_free(c);
		return;
	}
	synth_tune(c->bev, fd);
	bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void accept_error(struct evconnlistener *l, void *arg)
{
	fprintf(stderr, "synth_walsender: accept: %s\n", strerror(errno));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(base);
}

static void usage(void)
{
	fprintf(stderr, "usage: synth_walsender [--listen HOST:PORT] [--cert FILE --key FILE]\n"
		"  [--ciphersuites LIST] [--bytes SIZE] [--row-size N] [--txn-rows N]\n"
		"  [--after done|close|idle] [--keepalive-ms N] [--procs N] [--verbose]\n");
	exit(2);
}

static unsigned local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					      : ((struct sockaddr_in *)&ss)->sin_port);
}

static int serve(struct evconnlistener *l);

/* --procs N: bind here, fork N children that each run an event loop on the
 * shared socket, wait for SIGTERM/SIGINT (or a child's death) and stop them. */
static int run_procs(const struct sockaddr_storage *ss, int sslen)
{
	pid_t kids[64];
	sigset_t set;
	int fd, one = 1, sig, status, rc = 0;
	unsigned i, n = 0;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (const struct sockaddr *)ss, (socklen_t)sslen) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "synth_walsender: cannot listen on %s: %s\n", opt.listen,
			strerror(errno));
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	fflush(stdout);
	for (i = 0; i < opt.procs; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			fprintf(stderr, "synth_walsender: fork: %s\n", strerror(errno));
			rc = 1;
			break;
		}
		if (pid == 0) {
			struct evconnlistener *l;

			sigprocmask(SIG_UNBLOCK, &set, NULL);
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			base = event_base_new();
			l = evconnlistener_new(base, accept_cb, NULL,
					       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
			if (!base || !l)
				_exit(1);
			_exit(serve(l));
		}
		kids[n++] = pid;
	}
	if (rc == 0) {
		printf("listening on port %u (%u processes)\n", local_port(fd), n);
		fflush(stdout);
		sigwait(&set, &sig);
	}
	for (i = 0; i < n; i++)
		kill(kids[i], SIGTERM);
	for (i = 0; i < n; i++)
		if (waitpid(kids[i], &status, 0) == kids[i] &&
		    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			rc = 1;
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "listen", 1, NULL, 'l' }, { "cert", 1, NULL, 'c' }, { "key", 1, NULL, 'k' },
		{ "ciphersuites", 1, NULL, 's' }, { "bytes", 1, NULL, 'b' },
		{ "row-size", 1, NULL, 'r' }, { "txn-rows", 1, NULL, 't' },
		{ "after", 1, NULL, 'a' }, { "keepalive-ms", 1, NULL, 'K' },
		{ "procs", 1, NULL, 'P' }, { "verbose", 0, NULL, 'v' }, { NULL, 0, NULL, 0 },
	};
	struct sockaddr_storage ss;
	struct evconnlistener *l;
	int o, sslen;

	while ((o = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (o) {
		case 'l': opt.listen = optarg; break;
		case 'c': opt.cert = optarg; break;
		case 'k': opt.key = optarg; break;
		case 's': opt.suites = optarg; break;
		case 'b': if (synth_parse_size(optarg, &opt.budget) < 0) usage(); break;
		case 'r': opt.row_size = (unsigned)atoi(optarg); break;
		case 't': opt.txn_rows = (unsigned)atoi(optarg); break;
		case 'K': opt.keepalive_ms = (unsigned)atoi(optarg); break;
		case 'P': opt.procs = (unsigned)atoi(optarg); break;
		case 'v': opt.verbose = true; break;
		case 'a':
			if (!strcmp(optarg, "done")) opt.after = AFTER_DONE;
			else if (!strcmp(optarg, "close")) opt.after = AFTER_CLOSE;
			else if (!strcmp(optarg, "idle")) opt.after = AFTER_IDLE;
			else usage();
			break;
		default: usage();
		}
	}
	if (optind != argc || opt.row_size > (1u << 20) || opt.txn_rows == 0 ||
	    opt.procs == 0 || opt.procs > 64 ||
	    !opt.cert != !opt.key || synth_parse_addr(opt.listen, &ss, &sslen) < 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (opt.cert && !(tls_ctx = synth_tls_ctx(true, opt.cert, opt.key, opt.suites)))
		return 1;
	if (!(max_msg = synth_pgoutput_init(opt.row_size, opt.txn_rows)))
		usage();
	if (opt.procs > 1)
		return run_procs(&ss, sslen);
	base = event_base_new();
	l = evconnlistener_new_bind(base, accept_cb, NULL,
				    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				    4096, (struct sockaddr *)&ss, sslen);
	if (!l) {
		fprintf(stderr, "synth_walsender: cannot listen on %s: %s\n", opt.listen,
			strerror(errno));
		return 1;
	}
	printf("listening on port %u\n", local_port(evconnlistener_get_fd(l)));
	fflush(stdout);
	return serve(l);
}

/* One event loop on listener l until SIGTERM or SIGINT. */
static int serve(struct evconnlistener *l)
{
	struct event *sigs[2];

	listener = l;
	evconnlistener_set_error_cb(l, accept_error);
	sigs[0] = evsignal_new(base, SIGTERM, on_signal, NULL);
	sigs[1] = evsignal_new(base, SIGINT, on_signal, NULL);
	event_add(sigs[0], NULL);
	event_add(sigs[1], NULL);
	event_base_dispatch(base);
	fprintf(stderr, "synth_walsender: %llu sessions, %llu streams, %llu bytes\n",
		(unsigned long long)total_sessions, (unsigned long long)total_streams,
		(unsigned long long)total_bytes);
	evconnlistener_free(l);
	event_free(sigs[0]);
	event_free(sigs[1]);
	event_base_free(base);
	SSL_CTX_free(tls_ctx);
	return 0;
}
