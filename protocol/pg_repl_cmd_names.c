/*
 * pg_repl_cmd_names.c - the words for pg_repl_cmd.h's verdicts, kinds and
 * errors, as log lines and metric labels show them.
 */
#include "pg_repl_cmd.h"

#include <stddef.h>

const char *pg_repl_cmd_verdict_str(enum pg_repl_cmd_verdict v)
{
	switch (v) {
	case PG_REPL_CMD_OK:
		return "ok";
	case PG_REPL_CMD_NOT_REPLICATION:
		return "not a replication command";
	case PG_REPL_CMD_MALFORMED:
		return "malformed replication command";
	}
	return "unknown verdict";
}

const char *pg_repl_cmd_kind_str(enum pg_repl_cmd_kind k)
{
	switch (k) {
	case PG_REPL_CMD_NONE:
		return "none";
	case PG_REPL_CMD_IDENTIFY_SYSTEM:
		return "IDENTIFY_SYSTEM";
	case PG_REPL_CMD_CREATE_SLOT:
		return "CREATE_REPLICATION_SLOT";
	case PG_REPL_CMD_START_REPLICATION:
		return "START_REPLICATION";
	case PG_REPL_CMD_DROP_SLOT:
		return "DROP_REPLICATION_SLOT";
	case PG_REPL_CMD_READ_SLOT:
		return "READ_REPLICATION_SLOT";
	case PG_REPL_CMD_TIMELINE_HISTORY:
		return "TIMELINE_HISTORY";
	case PG_REPL_CMD_OTHER:
		return "other replication command";
	}
	return "unknown command";
}

const char *pg_repl_cmd_error_str(enum pg_repl_cmd_error e)
{
	switch (e) {
	case PG_REPL_ERR_NONE:
		return "no error";
	case PG_REPL_ERR_MESSAGE:
		return "query text is not one NUL-terminated string";
	case PG_REPL_ERR_SYNTAX:
		return "syntax error";
	case PG_REPL_ERR_UNTERMINATED:
		return "unterminated quoted string";
	case PG_REPL_ERR_NAME:
		return "name empty or longer than 63 bytes";
	case PG_REPL_ERR_LSN:
		return "invalid streaming start location";
	case PG_REPL_ERR_NUMBER:
		return "invalid timeline";
	case PG_REPL_ERR_OPTION:
		return "invalid, conflicting or redundant option";
	case PG_REPL_ERR_TOO_LONG:
		return "command cut before its slot and position";
	}
	return "unknown error";
}
