/*
 * make_verifier.c - reading a password without echoing it, preparing it
 * as PostgreSQL does (SASLprep: saslprep.h) and printing the
 * SCRAM-SHA-256 verifier PostgreSQL would store for it, with a fresh salt
 * and PostgreSQL's default iteration count.
 */
#include "make_verifier.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "protocol/saslprep.h"
#include "protocol/scram.h"

#define PASSWORD_MAX 1024

/* One line of f into buf without its end of line; false on EOF, error or overlong. */
static bool read_line(FILE *f, char *buf, size_t cap)
{
	size_t n;

	if (!fgets(buf, (int)cap, f))
		return false;
	n = strlen(buf);
	if (n == cap - 1 && buf[n - 1] != '\n' && !feof(f))
		return false;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return true;
}

static bool prompt(const char *what, char *buf, size_t cap)
{
	struct termios saved, quiet;
	bool ok;

	fprintf(stderr, "%s", what);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &saved) < 0)
		return false;
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	ok = read_line(stdin, buf, cap);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	fprintf(stderr, "\n");
	return ok;
}

static bool read_password(char *pw, size_t cap)
{
	char again[PASSWORD_MAX + 2];
	bool same;

	if (!isatty(STDIN_FILENO))
		return read_line(stdin, pw, cap);
	if (!prompt("Password: ", pw, cap) || !prompt("Again: ", again, sizeof(again)))
		return false;
	same = strcmp(pw, again) == 0;
	OPENSSL_cleanse(again, sizeof(again));
	if (!same)
		fprintf(stderr, "walgate: --make-verifier: the passwords differ\n");
	return same;
}

int make_verifier_run(void)
{
	char pw[PASSWORD_MAX + 2], prepared[4 * PASSWORD_MAX], text[512];
	uint8_t salt[SCRAM_SALT_LEN];
	struct scram_verifier v;
	int rc = 1;

	if (!read_password(pw, sizeof(pw))) {
		fprintf(stderr, "walgate: --make-verifier: no password read (one line, at most %d bytes)\n",
			PASSWORD_MAX);
		goto out;
	}
	if (!pw[0]) {
		fprintf(stderr, "walgate: --make-verifier: the password is empty\n");
		goto out;
	}
	if (saslprep_password(pw, prepared, sizeof(prepared)) == SASLPREP_TOO_LONG) {
		fprintf(stderr, "walgate: --make-verifier: the password is too long\n");
		goto out;
	}
	if (scram_make_salt(salt) != SCRAM_OK ||
	    scram_verifier_from_password(prepared, salt, sizeof(salt), SCRAM_DEFAULT_ITERATIONS, &v) != SCRAM_OK ||
	    scram_verifier_format(&v, text, sizeof(text)) != SCRAM_OK) {
		fprintf(stderr, "walgate: --make-verifier: cannot compute the verifier\n");
		goto out;
	}
	printf("%s\n", text);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(prepared, sizeof(prepared));
	OPENSSL_cleanse(&v, sizeof(v));
	return rc;
}
