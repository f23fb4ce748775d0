/*
 * pg_repl_cmd.h - recognise the replication command in the text of a
 * simple Query ('Q') on a walsender connection, and extract what walgate
 * needs to follow a slot: its name, its kind, the start LSN and, for a
 * logical stream, the pgoutput protocol version and options.
 *
 * The command is read the way the server's replication grammar
 * (repl_scanner.l, repl_gram.y) reads it: keywords are upper case only,
 * exactly as the server matches them, so "identify_system" is SQL, not a
 * replication command; unquoted identifiers are folded to lower case,
 * quoted ones keep their case and turn "" into ". Anything else a
 * replication=database client sends (SELECT, BEGIN, COPY ...) is SQL.
 *
 * Only the first PG_REPL_CMD_SCAN_MAX bytes of the text are ever read.
 *
 * Pure: no I/O, no allocation; names are copied into fixed buffers.
 */
#ifndef WALGATE_PG_REPL_CMD_H
#define WALGATE_PG_REPL_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Bytes of the Query payload looked at. Every command walgate decodes has
 * its slot, kind and LSN in its first ~200 bytes; only a long option list
 * (many publication names) goes past this, and is then read in part.
 */
#define PG_REPL_CMD_SCAN_MAX	1024u
/* NAMEDATALEN: 63 bytes and the NUL. */
#define PG_REPL_NAME_MAX	64u
#define PG_REPL_PUBNAMES_MAX	256u

enum pg_repl_cmd_verdict {
	PG_REPL_CMD_OK = 0,
	PG_REPL_CMD_NOT_REPLICATION,	/* SQL, or empty: the server runs it as such */
	PG_REPL_CMD_MALFORMED,		/* the server will refuse it; ->error says why */
};

enum pg_repl_cmd_kind {
	PG_REPL_CMD_NONE = 0,
	PG_REPL_CMD_IDENTIFY_SYSTEM,
	PG_REPL_CMD_CREATE_SLOT,
	PG_REPL_CMD_START_REPLICATION,
	PG_REPL_CMD_DROP_SLOT,
	PG_REPL_CMD_READ_SLOT,
	PG_REPL_CMD_TIMELINE_HISTORY,
	/* BASE_BACKUP, SHOW, ALTER_REPLICATION_SLOT, UPLOAD_MANIFEST: keyword only */
	PG_REPL_CMD_OTHER,
};

enum pg_repl_cmd_error {
	PG_REPL_ERR_NONE = 0,
	PG_REPL_ERR_MESSAGE,		/* payload is not exactly one NUL-terminated string */
	PG_REPL_ERR_SYNTAX,		/* a token the grammar does not allow there */
	PG_REPL_ERR_UNTERMINATED,	/* quoted identifier or string not closed */
	PG_REPL_ERR_NAME,		/* slot or plugin name empty or over 63 bytes */
	PG_REPL_ERR_LSN,		/* LSN missing, or a half above FFFFFFFF */
	PG_REPL_ERR_NUMBER,		/* timeline 0 or above 4294967295 */
	PG_REPL_ERR_OPTION,		/* an option value refused, or an option given twice */
	PG_REPL_ERR_TOO_LONG,		/* text cut at PG_REPL_CMD_SCAN_MAX before its slot/LSN */
};

enum pg_repl_kind {
	PG_REPL_KIND_NONE = 0,
	PG_REPL_KIND_PHYSICAL,
	PG_REPL_KIND_LOGICAL,
};

/* CREATE_REPLICATION_SLOT ... LOGICAL: what to do with the snapshot. */
enum pg_repl_snapshot {
	PG_REPL_SNAPSHOT_DEFAULT = 0,	/* not given: the server exports one */
	PG_REPL_SNAPSHOT_EXPORT,	/* EXPORT_SNAPSHOT, (SNAPSHOT 'export') */
	PG_REPL_SNAPSHOT_NOTHING,	/* NOEXPORT_SNAPSHOT, (SNAPSHOT 'nothing') */
	PG_REPL_SNAPSHOT_USE,		/* USE_SNAPSHOT, (SNAPSHOT 'use') */
};

/* pgoutput "streaming" option. */
enum pg_repl_streaming {
	PG_REPL_STREAMING_OFF = 0,
	PG_REPL_STREAMING_ON,
	PG_REPL_STREAMING_PARALLEL,
};

struct pg_repl_cmd {
	enum pg_repl_cmd_kind kind;	/* set for MALFORMED too, when known */
	enum pg_repl_cmd_error error;	/* PG_REPL_CMD_MALFORMED only */
	/*
	 * The text went on past PG_REPL_CMD_SCAN_MAX: the fields below are
	 * those seen before the cut, the rest were neither read nor checked.
	 */
	bool cut;

	/* CREATE / START (SLOT ...) / DROP / READ; "" when START has no SLOT */
	char slot[PG_REPL_NAME_MAX];
	enum pg_repl_kind repl_kind;	/* CREATE, START */

	/* CREATE_REPLICATION_SLOT */
	bool temporary;
	char plugin[PG_REPL_NAME_MAX];	/* LOGICAL only */
	enum pg_repl_snapshot snapshot;
	bool reserve_wal;
	bool two_phase;			/* also pgoutput's two_phase on START */

	bool wait;			/* DROP_REPLICATION_SLOT ... WAIT */

	/* START_REPLICATION */
	uint64_t start_lsn;
	uint32_t timeline;		/* TIMELINE n, TIMELINE_HISTORY n; 0 if absent */

	/* START_REPLICATION ... LOGICAL, pgoutput options; 0 / OFF / "" if absent */
	int proto_version;
	enum pg_repl_streaming streaming;
	char publication_names[PG_REPL_PUBNAMES_MAX];	/* raw value, quotes undone */
	bool publication_names_truncated;
	/* which of those pgoutput options the command named (to log what was sent) */
	bool proto_version_given, publication_names_given, streaming_given, two_phase_given;
};

/*
 * Parse the payload of a Query message: len is the whole payload length
 * (the message length minus 4), and buf must hold its first
 * min(len, PG_REPL_CMD_SCAN_MAX) bytes; nothing beyond those is read, so
 * a caller may keep just that much of a longer Query.
 *
 * PG_REPL_CMD_OK: *out describes the command. PG_REPL_CMD_NOT_REPLICATION:
 * *out is zeroed. PG_REPL_CMD_MALFORMED: out->error says why and out->kind
 * which command it was (PG_REPL_CMD_NONE when not even that is known).
 */
enum pg_repl_cmd_verdict pg_repl_cmd_parse(const uint8_t *buf, size_t len,
					   struct pg_repl_cmd *out);

const char *pg_repl_cmd_verdict_str(enum pg_repl_cmd_verdict v);
const char *pg_repl_cmd_kind_str(enum pg_repl_cmd_kind k);
const char *pg_repl_cmd_error_str(enum pg_repl_cmd_error e);

#endif
