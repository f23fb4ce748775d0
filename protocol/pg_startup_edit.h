/*
 * pg_startup_edit.h - a StartupMessage as walgate forwards it when it logs
 * in upstream under another name than the client's (an IAM database user,
 * say): the same packet with "user" replaced.
 *
 * Pure: bytes in, bytes out.
 */
#ifndef WALGATE_PG_STARTUP_EDIT_H
#define WALGATE_PG_STARTUP_EDIT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Write into out (cap bytes) the StartupMessage pkt[0..len) with the value
 * of "user" replaced by user. When the packet names no database (or its
 * last "database" is empty, which the server takes as none), the
 * server would default it to the user: "database" is added with the
 * client's user (last, so that it is the one the server takes), so that
 * the session reaches the same database. Every
 * other parameter, and their order, is kept. Returns the new length, or 0
 * when pkt is not a well-formed StartupMessage with a user, user is empty,
 * or out is too small.
 */
size_t pg_startup_with_user(const uint8_t *pkt, size_t len, const char *user,
			    uint8_t *out, size_t cap);

#endif
