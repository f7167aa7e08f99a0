/* What the packed wgmma GEMM (cuda_matmul_wgmma_packed.cu) shares with its
 * paired form (cuda_matmul_wgmma_paired.cu): the packed activations' layout
 * sizes, the shared memory both take, and the packing of a launch's
 * activations. Only compiled for sm_90a. */
#ifndef LAGUNA_BACKEND_CUDA_WGMMA_PACKED_H
#define LAGUNA_BACKEND_CUDA_WGMMA_PACKED_H

#include "backend/cuda/cuda_matmul.h"

/* Bytes of one 32-wide step of one group of 8 packed rows (hi, then lo). */
__host__ __device__ static constexpr int packed_run(bool lo) { return lo ? 1024 : 512; }

#define PACKED_SMEM (192 * 1024) /* the stages of a block (one an SM) */

/* Packs, once for the launch, each distinct activation matrix of the ops of
 * s into the scratch space and points the ops' xp at it. False, with
 * nothing launched, without room. */
bool lg_cuda_pack_set(lg_cuda_ctx *k, matmul_set *s, bool lo);

/* The paired GEMM (LAGUNA_CUDA_WGMMA_PAIRED=1: on, for measuring): launches
 * set's products (packed already) over tiles token tiles and blocks_z
 * listed experts. */
bool lg_cuda_paired_enabled(void);
void lg_cuda_paired_launch(lg_cuda_ctx *k, const matmul_set *s, int bn, bool lo, int tiles, int blocks_z);

#endif
