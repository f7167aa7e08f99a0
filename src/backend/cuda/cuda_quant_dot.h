/* Block-wise dot products of quantised weight rows (Q8_0, Q4_K, Q5_K, Q6_K)
 * with 8-bit activations, for the warp-per-row product of cuda_matmul.cu.
 *
 * Activations: a block of the product quantises the float32 x rows it
 * needs into shared memory first (lg_qx_quantize_rows): blocks of 32
 * elements, scale dx = amax / 127, q = round-to-nearest-even(x / dx) as x
 * times the scale's reciprocal, the same for every block, launch and batch.
 * The CPU backend does the same with its own blocks (src/backend/cpu/
 * quant_dot.c); what it can cost is the bound tests/op_inputs.c holds
 * products to (half a step of x per weight).
 *
 * Weights: a row is cut into units of QUNIT = 16 elements (Q8_0: half a
 * block; the K-quants: a sixteenth of a super-block); lane l takes units l,
 * l + 32, ... in ascending order, so which lane reads which weight and the
 * order of its additions depend only on the matrix shape, never on the
 * batch. A unit's bytes come in with the widest loads the layout allows:
 * Q4_K and Q5_K super-blocks (144 and 176 bytes) are 16-byte aligned when
 * the matrix is, so their header (d, dmin, scales) is one 16-byte load and
 * the quants 8-byte loads; Q8_0 (34-byte) and Q6_K (210-byte) blocks are
 * only 2-byte aligned, so their quants are read as aligned 4-byte words
 * joined by a funnel shift (a 2-byte load for the last half word: nothing
 * past the block is read).
 *
 * A unit's value (its dot member) is integer sums of 4 quants times 4
 * activation bytes (dp4a: exact in any order), each multiplied by its
 * 6- or 8-bit scale in integers (at most 2^21: exact as a float), then a
 * few float operations in a fixed order with the weight and activation
 * scales. Every token of every path (one token, 8 tokens a warp) takes the
 * units of a row in the same order with the same operations, so a row's
 * result is bitwise the same in any batch. */
#ifndef LAGUNA_BACKEND_CUDA_QUANT_DOT_H
#define LAGUNA_BACKEND_CUDA_QUANT_DOT_H

#include "backend/cuda/cuda_internal.h"

#define QUNIT 16     /* elements a lane takes at a time */
#define QX_BLOCK 32  /* activations per 8-bit block (one scale) */
/* Widest rows the block path takes: 8 tokens' activations of such a row fill
 * ~144 KiB of shared memory; wider matrices go element by element. */
#define QX_MAX_COLS 16384
/* Units a lane has in flight with 8 tokens (with one token the rows path
 * of lg_quant_rows_1 decides). */
#define QUNROLL_TOKENS 2

/* Alignment the block path needs of a matrix's data and row stride (0: not a
 * type it serves). */
__host__ __device__ static inline int lg_quant_unit_align(int dtype) {
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

/* Shared-memory bytes of `tokens` quantised activation rows of `cols`:
 * the int8 rows, then their float scales. */
__host__ __device__ static inline size_t lg_qx_bytes(int tokens, int cols) {
    return (size_t)tokens * cols + sizeof(float) * (size_t)tokens * (cols / QX_BLOCK);
}

/* nt rows of x (cols apart, 16-byte aligned, cols a multiple of 32) into
 * xq [nt][cols] and xd [nt][cols / 32] by the whole block; every thread
 * calls it, and a barrier follows. A thread takes 8 elements, four
 * neighbouring lanes a block of 32: amax over the four by shuffles, the
 * scale, the rounded quotients packed four to a word (few registers, so
 * that a caller can hold weight loads in flight across it). */
__device__ __forceinline__ void lg_qx_quantize_rows(const float *x, int nt, int cols, int8_t *xq, float *xd) {
    int eighths = nt * cols / 8; /* a multiple of 4: whole blocks */
    for (int i0 = 0; i0 < eighths; i0 += blockDim.x) {
        int i = i0 + (int)threadIdx.x;
        bool in = i < eighths;
        float4 v0 = make_float4(0.0f, 0.0f, 0.0f, 0.0f), v1 = v0;
        if (in) v0 = __ldg((const float4 *)x + 2 * i), v1 = __ldg((const float4 *)x + 2 * i + 1);
        float amax = fmaxf(fmaxf(fmaxf(fabsf(v0.x), fabsf(v0.y)), fmaxf(fabsf(v0.z), fabsf(v0.w))),
                           fmaxf(fmaxf(fabsf(v1.x), fabsf(v1.y)), fmaxf(fabsf(v1.z), fabsf(v1.w))));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
        if (!in) continue;
        float d = __fdiv_rn(amax, 127.0f), id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
        float f[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
        uint32_t word[2] = {0u, 0u};
#pragma unroll
        for (int j = 0; j < 8; j++)
            word[j >> 2] |= (uint32_t)(__float2int_rn(__fmul_rn(f[j], id)) & 0xFF) << (8 * (j & 3));
        *(uint2 *)(xq + 8 * (size_t)i) = make_uint2(word[0], word[1]);
        if ((i & 3) == 0) xd[i >> 2] = d;
    }
}

/* nt rows of activations quantised by lg_qx_quantize_rows elsewhere (row
 * stride cols) into this block's xq / xd: the same bytes it would have
 * made, for a fraction of the work; every thread calls it, and a barrier
 * follows. */
__device__ __forceinline__ void lg_qx_copy_rows(const int8_t *src_q, const float *src_d, int nt, int cols, int8_t *xq,
                                                float *xd) {
    int chunks = nt * cols / 16, scales = nt * (cols / QX_BLOCK);
    for (int i = (int)threadIdx.x; i < chunks; i += blockDim.x)
        ((uint4 *)xq)[i] = __ldg((const uint4 *)src_q + i);
    for (int i = (int)threadIdx.x; i < scales; i += blockDim.x)
        xd[i] = __ldg(src_d + i);
}

/* A weight load: from global memory through the read-only cache, or from
 * a copy of the rows in shared memory (SH: cuda_matmul.cu's staged one-token
 * products), which
 * keeps each byte's address modulo 16, so the same code reads both. */
template <bool SH, typename T> __device__ __forceinline__ T qld(const T *p) {
    if constexpr (SH) return *p;
    else return __ldg(p);
}

/* The 4 bytes at p (any even address) from aligned words: lo is the word
 * holding p, hi_half the 2 bytes after it when p is not 4-byte aligned. */
template <bool SH> __device__ __forceinline__ void qload_word(const uint8_t *p, uint32_t *lo, uint32_t *hi_half) {
    const uint32_t *a = (const uint32_t *)((uintptr_t)p & ~(uintptr_t)3);
    *lo = qld<SH>(a);
    *hi_half = (uintptr_t)p & 2 ? qld<SH>((const unsigned short *)(a + 1)) : 0u;
}
__device__ __forceinline__ uint32_t qjoin(uint32_t lo, uint32_t hi, int shift) {
    return __funnelshift_r(lo, hi, shift);
}

/* Sum of the four signed bytes of v. */
__device__ __forceinline__ int qbyte_sum(uint32_t v) {
    return __dp4a((int)v, 0x01010101, 0);
}

/* Q8_0 unit u: half h of block u / 2, elements 16u .. 16u + 15:
 * (d * dx) * sum q qx. */
struct q8_0_unit {
    uint32_t word[5]; /* aligned words over the 16 quant bytes */
    int shift;        /* bits the quants start into word[0] (0 or 16) */
    unsigned short d;

    template <bool SH = false> __device__ __forceinline__ void load(const uint8_t *row, int u) {
        const uint8_t *blk = row + (size_t)(u >> 1) * 34, *q = blk + 2 + 16 * (u & 1);
        const uint32_t *a = (const uint32_t *)((uintptr_t)q & ~(uintptr_t)3);
        shift = (int)((uintptr_t)q & 2) * 8;
        d = qld<SH>((const unsigned short *)blk);
#pragma unroll
        for (int i = 0; i < 4; i++)
            word[i] = qld<SH>(a + i);
        word[4] = shift ? qld<SH>((const unsigned short *)(a + 4)) : 0u;
    }
    __device__ __forceinline__ void pin() {
        asm volatile("" : "+r"(word[0]), "+r"(word[1]), "+r"(word[2]), "+r"(word[3]), "+r"(word[4]));
    }
    __device__ __forceinline__ float dot(int u, const int8_t *xq, const float *xd) const {
        uint4 x = *(const uint4 *)(xq + 16 * u);
        uint32_t xw[4] = {x.x, x.y, x.z, x.w};
        int s = 0;
#pragma unroll
        for (int i = 0; i < 4; i++)
            s = __dp4a((int)qjoin(word[i], word[i + 1], shift), (int)xw[i], s);
        return __fmul_rn(__fmul_rn(__half2float(__ushort_as_half(d)), xd[u >> 1]), (float)s);
    }
};

/* Q4_K / Q5_K unit u: of super-block u / 16, 64-element group g, quant bytes
 * l = 8p .. 8p + 7 (p = u % 4): low nibbles are elements 64g + l of
 * sub-block 2g, high nibbles 64g + 32 + l of sub-block 2g + 1 (Q5_K: high
 * bits 2g and 2g + 1 of qh[l]). A weight is d*sc*q - dmin*m, so a half's
 * part is dx * (d * sc * sum q qx - dmin * m * sum qx). */
template <bool FIVE> struct qk45_unit {
    uint4 head; /* d, dmin, scales[12] */
    uint2 qs, qh;

    template <bool SH = false> __device__ __forceinline__ void load(const uint8_t *row, int u) {
        const uint8_t *blk = row + (size_t)(u >> 4) * (FIVE ? 176 : 144);
        int g = (u >> 2) & 3, p = u & 3;
        head = qld<SH>((const uint4 *)blk);
        qs = qld<SH>((const uint2 *)(blk + (FIVE ? 48 : 16) + 32 * g + 8 * p));
        if (FIVE) qh = qld<SH>((const uint2 *)(blk + 16 + 8 * p));
    }
    __device__ __forceinline__ void pin() {
        asm volatile("" : "+r"(head.x), "+r"(head.y), "+r"(head.z), "+r"(head.w), "+r"(qs.x), "+r"(qs.y));
        if (FIVE) asm volatile("" : "+r"(qh.x), "+r"(qh.y));
    }
    __device__ __forceinline__ float dot(int u, const int8_t *xq, const float *xd) const {
        int g = (u >> 2) & 3, p = u & 3, s = 16 * (g & 1), e = (u >> 4) * 256 + 64 * g + 8 * p;
        float d = __half2float(__ushort_as_half((unsigned short)(head.x & 0xFFFF)));
        float dmin = __half2float(__ushort_as_half((unsigned short)(head.x >> 16)));
        /* the eight 6-bit scales and mins, a byte each (lg_k4_scale_min_dev) */
        uint32_t sc = g < 2 ? head.y & 0x3F3F3F3Fu : (head.w & 0x0F0F0F0Fu) | ((head.y >> 2) & 0x30303030u);
        uint32_t mn = g < 2 ? head.z & 0x3F3F3F3Fu : ((head.w >> 4) & 0x0F0F0F0Fu) | ((head.z >> 2) & 0x30303030u);
        int sc_lo = (sc >> s) & 0xFF, sc_hi = (sc >> (s + 8)) & 0xFF;
        int m_lo = (mn >> s) & 0xFF, m_hi = (mn >> (s + 8)) & 0xFF;
        uint2 xl = *(const uint2 *)(xq + e), xh = *(const uint2 *)(xq + e + 32);
        int dot_lo = 0, dot_hi = 0;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            uint32_t word = i ? qs.y : qs.x, lo = word & 0x0F0F0F0Fu, hi = (word >> 4) & 0x0F0F0F0Fu;
            if (FIVE) {
                uint32_t h = i ? qh.y : qh.x;
                lo |= ((h >> (2 * g)) & 0x01010101u) << 4;
                hi |= ((h >> (2 * g + 1)) & 0x01010101u) << 4;
            }
            dot_lo = __dp4a((int)lo, (int)(i ? xl.y : xl.x), dot_lo);
            dot_hi = __dp4a((int)hi, (int)(i ? xh.y : xh.x), dot_hi);
        }
        int sum_lo = qbyte_sum(xl.x) + qbyte_sum(xl.y), sum_hi = qbyte_sum(xh.x) + qbyte_sum(xh.y);
        float dx_lo = xd[e >> 5], dx_hi = xd[(e >> 5) + 1];
        float a = fmaf(dx_lo, (float)(sc_lo * dot_lo), __fmul_rn(dx_hi, (float)(sc_hi * dot_hi)));
        float b = fmaf(dx_lo, (float)(m_lo * sum_lo), __fmul_rn(dx_hi, (float)(m_hi * sum_hi)));
        return fmaf(d, a, -__fmul_rn(dmin, b));
    }
};

/* Q6_K unit u: of super-block u / 16, 128-element half h, positions
 * l = l0 .. l0 + 3 (l0 = 4 * (u % 8)) of ql[l], ql[l + 32] and qh[l]: the
 * elements l + 32k, k = 0..3, of sub-blocks l0 / 16 + 2k; a weight is
 * d*sc*(q - 32), so the unit is d * sum_k dx_k * sc_k * sum (q - 32) qx. */
struct q6_k_unit {
    uint32_t ql_a[2], ql_b[2], qh[2]; /* aligned words over the three 4-byte pieces */
    int shift;
    signed char sc[4];
    unsigned short d;

    template <bool SH = false> __device__ __forceinline__ void load(const uint8_t *row, int u) {
        const uint8_t *blk = row + (size_t)(u >> 4) * 210;
        int h = (u >> 3) & 1, l0 = 4 * (u & 7);
        shift = (int)((uintptr_t)blk & 2) * 8;
        qload_word<SH>(blk + 64 * h + l0, &ql_a[0], &ql_a[1]);
        qload_word<SH>(blk + 64 * h + 32 + l0, &ql_b[0], &ql_b[1]);
        qload_word<SH>(blk + 128 + 32 * h + l0, &qh[0], &qh[1]);
        const signed char *scales = (const signed char *)blk + 192 + 8 * h + (l0 >> 4);
#pragma unroll
        for (int k = 0; k < 4; k++)
            sc[k] = qld<SH>(scales + 2 * k);
        d = qld<SH>((const unsigned short *)(blk + 208));
    }
    __device__ __forceinline__ void pin() {
        asm volatile("" : "+r"(ql_a[0]), "+r"(ql_a[1]), "+r"(ql_b[0]), "+r"(ql_b[1]), "+r"(qh[0]), "+r"(qh[1]));
    }
    __device__ __forceinline__ float dot(int u, const int8_t *xq, const float *xd) const {
        uint32_t a = qjoin(ql_a[0], ql_a[1], shift), b = qjoin(ql_b[0], ql_b[1], shift),
                 hb = qjoin(qh[0], qh[1], shift);
        uint32_t q6[4] = {(a & 0x0F0F0F0Fu) | ((hb << 4) & 0x30303030u), (b & 0x0F0F0F0Fu) | ((hb << 2) & 0x30303030u),
                          ((a >> 4) & 0x0F0F0F0Fu) | (hb & 0x30303030u),
                          ((b >> 4) & 0x0F0F0F0Fu) | ((hb >> 2) & 0x30303030u)};
        int e = (u >> 4) * 256 + 128 * ((u >> 3) & 1) + 4 * (u & 7);
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            /* q - 32 byte by byte: -32..31 as signed bytes */
            int s = __dp4a((int)__vsub4(q6[k], 0x20202020u), *(const int *)(xq + e + 32 * k), 0);
            float part = (float)(sc[k] * s);
            acc = k ? fmaf(xd[(e >> 5) + k], part, acc) : __fmul_rn(xd[e >> 5], part);
        }
        return __fmul_rn(__half2float(__ushort_as_half(d)), acc);
    }
};

/* A lane's units in ascending order for nt (<= TOKENS_MAX) tokens,
 * QUNROLL_TOKENS loads issued before their arithmetic (the additions in
 * the same order as one unit at a time): acc[t] += unit . token t. */
template <int TOKENS_MAX, typename U>
__device__ __forceinline__ void quant_row_dot_t(const uint8_t *row, const int8_t *xq, const float *xd, int cols,
                                                int nt, int lane, float *acc) {
    constexpr int QUNROLL = TOKENS_MAX == 1 ? 4 : QUNROLL_TOKENS;
    int units = cols / QUNIT, u = lane;
    auto add = [&](const U &unit, int uu) {
#pragma unroll
        for (int t = 0; t < TOKENS_MAX; t++) {
            if (t >= nt) break;
            acc[t] = __fadd_rn(acc[t], unit.dot(uu, xq + (size_t)t * cols, xd + (size_t)t * (cols / QX_BLOCK)));
        }
    };
    for (; u + 32 * (QUNROLL - 1) < units; u += 32 * QUNROLL) {
        U unit[QUNROLL];
#pragma unroll
        for (int i = 0; i < QUNROLL; i++)
            unit[i].load(row, u + 32 * i);
#pragma unroll
        for (int i = 0; i < QUNROLL; i++)
            add(unit[i], u + 32 * i);
    }
    for (; u < units; u += 32) {
        U unit;
        unit.load(row, u);
        add(unit, u);
    }
}

/* One token (decoding), R consecutive rows a warp: a lane loads QU units
 * of each of its rows (load), then adds them (add), batch after batch from
 * u = lane in steps of 32 QU. Each row's sum takes its units in the same
 * order as quant_row_dot_t (units lane, lane + 32, ... ascending), so a
 * row's bits do not depend on R: only how many bytes a warp has in flight
 * does. (A warp per row left the experts' down products, 512-wide rows,
 * with one unit a lane in flight.) The first batch can be loaded before the
 * activations are ready. */
template <typename U, int R, int QU> struct lg_quant_rows_1 {
    U unit[R][QU];
    const uint8_t *row0;
    size_t row_bytes;
    int n_rows, units;

    __device__ __forceinline__ void load(int u) {
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int i = 0; i < QU; i++)
                if (r < n_rows && u + 32 * i < units) unit[r][i].load(row0 + (size_t)r * row_bytes, u + 32 * i);
    }
    __device__ __forceinline__ void add(int u, const int8_t *xq, const float *xd, float *acc) {
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int i = 0; i < QU; i++)
                if (r < n_rows && u + 32 * i < units) {
                    /* one unit at a time: ordered volatile asm ties this
                     * unit's bits to the previous unit's sum, so the
                     * compiler does not work on them all at once (under
                     * the 128-register cap that spilled) */
                    unit[r][i].pin();
                    acc[r] = __fadd_rn(acc[r], unit[r][i].dot(u + 32 * i, xq, xd));
                    asm volatile("" : "+f"(acc[r]));
                }
    }
};

/* Rows a warp takes for a one-token product of a block-path matrix of this
 * many columns: ~8 units a lane in flight (a lane has ceil(units / 32) of
 * each row). 1 also for rows long enough to keep a warp busy alone. */
static inline int lg_quant_rows_per_warp(int cols) {
    int per_lane = (cols / QUNIT + 31) / 32;
    return per_lane >= 4 ? (per_lane >= 8 ? 1 : 2) : per_lane >= 2 ? 4 : 8;
}

/* f(a unit of dtype's type) for a dtype that lg_quant_unit_align serves:
 * the one place that maps a dtype to its unit. */
template <typename F> __device__ __forceinline__ void lg_quant_with_unit(int dtype, F &&f) {
    switch (dtype) {
    case LG_DTYPE_Q8_0: f(q8_0_unit{}); break;
    case LG_DTYPE_Q4_K: f(qk45_unit<false>{}); break;
    case LG_DTYPE_Q5_K: f(qk45_unit<true>{}); break;
    case LG_DTYPE_Q6_K: f(q6_k_unit{}); break;
    default: break;
    }
}

/* acc[t] (t < nt) += this lane's share of row . token t's quantised
 * activations (the host has checked the alignments). */
template <int TOKENS_MAX>
__device__ __forceinline__ void lg_quant_row_dot(int dtype, const uint8_t *row, const int8_t *xq, const float *xd,
                                                 int cols, int nt, int lane, float *acc) {
    lg_quant_with_unit(dtype, [&](auto unit) {
        quant_row_dot_t<TOKENS_MAX, decltype(unit)>(row, xq, xd, cols, nt, lane, acc);
    });
}

#endif
