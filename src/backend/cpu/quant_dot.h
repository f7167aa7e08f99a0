/* Dot products of quantised weight rows with 8-bit quantised activations.
 *
 * Why: dequantising a K-quant row to float and then multiplying costs far
 * more than reading it, so decoding a 4-bit MoE was compute-bound at a tenth
 * of the memory roofline. Quantising the activation row once per product
 * (blocks of 32 int8 with a float scale, as ggml's Q8 activations) lets the
 * inner loops multiply small integers exactly and apply the float scales once
 * per sub-block. Integer sums inside a sub-block are exact; across sub-blocks
 * and blocks the accumulation is float32.
 *
 * Each weight type has a plain scalar version (lg_quant_dot_q8x_reference:
 * unpack to integers, then one generic sum) and, where the build targets
 * AVX2, a vector version that the tests compare with it. */
#ifndef LAGUNA_BACKEND_CPU_QUANT_DOT_H
#define LAGUNA_BACKEND_CPU_QUANT_DOT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"

/* 32 activations: x ~= d * q, q in [-127, 127]; sum[h] = the sum of q over
 * elements 16h .. 16h+15 (for the offset / min terms of the weight formats). */
typedef struct {
    float d;
    int16_t sum[2];
    int8_t q[32];
} lg_block_q8x;

#define LG_Q8X_BLOCK 32

/* Whether lg_quant_dot_q8x handles rows of this dtype. */
bool lg_quant_dot_supported(lg_dtype dtype);

/* Whether lg_quant_dot_q8x has a vector version for this dtype in this build
 * (without one, the scalar reference serves, which is slower than the float
 * path for large batches). */
bool lg_quant_dot_vectorized(lg_dtype dtype);

/* Quantises n activations (n a multiple of 32) into n/32 blocks. */
void lg_quantize_activations(const float *x, int64_t n, lg_block_q8x *out);
/* Its scalar version (the reference the vector one must equal exactly). */
void lg_quantize_activations_reference(const float *x, int64_t n, lg_block_q8x *out);

/* dot(dequantised weight row, activations) over n elements (a whole number of
 * the dtype's blocks). The vector version where available. */
float lg_quant_dot_q8x(lg_dtype dtype, const void *row, const lg_block_q8x *x, int64_t n);

/* out[t] = the same dot with activation row x + t * x_stride (in blocks), for
 * t < n_tokens: each weight block is unpacked once for up to LG_Q8X_TOKENS
 * rows, so a few tokens cost less than a few single dots. */
#define LG_Q8X_TOKENS 4
void lg_quant_dot_q8x_tokens(lg_dtype dtype, const void *row, const lg_block_q8x *x,
                             int64_t x_stride, int n_tokens, int64_t n, float *out);

/* The scalar version of the same sum (kept as the reference and fallback). */
float lg_quant_dot_q8x_reference(lg_dtype dtype, const void *row, const lg_block_q8x *x, int64_t n);

#endif
