/* Asynchronous global -> shared copies (cp.async, sm_80 and later), shared
 * by the kernels that stage their operands in shared memory: the tensor-core
 * attention, the tiled GEMM and the one-token quantised products. */
#ifndef LAGUNA_BACKEND_CUDA_ASYNC_COPY_H
#define LAGUNA_BACKEND_CUDA_ASYNC_COPY_H

#include "backend/cuda/cuda_internal.h"

/* A generic pointer into shared memory as the 32-bit shared address. */
__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes (src 16-byte aligned), bypassing L1. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src) : "memory");
}

/* The first src_bytes (0..16) of the 16 at src into the shared address dst
 * (smem_addr), the rest of it zeroed; nothing past them is read. */
__device__ __forceinline__ void cp_async16_n_shared(uint32_t dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}

/* cp_async16_n_shared to a generic pointer into shared memory. */
__device__ __forceinline__ void cp_async16_n(void *dst, const void *src, int src_bytes) {
    cp_async16_n_shared(smem_addr(dst), src, src_bytes);
}

/* cp_async16_n with L2 fetching PF bytes (64, 128 or 256; 0: the default)
 * around each miss from memory: for copies that stream a row in 64-byte
 * pieces, one step at a time. */
template <int PF> __device__ __forceinline__ void cp_async16_n_prefetch(void *dst, const void *src, int src_bytes) {
    if constexpr (PF == 256)
        asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                     "r"(src_bytes)
                     : "memory");
    else if constexpr (PF == 128)
        asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                     "r"(src_bytes)
                     : "memory");
    else if constexpr (PF == 64)
        asm volatile("cp.async.cg.shared.global.L2::64B [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                     "r"(src_bytes)
                     : "memory");
    else
        cp_async16_n(dst, src, src_bytes);
}

/* Hopper's bulk copies (cp.async.bulk, sm_90): a run of bytes (a multiple
 * of 16, both ends 16-byte aligned) from global into shared memory in one
 * request, its arrival counted on an mbarrier in shared memory. A phase of
 * a barrier initialised with count 1 completes when one thread has arrived
 * saying how many bytes to expect and that many have landed. */
__device__ __forceinline__ void mbarrier_init(uint64_t *bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}

/* Makes barriers just initialised visible to the bulk copies that complete on them. */
__device__ __forceinline__ void mbarrier_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

/* Arrives on bar, expecting bytes more of bulk copies in its current phase. */
__device__ __forceinline__ void mbarrier_expect_bytes(uint64_t *bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
                 : "memory");
}

/* Waits until bar's phase of the given parity (0 for its first) has completed. */
__device__ __forceinline__ void mbarrier_wait(uint64_t *bar, uint32_t parity) {
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     " selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(smem_addr(bar)), "r"(parity)
                     : "memory");
}

/* bytes from src into dst (shared memory), counted on bar. */
__device__ __forceinline__ void bulk_copy_to_shared(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                     smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(smem_addr(bar))
                 : "memory");
}

/* Orders the calling thread's shared-memory reads before the bulk copies
 * issued after it (which write through another proxy): before a slot just
 * read is refilled. */
__device__ __forceinline__ void fence_proxy_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* 8 bytes (src 8-byte aligned), through L1. */
__device__ __forceinline__ void cp_async8(void *dst, const void *src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(smem_addr(dst)), "l"(src) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

/* Waits until at most N of this thread's committed groups are in flight. */
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void cp_async_wait_all() { cp_async_wait<0>(); }

#endif
