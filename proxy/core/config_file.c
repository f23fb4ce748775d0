/*
 * config_file.c - what walgate needs from an INI file beyond libinih:
 * the line that sets a key (for errors found after parsing), lines longer
 * than libinih's default, and a syntax error said in words.
 */
#include "core/config_int.h"

#include <ini.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Lines up to CONFIG_LINE_MAX bytes, where libinih lets its limit be set. */
#define CONFIG_LINE_MAX 65536

void config_lift_line_limit(void)
{
#ifdef WALGATE_INIH_RUNTIME_LIMITS
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = CONFIG_LINE_MAX;
#endif
}

#ifdef WALGATE_INIH_RUNTIME_LIMITS
#define LINE_LIMIT CONFIG_LINE_MAX
#else
#define LINE_LIMIT INI_MAX_LINE
#endif

/*
 * libinih says only "syntax error": name what it could be. A line longer
 * than libinih reads is cut, and the error falls on its rest (line + 1).
 */
void config_describe_syntax_error(const char *path, int line, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t len[2] = { 0, 0 };	/* of lines line - 1 and line */
	int c, n = 1;

	while (f && n <= line && (c = getc(f)) != EOF) {
		if (c == '\n')
			n++;
		else if (n >= line - 1)
			len[n - (line - 1)]++;
	}
	if (f)
		fclose(f);
	for (int i = 0; i < 2; i++) {
		if (len[i] + 3 > LINE_LIMIT) {
			snprintf(buf, cap, "syntax error: line %d is %zu bytes long, more than the %d "
				 "walgate reads", line - 1 + i, len[i], LINE_LIMIT - 3);
			return;
		}
	}
	snprintf(buf, cap, "syntax error: expected [section], key = value, or a comment (; or #)");
}

/* The line of the file that sets [section] name, or 0. */
int config_line_of_key(const char *path, const char *section, const char *name)
{
	FILE *f = fopen(path, "r");
	char line[1024], cur[64] = "";
	int number = 0, found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");
		size_t n;

		number++;
		if (*p == '[') {
			snprintf(cur, sizeof(cur), "%.*s", (int)strcspn(p + 1, "]"), p + 1);
			continue;
		}
		n = strcspn(p, "=: \t");
		if (!strcasecmp(cur, section) && n == strlen(name) && !strncasecmp(p, name, n))
			found = number;
	}
	fclose(f);
	return found;
}
