/* The BF16 products of many tokens on wgmma with the activations packed
 * once a launch (sm_90a): the products of cuda_matmul_wgmma.cu, the same
 * bits (cuda_mma.h: the slice contract), without splitting floats inside
 * the GEMM's loop.
 *
 * Why: that GEMM copies each 32-wide step's activations as floats (twice
 * the bytes of bf16) and splits them into bf16 between a barrier and the
 * next step's instructions; under ncu its 4096-token products ran at
 * ~150-215 TFLOPS with under half an eligible warp a scheduler. Here
 * pack_activations_kernel splits each distinct activation matrix of a
 * launch once (hi, and lo unless hi_only), straight into the order the
 * instructions read, and the GEMM's loop only copies and multiplies.
 *
 * The packed layout: for each group of 8 rows of x and each 32-wide step
 * s, a run of parts x 512 bytes: part p (0 hi, 1 lo) at 512 p, in it the
 * step's four 16-byte chunks (u, c), 128 (2u + c) on, of each of the 8
 * rows, 16 (row % 8) on. Chunk (u, c) of a row holds 4 pairs, pair i at
 * byte 4i being k = 32 s + 8 i + 4 u + 2 c and the next: the k that
 * mma_step's fragments put in slots 2i, 2i + 1 (c = 0) and 8 + 2i, 9 + 2i
 * (c = 1) of k16 half u. So 128 bytes are one core matrix of 8 tokens, as
 * B's descriptor takes them (cuda_wgmma_tile.h: WGMMA_LBO, WGMMA_SBO); k
 * past the columns is zero.
 *
 * The rows layout (LAGUNA_CUDA_MOE_ROWS_PACKED=1, off by default, not yet
 * run on a GPU): the experts' gate / up read their pairs' rows straight
 * from h packed once (16 MB at 4096 tokens of XS.2 instead of 134 MB a
 * pair), so a token can come from any row: row r's part p is a run of
 * steps x 64 bytes, (r parts + p) x steps x 64 bytes on, its step s's
 * chunks (u, c) as above, 64 s + 16 (2u + c) on. A tile's tokens' rows are
 * a table in shared memory (MAPPED); B is held in the 128-byte swizzle
 * (wgmma_desc_sw128): a token's 128 bytes of a stage's part, one row, so 8
 * lanes copy one token's whole line and a warp's writes fill whole rows of
 * banks. (Row by row without the swizzle, a warp copying 8 tokens' 64-byte
 * halves, ran -16% on the whole prompt: docs/performance.md, forty-first
 * pass.)
 *
 * The GEMM: a block is two warpgroups, 128 weight rows (64 each, as A from
 * registers, loaded as mma_step's lanes load them) x BN tokens (B, shared
 * memory). A stage is two steps (weights, then the step's B tiles of half
 * u and part p at (u parts + p) x BN x 32 bytes), copied by cp.async into
 * a ring of about 192 KB; stage st + STAGES - 2 is copied while st is
 * multiplied. Token tiles run along the grid's x, the ops' row blocks
 * along y (the blocks running together share a few row blocks' weights),
 * listed experts along z. */
#include <limits.h>
#include <stdlib.h>

#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_mma.h"
#include "backend/cuda/cuda_wgmma.h"
#include "backend/cuda/cuda_wgmma_tile.h"

/* Bytes of one 32-wide step of one group of 8 packed rows. */
__host__ __device__ static constexpr int packed_run(bool lo) { return lo ? 1024 : 512; }

/* Bytes of the packed form of rows x cols. */
static size_t packed_bytes(int rows, int cols, bool lo) {
    return (size_t)((rows + 7) / 8) * (size_t)((cols + 31) / 32) * packed_run(lo);
}

/* A warp packs one step of one group of 8 rows: lane (row r = lane / 4,
 * i = lane % 4) reads the row's k 32 s + 8 i .. + 7 and writes pair i of
 * each chunk; the warp's writes of a chunk make one 128-byte run. Row r is
 * x's row r, or with a map (an op's x_map) its row map[r] / div: the
 * experts' pairs packed straight from h, never gathered. */
template <bool LO>
__global__ void __launch_bounds__(256) pack_activations_kernel(const float *x, const int32_t *map, int div, int rows,
                                                               int cols, uint8_t *xp) {
    lg_cuda_kernel_begin();
    int steps = (cols + 31) / 32, lane = threadIdx.x & 31;
    long item = (long)blockIdx.x * 8 + (threadIdx.x >> 5);
    if (item >= (long)((rows + 7) / 8) * steps) return;
    int group = (int)(item / steps), s = (int)(item % steps);
    int row = 8 * group + (lane >> 2), k = 32 * s + 8 * (lane & 3);
    float v[8];
    int from = map && row < rows ? map[row] / div : row;
    const float *src = x + (size_t)from * cols + k;
    if (row < rows && k + 8 <= cols) {
        float4 a = *(const float4 *)src, b = *(const float4 *)(src + 4);
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
#pragma unroll
        for (int e = 0; e < 8; e++) v[e] = row < rows && k + e < cols ? src[e] : 0.0f;
    }
    uint8_t *run = xp + (size_t)item * packed_run(LO) + 16 * (lane >> 2) + 4 * (lane & 3);
#pragma unroll
    for (int uc = 0; uc < 4; uc++) { /* chunk (u, c) = (uc / 2, uc % 2) takes k 4u + 2c, + 1 */
        uint32_t hi, lo;
        split_pair(v[2 * uc], v[2 * uc + 1], &hi, &lo);
        *(uint32_t *)(run + 128 * uc) = hi;
        if (LO) *(uint32_t *)(run + 512 + 128 * uc) = lo;
    }
}

/* Bytes of one packed row of cols columns in the rows layout. */
__host__ __device__ __forceinline__ size_t packed_row_bytes(int cols, bool lo) {
    return (size_t)((cols + 31) / 32) * (lo ? 128 : 64);
}

/* The rows layout: a warp packs one step of 8 rows, lane (row r = lane / 4,
 * chunk uc = lane % 4) reading the row's 8 k of the chunk (a quad reads the
 * step's 128 bytes) and writing the chunk's 16 bytes of each part. */
template <bool LO>
__global__ void __launch_bounds__(256) pack_rows_kernel(const float *x, int rows, int cols, uint8_t *xp) {
    lg_cuda_kernel_begin();
    int steps = (cols + 31) / 32, lane = threadIdx.x & 31, uc = lane & 3;
    long item = (long)blockIdx.x * 8 + (threadIdx.x >> 5);
    if (item >= (long)((rows + 7) / 8) * steps) return;
    int row = 8 * (int)(item / steps) + (lane >> 2), s = (int)(item % steps);
    if (row >= rows) return;
    int k0 = 32 * s + 4 * (uc >> 1) + 2 * (uc & 1); /* pair i: k0 + 8 i and the next */
    const float *src = x + (size_t)row * cols;
    uint32_t hi[4], lo[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int k = k0 + 8 * i;
        split_pair(k < cols ? src[k] : 0.0f, k + 1 < cols ? src[k + 1] : 0.0f, &hi[i], &lo[i]);
    }
    uint8_t *dst = xp + (size_t)row * packed_row_bytes(cols, LO) + (size_t)s * 64 + 16 * uc;
    *(uint4 *)dst = make_uint4(hi[0], hi[1], hi[2], hi[3]);
    if (LO) *(uint4 *)(dst + (size_t)steps * 64) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
}

#define PACKED_SMEM (192 * 1024)

template <int BN, bool LO> struct packed_shape {
    static constexpr int parts = LO ? 2 : 1, run = packed_run(LO);
    static constexpr int threads = 256, bm = 128, bn = BN;
    static constexpr int w_step = bm * 64;                /* a step's weights: 128 rows of 32 bf16 */
    static constexpr int tile_bytes = bn * 32;            /* one instruction's B: 16 k slots x BN tokens */
    static constexpr int half_bytes = parts * tile_bytes; /* half u's tiles start u half_bytes on */
    static constexpr int step_bytes = w_step + 2 * half_bytes, stage_bytes = 2 * step_bytes;
    static constexpr int stages = PACKED_SMEM / stage_bytes, smem = stages * stage_bytes;
    /* MAPPED: a stage is the two steps' weights, then each part's tile of
     * BN rows of 128 bytes (the same bytes); the row table after the ring,
     * the whole 1024-byte aligned (extra). w1: the stage's second step's
     * weights; b0: its first B tile */
    static constexpr int rows_tile = bn * 128, rows_extra = 1024 + bn * 4;
    template <bool MAPPED> static constexpr int w1 = MAPPED ? w_step : step_bytes;
    template <bool MAPPED> static constexpr int b0 = MAPPED ? 2 * w_step : w_step;
    static constexpr int w_loads = 2 * bm * 4 / threads, x_loads = 2 * parts * 4 * bn / threads;
    static_assert(stages >= 3, "a stage is copied while the one before it is multiplied");
    static_assert(2 * bm * 4 % threads == 0 && 2 * parts * 4 * bn % threads == 0, "whole rounds");
};

/* A thread's share of every stage's 16-byte copies, worked out once a
 * token tile. Copy v of a thread is copy 0 moved on by 32 weight rows, or
 * by 32 / parts tokens (4 / parts groups of 8): so a source at the next
 * stage to copy, a shared address in stage 0 and a count of the copies
 * that fall within the rows (w_n) or the tokens (x_n); w_k, the chunk's k
 * within a stage, and x_j, its step, decide the rest (past K, past the
 * steps: zero-filled, nothing read). */
template <typename S> struct packed_copies {
    static constexpr int x_tokens = 32 / S::parts; /* tokens between a thread's activation copies */
    const uint8_t *w, *x;
    size_t w_stride, x_stride;
    const int *x_rows; /* MAPPED: the tile's rows table; x_t the thread's first token in it */
    uint32_t w_dst, x_dst;
    int w_k, x_j, w_n, x_n, x_t;
};

/* MAPPED (the rows layout): 8 lanes copy a token's 128 bytes of a part,
 * chunk pc (step pc / 4) to its swizzled place in the token's row of the
 * tile; copy v's token is x_t + v x_tokens, its packed row from the table,
 * x_stride bytes a row. */
template <typename S, bool MAPPED>
__device__ __forceinline__ void packed_plan(packed_copies<S> &c, uint32_t stage0, const matmul_args &a,
                                            const uint8_t *w, int r0, int row0, int nt, int steps,
                                            const int *rows_table) {
    using C = packed_copies<S>;
    int row = threadIdx.x >> 3, cc = threadIdx.x & 7; /* cc: step cc / 4, lane q = cc % 4 */
    c.w_n = max(0, (a.rows - r0 - row + 31) / 32);
    c.w = w + (size_t)(c.w_n ? r0 + row : 0) * a.row_bytes + 16 * cc; /* a source read or not, within the matrix */
    c.w_stride = 32 * a.row_bytes;
    c.w_dst = stage0 + (cc >> 2) * S::template w1<MAPPED> + row * 64 + (cc & 3) * 16;
    c.w_k = 8 * cc;
    if constexpr (MAPPED) {
        int pc = threadIdx.x & 7, rest = threadIdx.x >> 3, p = rest % S::parts, t = rest / S::parts;
        c.x_n = max(0, (nt - t + C::x_tokens - 1) / C::x_tokens);
        c.x = a.xp + (size_t)p * steps * 64 + pc * 16;
        c.x_stride = packed_row_bytes(a.cols, S::parts == 2);
        c.x_rows = rows_table, c.x_t = t;
        c.x_dst = stage0 + S::template b0<MAPPED> + p * S::rows_tile + t * 128 + ((pc ^ (t & 7)) << 4);
        c.x_j = pc >> 2;
        return;
    }
    /* thread order: row in group, chunk, part, step, group: 8 lanes copy
     * one 128-byte run of the packed form */
    int tr = threadIdx.x & 7, uc = (threadIdx.x >> 3) & 3, rest = threadIdx.x >> 5;
    int p = rest % S::parts, j = (rest / S::parts) & 1, grp = (rest / S::parts) >> 1;
    int t = 8 * grp + tr;
    c.x_n = max(0, (nt - t + C::x_tokens - 1) / C::x_tokens);
    int r = row0 + (c.x_n ? t : 0);
    c.x = a.xp + ((size_t)(r >> 3) * steps + j) * S::run + 512 * p + 128 * uc + 16 * (r & 7);
    c.x_stride = (size_t)(C::x_tokens / 8) * steps * S::run;
    c.x_dst = stage0 + j * S::step_bytes + S::w_step + (uc >> 1) * S::half_bytes + p * S::tile_bytes +
              grp * WGMMA_SBO + (uc & 1) * WGMMA_LBO + tr * 16;
    c.x_j = j;
}

/* Issues stage st's copies into the stage at byte offset slot, and moves
 * the sources on to stage st + 1. */
template <typename S, bool MAPPED>
__device__ __forceinline__ void packed_load(packed_copies<S> &c, uint32_t slot, int st, int cols, int steps) {
    using C = packed_copies<S>;
    bool w_in = 64 * st + c.w_k < cols, x_in = 2 * st + c.x_j < steps;
#pragma unroll
    for (int v = 0; v < S::w_loads; v++) {
        bool ok = w_in && v < c.w_n;
        cp_async16_n_shared(c.w_dst + slot + v * 32 * 64, ok ? c.w + v * c.w_stride : c.w, ok ? 16 : 0);
    }
#pragma unroll
    for (int v = 0; v < S::x_loads; v++) {
        bool ok = x_in && v < c.x_n;
        if constexpr (MAPPED) {
            const uint8_t *src = ok ? c.x + (size_t)c.x_rows[c.x_t + v * C::x_tokens] * c.x_stride : c.x;
            cp_async16_n_shared(c.x_dst + slot + v * C::x_tokens * 128, src, ok ? 16 : 0);
        } else {
            cp_async16_n_shared(c.x_dst + slot + v * (C::x_tokens / 8) * WGMMA_SBO, ok ? c.x + v * c.x_stride : c.x,
                                ok ? 16 : 0);
        }
    }
    c.w += 128;
    c.x += MAPPED ? 128 : 2 * S::run; /* two steps of a part */
}

/* One token tile of nt tokens from row0 of the op: its stages copied and
 * multiplied on instructions IN tokens wide, the tile's BN or 64 when a
 * 128-token tile holds no more (an expert's last rows often do): half the
 * instructions' work, and each token's sums the same at either width (the
 * narrow accumulators are the wide ones' first half, cuda_wgmma.h). y is
 * the tile's first token's output row.
 *
 * OVERLAP: a step's instructions wait only for the step before the last
 * (wgmma_wait<1>), so the tensor cores have a step queued while the
 * warpgroup passes the barrier, issues copies and loads the next weights;
 * without it each stage waits for everything before loading (the drain
 * this removes). The same instructions go into the same accumulators in
 * the same order, so the bits are the same. The weights' registers are
 * safe to load again: wa0 / wb0 (step 2 st) were last read by step 2 st - 2
 * and wa1 / wb1 by step 2 st - 1, both done after the wait before their
 * loads; and a ring slot is copied into only after every warpgroup's
 * wait<1> of the barrier's stage, which covers its stage st - 2. Only for
 * slices of an even number of steps (overlap_takes): a slice's end inside
 * a stage has ptxas serialise every wgmma of the kernel (C7513). With an
 * odd number of steps the last stage's second step multiplies the zeros
 * its copies filled in, which adds exact zeros to the last slice. */
template <typename S, bool LO, int IN, bool OVERLAP, bool MAPPED>
__device__ __forceinline__ void packed_tile(const matmul_args &a, const uint8_t *w, uint8_t *smem, uint32_t smem0,
                                            int r0, int row0, int nt, float *y, int steps, int per_slice) {
    constexpr int ND = IN / 2, STAGES = S::stages; /* ND: accumulators a thread holds */
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    int row_base = 64 * (threadIdx.x >> 7) + 16 * ((threadIdx.x >> 5) & 3); /* the warp's 16 rows in the block */
    int n_stages = (steps + 1) / 2;
    auto slot = [](int st) { return (uint32_t)((unsigned)st % STAGES) * S::stage_bytes; };
    constexpr int W1 = S::template w1<MAPPED>;
    int *rows_table = (int *)(smem + S::smem);                /* MAPPED: the tile's tokens' packed rows */
    packed_copies<S> copies;
    packed_plan<S, MAPPED>(copies, smem0, a, w, r0, row0, nt, steps, rows_table);
    float acc[ND], total[ND];
#pragma unroll
    for (int e = 0; e < ND; e++) acc[e] = 0.0f, total[e] = -0.0f;
    __syncthreads(); /* the previous tile's stages and rows are done with */
    if constexpr (MAPPED) {
        for (int t = threadIdx.x; t < S::bn; t += S::threads)
            rows_table[t] = t < nt ? a.x_map[row0 + t] / a.x_map_div : 0;
        __syncthreads();
    }
    /* step j of a stage whose B starts at b */
    auto multiply = [&](uint4 wa, uint4 wb, uint32_t b, int j) {
        if constexpr (MAPPED) wgmma_step_sw128<IN, LO>(acc, wa, wb, b + 64 * j, S::rows_tile);
        else wgmma_step<IN, LO, S::bn>(acc, wa, wb, b + j * S::step_bytes, S::half_bytes);
    };
#pragma unroll
    for (int st = 0; st < STAGES - 2; st++) {
        if (st < n_stages) packed_load<S, MAPPED>(copies, slot(st), st, a.cols, steps);
        cp_async_commit();
    }
    for (int st = 0; st < n_stages; st++) {
        cp_async_wait<STAGES - 3>(); /* stage st has landed (this thread's copies), */
        wgmma_fence_smem();          /* seen by wgmma's reads (the async proxy) */
        if constexpr (OVERLAP) wgmma_wait<1>(); /* steps up to 2 st - 2 done */
        /* everyone's; and every warpgroup is done with stage st - 2
         * (above, or below in stage st - 1), so its slot takes stage
         * st + STAGES - 2 */
        __syncthreads();
        if (st + STAGES - 2 < n_stages) packed_load<S, MAPPED>(copies, slot(st + STAGES - 2), st + STAGES - 2, a.cols, steps);
        cp_async_commit();
        /* wgmma reads A's registers while it runs: the step that last read
         * them must be done before they are loaded again (PTX ISA: writing
         * them earlier is undefined) */
        if constexpr (!OVERLAP) wgmma_wait<0>();
        const uint8_t *ws = smem + slot(st);
        uint32_t b = smem0 + slot(st) + S::template b0<MAPPED>;
        const uint8_t *wr0 = ws + (row_base + g) * 64 + q * 16, *wr1 = wr0 + 8 * 64;
        uint4 wa0 = *(const uint4 *)wr0, wb0 = *(const uint4 *)wr1, wa1, wb1;
        if constexpr (!OVERLAP) wa1 = *(const uint4 *)(wr0 + W1), wb1 = *(const uint4 *)(wr1 + W1);
        int s = 2 * st;
        if (s > 0 && s % per_slice == 0) wgmma_end_slice<ND>(acc, total);
        multiply(wa0, wb0, b, 0);
        if constexpr (OVERLAP) { /* slices of whole stages: no slice ends here */
            wgmma_wait<1>(); /* step 2 st - 1, the last to read wa1 / wb1, is done */
            wa1 = *(const uint4 *)(wr0 + W1), wb1 = *(const uint4 *)(wr1 + W1);
            multiply(wa1, wb1, b, 1);
        } else if (s + 1 < steps) {
            if ((s + 1) % per_slice == 0) wgmma_end_slice<ND>(acc, total);
            multiply(wa1, wb1, b, 1);
        }
    }
    wgmma_end_slice<ND>(acc, total);
    wgmma_store_tile<ND>(a, y, r0 + row_base, nt, total);
}

/* half: 128-token tiles of at most 64 tokens on 64-wide instructions (the
 * 192-token tiles keep one width: both in one kernel spill). OVERLAP and
 * MAPPED: see packed_tile and the rows layout (top). */
template <int BN, bool LO, bool OVERLAP, bool MAPPED>
__global__ void __launch_bounds__(256, 1) wgmma_packed_kernel(const __grid_constant__ matmul_set set, bool half) {
    using S = packed_shape<BN, LO>;
    lg_cuda_kernel_begin();
    extern __shared__ __align__(128) uint8_t smem_raw[];
    int block_row, t_begin, t_count;
    const matmul_args &a = set.op[set_op_of(set, (int)blockIdx.y, &block_row)];
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    int r0 = block_row * S::bm;
    int steps = (a.cols + 31) / 32, per_slice, n_slices;
    slicing(a.cols, &per_slice, &n_slices);
    /* the swizzled tiles need 1024-byte aligned atoms (MAPPED: room allowed) */
    uint32_t raw0 = smem_addr(smem_raw), smem0 = MAPPED ? (raw0 + 1023) & ~1023u : raw0;
    uint8_t *smem = smem_raw + (smem0 - raw0);
    for (int t0 = blockIdx.x * BN; t0 < t_count; t0 += gridDim.x * BN) {
        int nt = min(BN, t_count - t0);
        float *y = a.y + (size_t)(t_begin + t0) * a.rows;
        if (BN == 128 && half && nt <= 64)
            packed_tile<S, LO, 64, OVERLAP, MAPPED>(a, w, smem, smem0, r0, t_begin + t0, nt, y, steps, per_slice);
        else
            packed_tile<S, LO, BN, OVERLAP, MAPPED>(a, w, smem, smem0, r0, t_begin + t0, nt, y, steps, per_slice);
    }
}

/* Packs, once for the launch, each distinct activation matrix of the ops
 * of s (every op has x_rows: launch_packed; a mapped op's rows read from
 * x_from) into the scratch space and points the ops' xp at it. rows: every
 * op is mapped and its x_from is packed in the rows layout (one row a
 * token: x_rows / x_map_div of them). False, with nothing launched, without
 * room. */
static bool pack_set(lg_cuda_ctx *k, matmul_set *s, bool lo, bool rows) {
    matmul_set from = *s; /* what is packed */
    for (int i = 0; rows && i < from.n; i++) {
        matmul_args &a = from.op[i];
        a.x = a.x_from, a.x_rows = (a.x_rows + a.x_map_div - 1) / a.x_map_div;
    }
    int which[SET_MAX], owner[SET_MAX];
    int n_x = set_distinct_x(from, [](const matmul_args &) { return true; }, which, owner);
    size_t at[SET_MAX], need = 0;
    for (int j = 0; j < n_x; j++) {
        const matmul_args &a = from.op[owner[j]];
        at[j] = need;
        need += ((rows ? (size_t)a.x_rows * packed_row_bytes(a.cols, lo) : packed_bytes(a.x_rows, a.cols, lo)) + 255) /
                256 * 256;
    }
    uint8_t *base = n_x ? (uint8_t *)lg_cuda_scratch(k, need) : NULL;
    if (!base) return false;
    for (int j = 0; j < n_x; j++) {
        const matmul_args &a = from.op[owner[j]];
        long warps = (long)((a.x_rows + 7) / 8) * ((a.cols + 31) / 32);
        dim3 grid((unsigned)((warps + 7) / 8));
        const float *x = a.x_map ? a.x_from : a.x;
        if (rows)
            lg_cuda_launch(k, lo ? pack_rows_kernel<true> : pack_rows_kernel<false>, grid, 256, 0, x, a.x_rows, a.cols,
                           base + at[j]);
        else if (lo)
            lg_cuda_launch(k, pack_activations_kernel<true>, grid, 256, 0, x, a.x_map, a.x_map_div, a.x_rows, a.cols,
                           base + at[j]);
        else
            lg_cuda_launch(k, pack_activations_kernel<false>, grid, 256, 0, x, a.x_map, a.x_map_div, a.x_rows, a.cols,
                           base + at[j]);
    }
    for (int i = 0; i < s->n; i++) s->op[i].xp = base + at[which[i]];
    return true;
}

/* Whether a grouped launch takes the rows layout: every op reads its rows
 * through a map. LAGUNA_CUDA_MOE_ROWS_PACKED=1 only: off by default, not
 * yet run on a GPU (docs/performance.md, forty-first pass). */
static bool rows_layout_takes(const matmul_set &s) {
    static const bool on = getenv("LAGUNA_CUDA_MOE_ROWS_PACKED") && atoi(getenv("LAGUNA_CUDA_MOE_ROWS_PACKED")) == 1;
    bool all = on && s.n > 0;
    for (int i = 0; i < s.n; i++) all = all && s.op[i].x_map && s.op[i].x_map_div > 0;
    return all;
}

template <int BN, bool MAPPED> static void (*packed_kernel(bool lo, bool overlap))(matmul_set, bool) {
    if (lo) return overlap ? wgmma_packed_kernel<BN, true, true, MAPPED> : wgmma_packed_kernel<BN, true, false, MAPPED>;
    return overlap ? wgmma_packed_kernel<BN, false, true, MAPPED> : wgmma_packed_kernel<BN, false, false, MAPPED>;
}

/* Whether a launch runs packed_tile's OVERLAP form: its slices are whole
 * stages. LAGUNA_CUDA_WGMMA_OVERLAP=0: never (measuring). */
static bool overlap_takes(const matmul_set &s) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_WGMMA_OVERLAP");
    for (int i = 0; i < s.n && on; i++) {
        int per_slice, n_slices;
        slicing(s.op[i].cols, &per_slice, &n_slices);
        if (per_slice % 2) return false;
    }
    return on;
}

template <int BN> static bool launch_packed(lg_cuda_ctx *k, matmul_set *s, int tiles, int blocks_z) {
    bool lo = !s->op[0].hi_only; /* one setting for the whole backend */
    for (int i = 0; i < s->n; i++)
        if (s->op[i].x_rows <= 0) return false;
    if (set_number_blocks(s, 128) == 0 || tiles <= 0) return true; /* nothing to do */
    bool rows = BN != 192 && rows_layout_takes(*s), overlap = overlap_takes(*s);
    if (!pack_set(k, s, lo, rows)) return false;
    void (*kernel)(matmul_set, bool) = packed_kernel<BN, false>(lo, overlap);
    size_t smem = lo ? packed_shape<BN, true>::smem : packed_shape<BN, false>::smem;
    if constexpr (BN != 192) {
        if (rows) kernel = packed_kernel<BN, true>(lo, overlap), smem += packed_shape<BN, true>::rows_extra;
    }
    /* LAGUNA_CUDA_WGMMA_HALF_TILES=0: short tiles at full width (measuring) */
    static const bool half = lg_cuda_switch_on("LAGUNA_CUDA_WGMMA_HALF_TILES");
    lg_cuda_allow_smem(kernel, smem);
    lg_cuda_launch(k, kernel, dim3((unsigned)tiles, s->first_block[s->n], blocks_z), 256, smem, *s, half);
    return true;
}

/* On unless LAGUNA_CUDA_WGMMA_PACKED=0 (the GEMM before, for measuring): on
 * an H100, prefill of 4096 tokens with bf16 activations +13-15% over it
 * (docs/performance.md, thirty-fifth pass). */
bool lg_cuda_packed_enabled(void) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_WGMMA_PACKED");
    return on;
}

/* Plain products in tiles of 192 tokens: each weight tile read 1.5x fewer
 * times from L2 than with 128, where these products ran bound by L2 (ncu,
 * H100, 4096 tokens: ~5.4-6.1 TB/s of L2 traffic at any size); q/k/v/g 585
 * -> 500 us, o_proj 405 -> 363, prefill of 4096 +2.7% with bf16
 * activations (docs/performance.md, thirty-sixth pass). 252 registers, no
 * spills. LAGUNA_CUDA_WGMMA_PLAIN_BN=128: the tiles before (measuring). */
bool lg_cuda_packed_plain(lg_cuda_ctx *k, matmul_set *part, int most) {
    static const bool narrow = getenv("LAGUNA_CUDA_WGMMA_PLAIN_BN") && atoi(getenv("LAGUNA_CUDA_WGMMA_PLAIN_BN")) == 128;
    if (narrow) return launch_packed<128>(k, part, (most + 127) / 128, 1);
    return launch_packed<192>(k, part, (most + 191) / 192, 1);
}

bool lg_cuda_packed_grouped(lg_cuda_ctx *k, matmul_set *part, int most, int max_groups, int bn) {
    if (bn == 128) return launch_packed<128>(k, part, set_grouped_tiles(*part, most, 128), max_groups);
    return launch_packed<64>(k, part, set_grouped_tiles(*part, most, 64), max_groups);
}
