/* Dispatch over the quantised dtypes: block geometry, whole-row dequantise /
 * quantise, and the dot product of a quantised row with a float32 vector. */
#include "quant/quant.h"

#include <stdbool.h>
#include <string.h>

int lg_quant_block_elems(lg_dtype dtype) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
    case LG_DTYPE_Q4_0:
    case LG_DTYPE_Q5_0:
    case LG_DTYPE_Q5_1:
        return LG_QK;
    case LG_DTYPE_Q4_K:
    case LG_DTYPE_Q4_K_LANES:
    case LG_DTYPE_Q5_K:
    case LG_DTYPE_Q6_K:
        return LG_QK_K;
    default:
        return 0;
    }
}

int lg_quant_block_bytes(lg_dtype dtype) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
        return (int)sizeof(lg_block_q8_0);
    case LG_DTYPE_Q4_0:
        return (int)sizeof(lg_block_q4_0);
    case LG_DTYPE_Q5_0:
        return (int)sizeof(lg_block_q5_0);
    case LG_DTYPE_Q5_1:
        return (int)sizeof(lg_block_q5_1);
    case LG_DTYPE_Q4_K:
    case LG_DTYPE_Q4_K_LANES:
        return (int)sizeof(lg_block_q4_K);
    case LG_DTYPE_Q5_K:
        return (int)sizeof(lg_block_q5_K);
    case LG_DTYPE_Q6_K:
        return (int)sizeof(lg_block_q6_K);
    default:
        return 0;
    }
}

void lg_dequantize_row(lg_dtype dtype, const void *src, float *dst, int64_t n) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
        lg_dequantize_q8_0(src, dst, n);
        break;
    case LG_DTYPE_Q4_0:
        lg_dequantize_q4_0(src, dst, n);
        break;
    case LG_DTYPE_Q5_0:
        lg_dequantize_q5_0(src, dst, n);
        break;
    case LG_DTYPE_Q5_1:
        lg_dequantize_q5_1(src, dst, n);
        break;
    case LG_DTYPE_Q4_K:
        lg_dequantize_q4_K(src, dst, n);
        break;
    case LG_DTYPE_Q4_K_LANES:
        for (int64_t b = 0; b < n / LG_QK_K; b++) {
            lg_block_q4_K blk;
            memcpy(&blk, (const lg_block_q4_K *)src + b, sizeof blk);
            lg_q4_K_from_lanes(&blk, 1);
            lg_dequantize_q4_K(&blk, dst + b * LG_QK_K, LG_QK_K);
        }
        break;
    case LG_DTYPE_Q5_K:
        lg_dequantize_q5_K(src, dst, n);
        break;
    case LG_DTYPE_Q6_K:
        lg_dequantize_q6_K(src, dst, n);
        break;
    default:
        memset(dst, 0, (size_t)n * sizeof *dst);
        break;
    }
}

void lg_quantize_row(lg_dtype dtype, const float *src, void *dst, int64_t n) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
        lg_quantize_q8_0(src, dst, n);
        break;
    case LG_DTYPE_Q4_0:
        lg_quantize_q4_0(src, dst, n);
        break;
    case LG_DTYPE_Q5_0:
        lg_quantize_q5_0(src, dst, n);
        break;
    case LG_DTYPE_Q5_1:
        lg_quantize_q5_1(src, dst, n);
        break;
    case LG_DTYPE_Q4_K:
        lg_quantize_q4_K(src, dst, n);
        break;
    case LG_DTYPE_Q4_K_LANES:
        lg_quantize_q4_K(src, dst, n);
        lg_q4_K_to_lanes(dst, n / LG_QK_K);
        break;
    case LG_DTYPE_Q5_K:
        lg_quantize_q5_K(src, dst, n);
        break;
    case LG_DTYPE_Q6_K:
        lg_quantize_q6_K(src, dst, n);
        break;
    default:
        break;
    }
}

/* One block at a time through a stack buffer: the dequantised values are the
 * exact ones lg_dequantize_row gives, so the result is that dot product. */
float lg_quant_dot(lg_dtype dtype, const void *row, const float *x, int64_t n) {
    const int qk = lg_quant_block_elems(dtype), bytes = lg_quant_block_bytes(dtype);
    if (qk == 0) return 0.0f;
    const uint8_t *p = row;
    float buf[LG_QK_K], sum = 0.0f;
    for (int64_t b = 0; b < n / qk; b++, p += bytes, x += qk) {
        lg_dequantize_row(dtype, p, buf, qk);
        for (int i = 0; i < qk; i++)
            sum += buf[i] * x[i];
    }
    return sum;
}

/* ---- Q4_K in lane order ------------------------------------------------------- */

/* Where element e of a Q4_K block is: qs byte 32 * (e / 64) + e % 32, the low
 * nibble for the first 32 of each 64, the high one for the second. */
static int q4_K_byte(int e) { return 32 * (e / 64) + e % 32; }
static int q4_K_shift(int e) { return e % 64 < 32 ? 0 : 4; }

/* Where the lane order puts it (quant.h): element e = 32 * sub[p] + 8s + i
 * goes to byte 64 * (s / 2) + 8p + i, nibble s % 2. */
static void lanes_place(int e, int *byte, int *shift) {
    static const int piece_of_sub_block[8] = {0, 4, 1, 5, 2, 6, 3, 7}; /* inverse of {0,2,4,6,1,3,5,7} */
    int p = piece_of_sub_block[e / 32], s = e % 32 / 8, i = e % 8;
    *byte = 64 * (s / 2) + 8 * p + i;
    *shift = 4 * (s % 2);
}

static void move_nibbles(lg_block_q4_K *b, bool to_lanes) {
    uint8_t out[LG_QK_K / 2] = {0};
    for (int e = 0; e < LG_QK_K; e++) {
        int lb, ls;
        lanes_place(e, &lb, &ls);
        int from = to_lanes ? q4_K_byte(e) : lb, from_shift = to_lanes ? q4_K_shift(e) : ls;
        int to = to_lanes ? lb : q4_K_byte(e), to_shift = to_lanes ? ls : q4_K_shift(e);
        out[to] |= (uint8_t)(((b->qs[from] >> from_shift) & 0xF) << to_shift);
    }
    memcpy(b->qs, out, sizeof out);
}

void lg_q4_K_to_lanes(lg_block_q4_K *blocks, int64_t n) {
    for (int64_t b = 0; b < n; b++) move_nibbles(&blocks[b], true);
}

void lg_q4_K_from_lanes(lg_block_q4_K *blocks, int64_t n) {
    for (int64_t b = 0; b < n; b++) move_nibbles(&blocks[b], false);
}
