/*
 * bev_leg.h - a session's leg while it is still a bufferevent (before
 * RELAY, or a cancel's upstream leg): freeing it with what it holds, and
 * writing its queue now rather than at its next write event.
 *
 * A TLS bufferevent is created without BEV_OPT_CLOSE_ON_FREE
 * (tls_upgrade.c), so that relay_io_take can take its SSL and socket over;
 * until then they are freed here, with it.
 */
#ifndef WALGATE_BEV_LEG_H
#define WALGATE_BEV_LEG_H

struct bufferevent;

/* Free the bufferevent, and a TLS one's SSL and socket. */
void bev_leg_free(struct bufferevent *bev);

/*
 * Write what is queued (plain or TLS) now, as far as the socket takes it;
 * what is left waits for the leg's write event. For a closing session's
 * last bytes.
 */
void bev_leg_flush(struct bufferevent *bev);

#endif
