/*
 * pg_repl_cmd_int.h - what pg_repl_cmd.c (the parser) and
 * pg_repl_cmd_opt.c (the checks of option values) share.
 */
#ifndef WALGATE_PG_REPL_CMD_INT_H
#define WALGATE_PG_REPL_CMD_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "pg_repl_cmd.h"
#include "pg_repl_lex.h"

/* An option's argument, as defGetString() and defGetBoolean() see it. */
struct optval {
	bool given;
	bool integer;		/* an unquoted number: an Integer node */
	uint64_t number;
	bool fits;		/* text holds all of it */
	char text[32];
};

/* The argument token t as an option value. */
void pg_repl_take_optval(const struct pg_repl_lex_token *t, struct optval *v);

/* defGetBoolean(): no argument is true; 0, 1, true, false, on, off. */
enum pg_repl_cmd_error pg_repl_bool_option(const struct optval *v, bool *result);

/* CREATE_REPLICATION_SLOT's snapshot: export, nothing or use (case-sensitive). */
enum pg_repl_cmd_error pg_repl_snapshot_option(const struct optval *v, enum pg_repl_snapshot *result);

/* pgoutput's proto_version: digits only, 1 .. INT32_MAX. */
enum pg_repl_cmd_error pg_repl_proto_version_option(const struct optval *v, int *result);

/* defGetStreamingMode(): no value is on; off/false, on/true, parallel. */
enum pg_repl_cmd_error pg_repl_streaming_option(const struct optval *v, enum pg_repl_streaming *result);

#endif
