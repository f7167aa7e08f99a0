/* Quantised weights times 8-bit activations: the scalar reference (unpack a
 * block to integers with per-16-element scales, then one generic sum) and the
 * AVX2 versions. See quant_dot.h for why. */
#include "quant/quant_dot.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "quant/quant.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define LG_HAVE_AVX2 1
#endif

bool lg_quant_dot_supported(lg_dtype dtype) {
    return dtype == LG_DTYPE_Q8_0 || dtype == LG_DTYPE_Q4_K || dtype == LG_DTYPE_Q5_K || dtype == LG_DTYPE_Q6_K;
}

void lg_quantize_activations(const float *x, int64_t n, lg_block_q8x *out) {
    for (int64_t b = 0; b < n / LG_Q8X_BLOCK; b++, x += LG_Q8X_BLOCK) {
        float amax = 0;
        for (int i = 0; i < LG_Q8X_BLOCK; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        int sum[2] = {0, 0};
        for (int i = 0; i < LG_Q8X_BLOCK; i++) {
            int q = (int)lrintf(x[i] * id);
            q = q > 127 ? 127 : q < -127 ? -127 : q; /* never -128: the sign trick below needs it */
            out[b].q[i] = (int8_t)q;
            sum[i / 16] += q;
        }
        out[b].d = d;
        out[b].sum[0] = (int16_t)sum[0], out[b].sum[1] = (int16_t)sum[1];
    }
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
        for (int j = 0; j < 16; j++) u->scale[j] = d * w->scales[j], u->offset[j] = 0;
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
        d = lg_f16_to_f32(w->d), dmin = lg_f16_to_f32(w->dmin), scales = w->scales, qs = w->qs, qh = w->qh;
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

float lg_quant_dot_q8x_reference(lg_dtype dtype, const void *row, const lg_block_q8x *x, int64_t n) {
    int_block u;
    float sum = 0;
    int64_t done = 0;
    for (int64_t b = 0; done < n; b++) {
        int len = unpack_block(dtype, row, b, &u);
        for (int g = 0; g < len / 16; g++) { /* 16 elements share a scale and an offset */
            const lg_block_q8x *xb = &x[(done + 16 * g) / LG_Q8X_BLOCK];
            int half = g & 1, dot = 0; /* which 16 of the activation block */
            for (int i = 0; i < 16; i++) dot += u.q[16 * g + i] * xb->q[16 * half + i];
            sum += xb->d * (u.scale[g] * (float)dot + u.offset[g] * (float)xb->sum[half]);
        }
        done += len;
    }
    return sum;
}

/* ---- AVX2 ----------------------------------------------------------------- */

#ifdef LG_HAVE_AVX2
/* The block scales' float16 -> float32 in one instruction (F16C; exact). */
static inline float f16(uint16_t h) { return _cvtsh_ss(h); }

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

static float dot_q8_0(const lg_block_q8_0 *w, const lg_block_q8x *x, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)w[b].qs);
        __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x[b].q), q); /* sign of w onto x */
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(q), xs), _mm256_set1_epi16(1));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16(w[b].d) * x[b].d), acc);
    }
    return hsum_ps(acc);
}

/* Q4_K and Q5_K: d, dmin and scales[12] lead both blocks; `five` adds the qh bits. */
static float dot_k4(const uint8_t *row, size_t block_bytes, size_t qs_offset, size_t qh_offset, bool five,
                    const lg_block_q8x *x, int64_t nb) {
    const __m256i nib = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t b = 0; b < nb; b++, x += 8) {
        const uint8_t *blk = row + b * block_bytes;
        const uint16_t *dd = (const uint16_t *)blk;
        float d = f16(dd[0]), dmin = f16(dd[1]);
        const uint8_t *scales = blk + 4, *qs = blk + qs_offset;
        __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(blk + qh_offset)) : _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
            __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
            if (five) {
                __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * g)), one);
                __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * g + 1)), one);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
            }
            uint8_t sc0, m0, sc1, m1;
            lg_k4_scale_min(2 * g, scales, &sc0, &m0);
            lg_k4_scale_min(2 * g + 1, scales, &sc1, &m1);
            const lg_block_q8x *x0 = &x[2 * g], *x1 = &x[2 * g + 1];
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32_u8(lo, x0->q)), _mm256_set1_ps(d * sc0 * x0->d), acc);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32_u8(hi, x1->q)), _mm256_set1_ps(d * sc1 * x1->d), acc);
            mins += dmin * (m0 * x0->d * (float)(x0->sum[0] + x0->sum[1]) + m1 * x1->d * (float)(x1->sum[0] + x1->sum[1]));
        }
    }
    return hsum_ps(acc) - mins;
}

static float dot_q6_K(const lg_block_q6_K *w, const lg_block_q8x *x, int64_t nb) {
    const __m256i nib = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    float offs = 0;
    for (int64_t b = 0; b < nb; b++) {
        float d = f16(w[b].d);
        for (int h = 0; h < 2; h++, x += 4) {
            const uint8_t *ql = w[b].ql + 64 * h;
            const int8_t *sc = w[b].scales + 8 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, nib), _mm256_and_si256(_mm256_slli_epi16(qh, 4), two)),
                _mm256_or_si256(_mm256_and_si256(l1, nib), _mm256_and_si256(_mm256_slli_epi16(qh, 2), two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), nib), _mm256_and_si256(qh, two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), nib),
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), two)),
            };
            for (int k = 0; k < 4; k++) { /* q in 0..63 here; the -32 goes through the activation sums */
                float s0 = d * sc[2 * k] * x[k].d, s1 = d * sc[2 * k + 1] * x[k].d;
                __m256 scale = _mm256_set_m128(_mm_set1_ps(s1), _mm_set1_ps(s0));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32_u8(q[k], x[k].q)), scale, acc);
                offs += 32.0f * (s0 * (float)x[k].sum[0] + s1 * (float)x[k].sum[1]);
            }
        }
    }
    return hsum_ps(acc) - offs;
}
#endif

float lg_quant_dot_q8x(lg_dtype dtype, const void *row, const lg_block_q8x *x, int64_t n) {
#ifdef LG_HAVE_AVX2
    switch (dtype) {
    case LG_DTYPE_Q8_0: return dot_q8_0(row, x, n / LG_QK);
    case LG_DTYPE_Q4_K:
        return dot_k4(row, sizeof(lg_block_q4_K), offsetof(lg_block_q4_K, qs), 0, false, x, n / LG_QK_K);
    case LG_DTYPE_Q5_K:
        return dot_k4(row, sizeof(lg_block_q5_K), offsetof(lg_block_q5_K, qs), offsetof(lg_block_q5_K, qh), true, x,
                      n / LG_QK_K);
    case LG_DTYPE_Q6_K: return dot_q6_K(row, x, n / LG_QK_K);
    default: break;
    }
#endif
    return lg_quant_dot_q8x_reference(dtype, row, x, n);
}
