/* ggml's k-quants with 256-element super-blocks: Q4_K, Q5_K, Q6_K.
 *
 * Q4_K / Q5_K: eight sub-blocks of 32, each fitted as x ~ s*q - m with
 * lg_make_qkx2_quants (weights av|x| + |x|), then every s and m is itself
 * quantised to 6 bits against the super-block's largest (d = max s / 63,
 * dmin = max m / 63) and the elements are re-rounded with the stored scales.
 * Q6_K: sixteen symmetric sub-blocks of 16 (lg_make_qx_quants), scales as
 * int8 against d = max |s| / 128. This is ggml's quantize_row_q*_K_ref; the
 * dequantisers are ggml's dequantize_row_q*_K. Layouts: quant/quant.h. */
/* Bit-exact agreement with ggml needs every multiply and add rounded on its
 * own: no fused multiply-add, even when the build passes -ffp-contract=fast. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <string.h>

#include "quant/quant.h"
#include "quant/quant_search.h"

#define GROUP_MAX_EPS 1e-15f

static int clamp_int(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* Packs sub-block j's 6-bit scale and min into scales[12] (inverse of
 * lg_k4_scale_min); j must run 0..7 in order, as later j OR into earlier bytes. */
static void k4_pack_scale_min(int j, uint8_t ls, uint8_t lm, uint8_t *scales) {
    if (j < 4) {
        scales[j] = ls;
        scales[j + 4] = lm;
    } else {
        scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
        scales[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* The shared part of Q4_K and Q5_K quantisation: levels L[256] in [0, nmax]
 * and the block header (d, dmin, scales). */
static void k45_levels(const float *x, int nmax, float rmin, int nstep, uint16_t *d_out,
                       uint16_t *dmin_out, uint8_t scales_out[12], uint8_t L[LG_QK_K]) {
    uint8_t Laux[32];
    float weights[32], mins[LG_QK_K / 32], scales[LG_QK_K / 32];
    float max_scale = 0, max_min = 0; /* the min is subtracted, so scales are >= 0 */
    for (int j = 0; j < LG_QK_K / 32; ++j) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l)
            sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l)
            weights[l] = av_x + fabsf(xs[l]);
        scales[j] = lg_make_qkx2_quants(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, rmin,
                                        0.1f, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales_out, 0, 12);
    for (int j = 0; j < LG_QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)lg_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)lg_nearest_int(inv_min * mins[j]);
        k4_pack_scale_min(j, ls < 63 ? ls : 63, lm < 63 ? lm : 63, scales_out);
    }
    *d_out = lg_f32_to_f16(max_scale / 63.f);
    *dmin_out = lg_f32_to_f16(max_min / 63.f);
    /* Re-round every element against the scales actually stored. */
    for (int j = 0; j < LG_QK_K / 32; ++j) {
        uint8_t sc, m;
        lg_k4_scale_min(j, scales_out, &sc, &m);
        const float d = lg_f16_to_f32(*d_out) * sc;
        if (d == 0) continue;
        const float dm = lg_f16_to_f32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ++ii)
            L[32 * j + ii] = (uint8_t)clamp_int(lg_nearest_int((x[32 * j + ii] + dm) / d), 0, nmax);
    }
}

void lg_quantize_q4_K(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst, L[LG_QK_K];
    for (int64_t b = 0; b < n / LG_QK_K; b++, p += sizeof(lg_block_q4_K), src += LG_QK_K) {
        lg_block_q4_K blk;
        k45_levels(src, 15, -1.f, 20, &blk.d, &blk.dmin, blk.scales, L);
        uint8_t *q = blk.qs;
        for (int j = 0; j < LG_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l)
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        memcpy(p, &blk, sizeof blk);
    }
}

void lg_dequantize_q4_K(const void *src, float *y, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LG_QK_K; b++, p += sizeof(lg_block_q4_K)) {
        lg_block_q4_K blk;
        memcpy(&blk, p, sizeof blk);
        const float d = lg_f16_to_f32(blk.d), min = lg_f16_to_f32(blk.dmin);
        const uint8_t *q = blk.qs;
        for (int j = 0, is = 0; j < LG_QK_K; j += 64, q += 32, is += 2) {
            uint8_t sc, m;
            lg_k4_scale_min(is, blk.scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            lg_k4_scale_min(is + 1, blk.scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

void lg_quantize_q5_K(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst, L[LG_QK_K];
    for (int64_t b = 0; b < n / LG_QK_K; b++, p += sizeof(lg_block_q5_K), src += LG_QK_K) {
        lg_block_q5_K blk;
        k45_levels(src, 31, -0.5f, 15, &blk.d, &blk.dmin, blk.scales, L);
        memset(blk.qh, 0, sizeof blk.qh);
        uint8_t *ql = blk.qs, m1 = 1, m2 = 2;
        for (int g = 0; g < LG_QK_K; g += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[g + j], l2 = L[g + j + 32];
                if (l1 > 15) l1 -= 16, blk.qh[j] |= m1;
                if (l2 > 15) l2 -= 16, blk.qh[j] |= m2;
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
        }
        memcpy(p, &blk, sizeof blk);
    }
}

void lg_dequantize_q5_K(const void *src, float *y, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LG_QK_K; b++, p += sizeof(lg_block_q5_K)) {
        lg_block_q5_K blk;
        memcpy(&blk, p, sizeof blk);
        const float d = lg_f16_to_f32(blk.d), min = lg_f16_to_f32(blk.dmin);
        const uint8_t *ql = blk.qs, *qh = blk.qh;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < LG_QK_K; j += 64, ql += 32, is += 2, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            lg_k4_scale_min(is, blk.scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            lg_k4_scale_min(is + 1, blk.scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

void lg_quantize_q6_K(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    int8_t L[LG_QK_K];
    float scales[LG_QK_K / 16];
    for (int64_t b = 0; b < n / LG_QK_K; b++, p += sizeof(lg_block_q6_K), src += LG_QK_K) {
        lg_block_q6_K blk;
        memset(&blk, 0, sizeof blk);
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < LG_QK_K / 16; ++ib) {
            scales[ib] = lg_make_qx_quants(16, 32, src + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale)
                max_abs_scale = fabsf(scales[ib]), max_scale = scales[ib];
        }
        if (max_abs_scale < GROUP_MAX_EPS) { /* all zero: an all-zero block */
            memcpy(p, &blk, sizeof blk);
            continue;
        }
        float iscale = -128.f / max_scale;
        blk.d = lg_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < LG_QK_K / 16; ++ib) {
            int s = lg_nearest_int(iscale * scales[ib]);
            blk.scales[ib] = (int8_t)(s < 127 ? s : 127);
        }
        for (int j = 0; j < LG_QK_K / 16; ++j) {
            float d = lg_f16_to_f32(blk.d) * blk.scales[j];
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] =
                    (int8_t)(clamp_int(lg_nearest_int(src[16 * j + ii] / d), -32, 31) + 32);
        }
        uint8_t *ql = blk.ql, *qh = blk.qh;
        for (int j = 0; j < LG_QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
        memcpy(p, &blk, sizeof blk);
    }
}

void lg_dequantize_q6_K(const void *src, float *y, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LG_QK_K; b++, p += sizeof(lg_block_q6_K)) {
        lg_block_q6_K blk;
        memcpy(&blk, p, sizeof blk);
        const float d = lg_f16_to_f32(blk.d);
        const uint8_t *ql = blk.ql, *qh = blk.qh;
        const int8_t *sc = blk.scales;
        for (int h = 0; h < LG_QK_K; h += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}
