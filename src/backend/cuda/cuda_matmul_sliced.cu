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
 * Here a block takes ONE slice of K (slicing(), cuda_mma.h) of R row tiles
 * for all the tokens: its warps share the slice's activations, staged in
 * shared memory a chunk of SLICED_CHUNK steps at a time (double-buffered),
 * and each warp streams its tile's weights for the slice through registers
 * (the next chunk's step loaded as soon as this chunk's is taken), with the
 * accumulators of every token group of its tile. The 8 blocks of a row
 * range (one a slice) form a thread block cluster: each parks its slice's
 * sums in its own shared memory, and after the cluster's barrier each adds
 * an eighth of the range's outputs over the 8 blocks' shared memory, slice
 * by slice left to right, then the bias. (A first form parked the sums in
 * global scratch for the range's last block to add, as an atomic counter
 * told: that block's serial tail and the sums' round trips through L2,
 * ~100 MB for lm_head's 32 rows, left q/k/v/g at 57 us and made lm_head 2.6x
 * slower.) ncu, same H100 and batch: q/k/v/g 46.8 us (129 MB from L2),
 * o_proj 39 us. The same units, the same mma chain per slice and the same
 * slice sums in the same order as every other product kernel: the same
 * bits (test_matmul_batch_invariant). */
#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_mma.h"

#include <cooperative_groups.h>

#define SLICED_WARPS 8
#define SLICED_CLUSTER MMA_MAX_SLICES /* blocks of a row range: one a slice (fewer slices: idle ones) */
#define SLICED_XPAD 4 /* floats after a token's staged chunk: rows 4 banks apart */

/* A block's activations are staged SLICED_CHUNK steps (32 k each) at a
 * time; a lane has that many steps of its tile's weights in flight (two
 * blocks an SM at most 128 registers; 8 steps and one block an SM decoded
 * 10% slower on the H100). */
#define SLICED_CHUNK 4
#define SLICED_XS (SLICED_CHUNK * 32 + SLICED_XPAD) /* floats a token's staged chunk takes */

/* Shared memory of a block: two chunks of 8 NT tokens' activations (at
 * the end the slice's sums, R x 16 rows x 8 NT tokens, fewer floats). */
template <int NT> static constexpr size_t sliced_smem() {
    static_assert(2 * SLICED_XS >= 8 * 16, "the sums fit where the activations were");
    return sizeof(float) * 2 * (size_t)(8 * NT) * SLICED_XS;
}

/* Row tiles a block takes. */
__host__ __device__ __forceinline__ int sliced_tiles(int wpt) { return SLICED_WARPS / wpt; }

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

/* The lane's weights at k .. k + 7 of rows r and r + 8 (r: its tile's row
 * g; k: 8q into a step); zeros past the rows and from k1 on. */
__device__ __forceinline__ void sliced_weights(const matmul_args &a, int r, int k, int k1, uint4 *wa, uint4 *wb) {
    *wa = *wb = make_uint4(0, 0, 0, 0);
    if (k >= k1) return;
    const uint8_t *row = a.w + (size_t)r * a.row_bytes + (size_t)k * 2;
    if (r < a.rows) *wa = __ldg((const uint4 *)row);
    if (r + 8 < a.rows) *wb = __ldg((const uint4 *)(row + 8 * a.row_bytes));
}

/* A chunk's activations (k from kc, SLICED_CHUNK steps, up to k1) of the
 * tokens below nt into xs[token][k - kc] as one cp.async group; zeros past
 * the tokens and past k1. */
template <int NT>
__device__ __forceinline__ void sliced_stage_x(const matmul_args &a, int nt, int kc, int k1, float *xs) {
    constexpr int PIECES = SLICED_CHUNK * 32 / 4; /* 16-byte pieces a token */
    for (int i = threadIdx.x; i < 8 * NT * PIECES; i += blockDim.x) {
        int t = i / PIECES, p = i % PIECES, k = kc + 4 * p;
        bool in = t < nt && k < k1;
        const float *src = in ? a.x + (size_t)t * a.cols + k : a.x;
        cp_async16_n(xs + t * SLICED_XS + 4 * p, src, in ? 16 : 0);
    }
    cp_async_commit();
}

template <int NT>
__global__ void __cluster_dims__(SLICED_CLUSTER, 1, 1) __launch_bounds__(SLICED_WARPS * 32, 2)
    mma_sliced_kernel(const __grid_constant__ matmul_set set, int wpt) {
    constexpr int CH = SLICED_CHUNK, XS = SLICED_XS, T = 8 * NT;
    extern __shared__ __align__(16) float xbuf[]; /* [2][T tokens][XS]; at the end the slice's sums [R * 16][T] */
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    sliced_block b = sliced_block_of(set);
    const matmul_args &a = *b.a;
    int R = sliced_tiles(wpt), tile = b.range * R + warp / wpt, jg = warp % wpt;
    int r = tile * 16 + g;
    bool active = b.slice < b.n_slices; /* a K of fewer slices leaves the last blocks idle */
    int k0 = b.slice * b.per_slice * 32, k1 = active ? min(a.cols, k0 + b.per_slice * 32) : k0;
    int steps = (k1 - k0 + 31) / 32, chunks = (steps + CH - 1) / CH;
    /* the first chunk's weights before the wait: they never depend on the previous kernel */
    uint4 wa[CH], wb[CH];
#pragma unroll
    for (int u = 0; u < CH; u++) sliced_weights(a, r, k0 + 32 * u + 8 * q, u < steps ? k1 : 0, &wa[u], &wb[u]);
    lg_cuda_kernel_begin();
    int nt = min(a.n_tokens, T);
    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    if (chunks > 0) sliced_stage_x<NT>(a, nt, k0, k1, xbuf);
    for (int c = 0; c < chunks; c++) {
        float *xs = xbuf + (c & 1) * T * XS;
        if (c + 1 < chunks) sliced_stage_x<NT>(a, nt, k0 + (c + 1) * CH * 32, k1, xbuf + ((c + 1) & 1) * T * XS);
        if (c + 1 < chunks) cp_async_wait<1>();
        else cp_async_wait_all();
        __syncthreads(); /* chunk c's activations are in */
#pragma unroll
        for (int u = 0; u < CH; u++) {
            int step = c * CH + u;
            if (step >= steps) break;
            uint4 ua = wa[u], ub = wb[u];
            int next = step + CH; /* this register's step in the next chunk, in flight while this one is used */
            sliced_weights(a, r, k0 + 32 * next + 8 * q, next < steps ? k1 : 0, &wa[u], &wb[u]);
#pragma unroll
            for (int j = 0; j < NT; j++) {
                if (j % wpt != jg || 8 * j >= nt) continue;
                const float *xp = xs + (8 * j + g) * XS + 32 * u + 8 * q;
                mma_step(acc[j], ua, ub, mma_split(*(const float4 *)xp, *(const float4 *)(xp + 4)), !a.hi_only);
            }
        }
        __syncthreads(); /* chunk c's buffer is read before chunk c + 2 is staged into it (or the sums) */
    }
    /* this slice's sums of the block's rows, part[row in block][token] */
    float *part = xbuf;
#pragma unroll
    for (int j = 0; j < NT; j++) {
        if (j % wpt != jg) continue;
#pragma unroll
        for (int e = 0; e < 4; e++)
            part[((warp / wpt) * 16 + g + (e >= 2 ? 8 : 0)) * T + 8 * j + 2 * q + (e & 1)] = acc[j][e];
    }
    cluster.sync(); /* every slice's sums are parked */
    /* this block's eighth of the range's outputs, its slices added left to right */
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

/* Which plain products of 9 to 64 tokens take these blocks: 17 tokens and
 * more, matrices of at most SLICED_MAX_ROWS rows. A lane holds 4 steps of
 * weights, 64 KB in flight an SM against the one-shot blocks' 192 KB, which
 * those make up for where their L2 traffic is not the limit: at 16 tokens
 * (2 groups; H100, XS.2 after 1024, 872 against 859 tok/s here) and for
 * lm_head's 100352 rows (147 us against 366 at 32 tokens). Measured there
 * with every such product here: 32 / 64 sequences 1148 -> 1197 / 1520 ->
 * 1622 tok/s. LAGUNA_CUDA_SLICED=0: never (measuring). */
#define SLICED_MIN_TOKENS 17
#define SLICED_MAX_ROWS 16384
bool lg_cuda_sliced_takes(const matmul_set &set, int max_tokens) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_SLICED");
    if (!on || max_tokens < SLICED_MIN_TOKENS || max_tokens > 8 * SLICED_CLUSTER) return false;
    for (int i = 0; i < set.n; i++)
        if (set.op[i].offsets || set.op[i].rows > SLICED_MAX_ROWS) return false;
    return true;
}

template <int NT> static void launch_nt(lg_cuda_ctx *k, matmul_set *set) {
    /* two warps a tile (half the rows a block) when one would leave fewer
     * than two blocks an SM (o_proj: 2048 rows) */
    long ranges8 = 0;
    for (int i = 0; i < set->n; i++) ranges8 += ((set->op[i].rows + 15) / 16 + 7) / 8;
    int wpt = ranges8 * SLICED_CLUSTER < 2L * lg_cuda_sm_count() ? 2 : 1, R = sliced_tiles(wpt);
    set->first_block[0] = 0;
    for (int i = 0; i < set->n; i++)
        set->first_block[i + 1] = set->first_block[i] + ((set->op[i].rows + 15) / 16 + R - 1) / R * SLICED_CLUSTER;
    if (set->first_block[set->n] == 0) return;
    lg_cuda_allow_smem(mma_sliced_kernel<NT>, sliced_smem<NT>());
    lg_cuda_launch(k, mma_sliced_kernel<NT>, dim3(set->first_block[set->n]), SLICED_WARPS * 32, sliced_smem<NT>(),
                   *set, wpt);
}

void lg_cuda_sliced_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens) {
    if (max_tokens <= 32) launch_nt<4>(k, set);
    else launch_nt<8>(k, set);
}
