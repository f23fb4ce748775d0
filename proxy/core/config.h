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

#include "core/log.h"

struct allowlist;

struct config_addr {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[64];			/* as written, for logs */
};

enum client_tls_mode {
	CLIENT_TLS_AUTO,	/* require with a certificate, else disable */
	CLIENT_TLS_DISABLE,
	CLIENT_TLS_ALLOW,
	CLIENT_TLS_REQUIRE,
};

/* libpq's sslmode values, towards the upstream. */
enum server_tls_mode {
	SERVER_TLS_DISABLE,
	SERVER_TLS_PREFER,
	SERVER_TLS_REQUIRE,
	SERVER_TLS_VERIFY_CA,
	SERVER_TLS_VERIFY_FULL,
};

/* libpq's channel_binding, towards the upstream (auth = scram). */
enum server_cbind_mode {
	SERVER_CBIND_DISABLE,	/* never SCRAM-SHA-256-PLUS */
	SERVER_CBIND_PREFER,	/* -PLUS when TLS and the server offers it */
	SERVER_CBIND_REQUIRE,	/* -PLUS or no login */
};

/* libpq's require_auth, towards the upstream (auth = scram): bits of config.server_auth_methods. */
enum server_auth_method {
	SERVER_AUTH_SCRAM = 1 << 0,	/* SCRAM-SHA-256 (and -PLUS) */
	SERVER_AUTH_MD5 = 1 << 1,	/* md5: a password-equivalent goes upstream */
	SERVER_AUTH_PASSWORD = 1 << 2,	/* cleartext: the password itself goes upstream */
	SERVER_AUTH_NONE = 1 << 3,	/* the server asks for nothing (trust) */
};

enum auth_mode {
	AUTH_AUTO,		/* scram with TLS on both legs and an auth_file, else passthrough */
	AUTH_PASSTHROUGH,	/* relay the client's exchange with the upstream */
	AUTH_SCRAM,		/* authenticate the client, then log in upstream ourselves */
};

/* A PROXY header that names no source (v1 UNKNOWN, v2 AF_UNSPEC/AF_UNIX). */
enum proxy_unknown_mode {
	PROXY_UNKNOWN_REFUSE,	/* close: the balancer relays someone it does not name */
	PROXY_UNKNOWN_PEER,	/* judge by the balancer's own address */
};

struct config_addr_list {
	struct config_addr *v;
	size_t n;
};

struct config {
	/* [walgate] */
	struct config_addr_list listen;
	int listen_backlog;
	int workers;
	enum log_level log_level;
	int log_format_json;
	int max_client_conn;
	int64_t startup_timeout_ms;
	int64_t auth_timeout_ms;	/* accept to AuthenticationOk */
	int64_t drain_timeout_ms;
	int64_t max_message_size;
	int64_t relay_buffer_size;
	int tcp_keepalive;
	int64_t tcp_keepalive_idle_ms;
	int64_t tcp_keepalive_interval_ms;
	int tcp_keepalive_count;

	/* [access] */
	struct allowlist *allow;
	int proxy_protocol;		/* PROXY_ACCEPT_* bits; 0 = off */
	struct allowlist *proxy_protocol_trusted;
	int proxy_protocol_unknown;	/* enum proxy_unknown_mode */
	int enforce_on_reload;

	/* [tls] */
	int client_tls;			/* enum client_tls_mode, auto resolved */
	int client_tls_configured;	/* as written, auto included */
	char *cert_file;
	char *key_file;
	char *ca_file;
	int server_tls;			/* enum server_tls_mode */
	char *server_ca_file;
	char *server_cert_file;
	char *server_key_file;
	int server_channel_binding;	/* enum server_cbind_mode */
	char *min_version;
	char *ciphers;

	/* [auth] */
	int auth;			/* enum auth_mode, auto resolved */
	int auth_configured;		/* as written, auto included */
	char *auth_file;
	int server_auth_methods;	/* enum server_auth_method bits */
	char *upstream_user;		/* NULL: the client's user (an auth-file option overrides) */
	char *upstream_password;	/* a source (upstream_cred.h), default "auth-file" */
	char *token_url;		/* gce-metadata: the metadata server's token URL */
	int64_t token_refresh_margin_ms;	/* gce-metadata: refresh this long before expiry */

	/* [metrics] */
	struct config_addr_list metrics_listen;	/* may be empty: endpoint off */
	struct allowlist *metrics_allow;
	int64_t slot_expiry_ms;		/* a slot's stream series outlive its last session this long */

	/* [replication] */
	int64_t takeover_after_ms;	/* a stream silent this long may be taken over; 0 = off */

	/* [monitor] */
	char *monitor_conninfo;		/* libpq conninfo; NULL: no polling */
	int64_t monitor_interval_ms;
	int64_t monitor_timeout_ms;

	/* [upstream] */
	char *upstream_host;
	int upstream_port;
	int64_t upstream_connect_timeout_ms;

	char *path;			/* the file it was read from, or NULL */
	unsigned generation;		/* 1 for the first config in force, +1 per reload */
};

/*
 * Read path (NULL: environment only) and the environment into a new
 * config. On failure returns NULL and writes the reason, naming the file,
 * line and key or the environment variable, into err.
 */
struct config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

/*
 * Read only [section] name from path and the environment, ignoring every
 * other setting and not validating the whole: for --probe, which needs the
 * metrics address and must work from any environment the server runs in.
 * The other fields keep their defaults (or are empty).
 */
struct config *config_load_key(const char *path, const char *section, const char *name, char *err,
			       size_t errlen);

/*
 * Where cfg's [section] name came from, for an error found after loading
 * (a certificate that does not parse): "FILE:LINE: [sec] key", "environment
 * WALGATE_SEC_KEY", or "[sec] key" for a default.
 */
void config_origin(const struct config *cfg, const char *section, const char *name, char *buf,
		   size_t cap);

/*
 * Keep the settings of old that only a restart can change in next, and
 * log each such change that was asked for. Returns the number of them.
 */
int config_keep_restart_only(struct config *next, const struct config *old);

/*
 * The configuration in force on this thread; replaced as a whole on
 * reload, when the thread adopts the new generation (generation.h).
 */
const struct config *config_current(void);
void config_use(const struct config *cfg);

#endif
