/* BF16 products of up to 8 tokens (decoding) with the weights streamed
 * through shared memory by the copy engine, so that every SM keeps a deep,
 * steady queue of weight reads in flight (the one-shot blocks of
 * cuda_matmul_mma.cu issue their loads in waves: an SM's queue drains each
 * time its blocks turn over).
 *
 * A set's work is a list of items, one 16-row tile of one product (of one
 * listed expert for a grouped product), cut into units of 16 rows x
 * STREAM_CHUNK_K columns. Each block (one per SM) takes a contiguous run of
 * items. Its producer warp walks the units in order and, for each, waits
 * for a free stage of the ring and copies the unit's row pieces in with
 * cp.async.bulk, completion counted on the stage's "full" barrier. Consumer
 * warp w computes slice w of every tile (the slices of cuda_mma.h, so the
 * same bits as every other product kernel): it waits for each unit in turn,
 * runs the mma steps of its slice that lie in the unit, and frees the stage
 * on its "empty" barrier. At the end of a tile the warps park their sums,
 * meet at a barrier, and add them in slice order.
 *
 * With programmatic dependent launch the producer copies plain products'
 * weights before the previous kernel has finished (weights never depend on
 * it); grouped products need the expert list, so it waits first there. */
#include "backend/cuda/cuda_mma.h"

#include <stdlib.h>

#include <atomic>

#define STREAM_WARPS 8 /* consumers; one more warp produces */
#define STREAM_THREADS ((STREAM_WARPS + 1) * 32)
#define STREAM_RING_BYTES 215000 /* of the 227 KB a block may have */

/* The ring for units of 16 rows x CHUNK columns: a row's piece padded by 64
 * bytes (rows g and g + 1 on the other 16 banks), as many stages as fit. */
template <int CHUNK> struct ring {
    static constexpr int row_stride = CHUNK * 2 + 64;
    static constexpr int unit_bytes = 16 * row_stride;
    static constexpr int stages = STREAM_RING_BYTES / unit_bytes;
    static constexpr size_t smem_bytes =
        (size_t)stages * unit_bytes + 2 * sizeof(float) * MMA_MAX_SLICES * 128 + 2 * sizeof(uint64_t) * stages;
};

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint64_t *b, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(b)), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_expect_tx(uint64_t *b, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(b)), "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint64_t *b) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(b)) : "memory");
}

__device__ __forceinline__ void mbar_wait(uint64_t *b, uint32_t parity) {
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     " selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(smem_addr(b)), "r"(parity)
                     : "memory");
}

__device__ __forceinline__ void bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(smem_addr(bar))
                 : "memory");
}

__device__ __forceinline__ void grid_wait() {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}

/* Item i of the set: its product, listed-expert index z and tile. */
__device__ __forceinline__ void stream_item(const matmul_set &set, int max_groups, long i, int *op, int *z, int *tile) {
    for (int o = 0; o < set.n; o++) {
        int tiles = (set.op[o].rows + 15) / 16;
        long n = (long)tiles * (set.op[o].offsets ? max_groups : 1);
        if (i < n || o == set.n - 1) {
            *op = o, *z = (int)(i / tiles), *tile = (int)(i % tiles);
            return;
        }
        i -= n;
    }
}

/* The matrix and token rows of an item; false when it has none (a listed
 * expert past the count). Grouped products read the list: after the wait. */
__device__ __forceinline__ bool stream_rows(const matmul_args &a, int z, const uint8_t **w, int *t_begin, int *t_count) {
    *w = a.w, *t_begin = 0, *t_count = a.n_tokens;
    if (a.offsets) {
        if (z >= a.active[0]) return false;
        int e = a.active[1 + z];
        *t_begin = a.offsets[e];
        *t_count = a.offsets[e + 1] - *t_begin;
        *w = a.w_table[e];
    }
    return *t_count > 0;
}

template <int CHUNK>
__global__ void __launch_bounds__(STREAM_THREADS, 1)
    mma_stream_kernel(const __grid_constant__ matmul_set set, int max_groups, long n_items) {
    constexpr int STREAM_CHUNK_K = CHUNK, STREAM_ROW_STRIDE = ring<CHUNK>::row_stride;
    constexpr int STREAM_UNIT_BYTES = ring<CHUNK>::unit_bytes, STREAM_STAGES = ring<CHUNK>::stages;
    extern __shared__ __align__(128) uint8_t smem[];
    uint8_t *stages = smem;
    float *part = (float *)(smem + (size_t)STREAM_STAGES * STREAM_UNIT_BYTES); /* [2][slice][16 rows][8 tokens] */
    uint64_t *full = (uint64_t *)(part + 2 * MMA_MAX_SLICES * 128), *empty = full + STREAM_STAGES;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int s = 0; s < STREAM_STAGES; s++) mbar_init(&full[s], 1), mbar_init(&empty[s], STREAM_WARPS);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    long first = n_items * blockIdx.x / gridDim.x, last = n_items * (blockIdx.x + 1) / gridDim.x;

    if (warp == STREAM_WARPS) { /* the producer: lane 0 keeps the barriers, lane r copies row r */
        bool waited = false;
        uint32_t u = 0;
        for (long i = first; i < last; i++) {
            int op, z, tile, t_begin, t_count;
            stream_item(set, max_groups, i, &op, &z, &tile);
            const matmul_args &a = set.op[op];
            if (a.offsets && !waited) grid_wait(), waited = true;
            const uint8_t *w;
            if (!stream_rows(a, z, &w, &t_begin, &t_count)) continue;
            int rows = min(16, a.rows - tile * 16);
            for (int kc = 0; kc < a.cols; kc += STREAM_CHUNK_K, u++) {
                int slot = u % STREAM_STAGES;
                uint32_t round = u / STREAM_STAGES;
                uint32_t bytes = 2u * (uint32_t)min(STREAM_CHUNK_K, a.cols - kc);
                if (lane == 0) {
                    if (round > 0) mbar_wait(&empty[slot], (round - 1) & 1);
                    mbar_expect_tx(&full[slot], bytes * (uint32_t)rows);
                }
                __syncwarp();
                if (lane < rows)
                    bulk_copy(stages + (size_t)slot * STREAM_UNIT_BYTES + lane * STREAM_ROW_STRIDE,
                              w + (size_t)(tile * 16 + lane) * a.row_bytes + (size_t)kc * 2, bytes, &full[slot]);
            }
        }
        if (!waited) grid_wait();
        return;
    }

    lg_cuda_kernel_begin(); /* consumers: x is the previous kernel's output */
    int g = lane >> 2, q = lane & 3;
    const float4 fzero = make_float4(0, 0, 0, 0);
    const uint4 zero = make_uint4(0, 0, 0, 0);
    uint32_t u = 0;
    int parity = 0;
    for (long i = first; i < last; i++) {
        int op, z, tile, t_begin, t_count;
        stream_item(set, max_groups, i, &op, &z, &tile);
        const matmul_args &a = set.op[op];
        const uint8_t *w;
        if (!stream_rows(a, z, &w, &t_begin, &t_count)) continue;
        int per_slice, n_slices;
        slicing(a.cols, &per_slice, &n_slices);
        int k0 = warp * per_slice * 32, k1 = min(a.cols, k0 + per_slice * 32);
        int nt = min(8, t_count);
        bool row_a = tile * 16 + g < a.rows, row_b = tile * 16 + g + 8 < a.rows;
        const float *x = a.x + (size_t)t_begin * a.cols;
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int kc = 0; kc < a.cols; kc += STREAM_CHUNK_K, u++) {
            int slot = u % STREAM_STAGES;
            mbar_wait(&full[slot], (u / STREAM_STAGES) & 1);
            const uint8_t *unit = stages + (size_t)slot * STREAM_UNIT_BYTES;
            int lo = max(k0, kc), hi = min(k1, kc + STREAM_CHUNK_K);
            for (int kb = lo; kb < hi; kb += 32) {
                int k = kb + 8 * q;
                bool in = k < k1;
                const uint8_t *p = unit + g * STREAM_ROW_STRIDE + (k - kc) * 2;
                uint4 wa = in && row_a ? *(const uint4 *)p : zero;
                uint4 wb = in && row_b ? *(const uint4 *)(p + 8 * STREAM_ROW_STRIDE) : zero;
                float4 xa = fzero, xb = fzero;
                if (g < nt && in) {
                    const float4 *xp = (const float4 *)(x + (size_t)g * a.cols + k);
                    xa = __ldg(xp), xb = __ldg(xp + 1);
                }
                mma_step(acc, wa, wb, mma_split(xa, xb));
            }
            __syncwarp();
            if (lane == 0) mbar_arrive(&empty[slot]);
        }
        float *pp = part + (size_t)parity * MMA_MAX_SLICES * 128;
        if (warp < n_slices)
#pragma unroll
            for (int e = 0; e < 4; e++) pp[warp * 128 + (g + (e >= 2 ? 8 : 0)) * 8 + 2 * q + (e & 1)] = acc[e];
        asm volatile("bar.sync 1, %0;" ::"n"(STREAM_WARPS * 32) : "memory");
        if (threadIdx.x < 128) { /* the other buffer takes the next tile, so one barrier a tile */
            int e = threadIdx.x, r = tile * 16 + e / 8, t = e % 8;
            float v = pp[e];
            for (int s = 1; s < n_slices; s++) v += pp[s * 128 + e];
            if (r < a.rows && t < nt) a.y[(size_t)(t_begin + t) * a.rows + r] = v + (a.bias ? a.bias[r] : 0.0f);
        }
        parity ^= 1;
    }
}

bool lg_cuda_stream_enabled(void) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_STREAM");
    return on;
}

template <int CHUNK> static void launch_chunk(lg_cuda_ctx *k, matmul_set *set, int max_groups, long items) {
    static std::atomic<int> ready{0};
    if (!ready.load()) {
        cudaFuncSetAttribute(mma_stream_kernel<CHUNK>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)ring<CHUNK>::smem_bytes);
        ready.store(1);
    }
    long blocks = lg_cuda_sm_count();
    if (blocks > items) blocks = items;
    lg_cuda_launch(k, mma_stream_kernel<CHUNK>, dim3((unsigned)blocks), STREAM_THREADS, ring<CHUNK>::smem_bytes, *set,
                   max_groups, items);
}

void lg_cuda_stream_launch(lg_cuda_ctx *k, matmul_set *set, int max_groups) {
    long items = 0;
    for (int i = 0; i < set->n; i++) items += (long)((set->op[i].rows + 15) / 16) * (set->op[i].offsets ? max_groups : 1);
    if (items == 0) return;
    for (int i = 0; i <= set->n; i++) set->first_block[i] = 0; /* unused here; zeroed for the tape's hash */
    /* LAGUNA_CUDA_STREAM_CHUNK: columns of a unit (512, 1024 or 2048) */
    static const int chunk = getenv("LAGUNA_CUDA_STREAM_CHUNK") ? atoi(getenv("LAGUNA_CUDA_STREAM_CHUNK")) : 1024;
    if (chunk == 512) launch_chunk<512>(k, set, max_groups, items);
    else if (chunk == 2048) launch_chunk<2048>(k, set, max_groups, items);
    else launch_chunk<1024>(k, set, max_groups, items);
}
