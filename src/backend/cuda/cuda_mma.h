/* The arithmetic every BF16 tensor-core product kernel shares, and with it
 * the contract that makes them batch invariant and equal to each other bit
 * for bit (cuda_matmul_mma.cu: the split-K kernels for decoding;
 * cuda_matmul_sliced.cu: a slice a block for 17-64 tokens;
 * cuda_matmul_gemm.cu and cuda_matmul_wgmma.cu: the tiled GEMM for prefill).
 *
 * y[t][r] = sum_k W[r][k] x[t][k] with mma.sync m16n8k16: W as the 16-row
 * operand, 8 tokens as the other, float32 accumulators. The activations are
 * float32; each is split into two bf16 halves, hi = bf16(x) and
 * lo = bf16(x - hi), and both are multiplied (x = hi + lo to ~16 bits of
 * mantissa, so a product is as exact as the CUDA-core kernel's rather than
 * bf16-rounded).
 *
 * The contract, which every kernel keeps:
 * - K in steps of 32 (the last one zero-padded: K is a multiple of 8 here),
 *   cut into slices of whole steps by K alone (slicing());
 * - a slice's sum is one chain of mma steps in k order starting from zero,
 *   each step four mma in the order of mma_step(): (hi, lo) of the first
 *   16-wide half, then (hi, lo) of the second, with the k permutation below;
 * - the slices' sums are added left to right, then the bias (0.0f when
 *   there is none).
 * An output element of an mma depends only on its own row of W and column
 * of x, so which other rows and tokens share the tile, and which kernel ran,
 * change nothing.
 *
 * The tiled GEMM swaps the operands' roles (mma_step_tokens): tokens as the
 * 16-row operand, weight rows as the 8-column one. An element still sums
 * the same products in the same slots: the tests hold the two forms to the
 * same bits (test_cuda_ops, test_matmul_batch_invariant).
 *
 * With bf16 activations (the bf16_activations model option: matmul_args'
 * hi_only) every kernel drops the lo halves: a step is two mma, hi of the
 * first half then hi of the second, so the kernels still agree bit for bit.
 *
 * The k order inside a 32-wide step is permuted the same way for W and x:
 * lane (g, q) = (lane / 4, lane % 4) holds 8 consecutive k, 8q .. 8q + 7, of
 * rows g and g + 8 and of token g; the fragments use them as k {2q, 2q + 1,
 * 2q + 8, 2q + 9} of the first mma (8q .. 8q + 3) and of the second
 * (8q + 4 .. 8q + 7). */
#ifndef LAGUNA_BACKEND_CUDA_MMA_H
#define LAGUNA_BACKEND_CUDA_MMA_H

#include "backend/cuda/cuda_matmul.h"

#define MMA_MAX_SLICES 8

/* K in steps of 32, cut into at most MMA_MAX_SLICES slices of equal steps
 * (the last may be shorter). */
__host__ __device__ __forceinline__ void slicing(int cols, int *steps_per_slice, int *n_slices) {
    int steps = (cols + 31) / 32;
    int s = steps < MMA_MAX_SLICES ? steps : MMA_MAX_SLICES;
    *steps_per_slice = (steps + s - 1) / s;
    *n_slices = (steps + *steps_per_slice - 1) / *steps_per_slice;
}

__device__ __forceinline__ void mma_bf16(float *c, uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Two floats as packed bf16 hi (rounded) and lo (the rest, rounded). */
__device__ __forceinline__ void split_pair(float x0, float x1, uint32_t *hi, uint32_t *lo) {
    __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
    float2 hf = __bfloat1622float2(h);
    __nv_bfloat162 l = __floats2bfloat162_rn(x0 - hf.x, x1 - hf.y);
    *hi = *(uint32_t *)&h;
    *lo = *(uint32_t *)&l;
}

/* A lane's 8 activations of one token at one step, split. */
struct mma_xfrag {
    uint32_t h[4], l[4];
};

__device__ __forceinline__ mma_xfrag mma_split(float4 xa, float4 xb) {
    mma_xfrag f;
    split_pair(xa.x, xa.y, &f.h[0], &f.l[0]);
    split_pair(xa.z, xa.w, &f.h[1], &f.l[1]);
    split_pair(xb.x, xb.y, &f.h[2], &f.l[2]);
    split_pair(xb.z, xb.w, &f.h[3], &f.l[3]);
    return f;
}

/* One 32-wide k step of one 16-row x 8-token tile: wa/wb are the lane's 8
 * weights of rows g and g + 8, f its token's 8 activations at the same k;
 * lo false (hi_only) leaves out the lo halves' two mma. */
__device__ __forceinline__ void mma_step(float *c, uint4 wa, uint4 wb, const mma_xfrag &f, bool lo) {
    mma_bf16(c, wa.x, wb.x, wa.y, wb.y, f.h[0], f.h[1]);
    if (lo) mma_bf16(c, wa.x, wb.x, wa.y, wb.y, f.l[0], f.l[1]);
    mma_bf16(c, wa.z, wb.z, wa.w, wb.w, f.h[2], f.h[3]);
    if (lo) mma_bf16(c, wa.z, wb.z, wa.w, wb.w, f.l[2], f.l[3]);
}

/* The same step with the roles swapped (the tiled GEMM): 16 tokens as the
 * first operand, 8 weight rows as the second. w is the lane's 8 weights of
 * row g, as in mma_step; h0 / l0 (h1 / l1) the hi / lo halves of tokens g and
 * g + 8 at the lane's first (second) 4 k, by k pair: {token g, token g + 8,
 * token g, token g + 8}. The same products meet in the same mma slots in the
 * same order as in mma_step, so an output element gets the same bits. c:
 * tokens g, g, g + 8, g + 8 by rows 2q, 2q + 1, 2q, 2q + 1. */
template <bool LO>
__device__ __forceinline__ void mma_step_tokens(float *c, uint4 w, uint4 h0, uint4 l0, uint4 h1, uint4 l1) {
    mma_bf16(c, h0.x, h0.y, h0.z, h0.w, w.x, w.y);
    if (LO) mma_bf16(c, l0.x, l0.y, l0.z, l0.w, w.x, w.y);
    mma_bf16(c, h1.x, h1.y, h1.z, h1.w, w.z, w.w);
    if (LO) mma_bf16(c, l1.x, l1.y, l1.z, l1.w, w.z, w.w);
}

/* Stores tile c of mma_step_tokens (tokens tok0 .. tok0 + 15 of y, which
 * starts at the tile's first token, rows r0 .. r0 + 7) as y[token][row] +
 * bias, for rows below a.rows and tokens below nt. */
__device__ __forceinline__ void mma_store_token_tile(const matmul_args &a, float *y, int r0, int tok0, int nt,
                                                     const float *c) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int r = r0 + 2 * q + (i & 1), t = tok0 + g + (i >= 2 ? 8 : 0);
        if (r < a.rows && t < nt) y[(size_t)t * a.rows + r] = c[i] + (a.bias ? a.bias[r] : 0.0f);
    }
}

/* Streaming multiprocessors of the current device (cuda_matmul_mma.cu). */
int lg_cuda_sm_count(void);

/* Plain products of 17 to 64 tokens with K's slices in blocks of their own
 * (cuda_matmul_sliced.cu): whether they take a set, and the launch
 * (first_block is filled in there). */
bool lg_cuda_sliced_takes(const matmul_set &set, int max_tokens);
void lg_cuda_sliced_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens);

/* The tiled GEMM for many tokens (cuda_matmul_gemm.cu); first_block is
 * filled in there. */
void lg_cuda_gemm_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups);

/* The same products on Hopper's wgmma (cuda_matmul_wgmma.cu), for the plain
 * or the grouped products of a set (as set_pick_ops parts them; most: the
 * most tokens of one); false, with nothing launched, where they do not pay
 * (too few blocks, experts too small), on other devices and with
 * LAGUNA_CUDA_WGMMA=0. */
bool lg_cuda_wgmma_plain(lg_cuda_ctx *k, matmul_set *part, int most);
bool lg_cuda_wgmma_grouped(lg_cuda_ctx *k, matmul_set *part, int most, int max_groups);

/* The wgmma products with the activations packed once a launch
 * (cuda_matmul_wgmma_packed.cu), which cuda_matmul_wgmma.cu hands its
 * products to when lg_cuda_packed_enabled() says; false, with nothing
 * launched, without scratch space for the packed activations. bn: the
 * grouped products' token tile, 64 or 128. */
bool lg_cuda_packed_enabled(void);
bool lg_cuda_packed_plain(lg_cuda_ctx *k, matmul_set *part, int most);
bool lg_cuda_packed_grouped(lg_cuda_ctx *k, matmul_set *part, int most, int max_groups, int bn);

#endif
