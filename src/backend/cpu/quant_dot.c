/* Quantised weights times 8-bit activations: the scalar reference (unpack a
 * block to integers with per-16-element scales, then one generic sum) and the
 * AVX2 versions. See quant_dot.h for why. */
#include "backend/cpu/quant_dot.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "quant/quant.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define LG_HAVE_AVX2 1
#endif

bool lg_quant_dot_supported(lg_dtype dtype) {
    return dtype == LG_DTYPE_Q8_0 || dtype == LG_DTYPE_Q4_K || dtype == LG_DTYPE_Q5_K ||
           dtype == LG_DTYPE_Q6_K;
}

void lg_quantize_activations_reference(const float *x, int64_t n, lg_block_q8x *out) {
    for (int64_t b = 0; b < n / LG_Q8X_BLOCK; b++, x += LG_Q8X_BLOCK) {
        float amax = 0;
        for (int i = 0; i < LG_Q8X_BLOCK; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        int sum[2] = {0, 0};
        for (int i = 0; i < LG_Q8X_BLOCK; i++) {
            int q = (int)lrintf(x[i] * id);
            q = q > 127 ? 127 : q < -127 ? -127 : q; /* never -128: dot_q8_0's sign trick needs it */
            out[b].q[i] = (int8_t)q;
            sum[i / 16] += q;
        }
        out[b].d = d;
        out[b].sum[0] = (int16_t)sum[0], out[b].sum[1] = (int16_t)sum[1];
    }
}

#ifdef LG_HAVE_AVX2
/* The same operations as the scalar version (amax, d = amax / 127, q =
 * round-to-nearest-even(x * (1 / d))), eight lanes at a time: identical output. */
static void quantize_activations_avx2(const float *x, int64_t n, lg_block_q8x *out) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i lim = _mm256_set1_epi32(127), perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / LG_Q8X_BLOCK; b++, x += LG_Q8X_BLOCK) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++)
            v[i] = _mm256_loadu_ps(x + 8 * i), m = _mm256_max_ps(m, _mm256_and_ps(v[i], abs_mask));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4), d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        __m256i q[4];
        for (int i = 0; i < 4; i++) {
            __m256 r = _mm256_round_ps(_mm256_mul_ps(v[i], _mm256_set1_ps(id)),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q[i] = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(r), lim),
                                    _mm256_sub_epi32(_mm256_setzero_si256(), lim));
        }
        __m256i s0 = _mm256_add_epi32(q[0], q[1]), s1 = _mm256_add_epi32(q[2], q[3]);
        __m256i s01 =
            _mm256_hadd_epi32(s0, s1); /* lanes 0,1,4,5: halves of sum 0; 2,3,6,7: of sum 1 */
        s01 = _mm256_hadd_epi32(s01, s01);
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s01), _mm256_extracti128_si256(s01, 1));
        /* int32 -> int8 in element order: packs work per 128-bit lane, the permute undoes it */
        __m256i p16 = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
        __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16, p16b), perm);
        _mm256_storeu_si256((__m256i *)out[b].q, p8);
        out[b].d = d;
        out[b].sum[0] = (int16_t)_mm_cvtsi128_si32(t),
        out[b].sum[1] = (int16_t)_mm_extract_epi32(t, 1);
    }
}
#endif

bool lg_quant_dot_vectorized(lg_dtype dtype) {
#ifdef LG_HAVE_AVX2
    return lg_quant_dot_supported(dtype);
#else
    (void)dtype;
    return false;
#endif
}

void lg_quantize_activations(const float *x, int64_t n, lg_block_q8x *out) {
#ifdef LG_HAVE_AVX2
    quantize_activations_avx2(x, n, out);
#else
    lg_quantize_activations_reference(x, n, out);
#endif
}

/* ---- scalar reference ---------------------------------------------------- */

/* One weight block as integers: w[i] = scale[i/16] * q[i] + offset[i/16]. */
typedef struct {
    int8_t q[LG_QK_K];
    float scale[LG_QK_K / 16], offset[LG_QK_K / 16];
} int_block;

/* Unpacks block `b` of a row; returns the number of elements it holds. */
static int unpack_block(lg_dtype dtype, const uint8_t *row, int64_t b, int_block *u) {
    if (dtype == LG_DTYPE_Q8_0) {
        const lg_block_q8_0 *w = (const lg_block_q8_0 *)row + b;
        float d = lg_f16_to_f32(w->d);
        memcpy(u->q, w->qs, LG_QK);
        u->scale[0] = u->scale[1] = d;
        u->offset[0] = u->offset[1] = 0;
        return LG_QK;
    }
    if (dtype == LG_DTYPE_Q6_K) {
        const lg_block_q6_K *w = (const lg_block_q6_K *)row + b;
        float d = lg_f16_to_f32(w->d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w->ql + 64 * h, *qh = w->qh + 32 * h;
            int8_t *q = u->q + 128 * h;
            for (int l = 0; l < 32; l++) {
                q[l] = (int8_t)(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
                q[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                q[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        for (int j = 0; j < 16; j++)
            u->scale[j] = d * w->scales[j], u->offset[j] = 0;
        return LG_QK_K;
    }
    /* Q4_K and Q5_K: eight sub-blocks of 32 with a 6-bit scale and min */
    const uint8_t *scales, *qs, *qh = NULL;
    float d, dmin;
    if (dtype == LG_DTYPE_Q4_K) {
        const lg_block_q4_K *w = (const lg_block_q4_K *)row + b;
        d = lg_f16_to_f32(w->d), dmin = lg_f16_to_f32(w->dmin), scales = w->scales, qs = w->qs;
    } else {
        const lg_block_q5_K *w = (const lg_block_q5_K *)row + b;
        d = lg_f16_to_f32(w->d), dmin = lg_f16_to_f32(w->dmin), scales = w->scales, qs = w->qs,
        qh = w->qh;
    }
    for (int g = 0; g < 4; g++) /* 64-element groups: low nibbles, then high */
        for (int l = 0; l < 32; l++) {
            int lo = qs[32 * g + l] & 0xF, hi = qs[32 * g + l] >> 4;
            if (qh) lo |= ((qh[l] >> (2 * g)) & 1) << 4, hi |= ((qh[l] >> (2 * g + 1)) & 1) << 4;
            u->q[64 * g + l] = (int8_t)lo;
            u->q[64 * g + 32 + l] = (int8_t)hi;
        }
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        lg_k4_scale_min(j, scales, &sc, &m);
        u->scale[2 * j] = u->scale[2 * j + 1] = d * sc;
        u->offset[2 * j] = u->offset[2 * j + 1] = -dmin * m;
    }
    return LG_QK_K;
}

float lg_quant_dot_q8x_reference(lg_dtype dtype, const void *row, const lg_block_q8x *x,
                                 int64_t n) {
    int_block u;
    float sum = 0;
    int64_t done = 0;
    for (int64_t b = 0; done < n; b++) {
        int len = unpack_block(dtype, row, b, &u);
        for (int g = 0; g < len / 16; g++) { /* 16 elements share a scale and an offset */
            const lg_block_q8x *xb = &x[(done + 16 * g) / LG_Q8X_BLOCK];
            int half = g & 1, dot = 0; /* which 16 of the activation block */
            for (int i = 0; i < 16; i++)
                dot += u.q[16 * g + i] * xb->q[16 * half + i];
            sum += xb->d * (u.scale[g] * (float)dot + u.offset[g] * (float)xb->sum[half]);
        }
        done += len;
    }
    return sum;
}

/* ---- AVX2 ----------------------------------------------------------------- */

#ifdef LG_HAVE_AVX2
/* The block scales' float16 -> float32 in one instruction (F16C; exact). */
static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 unsigned weights (each < 128) times 32 activations: eight int32 sums,
 * lanes 0-3 over elements 0-15 and lanes 4-7 over 16-31. Exact: a pair of
 * products is at most 2 * 127 * 127 < 32768. */
static inline __m256i dot32_u8(__m256i w, const int8_t *x) {
    __m256i p = _mm256_maddubs_epi16(w, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Inlined into one copy per token count, so the count is a constant and the
 * unpacked weights stay in registers. */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* Small fixed loops unrolled, so that arrays of vectors become registers. */
#define UNROLL _Pragma("GCC unroll 8")

/* The vector dots take up to LG_Q8X_TOKENS activation rows (x + t * xs) and
 * unpack each weight block once for all of them, with one accumulator each. */
static ALWAYS_INLINE void zero_acc(__m256 acc[LG_Q8X_TOKENS]) {
    UNROLL
    for (int t = 0; t < LG_Q8X_TOKENS; t++)
        acc[t] = _mm256_setzero_ps();
}

static ALWAYS_INLINE void store_sums(const __m256 acc[LG_Q8X_TOKENS], int nt, float *out) {
    UNROLL
    for (int t = 0; t < nt; t++)
        out[t] = hsum_ps(acc[t]);
}

static ALWAYS_INLINE void dot_q8_0(const lg_block_q8_0 *w, const lg_block_q8x *x, int64_t xs,
                                   int nt, int64_t nb, float *out) {
    __m256 acc[LG_Q8X_TOKENS];
    zero_acc(acc);
    for (int64_t b = 0; b < nb; b++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)w[b].qs), aq = _mm256_abs_epi8(q);
        float d = f16(w[b].d);
        UNROLL
        for (int t = 0; t < nt; t++) {
            const lg_block_q8x *xb = &x[t * xs + b];
            __m256i sx = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xb->q),
                                          q); /* sign of w onto x */
            __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, sx), _mm256_set1_epi16(1));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xb->d), acc[t]);
        }
    }
    store_sums(acc, nt, out);
}

/* Eight vectors p0..p7 of eight int32 to one whose lane j is the sum of pj's
 * lanes, given as the four pairs h[i] = hadd(p[2i], p[2i+1]) (the callers
 * form each pair as soon as it exists, which keeps few vectors live). */
static inline __m256i sum_lanes8(const __m256i h[4]) {
    __m256i a = _mm256_hadd_epi32(h[0], h[1]), b = _mm256_hadd_epi32(h[2], h[3]);
    __m128i lo = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    __m128i hi = _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    return _mm256_set_m128i(hi, lo);
}

/* The scales, and the two 16-element sums as one int32 (sum[0] low, sum[1]
 * high), of eight consecutive activation blocks. (Plain loads: a gather is
 * several times slower on the AMD cores measured.) */
static inline __m256 act_scales8(const lg_block_q8x *x) {
    return _mm256_setr_ps(x[0].d, x[1].d, x[2].d, x[3].d, x[4].d, x[5].d, x[6].d, x[7].d);
}
static inline int32_t sums32(const lg_block_q8x *x) {
    int32_t v;
    memcpy(&v, x->sum, 4);
    return v;
}
static inline __m256i act_sums8(const lg_block_q8x *x) {
    return _mm256_setr_epi32(sums32(&x[0]), sums32(&x[1]), sums32(&x[2]), sums32(&x[3]),
                             sums32(&x[4]), sums32(&x[5]), sums32(&x[6]), sums32(&x[7]));
}

/* Q4_K and Q5_K: d, dmin and scales[12] lead both blocks; `five` adds the qh
 * bits. The eight sub-block sums of a super-block are gathered into one
 * vector (lane j = sub-block j, which is activation block j), so the scales
 * are applied with one multiply-add per 256 elements. */
static ALWAYS_INLINE void dot_k4(const uint8_t *row, size_t block_bytes, size_t qs_offset,
                                 size_t qh_offset, bool five, const lg_block_q8x *x0, int64_t xs,
                                 int nt, int64_t nb, float *out) {
    const __m256i nib = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc[LG_Q8X_TOKENS];
    zero_acc(acc);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * block_bytes;
        const uint16_t *dd = (const uint16_t *)blk;
        const uint8_t *qs = blk + qs_offset;
        /* the 6-bit scales and mins of lg_k4_scale_min, four at a time */
        uint32_t s[3];
        memcpy(s, blk + 4, 12);
        uint32_t sc_lo = s[0] & 0x3f3f3f3f,
                 sc_hi = (s[2] & 0x0f0f0f0f) | ((s[0] >> 6 & 0x03030303) << 4);
        uint32_t m_lo = s[1] & 0x3f3f3f3f,
                 m_hi = (s[2] >> 4 & 0x0f0f0f0f) | ((s[1] >> 6 & 0x03030303) << 4);
        __m256 sc =
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo)));
        __m256 m =
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)m_hi, (int)m_lo)));
        __m256i qh =
            five ? _mm256_loadu_si256((const __m256i *)(blk + qh_offset)) : _mm256_setzero_si256();
        __m256i pairs[LG_Q8X_TOKENS][4];
        UNROLL
        for (int g = 0; g < 4; g++) { /* 64-element groups: sub-blocks 2g (low nibbles) and 2g+1 */
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
            __m256i lo = _mm256_and_si256(v, nib),
                    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
            if (five) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, one), 4));
                hi = _mm256_or_si256(
                    hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), one), 4));
                qh = _mm256_srli_epi16(qh, 2);
            }
            UNROLL
            for (int t = 0; t < nt; t++) {
                const lg_block_q8x *x = x0 + t * xs + 8 * b + 2 * g;
                pairs[t][g] = _mm256_hadd_epi32(dot32_u8(lo, x[0].q), dot32_u8(hi, x[1].q));
            }
        }
        __m256 dsc = _mm256_mul_ps(sc, _mm256_set1_ps(f16(dd[0]))),
               dm = _mm256_mul_ps(m, _mm256_set1_ps(f16(dd[1])));
        UNROLL
        for (int t = 0; t < nt; t++) {
            const lg_block_q8x *x = x0 + t * xs + 8 * b;
            __m256 xsum = _mm256_cvtepi32_ps(_mm256_madd_epi16(act_sums8(x), _mm256_set1_epi16(1)));
            /* sum_j x.d_j * (d * sc_j * dot_j - dmin * m_j * xsum_j) */
            __m256 sub = _mm256_fmsub_ps(_mm256_cvtepi32_ps(sum_lanes8(pairs[t])), dsc,
                                         _mm256_mul_ps(dm, xsum));
            acc[t] = _mm256_fmadd_ps(sub, act_scales8(x), acc[t]);
        }
    }
    store_sums(acc, nt, out);
}

/* Q6_K: per activation block k of a half, the two 16-element weight scales
 * are applied in integers (madd by [sc0 x8 | sc1 x8]: at most 2 * 2 * 63 * 127
 * * 128 in magnitude, exact), so again one vector per super-block holds the
 * eight block sums and one multiply-add applies d * x.d. The -32 offset goes
 * through the activation sums, also in integers. */
static ALWAYS_INLINE void dot_q6_K(const lg_block_q6_K *w, const lg_block_q8x *x0, int64_t xs,
                                   int nt, int64_t nb, float *out) {
    const __m256i nib = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);
    __m256 acc[LG_Q8X_TOKENS];
    zero_acc(acc);
    for (int64_t b = 0; b < nb; b++) {
        __m256i pairs[LG_Q8X_TOKENS][4];
        UNROLL
        for (int h = 0; h < 2; h++) { /* 128-element halves: activation blocks 4h .. 4h+3 */
            const uint8_t *ql = w[b].ql + 64 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql),
                    l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, nib),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 4), two)),
                _mm256_or_si256(_mm256_and_si256(l1, nib),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 2), two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), nib),
                                _mm256_and_si256(qh, two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), nib),
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), two)),
            };
            __m128i sc8 = _mm_loadl_epi64((const __m128i *)(w[b].scales + 8 * h)), scale[4];
            UNROLL
            for (int k = 0; k < 4; k++) /* [sc[2k] x8 | sc[2k+1] x8] as int16 */
                scale[k] = _mm_shuffle_epi8(
                    sc8, _mm_setr_epi8(2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k,
                                       2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                                       2 * k + 1, 2 * k + 1, 2 * k + 1));
            UNROLL
            for (int t = 0; t < nt; t++) {
                const lg_block_q8x *x = x0 + t * xs + 8 * b + 4 * h;
                __m256i p[4];
                UNROLL
                for (int k = 0; k < 4; k++)
                    p[k] = _mm256_madd_epi16(
                        _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)x[k].q)),
                        _mm256_cvtepi8_epi16(scale[k]));
                pairs[t][2 * h] = _mm256_hadd_epi32(p[0], p[1]);
                pairs[t][2 * h + 1] = _mm256_hadd_epi32(p[2], p[3]);
            }
        }
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[b].scales));
        __m256 d = _mm256_set1_ps(f16(w[b].d));
        UNROLL
        for (int t = 0; t < nt;
             t++) { /* q in 0..63 above; the -32 goes through the activation sums */
            const lg_block_q8x *x = x0 + t * xs + 8 * b;
            /* lane k: 32 * (sc[2k] * sum[0] + sc[2k+1] * sum[1]) of activation block k */
            __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(act_sums8(x), sc16), 5);
            __m256i sums = _mm256_sub_epi32(sum_lanes8(pairs[t]), off);
            acc[t] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(act_scales8(x), d), acc[t]);
        }
    }
    store_sums(acc, nt, out);
}
#endif

#ifdef LG_HAVE_AVX2
/* One copy of each vector dot per token count 1..LG_Q8X_TOKENS. */
#define PER_COUNT(NAME, CALL)                                                                      \
    static void NAME(const void *row, const lg_block_q8x *x, int64_t xs, int nt, int64_t n,        \
                     float *out) {                                                                 \
        switch (nt) {                                                                              \
        case 1:                                                                                    \
            CALL(1);                                                                               \
            break;                                                                                 \
        case 2:                                                                                    \
            CALL(2);                                                                               \
            break;                                                                                 \
        case 3:                                                                                    \
            CALL(3);                                                                               \
            break;                                                                                 \
        default:                                                                                   \
            CALL(4);                                                                               \
            break;                                                                                 \
        }                                                                                          \
    }
#define CALL_Q8_0(NT) dot_q8_0(row, x, xs, NT, n / LG_QK, out)
#define CALL_Q4_K(NT)                                                                              \
    dot_k4(row, sizeof(lg_block_q4_K), offsetof(lg_block_q4_K, qs), 0, false, x, xs, NT,           \
           n / LG_QK_K, out)
#define CALL_Q5_K(NT)                                                                              \
    dot_k4(row, sizeof(lg_block_q5_K), offsetof(lg_block_q5_K, qs), offsetof(lg_block_q5_K, qh),   \
           true, x, xs, NT, n / LG_QK_K, out)
#define CALL_Q6_K(NT) dot_q6_K(row, x, xs, NT, n / LG_QK_K, out)
PER_COUNT(vec_q8_0, CALL_Q8_0)
PER_COUNT(vec_q4_K, CALL_Q4_K)
PER_COUNT(vec_q5_K, CALL_Q5_K)
PER_COUNT(vec_q6_K, CALL_Q6_K)
#endif

void lg_quant_dot_q8x_tokens(lg_dtype dtype, const void *row, const lg_block_q8x *x,
                             int64_t x_stride, int n_tokens, int64_t n, float *out) {
    for (int t0 = 0; t0 < n_tokens; t0 += LG_Q8X_TOKENS) {
        int nt = n_tokens - t0 < LG_Q8X_TOKENS ? n_tokens - t0 : LG_Q8X_TOKENS;
        const lg_block_q8x *xt = x + t0 * x_stride;
#ifdef LG_HAVE_AVX2
        void (*vec)(const void *, const lg_block_q8x *, int64_t, int, int64_t, float *) =
            dtype == LG_DTYPE_Q8_0   ? vec_q8_0
            : dtype == LG_DTYPE_Q4_K ? vec_q4_K
            : dtype == LG_DTYPE_Q5_K ? vec_q5_K
            : dtype == LG_DTYPE_Q6_K ? vec_q6_K
                                     : NULL;
        if (vec) {
            vec(row, xt, x_stride, nt, n, out + t0);
            continue;
        }
#endif
        for (int t = 0; t < nt; t++)
            out[t0 + t] = lg_quant_dot_q8x_reference(dtype, row, xt + t * x_stride, n);
    }
}

float lg_quant_dot_q8x(lg_dtype dtype, const void *row, const lg_block_q8x *x, int64_t n) {
    float out;
    lg_quant_dot_q8x_tokens(dtype, row, x, 0, 1, n, &out);
    return out;
}
