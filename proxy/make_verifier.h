/*
 * make_verifier.h - `walgate --make-verifier`: a fresh SCRAM-SHA-256
 * verifier for a password, so that no plaintext need be stored anywhere:
 * the operator sets it upstream (ALTER ROLE ... PASSWORD '<verifier>',
 * which PostgreSQL stores as it is) and puts the same text in the auth
 * file, and walgate logs in upstream with the ClientKey the client's proof
 * reveals.
 */
#ifndef WALGATE_MAKE_VERIFIER_H
#define WALGATE_MAKE_VERIFIER_H

/*
 * Read the password (from the terminal, twice and without echo, when stdin
 * is one; else the first line of stdin), print its verifier on stdout.
 * Returns the exit code: 0, or 1 with the reason on stderr.
 */
int make_verifier_run(void);

#endif
