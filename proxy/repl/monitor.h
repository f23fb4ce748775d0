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
#include <stdint.h>

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

/* Where a poll failed: connecting tells of the upstream, the rest of the monitor. */
enum monitor_stage {
	MONITOR_STAGE_CONNECT,		/* no connection to the server could be opened */
	MONITOR_STAGE_LOGIN,		/* connected; TLS, authentication or the database failed */
	MONITOR_STAGE_QUERY,		/* logged in; the query failed or timed out */
	MONITOR_STAGES
};

const char *monitor_stage_name(enum monitor_stage s);

struct monitor_view {
	bool enabled;			/* a conninfo is configured */
	int up;				/* last poll: 1 answered, 0 failed, -1 none yet */
	int reached;			/* last poll opened a connection to the server: 1, 0, -1 none yet */
	int failed_stage;		/* enum monitor_stage of the last failure, -1 when up */
	uint64_t failures[MONITOR_STAGES];	/* polls that failed, by stage */
	double last_poll_unix;		/* when the last poll ended; 0 never */
	double poll_duration;		/* seconds, of the last poll that ended */
	char error[256];		/* why the last poll failed */
	struct upstream_slot *slots;	/* of the last successful poll */
	size_t nslots;
};

/* What one poll found, for the caller's readiness: see on_result. */
struct monitor_outcome {
	bool up;			/* logged in and read the slots */
	bool reached;			/* a connection to the server was opened */
	const char *host, *port;	/* the server it was (libpq's PQhost, PQport) */
};

/*
 * Start polling with cfg's [monitor] settings; with no conninfo the
 * monitor exists but stays disabled. Returns NULL only when out of memory.
 * on_result, when not NULL, is called after every poll.
 */
struct monitor *monitor_start(struct event_base *base, const struct config *cfg,
			      void (*on_result)(void *arg, const struct monitor_outcome *o),
			      void *arg);

/*
 * What libpq would do with conninfo that the operator would not see: a
 * verify-ca/verify-full without a root certificate (libpq 15 does not use
 * the system store), a password file that is missing, unreadable, or that
 * libpq ignores because group or others may read it. false with the
 * reason in err.
 */
bool monitor_check_conninfo(const char *conninfo, char *err, size_t errlen);

/* After a reload: a changed conninfo or interval takes effect now. */
void monitor_reconfigure(struct monitor *m, const struct config *cfg);

void monitor_stop(struct monitor *m);

const struct monitor_view *monitor_view(const struct monitor *m);

#endif
