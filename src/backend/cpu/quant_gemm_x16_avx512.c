/* Q4_K, Q5_K and Q6_K products with AVX-512 and VNNI, sixteen weight rows at a
 * time: one int32 lane per row rather than one per piece of a row.
 *
 * A zmm register holds the same 4-byte piece (dword k of the block) of 16
 * rows' super-blocks, which is the grouped dtypes' layout (quant.h:
 * LG_DTYPE_Q4_K_X16, Q5_K_X16, Q6_K_X16); blocks as ggml stores them are
 * transposed into that form a super-block at a time (mapped files, rows not
 * a multiple of 16), so both run the same arithmetic and give the same bits.
 * One vpdpbusd per dword, with the token's four activation bytes broadcast
 * from memory, gives each row's 4-element dot; a sub-block's dots are summed
 * in int32 and one vpmulld applies the 16 rows' scales; a super-block stays
 * in exact integers to its end, then one or two float multiply-adds per
 * token apply d * d_x. No horizontal sums at all, and the weights' unpacking
 * and scales are paid once per 16 rows for every token of a pass (8).
 *
 * Q4_K (dword 0: d | dmin; 1-3: the packed 6-bit scales and mins; 4-35: qs).
 * Dword 4 + i holds qs bytes 4i..4i+3: low nibbles elements 64g + 4(i % 8)
 * .. + 3 (g = i / 8), high nibbles the same + 32; so sub-block s (32
 * elements) is the low (s even) or high (s odd) nibbles of dwords
 * 4 + 8(s / 2) .. + 7 against activations 32s .. 32s + 31 in element order:
 * at most 32 * 15 * 127 per sub-block, times a scale of 63, eight of them
 * < 2^31. The mins take four vpdpwssd of the rows' (m_2j, m_2j+1) pairs by
 * the token's 32-element sums (quant_dot.h: sums of 32), then
 *   acc += float(isum) * (d * d_x);  acc -= float(msum) * (dmin * d_x).
 *
 * Q5_K (dwords 0-3 as Q4_K; 4-11: qh; 12-43: qs): as Q4_K with qs from dword
 * 12 and a fifth bit on each value: bit s of the bytes of qh dword i (i < 8)
 * for sub-block s, moved to bit 4 (values up to 31: 32 * 31 * 127 * 63 * 8
 * < 2^31, exact).
 *
 * Q6_K (dwords 0-31: ql; 32-47: qh; 48-51: the int8 scales; d after). For
 * half h, quad c (0..7) and m (0..3), elements 128h + 32m + 4c .. + 3 are
 * ql dword 16h + 8(m % 2) + c's low (m < 2) or high nibbles with bits 2m,
 * 2m + 1 of qh dword 32 + 8h + c on top: 6 unsigned bits, u = q + 32, so a
 * sub-block of 16 is four dwords against activations in element order, and
 * the 32 comes off as 32 * sum(scale * 16-element sum) by eight vpdpwssd:
 *   acc += float(isum - 32 * osum) * (d * d_x)
 * (|isum| <= 16 * 128 * 16 * 63 * 127, |32 osum| <= 32 * 16 * 128 * 2032:
 * exact).
 *
 * Every (row, token) takes the same instructions in the same order whatever
 * the pass holds, so a token's result does not depend on its batch.
 * docs/performance.md, "CPU: K-quants sixteen rows at a time", has the
 * measurements. */
#if defined(__x86_64__) && defined(__GNUC__)
#include "backend/cpu/avx512_vnni_target.h"
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "backend/cpu/quant_dot.h"
#include "backend/cpu/quant_gemm_isa.h"
#include "quant/quant.h"

#define TILE 8 /* tokens per pass over a group's rows */
#define ROWS LG_X16_ROWS
/* a row's block two ahead (the transposed path): measured against 1, 4, 8 */
#define ROW_AHEAD(block) (2 * (block)) /* a Q4_K block is 36 dwords: d|dmin, 3 of scales, 32 of nibbles */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

_Static_assert(sizeof(lg_block_q4_K) == 144 && sizeof(lg_block_q5_K) == 176 && sizeof(lg_block_q6_K) == 210,
               "ggml's blocks");
enum { K4, K5, K6 }; /* the weight type of a pass */
#define BLOCK(kind) \
    ((kind) == K6 ? sizeof(lg_block_q6_K) : (kind) == K5 ? sizeof(lg_block_q5_K) : sizeof(lg_block_q4_K))

/* Dword k of the 16 rows of a grouped super-block v (at any address). */
static ALWAYS_INLINE __m512i dword(const uint8_t *v, int k) {
    return _mm512_loadu_si512(v + 64 * k);
}

/* The 6-bit scale (min: false) or min (true) of sub-block j of the 16 rows
 * as int32 lanes, from dwords 1-3 (the 12 packed bytes q[]); the rule of
 * lg_k4_scale_min: for j < 4 the scale is q[j] & 63 and the min q[j + 4] & 63;
 * for j >= 4 the low four bits are q[j + 4]'s low (scale) or high (min)
 * nibble and the top two bits 6-7 of q[j - 4] (scale) or q[j] (min). */
static ALWAYS_INLINE __m512i scale_of(const uint8_t *v, int j, bool min) {
    __m512i first = dword(v, min ? 2 : 1); /* q[0..3] or q[4..7] */
    if (j < 4) return _mm512_and_si512(_mm512_srli_epi32(first, 8 * j), _mm512_set1_epi32(63));
    int k = j - 4;
    __m512i low = _mm512_and_si512(_mm512_srli_epi32(dword(v, 3), 8 * k + (min ? 4 : 0)), _mm512_set1_epi32(15));
    __m512i top = _mm512_and_si512(_mm512_srli_epi32(first, 8 * k + 2), _mm512_set1_epi32(0x30));
    return _mm512_or_si512(low, top);
}

/* The tokens of a pass: each token's q8 row, and where its scales and sums
 * start in it (the same for all). */
typedef struct {
    const uint8_t *row[TILE];
    size_t d_at, sums_at;
} acts;

/* A sub-block's n 4-element dots of 16 rows (W) with one token (x4: its
 * activations, 4 bytes a dword), scaled by the rows' scales S, added to isum. */
static ALWAYS_INLINE __m512i scaled_dot(const __m512i *W, int n, const int32_t *x4, __m512i S, __m512i isum) {
    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), W[0], _mm512_set1_epi32(x4[0]));
    UNROLL
    for (int i = 1; i < n; i++)
        p = _mm512_dpbusd_epi32(p, W[i], _mm512_set1_epi32(x4[i]));
    return _mm512_add_epi32(isum, _mm512_mullo_epi32(p, S));
}

/* The rows' int16 pairs (P) against one token's pairs of sums (n dwords). */
static ALWAYS_INLINE __m512i pair_dot(const __m512i *P, int n, const int32_t *sums) {
    __m512i acc = _mm512_dpwssd_epi32(_mm512_setzero_si512(), P[0], _mm512_set1_epi32(sums[0]));
    UNROLL
    for (int j = 1; j < n; j++)
        acc = _mm512_dpwssd_epi32(acc, P[j], _mm512_set1_epi32(sums[j]));
    return acc;
}

/* Token t's activation scale of super-block b, in every lane. */
static ALWAYS_INLINE __m512 token_scale(const acts *a, int t, int64_t b) {
    return _mm512_set1_ps(((const float *)(a->row[t] + a->d_at))[b]);
}

/* One Q4_K (five: Q5_K) super-block b of 16 rows (v: its grouped bytes)
 * against nt tokens, added to acc[t]. */
static ALWAYS_INLINE void block_q4(const uint8_t *v, const acts *a, int nt, int64_t b, bool five, __m512 *acc) {
    const __m512i nib = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
    __m512i isum[TILE];
    UNROLL
    for (int t = 0; t < nt; t++)
        isum[t] = _mm512_setzero_si512();
    UNROLL
    for (int s = 0; s < 8; s++) {
        __m512i S = scale_of(v, s, false);
        __m512i W[8];
        UNROLL
        for (int i = 0; i < 8; i++) {
            W[i] = _mm512_and_si512(_mm512_srli_epi16(dword(v, (five ? 12 : 4) + 8 * (s / 2) + i), 4 * (s & 1)), nib);
            if (five) { /* bit s of qh dword i's bytes as each value's bit 4: (h & 0x10) | W */
                __m512i h = dword(v, 4 + i);
                h = s < 4 ? _mm512_slli_epi16(h, 4 - s) : s > 4 ? _mm512_srli_epi16(h, s - 4) : h;
                W[i] = _mm512_ternarylogic_epi32(h, bit4, W[i], 0xEA);
            }
        }
        UNROLL
        for (int t = 0; t < nt; t++)
            isum[t] = scaled_dot(W, 8, (const int32_t *)(a->row[t] + 256 * b + 32 * s), S, isum[t]);
    }
    __m512i mins[4]; /* (m_2j, m_2j+1) as int16 pairs */
    UNROLL
    for (int j = 0; j < 4; j++)
        mins[j] = _mm512_or_si512(scale_of(v, 2 * j, true), _mm512_slli_epi32(scale_of(v, 2 * j + 1, true), 16));
    __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dword(v, 0)));
    __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dword(v, 0), 16)));
    UNROLL
    for (int t = 0; t < nt; t++) {
        __m512i m = pair_dot(mins, 4, (const int32_t *)(a->row[t] + a->sums_at) + 4 * b);
        __m512 dx = token_scale(a, t, b);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, dx), acc[t]);
        acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dmin, dx), acc[t]);
    }
}

/* Q6_K: the int8 scale of sub-block s (0..15) of the 16 rows, as int32 lanes */
static ALWAYS_INLINE __m512i scale6_of(const uint8_t *v, int s) {
    return _mm512_srai_epi32(_mm512_slli_epi32(dword(v, 48 + s / 4), 24 - 8 * (s % 4)), 24);
}

/* One Q6_K super-block b of 16 rows against nt tokens, added to acc[t]. */
static ALWAYS_INLINE void block_q6(const uint8_t *v, const acts *a, int nt, int64_t b, __m512 *acc) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
    __m512i isum[TILE];
    UNROLL
    for (int t = 0; t < nt; t++)
        isum[t] = _mm512_setzero_si512();
    UNROLL
    for (int h = 0; h < 2; h++)
        UNROLL
        for (int m = 0; m < 4; m++)
            UNROLL
            for (int half = 0; half < 2; half++) { /* sub-block 8h + 2m + half: quads c = 4 half .. + 3 */
                __m512i S = scale6_of(v, 8 * h + 2 * m + half);
                __m512i W[4];
                UNROLL
                for (int i = 0; i < 4; i++) {
                    int c = 4 * half + i;
                    __m512i ql = dword(v, 16 * h + 8 * (m % 2) + c), qh = dword(v, 32 + 8 * h + c);
                    __m512i lo = m < 2 ? ql : _mm512_srli_epi16(ql, 4);
                    __m512i hi = m == 0   ? _mm512_slli_epi16(qh, 4)
                                 : m == 1 ? _mm512_slli_epi16(qh, 2)
                                 : m == 2 ? qh
                                          : _mm512_srli_epi16(qh, 2);
                    /* (lo & 0x0F) | (hi & 0x30) */
                    W[i] = _mm512_ternarylogic_epi32(lo, _mm512_and_si512(hi, bits45), low4, 0xEC);
                }
                UNROLL
                for (int t = 0; t < nt; t++)
                    isum[t] = scaled_dot(W, 4, (const int32_t *)(a->row[t] + 256 * b + 128 * h + 32 * m + 16 * half),
                                         S, isum[t]);
            }
    __m512i pairs[8]; /* (scale_2j, scale_2j+1) as int16 pairs */
    UNROLL
    for (int j = 0; j < 8; j++)
        pairs[j] = _mm512_or_si512(_mm512_and_si512(scale6_of(v, 2 * j), _mm512_set1_epi32(0xFFFF)),
                                   _mm512_slli_epi32(scale6_of(v, 2 * j + 1), 16));
    __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 64 * 52)));
    UNROLL
    for (int t = 0; t < nt; t++) {
        __m512i o = pair_dot(pairs, 8, (const int32_t *)(a->row[t] + a->sums_at) + 8 * b);
        __m512i total = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(o, 5));
        __m512 dx = token_scale(a, t, b);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(d, dx), acc[t]);
    }
}

/* Asks for the `bytes` that lie `ahead` past p (the group layout is one
 * stream: a group's super-blocks, then the next group's). */
static ALWAYS_INLINE void prefetch(const uint8_t *p, size_t ahead, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch((const char *)p + ahead + o, _MM_HINT_T0);
}

/* Dwords k0 .. k0 + 15 of 16 rows (row r's at p + r * stride + 4 k0) into
 * out[k - k0] with row r in lane r: a 16 x 16 transpose in three rounds of
 * shuffles (dwords, then pairs within 128-bit lanes, then 128-bit lanes). */
static ALWAYS_INLINE void transpose16(const uint8_t *p, size_t stride, int k0, __m512i out[16]) {
    __m512i a[16], b[16];
    UNROLL
    for (int r = 0; r < 16; r += 2) {
        __m512i x = _mm512_loadu_si512(p + r * stride + 4 * k0), y = _mm512_loadu_si512(p + (r + 1) * stride + 4 * k0);
        a[r] = _mm512_unpacklo_epi32(x, y);     /* per 128-bit lane L: x[4L] y[4L] x[4L+1] y[4L+1] */
        a[r + 1] = _mm512_unpackhi_epi32(x, y); /* x[4L+2] y[4L+2] x[4L+3] y[4L+3] */
    }
    UNROLL
    for (int g = 0; g < 16; g += 4) { /* b[g + j], lane L: dword 4L + j of rows g .. g + 3 */
        b[g] = _mm512_unpacklo_epi64(a[g], a[g + 2]);
        b[g + 1] = _mm512_unpackhi_epi64(a[g], a[g + 2]);
        b[g + 2] = _mm512_unpacklo_epi64(a[g + 1], a[g + 3]);
        b[g + 3] = _mm512_unpackhi_epi64(a[g + 1], a[g + 3]);
    }
    UNROLL
    for (int j = 0; j < 4; j++) {
        __m512i e0 = _mm512_shuffle_i32x4(b[j], b[4 + j], 0x88), e1 = _mm512_shuffle_i32x4(b[j], b[4 + j], 0xDD);
        __m512i f0 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], 0x88),
                f1 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], 0xDD);
        out[j] = _mm512_shuffle_i32x4(e0, f0, 0x88);
        out[4 + j] = _mm512_shuffle_i32x4(e1, f1, 0x88);
        out[8 + j] = _mm512_shuffle_i32x4(e0, f0, 0xDD);
        out[12 + j] = _mm512_shuffle_i32x4(e1, f1, 0xDD);
    }
}

/* Four dwords (the last, 32-35) of 16 rows the same way: rows g, g + 4,
 * g + 8, g + 12 in the 128-bit lanes of z[g], then a 4 x 4 transpose within
 * each lane, which leaves dword j of rows 4L .. 4L + 3 in lane L: row order. */
static ALWAYS_INLINE void transpose4(const uint8_t *p, size_t stride, int k0, __m512i out[4]) {
    __m512i z[4], a[4];
    UNROLL
    for (int g = 0; g < 4; g++) { /* z[g], lane L: row g + 4L */
        const uint8_t *q = p + g * stride + 4 * k0;
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)q));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(q + 4 * stride)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(q + 8 * stride)), 2);
        z[g] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(q + 12 * stride)), 3);
    }
    a[0] = _mm512_unpacklo_epi32(z[0], z[1]), a[1] = _mm512_unpackhi_epi32(z[0], z[1]);
    a[2] = _mm512_unpacklo_epi32(z[2], z[3]), a[3] = _mm512_unpackhi_epi32(z[2], z[3]);
    /* dword j, lane L: rows 4L, 4L + 1, 4L + 2, 4L + 3 in order */
    __m512i d[4] = {_mm512_unpacklo_epi64(a[0], a[2]), _mm512_unpackhi_epi64(a[0], a[2]),
                    _mm512_unpacklo_epi64(a[1], a[3]), _mm512_unpackhi_epi64(a[1], a[3])};
    UNROLL
    for (int j = 0; j < 4; j++)
        out[j] = d[j];
}

/* One super-block of 16 rows in ggml's blocks (row r's at p + r * stride)
 * into the grouped form at v. */
static ALWAYS_INLINE void transpose_block(const uint8_t *p, size_t stride, int kind, uint8_t *v) {
    __m512i *d = (__m512i *)v;
    transpose16(p, stride, 0, d);
    transpose16(p, stride, 16, d + 16);
    if (kind != K6) {
        transpose4(p, stride, 32, d + 32); /* Q4_K: 36 dwords */
        if (kind == K5) {                  /* Q5_K: 44 */
            transpose4(p, stride, 36, d + 36);
            transpose4(p, stride, 40, d + 40);
        }
        return;
    }
    transpose16(p, stride, 32, d + 32);
    transpose4(p, stride, 48, d + 48);
    UNROLL
    for (int r = 0; r < ROWS; r++) /* d, the two bytes after the 52 dwords */
        memcpy(v + 64 * 52 + 2 * r, p + r * stride + 4 * 52, 2);
}

/* nt tokens against up to 16 rows starting at w, rows w_stride apart:
 * grouped (all 16 rows, w the group) or ggml's blocks, transposed into the
 * grouped form first (a missing row's lane is zeros, never stored).
 * y[t * ys + r]. */
static ALWAYS_INLINE void group_rows(const uint8_t *w, bool grouped, int kind, size_t w_stride, int rows,
                                     const acts *a, int nt, int64_t nb, size_t ahead, float *y,
                                     size_t ys) {
    __m512 acc[TILE];
    UNROLL
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *v;
        _Alignas(64) uint8_t buf[ROWS * sizeof(lg_block_q6_K)]; /* the largest */
        if (grouped) {
            v = w + (size_t)b * ROWS * BLOCK(kind);
            prefetch(v, ahead, ROWS * BLOCK(kind));
        } else {
            const uint8_t *p = w + (size_t)b * BLOCK(kind);
            size_t stride = w_stride;
            _Alignas(64) uint8_t pad[ROWS * sizeof(lg_block_q6_K)];
            if (rows < ROWS) { /* the last rows of a matrix: their blocks, zeros below */
                memset(pad, 0, sizeof pad);
                for (int r = 0; r < rows; r++)
                    memcpy(pad + (size_t)r * BLOCK(kind), p + (size_t)r * w_stride, BLOCK(kind));
                p = pad, stride = BLOCK(kind);
            }
            /* sixteen streams at once are more than the hardware prefetchers
             * follow, but the 16 rows are one stretch of memory: each step asks
             * for its share of the next group's, so that group is in the cache
             * when its turn comes (the rows of a task's next group, or past its
             * end the next task's) */
            prefetch(w + ROWS * w_stride, (size_t)b * ROWS * BLOCK(kind), ROWS * BLOCK(kind));
            transpose_block(p, stride, kind, buf);
            v = buf;
        }
        if (kind == K6)
            block_q6(v, a, nt, b, acc);
        else
            block_q4(v, a, nt, b, kind == K5, acc);
    }
    __mmask16 live = (__mmask16)((1u << rows) - 1);
    UNROLL
    for (int t = 0; t < nt; t++)
        _mm512_mask_storeu_ps(y + (size_t)t * ys, live, acc[t]);
}

static ALWAYS_INLINE void rows_x16(const uint8_t *w, bool grouped, int kind, size_t w_stride, int n_rows,
                                   const uint8_t *x, size_t xs, int nt, int64_t n, float *y, size_t ys) {
    acts a;
    UNROLL
    for (int t = 0; t < nt; t++)
        a.row[t] = x + (size_t)t * xs;
    a.d_at = (size_t)n, a.sums_at = (size_t)n + 4 * (size_t)(n / 256);
    size_t ahead = lg_qgemm_prefetch_distance();
    for (int r = 0; r < n_rows; r += ROWS)
        group_rows(w + (size_t)r * w_stride, grouped, kind, w_stride, n_rows - r < ROWS ? n_rows - r : ROWS, &a,
                   nt, n / 256, ahead, y + r, ys);
}

/* One pass of nt (1..8) tokens, a copy of the loops per count and form. */
#define FORM(G, K, NT) rows_x16(w, G, K, w_stride, n_rows, x, xs, NT, n, y, ys)
#define KINDS(G, NT)                                                                               \
    (kind == K6 ? FORM(G, K6, NT) : kind == K5 ? FORM(G, K5, NT) : FORM(G, K4, NT))
#define CASE(NT)                                                                                   \
    case NT:                                                                                       \
        if (grouped)                                                                               \
            KINDS(true, NT);                                                                       \
        else                                                                                       \
            KINDS(false, NT);                                                                      \
        break;

static void pass_x16(bool grouped, int kind, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                     size_t xs, int nt, int64_t n, float *y, size_t ys) {
    switch (nt) {
        LG_COUNT_CASES_1_TO_8(CASE)
    }
}

void lg_qgemm_x16_avx512(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                         size_t x_stride, int n_tokens, int64_t n, float *y, size_t y_stride) {
    lg_dtype base = lg_x16_base(dtype);
    bool grouped = base != dtype;
    int kind = base == LG_DTYPE_Q6_K ? K6 : base == LG_DTYPE_Q5_K ? K5 : K4;
    for (int t0 = 0; t0 < n_tokens; t0 += TILE) {
        int nt = n_tokens - t0 < TILE ? n_tokens - t0 : TILE;
        pass_x16(grouped, kind, w, w_stride, n_rows, x + (size_t)t0 * x_stride, x_stride, nt, n,
                 y + (size_t)t0 * y_stride, y_stride);
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never chosen */
#include "backend/cpu/quant_dot.h"
void lg_qgemm_x16_avx512(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                         size_t x_stride, int n_tokens, int64_t n, float *y, size_t y_stride) {
    (void)dtype, (void)w, (void)w_stride, (void)n_rows, (void)x, (void)x_stride, (void)n_tokens, (void)n,
        (void)y, (void)y_stride;
}
#endif
