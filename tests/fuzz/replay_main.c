/*
 * replay_main.c - the main() a fuzz target gets outside a libFuzzer build:
 * each argument is a file or a directory of files, and every file is fed
 * once to LLVMFuzzerTestOneInput. A broken invariant aborts, as it would
 * under libFuzzer; an unreadable corpus fails the run.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long size;
	int rc = -1;

	if (!f)
		goto out;
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	/* an exact-size copy, so that reading past the input is caught by ASan */
	buf = malloc(size > 0 ? (size_t)size : 1);
	if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size)
		goto out;
	LLVMFuzzerTestOneInput(buf, (size_t)size);
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "replay: cannot read %s\n", path);
	free(buf);
	if (f)
		fclose(f);
	return rc;
}

static int replay_dir(const char *dir, unsigned *count)
{
	struct dirent **names;
	char path[4096];
	int n = scandir(dir, &names, NULL, alphasort), rc = 0;

	if (n < 0) {
		fprintf(stderr, "replay: cannot read the directory %s\n", dir);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' &&
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) < sizeof(path)) {
			rc |= replay_file(path);
			(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			rc |= replay_dir(argv[i], &count);
		} else {
			rc |= replay_file(argv[i]);
			count++;
		}
	}
	printf("replayed %u inputs\n", count);
	return rc || count == 0 ? 1 : 0;
}
