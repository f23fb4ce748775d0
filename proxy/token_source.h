/*
 * token_source.h - an OAuth 2.0 access token for IAM database login
 * (AlloyDB, Cloud SQL), fetched from the GCE/GKE metadata server on the
 * control thread's event loop, cached until shortly before it expires and
 * refreshed ahead of that, and handed to the workers' upstream logins as
 * the password.
 *
 * The fetch never blocks the loop (libevent's HTTP client, evdns for a
 * name); a failed fetch is retried with a growing delay. Tokens are never
 * logged; errors name the URL and the reason only.
 */
#ifndef WALGATE_TOKEN_SOURCE_H
#define WALGATE_TOKEN_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct token_source;

/* What metrics and readiness show. */
struct token_source_view {
	bool valid;			/* a token is held and has not expired */
	double expiry_unix;		/* when it expires, seconds since the epoch; 0 without one */
	uint64_t fetches;		/* successful fetches */
	uint64_t failures;		/* failed fetches */
	char error[256];		/* why the last fetch failed; "" when it worked */
};

/*
 * Start fetching from url ("http://host[:port]/path"); the first fetch
 * starts at once. margin_s: refresh that long before expiry (or at half
 * the lifetime, if that is sooner). NULL with err filled on a bad URL.
 */
struct token_source *token_source_start(struct event_base *base, const char *url,
					 int64_t margin_s, char *err, size_t errlen);

/*
 * Any thread: copy the current token into out (cap bytes). Returns false
 * when there is none that is still valid, with the reason in why.
 */
bool token_source_get(struct token_source *ts, char *out, size_t cap, char *why, size_t whylen);

/* Any thread: a consistent copy of the state. */
void token_source_view(struct token_source *ts, struct token_source_view *v);

/* The control thread: stop, cancel a fetch under way, wipe the token, free. */
void token_source_stop(struct token_source *ts);

#endif
