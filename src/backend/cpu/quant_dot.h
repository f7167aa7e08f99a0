/* Products of quantised weight rows with 8-bit quantised activations.
 *
 * Why: dequantising a K-quant row to float and then multiplying costs far
 * more than reading it, so a 4-bit MoE decoded at a tenth of the memory
 * roofline that way. Quantising each activation row once per product lets
 * the inner loops multiply small integers exactly (vpdpbusd with AVX512-VNNI,
 * vpmaddubsw with AVX2) and apply the float scales once per block.
 *
 * Activation rows ("q8 rows"). A row of n floats becomes, at one 64-byte
 * aligned address, rows lg_q8_row_bytes(n, block) apart:
 *   int8  q[n]              x[i] ~= d[i / block] * q[i], q in [-127, 127]
 *   float d[n / block]      the block scales (amax / 127)
 *   int16 bsum[n / 16]      the sum of q over each 16 elements
 * The block is the weight type's (lg_q8_block): 32 for Q8_0 (as llama.cpp's
 * Q8_0 x Q8_0), 256 for the K-quants (as its Q8_K), so that a K-quant
 * super-block reduces to one integer sum before any float arithmetic.
 *
 * The product (lg_qgemm) takes a tile of weight rows times a tile of
 * activation rows. Every (row, token) output is computed with the same
 * instruction sequence whatever the tile's size or the output's place in it,
 * so a token's result does not depend on the batch (tests/test_context.c).
 * The kernels are chosen once, at run time, from what the CPU has
 * (lg_qgemm_isa_best): AVX512-VNNI, AVX2, or the scalar reference, which stays
 * the yardstick the tests compare the others with. */
#ifndef LAGUNA_BACKEND_CPU_QUANT_DOT_H
#define LAGUNA_BACKEND_CPU_QUANT_DOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

/* Instruction sets the kernels come in, slowest first. */
typedef enum { LG_ISA_SCALAR = 0, LG_ISA_AVX2, LG_ISA_AVX512_VNNI, LG_ISA_COUNT } lg_isa;

/* The best the CPU running us supports (cpuid, asked once). LAGUNA_CPU_ISA=
 * scalar|avx2|avx512 in the environment lowers it (for measurements). */
lg_isa lg_qgemm_isa_best(void);
bool lg_qgemm_isa_available(lg_isa isa);
const char *lg_qgemm_isa_name(lg_isa isa);

/* Activation block size for weights of this dtype: 32, 256, or 0 when the
 * integer path does not serve the dtype. */
int lg_q8_block(lg_dtype weights);

/* Bytes of one q8 row of n elements (n a multiple of block), a multiple of 64. */
size_t lg_q8_row_bytes(int64_t n, int block);

static inline const float *lg_q8_scales(const uint8_t *row, int64_t n) {
    return (const float *)(row + n);
}
static inline const int16_t *lg_q8_bsums(const uint8_t *row, int64_t n, int block) {
    return (const int16_t *)(row + n + 4 * (n / block));
}

/* Quantises n_rows rows of n floats (x rows n apart) into q8 rows at out,
 * lg_q8_row_bytes(n, block) apart. The vector version equals the reference
 * bit for bit. */
void lg_q8_quantize(const float *x, int n_rows, int64_t n, int block, uint8_t *out);
void lg_q8_quantize_reference(const float *x, int n_rows, int64_t n, int block, uint8_t *out);

/* The order of a q8 row's int8 values that the kernels of one instruction
 * set read for one weight type. Element order except:
 * - the AVX2 K-quant kernels read "pair order" in products of more than one
 *   token: each 64 elements (sub-blocks j and k = j + 1 of 32) as 32 bytes A
 *   then 32 bytes B, the 4-byte lane l (0..7) of A holding elements 4l, 4l+1
 *   of j then 4l, 4l+1 of k, that of B 4l+2, 4l+3 of j then of k, so that one
 *   vpmaddubsw pair and a vpaddw give each int16 lane a whole 4-element dot
 *   of one sub-block and one vpmaddwd scales two sub-blocks
 *   (quant_gemm_avx2.c). With one token (decode) they read element order:
 *   the weights' pair blends, shared by the tokens of a batch, would be paid
 *   for that one token alone (docs/performance.md, "CPU one-token K-quant
 *   products");
 * - the AVX-512 Q8_0 kernel reads "Q8_0 lane order": each 64 elements (blocks
 *   2p and 2p + 1 of 32) with 4-byte lane 2g holding elements 4g..4g+3 of
 *   block 2p and lane 2g + 1 those of block 2p + 1, and every value stored
 *   + 128 as an unsigned byte (a last odd block keeps element order, + 128);
 *   quant_gemm_x16_q8_0_avx512.c says why.
 * Scales and 16-element sums stay in element order (the sums of the signed
 * values), except that "sums of 32" (the AVX-512 Q4_K and Q5_K kernels,
 * element order otherwise) holds in the sums' place the n / 32 sums of each
 * 32 elements, the sub-blocks of Q4_K and Q5_K (quant_gemm_x16_avx512.c). */
typedef enum {
    LG_Q8_ELEMENT_ORDER = 0,
    LG_Q8_SUMS_OF_32,
    LG_Q8_PAIR_ORDER,
    LG_Q8_Q8_0_LANE_ORDER
} lg_q8_order;
/* The order for a product of n_tokens activation rows. */
lg_q8_order lg_q8_order_for(lg_isa isa, lg_dtype weights, int n_tokens);
/* lg_q8_quantize in the order lg_q8_order_for(isa, weights, n_rows) gives,
 * with the weight type's block: what lg_qgemm_isa(isa, ...) takes as x for
 * a product of these n_rows tokens. */
void lg_q8_quantize_for(lg_isa isa, lg_dtype weights, const float *x, int n_rows, int64_t n,
                        uint8_t *out);
/* The same in a given order: for some of a product's rows at a time. */
void lg_q8_quantize_in(lg_q8_order order, lg_isa isa, lg_dtype weights, const float *x, int n_rows,
                       int64_t n, uint8_t *out);

/* y[t * y_stride + r] = dot(weight row r, activation row t) (+ bias[r]) for
 * r < n_rows, t < n_tokens; weight rows w_stride bytes apart, q8 rows x_stride
 * bytes apart, quantised by lg_q8_quantize_for(isa, dtype) (lg_qgemm: the
 * best ISA); n a whole number of the dtype's blocks. */
typedef struct {
    lg_dtype dtype;
    const uint8_t *w;
    size_t w_stride;
    int n_rows;
    const uint8_t *x;
    size_t x_stride;
    int n_tokens;
    int64_t n;
    float *y;
    size_t y_stride;
    const float *bias;
} lg_qgemm_args;

void lg_qgemm(const lg_qgemm_args *a);
/* The same with a given instruction set (lg_qgemm_isa_available(isa)). */
void lg_qgemm_isa(lg_isa isa, const lg_qgemm_args *a);

/* The AVX2 kernels (quant_gemm_avx2.c): every token of one weight row; the
 * caller adds the bias. */
typedef void (*lg_qgemm_row_fn)(lg_dtype dtype, const uint8_t *row, const uint8_t *x,
                                size_t x_stride, int n_tokens, int64_t n, float *y,
                                size_t y_stride);
void lg_qgemm_row_avx2(lg_dtype dtype, const uint8_t *row, const uint8_t *x, size_t x_stride,
                       int n_tokens, int64_t n, float *y, size_t y_stride);
/* One token against n_rows weight rows (y[r], no bias), the same bits per
 * row as lg_qgemm_row_avx2 with one token; false for a dtype it does not
 * take (then nothing is written). */
bool lg_qgemm_rows1_avx2(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                         int64_t n, float *y);
/* Q4_K, Q5_K and Q6_K (dtype: as ggml stores them, any rows; or their
 * 16-row groups, LG_DTYPE_Q4_K_X16 / Q5_K_X16 / Q6_K_X16, w a group's start
 * and n_rows a multiple of 16) against n_tokens tokens (Q4_K, Q5_K:
 * sums-of-32 order; Q6_K: element order), y[t * y_stride + r], no bias: the AVX-512 product of
 * these types at every token count, the same bits grouped or not
 * (quant_gemm_x16_avx512.c). */
void lg_qgemm_x16_avx512(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                         size_t x_stride, int n_tokens, int64_t n, float *y, size_t y_stride);
/* The same for Q8_0 (dtype Q8_0 or LG_DTYPE_Q8_0_X16; x in Q8_0 lane order):
 * quant_gemm_x16_q8_0_avx512.c. */
void lg_qgemm_x16_q8_0_avx512(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                              size_t x_stride, int n_tokens, int64_t n, float *y, size_t y_stride);
void lg_q8_quantize_avx2(const float *x, int n_rows, int64_t n, int block, uint8_t *out);
/* Element order to pair order, the n int8 values of one q8 row in place. */
void lg_q8_pair_order_avx2(uint8_t *q, int64_t n);
/* Element order to Q8_0 lane order, the same (AVX-512 only). */
void lg_q8_0_lane_order_avx512(uint8_t *q, int64_t n);

/* The layout the best ISA's kernels want for a matrix of this dtype and
 * row count, when it differs from the file's: the 16-row groups of Q4_K,
 * Q5_K, Q6_K and Q8_0 with AVX-512 and rows a multiple of 16 (quant.h says what
 * they are), else the dtype itself. */
lg_dtype lg_qgemm_layout_for(lg_dtype dtype, int64_t rows);

/* How far ahead (bytes) the AVX-512 products ask for their weights: one
 * value for the process, set by the CPU backend from its thread count
 * (lg_qgemm_prefetch_for_threads); results never depend on it. */
#define LG_QGEMM_PREFETCH_FEW_THREADS ((size_t)16 << 10)
#define LG_QGEMM_PREFETCH_MANY_THREADS ((size_t)4 << 10)
void lg_qgemm_set_prefetch_ahead(size_t bytes);
size_t lg_qgemm_prefetch_distance(void);
static inline size_t lg_qgemm_prefetch_for_threads(int n_threads) {
    return n_threads > 8 ? LG_QGEMM_PREFETCH_MANY_THREADS : LG_QGEMM_PREFETCH_FEW_THREADS;
}

#endif
