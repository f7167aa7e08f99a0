/* The BF16 products of many tokens on Hopper's warpgroup instructions
 * (wgmma, sm_90a): the tiled GEMM of cuda_matmul_gemm.cu with each warp's
 * mma.sync chains replaced by one warpgroup's wgmma, meant to compute the
 * same bits (cuda_mma.h: the slice contract).
 *
 * On by default on compute capability 9.0 (LAGUNA_CUDA_WGMMA=0: the
 * mma.sync GEMM), for plain products that make at least a wave of blocks
 * and grouped products whose largest expert fills a 64-token tile; the rest
 * keep the mma.sync GEMM's narrow shape. It computes the same bits as
 * mma.sync: test_cuda_ops' product cases (a token alone bitwise its row of
 * up to 1290-token products, grouped experts, both activation modes) pass
 * with it, as do the CUDA tests and `laguna verify --device cuda`
 * (docs/performance.md, twenty-fourth pass).
 *
 * Roles are those of the decode kernel's mma_step (cuda_mma.h): the weight
 * rows are the 64-row operand A, taken into registers exactly as a lane of
 * mma_step takes them (16 bytes of rows g and g + 8 at k 8q .. 8q + 7, the
 * first half's four registers then the second's); the tokens are the
 * N-column operand B, in shared memory. Each step's activations are split
 * into bf16 hi and lo (as split_pair) straight into B's layout: for each of
 * the step's two k16 halves u and each part (hi, lo), a K-major tile of
 * core matrices (8 tokens x 8 k slots, 128 bytes), slot 2p + i of the
 * first core matrix holding k 8p + 4u + i and slot 8 + 2p + i k 8p + 4u + 2
 * + i: the k that mma_step's fragments put in those slots. Per step the
 * instructions go hi, lo of the first half, then hi, lo of the second, into
 * accumulators that start each slice at zero; at a slice's end they are
 * added into the totals (which start at -0.0f), as in every other kernel.
 *
 * A block is two warpgroups, 128 weight rows x BN tokens; stages come in
 * through the same cp.async ring as the tiled GEMM's (cuda_gemm_stage.h).
 * The split steps go round a ring of three buffers: the one written during
 * step s was last read by step s - 2's instructions, which both warpgroups
 * waited for before the barrier that opens step s. */
#include <stdlib.h>

#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_gemm_stage.h"
#include "backend/cuda/cuda_mma.h"
#include "backend/cuda/cuda_wgmma.h"
#include "backend/cuda/cuda_wgmma_tile.h"

template <int BN, int STAGES> struct wgmma_shape {
    static_assert(STAGES >= 3, "a step is split while the next one lands");
    static constexpr int warpgroups = 2, threads = 128 * warpgroups;
    static constexpr int bm = 64 * warpgroups, bn = BN;
    static constexpr int w_bytes = bm * 64, x_bytes = bn * 128; /* one stage: W bf16, x float */
    static constexpr int stage_bytes = w_bytes + x_bytes;
    static constexpr int tile_bytes = bn * 32;         /* one instruction's B: 16 k slots x BN tokens, bf16 */
    static constexpr int split_bytes = 4 * tile_bytes; /* a step: (first, second half) x (hi, lo) */
    static constexpr int splits = 3;
    static constexpr int smem = STAGES * stage_bytes + splits * split_bytes;
    static constexpr int w_loads = bm * 4 / threads, x_loads = bn * 8 / threads;
    static constexpr int split_units = bn * 8 / threads; /* a step's 16-byte activation chunks a thread splits */
    static_assert(bm * 4 % threads == 0 && bn * 8 % threads == 0, "whole rounds");
};

/* Splits one step's activations (the stage's floats) into the four B
 * tiles. Unit i is token t = i / 8's chunk c = i % 8 (k 4c .. 4c + 3, so p
 * = c / 2, u = c % 2): its first pair goes to slot pair p of the core
 * matrix of k slots 0-7, its second to that of slots 8-15; eight lanes
 * read one token's 128 bytes. */
template <typename S, bool LO>
__device__ __forceinline__ void wgmma_split_step(const uint8_t *xs, uint8_t *split) {
#pragma unroll
    for (int v = 0; v < S::split_units; v++) {
        int i = threadIdx.x + v * S::threads, t = i >> 3, c = i & 7, p = c >> 1, u = c & 1;
        float4 x = *(const float4 *)(xs + t * 128 + ((c ^ (t & 1)) * 16));
        uint32_t h0, l0, h1, l1;
        split_pair(x.x, x.y, &h0, &l0);
        split_pair(x.z, x.w, &h1, &l1);
        uint8_t *row = split + (2 * u) * S::tile_bytes + (t >> 3) * WGMMA_SBO + (t & 7) * 16 + 4 * p;
        *(uint32_t *)row = h0;
        *(uint32_t *)(row + WGMMA_LBO) = h1;
        if (LO) {
            *(uint32_t *)(row + S::tile_bytes) = l0;
            *(uint32_t *)(row + S::tile_bytes + WGMMA_LBO) = l1;
        }
    }
}

template <int BN, int STAGES, bool LO>
__global__ void __launch_bounds__(256, 1) wgmma_gemm_kernel(const __grid_constant__ matmul_set set) {
    using S = wgmma_shape<BN, STAGES>;
    constexpr int ND = BN / 2; /* accumulators a thread holds */
    lg_cuda_kernel_begin();
    extern __shared__ __align__(128) uint8_t smem[];
    uint8_t *split = smem + STAGES * S::stage_bytes;
    int block_x, t_begin, t_count;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    int row_base = 64 * (threadIdx.x >> 7) + 16 * ((threadIdx.x >> 5) & 3); /* the warp's 16 rows in the block */
    int r0 = block_x * S::bm;
    int steps = (a.cols + 31) / 32, per_slice, n_slices;
    slicing(a.cols, &per_slice, &n_slices);
    uint32_t split0 = smem_addr(split);
    auto slot = [](int step) { return (uint32_t)((unsigned)step % STAGES) * S::stage_bytes; };
    for (int t0 = blockIdx.y * BN; t0 < t_count; t0 += gridDim.y * BN) {
        int nt = min(BN, t_count - t0);
        const float *x = a.x + (size_t)(t_begin + t0) * a.cols;
        stage_copies<S> copies;
        plan_copies<S>(copies, smem_addr(smem), a, w, r0, x, nt);
        float acc[ND], total[ND];
#pragma unroll
        for (int e = 0; e < ND; e++) acc[e] = 0.0f, total[e] = -0.0f;
        __syncthreads(); /* the previous tile's stages and splits are done with */
#pragma unroll
        for (int s = 0; s < STAGES - 1; s++) {
            if (s < steps) load_stage<S>(copies, slot(s), 32 * s, a.cols);
            cp_async_commit();
        }
        cp_async_wait<STAGES - 2>(); /* step 0 */
        __syncthreads();
        wgmma_split_step<S, LO>(smem + S::w_bytes, split);
        wgmma_fence_smem();
        /* slice by slice: the steps' loop touches the accumulators only
         * through the instructions (a branch writing them would make ptxas
         * wait for the instructions in flight at every step) */
        for (int s = 0; s < steps;) {
            for (int end = min(s + per_slice, steps); s < end; s++) {
                cp_async_wait<STAGES - 3>(); /* step s + 1 has landed (this thread's copies) */
                __syncthreads(); /* everyone's; step s's split is written and fenced; step s - 2's wgmma are done */
                if (s + STAGES - 1 < steps)
                    load_stage<S>(copies, slot(s + STAGES - 1), 32 * (s + STAGES - 1), a.cols);
                cp_async_commit();
                /* wgmma reads A's registers while it runs: step s - 1's
                 * must be done before wa and wb are loaded again (PTX ISA:
                 * writing them earlier is undefined) */
                wgmma_wait<0>();
                const uint8_t *ws = smem + slot(s);
                uint4 wa = *(const uint4 *)(ws + (row_base + g) * 64 + q * 16);
                uint4 wb = *(const uint4 *)(ws + (row_base + g + 8) * 64 + q * 16);
                wgmma_step<BN, LO>(acc, wa, wb, split0 + (s % S::splits) * S::split_bytes, 2 * S::tile_bytes);
                if (s + 1 < steps) {
                    wgmma_split_step<S, LO>(smem + slot(s + 1) + S::w_bytes,
                                            split + ((s + 1) % S::splits) * S::split_bytes);
                    wgmma_fence_smem();
                }
            }
            wgmma_end_slice<ND>(acc, total);
        }
        wgmma_store_tile<ND>(a, a.y + (size_t)(t_begin + t0) * a.rows, r0 + row_base, nt, total);
    }
}

#define WGMMA_STAGES 4

template <int BN> static void launch_wgmma_shape(lg_cuda_ctx *k, matmul_set *s, int blocks_y, int blocks_z) {
    using S = wgmma_shape<BN, WGMMA_STAGES>;
    if (set_number_blocks(s, S::bm) == 0 || blocks_y <= 0) return;
    bool lo = !s->op[0].hi_only; /* one setting for the whole backend */
    void (*kernel)(matmul_set) =
        lo ? wgmma_gemm_kernel<BN, WGMMA_STAGES, true> : wgmma_gemm_kernel<BN, WGMMA_STAGES, false>;
    lg_cuda_allow_smem(kernel, S::smem);
    lg_cuda_launch(k, kernel, dim3(s->first_block[s->n], blocks_y, blocks_z), S::threads, (size_t)S::smem, *s);
}

/* On for compute capability 9.0 devices (the kernels are built for sm_90a
 * alone) unless LAGUNA_CUDA_WGMMA=0. */
static bool wgmma_enabled(void) {
    static const bool on = [] {
        int dev = 0, major = 0, minor = 0;
        cudaGetDevice(&dev);
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
        return lg_cuda_switch_on("LAGUNA_CUDA_WGMMA") && major == 9 && minor == 0;
    }();
    return on;
}

bool lg_cuda_wgmma_plain(lg_cuda_ctx *k, matmul_set *part, int most) {
    using S = wgmma_shape<128, WGMMA_STAGES>;
    if (!wgmma_enabled()) return false;
    int blocks_y = (most + S::bn - 1) / S::bn;
    if (set_number_blocks(part, S::bm) * blocks_y < lg_cuda_sm_count()) return false; /* less than a wave: the narrow GEMM */
    if (lg_cuda_packed_enabled() && lg_cuda_packed_plain(k, part, most)) return true;
    launch_wgmma_shape<128>(k, part, blocks_y, 1);
    return true;
}

/* (lg_cuda_mma_launch sends more than 64 tokens to the tiled GEMMs.) */
bool lg_cuda_grouped_packed(int n_tokens) {
    return n_tokens > 64 && wgmma_enabled() && lg_cuda_packed_enabled() && lg_cuda_mma_enabled();
}

bool lg_cuda_wgmma_grouped(lg_cuda_ctx *k, matmul_set *part, int most, int max_groups) {
    /* LAGUNA_CUDA_WGMMA_GROUPED_BN=64 or 128, for measuring; by default 128
     * for the packed GEMM (+3-6% prefill over 64 on an H100, thirty-fifth
     * pass), 64 for the GEMM before */
    static const int bn = [] {
        const char *e = getenv("LAGUNA_CUDA_WGMMA_GROUPED_BN");
        if (e && (atoi(e) == 64 || atoi(e) == 128)) return atoi(e);
        return lg_cuda_packed_enabled() ? 128 : 64;
    }();
    if (!wgmma_enabled() || most < 64) return false; /* no expert fills a tile: the narrow GEMM */
    if (lg_cuda_packed_enabled() && lg_cuda_packed_grouped(k, part, most, max_groups, bn)) return true;
    lg_cuda_set_settle(k, part);
    if (bn == 128) launch_wgmma_shape<128>(k, part, set_grouped_tiles(*part, most, 128), max_groups);
    else launch_wgmma_shape<64>(k, part, set_grouped_tiles(*part, most, 64), max_groups);
    return true;
}
