/* The query heads of one KV head against one chunk of keys and values,
 * with AVX-512: the inner step of cpu_attention.c's online softmax
 * (lg_attention_heads_fn), compiled
 * for AVX-512 whatever the build's -march and called only when the CPU has
 * it. The structure of the AVX2 step (cpu_attention_avx2.c) on 16 lanes:
 * each key and value vector loaded, and converted from an f16 cache, once for
 * all the heads; per (head, key) one chain of multiply-adds and one
 * horizontal sum; exp a vector polynomial (Cephes' expf: within 2 ulp of
 * libm's over the range a softmax uses). */
#include "backend/cpu/cpu_attention_isa.h"

#if defined(__x86_64__) && defined(__GNUC__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))),        \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512dq,avx512vl,avx2,fma")
#endif
#include <immintrin.h>
#include <math.h>

#include "backend/cpu/avx512_sums.h"

/* exp(x) for x <= 0 (scores minus their maximum); below -87 it gives ~1e-38 */
static ALWAYS_INLINE __m512 exp_neg(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

/* Vector v (16 dims) of a key or value row: float32, or f16 (F16) converted
 * on the way, which is exact, so the arithmetic after it is the same. */
static ALWAYS_INLINE __m512 row_vec(const int F16, const void *row, int v) {
    return F16 ? _mm512_cvtph_ps(
                     _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + 16 * v)))
               : _mm512_loadu_ps((const float *)row + 16 * v);
}

/* One head's scores of keys [0, n): s[i] = q . key[i] * scale, each key one
 * multiply and a chain of multiply-adds over q's NV vectors, then
 * _mm512_reduce_add_ps. KB keys side by side (the same instructions per key
 * as one alone) keep the FMA unit busy where one chain waited on each
 * multiply-add's latency. */
static ALWAYS_INLINE void head_scores(const int F16, const int NV, const float *q,
                                      const void *const *key, int n, float scale, float *s) {
    __m512 qv[16];
    UNROLL
    for (int v = 0; v < NV; v++)
        qv[v] = _mm512_loadu_ps(q + 16 * v);
    const int KB = NV <= 8 ? 8 : 4;
    int i = 0;
    for (; i + KB <= n; i += KB) {
        __m512 acc[8];
        UNROLL
        for (int b = 0; b < KB; b++)
            acc[b] = _mm512_mul_ps(qv[0], row_vec(F16, key[i + b], 0));
        UNROLL
        for (int v = 1; v < NV; v++) {
            UNROLL
            for (int b = 0; b < KB; b++)
                acc[b] = _mm512_fmadd_ps(qv[v], row_vec(F16, key[i + b], v), acc[b]);
        }
        UNROLL
        for (int b = 0; b < KB; b++)
            s[i + b] = _mm512_reduce_add_ps(acc[b]) * scale;
    }
    for (; i < n; i++) {
        __m512 acc = _mm512_mul_ps(qv[0], row_vec(F16, key[i], 0));
        UNROLL
        for (int v = 1; v < NV; v++)
            acc = _mm512_fmadd_ps(qv[v], row_vec(F16, key[i], v), acc);
        s[i] = _mm512_reduce_add_ps(acc) * scale;
    }
}

/* The online softmax's step for one head's n scores in s: the running
 * maximum and sum updated, s turned into the weights exp(s - max); returns
 * the factor that rescales what the earlier chunks summed. */
static ALWAYS_INLINE float softmax_step(float *s, int n, float *run_max, float *run_sum) {
    /* the maximum 16 scores at a time; exact, so the order does not matter */
    __m512 mx = _mm512_set1_ps(*run_max);
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        mx = _mm512_mask_max_ps(mx, k, mx, _mm512_maskz_loadu_ps(k, s + i));
    }
    float m = _mm512_reduce_max_ps(mx);
    /* exactly expf(0) = 1 when the maximum stayed, as it mostly does after
     * the first chunks: the libm call is skipped, not the value changed */
    float keep = m == *run_max ? 1.0f : expf(*run_max - m);
    __m512 sum = _mm512_setzero_ps(), mv = _mm512_set1_ps(m);
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 e =
            _mm512_maskz_mov_ps(k, exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + i), mv)));
        _mm512_mask_storeu_ps(s + i, k, e);
        sum = _mm512_add_ps(sum, e);
    }
    *run_sum = *run_sum * keep + _mm512_reduce_add_ps(sum);
    *run_max = m;
    return keep;
}

/* The scores of G heads (4..8) for NK (1, 2) keys: per (head, key) the
 * chain of head_scores(), the heads' chains side by side, each key vector
 * loaded (and converted) once for all G heads and each q vector once for the
 * NK keys; the G sums of a key across lanes together (avx512_sums.h). */
static ALWAYS_INLINE void key_scores(const int F16, const int G, const int NV, const int NK,
                                     const float *q, const void *const *key, float scale,
                                     float *s, int s_stride) {
    const int hd = 16 * NV;
    __m512 acc[2][8];
    UNROLL
    for (int v = 0; v < NV; v++) {
        __m512 kv[2];
        UNROLL
        for (int b = 0; b < NK; b++)
            kv[b] = row_vec(F16, key[b], v);
        UNROLL
        for (int h = 0; h < G; h++) {
            __m512 qv = _mm512_loadu_ps(q + h * hd + 16 * v);
            VKEEP(qv); /* loaded once for the NK keys, not folded into each multiply-add */
            UNROLL
            for (int b = 0; b < NK; b++)
                acc[b][h] = v == 0 ? _mm512_mul_ps(qv, kv[b]) : _mm512_fmadd_ps(qv, kv[b], acc[b][h]);
        }
    }
    UNROLL
    for (int b = 0; b < NK; b++) {
        float dot[8];
        lg_avx512_sums8(acc[b], G, dot);
        UNROLL
        for (int h = 0; h < G; h++)
            s[h * s_stride + b] = dot[h] * scale;
    }
}

/* G (a constant, 1..8) query heads of NV vectors of 16 dims that read the
 * same keys and values, against one chunk of n keys, with float32 or (F16)
 * f16 rows. Per (head, key) the score is head_scores()'s chain; per (head,
 * output vector) the output is rescaled by the head's keep (unless 1), then
 * gets one multiply-add per position in order: every head's arithmetic is
 * that of the head alone. From 4 heads on, each key and value vector is
 * loaded (and converted) once for all G heads, whose chains run side by side
 * (8 chains a key where one head had one), the G scores of a key summed
 * across lanes together (avx512_sums.h), and the outputs go two vectors at a
 * time (2G accumulators). */
static ALWAYS_INLINE void heads(const int F16, const int G, const int NV, const float *q,
                                const void *const *key, const void *const *val, int n, float scale,
                                float *s, int s_stride, float *out, float *run_max,
                                float *run_sum, const lg_attention_next *next) {
    const int hd = 16 * NV, row_bytes = 2 * hd; /* of an f16 row */
    const int nk = F16 && next ? next->n : 0;   /* the next chunk's rows to ask for */
    if (G < 4) {
        for (int i = 0; i < nk; i++)
            lg_ask_row(next->key, nk, i, row_bytes);
        for (int h = 0; h < G; h++)
            head_scores(F16, NV, q + h * hd, key, n, scale, s + h * s_stride);
    } else {
        int i = 0;
        for (; i + 2 <= n; i += 2) { /* two keys a pass: each q vector loaded once for both */
            if (nk) lg_ask_row(next->key, nk, i, row_bytes), lg_ask_row(next->key, nk, i + 1, row_bytes);
            key_scores(F16, G, NV, 2, q, key + i, scale, s + i, s_stride);
        }
        if (i < n) {
            if (nk) lg_ask_row(next->key, nk, i, row_bytes);
            key_scores(F16, G, NV, 1, q, key + i, scale, s + i, s_stride);
        }
    }
    float keep[8];
    UNROLL
    for (int h = 0; h < G; h++)
        keep[h] = softmax_step(s + h * s_stride, n, &run_max[h], &run_sum[h]);
    const int VB = G >= 4 ? 2 : (NV <= 8 ? NV : 8); /* output vectors per pass */
    for (int v0 = 0; v0 < NV; v0 += VB) {
        __m512 o[8][8];
        UNROLL
        for (int h = 0; h < G; h++) {
            UNROLL
            for (int v = 0; v < VB; v++) { /* times 1 leaves a float as it is */
                __m512 prev = _mm512_loadu_ps(out + h * hd + 16 * (v0 + v));
                o[h][v] = keep[h] == 1.0f ? prev : _mm512_mul_ps(prev, _mm512_set1_ps(keep[h]));
            }
        }
        for (int j = 0; j < n; j++) {
            if (nk && v0 == 0) lg_ask_row(next->val, nk, j, row_bytes);
            __m512 x[8];
            UNROLL
            for (int v = 0; v < VB; v++) {
                x[v] = row_vec(F16, val[j], v0 + v);
                VKEEP(x[v]); /* loaded once for the G heads, not folded into each multiply-add */
            }
            UNROLL
            for (int h = 0; h < G; h++) {
                __m512 w = _mm512_set1_ps(s[h * s_stride + j]);
                UNROLL
                for (int v = 0; v < VB; v++)
                    o[h][v] = _mm512_fmadd_ps(w, x[v], o[h][v]);
            }
        }
        UNROLL
        for (int h = 0; h < G; h++) {
            UNROLL
            for (int v = 0; v < VB; v++)
                _mm512_storeu_ps(out + h * hd + 16 * (v0 + v), o[h][v]);
        }
    }
}

LG_ATTENTION_HEADS_ENTRIES(avx512, 16)

static void f16_row(const uint16_t *src, float *dst, int n) {
    for (int i = 0; i < n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
}

LG_ATTENTION_ISA_ENTRIES(avx512, 16)

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never chosen */
LG_ATTENTION_ISA_STUBS(avx512)
LG_ATTENTION_HEADS_STUBS(avx512)
#endif
