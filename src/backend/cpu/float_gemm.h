/* Products of float weight rows (F32, BF16, F16) with float activations.
 *
 * Why: these loops were left to the compiler's vectoriser, so they ran as
 * fast as the build's -march allowed: a portable build (no -march) decoded a
 * bf16 model 1.5x and prefilled it 2.9x slower than a -march=native one, and
 * even the native build read bf16 weights at ~14 GB/s a core, a fifth of
 * what the memory gives (docs/performance.md, "CPU: float weights").
 *
 * Each weight row is converted in registers (bf16: a shift; f16: vcvtph2ps)
 * and multiplied into float32 accumulators, one vector of partial sums per
 * (row, token), summed across its lanes at the end: the activations are
 * never rounded, so the results stay as close to the float golden files as
 * the compiler's loops were. Tiles of rows times tokens share each load;
 * every (row, token) output takes the same instructions wherever it sits in
 * a tile, so a token's result does not depend on the batch it is in. The
 * kernels come per instruction set (AVX-512, AVX2 with FMA and F16C),
 * compiled for it whatever the build's -march and chosen at run time
 * with the quantised products' choice (quant_dot.h). */
#ifndef LAGUNA_BACKEND_CPU_FLOAT_GEMM_H
#define LAGUNA_BACKEND_CPU_FLOAT_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/quant_dot.h"
#include "core/dtype.h"

/* y[t * y_stride + r] = dot(weight row r, x row t) (+ bias[r]) for r <
 * n_rows, t < n_tokens; weight rows w_stride bytes apart, x rows x_stride
 * floats apart, rows of n elements. */
typedef struct {
    lg_dtype dtype;
    const uint8_t *w;
    size_t w_stride;
    int n_rows;
    const float *x;
    size_t x_stride;
    int n_tokens;
    int64_t n;
    float *y;
    size_t y_stride;
    const float *bias;
} lg_fgemm_args;

/* Whether this instruction set has kernels for this weight type (the scalar
 * one has none: cpu_matmul.c's compiler-vectorised loops stand in). The
 * caller checks that the CPU has it (lg_qgemm_isa_available). */
bool lg_fgemm_serves(lg_isa isa, lg_dtype dtype);
/* The product with a given instruction set (lg_fgemm_serves(isa, dtype)). */
void lg_fgemm_isa(lg_isa isa, const lg_fgemm_args *a);

/* Per instruction set (float_gemm_avx512.c, float_gemm_avx2.c). */
void lg_fgemm_avx512(const lg_fgemm_args *a);
void lg_fgemm_avx2(const lg_fgemm_args *a);

#endif
