/* BF16 plain products of 17 to 64 tokens (batched decoding) with K's slices
 * in blocks of their own, so that a block reads few activations for the
 * weights it reads.
 *
 * Why: the one-shot blocks (cuda_matmul_mma.cu) give a block one 16-row
 * tile and every slice of K, its 8 warps one slice each, so a block reads
 * all of its tokens' K activations (float32) for 16 rows of weights: at 32
 * tokens 4 bytes of activations for each weight byte, and with one block
 * per group of 8 tokens the weights 4 times over. ncu on an H100, XS.2 at
 * 32 sequences: q/k/v/g read 276 MB from L2 for 42.5 MB of weights, 61 us
 * (~0.7 TB/s); o_proj 177 MB for 33 MB, 60 us.
 *
 * Here a block takes ONE slice of K (slicing(), cuda_mma.h) of 8 row tiles
 * (128 rows) for all the tokens: its warps share the slice's activations,
 * staged in shared memory a chunk of SLICED_CHUNK steps (32 k each) at a
 * time, and each warp takes one tile, with the accumulators of every token
 * group. A warp copies its weights with cp.async into a ring of SLICED_RING
 * steps of shared memory: the first SLICED_RING are issued before the
 * programmatic-launch wait (weights never depend on the kernel before) and
 * a slot is refilled as soon as its lanes have read it. The activations'
 * chunks ride the same copy groups: thread i's group s holds its pieces of
 * warp i / 32's step s and, when s starts a chunk, of that chunk, so one
 * cp.async count covers both (the first SLICED_RING / SLICED_CHUNK chunks,
 * which depend on the previous kernel, are one group after the wait), and
 * one chunk buffer more than the ring holds chunks keeps a chunk from being
 * overwritten before every warp has passed the barrier that opens the
 * next.
 *
 * The 8 blocks of a row range (one a slice) form a thread block cluster:
 * each parks its slice's sums in its own shared memory, and after the
 * cluster's barrier each adds an eighth of the range's outputs over the 8
 * blocks' shared memory, slice by slice left to right, then the bias. (A
 * first form parked the sums in global scratch for the range's last block
 * to add, as an atomic counter told: that block's serial tail and the sums'
 * round trips through L2, ~100 MB for lm_head's 32 rows, left q/k/v/g at 57
 * us and made lm_head 2.6x slower.)
 *
 * The weights first streamed through registers (a lane 4 steps of its
 * tile's, two warps a tile for o_proj's few row ranges, which read its
 * tiles twice): ncu at 32 sequences, H100, q/k/v/g 47.4 us (~0.95 TB/s),
 * o_proj 56.8 us, long-scoreboard stalls 30%. The ring against it (H100,
 * XS.2 after 1024, both with SLICED_MIN_COLS): 32 / 64 sequences 1160.7 /
 * 1606.1 against 1157.2-1160.8 / 1588.7-1595.1 tok/s.
 *
 * The same units, the same mma chain per slice and the same slice sums in
 * the same order as every other product kernel: the same bits
 * (test_matmul_batch_invariant). */
#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_mma.h"

#include <cooperative_groups.h>

#define SLICED_WARPS 8 /* a row tile each: 128 rows a block */
#define SLICED_CLUSTER MMA_MAX_SLICES /* blocks of a row range: one a slice (fewer slices: idle ones) */
#define SLICED_XPAD 4 /* floats after a token's staged chunk: rows 4 banks apart */
#define SLICED_UNIT 1024 /* bytes of a tile's step: 16 rows x 32 k of bf16 */

/* A warp's ring of weights and the activations' chunks, in steps: 58 KB of
 * shared memory a block at 17-32 tokens (three blocks an SM), 84 KB at
 * 33-64 (two). Measured beside it (H100, XS.2 after 1024, 32 / 64
 * sequences): rings of 8 (128 KB of weights in flight an SM) 1150.6 /
 * 1606.0, rings of 16 in chunks of 4 (a block an SM) 1088.9 / 1581.4
 * (without SLICED_MIN_COLS), 4 warps of two tiles each (an activation's
 * split serves both) 1158.2 / 1607.3, this 1160.7 / 1606.1. */
#define SLICED_RING 4
#define SLICED_CHUNK 2
static_assert(SLICED_RING % SLICED_CHUNK == 0, "a chunk's activations ride with one step's weights");

/* A block's op, row range and slice (the blocks of a range are a cluster,
 * its rank the slice). */
struct sliced_block {
    const matmul_args *a;
    int range, slice, n_slices, per_slice;
};

__device__ __forceinline__ sliced_block sliced_block_of(const matmul_set &set) {
    sliced_block b;
    int block_x, op = set_op_of_block(set, &block_x);
    b.a = &set.op[op];
    slicing(b.a->cols, &b.per_slice, &b.n_slices);
    b.range = block_x / SLICED_CLUSTER, b.slice = block_x % SLICED_CLUSTER;
    return b;
}

/* A block's shared memory for 8 NT tokens: XB chunk buffers of T tokens'
 * activations, XS floats a token (at the end the slice's sums, 128 rows x
 * T tokens), then each warp's ring. */
template <int NT> struct sliced_shape {
    static constexpr int T = 8 * NT, XS = SLICED_CHUNK * 32 + SLICED_XPAD, XB = SLICED_RING / SLICED_CHUNK + 1;
    static constexpr size_t x_floats = (size_t)XB * T * XS;
    static_assert(x_floats >= (size_t)SLICED_WARPS * 16 * T, "the sums fit where the activations were");
    static constexpr size_t smem = sizeof(float) * x_floats + (size_t)SLICED_WARPS * SLICED_RING * SLICED_UNIT;
};

/* A chunk's activations (k from kc, SLICED_CHUNK steps, up to k1) of the
 * tokens below nt into xs[token][k - kc] (uncommitted cp.async copies);
 * zeros past the tokens and past k1. */
template <int NT>
__device__ __forceinline__ void sliced_stage_x(const matmul_args &a, int nt, int kc, int k1, float *xs) {
    constexpr int PIECES = SLICED_CHUNK * 32 / 4, XS = sliced_shape<NT>::XS; /* 16-byte pieces a token */
    for (int i = threadIdx.x; i < 8 * NT * PIECES; i += blockDim.x) {
        int t = i / PIECES, p = i % PIECES, k = kc + 4 * p;
        bool in = t < nt && k < k1;
        const float *src = in ? a.x + (size_t)t * a.cols + k : a.x;
        cp_async16_n(xs + t * XS + 4 * p, src, in ? 16 : 0);
    }
}

/* One step (k from k, 32 wide, up to k1) of rows r0 .. r0 + 15 into unit
 * (16 rows x 64 bytes; lane (g, q) later reads rows g and g + 8 at byte
 * 16 q: eight lanes a contiguous 128 bytes), by the calling warp as
 * uncommitted cp.async copies; zeros past the rows and k1. */
__device__ __forceinline__ void sliced_stage_w(const matmul_args &a, int r0, int k, int k1, uint8_t *unit) {
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int piece = lane + 32 * h, r = r0 + (piece >> 2), kk = k + 8 * (piece & 3);
        bool in = r < a.rows && kk < k1;
        const uint8_t *src = in ? a.w + (size_t)r * a.row_bytes + (size_t)kk * 2 : a.w;
        cp_async16_n(unit + piece * 16, src, in ? 16 : 0);
    }
}

/* Parks a warp's sums of token group j of one row tile (tile: its index in
 * the block) at part[row in block][token] (T tokens a row). */
template <int NT> __device__ __forceinline__ void sliced_park(float *part, int tile, int j, const float *acc) {
    constexpr int T = 8 * NT;
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int e = 0; e < 4; e++) part[(tile * 16 + g + (e >= 2 ? 8 : 0)) * T + 8 * j + 2 * q + (e & 1)] = acc[e];
}

/* The end of a sliced block, once its slice's sums of its tiles are parked
 * (sliced_park): after the cluster's barrier, this block's eighth of the
 * range's outputs added over the 8 blocks' parked sums, slices left to
 * right, then the bias. */
template <int NT> __device__ __forceinline__ void sliced_sum_slices(const sliced_block &b, float *part, int nt) {
    constexpr int T = 8 * NT, R = SLICED_WARPS;
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    const matmul_args &a = *b.a;
    cluster.sync(); /* every slice's sums are parked */
    int outputs = R * 16 * nt, share = (outputs + SLICED_CLUSTER - 1) / SLICED_CLUSTER;
    int end = min(outputs, (b.slice + 1) * share);
    for (int i = b.slice * share + (int)threadIdx.x; i < end; i += blockDim.x) {
        int rr = i / nt, t = i % nt, row = b.range * R * 16 + rr;
        if (row >= a.rows) continue;
        float v = 0.0f;
        for (int sl = 0; sl < b.n_slices; sl++) {
            float pv = cluster.map_shared_rank(part, sl)[rr * T + t];
            v = sl == 0 ? pv : v + pv;
        }
        a.y[(size_t)t * a.rows + row] = v + (a.bias ? a.bias[row] : 0.0f);
    }
    cluster.sync(); /* no block leaves while another reads its shared memory */
}

template <int NT>
__global__ void __cluster_dims__(SLICED_CLUSTER, 1, 1) __launch_bounds__(SLICED_WARPS * 32, 2)
    mma_sliced_kernel(const __grid_constant__ matmul_set set) {
    using S = sliced_shape<NT>;
    constexpr int T = S::T, XS = S::XS, XB = S::XB, RING = SLICED_RING, CH = SLICED_CHUNK, UNIT = SLICED_UNIT;
    extern __shared__ __align__(16) float xbuf[]; /* [XB][T][XS] activations, then [warp][RING][UNIT bytes] */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    uint8_t *ring = (uint8_t *)(xbuf + S::x_floats) + (size_t)warp * RING * UNIT;
    sliced_block b = sliced_block_of(set);
    const matmul_args &a = *b.a;
    int r0 = (b.range * SLICED_WARPS + warp) * 16; /* the warp's tile */
    bool active = b.slice < b.n_slices;
    int k0 = b.slice * b.per_slice * 32, k1 = active ? min(a.cols, k0 + b.per_slice * 32) : k0;
    int steps = (k1 - k0 + 31) / 32;
    /* weights never depend on the previous kernel: the first RING steps before the wait */
    for (int t = 0; t < RING; t++) {
        if (t < steps) sliced_stage_w(a, r0, k0 + 32 * t, k1, ring + t * UNIT);
        cp_async_commit();
    }
    lg_cuda_kernel_begin();
    int nt = min(a.n_tokens, T);
    for (int c = 0; c < RING / CH; c++)
        if (c * CH < steps) sliced_stage_x<NT>(a, nt, k0 + c * CH * 32, k1, xbuf + (size_t)c * T * XS);
    cp_async_commit();
    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    for (int s = 0; s < steps; s++) {
        if (s == 0) cp_async_wait_all(); /* the first steps and chunks */
        else cp_async_wait<RING - 1>();  /* group s: step s (and chunk s / CH when s starts one) */
        if (s % CH == 0) __syncthreads(); /* the chunk is in for every warp; the chunk XB - 1 back is read */
        else __syncwarp();
        uint8_t *slot = ring + (s % RING) * UNIT;
        uint4 ua = *(const uint4 *)(slot + g * 64 + q * 16), ub = *(const uint4 *)(slot + (g + 8) * 64 + q * 16);
        __syncwarp(); /* every lane has read the step before its slot is refilled */
        int t = s + RING;
        if (t < steps) {
            sliced_stage_w(a, r0, k0 + 32 * t, k1, slot);
            if (t % CH == 0) sliced_stage_x<NT>(a, nt, k0 + t * 32, k1, xbuf + (size_t)((t / CH) % XB) * T * XS);
        }
        cp_async_commit();
        const float *xs = xbuf + (size_t)((s / CH) % XB) * T * XS;
        int u = s % CH;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            if (8 * j >= nt) continue;
            const float *xp = xs + (8 * j + g) * XS + 32 * u + 8 * q;
            mma_step(acc[j], ua, ub, mma_split(*(const float4 *)xp, *(const float4 *)(xp + 4)), !a.hi_only);
        }
    }
    cp_async_wait_all();
    __syncthreads(); /* every warp is done with the activations before the sums go there */
#pragma unroll
    for (int j = 0; j < NT; j++) sliced_park<NT>(xbuf, warp, j, acc[j]);
    sliced_sum_slices<NT>(b, xbuf, nt);
}

/* Which plain products of 9 to 64 tokens take these blocks: 17 tokens and
 * more, matrices of at most SLICED_MAX_ROWS rows and at least
 * SLICED_MIN_COLS columns. The one-shot blocks make up for their traffic at
 * 16 tokens (2 groups; H100, XS.2 after 1024, 872 against 859 tok/s here),
 * for lm_head's 100352 rows (147 us against 366 at 32 tokens) and for short
 * K: the shared expert's down (K = 512, 2 steps a slice) took 13.3 us for 2
 * MB here at 32 tokens under ncu, all latency; with it on the one-shot
 * blocks 32 / 64 sequences 1157.2-1160.8 / 1588.7-1595.1 against
 * 1149.9-1153.6 / 1572.7-1578.3 tok/s (the register form of the header comment). Measured
 * with every such product on the one-shot blocks: 32 / 64 sequences 1148 ->
 * 1197 / 1520 -> 1622 tok/s here. LAGUNA_CUDA_SLICED=0: never (measuring). */
#define SLICED_MIN_TOKENS 17
#define SLICED_MAX_ROWS 16384
#define SLICED_MIN_COLS 1024
bool lg_cuda_sliced_takes(const matmul_set &set, int max_tokens) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_SLICED");
    if (!on || max_tokens < SLICED_MIN_TOKENS || max_tokens > 8 * SLICED_CLUSTER) return false;
    for (int i = 0; i < set.n; i++)
        if (set.op[i].offsets || set.op[i].rows > SLICED_MAX_ROWS || set.op[i].cols < SLICED_MIN_COLS) return false;
    return true;
}

template <int NT> static void launch_nt(lg_cuda_ctx *k, matmul_set *set) {
    constexpr size_t smem = sliced_shape<NT>::smem;
    set->first_block[0] = 0;
    for (int i = 0; i < set->n; i++)
        set->first_block[i + 1] =
            set->first_block[i] + ((set->op[i].rows + 15) / 16 + SLICED_WARPS - 1) / SLICED_WARPS * SLICED_CLUSTER;
    if (set->first_block[set->n] == 0) return;
    lg_cuda_allow_smem(mma_sliced_kernel<NT>, smem);
    lg_cuda_launch(k, mma_sliced_kernel<NT>, dim3(set->first_block[set->n]), SLICED_WARPS * 32, smem, *set);
}

void lg_cuda_sliced_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens) {
    if (max_tokens <= 32) launch_nt<4>(k, set);
    else launch_nt<8>(k, set);
}
