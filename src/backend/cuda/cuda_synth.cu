/* Random weights made on the GPU, for models with no checkpoint
 * (lg_model_open_synth: Laguna-XS.2 in bf16 is 67 GB, which no disk of the
 * GPU machine holds), and the device's copy bandwidth, the roofline that
 * `laguna bench` prints beside decode speed.
 *
 * Values come from a counter-based generator (splitmix64 of seed + index),
 * so every element or block is made by its own thread with no state and
 * tens of GB take well under a second. Float types get uniform noise of the
 * requested standard deviation. ggml block types get random bytes (quants,
 * 6-bit sub-block scales and mins, Q6_K's int8 scales: every bit pattern is
 * a valid block) and then fixed, finite f16 super-block scales chosen so that
 * the dequantised values have mean ~0 and the requested standard deviation
 * (the moments are worked out beside each case below). */
#include <stdio.h>
#include <stdlib.h>

#include "backend/cuda/cuda_internal.h"

#define GOLDEN 0x9e3779b97f4a7c15ull

__device__ __forceinline__ uint64_t synth_mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

__device__ __forceinline__ uint64_t synth_rand(uint64_t seed, uint64_t i) {
    return synth_mix(seed + (i + 1) * GOLDEN);
}

/* Float types: element i uniform on [-a, a]. */
__global__ void synth_float_kernel(uint8_t *dst, int dtype, uint64_t n, uint64_t seed, float a) {
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n;
         i += (uint64_t)gridDim.x * blockDim.x) {
        float u = (float)(synth_rand(seed, i) >> 40) * (1.0f / 16777216.0f);
        float v = (2 * u - 1) * a;
        if (dtype == LG_DTYPE_F32)
            ((float *)dst)[i] = v;
        else if (dtype == LG_DTYPE_BF16)
            ((__nv_bfloat16 *)dst)[i] = __float2bfloat16(v);
        else
            ((__half *)dst)[i] = __float2half(v);
    }
}

/* Block types, first pass: every 32-bit word random. */
__global__ void synth_words_kernel(uint32_t *dst, uint64_t n_words, uint64_t seed) {
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n_words;
         i += (uint64_t)gridDim.x * blockDim.x)
        dst[i] = (uint32_t)(synth_rand(seed, i) >> 32);
}

__device__ __forceinline__ void put_half(uint8_t *p, float v) {
    __half h = __float2half(v);
    *(uint16_t *)p = __half_as_ushort(h); /* blocks are 2-byte aligned */
}

/* Block types, second pass: the f16 scales of each block (d at d_at, a
 * second value m at m_at when m_at >= 0). */
__global__ void synth_scales_kernel(uint8_t *dst, uint64_t n_blocks, int block_bytes, int d_at,
                                    float d, int m_at, float m) {
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n_blocks;
         i += (uint64_t)gridDim.x * blockDim.x) {
        uint8_t *b = dst + i * (uint64_t)block_bytes;
        put_half(b + d_at, d);
        if (m_at >= 0) put_half(b + m_at, m);
    }
}

/* Where each block type keeps its f16 scales, and their values for a
 * standard deviation s. With quants q uniform over their range:
 *   Q8_0  d*q, q in [-128, 127]: sd(q) = 73.9
 *   Q4_0  d*(q-8), q in [0, 15]: 4.61;  Q5_0  d*(q-16), q in [0, 31]: 9.23
 *   Q5_1  d*q + m, q in [0, 31]: 9.23, m = -15.5 d centres it
 *   Q4_K  d*sc*q - dmin*mn, sc, mn in [0, 63], q in [0, 15]: dmin = 7.5 d
 *         centres it; var = E[sc^2]E[q^2] - (E sc E q)^2 + 7.5^2 var(mn)
 *         = 1333.5*77.5 - 236.25^2 + 56.25*341.25, sd 258.3
 *   Q5_K  the same with q in [0, 31]: dmin = 15.5 d; sd 526.9
 *   Q6_K  d*sc*(q-32), sc in [-128, 127], q in [0, 63]: sd 73.9*18.5 = 1365.7 */
struct synth_block_layout {
    int d_at, m_at;
    float d_per_sd, m_per_d;
};

static bool block_layout(lg_dtype dtype, synth_block_layout *l) {
    switch (dtype) {
    case LG_DTYPE_Q8_0:
        *l = {0, -1, 1 / 73.9f, 0};
        return true;
    case LG_DTYPE_Q4_0:
        *l = {0, -1, 1 / 4.61f, 0};
        return true;
    case LG_DTYPE_Q5_0:
        *l = {0, -1, 1 / 9.23f, 0};
        return true;
    case LG_DTYPE_Q5_1:
        *l = {0, 2, 1 / 9.23f, -15.5f};
        return true;
    case LG_DTYPE_Q4_K:
        *l = {0, 2, 1 / 258.3f, 7.5f};
        return true;
    case LG_DTYPE_Q5_K:
        *l = {0, 2, 1 / 526.9f, 15.5f};
        return true;
    case LG_DTYPE_Q6_K:
        *l = {208, -1, 1 / 1365.7f, 0};
        return true;
    default:
        return false;
    }
}

static unsigned grid_for(uint64_t n) {
    uint64_t blocks = (n + 255) / 256;
    return (unsigned)(blocks < 8192 ? (blocks ? blocks : 1) : 8192);
}

const void *lg_cuda_synth_weights(lg_backend *be, lg_dtype dtype, int64_t rows, int64_t cols,
                                  size_t bytes, float std, uint64_t seed) {
    lg_cuda_backend *b = (lg_cuda_backend *)be;
    synth_block_layout layout = {0, -1, 0, 0};
    bool blocks = lg_dtype_is_quantized(dtype);
    bool floats = dtype == LG_DTYPE_F32 || dtype == LG_DTYPE_BF16 || dtype == LG_DTYPE_F16;
    if ((!blocks && !floats) || (blocks && !block_layout(dtype, &layout))) return NULL;
    lg_weight_block *blk = (lg_weight_block *)malloc(sizeof *blk);
    if (!blk) return NULL;
    size_t padded = (bytes + 15) / 16 * 16; /* the word pass may write up to the next word */
    if (cudaSetDevice(b->device) != cudaSuccess || cudaMalloc(&blk->dev, padded) != cudaSuccess) {
        cudaGetLastError();
        free(blk);
        return NULL;
    }
    uint8_t *dst = (uint8_t *)blk->dev;
    if (floats) {
        uint64_t n = (uint64_t)rows * (uint64_t)cols;
        synth_float_kernel<<<grid_for(n), 256>>>(dst, dtype, n, seed,
                                                 std * 1.7320508f); /* uniform: sd = a / sqrt 3 */
    } else {
        int64_t block_elems = lg_dtype_block_elems(dtype);
        size_t block_bytes = lg_dtype_row_bytes(dtype, block_elems);
        uint64_t n_words = padded / 4, n_blocks = bytes / block_bytes;
        float d = std * layout.d_per_sd;
        synth_words_kernel<<<grid_for(n_words), 256>>>((uint32_t *)dst, n_words, seed);
        synth_scales_kernel<<<grid_for(n_blocks), 256>>>(
            dst, n_blocks, (int)block_bytes, layout.d_at, d, layout.m_at, d * layout.m_per_d);
    }
    /* contexts run on their own non-blocking streams: finish here */
    if (cudaStreamSynchronize(0) != cudaSuccess || cudaGetLastError() != cudaSuccess) {
        cudaGetLastError();
        cudaFree(blk->dev);
        free(blk);
        return NULL;
    }
    blk->next = b->weights;
    b->weights = blk;
    b->weight_bytes += padded;
    return blk->dev;
}

/* GB/s of cudaMemcpy device to device, read + write bytes, best of 5 after
 * one untimed copy; 2 GiB, or less when that much is not free. */
double lg_cuda_copy_bandwidth_gbps(lg_backend *be) {
    lg_cuda_backend *b = (lg_cuda_backend *)be;
    if (cudaSetDevice(b->device) != cudaSuccess) return cudaGetLastError(), 0;
    void *src = NULL, *dst = NULL;
    size_t bytes = (size_t)2 << 30;
    for (; bytes >= ((size_t)64 << 20); bytes /= 2) {
        if (cudaMalloc(&src, bytes) == cudaSuccess && cudaMalloc(&dst, bytes) == cudaSuccess) break;
        cudaGetLastError();
        if (src) cudaFree(src);
        src = dst = NULL;
    }
    double best = 0;
    cudaStream_t s = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    if (src && dst && cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess &&
        cudaEventCreate(&t0) == cudaSuccess && cudaEventCreate(&t1) == cudaSuccess &&
        cudaMemsetAsync(src, 1, bytes, s) == cudaSuccess &&
        cudaMemsetAsync(dst, 0, bytes, s) == cudaSuccess) {
        for (int r = -1; r < 5; r++) {
            float ms = 0;
            cudaEventRecord(t0, s);
            cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s);
            cudaEventRecord(t1, s);
            if (cudaEventSynchronize(t1) != cudaSuccess ||
                cudaEventElapsedTime(&ms, t0, t1) != cudaSuccess)
                break;
            double gbps = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
            if (r >= 0 && ms > 0 && gbps > best) best = gbps;
        }
    }
    cudaGetLastError();
    if (t0) cudaEventDestroy(t0);
    if (t1) cudaEventDestroy(t1);
    if (s) cudaStreamDestroy(s);
    if (src) cudaFree(src);
    if (dst) cudaFree(dst);
    return best;
}
