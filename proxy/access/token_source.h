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
	bool active;			/* configured: some user's password comes from it */
	bool valid;			/* a token is held and has not expired */
	double expiry_unix;		/* when it expires, seconds since the epoch; 0 without one */
	uint64_t fetches;		/* successful fetches */
	uint64_t failures;		/* failed fetches */
	char error[256];		/* why the last fetch failed; "" when it worked */
};

/*
 * The control thread: an idle source (no fetching) whose struct lives until
 * token_source_free(), so that workers may hold its pointer throughout.
 */
struct token_source *token_source_new(struct event_base *base);

/*
 * The control thread: fetch from url ("http://host[:port]/path"), the first
 * fetch at once, unless the source already fetches from url with margin_s.
 * margin_s: refresh that long before expiry (or at half the lifetime, if
 * that is sooner). false with err filled on a bad URL (the source is then
 * idle).
 */
bool token_source_configure(struct token_source *ts, const char *url, int64_t margin_s,
			    char *err, size_t errlen);


/* The control thread: stop fetching and wipe the token (no user needs it). */
void token_source_halt(struct token_source *ts);

/*
 * Any thread: copy the current token into out (cap bytes). Returns false
 * when there is none that is still valid, with the reason in why.
 */
bool token_source_get(struct token_source *ts, char *out, size_t cap, char *why, size_t whylen);

/* Any thread: a consistent copy of the state. */
void token_source_view(struct token_source *ts, struct token_source_view *v);

/* The control thread, after the workers stopped: halt and free. */
void token_source_free(struct token_source *ts);

#endif
