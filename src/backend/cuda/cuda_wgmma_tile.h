/* What the two wgmma GEMMs (cuda_matmul_wgmma.cu, cuda_matmul_wgmma_packed.cu)
 * share: one 32-wide step of the slice contract (cuda_mma.h) for a
 * warpgroup's 64 weight rows x BN tokens, the end of a slice, and the store
 * of a finished tile. The accumulators follow cuda_wgmma.h's D layout. */
#ifndef LAGUNA_BACKEND_CUDA_WGMMA_TILE_H
#define LAGUNA_BACKEND_CUDA_WGMMA_TILE_H

#include "backend/cuda/cuda_matmul.h"
#include "backend/cuda/cuda_wgmma.h"

/* B's core matrices in shared memory: the next along K 128 bytes on, the
 * next 8 tokens 256. */
#define WGMMA_LBO 128
#define WGMMA_SBO 256

/* One step's instructions in the contract's order: wa / wb the lane's 8
 * weights of rows g and g + 8 (as mma_step's), desc(u, lo) the descriptor
 * of the B tile of k16 half u, hi or lo part; they go hi, lo of the first
 * half, then hi, lo of the second. */
template <int BN, bool LO, typename Desc>
__device__ __forceinline__ void wgmma_step_tiles(float *acc, uint4 wa, uint4 wb, Desc desc) {
    wgmma_fence();
    wgmma_bf16<BN>(acc, wa.x, wb.x, wa.y, wb.y, desc(0, false));
    if (LO) wgmma_bf16<BN>(acc, wa.x, wb.x, wa.y, wb.y, desc(0, true));
    wgmma_bf16<BN>(acc, wa.z, wb.z, wa.w, wb.w, desc(1, false));
    if (LO) wgmma_bf16<BN>(acc, wa.z, wb.z, wa.w, wb.w, desc(1, true));
    wgmma_commit();
}

/* One step on core-matrix tiles: b the shared address of the step's first
 * B tile (half 0, hi), its lo tile TILE * 32 bytes on, half 1's tiles
 * half_bytes on; the instructions take the first BN tokens of the tile's
 * TILE. */
template <int BN, bool LO, int TILE = BN>
__device__ __forceinline__ void wgmma_step(float *acc, uint4 wa, uint4 wb, uint32_t b, uint32_t half_bytes) {
    wgmma_step_tiles<BN, LO>(acc, wa, wb, [=](int u, bool lo) {
        return wgmma_desc(b + u * half_bytes + (lo ? TILE * 32 : 0), WGMMA_LBO, WGMMA_SBO);
    });
}

/* One step on B tiles in the 128-byte swizzle (wgmma_desc_sw128): b the
 * shared address of the step's hi tile at the step's first k16 (the tile's
 * start plus 64 bytes for the stage's second step), its lo tile lo_bytes
 * on, each 8 tokens 1024 bytes on, half 1 32 bytes along the rows. */
template <int BN, bool LO>
__device__ __forceinline__ void wgmma_step_sw128(float *acc, uint4 wa, uint4 wb, uint32_t b, uint32_t lo_bytes) {
    wgmma_step_tiles<BN, LO>(acc, wa, wb,
                             [=](int u, bool lo) { return wgmma_desc_sw128(b + 32 * u + (lo ? lo_bytes : 0), 1024); });
}

/* Keeps the compiler from moving reads or writes of the accumulators
 * across the wgmma waits (the instructions own them in between). */
template <int N> __device__ __forceinline__ void wgmma_hold(float *d) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* A slice's end: waits for the warpgroup's instructions, adds the slice's
 * sums into the totals (left to right, as the contract says) and starts
 * the next slice at zero. */
template <int N> __device__ __forceinline__ void wgmma_end_slice(float *acc, float *total) {
    wgmma_wait<0>();
    wgmma_hold<N>(acc);
#pragma unroll
    for (int e = 0; e < N; e++) total[e] += acc[e], acc[e] = 0.0f;
}

/* Stores a warpgroup's finished totals (N = BN / 2 a thread) as
 * y[token][row] + bias: y starts at the tile's first token, row0 is the
 * warp's first row; rows from a.rows and tokens from nt are left out. */
template <int N>
__device__ __forceinline__ void wgmma_store_tile(const matmul_args &a, float *y, int row0, int nt, const float *total) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int e = 0; e < N; e++) {
        int r = row0 + g + 8 * ((e >> 1) & 1), t = 8 * (e >> 2) + 2 * q + (e & 1);
        if (r < a.rows && t < nt) y[(size_t)t * a.rows + r] = total[e] + (a.bias ? a.bias[r] : 0.0f);
    }
}

#endif
