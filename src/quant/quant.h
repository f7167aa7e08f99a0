/* Block-quantised weight formats, byte for byte ggml's (ggml-common.h), with
 * ggml's reference quantisers and bit-exact dequantisers.
 *
 * A quantised row is a sequence of blocks; each block stores a small group of
 * elements (32, or 256 for the k-quants) as integers plus float16 scales. The
 * element order inside a block is ggml's, documented per type below, so a GGUF
 * file written by llama.cpp reads here unchanged and the reverse. Dequantised
 * values equal ggml's dequantize_row_* exactly (same float operations in the
 * same order; the build uses -std=c11, so no fused multiply-add contraction).
 * Quantisers follow ggml's *_ref functions (quantize_row_q4_K_ref, ...), the
 * ones llama-quantize uses without an importance matrix.
 *
 * Multi-byte fields are little-endian, as in GGUF; the engine assumes a
 * little-endian host. All functions take n = a whole number of blocks. */
#ifndef LAGUNA_QUANT_QUANT_H
#define LAGUNA_QUANT_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"

#define LG_QK 32    /* elements per block of Q8_0, Q4_0, Q5_0, Q5_1 */
#define LG_QK_K 256 /* elements per k-quant super-block */

/* x = d * q, q in [-128, 127]; elements in order. */
typedef struct {
    uint16_t d; /* float16 */
    int8_t qs[LG_QK];
} lg_block_q8_0;

/* x = d * (q - 8); byte j holds element j (low nibble) and j + 16 (high). */
typedef struct {
    uint16_t d;
    uint8_t qs[LG_QK / 2];
} lg_block_q4_0;

/* x = d * (q - 16), q 5 bits: low nibbles as Q4_0, bit 4 of element j is bit
 * j of the little-endian 32-bit qh. */
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[LG_QK / 2];
} lg_block_q5_0;

/* x = d * q + m, q 5 bits, laid out as Q5_0. */
typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[LG_QK / 2];
} lg_block_q5_1;

/* Eight sub-blocks of 32: x = d*sc[j]*q - dmin*m[j], q 4 bits. scales packs
 * eight 6-bit sc and eight 6-bit m (see lg_k4_scale_min). Each 64-element
 * group uses 32 bytes of qs: low nibbles = its first 32 elements, high
 * nibbles = the next 32. */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[LG_QK_K / 2];
} lg_block_q4_K;

/* As Q4_K with 5-bit q: the high bit of element l of 64-element group g is
 * bit 2g (first 32) or 2g+1 (second 32) of qh[l % 32]. */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[LG_QK_K / 8];
    uint8_t qs[LG_QK_K / 2];
} lg_block_q5_K;

/* Sixteen sub-blocks of 16: x = d * scales[j] * (q - 32), q 6 bits. Per
 * 128-element half: ql[0..63] low nibbles of elements 0-31 / 64-95 (low /
 * high nibble of ql[l]) and 32-63 / 96-127 (ql[l+32]); qh[l] holds the top two
 * bits of elements l, l+32, l+64, l+96 at bit 0, 2, 4, 6. */
typedef struct {
    uint8_t ql[LG_QK_K / 2];
    uint8_t qh[LG_QK_K / 4];
    int8_t scales[LG_QK_K / 16];
    uint16_t d;
} lg_block_q6_K;

_Static_assert(sizeof(lg_block_q8_0) == 34, "block_q8_0 is 34 bytes in ggml");
_Static_assert(sizeof(lg_block_q4_0) == 18, "block_q4_0 is 18 bytes in ggml");
_Static_assert(sizeof(lg_block_q5_0) == 22, "block_q5_0 is 22 bytes in ggml");
_Static_assert(sizeof(lg_block_q5_1) == 24, "block_q5_1 is 24 bytes in ggml");
_Static_assert(sizeof(lg_block_q4_K) == 144, "block_q4_K is 144 bytes in ggml");

/* LG_DTYPE_Q4_K_X16, Q5_K_X16, Q6_K_X16, Q8_0_X16: a Q4_K, Q5_K, Q6_K or
 * Q8_0 matrix whose rows go in groups of LG_X16_ROWS, each group in the bytes
 * its rows had, block by block: the 16 rows' blocks b (B bytes each: 144,
 * 176, 210, 34) take 16 B bytes. A block's bytes from `lead` on (0; Q8_0: 2, its d first, so
 * that its values sit on dword boundaries) are D = (B - lead) / 4 dwords,
 * dword k of row r's block at 64 k + 4 r; the R = B - 4 D bytes left of each
 * (the lead, then any after the dwords: Q6_K's d, Q8_0's d) at 64 D + R r.
 * So one 64-byte load gives the AVX-512 kernels the same piece of 16 rows,
 * one row per int32 lane (backend/cpu/quant_gemm_x16_avx512.c,
 * quant_gemm_x16_q8_0_avx512.c). Made in memory the model owns, never in a
 * file; a matrix of rows not a multiple of 16 keeps ggml's form. */
#define LG_X16_ROWS 16
/* The grouped dtype of a base type (Q4_K, Q5_K, Q6_K, Q8_0), and back; others map to themselves. */
lg_dtype lg_x16_of(lg_dtype base);
lg_dtype lg_x16_base(lg_dtype dtype);
/* The bytes at a base type's block start that go after its dwords (above). */
size_t lg_x16_lead(lg_dtype base);
/* In place over a whole matrix of `rows` (a multiple of 16) rows of `cols`
 * elements of the base type; 0, or -1 (nothing changed) when out of memory
 * for the copy of one group they go through. */
int lg_x16_group(void *matrix, lg_dtype base, int64_t rows, int64_t cols);
int lg_x16_ungroup(void *matrix, lg_dtype base, int64_t rows, int64_t cols);
/* One group (its first byte) either way, through scratch (a group's bytes). */
void lg_x16_regroup(void *group, lg_dtype base, int64_t cols, bool to_x16, void *scratch);
/* Row r (0..15) of a group as the base type's blocks, and dequantised
 * (lg_dequantize_row cannot: it sees one row). */
void lg_x16_row(const void *group, lg_dtype base, int r, int64_t cols, void *out);
void lg_x16_dequantize_row(const void *group, lg_dtype base, int r, float *dst, int64_t cols);
_Static_assert(sizeof(lg_block_q5_K) == 176, "block_q5_K is 176 bytes in ggml");
_Static_assert(sizeof(lg_block_q6_K) == 210, "block_q6_K is 210 bytes in ggml");

/* Elements and bytes per block of a quantised dtype (0 for other dtypes). */
int lg_quant_block_elems(lg_dtype dtype);
int lg_quant_block_bytes(lg_dtype dtype);

/* Dequantise / quantise n elements (a whole number of blocks). Dequantise
 * accepts any src alignment. */
void lg_dequantize_row(lg_dtype dtype, const void *src, float *dst, int64_t n);
void lg_quantize_row(lg_dtype dtype, const float *src, void *dst, int64_t n);

/* dot(dequantised row, x) over n elements, accumulated in float32. */
float lg_quant_dot(lg_dtype dtype, const void *row, const float *x, int64_t n);

/* Sub-block j's 6-bit scale and min from a Q4_K / Q5_K scales[12] (inline:
 * the dot products call it for every sub-block). */
static inline void lg_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Per-family entry points (quant_legacy.c, quant_kquants.c). */
void lg_dequantize_q8_0(const void *src, float *dst, int64_t n);
void lg_dequantize_q4_0(const void *src, float *dst, int64_t n);
void lg_dequantize_q5_0(const void *src, float *dst, int64_t n);
void lg_dequantize_q5_1(const void *src, float *dst, int64_t n);
void lg_dequantize_q4_K(const void *src, float *dst, int64_t n);
void lg_dequantize_q5_K(const void *src, float *dst, int64_t n);
void lg_dequantize_q6_K(const void *src, float *dst, int64_t n);
void lg_quantize_q8_0(const float *src, void *dst, int64_t n);
void lg_quantize_q4_0(const float *src, void *dst, int64_t n);
void lg_quantize_q5_0(const float *src, void *dst, int64_t n);
void lg_quantize_q5_1(const float *src, void *dst, int64_t n);
void lg_quantize_q4_K(const float *src, void *dst, int64_t n);
void lg_quantize_q5_K(const float *src, void *dst, int64_t n);
void lg_quantize_q6_K(const float *src, void *dst, int64_t n);

#endif
