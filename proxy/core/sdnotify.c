/*
 * sdnotify.c - walgate's readiness, reload and stop notices to systemd
 * through libsystemd's sd_notify(3); compiled to no-ops without it.
 */
#include "core/sdnotify.h"

#ifdef WALGATE_HAVE_LIBSYSTEMD

#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <time.h>

void sdnotify_ready(void)
{
	sd_notify(0, "READY=1\nSTATUS=accepting connections");
}

void sdnotify_reloading(void)
{
	struct timespec ts;
	unsigned long long usec = 0;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		usec = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration", usec);
}

void sdnotify_reloaded(unsigned generation, int ok)
{
	if (ok)
		sd_notifyf(0, "READY=1\nSTATUS=accepting connections (rule set %u)", generation);
	else
		sd_notifyf(0, "READY=1\nSTATUS=reload refused, rule set %u stays in force", generation);
}

void sdnotify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=draining sessions");
}

#else

void sdnotify_ready(void)
{
}

void sdnotify_reloading(void)
{
}

void sdnotify_reloaded(unsigned generation, int ok)
{
	(void)generation;
	(void)ok;
}

void sdnotify_stopping(void)
{
}

#endif
