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
    int t0 = blockIdx.y * 8 * NT;
    if (t0 >= t_count) return;
    /* this op's blocks split its tiles evenly (the host sized them) */
    int tiles = (a.rows + 15) / 16, blocks = set.first_block[op + 1] - set.first_block[op];
    int per_block = (tiles + blocks - 1) / blocks, tile0 = block_x * per_block;
    int n_tiles = min(per_block, tiles - tile0);
    if (n_tiles <= 0) return;
    int nt = min(8 * NT, t_count - t0), warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    int per_slice, n_slices;
    slicing(a.cols, &per_slice, &n_slices);
    int k0 = warp * per_slice * 32, k1 = min(a.cols, k0 + per_slice * 32);
    int steps = warp < n_slices ? (k1 - k0 + 31) / 32 : 0; /* this warp's, per tile */
    int total = n_tiles * steps;
    const float *x = a.x + (size_t)(t_begin + t0) * a.cols;
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
                mma_step(acc[j], wa[u], wb[u], mma_split(xa, xb));
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
    float *y = a.y + (size_t)(t_begin + t0) * a.rows;
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
 * at most what the parked sums' shared memory holds. */
template <int NT, int LOADS>
static void launch_narrow(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups) {
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
    int blocks_y = (max_tokens + 8 * NT - 1) / (8 * NT);
    size_t smem = sizeof(float) * (size_t)narrow_tile_floats<NT>() * per;
    lg_cuda_launch(k, mma_narrow_kernel<NT, LOADS>,
                   dim3(set->first_block[set->n], blocks_y, max_groups), NARROW_WARPS * 32, smem,
                   *set);
}


/* One-shot blocks for up to 8 tokens (decoding): a block of 8 warps takes
 * one 16-row tile, warp w issues all the weight loads of its slice w at
 * once (8 steps at a time), multiplies, and the slices meet in shared
 * memory, in order. Measured on the H200 before the streaming form above
 * (XS.2 decode after 1024: 160 tok/s against 132-136 streaming): short
 * blocks of which two fit an SM turn over faster than streams keep their
 * loads in flight. The same chains, so the same bits. */
#define ONESHOT_LOADS 8

__global__ void __launch_bounds__(NARROW_WARPS * 32) mma_oneshot_kernel(const __grid_constant__ matmul_set set) {
    lg_cuda_kernel_begin();
    __shared__ float part[MMA_MAX_SLICES * 16 * 8]; /* [slice][16 rows][8 tokens] */
    int block_x, t_begin, t_count;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    if (t_count <= 0) return;
    int nt = min(8, t_count), r0 = block_x * 16, warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    int per_slice, n_slices;
    slicing(a.cols, &per_slice, &n_slices);
    const float *x = a.x + (size_t)t_begin * a.cols;
    if (warp < n_slices) {
        int k0 = warp * per_slice * 32, k1 = min(a.cols, k0 + per_slice * 32);
        const uint4 *ra = r0 + g < a.rows ? (const uint4 *)(w + (size_t)(r0 + g) * a.row_bytes) : NULL;
        const uint4 *rb = r0 + g + 8 < a.rows ? (const uint4 *)(w + (size_t)(r0 + g + 8) * a.row_bytes) : NULL;
        const uint4 zero = make_uint4(0, 0, 0, 0);
        const float4 fzero = make_float4(0, 0, 0, 0);
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int kb = k0; kb < k1; kb += 32 * ONESHOT_LOADS) {
            uint4 wa[ONESHOT_LOADS], wb[ONESHOT_LOADS];
#pragma unroll
            for (int u = 0; u < ONESHOT_LOADS; u++) {
                int k = kb + 32 * u + 8 * q;
                bool in = k < k1;
                wa[u] = in && ra ? __ldg(ra + k / 8) : zero;
                wb[u] = in && rb ? __ldg(rb + k / 8) : zero;
            }
#pragma unroll
            for (int u = 0; u < ONESHOT_LOADS; u++) {
                if (kb + 32 * u >= k1) break;
                int k = kb + 32 * u + 8 * q;
                float4 xa = fzero, xb = fzero;
                if (g < nt && k < k1) {
                    const float4 *xp = (const float4 *)(x + (size_t)g * a.cols + k);
                    xa = __ldg(xp), xb = __ldg(xp + 1);
                }
                mma_step(acc, wa[u], wb[u], mma_split(xa, xb));
            }
        }
#pragma unroll
        for (int i = 0; i < 4; i++) part[warp * 128 + (g + (i >= 2 ? 8 : 0)) * 8 + 2 * q + (i & 1)] = acc[i];
    }
    __syncthreads();
    float *y = a.y + (size_t)t_begin * a.rows;
    for (int i = threadIdx.x; i < 128; i += blockDim.x) {
        int r = r0 + i / 8, t = i % 8;
        float v = part[i];
        for (int s = 1; s < n_slices; s++) v += part[s * 128 + i];
        if (r < a.rows && t < nt) y[(size_t)t * a.rows + r] = v + (a.bias ? a.bias[r] : 0.0f);
    }
}

/* LAGUNA_CUDA_ONESHOT=0: one-token steps stream (launch_narrow) instead. */
static bool oneshot_enabled(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("LAGUNA_CUDA_ONESHOT");
        on = !(e && e[0] == '0');
    }
    return on;
}

static void launch_oneshot(lg_cuda_ctx *k, matmul_set *set, int max_groups) {
    set->first_block[0] = 0;
    for (int i = 0; i < set->n; i++) set->first_block[i + 1] = set->first_block[i] + (set->op[i].rows + 15) / 16;
    if (set->first_block[set->n] == 0) return;
    lg_cuda_launch(k, mma_oneshot_kernel, dim3(set->first_block[set->n], 1, max_groups), NARROW_WARPS * 32, 0, *set);
}

void lg_cuda_mma_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups) {
    if (set->n == 0 || max_tokens <= 0) return;
    if (max_tokens > 8 * NARROW_MAX_TILES) {
        lg_cuda_gemm_launch(k, set, max_tokens, max_groups);
        return;
    }
    if (max_tokens <= 8 && oneshot_enabled()) {
        launch_oneshot(k, set, max_groups);
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
