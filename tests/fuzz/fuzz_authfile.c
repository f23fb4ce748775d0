/*
 * fuzz_authfile.c - libFuzzer target for the auth file's reader, options
 * included: any file is either users whose names are set and whose
 * options, where given, are non-empty and valid sources, or an error
 * message naming the line; nothing in between, nothing leaked.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access/authfile.h"
#include "access/upstream_cred.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_user(const struct auth_user *u)
{
	enum cred_kind kind;
	char why[300];

	if (!u->name || !u->name[0])
		abort();
	if (u->upstream_user && !u->upstream_user[0])
		abort();
	if (u->upstream_password && !cred_spec_parse(u->upstream_password, &kind, why, sizeof(why)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	char err[1024];
	struct auth_users *users;
	int fd;

	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/walgate-fuzz-authfile-%d", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	close(fd);
	err[0] = '\0';
	users = auth_users_load(path, NULL, err, sizeof(err));
	if (users) {
		for (size_t i = 0; i < users->n; i++)
			check_user(&users->v[i]);
		auth_users_free(users);
	} else if (!err[0]) {
		abort();	/* a refusal always says why */
	}
	return 0;
}
