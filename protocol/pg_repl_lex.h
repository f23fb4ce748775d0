/*
 * pg_repl_lex.h - internal to protocol/: the lexer of pg_repl_cmd.c, which
 * splits the text of a replication command into the tokens the server's
 * repl_scanner.l would make of it.
 *
 * Pure: no I/O, no allocation; tokens point into the text.
 */
#ifndef WALGATE_PG_REPL_LEX_H
#define WALGATE_PG_REPL_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pg_repl_lex_kw {
	PG_REPL_LEX_KW_NONE = 0,
	PG_REPL_LEX_KW_ALTER_REPLICATION_SLOT,
	PG_REPL_LEX_KW_BASE_BACKUP,
	PG_REPL_LEX_KW_CREATE_REPLICATION_SLOT,
	PG_REPL_LEX_KW_DROP_REPLICATION_SLOT,
	PG_REPL_LEX_KW_EXPORT_SNAPSHOT,
	PG_REPL_LEX_KW_IDENTIFY_SYSTEM,
	PG_REPL_LEX_KW_LOGICAL,
	PG_REPL_LEX_KW_NOEXPORT_SNAPSHOT,
	PG_REPL_LEX_KW_PHYSICAL,
	PG_REPL_LEX_KW_READ_REPLICATION_SLOT,
	PG_REPL_LEX_KW_RESERVE_WAL,
	PG_REPL_LEX_KW_SHOW,
	PG_REPL_LEX_KW_SLOT,
	PG_REPL_LEX_KW_START_REPLICATION,
	PG_REPL_LEX_KW_TEMPORARY,
	PG_REPL_LEX_KW_TIMELINE,
	PG_REPL_LEX_KW_TIMELINE_HISTORY,
	PG_REPL_LEX_KW_TWO_PHASE,
	PG_REPL_LEX_KW_UPLOAD_MANIFEST,
	PG_REPL_LEX_KW_USE_SNAPSHOT,
	PG_REPL_LEX_KW_WAIT,
};

enum pg_repl_lex_type {
	PG_REPL_LEX_END = 0,		/* end of the command text */
	PG_REPL_LEX_CUT,		/* a token, or the end, hidden in part by the cut */
	PG_REPL_LEX_UNTERMINATED,	/* a quote never closed */
	PG_REPL_LEX_KEYWORD,
	PG_REPL_LEX_IDENT,
	PG_REPL_LEX_STRING,
	PG_REPL_LEX_UINT,
	PG_REPL_LEX_LSN,
	PG_REPL_LEX_CHAR,		/* any other single byte: ( ) , ; . ... */
};

struct pg_repl_lex_token {
	enum pg_repl_lex_type type;
	enum pg_repl_lex_kw kw;	/* KEYWORD */
	const char *p;		/* its text, inside the quotes if quoted */
	size_t len;
	char quote;		/* '"' or '\'' when quoted: doubled quotes to undo */
	bool big;		/* UINT over 32 bits, LSN with a half over 32 bits */
	uint64_t value;		/* UINT, LSN */
};

struct pg_repl_lex {
	const char *s;
	size_t n;		/* bytes of text: s[0..n) */
	size_t pos;
	bool cut;		/* s[n] is where the reading stops, not the command */
	bool hit;		/* the token being lexed looked at s[n] */
};

/*
 * The next token of lx into t, blanks before it skipped. A token that
 * might go on past a cut comes back as PG_REPL_LEX_CUT, its text kept.
 */
void pg_repl_lex_next(struct pg_repl_lex *lx, struct pg_repl_lex_token *t);

/*
 * The value of a word, identifier or string into dst[size]: unquoted
 * words folded to lower case as downcase_truncate_identifier() does
 * (ASCII only), doubled quotes of quoted ones undone. Returns false when
 * it did not fit; dst then holds what did.
 */
bool pg_repl_lex_copy_text(const struct pg_repl_lex_token *t, char *dst, size_t size);

#endif
