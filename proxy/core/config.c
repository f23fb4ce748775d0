/*
 * config.c - the table of settings and loading a config from an INI file
 * (libinih) and the environment; the parsers of values are config_parse.c's.
 *
 * Every setting is one row of config_keys: its section, name, type, where
 * it lives in struct config, its default (as text, parsed by the same code
 * as a user's value) and whether SIGHUP can change it. The environment
 * variable WALGATE_<SECTION>_<KEY> overrides the file.
 */
#include "core/config_int.h"
#include "core/allowlist.h"
#include "core/cred_spec.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	{ "walgate", "auth_timeout", KT_DURATION, OFF(auth_timeout_ms), "60s", 100, DAY_MS, true, NULL },
	{ "walgate", "drain_timeout", KT_DURATION, OFF(drain_timeout_ms), "30s", 0, DAY_MS, true, NULL },
	{ "walgate", "max_message_size", KT_SIZE, OFF(max_message_size), "1GB", 1024, 0x7fffffff, true, NULL },
	{ "walgate", "relay_buffer_size", KT_SIZE, OFF(relay_buffer_size), "256kB", 4096, 64 << 20, true, NULL },
	{ "walgate", "tcp_keepalive", KT_BOOL, OFF(tcp_keepalive), "on", 0, 0, true, NULL },
	{ "walgate", "tcp_keepalive_idle", KT_DURATION, OFF(tcp_keepalive_idle_ms), "60s", 1000, DAY_MS, true, NULL },
	{ "walgate", "tcp_keepalive_interval", KT_DURATION, OFF(tcp_keepalive_interval_ms), "10s", 1000, DAY_MS, true, NULL },
	{ "walgate", "tcp_keepalive_count", KT_INT, OFF(tcp_keepalive_count), "6", 1, 127, true, NULL },
	{ "tls", "client_tls", KT_CHOICE, OFF(client_tls), "auto", 0, 0, true, "auto|disable|allow|require" },
	{ "tls", "cert_file", KT_FILE, OFF(cert_file), NULL, 0, 0, true, NULL },
	{ "tls", "key_file", KT_FILE, OFF(key_file), NULL, 0, 0, true, NULL },
	{ "tls", "ca_file", KT_FILE, OFF(ca_file), NULL, 0, 0, true, NULL },
	{ "tls", "server_tls", KT_CHOICE, OFF(server_tls), "prefer", 0, 0, true,
	  "disable|prefer|require|verify-ca|verify-full" },
	{ "tls", "server_ca_file", KT_FILE, OFF(server_ca_file), NULL, 0, 0, true, NULL },
	{ "tls", "server_cert_file", KT_FILE, OFF(server_cert_file), NULL, 0, 0, true, NULL },
	{ "tls", "server_key_file", KT_FILE, OFF(server_key_file), NULL, 0, 0, true, NULL },
	{ "tls", "server_channel_binding", KT_CHOICE, OFF(server_channel_binding), "prefer", 0, 0, true,
	  "disable|prefer|require" },
	{ "tls", "min_version", KT_STRING, OFF(min_version), "TLSv1.2", 0, 0, true, NULL },
	{ "tls", "ciphers", KT_STRING, OFF(ciphers), NULL, 0, 0, true, NULL },
	{ "auth", "auth", KT_CHOICE, OFF(auth), "auto", 0, 0, true, "auto|passthrough|scram" },
	{ "auth", "auth_file", KT_FILE, OFF(auth_file), NULL, 0, 0, true, NULL },
	{ "auth", "server_auth_methods", KT_FLAGS, OFF(server_auth_methods), "scram-sha-256", 0, 0, true,
	  "scram-sha-256|md5|password|none" },
	{ "auth", "upstream_user", KT_STRING, OFF(upstream_user), NULL, 0, 0, true, NULL },
	{ "auth", "upstream_password", KT_STRING, OFF(upstream_password), "auth-file", 0, 0, true, NULL },
	{ "auth", "token_url", KT_STRING, OFF(token_url),
	  "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
	  0, 0, true, NULL },
	{ "auth", "token_refresh_margin", KT_DURATION, OFF(token_refresh_margin_ms), "5min", 0, DAY_MS,
	  true, NULL },
	{ "metrics", "listen", KT_LISTEN, OFF(metrics_listen), "127.0.0.1:9930", 0, 0, false, NULL },
	{ "metrics", "allow", KT_ALLOWLIST, OFF(metrics_allow), "127.0.0.0/8, ::1", 0, 0, true, NULL },
	{ "metrics", "slot_expiry", KT_DURATION, OFF(slot_expiry_ms), "5min", 0, DAY_MS, true, NULL },
	{ "replication", "takeover_after", KT_DURATION_OFF, OFF(takeover_after_ms), "30s", 1000, DAY_MS,
	  true, NULL },
	{ "monitor", "conninfo", KT_STRING, OFF(monitor_conninfo), NULL, 0, 0, true, NULL },
	{ "monitor", "interval", KT_DURATION, OFF(monitor_interval_ms), "10s", 100, DAY_MS, true, NULL },
	{ "monitor", "timeout", KT_DURATION, OFF(monitor_timeout_ms), "5s", 100, DAY_MS, true, NULL },
	{ "access", "allow", KT_ALLOWLIST, OFF(allow), NULL, 0, 0, true, NULL },
	{ "access", "proxy_protocol", KT_PROXY_MODE, OFF(proxy_protocol), "off", 0, 0, true, NULL },
	{ "access", "proxy_protocol_trusted", KT_ALLOWLIST, OFF(proxy_protocol_trusted), NULL, 0, 0, true, NULL },
	{ "access", "proxy_protocol_unknown", KT_CHOICE, OFF(proxy_protocol_unknown), "refuse", 0, 0, true,
	  "refuse|peer" },
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
	bool seen[NKEYS];	/* set in the file */
	bool from_env[NKEYS];	/* set (last) by the environment */
	const struct config_key *only;	/* read this key alone, ignore the rest */
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

/*
 * libinih, as Debian builds it, ends a value at " ;" but not at " #".
 * walgate treats both alike: a '#' at the start of a value or after a
 * space or tab begins a comment. Returns a copy to free, or NULL.
 */
static char *strip_inline_comment(const char *value)
{
	char *v = strdup(value);
	size_t n;

	if (!v)
		return NULL;
	for (char *p = v; *p; p++) {
		if (*p == '#' && (p == v || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		v[--n] = '\0';
	return v;
}

static int config_ini_line(void *user, const char *section, const char *name, const char *raw)
{
	struct load_ctx *ctx = user;
	const struct config_key *k;
	const char *why;
	char why_buf[WHY_LEN], *value;

	if (*ctx->err)		/* inih goes on after an error; report only the first */
		return 0;
	k = find_key(section, name);
	if (ctx->only && k != ctx->only)
		return 1;
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
	if (!(value = strip_inline_comment(raw))) {
		snprintf(ctx->err, ctx->errlen, "out of memory");
		return 0;
	}
	why = config_parse_value(k, value, ctx->cfg, why_buf);
	if (why)
		snprintf(ctx->err, ctx->errlen, "invalid value \"%s\" for key \"%s\" in section [%s]: %s",
			 value, name, section, why);
	free(value);
	return why ? 0 : 1;
}

static void env_name(const struct config_key *k, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "WALGATE_%s_%s", k->section, k->name);

	for (size_t i = 0; i < n && i < cap; i++)
		buf[i] = (char)toupper((unsigned char)buf[i]);
}

static bool apply_environment(struct load_ctx *ctx)
{
	char name[128], why_buf[WHY_LEN];

	for (size_t i = 0; i < NKEYS; i++) {
		const char *value, *why;

		if (ctx->only && &config_keys[i] != ctx->only)
			continue;
		env_name(&config_keys[i], name, sizeof(name));
		value = getenv(name);
		if (!value)
			continue;
		why = config_parse_value(&config_keys[i], value, ctx->cfg, why_buf);
		if (why) {
			snprintf(ctx->err, ctx->errlen, "environment %s: invalid value \"%s\": %s",
				 name, value, why);
			return false;
		}
		ctx->from_env[i] = true;
	}
	return true;
}

/* The section a WALGATE_<SECTION>_... variable names, or NULL. */
static const char *env_section(const char *var)
{
	for (size_t i = 0; i < NKEYS; i++) {
		size_t n = strlen(config_keys[i].section);

		if (!strncasecmp(var, config_keys[i].section, n) && var[n] == '_')
			return config_keys[i].section;
	}
	return NULL;
}

static bool env_names_a_key(const char *var, size_t len)
{
	char name[128];

	for (size_t i = 0; i < NKEYS; i++) {
		env_name(&config_keys[i], name, sizeof(name));
		if (strlen(name) == len && !strncmp(name, var, len))
			return true;
	}
	return false;
}

/*
 * A WALGATE_<SECTION>_<KEY> variable of a known section that names no key
 * is an error (a misspelt setting would otherwise be ignored). Other
 * WALGATE_* variables only get a warning: the test and benchmark scripts
 * use that prefix for their own settings (WALGATE_BIN, WALGATE_TEST_QUICK).
 */
static bool check_environment_names(struct load_ctx *ctx)
{
	extern char **environ;

	for (char **e = environ; e && *e; e++) {
		const char *var = *e, *eq = strchr(var, '=');
		size_t len = eq ? (size_t)(eq - var) : strlen(var);
		const char *section;

		if (strncmp(var, "WALGATE_", 8) || env_names_a_key(var, len))
			continue;
		section = env_section(var + 8);
		if (section) {
			snprintf(ctx->err, ctx->errlen, "environment %.*s: no such setting in section [%s] "
				 "(walgate.ini(5) lists them)", (int)(len > 100 ? 100 : len), var, section);
			return false;
		}
		log_warning("environment %.*s is not a walgate setting (WALGATE_<SECTION>_<KEY>); ignored",
			    (int)(len > 100 ? 100 : len), var);
	}
	return true;
}

static bool apply_defaults(struct config *cfg, char *err, size_t errlen)
{
	char why_buf[WHY_LEN];

	for (size_t i = 0; i < NKEYS; i++) {
		const char *why;

		if (!config_keys[i].def)
			continue;
		why = config_parse_value(&config_keys[i], config_keys[i].def, cfg, why_buf);
		if (why) {
			snprintf(err, errlen, "built-in default of %s: %s", config_keys[i].name, why);
			return false;
		}
	}
	return true;
}

/* Where [section] name was set: "FILE:LINE: [sec] key", "environment WALGATE_..." or "[sec] key". */
static void origin(const struct load_ctx *ctx, const char *section, const char *name, char *buf,
		   size_t cap)
{
	const struct config_key *k = find_key(section, name);
	size_t i = (size_t)(k - config_keys);
	char env[128];

	if (ctx->from_env[i]) {
		env_name(k, env, sizeof(env));
		snprintf(buf, cap, "environment %s", env);
	} else if (ctx->seen[i] && ctx->source) {
		snprintf(buf, cap, "%s:%d: [%s] %s", ctx->source,
			 config_line_of_key(ctx->source, section, name), section, name);
	} else {
		snprintf(buf, cap, "[%s] %s", section, name);
	}
}

/* "<where the key was set>: <what is wrong>" into the error. */
static bool refuse(struct load_ctx *ctx, const char *section, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static bool refuse(struct load_ctx *ctx, const char *section, const char *name, const char *fmt, ...)
{
	char where[600];
	int n;
	va_list ap;

	origin(ctx, section, name, where, sizeof(where));
	n = snprintf(ctx->err, ctx->errlen, "%s: ", where);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < ctx->errlen)
		vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

/* Every file setting names a file walgate can open now, said in plain words. */
static bool check_files(struct load_ctx *ctx)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		const char *path;
		struct stat st;
		int fd;

		if (k->type != KT_FILE)
			continue;
		path = *(char **)((char *)ctx->cfg + k->offset);
		if (!path)
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return refuse(ctx, k->section, k->name, "cannot open \"%s\": %s", path,
				      strerror(errno));
		if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
			close(fd);
			return refuse(ctx, k->section, k->name, "\"%s\" is a directory, not a file", path);
		}
		close(fd);
	}
	return true;
}

static bool validate(struct load_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	enum cred_kind cred;
	struct token_url url;
	char why[300];

	if (cfg->listen.n == 0)
		return refuse(ctx, "walgate", "listen", "needs at least one address");
	if (!cfg->upstream_host) {
		snprintf(ctx->err, ctx->errlen, "[upstream] host is required (or WALGATE_UPSTREAM_HOST)");
		return false;
	}
	if (!cfg->allow) {
		snprintf(ctx->err, ctx->errlen, "[access] allow is required: list the client addresses "
			 "to admit (allow = 0.0.0.0/0, ::/0 admits everyone, on purpose)");
		return false;
	}
	if (strcasecmp(cfg->min_version, "TLSv1.2") && strcasecmp(cfg->min_version, "TLSv1.3"))
		return refuse(ctx, "tls", "min_version", "\"%s\": expected TLSv1.2 or TLSv1.3",
			      cfg->min_version);
	if (!check_files(ctx))
		return false;
	cfg->client_tls_configured = cfg->client_tls;
	cfg->auth_configured = cfg->auth;
	if (cfg->client_tls == CLIENT_TLS_AUTO)
		cfg->client_tls = cfg->cert_file ? CLIENT_TLS_REQUIRE : CLIENT_TLS_DISABLE;
	if (cfg->client_tls != CLIENT_TLS_DISABLE && (!cfg->cert_file || !cfg->key_file))
		return refuse(ctx, "tls", "client_tls", "%s needs cert_file and key_file",
			      cfg->client_tls == CLIENT_TLS_ALLOW ? "allow" : "require");
	if (!cfg->server_cert_file != !cfg->server_key_file)
		return refuse(ctx, "tls", cfg->server_cert_file ? "server_cert_file" : "server_key_file",
			      "server_cert_file and server_key_file go together");
	if (cfg->auth == AUTH_AUTO)
		cfg->auth = cfg->auth_file && cfg->client_tls != CLIENT_TLS_DISABLE &&
			    cfg->server_tls != SERVER_TLS_DISABLE ? AUTH_SCRAM : AUTH_PASSTHROUGH;
	if (cfg->auth == AUTH_SCRAM && !cfg->auth_file)
		return refuse(ctx, "auth", "auth", "scram needs auth_file: the users walgate authenticates");
	if (!cred_spec_parse(cfg->upstream_password, &cred, why, sizeof(why)))
		return refuse(ctx, "auth", "upstream_password", "%s", why);
	if (!token_url_parse(cfg->token_url, &url, why, sizeof(why)))
		return refuse(ctx, "auth", "token_url", "%s", why);
	if (cfg->server_channel_binding == SERVER_CBIND_REQUIRE && cfg->server_tls == SERVER_TLS_DISABLE)
		return refuse(ctx, "tls", "server_channel_binding", "require needs TLS: server_tls is disable");
	if (cfg->proxy_protocol && !cfg->proxy_protocol_trusted)
		return refuse(ctx, "access", "proxy_protocol", "needs proxy_protocol_trusted: "
			      "the load balancers allowed to send a PROXY header");
	return true;
}

static struct config *load(const char *path, const struct config_key *only, char *err,
			   size_t errlen)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct load_ctx ctx = { .cfg = cfg, .source = path, .only = only, .err = err, .errlen = errlen };

	err[0] = '\0';
	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!apply_defaults(cfg, err, errlen))
		goto fail;
	if (path) {
		int line;

		config_lift_line_limit();
		line = ini_parse(path, config_ini_line, &ctx);

		if (line < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, line == -1 ? strerror(errno) : "out of memory");
			goto fail;
		}
		if (line > 0) {
			char why[768];

			if (*err)
				snprintf(why, sizeof(why), "%s", err);
			else
				config_describe_syntax_error(path, line, why, sizeof(why));
			snprintf(err, errlen, "%s:%d: %s", path, line, why);
			goto fail;
		}
		cfg->path = strdup(path);
	}
	if (only)
		return apply_environment(&ctx) ? cfg : (config_free(cfg), NULL);
	if (!check_environment_names(&ctx) || !apply_environment(&ctx) || !validate(&ctx))
		goto fail;
	return cfg;
fail:
	config_free(cfg);
	return NULL;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	return load(path, NULL, err, errlen);
}

struct config *config_load_key(const char *path, const char *section, const char *name, char *err,
			       size_t errlen)
{
	const struct config_key *k = find_key(section, name);

	if (!k) {
		snprintf(err, errlen, "no setting [%s] %s", section, name);
		return NULL;
	}
	return load(path, k, err, errlen);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		void *field = (char *)cfg + config_keys[i].offset;

		if (config_keys[i].type == KT_STRING || config_keys[i].type == KT_FILE)
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

void config_origin(const struct config *cfg, const char *section, const char *name, char *buf,
		   size_t cap)
{
	const struct config_key *k = find_key(section, name);
	char env[128];
	int line;

	if (!k) {
		snprintf(buf, cap, "[%s] %s", section, name);
		return;
	}
	env_name(k, env, sizeof(env));
	if (getenv(env))
		snprintf(buf, cap, "environment %s", env);
	else if (cfg->path && (line = config_line_of_key(cfg->path, section, name)) > 0)
		snprintf(buf, cap, "%s:%d: [%s] %s", cfg->path, line, section, name);
	else
		snprintf(buf, cap, "[%s] %s", section, name);
}

const struct config *config_current(void)
{
	return thread_config;
}

void config_use(const struct config *cfg)
{
	thread_config = cfg;
}
