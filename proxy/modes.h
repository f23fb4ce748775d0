/*
 * modes.h - the effective TLS and authentication modes of a generation
 * in one line: what `auto` became and why, which files are used and
 * which are not. Logged at start and on every reload, and printed by
 * --check-config.
 */
#ifndef WALGATE_MODES_H
#define WALGATE_MODES_H

#include <stdbool.h>
#include <stddef.h>

struct generation;

/*
 * Write the summary into buf. Returns true when it names a setting that
 * has no effect (an auth_file that auto did not use): worth a warning.
 */
bool modes_describe(const struct generation *g, char *buf, size_t cap);

/* Log the summary: info, or warning when modes_describe() says so. */
void modes_log(const struct generation *g);

#endif
