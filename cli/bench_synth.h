/* The parts of `laguna bench` for models held only in memory and for
 * devices: --synth PRESET [--layers N] [--type T] [--seed S] opens a random
 * model of a preset's shapes with no checkpoint file (model/model_synth.h),
 * and a device backend's own copy bandwidth gives decoding's roofline. */
#ifndef LAGUNA_CLI_BENCH_SYNTH_H
#define LAGUNA_CLI_BENCH_SYNTH_H

#include <stdint.h>

#include "laguna.h"

typedef struct {
    const char *preset; /* NULL: no --synth */
    const char *type;   /* NULL: bf16 as `laguna synth` writes */
    int layers;         /* 0: all of the preset's */
    uint64_t seed;      /* 1 unless --seed */
    int seed_given;
    char label[128]; /* what the bench prints as the model */
} bench_synth;

#define BENCH_SYNTH_USAGE                                                                          \
    "  --synth PRESET   no checkpoint: random weights of a preset's shapes (xs2, xs2.1,\n"         \
    "                   s2.1, m1, synth-tiny) made in the device's memory (on a GPU by it)\n"      \
    "  --layers N       with --synth: only the first N layers\n"                                   \
    "  --type T         with --synth: the weight types `laguna synth --type T` writes\n"           \
    "                   (q8_0, q4_k_m, q5_k_m, q6_k, bf16, f32); default bf16 everywhere\n"        \
    "  --seed S         with --synth: the weights' seed (default 1)\n"

/* If argv[*i] is one of the options above, parses it (advancing *i) and
 * returns 1; 0 for any other argument, -1 (message printed) for a bad value. */
int bench_synth_option(int argc, char **argv, int *i, bench_synth *s);

/* Opens the model: the synthetic one when s->preset is set, else path.
 * Prints the error and returns non-zero on failure. */
int bench_open_model(const char *path, bench_synth *s, const laguna_model_options *o,
                     laguna_model **out);

/* Prints the device's copy bandwidth and decode speed beside the floor
 * that bandwidth implies for decode_bytes per token; nothing for a backend
 * that cannot time a copy (the CPU, which bench probes its own way). */
void bench_print_device_roofline(laguna_model *m, double decode_bytes, double decode_tps);

#endif
