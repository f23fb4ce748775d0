/*
 * test_pg_repl_cmd.c - replication commands as real clients send them
 * (Materialize, pg_recvlogical and pg_receivewal 15, captured on the wire)
 * must be read as the server reads them; SQL must be left alone; broken,
 * cut and overlong texts must get a verdict without reading past the bytes
 * handed in (every such buffer here is a heap block of exactly that size,
 * for the sanitizers).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/pg_repl_cmd.h"

/* Parse text as a whole Query payload: the text and its NUL, nothing more. */
static enum pg_repl_cmd_verdict parse(const char *text, struct pg_repl_cmd *c)
{
	size_t len = strlen(text) + 1;
	uint8_t *buf = malloc(len);
	enum pg_repl_cmd_verdict v;

	assert_non_null(buf);
	memcpy(buf, text, len);
	v = pg_repl_cmd_parse(buf, len, c);
	free(buf);
	return v;
}

static void assert_ok(const char *text, struct pg_repl_cmd *c, enum pg_repl_cmd_kind kind)
{
	enum pg_repl_cmd_verdict v = parse(text, c);

	if (v != PG_REPL_CMD_OK)
		print_error("%s: %s (%s)\n", text, pg_repl_cmd_verdict_str(v),
			    pg_repl_cmd_error_str(c->error));
	assert_int_equal(v, PG_REPL_CMD_OK);
	assert_int_equal(c->kind, kind);
	assert_int_equal(c->error, PG_REPL_ERR_NONE);
	assert_false(c->cut);
}

static void assert_malformed(const char *text, enum pg_repl_cmd_kind kind,
			     enum pg_repl_cmd_error e)
{
	struct pg_repl_cmd c;
	enum pg_repl_cmd_verdict v = parse(text, &c);

	if (v != PG_REPL_CMD_MALFORMED || c.error != e)
		print_error("%s: %s (%s)\n", text, pg_repl_cmd_verdict_str(v),
			    pg_repl_cmd_error_str(c.error));
	assert_int_equal(v, PG_REPL_CMD_MALFORMED);
	assert_int_equal(c.kind, kind);
	assert_int_equal(c.error, e);
}

static void assert_sql(const char *text)
{
	struct pg_repl_cmd c, zero;

	memset(&zero, 0, sizeof(zero));
	assert_int_equal(parse(text, &c), PG_REPL_CMD_NOT_REPLICATION);
	assert_memory_equal(&c, &zero, sizeof(c));
}

static void test_materialize(void **state)
{
	struct pg_repl_cmd c;

	(void)state;
	assert_ok("IDENTIFY_SYSTEM", &c, PG_REPL_CMD_IDENTIFY_SYSTEM);

	assert_ok("CREATE_REPLICATION_SLOT materialize_u3a LOGICAL \"pgoutput\" NOEXPORT_SNAPSHOT",
		  &c, PG_REPL_CMD_CREATE_SLOT);
	assert_string_equal(c.slot, "materialize_u3a");
	assert_int_equal(c.repl_kind, PG_REPL_KIND_LOGICAL);
	assert_false(c.temporary);
	assert_string_equal(c.plugin, "pgoutput");
	assert_int_equal(c.snapshot, PG_REPL_SNAPSHOT_NOTHING);

	/* the snapshot slot: a UUID with its dashes removed, bare or quoted */
	assert_ok("CREATE_REPLICATION_SLOT mzsnapshot_9b2f6c1e0a4d4f7e8c3b5a6d7e8f9012 "
		  "TEMPORARY LOGICAL \"pgoutput\" USE_SNAPSHOT", &c, PG_REPL_CMD_CREATE_SLOT);
	assert_string_equal(c.slot, "mzsnapshot_9b2f6c1e0a4d4f7e8c3b5a6d7e8f9012");
	assert_true(c.temporary);
	assert_string_equal(c.plugin, "pgoutput");
	assert_int_equal(c.snapshot, PG_REPL_SNAPSHOT_USE);
	assert_ok("CREATE_REPLICATION_SLOT \"mzsnapshot_9b2f6c1e0a4d4f7e8c3b5a6d7e8f9012\" "
		  "TEMPORARY LOGICAL \"pgoutput\" USE_SNAPSHOT", &c, PG_REPL_CMD_CREATE_SLOT);
	assert_string_equal(c.slot, "mzsnapshot_9b2f6c1e0a4d4f7e8c3b5a6d7e8f9012");

	assert_ok("START_REPLICATION SLOT \"materialize_abc\" LOGICAL 0/1A2B3C "
		  "(\"proto_version\" '1', \"publication_names\" 'mz_source')",
		  &c, PG_REPL_CMD_START_REPLICATION);
	assert_string_equal(c.slot, "materialize_abc");
	assert_int_equal(c.repl_kind, PG_REPL_KIND_LOGICAL);
	assert_int_equal(c.start_lsn, 0x1A2B3C);
	assert_int_equal(c.proto_version, 1);
	assert_string_equal(c.publication_names, "mz_source");
	assert_false(c.publication_names_truncated);
	assert_int_equal(c.streaming, PG_REPL_STREAMING_OFF);
	assert_int_equal(c.timeline, 0);
	/* what was named, for the log line: streaming and two_phase were not */
	assert_true(c.proto_version_given);
	assert_true(c.publication_names_given);
	assert_false(c.streaming_given);
	assert_false(c.two_phase_given);

	assert_ok("DROP_REPLICATION_SLOT materialize_abc WAIT", &c, PG_REPL_CMD_DROP_SLOT);
	assert_string_equal(c.slot, "materialize_abc");
	assert_true(c.wait);
	assert_ok("DROP_REPLICATION_SLOT materialize_abc", &c, PG_REPL_CMD_DROP_SLOT);
	assert_false(c.wait);

	/* the rest of what a replication=database connection of a source sends */
	assert_sql("BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ;");
	assert_sql("SELECT pg_export_snapshot();");
	assert_sql("COPY (SELECT * FROM public.t) TO STDOUT (FORMAT TEXT, DELIMITER '\t')");
	assert_sql("COMMIT");
}

/* Captured from pg_recvlogical and pg_receivewal 15.20 through a relay. */
static void test_pg_tools(void **state)
{
	struct pg_repl_cmd c;

	(void)state;
	assert_ok("START_REPLICATION SLOT \"s1\" LOGICAL 0/0 (\"proto_version\" '1', "
		  "\"publication_names\" 'p')", &c, PG_REPL_CMD_START_REPLICATION);
	assert_string_equal(c.slot, "s1");
	assert_int_equal(c.repl_kind, PG_REPL_KIND_LOGICAL);
	assert_int_equal(c.start_lsn, 0);
	assert_int_equal(c.proto_version, 1);
	assert_string_equal(c.publication_names, "p");

	assert_ok("START_REPLICATION SLOT \"phys1\" 0/1000000 TIMELINE 1", &c,
		  PG_REPL_CMD_START_REPLICATION);
	assert_string_equal(c.slot, "phys1");
	assert_int_equal(c.repl_kind, PG_REPL_KIND_PHYSICAL);
	assert_int_equal(c.start_lsn, 0x1000000);
	assert_int_equal(c.timeline, 1);
	assert_int_equal(c.proto_version, 0);

	assert_ok("START_REPLICATION 0/1000000 TIMELINE 1", &c, PG_REPL_CMD_START_REPLICATION);
	assert_string_equal(c.slot, "");
	assert_int_equal(c.repl_kind, PG_REPL_KIND_PHYSICAL);
	assert_int_equal(c.start_lsn, 0x1000000);
	assert_int_equal(c.timeline, 1);

	assert_ok("CREATE_REPLICATION_SLOT \"tmpslot\" LOGICAL \"test_decoding\" ( SNAPSHOT 'nothing')",
		  &c, PG_REPL_CMD_CREATE_SLOT);
	assert_string_equal(c.slot, "tmpslot");
	assert_string_equal(c.plugin, "test_decoding");
	assert_int_equal(c.snapshot, PG_REPL_SNAPSHOT_NOTHING);

	assert_ok("DROP_REPLICATION_SLOT \"tmpslot\"", &c, PG_REPL_CMD_DROP_SLOT);
	assert_string_equal(c.slot, "tmpslot");

	assert_ok("SHOW data_directory_mode", &c, PG_REPL_CMD_OTHER);
	assert_ok("SHOW wal_segment_size", &c, PG_REPL_CMD_OTHER);
	assert_sql("SELECT pg_catalog.set_config('search_path', '', false);");
}

/* Keywords are matched as the server's flex rules match them: upper case only. */
static void test_keyword_case(void **state)
{
	struct pg_repl_cmd c;

	(void)state;
	assert_sql("identify_system");
	assert_sql("Identify_System;");
	assert_sql("start_replication SLOT s LOGICAL 0/0");
	assert_sql("show server_version");
	assert_sql("IDENTIFY_SYSTEMS");
	assert_sql("IDENTIFY_SYSTEM_");
	/* a comment is SQL's: the replication lexer returns '-' as a character */
	assert_sql("-- hi\nIDENTIFY_SYSTEM");
	assert_sql("/* hi */ IDENTIFY_SYSTEM");
	assert_sql("");
	assert_sql("   ");
	assert_sql("42");

	/* lower-case keywords in argument positions are identifiers */
	assert_malformed("START_REPLICATION slot s LOGICAL 0/0", PG_REPL_CMD_START_REPLICATION,
			 PG_REPL_ERR_LSN);
	assert_malformed("CREATE_REPLICATION_SLOT s logical pgoutput", PG_REPL_CMD_CREATE_SLOT,
			 PG_REPL_ERR_SYNTAX);
	/* and upper-case keywords cannot be names, unless quoted */
	assert_malformed("CREATE_REPLICATION_SLOT SLOT LOGICAL pgoutput", PG_REPL_CMD_CREATE_SLOT,
			 PG_REPL_ERR_SYNTAX);
	assert_ok("CREATE_REPLICATION_SLOT \"SLOT\" LOGICAL pgoutput", &c, PG_REPL_CMD_CREATE_SLOT);
	assert_string_equal(c.slot, "SLOT");
	assert_ok("CREATE_REPLICATION_SLOT slot LOGICAL pgoutput", &c, PG_REPL_CMD_CREATE_SLOT);
	assert_string_equal(c.slot, "slot");
}

static void test_identifiers(void **state)
{
	struct pg_repl_cmd c;
	char text[256], name[80];

	(void)state;
	assert_ok("READ_REPLICATION_SLOT \"My\"\"Slot\"", &c, PG_REPL_CMD_READ_SLOT);
	assert_string_equal(c.slot, "My\"Slot");
	assert_ok("READ_REPLICATION_SLOT MySlot", &c, PG_REPL_CMD_READ_SLOT);
	assert_string_equal(c.slot, "myslot");
	assert_ok("READ_REPLICATION_SLOT \"a b;'c\"", &c, PG_REPL_CMD_READ_SLOT);
	assert_string_equal(c.slot, "a b;'c");
	assert_ok("READ_REPLICATION_SLOT _x$1", &c, PG_REPL_CMD_READ_SLOT);
	assert_string_equal(c.slot, "_x$1");
	/* bytes of multibyte characters are identifier bytes, never folded */
	assert_ok("READ_REPLICATION_SLOT \xc3\x89t\xc3\xa9", &c, PG_REPL_CMD_READ_SLOT);
	assert_string_equal(c.slot, "\xc3\x89t\xc3\xa9");
	assert_ok("READ_REPLICATION_SLOT\t\n\"\"\"\"", &c, PG_REPL_CMD_READ_SLOT);
	assert_string_equal(c.slot, "\"");

	/* 63 bytes fit NAMEDATALEN; 64 do not */
	memset(name, 'a', 63);
	name[63] = '\0';
	snprintf(text, sizeof(text), "DROP_REPLICATION_SLOT %s", name);
	assert_ok(text, &c, PG_REPL_CMD_DROP_SLOT);
	assert_string_equal(c.slot, name);
	snprintf(text, sizeof(text), "DROP_REPLICATION_SLOT \"%s\"", name);
	assert_ok(text, &c, PG_REPL_CMD_DROP_SLOT);
	snprintf(text, sizeof(text), "DROP_REPLICATION_SLOT %sb", name);
	assert_malformed(text, PG_REPL_CMD_DROP_SLOT, PG_REPL_ERR_NAME);
	/* 62 characters and one "" : 64 bytes written, 63 meant */
	memset(name, 'a', 62);
	name[62] = '\0';
	snprintf(text, sizeof(text), "DROP_REPLICATION_SLOT \"%s\"\"\"", name);
	assert_ok(text, &c, PG_REPL_CMD_DROP_SLOT);
	assert_int_equal(strlen(c.slot), 63);
	snprintf(text, sizeof(text), "CREATE_REPLICATION_SLOT s LOGICAL %sxyz", name);
	assert_malformed(text, PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_NAME);

	assert_malformed("DROP_REPLICATION_SLOT \"\"", PG_REPL_CMD_DROP_SLOT, PG_REPL_ERR_NAME);
	assert_malformed("DROP_REPLICATION_SLOT", PG_REPL_CMD_DROP_SLOT, PG_REPL_ERR_SYNTAX);
	assert_malformed("DROP_REPLICATION_SLOT 'lit'", PG_REPL_CMD_DROP_SLOT, PG_REPL_ERR_SYNTAX);
	assert_malformed("DROP_REPLICATION_SLOT \"ab\"cd", PG_REPL_CMD_DROP_SLOT, PG_REPL_ERR_SYNTAX);
	assert_malformed("DROP_REPLICATION_SLOT \"abc", PG_REPL_CMD_DROP_SLOT,
			 PG_REPL_ERR_UNTERMINATED);
	assert_malformed("READ_REPLICATION_SLOT a.b", PG_REPL_CMD_READ_SLOT, PG_REPL_ERR_SYNTAX);
	assert_malformed("DROP_REPLICATION_SLOT s NOWAIT", PG_REPL_CMD_DROP_SLOT, PG_REPL_ERR_SYNTAX);
	/* an unclosed quote as the first token fails the server's first look */
	assert_malformed("'abc", PG_REPL_CMD_NONE, PG_REPL_ERR_UNTERMINATED);
	assert_malformed("\"abc", PG_REPL_CMD_NONE, PG_REPL_ERR_UNTERMINATED);
}

static void test_create_slot(void **state)
{
	struct pg_repl_cmd c;

	(void)state;
	assert_ok("CREATE_REPLICATION_SLOT p PHYSICAL", &c, PG_REPL_CMD_CREATE_SLOT);
	assert_int_equal(c.repl_kind, PG_REPL_KIND_PHYSICAL);
	assert_string_equal(c.plugin, "");
	assert_false(c.reserve_wal);
	assert_ok("CREATE_REPLICATION_SLOT p TEMPORARY PHYSICAL RESERVE_WAL", &c,
		  PG_REPL_CMD_CREATE_SLOT);
	assert_true(c.temporary);
	assert_true(c.reserve_wal);
	assert_ok("CREATE_REPLICATION_SLOT p PHYSICAL (RESERVE_WAL)", &c, PG_REPL_CMD_CREATE_SLOT);
	assert_true(c.reserve_wal);
	assert_ok("CREATE_REPLICATION_SLOT p PHYSICAL (RESERVE_WAL off)", &c, PG_REPL_CMD_CREATE_SLOT);
	assert_false(c.reserve_wal);
	assert_ok("CREATE_REPLICATION_SLOT p PHYSICAL (reserve_wal 1);", &c, PG_REPL_CMD_CREATE_SLOT);
	assert_true(c.reserve_wal);

	assert_ok("CREATE_REPLICATION_SLOT s LOGICAL pgoutput (SNAPSHOT 'nothing', TWO_PHASE true)",
		  &c, PG_REPL_CMD_CREATE_SLOT);
	assert_int_equal(c.snapshot, PG_REPL_SNAPSHOT_NOTHING);
	assert_true(c.two_phase);
	assert_ok("CREATE_REPLICATION_SLOT s LOGICAL pgoutput (SNAPSHOT nothing, TWO_PHASE 1)",
		  &c, PG_REPL_CMD_CREATE_SLOT);
	assert_true(c.two_phase);
	assert_ok("CREATE_REPLICATION_SLOT s LOGICAL pgoutput (snapshot 'export', two_phase 'OFF')",
		  &c, PG_REPL_CMD_CREATE_SLOT);
	assert_int_equal(c.snapshot, PG_REPL_SNAPSHOT_EXPORT);
	assert_false(c.two_phase);
	assert_ok("CREATE_REPLICATION_SLOT s LOGICAL pgoutput EXPORT_SNAPSHOT TWO_PHASE", &c,
		  PG_REPL_CMD_CREATE_SLOT);
	assert_int_equal(c.snapshot, PG_REPL_SNAPSHOT_EXPORT);
	assert_true(c.two_phase);
	assert_ok("CREATE_REPLICATION_SLOT s LOGICAL pgoutput", &c, PG_REPL_CMD_CREATE_SLOT);
	assert_int_equal(c.snapshot, PG_REPL_SNAPSHOT_DEFAULT);
	/* newer options are the server's to judge */
	assert_ok("CREATE_REPLICATION_SLOT s LOGICAL pgoutput (FAILOVER true)", &c,
		  PG_REPL_CMD_CREATE_SLOT);

	/* what parseCreateReplSlotOptions() refuses */
	assert_malformed("CREATE_REPLICATION_SLOT p PHYSICAL (SNAPSHOT 'nothing')",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_OPTION);
	assert_malformed("CREATE_REPLICATION_SLOT p PHYSICAL TWO_PHASE",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_OPTION);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x RESERVE_WAL",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_OPTION);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x USE_SNAPSHOT NOEXPORT_SNAPSHOT",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_OPTION);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x (SNAPSHOT 'NOTHING')",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_OPTION);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x (SNAPSHOT)",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_OPTION);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x (TWO_PHASE 2)",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_OPTION);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x (TWO_PHASE 'yes')",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_OPTION);
	/* what repl_gram.y refuses */
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x (SNAPSHOT 'nothing',)",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_SYNTAX);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x (SNAPSHOT USE_SNAPSHOT)",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_SYNTAX);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x ()",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_SYNTAX);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x (SNAPSHOT 'use'",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_SYNTAX);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL", PG_REPL_CMD_CREATE_SLOT,
			 PG_REPL_ERR_SYNTAX);
	assert_malformed("CREATE_REPLICATION_SLOT s TEMPORARY", PG_REPL_CMD_CREATE_SLOT,
			 PG_REPL_ERR_SYNTAX);
	assert_malformed("CREATE_REPLICATION_SLOT s LOGICAL x y", PG_REPL_CMD_CREATE_SLOT,
			 PG_REPL_ERR_SYNTAX);
	assert_malformed("CREATE_REPLICATION_SLOT s PHYSICAL (SNAPSHOT 'abc",
			 PG_REPL_CMD_CREATE_SLOT, PG_REPL_ERR_UNTERMINATED);
}

static void test_start_physical(void **state)
{
	struct pg_repl_cmd c;

	(void)state;
	assert_ok("START_REPLICATION PHYSICAL 16/B374D848", &c, PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(c.repl_kind, PG_REPL_KIND_PHYSICAL);
	assert_int_equal(c.start_lsn, 0x16B374D848ull);
	assert_int_equal(c.timeline, 0);
	assert_ok("START_REPLICATION SLOT s PHYSICAL FFFFFFFF/ffffffff TIMELINE 4294967295;", &c,
		  PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(c.start_lsn, UINT64_MAX);
	assert_int_equal(c.timeline, 4294967295u);
	/* leading zeros are not a wider half */
	assert_ok("START_REPLICATION 000000001/00000000000A", &c, PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(c.start_lsn, 0x10000000Aull);

	assert_malformed("START_REPLICATION 0/0 TIMELINE 0", PG_REPL_CMD_START_REPLICATION,
			 PG_REPL_ERR_NUMBER);
	assert_malformed("START_REPLICATION 0/0 TIMELINE 4294967296", PG_REPL_CMD_START_REPLICATION,
			 PG_REPL_ERR_NUMBER);
	assert_malformed("START_REPLICATION 0/0 TIMELINE", PG_REPL_CMD_START_REPLICATION,
			 PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION 0/0 TIMELINE x", PG_REPL_CMD_START_REPLICATION,
			 PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION 0/0 (\"proto_version\" '1')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION LOGICAL 0/0", PG_REPL_CMD_START_REPLICATION,
			 PG_REPL_ERR_LSN);
	assert_malformed("START_REPLICATION SLOT s PHYSICAL PHYSICAL 0/0",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_LSN);
}

static void test_bad_lsn(void **state)
{
	static const char *const bad[] = {
		"START_REPLICATION SLOT s LOGICAL",
		"START_REPLICATION SLOT s LOGICAL 0/",
		"START_REPLICATION SLOT s LOGICAL /0",
		"START_REPLICATION SLOT s LOGICAL 0",
		"START_REPLICATION SLOT s LOGICAL G/0",
		"START_REPLICATION SLOT s LOGICAL 0x0/0",
		"START_REPLICATION SLOT s LOGICAL '0/0'",
		"START_REPLICATION SLOT s LOGICAL 1FFFFFFFF/0",
		"START_REPLICATION SLOT s LOGICAL 0/100000000",
		"START_REPLICATION SLOT s LOGICAL -1/0",
		"START_REPLICATION 123456789ABCDEF0/0",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_malformed(bad[i], PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_LSN);
	/* a valid LSN with junk glued on lexes as two tokens */
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/1A2B3Z", PG_REPL_CMD_START_REPLICATION,
			 PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0/0", PG_REPL_CMD_START_REPLICATION,
			 PG_REPL_ERR_SYNTAX);
}

static void test_logical_options(void **state)
{
	struct pg_repl_cmd c;
	char text[600], pubs[400];

	(void)state;
	assert_ok("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '4', streaming 'parallel', "
		  "publication_names '\"A\",b', binary 'true', messages 'true', origin 'any')",
		  &c, PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(c.proto_version, 4);
	assert_int_equal(c.streaming, PG_REPL_STREAMING_PARALLEL);
	assert_string_equal(c.publication_names, "\"A\",b");
	assert_ok("START_REPLICATION SLOT s LOGICAL 0/0 (PROTO_VERSION '2', streaming 'On', "
		  "two_phase 'true', publication_names 'it''s')", &c, PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(c.proto_version, 2);
	assert_int_equal(c.streaming, PG_REPL_STREAMING_ON);
	assert_true(c.two_phase);
	assert_string_equal(c.publication_names, "it's");
	assert_ok("START_REPLICATION SLOT s LOGICAL 0/0 (streaming, \"proto_version\" '3')", &c,
		  PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(c.streaming, PG_REPL_STREAMING_ON);
	assert_ok("START_REPLICATION SLOT s LOGICAL 0/0 (streaming 'false')", &c,
		  PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(c.streaming, PG_REPL_STREAMING_OFF);
	assert_true(c.streaming_given);
	assert_false(c.proto_version_given);
	assert_false(c.publication_names_given);
	assert_ok("START_REPLICATION SLOT s LOGICAL 0/0 (streaming 'off', proto_version '2147483647')",
		  &c, PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(c.proto_version, 2147483647);
	/* pgoutput compares names with strcmp: a quoted capital is another option */
	assert_ok("START_REPLICATION SLOT s LOGICAL 0/0 (\"Proto_Version\" '9')", &c,
		  PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(c.proto_version, 0);
	/* and a plugin other than pgoutput may have options of its own */
	assert_ok("START_REPLICATION SLOT s LOGICAL 0/0 (\"include-xids\" '0', skip_empty_xacts)",
		  &c, PG_REPL_CMD_START_REPLICATION);

	/* publication_names: 255 bytes kept, and a flag when there were more */
	memset(pubs, 'p', 300);
	pubs[300] = '\0';
	snprintf(text, sizeof(text), "START_REPLICATION SLOT s LOGICAL 0/0 "
		 "(proto_version '1', publication_names '%s')", pubs);
	assert_ok(text, &c, PG_REPL_CMD_START_REPLICATION);
	assert_int_equal(strlen(c.publication_names), PG_REPL_PUBNAMES_MAX - 1);
	assert_true(c.publication_names_truncated);
	pubs[255] = '\0';
	snprintf(text, sizeof(text), "START_REPLICATION SLOT s LOGICAL 0/0 "
		 "(publication_names '%s')", pubs);
	assert_ok(text, &c, PG_REPL_CMD_START_REPLICATION);
	assert_string_equal(c.publication_names, pubs);
	assert_false(c.publication_names_truncated);

	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '1', proto_version '1')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '0')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version 'x')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '2147483648')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version)",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (publication_names)",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (streaming 'maybe')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (streaming 'on', streaming 'on')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (two_phase '2')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_OPTION);
	/* values are strings only; names are identifiers, never keywords */
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version 1)",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version x)",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (TWO_PHASE 'on')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 ('proto_version' '1')",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '1'",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 ()",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (a 'b') TIMELINE 1",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_SYNTAX);
	assert_malformed("START_REPLICATION SLOT s LOGICAL 0/0 (publication_names 'p)",
			 PG_REPL_CMD_START_REPLICATION, PG_REPL_ERR_UNTERMINATED);
}

static void test_other_commands(void **state)
{
	struct pg_repl_cmd c;

	(void)state;
	assert_ok("TIMELINE_HISTORY 3", &c, PG_REPL_CMD_TIMELINE_HISTORY);
	assert_int_equal(c.timeline, 3);
	assert_malformed("TIMELINE_HISTORY 0", PG_REPL_CMD_TIMELINE_HISTORY, PG_REPL_ERR_NUMBER);
	assert_malformed("TIMELINE_HISTORY 99999999999", PG_REPL_CMD_TIMELINE_HISTORY,
			 PG_REPL_ERR_NUMBER);
	assert_malformed("TIMELINE_HISTORY", PG_REPL_CMD_TIMELINE_HISTORY, PG_REPL_ERR_SYNTAX);
	assert_malformed("TIMELINE_HISTORY 1 2", PG_REPL_CMD_TIMELINE_HISTORY, PG_REPL_ERR_SYNTAX);

	assert_ok("BASE_BACKUP", &c, PG_REPL_CMD_OTHER);
	assert_ok("BASE_BACKUP (LABEL 'pg_basebackup base backup', PROGRESS, CHECKPOINT 'fast', "
		  "WAIT 0, MANIFEST 'yes', TARGET 'client')", &c, PG_REPL_CMD_OTHER);
	assert_ok("ALTER_REPLICATION_SLOT s (FAILOVER true)", &c, PG_REPL_CMD_OTHER);
	assert_ok("UPLOAD_MANIFEST", &c, PG_REPL_CMD_OTHER);

	assert_ok("IDENTIFY_SYSTEM;", &c, PG_REPL_CMD_IDENTIFY_SYSTEM);
	assert_ok(" \t\r\n\f\vIDENTIFY_SYSTEM \n ; \n", &c, PG_REPL_CMD_IDENTIFY_SYSTEM);
	assert_malformed("IDENTIFY_SYSTEM;;", PG_REPL_CMD_IDENTIFY_SYSTEM, PG_REPL_ERR_SYNTAX);
	assert_malformed("IDENTIFY_SYSTEM; SELECT 1", PG_REPL_CMD_IDENTIFY_SYSTEM,
			 PG_REPL_ERR_SYNTAX);
	assert_malformed("IDENTIFY_SYSTEM x", PG_REPL_CMD_IDENTIFY_SYSTEM, PG_REPL_ERR_SYNTAX);
}

/* The payload must be the text and one NUL, as pq_getmsgstring/pq_getmsgend want. */
static void test_message_framing(void **state)
{
	static const char text[] = "IDENTIFY_SYSTEM";
	struct pg_repl_cmd c;
	uint8_t *buf;
	size_t n;

	(void)state;
	assert_int_equal(pg_repl_cmd_parse((const uint8_t *)"", 0, &c), PG_REPL_CMD_MALFORMED);
	assert_int_equal(c.error, PG_REPL_ERR_MESSAGE);
	/* every cut of the payload before its NUL: no terminator */
	for (n = 1; n < sizeof(text); n++) {
		buf = malloc(n);
		assert_non_null(buf);
		memcpy(buf, text, n);
		assert_int_equal(pg_repl_cmd_parse(buf, n, &c), PG_REPL_CMD_MALFORMED);
		assert_int_equal(c.error, PG_REPL_ERR_MESSAGE);
		free(buf);
	}
	/* bytes after the NUL */
	assert_int_equal(pg_repl_cmd_parse((const uint8_t *)"IDENTIFY_SYSTEM\0x", 17, &c),
			 PG_REPL_CMD_MALFORMED);
	assert_int_equal(c.error, PG_REPL_ERR_MESSAGE);
	assert_int_equal(pg_repl_cmd_parse((const uint8_t *)"IDENTIFY_SYSTEM\0\0", 17, &c),
			 PG_REPL_CMD_MALFORMED);
	assert_int_equal(pg_repl_cmd_parse((const uint8_t *)"\0", 1, &c),
			 PG_REPL_CMD_NOT_REPLICATION);
}

/*
 * A text of total bytes (with its NUL) that starts with head, of which the
 * parser is given only the first PG_REPL_CMD_SCAN_MAX in a block of that
 * size, as a caller that keeps only those would.
 */
static enum pg_repl_cmd_verdict parse_long(const char *head, size_t pad_before, size_t total,
					   struct pg_repl_cmd *c)
{
	size_t hlen = strlen(head);
	uint8_t *buf = malloc(PG_REPL_CMD_SCAN_MAX);
	enum pg_repl_cmd_verdict v;
	size_t i;

	assert_true(total > PG_REPL_CMD_SCAN_MAX);
	assert_non_null(buf);
	memset(buf, ' ', PG_REPL_CMD_SCAN_MAX);
	for (i = 0; i < hlen && pad_before + i < PG_REPL_CMD_SCAN_MAX; i++)
		buf[pad_before + i] = (uint8_t)head[i];
	v = pg_repl_cmd_parse(buf, total, c);
	free(buf);
	return v;
}

static void test_cut_at_scan_max(void **state)
{
	static const char start[] = "START_REPLICATION SLOT \"materialize_abc\" LOGICAL 0/1A2B3C "
		"(\"proto_version\" '1', \"publication_names\" 'mz_source,";
	struct pg_repl_cmd c;
	char *text;
	size_t n;

	(void)state;
	/* a publication list running past the view: the rest is not needed */
	text = malloc(PG_REPL_CMD_SCAN_MAX + 1);
	assert_non_null(text);
	memcpy(text, start, sizeof(start) - 1);
	memset(text + sizeof(start) - 1, 'q', PG_REPL_CMD_SCAN_MAX - (sizeof(start) - 1));
	text[PG_REPL_CMD_SCAN_MAX] = '\0';
	assert_int_equal(parse_long(text, 0, 5000, &c), PG_REPL_CMD_OK);
	free(text);
	assert_true(c.cut);
	assert_string_equal(c.slot, "materialize_abc");
	assert_int_equal(c.start_lsn, 0x1A2B3C);
	assert_int_equal(c.proto_version, 1);
	assert_true(c.publication_names_truncated);
	assert_int_equal(strlen(c.publication_names), PG_REPL_PUBNAMES_MAX - 1);
	assert_memory_equal(c.publication_names, "mz_source,qqq", 13);

	assert_int_equal(parse_long("IDENTIFY_SYSTEM", 0, 2000, &c), PG_REPL_CMD_OK);
	assert_true(c.cut);
	assert_int_equal(parse_long("SELECT 1", 0, 2000, &c), PG_REPL_CMD_NOT_REPLICATION);
	assert_false(c.cut);
	/* the first token is not in view */
	assert_int_equal(parse_long("IDENTIFY_SYSTEM", 1100, 2000, &c), PG_REPL_CMD_MALFORMED);
	assert_int_equal(c.kind, PG_REPL_CMD_NONE);
	assert_int_equal(c.error, PG_REPL_ERR_TOO_LONG);
	/* a NUL in view of a longer payload ends the text too soon */
	assert_int_equal(parse_long("IDENTIFY_SYSTEM\t", 0, 2000, &c), PG_REPL_CMD_OK);
	text = malloc(PG_REPL_CMD_SCAN_MAX);
	assert_non_null(text);
	memset(text, ' ', PG_REPL_CMD_SCAN_MAX);
	memcpy(text, "IDENTIFY_SYSTEM", sizeof("IDENTIFY_SYSTEM"));
	assert_int_equal(pg_repl_cmd_parse((const uint8_t *)text, 2000, &c), PG_REPL_CMD_MALFORMED);
	assert_int_equal(c.error, PG_REPL_ERR_MESSAGE);
	free(text);

	/*
	 * The cut at every byte of a command: what comes before the LSN is
	 * needed, so it is OK from the end of the LSN on and TOO_LONG before,
	 * never a syntax error from a token the cut made up.
	 */
	for (n = 0; n <= sizeof(start) - 1; n++) {
		enum pg_repl_cmd_verdict v = parse_long(start, PG_REPL_CMD_SCAN_MAX - n, 5000, &c);
		bool lsn_seen = n > strlen("START_REPLICATION SLOT \"materialize_abc\" LOGICAL 0/1A2B3C");

		if (lsn_seen) {
			assert_int_equal(v, PG_REPL_CMD_OK);
			assert_true(c.cut);
			assert_string_equal(c.slot, "materialize_abc");
			assert_int_equal(c.start_lsn, 0x1A2B3C);
		} else {
			assert_int_equal(v, PG_REPL_CMD_MALFORMED);
			assert_int_equal(c.error, PG_REPL_ERR_TOO_LONG);
		}
	}
}

/* Any cut of a valid command, NUL-terminated: some verdict, read in bounds. */
static void test_every_truncation(void **state)
{
	static const char *const cmds[] = {
		"START_REPLICATION SLOT \"materialize_abc\" LOGICAL 0/1A2B3C "
		"(\"proto_version\" '1', \"publication_names\" 'mz_source')",
		"CREATE_REPLICATION_SLOT \"My\"\"Slot\" TEMPORARY LOGICAL \"pgoutput\" "
		"(SNAPSHOT 'nothing', TWO_PHASE true)",
		"START_REPLICATION SLOT s PHYSICAL 16/B374D848 TIMELINE 7;",
		"DROP_REPLICATION_SLOT \"x\" WAIT",
	};
	struct pg_repl_cmd c;
	size_t i, n, len;
	uint8_t *buf;

	(void)state;
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		len = strlen(cmds[i]);
		for (n = 0; n <= len; n++) {
			buf = malloc(n + 1);
			assert_non_null(buf);
			memcpy(buf, cmds[i], n);
			buf[n] = '\0';
			(void)pg_repl_cmd_parse(buf, n + 1, &c);
			assert_non_null(pg_repl_cmd_error_str(c.error));
			free(buf);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_materialize),
		cmocka_unit_test(test_pg_tools),
		cmocka_unit_test(test_keyword_case),
		cmocka_unit_test(test_identifiers),
		cmocka_unit_test(test_create_slot),
		cmocka_unit_test(test_start_physical),
		cmocka_unit_test(test_bad_lsn),
		cmocka_unit_test(test_logical_options),
		cmocka_unit_test(test_other_commands),
		cmocka_unit_test(test_message_framing),
		cmocka_unit_test(test_cut_at_scan_max),
		cmocka_unit_test(test_every_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
