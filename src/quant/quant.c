/* Dispatch over the quantised dtypes: block geometry, whole-row dequantise /
 * quantise, and the dot product of a quantised row with a float32 vector. */
#include "quant/quant.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int lg_quant_block_elems(lg_dtype dtype) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
    case LG_DTYPE_Q4_0:
    case LG_DTYPE_Q5_0:
    case LG_DTYPE_Q5_1:
        return LG_QK;
    case LG_DTYPE_Q4_K:
    case LG_DTYPE_Q4_K_X16:
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
    case LG_DTYPE_Q4_K_X16:
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

/* ---- Q4_K in groups of 16 rows ------------------------------------------------- */

#define X16_DWORDS ((int)(sizeof(lg_block_q4_K) / 4))

void lg_q4_K_regroup(void *group, int64_t cols, bool to_x16, void *scratch) {
    int64_t nb = cols / LG_QK_K;
    size_t row_bytes = (size_t)nb * sizeof(lg_block_q4_K);
    uint8_t *g = group, *copy = scratch;
    memcpy(copy, g, LG_X16_ROWS * row_bytes);
    for (int64_t b = 0; b < nb; b++)
        for (int r = 0; r < LG_X16_ROWS; r++)
            for (int k = 0; k < X16_DWORDS; k++) {
                size_t in_row = (size_t)r * row_bytes + (size_t)b * sizeof(lg_block_q4_K) + 4 * (size_t)k;
                size_t grouped = (size_t)b * LG_X16_ROWS * sizeof(lg_block_q4_K) + 64 * (size_t)k + 4 * (size_t)r;
                memcpy(g + (to_x16 ? grouped : in_row), copy + (to_x16 ? in_row : grouped), 4);
            }
}

static int regroup_matrix(void *matrix, int64_t rows, int64_t cols, bool to_x16) {
    size_t group_bytes = LG_X16_ROWS * (size_t)(cols / LG_QK_K) * sizeof(lg_block_q4_K);
    void *scratch = malloc(group_bytes);
    if (!scratch) return -1;
    for (int64_t g = 0; g < rows / LG_X16_ROWS; g++)
        lg_q4_K_regroup((uint8_t *)matrix + (size_t)g * group_bytes, cols, to_x16, scratch);
    free(scratch);
    return 0;
}

int lg_q4_K_to_x16(void *matrix, int64_t rows, int64_t cols) {
    return regroup_matrix(matrix, rows, cols, true);
}

int lg_q4_K_from_x16(void *matrix, int64_t rows, int64_t cols) {
    return regroup_matrix(matrix, rows, cols, false);
}

void lg_q4_K_x16_row(const void *group, int r, int64_t cols, lg_block_q4_K *out) {
    for (int64_t b = 0; b < cols / LG_QK_K; b++)
        for (int k = 0; k < X16_DWORDS; k++)
            memcpy((uint8_t *)&out[b] + 4 * k,
                   (const uint8_t *)group + (size_t)b * LG_X16_ROWS * sizeof(lg_block_q4_K) + 64 * (size_t)k + 4 * (size_t)r, 4);
}

void lg_dequantize_x16_row(const void *group, int r, float *dst, int64_t cols) {
    for (int64_t b = 0; b < cols / LG_QK_K; b++) {
        lg_block_q4_K blk;
        lg_q4_K_x16_row((const uint8_t *)group + (size_t)b * LG_X16_ROWS * sizeof blk, r, LG_QK_K, &blk);
        lg_dequantize_q4_K(&blk, dst + b * LG_QK_K, LG_QK_K);
    }
}
