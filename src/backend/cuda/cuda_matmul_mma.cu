/* BF16 matrix products on tensor cores for few tokens (decoding), and the
 * choice between this kernel and the tiled GEMM (cuda_matmul_gemm.cu) for
 * many. Both keep the slice contract of cuda_mma.h, so they give the same
 * bits and a token's result does not depend on its batch.
 *
 * narrow (up to 64 tokens): a block of 8 warps takes R consecutive 16-row
 * tiles and up to 64 tokens, warp w computing slice w of every tile (split
 * K, so a decode step has enough warps streaming weights). A warp's work is
 * one stream of steps, its slice of tile 0, then of tile 1, ...; each lane
 * loads its 8 consecutive k of rows g and g + 8 straight from global memory
 * LOADS steps at a time, the next LOADS steps issued before the current
 * ones are multiplied, so a warp always has weights in flight, across tile
 * boundaries too (short slices, e.g. K = 512 in 8 slices of 2 steps, would
 * otherwise leave a warp one small load at a time). At the end of its
 * slice of a tile a warp parks the sums in shared memory; one barrier, then
 * the block adds each tile's slices in order. R is chosen so that the grid
 * is about one wave of resident blocks (a grid of several short waves
 * idles most SMs in its last one). */
#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_mma.h"

#include <stdlib.h>

#include <atomic>

#define NARROW_WARPS 8
#define NARROW_MAX_TILES 8      /* 64 tokens */
#define NARROW_PART_BYTES 32768 /* shared memory for the parked sums */

/* Sums parked per tile: [slice][16 rows][8 NT tokens]. */
template <int NT> __host__ __device__ constexpr int narrow_tile_floats() {
    return MMA_MAX_SLICES * 16 * 8 * NT;
}
/* Most row tiles a block takes. */
template <int NT> __host__ __device__ constexpr int narrow_max_tiles() {
    return NARROW_PART_BYTES / (int)sizeof(float) / narrow_tile_floats<NT>();
}

/* A warp's position in its stream: tile index and step within its slice. */
struct stream_pos {
    int tile, step;
    __device__ __forceinline__ void next(int steps) {
        if (++step == steps) step = 0, tile++;
    }
};

/* Loads the next LOADS steps of the stream at p (zeros past its end, past
 * the rows and past K), advancing p. */
template <int LOADS>
__device__ __forceinline__ void load_steps(const matmul_args &a, const uint8_t *w, int tile0,
                                           int n_tiles, int k0, int k1, int steps, stream_pos *p,
                                           uint4 *wa, uint4 *wb) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < LOADS; u++) {
        wa[u] = wb[u] = zero;
        if (p->tile >= n_tiles) continue;
        int r = (tile0 + p->tile) * 16 + g, k = k0 + 32 * p->step + 8 * q;
        if (k < k1) {
            const uint8_t *row = w + (size_t)r * a.row_bytes + (size_t)k * 2;
            if (r < a.rows) wa[u] = __ldg((const uint4 *)row);
            if (r + 8 < a.rows) wb[u] = __ldg((const uint4 *)(row + 8 * a.row_bytes));
        }
        p->next(steps);
    }
}

/* One block's n_tiles row tiles from tile0 for tokens t0 .. t0 + nt - 1 of its
 * matrix w (nt at most 8 NT): the stream, the parked slices, their sums. */
template <int NT, int LOADS>
__device__ __forceinline__ void narrow_tokens(const matmul_args &a, const uint8_t *w, int t0, int nt, int tile0,
                                              int n_tiles, float *part) {
    int warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    int per_slice, n_slices;
    slicing(a.cols, &per_slice, &n_slices);
    int k0 = warp * per_slice * 32, k1 = min(a.cols, k0 + per_slice * 32);
    int steps = warp < n_slices ? (k1 - k0 + 31) / 32 : 0; /* this warp's, per tile */
    int total = n_tiles * steps;
    const float *x = a.x + (size_t)t0 * a.cols;
    const float4 fzero = make_float4(0, 0, 0, 0);
    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++)
        acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    stream_pos at = {0, 0}, loaded = {0, 0};
    uint4 wa[LOADS], wb[LOADS], na[LOADS], nb[LOADS];
    if (total > 0) load_steps<LOADS>(a, w, tile0, n_tiles, k0, k1, steps, &loaded, na, nb);
    for (int done = 0; done < total; done += LOADS) {
#pragma unroll
        for (int u = 0; u < LOADS; u++)
            wa[u] = na[u], wb[u] = nb[u];
        if (done + LOADS < total)
            load_steps<LOADS>(a, w, tile0, n_tiles, k0, k1, steps, &loaded, na, nb);
#pragma unroll
        for (int u = 0; u < LOADS; u++) {
            if (done + u >= total) break;
            int k = k0 + 32 * at.step + 8 * q;
#pragma unroll
            for (int j = 0; j < NT; j++) {
                if (8 * j >= nt) break;
                int tok = 8 * j + g;
                float4 xa = fzero, xb = fzero;
                if (tok < nt && k < k1) {
                    const float4 *xp = (const float4 *)(x + (size_t)tok * a.cols + k);
                    xa = __ldg(xp), xb = __ldg(xp + 1);
                }
                mma_step(acc[j], wa[u], wb[u], mma_split(xa, xb), !a.hi_only);
            }
            if (at.step == steps - 1) { /* this tile's slice is done: park it */
                float *p = part + (size_t)(at.tile * MMA_MAX_SLICES + warp) * 16 * 8 * NT;
#pragma unroll
                for (int j = 0; j < NT; j++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        p[(g + (i >= 2 ? 8 : 0)) * 8 * NT + 8 * j + 2 * q + (i & 1)] = acc[j][i];
                        acc[j][i] = 0.0f;
                    }
            }
            at.next(steps);
        }
    }
    __syncthreads();
    float *y = a.y + (size_t)t0 * a.rows;
    for (int i = threadIdx.x; i < n_tiles * 16 * 8 * NT; i += blockDim.x) {
        int tile = i / (16 * 8 * NT), e = i % (16 * 8 * NT);
        int r = (tile0 + tile) * 16 + e / (8 * NT), t = e % (8 * NT);
        const float *p = part + (size_t)tile * narrow_tile_floats<NT>() + e;
        float v = p[0];
        for (int s = 1; s < n_slices; s++)
            v += p[(size_t)s * 16 * 8 * NT];
        if (r < a.rows && t < nt) y[(size_t)t * a.rows + r] = v + (a.bias ? a.bias[r] : 0.0f);
    }
}

/* Grid (blocks over the ops' row tiles, token tiles of 8 NT, listed experts);
 * a block takes its token tile and every gridDim.y-th after it (a grouped
 * launch's grid covers the typical expert, not the largest). */
template <int NT, int LOADS>
__global__ void __launch_bounds__(NARROW_WARPS * 32)
    mma_narrow_kernel(const __grid_constant__ matmul_set set) {
    lg_cuda_kernel_begin();
    extern __shared__ float part[]; /* [tile][slice][16 rows][8 NT tokens] */
    int block_x, t_begin, t_count;
    int op = set_op_of_block(set, &block_x);
    const matmul_args &a = set.op[op];
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    /* this op's blocks split its tiles evenly (the host sized them) */
    int tiles = (a.rows + 15) / 16, blocks = set.first_block[op + 1] - set.first_block[op];
    int per_block = (tiles + blocks - 1) / blocks, tile0 = block_x * per_block;
    int n_tiles = min(per_block, tiles - tile0);
    if (n_tiles <= 0) return;
    for (int t0 = blockIdx.y * 8 * NT; t0 < t_count; t0 += gridDim.y * 8 * NT) {
        narrow_tokens<NT, LOADS>(a, w, t_begin + t0, min(8 * NT, t_count - t0), tile0, n_tiles, part);
        __syncthreads(); /* the parked sums are read before the next tile parks its own */
    }
}

bool lg_cuda_mma_enabled(void) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_MMA");
    return on;
}

/* Blocks of this kernel resident on one SM (once per process: the GPUs of
 * one machine are alike). */
template <int NT, int LOADS> static int narrow_resident(void) {
    static std::atomic<int> n{0};
    if (!n.load()) {
        int b = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, mma_narrow_kernel<NT, LOADS>,
                                                          NARROW_WARPS * 32,
                                                          NARROW_PART_BYTES) != cudaSuccess ||
            b <= 0)
            b = 1;
        n.store(b);
    }
    return n.load();
}

int lg_cuda_sm_count(void) {
    int dev = 0, n = 0;
    cudaGetDevice(&dev);
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0)
        n = 1;
    return n;
}

/* Tiles per block: enough that the grid is one wave of resident blocks,
 * at most what the parked sums' shared memory holds. The grid's token tiles
 * cover grid_tokens (blocks loop over an expert's tokens past them). */
template <int NT, int LOADS>
static void launch_narrow(lg_cuda_ctx *k, matmul_set *set, int grid_tokens, int max_groups) {
    long units = 0;
    for (int i = 0; i < set->n; i++)
        units += (long)((set->op[i].rows + 15) / 16) * (set->op[i].offsets ? max_groups : 1);
    long slots = (long)lg_cuda_sm_count() * narrow_resident<NT, LOADS>();
    int per = (int)((units + slots - 1) / slots);
    /* LAGUNA_CUDA_NARROW_TILES=N: N tiles per block (0 = one wave, as above) */
    static int forced = -1;
    if (forced < 0) forced = getenv("LAGUNA_CUDA_NARROW_TILES") ? atoi(getenv("LAGUNA_CUDA_NARROW_TILES")) : 0;
    if (forced > 0) per = forced;
    per = per < 1 ? 1 : per > narrow_max_tiles<NT>() ? narrow_max_tiles<NT>() : per;
    set->first_block[0] = 0;
    for (int i = 0; i < set->n; i++)
        set->first_block[i + 1] =
            set->first_block[i] + ((set->op[i].rows + 15) / 16 + per - 1) / per;
    if (set->first_block[set->n] == 0) return;
    int blocks_y = (grid_tokens + 8 * NT - 1) / (8 * NT);
    size_t smem = sizeof(float) * (size_t)narrow_tile_floats<NT>() * per;
    lg_cuda_launch(k, mma_narrow_kernel<NT, LOADS>,
                   dim3(set->first_block[set->n], blocks_y, max_groups), NARROW_WARPS * 32, smem,
                   *set);
}


/* One-shot blocks for up to 8 tokens (decoding): a block of 8 warps takes
 * a few 16-row tiles, warp w slice w of each, and a warp issues the weight
 * loads of ONESHOT_LOADS steps at once: one tile when K is long (K = 2048:
 * 8 steps a slice), several when it is short (the experts' down products,
 * K = 512: 2 steps a slice, so 4 tiles), so that a block always has 64 KB in
 * flight. Slices that need more steps than that (o_proj, K = 8192) go in
 * batches, with PIPE the next batch loaded while the current one is
 * multiplied (LAGUNA_CUDA_PIPE=0: not; measured the same, 158.1 vs 158.3
 * tok/s). The slices meet in shared memory, in order. Measured on the
 * H200 against the streaming blocks above (XS.2 decode after 1024: 162 vs
 * 136 tok/s): short blocks of which two fit an SM turn over faster than
 * long streams keep their loads in flight. The same chains, so the same
 * bits. */
#define ONESHOT_LOADS 8

/* Tiles of a one-shot block for a product of K = cols (at most most). */
__host__ __device__ __forceinline__ int oneshot_tiles(int cols, int most) {
    int per_slice, n_slices;
    slicing(cols, &per_slice, &n_slices);
    int t = ONESHOT_LOADS / (per_slice > 0 ? per_slice : 1);
    return t < 1 ? 1 : t > most ? most : t;
}

/* A warp's work: its slice (steps of 32 from k0, up to k1) of n_t tiles
 * from tile0, as units (tile, step) in order. */
struct oneshot_stream {
    const uint8_t *w;
    size_t row_bytes;
    int rows, tile0, steps, total, k0, k1;
};

/* A lane's weights for the ONESHOT_LOADS units from base (zeros past the
 * stream, past K and past the rows). */
__device__ __forceinline__ void oneshot_load(const oneshot_stream &s, int base, int g, int q, uint4 *wa, uint4 *wb) {
    const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < ONESHOT_LOADS; u++) {
        wa[u] = wb[u] = zero;
        int i = base + u;
        if (i >= s.total) continue;
        int tile = i / s.steps, step = i - tile * s.steps;
        int r = (s.tile0 + tile) * 16 + g, k = s.k0 + 32 * step + 8 * q;
        if (k >= s.k1) continue;
        const uint8_t *row = s.w + (size_t)r * s.row_bytes + (size_t)k * 2;
        if (r < s.rows) wa[u] = __ldg((const uint4 *)row);
        if (r + 8 < s.rows) wb[u] = __ldg((const uint4 *)(row + 8 * s.row_bytes));
    }
}

/* A one-shot block's op (set's op of this block) and the calling warp's
 * stream: the block's tiles, the warp's slice of K. */
struct oneshot_block {
    const matmul_args *a;
    oneshot_stream st;
    int n_t, per_slice, n_slices;
};

__device__ __forceinline__ oneshot_block oneshot_block_of(const matmul_set &set, int most_tiles, int tok_groups,
                                                          int warp) {
    oneshot_block b;
    int block_x;
    b.a = &set.op[set_op_of(set, (int)blockIdx.x / tok_groups, &block_x)];
    const matmul_args &a = *b.a;
    slicing(a.cols, &b.per_slice, &b.n_slices);
    oneshot_stream &st = b.st;
    st.row_bytes = a.row_bytes, st.rows = a.rows, st.w = a.w;
    int per_block = oneshot_tiles(a.cols, most_tiles);
    st.tile0 = block_x * per_block;
    b.n_t = max(0, min(per_block, (a.rows + 15) / 16 - st.tile0));
    st.k0 = warp * b.per_slice * 32, st.k1 = min(a.cols, st.k0 + b.per_slice * 32);
    st.steps = warp < b.n_slices ? (st.k1 - st.k0 + 31) / 32 : 0;
    st.total = b.n_t * st.steps;
    return b;
}

/* The lane's activations of token g at a unit's k (zeros past the tokens
 * and past the slice). */
__device__ __forceinline__ void oneshot_x(const oneshot_stream &st, const matmul_args &a, const float *x, int nt,
                                          int step, float4 *xa, float4 *xb) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    int k = st.k0 + 32 * step + 8 * q;
    *xa = *xb = make_float4(0, 0, 0, 0);
    if (g < nt && k < st.k1) {
        const float4 *xp = (const float4 *)(x + (size_t)g * a.cols + k);
        *xa = __ldg(xp), *xb = __ldg(xp + 1);
    }
}

/* One unit (a 32-wide k step of a tile) of the warp's stream: the lane's
 * activations of token g at the unit's k, then the four mma. */
__device__ __forceinline__ void oneshot_unit(float *acc, const oneshot_stream &st, const matmul_args &a, const float *x,
                                             int nt, int step, uint4 wa, uint4 wb) {
    float4 xa, xb;
    oneshot_x(st, a, x, nt, step, &xa, &xb);
    mma_step(acc, wa, wb, mma_split(xa, xb), !a.hi_only);
}

/* A tile's finished slice (the warp's accumulators) to p[16 rows][8 tokens];
 * the accumulators start again at zero. */
__device__ __forceinline__ void oneshot_park(float *acc, float *p) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        p[(g + (e >= 2 ? 8 : 0)) * 8 + 2 * q + (e & 1)] = acc[e];
        acc[e] = 0.0f;
    }
}

/* A one-shot block's tiles summed over their slices in order (slice 0, then
 * + slice 1, ...) and stored with the bias; parked(sl, tile) is where slice
 * sl of the tile was parked ([16 rows][8 tokens]). */
template <typename Parked>
__device__ __forceinline__ void oneshot_store(const matmul_args &a, const oneshot_stream &st, int n_t, int n_slices,
                                              int nt, int t_begin, Parked parked) {
    float *y = a.y + (size_t)t_begin * a.rows;
    for (int i = threadIdx.x; i < n_t * 128; i += blockDim.x) {
        int tile = i / 128, e = i % 128;
        int r = (st.tile0 + tile) * 16 + e / 8, t = e % 8;
        float v = 0.0f;
        for (int sl = 0; sl < n_slices; sl++) {
            float pv = parked(sl, tile)[e];
            v = sl == 0 ? pv : v + pv;
        }
        if (r < a.rows && t < nt) y[(size_t)t * a.rows + r] = v + (a.bias ? a.bias[r] : 0.0f);
    }
}

/* A block's tokens when a plain product's tokens come in groups of 8
 * (tok_groups > 1): blockIdx.x % tok_groups picks the group, so the blocks
 * of one row range's groups are neighbours in the grid, run together, and
 * their weights come from HBM once and from L2 for the others. False when
 * the group holds no token. */
__device__ __forceinline__ bool oneshot_token_group(int tok_groups, int *t_begin, int *t_count) {
    int grp = (int)blockIdx.x % tok_groups;
    *t_begin += 8 * grp;
    *t_count -= 8 * grp;
    return *t_count > 0;
}

/* EARLY: a plain product's first weights are loaded before waiting for the
 * previous kernel (weights never depend on it), so with programmatic
 * dependent launch the loads of blocks already resident overlap that
 * kernel's tail. A grouped product learns its expert only after the wait. */
template <bool EARLY, bool PIPE>
__global__ void __launch_bounds__(NARROW_WARPS * 32)
    mma_oneshot_kernel(const __grid_constant__ matmul_set set, int most_tiles, int tok_groups) {
    extern __shared__ float part[]; /* [tile][slice][16 rows][8 tokens] */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    oneshot_block blk = oneshot_block_of(set, most_tiles, tok_groups, warp);
    const matmul_args &a = *blk.a;
    oneshot_stream &st = blk.st;
    int n_t = blk.n_t, n_slices = blk.n_slices;
    uint4 wa[ONESHOT_LOADS], wb[ONESHOT_LOADS];
    bool early = EARLY && !a.offsets && blockIdx.z == 0 && st.total > 0;
    if (early) oneshot_load(st, 0, g, q, wa, wb);
    lg_cuda_kernel_begin();
    int t_begin, t_count;
    if (!set_block_rows(a, &st.w, &t_begin, &t_count) || !oneshot_token_group(tok_groups, &t_begin, &t_count) ||
        n_t <= 0)
        return;
    int nt = min(8, t_count);
    const float *x = a.x + (size_t)t_begin * a.cols;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int base = 0; base < st.total; base += ONESHOT_LOADS) {
        if (base == 0 ? !early : !PIPE) oneshot_load(st, base, g, q, wa, wb);
        uint4 na[PIPE ? ONESHOT_LOADS : 1], nb[PIPE ? ONESHOT_LOADS : 1];
        if (PIPE && base + ONESHOT_LOADS < st.total) oneshot_load(st, base + ONESHOT_LOADS, g, q, na, nb);
#pragma unroll
        for (int u = 0; u < ONESHOT_LOADS; u++) {
            int i = base + u;
            if (i >= st.total) break;
            int tile = i / st.steps, step = i - tile * st.steps;
            oneshot_unit(acc, st, a, x, nt, step, wa[u], wb[u]);
            if (step == st.steps - 1) /* this tile's slice is done: park it */
                oneshot_park(acc, part + (size_t)(tile * MMA_MAX_SLICES + warp) * 128);
        }
        if (PIPE)
#pragma unroll
            for (int u = 0; u < ONESHOT_LOADS; u++) wa[u] = na[u], wb[u] = nb[u];
    }
    __syncthreads();
    oneshot_store(a, st, n_t, n_slices, nt, t_begin,
                  [&](int sl, int tile) { return part + (size_t)(tile * MMA_MAX_SLICES + sl) * 128; });
}

/* The staged one-shot block (products whose warps each take at most one
 * batch of ONESHOT_LOADS units): the same units, tiles and mma order as
 * mma_oneshot_kernel, so the same bits, but a warp copies its units into
 * shared memory with cp.async instead of holding them in registers. The
 * register kernel keeps 64 KB in flight a block at 2 blocks an SM (115
 * registers a thread); staged, a block needs 64 KB of shared memory and few
 * registers, so 3 blocks an SM keep 192 KB in flight. A unit is 16 rows of
 * 64 bytes (32 k): lane (g, q) reads rows g and g + 8 at byte 16 q, eight
 * lanes a contiguous 128 bytes (no bank conflicts). A tile's finished slice
 * is parked over the warp's first unit of that tile (already read). */
#define STAGE_UNIT_BYTES 1024
#define STAGE_WARP_BYTES (ONESHOT_LOADS * STAGE_UNIT_BYTES)
#define STAGE_SMEM (NARROW_WARPS * STAGE_WARP_BYTES)

/* Issues the cp.async copies of a warp's units base .. base + ONESHOT_LOADS
 * - 1 (those in its stream; rows past the matrix and k past the slice are
 * zero-filled, nothing outside the matrix is read) as one commit group. */
template <int PF = 0>
__device__ __forceinline__ void oneshot_stage(const oneshot_stream &s, uint8_t *wst, int lane, int base = 0) {
#pragma unroll
    for (int u = 0; u < ONESHOT_LOADS; u++) {
        if (base + u >= s.total) break;
        int tile = (base + u) / s.steps, step = base + u - tile * s.steps;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int piece = lane + 32 * h, row = piece >> 2, c = piece & 3;
            int r = (s.tile0 + tile) * 16 + row, k = s.k0 + 32 * step + 8 * c;
            bool in = r < s.rows && k < s.k1;
            const uint8_t *src = in ? s.w + (size_t)r * s.row_bytes + (size_t)k * 2 : s.w;
            cp_async16_n_prefetch<PF>(wst + u * STAGE_UNIT_BYTES + piece * 16, src, in ? 16 : 0);
        }
    }
    cp_async_commit();
}

template <bool EARLY, int PF>
__global__ void __launch_bounds__(NARROW_WARPS * 32, 3)
    mma_oneshot_staged_kernel(const __grid_constant__ matmul_set set, int most_tiles, int tok_groups, int warp_bytes) {
    extern __shared__ __align__(16) uint8_t stage[]; /* [warp][unit][16 rows][64 bytes], warp_bytes a warp */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    oneshot_block blk = oneshot_block_of(set, most_tiles, tok_groups, warp);
    const matmul_args &a = *blk.a;
    oneshot_stream &st = blk.st;
    int n_t = blk.n_t, per_slice = blk.per_slice, n_slices = blk.n_slices;
    uint8_t *wst = stage + warp * warp_bytes;
    bool early = EARLY && !a.offsets && blockIdx.z == 0 && st.total > 0;
    if (early) oneshot_stage<PF>(st, wst, lane);
    lg_cuda_kernel_begin();
    int t_begin, t_count;
    if (!set_block_rows(a, &st.w, &t_begin, &t_count) || !oneshot_token_group(tok_groups, &t_begin, &t_count) ||
        n_t <= 0) {
        cp_async_wait_all(); /* no copy may land after the block is gone */
        return;
    }
    if (!early && st.total > 0) oneshot_stage<PF>(st, wst, lane);
    int nt = min(8, t_count);
    const float *x = a.x + (size_t)t_begin * a.cols;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    cp_async_wait_all();
    __syncwarp();
#pragma unroll
    for (int u = 0; u < ONESHOT_LOADS; u++) {
        if (u >= st.total) break;
        int tile = u / st.steps, step = u - tile * st.steps;
        const uint8_t *unit = wst + u * STAGE_UNIT_BYTES;
        uint4 wa = *(const uint4 *)(unit + g * 64 + q * 16), wb = *(const uint4 *)(unit + (g + 8) * 64 + q * 16);
        oneshot_unit(acc, st, a, x, nt, step, wa, wb);
        if (step == st.steps - 1) { /* this tile's slice is done: park it over the tile's first unit */
            __syncwarp();
            oneshot_park(acc, (float *)(wst + (tile * st.steps) * STAGE_UNIT_BYTES));
        }
    }
    __syncthreads();
    oneshot_store(a, st, n_t, n_slices, nt, t_begin, [&](int sl, int tile) { /* slice sl's steps: its own k range */
        int k0 = sl * per_slice * 32, steps = (min(a.cols, k0 + per_slice * 32) - k0 + 31) / 32;
        return (const float *)(stage + sl * warp_bytes + (tile * steps) * STAGE_UNIT_BYTES);
    });
}

/* The ring one-shot block (products whose warps take more than one batch of
 * units: o_proj and a dense layer's down, K = 8192, so one tile a block):
 * the same units, slices, mma order and slice sums as mma_oneshot_kernel,
 * so the same bits. The register kernel has two batches of a warp in flight
 * (16 KB) and, at one block an SM (its 128 blocks of 16 rows), took ~23 us
 * for o_proj's 33.5 MB in a decode step, ~1.5 TB/s. Here a warp copies its
 * batches with cp.async into a ring of RING_SLOTS slots of shared memory,
 * all of them issued at once (before the programmatic-launch wait), a slot
 * refilled as soon as it is multiplied, and the next batch's activations
 * are loaded while the current one is multiplied; a warp with exactly one
 * batch more than the slots (K = 8192) holds that batch in registers, so
 * all four are in flight from the start (H100: decode +1.7%). A warp's
 * finished slice is parked at the start of its last batch's slot.
 *
 * BULK (the default where rows allow: ring_bulk): with cp.async alone
 * under ncu this kernel moved o_proj's 32 MB at 1.19-1.29 TB/s, one block
 * an SM whose eight warps ask for their rows 64 bytes a lane. With BULK a
 * batch's 16 rows of a warp's slice are 16 bulk copies of up to 512 bytes
 * (lanes 0-15; 1.48 TB/s), each row at a stride of 64 bytes past a multiple
 * of 128 (BULK_ROW_STRIDE: the two rows a quarter warp's fragment reads
 * touch fall in distinct banks), their arrival counted on the slot's
 * mbarrier. Only where K is a multiple of 32 and rows 16-byte aligned (a
 * bulk copy has no zero fill: the rows past the matrix are left as they
 * are, and only their own outputs, never stored, see them). The same bulk
 * copies in the staged blocks (a row a copy, one barrier a warp) lost: 219.5
 * against 226.4 tok/s, 8 sequences 697 against 728. */
#define RING_SLOTS 3
#define RING_SMEM (NARROW_WARPS * RING_SLOTS * STAGE_WARP_BYTES)
#define BULK_ROW_STRIDE (ONESHOT_LOADS * 64 + 64)
#define BULK_SLOT_BYTES (16 * BULK_ROW_STRIDE)
#define BULK_SMEM (NARROW_WARPS * RING_SLOTS * (BULK_SLOT_BYTES + (int)sizeof(uint64_t)))

/* Where slice sl of a product of K = cols parked its sums (its last batch's
 * slot, slots of SLOT bytes). */
template <int SLOT>
__device__ __forceinline__ const float *ring_parked(const uint8_t *ring, int sl, int per_slice, int cols) {
    int k0 = sl * per_slice * 32, steps = (min(cols, k0 + per_slice * 32) - k0 + 31) / 32;
    int batches = (steps + ONESHOT_LOADS - 1) / ONESHOT_LOADS;
    return (const float *)(ring + (sl * RING_SLOTS + (batches - 1) % RING_SLOTS) * SLOT);
}

template <bool EARLY, int PF, bool BULK = false>
__global__ void __launch_bounds__(NARROW_WARPS * 32, 1)
    mma_oneshot_ring_kernel(const __grid_constant__ matmul_set set, int most_tiles, int tok_groups, int regs_last) {
    constexpr int SLOT = BULK ? BULK_SLOT_BYTES : STAGE_WARP_BYTES;
    extern __shared__ __align__(16) uint8_t ring[]; /* [warp][slot] (BULK: [16 rows][stride]), then BULK's barriers */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    oneshot_block blk = oneshot_block_of(set, most_tiles, tok_groups, warp);
    const matmul_args &a = *blk.a;
    oneshot_stream &st = blk.st;
    int n_t = blk.n_t, per_slice = blk.per_slice, n_slices = blk.n_slices;
    uint8_t *wst = ring + warp * RING_SLOTS * SLOT;
    uint64_t *bar = (uint64_t *)(ring + NARROW_WARPS * RING_SLOTS * SLOT) + warp * RING_SLOTS;
    int batches = (st.total + ONESHOT_LOADS - 1) / ONESHOT_LOADS;
    /* regs_last: a warp with one batch more than the slots (K = 8192: 4 over 3) holds that last batch in
     * registers, loaded with the others, so all its batches are in flight at once instead of the last one
     * waiting for the first slot to free (a whole second round trip) */
    bool in_regs = regs_last && batches == RING_SLOTS + 1;
    uint4 ra[ONESHOT_LOADS], rb[ONESHOT_LOADS];
    if (BULK) {
        if (lane == 0)
            for (int s = 0; s < RING_SLOTS; s++) mbarrier_init(&bar[s], 1);
        mbarrier_init_fence();
        __syncwarp();
    }
    /* batch b into its slot, by the whole warp: a commit group (empty past the stream), or with BULK the
     * expected bytes, then a bulk copy a row of the matrix */
    auto issue = [&](int b) {
        uint8_t *slot = wst + b % RING_SLOTS * SLOT;
        if constexpr (BULK) {
            int rows = min(16, st.rows - st.tile0 * 16);
            uint32_t bytes = 64u * (uint32_t)min(ONESHOT_LOADS, st.total - b * ONESHOT_LOADS);
            if (lane == 0) mbarrier_expect_bytes(&bar[b % RING_SLOTS], bytes * (uint32_t)rows);
            __syncwarp();
            if (lane < rows)
                bulk_copy_to_shared(slot + lane * BULK_ROW_STRIDE,
                                    st.w + (size_t)(st.tile0 * 16 + lane) * st.row_bytes +
                                        (size_t)(st.k0 + 32 * ONESHOT_LOADS * b) * 2,
                                    bytes, &bar[b % RING_SLOTS]);
        } else {
            oneshot_stage<PF>(st, slot, lane, b * ONESHOT_LOADS);
        }
    };
    int first = BULK ? min(batches, RING_SLOTS) : RING_SLOTS; /* the slots' first fills */
    auto fill = [&]() {
#pragma unroll
        for (int s = 0; s < RING_SLOTS; s++)
            if (s < first) issue(s);
        if (in_regs) oneshot_load(st, RING_SLOTS * ONESHOT_LOADS, lane >> 2, lane & 3, ra, rb);
    };
    bool early = EARLY && !a.offsets && blockIdx.z == 0 && st.total > 0;
    if (early) fill();
    lg_cuda_kernel_begin();
    int t_begin, t_count;
    if (!set_block_rows(a, &st.w, &t_begin, &t_count) || !oneshot_token_group(tok_groups, &t_begin, &t_count) ||
        n_t <= 0) { /* no copy may land after the block is gone */
        if (!BULK) cp_async_wait_all();
        else if (early)
            for (int s = 0; s < first; s++) mbarrier_wait(&bar[s], 0);
        return;
    }
    if (!early && (!BULK || st.total > 0)) fill();
    int nt = min(8, t_count);
    const float *x = a.x + (size_t)t_begin * a.cols;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float4 xa[ONESHOT_LOADS], xb[ONESHOT_LOADS];
#pragma unroll
    for (int u = 0; u < ONESHOT_LOADS; u++) oneshot_x(st, a, x, nt, u, &xa[u], &xb[u]);
    for (int b = 0; b < batches; b++) {
        float4 na[ONESHOT_LOADS], nb[ONESHOT_LOADS]; /* the next batch's activations, in flight */
#pragma unroll
        for (int u = 0; u < ONESHOT_LOADS; u++) oneshot_x(st, a, x, nt, (b + 1) * ONESHOT_LOADS + u, &na[u], &nb[u]);
        bool from_regs = in_regs && b == RING_SLOTS;
        if (!from_regs) {
            if constexpr (BULK) {
                mbarrier_wait(&bar[b % RING_SLOTS], (uint32_t)(b / RING_SLOTS) & 1u);
            } else {
                cp_async_wait<RING_SLOTS - 1>(); /* batch b's group is in: the groups after it are at most the others */
                __syncwarp();
            }
        }
        const uint8_t *slot = wst + b % RING_SLOTS * SLOT;
        int g = lane >> 2, q = lane & 3;
#pragma unroll
        for (int u = 0; u < ONESHOT_LOADS; u++) {
            if (b * ONESHOT_LOADS + u >= st.total) break;
            /* rows g and g + 8 of unit u: [unit][16 rows][64 bytes], or with BULK [16 rows][stride] */
            const uint8_t *ga = BULK ? slot + g * BULK_ROW_STRIDE + u * 64 : slot + u * STAGE_UNIT_BYTES + g * 64;
            const uint8_t *gb = BULK ? ga + 8 * BULK_ROW_STRIDE : ga + 8 * 64;
            uint4 wa = from_regs ? ra[u] : *(const uint4 *)(ga + q * 16);
            uint4 wb = from_regs ? rb[u] : *(const uint4 *)(gb + q * 16);
            mma_step(acc, wa, wb, mma_split(xa[u], xb[u]), !a.hi_only);
        }
        if constexpr (BULK) { /* the slot's next batch, unless none or it is the one in registers */
            int next = b + RING_SLOTS;
            if (!from_regs && next < batches && !(in_regs && next == RING_SLOTS)) {
                fence_proxy_async_shared(); /* this lane's reads of the slot before the copies that refill it */
                __syncwarp();
                issue(next);
            }
        } else {
            __syncwarp(); /* the slot is read: refill it (an empty group past the stream, or with the last batch
                           * in registers: the waits count groups) */
            if (in_regs) cp_async_commit();
            else issue(b + RING_SLOTS);
        }
#pragma unroll
        for (int u = 0; u < ONESHOT_LOADS; u++) xa[u] = na[u], xb[u] = nb[u];
    }
    if (!BULK) cp_async_wait_all(); /* with BULK every batch's copies were waited for */
    __syncwarp(); /* every lane's reads of the last slot before any lane parks its sums over them */
    if (batches > 0) oneshot_park(acc, (float *)(wst + (batches - 1) % RING_SLOTS * SLOT));
    __syncthreads();
    oneshot_store(a, st, n_t, n_slices, nt, t_begin,
                  [&](int sl, int tile) { return ring_parked<SLOT>(ring, sl, per_slice, a.cols); });
}

/* LAGUNA_CUDA_ONESHOT=0: one-token steps stream (launch_narrow) instead. */
static bool oneshot_enabled(void) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_ONESHOT");
    return on;
}

/* LAGUNA_CUDA_ONESHOT_RING=0: long-K products on the register kernel (measuring). */
static bool ring_enabled(void) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_ONESHOT_RING");
    return on;
}

/* Whether a warp's slice of a product of K = cols takes more than one batch
 * of loads (the ring kernel's products; the staged ones take one). */
static bool slice_over_one_batch(int cols) {
    int per_slice, n_slices;
    slicing(cols, &per_slice, &n_slices);
    return per_slice > ONESHOT_LOADS;
}

/* The staged and ring blocks' weight copies ask L2 to fetch 128 bytes
 * around each miss (a warp copies 16 rows 64 bytes at a time, its next step
 * the next 64 of each). H100, XS.2 bf16 decode after 1024, three rounds
 * alternated: 214.87 / 214.57 / 214.68 tok/s against 211.50 / 211.60 /
 * 211.42 without (+1.5%), 256 bytes 212.00 / 212.82; 8 sequences 719.4
 * against 702.1, 32 unchanged (other kernels). Isolated under ncu, q/k/v/g
 * 27.8 -> 27.0 us and o_proj's ring 26.9 -> 25.9 with 256.
 * LAGUNA_CUDA_L2_PREFETCH=0|64|256: none or another size (measuring). */
static int l2_prefetch_bytes(void) {
    static const int b = getenv("LAGUNA_CUDA_L2_PREFETCH") ? atoi(getenv("LAGUNA_CUDA_L2_PREFETCH")) : 128;
    return b == 64 || b == 128 || b == 256 ? b : 0;
}

/* kernel<EARLY, PF> for the switches' values. */
#define PICK_PF(kernel, early, pf)                                                                        \
    ((pf) == 256   ? ((early) ? kernel<true, 256> : kernel<false, 256>)                                 \
     : (pf) == 128 ? ((early) ? kernel<true, 128> : kernel<false, 128>)                                 \
     : (pf) == 64  ? ((early) ? kernel<true, 64> : kernel<false, 64>)                                   \
                   : ((early) ? kernel<true, 0> : kernel<false, 0>))

/* Whether every op's rows are whole steps of 16-byte aligned bytes (what
 * the bulk copies need). */
static bool set_bulk_copyable(const matmul_set &set) {
    for (int i = 0; i < set.n; i++) {
        const matmul_args &a = set.op[i];
        if (a.cols % 32 || a.row_bytes % 16 || !a.aligned16) return false;
    }
    return true;
}

/* The ring's products with bulk copies (mma_oneshot_ring_kernel<..., BULK>)
 * where the rows allow them. H100, XS.2 bf16 decode after 1024, two rounds
 * alternated: 225.67 / 226.35 tok/s against 218.67 / 219.79 with cp.async
 * (+3.1%); alone under ncu o_proj 21.6 against 24.7 us. Rows padded by 16
 * bytes instead of 64 (two-way bank conflicts in some fragment reads) gave
 * the same (226.39 / 225.83 against 226.20 / 227.00).
 * LAGUNA_CUDA_RING_BULK=0: cp.async (measuring). */
static bool ring_bulk(const matmul_set &set) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_RING_BULK");
    return on && set_bulk_copyable(set);
}

/* tok_groups > 1: a plain set's tokens in groups of 8, each group's blocks
 * beside the other groups' of the same rows (oneshot_token_group). */
static void launch_oneshot(lg_cuda_ctx *k, matmul_set *set, int max_groups, int tok_groups) {
    /* LAGUNA_CUDA_ONESHOT_TILES=N: up to N tiles a block when K is short
     * (measured: 8 decodes faster than 1, 152 vs 149 tok/s, when every
     * block had 64 KB of shared memory). A staged block now asks only for
     * its warps' units, so XS.2's experts' down products (K = 512, 2 steps
     * a slice) at 2 tiles take 32 KB and 4 blocks an SM instead of 3 of 64
     * KB, ~2.2 blocks an SM over 288: H100, bf16 decode after 1024, two
     * rounds alternated, 229.23 / 228.65 tok/s against 226.30 / 227.00 at 8
     * (4 for K = 512) and 227.91 / 227.80 at 1; 8 sequences the same. */
    static const int most = getenv("LAGUNA_CUDA_ONESHOT_TILES") ? atoi(getenv("LAGUNA_CUDA_ONESHOT_TILES")) : 2;
    int most_tiles = 1;
    int units = 1; /* a staged warp's units: its slice's steps times the block's tiles, at most ONESHOT_LOADS */
    bool long_k = false, all_long = true; /* a slice (every op's) longer than one batch of loads */
    set->first_block[0] = 0;
    for (int i = 0; i < set->n; i++) {
        int per_block = oneshot_tiles(set->op[i].cols, most < 1 ? 1 : most), per_slice, n_slices;
        slicing(set->op[i].cols, &per_slice, &n_slices);
        units = max(units, min(ONESHOT_LOADS, per_slice * per_block));
        long_k |= slice_over_one_batch(set->op[i].cols);
        all_long &= slice_over_one_batch(set->op[i].cols);
        most_tiles = per_block > most_tiles ? per_block : most_tiles;
        set->first_block[i + 1] = set->first_block[i] + ((set->op[i].rows + 15) / 16 + per_block - 1) / per_block;
    }
    if (set->first_block[set->n] == 0) return;
    static const bool early = lg_cuda_switch_on("LAGUNA_CUDA_EARLY");
    static const bool pipe = lg_cuda_switch_on("LAGUNA_CUDA_PIPE");
    size_t smem = sizeof(float) * MMA_MAX_SLICES * 128 * (size_t)most_tiles;
    dim3 grid(set->first_block[set->n] * tok_groups, 1, max_groups);
    /* LAGUNA_CUDA_ONESHOT_STAGE=0: the register kernel for every product */
    static const bool staged = lg_cuda_switch_on("LAGUNA_CUDA_ONESHOT_STAGE");
    if (staged && !long_k) { /* a warp's units fit one batch */
        auto kernel = PICK_PF(mma_oneshot_staged_kernel, early, l2_prefetch_bytes());
        lg_cuda_allow_smem(kernel, STAGE_SMEM);
        lg_cuda_launch(k, kernel, grid, NARROW_WARPS * 32, NARROW_WARPS * units * STAGE_UNIT_BYTES, *set,
                       most < 1 ? 1 : most, tok_groups, units * STAGE_UNIT_BYTES);
    } else if (staged && all_long && ring_enabled()) { /* one tile a block (oneshot_tiles) */
        /* LAGUNA_CUDA_RING_REGS=0: a last batch waits for a slot too (measuring) */
        static const int regs_last = lg_cuda_switch_on("LAGUNA_CUDA_RING_REGS");
        if (ring_bulk(*set)) {
            auto kernel = early ? mma_oneshot_ring_kernel<true, 0, true> : mma_oneshot_ring_kernel<false, 0, true>;
            lg_cuda_allow_smem(kernel, BULK_SMEM);
            lg_cuda_launch(k, kernel, grid, NARROW_WARPS * 32, BULK_SMEM, *set, most < 1 ? 1 : most, tok_groups,
                           regs_last);
            return;
        }
        auto kernel = PICK_PF(mma_oneshot_ring_kernel, early, l2_prefetch_bytes());
        lg_cuda_allow_smem(kernel, RING_SMEM);
        lg_cuda_launch(k, kernel, grid, NARROW_WARPS * 32, RING_SMEM, *set, most < 1 ? 1 : most, tok_groups,
                       regs_last);
    } else if (long_k && pipe)
        lg_cuda_launch(k, early ? mma_oneshot_kernel<true, true> : mma_oneshot_kernel<false, true>, grid,
                       NARROW_WARPS * 32, smem, *set, most < 1 ? 1 : most, tok_groups);
    else
        lg_cuda_launch(k, early ? mma_oneshot_kernel<true, false> : mma_oneshot_kernel<false, false>, grid,
                       NARROW_WARPS * 32, smem, *set, most < 1 ? 1 : most, tok_groups);
}

/* Plain products of 9 to 8 x LAGUNA_CUDA_TOKEN_GROUPS tokens (default 8:
 * up to 64) take the one-shot blocks, a block per row range and group of 8
 * tokens, instead of the narrow kernel's blocks of all tokens, which load
 * every token's activations again for each 16-row tile (at 32 tokens, 4
 * bytes of activations from L2 for each weight byte). The groups of a row
 * range are neighbours in the grid, run together and share its weights
 * through L2. The same units, slices and mma order per token: the same
 * bits. Measured on the H200 (XS.2 bf16, batched decode after 1024, one
 * run): 16 / 32 / 64 sequences 861 / 1224 / 1542 tok/s with the narrow
 * kernel, 944 / 1235 / 1531 with up to 4 groups, 952 / 1241 / 1615 with 8;
 * on an H100 (2026-12-05, 2 rounds) 4 against 8 groups: 16 and 32 the same,
 * 64 1472.7 / 1472.3 against 1533.2 / 1533.4. The CUDA tests (the
 * batch-invariance cases up to 64 tokens) pass with 4 and with 8. Since
 * 2026-12-06 most plain products of 17 to 64 tokens take the sliced blocks
 * instead (cuda_matmul_sliced.cu: each block one slice of K for all the
 * tokens); these keep 9 to 16 tokens and lm_head.
 * LAGUNA_CUDA_TOKEN_GROUPS=0: the narrow kernel (measuring). */
static int oneshot_token_groups_most(void) {
    static const int most = getenv("LAGUNA_CUDA_TOKEN_GROUPS") ? atoi(getenv("LAGUNA_CUDA_TOKEN_GROUPS")) : 8;
    return most;
}

static bool set_all_plain(const matmul_set &set) {
    for (int i = 0; i < set.n; i++)
        if (set.op[i].offsets) return false;
    return true;
}

/* Plain products, or grouped ones whose experts may each hold max_tokens. */
static void launch_by_tokens(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups) {
    /* (Tried on the H200: sending 17-64 tokens to the tiled GEMM too; 32
     * sequences decoded 629 tok/s against 823.) */
    if (max_tokens > 8 * NARROW_MAX_TILES) {
        lg_cuda_gemm_launch(k, set, max_tokens, max_groups);
        return;
    }
    int tok_groups = (max_tokens + 7) / 8; /* 1 up to 8 tokens */
    if (lg_cuda_sliced_takes(*set, max_tokens)) {
        lg_cuda_sliced_launch(k, set, max_tokens);
        return;
    }
    if (oneshot_enabled() &&
        (tok_groups == 1 || (tok_groups <= oneshot_token_groups_most() && set_all_plain(*set)))) {
        launch_oneshot(k, set, max_groups, tok_groups);
    } else if (max_tokens <= 8) {
        launch_narrow<1, 8>(k, set, max_tokens, max_groups);
    } else if (max_tokens <= 16) {
        launch_narrow<2, 8>(k, set, max_tokens, max_groups);
    } else if (max_tokens <= 32) {
        launch_narrow<4, 4>(k, set, max_tokens, max_groups);
    } else {
        launch_narrow<8, 4>(k, set, max_tokens, max_groups);
    }
}

/* Grouped products of a batched decode step (more than 8 tokens, a few an
 * expert): 8 tokens a block and the most row tiles a block takes (8), its
 * token tiles looped, 4 loads in flight a lane (115 registers: two blocks an
 * SM). Sized for the largest expert (every token), a block of 32 tokens
 * parked 4x the sums, so took 2 tiles (64 tokens: 1): with ~160 of 256
 * experts holding one or two tokens each, blocks of 32-128 KB spent much of
 * their life on the wait and the expert lookups before their first load.
 * Measured on the H200 (XS.2, bf16, after 1024): 16 / 32 / 64 sequences
 * 705 / 1038 / 1288 tok/s against 522 / 876 / 591; with 8 loads a lane (177
 * registers, one block an SM) 603 / 848 / 1097.
 * The staged one-shot blocks looping over an expert's tokens 8 at a time
 * with its weights staged once (two blocks an SM, 128 KB in flight) were
 * slower on the H100: 16 / 32 / 64 sequences 814 / 1054 / 1469 against 872
 * / 1188 / 1606 (2026-12-06; removed).
 * LAGUNA_CUDA_GROUPED_STREAM=0 (measuring): as plain products. */
static bool grouped_stream(int max_tokens) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_GROUPED_STREAM");
    return on && max_tokens > 8 && max_tokens <= 8 * NARROW_MAX_TILES;
}

void lg_cuda_mma_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups) {
    if (set->n == 0 || max_tokens <= 0) return;
    if (max_tokens <= 8 * NARROW_MAX_TILES) lg_cuda_set_settle(k, set); /* (more: lg_cuda_gemm_launch's paths) */
    if (!grouped_stream(max_tokens)) {
        launch_by_tokens(k, set, max_tokens, max_groups);
        return;
    }
    matmul_set part;
    int most = set_pick_ops(*set, false, &part);
    if (part.n && most > 0) launch_by_tokens(k, &part, most, 1);
    most = set_pick_ops(*set, true, &part);
    if (part.n && most > 0) launch_narrow<1, 4>(k, &part, 8 * set_grouped_tiles(part, most, 8), max_groups);
}
