/* ggml's 32-element block types: Q8_0, Q4_0, Q5_0, Q5_1.
 *
 * Quantisers follow ggml's quantize_row_*_ref (ggml-quants.c): one scale per
 * block from the block's extreme value, elements rounded (Q8_0: roundf) or
 * offset by +0.5 and truncated (Q4_0 / Q5_x), exactly as ggml does so the
 * bytes match. Q5_0 and Q5_1 exist because llama-quantize falls back to them
 * for Q4_K / Q5_K tensors whose rows are not a multiple of 256. Blocks are
 * copied through locals so any src/dst alignment is fine. */
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

static int min_int(int a, int b) {
    return a < b ? a : b;
}

void lg_dequantize_q8_0(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LG_QK; b++, p += sizeof(lg_block_q8_0), dst += LG_QK) {
        lg_block_q8_0 blk;
        memcpy(&blk, p, sizeof blk);
        const float d = lg_f16_to_f32(blk.d);
        for (int j = 0; j < LG_QK; j++)
            dst[j] = blk.qs[j] * d;
    }
}

void lg_quantize_q8_0(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t b = 0; b < n / LG_QK; b++, p += sizeof(lg_block_q8_0), src += LG_QK) {
        float amax = 0.0f;
        for (int j = 0; j < LG_QK; j++)
            amax = fmaxf(amax, fabsf(src[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        lg_block_q8_0 blk;
        blk.d = lg_f32_to_f16(d);
        for (int j = 0; j < LG_QK; j++)
            blk.qs[j] = (int8_t)roundf(src[j] * id);
        memcpy(p, &blk, sizeof blk);
    }
}

void lg_dequantize_q4_0(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LG_QK; b++, p += sizeof(lg_block_q4_0), dst += LG_QK) {
        lg_block_q4_0 blk;
        memcpy(&blk, p, sizeof blk);
        const float d = lg_f16_to_f32(blk.d);
        for (int j = 0; j < LG_QK / 2; j++) {
            dst[j] = ((blk.qs[j] & 0x0F) - 8) * d;
            dst[j + LG_QK / 2] = ((blk.qs[j] >> 4) - 8) * d;
        }
    }
}

/* The element of largest magnitude, sign kept (first one on ties), as ggml. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
    return max;
}

void lg_quantize_q4_0(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t b = 0; b < n / LG_QK; b++, p += sizeof(lg_block_q4_0), src += LG_QK) {
        /* d = max / -8 puts the extreme value at q = 0 (-8 after offset). */
        const float d = signed_absmax(src, LG_QK) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        lg_block_q4_0 blk;
        blk.d = lg_f32_to_f16(d);
        for (int j = 0; j < LG_QK / 2; j++) {
            const uint8_t q0 = (uint8_t)min_int(15, (int8_t)(src[j] * id + 8.5f));
            const uint8_t q1 = (uint8_t)min_int(15, (int8_t)(src[j + LG_QK / 2] * id + 8.5f));
            blk.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(p, &blk, sizeof blk);
    }
}

void lg_dequantize_q5_0(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LG_QK; b++, p += sizeof(lg_block_q5_0), dst += LG_QK) {
        lg_block_q5_0 blk;
        memcpy(&blk, p, sizeof blk);
        uint32_t qh;
        memcpy(&qh, blk.qh, 4);
        const float d = lg_f16_to_f32(blk.d);
        for (int j = 0; j < LG_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = (((blk.qs[j] & 0x0F) | h0) - 16) * d;
            dst[j + LG_QK / 2] = (((blk.qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void lg_quantize_q5_0(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t b = 0; b < n / LG_QK; b++, p += sizeof(lg_block_q5_0), src += LG_QK) {
        const float d = signed_absmax(src, LG_QK) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        lg_block_q5_0 blk;
        blk.d = lg_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < LG_QK / 2; j++) {
            const uint8_t q0 = (uint8_t)min_int(31, (int8_t)(src[j] * id + 16.5f));
            const uint8_t q1 = (uint8_t)min_int(31, (int8_t)(src[j + LG_QK / 2] * id + 16.5f));
            blk.qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + LG_QK / 2);
        }
        memcpy(blk.qh, &qh, 4);
        memcpy(p, &blk, sizeof blk);
    }
}

void lg_dequantize_q5_1(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / LG_QK; b++, p += sizeof(lg_block_q5_1), dst += LG_QK) {
        lg_block_q5_1 blk;
        memcpy(&blk, p, sizeof blk);
        uint32_t qh;
        memcpy(&qh, blk.qh, 4);
        const float d = lg_f16_to_f32(blk.d), m = lg_f16_to_f32(blk.m);
        for (int j = 0; j < LG_QK / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = ((blk.qs[j] & 0x0F) | h0) * d + m;
            dst[j + LG_QK / 2] = ((blk.qs[j] >> 4) | h1) * d + m;
        }
    }
}

void lg_quantize_q5_1(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t b = 0; b < n / LG_QK; b++, p += sizeof(lg_block_q5_1), src += LG_QK) {
        float min = src[0], max = src[0];
        for (int j = 1; j < LG_QK; j++)
            min = src[j] < min ? src[j] : min, max = src[j] > max ? src[j] : max;
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        lg_block_q5_1 blk;
        blk.d = lg_f32_to_f16(d);
        blk.m = lg_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < LG_QK / 2; j++) {
            const uint8_t q0 = (uint8_t)((src[j] - min) * id + 0.5f);
            const uint8_t q1 = (uint8_t)((src[j + LG_QK / 2] - min) * id + 0.5f);
            blk.qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + LG_QK / 2);
        }
        memcpy(blk.qh, &qh, 4);
        memcpy(p, &blk, sizeof blk);
    }
}
