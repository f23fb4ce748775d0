/*
 * config.h - walgate's configuration: the settings, how they are read from
 * an INI file and from WALGATE_<SECTION>_<KEY> environment variables, and
 * the one current configuration the process runs with.
 */
#ifndef WALGATE_CONFIG_H
#define WALGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "log.h"

struct config_addr {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[64];			/* as written, for logs */
};

struct config {
	/* [walgate] */
	struct config_addr *listen;
	size_t nlisten;
	int listen_backlog;
	int workers;
	enum log_level log_level;
	int log_format_json;
	int max_client_conn;
	int64_t startup_timeout_ms;
	int64_t drain_timeout_ms;
	int64_t max_message_size;
	int64_t relay_buffer_size;
	int tcp_keepalive;
	int64_t tcp_keepalive_idle_ms;
	int64_t tcp_keepalive_interval_ms;
	int tcp_keepalive_count;

	/* [upstream] */
	char *upstream_host;
	int upstream_port;
	int64_t upstream_connect_timeout_ms;

	char *path;			/* the file it was read from, or NULL */
};

/*
 * Read path (NULL: environment only) and the environment into a new
 * config. On failure returns NULL and writes the reason, naming the file,
 * line and key or the environment variable, into err.
 */
struct config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

/*
 * Keep the settings of old that only a restart can change in next, and
 * log each such change that was asked for. Returns the number of them.
 */
int config_keep_restart_only(struct config *next, const struct config *old);

/* The configuration in force; replaced as a whole on reload. */
const struct config *config_current(void);
void config_set_current(struct config *cfg);

#endif
