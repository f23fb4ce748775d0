/*
 * test_log.c - log lines cannot be forged: control bytes a client put in
 * its user name or application_name come out escaped, in text and JSON.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static void escape(const char *in, char *out, size_t cap)
{
	size_t n = log_escape_text(out, 0, cap, in);

	out[n] = '\0';
}

static void test_plain_text_unchanged(void **state)
{
	char out[64];

	(void)state;
	escape("user=alice db=\xc3\xa9t\xc3\xa9 \\x", out, sizeof(out));
	assert_string_equal(out, "user=alice db=\xc3\xa9t\xc3\xa9 \\\\x");	/* a backslash doubled */
}

static void test_control_bytes_escaped(void **state)
{
	char out[128];

	(void)state;
	escape("a\nLOG x: login:\r\x1b[31m\x7f\x01\t", out, sizeof(out));
	assert_string_equal(out, "a\\x0aLOG x: login:\\x0d\\x1b[31m\\x7f\\x01\\x09");
}

/* A full buffer stops before an escape, never in its middle. */
static void test_never_splits_an_escape(void **state)
{
	char out[16];
	size_t n;

	(void)state;
	memset(out, '#', sizeof(out));
	n = log_escape_text(out, 0, 8, "ab\n\n\n");
	assert_int_equal(n, 6);
	assert_memory_equal(out, "ab\\x0a", 6);
	n = log_escape_text(out, 0, 8, "abcdefghij");
	assert_true(n < 8);
}

/* Capture what log_write puts on stderr. */
static size_t capture(enum log_level level, bool json, const char *user, char *out, size_t cap)
{
	int fds[2], saved = dup(STDERR_FILENO);
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	dup2(fds[1], STDERR_FILENO);
	log_configure(LOG_LEVEL_INFO, json);
	log_write(level, "C-1 127.0.0.1:5000", "login: user=%s database=d", user);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	n = read(fds[0], out, cap - 1);
	close(fds[0]);
	assert_true(n > 0);
	out[n] = '\0';
	return (size_t)n;
}

static void test_text_line_is_one_line(void **state)
{
	char out[4096];
	const char *forged = "x\n2026-01-01 00:00:00.000 UTC LOG C-9 10.0.0.1:1: login: user=admin\r\x1b[2K";

	(void)state;
	capture(LOG_LEVEL_INFO, false, forged, out, sizeof(out));
	assert_non_null(strstr(out, "user=x\\x0a2026-01-01"));
	assert_non_null(strstr(out, "user=admin\\x0d\\x1b[2K database=d\n"));
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
	assert_null(strchr(out, '\r'));
	assert_null(strchr(out, '\x1b'));
}

static void test_json_escaping_kept(void **state)
{
	char out[4096];

	(void)state;
	capture(LOG_LEVEL_INFO, true, "x\n\"y\\", out, sizeof(out));
	assert_non_null(strstr(out, "\"msg\":\"login: user=x\\u000a\\\"y\\\\ database=d\"}\n"));
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
}

/*
 * Bytes that are not UTF-8 (a lone 0xff, an overlong 0xc0 0xaf, a cut
 * sequence, an encoded surrogate) are escaped byte by byte; C1 controls
 * and bidi overrides, valid UTF-8 that a terminal or reader obeys, as code
 * points; JSON lines stay valid JSON.
 */
static void test_not_utf8_and_invisible_controls(void **state)
{
	char out[4096];

	(void)state;
	escape("a\xff b\xc0\xaf c\xe2\x82 d\xed\xa0\x80", out, sizeof(out));
	assert_string_equal(out, "a\\xff b\\xc0\\xaf c\\xe2\\x82 d\\xed\\xa0\\x80");
	escape("csi\xc2\x9b" "2J rlo\xe2\x80\xae lri\xe2\x81\xa6 ok\xe2\x82\xac\xf0\x9f\x98\x80", out, sizeof(out));
	assert_string_equal(out, "csi\\u009b2J rlo\\u202e lri\\u2066 ok\xe2\x82\xac\xf0\x9f\x98\x80");
	capture(LOG_LEVEL_INFO, true, "\xff\xe2\x80\xae", out, sizeof(out));
	assert_non_null(strstr(out, "\"msg\":\"login: user=\\\\xff\\u202e database=d\"}\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_text_unchanged),
		cmocka_unit_test(test_control_bytes_escaped),
		cmocka_unit_test(test_never_splits_an_escape),
		cmocka_unit_test(test_text_line_is_one_line),
		cmocka_unit_test(test_json_escaping_kept),
		cmocka_unit_test(test_not_utf8_and_invisible_controls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
