/*
 * probe.c - a minimal blocking HTTP/1.0 client that asks walgate's own
 * metrics endpoint for one path, writes the answer's body to stdout (so
 * that `--probe /slots` shows the slots), the status line to stderr, and
 * turns the status into an exit code.
 */
#include "observe/probe.h"
#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define PROBE_TIMEOUT_S 3

/* The address to connect to: the listen address, loopback for a wildcard. */
static void probe_target(const struct config_addr *a, struct sockaddr_storage *ss)
{
	memcpy(ss, &a->addr, a->addrlen);
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
	}
}

static int probe_connect(const struct config_addr *a)
{
	struct sockaddr_storage ss;
	struct timeval tv = { .tv_sec = PROBE_TIMEOUT_S };
	int fd;

	probe_target(a, &ss);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* On Linux the send timeout also bounds connect(). */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, a->addrlen) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Read the whole answer (HTTP/1.0: the server closes after it), at most cap - 1 bytes. */
static size_t read_answer(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return len;
}

/* Write the body (what follows the blank line after the headers) to stdout. */
static void print_body(const char *answer, size_t len)
{
	const char *body = strstr(answer, "\r\n\r\n");

	if (!body)
		return;
	body += 4;
	fwrite(body, 1, len - (size_t)(body - answer), stdout);
	fflush(stdout);
}

#define PROBE_ANSWER_MAX (4 * 1024 * 1024)

static int probe_exchange(int fd, const char *path, const char *where)
{
	char req[512], status[256], *answer;
	int code = 0, len, rc;
	size_t got;

	len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: walgate\r\n\r\n", path);
	if (len < 0 || (size_t)len >= sizeof(req) || write(fd, req, (size_t)len) != len) {
		fprintf(stderr, "walgate: probe %s%s: cannot send the request\n", where, path);
		return 1;
	}
	answer = malloc(PROBE_ANSWER_MAX);
	if (!answer) {
		fprintf(stderr, "walgate: probe %s%s: out of memory\n", where, path);
		return 1;
	}
	got = read_answer(fd, answer, PROBE_ANSWER_MAX);
	snprintf(status, sizeof(status), "%.*s", (int)strcspn(answer, "\r\n"), answer);
	if (got == 0 || sscanf(status, "HTTP/%*d.%*d %d", &code) != 1) {
		fprintf(stderr, "walgate: probe %s%s: no HTTP answer\n", where, path);
		rc = 1;
	} else {
		fprintf(stderr, "walgate: probe %s%s: %s\n", where, path, status);
		print_body(answer, got);
		rc = code == 200 ? 0 : 1;
	}
	free(answer);
	return rc;
}

int probe_run(const struct config *cfg, const char *path)
{
	const struct config_addr *a;
	int fd, rc;

	if (path[0] != '/' || strpbrk(path, " \r\n") || strlen(path) > 256) {
		fprintf(stderr, "walgate: --probe needs a path such as /healthz\n");
		return 1;
	}
	if (cfg->metrics_listen.n == 0) {
		fprintf(stderr, "walgate: --probe: the metrics endpoint is off ([metrics] listen)\n");
		return 1;
	}
	a = &cfg->metrics_listen.v[0];
	fd = probe_connect(a);
	if (fd < 0) {
		fprintf(stderr, "walgate: probe %s%s: %s\n", a->text, path, strerror(errno));
		return 1;
	}
	rc = probe_exchange(fd, path, a->text);
	close(fd);
	return rc;
}
