/* Dev-only, through the device tool: how fast one short kernel reads N MB
 * from HBM, by method (plain 16-byte loads, bulk copies of 512 / 2048 /
 * 8192 bytes into a ring of shared memory, 16-byte cp.async), for the sizes
 * of XS.2's decode products (33.6 MB: q/k/v/g and o_proj; 18.9 MB: the
 * experts' down) and 1 GB (the steady rate). Each run reads another region,
 * so nothing is in L2; best and mean of 50 launches, timed with events.
 * Build and run (docs/performance.md, twenty-ninth pass):
 *   nvcc -O3 -std=c++20 -arch=sm_90 -Isrc -Iinclude -DLAGUNA_CUDA \
 *        -o build/read_bw tools/device/read_bw.cu && build/read_bw */
#include <cstdio>
#include <cstdint>
#include "backend/cuda/cuda_async_copy.h"

#define SLOT 8192
#define SLOTS 3
#define WARPS 8

__global__ void ldg_kernel(const uint4 *p, size_t n, uint32_t *out) {
    uint32_t acc = 0;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + 7 * stride < n; i += 8 * stride) {
        uint4 v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) v[u] = __ldcs(p + i + u * stride);
#pragma unroll
        for (int u = 0; u < 8; u++) acc ^= v[u].x ^ v[u].w;
    }
    for (; i < n; i += stride) acc ^= __ldcs(p + i).x;
    if (acc == 0x12345678u) out[0] = acc;
}

template <int S>
__global__ void __launch_bounds__(WARPS * 32, 1) bulk_kernel(const uint8_t *p, size_t bytes, uint32_t *out) {
    extern __shared__ __align__(128) uint8_t sm[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    uint8_t *ring = sm + warp * SLOTS * SLOT;
    uint64_t *bar = (uint64_t *)(sm + WARPS * SLOTS * SLOT) + warp * SLOTS;
    size_t per = bytes / gridDim.x / SLOT * SLOT;
    const uint8_t *base = p + (size_t)blockIdx.x * per;
    int chunks = (int)(per / SLOT);
    if (lane == 0) for (int s = 0; s < SLOTS; s++) mbarrier_init(&bar[s], 1);
    mbarrier_init_fence();
    __syncwarp();
    auto issue = [&](int c, int s) {
        if (lane == 0) mbarrier_expect_bytes(&bar[s], SLOT);
        __syncwarp();
        for (int o = lane * S; o < SLOT; o += 32 * S) bulk_copy_to_shared(ring + s * SLOT + o, base + (size_t)c * SLOT + o, S, &bar[s]);
    };
    for (int c = warp, s = 0; c < chunks && s < SLOTS; c += WARPS, s++) issue(c, s);
    uint32_t acc = 0;
    for (int c = warp, k = 0; c < chunks; c += WARPS, k++) {
        int s = k % SLOTS;
        mbarrier_wait(&bar[s], (k / SLOTS) & 1);
        acc ^= *(const uint32_t *)(ring + s * SLOT + lane * 4);
        __syncwarp();
        fence_proxy_async_shared();
        int cn = c + SLOTS * WARPS;
        if (cn < chunks) issue(cn, s);
    }
    if (acc == 0x12345678u) out[0] = acc; /* never: keeps the reads */
}

__global__ void __launch_bounds__(WARPS * 32, 1) cpasync_kernel(const uint8_t *p, size_t bytes, uint32_t *out) {
    extern __shared__ __align__(128) uint8_t sm[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    uint8_t *ring = sm + warp * SLOTS * SLOT;
    size_t per = bytes / gridDim.x / SLOT * SLOT;
    const uint8_t *base = p + (size_t)blockIdx.x * per;
    int chunks = (int)(per / SLOT);
    auto issue = [&](int c, int s) {
        for (int o = lane * 16; o < SLOT; o += 512) cp_async16(ring + s * SLOT + o, base + (size_t)c * SLOT + o);
    };
    for (int k = 0; k < SLOTS; k++) { int c = warp + k * WARPS; if (c < chunks) issue(c, k); cp_async_commit(); }
    uint32_t acc = 0;
    for (int c = warp, k = 0; c < chunks; c += WARPS, k++) {
        cp_async_wait<SLOTS - 1>();
        __syncwarp();
        acc ^= *(const uint32_t *)(ring + (k % SLOTS) * SLOT + lane * 4);
        __syncwarp();
        int cn = c + SLOTS * WARPS;
        if (cn < chunks) issue(cn, k % SLOTS);
        cp_async_commit();
    }
    if (acc == 0x12345678u) out[0] = acc;
}

template <typename F>
static void timeit(const char *name, size_t bytes, F launch) {
    cudaEvent_t a, b;
    cudaEventCreate(&a), cudaEventCreate(&b);
    for (int i = 0; i < 3; i++) launch();
    const int reps = 50;
    float best = 1e9, tot = 0;
    for (int r = 0; r < reps; r++) {
        cudaEventRecord(a);
        launch();
        cudaEventRecord(b);
        cudaEventSynchronize(b);
        float ms;
        cudaEventElapsedTime(&ms, a, b);
        best = ms < best ? ms : best;
        tot += ms;
    }
    cudaError_t e = cudaGetLastError();
    printf("%-28s %8.1f MB  best %8.2f us %7.0f GB/s   mean %8.2f us %7.0f GB/s %s\n", name, bytes / 1e6, best * 1e3,
           bytes / (best * 1e-3) / 1e9, tot / reps * 1e3, bytes / (tot / reps * 1e-3) / 1e9, e ? cudaGetErrorString(e) : "");
}

int main() {
    int sms;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    size_t big = (size_t)1 << 30;
    uint8_t *p;
    uint32_t *out;
    cudaMalloc(&p, big + (64 << 20));
    cudaMalloc(&out, 64);
    cudaMemset(p, 1, big);
    size_t sizes[] = {(size_t)33554432, (size_t)18874368, big};
    int smem = WARPS * SLOTS * SLOT + 256;
    cudaFuncSetAttribute(bulk_kernel<512>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    cudaFuncSetAttribute(bulk_kernel<2048>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    cudaFuncSetAttribute(bulk_kernel<8192>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    cudaFuncSetAttribute(cpasync_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    for (size_t bytes : sizes) {
        static int rot = 0; /* short runs: a region 96 MB past the last one's, so none is in L2 */
        auto region = [&]() {
            rot = (rot + 1) % 8;
            return bytes == big ? p : p + (size_t)rot * 96 * 1000 * 1000 % (big - bytes);
        };
        timeit("ldg x4/SM", bytes, [&]() { ldg_kernel<<<sms * 4, 256>>>((const uint4 *)region(), bytes / 16, out); });
        timeit("ldg x8/SM", bytes, [&]() { ldg_kernel<<<sms * 8, 256>>>((const uint4 *)region(), bytes / 16, out); });
        /* the ring kernels read whole slots, the same number a block: the bytes they really read */
        size_t ring_sm = bytes / ((size_t)sms * SLOT) * sms * SLOT, ring_128 = bytes / (128 * SLOT) * 128 * SLOT;
        timeit("bulk 512 1/SM", ring_sm, [&]() { bulk_kernel<512><<<sms, WARPS * 32, smem>>>(region(), bytes, out); });
        timeit("bulk 2048 1/SM", ring_sm, [&]() { bulk_kernel<2048><<<sms, WARPS * 32, smem>>>(region(), bytes, out); });
        timeit("bulk 8192 1/SM", ring_sm, [&]() { bulk_kernel<8192><<<sms, WARPS * 32, smem>>>(region(), bytes, out); });
        timeit("bulk 512 128 blocks", ring_128,
               [&]() { bulk_kernel<512><<<128, WARPS * 32, smem>>>(region(), bytes, out); });
        timeit("cp.async16 1/SM", ring_sm, [&]() { cpasync_kernel<<<sms, WARPS * 32, smem>>>(region(), bytes, out); });
    }
    return 0;
}
