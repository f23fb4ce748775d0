/*
 * probe.c - a minimal blocking HTTP/1.0 client that asks walgate's own
 * metrics endpoint for one path and turns the status into an exit code.
 */
#include "probe.h"
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
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

/* Read until the end of the status line (or the buffer is full). */
static ssize_t read_status_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strchr(buf, '\n'))
			break;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return (ssize_t)len;
}

static int probe_exchange(int fd, const char *path, const char *where)
{
	char req[512], status[256];
	int code = 0, len;

	len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: walgate\r\n\r\n", path);
	if (len < 0 || (size_t)len >= sizeof(req) || write(fd, req, (size_t)len) != len) {
		fprintf(stderr, "walgate: probe %s%s: cannot send the request\n", where, path);
		return 1;
	}
	if (read_status_line(fd, status, sizeof(status)) <= 0 ||
	    sscanf(status, "HTTP/%*d.%*d %d", &code) != 1) {
		fprintf(stderr, "walgate: probe %s%s: no HTTP answer\n", where, path);
		return 1;
	}
	printf("walgate: probe %s%s: %s\n", where, path, status);
	return code == 200 ? 0 : 1;
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
