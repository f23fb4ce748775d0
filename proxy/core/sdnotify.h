/*
 * sdnotify.h - telling systemd (Type=notify) where walgate is in its life:
 * ready, reloading, stopping. A no-op when built without libsystemd or
 * when not started by systemd (no $NOTIFY_SOCKET).
 */
#ifndef WALGATE_SDNOTIFY_H
#define WALGATE_SDNOTIFY_H

/* The listeners and the metrics endpoint are open: READY=1. */
void sdnotify_ready(void);

/* A SIGHUP reload begins: RELOADING=1 with the monotonic clock. */
void sdnotify_reloading(void);

/* A reload ended (applied or refused): READY=1 with a STATUS line. */
void sdnotify_reloaded(unsigned generation, int ok);

/* Draining after SIGTERM/SIGINT: STOPPING=1. */
void sdnotify_stopping(void);

#endif
