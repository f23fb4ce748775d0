/*
 * probe.h - `walgate --probe PATH`: one GET to walgate's own metrics
 * endpoint, for container health checks that have no HTTP client.
 */
#ifndef WALGATE_PROBE_H
#define WALGATE_PROBE_H

struct config;

/*
 * GET path (e.g. "/healthz") from the first [metrics] listen address of cfg
 * (a wildcard address is reached through loopback). Returns the exit code:
 * 0 for a 200 answer, 1 otherwise (the reason on stderr).
 */
int probe_run(const struct config *cfg, const char *path);

#endif
