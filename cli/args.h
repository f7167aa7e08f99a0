/* Command-line argument helpers shared by the cli/cmd_*.c commands: number
 * parsing with range checks and a clear message on bad input. */
#ifndef LAGUNA_CLI_ARGS_H
#define LAGUNA_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* The command being run, for the "laguna CMD: " prefix of every message. */
void arg_set_command(const char *name);
const char *arg_command(void);
/* Prints "laguna CMD: <message>" and a hint to --help; returns 2 (the exit
 * status of a usage error). */
int arg_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Each returns 0 on success; on failure prints "laguna CMD: OPTION: why" and returns -1. */
int arg_int(const char *option, const char *text, long lo, long hi, int *out);
int arg_u64(const char *option, const char *text, uint64_t *out);
int arg_float(const char *option, const char *text, double lo, double hi, float *out);
/* "1,2,3" or "1 2 3" -> a heap array (caller frees). */
int arg_token_list(const char *option, const char *text, int32_t **out, size_t *n);
#include "laguna.h"

/* Options shared by the commands that run a model. */
typedef struct {
    laguna_model_options model;     /* --threads, --load */
    laguna_session_options session; /* --ctx, --kv-type */
    laguna_sampler_params sampler;  /* --temp --top-k --top-p --min-p --repeat-penalty --seed */
    int filters_given;              /* --top-k, --top-p or --min-p was given */
} run_options;

run_options run_options_default(void);
/* If argv[*i] is one of the shared options, parses it (advancing *i) and
 * returns 1; returns 0 for any other argument and -1 (message printed) for a
 * bad value. */
int arg_run_option(int argc, char **argv, int *i, run_options *o);
/* The model options every command that opens a model takes the same way
 * (--device, --devices, --load, --bf16-activations; --threads' bounds are
 * each command's own): 1 if argv[*i] was one (*i advanced past its value),
 * 0 if not, -1 if its value was bad (message printed). */
int arg_model_option(int argc, char **argv, int *i, laguna_model_options *mo);
/* After parsing: says on stderr when sampling filters were given that greedy
 * decoding (no --temp) ignores. */
void run_options_note(const run_options *o);
/* After the model opened: a note on stderr when an option asked for could
 * not be taken (--bf16-activations off the CPU or without AVX-512 BF16). */
void model_options_note(const laguna_model_options *o, const laguna_model *m);
/* Structured output: --json (any JSON object) or --json-schema FILE (a JSON
 * Schema read from FILE): 1 if argv[*i] was one (*schema, freed first: the
 * schema's text, heap), 0 if not, -1 (message printed) if bad. */
int arg_json_schema_option(int argc, char **argv, int *i, char **schema);
#define JSON_SCHEMA_USAGE                                                                        \
    "  --json                 answer with a JSON object (structured output)\n"                     \
    "  --json-schema FILE     answer with JSON valid under the JSON Schema in FILE (reasoning\n"   \
    "                         stays free; sampled from the logits, so no --draft-lookup)\n"
/* The usage lines for those options. */
#define RUN_OPTIONS_USAGE                                                                        \
    "  --temp T               sampling temperature (default 0: greedy, and then the filters\n"        \
    "                         below do nothing)\n"                                                     \
    "  --top-k K              keep the K likeliest tokens (default 0: off)\n"                          \
    "  --top-p P              keep the likeliest tokens up to probability P (default 1: off)\n"        \
    "  --min-p P              drop tokens below P x the likeliest one's probability (default 0: off)\n"\
    "  --repeat-penalty R     penalise tokens already seen (default 1: off)\n"                         \
    "  -s, --seed S           sampling seed (default random; --stats prints it)\n"                    \
    "  -c, --ctx-size N       context length (default: the model's maximum)\n"                         \
    "  --kv-type T            KV cache storage: auto (default: f32 for now), f32, f16, bf16, q8_0\n"   \
    "  -b, --batch-size N     most prompt tokens per forward step (default 2048 on a GPU, 512 on the CPU)\n" \
    "  -t, --threads N        compute threads (default 0: all cores)\n"                                \
    "  --device D             cpu (default) or cuda[:N]\n"                                            \
    "  --devices LIST         split the model over several GPUs, cuda:0,cuda:1,... (one per GPU;\n"   \
    "                         not yet run on real GPUs), or cpu:N to simulate N of them on the CPU\n" \
    "  --load auto|mmap|copy  map the weights or copy them into RAM (default auto)\n"              \
    "  --bf16-activations     CPU, bf16 weights: activations rounded to bf16 for the CPU's bf16 dot\n" \
    "                         products (AVX-512 BF16; ~1.4x faster prompts, logits within ~1e-2)\n"

/* "auto", "mmap" or "copy" -> laguna_load_mode. */
int arg_load_mode(const char *option, const char *text, int *out);
/* The value after option argv[*i], advancing *i; NULL (with a message) if missing. */
const char *arg_value(int argc, char **argv, int *i);

#endif
