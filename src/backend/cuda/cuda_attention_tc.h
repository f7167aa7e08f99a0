/* What the tensor-core attention kernels share (cuda_attention_mma.cu: every
 * kind of tile; cuda_attention_prompt.cu: prompt tiles over a bf16 pool): the
 * shared-memory fragment loads and one chunk's arithmetic after its scores,
 * so that a (row, query head) pair gets the same bits from either kernel.
 * The arithmetic is described at the top of cuda_attention_mma.cu. */
#ifndef LAGUNA_BACKEND_CUDA_ATTENTION_TC_H
#define LAGUNA_BACKEND_CUDA_ATTENTION_TC_H

#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_attention.h"
#include "backend/cuda/cuda_mma.h"

__device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldsm_x2(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

/* Four floats as bf16 hi and lo halves (two packed pairs each); *any_lo is
 * set when a lo is not zero. */
__device__ __forceinline__ void split4(float4 x, uint2 *hi, uint2 *lo, bool *any_lo) {
    split_pair(x.x, x.y, &hi->x, &lo->x);
    split_pair(x.z, x.w, &hi->y, &lo->y);
    *any_lo |= (lo->x | lo->y) & 0x7fff7fffu;
}

/* Where a split launch keeps (tile blockIdx.x, KV head kvh)'s record of chunk
 * (group) slot `slot` and pair `pair`: a.rec floats, the pair's dims, then
 * its (m, l) at a.rec - 4. */
__device__ __forceinline__ float *chunk_record(const chunk_args &a, int kvh, int slot, int pair) {
    return a.part + (((size_t)(blockIdx.x * a.n_kv_heads + kvh) * a.chunk_slots + slot) * a.pair_slots + pair) * a.rec;
}

/* exp(x) for a chunk's weights (x <= 0 or -inf): 2^(x log2 e) on the
 * special-function unit, one multiply and ex2.approx.ftz (relative error
 * ~2^-22; the product's rounding adds under 2e-6 where x > -20, below which
 * a weight is under 2e-9 of the chunk's largest) instead of expf's eight or
 * so instructions, 16 a lane a chunk (H100, prompt of 4096: the prompt
 * kernel 895 -> 873 us a layer). exp(-inf) is +0 as before. Only the
 * tensor-core kernels take it (they share it, so their bits agree). */
__device__ __forceinline__ float chunk_exp(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(__fmul_rn(x, 1.4426950408889634f)));
    return y;
}

/* A chunk's 32 raw scores of the lane's two pairs (rows g and g + 8 of its
 * mma tile: pair prs[h] at position pts[h]; s[n][2h + e] is key
 * c * CHUNK + 8n + 2qd + e) become exp(s * scale - m), zero where the key is
 * masked; mc[h] / lc[h]: the pair's chunk max m (-inf when no key is
 * valid) and sum l, each lane's 8 keys in order, then the quad's 4 lanes
 * pairwise. A pair whose window holds the whole chunk (most chunks of a
 * prompt) skips the per-key mask; a masked key is -inf, and exp(-inf - m)
 * is the same +0 the mask would give, so the exponent needs no test but
 * for a pair with no valid key in its quad (m = -inf: there every key is
 * -inf and exp(-inf - 0) = +0). */
__device__ __forceinline__ void chunk_softmax(float (&s)[4][4], int c, const int (&prs)[2], const int (&pts)[2],
                                              int P, int window, float scale, float (&mc)[2], float (&lc)[2]) {
    int qd = threadIdx.x & 3;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int pr = prs[h], lo = row_lo(pts[h], window), k0 = c * CHUNK;
        bool whole = pr < P && k0 >= lo && k0 + CHUNK - 1 <= pts[h];
        float m = -INFINITY;
        if (whole) {
#pragma unroll
            for (int n = 0; n < 4; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float x = __fmul_rn(s[n][2 * h + e], scale);
                    s[n][2 * h + e] = x;
                    m = fmaxf(m, x);
                }
        } else {
            /* key k0 + 2qd + o (o = 8n + e) is valid when lo <= it <= pts[h] */
            int from = lo - k0 - 2 * qd, to = pts[h] - k0 - 2 * qd;
#pragma unroll
            for (int n = 0; n < 4; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    bool valid = pr < P && 8 * n + e >= from && 8 * n + e <= to;
                    float x = valid ? __fmul_rn(s[n][2 * h + e], scale) : -INFINITY;
                    s[n][2 * h + e] = x;
                    m = fmaxf(m, x);
                }
        }
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
        const float base = m == -INFINITY ? 0.0f : m;
        float l = 0.0f;
#pragma unroll
        for (int n = 0; n < 4; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float w = chunk_exp(__fsub_rn(s[n][2 * h + e], base));
                s[n][2 * h + e] = w;
                l = __fadd_rn(l, w);
            }
        l = __fadd_rn(l, __shfl_xor_sync(0xffffffffu, l, 1));
        l = __fadd_rn(l, __shfl_xor_sync(0xffffffffu, l, 2));
        mc[h] = m, lc[h] = l;
    }
}

/* The chunk's probabilities as the first operand of the outputs' mma,
 * split: keys 16kk .. 16kk + 15 are column tiles 2kk and 2kk + 1. */
__device__ __forceinline__ void split_probs(const float (&s)[4][4], uint32_t (&ph)[2][4], uint32_t (&pl)[2][4]) {
#pragma unroll
    for (int kk = 0; kk < 2; kk++) {
        split_pair(s[2 * kk][0], s[2 * kk][1], &ph[kk][0], &pl[kk][0]);
        split_pair(s[2 * kk][2], s[2 * kk][3], &ph[kk][1], &pl[kk][1]);
        split_pair(s[2 * kk + 1][0], s[2 * kk + 1][1], &ph[kk][2], &pl[kk][2]);
        split_pair(s[2 * kk + 1][2], s[2 * kk + 1][3], &ph[kk][3], &pl[kk][3]);
    }
}

/* The chunk's outputs of the warp's 16 pairs in dim tiles 2 n2 .. 2 n2 +
 * 2 NP - 1 (o[i]: tile 2 n2 + i), from value rows of RS elements: per 16-key
 * half kk, p_hi v_hi, (p_lo) p_lo v_hi, then (v_lo_any) p_hi v_lo, one chain
 * a tile. NP > 1 gives the scheduler NP pairs of independent chains. */
template <int RS, int NP>
__device__ __forceinline__ void chunk_outputs(float (&o)[2 * NP][4], const __nv_bfloat16 *v_hi,
                                              const __nv_bfloat16 *v_lo, bool v_lo_any, int n2,
                                              const uint32_t (&ph)[2][4], const uint32_t (&pl)[2][4], bool p_lo) {
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < 2 * NP; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < 2; kk++) {
        uint32_t bh[NP][4], bl[NP][4];
        const int voff = (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * RS + n2 * 16 + (lane >> 4) * 8;
#pragma unroll
        for (int j = 0; j < NP; j++) ldsm_x4_trans(bh[j], v_hi + voff + j * 16);
#pragma unroll
        for (int i = 0; i < 2 * NP; i++) {
            mma_bf16(o[i], ph[kk][0], ph[kk][1], ph[kk][2], ph[kk][3], bh[i / 2][2 * (i % 2)], bh[i / 2][2 * (i % 2) + 1]);
            if (p_lo)
                mma_bf16(o[i], pl[kk][0], pl[kk][1], pl[kk][2], pl[kk][3], bh[i / 2][2 * (i % 2)],
                         bh[i / 2][2 * (i % 2) + 1]);
        }
        if (v_lo_any) {
#pragma unroll
            for (int j = 0; j < NP; j++) ldsm_x4_trans(bl[j], v_lo + voff + j * 16);
#pragma unroll
            for (int i = 0; i < 2 * NP; i++)
                mma_bf16(o[i], ph[kk][0], ph[kk][1], ph[kk][2], ph[kk][3], bl[i / 2][2 * (i % 2)], bl[i / 2][2 * (i % 2) + 1]);
        }
    }
}

/* The tile's queries (first step row r0, KV head kvh, P pairs), split into
 * rows of RS bf16 (zeros past P and past head_dim: D dims a row); 16-byte
 * loads when every row and piece is aligned. With a.hi_only the lo rows are
 * not written (nor read). */
template <int PAIRS, int D, int RS>
__device__ __forceinline__ void stage_queries(const chunk_args &a, __nv_bfloat16 *q_hi, __nv_bfloat16 *q_lo, int r0,
                                              int kvh, int P) {
    int hd = a.head_dim, G = a.group;
    const bool q16 = (hd & 3) == 0 && ((uintptr_t)a.q & 15) == 0;
    for (int i = threadIdx.x; i < PAIRS * (D / 4); i += blockDim.x) {
        int pr = i / (D / 4), d = (i % (D / 4)) * 4;
        float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (pr < P && d < hd) {
            const float *src = a.q + ((size_t)(r0 + pr / G) * a.n_heads + kvh * G + pr % G) * hd + d;
            if (q16) x = *(const float4 *)src;
            else x = make_float4(src[0], d + 1 < hd ? src[1] : 0.0f, d + 2 < hd ? src[2] : 0.0f,
                                 d + 3 < hd ? src[3] : 0.0f);
        }
        uint2 h, l;
        bool unused = false;
        split4(x, &h, &l, &unused);
        *(uint2 *)(q_hi + pr * RS + d) = h;
        if (!a.hi_only) *(uint2 *)(q_lo + pr * RS + d) = l;
    }
}

/* A chunk's output o (pair h's two elements, o[2h] and o[2h + 1]) folded
 * into the running O with the weights of merge_chunk. */
__device__ __forceinline__ void fold_outputs(float *O, const float *o, int h, float ow, float nw) {
    O[2 * h] = fmaf(O[2 * h], ow, __fmul_rn(o[2 * h], nw));
    O[2 * h + 1] = fmaf(O[2 * h + 1], ow, __fmul_rn(o[2 * h + 1], nw));
}

/* fold_outputs where take (the pair has a key in the chunk), O as it was
 * otherwise: fold_outputs' bits, kept by selects instead of a branch a fold
 * (on an H100 the prompt kernel ran alike either way). */
__device__ __forceinline__ void fold_outputs_if(float *O, const float *o, int h, float ow, float nw, bool take) {
    float folded[4] = {O[0], O[1], O[2], O[3]};
    fold_outputs(folded, o, h, ow, nw);
    O[2 * h] = take ? folded[2 * h] : O[2 * h];
    O[2 * h + 1] = take ? folded[2 * h + 1] : O[2 * h + 1];
}

/* The lane's two pairs' results O / L, dim tiles n0 .. n0 + ON - 1 of
 * O[ON][4], into a.out (gated when a.gate is set). */
template <int ON>
__device__ __forceinline__ void store_outputs(const chunk_args &a, const float (&O)[ON][4], const float (&L)[2],
                                              const int (&prs)[2], int P, int r0, int kvh, int n0) {
    int qd = threadIdx.x & 3, G = a.group, hd = a.head_dim;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int pr = prs[h];
        if (pr >= P) continue;
        size_t rh = (size_t)(r0 + pr / G) * a.n_heads + kvh * G + pr % G;
        float *dst = a.out + rh * hd;
        const head_gate g = head_gate_of(a.gate, a.gate_per_head, hd, rh);
#pragma unroll
        for (int n = 0; n < ON; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int d = (n0 + n) * 8 + 2 * qd + e;
                if (d < hd) dst[d] = gated(g, d, __fdiv_rn(O[n][2 * h + e], L[h]));
            }
    }
}

#endif
