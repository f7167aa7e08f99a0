/* The pieces of the CUDA backend's RMSNorm that more than one kernel runs
 * (rmsnorm_kernel, and the experts' combine with the residual add and the
 * next norm in one launch): the same reduction order wherever a row is
 * normed, so a fused kernel gives the bits of the kernels it stands for. */
#ifndef LAGUNA_CUDA_NORM_H
#define LAGUNA_CUDA_NORM_H

#define NORM_THREADS 256
#define NORM_PER_THREAD 16 /* elements a thread holds in registers (rows up to 4096) */

/* The block's sum of its threads' partial sums of squares: lanes by
 * butterfly, then the warps in order (a block of NORM_THREADS). */
__device__ __forceinline__ double norm_block_sum(double ss) {
    __shared__ double warp_sum[NORM_THREADS / 32];
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if ((threadIdx.x & 31) == 0) warp_sum[threadIdx.x >> 5] = ss;
    __syncthreads();
    double total = 0;
    for (int wi = 0; wi < NORM_THREADS / 32; wi++) total += warp_sum[wi];
    return total;
}

/* 1 / sqrt(mean of squares + eps) of a row of n. */
__device__ __forceinline__ float norm_inverse(double total, int n, float eps) {
    return (float)(1.0 / sqrt(total / n + eps));
}

/* The norm's weights a thread multiplies by (its elements threadIdx.x + u *
 * NORM_THREADS, u < PT), loaded before the kernel waits for its
 * predecessor: no kernel writes them. */
template <int PT = NORM_PER_THREAD>
__device__ __forceinline__ void norm_weights(float *wv, const float *w, int n) {
#pragma unroll
    for (int u = 0; u < PT; u++)
        wv[u] = threadIdx.x + u * NORM_THREADS < n ? w[threadIdx.x + u * NORM_THREADS] : 0.0f;
}

#endif
