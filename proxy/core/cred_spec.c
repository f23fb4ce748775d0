/*
 * cred_spec.c - parsing the upstream credential settings' values (see
 * cred_spec.h).
 */
#include "core/cred_spec.h"

#include <event2/http.h>
#include <stdio.h>
#include <string.h>

#define FILE_PREFIX "file:"

static const char *const kind_names[CRED_KINDS] = {
	[CRED_AUTH_FILE] = "auth-file",
	[CRED_FILE] = "file",
	[CRED_GCE_METADATA] = "gce-metadata",
};

const char *cred_kind_name(enum cred_kind kind)
{
	return kind < CRED_KINDS ? kind_names[kind] : "unknown";
}

bool cred_spec_parse(const char *spec, enum cred_kind *kind, char *why, size_t whylen)
{
	if (!strcmp(spec, "auth-file")) {
		*kind = CRED_AUTH_FILE;
	} else if (!strcmp(spec, "gce-metadata")) {
		*kind = CRED_GCE_METADATA;
	} else if (!strncmp(spec, FILE_PREFIX, strlen(FILE_PREFIX)) &&
		   spec[strlen(FILE_PREFIX)] == '/') {
		*kind = CRED_FILE;
	} else {
		/* never echoed: a password written here by mistake must not reach a log */
		snprintf(why, whylen, "expected auth-file, file:/absolute/path or gce-metadata "
			 "(the value is not shown: it may be a password)");
		return false;
	}
	return true;
}

/* http://host[:port]/path only: the metadata server speaks plain HTTP on a link-local address. */
bool token_url_parse(const char *url, struct token_url *out, char *err, size_t errlen)
{
	struct evhttp_uri *u = evhttp_uri_parse(url);
	const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
	const char *host = u ? evhttp_uri_get_host(u) : NULL;
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	const char *query = u ? evhttp_uri_get_query(u) : NULL;
	bool ok = scheme && !strcmp(scheme, "http") && host && *host &&
		  strlen(host) < sizeof(out->host);

	if (ok) {
		snprintf(out->host, sizeof(out->host), "%s", host);
		out->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
		snprintf(out->host_header, sizeof(out->host_header), out->port == 80 ? "%s" : "%s:%d",
			 host, out->port);
		ok = (size_t)snprintf(out->path, sizeof(out->path), "%s%s%s",
				      path && *path ? path : "/", query ? "?" : "",
				      query ? query : "") < sizeof(out->path);
	}
	evhttp_uri_free(u);
	if (!ok)
		snprintf(err, errlen, "token URL \"%s\" is not http://host[:port]/path", url);
	return ok;
}
