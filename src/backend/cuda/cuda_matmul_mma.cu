/* BF16 matrix products on tensor cores: y[t] = W x[t] (+ bias).
 *
 * mma.sync m16n8k16 with W as the 16-row operand and 8 tokens as the other,
 * accumulating in float32. The activations stay float32 in memory; each is
 * split into two bf16 halves, hi = bf16(x) and lo = bf16(x - hi), and both
 * are multiplied (x = hi + lo to ~16 bits of mantissa, so the products are
 * as exact as the CUDA-core kernel's rather than bf16-rounded).
 *
 * Batch invariance by construction: a row's K is cut into slices that depend
 * only on K (slicing()); a slice's sum is one chain of mma steps in k order
 * starting from zero (slice_chain), and the slices are added left to right.
 * An output element of the mma depends only on its own row and column, so
 * which other tokens share the 8-token tile, and which kernel below ran,
 * change nothing. Two kernels compute exactly that:
 * - narrow (up to 64 tokens: decoding): a block of 8 warps takes 16 weight
 *   rows and up to 64 tokens, one slice per warp (split K, so a decode step
 *   has enough warps streaming weights), the slices' sums meet in shared
 *   memory;
 * - wide (more than 64 tokens): a warp takes 16 rows x 64 tokens and runs
 *   the slices one after the other, 4 warps sharing the activations through
 *   L1.
 * The k order inside a 32-wide step is permuted the same way for W and x: a
 * lane loads 8 consecutive k of its rows (one 16-byte load) and of its token,
 * which the fragments use as k {2q, 2q+1, 2q+8, 2q+9} of the first mma and
 * the same of the second. */
#include "backend/cuda/cuda_matmul.h"

#include <stdlib.h>

#define MMA_MAX_SLICES 8
#define NARROW_WARPS 8
#define NARROW_MAX_TILES 8 /* 64 tokens */
#define WIDE_WARPS 4
#define WIDE_TILES 8       /* 64 tokens per warp */

/* K in steps of 32, cut into at most MMA_MAX_SLICES slices of equal steps. */
__device__ __forceinline__ void slicing(int cols, int *steps_per_slice, int *n_slices) {
    int steps = (cols + 31) / 32;
    int s = steps < MMA_MAX_SLICES ? steps : MMA_MAX_SLICES;
    *steps_per_slice = (steps + s - 1) / s;
    *n_slices = (steps + *steps_per_slice - 1) / *steps_per_slice;
}

__device__ __forceinline__ void mma_bf16(float *c, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Two floats as packed bf16 hi (rounded) and lo (the rest, rounded). */
__device__ __forceinline__ void split_pair(float x0, float x1, uint32_t *hi, uint32_t *lo) {
    __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
    float2 hf = __bfloat1622float2(h);
    __nv_bfloat162 l = __floats2bfloat162_rn(x0 - hf.x, x1 - hf.y);
    *hi = *(uint32_t *)&h;
    *lo = *(uint32_t *)&l;
}

/* One 32-wide k step of one 8-token tile: wa/wb are the lane's 8 weights of
 * rows g and g + 8, xa/xb its token's 8 activations at the same k. */
__device__ __forceinline__ void mma_step(float *c, uint4 wa, uint4 wb, float4 xa, float4 xb) {
    uint32_t h0, l0, h1, l1, h2, l2, h3, l3;
    split_pair(xa.x, xa.y, &h0, &l0);
    split_pair(xa.z, xa.w, &h1, &l1);
    split_pair(xb.x, xb.y, &h2, &l2);
    split_pair(xb.z, xb.w, &h3, &l3);
    mma_bf16(c, wa.x, wb.x, wa.y, wb.y, h0, h1);
    mma_bf16(c, wa.x, wb.x, wa.y, wb.y, l0, l1);
    mma_bf16(c, wa.z, wb.z, wa.w, wb.w, h2, h3);
    mma_bf16(c, wa.z, wb.z, wa.w, wb.w, l2, l3);
}

/* acc[j] = the sum over k in [k0, k1) for rows r0.. r0 + 15 and tokens
 * 8j .. 8j + 7 of x (tiles with no token below nt are left alone). LOADS:
 * k steps whose weights are loaded before any of them is used (scheduling
 * only: the order of the mma chain is the same for every LOADS). */
template <int NT, int LOADS>
__device__ __forceinline__ void slice_chain(const uint8_t *w, size_t row_bytes, int rows, int r0, const float *x,
                                            int cols, int nt, int k0, int k1, float (*acc)[4]) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const uint4 *ra = r0 + g < rows ? (const uint4 *)(w + (size_t)(r0 + g) * row_bytes) : NULL;
    const uint4 *rb = r0 + g + 8 < rows ? (const uint4 *)(w + (size_t)(r0 + g + 8) * row_bytes) : NULL;
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    const float4 fzero = make_float4(0, 0, 0, 0);
    for (int kb = k0; kb < k1; kb += 32 * LOADS) {
        uint4 wa[LOADS], wb[LOADS];
#pragma unroll
        for (int u = 0; u < LOADS; u++) {
            int k = kb + 32 * u + 8 * q;
            bool in = k < k1;
            wa[u] = in && ra ? __ldg(ra + k / 8) : zero;
            wb[u] = in && rb ? __ldg(rb + k / 8) : zero;
        }
#pragma unroll
        for (int u = 0; u < LOADS; u++) {
            if (kb + 32 * u >= k1) break;
            int k = kb + 32 * u + 8 * q;
#pragma unroll
            for (int j = 0; j < NT; j++) {
                if (8 * j >= nt) break;
                int tok = 8 * j + g;
                float4 xa = fzero, xb = fzero;
                if (tok < nt && k < k1) {
                    const float4 *xp = (const float4 *)(x + (size_t)tok * cols + k);
                    xa = __ldg(xp), xb = __ldg(xp + 1);
                }
                mma_step(acc[j], wa[u], wb[u], xa, xb);
            }
        }
    }
}

/* Stores c (tile j of rows r0..) as y[token][row] + bias. */
__device__ __forceinline__ void store_tile(const matmul_args &a, float *y, int r0, int tok0, int nt, const float *c) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int r = r0 + g + (i >= 2 ? 8 : 0), t = tok0 + 2 * q + (i & 1);
        if (r < a.rows && t < nt) y[(size_t)t * a.rows + r] = c[i] + (a.bias ? a.bias[r] : 0.0f);
    }
}

template <int NT>
__global__ void __launch_bounds__(NARROW_WARPS * 32) mma_narrow_kernel(const __grid_constant__ matmul_set set) {
    lg_cuda_kernel_begin();
    extern __shared__ float part[]; /* [slice][16 rows][8 NT tokens] */
    int block_x, t_begin, t_count;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    int t0 = blockIdx.y * 8 * NT;
    if (t0 >= t_count) return;
    int nt = min(8 * NT, t_count - t0), r0 = block_x * 16, warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    int steps, n_slices;
    slicing(a.cols, &steps, &n_slices);
    const float *x = a.x + (size_t)(t_begin + t0) * a.cols;
    if (warp < n_slices) {
        float acc[NT][4];
        int k0 = warp * steps * 32, k1 = min(a.cols, k0 + steps * 32);
        slice_chain<NT, 8>(w, a.row_bytes, a.rows, r0, x, a.cols, nt, k0, k1, acc);
        float *p = part + (size_t)warp * 16 * 8 * NT;
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int i = 0; i < 4; i++) p[(g + (i >= 2 ? 8 : 0)) * 8 * NT + 8 * j + 2 * q + (i & 1)] = acc[j][i];
    }
    __syncthreads();
    float *y = a.y + (size_t)(t_begin + t0) * a.rows;
    for (int i = threadIdx.x; i < 16 * 8 * NT; i += blockDim.x) {
        int r = r0 + i / (8 * NT), t = i % (8 * NT);
        float v = part[i];
        for (int s = 1; s < n_slices; s++) v += part[(size_t)s * 16 * 8 * NT + i];
        if (r < a.rows && t < nt) y[(size_t)t * a.rows + r] = v + (a.bias ? a.bias[r] : 0.0f);
    }
}

__global__ void __launch_bounds__(WIDE_WARPS * 32) mma_wide_kernel(const __grid_constant__ matmul_set set) {
    lg_cuda_kernel_begin();
    int block_x, t_begin, t_count;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    int t0 = blockIdx.y * 8 * WIDE_TILES;
    int r0 = (block_x * WIDE_WARPS + (threadIdx.x >> 5)) * 16;
    if (t0 >= t_count || r0 >= a.rows) return;
    int nt = min(8 * WIDE_TILES, t_count - t0);
    int steps, n_slices;
    slicing(a.cols, &steps, &n_slices);
    const float *x = a.x + (size_t)(t_begin + t0) * a.cols;
    float total[WIDE_TILES][4], acc[WIDE_TILES][4];
    for (int s = 0; s < n_slices; s++) {
        int k0 = s * steps * 32, k1 = min(a.cols, k0 + steps * 32);
        slice_chain<WIDE_TILES, 2>(w, a.row_bytes, a.rows, r0, x, a.cols, nt, k0, k1, acc);
#pragma unroll
        for (int j = 0; j < WIDE_TILES; j++)
#pragma unroll
            for (int i = 0; i < 4; i++) total[j][i] = s == 0 ? acc[j][i] : total[j][i] + acc[j][i];
    }
    float *y = a.y + (size_t)(t_begin + t0) * a.rows;
#pragma unroll
    for (int j = 0; j < WIDE_TILES; j++)
        if (8 * j < nt) store_tile(a, y, r0, 8 * j, nt, total[j]);
}


/* The narrow kernel's work for up to 8 tokens (decoding), streamed: each
 * block walks tiles (16 rows of one op, for one listed expert) with a
 * stride of the grid, each warp its slice of the tile's K in chunks of
 * LOADS steps, and the weights of the next chunk (the next tile's first
 * when this tile is done) are loaded while this one's mma steps run, so a
 * warp always has loads in flight. The arithmetic is the narrow kernel's:
 * per slice one chain of mma steps in k order from zero, slices added in
 * order through shared memory, so the results are bitwise the same. */
#define STREAM_LOADS 8

struct stream_tile {
    const matmul_args *a;
    const uint8_t *w;
    int r0, t_begin, nt, k0, k1, n_slices, n_chunks;
    bool live;
};

__device__ __forceinline__ stream_tile stream_tile_at(const matmul_set &set, int tile, int tiles_x) {
    stream_tile t;
    t.live = false, t.n_chunks = 0, t.a = &set.op[0], t.w = NULL, t.r0 = t.t_begin = t.nt = t.k0 = t.k1 = 0, t.n_slices = 0;
    int z = tile / tiles_x, x = tile % tiles_x, i = 0;
    while (i + 1 < set.n && x >= set.first_block[i + 1]) i++;
    const matmul_args &a = set.op[i];
    t.a = &a;
    int t_count = a.n_tokens;
    t.w = a.w;
    if (a.offsets) {
        if (z >= a.active[0]) return t;
        int e = a.active[1 + z];
        t.t_begin = a.offsets[e];
        t_count = a.offsets[e + 1] - t.t_begin;
        t.w = a.w_table[e];
    } else if (z != 0) {
        return t;
    }
    if (t_count <= 0) return t;
    t.nt = min(8, t_count);
    t.r0 = (x - set.first_block[i]) * 16;
    int steps;
    slicing(a.cols, &steps, &t.n_slices);
    int warp = threadIdx.x >> 5;
    t.k0 = warp * steps * 32, t.k1 = warp < t.n_slices ? min(a.cols, t.k0 + steps * 32) : t.k0;
    t.n_chunks = (steps + STREAM_LOADS - 1) / STREAM_LOADS; /* the same for every warp of the block */
    t.live = true;
    return t;
}

__device__ __forceinline__ void stream_load(const stream_tile &t, int chunk, uint4 *wa, uint4 *wb) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const matmul_args &a = *t.a;
    const uint4 *ra = t.r0 + g < a.rows ? (const uint4 *)(t.w + (size_t)(t.r0 + g) * a.row_bytes) : NULL;
    const uint4 *rb = t.r0 + g + 8 < a.rows ? (const uint4 *)(t.w + (size_t)(t.r0 + g + 8) * a.row_bytes) : NULL;
    int kb = t.k0 + chunk * 32 * STREAM_LOADS;
    const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < STREAM_LOADS; u++) {
        int k = kb + 32 * u + 8 * q;
        bool in = k < t.k1;
        wa[u] = in && ra ? __ldg(ra + k / 8) : zero;
        wb[u] = in && rb ? __ldg(rb + k / 8) : zero;
    }
}

/* One chunk of a streaming warp: the next chunk's weights are loaded into
 * (na, nb) (this tile's next chunk, or the first of the next live tile),
 * then this chunk's mma steps run on (wa, wb), as slice_chain takes them;
 * at a tile's last chunk the slices meet in shared memory and the outputs
 * are stored. Moves to the next chunk; false when there is none. The two
 * buffers swap roles from call to call, so no register waits on a load
 * it does not use yet. */
__device__ __forceinline__ bool stream_chunk(const matmul_set &set, int tiles_x, int n_tiles, int &tile, int &chunk,
                                             stream_tile &cur, float *acc, float *part, const uint4 (&wa)[STREAM_LOADS],
                                             const uint4 (&wb)[STREAM_LOADS], uint4 (&na)[STREAM_LOADS],
                                             uint4 (&nb)[STREAM_LOADS]) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    int next_tile = tile, next_chunk = chunk + 1;
    stream_tile nxt = cur;
    if (next_chunk >= cur.n_chunks) {
        next_chunk = 0;
        for (next_tile = tile + gridDim.x; next_tile < n_tiles; next_tile += gridDim.x)
            if ((nxt = stream_tile_at(set, next_tile, tiles_x)).live) break;
    }
    if (next_tile < n_tiles) stream_load(nxt, next_chunk, na, nb);
    const float *x = cur.a->x + (size_t)cur.t_begin * cur.a->cols;
    int kb = cur.k0 + chunk * 32 * STREAM_LOADS;
    const float4 fzero = make_float4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < STREAM_LOADS; u++) {
        if (kb + 32 * u >= cur.k1) break;
        int k = kb + 32 * u + 8 * q;
        float4 xa = fzero, xb = fzero;
        if (g < cur.nt && k < cur.k1) {
            const float4 *xp = (const float4 *)(x + (size_t)g * cur.a->cols + k);
            xa = __ldg(xp), xb = __ldg(xp + 1);
        }
        mma_step(acc, wa[u], wb[u], xa, xb);
    }
    if (chunk + 1 == cur.n_chunks) { /* the tile's slices meet in shared memory */
        if (warp < cur.n_slices)
#pragma unroll
            for (int i = 0; i < 4; i++) part[warp * 128 + (g + (i >= 2 ? 8 : 0)) * 8 + 2 * q + (i & 1)] = acc[i];
        __syncthreads();
        const matmul_args &a = *cur.a;
        float *y = a.y + (size_t)cur.t_begin * a.rows;
        for (int i = threadIdx.x; i < 128; i += blockDim.x) {
            int r = cur.r0 + i / 8, t = i % 8;
            float v = part[i];
            for (int sl = 1; sl < cur.n_slices; sl++) v += part[sl * 128 + i];
            if (r < a.rows && t < cur.nt) y[(size_t)t * a.rows + r] = v + (a.bias ? a.bias[r] : 0.0f);
        }
        __syncthreads();
        acc[0] = acc[1] = acc[2] = acc[3] = 0.0f;
    }
    if (next_tile >= n_tiles) return false;
    tile = next_tile, chunk = next_chunk, cur = nxt;
    return true;
}

__global__ void __launch_bounds__(NARROW_WARPS * 32, 1) mma_stream_kernel(const __grid_constant__ matmul_set set,
                                                                          int tiles_x, int n_tiles) {
    lg_cuda_kernel_begin();
    __shared__ float part[MMA_MAX_SLICES * 16 * 8];
    int tile = blockIdx.x;
    while (tile < n_tiles && !stream_tile_at(set, tile, tiles_x).live) tile += gridDim.x;
    if (tile >= n_tiles) return;
    stream_tile cur = stream_tile_at(set, tile, tiles_x);
    uint4 a0[STREAM_LOADS], b0[STREAM_LOADS], a1[STREAM_LOADS], b1[STREAM_LOADS];
    stream_load(cur, 0, a0, b0);
    int chunk = 0;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    while (stream_chunk(set, tiles_x, n_tiles, tile, chunk, cur, acc, part, a0, b0, a1, b1) &&
           stream_chunk(set, tiles_x, n_tiles, tile, chunk, cur, acc, part, a1, b1, a0, b0)) {
    }
}

static int stream_grid(void) {
    static int blocks = 0;
    if (!blocks) {
        int dev = 0, sms = 0, per_sm = 0;
        cudaGetDevice(&dev);
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, mma_stream_kernel, NARROW_WARPS * 32, 0);
        blocks = (sms > 0 ? sms : 1) * (per_sm > 0 ? per_sm : 1);
    }
    return blocks;
}

bool lg_cuda_mma_stream_enabled(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("LAGUNA_CUDA_STREAM");
        on = !(e && e[0] == '0');
    }
    return on;
}

bool lg_cuda_mma_enabled(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("LAGUNA_CUDA_MMA");
        on = !(e && e[0] == '0');
    }
    return on;
}

template <int NT>
static void launch_narrow(lg_cuda_ctx *k, const matmul_set &set, int max_tokens, int max_groups) {
    int blocks_y = (max_tokens + 8 * NT - 1) / (8 * NT);
    size_t smem = sizeof(float) * MMA_MAX_SLICES * 16 * 8 * NT;
    lg_cuda_launch(k, mma_narrow_kernel<NT>, dim3(set.first_block[set.n], blocks_y, max_groups), NARROW_WARPS * 32,
                   smem, set);
}

void lg_cuda_mma_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups) {
    if (set->n == 0 || max_tokens <= 0) return;
    /* (narrow for experts' products in a long prefill too, whose rows per
     * expert are few, measured slower: XS.2 prefill of 1024, 1737 -> 1391
     * tok/s on the H200) */
    bool wide = max_tokens > 8 * NARROW_MAX_TILES;
    int rows_per_block = wide ? 16 * WIDE_WARPS : 16;
    set->first_block[0] = 0;
    for (int i = 0; i < set->n; i++)
        set->first_block[i + 1] = set->first_block[i] + (set->op[i].rows + rows_per_block - 1) / rows_per_block;
    if (set->first_block[set->n] == 0) return;
    if (wide) {
        int blocks_y = (max_tokens + 8 * WIDE_TILES - 1) / (8 * WIDE_TILES);
        lg_cuda_launch(k, mma_wide_kernel, dim3(set->first_block[set->n], blocks_y, max_groups), WIDE_WARPS * 32, 0,
                       *set);
    } else if (max_tokens <= 8 && lg_cuda_mma_stream_enabled()) {
        int tiles_x = set->first_block[set->n], n_tiles = tiles_x * max_groups;
        int grid = stream_grid() < n_tiles ? stream_grid() : n_tiles;
        lg_cuda_launch(k, mma_stream_kernel, grid, NARROW_WARPS * 32, 0, *set, tiles_x, n_tiles);
    } else if (max_tokens <= 8) {
        launch_narrow<1>(k, *set, max_tokens, max_groups);
    } else if (max_tokens <= 16) {
        launch_narrow<2>(k, *set, max_tokens, max_groups);
    } else if (max_tokens <= 32) {
        launch_narrow<4>(k, *set, max_tokens, max_groups);
    } else {
        launch_narrow<8>(k, *set, max_tokens, max_groups);
    }
}
