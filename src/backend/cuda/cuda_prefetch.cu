/* The prefetch_weights hint on the GPU: matrices about to be read are
 * brought into L2 while the kernels before them leave the memory idle.
 *
 * A decode step of few rows alternates between products, which stream
 * weights at close to the memory's rate, and latency-bound kernels (a few
 * rows' attention, norms, routing) during which the memory has little to
 * do. A small kernel on a side stream asks Hopper's copy engine for the
 * next product's weights (cp.async.bulk.prefetch.L2, PREFETCH_CHUNK bytes a
 * thread) while the main stream goes on; a recorded step forks the side
 * stream where the hint was given and joins it at its end, so the graph
 * holds the prefetch as a branch beside the chain of kernels.
 *
 * Why a side stream: a block's prefetches count as its work until their
 * data is in L2, so the kernel in the stream held the kernels after it back
 * (H100, XS.2 bf16 decode after 1024: 204 -> 122 tok/s). Beside them, with
 * 64 KB a thread: 203.9 -> 208.9 tok/s; 32 KB 208.0, 16 KB 204.6, 128 KB
 * 204.0, 256 KB 183.5, 1 MB 203.0; prefetch.global.L2 line by line 202.3.
 * What one call asks for is capped at PREFETCH_L2_SHARE of L2: more would
 * evict its own start before the product reads it.
 * LAGUNA_CUDA_PREFETCH=0 turns it off; LAGUNA_CUDA_PREFETCH_CHUNK=N asks
 * for N bytes a thread, LAGUNA_CUDA_PREFETCH_THREADS=N launches blocks of N
 * threads (the blocks' SMs issue the bulk prefetches), LAGUNA_CUDA_PREFETCH_MAX_MIB=N
 * skips calls asking for more than N MiB (measuring). */
#include <stdlib.h>

#include "backend/cuda/cuda_internal.h"

#define PREFETCH_RANGES 4        /* matrices in one call */
#define PREFETCH_CHUNK (64 << 10) /* bytes a thread asks for */
#define PREFETCH_THREADS 32
#define PREFETCH_L2_SHARE 0.75 /* of L2, the most one call asks for */
/* Steps of more rows ask for nothing: their products are bound by the
 * tensor cores, not by the weights' first read, and the hint's blocks took
 * SMs from them (a 4096-token prompt on an H100: 117 hints, ~3% of its time
 * with the prefetch kernel running last). */
#define PREFETCH_MAX_ROWS 256

struct prefetch_ranges {
    const uint8_t *p[PREFETCH_RANGES];
    size_t bytes[PREFETCH_RANGES]; /* multiples of 16, from 16-byte aligned p */
    size_t first_chunk[PREFETCH_RANGES + 1];
    int n;
    uint32_t chunk;
};

/* Thread i asks for the i-th chunk of the ranges laid end to end. Launched
 * plainly on the side stream, so no programmatic-launch wait to begin with. */
__global__ void prefetch_l2_kernel(const __grid_constant__ prefetch_ranges r) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    size_t chunk = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (int i = 0; i < r.n; i++) {
        if (chunk < r.first_chunk[i] || chunk >= r.first_chunk[i + 1]) continue;
        size_t at = (chunk - r.first_chunk[i]) * r.chunk, left = r.bytes[i] - at;
        uint32_t n = (uint32_t)(left < r.chunk ? left : r.chunk);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(r.p[i] + at), "r"(n) : "memory");
    }
#endif
}

/* This device's L2 in bytes (0 when unknown or before Hopper: no bulk prefetch). */
static size_t l2_bytes(void) {
    int dev = 0, l2 = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return major >= 9 && l2 > 0 ? (size_t)l2 : 0;
}

struct lg_cuda_prefetcher {
    cudaStream_t side;
    cudaEvent_t fork, join;
};

static bool prefetcher_ready(lg_cuda_ctx *k) {
    if (k->prefetcher) return k->prefetcher->side != NULL;
    lg_cuda_prefetcher *p = new (std::nothrow) lg_cuda_prefetcher();
    if (!p) return false;
    k->prefetcher = p;
    if (cudaStreamCreateWithFlags(&p->side, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreateWithFlags(&p->fork, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventCreateWithFlags(&p->join, cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        if (p->side) cudaStreamDestroy(p->side);
        p->side = NULL; /* never again for this context */
        return false;
    }
    return true;
}

/* The side stream waits for what s has queued so far, then prefetches. */
static void fork_prefetch(lg_cuda_ctx *k, cudaStream_t s, const prefetch_ranges &r, unsigned blocks, unsigned threads) {
    lg_cuda_prefetcher *p = k->prefetcher;
    cudaEventRecord(p->fork, s);
    cudaStreamWaitEvent(p->side, p->fork, 0);
    prefetch_l2_kernel<<<blocks, threads, 0, p->side>>>(r);
}

/* The ranges to ask for: each matrix's 16-byte aligned bytes, within the budget. */
static prefetch_ranges ranges_of(const lg_matrix *const *m, int n, size_t budget, uint32_t chunk) {
    prefetch_ranges r = {};
    r.chunk = chunk;
    for (int i = 0; i < n && r.n < PREFETCH_RANGES && budget >= 16; i++) {
        uintptr_t from = ((uintptr_t)m[i]->data + 15) & ~(uintptr_t)15;
        uintptr_t to = ((uintptr_t)m[i]->data + m[i]->row_bytes * (size_t)m[i]->rows) & ~(uintptr_t)15;
        if (!m[i]->data || to <= from) continue;
        size_t bytes = to - from < budget ? to - from : budget & ~(size_t)15;
        budget -= bytes;
        r.p[r.n] = (const uint8_t *)from;
        r.bytes[r.n] = bytes;
        r.first_chunk[r.n + 1] = r.first_chunk[r.n] + (bytes + chunk - 1) / chunk;
        r.n++;
    }
    return r;
}

void lg_cuda_prefetch_weights(lg_backend_ctx *c, const lg_matrix *const *m, int n) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_PREFETCH");
    static const double max_mib =
        getenv("LAGUNA_CUDA_PREFETCH_MAX_MIB") ? atof(getenv("LAGUNA_CUDA_PREFETCH_MAX_MIB")) : 1e30;
    static const int chunk_env = getenv("LAGUNA_CUDA_PREFETCH_CHUNK") ? atoi(getenv("LAGUNA_CUDA_PREFETCH_CHUNK")) : 0;
    if (!on || LG_CUDA_CTX(c)->step_rows > PREFETCH_MAX_ROWS) return;
    if (max_mib < 1e30) { /* the measuring bound: calls asking for more are skipped */
        size_t asked = 0;
        for (int i = 0; i < n; i++) asked += m[i]->row_bytes * (size_t)m[i]->rows;
        if ((double)asked > max_mib * 1048576.0) return;
    }
    uint32_t chunk = chunk_env >= 16 ? (uint32_t)chunk_env & ~15u : PREFETCH_CHUNK;
    size_t budget = (size_t)(PREFETCH_L2_SHARE * (double)l2_bytes());
    if (budget == 0) return;
    prefetch_ranges r = ranges_of(m, n, budget, chunk);
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (r.n == 0 || !prefetcher_ready(k)) return;
    static const int threads_env =
        getenv("LAGUNA_CUDA_PREFETCH_THREADS") ? atoi(getenv("LAGUNA_CUDA_PREFETCH_THREADS")) : 0;
    unsigned threads = threads_env > 0 && threads_env <= 1024 ? (unsigned)threads_env : PREFETCH_THREADS;
    unsigned blocks = (unsigned)((r.first_chunk[r.n] + threads - 1) / threads);
    if (!lg_cuda_taping(k)) { /* no join needed: nothing waits for a hint */
        fork_prefetch(k, k->stream, r, blocks, threads);
        return;
    }
    lg_cuda_tape_hash(k, &r, sizeof r);
    lg_cuda_tape_add(k, [=](cudaStream_t s) { fork_prefetch(k, s, r, blocks, threads); });
    lg_cuda_tape_forked(k);
}

void lg_cuda_prefetch_join(lg_cuda_ctx *k, cudaStream_t s) {
    if (!k->prefetcher || !k->prefetcher->side) return;
    cudaEventRecord(k->prefetcher->join, k->prefetcher->side);
    cudaStreamWaitEvent(s, k->prefetcher->join, 0);
}

void lg_cuda_prefetcher_free(lg_cuda_ctx *k) {
    lg_cuda_prefetcher *p = k->prefetcher;
    if (!p) return;
    if (p->side) cudaStreamSynchronize(p->side), cudaStreamDestroy(p->side);
    if (p->fork) cudaEventDestroy(p->fork);
    if (p->join) cudaEventDestroy(p->join);
    delete p;
    k->prefetcher = NULL;
}
