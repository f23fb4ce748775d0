/*
 * authfile.c - reading the auth file.
 *
 * Syntax as PgBouncer's userlist.txt: "name" "secret" per line, a doubled
 * quote inside a string stands for one, lines starting with ';' or '#'
 * and blank lines are ignored; key="value" options may follow the two
 * strings (authfile.h). Plaintext passwords are turned into
 * verifiers once, here, with a fresh salt: the exchange with clients then
 * looks the same whichever form the file holds.
 */
#include "access/authfile.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "protocol/saslprep.h"
#include "access/upstream_cred.h"

#define LINE_MAX_LEN 4096

/* A quoted string at *p into out; advances *p past it. */
static bool take_quoted(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	size_t n = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s++ != '"')
		return false;
	for (;;) {
		if (*s == '\0')
			return false;
		if (*s == '"' && s[1] == '"') {
			s++;
		} else if (*s == '"') {
			break;
		}
		if (n + 1 >= cap)
			return false;
		out[n++] = *s++;
	}
	out[n] = '\0';
	*p = s + 1;
	return n > 0;
}

static bool blank_rest(const char *s);

static bool set_option(struct auth_user *u, const char *key, const char *value, const char **why)
{
	char **slot = !strcmp(key, "upstream_user") ? &u->upstream_user :
		      !strcmp(key, "upstream_password") ? &u->upstream_password : NULL;
	enum cred_kind kind;
	char unused[300];

	if (!slot) {
		*why = "unknown option: expected upstream_user or upstream_password";
		return false;
	}
	if (*slot) {
		*why = "option given twice";
		return false;
	}
	if (slot == &u->upstream_password && !cred_spec_parse(value, &kind, unused, sizeof(unused))) {
		*why = "upstream_password: expected auth-file, file:/absolute/path or gce-metadata";
		return false;
	}
	if (!(*slot = strdup(value))) {
		*why = "out of memory";
		return false;
	}
	return true;
}

/* key="value" ... after the secret, to the end of the line. */
static bool take_options(struct auth_user *u, const char *p, const char **why)
{
	char key[32], value[1024];
	size_t n;

	while (!blank_rest(p)) {
		while (*p == ' ' || *p == '\t')
			p++;
		for (n = 0; (p[n] >= 'a' && p[n] <= 'z') || p[n] == '_'; n++)
			;
		if (n == 0 || n >= sizeof(key) || p[n] != '=') {
			*why = "expected key=\"value\" after \"name\" \"secret\"";
			return false;
		}
		memcpy(key, p, n);
		key[n] = '\0';
		p += n + 1;
		if (*p != '"' || !take_quoted(&p, value, sizeof(value))) {
			*why = "an option's value must be a non-empty quoted string";
			return false;
		}
		if (!set_option(u, key, value, why))
			return false;
	}
	return true;
}

static bool blank_rest(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	return *s == '\0';
}

/*
 * The salt of a plaintext entry's verifier: the salt a made-up verifier
 * for that name would have (scram_mock_verifier), so that a known user's
 * salt and an unknown user's behave alike, across reloads too. Without a
 * secret (--check-config), a random one.
 */
static bool plaintext_salt(const char *name, const struct salt_secret *ss, uint8_t salt[SCRAM_SALT_LEN])
{
	struct scram_verifier mock;

	if (!ss || ss->len == 0)
		return scram_make_salt(salt) == SCRAM_OK;
	if (scram_mock_verifier(name, ss->bytes, ss->len, SCRAM_DEFAULT_ITERATIONS, &mock) != SCRAM_OK)
		return false;
	memcpy(salt, mock.salt, SCRAM_SALT_LEN);
	OPENSSL_cleanse(&mock, sizeof(mock));
	return true;
}

static const char *make_user(struct auth_user *u, const char *name, const char *secret,
			     const struct salt_secret *ss)
{
	uint8_t salt[SCRAM_SALT_LEN];
	char prepared[1024];
	bool ok;

	memset(u, 0, sizeof(*u));
	if (!strncmp(secret, SCRAM_VERIFIER_PREFIX, strlen(SCRAM_VERIFIER_PREFIX))) {
		if (scram_verifier_parse(secret, &u->verifier) != SCRAM_OK)
			return "malformed SCRAM-SHA-256 verifier";
	} else if (!strncmp(secret, "md5", 3) && strlen(secret) == 35) {
		return "md5 hashes cannot be used: give a SCRAM-SHA-256 verifier or the password";
	} else {
		if (saslprep_password(secret, prepared, sizeof(prepared)) == SASLPREP_TOO_LONG)
			return "password too long";
		ok = plaintext_salt(name, ss, salt) &&
		     scram_verifier_from_password(prepared, salt, sizeof(salt), SCRAM_DEFAULT_ITERATIONS,
						  &u->verifier) == SCRAM_OK;
		OPENSSL_cleanse(prepared, sizeof(prepared));
		if (!ok)
			return "cannot derive a verifier from the password";
		if (!(u->password = strdup(secret)))
			return "out of memory";
	}
	if (!(u->name = strdup(name)))
		return "out of memory";
	return NULL;
}

static void free_user(struct auth_user *u)
{
	free(u->name);
	if (u->password) {
		OPENSSL_cleanse(u->password, strlen(u->password));
		free(u->password);
	}
	free(u->upstream_user);
	free(u->upstream_password);
	OPENSSL_cleanse(&u->verifier, sizeof(u->verifier));
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct auth_user *)a)->name, ((const struct auth_user *)b)->name);
}

static int by_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* The iteration count most entries have; ties go to the larger; 4096 for none. */
static int most_common_iterations(const struct auth_users *users)
{
	int best = SCRAM_DEFAULT_ITERATIONS, *it = malloc(users->n * sizeof(int) + 1);
	size_t best_n = 0, i, run;

	if (!it)
		return best;
	for (i = 0; i < users->n; i++)
		it[i] = users->v[i].verifier.iterations;
	qsort(it, users->n, sizeof(int), by_int);
	for (i = 0; i < users->n; i += run) {
		for (run = 1; i + run < users->n && it[i + run] == it[i]; run++)
			;
		if (run >= best_n) {	/* ascending: an equal run later is larger */
			best = it[i];
			best_n = run;
		}
	}
	free(it);
	return best;
}

static bool check_mode(const char *path, FILE *f, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fileno(f), &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(err, errlen, "%s: others may read or write it (mode %03o): chmod 600 or 640",
			 path, (unsigned)(st.st_mode & 0777));
		return false;
	}
	return true;
}

static bool add_line(struct auth_users *users, const char *line, const struct salt_secret *ss,
		     const char **why)
{
	char name[256], secret[1024];
	struct auth_user *grown;

	if (!take_quoted(&line, name, sizeof(name)) || !take_quoted(&line, secret, sizeof(secret)) ||
	    (!blank_rest(line) && *line != ' ' && *line != '\t')) {
		*why = "expected \"name\" \"secret\"";
		return false;
	}
	if (auth_users_find(users, name)) {
		*why = "user listed twice";
		return false;
	}
	grown = realloc(users->v, (users->n + 1) * sizeof(*users->v));
	if (!grown) {
		*why = "out of memory";
		return false;
	}
	users->v = grown;
	*why = make_user(&users->v[users->n], name, secret, ss);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (*why || !take_options(&users->v[users->n], line, why)) {
		free_user(&users->v[users->n]);
		return false;
	}
	users->n++;
	/* kept sorted as it grows: auth_users_find() bisects, also for the duplicate check */
	qsort(users->v, users->n, sizeof(*users->v), by_name);
	return true;
}

struct auth_users *auth_users_load(const char *path, const struct salt_secret *ss,
				   char *err, size_t errlen)
{
	struct auth_users *users = calloc(1, sizeof(*users));
	FILE *f = fopen(path, "r");
	char line[LINE_MAX_LEN];
	int lineno = 0;

	if (!users || !f) {
		snprintf(err, errlen, "%s: %s", path, users ? strerror(errno) : "out of memory");
		goto fail;
	}
	if (!check_mode(path, f, err, errlen))
		goto fail;
	while (fgets(line, sizeof(line), f)) {
		const char *p = line, *why;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {	/* the rest would read as a line of its own */
			snprintf(err, errlen, "%s:%d: line too long (at most %d bytes)", path, lineno,
				 LINE_MAX_LEN - 2);
			goto fail;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ';' || *p == '#' || blank_rest(p))
			continue;
		if (!add_line(users, p, ss, &why)) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
	}
	fclose(f);
	users->mock_iterations = most_common_iterations(users);
	return users;
fail:
	if (f)
		fclose(f);
	auth_users_free(users);
	return NULL;
}

bool auth_users_use_source(const struct auth_users *users, int cred_kind)
{
	enum cred_kind kind;
	char unused[300];

	for (size_t i = 0; users && i < users->n; i++)
		if (users->v[i].upstream_password &&
		    cred_spec_parse(users->v[i].upstream_password, &kind, unused, sizeof(unused)) &&
		    (int)kind == cred_kind)
			return true;
	return false;
}

const struct auth_user *auth_users_find(const struct auth_users *users, const char *name)
{
	struct auth_user key = { .name = (char *)name };

	if (!users || users->n == 0)
		return NULL;
	return bsearch(&key, users->v, users->n, sizeof(*users->v), by_name);
}

void auth_users_free(struct auth_users *users)
{
	if (!users)
		return;
	for (size_t i = 0; i < users->n; i++)
		free_user(&users->v[i]);
	free(users->v);
	free(users);
}
