/*
 * pg_startup.c - decode the untyped first packet of a PostgreSQL
 * connection and decide whether walgate can relay it.
 *
 * The parser is deliberately as strict as the server's own
 * ProcessStartupPacket(): anything the server would refuse is refused
 * here, and what the server accepts is read the way the server reads it,
 * so that walgate never routes or authorises on a different view of the
 * packet than the upstream will act on.
 */
#include "pg_startup.h"
#include "pg_wire.h"

#include <string.h>

/* Length word plus request code / protocol version. */
#define STARTUP_HEADER_LEN	8u
/*
 * Length word, code, pid, then the key: 4 bytes in protocol 3.0, up to
 * PG_CANCEL_KEY_MAX in 3.2 (PostgreSQL 18's ProcessCancelRequestPacket
 * accepts 1 to 256 bytes, and so does walgate).
 */
#define CANCEL_REQUEST_HEADER_LEN	12u

enum pg_startup_verdict pg_startup_length(const uint8_t *buf, size_t len,
					  uint32_t *pktlen)
{
	uint32_t n;

	if (len < 4)
		return PG_STARTUP_NEED_MORE;
	n = pg_get_u32(buf);
	if (n < STARTUP_HEADER_LEN || n > PG_STARTUP_MAX_LEN)
		return PG_STARTUP_BAD_LENGTH;
	*pktlen = n;
	return PG_STARTUP_OK;
}

static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/*
 * PostgreSQL's pg_strncasecmp(value, word, n) == 0 for n == strlen(value):
 * value is a case-insensitive prefix of word (or equal to it).
 */
static bool is_prefix_nocase(const char *value, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (word[i] == '\0' || ascii_lower(value[i]) != word[i])
			return false;
	}
	return true;
}

/*
 * A copy of the server's parse_bool(): unique case-insensitive prefixes of
 * true/false/yes/no, "on"/"off" (at least two letters), "1" and "0".
 * Accepting exactly what the server accepts matters: a value walgate
 * called INVALID but the server took as "true" would open a physical
 * walsender behind walgate's back.
 */
static bool parse_bool(const char *value, bool *result)
{
	size_t n = strlen(value);

	switch (ascii_lower(value[0])) {
	case 't':
		*result = true;
		return is_prefix_nocase(value, n, "true");
	case 'f':
		*result = false;
		return is_prefix_nocase(value, n, "false");
	case 'y':
		*result = true;
		return is_prefix_nocase(value, n, "yes");
	case 'n':
		*result = false;
		return is_prefix_nocase(value, n, "no");
	case 'o':
		/* "o" alone is ambiguous, hence the two-letter minimum */
		if (n < 2)
			return false;
		*result = true;
		if (is_prefix_nocase(value, n, "on"))
			return true;
		*result = false;
		return is_prefix_nocase(value, n, "off");
	case '1':
		*result = true;
		return n == 1;
	case '0':
		*result = false;
		return n == 1;
	default:
		return false;
	}
}

enum pg_replication_mode pg_replication_mode_parse(const char *value)
{
	bool on;

	if (value == NULL)
		return PG_REPLICATION_NONE;
	/* the server compares "database" case-sensitively, before parse_bool */
	if (strcmp(value, "database") == 0)
		return PG_REPLICATION_LOGICAL;
	if (!parse_bool(value, &on))
		return PG_REPLICATION_INVALID;
	return on ? PG_REPLICATION_PHYSICAL : PG_REPLICATION_NONE;
}

const char *pg_replication_mode_str(enum pg_replication_mode m)
{
	switch (m) {
	case PG_REPLICATION_NONE:
		return "none";
	case PG_REPLICATION_PHYSICAL:
		return "physical";
	case PG_REPLICATION_LOGICAL:
		return "logical";
	case PG_REPLICATION_INVALID:
		return "invalid";
	}
	return "unknown";
}

const char *pg_startup_verdict_str(enum pg_startup_verdict v)
{
	switch (v) {
	case PG_STARTUP_OK:
		return "ok";
	case PG_STARTUP_NEED_MORE:
		return "incomplete startup packet";
	case PG_STARTUP_BAD_LENGTH:
		return "invalid length of startup packet";
	case PG_STARTUP_BAD_PROTOCOL:
		return "unsupported frontend protocol";
	case PG_STARTUP_MALFORMED:
		return "invalid startup packet layout";
	case PG_STARTUP_NO_USER:
		return "no PostgreSQL user name specified in startup packet";
	}
	return "unknown startup verdict";
}

/*
 * Remember the parameters walgate acts on. A repeated name overwrites the
 * earlier value because the server, reading the same packet, does so too.
 */
static void startup_param(struct pg_startup *out, const char *name,
			  const char *value)
{
	out->nparams++;
	if (strcmp(name, "user") == 0)
		out->user = value;
	else if (strcmp(name, "database") == 0)
		out->database = value;
	else if (strcmp(name, "application_name") == 0)
		out->application_name = value;
	else if (strcmp(name, "options") == 0)
		out->options = value;
	else if (strcmp(name, "replication") == 0)
		out->replication = value;
}

/*
 * The name\0value\0...\0 list of a StartupMessage, p[0..end). Every string
 * must end inside the packet and the empty name that closes the list must
 * be its very last byte, as the server insists.
 */
static enum pg_startup_verdict startup_params(const uint8_t *p,
					      const uint8_t *end,
					      struct pg_startup *out)
{
	const uint8_t *name_end, *value_end;

	for (;;) {
		if (p >= end)
			return PG_STARTUP_MALFORMED;	/* no final NUL */
		if (*p == '\0')
			return p + 1 == end ? PG_STARTUP_OK : PG_STARTUP_MALFORMED;
		name_end = memchr(p, '\0', (size_t)(end - p));
		if (name_end == NULL)
			return PG_STARTUP_MALFORMED;
		value_end = memchr(name_end + 1, '\0', (size_t)(end - name_end - 1));
		if (value_end == NULL)
			return PG_STARTUP_MALFORMED;
		startup_param(out, (const char *)p, (const char *)name_end + 1);
		p = value_end + 1;
	}
}

static enum pg_startup_verdict startup_message(const uint8_t *pkt, size_t len,
					       struct pg_startup *out)
{
	enum pg_startup_verdict v;

	out->kind = PG_STARTUP_MESSAGE;
	/* any 3.x: the upstream answers newer minors with NegotiateProtocolVersion */
	if (PG_PROTOCOL_MAJOR(out->code) != 3)
		return PG_STARTUP_BAD_PROTOCOL;
	v = startup_params(pkt + STARTUP_HEADER_LEN, pkt + len, out);
	if (v != PG_STARTUP_OK)
		return v;
	/* the server treats an empty user name exactly like a missing one */
	if (out->user == NULL || out->user[0] == '\0')
		return PG_STARTUP_NO_USER;
	out->replication_mode = pg_replication_mode_parse(out->replication);
	return PG_STARTUP_OK;
}

enum pg_startup_verdict pg_startup_parse(const uint8_t *pkt, size_t len,
					 struct pg_startup *out)
{
	enum pg_startup_verdict v;
	uint32_t pktlen;

	memset(out, 0, sizeof(*out));
	v = pg_startup_length(pkt, len, &pktlen);
	if (v != PG_STARTUP_OK)
		return v;
	if (len < pktlen)
		return PG_STARTUP_NEED_MORE;
	/* len disagreeing with the length word: the caller's framing is off */
	if (len != pktlen)
		return PG_STARTUP_MALFORMED;
	out->length = pktlen;
	out->code = pg_get_u32(pkt + 4);

	switch (out->code) {
	case PG_SSL_REQUEST_CODE:
		out->kind = PG_STARTUP_SSL_REQUEST;
		return len == STARTUP_HEADER_LEN ? PG_STARTUP_OK : PG_STARTUP_MALFORMED;
	case PG_GSSENC_REQUEST_CODE:
		out->kind = PG_STARTUP_GSSENC_REQUEST;
		return len == STARTUP_HEADER_LEN ? PG_STARTUP_OK : PG_STARTUP_MALFORMED;
	case PG_CANCEL_REQUEST_CODE:
		out->kind = PG_STARTUP_CANCEL_REQUEST;
		if (len <= CANCEL_REQUEST_HEADER_LEN || len > CANCEL_REQUEST_HEADER_LEN + PG_CANCEL_KEY_MAX)
			return PG_STARTUP_MALFORMED;
		out->cancel_pid = pg_get_u32(pkt + 8);
		out->cancel_key = pkt + CANCEL_REQUEST_HEADER_LEN;
		out->cancel_key_len = (uint32_t)len - CANCEL_REQUEST_HEADER_LEN;
		return PG_STARTUP_OK;
	default:
		return startup_message(pkt, len, out);
	}
}

bool pg_startup_is_tls_hello(const uint8_t *buf, size_t len)
{
	/* content type 22 (handshake), record version major 3 */
	return len >= 2 && buf[0] == 0x16 && buf[1] == 0x03;
}
