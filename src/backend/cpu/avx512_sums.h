/* The sums across the lanes of up to 8 AVX-512 float vectors at once, each
 * with the pairing of _mm512_reduce_add_ps (lane i + i+8, then + i+4, then
 * + i+2, then the last two: float addition is commutative, so the same bits
 * as a reduce_add_ps of each) but sharing the shuffles: 8 vectors in ~23
 * instructions rather than ~64. For the files compiled for AVX-512 (their
 * target pragma in force before this is included). */
#ifndef LAGUNA_BACKEND_CPU_AVX512_SUMS_H
#define LAGUNA_BACKEND_CPU_AVX512_SUMS_H

#include <immintrin.h>

/* [a_i + a_i+8 | b_i + b_i+8] */
static inline __attribute__((always_inline)) __m512 lg_avx512_halves(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
}

/* sum[k] = the lanes of v[k] summed, for k < n (1..8); v[k] for k >= n unread. */
static inline __attribute__((always_inline)) void lg_avx512_sums8(const __m512 *v, int n,
                                                                  float *sum) {
    if (n == 1) {
        sum[0] = _mm512_reduce_add_ps(v[0]);
        return;
    }
    __m512 w[8];
    _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) w[k] = k < n ? v[k] : _mm512_setzero_ps();
    /* level 1: pairs (0,1) (2,3) (4,5) (6,7), 8 lanes each */
    __m512 p01 = lg_avx512_halves(w[0], w[1]), p23 = lg_avx512_halves(w[2], w[3]);
    __m512 p45 = lg_avx512_halves(w[4], w[5]), p67 = lg_avx512_halves(w[6], w[7]);
    /* level 2: 4 lanes each: [0 | 1 | 2 | 3] and [4 | 5 | 6 | 7] */
    __m512 q0 =
        _mm512_add_ps(_mm512_shuffle_f32x4(p01, p23, 0x88), _mm512_shuffle_f32x4(p01, p23, 0xDD));
    __m512 q1 =
        _mm512_add_ps(_mm512_shuffle_f32x4(p45, p67, 0x88), _mm512_shuffle_f32x4(p45, p67, 0xDD));
    /* level 3: lanes 0,1 + lanes 2,3 of each: [0 0 4 4 | 1 1 5 5 | ...] */
    __m512d a = _mm512_castps_pd(q0), b = _mm512_castps_pd(q1);
    __m512 r = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    /* level 4: the two left of each, in lanes 0 (v0), 2 (v4), 4 (v1), 6 (v5), ... */
    r = _mm512_add_ps(r, _mm512_permute_ps(r, 0xB1));
    float out[16];
    _mm512_storeu_ps(out, r);
    static const int lane[8] = {0, 4, 8, 12, 2, 6, 10, 14};
    _Pragma("GCC unroll 8") for (int k = 0; k < n; k++) sum[k] = out[lane[k]];
}

#endif
