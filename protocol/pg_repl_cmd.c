/*
 * pg_repl_cmd.c - read a walsender replication command as the server
 * does, keeping the slot, kind, LSN and pgoutput options walgate follows.
 *
 * The tokens come from pg_repl_lex.c, a copy of repl_scanner.l; the
 * parser here follows repl_gram.y by recursive descent. The option checks
 * the server makes after parsing (parseCreateReplSlotOptions() in
 * walsender.c, parse_output_parameters() in pgoutput.c) are made for the
 * options walgate reports, so that an OK command is one the server reads
 * with the same values. Options walgate does not report are left to the
 * server: their set grows with each release.
 *
 * The text may be cut at PG_REPL_CMD_SCAN_MAX. A token that touches the
 * cut might go on beyond it, so it is never trusted: parsing stops there,
 * and the command is still OK when what walgate relies on (slot, kind,
 * LSN) came before the cut.
 */
#include "pg_repl_cmd.h"
#include "pg_repl_cmd_int.h"
#include "pg_repl_lex.h"

#include <string.h>

struct parser {
	struct pg_repl_lex lx;
	struct pg_repl_lex_token tok;	/* the current token */
	struct pg_repl_cmd *out;
	bool essentials;	/* out has slot, kind, LSN: a cut from here on is tolerable */
};

static void next(struct parser *ps)
{
	pg_repl_lex_next(&ps->lx, &ps->tok);
}

/*
 * Why the parse stops at the current token: e, unless the token is not
 * really known, because of the cut or an unclosed quote.
 */
static enum pg_repl_cmd_error fail(const struct parser *ps, enum pg_repl_cmd_error e)
{
	if (ps->tok.type == PG_REPL_LEX_CUT)
		return PG_REPL_ERR_TOO_LONG;
	if (ps->tok.type == PG_REPL_LEX_UNTERMINATED)
		return PG_REPL_ERR_UNTERMINATED;
	return e;
}

static bool is_kw(const struct parser *ps, enum pg_repl_lex_kw kw)
{
	return ps->tok.type == PG_REPL_LEX_KEYWORD && ps->tok.kw == kw;
}

static bool is_char(const struct parser *ps, char c)
{
	return ps->tok.type == PG_REPL_LEX_CHAR && ps->tok.p[0] == c;
}

/*
 * A slot or plugin name. The server would cut a longer one to 63 bytes
 * with a NOTICE; walgate refuses to guess which slot the client meant.
 */
static enum pg_repl_cmd_error take_name(struct parser *ps, char *dst)
{
	if (ps->tok.type != PG_REPL_LEX_IDENT)
		return fail(ps, PG_REPL_ERR_SYNTAX);
	if (!pg_repl_lex_copy_text(&ps->tok, dst, PG_REPL_NAME_MAX) || dst[0] == '\0')
		return PG_REPL_ERR_NAME;
	next(ps);
	return PG_REPL_ERR_NONE;
}

static enum pg_repl_cmd_error take_lsn(struct parser *ps, uint64_t *lsn)
{
	if (ps->tok.type != PG_REPL_LEX_LSN || ps->tok.big)
		return fail(ps, PG_REPL_ERR_LSN);
	*lsn = ps->tok.value;
	next(ps);
	return PG_REPL_ERR_NONE;
}

/* The grammar refuses timeline 0 ("invalid timeline"). */
static enum pg_repl_cmd_error take_timeline(struct parser *ps, uint32_t *tli)
{
	if (ps->tok.type != PG_REPL_LEX_UINT)
		return fail(ps, PG_REPL_ERR_SYNTAX);
	if (ps->tok.big || ps->tok.value == 0)
		return PG_REPL_ERR_NUMBER;
	*tli = (uint32_t)ps->tok.value;
	next(ps);
	return PG_REPL_ERR_NONE;
}

/* firstcmd: command opt_semicolon, and nothing after. */
static enum pg_repl_cmd_error expect_end(struct parser *ps)
{
	if (is_char(ps, ';'))
		next(ps);
	if (ps->tok.type != PG_REPL_LEX_END)
		return fail(ps, PG_REPL_ERR_SYNTAX);
	return PG_REPL_ERR_NONE;
}

struct slot_given {
	bool snapshot, reserve_wal, two_phase;
};

/*
 * parseCreateReplSlotOptions(): each option at most once, and only on its
 * kind of slot. Others (failover, ...) are the server's to judge.
 */
static enum pg_repl_cmd_error slot_option(struct pg_repl_cmd *out, struct slot_given *given,
					  const char *name, const struct optval *v)
{
	bool logical = out->repl_kind == PG_REPL_KIND_LOGICAL;

	if (strcmp(name, "snapshot") == 0) {
		if (given->snapshot || !logical)
			return PG_REPL_ERR_OPTION;
		given->snapshot = true;
		return pg_repl_snapshot_option(v, &out->snapshot);
	}
	if (strcmp(name, "reserve_wal") == 0) {
		if (given->reserve_wal || logical)
			return PG_REPL_ERR_OPTION;
		given->reserve_wal = true;
		return pg_repl_bool_option(v, &out->reserve_wal);
	}
	if (strcmp(name, "two_phase") == 0) {
		if (given->two_phase || !logical)
			return PG_REPL_ERR_OPTION;
		given->two_phase = true;
		return pg_repl_bool_option(v, &out->two_phase);
	}
	return PG_REPL_ERR_NONE;
}

/*
 * After an option: ',' and another, or ')' and the end of the list. The
 * separator is checked before the option is judged, as the grammar reads
 * the whole list before anything looks at its values.
 */
static enum pg_repl_cmd_error option_separator(const struct parser *ps)
{
	if (is_char(ps, ')') || is_char(ps, ','))
		return PG_REPL_ERR_NONE;
	return fail(ps, PG_REPL_ERR_SYNTAX);
}

/* ( name [value] [, ...] ): a name may be a keyword, a value a word, string or number. */
static enum pg_repl_cmd_error generic_options(struct parser *ps, struct slot_given *given)
{
	char name[PG_REPL_NAME_MAX];
	struct optval v;
	enum pg_repl_cmd_error e;

	do {
		next(ps);
		if (ps->tok.type != PG_REPL_LEX_IDENT && ps->tok.type != PG_REPL_LEX_KEYWORD)
			return fail(ps, PG_REPL_ERR_SYNTAX);
		/* a name too long to fit is no option walgate knows */
		(void)pg_repl_lex_copy_text(&ps->tok, name, sizeof(name));
		next(ps);
		memset(&v, 0, sizeof(v));
		if (ps->tok.type == PG_REPL_LEX_IDENT || ps->tok.type == PG_REPL_LEX_STRING ||
		    ps->tok.type == PG_REPL_LEX_UINT) {
			pg_repl_take_optval(&ps->tok, &v);
			next(ps);
		}
		e = option_separator(ps);
		if (e == PG_REPL_ERR_NONE)
			e = slot_option(ps->out, given, name, &v);
		if (e != PG_REPL_ERR_NONE)
			return e;
	} while (is_char(ps, ','));
	next(ps);
	return PG_REPL_ERR_NONE;
}

static void legacy_value(struct optval *v, const char *text)
{
	v->given = true;
	v->fits = true;
	strcpy(v->text, text);
}

/*
 * The pre-15 keywords, which the grammar turns into options: RESERVE_WAL
 * and TWO_PHASE into a plain true, like an option given without a value.
 */
static enum pg_repl_cmd_error legacy_options(struct parser *ps, struct slot_given *given)
{
	struct optval v;
	const char *name;
	enum pg_repl_cmd_error e;

	while (ps->tok.type == PG_REPL_LEX_KEYWORD) {
		memset(&v, 0, sizeof(v));
		name = "snapshot";
		switch (ps->tok.kw) {
		case PG_REPL_LEX_KW_EXPORT_SNAPSHOT:
			legacy_value(&v, "export");
			break;
		case PG_REPL_LEX_KW_NOEXPORT_SNAPSHOT:
			legacy_value(&v, "nothing");
			break;
		case PG_REPL_LEX_KW_USE_SNAPSHOT:
			legacy_value(&v, "use");
			break;
		case PG_REPL_LEX_KW_RESERVE_WAL:
			name = "reserve_wal";
			break;
		case PG_REPL_LEX_KW_TWO_PHASE:
			name = "two_phase";
			break;
		default:
			return PG_REPL_ERR_NONE;
		}
		e = slot_option(ps->out, given, name, &v);
		if (e != PG_REPL_ERR_NONE)
			return e;
		next(ps);
	}
	return PG_REPL_ERR_NONE;
}

/* CREATE_REPLICATION_SLOT slot [TEMPORARY] { PHYSICAL | LOGICAL plugin } [options] */
static enum pg_repl_cmd_error parse_create_slot(struct parser *ps)
{
	struct pg_repl_cmd *out = ps->out;
	struct slot_given given = {0};
	enum pg_repl_cmd_error e;

	next(ps);
	e = take_name(ps, out->slot);
	if (e != PG_REPL_ERR_NONE)
		return e;
	if (is_kw(ps, PG_REPL_LEX_KW_TEMPORARY)) {
		out->temporary = true;
		next(ps);
	}
	if (is_kw(ps, PG_REPL_LEX_KW_PHYSICAL)) {
		out->repl_kind = PG_REPL_KIND_PHYSICAL;
		next(ps);
	} else if (is_kw(ps, PG_REPL_LEX_KW_LOGICAL)) {
		out->repl_kind = PG_REPL_KIND_LOGICAL;
		next(ps);
		e = take_name(ps, out->plugin);
		if (e != PG_REPL_ERR_NONE)
			return e;
	} else {
		return fail(ps, PG_REPL_ERR_SYNTAX);
	}
	ps->essentials = true;
	if (is_char(ps, '('))
		e = generic_options(ps, &given);
	else
		e = legacy_options(ps, &given);
	if (e != PG_REPL_ERR_NONE)
		return e;
	return expect_end(ps);
}

struct plugin_given {
	bool proto_version, publication_names, streaming, two_phase;
};

/*
 * One option of START_REPLICATION ... LOGICAL, value the string token
 * val or NULL. Names are matched as pgoutput matches them (strcmp); the
 * options of other plugins, and pgoutput's others, pass unchecked.
 */
static enum pg_repl_cmd_error plugin_option(struct pg_repl_cmd *out, struct plugin_given *given,
					    const char *name,
					    const struct pg_repl_lex_token *val)
{
	struct optval v;

	memset(&v, 0, sizeof(v));
	if (val != NULL)
		pg_repl_take_optval(val, &v);
	if (strcmp(name, "proto_version") == 0) {
		if (given->proto_version)
			return PG_REPL_ERR_OPTION;
		given->proto_version = out->proto_version_given = true;
		return pg_repl_proto_version_option(&v, &out->proto_version);
	}
	if (strcmp(name, "publication_names") == 0) {
		if (given->publication_names || val == NULL)
			return PG_REPL_ERR_OPTION;
		given->publication_names = out->publication_names_given = true;
		out->publication_names_truncated =
			!pg_repl_lex_copy_text(val, out->publication_names,
					       sizeof(out->publication_names));
		return PG_REPL_ERR_NONE;
	}
	if (strcmp(name, "streaming") == 0) {
		if (given->streaming)
			return PG_REPL_ERR_OPTION;
		given->streaming = out->streaming_given = true;
		return pg_repl_streaming_option(&v, &out->streaming);
	}
	if (strcmp(name, "two_phase") == 0) {
		if (given->two_phase)
			return PG_REPL_ERR_OPTION;
		given->two_phase = out->two_phase_given = true;
		return pg_repl_bool_option(&v, &out->two_phase);
	}
	return PG_REPL_ERR_NONE;
}

/*
 * A string value running into the cut: a list of publications is what
 * makes a command that long, so keep the part that shows, marked as cut.
 */
static void plugin_value_cut(struct pg_repl_cmd *out, const struct plugin_given *given,
			     const char *name, const struct pg_repl_lex_token *t)
{
	if (t->quote != '\'' || given->publication_names ||
	    strcmp(name, "publication_names") != 0)
		return;
	(void)pg_repl_lex_copy_text(t, out->publication_names,
				    sizeof(out->publication_names));
	out->publication_names_truncated = out->publication_names_given = true;
}

/* ( name ['value'] [, ...] ): names are identifiers, values strings only. */
static enum pg_repl_cmd_error plugin_options(struct parser *ps)
{
	struct plugin_given given = {0};
	char name[PG_REPL_NAME_MAX];
	struct pg_repl_lex_token val;
	enum pg_repl_cmd_error e;

	do {
		next(ps);
		if (ps->tok.type != PG_REPL_LEX_IDENT)
			return fail(ps, PG_REPL_ERR_SYNTAX);
		(void)pg_repl_lex_copy_text(&ps->tok, name, sizeof(name));
		next(ps);
		if (ps->tok.type == PG_REPL_LEX_CUT) {
			plugin_value_cut(ps->out, &given, name, &ps->tok);
			return PG_REPL_ERR_TOO_LONG;
		}
		val = ps->tok;
		if (val.type == PG_REPL_LEX_STRING)
			next(ps);
		e = option_separator(ps);
		if (e == PG_REPL_ERR_NONE)
			e = plugin_option(ps->out, &given, name,
					  val.type == PG_REPL_LEX_STRING ? &val : NULL);
		if (e != PG_REPL_ERR_NONE)
			return e;
	} while (is_char(ps, ','));
	next(ps);
	return PG_REPL_ERR_NONE;
}

/* START_REPLICATION SLOT slot LOGICAL X/X [( options )], after LOGICAL. */
static enum pg_repl_cmd_error parse_start_logical(struct parser *ps)
{
	enum pg_repl_cmd_error e;

	ps->out->repl_kind = PG_REPL_KIND_LOGICAL;
	next(ps);
	e = take_lsn(ps, &ps->out->start_lsn);
	if (e != PG_REPL_ERR_NONE)
		return e;
	ps->essentials = true;
	if (is_char(ps, '(')) {
		e = plugin_options(ps);
		if (e != PG_REPL_ERR_NONE)
			return e;
	}
	return expect_end(ps);
}

/* START_REPLICATION [SLOT slot] [PHYSICAL] X/X [TIMELINE n], or the logical form. */
static enum pg_repl_cmd_error parse_start(struct parser *ps)
{
	struct pg_repl_cmd *out = ps->out;
	enum pg_repl_cmd_error e;

	next(ps);
	if (is_kw(ps, PG_REPL_LEX_KW_SLOT)) {
		next(ps);
		e = take_name(ps, out->slot);
		if (e != PG_REPL_ERR_NONE)
			return e;
		if (is_kw(ps, PG_REPL_LEX_KW_LOGICAL))
			return parse_start_logical(ps);
	}
	out->repl_kind = PG_REPL_KIND_PHYSICAL;
	if (is_kw(ps, PG_REPL_LEX_KW_PHYSICAL))
		next(ps);
	e = take_lsn(ps, &out->start_lsn);
	if (e != PG_REPL_ERR_NONE)
		return e;
	ps->essentials = true;
	if (is_kw(ps, PG_REPL_LEX_KW_TIMELINE)) {
		next(ps);
		e = take_timeline(ps, &out->timeline);
		if (e != PG_REPL_ERR_NONE)
			return e;
	}
	return expect_end(ps);
}

/* DROP_REPLICATION_SLOT slot [WAIT] and READ_REPLICATION_SLOT slot. */
static enum pg_repl_cmd_error parse_slot_command(struct parser *ps, bool allow_wait)
{
	enum pg_repl_cmd_error e;

	next(ps);
	e = take_name(ps, ps->out->slot);
	if (e != PG_REPL_ERR_NONE)
		return e;
	ps->essentials = true;
	if (allow_wait && is_kw(ps, PG_REPL_LEX_KW_WAIT)) {
		ps->out->wait = true;
		next(ps);
	}
	return expect_end(ps);
}

/* TIMELINE_HISTORY n */
static enum pg_repl_cmd_error parse_timeline_history(struct parser *ps)
{
	enum pg_repl_cmd_error e;

	next(ps);
	e = take_timeline(ps, &ps->out->timeline);
	if (e != PG_REPL_ERR_NONE)
		return e;
	ps->essentials = true;
	return expect_end(ps);
}

static enum pg_repl_cmd_error parse_command(struct parser *ps)
{
	switch (ps->out->kind) {
	case PG_REPL_CMD_IDENTIFY_SYSTEM:
		ps->essentials = true;
		next(ps);
		return expect_end(ps);
	case PG_REPL_CMD_CREATE_SLOT:
		return parse_create_slot(ps);
	case PG_REPL_CMD_START_REPLICATION:
		return parse_start(ps);
	case PG_REPL_CMD_DROP_SLOT:
		return parse_slot_command(ps, true);
	case PG_REPL_CMD_READ_SLOT:
		return parse_slot_command(ps, false);
	case PG_REPL_CMD_TIMELINE_HISTORY:
		return parse_timeline_history(ps);
	case PG_REPL_CMD_OTHER:
	case PG_REPL_CMD_NONE:
		break;
	}
	/* counted, not followed: no need to check the rest */
	return PG_REPL_ERR_NONE;
}

/*
 * replication_scanner_is_replication_command(): the first token decides
 * between the replication grammar and SQL.
 */
static enum pg_repl_cmd_kind command_kind(const struct pg_repl_lex_token *t)
{
	if (t->type != PG_REPL_LEX_KEYWORD)
		return PG_REPL_CMD_NONE;
	switch (t->kw) {
	case PG_REPL_LEX_KW_IDENTIFY_SYSTEM:
		return PG_REPL_CMD_IDENTIFY_SYSTEM;
	case PG_REPL_LEX_KW_CREATE_REPLICATION_SLOT:
		return PG_REPL_CMD_CREATE_SLOT;
	case PG_REPL_LEX_KW_START_REPLICATION:
		return PG_REPL_CMD_START_REPLICATION;
	case PG_REPL_LEX_KW_DROP_REPLICATION_SLOT:
		return PG_REPL_CMD_DROP_SLOT;
	case PG_REPL_LEX_KW_READ_REPLICATION_SLOT:
		return PG_REPL_CMD_READ_SLOT;
	case PG_REPL_LEX_KW_TIMELINE_HISTORY:
		return PG_REPL_CMD_TIMELINE_HISTORY;
	case PG_REPL_LEX_KW_BASE_BACKUP:
	case PG_REPL_LEX_KW_SHOW:
	case PG_REPL_LEX_KW_ALTER_REPLICATION_SLOT:
	case PG_REPL_LEX_KW_UPLOAD_MANIFEST:
		return PG_REPL_CMD_OTHER;
	default:
		return PG_REPL_CMD_NONE;
	}
}

/*
 * The text of the Query: the server insists on one string ending at the
 * payload's last byte (pq_getmsgstring, then pq_getmsgend). Past the view
 * that cannot be checked, and the text is cut there instead.
 */
static bool query_text(const uint8_t *buf, size_t len, struct pg_repl_lex *lx)
{
	size_t view = len < PG_REPL_CMD_SCAN_MAX ? len : PG_REPL_CMD_SCAN_MAX;
	const uint8_t *nul = view > 0 ? memchr(buf, '\0', view) : NULL;

	lx->s = (const char *)buf;
	if (nul != NULL) {
		lx->n = (size_t)(nul - buf);
		return lx->n == len - 1;
	}
	lx->n = view;
	if (len <= PG_REPL_CMD_SCAN_MAX)
		return false;
	lx->cut = true;
	return true;
}

static enum pg_repl_cmd_verdict malformed(struct pg_repl_cmd *out, enum pg_repl_cmd_error e)
{
	out->error = e;
	return PG_REPL_CMD_MALFORMED;
}

enum pg_repl_cmd_verdict pg_repl_cmd_parse(const uint8_t *buf, size_t len,
					   struct pg_repl_cmd *out)
{
	struct parser ps;
	enum pg_repl_cmd_error e;

	memset(out, 0, sizeof(*out));
	memset(&ps, 0, sizeof(ps));
	ps.out = out;
	if (!query_text(buf, len, &ps.lx))
		return malformed(out, PG_REPL_ERR_MESSAGE);
	next(&ps);
	out->kind = command_kind(&ps.tok);
	if (out->kind == PG_REPL_CMD_NONE) {
		/* the server's first look fails on these too, before any SQL */
		if (ps.tok.type == PG_REPL_LEX_CUT)
			return malformed(out, PG_REPL_ERR_TOO_LONG);
		if (ps.tok.type == PG_REPL_LEX_UNTERMINATED)
			return malformed(out, PG_REPL_ERR_UNTERMINATED);
		return PG_REPL_CMD_NOT_REPLICATION;
	}
	out->cut = ps.lx.cut;
	e = parse_command(&ps);
	if (e == PG_REPL_ERR_NONE)
		return PG_REPL_CMD_OK;
	if (e == PG_REPL_ERR_TOO_LONG && ps.essentials)
		return PG_REPL_CMD_OK;
	return malformed(out, e);
}
