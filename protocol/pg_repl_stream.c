/*
 * pg_repl_stream.c - decode the pgoutput messages inside XLogData, from a
 * bounded prefix of each (the CopyData framing around them is
 * pg_repl_copydata.c's).
 *
 * The scanner keeps at most PG_SCAN_PREFIX_MAX bytes of a payload, so a
 * decoder sees a prefix and is told the real length. Two rules follow.
 * Lengths are judged against the real length: a message shorter than its
 * layout is TOO_SHORT, a fixed-size one that is longer is BAD_LENGTH. And
 * bytes are read only inside the prefix: the fixed header walgate decodes
 * must be in it (it always is with the scanner's 64 bytes: the longest,
 * a Rollback Prepared, is 38), while what follows the header (strings) is
 * walked as far as the prefix goes and taken on trust beyond it. Tuple data
 * is never walked: a change is counted by its tag, relation and marker.
 */
#include "pg_repl_stream.h"
#include "pg_wire.h"

#include <string.h>

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/*
 * A walk over the variable part of a pgoutput message of len bytes, of
 * which the first have are in view. Going past len is TOO_SHORT; going
 * past have makes the walk blind: it stops, and the rest is trusted.
 */
struct walk {
	const uint8_t *p;
	size_t have;
	size_t len;
	size_t off;
	bool blind;
	uint32_t nrels;		/* Truncate's, from its header */
};

/* Run one step; stop the walk on a verdict, or once it is blind. */
#define WALK_STEP(w, step)					\
	do {							\
		enum pg_repl_verdict v_ = (step);		\
		if (v_ != PG_REPL_OK || (w)->blind)		\
			return v_;				\
	} while (0)

/* Step over n bytes without looking at them. */
static enum pg_repl_verdict walk_skip(struct walk *w, uint64_t n)
{
	if (n > w->len - w->off)
		return PG_REPL_TOO_SHORT;
	w->off += (size_t)n;
	if (w->off > w->have)
		w->blind = true;
	return PG_REPL_OK;
}

/* n bytes to read at *at, or blind if they are not all in view. */
static enum pg_repl_verdict walk_take(struct walk *w, size_t n, const uint8_t **at)
{
	if (n > w->len - w->off)
		return PG_REPL_TOO_SHORT;
	if (n > w->have - w->off) {
		w->blind = true;
		return PG_REPL_OK;
	}
	*at = w->p + w->off;
	w->off += n;
	return PG_REPL_OK;
}

/* A NUL-terminated String: it must end before the message does. */
static enum pg_repl_verdict walk_string(struct walk *w)
{
	const uint8_t *nul = memchr(w->p + w->off, '\0', w->have - w->off);

	if (nul == NULL) {
		if (w->have == w->len)
			return PG_REPL_TOO_SHORT;
		w->blind = true;
		return PG_REPL_OK;
	}
	w->off = (size_t)(nul - w->p) + 1;
	return PG_REPL_OK;
}

/* One marker byte, which must be a or b. */
static enum pg_repl_verdict walk_marker(struct walk *w, uint8_t a, uint8_t b)
{
	const uint8_t *at = NULL;

	WALK_STEP(w, walk_take(w, 1, &at));
	return *at == a || *at == b ? PG_REPL_OK : PG_REPL_MALFORMED;
}

/*
 * Insert, Update, Delete: Int32 relation, then a marker ('N' new tuple; 'K'
 * old key, 'O' old tuple) and the tuples. Only the relation and the first
 * marker are checked: the tuples are the payload walgate relays, and
 * tracking never walks them.
 */
static enum pg_repl_verdict trust_the_tuples(struct walk *w, enum pg_repl_verdict v)
{
	if (v == PG_REPL_OK)
		w->blind = true;	/* the rest, however long, is taken on trust */
	return v;
}

static enum pg_repl_verdict walk_insert(struct walk *w)
{
	WALK_STEP(w, walk_skip(w, 4));
	return trust_the_tuples(w, walk_marker(w, 'N', 'N'));
}

static enum pg_repl_verdict walk_update(struct walk *w)
{
	const uint8_t *at = NULL;

	WALK_STEP(w, walk_skip(w, 4));
	WALK_STEP(w, walk_take(w, 1, &at));
	return trust_the_tuples(w, *at == 'K' || *at == 'O' || *at == 'N' ? PG_REPL_OK
									  : PG_REPL_MALFORMED);
}

static enum pg_repl_verdict walk_delete(struct walk *w)
{
	WALK_STEP(w, walk_skip(w, 4));
	return trust_the_tuples(w, walk_marker(w, 'K', 'O'));
}

/* Relation: Int32 oid, namespace, name, Int8 identity, Int16 columns. */
static enum pg_repl_verdict walk_relation(struct walk *w)
{
	const uint8_t *at = NULL;
	uint16_t ncols, i;

	WALK_STEP(w, walk_skip(w, 4));
	WALK_STEP(w, walk_string(w));
	WALK_STEP(w, walk_string(w));
	WALK_STEP(w, walk_take(w, 3, &at));
	ncols = pg_get_u16(at + 1);
	for (i = 0; i < ncols; i++) {
		WALK_STEP(w, walk_skip(w, 1));		/* flags */
		WALK_STEP(w, walk_string(w));		/* name */
		WALK_STEP(w, walk_skip(w, 8));		/* type oid, typmod */
	}
	return PG_REPL_OK;
}

/* Type: Int32 oid, namespace, name. */
static enum pg_repl_verdict walk_type(struct walk *w)
{
	WALK_STEP(w, walk_skip(w, 4));
	WALK_STEP(w, walk_string(w));
	return walk_string(w);
}

/* Truncate: after nrels and options, one Int32 oid per relation. */
static enum pg_repl_verdict walk_truncate(struct walk *w)
{
	return walk_skip(w, (uint64_t)w->nrels * 4);
}

/* Message: after flags and LSN, String prefix, Int32 length, content. */
static enum pg_repl_verdict walk_message(struct walk *w)
{
	const uint8_t *at = NULL;

	WALK_STEP(w, walk_string(w));
	WALK_STEP(w, walk_take(w, 4, &at));
	return walk_skip(w, pg_get_u32(at));
}

/* Origin, and the prepares: one String (origin name, GID) after the header. */
static enum pg_repl_verdict walk_one_string(struct walk *w)
{
	return walk_string(w);
}

/*
 * Decoders of the fixed headers: p is past the type byte and any xid, and
 * the whole header is in view.
 */
static void decode_begin(const uint8_t *p, struct pgoutput_msg *m)
{
	m->lsn = pg_get_u64(p);
	m->time = pg_get_i64(p + 8);
	m->has_xid = true;
	m->xid = pg_get_u32(p + 16);
}

static void decode_commit(const uint8_t *p, struct pgoutput_msg *m)
{
	m->flags = p[0];
	m->lsn = pg_get_u64(p + 1);
	m->end_lsn = pg_get_u64(p + 9);
	m->time = pg_get_i64(p + 17);
}

static void decode_origin(const uint8_t *p, struct pgoutput_msg *m)
{
	m->lsn = pg_get_u64(p);
}

static void decode_truncate(const uint8_t *p, struct pgoutput_msg *m)
{
	m->nrels = pg_get_u32(p);
	m->flags = p[4];
}

static void decode_message(const uint8_t *p, struct pgoutput_msg *m)
{
	m->flags = p[0];
	m->lsn = pg_get_u64(p + 1);
}

static void decode_stream_start(const uint8_t *p, struct pgoutput_msg *m)
{
	m->has_xid = true;
	m->xid = pg_get_u32(p);
	m->first_segment = p[4] == 1;
}

static void decode_stream_commit(const uint8_t *p, struct pgoutput_msg *m)
{
	m->has_xid = true;
	m->xid = pg_get_u32(p);
	decode_commit(p + 4, m);
}

static void decode_stream_abort(const uint8_t *p, struct pgoutput_msg *m)
{
	m->has_xid = true;
	m->xid = pg_get_u32(p);
	m->subxid = pg_get_u32(p + 4);
}

/* What follows with streaming = parallel (v4): abort LSN and time. */
static void decode_stream_abort_tail(const uint8_t *p, struct pgoutput_msg *m)
{
	m->lsn = pg_get_u64(p);
	m->time = pg_get_i64(p + 8);
}

static void decode_begin_prepare(const uint8_t *p, struct pgoutput_msg *m)
{
	m->lsn = pg_get_u64(p);
	m->end_lsn = pg_get_u64(p + 8);
	m->time = pg_get_i64(p + 16);
	m->has_xid = true;
	m->xid = pg_get_u32(p + 24);
}

/* Prepare, Commit Prepared, Stream Prepare: flags, two LSNs, a time, xid. */
static void decode_prepare(const uint8_t *p, struct pgoutput_msg *m)
{
	decode_commit(p, m);
	m->has_xid = true;
	m->xid = pg_get_u32(p + 25);
}

static void decode_rollback_prepared(const uint8_t *p, struct pgoutput_msg *m)
{
	m->flags = p[0];
	m->lsn = pg_get_u64(p + 1);
	m->end_lsn = pg_get_u64(p + 9);
	m->prepare_time = pg_get_i64(p + 17);
	m->time = pg_get_i64(p + 25);
	m->has_xid = true;
	m->xid = pg_get_u32(p + 33);
}

struct pgoutput_layout {
	uint8_t type;
	enum pgoutput_kind kind;
	int min_version;
	bool streamed_xid;	/* starts with the xid inside a stream */
	size_t hdr;		/* fixed header, after the type byte and any xid */
	void (*decode)(const uint8_t *p, struct pgoutput_msg *m);
	enum pg_repl_verdict (*walk)(struct walk *w);
};

/* logicalrep_write_*() in src/backend/replication/logical/proto.c */
static const struct pgoutput_layout layouts[] = {
	{'B', PGOUTPUT_BEGIN, 1, false, 20, decode_begin, NULL},
	{'C', PGOUTPUT_COMMIT, 1, false, 25, decode_commit, NULL},
	{'O', PGOUTPUT_ORIGIN, 1, false, 8, decode_origin, walk_one_string},
	{'R', PGOUTPUT_RELATION, 1, true, 0, NULL, walk_relation},
	{'Y', PGOUTPUT_TYPE, 1, true, 0, NULL, walk_type},
	{'I', PGOUTPUT_INSERT, 1, true, 0, NULL, walk_insert},
	{'U', PGOUTPUT_UPDATE, 1, true, 0, NULL, walk_update},
	{'D', PGOUTPUT_DELETE, 1, true, 0, NULL, walk_delete},
	{'T', PGOUTPUT_TRUNCATE, 1, true, 5, decode_truncate, walk_truncate},
	{'M', PGOUTPUT_MESSAGE, 1, true, 9, decode_message, walk_message},
	{'S', PGOUTPUT_STREAM_START, 2, false, 5, decode_stream_start, NULL},
	{'E', PGOUTPUT_STREAM_STOP, 2, false, 0, NULL, NULL},
	{'c', PGOUTPUT_STREAM_COMMIT, 2, false, 29, decode_stream_commit, NULL},
	{'A', PGOUTPUT_STREAM_ABORT, 2, false, 8, decode_stream_abort, NULL},
	{'b', PGOUTPUT_BEGIN_PREPARE, 3, false, 28, decode_begin_prepare, walk_one_string},
	{'P', PGOUTPUT_PREPARE, 3, false, 29, decode_prepare, walk_one_string},
	{'K', PGOUTPUT_COMMIT_PREPARED, 3, false, 29, decode_prepare, walk_one_string},
	{'r', PGOUTPUT_ROLLBACK_PREPARED, 3, false, 37, decode_rollback_prepared, walk_one_string},
	{'p', PGOUTPUT_STREAM_PREPARE, 3, false, 29, decode_prepare, walk_one_string},
};

/* A version of 0 (or less) is unknown: every type is admitted. */
static bool version_has(int proto_version, int min_version)
{
	return proto_version <= 0 || proto_version >= min_version;
}

static const struct pgoutput_layout *layout_of(uint8_t type, int proto_version)
{
	size_t i;

	for (i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
		if (layouts[i].type == type)
			return version_has(proto_version, layouts[i].min_version) ?
				&layouts[i] : NULL;
	}
	return NULL;
}

/*
 * Stream Abort grows by an abort LSN and time under v4 with streaming =
 * parallel, which walgate may not know of: from v4 on, any length but the
 * short form's is taken for the long form, so that a cut long one is
 * TOO_SHORT and an overlong one BAD_LENGTH.
 */
static size_t header_len(const struct pgoutput_layout *l, size_t len, int proto_version)
{
	if (l->kind == PGOUTPUT_STREAM_ABORT && len > 1 + l->hdr &&
	    version_has(proto_version, 4))
		return l->hdr + 16;
	return l->hdr;
}

enum pg_repl_verdict pgoutput_decode(const uint8_t *buf, size_t have, size_t len,
				     int proto_version, bool in_stream,
				     struct pgoutput_msg *out)
{
	const struct pgoutput_layout *l;
	struct walk w;
	size_t xid_len, hdr, need;
	enum pg_repl_verdict v;

	memset(out, 0, sizeof(*out));
	have = min_size(have, len);
	if (have == 0)
		return PG_REPL_TOO_SHORT;
	out->type = buf[0];
	l = layout_of(buf[0], proto_version);
	if (l == NULL)
		return PG_REPL_UNKNOWN;
	out->kind = l->kind;
	xid_len = (l->streamed_xid && in_stream && version_has(proto_version, 2)) ? 4 : 0;
	hdr = header_len(l, len, proto_version);
	need = 1 + xid_len + hdr;
	if (len < need || have < need)
		return PG_REPL_TOO_SHORT;
	if (xid_len > 0) {
		out->has_xid = true;
		out->xid = pg_get_u32(buf + 1);
	}
	if (l->decode != NULL)
		l->decode(buf + 1 + xid_len, out);
	if (hdr > l->hdr)
		decode_stream_abort_tail(buf + 1 + xid_len + l->hdr, out);

	memset(&w, 0, sizeof(w));
	w.p = buf;
	w.have = have;
	w.len = len;
	w.off = need;
	w.nrels = out->nrels;
	v = l->walk != NULL ? l->walk(&w) : PG_REPL_OK;
	if (v != PG_REPL_OK)
		return v;
	if (!w.blind && w.off != len)
		return PG_REPL_BAD_LENGTH;
	return PG_REPL_OK;
}

void pgoutput_state_init(struct pgoutput_state *st, int proto_version)
{
	st->proto_version = proto_version;
	st->in_stream = false;
}

void pgoutput_state_update(struct pgoutput_state *st, const struct pgoutput_msg *m)
{
	if (m->kind == PGOUTPUT_STREAM_START)
		st->in_stream = true;
	else if (m->kind == PGOUTPUT_STREAM_STOP)
		st->in_stream = false;
}

const char *pgoutput_kind_str(enum pgoutput_kind k)
{
	switch (k) {
	case PGOUTPUT_UNKNOWN:
		return "unknown";
	case PGOUTPUT_BEGIN:
		return "begin";
	case PGOUTPUT_COMMIT:
		return "commit";
	case PGOUTPUT_ORIGIN:
		return "origin";
	case PGOUTPUT_RELATION:
		return "relation";
	case PGOUTPUT_TYPE:
		return "type";
	case PGOUTPUT_INSERT:
		return "insert";
	case PGOUTPUT_UPDATE:
		return "update";
	case PGOUTPUT_DELETE:
		return "delete";
	case PGOUTPUT_TRUNCATE:
		return "truncate";
	case PGOUTPUT_MESSAGE:
		return "message";
	case PGOUTPUT_STREAM_START:
		return "stream start";
	case PGOUTPUT_STREAM_STOP:
		return "stream stop";
	case PGOUTPUT_STREAM_COMMIT:
		return "stream commit";
	case PGOUTPUT_STREAM_ABORT:
		return "stream abort";
	case PGOUTPUT_BEGIN_PREPARE:
		return "begin prepare";
	case PGOUTPUT_PREPARE:
		return "prepare";
	case PGOUTPUT_COMMIT_PREPARED:
		return "commit prepared";
	case PGOUTPUT_ROLLBACK_PREPARED:
		return "rollback prepared";
	case PGOUTPUT_STREAM_PREPARE:
		return "stream prepare";
	}
	return "unknown";
}
