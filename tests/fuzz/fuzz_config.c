/*
 * fuzz_config.c - libFuzzer target for the configuration loader: any file
 * is either a configuration or an error message naming what is wrong;
 * nothing in between, nothing leaked.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	char err[1024];
	struct config *cfg;
	FILE *f;

	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/walgate-fuzz-config-%d.ini", (int)getpid());
	f = fopen(path, "w");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	cfg = config_load(path, err, sizeof(err));
	if (cfg) {
		if (!cfg->upstream_host || !cfg->allow || cfg->listen.n == 0)
			abort();	/* validate() lets nothing incomplete through */
		config_free(cfg);
	} else if (!err[0]) {
		abort();		/* a refusal always says why */
	}
	return 0;
}
