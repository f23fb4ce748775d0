/*
 * cred_spec.h - the values of the upstream credential settings, as the
 * configuration and the auth file hold them: which source a password
 * comes from (auth-file, file:PATH, gce-metadata) and the parts of a
 * token URL. Pure parsing: reading a source is access/upstream_cred.h.
 */
#ifndef WALGATE_CRED_SPEC_H
#define WALGATE_CRED_SPEC_H

#include <stdbool.h>
#include <stddef.h>

enum cred_kind {
	CRED_AUTH_FILE,
	CRED_FILE,
	CRED_GCE_METADATA,
	CRED_KINDS
};

/* The kind spec names; false with the reason in why when it is none. */
bool cred_spec_parse(const char *spec, enum cred_kind *kind, char *why, size_t whylen);

/* "auth-file", "file", "gce-metadata": the label of metrics and messages. */
const char *cred_kind_name(enum cred_kind kind);

/* A token URL, http://host[:port]/path[?query], in parts. */
struct token_url {
	char host[256];
	int port;			/* 80 when the URL names none */
	char host_header[270];		/* host, and :port unless 80 */
	char path[1024];		/* path and query, "/" at least */
};

/* Split url into out; false with err filled when it is not http://host[:port]/path. */
bool token_url_parse(const char *url, struct token_url *out, char *err, size_t errlen);

#endif
