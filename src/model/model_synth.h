/* Models with no checkpoint: a synth preset's shapes (src/synth/presets.c)
 * with random weights made where they will live, for benchmarks of models
 * that do not fit on disk (Laguna-XS.2 in bf16 is 67 GB).
 *
 * The tensors are those `laguna synth` writes; with a type they have the
 * dtypes `laguna synth --type T` (and `laguna quantize --type T`) give them,
 * llama.cpp's mix for that file type. Their values:
 *   - on a backend with the synth_weights op (CUDA), every matrix is made in
 *     device memory by the device from the seed and the tensor's name (the
 *     distribution lg_synth_noise says; not the CPU's values);
 *   - otherwise (CPU, reference) on the host, exactly the bytes `laguna synth`
 *     would write, then quantised as `laguna synth --type` would: the model
 *     equals the one read from those files, bit for bit;
 *   - vectors (norms ~1, biases) always on the host, as `laguna synth` makes
 *     them, converted to float32 and adopted like any model's. */
#ifndef LAGUNA_MODEL_MODEL_SYNTH_H
#define LAGUNA_MODEL_MODEL_SYNTH_H

#include <stdint.h>

#include "model/model.h"

/* preset: "xs2", "xs2.1", "s2.1", "m1", "synth-tiny"; layers > 0 keeps the
 * first n; type: NULL for bf16 everywhere (the Hugging Face checkpoint
 * `laguna synth` writes), or a file type of `laguna synth --type` ("q8_0",
 * "q4_k_m", "q5_k_m", "q6_k", "bf16", "f32"). A device that cannot hold the
 * weights is refused before anything is made, saying how much they need. */
laguna_status lg_model_open_synth(const char *preset, int layers, const char *type, uint64_t seed,
                                  const laguna_model_options *options, laguna_model **out,
                                  laguna_error *err);

/* For the binder (weights.c), tensors without data. A matrix in backend
 * memory (NULL with err set when out of memory); row_bytes is its dtype's. */
const uint8_t *lg_model_synth_matrix(laguna_model *m, const lg_tensor *t, int64_t rows,
                                     int64_t cols, size_t row_bytes, laguna_error *err);
/* A vector's n values as float32, into dst (host); -1 when out of memory. */
int lg_model_synth_vector(const laguna_model *m, const lg_tensor *t, float *dst, int64_t n);
/* Frees what host generation kept between tensors (a thread pool); after binding. */
void lg_model_synth_finish(laguna_model *m);

#endif
