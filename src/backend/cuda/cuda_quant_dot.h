/* Block-wise dot products of quantised weight rows (Q8_0, Q4_K, Q5_K, Q6_K)
 * with float32 activations, for the warp-per-row product of cuda_matmul.cu.
 *
 * A row is cut into units of QUNIT = 16 elements (Q8_0: half a block; the
 * K-quants: a sixteenth of a super-block); lane l takes units l, l + 32, ...
 * in ascending order, so which lane reads which weight and the order of its
 * additions depend only on the matrix shape, never on the batch. A unit's
 * bytes come in with the widest loads the layout allows: Q4_K and Q5_K
 * super-blocks (144 and 176 bytes) are 16-byte aligned when the matrix is,
 * so their header (d, dmin, scales) is one 16-byte load and the quants 8-byte
 * loads; Q8_0 (34-byte) and Q6_K (210-byte) blocks are only 2-byte aligned,
 * so their quants are read as aligned 4-byte words joined by a funnel shift
 * (a 2-byte load for the last half word: nothing past the block is read).
 * The unit's scales are decoded once, then each weight is the very float the
 * CPU's dequantiser makes (src/quant/quant_kquants.c and quant_legacy.c:
 * d*sc*q - dmin*m for Q4_K/Q5_K, d*sc*q for Q6_K, q*d for Q8_0; see each
 * unit for the rounding), so the products differ from dequantise-then-dot
 * only in the order of the sums. A unit's 16 weights lie in 4 runs of 4
 * consecutive elements, read from x as float4 (the host checks that x is
 * 16-byte aligned). */
#ifndef LAGUNA_BACKEND_CUDA_QUANT_DOT_H
#define LAGUNA_BACKEND_CUDA_QUANT_DOT_H

#include "backend/cuda/cuda_internal.h"

#define QUNIT 16 /* elements a lane decodes at a time */
/* Units a lane has in flight. With 8 tokens, 2 keeps matmul_kernel at 80
 * registers with no spills (nvcc 13, sm_90: `-Xptxas -v`), 3 blocks of 256
 * threads per SM; 4 takes it to 98-128 registers, 2 blocks. With one token
 * (decoding) there are registers to spare and nothing but the loads to
 * wait for: 4 units in flight (a 2048-wide row's whole share at once). */
template <int TOKENS_MAX> __host__ __device__ constexpr int lg_qunroll() { return TOKENS_MAX == 1 ? 4 : 2; }

/* Alignment the block path needs of a matrix's data and row stride (0: not a
 * type it serves). */
static inline int lg_quant_unit_align(lg_dtype dtype) {
    switch (dtype) {
    case LG_DTYPE_Q4_K:
    case LG_DTYPE_Q5_K:
        return 16;
    case LG_DTYPE_Q8_0:
    case LG_DTYPE_Q6_K:
        return 2;
    default:
        return 0;
    }
}

/* Four unsigned bytes of v as exact floats less bias: byte b under the
 * exponent of 2^23 is the float 2^23 + b (no int-to-float conversion). */
__device__ __forceinline__ void qbytes_to_floats(uint32_t v, float bias, float *out) {
#pragma unroll
    for (int k = 0; k < 4; k++)
        out[k] = __int_as_float((int)__byte_perm(v, 0x4B000000u, 0x7440 + k)) - (8388608.0f + bias);
}

/* The 4 bytes at p (any even address) from aligned words: lo is the word
 * holding p, hi_half the 2 bytes after it when p is not 4-byte aligned. */
__device__ __forceinline__ void qload_word(const uint8_t *p, uint32_t *lo, uint32_t *hi_half) {
    const uint32_t *a = (const uint32_t *)((uintptr_t)p & ~(uintptr_t)3);
    *lo = __ldg(a);
    *hi_half = (uintptr_t)p & 2 ? __ldg((const unsigned short *)(a + 1)) : 0u;
}
__device__ __forceinline__ uint32_t qjoin(uint32_t lo, uint32_t hi, int shift) {
    return __funnelshift_r(lo, hi, shift);
}

/* Q8_0 unit u: half h of block u / 2, elements 16u .. 16u + 15, w = q * d. */
struct q8_0_unit {
    uint32_t word[5]; /* aligned words over the 16 quant bytes */
    int shift;        /* bits the quants start into word[0] (0 or 16) */
    unsigned short d;

    __device__ __forceinline__ void load(const uint8_t *row, int u) {
        const uint8_t *blk = row + (size_t)(u >> 1) * 34, *q = blk + 2 + 16 * (u & 1);
        const uint32_t *a = (const uint32_t *)((uintptr_t)q & ~(uintptr_t)3);
        shift = (int)((uintptr_t)q & 2) * 8;
        d = __ldg((const unsigned short *)blk);
#pragma unroll
        for (int i = 0; i < 4; i++)
            word[i] = __ldg(a + i);
        word[4] = shift ? __ldg((const unsigned short *)(a + 4)) : 0u;
    }
    __device__ __forceinline__ void pin() {
        asm volatile("" : "+r"(word[0]), "+r"(word[1]), "+r"(word[2]), "+r"(word[3]), "+r"(word[4]));
    }
    __device__ __forceinline__ void decode(int u, float *w, int *off) const {
        float dd = __half2float(__ushort_as_half(d)), q[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t offset_binary = qjoin(word[i], word[i + 1], shift) ^ 0x80808080u; /* q + 128 */
            qbytes_to_floats(offset_binary, 128.0f, q);
#pragma unroll
            for (int k = 0; k < 4; k++)
                w[4 * i + k] = __fmul_rn(q[k], dd);
            off[i] = 16 * u + 4 * i;
        }
    }
};

/* Q4_K / Q5_K unit u: of super-block u / 16, 64-element group g, quant bytes
 * l = 8p .. 8p + 7 (p = u % 4): low nibbles are elements 64g + l of
 * sub-block 2g, high nibbles 64g + 32 + l of sub-block 2g + 1 (Q5_K: high
 * bits 2g and 2g + 1 of qh[l]); w = d*sc*q - dmin*m. d*sc*q has at most
 * 11 + 6 + 5 significant bits, so it is exact in float32 and the fused
 * d1*q - m1 rounds once, at the subtraction, like the CPU's. */
template <bool FIVE> struct qk45_unit {
    uint4 head; /* d, dmin, scales[12] */
    uint2 qs, qh;

    __device__ __forceinline__ void load(const uint8_t *row, int u) {
        const uint8_t *blk = row + (size_t)(u >> 4) * (FIVE ? 176 : 144);
        int g = (u >> 2) & 3, p = u & 3;
        head = __ldg((const uint4 *)blk);
        qs = __ldg((const uint2 *)(blk + (FIVE ? 48 : 16) + 32 * g + 8 * p));
        if (FIVE) qh = __ldg((const uint2 *)(blk + 16 + 8 * p));
    }
    __device__ __forceinline__ void pin() {
        asm volatile("" : "+r"(head.x), "+r"(head.y), "+r"(head.z), "+r"(head.w), "+r"(qs.x), "+r"(qs.y));
        if (FIVE) asm volatile("" : "+r"(qh.x), "+r"(qh.y));
    }
    __device__ __forceinline__ void decode(int u, float *w, int *off) const {
        int g = (u >> 2) & 3, p = u & 3, s = 16 * (g & 1);
        float d = __half2float(__ushort_as_half((unsigned short)(head.x & 0xFFFF)));
        float dmin = __half2float(__ushort_as_half((unsigned short)(head.x >> 16)));
        /* the eight 6-bit scales and mins, a byte each (lg_k4_scale_min_dev) */
        uint32_t sc =
            g < 2 ? head.y & 0x3F3F3F3Fu : (head.w & 0x0F0F0F0Fu) | ((head.y >> 2) & 0x30303030u);
        uint32_t mn = g < 2 ? head.z & 0x3F3F3F3Fu
                            : ((head.w >> 4) & 0x0F0F0F0Fu) | ((head.z >> 2) & 0x30303030u);
        float d_lo = __fmul_rn(d, (float)((sc >> s) & 0xFF)),
              m_lo = __fmul_rn(dmin, (float)((mn >> s) & 0xFF));
        float d_hi = __fmul_rn(d, (float)((sc >> (s + 8)) & 0xFF)),
              m_hi = __fmul_rn(dmin, (float)((mn >> (s + 8)) & 0xFF));
        float q[4];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            uint32_t word = i ? qs.y : qs.x, lo = word & 0x0F0F0F0Fu,
                     hi = (word >> 4) & 0x0F0F0F0Fu;
            if (FIVE) {
                uint32_t h = i ? qh.y : qh.x;
                lo |= ((h >> (2 * g)) & 0x01010101u) << 4;
                hi |= ((h >> (2 * g + 1)) & 0x01010101u) << 4;
            }
            qbytes_to_floats(lo, 0.0f, q);
#pragma unroll
            for (int k = 0; k < 4; k++)
                w[4 * i + k] = fmaf(d_lo, q[k], -m_lo);
            qbytes_to_floats(hi, 0.0f, q);
#pragma unroll
            for (int k = 0; k < 4; k++)
                w[8 + 4 * i + k] = fmaf(d_hi, q[k], -m_hi);
        }
        int e = (u >> 4) * 256 + 64 * g + 8 * p;
        off[0] = e, off[1] = e + 4, off[2] = e + 32, off[3] = e + 36;
    }
};

/* Q6_K unit u: of super-block u / 16, 128-element half h, positions
 * l = l0 .. l0 + 3 (l0 = 4 * (u % 8)) of ql[l], ql[l + 32] and qh[l]: the
 * elements l + 32k, k = 0..3, of sub-blocks l0 / 16 + 2k; w = d*sc*(q - 32). */
struct q6_k_unit {
    uint32_t ql_a[2], ql_b[2], qh[2]; /* aligned words over the three 4-byte pieces */
    int shift;
    signed char sc[4];
    unsigned short d;

    __device__ __forceinline__ void load(const uint8_t *row, int u) {
        const uint8_t *blk = row + (size_t)(u >> 4) * 210;
        int h = (u >> 3) & 1, l0 = 4 * (u & 7);
        shift = (int)((uintptr_t)blk & 2) * 8;
        qload_word(blk + 64 * h + l0, &ql_a[0], &ql_a[1]);
        qload_word(blk + 64 * h + 32 + l0, &ql_b[0], &ql_b[1]);
        qload_word(blk + 128 + 32 * h + l0, &qh[0], &qh[1]);
        const signed char *scales = (const signed char *)blk + 192 + 8 * h + (l0 >> 4);
#pragma unroll
        for (int k = 0; k < 4; k++)
            sc[k] = __ldg(scales + 2 * k);
        d = __ldg((const unsigned short *)(blk + 208));
    }
    __device__ __forceinline__ void pin() {
        asm volatile("" : "+r"(ql_a[0]), "+r"(ql_a[1]), "+r"(ql_b[0]), "+r"(ql_b[1]), "+r"(qh[0]), "+r"(qh[1]));
    }
    __device__ __forceinline__ void decode(int u, float *w, int *off) const {
        uint32_t a = qjoin(ql_a[0], ql_a[1], shift), b = qjoin(ql_b[0], ql_b[1], shift),
                 hb = qjoin(qh[0], qh[1], shift);
        uint32_t q6[4] = {(a & 0x0F0F0F0Fu) | ((hb << 4) & 0x30303030u),
                          (b & 0x0F0F0F0Fu) | ((hb << 2) & 0x30303030u),
                          ((a >> 4) & 0x0F0F0F0Fu) | (hb & 0x30303030u),
                          ((b >> 4) & 0x0F0F0F0Fu) | ((hb >> 2) & 0x30303030u)};
        float dd = __half2float(__ushort_as_half(d)), q[4];
        int e = (u >> 4) * 256 + 128 * ((u >> 3) & 1) + 4 * (u & 7);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float ds = __fmul_rn(dd, (float)sc[k]);
            qbytes_to_floats(q6[k], 32.0f, q);
#pragma unroll
            for (int i = 0; i < 4; i++)
                w[4 * k + i] = __fmul_rn(ds, q[i]);
            off[k] = e + 32 * k;
        }
    }
};

/* acc[t] += unit u's weights . the same elements of token t's x, in order. */
template <int TOKENS_MAX, typename U>
__device__ __forceinline__ void qunit_fma(const U &unit, int u, const float *x, int cols, int nt,
                                          float *acc) {
    float w[QUNIT];
    int off[4];
    unit.decode(u, w, off);
#pragma unroll
    for (int t = 0; t < TOKENS_MAX; t++) {
        if (t >= nt) break;
        const float *xt = x + (size_t)t * cols;
#pragma unroll
        for (int r = 0; r < 4; r++) {
            float4 xv = *(const float4 *)(xt + off[r]);
            acc[t] = fmaf(w[4 * r], xv.x, acc[t]);
            acc[t] = fmaf(w[4 * r + 1], xv.y, acc[t]);
            acc[t] = fmaf(w[4 * r + 2], xv.z, acc[t]);
            acc[t] = fmaf(w[4 * r + 3], xv.w, acc[t]);
        }
    }
}

/* A lane's units in ascending order, QUNROLL loads issued before their
 * arithmetic (the additions in the same order as one unit at a time). */
template <int TOKENS_MAX, typename U>
__device__ __forceinline__ void quant_row_dot_t(const uint8_t *row, const float *x, int cols,
                                                int nt, int lane, float *acc) {
    constexpr int QUNROLL = lg_qunroll<TOKENS_MAX>();
    int units = cols / QUNIT, u = lane;
    for (; u + 32 * (QUNROLL - 1) < units; u += 32 * QUNROLL) {
        U unit[QUNROLL];
#pragma unroll
        for (int i = 0; i < QUNROLL; i++)
            unit[i].load(row, u + 32 * i);
#pragma unroll
        for (int i = 0; i < QUNROLL; i++)
            qunit_fma<TOKENS_MAX>(unit[i], u + 32 * i, x, cols, nt, acc);
    }
    for (; u < units; u += 32) {
        U unit;
        unit.load(row, u);
        qunit_fma<TOKENS_MAX>(unit, u, x, cols, nt, acc);
    }
}

/* One token (decoding), R consecutive rows a warp: a lane issues the loads
 * of QU units of each of its rows before their arithmetic. Each row's sum
 * takes its units in the same order as quant_row_dot_t (units lane, lane +
 * 32, ... ascending), so a row's bits do not depend on R: only how many
 * bytes a warp has in flight does. (A warp per row left the experts' down
 * products, 512-wide rows, with one unit a lane in flight.) */
template <typename U, int R, int QU>
__device__ __forceinline__ void lg_quant_rows_dot_1(const uint8_t *row0, size_t row_bytes, int n_rows, const float *x,
                                                 int cols, int lane, float *acc) {
    int units = cols / QUNIT;
    for (int u = lane; u < units; u += 32 * QU) {
        U unit[R][QU];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int i = 0; i < QU; i++)
                if (r < n_rows && u + 32 * i < units) unit[r][i].load(row0 + (size_t)r * row_bytes, u + 32 * i);
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int i = 0; i < QU; i++)
                if (r < n_rows && u + 32 * i < units) {
                    /* one unit decoded at a time: ordered volatile asm ties
                     * this unit's bits to the previous unit's sum, so the
                     * compiler does not decode them all at once (under the
                     * 128-register cap that spilled more: Q6_K 136 bytes
                     * against 80) */
                    unit[r][i].pin();
                    qunit_fma<1>(unit[r][i], u + 32 * i, x, cols, 1, &acc[r]);
                    asm volatile("" : "+f"(acc[r]));
                }
    }
}

/* Rows a warp takes for a one-token product of a block-path matrix of this
 * many columns: ~8 units a lane in flight (a lane has ceil(units / 32) of
 * each row). 1 also for rows long enough to keep a warp busy alone. */
static inline int lg_quant_rows_per_warp(int cols) {
    int per_lane = (cols / QUNIT + 31) / 32;
    return per_lane >= 4 ? (per_lane >= 8 ? 1 : 2) : per_lane >= 2 ? 4 : 8;
}

/* acc[t] (t < nt) += this lane's share of row . x[t] for a dtype that
 * lg_quant_unit_align serves (the host has checked the alignments). */
template <int TOKENS_MAX>
__device__ __forceinline__ void lg_quant_row_dot(int dtype, const uint8_t *row, const float *x,
                                                 int cols, int nt, int lane, float *acc) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
        quant_row_dot_t<TOKENS_MAX, q8_0_unit>(row, x, cols, nt, lane, acc);
        break;
    case LG_DTYPE_Q4_K:
        quant_row_dot_t<TOKENS_MAX, qk45_unit<false>>(row, x, cols, nt, lane, acc);
        break;
    case LG_DTYPE_Q5_K:
        quant_row_dot_t<TOKENS_MAX, qk45_unit<true>>(row, x, cols, nt, lane, acc);
        break;
    case LG_DTYPE_Q6_K:
        quant_row_dot_t<TOKENS_MAX, q6_k_unit>(row, x, cols, nt, lane, acc);
        break;
    default:
        break;
    }
}

#endif
