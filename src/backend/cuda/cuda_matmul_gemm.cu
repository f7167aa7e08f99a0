/* The BF16 tensor-core product for many tokens (prefill): a tiled GEMM that
 * computes, bit for bit, what the narrow decode kernel computes
 * (cuda_mma.h: the slice contract).
 *
 * A block takes BM weight rows x BN tokens of one product (of one listed
 * expert for a grouped product: blockIdx.z) and walks K one 32-wide step
 * at a time through a ring of STAGES shared-memory stages filled by
 * cp.async: the step's BM x 32 bf16 weights and BN x 32 float
 * activations, zero-filled past the rows, the tokens and K.
 *
 * The tokens are the mma's 16-row operand and the weight rows its 8-column
 * one (mma_step_tokens): a lane's 16-byte load of a weight row is then its
 * two operand registers as they are, where the other way round each mma
 * first needed four register moves to pair rows g and g + 8 (they were ~40%
 * of the kernel's instructions). The activations are split into bf16 hi
 * and lo once per block, one step ahead of the mma (split_step), straight
 * into the fragment order: a lane reads each of its operand quads with one
 * 16-byte load, and no warp repeats another's split. With bf16 activations
 * (LO false: the ops' hi_only) only the hi quads are written and multiplied.
 *
 * Each warp owns NR 8-row x NT 16-token tiles. After the last step of each
 * slice the slice's sums are added into the totals (which start at -0.0f,
 * so the first addition is exact: -0 + s = s for every s) and the chain
 * restarts from zero.
 *
 * Shared-memory layout, conflict free for the 16-byte accesses (a quarter
 * warp, lanes g = 2p, 2p + 1 and q = 0..3, together): a stage's weights are
 * BM rows of 64 bytes (rows g and g + 1 fill one 128-byte line); its
 * activations BN tokens of 128 bytes whose 16-byte chunk c sits at
 * c ^ (token & 1); a split step is, per 16-token tile, four quads (hi and lo
 * of the step's first 16 k, then of its second) of 32 lanes x 16 bytes.
 *
 * Two shapes: dense products with enough tiles to fill the GPU take
 * 128 x 128 blocks of 8 warps (64 x 32 each); the rest, and grouped expert
 * products (tens of rows per expert in a prefill), 128 x 32 blocks of 4
 * warps (32 x 32 each), several blocks per SM for memory-level parallelism.
 * A warp skips the mma of its 16-token tiles with no token, so a block with
 * few tokens spends little beyond its weight reads. Grouped blocks loop
 * over an expert's token tiles (the grid covers the typical expert), so
 * the grid is not sized for an expert holding every token. */
#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_gemm_stage.h"
#include "backend/cuda/cuda_mma.h"

template <int WARPS_M, int WARPS_N, int NR, int NT, int STAGES> struct gemm_shape {
    static_assert(STAGES >= 3, "a step is split while the next one lands");
    static constexpr int threads = 32 * WARPS_M * WARPS_N;
    static constexpr int bm = 8 * NR * WARPS_M, bn = 16 * NT * WARPS_N;
    static constexpr int w_bytes = bm * 64, x_bytes = bn * 128; /* one stage: W bf16, x float */
    static constexpr int stage_bytes = w_bytes + x_bytes;
    static constexpr int split_bytes = bn * 128; /* one step's x as bf16 hi and lo */
    static constexpr int smem = STAGES * stage_bytes + 2 * split_bytes;
    static constexpr int w_loads = bm * 4 / threads, x_loads = bn * 8 / threads, split_units = bn * 4 / threads;
    static_assert(bm * 4 % threads == 0 && bn * 8 % threads == 0 && bn * 4 % threads == 0, "whole rounds");
    /* blocks an SM should hold: the shapes of 8 tiles a warp (64 sums and
     * 64 totals) fit 128 registers and live on several blocks' memory-level
     * parallelism; the dense shape's 16 tiles take twice the registers */
    static constexpr int min_blocks = NR * NT <= 8 ? 512 / threads : 1;
};

/* Splits one step's activations (its stage's floats) into the mma operand
 * quads of mma_step_tokens: for 16-token tile j, quad u (0 / 1: hi / lo of
 * the step's first 16 k, 2 / 3: of its second 16), lane (g, q) finds its four
 * registers at ((4 j + u) 32 + lane) 16 bytes: tokens g and g + 8 by k pair.
 * A unit is one lane's k half of one tile: two float4 in (token t at byte
 * rd of the stage's activations, token t + 8 1 KiB on), a hi and a lo quad
 * out (at byte wr of the split step and 512 on). */
struct split_unit {
    uint32_t rd, wr;
};

template <typename S> __device__ __forceinline__ void plan_split(split_unit *units) {
#pragma unroll
    for (int v = 0; v < S::split_units; v++) {
        int i = threadIdx.x + v * S::threads, lane = i & 31, h = (i >> 5) & 1, j = i >> 6;
        int t = 16 * j + (lane >> 2), c = 2 * (lane & 3) + h; /* t + 8: the same parity */
        units[v].rd = t * 128 + (c ^ (t & 1)) * 16;
        units[v].wr = ((4 * j + 2 * h) * 32 + lane) * 16;
    }
}

template <typename S, bool LO>
__device__ __forceinline__ void split_step(const split_unit *units, const uint8_t *xs, uint8_t *split) {
#pragma unroll
    for (int v = 0; v < S::split_units; v++) {
        float4 xa = *(const float4 *)(xs + units[v].rd), xb = *(const float4 *)(xs + units[v].rd + 1024);
        uint4 hi, lo;
        split_pair(xa.x, xa.y, &hi.x, &lo.x);
        split_pair(xb.x, xb.y, &hi.y, &lo.y);
        split_pair(xa.z, xa.w, &hi.z, &lo.z);
        split_pair(xb.z, xb.w, &hi.w, &lo.w);
        *(uint4 *)(split + units[v].wr) = hi;
        if (LO) *(uint4 *)(split + units[v].wr + 512) = lo; /* else never read */
    }
}

/* One step of a warp's tiles: NR 8-row tiles x its first tok_tiles
 * 16-token tiles. */
template <int NR, int NT, bool LO>
__device__ __forceinline__ void compute_step(const uint8_t *ws, const uint8_t *split, int warp_row, int warp_tile,
                                             int tok_tiles, float (*acc)[NT][4]) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    uint4 w[NR];
#pragma unroll
    for (int i = 0; i < NR; i++) w[i] = *(const uint4 *)(ws + (warp_row + 8 * i + g) * 64 + q * 16);
#pragma unroll
    for (int j = 0; j < NT; j++) {
        if (j < tok_tiles) {
            const uint4 *f = (const uint4 *)split + 4 * (warp_tile + j) * 32 + lane;
            uint4 h0 = f[0], h1 = f[64], l0 = LO ? f[32] : h0, l1 = LO ? f[96] : h1;
#pragma unroll
            for (int i = 0; i < NR; i++) mma_step_tokens<LO>(acc[i][j], w[i], h0, l0, h1, l1);
        }
    }
}

/* LO: the activations' lo halves too (false: hi_only, bf16 activations) */
template <int WARPS_M, int WARPS_N, int NR, int NT, int STAGES, bool LO>
__global__ void __launch_bounds__(32 * WARPS_M * WARPS_N, gemm_shape<WARPS_M, WARPS_N, NR, NT, STAGES>::min_blocks)
    gemm_kernel(const __grid_constant__ matmul_set set) {
    using S = gemm_shape<WARPS_M, WARPS_N, NR, NT, STAGES>;
    lg_cuda_kernel_begin();
    extern __shared__ __align__(16) uint8_t smem[];
    uint8_t *split = smem + STAGES * S::stage_bytes;
    int block_x, t_begin, t_count;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    int warp = threadIdx.x >> 5, r0 = block_x * S::bm;
    int warp_row = (warp % WARPS_M) * 8 * NR, warp_tile = (warp / WARPS_M) * NT;
    int steps = (a.cols + 31) / 32, per_slice, n_slices;
    slicing(a.cols, &per_slice, &n_slices);
    split_unit units[S::split_units];
    plan_split<S>(units);
    for (int t0 = blockIdx.y * S::bn; t0 < t_count; t0 += gridDim.y * S::bn) {
        int nt = min(S::bn, t_count - t0);
        int tok_tiles = min(max((nt - 16 * warp_tile + 15) / 16, 0), NT);
        const float *x = a.x + (size_t)(t_begin + t0) * a.cols;
        stage_copies<S> copies;
        plan_copies<S>(copies, smem_addr(smem), a, w, r0, x, nt);
        float acc[NR][NT][4], total[NR][NT][4];
#pragma unroll
        for (int i = 0; i < NR; i++)
#pragma unroll
            for (int j = 0; j < NT; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    acc[i][j][e] = 0.0f, total[i][j][e] = -0.0f;
        __syncthreads(); /* every warp is done with the previous tile's stages */
        /* a step's stage as a byte offset */
        auto slot = [](int step) { return (uint32_t)((unsigned)step % STAGES) * S::stage_bytes; };
#pragma unroll
        for (int s = 0; s < STAGES - 1; s++) {
            if (s < steps) load_stage<S>(copies, slot(s), 32 * s, a.cols);
            cp_async_commit();
        }
        cp_async_wait<STAGES - 2>(); /* step 0 */
        __syncthreads();
        split_step<S, LO>(units, smem + S::w_bytes, split);
        int in_slice = 0;
        for (int s = 0; s < steps; s++) {
            cp_async_wait<STAGES - 3>(); /* step s + 1 has landed (this thread's copies) */
            __syncthreads(); /* everyone's; step s's split is written; step s - 1 is done with */
            if (s + STAGES - 1 < steps) load_stage<S>(copies, slot(s + STAGES - 1), 32 * (s + STAGES - 1), a.cols);
            cp_async_commit();
            if (s + 1 < steps)
                split_step<S, LO>(units, smem + slot(s + 1) + S::w_bytes, split + ((s + 1) & 1) * S::split_bytes);
            compute_step<NR, NT, LO>(smem + slot(s), split + (s & 1) * S::split_bytes, warp_row, warp_tile, tok_tiles, acc);
            if (++in_slice == per_slice || s == steps - 1) {
                in_slice = 0;
#pragma unroll
                for (int i = 0; i < NR; i++)
#pragma unroll
                    for (int j = 0; j < NT; j++)
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            total[i][j][e] += acc[i][j][e], acc[i][j][e] = 0.0f;
            }
        }
        float *y = a.y + (size_t)(t_begin + t0) * a.rows;
#pragma unroll
        for (int i = 0; i < NR; i++)
#pragma unroll
            for (int j = 0; j < NT; j++)
                if (j < tok_tiles)
                    mma_store_token_tile(a, y, r0 + warp_row + 8 * i, 16 * (warp_tile + j), nt, total[i][j]);
    }
}

/* Dense: 128 x 128 blocks, 8 warps of 64 x 32. */
#define DENSE_SHAPE 2, 4, 8, 2, 4
/* Few tokens per block (grouped experts, small products): 128 x 32, 4
 * warps of 32 x 32. */
#define NARROW_SHAPE 4, 1, 4, 2, 4

template <int WARPS_M, int WARPS_N, int NR, int NT, int STAGES>
static void launch_shape(lg_cuda_ctx *k, matmul_set *s, int blocks_y, int blocks_z) {
    using S = gemm_shape<WARPS_M, WARPS_N, NR, NT, STAGES>;
    if (set_number_blocks(s, S::bm) == 0 || blocks_y <= 0) return;
    bool lo = !s->op[0].hi_only; /* one setting for the whole backend */
    void (*kernel)(matmul_set) =
        lo ? gemm_kernel<WARPS_M, WARPS_N, NR, NT, STAGES, true> : gemm_kernel<WARPS_M, WARPS_N, NR, NT, STAGES, false>;
    lg_cuda_allow_smem(kernel, S::smem);
    lg_cuda_launch(k, kernel, dim3(s->first_block[s->n], blocks_y, blocks_z), S::threads,
                   (size_t)S::smem, *s);
}

void lg_cuda_gemm_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups) {
    using D = gemm_shape<DENSE_SHAPE>;
    using N = gemm_shape<NARROW_SHAPE>;
    matmul_set part;
    /* plain products: wgmma or dense blocks when they make at least a wave */
    int most = set_pick_ops(*set, false, &part);
    if (part.n && most > 0 && !lg_cuda_wgmma_plain(k, &part, most)) {
        int dense_blocks = set_number_blocks(&part, D::bm) * ((most + D::bn - 1) / D::bn);
        if (dense_blocks >= lg_cuda_sm_count())
            launch_shape<DENSE_SHAPE>(k, &part, (most + D::bn - 1) / D::bn, 1);
        else
            launch_shape<NARROW_SHAPE>(k, &part, (most + N::bn - 1) / N::bn, 1);
    }
    /* grouped products: the grid covers 1.5x the typical expert's rows */
    most = set_pick_ops(*set, true, &part);
    if (part.n && most > 0 && !lg_cuda_wgmma_grouped(k, &part, most, max_groups)) {
        lg_cuda_set_settle(k, &part);
        launch_shape<NARROW_SHAPE>(k, &part, set_grouped_tiles(part, most, N::bn), max_groups);
    }
}
