/*
 * fuzz_scram.c - libFuzzer target: SCRAM messages from a hostile peer on
 * both legs. The same input is played as client-first + client-final to a
 * server state and as server-first + server-final to a client state; both
 * must stay inside their buffers, answer with printable NUL-terminated
 * messages of the length they report, and never let a mock verifier or a
 * wrong proof through.
 *
 * Input: byte 0 chooses the options below; the rest is the first message,
 * a '\n', and the final message (no '\n': the final message is empty).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iprotocol \
 *     protocol/scram_common.c protocol/scram_server.c protocol/scram_client.c \
 *     tests/fuzz/fuzz_scram.c -lcrypto -o fuzz_scram
 *   ./fuzz_scram tests/fuzz/corpus/scram
 *
 * The client logs in with a ClientKey, or (OPT_CLIENT_SALTED) with a
 * password whose salted form the caller sets, step by step as walgate
 * does: never PBKDF2 itself, or the fuzzer would soon ask for 2^20 rounds
 * per input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/scram.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OPT_SERVER_PLUS		0x01	/* the client named SCRAM-SHA-256-PLUS */
#define OPT_SERVER_CBIND	0x02	/* walgate has a certificate hash */
#define OPT_SERVER_MOCK		0x04	/* unknown user: mock verifier */
#define OPT_CLIENT_FLAG_SHIFT	3	/* 2 bits: n, y, p, p */
#define OPT_CLIENT_VERIFIER	0x20	/* key login knows the verifier */
#define OPT_CLIENT_SALTED	0x40	/* password login, salted password set by the caller */

/* RFC 7677's nonces, so that its messages make useful seeds. */
#define CNONCE	"rOprNGfwEbeRWgbNEkqO"
#define SNONCE	"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define SALT_B64 "W22ZaJ0SNY7soEsUEjb6gQ=="

static const uint8_t cbind32[32] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

static struct scram_verifier rfc, mock;
static uint8_t rfc_client_key[SCRAM_KEY_LEN];

/* Once: RFC 7677's verifier ("pencil") and ClientKey, and a mock verifier. */
static void setup(void)
{
	static const uint8_t secret[] = "fuzz secret";
	static const char key_b64[] = "pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos=";
	static bool done;
	uint8_t salt[16];
	size_t n;

	if (done)
		return;
	CHECK(scram_b64_decode(SALT_B64, strlen(SALT_B64), salt, sizeof(salt), &n));
	CHECK(scram_verifier_from_password("pencil", salt, n, 4096, &rfc) == SCRAM_OK);
	CHECK(scram_b64_decode(key_b64, strlen(key_b64), rfc_client_key,
			       sizeof(rfc_client_key), &n) && n == SCRAM_KEY_LEN);
	CHECK(scram_mock_verifier("user", secret, sizeof(secret) - 1, 4096, &mock) == SCRAM_OK);
	done = true;
}

/* What every builder promises about a message it wrote. */
static void check_output(const char *out, size_t cap, size_t len)
{
	size_t i;

	CHECK(len < cap);
	CHECK(out[len] == '\0');
	for (i = 0; i < len; i++)
		CHECK(out[i] >= 0x20 && out[i] < 0x7f);
}

/* A copy of exactly len bytes, so that ASan sees any read past it. */
static char *dup_exact(const char *p, size_t len)
{
	char *m = malloc(len > 0 ? len : 1);

	CHECK(m != NULL);
	if (len > 0)
		memcpy(m, p, len);
	return m;
}

static void fuzz_server(unsigned opt, const char *first, size_t flen,
			const char *final, size_t len2)
{
	const struct scram_verifier *v = (opt & OPT_SERVER_MOCK) ? &mock : &rfc;
	bool cb = (opt & OPT_SERVER_CBIND) != 0;
	struct scram_server s;
	char out[SCRAM_AUTH_MAX + 1];
	enum scram_result r;
	size_t n;

	CHECK(scram_server_init(&s, v, (opt & OPT_SERVER_PLUS) != 0,
				cb ? cbind32 : NULL, cb ? 32 : 0) == SCRAM_OK);
	r = scram_server_first(&s, first, flen, SNONCE, out, sizeof(out), &n);
	if (r != SCRAM_OK) {
		CHECK(scram_server_final(&s, final, len2, out, sizeof(out), &n) == SCRAM_ERR_STATE);
		return;
	}
	check_output(out, sizeof(out), n);
	CHECK(n > 2 && memcmp(out, "r=", 2) == 0);
	CHECK(strchr("nyp", scram_server_cbind_flag(&s)) != NULL);
	/* binding only under PLUS and with data, no binding under the plain mechanism */
	CHECK((scram_server_cbind_flag(&s) == 'p') == ((opt & OPT_SERVER_PLUS) != 0));

	r = scram_server_final(&s, final, len2, out, sizeof(out), &n);
	if (r == SCRAM_OK) {
		CHECK(v == &rfc);
		check_output(out, sizeof(out), n);
		CHECK(n == 2 + scram_b64_encoded_len(SCRAM_KEY_LEN) && memcmp(out, "v=", 2) == 0);
		CHECK(scram_server_client_key(&s) != NULL);
		CHECK(memcmp(scram_server_client_key(&s), rfc_client_key, SCRAM_KEY_LEN) == 0);
	} else
		CHECK(scram_server_client_key(&s) == NULL);
	scram_server_clear(&s);
}

static void fuzz_client(unsigned opt, const char *first, size_t flen,
			const char *final, size_t len2)
{
	static const char flags[] = "nypp";
	char flag = flags[(opt >> OPT_CLIENT_FLAG_SHIFT) & 3];
	bool with_verifier = (opt & OPT_CLIENT_VERIFIER) != 0;
	struct scram_client c;
	char out[SCRAM_AUTH_MAX + 1];
	enum scram_result r;
	size_t n;

	bool salted = (opt & OPT_CLIENT_SALTED) != 0;

	if (salted)
		scram_client_init(&c, NULL, NULL);
	else
		scram_client_init_key(&c, NULL, rfc_client_key, with_verifier ? &rfc : NULL);
	CHECK(scram_client_first(&c, flag, flag == 'p' ? cbind32 : NULL, flag == 'p' ? 32 : 0,
				 CNONCE, out, sizeof(out), &n) == SCRAM_OK);
	check_output(out, sizeof(out), n);

	if (salted) {
		r = scram_client_take_first(&c, first, flen);
		if (r == SCRAM_OK) {
			CHECK(scram_client_needs_salted(&c));
			CHECK(c.iterations >= 1 && c.iterations <= SCRAM_MAX_ITERATIONS);
			CHECK(c.salt_len >= 1 && c.salt_len <= SCRAM_SALT_MAX);
			CHECK(scram_client_final_message(&c, out, sizeof(out), &n) == SCRAM_ERR_STATE);
			r = scram_client_set_salted(&c, cbind32);
		}
		if (r == SCRAM_OK)
			r = scram_client_final_message(&c, out, sizeof(out), &n);
		with_verifier = true;	/* a password login always knows the ServerKey */
	} else {
		r = scram_client_final(&c, first, flen, out, sizeof(out), &n);
	}
	if (r != SCRAM_OK) {
		CHECK(scram_client_verify(&c, final, len2) == SCRAM_ERR_STATE);
		return;
	}
	check_output(out, sizeof(out), n);
	CHECK(memcmp(out, "c=", 2) == 0 && strstr(out, ",p=") != NULL);

	r = scram_client_verify(&c, final, len2);
	if (!with_verifier)
		CHECK(r != SCRAM_OK && r != SCRAM_ERR_SERVER_SIGNATURE);
	else
		CHECK(r != SCRAM_UNVERIFIED);
	CHECK(strlen(scram_client_error(&c)) < SCRAM_ERROR_MAX);
	if (r != SCRAM_ERR_SERVER_ERROR)
		CHECK(scram_client_error(&c)[0] == '\0');
	scram_client_clear(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body, *nl;
	size_t blen, flen, len2;
	char *first, *final;
	unsigned opt;

	if (size < 1)
		return 0;
	setup();
	opt = data[0];
	body = (const char *)data + 1;
	blen = size - 1;
	nl = memchr(body, '\n', blen);
	flen = nl != NULL ? (size_t)(nl - body) : blen;
	len2 = nl != NULL ? blen - flen - 1 : 0;
	first = dup_exact(body, flen);
	final = dup_exact(nl != NULL ? nl + 1 : body, len2);

	fuzz_server(opt, first, flen, final, len2);
	fuzz_client(opt, first, flen, final, len2);

	free(first);
	free(final);
	return 0;
}
