/* The BF16 tensor-core product for many tokens (prefill): a tiled GEMM that
 * computes, bit for bit, what the narrow decode kernel computes
 * (cuda_mma.h: the slice contract).
 *
 * A block takes BM weight rows x BN tokens of one product (of one listed
 * expert for a grouped product: blockIdx.z) and walks K one 32-wide step
 * at a time through a ring of STAGES shared-memory stages filled by
 * cp.async: the step's BM x 32 bf16 weights and BN x 32 float
 * activations, zero-filled past the rows, the tokens and K. Each warp owns
 * RT 16-row x TT 8-token mma tiles: it reads its weight fragments with one
 * 16-byte load per lane per 8 rows (the k permutation of cuda_mma.h is a
 * lane's 8 consecutive k) and its tokens' activations as two float4 per
 * lane, which it splits into bf16 hi and lo in registers (the split is a
 * few ALU ops; converting once per block in shared memory would cost a
 * second shared-memory pass and a barrier, more than the WARPS_M-fold
 * repetition). After the last step of each slice the slice's sums are
 * added into the totals (which start at -0.0f, so the first addition is
 * exact: -0 + s = s for every s) and the chain restarts from zero.
 *
 * Shared-memory layout, conflict free for the 16-byte loads (a quarter
 * warp, lanes g = 2p, 2p + 1 and q = 0..3, reads together): a stage's
 * weights are BM rows of 64 bytes (rows g and g + 1 fill one 128-byte
 * line); its activations BN tokens of 128 bytes whose 16-byte chunk c sits
 * at c ^ (token & 1) (a lane reads chunks 2q and 2q + 1 of token g).
 *
 * Two shapes: dense products with enough tiles to fill the GPU take
 * 128 x 128 blocks of 8 warps (64 x 32 each); the rest, and grouped expert
 * products (tens of rows per expert in a prefill), 128 x 32 blocks of 4
 * warps (32 x 32 each), several blocks per SM for memory-level parallelism.
 * A warp skips the mma of tiles with no row or no token, so a block with
 * few tokens spends little beyond its weight reads. Grouped blocks loop
 * over an expert's token tiles (the grid covers the typical expert), so
 * the grid is not sized for an expert holding every token. */
#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_mma.h"


template <int WARPS_M, int WARPS_N, int RT, int TT, int STAGES> struct gemm_shape {
    static constexpr int threads = 32 * WARPS_M * WARPS_N;
    static constexpr int bm = 16 * RT * WARPS_M, bn = 8 * TT * WARPS_N;
    static constexpr int w_bytes = bm * 64, x_bytes = bn * 128; /* one stage: W bf16, x float */
    static constexpr int stage_bytes = w_bytes + x_bytes, smem = STAGES * stage_bytes;
};

/* Issues the copies of step `step` (k = 32 step ..) into its stage. */
template <typename S, int STAGES>
__device__ __forceinline__ void load_stage(uint8_t *smem, const matmul_args &a, const uint8_t *w,
                                           int r0, const float *x, int nt, int step) {
    uint8_t *ws = smem + (step % STAGES) * S::stage_bytes, *xs = ws + S::w_bytes;
    int k = 32 * step;
    static_assert(S::bm * 4 % S::threads == 0 && S::bn * 8 % S::threads == 0, "whole rounds");
#pragma unroll
    for (int u = 0; u < S::bm * 4 / S::threads; u++) {
        int i = threadIdx.x + u * S::threads;
        int row = i >> 2, c = i & 3, r = r0 + row, kk = k + 8 * c;
        bool ok = r < a.rows && kk < a.cols;
        const uint8_t *src = ok ? w + (size_t)r * a.row_bytes + (size_t)kk * 2 : w;
        cp_async16_n(ws + row * 64 + c * 16, src, ok ? 16 : 0);
    }
#pragma unroll
    for (int u = 0; u < S::bn * 8 / S::threads; u++) {
        int i = threadIdx.x + u * S::threads;
        int t = i >> 3, c = i & 7, kk = k + 4 * c;
        bool ok = t < nt && kk < a.cols;
        const float *src = ok ? x + (size_t)t * a.cols + kk : x;
        cp_async16_n(xs + t * 128 + ((c ^ (t & 1)) * 16), src, ok ? 16 : 0);
    }
}

/* One step of a warp's tiles from a stage: row_tiles x tok_tiles of its
 * RT x TT (the rest have no rows or no tokens). */
template <typename S, int WARPS_M, int RT, int TT>
__device__ __forceinline__ void compute_stage(const uint8_t *ws, int warp_row, int warp_tok,
                                              int row_tiles, int tok_tiles, float (*acc)[TT][4]) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const float4 *xs = (const float4 *)(ws + S::w_bytes);
    uint4 wa[RT], wb[RT];
#pragma unroll
    for (int i = 0; i < RT; i++) {
        int row = warp_row + 16 * i + g;
        wa[i] = *(const uint4 *)(ws + row * 64 + q * 16);
        wb[i] = *(const uint4 *)(ws + (row + 8) * 64 + q * 16);
    }
#pragma unroll
    for (int j = 0; j < TT; j++) {
        if (j >= tok_tiles) break;
        int t = warp_tok + 8 * j + g; /* t & 1 == g & 1 */
        mma_xfrag f =
            mma_split(xs[t * 8 + ((2 * q) ^ (g & 1))], xs[t * 8 + ((2 * q + 1) ^ (g & 1))]);
#pragma unroll
        for (int i = 0; i < RT; i++) {
            if (i >= row_tiles) break;
            mma_step(acc[i][j], wa[i], wb[i], f);
        }
    }
}

template <int WARPS_M, int WARPS_N, int RT, int TT, int STAGES>
__global__ void __launch_bounds__(32 * WARPS_M * WARPS_N)
    gemm_kernel(const __grid_constant__ matmul_set set) {
    using S = gemm_shape<WARPS_M, WARPS_N, RT, TT, STAGES>;
    lg_cuda_kernel_begin();
    extern __shared__ __align__(16) uint8_t smem[];
    int block_x, t_begin, t_count;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    int warp = threadIdx.x >> 5, r0 = block_x * S::bm;
    int warp_row = (warp % WARPS_M) * 16 * RT, warp_tok = (warp / WARPS_M) * 8 * TT;
    int row_tiles = min(max((a.rows - r0 - warp_row + 15) / 16, 0), RT);
    int steps = (a.cols + 31) / 32, per_slice, n_slices;
    slicing(a.cols, &per_slice, &n_slices);
    for (int t0 = blockIdx.y * S::bn; t0 < t_count; t0 += gridDim.y * S::bn) {
        int nt = min(S::bn, t_count - t0);
        int tok_tiles = min(max((nt - warp_tok + 7) / 8, 0), TT);
        const float *x = a.x + (size_t)(t_begin + t0) * a.cols;
        float acc[RT][TT][4], total[RT][TT][4];
#pragma unroll
        for (int i = 0; i < RT; i++)
#pragma unroll
            for (int j = 0; j < TT; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    acc[i][j][e] = 0.0f, total[i][j][e] = -0.0f;
        __syncthreads(); /* every warp is done with the previous tile's stages */
#pragma unroll
        for (int s = 0; s < STAGES - 1; s++) {
            if (s < steps) load_stage<S, STAGES>(smem, a, w, r0, x, nt, s);
            cp_async_commit();
        }
        int in_slice = 0;
        for (int s = 0; s < steps; s++) {
            cp_async_wait<STAGES - 2>(); /* step s has landed (this thread's copies) */
            __syncthreads();             /* everyone's; and step s - 1's stage is free */
            if (s + STAGES - 1 < steps)
                load_stage<S, STAGES>(smem, a, w, r0, x, nt, s + STAGES - 1);
            cp_async_commit();
            compute_stage<S, WARPS_M, RT, TT>(smem + (s % STAGES) * S::stage_bytes, warp_row,
                                              warp_tok, row_tiles, tok_tiles, acc);
            if (++in_slice == per_slice || s == steps - 1) {
                in_slice = 0;
#pragma unroll
                for (int i = 0; i < RT; i++)
#pragma unroll
                    for (int j = 0; j < TT; j++)
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            total[i][j][e] += acc[i][j][e], acc[i][j][e] = 0.0f;
            }
        }
        float *y = a.y + (size_t)(t_begin + t0) * a.rows;
#pragma unroll
        for (int i = 0; i < RT; i++)
#pragma unroll
            for (int j = 0; j < TT; j++)
                if (i < row_tiles && j < tok_tiles)
                    mma_store_tile(a, y, r0 + warp_row + 16 * i, warp_tok + 8 * j, nt, total[i][j]);
    }
}

/* Dense: 128 x 128 blocks, 8 warps of 64 x 32. */
#define DENSE_SHAPE 2, 4, 4, 4, 4
/* Few tokens per block (grouped experts, small products): 128 x 32, 4
 * warps of 32 x 32. */
#define NARROW_SHAPE 4, 1, 2, 4, 4

template <int WARPS_M, int WARPS_N, int RT, int TT, int STAGES>
static void launch_shape(lg_cuda_ctx *k, matmul_set *s, int blocks_y, int blocks_z) {
    using S = gemm_shape<WARPS_M, WARPS_N, RT, TT, STAGES>;
    s->first_block[0] = 0;
    for (int i = 0; i < s->n; i++)
        s->first_block[i + 1] = s->first_block[i] + (s->op[i].rows + S::bm - 1) / S::bm;
    if (s->first_block[s->n] == 0 || blocks_y <= 0) return;
    void (*kernel)(matmul_set) = gemm_kernel<WARPS_M, WARPS_N, RT, TT, STAGES>;
    lg_cuda_allow_smem(kernel, S::smem);
    lg_cuda_launch(k, kernel, dim3(s->first_block[s->n], blocks_y, blocks_z), S::threads,
                   (size_t)S::smem, *s);
}

/* Rows of one block of a shape along x over a set's products. */
static int blocks_x(const matmul_set &s, int bm) {
    int n = 0;
    for (int i = 0; i < s.n; i++)
        n += (s.op[i].rows + bm - 1) / bm;
    return n;
}

void lg_cuda_gemm_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups) {
    using D = gemm_shape<DENSE_SHAPE>;
    using N = gemm_shape<NARROW_SHAPE>;
    (void)max_tokens;
    matmul_set part;
    /* plain products: dense blocks when they make at least a wave */
    int most = set_pick_ops(*set, false, &part);
    if (part.n && most > 0) {
        int dense_blocks = blocks_x(part, D::bm) * ((most + D::bn - 1) / D::bn);
        if (dense_blocks >= lg_cuda_sm_count())
            launch_shape<DENSE_SHAPE>(k, &part, (most + D::bn - 1) / D::bn, 1);
        else
            launch_shape<NARROW_SHAPE>(k, &part, (most + N::bn - 1) / N::bn, 1);
    }
    /* grouped products: the grid covers 1.5x the typical expert's rows */
    most = set_pick_ops(*set, true, &part);
    if (part.n && most > 0) {
        launch_shape<NARROW_SHAPE>(k, &part, set_grouped_tiles(part, most, N::bn), max_groups);
    }
}
