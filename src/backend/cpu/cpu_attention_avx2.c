/* The query heads of one KV head against one chunk of keys and values, with
 * AVX2 and FMA: the inner step of cpu_attention.c's online softmax
 * (lg_attention_heads_fn) for CPUs without AVX-512, compiled for AVX2 whatever the build's -march
 * and called only when the CPU has it. What the plain C step leaves slow
 * there is exp: one libm call per score. Here exp is the vector polynomial
 * of cpu_attention_avx512.c (Cephes' expf) on 8 lanes, scores are 8 keys
 * side by side (each key one chain of multiply-adds and one fixed
 * horizontal sum), and the output is updated 8 vectors (64 dims) at a time,
 * so that with the 16 registers AVX2 has the running output, the weight and
 * a value fit. Every row's arithmetic depends on its own inputs only. */
#include "backend/cpu/cpu_attention_isa.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "backend/cpu/avx2_target.h"
#include <immintrin.h>
#include <math.h>

/* exp(x) for x <= 0 (scores minus their maximum); below -87 it gives ~1e-38 */
static ALWAYS_INLINE __m256 exp_neg(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* y * 2^n: n >= -126 here, so 2^n is a normal float built from its exponent bits */
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* The 8 lanes of v summed in a fixed order. */
static ALWAYS_INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Vector v (8 dims) of a key or value row: float32, or f16 (F16) converted
 * on the way, which is exact, so the arithmetic after it is the same. */
static ALWAYS_INLINE __m256 row_vec(const int F16, const void *row, int v) {
    return F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + 8 * v)))
               : _mm256_loadu_ps((const float *)row + 8 * v);
}

/* The scores of NK keys side by side: per key one multiply and a chain of
 * multiply-adds over the NV vectors of q, then a fixed horizontal sum, the
 * same operations whatever NK. Eight keys a pass (was four) keep the two FMA
 * pipes busy: a chain waits 4 cycles per multiply-add, so four chains left
 * half the issue slots empty. */
static ALWAYS_INLINE void scores(const int F16, const int NK, const int NV, const float *q,
                                 const void *const *key, float scale, float *s) {
    __m256 acc[8];
    __m256 q0 = _mm256_loadu_ps(q);
    UNROLL
    for (int b = 0; b < NK; b++)
        acc[b] = _mm256_mul_ps(q0, row_vec(F16, key[b], 0));
    for (int v = 1; v < NV; v++) {
        __m256 qv = _mm256_loadu_ps(q + 8 * v);
        UNROLL
        for (int b = 0; b < NK; b++)
            acc[b] = _mm256_fmadd_ps(qv, row_vec(F16, key[b], v), acc[b]);
    }
    UNROLL
    for (int b = 0; b < NK; b++)
        s[b] = hsum(acc[b]) * scale;
}

/* One head's scores of keys [0, n) (s[i] = q . key[i] * scale), per key the
 * chain of scores(): 8 keys side by side, then 4, then one. */
static ALWAYS_INLINE void head_scores(const int F16, const int NV, const float *q,
                                      const void *const *key, int n, float scale, float *s) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        scores(F16, 8, NV, q, key + i, scale, s + i);
    for (; i + 4 <= n; i += 4)
        scores(F16, 4, NV, q, key + i, scale, s + i);
    for (; i < n; i++)
        scores(F16, 1, NV, q, key + i, scale, s + i);
}

/* The online softmax's step for one head's n scores in s: the running
 * maximum and sum updated, s turned into the weights exp(s - max); returns
 * the factor that rescales what the earlier chunks summed. */
static ALWAYS_INLINE float softmax_step(float *s, int n, float *run_max, float *run_sum) {
    float m = *run_max;
    int i;
    for (i = 0; i < n; i++)
        m = s[i] > m ? s[i] : m;
    float keep = expf(*run_max - m);
    __m256 sum = _mm256_setzero_ps(), mv = _mm256_set1_ps(m);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
        _mm256_storeu_ps(s + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float tail = 0.0f;
    for (; i < n; i++) { /* the chunk's last few scores: the same polynomial, one lane */
        float e = _mm256_cvtss_f32(exp_neg(_mm256_set1_ps(s[i] - m)));
        s[i] = e;
        tail += e;
    }
    *run_sum = *run_sum * keep + (hsum(sum) + tail);
    *run_max = m;
    return keep;
}

/* G (a constant, 1..8) query heads of NV vectors of 8 dims (head_dim 8 NV)
 * that read the same keys and values, against one chunk, with float32 or
 * (F16) f16 rows. Per (head, key) the score is scores()'s chain; per (head,
 * output vector) the output is rescaled by the head's keep, then gets one
 * multiply-add per position in order. With 4 heads or more each key and
 * value vector is loaded (and converted) once for all G, the heads' chains
 * side by side, instead of once per head (2026-12-03, docs/performance.md,
 * "CPU decode with AVX2"). */
static ALWAYS_INLINE void heads(const int F16, const int G, const int NV, const float *q,
                                const void *const *key, const void *const *val, int n, float scale,
                                float *s, int s_stride, float *out, float *run_max,
                                float *run_sum, const lg_attention_next *next) {
    const int hd = 8 * NV, row_bytes = 2 * hd; /* of an f16 row */
    const int nk = F16 && next ? next->n : 0;  /* the next chunk's rows to ask for */
    if (G < 4) {
        for (int i = 0; i < nk; i++)
            lg_ask_row(next->key, nk, i, row_bytes);
        for (int h = 0; h < G; h++)
            head_scores(F16, NV, q + h * hd, key, n, scale, s + h * s_stride);
    } else {
        for (int i = 0; i < n; i++) {
            if (nk) lg_ask_row(next->key, nk, i, row_bytes);
            const void *k = key[i];
            __m256 acc[8], kv = row_vec(F16, k, 0);
            UNROLL
            for (int h = 0; h < G; h++)
                acc[h] = _mm256_mul_ps(_mm256_loadu_ps(q + h * hd), kv);
            for (int v = 1; v < NV; v++) {
                kv = row_vec(F16, k, v);
                UNROLL
                for (int h = 0; h < G; h++)
                    acc[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * hd + 8 * v), kv, acc[h]);
            }
            UNROLL
            for (int h = 0; h < G; h++)
                s[h * s_stride + i] = hsum(acc[h]) * scale;
        }
    }
    float keep[8];
    UNROLL
    for (int h = 0; h < G; h++)
        keep[h] = softmax_step(s + h * s_stride, n, &run_max[h], &run_sum[h]);
    for (int v = 0; v < NV; v++) {
        __m256 o[8];
        UNROLL
        for (int h = 0; h < G; h++)
            o[h] = _mm256_mul_ps(_mm256_loadu_ps(out + h * hd + 8 * v), _mm256_set1_ps(keep[h]));
        for (int j = 0; j < n; j++) {
            if (nk && v == 0) lg_ask_row(next->val, nk, j, row_bytes);
            __m256 x = row_vec(F16, val[j], v);
            UNROLL
            for (int h = 0; h < G; h++)
                o[h] = _mm256_fmadd_ps(_mm256_broadcast_ss(s + h * s_stride + j), x, o[h]);
        }
        UNROLL
        for (int h = 0; h < G; h++)
            _mm256_storeu_ps(out + h * hd + 8 * v, o[h]);
    }
}

LG_ATTENTION_HEADS_ENTRIES(avx2, 8)

static void f16_row(const uint16_t *src, float *dst, int n) {
    for (int i = 0; i < n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
}

LG_ATTENTION_ISA_ENTRIES(avx2, 8)

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never chosen */
LG_ATTENTION_ISA_STUBS(avx2)
LG_ATTENTION_HEADS_STUBS(avx2)
#endif
