/* Storage types: names, sizes and conversion to and from float32. The
 * quantised types dispatch into their codecs under src/quant/. */
#include "core/dtype.h"

#include <stdbool.h>
#include <string.h>

#include "quant/quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LG_HAVE_F16C_PATH 1

/* F16 rows with the F16C instruction (exact, as the scalar conversion): a
 * half-size KV cache converts every cached head row once per query head,
 * and the scalar path made decoding over a long f16 cache 2.5x slower. */
__attribute__((target("avx,f16c"))) static void f16_row_f16c(const uint16_t *s, float *d, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++) d[i] = lg_f16_to_f32(s[i]);
}

/* float32 to f16 rows, round to nearest even as lg_f32_to_f16, 8 at a time
 * (writing a prompt's rows into an f16 KV cache went through the scalar
 * conversion: 2% of a 40-layer XS.2 prefill). NaNs keep the scalar
 * conversion's quiet NaN (the instruction would keep their payload bits). */
__attribute__((target("avx,f16c"))) static void f16_from_f32_f16c(const float *s, uint16_t *d, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(s + i);
        __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
        if (!_mm256_testz_ps(nan, nan)) {
            for (int k = 0; k < 8; k++) d[i + k] = lg_f32_to_f16(s[i + k]);
            continue;
        }
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) d[i] = lg_f32_to_f16(s[i]);
}

static bool have_f16c(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
}
#endif

const char *lg_dtype_name(lg_dtype dtype) {
    switch (dtype) {
    case LG_DTYPE_F32: return "F32";
    case LG_DTYPE_BF16: return "BF16";
    case LG_DTYPE_F16: return "F16";
    case LG_DTYPE_I32: return "I32";
    case LG_DTYPE_Q8_0: return "Q8_0";
    case LG_DTYPE_Q4_0: return "Q4_0";
    case LG_DTYPE_Q4_K: return "Q4_K";
    case LG_DTYPE_Q5_K: return "Q5_K";
    case LG_DTYPE_Q6_K: return "Q6_K";
    case LG_DTYPE_Q5_0: return "Q5_0";
    case LG_DTYPE_Q5_1: return "Q5_1";
    case LG_DTYPE_Q4_K_X16: return "Q4_K (16-row groups)";
    case LG_DTYPE_Q6_K_X16: return "Q6_K (16-row groups)";
    case LG_DTYPE_Q8_0_X16: return "Q8_0 (16-row groups)";
    case LG_DTYPE_Q5_K_X16: return "Q5_K (16-row groups)";
    default: return "?";
    }
}

int64_t lg_dtype_block_elems(lg_dtype dtype) {
    int qk = lg_quant_block_elems(dtype);
    return qk ? qk : 1;
}

int lg_dtype_is_quantized(lg_dtype dtype) { return lg_quant_block_elems(dtype) != 0; }

size_t lg_dtype_row_bytes(lg_dtype dtype, int64_t n) {
    if (n < 0) return 0;
    switch (dtype) {
    case LG_DTYPE_F32:
    case LG_DTYPE_I32: return (size_t)n * 4;
    case LG_DTYPE_BF16:
    case LG_DTYPE_F16: return (size_t)n * 2;
    default: {
        int qk = lg_quant_block_elems(dtype);
        if (qk == 0 || n % qk != 0) return 0;
        return (size_t)(n / qk) * (size_t)lg_quant_block_bytes(dtype);
    }
    }
}

float lg_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t lg_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t mant = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* may carry into exponent: correct */
    return (uint16_t)h;
}

void lg_dtype_to_f32(lg_dtype dtype, const void *src, float *dst, int64_t n) {
    switch (dtype) {
    case LG_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case LG_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = lg_bf16_to_f32(s[i]);
        break;
    }
    case LG_DTYPE_F16: {
        const uint16_t *s = src;
#ifdef LG_HAVE_F16C_PATH
        if (have_f16c()) {
            f16_row_f16c(s, dst, n);
            break;
        }
#endif
        for (int64_t i = 0; i < n; i++) dst[i] = lg_f16_to_f32(s[i]);
        break;
    }
    default: lg_dequantize_row(dtype, src, dst, n); break;
    }
}

int lg_dtype_from_f32(lg_dtype dtype, const float *src, void *dst, int64_t n) {
    switch (dtype) {
    case LG_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); return 0;
    case LG_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = lg_f32_to_bf16(src[i]);
        return 0;
    case LG_DTYPE_F16:
#ifdef LG_HAVE_F16C_PATH
        if (have_f16c()) {
            f16_from_f32_f16c(src, dst, n);
            return 0;
        }
#endif
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = lg_f32_to_f16(src[i]);
        return 0;
    default:
        if (!lg_dtype_is_quantized(dtype) || n % lg_quant_block_elems(dtype) != 0) return -1;
        lg_quantize_row(dtype, src, dst, n);
        return 0;
    }
}
