/* The quantised products with AVX-512 and VNNI (vpdpbusd, vpdpwssd): one
 * weight row against up to TILE activation rows per pass. Compiled for that
 * instruction set whatever the build's -march, and called only when cpuid
 * says the CPU has it (quant_dot.c).
 *
 * Per 256-element K-quant super-block and token: four vpmaddubsw (64
 * unsigned weights x 64 signed activations each, pairs into int16: at most
 * 2 * 63 * 127, exact) and four vpdpwssd that multiply each pair by its
 * sub-block's scale and add it to one int32 accumulator; then one float
 * multiply-add applies d_w * d_x and one more the mins (Q5_K) through
 * the activation's 16-element sums. (vpdpbusd then vpdpwssd needs a zeroed
 * register per step and measured slower.) The weight block is unpacked once per pass
 * for every token of the tile; each token has its own float accumulator and
 * the same instructions whatever the tile holds, so results do not depend on
 * the batch. This serves Q5_K; Q4_K, Q6_K and Q8_0 have kernels of their
 * own, sixteen rows at a time (quant_gemm_x16_avx512.c,
 * quant_gemm_x16_q8_0_avx512.c). */
#if defined(__x86_64__) && defined(__GNUC__)
#include "backend/cpu/avx512_vnni_target.h"
#include <immintrin.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "backend/cpu/avx512_sums.h"
#include "backend/cpu/quant_dot.h"
#include "backend/cpu/quant_gemm_isa.h"
#include "quant/quant.h"

#define TILE 8 /* tokens per pass over a weight row */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

/* [a x16 words | b x16 words] */
static inline __m512i halves_epi16(short a, short b) {
    return _mm512_inserti64x4(_mm512_set1_epi16(a), _mm256_set1_epi16(b), 1);
}

typedef struct {
    const int8_t *q; /* the token's q8 row */
    const float *d;
    const int16_t *bsum;
} act;

static ALWAYS_INLINE void tokens(act *a, const uint8_t *x, size_t xs, int nt, int64_t n,
                                 int block) {
    UNROLL
    for (int t = 0; t < nt; t++) {
        const uint8_t *row = x + (size_t)t * xs;
        a[t] = (act){(const int8_t *)row, lg_q8_scales(row, n), lg_q8_bsums(row, n, block)};
    }
}

/* Each token's accumulator summed across its lanes (avx512_sums.h: the
 * pairing of _mm512_reduce_add_ps with shared shuffles, which matters for
 * short rows: an expert's down projection is two super-blocks). */
static ALWAYS_INLINE void store(const __m512 *acc, int nt, float *y, size_t ys) {
    float sum[TILE];
    lg_avx512_sums8(acc, nt, sum);
    UNROLL
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ys] = sum[t];
}

/* ---- Q5_K ---------------------------------------------------------------------- */

typedef struct { /* one Q5_K super-block of one weight row, unpacked */
    __m512i W[4],
        S[4];    /* 64 weights each in element order; their sub-blocks' scales as int16 pairs */
    __m256i m16; /* the mins, one per 16 elements */
    float d, dmin;
} unpacked;

/* Byte shuffles (within 128-bit lanes) that spread the scales of
 * k4_scales_mins, broadcast to every lane, as unpack_q5's S[k] wants them:
 * sub-block 2k's scale in both int16 halves of dwords 0-7, 2k+1's in 8-15. */
static ALWAYS_INLINE void k4_index(__m512i idx[4]) {
    for (int k = 0; k < 4; k++)
        idx[k] = _mm512_inserti64x4(
            _mm512_set1_epi32((int)(0x80008000u | 0x00010001u * (2 * k))),
            _mm256_set1_epi32((int)(0x80008000u | 0x00010001u * (2 * k + 1))), 1);
}

/* The eight 6-bit scales (bytes 0-7) and mins (bytes 8-15) of a Q4_K/Q5_K
 * super-block from its first 16 bytes (d, dmin, the 12 packed bytes s[]), as
 * lg_k4_scale_min unpacks them, in a dozen vector instructions rather than
 * twenty scalar ones and the moves between the two: for j < 4 the scale is
 * s[j] & 63 and the min s[j+4] & 63; for j >= 4 the low four bits come from
 * s[j+4] (its low nibble for the scale, high for the min) and the top two
 * from bits 6-7 of s[j-4] (scale) or s[j] (min). */
static ALWAYS_INLINE __m128i k4_scales_mins(__m128i head) {
    const __m128i low_at = _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m128i top_at = _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11);
    const __m128i low_mask = _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0);
    const __m128i high_nib = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15);
    __m128i low = _mm_and_si128(_mm_shuffle_epi8(head, low_at), low_mask);
    __m128i nib = _mm_and_si128(_mm_shuffle_epi8(_mm_srli_epi16(head, 4), low_at), high_nib);
    __m128i top = _mm_and_si128(_mm_shuffle_epi8(head, top_at), _mm_set1_epi8((char)0xC0));
    return _mm_or_si128(_mm_or_si128(low, nib), _mm_srli_epi16(top, 2));
}

static ALWAYS_INLINE void unpack_q5(const lg_block_q5_K *blk, const __m512i idx[4], unpacked *u) {
    const __m512i nib = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    const uint8_t *qs = blk->qs;
    __m128i head = _mm_loadu_si128((const __m128i *)blk);
    __m128i sm = k4_scales_mins(head);
    __m128 dd = _mm_cvtph_ps(head); /* d, dmin */
    __m512i all = _mm512_broadcast_i32x4(sm);
    /* m0 m0 m1 m1 ... m7 m7 as int16: bytes 8 + i/2 of sm, zero high bytes */
    const __m256i m_at =
        _mm256_setr_epi8(8, -1, 8, -1, 9, -1, 9, -1, 10, -1, 10, -1, 11, -1, 11, -1, 12, -1, 12, -1,
                         13, -1, 13, -1, 14, -1, 14, -1, 15, -1, 15, -1);
    u->m16 = _mm256_shuffle_epi8(_mm512_castsi512_si256(all), m_at);
    UNROLL
    for (int k = 0; k < 4; k++)
        u->S[k] = _mm512_shuffle_epi8(all, idx[k]);
    UNROLL
    for (int h = 0; h < 2; h++) { /* 64 bytes of qs: groups 2h and 2h+1 */
        __m512i v = _mm512_loadu_si512(qs + 64 * h);
        __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
        /* into element order: [lo of group | hi of group] per 64 elements */
        u->W[2 * h] = _mm512_shuffle_i64x2(lo, hi, 0x44);
        u->W[2 * h + 1] = _mm512_shuffle_i64x2(lo, hi, 0xEE);
    }
    __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk->qh));
    UNROLL
    for (int k = 0; k < 4; k++) { /* the fifth bit */
        __m512i bit = _mm512_and_si512(
            _mm512_srlv_epi16(qh, halves_epi16((short)(2 * k), (short)(2 * k + 1))), one);
        u->W[k] = _mm512_or_si512(u->W[k], _mm512_slli_epi16(bit, 4));
    }
    u->d = _mm_cvtss_f32(dd), u->dmin = _mm_cvtss_f32(_mm_shuffle_ps(dd, dd, 1));
}

/* super-block b of one token into its accumulator */
static ALWAYS_INLINE __m512 token_q5(const unpacked *u, const act *a, int64_t b, __m512 acc) {
    const int8_t *xq = a->q + 256 * b;
    __m512i isum = _mm512_setzero_si512();
    UNROLL
    for (int k = 0; k < 4; k++) {
        __m512i p = _mm512_maddubs_epi16(u->W[k], _mm512_loadu_si512(xq + 64 * k));
        isum = _mm512_dpwssd_epi32(isum, p, u->S[k]);
    }
    __m256i mins =
        _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a->bsum + 16 * b)), u->m16);
    float dx = a->d[b];
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(u->d * dx), acc);
    return _mm512_fnmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(mins)),
                            _mm512_set1_ps(u->dmin * dx), acc);
}

static ALWAYS_INLINE void dot_q5(const uint8_t *row, const uint8_t *x, size_t xs, int nt, int64_t n,
                                 float *y, size_t ys) {
    __m512i idx[4];
    k4_index(idx);
    act a[TILE];
    tokens(a, x, xs, nt, n, 256);
    __m512 acc[TILE];
    UNROLL
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
        unpacked u;
        unpack_q5((const lg_block_q5_K *)row + b, idx, &u);
        UNROLL
        for (int t = 0; t < nt; t++)
            acc[t] = token_q5(&u, &a[t], b, acc[t]);
    }
    store(acc, nt, y, ys);
}

/* One token against many rows: the same arithmetic per (row, token) as
 * dot_q5 (so the same bits), with the set-up (constants, activation
 * pointers) paid once for all rows rather than per row through the
 * per-token-count dispatch. For decode, where a row as short as an expert's
 * down projection (two super-blocks) was mostly set-up. ROWS rows per pass
 * share the activation loads; 2 ran faster from the cache but streamed from
 * memory at half the speed (two interleaved streams per core), so 1. */
#define ROWS 1

/* Asks for the weight bytes prefetch_bytes past the block being unpacked:
 * a task's rows are contiguous (and the next task of a lane follows them),
 * so this runs ahead of the stream by more than the hardware prefetchers do
 * and keeps loads in flight while the core computes. Past the end of a
 * matrix it touches at most prefetch_bytes of whatever follows. How far to
 * ask is a core's share of the memory bandwidth times the loaded DRAM
 * latency, so it falls as more threads stream at once: the CPU backend sets
 * it by its thread count (lg_qgemm_set_prefetch_ahead; docs/performance.md,
 * "CPU: one-token products prefetch 16 KB ahead"). On the 2-core Zen 5 VM,
 * 16 KB decoded 7-10% faster than 4 KB with 1 and 2 threads (4 KB had been
 * 10% faster than 2 KB on the first EPYC VM); on the GPU machine's 16-core
 * Xeon, 16 KB matched 4 KB at 4 and 8 threads and was 5% slower at 16. One
 * value for the process (a hint: a context with another thread count
 * changes it for all); read relaxed per block, one load from L1. */
static _Atomic size_t prefetch_bytes = LG_QGEMM_PREFETCH_FEW_THREADS;

void lg_qgemm_set_prefetch_ahead(size_t bytes) {
    atomic_store_explicit(&prefetch_bytes, bytes, memory_order_relaxed);
}

size_t lg_qgemm_prefetch_distance(void) {
    return atomic_load_explicit(&prefetch_bytes, memory_order_relaxed);
}

static ALWAYS_INLINE void prefetch_ahead(const void *blk, size_t bytes) {
    const char *p = (const char *)blk + atomic_load_explicit(&prefetch_bytes, memory_order_relaxed);
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T0);
}
static ALWAYS_INLINE void rows1_q5(const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x,
                                   int64_t n, float *y) {
    __m512i idx[4];
    k4_index(idx);
    act a;
    tokens(&a, x, 0, 1, n, 256);
    int r = 0;
    for (; r + ROWS <= n_rows; r += ROWS) {
        __m512 acc[ROWS];
        UNROLL
        for (int i = 0; i < ROWS; i++)
            acc[i] = _mm512_setzero_ps();
        for (int64_t b = 0; b < n / 256; b++) {
            UNROLL
            for (int i = 0; i < ROWS; i++) {
                unpacked u;
                const lg_block_q5_K *blk = (const lg_block_q5_K *)(w + (size_t)(r + i) * w_stride) + b;
                prefetch_ahead(blk, sizeof *blk);
                unpack_q5(blk, idx, &u);
                acc[i] = token_q5(&u, &a, b, acc[i]);
            }
        }
        store(acc, ROWS, y + r, 1);
    }
    for (; r < n_rows; r++)
        dot_q5(w + (size_t)r * w_stride, x, 0, 1, n, y + r, 1);
}

/* ---- Q8_0 ---------------------------------------------------------------------- */

/* The Q8_0 products are quant_gemm_x16_q8_0_avx512.c's, sixteen rows at a
 * time. Their activations come in "Q8_0 lane order" (quant_dot.h): each
 * pair of 32-element blocks with int32 lane 2g holding elements 4g..4g+3 of
 * the first block and lane 2g + 1 those of the second, every value stored
 * + 128 as an unsigned byte (vpdpbusd's unsigned operand); a last odd block
 * stays in element order, + 128. */
/* dword 2g <- g, 2g + 1 <- 8 + g: a pair of blocks from element order into
 * pair lanes (vpermd on one vector holding both blocks) */
static ALWAYS_INLINE __m512i q8_to_pair_lanes(void) {
    return _mm512_set_epi32(15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0);
}

/* The order the Q8_0 kernels read a q8 row's values in (quant_dot.h), in
 * place: each whole pair of blocks into pair lanes, every byte + 128. */
void lg_q8_0_lane_order_avx512(uint8_t *q, int64_t n) {
    const __m512i index = q8_to_pair_lanes();
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    int64_t o = 0;
    for (; o + 64 <= n; o += 64) {
        __m512i v = _mm512_permutexvar_epi32(index, _mm512_loadu_si512(q + o));
        _mm512_storeu_si512(q + o, _mm512_xor_si512(v, bias));
    }
    for (; o < n; o++)
        q[o] ^= 0x80;
}

/* ---- one copy per token count --------------------------------------------------- */

#define CALL_Q5_K(NT) dot_q5(row, x, xs, NT, n, y, ys)
PER_COUNT(row_q5_K, CALL_Q5_K)

void lg_qgemm_row_avx512(lg_dtype dtype, const uint8_t *row, const uint8_t *x, size_t x_stride,
                         int n_tokens, int64_t n, float *y, size_t y_stride) {
    (void)dtype; /* Q5_K: the others have kernels of their own, 16 rows at a time */
    for (int t0 = 0; t0 < n_tokens; t0 += TILE) {
        int nt = n_tokens - t0 < TILE ? n_tokens - t0 : TILE;
        row_q5_K(row, x + (size_t)t0 * x_stride, x_stride, nt, n, y + (size_t)t0 * y_stride, y_stride);
    }
}

bool lg_qgemm_rows1_avx512(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows,
                           const uint8_t *x, int64_t n, float *y) {
    switch (dtype) {
    case LG_DTYPE_Q5_K:
        rows1_q5(w, w_stride, n_rows, x, n, y);
        return true;
    default:
        return false;
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never chosen */
bool lg_qgemm_rows1_avx512(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows,
                           const uint8_t *x, int64_t n, float *y) {
    (void)dtype, (void)w, (void)w_stride, (void)n_rows, (void)x, (void)n, (void)y;
    return false;
}
#include "backend/cpu/quant_dot.h"
void lg_qgemm_set_prefetch_ahead(size_t bytes) {
    (void)bytes;
}
void lg_q8_0_lane_order_avx512(uint8_t *q, int64_t n) {
    (void)q, (void)n;
}
size_t lg_qgemm_prefetch_distance(void) {
    return 0;
}
void lg_qgemm_row_avx512(lg_dtype dtype, const uint8_t *row, const uint8_t *x, size_t x_stride,
                         int n_tokens, int64_t n, float *y, size_t y_stride) {
    (void)dtype, (void)row, (void)x, (void)x_stride, (void)n_tokens, (void)n, (void)y,
        (void)y_stride;
}
#endif
