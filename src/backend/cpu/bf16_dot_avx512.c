/* BF16 weights times bf16 activations with AVX-512 BF16 (bf16_dot.h):
 * tiles of 4 rows x 6 tokens (24 accumulators, 6 activation vectors, a
 * weight vector), 8 rows for one token, as the float kernels
 * (float_gemm_avx512.c); a step takes 32 elements, one vdpbf16ps per (row,
 * token), sums across the lanes at the end. Compiled for AVX-512 BF16
 * whatever the build's -march, called only when cpuid says the CPU has it. */
#include "backend/cpu/bf16_dot.h"

size_t lg_bf16_row_bytes(int64_t n) {
    return ((size_t)n * 2 + 63) / 64 * 64;
}

#if defined(__x86_64__) && defined(__GNUC__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")
#endif
#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/quant_dot.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")
#define STEP 32 /* elements a vdpbf16ps takes */
#define TILE_ROWS 4
#define TILE_ROWS_ONE 8
#define TILE_TOKENS 6
/* otherwise the compiler folds each activation load into the row's
 * dot products: TILE_ROWS times the loads (float_gemm_tiles.h) */
#define VKEEP(v) __asm__("" : "+v"(v))

bool lg_bf16_dot_available(void) {
    static _Atomic int cached = -1;
    int v = cached;
    if (v >= 0) return v;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid_max(0, NULL) >= 7) __cpuid_count(7, 1, a, b, c, d);
    bool bf16 = a >> 5 & 1; /* leaf 7, sub-leaf 1, EAX bit 5: AVX512_BF16 */
    v = bf16 && lg_qgemm_isa_best() == LG_ISA_AVX512_VNNI; /* AVX-512 present, saved by the OS, not capped */
    cached = v;
    return v;
}

void lg_bf16_round_rows(const float *x, int n_rows, int64_t n, uint8_t *out) {
    size_t stride = lg_bf16_row_bytes(n);
    for (int r = 0; r < n_rows; r++, x += n, out += stride) {
        int64_t k = 0;
        for (; k + 16 <= n; k += 16)
            _mm256_storeu_si256((__m256i *)(out + 2 * k), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + k)));
        if (k < n) { /* the last part-vector, zeros after it */
            __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
            _mm256_storeu_si256((__m256i *)(out + 2 * k), (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + k)));
            k += 16;
        }
        memset(out + 2 * k, 0, stride - 2 * (size_t)k);
    }
}

/* R rows (w, ws bytes apart) times T tokens (x, xs elements apart):
 * y[t * ys + r]. ask_next: on the first token tile, which streams the rows
 * from memory, each step asks for its share of the next R rows. */
static ALWAYS_INLINE void tile(int R, int T, const uint8_t *w, size_t ws, const uint16_t *x, size_t xs, int64_t n,
                               float *y, size_t ys, const float *bias, bool ask_next) {
    __m512 acc[TILE_ROWS_ONE][TILE_TOKENS];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
    for (int t = 0; t < T; t++)
        acc[r][t] = _mm512_setzero_ps();
    int64_t whole = n - n % STEP, k = 0;
    const size_t share = (size_t)R * STEP * 2;
    const uint8_t *next = w + (size_t)R * ws;
    for (; k < whole; k += STEP) {
        if (ask_next)
            for (size_t o = 0; o < share; o += 64)
                __builtin_prefetch(next + (size_t)k / STEP * share + o);
        __m512bh xv[TILE_TOKENS];
        UNROLL
        for (int t = 0; t < T; t++) {
            xv[t] = (__m512bh)_mm512_loadu_si512(x + (size_t)t * xs + k);
            VKEEP(xv[t]);
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            __m512bh wv = (__m512bh)_mm512_loadu_si512(w + (size_t)r * ws + 2 * (size_t)k);
            UNROLL
            for (int t = 0; t < T; t++)
                acc[r][t] = _mm512_dpbf16_ps(acc[r][t], wv, xv[t]);
        }
    }
    if (k < n) { /* the last part-step: the activation rows have zeros after n, the weights masked */
        __mmask32 m = (__mmask32)(n - k == 32 ? ~0u : (1u << (n - k)) - 1);
        UNROLL
        for (int r = 0; r < R; r++) {
            __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, w + (size_t)r * ws + 2 * (size_t)k);
            UNROLL
            for (int t = 0; t < T; t++)
                acc[r][t] = _mm512_dpbf16_ps(acc[r][t], wv, (__m512bh)_mm512_loadu_si512(x + (size_t)t * xs + k));
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
    for (int t = 0; t < T; t++)
        y[(size_t)t * ys + r] = _mm512_reduce_add_ps(acc[r][t]) + (bias ? bias[r] : 0.0f);
}

/* Every row against the T tokens from t0: tiles of TILE_ROWS rows
 * (TILE_ROWS_ONE for one token), the last rows one at a time. */
static ALWAYS_INLINE void rows_pass(int T, const lg_bf16_dot_args *a, int t0) {
    const uint16_t *x = a->x + (size_t)t0 * a->x_stride;
    float *y = a->y + (size_t)t0 * a->y_stride;
    const int rows = T == 1 ? TILE_ROWS_ONE : TILE_ROWS;
    int r = 0;
    for (; r + rows <= a->n_rows; r += rows)
        tile(rows, T, a->w + (size_t)r * a->w_stride, a->w_stride, x, a->x_stride, a->n, y + r, a->y_stride,
             a->bias ? a->bias + r : NULL, t0 == 0);
    for (; r < a->n_rows; r++)
        tile(1, T, a->w + (size_t)r * a->w_stride, a->w_stride, x, a->x_stride, a->n, y + r, a->y_stride,
             a->bias ? a->bias + r : NULL, t0 == 0);
}

/* Token tiles in order; within each, every row (the tile's activations stay
 * in the cache while the rows go by). */
void lg_bf16_dot_gemm(const lg_bf16_dot_args *a) {
    for (int t0 = 0; t0 < a->n_tokens; t0 += TILE_TOKENS) {
        switch (a->n_tokens - t0 < TILE_TOKENS ? a->n_tokens - t0 : TILE_TOKENS) {
        case 1: rows_pass(1, a, t0); break;
        case 2: rows_pass(2, a, t0); break;
        case 3: rows_pass(3, a, t0); break;
        case 4: rows_pass(4, a, t0); break;
        case 5: rows_pass(5, a, t0); break;
        default: rows_pass(6, a, t0); break;
        }
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never available */
bool lg_bf16_dot_available(void) {
    return false;
}
void lg_bf16_round_rows(const float *x, int n_rows, int64_t n, uint8_t *out) {
    (void)x, (void)n_rows, (void)n, (void)out;
}
void lg_bf16_dot_gemm(const lg_bf16_dot_args *a) {
    (void)a;
}
#endif
