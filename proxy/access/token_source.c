/*
 * token_source.c - fetching, caching and refreshing the metadata server's
 * access token (see token_source.h).
 *
 * One fetch at a time: GET url with "Metadata-Flavor: Google", bounded by
 * FETCH_TIMEOUT_S. A good answer replaces the token and schedules the next
 * fetch ahead of its expiry (at least hourly); answers over ANSWER_MAX are
 * cut off unread. A bad one keeps the old token (while it is
 * still valid), counts a failure and retries after 1, 2, 4 ... 30 s.
 * Workers read the token under the mutex, at login time only.
 */
#include "access/token_source.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "access/token_response.h"
#include "core/cred_spec.h"

#define FETCH_TIMEOUT_S 10
#define RETRY_MIN_S 1
#define RETRY_MAX_S 30
#define ANSWER_MAX (64 * 1024)
#define REFRESH_MAX_S 3600		/* however long the metadata server says a token lives */

struct token_source {
	struct event_base *base;
	struct evdns_base *dns;
	struct evhttp_connection *conn;
	struct event *timer;
	struct token_url at;		/* host, port, Host header, path */
	char url[1400];			/* for messages */
	int64_t margin_s;
	int retry_s;
	int http_error;			/* enum evhttp_request_error of the fetch, or -1 */

	pthread_mutex_t lock;		/* guards what follows */
	char token[TOKEN_MAX_LEN + 1];
	double expiry_unix;
	struct token_source_view view;
};

static double unix_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void arm(struct token_source *ts, int64_t seconds)
{
	struct timeval tv = { .tv_sec = seconds > 0 ? seconds : 1 };

	evtimer_add(ts->timer, &tv);
}

/* When to fetch again after a token that lives `life` seconds. */
static int64_t refresh_after(const struct token_source *ts, int64_t life)
{
	int64_t ahead = life - ts->margin_s;
	int64_t after = ahead > life / 2 ? ahead : life / 2;

	return after < REFRESH_MAX_S ? after : REFRESH_MAX_S;
}

static void fetch_failed(struct token_source *ts, const char *why)
{
	pthread_mutex_lock(&ts->lock);
	ts->view.failures++;
	snprintf(ts->view.error, sizeof(ts->view.error), "%s", why);
	pthread_mutex_unlock(&ts->lock);
	log_warning("upstream credential: fetching a token from %s failed: %s; retrying in %d s",
		    ts->url, why, ts->retry_s);
	arm(ts, ts->retry_s);
	ts->retry_s = ts->retry_s * 2 > RETRY_MAX_S ? RETRY_MAX_S : ts->retry_s * 2;
}

static void token_taken(struct token_source *ts, const char *token, int64_t life)
{
	double expiry = unix_now() + (double)life;

	pthread_mutex_lock(&ts->lock);
	OPENSSL_cleanse(ts->token, sizeof(ts->token));
	snprintf(ts->token, sizeof(ts->token), "%s", token);
	ts->expiry_unix = expiry;
	ts->view.fetches++;
	ts->view.error[0] = '\0';
	pthread_mutex_unlock(&ts->lock);
	log_info("upstream credential: new token from %s, valid for %lld s",
		 ts->url, (long long)life);
	ts->retry_s = RETRY_MIN_S;
	arm(ts, refresh_after(ts, life));
}

static void on_answer(struct evhttp_request *req, void *arg)
{
	struct token_source *ts = arg;
	char why[160], token[TOKEN_MAX_LEN + 1];
	struct evbuffer *body;
	unsigned char *raw;
	enum token_parse verdict;
	int64_t life = 0;
	size_t len;

	if (!req || evhttp_request_get_response_code(req) == 0) {
		fetch_failed(ts, ts->http_error == EVREQ_HTTP_DATA_TOO_LONG ? "the answer is too large" :
				 ts->http_error == EVREQ_HTTP_TIMEOUT ? "no answer within the timeout" :
				 "no answer (connection refused, reset or closed)");
		return;
	}
	if (evhttp_request_get_response_code(req) != 200) {
		snprintf(why, sizeof(why), "HTTP status %d", evhttp_request_get_response_code(req));
		fetch_failed(ts, why);
		return;
	}
	body = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(body);
	if (len > ANSWER_MAX) {
		fetch_failed(ts, "the answer is too large");
		return;
	}
	raw = evbuffer_pullup(body, -1);
	verdict = token_response_parse((const char *)raw, len, token, sizeof(token), &life);
	if (raw)
		OPENSSL_cleanse(raw, len);	/* the answer holds the token too */
	if (verdict != TOKEN_OK)
		fetch_failed(ts, token_parse_reason(verdict));
	else
		token_taken(ts, token, life);
	OPENSSL_cleanse(token, sizeof(token));
}

/* libevent says why a request failed just before on_answer() sees it fail. */
static void on_error(enum evhttp_request_error error, void *arg)
{
	struct token_source *ts = arg;

	ts->http_error = (int)error;
}

static void fetch(struct token_source *ts)
{
	struct evhttp_request *req = evhttp_request_new(on_answer, ts);
	struct evkeyvalq *h;

	if (!req) {
		fetch_failed(ts, "out of memory");
		return;
	}
	ts->http_error = -1;
	evhttp_request_set_error_cb(req, on_error);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", ts->at.host_header);
	evhttp_add_header(h, "Metadata-Flavor", "Google");
	if (evhttp_make_request(ts->conn, req, EVHTTP_REQ_GET, ts->at.path) != 0)
		fetch_failed(ts, "cannot send the request");	/* req is freed by libevent */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	fetch(arg);
}

static bool take_url(struct token_source *ts, const char *url, char *err, size_t errlen)
{
	bool ok = token_url_parse(url, &ts->at, err, errlen);

	snprintf(ts->url, sizeof(ts->url), "%s", url);
	return ok;
}

struct token_source *token_source_new(struct event_base *base)
{
	struct token_source *ts = calloc(1, sizeof(*ts));

	if (!ts)
		return NULL;
	pthread_mutex_init(&ts->lock, NULL);
	ts->base = base;
	ts->retry_s = RETRY_MIN_S;
	ts->timer = evtimer_new(base, on_timer, ts);
	if (!ts->timer) {
		token_source_free(ts);
		return NULL;
	}
	snprintf(ts->view.error, sizeof(ts->view.error), "not in use");
	return ts;
}

/* Stop fetching and forget the token; the struct stays for the workers' reads. */
void token_source_halt(struct token_source *ts)
{
	evtimer_del(ts->timer);
	if (ts->conn)
		evhttp_connection_free(ts->conn);	/* cancels a request under way */
	ts->conn = NULL;
	if (ts->dns)
		evdns_base_free(ts->dns, 0);
	ts->dns = NULL;
	ts->url[0] = '\0';
	pthread_mutex_lock(&ts->lock);
	OPENSSL_cleanse(ts->token, sizeof(ts->token));
	ts->expiry_unix = 0;
	ts->view.active = false;
	snprintf(ts->view.error, sizeof(ts->view.error), "not in use");
	pthread_mutex_unlock(&ts->lock);
}

bool token_source_configure(struct token_source *ts, const char *url, int64_t margin_s,
			    char *err, size_t errlen)
{
	if (ts->conn && !strcmp(ts->url, url)) {
		ts->margin_s = margin_s;	/* the same source: keep its token; the margin applies next time */
		return true;
	}
	token_source_halt(ts);
	ts->margin_s = margin_s;
	ts->retry_s = RETRY_MIN_S;
	if (!take_url(ts, url, err, errlen)) {
		ts->url[0] = '\0';
		return false;
	}
	ts->dns = evdns_base_new(ts->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
					   EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!ts->dns)	/* no resolv.conf: numeric hosts and /etc/hosts still work */
		ts->dns = evdns_base_new(ts->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	ts->conn = ts->dns ? evhttp_connection_base_new(ts->base, ts->dns, ts->at.host,
							(unsigned short)ts->at.port) : NULL;
	if (!ts->conn) {
		snprintf(err, errlen, "out of memory");
		token_source_halt(ts);
		return false;
	}
	evhttp_connection_set_timeout(ts->conn, FETCH_TIMEOUT_S);
	/* a hostile or broken server's answer is cut off, not buffered whole */
	evhttp_connection_set_max_body_size(ts->conn, ANSWER_MAX);
	evhttp_connection_set_max_headers_size(ts->conn, ANSWER_MAX);
	pthread_mutex_lock(&ts->lock);
	ts->view.active = true;
	snprintf(ts->view.error, sizeof(ts->view.error), "no token fetched yet");
	pthread_mutex_unlock(&ts->lock);
	fetch(ts);
	return true;
}

bool token_source_get(struct token_source *ts, char *out, size_t cap, char *why, size_t whylen)
{
	bool ok;

	pthread_mutex_lock(&ts->lock);
	ok = ts->token[0] && unix_now() < ts->expiry_unix && strlen(ts->token) < cap;
	if (ok)
		snprintf(out, cap, "%s", ts->token);
	else
		snprintf(why, whylen, "%s", ts->view.error[0] ? ts->view.error : "the token has expired");
	pthread_mutex_unlock(&ts->lock);
	return ok;
}

void token_source_view(struct token_source *ts, struct token_source_view *v)
{
	pthread_mutex_lock(&ts->lock);
	*v = ts->view;
	v->expiry_unix = ts->expiry_unix;
	v->valid = ts->token[0] && unix_now() < ts->expiry_unix;
	pthread_mutex_unlock(&ts->lock);
}

void token_source_free(struct token_source *ts)
{
	if (!ts)
		return;
	if (ts->timer)
		token_source_halt(ts);
	if (ts->timer)
		event_free(ts->timer);
	pthread_mutex_destroy(&ts->lock);
	free(ts);
}
