/* Writes a random checkpoint folder in the real Hugging Face layout and shapes
 * (config.json, generation_config.json, safetensors shards + index). */
#ifndef LAGUNA_SYNTH_SYNTH_H
#define LAGUNA_SYNTH_SYNTH_H

#include <stdint.h>

#include "core/dtype.h"
#include "io/tensor_source.h"
#include "model/config.h"

typedef struct {
    lg_dtype dtype;          /* F32, BF16 or F16 */
    uint64_t seed;
    uint64_t max_shard_bytes; /* 0 = one model.safetensors */
    /* called after each tensor with bytes written so far and the total; may be NULL */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *user;
} lg_synth_options;

laguna_status lg_synth_write(const lg_config *cfg, const char *out_dir, const lg_synth_options *opt, laguna_error *err);

/* Only the checkpoint's config.json and generation_config.json (the shapes,
 * for tools that build the same model elsewhere: `laguna synth --config-only`). */
laguna_status lg_synth_write_config(const lg_config *cfg, const char *out_dir, laguna_error *err);

/* The same checkpoint as a tensor source whose tensors have no data: values
 * come from lg_synth_generate, so a quantiser can stream a model that would
 * not fit on disk in float form (laguna synth --type). */
laguna_status lg_synth_tensor_source(const lg_config *cfg, lg_dtype dtype, lg_tensor_source **out, laguna_error *err);

/* Bytes [offset, offset + n_bytes) of tensor t's data as lg_synth_write would
 * write them with this seed. */
void lg_synth_generate(uint64_t seed, const lg_tensor *t, size_t offset, void *dst, size_t n_bytes);

/* The distribution of a tensor's values (uniform noise of this mean and
 * standard deviation: norm weights near 1, biases 0.01, weights 0.02) and
 * the generator's start state, from the seed and the tensor's name. A
 * device that generates weights itself starts from the same state. */
void lg_synth_noise(const char *name, uint64_t seed, float *mean, float *std, uint64_t *state);

#endif
