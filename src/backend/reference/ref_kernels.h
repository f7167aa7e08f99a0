/* Slow, obvious versions of the kernels, kept as the yardstick the fast ones
 * are tested against (double accumulation, no threads, no tricks). */
#ifndef LAGUNA_BACKEND_REFERENCE_KERNELS_H
#define LAGUNA_BACKEND_REFERENCE_KERNELS_H

#include "backend/tensor.h"

void lg_ref_matmul(float *y, const float *x, int n_tokens, const lg_matrix *w, const float *bias);

/* keys/values: [n_keys][n_kv_heads][head_dim] for positions 0..n_keys-1;
 * queries at positions q_pos0 + t. */
void lg_ref_attention(float *out, const float *q, int n_tokens, int n_heads, int n_kv_heads, int head_dim, int q_pos0,
                      int window, const float *keys, const float *values, int n_keys);

#endif
