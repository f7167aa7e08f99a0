/* One query head against one chunk of keys and values, with AVX-512: the
 * inner step of cpu_attention.c's online softmax (lg_attention_chunk_fn),
 * compiled for AVX-512 whatever the build's -march and called only when the
 * CPU has it. The query and the running output stay in registers (head_dim
 * 64, 128 or 256); each score is one chain of multiply-adds and one
 * horizontal sum; exp is a vector polynomial (Cephes' expf: within 2 ulp of
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

static ALWAYS_INLINE void chunk(const int NV, const float *q, const float *const *key,
                                const float *const *val, int n, float scale, float *s, float *out,
                                float *run_max, float *run_sum) {
    __m512 qv[16], o[16];
    UNROLL
    for (int v = 0; v < NV; v++)
        qv[v] = _mm512_loadu_ps(q + 16 * v);
    float m = *run_max;
    /* Scores of KB keys side by side: each key's chain of multiply-adds and
     * its horizontal sum are the same instructions as one key alone (so the
     * bits do not change), but KB independent chains keep the FMA unit busy
     * where a single chain waited on each multiply-add's latency. */
    const int KB = NV <= 8 ? 8 : 4;
    int i = 0;
    for (; i + KB <= n; i += KB) {
        __m512 acc[8];
        UNROLL
        for (int b = 0; b < KB; b++)
            acc[b] = _mm512_mul_ps(qv[0], _mm512_loadu_ps(key[i + b]));
        UNROLL
        for (int v = 1; v < NV; v++) {
            UNROLL
            for (int b = 0; b < KB; b++)
                acc[b] = _mm512_fmadd_ps(qv[v], _mm512_loadu_ps(key[i + b] + 16 * v), acc[b]);
        }
        UNROLL
        for (int b = 0; b < KB; b++)
            s[i + b] = _mm512_reduce_add_ps(acc[b]) * scale;
    }
    for (; i < n; i++) {
        __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(key[i]));
        UNROLL
        for (int v = 1; v < NV; v++)
            acc = _mm512_fmadd_ps(qv[v], _mm512_loadu_ps(key[i] + 16 * v), acc);
        s[i] = _mm512_reduce_add_ps(acc) * scale;
    }
    for (i = 0; i < n; i++)
        m = s[i] > m ? s[i] : m;
    float keep = expf(*run_max - m); /* rescales what the earlier chunks summed */
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
    __m512 kv = _mm512_set1_ps(keep);
    UNROLL
    for (int v = 0; v < NV; v++)
        o[v] = _mm512_mul_ps(_mm512_loadu_ps(out + 16 * v), kv);
    for (int i = 0; i < n; i++) {
        __m512 w = _mm512_set1_ps(s[i]);
        UNROLL
        for (int v = 0; v < NV; v++)
            o[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(val[i] + 16 * v), o[v]);
    }
    UNROLL
    for (int v = 0; v < NV; v++)
        _mm512_storeu_ps(out + 16 * v, o[v]);
}

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
#endif
