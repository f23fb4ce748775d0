/*
 * fuzz_check.h - CHECK(cond): the fuzz targets' invariant, which names
 * the file, line and condition and aborts (a crash for libFuzzer).
 */
#ifndef WALGATE_FUZZ_CHECK_H
#define WALGATE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
				__FILE__, __LINE__, #cond);		\
			abort();					\
		}							\
	} while (0)

#endif
