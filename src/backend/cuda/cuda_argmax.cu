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

/* Copies n ints (a step's tokens into a larger buffer). */
__global__ void copy_tokens_kernel(int32_t *dst, const int32_t *src, int n) {
    lg_cuda_kernel_begin();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = src[i];
}

/* argmax_dev with room for rows [0, need): grown (the step's rows so far
 * moved along, the old buffer freed behind the ops that still use it). */
static bool argmax_room(lg_cuda_ctx *k, int need) {
    if (need <= k->argmax_cap) return true;
    int cap = need > 2 * k->argmax_cap ? need : 2 * k->argmax_cap;
    cap = cap < 256 ? 256 : cap;
    int32_t *p = NULL;
    if (cudaMalloc(&p, sizeof(int32_t) * (size_t)cap) != cudaSuccess) return false; /* sync() reports it */
    if (k->argmax_at > 0)
        lg_cuda_launch(k, copy_tokens_kernel, dim3((unsigned)((k->argmax_at + 255) / 256)), dim3(256), 0, p,
                       (const int32_t *)k->argmax_dev, k->argmax_at);
    if (k->argmax_dev && lg_cuda_taping(k)) lg_cuda_tape_defer_free(k, k->argmax_dev);
    else if (k->argmax_dev) cudaFreeAsync(k->argmax_dev, k->stream);
    k->argmax_dev = p, k->argmax_cap = cap;
    return true;
}

/* The tokens go to argmax_dev from row argmax_at of the step (where the next
 * step's embed finds them), then to the host: now, or behind the step when
 * it is queued (cuda_queue.cu). */
void lg_cuda_argmax_rows(lg_backend_ctx *c, int32_t *host_out, const float *logits, int n_rows,
                         int n_cols) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (n_rows <= 0) return;
    if (!argmax_room(k, k->argmax_at + n_rows)) { /* out of device memory: sync() reports it; the caller
                                                     gets a valid token id meanwhile */
        memset(host_out, 0, sizeof(int32_t) * (size_t)n_rows);
        return;
    }
    int at = k->argmax_at;
    k->argmax_at += n_rows;
    lg_cuda_launch(k, argmax_rows_kernel, dim3((unsigned)n_rows), dim3(ARGMAX_THREADS), 0, k->argmax_dev + at,
                   logits, n_cols);
    lg_cuda_tape_flush(k); /* the host needs the results: a recorded step is launched here */
    if (lg_cuda_queue_tokens(k, host_out, at, n_rows)) return;
    cudaMemcpyAsync(host_out, k->argmax_dev + at, sizeof(int32_t) * (size_t)n_rows, cudaMemcpyDeviceToHost,
                    k->stream);
    cudaStreamSynchronize(k->stream);
}
