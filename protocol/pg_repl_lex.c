/*
 * pg_repl_lex.c - split the text of a walsender replication command into
 * tokens as the server's lexer does, and give a token's value as text.
 *
 * It copies repl_scanner.l: longest match; keywords exact and upper case;
 * identifiers folded or unquoted; 'strings'; X/X LSNs; numbers. Values
 * too wide for the server's uint32 are flagged rather than wrapped.
 *
 * The text may be cut (see pg_repl_cmd.c): a token that looks at the byte
 * where the reading stops might go on beyond it, so it is never trusted.
 */
#include "pg_repl_lex.h"

#include <string.h>

/*
 * repl_scanner.l of PostgreSQL 17. Its patterns are plain upper-case
 * strings and flex runs without -i, so "Identify_System" is an identifier
 * and the walsender hands the whole text to the SQL parser.
 */
static const struct {
	const char *word;
	enum pg_repl_lex_kw kw;
} keywords[] = {
	{"ALTER_REPLICATION_SLOT", PG_REPL_LEX_KW_ALTER_REPLICATION_SLOT},
	{"BASE_BACKUP", PG_REPL_LEX_KW_BASE_BACKUP},
	{"CREATE_REPLICATION_SLOT", PG_REPL_LEX_KW_CREATE_REPLICATION_SLOT},
	{"DROP_REPLICATION_SLOT", PG_REPL_LEX_KW_DROP_REPLICATION_SLOT},
	{"EXPORT_SNAPSHOT", PG_REPL_LEX_KW_EXPORT_SNAPSHOT},
	{"IDENTIFY_SYSTEM", PG_REPL_LEX_KW_IDENTIFY_SYSTEM},
	{"LOGICAL", PG_REPL_LEX_KW_LOGICAL},
	{"NOEXPORT_SNAPSHOT", PG_REPL_LEX_KW_NOEXPORT_SNAPSHOT},
	{"PHYSICAL", PG_REPL_LEX_KW_PHYSICAL},
	{"READ_REPLICATION_SLOT", PG_REPL_LEX_KW_READ_REPLICATION_SLOT},
	{"RESERVE_WAL", PG_REPL_LEX_KW_RESERVE_WAL},
	{"SHOW", PG_REPL_LEX_KW_SHOW},
	{"SLOT", PG_REPL_LEX_KW_SLOT},
	{"START_REPLICATION", PG_REPL_LEX_KW_START_REPLICATION},
	{"TEMPORARY", PG_REPL_LEX_KW_TEMPORARY},
	{"TIMELINE", PG_REPL_LEX_KW_TIMELINE},
	{"TIMELINE_HISTORY", PG_REPL_LEX_KW_TIMELINE_HISTORY},
	{"TWO_PHASE", PG_REPL_LEX_KW_TWO_PHASE},
	{"UPLOAD_MANIFEST", PG_REPL_LEX_KW_UPLOAD_MANIFEST},
	{"USE_SNAPSHOT", PG_REPL_LEX_KW_USE_SNAPSHOT},
	{"WAIT", PG_REPL_LEX_KW_WAIT},
};

/* The byte at i, or -1 past the text; a look past a cut taints the token. */
static int peek(struct pg_repl_lex *lx, size_t i)
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

static size_t run(struct pg_repl_lex *lx, size_t from, bool (*in_class)(int))
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
static size_t lsn_len(struct pg_repl_lex *lx, size_t pos)
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

static void lex_lsn(struct pg_repl_lex_token *t, const char *p, size_t len)
{
	const char *slash = memchr(p, '/', len);
	size_t hi_len = (size_t)(slash - p);
	uint32_t hi = hex_half(p, hi_len, &t->big);
	uint32_t lo = hex_half(slash + 1, len - hi_len - 1, &t->big);

	t->type = PG_REPL_LEX_LSN;
	t->value = (uint64_t)hi << 32 | lo;
}

/* strtoul() into a uint32 of the server would wrap as well. */
static void lex_uint(struct pg_repl_lex_token *t)
{
	size_t i;

	t->type = PG_REPL_LEX_UINT;
	for (i = 0; i < t->len; i++) {
		t->value = t->value * 10 + (uint64_t)(t->p[i] - '0');
		if (t->value > UINT32_MAX) {
			t->big = true;
			t->value = 0;
			return;
		}
	}
}

static void lex_word(struct pg_repl_lex_token *t)
{
	size_t i;

	t->type = PG_REPL_LEX_IDENT;
	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		if (strlen(keywords[i].word) == t->len &&
		    memcmp(keywords[i].word, t->p, t->len) == 0) {
			t->type = PG_REPL_LEX_KEYWORD;
			t->kw = keywords[i].kw;
			return;
		}
	}
}

/*
 * A "identifier" or 'string' from its opening quote: a doubled quote is
 * part of it, a single one closes it. Returns the position after it.
 */
static size_t lex_quoted(struct pg_repl_lex *lx, struct pg_repl_lex_token *t, char quote)
{
	size_t i = lx->pos + 1;
	int c;

	t->quote = quote;
	t->p = lx->s + i;
	for (;;) {
		c = peek(lx, i);
		if (c < 0) {
			t->type = PG_REPL_LEX_UNTERMINATED;
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
	t->type = quote == '"' ? PG_REPL_LEX_IDENT : PG_REPL_LEX_STRING;
	t->len = i - (lx->pos + 1);
	return i + 1;
}

/* The token at lx->pos, as the longest match of repl_scanner.l picks it. */
static void lex_token(struct pg_repl_lex *lx, struct pg_repl_lex_token *t)
{
	size_t pos = lx->pos;
	int c = peek(lx, pos);
	size_t n;

	t->p = lx->s + pos;
	if (c < 0) {
		t->type = PG_REPL_LEX_END;
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
		t->type = PG_REPL_LEX_CHAR;
		t->len = n = 1;
	}
	lx->pos = pos + n;
}

void pg_repl_lex_next(struct pg_repl_lex *lx, struct pg_repl_lex_token *t)
{

	memset(t, 0, sizeof(*t));
	lx->pos += run(lx, lx->pos, is_space);
	lx->hit = false;
	lex_token(lx, t);
	/* it might have gone on past the cut: keep the text, drop the meaning */
	if (lx->cut && lx->hit)
		t->type = PG_REPL_LEX_CUT;
}

bool pg_repl_lex_copy_text(const struct pg_repl_lex_token *t, char *dst, size_t size)
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
