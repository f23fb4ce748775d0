/*
 * config.c - the table of settings and loading a config from an INI file
 * (libinih) and the environment; the parsers of values are config_value.c's.
 *
 * Every setting is one row of config_keys: its section, name, type, where
 * it lives in struct config, its default (as text, parsed by the same code
 * as a user's value) and whether SIGHUP can change it. The environment
 * variable WALGATE_<SECTION>_<KEY> overrides the file.
 */
#include "config.h"
#include "config_value.h"
#include "allowlist.h"
#include "proxy_header.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_type {
	KT_STRING,
	KT_INT,
	KT_BOOL,
	KT_DURATION,		/* int64_t milliseconds */
	KT_SIZE,		/* int64_t bytes */
	KT_LOG_LEVEL,
	KT_LOG_FORMAT,
	KT_LISTEN,
	KT_ALLOWLIST,		/* struct allowlist * */
	KT_PROXY_MODE,		/* int, PROXY_ACCEPT_* bits */
	KT_CHOICE,		/* int, index into choices ("a|b|c") */
	KT_FLAGS,		/* int, bit i for each word of choices listed ("a, c") */
};

struct config_key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t offset;
	const char *def;	/* NULL: required or empty */
	int64_t min, max;	/* for KT_INT, KT_DURATION, KT_SIZE */
	bool reloadable;
	const char *choices;	/* for KT_CHOICE and KT_FLAGS */
};

#define OFF(field) offsetof(struct config, field)
#define DAY_MS (86400 * 1000LL)

static const struct config_key config_keys[] = {
	{ "walgate", "listen", KT_LISTEN, OFF(listen), "0.0.0.0:5432, [::]:5432", 0, 0, false, NULL },
	{ "walgate", "listen_backlog", KT_INT, OFF(listen_backlog), "128", 1, 65535, false, NULL },
	{ "walgate", "workers", KT_INT, OFF(workers), "0", 0, 1024, false, NULL },
	{ "walgate", "log_level", KT_LOG_LEVEL, OFF(log_level), "info", 0, 0, true, NULL },
	{ "walgate", "log_format", KT_LOG_FORMAT, OFF(log_format_json), "text", 0, 0, true, NULL },
	{ "walgate", "max_client_conn", KT_INT, OFF(max_client_conn), "1000", 1, 1000000, true, NULL },
	{ "walgate", "startup_timeout", KT_DURATION, OFF(startup_timeout_ms), "10s", 100, DAY_MS, true, NULL },
	{ "walgate", "drain_timeout", KT_DURATION, OFF(drain_timeout_ms), "30s", 0, DAY_MS, true, NULL },
	{ "walgate", "max_message_size", KT_SIZE, OFF(max_message_size), "1GB", 1024, 0x7fffffff, true, NULL },
	{ "walgate", "relay_buffer_size", KT_SIZE, OFF(relay_buffer_size), "256kB", 4096, 64 << 20, true, NULL },
	{ "walgate", "tcp_keepalive", KT_BOOL, OFF(tcp_keepalive), "on", 0, 0, true, NULL },
	{ "walgate", "tcp_keepalive_idle", KT_DURATION, OFF(tcp_keepalive_idle_ms), "60s", 1000, DAY_MS, true, NULL },
	{ "walgate", "tcp_keepalive_interval", KT_DURATION, OFF(tcp_keepalive_interval_ms), "10s", 1000, DAY_MS, true, NULL },
	{ "walgate", "tcp_keepalive_count", KT_INT, OFF(tcp_keepalive_count), "6", 1, 127, true, NULL },
	{ "tls", "client_tls", KT_CHOICE, OFF(client_tls), "auto", 0, 0, true, "auto|disable|allow|require" },
	{ "tls", "cert_file", KT_STRING, OFF(cert_file), NULL, 0, 0, true, NULL },
	{ "tls", "key_file", KT_STRING, OFF(key_file), NULL, 0, 0, true, NULL },
	{ "tls", "ca_file", KT_STRING, OFF(ca_file), NULL, 0, 0, true, NULL },
	{ "tls", "server_tls", KT_CHOICE, OFF(server_tls), "prefer", 0, 0, true,
	  "disable|prefer|require|verify-ca|verify-full" },
	{ "tls", "server_ca_file", KT_STRING, OFF(server_ca_file), NULL, 0, 0, true, NULL },
	{ "tls", "server_cert_file", KT_STRING, OFF(server_cert_file), NULL, 0, 0, true, NULL },
	{ "tls", "server_key_file", KT_STRING, OFF(server_key_file), NULL, 0, 0, true, NULL },
	{ "tls", "server_channel_binding", KT_CHOICE, OFF(server_channel_binding), "prefer", 0, 0, true,
	  "disable|prefer|require" },
	{ "tls", "min_version", KT_STRING, OFF(min_version), "TLSv1.2", 0, 0, true, NULL },
	{ "tls", "ciphers", KT_STRING, OFF(ciphers), NULL, 0, 0, true, NULL },
	{ "auth", "auth", KT_CHOICE, OFF(auth), "auto", 0, 0, true, "auto|passthrough|scram" },
	{ "auth", "auth_file", KT_STRING, OFF(auth_file), NULL, 0, 0, true, NULL },
	{ "auth", "server_auth_methods", KT_FLAGS, OFF(server_auth_methods), "scram-sha-256", 0, 0, true,
	  "scram-sha-256|md5|password|none" },
	{ "metrics", "listen", KT_LISTEN, OFF(metrics_listen), "127.0.0.1:9930", 0, 0, false, NULL },
	{ "metrics", "allow", KT_ALLOWLIST, OFF(metrics_allow), "127.0.0.0/8, ::1", 0, 0, true, NULL },
	{ "metrics", "slot_expiry", KT_DURATION, OFF(slot_expiry_ms), "5min", 0, DAY_MS, true, NULL },
	{ "monitor", "conninfo", KT_STRING, OFF(monitor_conninfo), NULL, 0, 0, true, NULL },
	{ "monitor", "interval", KT_DURATION, OFF(monitor_interval_ms), "10s", 100, DAY_MS, true, NULL },
	{ "monitor", "timeout", KT_DURATION, OFF(monitor_timeout_ms), "5s", 100, DAY_MS, true, NULL },
	{ "access", "allow", KT_ALLOWLIST, OFF(allow), NULL, 0, 0, true, NULL },
	{ "access", "proxy_protocol", KT_PROXY_MODE, OFF(proxy_protocol), "off", 0, 0, true, NULL },
	{ "access", "proxy_protocol_trusted", KT_ALLOWLIST, OFF(proxy_protocol_trusted), NULL, 0, 0, true, NULL },
	{ "access", "enforce_on_reload", KT_BOOL, OFF(enforce_on_reload), "off", 0, 0, true, NULL },
	{ "upstream", "host", KT_STRING, OFF(upstream_host), NULL, 0, 0, true, NULL },
	{ "upstream", "port", KT_INT, OFF(upstream_port), "5432", 1, 65535, true, NULL },
	{ "upstream", "connect_timeout", KT_DURATION, OFF(upstream_connect_timeout_ms), "10s", 100, DAY_MS, true, NULL },
};

#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* Each thread's configuration in force; generation.c keeps it alive. */
static _Thread_local const struct config *thread_config;

struct load_ctx {
	struct config *cfg;
	const char *source;	/* file name */
	bool seen[NKEYS];
	char *err;
	size_t errlen;
};

static const struct config_key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcasecmp(config_keys[i].section, section) &&
		    !strcasecmp(config_keys[i].name, name))
			return &config_keys[i];
	return NULL;
}

static bool is_known_section(const char *section)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcasecmp(config_keys[i].section, section))
			return true;
	return false;
}

static const char *parse_value(const struct config_key *k, const char *value, struct config *cfg,
			       char *why_buf)
{
	void *field = (char *)cfg + k->offset;
	int64_t v = 0;
	const char *why = NULL;
	int b;

	switch (k->type) {
	case KT_STRING:
		if (!*value)
			return "must not be empty";
		free(*(char **)field);
		*(char **)field = strdup(value);
		return *(char **)field ? NULL : "out of memory";
	case KT_LISTEN:
		return config_parse_listen(value, (struct config_addr_list *)field);
	case KT_ALLOWLIST:
		return config_parse_allowlist(value, (struct allowlist **)field, why_buf);
	case KT_PROXY_MODE:
		return config_parse_proxy_mode(value, (int *)field);
	case KT_CHOICE:
		return config_parse_choice(value, k->choices, (int *)field, why_buf);
	case KT_FLAGS:
		return config_parse_flags(value, k->choices, (int *)field, why_buf);
	case KT_BOOL:
		if ((why = config_parse_bool(value, &b)) == NULL)
			*(int *)field = b;
		return why;
	case KT_LOG_LEVEL:
		for (int i = LOG_LEVEL_ERROR; i <= LOG_LEVEL_DEBUG; i++) {
			static const char *const names[] = { "error", "warning", "info", "debug" };

			if (!strcasecmp(value, names[i])) {
				*(enum log_level *)field = (enum log_level)i;
				return NULL;
			}
		}
		return "expected error, warning, info or debug";
	case KT_LOG_FORMAT:
		if (!strcasecmp(value, "text") || !strcasecmp(value, "json")) {
			*(int *)field = !strcasecmp(value, "json");
			return NULL;
		}
		return "expected text or json";
	case KT_INT:
	case KT_DURATION:
	case KT_SIZE:
		if (k->type == KT_INT) {
			const char *rest;

			if (!config_parse_number(value, &v, &rest) || *rest)
				return "not a whole number";
		} else if (k->type == KT_DURATION) {
			why = config_parse_with_unit(value, config_duration_units, 5, &v);
		} else {
			why = config_parse_with_unit(value, config_size_units, 5, &v);
		}
		if (why)
			return why;
		if ((v < k->min || v > k->max) && !(k->type == KT_DURATION && v == 0 && k->min == 0))
			return "out of range";
		if (k->type == KT_INT)
			*(int *)field = (int)v;
		else
			*(int64_t *)field = v;
		return NULL;
	}
	return "unknown type";
}

static int config_ini_line(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	const struct config_key *k;
	const char *why;
	char why_buf[CONFIG_WHY_LEN];

	if (*ctx->err)		/* inih goes on after an error; report only the first */
		return 0;
	k = find_key(section, name);
	if (!k) {
		if (!is_known_section(section))
			snprintf(ctx->err, ctx->errlen, "unknown section [%s] (key \"%s\")", section, name);
		else
			snprintf(ctx->err, ctx->errlen, "unknown key \"%s\" in section [%s]", name, section);
		return 0;
	}
	if (ctx->seen[k - config_keys]) {
		snprintf(ctx->err, ctx->errlen, "key \"%s\" in section [%s] is set twice", name, section);
		return 0;
	}
	ctx->seen[k - config_keys] = true;
	why = parse_value(k, value, ctx->cfg, why_buf);
	if (why) {
		snprintf(ctx->err, ctx->errlen, "invalid value \"%s\" for key \"%s\" in section [%s]: %s",
			 value, name, section, why);
		return 0;
	}
	return 1;
}

static void env_name(const struct config_key *k, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "WALGATE_%s_%s", k->section, k->name);

	for (size_t i = 0; i < n && i < cap; i++)
		buf[i] = (char)toupper((unsigned char)buf[i]);
}

static bool apply_environment(struct config *cfg, char *err, size_t errlen)
{
	char name[128], why_buf[CONFIG_WHY_LEN];

	for (size_t i = 0; i < NKEYS; i++) {
		const char *value, *why;

		env_name(&config_keys[i], name, sizeof(name));
		value = getenv(name);
		if (!value)
			continue;
		why = parse_value(&config_keys[i], value, cfg, why_buf);
		if (why) {
			snprintf(err, errlen, "environment %s: invalid value \"%s\": %s", name, value, why);
			return false;
		}
	}
	return true;
}

static bool apply_defaults(struct config *cfg, char *err, size_t errlen)
{
	char why_buf[CONFIG_WHY_LEN];

	for (size_t i = 0; i < NKEYS; i++) {
		const char *why;

		if (!config_keys[i].def)
			continue;
		why = parse_value(&config_keys[i], config_keys[i].def, cfg, why_buf);
		if (why) {
			snprintf(err, errlen, "built-in default of %s: %s", config_keys[i].name, why);
			return false;
		}
	}
	return true;
}

static bool validate(struct config *cfg, char *err, size_t errlen)
{
	if (cfg->listen.n == 0) {
		snprintf(err, errlen, "[walgate] listen needs at least one address");
		return false;
	}
	if (!cfg->upstream_host) {
		snprintf(err, errlen, "[upstream] host is required (or WALGATE_UPSTREAM_HOST)");
		return false;
	}
	if (!cfg->allow) {
		snprintf(err, errlen, "[access] allow is required: list the client addresses to admit "
			 "(allow = 0.0.0.0/0, ::/0 admits everyone, on purpose)");
		return false;
	}
	if (cfg->client_tls == CLIENT_TLS_AUTO)
		cfg->client_tls = cfg->cert_file ? CLIENT_TLS_REQUIRE : CLIENT_TLS_DISABLE;
	if (cfg->client_tls != CLIENT_TLS_DISABLE && (!cfg->cert_file || !cfg->key_file)) {
		snprintf(err, errlen, "[tls] client_tls = %s needs cert_file and key_file",
			 cfg->client_tls == CLIENT_TLS_ALLOW ? "allow" : "require");
		return false;
	}
	if (!cfg->server_cert_file != !cfg->server_key_file) {
		snprintf(err, errlen, "[tls] server_cert_file and server_key_file go together");
		return false;
	}
	if (cfg->auth == AUTH_AUTO)
		cfg->auth = cfg->auth_file && cfg->client_tls != CLIENT_TLS_DISABLE &&
			    cfg->server_tls != SERVER_TLS_DISABLE ? AUTH_SCRAM : AUTH_PASSTHROUGH;
	if (cfg->auth == AUTH_SCRAM && !cfg->auth_file) {
		snprintf(err, errlen, "[auth] auth = scram needs auth_file: the users walgate authenticates");
		return false;
	}
	if (cfg->server_channel_binding == SERVER_CBIND_REQUIRE && cfg->server_tls == SERVER_TLS_DISABLE) {
		snprintf(err, errlen, "[tls] server_channel_binding = require needs TLS: server_tls is disable");
		return false;
	}

	if (cfg->proxy_protocol && !cfg->proxy_protocol_trusted) {
		snprintf(err, errlen, "[access] proxy_protocol needs proxy_protocol_trusted: "
			 "the load balancers allowed to send a PROXY header");
		return false;
	}
	return true;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct load_ctx ctx = { .cfg = cfg, .source = path, .err = err, .errlen = errlen };

	err[0] = '\0';
	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!apply_defaults(cfg, err, errlen))
		goto fail;
	if (path) {
		int line = ini_parse(path, config_ini_line, &ctx);

		if (line < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, line == -1 ? strerror(errno) : "out of memory");
			goto fail;
		}
		if (line > 0) {
			char why[768];

			snprintf(why, sizeof(why), "%s", *err ? err : "syntax error");
			snprintf(err, errlen, "%s:%d: %s", path, line, why);
			goto fail;
		}
		cfg->path = strdup(path);
	}
	if (!apply_environment(cfg, err, errlen) || !validate(cfg, err, errlen))
		goto fail;
	return cfg;
fail:
	config_free(cfg);
	return NULL;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		void *field = (char *)cfg + config_keys[i].offset;

		if (config_keys[i].type == KT_STRING)
			free(*(char **)field);
		else if (config_keys[i].type == KT_ALLOWLIST)
			allowlist_free(*(struct allowlist **)field);
		else if (config_keys[i].type == KT_LISTEN)
			free(((struct config_addr_list *)field)->v);
	}
	free(cfg->path);
	free(cfg);
}

static bool addr_list_equal(const struct config_addr_list *a, const struct config_addr_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].addrlen != b->v[i].addrlen ||
		    memcmp(&a->v[i].addr, &b->v[i].addr, a->v[i].addrlen))
			return false;
	return true;
}

/* Give next a copy of old's list; false (next unchanged) when out of memory. */
static bool addr_list_copy(struct config_addr_list *next, const struct config_addr_list *old)
{
	struct config_addr *copy = NULL;

	if (old->n) {
		copy = malloc(old->n * sizeof(*copy));
		if (!copy)
			return false;
		memcpy(copy, old->v, old->n * sizeof(*copy));
	}
	free(next->v);
	next->v = copy;
	next->n = old->n;
	return true;
}

int config_keep_restart_only(struct config *next, const struct config *old)
{
	int kept = 0;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		char *dst = (char *)next + k->offset;
		const char *src = (const char *)old + k->offset;
		bool changed;

		if (k->reloadable)
			continue;
		if (k->type == KT_LISTEN) {
			changed = !addr_list_equal((void *)dst, (const void *)src);
			if (changed && !addr_list_copy((void *)dst, (const void *)src))
				log_error("config: out of memory keeping [%s] %s", k->section, k->name);
		} else {
			changed = memcmp(dst, src, sizeof(int)) != 0;
			memcpy(dst, src, sizeof(int));
		}
		if (changed) {
			log_warning("config: [%s] %s changed; it takes effect only after a restart",
				    k->section, k->name);
			kept++;
		}
	}
	return kept;
}

const struct config *config_current(void)
{
	return thread_config;
}

void config_use(const struct config *cfg)
{
	thread_config = cfg;
}
