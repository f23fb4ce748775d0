/*
 * upstream_cred.c - naming and reading the upstream password's source
 * (see upstream_cred.h).
 *
 * A file is read on the worker's thread at login: it is expected on a
 * local file system (a mounted secret, a tmpfs), as small as a password.
 */
#include "access/upstream_cred.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/token_source.h"

#define FILE_PREFIX "file:"

/*
 * The first line of path, without its line end; refused when empty or
 * longer than out. Only a regular file: a FIFO or a device could block the
 * worker's loop (opened without blocking, then checked).
 */
static bool read_first_line(const char *path, char *out, size_t cap, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	ssize_t n;
	size_t len, line_len;
	char *end;

	if (fd < 0) {
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", path);
		close(fd);
		return false;
	}
	n = read(fd, out, cap - 1);
	if (n < 0)
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
	close(fd);
	if (n < 0)
		return false;
	out[n] = '\0';
	end = strpbrk(out, "\r\n");
	if (!end && (size_t)n == cap - 1) {
		OPENSSL_cleanse(out, cap);
		snprintf(why, whylen, "the first line of %s is too long", path);
		return false;
	}
	line_len = end ? (size_t)(end - out) : (size_t)n;
	if (end)
		*end = '\0';
	len = strlen(out);
	if (len == 0 || len != line_len) {
		OPENSSL_cleanse(out, cap);
		snprintf(why, whylen, len ? "%s holds a NUL byte" : "%s is empty", path);
		return false;
	}
	return true;
}

bool cred_fetch(const char *spec, struct token_source *tokens, char *out, size_t cap,
		char *why, size_t whylen)
{
	enum cred_kind kind;

	if (!cred_spec_parse(spec, &kind, why, whylen))
		return false;
	switch (kind) {
	case CRED_FILE:
		return read_first_line(spec + strlen(FILE_PREFIX), out, cap, why, whylen);
	case CRED_GCE_METADATA:
		if (!tokens) {
			snprintf(why, whylen, "the token source is not running");
			return false;
		}
		return token_source_get(tokens, out, cap, why, whylen);
	default:
		snprintf(why, whylen, "not a source to fetch from");
		return false;
	}
}
