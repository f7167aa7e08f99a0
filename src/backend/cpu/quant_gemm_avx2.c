/* The quantised products and the activation quantiser with AVX2 (vpmaddubsw,
 * vpmaddwd): one weight row against up to TILE activation rows per pass.
 * Compiled for AVX2/FMA/F16C whatever the build's -march, and called only
 * when cpuid says the CPU has them (quant_dot.c).
 *
 * Per 32 weights and token: vpmaddubsw (unsigned weights x signed
 * activations, pairs into int16: at most 2 * 63 * 127, exact) and vpmaddwd by
 * the 16-element scales into int32, summed over the K-quant super-block in
 * integers; then float multiply-adds apply d_w * d_x and the mins, as in the
 * AVX-512 version. Each token has its own accumulator and the same
 * instructions whatever the tile holds.
 *
 * Prefill (2026-12-03): each 64 weights (two sub-blocks) are unpacked once
 * per pass for all TILE = 8 tokens, whose integer sums stay in registers,
 * and the K-quants read their activations in pair order (quant_dot.h) so
 * that one vpmaddwd scales two sub-blocks. Every lane's integer and every
 * float operation per token are what they were with one token a pass, so
 * a token's bits do not depend on its batch (docs/performance.md, "CPU
 * prefill with AVX2").
 *
 * Decode (one token, lg_qgemm_rows1_avx2): there the weights' pair blends
 * would be paid for one token alone, so its K-quant activations stay in
 * element order and each sub-block gets its own vpmaddwd; every lane's
 * integer is the same as in pair order, so are the bits (docs/performance.md,
 * "CPU one-token K-quant products: element order, prefetches spread"). */
#if defined(__x86_64__) && defined(__GNUC__)
#include "backend/cpu/avx2_target.h"
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/quant_dot.h"
#include "backend/cpu/quant_gemm_isa.h"
#include "quant/quant.h"

#define TILE 8 /* tokens per pass over a weight row */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

/* Keeps v in a register as it is: without it GCC re-associates a token's
 * integer sum over the sub-blocks into a tree, which holds every product
 * (8 tokens x 8 sub-blocks) live and spills them to the stack. */
#define KEEP(v) __asm__("" : "+x"(v))

static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- the activation quantiser ------------------------------------------------------ */

/* The reference's operations (amax, d = amax / 127, q = round-to-nearest-even(x
 * * (1 / d)), clamp), eight lanes at a time: identical output. */
void lg_q8_quantize_avx2(const float *x, int n_rows, int64_t n, int block, uint8_t *out) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i lim = _mm256_set1_epi32(127), perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t stride = lg_q8_row_bytes(n, block);
    for (int r = 0; r < n_rows; r++, x += n, out += stride) {
        int8_t *q = (int8_t *)out;
        float *dst_d = (float *)(out + n);
        int16_t *bsum = (int16_t *)(out + n + 4 * (n / block));
        for (int64_t b = 0; b < n / block; b++) {
            const float *xb = x + b * block;
            __m256 m = _mm256_setzero_ps();
            for (int i = 0; i < block; i += 8)
                m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(xb + i), abs_mask));
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
            float amax = _mm_cvtss_f32(m4), d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
            for (int c = 0; c < block; c += 32) {
                __m256i v[4];
                for (int i = 0; i < 4; i++) {
                    __m256 s = _mm256_round_ps(
                        _mm256_mul_ps(_mm256_loadu_ps(xb + c + 8 * i), _mm256_set1_ps(id)),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    v[i] = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(s), lim),
                                            _mm256_sub_epi32(_mm256_setzero_si256(), lim));
                }
                __m256i s0 = _mm256_add_epi32(v[0], v[1]), s1 = _mm256_add_epi32(v[2], v[3]);
                __m256i s01 =
                    _mm256_hadd_epi32(s0, s1); /* lanes 0,1,4,5: the first 16; 2,3,6,7: the next */
                s01 = _mm256_hadd_epi32(s01, s01);
                __m128i t =
                    _mm_add_epi32(_mm256_castsi256_si128(s01), _mm256_extracti128_si256(s01, 1));
                /* int32 -> int8 in element order: packs work per 128-bit lane, the permute undoes
                 * it */
                __m256i p16 = _mm256_packs_epi32(v[0], v[1]), p16b = _mm256_packs_epi32(v[2], v[3]);
                __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16, p16b), perm);
                _mm256_storeu_si256((__m256i *)(q + b * block + c), p8);
                int64_t g = (b * block + c) / 16;
                bsum[g] = (int16_t)_mm_cvtsi128_si32(t);
                bsum[g + 1] = (int16_t)_mm_extract_epi32(t, 1);
            }
            dst_d[b] = d;
        }
    }
}

/* Two 32-byte sub-blocks j, k (unsigned weights, or int8 activations) in
 * pair order (quant_dot.h): A = the first two bytes of each 4-byte lane of
 * j then of k, B = the last two. */
static inline void to_pairs(__m256i wj, __m256i wk, __m256i *a, __m256i *b) {
    *a = _mm256_blend_epi16(wj, _mm256_slli_epi32(wk, 16), 0xAA);
    *b = _mm256_blend_epi16(_mm256_srli_epi32(wj, 16), wk, 0xAA);
}

/* Element order to pair order (quant_dot.h) in place: each 64 bytes (two
 * 32-element sub-blocks j, k) as A then B, 4-byte lane l of A holding
 * x_j[4l], x_j[4l+1], x_k[4l], x_k[4l+1] and of B the next two of each
 * (to_pairs, as the kernels do to the weights). */
void lg_q8_pair_order_avx2(uint8_t *q, int64_t n) {
    for (int64_t o = 0; o < n; o += 64) {
        __m256i a, b, xj = _mm256_loadu_si256((const __m256i *)(q + o)),
                      xk = _mm256_loadu_si256((const __m256i *)(q + o + 32));
        to_pairs(xj, xk, &a, &b);
        _mm256_storeu_si256((__m256i *)(q + o), a);
        _mm256_storeu_si256((__m256i *)(q + o + 32), b);
    }
}

/* ---- the products ---------------------------------------------------------------------- */

typedef struct {
    const int8_t *q;
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

static ALWAYS_INLINE void start(__m256 *acc, int nt) {
    UNROLL
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
}

static ALWAYS_INLINE void store(const __m256 *acc, int nt, float *y, size_t ys) {
    UNROLL
    for (int t = 0; t < nt; t++)
        y[(size_t)t * ys] = hsum_ps(acc[t]);
}


/* Sub-blocks j, k against 64 pair-order activations: int32 lane l gets
 * sc_j * (4-element dot l of j) + sc_k * (that of k), the same as two dot32
 * (j and k in element order) added, with 2 vpmaddubsw, one vpaddw and one
 * vpmaddwd instead of 4 and 2 and 1. The int16 4-element dots are exact:
 * at most 4 * 63 * 127 < 2^15 (Q6_K's 6-bit weights). scales: int16
 * [sc_j, sc_k] pairs. */
static inline __m256i dot64(__m256i a, __m256i b, const int8_t *x, __m256i scales) {
    __m256i p =
        _mm256_add_epi16(_mm256_maddubs_epi16(a, _mm256_loadu_si256((const __m256i *)x)),
                         _mm256_maddubs_epi16(b, _mm256_loadu_si256((const __m256i *)(x + 32))));
    return _mm256_madd_epi16(p, scales);
}

/* One token's sub-block of 32 weights against its 32 activations in element
 * order, times the int16 scale vector: int32 lane l gets scale * (4-element
 * dot l), what dot64 puts in lane l for that sub-block (the int16 pair sums
 * are exact: at most 2 * 63 * 127). Two of these are one vpmaddwd more than
 * a dot64 but spare the weights' two pair blends (to_pairs), which with one
 * token are not shared with other tokens. */
static inline __m256i dot32(__m256i w, const int8_t *x, __m256i scale) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, _mm256_loadu_si256((const __m256i *)x)),
                             scale);
}

/* Decode asks for its weights this many bytes ahead of where it reads (a
 * task's rows are contiguous, the next task of a lane follows them). */
#define PREFETCH_AHEAD 2048

/* One prefetch per 64 bytes of a weight block about to be read: the
 * one-token K-quant loops call it once per super-block, so the prefetches
 * are spread through the row however long it is. Asking for a whole row at
 * its start had stalled the loads behind the prefetches on long rows, so
 * rows over 4 KB went without; spread, streaming one token on 2 threads
 * (2026-12-03, docs/performance.md) went from 22-23 to 26-28 GB/s at 8192
 * columns and from 23-25 to 26-28 at 2048. */
static ALWAYS_INLINE void prefetch_ahead(const void *block, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch((const char *)block + PREFETCH_AHEAD + o, _MM_HINT_T0);
}

/* A Q4_K / Q5_K super-block's twelve bytes of 6-bit scales and mins as bytes
 * [sc0..3 m0..3 sc4..7 m4..7] in both 128-bit lanes: ggml's unpacking done
 * on two 64-bit words, so that each pair of sub-blocks' scale vector is then
 * one vpshufb instead of scalar extracts and broadcasts. */
static inline __m256i k4_scales_mins(const uint8_t *packed) {
    uint64_t a;
    uint32_t c;
    memcpy(&a, packed, 8), memcpy(&c, packed + 8, 4);
    uint64_t lo = a & 0x3f3f3f3f3f3f3f3full; /* sc0..3, m0..3 */
    uint64_t hi = (c & 0x0f0f0f0fu) | (uint64_t)(c >> 4 & 0x0f0f0f0fu) << 32 |
                  (a >> 6 & 0x0303030303030303ull) << 4; /* sc4..7, m4..7 */
    return _mm256_broadcastsi128_si256(_mm_set_epi64x((long long)hi, (long long)lo));
}

/* The per-super-block parts of a Q4_K / Q5_K block that every token uses:
 * the scales and mins as k4_scales_mins gives them, the mins as int16 pairs
 * m0 m0 m1 m1 .. m7 m7, and d, dmin as floats in every lane. */
typedef struct {
    __m256i sm, m16;
    __m256 d, dmin;
} k4_header;

static ALWAYS_INLINE void k4_unpack_header(const uint8_t *blk, k4_header *u) {
    /* the bytes of k4_scales_mins that make m16 */
    const __m256i min_pairs = _mm256_setr_epi16(
        INT16_MIN | 4, INT16_MIN | 4, INT16_MIN | 5, INT16_MIN | 5, INT16_MIN | 6, INT16_MIN | 6,
        INT16_MIN | 7, INT16_MIN | 7, INT16_MIN | 12, INT16_MIN | 12, INT16_MIN | 13,
        INT16_MIN | 13, INT16_MIN | 14, INT16_MIN | 14, INT16_MIN | 15, INT16_MIN | 15);
    uint32_t dd_dmin;
    memcpy(&dd_dmin, blk, 4);
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dd_dmin));
    u->d = _mm256_broadcastss_ps(f);
    u->dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(f));
    u->sm = k4_scales_mins(blk + 4);
    u->m16 = _mm256_shuffle_epi8(u->sm, min_pairs);
}

/* acc + one token's super-block b, its scaled integer sum isum done: isum
 * times d * d_x, then the mins times dmin * d_x off (each product rounded
 * to float, as in every lane). */
static ALWAYS_INLINE __m256 k4_finish(__m256 acc, __m256i isum, const k4_header *u, const act *x,
                                      int64_t b) {
    __m256i mins =
        _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(x->bsum + 16 * b)), u->m16);
    __m256 dx = _mm256_broadcast_ss(x->d + b);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(u->d, dx), acc);
    return _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_mul_ps(u->dmin, dx), acc);
}

/* One weight row against nt tokens. Sub-block by sub-block, each unpacked
 * once (32 weights, their scale vector) for all nt tokens, whose integer
 * sums stay in registers: the unpacking was as much work as the products
 * when it was done per token or per 4 tokens. A token's integer sum has the
 * same value in each lane whatever the order it is added up in, so its
 * float operations, and bits, do not depend on nt. element: one token (nt
 * 1) whose activations are in element order (the decode path, quant_dot.h),
 * each sub-block through dot32 with its own scale vector; the integer in
 * every lane, and so the bits, are those of the pair-order path. */
static ALWAYS_INLINE void dot_k4(const uint8_t *row, size_t block_bytes, size_t qs_offset,
                                 size_t qh_offset, bool five, bool element, const uint8_t *x,
                                 size_t xs, int nt, int64_t n, float *y, size_t ys) {
    const __m256i nib = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
    act a[TILE];
    tokens(a, x, xs, nt, n, 256);
    __m256 acc[TILE];
    start(acc, nt);
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = row + b * block_bytes, *qs = blk + qs_offset;
        if (element) prefetch_ahead(blk, block_bytes);
        k4_header u;
        k4_unpack_header(blk, &u);
        __m256i qh =
            five ? _mm256_loadu_si256((const __m256i *)(blk + qh_offset)) : _mm256_setzero_si256();
        __m256i isum[TILE];
        UNROLL
        for (int g = 0; g < 4; g++) { /* sub-blocks 2g (low nibbles) and 2g+1 (high) */
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
            __m256i w[2] = {_mm256_and_si256(v, nib),
                            _mm256_and_si256(_mm256_srli_epi16(v, 4), nib)};
            if (five) /* bit j of qh to bit 4: one shift each, no bit leaves its byte */
                for (int i = 0; i < 2; i++) {
                    int j = 2 * g + i;
                    __m256i h = j < 4 ? _mm256_slli_epi16(qh, 4 - j) : _mm256_srli_epi16(qh, j - 4);
                    w[i] = _mm256_or_si256(w[i], _mm256_and_si256(h, bit4));
                }
            /* sc_2g, sc_2g+1: bytes at, at + 1 of u.sm */
            int at = g < 2 ? 2 * g : 2 * g + 4;
            if (element) {
                const int8_t *xg = a[0].q + 256 * b + 64 * g;
                __m256i p = _mm256_add_epi32(
                    dot32(w[0], xg, _mm256_shuffle_epi8(u.sm, _mm256_set1_epi16(INT16_MIN | at))),
                    dot32(w[1], xg + 32,
                          _mm256_shuffle_epi8(u.sm, _mm256_set1_epi16(INT16_MIN | (at + 1)))));
                isum[0] = g == 0 ? p : _mm256_add_epi32(isum[0], p);
                continue;
            }
            __m256i pa, pb;
            to_pairs(w[0], w[1], &pa, &pb);
            /* int16 [sc_2g, sc_2g+1] pairs */
            __m256i scale = _mm256_shuffle_epi8(
                u.sm, _mm256_set1_epi32((int)((0x8000u | (at + 1)) << 16 | 0x8000u | at)));
            UNROLL
            for (int t = 0; t < nt; t++) {
                __m256i p = dot64(pa, pb, a[t].q + 256 * b + 64 * g, scale);
                isum[t] = g == 0 ? p : _mm256_add_epi32(isum[t], p);
                KEEP(isum[t]);
            }
        }
        UNROLL
        for (int t = 0; t < nt; t++)
            acc[t] = k4_finish(acc[t], isum[t], &u, &a[t], b);
    }
    store(acc, nt, y, ys);
}

/* the vpshufb control bytes that pick int16 element i % 8 of a 128-bit lane */
static inline short word_bytes(int i) {
    return (short)((2 * (i % 8) + 1) << 8 | 2 * (i % 8));
}

/* As dot_k4: each 32 weights and their scales unpacked once for nt tokens;
 * element: one token in element order, as there. */
static ALWAYS_INLINE void dot_q6_K(const uint8_t *row, bool element, const uint8_t *x, size_t xs,
                                   int nt, int64_t n, float *y, size_t ys) {
    const __m256i nib = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);
    act a[TILE];
    tokens(a, x, xs, nt, n, 256);
    __m256 acc[TILE];
    start(acc, nt);
    const lg_block_q6_K *w = (const lg_block_q6_K *)row;
    for (int64_t b = 0; b < n / 256; b++) {
        if (element) prefetch_ahead(w + b, sizeof(lg_block_q6_K));
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[b].scales));
        /* chunk k's scales [sc[2k] x8 | sc[2k+1] x8] as int16: one vpshufb from sc 0-7 or
         * 8-15 in both 128-bit lanes */
        __m256i first = _mm256_permute2x128_si256(sc16, sc16, 0x00),
                second = _mm256_permute2x128_si256(sc16, sc16, 0x11);
        __m256i isum[TILE];
        UNROLL
        for (int g = 0; g < 4; g++) { /* chunks 2g, 2g+1 of 32 elements, in half h = g / 2 */
            int h = g / 2;
            const uint8_t *ql = w[b].ql + 64 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql),
                    l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            __m256i w0, w1;
            if (g % 2 == 0) { /* chunks 4h, 4h+1: low nibbles, qh bits 0-1 and 2-3 */
                w0 = _mm256_or_si256(_mm256_and_si256(l0, nib),
                                     _mm256_and_si256(_mm256_slli_epi16(qh, 4), two));
                w1 = _mm256_or_si256(_mm256_and_si256(l1, nib),
                                     _mm256_and_si256(_mm256_slli_epi16(qh, 2), two));
            } else { /* chunks 4h+2, 4h+3: high nibbles, qh bits 4-5 and 6-7 */
                w0 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), nib),
                                     _mm256_and_si256(qh, two));
                w1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), nib),
                                     _mm256_and_si256(_mm256_srli_epi16(qh, 2), two));
            }
            int k = 2 * g;
            if (element) { /* chunk c's scales [sc[2c] x8 | sc[2c+1] x8] */
                const int8_t *xg = a[0].q + 256 * b + 64 * g;
                __m256i from = k < 4 ? first : second;
                __m256i p = _mm256_add_epi32(
                    dot32(w0, xg,
                          _mm256_shuffle_epi8(
                              from, _mm256_set_m128i(_mm_set1_epi16(word_bytes(2 * k + 1)),
                                                     _mm_set1_epi16(word_bytes(2 * k))))),
                    dot32(w1, xg + 32,
                          _mm256_shuffle_epi8(
                              from, _mm256_set_m128i(_mm_set1_epi16(word_bytes(2 * k + 3)),
                                                     _mm_set1_epi16(word_bytes(2 * k + 2))))));
                isum[0] = g == 0 ? p : _mm256_add_epi32(isum[0], p);
                continue;
            }
            __m256i pa, pb;
            to_pairs(w0, w1, &pa, &pb);
            /* int16 pairs [sc of chunk 2g, of 2g+1]: the 16-element scales 4g, 4g+2 in the
             * low 128-bit lane, 4g+1, 4g+3 in the high one */
            __m256i scale = _mm256_shuffle_epi8(
                k < 4 ? first : second,
                _mm256_set_m128i(
                    _mm_set1_epi32((int)((unsigned)(uint16_t)word_bytes(2 * k + 3) << 16 |
                                         (uint16_t)word_bytes(2 * k + 1))),
                    _mm_set1_epi32((int)((unsigned)(uint16_t)word_bytes(2 * k + 2) << 16 |
                                         (uint16_t)word_bytes(2 * k)))));
            UNROLL
            for (int t = 0; t < nt; t++) {
                __m256i p = dot64(pa, pb, a[t].q + 256 * b + 64 * g, scale);
                isum[t] = g == 0 ? p : _mm256_add_epi32(isum[t], p);
                KEEP(isum[t]);
            }
        }
        float d = f16(w[b].d);
        UNROLL
        for (int t = 0; t < nt; t++) {
            /* q is stored + 32: take 32 * sum_g sc_g * bsum_g off */
            __m256i off =
                _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a[t].bsum + 16 * b)), sc16);
            __m256i s = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(off, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * a[t].d[b]), acc[t]);
        }
    }
    store(acc, nt, y, ys);
}

/* One weight row against nt tokens. prefetch: ask for the weights
 * PREFETCH_AHEAD bytes ahead as they go (the one-token rows, which read
 * from memory): one prefetch a 34-byte block, so two a line; asking once a
 * line, by a branch on the address, streamed slower (2026-12-03,
 * docs/performance.md, "CPU Q8_0 with AVX2"). */
static ALWAYS_INLINE void dot_q8_0(const uint8_t *row, bool prefetch, const uint8_t *x, size_t xs,
                                   int nt, int64_t n, float *y, size_t ys) {
    const __m256i ones = _mm256_set1_epi16(1);
    act a[TILE];
    tokens(a, x, xs, nt, n, 32);
    __m256 acc[TILE];
    start(acc, nt);
    const lg_block_q8_0 *w = (const lg_block_q8_0 *)row;
    for (int64_t b = 0; b < n / 32; b++) {
        if (prefetch) _mm_prefetch((const char *)(w + b) + PREFETCH_AHEAD, _MM_HINT_T0);
        __m256i q = _mm256_loadu_si256((const __m256i *)w[b].qs), aq = _mm256_abs_epi8(q);
        float d = f16(w[b].d);
        __m256 d8 = _mm256_set1_ps(d);
        UNROLL
        for (int t = 0; t < nt; t++) {
            /* the sign of w onto x, so that |w| is the unsigned operand */
            __m256i sx =
                _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(a[t].q + 32 * b)), q);
            __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, sx), ones);
            /* d * d_x, the same product either way; with several tokens d is
             * broadcast once and each d_x by its load (no shuffle): ~5% more
             * GMAC/s (2026-12-03, docs/performance.md, "CPU Q8_0 with AVX2") */
            __m256 s = nt > 1 ? _mm256_mul_ps(d8, _mm256_broadcast_ss(a[t].d + b))
                              : _mm256_set1_ps(d * a[t].d[b]);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[t]);
        }
    }
    store(acc, nt, y, ys);
}

#define CALL_Q8_0(NT) dot_q8_0(row, false, x, xs, NT, n, y, ys)
#define CALL_Q4_K(NT)                                                                              \
    dot_k4(row, sizeof(lg_block_q4_K), offsetof(lg_block_q4_K, qs), 0, false, false, x, xs, NT, n, \
           y, ys)
#define CALL_Q5_K(NT)                                                                              \
    dot_k4(row, sizeof(lg_block_q5_K), offsetof(lg_block_q5_K, qs), offsetof(lg_block_q5_K, qh),   \
           true, false, x, xs, NT, n, y, ys)
#define CALL_Q6_K(NT) dot_q6_K(row, false, x, xs, NT, n, y, ys)
PER_COUNT(row_q8_0, CALL_Q8_0)
PER_COUNT(row_q4_K, CALL_Q4_K)
PER_COUNT(row_q5_K, CALL_Q5_K)
PER_COUNT(row_q6_K, CALL_Q6_K)

void lg_qgemm_row_avx2(lg_dtype dtype, const uint8_t *row, const uint8_t *x, size_t x_stride,
                       int n_tokens, int64_t n, float *y, size_t y_stride) {
    void (*fn)(const uint8_t *, const uint8_t *, size_t, int, int64_t, float *, size_t) =
        dtype == LG_DTYPE_Q8_0   ? row_q8_0
        : dtype == LG_DTYPE_Q4_K ? row_q4_K
        : dtype == LG_DTYPE_Q5_K ? row_q5_K
                                 : row_q6_K;
    for (int t0 = 0; t0 < n_tokens; t0 += TILE) {
        int nt = n_tokens - t0 < TILE ? n_tokens - t0 : TILE;
        fn(row, x + (size_t)t0 * x_stride, x_stride, nt, n, y + (size_t)t0 * y_stride, y_stride);
    }
}

/* One token against many rows, for decode: each row through the same
 * inlined instructions as row_X with one token (so the same bits), with no
 * per-row dispatch. The K-quants read their activations in element order
 * (dot_k4's element). Every type asks for its weights PREFETCH_AHEAD bytes
 * ahead as it goes (prefetch_ahead; Q8_0 in dot_q8_0). Q8_0 had asked for
 * a whole row at the row's start and for none over 4 KB; spread through the
 * row it streams faster on 2 threads (2026-12-03, medians of 25 passes
 * alternated in one process, 512 / 2048 / 8192 columns): 26.1 / 22.3 / 21.5
 * -> 27.5 / 25.4 / 28.9 GB/s.
 *
 * Q8_0 takes this path since 2026-12-03: an expert's down projection has
 * rows of 544 bytes (16 blocks), where the per-row calls of
 * lg_qgemm_row_avx2 cost a quarter of the row; streaming 512-column Q8_0
 * rows on 2 threads, median of 20 passes alternated in one process: 19.3
 * GB/s row by row, 26.5 this way (2048 columns: 24.3 and 25.3). An earlier
 * measurement from the cache had found it slower (26 against 30 GB/s);
 * decode reads from memory.
 *
 * Several rows a pass (each with its own accumulator, the token's loads
 * shared) measured no faster here (2026-12-03, docs/performance.md): for the
 * K-quants a row's unpacking is the work and the token's bytes are memory
 * operands either way; for Q8_0 four rows a pass ran 10-15% faster from the
 * cache but ~5% slower from memory (four short streams a thread instead of
 * one long one; two rows with prefetches in the loop: no change), and decode
 * reads from memory. */
#define ROWS1(NAME, CALL)                                                                          \
    static void NAME(const uint8_t *w, size_t w_stride, int n_rows, const uint8_t *x, int64_t n,   \
                     float *y) {                                                                   \
        for (int r = 0; r < n_rows; r++) {                                                         \
            const uint8_t *row = w + (size_t)r * w_stride;                                         \
            float *yr = y + r;                                                                     \
            CALL;                                                                                  \
        }                                                                                          \
    }
ROWS1(rows1_q4_K, dot_k4(row, sizeof(lg_block_q4_K), offsetof(lg_block_q4_K, qs), 0, false, true, x,
                         0, 1, n, yr, 1))
ROWS1(rows1_q5_K, dot_k4(row, sizeof(lg_block_q5_K), offsetof(lg_block_q5_K, qs),
                         offsetof(lg_block_q5_K, qh), true, true, x, 0, 1, n, yr, 1))
ROWS1(rows1_q6_K, dot_q6_K(row, true, x, 0, 1, n, yr, 1))

ROWS1(rows1_q8_0, dot_q8_0(row, true, x, 0, 1, n, yr, 1))

bool lg_qgemm_rows1_avx2(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows,
                         const uint8_t *x, int64_t n, float *y) {
    switch (dtype) {
    case LG_DTYPE_Q4_K:
        rows1_q4_K(w, w_stride, n_rows, x, n, y);
        return true;
    case LG_DTYPE_Q5_K:
        rows1_q5_K(w, w_stride, n_rows, x, n, y);
        return true;
    case LG_DTYPE_Q6_K:
        rows1_q6_K(w, w_stride, n_rows, x, n, y);
        return true;
    case LG_DTYPE_Q8_0:
        rows1_q8_0(w, w_stride, n_rows, x, n, y);
        return true;
    default:
        return false;
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never chosen */
bool lg_qgemm_rows1_avx2(lg_dtype dtype, const uint8_t *w, size_t w_stride, int n_rows,
                         const uint8_t *x, int64_t n, float *y) {
    (void)dtype, (void)w, (void)w_stride, (void)n_rows, (void)x, (void)n, (void)y;
    return false;
}
#include "backend/cpu/quant_dot.h"
void lg_qgemm_row_avx2(lg_dtype dtype, const uint8_t *row, const uint8_t *x, size_t x_stride,
                       int n_tokens, int64_t n, float *y, size_t y_stride) {
    (void)dtype, (void)row, (void)x, (void)x_stride, (void)n_tokens, (void)n, (void)y,
        (void)y_stride;
}
void lg_q8_quantize_avx2(const float *x, int n_rows, int64_t n, int block, uint8_t *out) {
    lg_q8_quantize_reference(x, n_rows, n, block, out);
}
void lg_q8_pair_order_avx2(uint8_t *q, int64_t n) {
    (void)q, (void)n;
}
#endif
