/* Q8_0 products with AVX-512 and VNNI, sixteen weight rows at a time, as
 * quant_gemm_x16_avx512.c does for Q4_K, Q5_K and Q6_K: one int32 lane per row.
 *
 * Why: the per-row kernel paid, per token and pair of 32-element blocks,
 * a conversion and two float operations on 16 lanes for 64 products, and
 * ran prefill at about half the speed of the grouped Q4_K kernels.
 * Here a block of 16 rows is 8 dwords of values (the grouped layout,
 * quant.h: LG_DTYPE_Q8_0_X16; blocks as ggml stores them are transposed
 * into it on the fly, so both give the same bits) and per token 8 vpdpbusd,
 * each with one dword of the token's activations broadcast, give 16 rows'
 * whole block sums in exact integers; one conversion and one multiply-add
 * then apply d * d_x for all 16 rows.
 *
 * Signs: vpdpbusd multiplies unsigned by signed bytes. The activations come
 * stored + 128 (Q8_0 lane order, quant_dot.h: pairs of blocks with lane 2g
 * dword g of the first, 2g + 1 dword g of the second; a last odd block in
 * element order) and the weights signed, so a lane's sum is sum (x + 128) w;
 * it starts at -128 sum w (8 vpdpbusd of 0x80 bytes per block, shared by the
 * pass's tokens), which leaves sum x w exactly (|(x + 128) w| <= 255 * 128,
 * 32 a block). Every (row, token) takes the same instructions whatever the
 * pass holds, so a token's result does not depend on its batch. (A mapped
 * file's decode, through the transposes, runs 25-30% slower than the per-row
 * kernel this replaced; making each row's block sums in place and only the
 * sums into row lanes did not measurably help: docs/performance.md.) */
#if defined(__x86_64__) && defined(__GNUC__)
#include "backend/cpu/avx512_vnni_target.h"
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/quant_dot.h"
#include "backend/cpu/quant_gemm_isa.h"
#include "quant/quant.h"

#define TILE 8 /* tokens per pass over a group's rows */
#define ROWS LG_X16_ROWS
#define BLOCK sizeof(lg_block_q8_0)
#define GROUP_BLOCK (ROWS * BLOCK) /* a block of 16 rows: 8 dwords x 16, then the 16 d */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

_Static_assert(sizeof(lg_block_q8_0) == 34, "ggml's block");

/* The tokens of a pass: each token's q8 row and its block scales. */
typedef struct {
    const uint8_t *row[TILE];
    const float *d[TILE];
} acts;

/* One block b of 16 rows (v: its grouped bytes) against nt tokens, added to
 * acc[t]; token t's 8 activation dwords of the block at a->row[t] + at,
 * `step` dwords apart (2 in a pair of blocks, 1 in a last odd block). */
static ALWAYS_INLINE void block_q8(const uint8_t *v, const acts *a, int nt, size_t at, int step, int64_t b,
                                   __m512 *acc) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512i W[8], start = _mm512_setzero_si512();
    UNROLL
    for (int k = 0; k < 8; k++) {
        W[k] = _mm512_loadu_si512(v + 64 * k);
        start = _mm512_dpbusd_epi32(start, bias, W[k]);
    }
    start = _mm512_sub_epi32(_mm512_setzero_si512(), start); /* -128 sum w */
    __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 64 * 8)));
    UNROLL
    for (int t = 0; t < nt; t++) {
        const int32_t *x4 = (const int32_t *)(a->row[t] + at);
        __m512i p = start;
        UNROLL
        for (int k = 0; k < 8; k++)
            p = _mm512_dpbusd_epi32(p, _mm512_set1_epi32(x4[step * k]), W[k]);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(d, _mm512_set1_ps(a->d[t][b])), acc[t]);
    }
}

/* Block b of 16 rows in ggml's blocks (row r's block at p + r * stride)
 * into the grouped form at v: rows i and i + 8 side by side in a register,
 * an 8 x 8 transpose of dwords in each half, then the halves' 128-bit
 * lanes into row order; the 16 d by one gather. */
static ALWAYS_INLINE void transpose_block(const uint8_t *p, size_t stride, __m512i rows_at, uint8_t *v) {
    __m512i z[8], a[8], b[8];
    UNROLL
    for (int i = 0; i < 8; i++) /* z[i]: row i's 8 value dwords, then row i + 8's */
        z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + i * stride + 2))),
                                  _mm256_loadu_si256((const __m256i *)(p + (i + 8) * stride + 2)), 1);
    UNROLL
    for (int i = 0; i < 8; i += 2) {
        a[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);     /* lane L: z_i[4L] z_i+1[4L] z_i[4L+1] z_i+1[4L+1] */
        a[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]); /* the same of 4L + 2, 4L + 3 */
    }
    UNROLL
    for (int g = 0; g < 8; g += 4) { /* b[g + j], lane L: dword 4(L % 2) + j of rows g .. g + 3 (+ 8 for L >= 2) */
        b[g] = _mm512_unpacklo_epi64(a[g], a[g + 2]);
        b[g + 1] = _mm512_unpackhi_epi64(a[g], a[g + 2]);
        b[g + 2] = _mm512_unpacklo_epi64(a[g + 1], a[g + 3]);
        b[g + 3] = _mm512_unpackhi_epi64(a[g + 1], a[g + 3]);
    }
    /* dword j: lanes 0 and 2 of b[j] and b[4 + j] in the order rows 0-3, 4-7,
     * 8-11, 12-15; dword 4 + j: their lanes 1 and 3 */
    const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0), hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    UNROLL
    for (int j = 0; j < 4; j++) {
        _mm512_storeu_si512(v + 64 * j, _mm512_permutex2var_epi64(b[j], lo, b[4 + j]));
        _mm512_storeu_si512(v + 64 * (4 + j), _mm512_permutex2var_epi64(b[j], hi, b[4 + j]));
    }
    __m512i d = _mm512_i32gather_epi32(rows_at, p, 1); /* each row's d and its first two values */
    _mm256_storeu_si256((__m256i *)(v + 64 * 8), _mm512_cvtepi32_epi16(d));
}

/* nt tokens against up to 16 rows starting at w, rows w_stride apart:
 * grouped (all 16 rows, w the group) or ggml's blocks, transposed first (a
 * missing row's lane is zeros, never stored). y[t * ys + r]. */
static ALWAYS_INLINE void group_rows(const uint8_t *w, bool grouped, size_t w_stride, int rows, const acts *a,
                                     int nt, int64_t nb, size_t ahead, float *y, size_t ys) {
    __m512 acc[TILE];
    UNROLL
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    _Alignas(64) uint8_t pad[GROUP_BLOCK], buf[GROUP_BLOCK];
    /* the last rows of a matrix (their blocks, zeros below), or rows too far
     * apart for the gather's 32-bit offsets, go through a copy */
    bool via_pad = rows < ROWS || w_stride > (size_t)INT32_MAX / ROWS;
    size_t stride = via_pad ? BLOCK : w_stride;
    __m512i rows_at = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                         _mm512_set1_epi32((int)stride));
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *v;
        if (grouped) {
            v = w + (size_t)b * GROUP_BLOCK;
            for (size_t o = 0; o < GROUP_BLOCK; o += 64)
                _mm_prefetch((const char *)v + ahead + o, _MM_HINT_T0);
        } else {
            const uint8_t *p = w + (size_t)b * BLOCK;
            if (via_pad) {
                memset(pad, 0, sizeof pad);
                for (int r = 0; r < rows; r++)
                    memcpy(pad + (size_t)r * BLOCK, p + (size_t)r * w_stride, BLOCK);
                p = pad;
            }
            /* the 16 rows are one stretch of memory: each step asks for its
             * share of the next group's (quant_gemm_x16_avx512.c says why) */
            for (size_t o = 0; o < GROUP_BLOCK; o += 64)
                _mm_prefetch((const char *)w + ROWS * w_stride + (size_t)b * GROUP_BLOCK + o, _MM_HINT_T0);
            transpose_block(p, stride, rows_at, buf);
            v = buf;
        }
        if (nb % 2 && b == nb - 1) /* a last odd block, in element order */
            block_q8(v, a, nt, 32 * (size_t)b, 1, b, acc);
        else /* a pair's first (even b) or second block: its dwords interleaved */
            block_q8(v, a, nt, 64 * (size_t)(b / 2) + 4 * (size_t)(b % 2), 2, b, acc);
    }
    __mmask16 live = (__mmask16)((1u << rows) - 1);
    UNROLL
    for (int t = 0; t < nt; t++)
        _mm512_mask_storeu_ps(y + (size_t)t * ys, live, acc[t]);
}

static ALWAYS_INLINE void rows_x16(const uint8_t *w, bool grouped, size_t w_stride, int n_rows, const uint8_t *x,
                                   size_t xs, int nt, int64_t n, float *y, size_t ys) {
    acts a;
    UNROLL
    for (int t = 0; t < nt; t++) {
        a.row[t] = x + (size_t)t * xs;
        a.d[t] = lg_q8_scales(a.row[t], n);
    }
    size_t ahead = lg_qgemm_prefetch_distance();
    for (int r = 0; r < n_rows; r += ROWS)
        group_rows(w + (size_t)r * w_stride, grouped, w_stride, n_rows - r < ROWS ? n_rows - r : ROWS, &a, nt,
                   n / 32, ahead, y + r, ys);
}

/* One pass of nt (1..8) tokens, a copy of the loops per count and form. */
#define CASE(NT)                                                                                   \
    case NT:                                                                                       \
        if (grouped)                                                                               \
            rows_x16(w, true, w_stride, n_rows, x, xs, NT, n, y, ys);                              \
        else                                                                                       \
            rows_x16(w, false, w_stride, n_rows, x, xs, NT, n, y, ys);                             \
        break;

static void pass_x16(bool grouped, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x, size_t xs,
                     int nt, int64_t n, float *y, size_t ys) {
    switch (nt) {
        LG_COUNT_CASES_1_TO_8(CASE)
    }
}

void lg_qgemm_x16_q8_0_avx512(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                              size_t x_stride, int n_tokens, int64_t n, float *y, size_t y_stride) {
    bool grouped = dtype == LG_DTYPE_Q8_0_X16;
    for (int t0 = 0; t0 < n_tokens; t0 += TILE) {
        int nt = n_tokens - t0 < TILE ? n_tokens - t0 : TILE;
        pass_x16(grouped, w, w_stride, n_rows, x + (size_t)t0 * x_stride, x_stride, nt, n,
                 y + (size_t)t0 * y_stride, y_stride);
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never chosen */
#include "backend/cpu/quant_dot.h"
void lg_qgemm_x16_q8_0_avx512(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                              size_t x_stride, int n_tokens, int64_t n, float *y, size_t y_stride) {
    (void)dtype, (void)w, (void)w_stride, (void)n_rows, (void)x, (void)x_stride, (void)n_tokens, (void)n,
        (void)y, (void)y_stride;
}
#endif
