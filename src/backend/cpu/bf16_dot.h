/* BF16 weights times activations rounded to bf16, with the CPU's bf16 dot
 * products (AVX-512 BF16 `vdpbf16ps`: 32 products an instruction, float32
 * sums): an opt-in for prompt speed (the `bf16_activations` model option,
 * `--bf16-activations`).
 *
 * Why opt-in: the default float products (float_gemm.h) keep the activations
 * in float32 and run at the float multiply-add rate, 16 products an
 * instruction; rounding the activations to bf16 (8 bits of mantissa) doubles
 * that rate, as llama.cpp does for bf16 weights, but moves the logits by
 * ~1e-2 relative instead of ~1e-6 (docs/performance.md, "CPU: bf16
 * activations"). Each (row, token) output takes the same instructions
 * wherever it sits in a tile, so results stay independent of the batch. */
#ifndef LAGUNA_BACKEND_CPU_BF16_DOT_H
#define LAGUNA_BACKEND_CPU_BF16_DOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* y[t * y_stride + r] = dot(weight row r, x row t) (+ bias[r]) for r < n_rows,
 * t < n_tokens: BF16 weight rows w_stride bytes apart, bf16 activation rows
 * (lg_bf16_round_rows) x_stride elements apart, rows of n elements. */
typedef struct {
    const uint8_t *w;
    size_t w_stride;
    int n_rows;
    const uint16_t *x;
    size_t x_stride;
    int n_tokens;
    int64_t n;
    float *y;
    size_t y_stride;
    const float *bias;
} lg_bf16_dot_args;

/* Whether this CPU has the instructions (AVX-512 with BF16, the OS saving
 * the registers). Decided once. */
bool lg_bf16_dot_available(void);

/* Bytes of one activation row of n elements as lg_bf16_round_rows writes it
 * (zeros after n up to a multiple of 32 elements; 64-byte multiple). */
size_t lg_bf16_row_bytes(int64_t n);

/* n_rows float rows of n (x, n apart) rounded to bf16 (to nearest even)
 * into rows of lg_bf16_row_bytes(n) from out. */
void lg_bf16_round_rows(const float *x, int n_rows, int64_t n, uint8_t *out);

/* The product (lg_bf16_dot_available() must be true). */
void lg_bf16_dot_gemm(const lg_bf16_dot_args *a);

#endif
