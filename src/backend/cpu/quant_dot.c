/* Quantised weights times 8-bit activations: the activation quantiser, the
 * scalar reference product (unpack a weight block to integers with
 * per-16-element scales and offsets, then one plain sum), and the run-time
 * choice of the vector kernels (quant_gemm_avx2.c; with AVX-512 the
 * sixteen-row ones, quant_gemm_x16_avx512.c and quant_gemm_x16_q8_0_avx512.c). See
 * quant_dot.h for the formats and why. */
#include "backend/cpu/quant_dot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

/* ---- which kernels ---------------------------------------------------------- */

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>

/* cpuid feature bits, and xgetbv for whether the OS saves the vector
 * registers (AVX: XCR0 bits 1-2; AVX-512: also bits 5-7). */
static bool isa_supported(lg_isa isa) {
    if (isa == LG_ISA_SCALAR) return true;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    bool fma = c >> 12 & 1, osxsave = c >> 27 & 1, f16c = c >> 29 & 1;
    if (!fma || !osxsave || !f16c) return false;
    unsigned xcr0_lo, xcr0_hi;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 0x6) != 0x6) return false;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b >> 5 & 1;
    if (isa == LG_ISA_AVX2) return avx2;
    bool avx512 = (b >> 16 & 1) && (b >> 17 & 1) && (b >> 30 & 1) && (b >> 31 & 1); /* F DQ BW VL */
    bool vnni = c >> 11 & 1;
    return isa == LG_ISA_AVX512_VNNI && avx2 && avx512 && vnni && (xcr0_lo & 0xE6) == 0xE6;
}
#else
static bool isa_supported(lg_isa isa) {
    return isa == LG_ISA_SCALAR;
}
#endif

bool lg_qgemm_isa_available(lg_isa isa) {
    return isa >= 0 && isa < LG_ISA_COUNT && isa_supported(isa);
}

const char *lg_qgemm_isa_name(lg_isa isa) {
    static const char *const names[LG_ISA_COUNT] = {"scalar", "avx2", "avx512"};
    return isa >= 0 && isa < LG_ISA_COUNT ? names[isa] : "?";
}

/* Decided once: the answer never changes while the process runs, and every
 * product must take the same kernels (batch invariance). */
lg_isa lg_qgemm_isa_best(void) {
    static _Atomic int cached = -1;
    int v = cached;
    if (v >= 0) return (lg_isa)v;
    lg_isa best = LG_ISA_SCALAR;
    for (int i = LG_ISA_COUNT - 1; i > 0; i--)
        if (isa_supported((lg_isa)i)) {
            best = (lg_isa)i;
            break;
        }
    const char *cap = getenv("LAGUNA_CPU_ISA");
    for (int i = 0; cap && i < LG_ISA_COUNT; i++)
        if (!strcmp(cap, lg_qgemm_isa_name((lg_isa)i)) && (lg_isa)i < best) best = (lg_isa)i;
    cached = (int)best;
    return best;
}

int lg_q8_block(lg_dtype weights) {
    switch (weights) {
    case LG_DTYPE_Q8_0:
    case LG_DTYPE_Q8_0_X16:
        return 32;
    case LG_DTYPE_Q4_K:
    case LG_DTYPE_Q4_K_X16:
    case LG_DTYPE_Q5_K:
    case LG_DTYPE_Q5_K_X16:
    case LG_DTYPE_Q6_K:
    case LG_DTYPE_Q6_K_X16:
        return 256;
    default:
        return 0;
    }
}

size_t lg_q8_row_bytes(int64_t n, int block) {
    size_t bytes = (size_t)n + 4 * (size_t)(n / block) + 2 * (size_t)(n / 16);
    return (bytes + 63) / 64 * 64;
}

/* ---- the activation quantiser ------------------------------------------------ */

void lg_q8_quantize_reference(const float *x, int n_rows, int64_t n, int block, uint8_t *out) {
    size_t stride = lg_q8_row_bytes(n, block);
    for (int r = 0; r < n_rows; r++, x += n, out += stride) {
        int8_t *q = (int8_t *)out;
        float *d = (float *)(out + n);
        int16_t *bsum = (int16_t *)(out + n + 4 * (n / block));
        for (int64_t b = 0; b < n / block; b++) {
            const float *xb = x + b * block;
            float amax = 0;
            for (int i = 0; i < block; i++)
                amax = fmaxf(amax, fabsf(xb[i]));
            float db = amax / 127.0f, id = db > 0 ? 1.0f / db : 0.0f;
            for (int i = 0; i < block; i++) {
                int v = (int)lrintf(xb[i] * id);
                q[b * block + i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
            d[b] = db;
        }
        for (int64_t g = 0; g < n / 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++)
                s += q[16 * g + i];
            bsum[g] = (int16_t)s;
        }
    }
}

void lg_q8_quantize(const float *x, int n_rows, int64_t n, int block, uint8_t *out) {
    if (lg_qgemm_isa_best() >= LG_ISA_AVX2)
        lg_q8_quantize_avx2(x, n_rows, n, block, out);
    else
        lg_q8_quantize_reference(x, n_rows, n, block, out);
}

lg_q8_order lg_q8_order_for(lg_isa isa, lg_dtype weights, int n_tokens) {
    lg_dtype base = lg_x16_base(weights); /* grouped layouts read as their file types do */
    bool q4_K = base == LG_DTYPE_Q4_K;
    bool k_quant = q4_K || base == LG_DTYPE_Q5_K || base == LG_DTYPE_Q6_K;
    if (isa == LG_ISA_AVX512_VNNI && (q4_K || base == LG_DTYPE_Q5_K)) return LG_Q8_SUMS_OF_32;
    if (isa == LG_ISA_AVX512_VNNI && base == LG_DTYPE_Q8_0) return LG_Q8_Q8_0_LANE_ORDER;
    if (isa == LG_ISA_AVX2 && k_quant && n_tokens > 1) return LG_Q8_PAIR_ORDER;
    return LG_Q8_ELEMENT_ORDER;
}

/* The sums of 16 into sums of 32 (quant_dot.h), one q8 row in place. */
static void to_sums_of_32(uint8_t *row, int64_t n, int block) {
    int16_t *sum = (int16_t *)(row + n + 4 * (n / block));
    for (int64_t g = 0; g < n / 32; g++)
        sum[g] = (int16_t)(sum[2 * g] + sum[2 * g + 1]);
}

void lg_q8_quantize_for(lg_isa isa, lg_dtype weights, const float *x, int n_rows, int64_t n,
                        uint8_t *out) {
    lg_q8_quantize_in(lg_q8_order_for(isa, weights, n_rows), isa, weights, x, n_rows, n, out);
}

void lg_q8_quantize_in(lg_q8_order order, lg_isa isa, lg_dtype weights, const float *x, int n_rows,
                       int64_t n, uint8_t *out) {
    int block = lg_q8_block(weights);
    if (isa >= LG_ISA_AVX2)
        lg_q8_quantize_avx2(x, n_rows, n, block, out);
    else
        lg_q8_quantize_reference(x, n_rows, n, block, out);
    size_t stride = lg_q8_row_bytes(n, block);
    if (order == LG_Q8_SUMS_OF_32)
        for (int r = 0; r < n_rows; r++)
            to_sums_of_32(out + (size_t)r * stride, n, block);
    if (order == LG_Q8_PAIR_ORDER)
        for (int r = 0; r < n_rows; r++)
            lg_q8_pair_order_avx2(out + (size_t)r * stride, n);
    if (order == LG_Q8_Q8_0_LANE_ORDER)
        for (int r = 0; r < n_rows; r++)
            lg_q8_0_lane_order_avx512(out + (size_t)r * stride, n);
}

/* ---- the scalar reference product --------------------------------------------- */

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

/* sum over 16-element groups g of d_x * (scale_g * sum_i w_i x_i + offset_g * sum_i x_i),
 * the integer sums exact, the rest float32 in element order. */
static float dot_reference(lg_dtype dtype, const uint8_t *row, const uint8_t *x, int64_t n) {
    int block = lg_q8_block(dtype);
    const int8_t *xq = (const int8_t *)x;
    const float *xd = lg_q8_scales(x, n);
    const int16_t *bsum = lg_q8_bsums(x, n, block);
    int_block u;
    float sum = 0;
    int64_t done = 0;
    for (int64_t b = 0; done < n; b++) {
        int len = unpack_block(dtype, row, b, &u);
        for (int g = 0; g < len / 16; g++) {
            int64_t at = done + 16 * g;
            int dot = 0;
            for (int i = 0; i < 16; i++)
                dot += u.q[16 * g + i] * xq[at + i];
            sum += xd[at / block] * (u.scale[g] * (float)dot + u.offset[g] * (float)bsum[at / 16]);
        }
        done += len;
    }
    return sum;
}

static void qgemm_row_reference(lg_dtype dtype, const uint8_t *row, const uint8_t *x,
                                size_t x_stride, int n_tokens, int64_t n, float *y,
                                size_t y_stride) {
    for (int t = 0; t < n_tokens; t++)
        y[(size_t)t * y_stride] = dot_reference(dtype, row, x + (size_t)t * x_stride, n);
}

/* ---- the product ------------------------------------------------------------------- */

/* Tokens in chunks of TOKEN_CHUNK, every row for each: a chunk's q8 rows
 * (8 x 2.3 KB for a 2048-wide row) stay in the L1 cache while the weight
 * rows stream past them. */
#define TOKEN_CHUNK 8

/* A grouped matrix (LG_DTYPE_Q4_K_X16, Q5_K_X16, Q6_K_X16, Q8_0_X16) by an ISA without its
 * kernels: row by row, each put back into ggml's blocks first, so the same
 * bits as the file's matrix through that ISA. */
static void qgemm_x16_by_rows(lg_isa isa, const lg_qgemm_args *a) {
    lg_dtype base = lg_x16_base(a->dtype);
    uint8_t *row = malloc(lg_dtype_row_bytes(base, a->n));
    if (!row) { /* a few KB; never expected to fail, and then no garbage either */
        for (int t = 0; t < a->n_tokens; t++)
            for (int r = 0; r < a->n_rows; r++) a->y[(size_t)t * a->y_stride + r] = NAN;
        return;
    }
    for (int r = 0; r < a->n_rows; r++) {
        const uint8_t *group = a->w + (size_t)(r / LG_X16_ROWS) * LG_X16_ROWS * a->w_stride;
        lg_x16_row(group, base, r % LG_X16_ROWS, a->n, row);
        lg_qgemm_args one = *a;
        one.dtype = base, one.w = row, one.n_rows = 1;
        one.y = a->y + r, one.bias = a->bias ? a->bias + r : NULL;
        lg_qgemm_isa(isa, &one);
    }
    free(row);
}

static void add_bias(const lg_qgemm_args *a) {
    if (a->bias)
        for (int t = 0; t < a->n_tokens; t++)
            for (int r = 0; r < a->n_rows; r++) a->y[(size_t)t * a->y_stride + r] += a->bias[r];
}

void lg_qgemm_isa(lg_isa isa, const lg_qgemm_args *a) {
    lg_dtype base = lg_x16_base(a->dtype);
    if (base != a->dtype && isa != LG_ISA_AVX512_VNNI) {
        qgemm_x16_by_rows(isa, a);
        return;
    }
    /* AVX-512: every type with a 16-row form (Q4_K, Q5_K, Q6_K, Q8_0), grouped
     * or not, sixteen rows at a time at every token count */
    if (isa == LG_ISA_AVX512_VNNI && lg_x16_of(base) != base) {
        (base == LG_DTYPE_Q8_0 ? lg_qgemm_x16_q8_0_avx512 : lg_qgemm_x16_avx512)(
            a->dtype, a->w, a->w_stride, a->n_rows, a->x, a->x_stride, a->n_tokens, a->n, a->y, a->y_stride);
        add_bias(a);
        return;
    }
    /* one token (decode): all the rows in one call, the same bits as below */
    if (a->n_tokens == 1 && isa == LG_ISA_AVX2 &&
        lg_qgemm_rows1_avx2(a->dtype, a->w, a->w_stride, a->n_rows, a->x, a->n, a->y)) {
        add_bias(a);
        return;
    }
    lg_qgemm_row_fn fn = isa == LG_ISA_AVX2 ? lg_qgemm_row_avx2 : qgemm_row_reference;
    for (int t0 = 0; t0 < a->n_tokens; t0 += TOKEN_CHUNK) {
        int nt = a->n_tokens - t0 < TOKEN_CHUNK ? a->n_tokens - t0 : TOKEN_CHUNK;
        const uint8_t *x = a->x + (size_t)t0 * a->x_stride;
        for (int r = 0; r < a->n_rows; r++) {
            float *y = a->y + (size_t)t0 * a->y_stride + r;
            fn(a->dtype, a->w + (size_t)r * a->w_stride, x, a->x_stride, nt, a->n, y, a->y_stride);
            if (a->bias)
                for (int t = 0; t < nt; t++)
                    y[(size_t)t * a->y_stride] += a->bias[r];
        }
    }
}

lg_dtype lg_qgemm_layout_for(lg_dtype dtype, int64_t rows) {
    bool in_groups = rows > 0 && rows % LG_X16_ROWS == 0 && lg_qgemm_isa_best() == LG_ISA_AVX512_VNNI;
    return in_groups ? lg_x16_of(dtype) : dtype; /* a grouped dtype is its own: never twice */
}

void lg_qgemm(const lg_qgemm_args *a) {
    lg_qgemm_isa(lg_qgemm_isa_best(), a);
}
