/*
 * pg_repl_cmd.c - read a walsender replication command as the server
 * does, keeping the slot, kind, LSN and pgoutput options walgate follows.
 *
 * The lexer copies repl_scanner.l (longest match; keywords exact and upper
 * case; identifiers folded or unquoted; 'strings'; X/X LSNs) and the
 * parser follows repl_gram.y by recursive descent. The option checks the
 * server makes after parsing (parseCreateReplSlotOptions() in walsender.c,
 * parse_output_parameters() in pgoutput.c) are made for the options walgate
 * reports, so that an OK command is one the server reads with the same
 * values. Options walgate does not report are left to the server: their
 * set grows with each release.
 *
 * The text may be cut at PG_REPL_CMD_SCAN_MAX. A token that touches the
 * cut might go on beyond it, so it is never trusted: parsing stops there,
 * and the command is still OK when what walgate relies on (slot, kind,
 * LSN) came before the cut.
 */
#include "pg_repl_cmd.h"

#include <string.h>

enum keyword {
	KW_NONE = 0,
	KW_ALTER_REPLICATION_SLOT,
	KW_BASE_BACKUP,
	KW_CREATE_REPLICATION_SLOT,
	KW_DROP_REPLICATION_SLOT,
	KW_EXPORT_SNAPSHOT,
	KW_IDENTIFY_SYSTEM,
	KW_LOGICAL,
	KW_NOEXPORT_SNAPSHOT,
	KW_PHYSICAL,
	KW_READ_REPLICATION_SLOT,
	KW_RESERVE_WAL,
	KW_SHOW,
	KW_SLOT,
	KW_START_REPLICATION,
	KW_TEMPORARY,
	KW_TIMELINE,
	KW_TIMELINE_HISTORY,
	KW_TWO_PHASE,
	KW_UPLOAD_MANIFEST,
	KW_USE_SNAPSHOT,
	KW_WAIT,
};

/*
 * repl_scanner.l of PostgreSQL 17. Its patterns are plain upper-case
 * strings and flex runs without -i, so "Identify_System" is an identifier
 * and the walsender hands the whole text to the SQL parser.
 */
static const struct {
	const char *word;
	enum keyword kw;
} keywords[] = {
	{"ALTER_REPLICATION_SLOT", KW_ALTER_REPLICATION_SLOT},
	{"BASE_BACKUP", KW_BASE_BACKUP},
	{"CREATE_REPLICATION_SLOT", KW_CREATE_REPLICATION_SLOT},
	{"DROP_REPLICATION_SLOT", KW_DROP_REPLICATION_SLOT},
	{"EXPORT_SNAPSHOT", KW_EXPORT_SNAPSHOT},
	{"IDENTIFY_SYSTEM", KW_IDENTIFY_SYSTEM},
	{"LOGICAL", KW_LOGICAL},
	{"NOEXPORT_SNAPSHOT", KW_NOEXPORT_SNAPSHOT},
	{"PHYSICAL", KW_PHYSICAL},
	{"READ_REPLICATION_SLOT", KW_READ_REPLICATION_SLOT},
	{"RESERVE_WAL", KW_RESERVE_WAL},
	{"SHOW", KW_SHOW},
	{"SLOT", KW_SLOT},
	{"START_REPLICATION", KW_START_REPLICATION},
	{"TEMPORARY", KW_TEMPORARY},
	{"TIMELINE", KW_TIMELINE},
	{"TIMELINE_HISTORY", KW_TIMELINE_HISTORY},
	{"TWO_PHASE", KW_TWO_PHASE},
	{"UPLOAD_MANIFEST", KW_UPLOAD_MANIFEST},
	{"USE_SNAPSHOT", KW_USE_SNAPSHOT},
	{"WAIT", KW_WAIT},
};

enum tok_type {
	TOK_END = 0,		/* end of the command text */
	TOK_CUT,		/* a token, or the end, hidden in part by the cut */
	TOK_UNTERMINATED,	/* a quote never closed */
	TOK_KEYWORD,
	TOK_IDENT,
	TOK_STRING,
	TOK_UINT,
	TOK_LSN,
	TOK_CHAR,		/* any other single byte: ( ) , ; . ... */
};

struct token {
	enum tok_type type;
	enum keyword kw;	/* TOK_KEYWORD */
	const char *p;		/* its text, inside the quotes if quoted */
	size_t len;
	char quote;		/* '"' or '\'' when quoted: doubled quotes to undo */
	bool big;		/* TOK_UINT over 32 bits, TOK_LSN with a half over 32 bits */
	uint64_t value;		/* TOK_UINT, TOK_LSN */
};

struct lexer {
	const char *s;
	size_t n;		/* bytes of text: s[0..n) */
	size_t pos;
	bool cut;		/* s[n] is where the reading stops, not the command */
	bool hit;		/* the token being lexed looked at s[n] */
};

struct parser {
	struct lexer lx;
	struct token tok;	/* the current token */
	struct pg_repl_cmd *out;
	bool essentials;	/* out has slot, kind, LSN: a cut from here on is tolerable */
};

/* The byte at i, or -1 past the text; a look past a cut taints the token. */
static int peek(struct lexer *lx, size_t i)
{
	if (i < lx->n)
		return (unsigned char)lx->s[i];
	lx->hit = true;
	return -1;
}

static bool is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* [A-Za-z\200-\377_]: bytes of multibyte characters start identifiers too */
static bool is_ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_ident_cont(int c)
{
	return is_ident_start(c) || is_digit(c) || c == '$';
}

static size_t run(struct lexer *lx, size_t from, bool (*in_class)(int))
{
	size_t i = from;

	while (in_class(peek(lx, i)))
		i++;
	return i - from;
}

/*
 * Length of {hexdigit}+/{hexdigit}+ at pos, 0 if none. Where it matches it
 * is the longest match, since neither a number nor an identifier can take
 * the '/', so the server lexes it as an LSN.
 */
static size_t lsn_len(struct lexer *lx, size_t pos)
{
	size_t hi = run(lx, pos, is_hex);
	size_t lo;

	if (hi == 0 || peek(lx, pos + hi) != '/')
		return 0;
	lo = run(lx, pos + hi + 1, is_hex);
	return lo == 0 ? 0 : hi + 1 + lo;
}

/* sscanf("%X") of the server would silently wrap: a wider half is refused. */
static uint32_t hex_half(const char *p, size_t len, bool *big)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		int c = (unsigned char)p[i];

		v = v * 16 + (uint64_t)(is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
		if (v > UINT32_MAX) {
			*big = true;
			return 0;
		}
	}
	return (uint32_t)v;
}

static void lex_lsn(struct token *t, const char *p, size_t len)
{
	const char *slash = memchr(p, '/', len);
	size_t hi_len = (size_t)(slash - p);
	uint32_t hi = hex_half(p, hi_len, &t->big);
	uint32_t lo = hex_half(slash + 1, len - hi_len - 1, &t->big);

	t->type = TOK_LSN;
	t->value = (uint64_t)hi << 32 | lo;
}

/* strtoul() into a uint32 of the server would wrap as well. */
static void lex_uint(struct token *t)
{
	size_t i;

	t->type = TOK_UINT;
	for (i = 0; i < t->len; i++) {
		t->value = t->value * 10 + (uint64_t)(t->p[i] - '0');
		if (t->value > UINT32_MAX) {
			t->big = true;
			t->value = 0;
			return;
		}
	}
}

static void lex_word(struct token *t)
{
	size_t i;

	t->type = TOK_IDENT;
	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		if (strlen(keywords[i].word) == t->len &&
		    memcmp(keywords[i].word, t->p, t->len) == 0) {
			t->type = TOK_KEYWORD;
			t->kw = keywords[i].kw;
			return;
		}
	}
}

/*
 * A "identifier" or 'string' from its opening quote: a doubled quote is
 * part of it, a single one closes it. Returns the position after it.
 */
static size_t lex_quoted(struct lexer *lx, struct token *t, char quote)
{
	size_t i = lx->pos + 1;
	int c;

	t->quote = quote;
	t->p = lx->s + i;
	for (;;) {
		c = peek(lx, i);
		if (c < 0) {
			t->type = TOK_UNTERMINATED;
			t->len = i - (lx->pos + 1);
			return i;
		}
		if (c == quote) {
			if (peek(lx, i + 1) != quote)
				break;
			i++;
		}
		i++;
	}
	t->type = quote == '"' ? TOK_IDENT : TOK_STRING;
	t->len = i - (lx->pos + 1);
	return i + 1;
}

/* The token at lx->pos, as the longest match of repl_scanner.l picks it. */
static void lex_token(struct lexer *lx, struct token *t)
{
	size_t pos = lx->pos;
	int c = peek(lx, pos);
	size_t n;

	t->p = lx->s + pos;
	if (c < 0) {
		t->type = TOK_END;
		return;
	}
	n = lsn_len(lx, pos);
	if (n > 0) {
		t->len = n;
		lex_lsn(t, t->p, n);
	} else if (is_ident_start(c)) {
		t->len = n = run(lx, pos, is_ident_cont);
		lex_word(t);
	} else if (is_digit(c)) {
		t->len = n = run(lx, pos, is_digit);
		lex_uint(t);
	} else if (c == '\'' || c == '"') {
		n = lex_quoted(lx, t, (char)c) - pos;
	} else {
		t->type = TOK_CHAR;
		t->len = n = 1;
	}
	lx->pos = pos + n;
}

static void next(struct parser *ps)
{
	struct lexer *lx = &ps->lx;
	struct token *t = &ps->tok;

	memset(t, 0, sizeof(*t));
	lx->pos += run(lx, lx->pos, is_space);
	lx->hit = false;
	lex_token(lx, t);
	/* it might have gone on past the cut: keep the text, drop the meaning */
	if (lx->cut && lx->hit)
		t->type = TOK_CUT;
}

/*
 * Why the parse stops at the current token: e, unless the token is not
 * really known, because of the cut or an unclosed quote.
 */
static enum pg_repl_cmd_error fail(const struct parser *ps, enum pg_repl_cmd_error e)
{
	if (ps->tok.type == TOK_CUT)
		return PG_REPL_ERR_TOO_LONG;
	if (ps->tok.type == TOK_UNTERMINATED)
		return PG_REPL_ERR_UNTERMINATED;
	return e;
}

static bool is_kw(const struct parser *ps, enum keyword kw)
{
	return ps->tok.type == TOK_KEYWORD && ps->tok.kw == kw;
}

static bool is_char(const struct parser *ps, char c)
{
	return ps->tok.type == TOK_CHAR && ps->tok.p[0] == c;
}

/*
 * The value of a word, identifier or string into dst[size]: unquoted
 * words folded to lower case as downcase_truncate_identifier() does
 * (ASCII only), doubled quotes of quoted ones undone. Returns false when
 * it did not fit; dst then holds what did.
 */
static bool copy_text(const struct token *t, char *dst, size_t size)
{
	size_t i, o = 0;
	char c;

	for (i = 0; i < t->len; i++) {
		c = t->p[i];
		if (t->quote != 0 && c == t->quote)
			i++;	/* the first of a doubled pair stands for one */
		else if (t->quote == 0 && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (o + 1 >= size) {
			dst[o] = '\0';
			return false;
		}
		dst[o++] = c;
	}
	dst[o] = '\0';
	return true;
}

/*
 * A slot or plugin name. The server would cut a longer one to 63 bytes
 * with a NOTICE; walgate refuses to guess which slot the client meant.
 */
static enum pg_repl_cmd_error take_name(struct parser *ps, char *dst)
{
	if (ps->tok.type != TOK_IDENT)
		return fail(ps, PG_REPL_ERR_SYNTAX);
	if (!copy_text(&ps->tok, dst, PG_REPL_NAME_MAX) || dst[0] == '\0')
		return PG_REPL_ERR_NAME;
	next(ps);
	return PG_REPL_ERR_NONE;
}

static enum pg_repl_cmd_error take_lsn(struct parser *ps, uint64_t *lsn)
{
	if (ps->tok.type != TOK_LSN || ps->tok.big)
		return fail(ps, PG_REPL_ERR_LSN);
	*lsn = ps->tok.value;
	next(ps);
	return PG_REPL_ERR_NONE;
}

/* The grammar refuses timeline 0 ("invalid timeline"). */
static enum pg_repl_cmd_error take_timeline(struct parser *ps, uint32_t *tli)
{
	if (ps->tok.type != TOK_UINT)
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
	if (ps->tok.type != TOK_END)
		return fail(ps, PG_REPL_ERR_SYNTAX);
	return PG_REPL_ERR_NONE;
}

/* An option's argument, as defGetString() and defGetBoolean() see it. */
struct optval {
	bool given;
	bool integer;		/* an unquoted number: an Integer node */
	uint64_t number;
	bool fits;		/* text holds all of it */
	char text[32];
};

static void take_optval(const struct token *t, struct optval *v)
{
	memset(v, 0, sizeof(*v));
	v->given = true;
	if (t->type == TOK_UINT) {
		v->integer = true;
		v->number = t->big ? UINT64_MAX : t->value;
		return;
	}
	v->fits = copy_text(t, v->text, sizeof(v->text));
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
static enum pg_repl_cmd_error bool_option(const struct optval *v, bool *result)
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
static enum pg_repl_cmd_error snapshot_option(const struct optval *v,
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
		return snapshot_option(v, &out->snapshot);
	}
	if (strcmp(name, "reserve_wal") == 0) {
		if (given->reserve_wal || logical)
			return PG_REPL_ERR_OPTION;
		given->reserve_wal = true;
		return bool_option(v, &out->reserve_wal);
	}
	if (strcmp(name, "two_phase") == 0) {
		if (given->two_phase || !logical)
			return PG_REPL_ERR_OPTION;
		given->two_phase = true;
		return bool_option(v, &out->two_phase);
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
		if (ps->tok.type != TOK_IDENT && ps->tok.type != TOK_KEYWORD)
			return fail(ps, PG_REPL_ERR_SYNTAX);
		/* a name too long to fit is no option walgate knows */
		(void)copy_text(&ps->tok, name, sizeof(name));
		next(ps);
		memset(&v, 0, sizeof(v));
		if (ps->tok.type == TOK_IDENT || ps->tok.type == TOK_STRING ||
		    ps->tok.type == TOK_UINT) {
			take_optval(&ps->tok, &v);
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

	while (ps->tok.type == TOK_KEYWORD) {
		memset(&v, 0, sizeof(v));
		name = "snapshot";
		switch (ps->tok.kw) {
		case KW_EXPORT_SNAPSHOT:
			legacy_value(&v, "export");
			break;
		case KW_NOEXPORT_SNAPSHOT:
			legacy_value(&v, "nothing");
			break;
		case KW_USE_SNAPSHOT:
			legacy_value(&v, "use");
			break;
		case KW_RESERVE_WAL:
			name = "reserve_wal";
			break;
		case KW_TWO_PHASE:
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
	if (is_kw(ps, KW_TEMPORARY)) {
		out->temporary = true;
		next(ps);
	}
	if (is_kw(ps, KW_PHYSICAL)) {
		out->repl_kind = PG_REPL_KIND_PHYSICAL;
		next(ps);
	} else if (is_kw(ps, KW_LOGICAL)) {
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

/*
 * pgoutput's proto_version: strtoul() of the whole string, then at most
 * PG_INT32_MAX and at least LOGICALREP_PROTO_MIN_VERSION_NUM (1). Only
 * plain digits are taken: a client writing ' +1' is not worth following.
 */
static enum pg_repl_cmd_error proto_version_option(const struct optval *v, int *result)
{
	uint64_t n = 0;
	size_t i;

	if (!v->given || !v->fits || v->text[0] == '\0')
		return PG_REPL_ERR_OPTION;
	for (i = 0; v->text[i] != '\0'; i++) {
		if (!is_digit((unsigned char)v->text[i]))
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
static enum pg_repl_cmd_error streaming_option(const struct optval *v,
					       enum pg_repl_streaming *result)
{
	bool on;

	if (v->given && v->fits && equal_nocase(v->text, "parallel")) {
		*result = PG_REPL_STREAMING_PARALLEL;
		return PG_REPL_ERR_NONE;
	}
	if (bool_option(v, &on) != PG_REPL_ERR_NONE)
		return PG_REPL_ERR_OPTION;
	*result = on ? PG_REPL_STREAMING_ON : PG_REPL_STREAMING_OFF;
	return PG_REPL_ERR_NONE;
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
					    const char *name, const struct token *val)
{
	struct optval v;

	memset(&v, 0, sizeof(v));
	if (val != NULL)
		take_optval(val, &v);
	if (strcmp(name, "proto_version") == 0) {
		if (given->proto_version)
			return PG_REPL_ERR_OPTION;
		given->proto_version = true;
		return proto_version_option(&v, &out->proto_version);
	}
	if (strcmp(name, "publication_names") == 0) {
		if (given->publication_names || val == NULL)
			return PG_REPL_ERR_OPTION;
		given->publication_names = true;
		out->publication_names_truncated =
			!copy_text(val, out->publication_names, sizeof(out->publication_names));
		return PG_REPL_ERR_NONE;
	}
	if (strcmp(name, "streaming") == 0) {
		if (given->streaming)
			return PG_REPL_ERR_OPTION;
		given->streaming = true;
		return streaming_option(&v, &out->streaming);
	}
	if (strcmp(name, "two_phase") == 0) {
		if (given->two_phase)
			return PG_REPL_ERR_OPTION;
		given->two_phase = true;
		return bool_option(&v, &out->two_phase);
	}
	return PG_REPL_ERR_NONE;
}

/*
 * A string value running into the cut: a list of publications is what
 * makes a command that long, so keep the part that shows, marked as cut.
 */
static void plugin_value_cut(struct pg_repl_cmd *out, const struct plugin_given *given,
			     const char *name, const struct token *t)
{
	if (t->quote != '\'' || given->publication_names ||
	    strcmp(name, "publication_names") != 0)
		return;
	(void)copy_text(t, out->publication_names, sizeof(out->publication_names));
	out->publication_names_truncated = true;
}

/* ( name ['value'] [, ...] ): names are identifiers, values strings only. */
static enum pg_repl_cmd_error plugin_options(struct parser *ps)
{
	struct plugin_given given = {0};
	char name[PG_REPL_NAME_MAX];
	struct token val;
	enum pg_repl_cmd_error e;

	do {
		next(ps);
		if (ps->tok.type != TOK_IDENT)
			return fail(ps, PG_REPL_ERR_SYNTAX);
		(void)copy_text(&ps->tok, name, sizeof(name));
		next(ps);
		if (ps->tok.type == TOK_CUT) {
			plugin_value_cut(ps->out, &given, name, &ps->tok);
			return PG_REPL_ERR_TOO_LONG;
		}
		val = ps->tok;
		if (val.type == TOK_STRING)
			next(ps);
		e = option_separator(ps);
		if (e == PG_REPL_ERR_NONE)
			e = plugin_option(ps->out, &given, name,
					  val.type == TOK_STRING ? &val : NULL);
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
	if (is_kw(ps, KW_SLOT)) {
		next(ps);
		e = take_name(ps, out->slot);
		if (e != PG_REPL_ERR_NONE)
			return e;
		if (is_kw(ps, KW_LOGICAL))
			return parse_start_logical(ps);
	}
	out->repl_kind = PG_REPL_KIND_PHYSICAL;
	if (is_kw(ps, KW_PHYSICAL))
		next(ps);
	e = take_lsn(ps, &out->start_lsn);
	if (e != PG_REPL_ERR_NONE)
		return e;
	ps->essentials = true;
	if (is_kw(ps, KW_TIMELINE)) {
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
	if (allow_wait && is_kw(ps, KW_WAIT)) {
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
static enum pg_repl_cmd_kind command_kind(const struct token *t)
{
	if (t->type != TOK_KEYWORD)
		return PG_REPL_CMD_NONE;
	switch (t->kw) {
	case KW_IDENTIFY_SYSTEM:
		return PG_REPL_CMD_IDENTIFY_SYSTEM;
	case KW_CREATE_REPLICATION_SLOT:
		return PG_REPL_CMD_CREATE_SLOT;
	case KW_START_REPLICATION:
		return PG_REPL_CMD_START_REPLICATION;
	case KW_DROP_REPLICATION_SLOT:
		return PG_REPL_CMD_DROP_SLOT;
	case KW_READ_REPLICATION_SLOT:
		return PG_REPL_CMD_READ_SLOT;
	case KW_TIMELINE_HISTORY:
		return PG_REPL_CMD_TIMELINE_HISTORY;
	case KW_BASE_BACKUP:
	case KW_SHOW:
	case KW_ALTER_REPLICATION_SLOT:
	case KW_UPLOAD_MANIFEST:
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
static bool query_text(const uint8_t *buf, size_t len, struct lexer *lx)
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
		if (ps.tok.type == TOK_CUT)
			return malformed(out, PG_REPL_ERR_TOO_LONG);
		if (ps.tok.type == TOK_UNTERMINATED)
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
