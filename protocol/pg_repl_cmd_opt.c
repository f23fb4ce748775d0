/*
 * pg_repl_cmd_opt.c - the values of replication command options, checked
 * as the server checks them (defGetBoolean(), the snapshot option of
 * CREATE_REPLICATION_SLOT, pgoutput's proto_version and streaming), for
 * pg_repl_cmd.c's parser.
 */
#include "pg_repl_cmd_int.h"

#include <string.h>


void pg_repl_take_optval(const struct pg_repl_lex_token *t, struct optval *v)
{
	memset(v, 0, sizeof(*v));
	v->given = true;
	if (t->type == PG_REPL_LEX_UINT) {
		v->integer = true;
		v->number = t->big ? UINT64_MAX : t->value;
		return;
	}
	v->fits = pg_repl_lex_copy_text(t, v->text, sizeof(v->text));
}

static bool equal_nocase(const char *a, const char *lower)
{
	for (; *a != '\0' && *lower != '\0'; a++, lower++) {
		char c = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;

		if (c != *lower)
			return false;
	}
	return *a == *lower;
}

/* defGetBoolean(): no argument is true; 0, 1, true, false, on, off. */
enum pg_repl_cmd_error pg_repl_bool_option(const struct optval *v, bool *result)
{
	if (!v->given) {
		*result = true;
		return PG_REPL_ERR_NONE;
	}
	if (v->integer) {
		if (v->number > 1)
			return PG_REPL_ERR_OPTION;
		*result = v->number == 1;
		return PG_REPL_ERR_NONE;
	}
	if (v->fits && (equal_nocase(v->text, "true") || equal_nocase(v->text, "on"))) {
		*result = true;
		return PG_REPL_ERR_NONE;
	}
	if (v->fits && (equal_nocase(v->text, "false") || equal_nocase(v->text, "off"))) {
		*result = false;
		return PG_REPL_ERR_NONE;
	}
	return PG_REPL_ERR_OPTION;
}

/* CREATE_REPLICATION_SLOT's snapshot: compared case-sensitively by the server. */
enum pg_repl_cmd_error pg_repl_snapshot_option(const struct optval *v,
					      enum pg_repl_snapshot *result)
{
	if (!v->given || v->integer || !v->fits)
		return PG_REPL_ERR_OPTION;
	if (strcmp(v->text, "export") == 0)
		*result = PG_REPL_SNAPSHOT_EXPORT;
	else if (strcmp(v->text, "nothing") == 0)
		*result = PG_REPL_SNAPSHOT_NOTHING;
	else if (strcmp(v->text, "use") == 0)
		*result = PG_REPL_SNAPSHOT_USE;
	else
		return PG_REPL_ERR_OPTION;
	return PG_REPL_ERR_NONE;
}

/*
 * pgoutput's proto_version: strtoul() of the whole string, then at most
 * PG_INT32_MAX and at least LOGICALREP_PROTO_MIN_VERSION_NUM (1). Only
 * plain digits are taken: a client writing ' +1' is not worth following.
 */
enum pg_repl_cmd_error pg_repl_proto_version_option(const struct optval *v, int *result)
{
	uint64_t n = 0;
	size_t i;

	if (!v->given || !v->fits || v->text[0] == '\0')
		return PG_REPL_ERR_OPTION;
	for (i = 0; v->text[i] != '\0'; i++) {
		if (v->text[i] < '0' || v->text[i] > '9')
			return PG_REPL_ERR_OPTION;
		n = n * 10 + (uint64_t)(v->text[i] - '0');
		if (n > INT32_MAX)
			return PG_REPL_ERR_OPTION;
	}
	if (n == 0)
		return PG_REPL_ERR_OPTION;
	*result = (int)n;
	return PG_REPL_ERR_NONE;
}

/* defGetStreamingMode() (16+): no value is on; off/false, on/true, parallel. */
enum pg_repl_cmd_error pg_repl_streaming_option(const struct optval *v,
					       enum pg_repl_streaming *result)
{
	bool on;

	if (v->given && v->fits && equal_nocase(v->text, "parallel")) {
		*result = PG_REPL_STREAMING_PARALLEL;
		return PG_REPL_ERR_NONE;
	}
	if (pg_repl_bool_option(v, &on) != PG_REPL_ERR_NONE)
		return PG_REPL_ERR_OPTION;
	*result = on ? PG_REPL_STREAMING_ON : PG_REPL_STREAMING_OFF;
	return PG_REPL_ERR_NONE;
}
