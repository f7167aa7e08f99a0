/* Helpers for tests that build files: temporary folders, file writes and
 * copies, and running the laguna program; a Gaussian random generator. */
#ifndef LAGUNA_TESTS_TEST_UTIL_H
#define LAGUNA_TESTS_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A new empty folder under /tmp (static buffer reused per call site is fine). */
char *tu_temp_dir(void);
/* Removes a folder made by tu_temp_dir and everything in it, and frees dir. */
void tu_remove_dir(char *dir);
int tu_write_file(const char *dir, const char *name, const void *data, size_t n);
/* Reads a whole file (caller frees); NULL on failure. */
char *tu_read_file(const char *path, size_t *n);
int tu_copy_file(const char *from, const char *dir, const char *name);
/* Runs `build/laguna ARGS` (BUILD env overrides build/), capturing stdout+stderr
 * into *output (caller frees). Returns the exit status. */
int tu_run_laguna(const char *args, char **output);
/* The device the engine tests open models on: $LAGUNA_TEST_DEVICE (e.g.
 * "cuda" on the GPU machine), NULL (the CPU) when unset. */
const char *tu_test_device(void);
/* A standard normal sample (Box-Muller over xorshift64 uniforms); *state is
 * the generator's, non-zero, so that each test keeps its own sequence. */
float tu_gauss(uint64_t *state);

#endif
