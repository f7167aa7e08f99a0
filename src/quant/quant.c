/* Dispatch over the quantised dtypes: block geometry, whole-row dequantise /
 * quantise, and the dot product of a quantised row with a float32 vector. */
#include "quant/quant.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int lg_quant_block_elems(lg_dtype dtype) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
    case LG_DTYPE_Q8_0_X16:
    case LG_DTYPE_Q4_0:
    case LG_DTYPE_Q5_0:
    case LG_DTYPE_Q5_1:
        return LG_QK;
    case LG_DTYPE_Q4_K:
    case LG_DTYPE_Q4_K_X16:
    case LG_DTYPE_Q5_K:
    case LG_DTYPE_Q5_K_X16:
    case LG_DTYPE_Q6_K:
    case LG_DTYPE_Q6_K_X16:
        return LG_QK_K;
    default:
        return 0;
    }
}

int lg_quant_block_bytes(lg_dtype dtype) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
    case LG_DTYPE_Q8_0_X16:
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
    case LG_DTYPE_Q5_K_X16:
        return (int)sizeof(lg_block_q5_K);
    case LG_DTYPE_Q6_K:
    case LG_DTYPE_Q6_K_X16:
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

/* ---- K-quant matrices in groups of 16 rows ------------------------------------ */

lg_dtype lg_x16_of(lg_dtype base) {
    switch (base) {
    case LG_DTYPE_Q4_K: return LG_DTYPE_Q4_K_X16;
    case LG_DTYPE_Q5_K: return LG_DTYPE_Q5_K_X16;
    case LG_DTYPE_Q6_K: return LG_DTYPE_Q6_K_X16;
    case LG_DTYPE_Q8_0: return LG_DTYPE_Q8_0_X16;
    default: return base;
    }
}

lg_dtype lg_x16_base(lg_dtype dtype) {
    switch (dtype) {
    case LG_DTYPE_Q4_K_X16: return LG_DTYPE_Q4_K;
    case LG_DTYPE_Q5_K_X16: return LG_DTYPE_Q5_K;
    case LG_DTYPE_Q6_K_X16: return LG_DTYPE_Q6_K;
    case LG_DTYPE_Q8_0_X16: return LG_DTYPE_Q8_0;
    default: return dtype;
    }
}

size_t lg_x16_lead(lg_dtype base) {
    return base == LG_DTYPE_Q8_0 ? 2 : 0;
}

/* Row r's blocks between a row of ggml's blocks and a group, from src to
 * dst: row to group (to_group) or group to row (quant.h has the layout). */
static void copy_row(uint8_t *dst, const uint8_t *src, size_t block, size_t lead, int64_t nb, int r,
                     bool to_group) {
    size_t dwords = (block - lead) / 4, rest = block - 4 * dwords;
    for (int64_t b = 0; b < nb; b++) {
        size_t row_at = (size_t)b * block, group_at = (size_t)b * LG_X16_ROWS * block;
        for (size_t k = 0; k < dwords; k++) {
            size_t g = group_at + 64 * k + 4 * (size_t)r, w = row_at + lead + 4 * k;
            memcpy(dst + (to_group ? g : w), src + (to_group ? w : g), 4);
        }
        size_t g = group_at + 64 * dwords + rest * (size_t)r;
        for (size_t i = 0; i < rest; i++) { /* the lead bytes, then those after the dwords */
            size_t w = row_at + (i < lead ? i : 4 * dwords + i);
            if (to_group)
                dst[g + i] = src[w];
            else
                dst[w] = src[g + i];
        }
    }
}

void lg_x16_regroup(void *group, lg_dtype base, int64_t cols, bool to_x16, void *scratch) {
    size_t block = (size_t)lg_quant_block_bytes(base);
    int64_t nb = cols / lg_quant_block_elems(base);
    size_t row_bytes = (size_t)nb * block;
    memcpy(scratch, group, LG_X16_ROWS * row_bytes);
    uint8_t *g = group;
    const uint8_t *copy = scratch;
    for (int r = 0; r < LG_X16_ROWS; r++) {
        if (to_x16)
            copy_row(g, copy + (size_t)r * row_bytes, block, lg_x16_lead(base), nb, r, true);
        else
            copy_row(g + (size_t)r * row_bytes, copy, block, lg_x16_lead(base), nb, r, false);
    }
}

static int regroup_matrix(void *matrix, lg_dtype base, int64_t rows, int64_t cols, bool to_x16) {
    size_t group_bytes = LG_X16_ROWS * lg_dtype_row_bytes(base, cols);
    void *scratch = malloc(group_bytes);
    if (!scratch) return -1;
    for (int64_t g = 0; g < rows / LG_X16_ROWS; g++)
        lg_x16_regroup((uint8_t *)matrix + (size_t)g * group_bytes, base, cols, to_x16, scratch);
    free(scratch);
    return 0;
}

int lg_x16_group(void *matrix, lg_dtype base, int64_t rows, int64_t cols) {
    return regroup_matrix(matrix, base, rows, cols, true);
}

int lg_x16_ungroup(void *matrix, lg_dtype base, int64_t rows, int64_t cols) {
    return regroup_matrix(matrix, base, rows, cols, false);
}

void lg_x16_row(const void *group, lg_dtype base, int r, int64_t cols, void *out) {
    copy_row(out, group, (size_t)lg_quant_block_bytes(base), lg_x16_lead(base), cols / lg_quant_block_elems(base), r,
             false);
}

void lg_x16_dequantize_row(const void *group, lg_dtype base, int r, float *dst, int64_t cols) {
    size_t block = (size_t)lg_quant_block_bytes(base);
    int qk = lg_quant_block_elems(base);
    uint8_t one[sizeof(lg_block_q6_K) > sizeof(lg_block_q4_K) ? sizeof(lg_block_q6_K) : sizeof(lg_block_q4_K)];
    for (int64_t b = 0; b < cols / qk; b++) {
        lg_x16_row((const uint8_t *)group + (size_t)b * LG_X16_ROWS * block, base, r, qk, one);
        lg_dequantize_row(base, one, dst + b * qk, qk);
    }
}
