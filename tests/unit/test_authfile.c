/*
 * test_authfile.c - the auth file's per-user options (upstream_user,
 * upstream_password) and the upstream password's sources: what is taken,
 * what is refused with which reason, and that today's two-string lines
 * stay valid.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "access/authfile.h"
#include "access/upstream_cred.h"

static char path[64];

static const char *write_file(const char *text)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/walgate-test-authfile-%d", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static struct auth_users *load(const char *text, char *err)
{
	err[0] = '\0';
	return auth_users_load(write_file(text), NULL, err, 512);
}

static void test_plain_lines_stay_valid(void **state)
{
	char err[512];
	struct auth_users *u = load("\"a\" \"pw\"\n\"b\" \"x\"  \t\n", err);

	(void)state;
	assert_non_null(u);
	assert_int_equal(u->n, 2);
	assert_null(auth_users_find(u, "a")->upstream_user);
	assert_null(auth_users_find(u, "a")->upstream_password);
	assert_false(auth_users_use_source(u, CRED_GCE_METADATA));
	auth_users_free(u);
}

static void test_options_taken(void **state)
{
	char err[512];
	struct auth_users *u = load("\"mz\" \"pw\" upstream_user=\"sa@proj.iam\" "
				    "upstream_password=\"gce-metadata\"\n"
				    "\"f\" \"pw\"\tupstream_password=\"file:/run/pw\"\n"
				    "\"q\" \"pw\" upstream_user=\"a\"\"b\"\n", err);
	const struct auth_user *mz, *f, *q;

	(void)state;
	assert_non_null(u);
	mz = auth_users_find(u, "mz");
	f = auth_users_find(u, "f");
	q = auth_users_find(u, "q");
	assert_string_equal(mz->upstream_user, "sa@proj.iam");
	assert_string_equal(mz->upstream_password, "gce-metadata");
	assert_null(f->upstream_user);
	assert_string_equal(f->upstream_password, "file:/run/pw");
	assert_string_equal(q->upstream_user, "a\"b");
	assert_true(auth_users_use_source(u, CRED_GCE_METADATA));
	assert_true(auth_users_use_source(u, CRED_FILE));
	auth_users_free(u);
}

static void refused(const char *text, const char *reason)
{
	char err[512];
	struct auth_users *u = load(text, err);

	assert_null(u);
	if (!strstr(err, reason))
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", text, err, reason);
}

static void test_bad_options_refused(void **state)
{
	(void)state;
	refused("\"mz\" \"pw\" colour=\"blue\"\n", ":1: unknown option");
	refused("\"mz\" \"pw\" upstream_user=\"a\" upstream_user=\"b\"\n", "option given twice");
	refused("\"mz\" \"pw\" upstream_password=\"file:relative\"\n", "file:/absolute/path");
	refused("\"mz\" \"pw\" upstream_password=\"token\"\n", "gce-metadata");
	refused("\"mz\" \"pw\" upstream_user=\"\"\n", "non-empty quoted string");
	refused("\"mz\" \"pw\" upstream_user=\"x\n", "non-empty quoted string");
	refused("\"mz\" \"pw\" upstream_user=x\n", "non-empty quoted string");
	refused("\"mz\" \"pw\" upstream_user\n", "expected key=");
	refused("\"mz\" \"pw\"upstream_user=\"x\"\n", "expected \"name\" \"secret\"");
	refused("\"ok\" \"pw\"\n\"mz\" \"pw\" =\"x\"\n", ":2: expected key=");
}

/* A line longer than the reader's buffer is refused, not read on as a line of its own. */
static void test_long_line_refused(void **state)
{
	static char text[8192];
	struct auth_users *u;
	char err[512];
	int n;

	(void)state;
	n = snprintf(text, sizeof(text), "\"ok\" \"pw\"\n#%04094d\"mallory\" \"pw2\"\n", 0);
	assert_true(n > 4096 && (size_t)n < sizeof(text));
	assert_null(load(text, err));
	assert_non_null(strstr(err, ":2: line too long"));
	/* the longest line that fits is taken, and a last line without a newline too */
	n = snprintf(text, sizeof(text), "#%04093d\n\"ok\" \"pw\"", 0);
	assert_int_equal(n, 4095 + 9);
	u = load(text, err);
	assert_non_null(u);
	assert_int_equal(u->n, 1);
	auth_users_free(u);
}

static void test_sources(void **state)
{
	enum cred_kind k;
	char why[300], spec[128], out[64];

	(void)state;
	assert_true(cred_spec_parse("auth-file", &k, why, sizeof(why)));
	assert_int_equal(k, CRED_AUTH_FILE);
	assert_true(cred_spec_parse("gce-metadata", &k, why, sizeof(why)));
	assert_int_equal(k, CRED_GCE_METADATA);
	assert_true(cred_spec_parse("file:/x", &k, why, sizeof(why)));
	assert_int_equal(k, CRED_FILE);
	assert_false(cred_spec_parse("file:", &k, why, sizeof(why)));
	assert_false(cred_spec_parse("GCE-metadata", &k, why, sizeof(why)));

	/* a file: the first line, CR LF stripped; empty, NUL, too long, missing refused */
	write_file("s3cret\r\nsecond line\n");
	snprintf(spec, sizeof(spec), "file:%s", path);
	assert_true(cred_fetch(spec, NULL, out, sizeof(out), why, sizeof(why)));
	assert_string_equal(out, "s3cret");
	write_file("\n");
	snprintf(spec, sizeof(spec), "file:%s", path);
	assert_false(cred_fetch(spec, NULL, out, sizeof(out), why, sizeof(why)));
	assert_non_null(strstr(why, "is empty"));
	write_file("ab\0cd\n");	/* strlen stops at the NUL: "ab" only is written */
	snprintf(spec, sizeof(spec), "file:%s", path);
	assert_true(cred_fetch(spec, NULL, out, sizeof(out), why, sizeof(why)));
	{
		int fd = open(path, O_WRONLY | O_TRUNC);

		assert_int_equal(write(fd, "ab\0cd\n", 6), 6);
		close(fd);
	}
	snprintf(spec, sizeof(spec), "file:%s", path);
	assert_false(cred_fetch(spec, NULL, out, sizeof(out), why, sizeof(why)));
	assert_non_null(strstr(why, "NUL byte"));
	write_file("0123456789012345678901234567890123456789012345678901234567890123456789");
	snprintf(spec, sizeof(spec), "file:%s", path);
	assert_false(cred_fetch(spec, NULL, out, sizeof(out), why, sizeof(why)));
	assert_non_null(strstr(why, "too long"));
	unlink(path);
	snprintf(spec, sizeof(spec), "file:%s", path);
	assert_false(cred_fetch(spec, NULL, out, sizeof(out), why, sizeof(why)));
	assert_non_null(strstr(why, "cannot open"));
	/* a FIFO with no writer would block a plain open(): refused at once */
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_false(cred_fetch(spec, NULL, out, sizeof(out), why, sizeof(why)));
	assert_non_null(strstr(why, "not a regular file"));
	unlink(path);
	assert_false(cred_fetch("file:/dev/zero", NULL, out, sizeof(out), why, sizeof(why)));
	assert_non_null(strstr(why, "not a regular file"));
	assert_false(cred_fetch("gce-metadata", NULL, out, sizeof(out), why, sizeof(why)));
	assert_non_null(strstr(why, "not running"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_lines_stay_valid),
		cmocka_unit_test(test_options_taken),
		cmocka_unit_test(test_bad_options_refused),
		cmocka_unit_test(test_sources),
		cmocka_unit_test(test_long_line_refused),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	unlink(path);
	return rc;
}
