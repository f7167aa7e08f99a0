/* Dispatch over the quantised dtypes: block geometry, whole-row dequantise /
 * quantise, and the dot product of a quantised row with a float32 vector. */
#include "quant/quant.h"

#include <string.h>

int lg_quant_block_elems(lg_dtype dtype) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
    case LG_DTYPE_Q4_0:
    case LG_DTYPE_Q5_0:
    case LG_DTYPE_Q5_1:
        return LG_QK;
    case LG_DTYPE_Q4_K:
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
