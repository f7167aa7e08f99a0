/* The packed wgmma GEMM (cuda_matmul_wgmma_packed.cu) with its blocks in
 * pairs that share a token tile: the same products, the same bits (the
 * slice contract, cuda_mma.h), a third less traffic from L2.
 *
 * Why: under ncu on an H100 the packed GEMM's 4096-token products read L2 at
 * a near-constant ~5.4-6.1 TB/s (q/k/v/g 3.1 GB in 580 us, the dense gate
 * and up 4.9 GB in 920 us, o_proj 1.9 GB in 309 us) with the tensor pipes
 * ~31-37% busy: a 128 x 128 tile reads as many bytes of activations as of
 * weights for each step, and a block's two warpgroups met at a block barrier
 * every stage. (Bigger tiles are out: the contract keeps a slice's sums and
 * the totals, twice the accumulators of a plain GEMM.)
 *
 * Here the blocks of two neighbouring row blocks (a cluster along y) that
 * work on the same tokens (the same packed activations and token range)
 * each copy half of a tile's groups of 8 tokens, one bulk copy a group a
 * stage, multicast into both blocks' shared memory; L2 serves a tile's
 * activations once for two row blocks. Weights are copied as before
 * (cp.async, 16 bytes a thread). A stage's arrival is counted on its "full"
 * mbarrier (every thread's copies through cp.async.mbarrier.arrive.noinc,
 * the bulk copies' bytes by complete_tx), and a slot is refilled once the
 * warpgroups that read it (both blocks' when the pair shares) have arrived
 * on its "empty" mbarrier: a warpgroup waits for its own instructions only,
 * never for the other warpgroup's at a block barrier.
 *
 * Token tiles are windows of BN rows of x starting at a multiple of 8 (a
 * bulk copy takes whole packed groups): an expert whose rows start
 * mid-group computes the few rows before its own in its first window and
 * does not store them. A block with nothing to do (past the last row block,
 * an expert not listed) still takes part in the cluster's barriers. */
#include <stdlib.h>

#include <cooperative_groups.h>

#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_mma.h"
#include "backend/cuda/cuda_wgmma.h"
#include "backend/cuda/cuda_wgmma_packed.h"
#include "backend/cuda/cuda_wgmma_tile.h"

template <int BN, bool LO> struct paired_shape {
    static constexpr int run = packed_run(LO), bm = 128, threads = 256;
    static constexpr int w_step = bm * 64;       /* a step's weights: 128 rows of 32 bf16 */
    static constexpr int group_bytes = 2 * run;  /* a group of 8 tokens' two steps, as packed */
    static constexpr int stage_bytes = 2 * w_step + BN / 8 * group_bytes;
    static constexpr int stages = PACKED_SMEM / stage_bytes;
    static constexpr int smem = stages * stage_bytes + 2 * stages * (int)sizeof(uint64_t);
    static_assert(stages >= 3, "a stage is copied while the one before it is multiplied");
};

/* Arrives on bar once this thread's cp.async copies so far have landed (the
 * barrier's count includes the arrival). */
__device__ __forceinline__ void cp_async_arrive_noinc(uint64_t *bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}

/* What follows takes effect in the threads whose `on` is true, as one
 * predicated instruction, not a branch: ptxas serialises every wgmma of a
 * kernel with a branch that may differ between a warpgroup's threads
 * (C7518), and these are the only per-thread choices in the loop. */

/* Arrives on the barrier at bar's offset in cluster block rank. */
__device__ __forceinline__ void mbarrier_arrive_rank_if(bool on, uint64_t *bar, uint32_t rank) {
    uint32_t remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(smem_addr(bar)), "r"(rank));
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %1, 0;\n @p mbarrier.arrive.shared::cluster.b64 _, [%0];\n}\n" ::"r"(
                     remote),
                 "r"((int)on)
                 : "memory");
}

__device__ __forceinline__ void mbarrier_expect_bytes_if(bool on, uint64_t *bar, uint32_t bytes) {
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n"
                 " @p mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n}\n" ::"r"(smem_addr(bar)),
                 "r"(bytes), "r"((int)on)
                 : "memory");
}

/* bytes from src to the shared address dst in the blocks of mask (cluster
 * ranks; only this block's when mask is 0), counted on the barrier at bar's
 * offset in each. */
__device__ __forceinline__ void bulk_copy_if(bool on, uint32_t dst, const void *src, uint32_t bytes, uint32_t bar,
                                             uint16_t mask) {
    if (mask)
        asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n"
                     " @p cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1], "
                     "%2, [%3], %4;\n}\n" ::"r"(dst),
                     "l"(src), "r"(bytes), "r"(bar), "h"(mask), "r"((int)on)
                     : "memory");
    else
        asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %4, 0;\n"
                     " @p cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n}\n" ::"r"(
                         dst),
                     "l"(src), "r"(bytes), "r"(bar), "r"((int)on)
                     : "memory");
}

__device__ __forceinline__ void store_if(bool on, float *p, float v) {
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n @p st.global.f32 [%0], %1;\n}\n" ::"l"(p), "f"(v),
                 "r"((int)on)
                 : "memory");
}

/* What a block works on: its op's rows from r0, the token range [t_begin,
 * t_end) of x in windows from w_first, its stages. */
struct paired_block {
    const matmul_args *a;
    const uint8_t *w;
    int r0, t_begin, t_end, w_first, steps, n_stages, per_slice, n_slices;
    bool valid;
};

__device__ __forceinline__ paired_block paired_block_of(const matmul_set &set, int y) {
    paired_block b;
    b.valid = false;
    if (y >= set.first_block[set.n]) return b; /* the grid's rows are rounded up to whole pairs */
    int block_row, t_count;
    b.a = &set.op[set_op_of(set, y, &block_row)];
    if (!set_block_rows(*b.a, &b.w, &b.t_begin, &t_count) || t_count <= 0) return b;
    b.r0 = block_row * 128, b.t_end = b.t_begin + t_count, b.w_first = b.t_begin & ~7;
    b.steps = (b.a->cols + 31) / 32, b.n_stages = (b.steps + 1) / 2;
    slicing(b.a->cols, &b.per_slice, &b.n_slices);
    b.valid = true;
    return b;
}

/* Stage g's copies into its slot, in two parts. paired_issue_x, by warp 0's
 * lanes (every thread calls it): the arrival of its bytes announced on the stage's barrier, then
 * bulk copies of this block's groups of the window (all of them alone,
 * every other one when the pair shares). paired_issue_w, by every thread:
 * its share of the weights (as packed_load's), then its arrival on the
 * barrier once they have landed. */
template <int BN, bool LO>
__device__ __forceinline__ void paired_issue_x(const paired_block &b, uint8_t *smem, uint64_t *full, int g, bool pair,
                                               uint32_t rank) {
    using S = paired_shape<BN, LO>;
    static_assert(BN / 8 <= 32, "a lane of warp 0 copies one group");
    const matmul_args &a = *b.a;
    int slot = g % S::stages, tile = g / b.n_stages, st = g % b.n_stages;
    uint8_t *base = smem + (size_t)slot * S::stage_bytes;
    int w0 = b.w_first + (int)(blockIdx.x + tile * gridDim.x) * BN;
    int groups = (min(w0 + BN, b.t_end) - w0 + 7) / 8;
    uint32_t bytes = (uint32_t)(min(2, b.steps - 2 * st) * S::run), bar = smem_addr(&full[slot]);
    /* the pair's copies land here too: all the groups' bytes */
    mbarrier_expect_bytes_if(threadIdx.x == 0, &full[slot], (uint32_t)groups * bytes);
    int gi = pair ? (int)rank + 2 * (int)threadIdx.x : (int)threadIdx.x;
    bool on = threadIdx.x < 32 && gi < groups;
    const uint8_t *xs = a.xp + ((size_t)(w0 / 8 + (on ? gi : 0)) * b.steps + 2 * st) * S::run;
    bulk_copy_if(on, smem_addr(base + 2 * S::w_step + (on ? gi : 0) * S::group_bytes), xs, bytes, bar, pair ? 3 : 0);
}

template <int BN, bool LO>
__device__ __forceinline__ void paired_issue_w(const paired_block &b, uint8_t *smem, uint64_t *full, int g) {
    using S = paired_shape<BN, LO>;
    const matmul_args &a = *b.a;
    int slot = g % S::stages, st = g % b.n_stages;
    int row = threadIdx.x >> 3, cc = threadIdx.x & 7; /* cc: step cc / 4, 16-byte chunk cc % 4 */
    int w_n = max(0, (a.rows - b.r0 - row + 31) / 32);
    bool w_in = 64 * st + 8 * cc < a.cols;
    const uint8_t *src = b.w + (size_t)(b.r0 + row) * a.row_bytes + 128 * (size_t)st + 16 * cc;
    uint32_t dst = smem_addr(smem + (size_t)slot * S::stage_bytes) + (cc >> 2) * S::w_step + row * 64 + (cc & 3) * 16;
#pragma unroll
    for (int v = 0; v < 4; v++) {
        bool ok = w_in && v < w_n;
        cp_async16_n_shared(dst + v * 32 * 64, ok ? src + (size_t)v * 32 * a.row_bytes : b.w, ok ? 16 : 0);
    }
    cp_async_arrive_noinc(&full[slot]);
}

/* One 32-wide step: the instructions of cuda_wgmma_tile.h's wgmma_step in
 * its order, B read from the step's packed runs (x: the step's run of the
 * first group; core matrices along K 128 bytes apart, groups group_bytes). */
template <int BN, bool LO>
__device__ __forceinline__ void paired_step(float *acc, uint4 wa, uint4 wb, uint32_t x) {
    constexpr uint32_t SBO = paired_shape<BN, LO>::group_bytes;
    wgmma_fence();
    wgmma_bf16<BN>(acc, wa.x, wb.x, wa.y, wb.y, wgmma_desc(x, 128, SBO));
    if (LO) wgmma_bf16<BN>(acc, wa.x, wb.x, wa.y, wb.y, wgmma_desc(x + 512, 128, SBO));
    wgmma_bf16<BN>(acc, wa.z, wb.z, wa.w, wb.w, wgmma_desc(x + 256, 128, SBO));
    if (LO) wgmma_bf16<BN>(acc, wa.z, wb.z, wa.w, wb.w, wgmma_desc(x + 768, 128, SBO));
    wgmma_commit();
}

/* A warpgroup's finished totals of the window from row w0 of x: rows of the
 * block's token range only. */
template <int N>
__device__ __forceinline__ void paired_store(const paired_block &b, int w0, int row0, const float *total) {
    const matmul_args &a = *b.a;
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int e = 0; e < N; e++) {
        int r = row0 + g + 8 * ((e >> 1) & 1), t = w0 + 8 * (e >> 2) + 2 * q + (e & 1);
        bool in = r < a.rows && t >= b.t_begin && t < b.t_end;
        float bias = a.bias ? a.bias[min(r, a.rows - 1)] : 0.0f;
        store_if(in, a.y + (size_t)(in ? t : 0) * a.rows + (in ? r : 0), total[e] + bias);
    }
}

template <int BN, bool LO>
__device__ __forceinline__ void paired_tiles(const paired_block &b, uint8_t *smem, uint64_t *full, uint64_t *empty,
                                             int n_total, bool pair, uint32_t rank) {
    using S = paired_shape<BN, LO>;
    constexpr int ND = BN / 2; /* accumulators a thread holds */
    int lane = threadIdx.x & 31, g8 = lane >> 2, q = lane & 3;
    int row_base = 64 * (threadIdx.x >> 7) + 16 * ((threadIdx.x >> 5) & 3); /* the warp's 16 rows in the block */
    bool elected = (threadIdx.x & 127) == 0;
    float acc[ND], total[ND];
#pragma unroll
    for (int e = 0; e < ND; e++) acc[e] = 0.0f, total[e] = -0.0f;
    for (int g = 0; g < min(S::stages - 2, n_total); g++) {
        paired_issue_x<BN, LO>(b, smem, full, g, pair, rank);
        paired_issue_w<BN, LO>(b, smem, full, g);
    }
    for (int g = 0; g < n_total; g++) {
        int slot = g % S::stages, st = g % b.n_stages;
        /* wgmma reads A's registers while it runs: the last stage's
         * instructions must be done before registers are loaded again; then
         * the warpgroup is done with that stage's slot */
        wgmma_wait<0>();
        if (g > 0) {
            uint64_t *e = &empty[(g - 1) % S::stages];
            mbarrier_arrive_rank_if(elected, e, rank);
            if (pair) mbarrier_arrive_rank_if(elected, e, rank ^ 1);
        }
        /* the slot of stage g - 2 (every warpgroup that reads it has
         * arrived by its stage g - 1) takes stage g + stages - 2: its bulk
         * copies now, its weights once this stage's instructions run */
        int gn = g + S::stages - 2;
        if (gn < n_total) {
            if (gn >= S::stages) mbarrier_wait(&empty[gn % S::stages], (uint32_t)(gn / S::stages - 1) & 1);
            paired_issue_x<BN, LO>(b, smem, full, gn, pair, rank);
        }
        mbarrier_wait(&full[slot], (uint32_t)(g / S::stages) & 1);
        const uint8_t *ws = smem + (size_t)slot * S::stage_bytes;
        uint4 wa0 = *(const uint4 *)(ws + (row_base + g8) * 64 + q * 16);
        uint4 wb0 = *(const uint4 *)(ws + (row_base + g8 + 8) * 64 + q * 16);
        uint4 wa1 = *(const uint4 *)(ws + S::w_step + (row_base + g8) * 64 + q * 16);
        uint4 wb1 = *(const uint4 *)(ws + S::w_step + (row_base + g8 + 8) * 64 + q * 16);
        uint32_t x = smem_addr(ws + 2 * S::w_step);
        int s = 2 * st;
        if (s > 0 && s % b.per_slice == 0) wgmma_end_slice<ND>(acc, total);
        paired_step<BN, LO>(acc, wa0, wb0, x);
        if (s + 1 < b.steps) {
            if ((s + 1) % b.per_slice == 0) wgmma_end_slice<ND>(acc, total);
            paired_step<BN, LO>(acc, wa1, wb1, x + S::run);
        }
        if (gn < n_total) paired_issue_w<BN, LO>(b, smem, full, gn);
        if (st == b.n_stages - 1) {
            wgmma_end_slice<ND>(acc, total);
            int w0 = b.w_first + (int)(blockIdx.x + (g / b.n_stages) * gridDim.x) * BN;
            paired_store<ND>(b, w0, b.r0 + row_base, total);
#pragma unroll
            for (int e = 0; e < ND; e++) total[e] = -0.0f;
        }
    }
}

template <int BN, bool LO>
__global__ void __cluster_dims__(1, 2, 1) __launch_bounds__(256, 1) wgmma_paired_kernel(const __grid_constant__ matmul_set set) {
    using S = paired_shape<BN, LO>;
    lg_cuda_kernel_begin();
    extern __shared__ __align__(128) uint8_t smem[];
    uint64_t *full = (uint64_t *)(smem + (size_t)S::stages * S::stage_bytes), *empty = full + S::stages;
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    uint32_t rank = cluster.block_rank();
    paired_block b = paired_block_of(set, (int)blockIdx.y), other = paired_block_of(set, (int)blockIdx.y ^ 1);
    /* the pair shares when both blocks multiply the same tokens (both
     * blocks work this out alike) */
    bool pair = b.valid && other.valid && b.a->xp == other.a->xp && b.a->cols == other.a->cols &&
                b.t_begin == other.t_begin && b.t_end == other.t_end;
    if (threadIdx.x == 0) {
        for (int s = 0; s < S::stages; s++) {
            mbarrier_init(&full[s], S::threads + 1);  /* every thread's copies, and the bytes' arrival */
            mbarrier_init(&empty[s], pair ? 4 : 2);   /* the warpgroups that read the slot */
        }
        mbarrier_init_fence();
    }
    cluster.sync(); /* both blocks' barriers are ready before any copy or arrival reaches them */
    int n_total = 0;
    if (b.valid) {
        int windows = (b.t_end - b.w_first + BN - 1) / BN, mine = 0;
        if (windows > (int)blockIdx.x) mine = (windows - (int)blockIdx.x + (int)gridDim.x - 1) / (int)gridDim.x;
        n_total = mine * b.n_stages;
    }
    if (n_total > 0) paired_tiles<BN, LO>(b, smem, full, empty, n_total, pair, rank);
    cluster.sync(); /* no block leaves while its pair may still copy into it or arrive on its barriers */
}

/* Off unless LAGUNA_CUDA_WGMMA_PAIRED=1 (measuring). */
bool lg_cuda_paired_enabled(void) {
    static const bool on = getenv("LAGUNA_CUDA_WGMMA_PAIRED") && atoi(getenv("LAGUNA_CUDA_WGMMA_PAIRED")) == 1;
    return on;
}

template <int BN, bool LO> static void launch_paired(lg_cuda_ctx *k, const matmul_set *s, int tiles, int blocks_z) {
    using S = paired_shape<BN, LO>;
    void (*kernel)(matmul_set) = wgmma_paired_kernel<BN, LO>;
    lg_cuda_allow_smem(kernel, (size_t)S::smem);
    unsigned blocks_y = (unsigned)(s->first_block[s->n] + 1) & ~1u; /* whole pairs */
    lg_cuda_launch(k, kernel, dim3((unsigned)tiles, blocks_y, (unsigned)blocks_z), S::threads, (size_t)S::smem, *s);
}

void lg_cuda_paired_launch(lg_cuda_ctx *k, const matmul_set *s, int bn, bool lo, int tiles, int blocks_z) {
    if (bn == 128) lo ? launch_paired<128, true>(k, s, tiles, blocks_z) : launch_paired<128, false>(k, s, tiles, blocks_z);
    else lo ? launch_paired<64, true>(k, s, tiles, blocks_z) : launch_paired<64, false>(k, s, tiles, blocks_z);
}
