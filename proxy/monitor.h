/*
 * monitor.h - the upstream's own view of its replication slots, polled
 * with libpq on walgate's event loop ([monitor] conninfo, every interval):
 * every slot, streamed through walgate or not, with its lag and retained
 * WAL. This is how an operator sees a consumer that went away.
 *
 * The poll never blocks the loop: PQconnectStart/PQconnectPoll and
 * PQsendQuery/PQconsumeInput driven by socket events, bounded by a
 * timeout. One connection is kept open between polls and reopened after
 * any failure.
 */
#ifndef WALGATE_MONITOR_H
#define WALGATE_MONITOR_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct monitor;
struct config;

#define MONITOR_NAME_MAX 64

/* One row of pg_replication_slots; the has_* flags say which values were not NULL. */
struct upstream_slot {
	char name[MONITOR_NAME_MAX];
	char database[MONITOR_NAME_MAX];
	char type[16];			/* "logical" or "physical" */
	char plugin[MONITOR_NAME_MAX];
	char wal_status[16];		/* reserved, extended, unreserved, lost, or "" */
	bool active;
	bool has_lag, has_retained, has_safe_wal, has_xmin_age, has_catalog_xmin_age;
	double lag_bytes;		/* current WAL position minus confirmed_flush_lsn (restart_lsn if physical) */
	double retained_bytes;		/* current WAL position minus restart_lsn */
	double safe_wal_size_bytes;
	double xmin_age;		/* age(xmin): transactions vacuum may not clean up behind the slot */
	double catalog_xmin_age;	/* age(catalog_xmin): the same for the system catalogs */
};

struct monitor_view {
	bool enabled;			/* a conninfo is configured */
	int up;				/* last poll: 1 answered, 0 failed, -1 none yet */
	double last_poll_unix;		/* when the last poll ended; 0 never */
	double poll_duration;		/* seconds, of the last poll that ended */
	char error[256];		/* why the last poll failed */
	struct upstream_slot *slots;	/* of the last successful poll */
	size_t nslots;
};

/*
 * Start polling with cfg's [monitor] settings; with no conninfo the
 * monitor exists but stays disabled. Returns NULL only when out of memory.
 * on_result, when not NULL, is called after every poll with up (0/1).
 */
struct monitor *monitor_start(struct event_base *base, const struct config *cfg,
			      void (*on_result)(void *arg, int up), void *arg);

/* After a reload: a changed conninfo or interval takes effect now. */
void monitor_reconfigure(struct monitor *m, const struct config *cfg);

void monitor_stop(struct monitor *m);

const struct monitor_view *monitor_view(const struct monitor *m);

#endif
