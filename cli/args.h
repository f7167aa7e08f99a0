/* Command-line argument helpers shared by the cli/cmd_*.c commands: number
 * parsing with range checks and a clear message on bad input. */
#ifndef LAGUNA_CLI_ARGS_H
#define LAGUNA_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0 on success; on failure prints "laguna: OPTION: why" and returns -1. */
int arg_int(const char *option, const char *text, long lo, long hi, int *out);
int arg_u64(const char *option, const char *text, uint64_t *out);
int arg_float(const char *option, const char *text, double lo, double hi, float *out);
/* "1,2,3" or "1 2 3" -> a heap array (caller frees). */
int arg_token_list(const char *option, const char *text, int32_t **out, size_t *n);
/* "auto", "mmap" or "copy" -> laguna_load_mode. */
int arg_load_mode(const char *option, const char *text, int *out);
/* The value after option argv[*i], advancing *i; NULL (with a message) if missing. */
const char *arg_value(int argc, char **argv, int *i);

#endif
