/* Greedy decoding's choice on the GPU (the argmax_rows op): one block per
 * row of logits finds the row's largest value, and only the rows' int32
 * indices are copied to the host, instead of vocab_size floats per row.
 *
 * The answer is lg_argmax_f32's (core/argmax.h) bit for bit: float32
 * compares only, the greater value kept and the lower index on equal values
 * (a total order on (value, index), so any reduction order gives the same
 * index: the reduction is deterministic by construction), NaN skipped, and
 * 0 when the row starts with NaN, as the host's left-to-right scan does. */
#include <limits.h>
#include <math.h>

#include "backend/cuda/cuda_internal.h"

#define ARGMAX_THREADS 1024

/* (v, i) replaces (best, at) when it comes first: a greater value, or the
 * same value at a lower index. NaN never does (its compares are false);
 * -inf does over the empty candidate (-inf, INT_MAX). */
__device__ __forceinline__ void keep_first(float v, int i, float &best, int &at) {
    if (v > best || (v == best && i < at)) best = v, at = i;
}

__device__ __forceinline__ void warp_first(float &best, int &at) {
#pragma unroll
    for (int off = 16; off; off >>= 1) {
        float v = __shfl_down_sync(0xffffffffu, best, off);
        int i = __shfl_down_sync(0xffffffffu, at, off);
        keep_first(v, i, best, at);
    }
}

__global__ void argmax_rows_kernel(int32_t *out, const float *logits, int n_cols) {
    lg_cuda_kernel_begin();
    __shared__ float warp_best[ARGMAX_THREADS / 32];
    __shared__ int warp_at[ARGMAX_THREADS / 32];
    const float *row = logits + (size_t)blockIdx.x * n_cols;
    float best = -INFINITY;
    int at = INT_MAX;
    /* scalar up to a 16-byte boundary, float4 loads through the middle, scalar tail */
    int head = (int)(((16 - ((uintptr_t)row & 15)) & 15) / sizeof(float));
    if (head > n_cols) head = n_cols;
    for (int i = threadIdx.x; i < head; i += blockDim.x)
        keep_first(row[i], i, best, at);
    int n4 = (n_cols - head) / 4;
    const float4 *row4 = (const float4 *)(row + head);
#pragma unroll 4
    for (int j = threadIdx.x; j < n4; j += blockDim.x) {
        float4 q = row4[j];
        int i = head + 4 * j;
        keep_first(q.x, i, best, at);
        keep_first(q.y, i + 1, best, at);
        keep_first(q.z, i + 2, best, at);
        keep_first(q.w, i + 3, best, at);
    }
    for (int i = head + 4 * n4 + threadIdx.x; i < n_cols; i += blockDim.x)
        keep_first(row[i], i, best, at);

    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    warp_first(best, at);
    if (lane == 0) warp_best[warp] = best, warp_at[warp] = at;
    __syncthreads();
    if (warp) return;
    bool has = lane < (int)(blockDim.x / 32);
    best = has ? warp_best[lane] : -INFINITY;
    at = has ? warp_at[lane] : INT_MAX;
    warp_first(best, at);
    if (lane == 0) out[blockIdx.x] = isnan(row[0]) || at == INT_MAX ? 0 : at;
}

void lg_cuda_argmax_rows(lg_backend_ctx *c, int32_t *host_out, const float *logits, int n_rows,
                         int n_cols) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (n_rows <= 0) return;
    int32_t *dev_out = (int32_t *)lg_cuda_scratch(k, sizeof(int32_t) * (size_t)n_rows);
    if (!dev_out) { /* out of device memory: sync() reports it; the caller gets a valid token id
                       meanwhile */
        memset(host_out, 0, sizeof(int32_t) * (size_t)n_rows);
        return;
    }
    lg_cuda_launch(k, argmax_rows_kernel, dim3((unsigned)n_rows), dim3(ARGMAX_THREADS), 0, dev_out,
                   logits, n_cols);
    lg_cuda_tape_flush(k); /* the host needs the results now: a recorded step is launched here */
    cudaMemcpyAsync(host_out, dev_out, sizeof(int32_t) * (size_t)n_rows, cudaMemcpyDeviceToHost,
                    k->stream);
    cudaStreamSynchronize(k->stream);
}
