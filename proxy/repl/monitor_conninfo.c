/*
 * monitor_conninfo.c - checking [monitor] conninfo before libpq uses it,
 * for what libpq would otherwise do silently or only on stderr: a
 * certificate check with no root certificate to check against, a
 * password file that is missing, or that libpq ignores because group or
 * others may read it.
 */
#include "repl/monitor.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct conn_options {
	const char *sslmode, *sslrootcert, *passfile, *password;
};

static const char *option(PQconninfoOption *opts, const char *key, const char *env)
{
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, key) && o->val && *o->val)
			return o->val;
	return env && getenv(env) && *getenv(env) ? getenv(env) : NULL;
}

/* "$HOME/name", or "" without a home. */
static void in_home(char *buf, size_t cap, const char *name)
{
	const char *home = getenv("HOME");

	snprintf(buf, cap, "%s%s%s", home ? home : "", home ? "/" : "", home ? name : "");
}

static bool check_root_cert(const struct conn_options *c, char *err, size_t errlen)
{
	char fallback[512];
	const char *root = c->sslrootcert;

	if (!c->sslmode || (strcmp(c->sslmode, "verify-ca") && strcmp(c->sslmode, "verify-full")))
		return true;
	if (root && !strcmp(root, "system") && PQlibVersion() >= 160000)
		return true;
	if (!root) {
		in_home(fallback, sizeof(fallback), ".postgresql/root.crt");
		root = fallback;
	}
	if (access(root, R_OK) == 0)
		return true;
	snprintf(err, errlen, "[monitor] conninfo: sslmode=%s needs sslrootcert=FILE, the CA of the "
		 "upstream's certificate (libpq %d does not use the system store): %s \"%s\": %s",
		 c->sslmode, PQlibVersion() / 10000, c->sslrootcert ? "cannot read" : "no sslrootcert, and libpq's default",
		 root, strerror(errno));
	return false;
}

static bool check_passfile(const struct conn_options *c, char *err, size_t errlen)
{
	char fallback[512];
	const char *path = c->passfile;
	struct stat st;

	if (c->password)
		return true;	/* libpq reads no password file then */
	if (!path) {
		in_home(fallback, sizeof(fallback), ".pgpass");
		path = fallback;
	}
	if (stat(path, &st) < 0) {
		if (!c->passfile)
			return true;	/* libpq's default file need not exist */
		snprintf(err, errlen, "[monitor] conninfo: passfile \"%s\": %s", path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "[monitor] conninfo: passfile \"%s\" is not a plain file", path);
		return false;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "[monitor] conninfo: passfile \"%s\" has mode %04o: libpq ignores a "
			 "password file that group or others may read; make it 0600, owned by the user "
			 "walgate runs as (or give the password with PGPASSWORD)", path,
			 (unsigned)(st.st_mode & 07777));
		return false;
	}
	if (access(path, R_OK) < 0) {
		snprintf(err, errlen, "[monitor] conninfo: passfile \"%s\": %s", path, strerror(errno));
		return false;
	}
	return true;
}

bool monitor_check_conninfo(const char *conninfo, char *err, size_t errlen)
{
	char *why = NULL;
	PQconninfoOption *opts;
	struct conn_options c;
	bool ok;

	if (!conninfo || !*conninfo)
		return true;
	opts = PQconninfoParse(conninfo, &why);
	if (!opts) {
		/* libpq's reason quotes the text, which may hold a password: not repeated */
		snprintf(err, errlen, "[monitor] conninfo is not a libpq connection string%s",
			 why ? " (key=value pairs, or a postgresql:// URI)" : ": out of memory");
		PQfreemem(why);
		return false;
	}
	c.sslmode = option(opts, "sslmode", "PGSSLMODE");
	c.sslrootcert = option(opts, "sslrootcert", "PGSSLROOTCERT");
	c.passfile = option(opts, "passfile", "PGPASSFILE");
	c.password = option(opts, "password", "PGPASSWORD");
	ok = check_root_cert(&c, err, errlen) && check_passfile(&c, err, errlen);
	PQconninfoFree(opts);
	return ok;
}
