/* The staged copies of the tiled products (cuda_matmul_gemm.cu, and
 * cuda_matmul_wgmma.cu on Hopper): each 32-wide k step of a block's weight
 * rows and tokens goes by cp.async into one stage of a shared-memory ring,
 * zero-filled past the rows, the tokens and K. A stage is S::w_bytes of
 * weights, BM rows of 64 bytes (32 bf16), then the tokens' activations, BN
 * tokens of 128 bytes (32 floats) whose 16-byte chunk c sits at
 * c ^ (token & 1). S gives threads, w_bytes, w_loads and x_loads (16-byte
 * copies a thread makes per step). */
#ifndef LAGUNA_BACKEND_CUDA_GEMM_STAGE_H
#define LAGUNA_BACKEND_CUDA_GEMM_STAGE_H

#include <limits.h>

#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_matmul.h"

/* A thread's share of every step's copies, worked out once per token tile
 * (the loop then only advances pointers): where each 16-byte chunk comes
 * from at the next step to issue, where it lands in stage 0 (a shared
 * address) and the k it starts at within a step (a chunk past the rows or
 * the tokens gets a k no step reaches: zero-filled, nothing read). Weight
 * chunks first, then activation chunks. */
template <typename S> struct stage_copies {
    static constexpr int n = S::w_loads + S::x_loads;
    const uint8_t *src[n];
    uint32_t dst[n];
    int k0[n];
};

template <typename S>
__device__ __forceinline__ void plan_copies(stage_copies<S> &c, uint32_t stage0, const matmul_args &a,
                                            const uint8_t *w, int r0, const float *x, int nt) {
#pragma unroll
    for (int u = 0; u < S::w_loads; u++) {
        int i = threadIdx.x + u * S::threads, r = r0 + (i >> 2), k = 8 * (i & 3);
        bool ok = r < a.rows;
        c.src[u] = ok ? w + (size_t)r * a.row_bytes + (size_t)k * 2 : w;
        c.dst[u] = stage0 + (i >> 2) * 64 + (i & 3) * 16;
        c.k0[u] = ok ? k : INT_MAX / 2;
    }
#pragma unroll
    for (int u = 0; u < S::x_loads; u++) {
        int i = threadIdx.x + u * S::threads, t = i >> 3, k = 4 * (i & 7);
        bool ok = t < nt;
        c.src[S::w_loads + u] = (const uint8_t *)(ok ? x + (size_t)t * a.cols + k : x);
        c.dst[S::w_loads + u] = stage0 + S::w_bytes + t * 128 + (((i & 7) ^ (t & 1)) * 16);
        c.k0[S::w_loads + u] = ok ? k : INT_MAX / 2;
    }
}

/* Issues the copies of the step at k (32 wide) into the stage at byte
 * offset slot, and moves the sources on to the next step. */
template <typename S>
__device__ __forceinline__ void load_stage(stage_copies<S> &c, uint32_t slot, int k, int cols) {
#pragma unroll
    for (int u = 0; u < stage_copies<S>::n; u++) {
        cp_async16_n_shared(c.dst[u] + slot, c.src[u], k + c.k0[u] < cols ? 16 : 0);
        c.src[u] += u < S::w_loads ? 64 : 128; /* 32 bf16 or 32 floats */
    }
}

#endif
