/* Matrix products on the GPU: y[t] = W x[t] (+ bias), W in any weight dtype,
 * float32 arithmetic.
 *
 * One warp per weight row and group of up to TOKENS tokens: the warp streams
 * the row once (16-byte loads where the row allows), each lane multiplying
 * its slice of k into one accumulator per token, then the lanes' sums are
 * added in a fixed butterfly. Which lane takes which k, and the order of
 * every addition, depend only on the matrix, never on the batch, so a row's
 * result is the same in any batch. Decoding reads every weight byte once;
 * a prefill of n tokens reads them n / TOKENS times (from L2 when they fit).
 * Q8_0, Q4_K, Q5_K and Q6_K rows go block by block against 8-bit
 * activations in shared memory (cuda_quant_dot.h: integer dot products, a
 * few float operations per 16 weights): a one-token block quantises its x
 * itself; launches of several tokens a warp quantise each x once first
 * (qx_quantize_kernel) and their blocks copy their tokens' bytes, the same
 * bytes (each of an op's rows / WARPS blocks quantising its tokens again
 * cost as much as the products); other quantised types, rows wider than QX_MAX_COLS and
 * unaligned matrices element by element against float32 x (lg_load). Which
 * path a matrix takes depends on the matrix and x's alignment only, so a
 * token's result is the same alone and in any batch. One-token launches of
 * block-path matrices go to matmul_staged_kernel, whose warps copy their
 * rows into shared memory first (quant_rows_staged).
 *
 * The grouped form runs every expert of a sparse layer in one launch:
 * blockIdx.z picks the z-th expert that has rows (moe_group lists them on
 * the device), whose rows are [offsets[e], offsets[e+1]) of the grouped
 * activations; blocks past the listed experts or past an expert's rows
 * return at once, so the host never needs the routing. */
#include "backend/cuda/cuda_matmul.h"
#include "backend/cuda/cuda_async_copy.h"
#include "backend/cuda/cuda_norm.h"
#include "backend/cuda/cuda_quant_dot.h"

#define WARPS 8    /* rows per block */
#define TOKENS 8   /* tokens per warp */
#define THREADS (WARPS * 32)

/* A 16-byte chunk of a row as floats: 4 of F32, 8 of BF16 or F16. */
template <int DT>
__device__ __forceinline__ void chunk_floats(uint4 raw, float *out) {
    if (DT == LG_DTYPE_F32) {
        out[0] = __uint_as_float(raw.x), out[1] = __uint_as_float(raw.y);
        out[2] = __uint_as_float(raw.z), out[3] = __uint_as_float(raw.w);
        return;
    }
    uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint16_t lo = (uint16_t)(words[i] & 0xffff), hi = (uint16_t)(words[i] >> 16);
        if (DT == LG_DTYPE_BF16) {
            out[2 * i] = __uint_as_float((uint32_t)lo << 16), out[2 * i + 1] = __uint_as_float((uint32_t)hi << 16);
        } else {
            out[2 * i] = __half2float(__ushort_as_half(lo)), out[2 * i + 1] = __half2float(__ushort_as_half(hi));
        }
    }
}

#define UNROLL 8 /* 16-byte weight loads a lane has in flight */

/* acc + w[0..3] . x, one fmaf at a time in element order: the chain every
 * float product of a token and a row keeps (matmul_kernel and
 * matmul_float_rows_kernel give the same bits through it). */
__device__ __forceinline__ float fma4(const float *w, float4 x, float acc) {
    acc = fmaf(w[0], x.x, acc);
    acc = fmaf(w[1], x.y, acc);
    acc = fmaf(w[2], x.z, acc);
    return fmaf(w[3], x.w, acc);
}

/* acc[t] += chunk c of the row . the same elements of token t's x, element
 * by element in order (x rows are 16-byte aligned: see vector_width). */
template <int DT, int TOK>
__device__ __forceinline__ void fma_chunk(uint4 raw, const float *x, int cols, int c, int nt, float *acc) {
    constexpr int V = DT == LG_DTYPE_F32 ? 4 : 8;
    float wv[V];
    chunk_floats<DT>(raw, wv);
#pragma unroll
    for (int t = 0; t < TOK; t++) {
        if (t >= nt) break;
        const float4 *xt = (const float4 *)(x + (size_t)t * cols + (size_t)c * V);
#pragma unroll
        for (int j4 = 0; j4 < V / 4; j4++) acc[t] = fma4(wv + 4 * j4, xt[j4], acc[t]);
    }
}

/* A lane's chunks c, c + 32, ... in ascending order, UNROLL loads issued
 * before their arithmetic (the order of additions is the same as one chunk
 * at a time). */
template <int DT, int TOK>
__device__ __forceinline__ void row_dot_from(const uint4 *w, const float *x, int cols, int nt, int c, float *acc) {
    constexpr int V = DT == LG_DTYPE_F32 ? 4 : 8;
    int chunks = cols / V;
    for (; c + 32 * (UNROLL - 1) < chunks; c += 32 * UNROLL) {
        uint4 raw[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) raw[u] = __ldg(w + c + 32 * u);
#pragma unroll
        for (int u = 0; u < UNROLL; u++) fma_chunk<DT, TOK>(raw[u], x, cols, c + 32 * u, nt, acc);
    }
    for (; c < chunks; c += 32) fma_chunk<DT, TOK>(__ldg(w + c), x, cols, c, nt, acc);
}

/* The lane's chunks of a row from c = lane. */
template <int DT, int TOK>
__device__ __forceinline__ void row_dot(const uint8_t *row, const float *x, int cols, int nt, int lane, float *acc) {
    row_dot_from<DT, TOK>((const uint4 *)row, x, cols, nt, lane, acc);
}

/* The sum of v over the warp's lanes, in a fixed butterfly. */
__device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* One token, a quantised matrix on the block path: the warp's R rows from
 * r = (block_x * WARPS + warp) * R on (fewer at the matrix's end), QU units
 * a row in flight. A plain op's first units are loaded before waiting for
 * the previous kernel (weights never depend on it; a grouped op learns its
 * expert only after the wait) and stay in flight while the block quantises
 * the activations. */
template <typename U, int R, int QU>
__device__ __forceinline__ void quant_rows_1(const matmul_args &a, int block_x, int lane, int8_t *xq, float *xd) {
    int r = (block_x * WARPS + (int)(threadIdx.x >> 5)) * R;
    lg_quant_rows_1<U, R, QU> rows;
    rows.row_bytes = a.row_bytes, rows.units = a.cols / QUNIT, rows.n_rows = max(0, min(R, a.rows - r));
    bool early = !a.offsets;
    if (early) {
        rows.row0 = a.w + (size_t)r * a.row_bytes;
        rows.load(lane);
    }
    lg_cuda_kernel_begin();
    const uint8_t *w;
    int t_begin, t_count;
    if (!set_block_rows(a, &w, &t_begin, &t_count) || t_count <= 0) return;
    lg_qx_quantize_rows(a.x + (size_t)t_begin * a.cols, 1, a.cols, xq, xd);
    __syncthreads();
    if (rows.n_rows <= 0) return;
    if (!early) {
        rows.row0 = w + (size_t)r * a.row_bytes;
        rows.load(lane);
    }
    float acc[R];
#pragma unroll
    for (int i = 0; i < R; i++) acc[i] = 0.0f;
    rows.add(lane, xq, xd, acc);
    for (int u = lane + 32 * QU; u < rows.units; u += 32 * QU) {
        rows.load(u);
        rows.add(u, xq, xd, acc);
    }
    float *y = a.y + (size_t)t_begin * a.rows;
#pragma unroll
    for (int i = 0; i < R; i++) {
        float v = warp_sum(acc[i]);
        if (lane == i && i < rows.n_rows) y[r + i] = v + (a.bias ? a.bias[r + i] : 0.0f);
    }
}

/* quant_rows_1 with a.rows_per_warp rows (~8 units a lane in flight: QU = 8 / R). */
template <typename U>
__device__ __forceinline__ void quant_rows_1_any(const matmul_args &a, int block_x, int lane, int8_t *xq,
                                                 float *xd) {
    switch (a.rows_per_warp) {
    case 1: quant_rows_1<U, 1, 8>(a, block_x, lane, xq, xd); break;
    case 2: quant_rows_1<U, 2, 4>(a, block_x, lane, xq, xd); break;
    case 4: quant_rows_1<U, 4, 2>(a, block_x, lane, xq, xd); break;
    default: quant_rows_1<U, 8, 1>(a, block_x, lane, xq, xd); break;
    }
}

/* Shared-memory bytes a warp's copy of R rows takes: the rows and up to 15
 * bytes before the first (the copy starts at a 16-byte boundary). */
static int staged_rows_bytes(int rows, size_t row_bytes) {
    return (int)(((size_t)rows * row_bytes + 15 + 15) / 16 * 16);
}

/* Where a block's staged rows start in its shared memory: after the
 * activations (lg_qx_bytes), at a 16-byte boundary. */
__host__ __device__ __forceinline__ size_t staged_rows_at(int cols) {
    return (lg_qx_bytes(1, cols) + 15) / 16 * 16;
}

/* Copies the bytes [first, first + bytes) of a matrix that starts 16-byte
 * aligned into stage from the 16-byte boundary at or before first, 16
 * bytes a lane at a time (the last piece only up to the end: nothing past
 * the rows is read), as one cp.async group. Returns where first landed. */
__device__ __forceinline__ int stage_rows(const uint8_t *first, size_t bytes, uint8_t *stage, int lane) {
    uintptr_t from = (uintptr_t)first & ~(uintptr_t)15, end = (uintptr_t)first + bytes;
    int pieces = (int)((end - from + 15) / 16);
#pragma unroll 1
    for (int p = lane; p < pieces; p += 32) {
        uintptr_t src = from + 16 * (uintptr_t)p;
        cp_async16_n(stage + 16 * p, (const void *)src, (int)min((uintptr_t)16, end - src));
    }
    cp_async_commit();
    return (int)((uintptr_t)first & 15);
}

/* Whether an op goes block by block with 8-bit activations (vector_width). */
__host__ __device__ __forceinline__ bool quant_block_path(const matmul_args &a) {
    return a.vec && lg_quant_unit_align(a.dtype);
}

/* TOK: tokens per warp (TOKENS, or 1 for a step of one token: fewer
 * registers, more loads in flight; 2 blocks an SM, at most 128 registers:
 * 3 made the rows path spill and decode 11% slower on the H200). A block
 * of a quantised op first quantises its tokens' activations into shared
 * memory (lg_qx_quantize_rows), which all its warps read. */
template <int TOK>
__global__ void __launch_bounds__(THREADS, TOK == 1 ? 2 : 0) matmul_kernel(const __grid_constant__ matmul_set set) {
    extern __shared__ int4 qx_smem[];
    int block_x, t_begin, t_count, lane = threadIdx.x & 31;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    int8_t *xq = (int8_t *)qx_smem;
    float *xd = (float *)(xq + (size_t)TOK * a.cols);
    if (TOK == 1 && a.rows_per_warp) { /* waits for the previous kernel itself */
        lg_quant_with_unit(a.dtype, [&](auto unit) { quant_rows_1_any<decltype(unit)>(a, block_x, lane, xq, xd); });
        return;
    }
    lg_cuda_kernel_begin();
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    int r = block_x * WARPS + (threadIdx.x >> 5);
    bool quant = quant_block_path(a), has_row = r < a.rows;
    const uint8_t *row = w + (size_t)r * a.row_bytes;
    /* a grouped op's grid covers its typical expert: blocks loop over the rest */
    for (int t0 = blockIdx.y * TOK; t0 < t_count; t0 += gridDim.y * TOK) {
        int nt = min(TOK, t_count - t0);
        size_t tok = (size_t)(t_begin + t0);
        if (quant) {
            __syncthreads(); /* every warp is done with the previous tile's activations */
            if (a.xq) lg_qx_copy_rows(a.xq + tok * a.cols, a.xd + tok * (a.cols / QX_BLOCK), nt, a.cols, xq, xd);
            else lg_qx_quantize_rows(a.x + tok * a.cols, nt, a.cols, xq, xd);
            __syncthreads();
        }
        if (!has_row) continue;
        const float *x = a.x + tok * a.cols;
        float acc[TOK];
        for (int t = 0; t < TOK; t++) acc[t] = 0.0f;
        if (quant) {
            lg_quant_row_dot<TOK>(a.dtype, row, xq, xd, a.cols, nt, lane, acc);
        } else if (a.vec) {
            if (a.dtype == LG_DTYPE_F32) row_dot<LG_DTYPE_F32, TOK>(row, x, a.cols, nt, lane, acc);
            else if (a.dtype == LG_DTYPE_BF16) row_dot<LG_DTYPE_BF16, TOK>(row, x, a.cols, nt, lane, acc);
            else row_dot<LG_DTYPE_F16, TOK>(row, x, a.cols, nt, lane, acc);
        } else {
            for (int k = lane; k < a.cols; k += 32) {
                float wk = lg_load(a.dtype, row, k);
                for (int t = 0; t < nt; t++) acc[t] = fmaf(wk, x[(size_t)t * a.cols + k], acc[t]);
            }
        }
        for (int t = 0; t < TOK; t++) acc[t] = warp_sum(acc[t]);
        if (lane < nt) {
            float v = acc[0];
            for (int t = 1; t < TOK; t++)
                if (lane == t) v = acc[t];
            a.y[(tok + lane) * a.rows + r] = v + (a.bias ? a.bias[r] : 0.0f);
        }
    }
}

/* The residual add, the next norm and a float product of one token in one
 * launch (a decode step's router after the attention): x += y, h =
 * rmsnorm(x) w, out = M h. Every block (THREADS = NORM_THREADS threads, a
 * row of M a warp) norms the row itself from x and y (16 KB from L2)
 * instead of waiting for a norm kernel to finish, its warps' first weights
 * loaded before the programmatic-launch wait; block 0 writes h, and the
 * last block to have read x (counter, left at zero) writes x back. The norm
 * is rmsnorm_kernel<true>'s chain (cuda_norm.h) and each output
 * matmul_kernel<1>'s (row_dot's chunks in order, then warp_sum): the same
 * bits as the two launches. Rows of n <= NORM_PER_THREAD * NORM_THREADS. */
#define NORM_MATMUL_MAX (NORM_PER_THREAD * NORM_THREADS)

template <int DT>
__global__ void __launch_bounds__(THREADS) add_rmsnorm_matmul_kernel(float *x, const float *y, float *h,
                                                                     const float *nw, int n, float eps,
                                                                     const __grid_constant__ matmul_args a,
                                                                     unsigned *counter) {
    static_assert(THREADS == NORM_THREADS, "a block norms the row as rmsnorm_kernel's does");
    constexpr int V = DT == LG_DTYPE_F32 ? 4 : 8;
    __shared__ __align__(16) float hs[NORM_MATMUL_MAX];
    __shared__ bool last;
    int lane = threadIdx.x & 31, r = blockIdx.x * WARPS + (threadIdx.x >> 5);
    bool has_row = r < a.rows;
    const uint4 *w = (const uint4 *)(a.w + (size_t)(has_row ? r : 0) * a.row_bytes);
    int chunks = a.cols / V;
    uint4 first[UNROLL]; /* the lane's first chunks (lane + 32 u), loaded before the wait */
#pragma unroll
    for (int u = 0; u < UNROLL; u++)
        if (has_row && lane + 32 * u < chunks) first[u] = __ldg(w + lane + 32 * u);
    float xv[NORM_PER_THREAD], wv[NORM_PER_THREAD];
    norm_weights(wv, nw, n);
    lg_cuda_kernel_begin();
    double ss = 0;
#pragma unroll
    for (int u = 0; u < NORM_PER_THREAD; u++) {
        int i = threadIdx.x + u * NORM_THREADS;
        xv[u] = i < n ? x[i] : 0.0f;
        if (i < n) xv[u] += y[i];
    }
#pragma unroll
    for (int u = 0; u < NORM_PER_THREAD; u++) ss += (double)xv[u] * xv[u];
    float inv = norm_inverse(norm_block_sum(ss), n, eps);
#pragma unroll
    for (int u = 0; u < NORM_PER_THREAD; u++) {
        int i = threadIdx.x + u * NORM_THREADS;
        if (i >= n) continue;
        hs[i] = xv[u] * inv * wv[u];
        if (blockIdx.x == 0) h[i] = hs[i];
    }
    /* every thread of the block has its x (the norm's sum needed them all) */
    if (threadIdx.x == 0) last = atomicAdd(counter, 1u) == gridDim.x - 1;
    __syncthreads();
    if (last) {
#pragma unroll
        for (int u = 0; u < NORM_PER_THREAD; u++)
            if (threadIdx.x + u * NORM_THREADS < n) x[threadIdx.x + u * NORM_THREADS] = xv[u];
        if (threadIdx.x == 0) *counter = 0u;
    }
    if (!has_row) return;
    /* row_dot's chain, its first batch from the loads made early: whole, then row_dot's from the next; or
     * fewer than UNROLL chunks a lane, all of them loaded early */
    float acc[1] = {0.0f};
    bool whole = lane + 32 * (UNROLL - 1) < chunks;
#pragma unroll
    for (int u = 0; u < UNROLL; u++)
        if (lane + 32 * u < chunks) fma_chunk<DT, 1>(first[u], hs, a.cols, lane + 32 * u, 1, acc);
    if (whole) row_dot_from<DT, 1>(w, hs, a.cols, 1, lane + 32 * UNROLL, acc);
    float v = warp_sum(acc[0]);
    if (lane == 0) a.y[r] = v + (a.bias ? a.bias[r] : 0.0f);
}

/* Many tokens, a float matrix on the vector path (F32, or F16 / BF16 off the
 * tensor cores; a GGUF's router is F32): a warp takes FLOAT_ROWS rows x TOKENS
 * tokens, so each chunk's loads feed FLOAT_ROWS times the multiply-adds of
 * matmul_kernel's one row. Every output is the same chain as there (a lane's
 * chunks c = lane, lane + 32, .. in order, each element in order, then
 * warp_sum), so the same bits; only the loads are shared. */
#define FLOAT_ROWS 4

template <int DT>
__device__ __forceinline__ void float_rows_dot(const uint8_t *const *rows, const float *x, int cols, int nt, int lane,
                                               float (*acc)[TOKENS]) {
    constexpr int V = DT == LG_DTYPE_F32 ? 4 : 8;
    int chunks = cols / V;
    for (int c = lane; c < chunks; c += 32) {
        float wv[FLOAT_ROWS][V];
#pragma unroll
        for (int i = 0; i < FLOAT_ROWS; i++) chunk_floats<DT>(__ldg((const uint4 *)rows[i] + c), wv[i]);
#pragma unroll
        for (int t = 0; t < TOKENS; t++) {
            if (t >= nt) break;
            const float4 *xt = (const float4 *)(x + (size_t)t * cols + (size_t)c * V);
#pragma unroll
            for (int j4 = 0; j4 < V / 4; j4++) {
                float4 xv = xt[j4];
#pragma unroll
                for (int i = 0; i < FLOAT_ROWS; i++) acc[i][t] = fma4(wv[i] + 4 * j4, xv, acc[i][t]);
            }
        }
    }
}

/* Plain products only; blockIdx.x: WARPS x FLOAT_ROWS rows of an op,
 * blockIdx.y: token tiles (looping past the grid). */
__global__ void __launch_bounds__(THREADS) matmul_float_rows_kernel(const __grid_constant__ matmul_set set) {
    lg_cuda_kernel_begin();
    int block_x, lane = threadIdx.x & 31;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    int r0 = (block_x * WARPS + (int)(threadIdx.x >> 5)) * FLOAT_ROWS;
    if (r0 >= a.rows) return;
    const uint8_t *rows[FLOAT_ROWS]; /* rows past the matrix read its first row; their sums are dropped */
#pragma unroll
    for (int i = 0; i < FLOAT_ROWS; i++) rows[i] = a.w + (size_t)(r0 + i < a.rows ? r0 + i : 0) * a.row_bytes;
    static_assert(FLOAT_ROWS * TOKENS == 32, "a lane stores one output");
    int mine_row = r0 + lane / TOKENS, mine_tok = lane % TOKENS;
    for (int t0 = blockIdx.y * TOKENS; t0 < a.n_tokens; t0 += gridDim.y * TOKENS) {
        int nt = min(TOKENS, a.n_tokens - t0);
        const float *x = a.x + (size_t)t0 * a.cols;
        float acc[FLOAT_ROWS][TOKENS];
#pragma unroll
        for (int i = 0; i < FLOAT_ROWS; i++)
#pragma unroll
            for (int t = 0; t < TOKENS; t++) acc[i][t] = 0.0f;
        if (a.dtype == LG_DTYPE_F32) float_rows_dot<LG_DTYPE_F32>(rows, x, a.cols, nt, lane, acc);
        else if (a.dtype == LG_DTYPE_BF16) float_rows_dot<LG_DTYPE_BF16>(rows, x, a.cols, nt, lane, acc);
        else float_rows_dot<LG_DTYPE_F16>(rows, x, a.cols, nt, lane, acc);
        float mine = 0.0f;
#pragma unroll
        for (int i = 0; i < FLOAT_ROWS; i++)
#pragma unroll
            for (int t = 0; t < TOKENS; t++) {
                float v = warp_sum(acc[i][t]);
                if (lane == i * TOKENS + t) mine = v;
            }
        if (mine_row < a.rows && mine_tok < nt)
            a.y[(size_t)(t0 + mine_tok) * a.rows + mine_row] = mine + (a.bias ? a.bias[mine_row] : 0.0f);
    }
}

/* One token, the rows a warp takes staged in shared memory: the one-token
 * quantised products' fast path (quant_rows_1 stays for matrices it cannot
 * take). Why: quant_rows_1's R x QU unrolled unit dots are ~2k instructions
 * that a warp runs once, all fetched cold (no_instruction stalls,
 * docs/performance.md, thirteenth pass); here a warp copies its R =
 * rows_per_warp rows with cp.async (a plain op's before the
 * programmatic-launch wait, while the block quantises x) and adds their
 * units in rolled loops, a few hundred instructions that run many times:
 * the same units in the same order as quant_row_dot_t, so the same bits. */
template <typename U>
__device__ __forceinline__ void quant_rows_staged(const matmul_args &a, int block_x, int lane, int8_t *xq, float *xd,
                                                  uint8_t *stage) {
    int warp = (int)(threadIdx.x >> 5), r = (block_x * WARPS + warp) * a.rows_per_warp;
    int n_rows = max(0, min(a.rows_per_warp, a.rows - r)), units = a.cols / QUNIT, at = 0;
    size_t bytes = (size_t)n_rows * a.row_bytes;
    stage += (size_t)warp * a.stage_bytes;
    bool early = !a.offsets; /* a grouped op learns its expert only after the wait */
    if (early && n_rows > 0) at = stage_rows(a.w + (size_t)r * a.row_bytes, bytes, stage, lane);
    lg_cuda_kernel_begin();
    const uint8_t *w;
    int t_begin, t_count;
    if (!set_block_rows(a, &w, &t_begin, &t_count) || t_count <= 0) {
        cp_async_wait_all(); /* no copy outlives its block */
        return;
    }
    lg_qx_quantize_rows(a.x + (size_t)t_begin * a.cols, 1, a.cols, xq, xd);
    __syncthreads();
    if (n_rows <= 0) return;
    if (!early) at = stage_rows(w + (size_t)r * a.row_bytes, bytes, stage, lane);
    cp_async_wait_all();
    __syncwarp(); /* every lane's pieces visible to the whole warp */
    float mine = 0.0f;
#pragma unroll 1
    for (int i = 0; i < n_rows; i++) {
        const uint8_t *row = stage + at + (size_t)i * a.row_bytes;
        float acc = 0.0f;
#pragma unroll 1
        for (int u = lane; u < units; u += 32) {
            U unit;
            unit.template load<true>(row, u);
            acc = __fadd_rn(acc, unit.dot(u, xq, xd));
        }
        acc = warp_sum(acc);
        if (lane == i) mine = acc;
    }
    if (lane < n_rows) (a.y + (size_t)t_begin * a.rows)[r + lane] = mine + (a.bias ? a.bias[r + lane] : 0.0f);
}

/* The staged ops of a one-token launch: a kernel of its own, since its few
 * registers let 4 blocks share an SM, one block's copies in flight while
 * another's warps add. (Tried and not kept: persistent blocks, as many as
 * fit the GPU, each warp copying its next rows while adding the current
 * ones: the same per-kernel times under Nsight Compute and a slower decode,
 * docs/performance.md, fourteenth pass.) */
__global__ void __launch_bounds__(THREADS, 4) matmul_staged_kernel(const __grid_constant__ matmul_set set) {
    extern __shared__ int4 qx_smem[];
    int block_x, lane = threadIdx.x & 31;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    int8_t *xq = (int8_t *)qx_smem;
    float *xd = (float *)(xq + a.cols);
    uint8_t *stage = (uint8_t *)qx_smem + staged_rows_at(a.cols);
    lg_quant_with_unit(a.dtype, [&](auto unit) { quant_rows_staged<decltype(unit)>(a, block_x, lane, xq, xd, stage); });
}

/* Quantises rows [blockIdx.x * QX_ROWS_PER_BLOCK, ...) of x (n_rows x cols)
 * into xq / xd the way a product's block would (lg_qx_quantize_rows). */
#define QX_ROWS_PER_BLOCK 4
__global__ void __launch_bounds__(THREADS) qx_quantize_kernel(const float *x, int n_rows, int cols, int8_t *xq,
                                                             float *xd) {
    lg_cuda_kernel_begin();
    int r0 = blockIdx.x * QX_ROWS_PER_BLOCK, nr = min(QX_ROWS_PER_BLOCK, n_rows - r0);
    if (nr <= 0) return;
    lg_qx_quantize_rows(x + (size_t)r0 * cols, nr, cols, xq + (size_t)r0 * cols, xd + (size_t)r0 * (cols / QX_BLOCK));
}

/* Alignment of the matrix data the vector path needs. */
static int vector_align(lg_dtype dtype) {
    int quant = lg_quant_unit_align(dtype);
    return quant ? quant : 16;
}

/* Elements per 16-byte load for this matrix (per unit of the block path for
 * a quantised one), or 0 for one at a time (the vector path also reads x
 * four floats at a time). */
static int vector_width(lg_dtype dtype, int64_t cols, size_t row_bytes, const void *data, const float *x) {
    if (int align = lg_quant_unit_align(dtype)) {
        bool ok = cols % QX_BLOCK == 0 && cols <= QX_MAX_COLS && row_bytes % align == 0 &&
                  (uintptr_t)data % align == 0;
        return ok && (uintptr_t)x % 16 == 0 ? QUNIT : 0;
    }
    int per = dtype == LG_DTYPE_F32 ? 4 : dtype == LG_DTYPE_BF16 || dtype == LG_DTYPE_F16 ? 8 : 0;
    if (!per || cols % per || row_bytes % 16 || (uintptr_t)data % 16 || (uintptr_t)x % 16) return 0;
    return per;
}

/* Products to launch together (padding zeroed: see lg_cuda_launch): BF16
 * matrices that allow 16-byte loads go to the tensor-core kernel, the rest
 * to matmul_kernel; each kind is one launch. */
struct pending_set {
    matmul_set set;
    int max_tokens, max_groups;
};
struct set_builder {
    pending_set cores, mma;
};

static void pending_begin(pending_set *p) {
    memset(p, 0, sizeof *p);
    p->max_groups = 1;
}

static void set_begin(set_builder *b) {
    pending_begin(&b->cores);
    pending_begin(&b->mma);
}

/* Rows a warp takes in a launch of one token (0: one, the plain path).
 * LAGUNA_CUDA_QROWS=0 (measuring) keeps quantised matrices on the plain
 * path. (Tried on the H200 and not kept: a warp taking its rows in several
 * rounds, 2 or 4, decoded 5-15% slower; asking L2 for a plain op's rows
 * before the programmatic-launch wait changed nothing.) */
static int rows_per_warp(const matmul_args &a, int max_tokens) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_QROWS");
    return max_tokens == 1 && quant_block_path(a) && on ? lg_quant_rows_per_warp(a.cols) : 0;
}

/* A staged block's shared memory at most: x and its warps' copies. */
#define STAGED_SMEM_MAX (200 * 1024)

static size_t staged_smem(int cols, int bytes) { return staged_rows_at(cols) + (size_t)WARPS * bytes; }

/* Bytes of a warp's staged rows for an op with rows_per_warp set (0: the
 * rows go through registers, quant_rows_1): the matrix must start 16-byte
 * aligned (the copy starts at the boundary before a warp's first row) and
 * the block's copies fit STAGED_SMEM_MAX. LAGUNA_CUDA_QSTAGE=0 (measuring)
 * keeps registers. */
static int stage_bytes(const matmul_args &a) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_QSTAGE");
    if (!on || !a.rows_per_warp || !a.aligned16) return 0;
    int bytes = staged_rows_bytes(a.rows_per_warp, a.row_bytes);
    return staged_smem(a.cols, bytes) <= STAGED_SMEM_MAX ? bytes : 0;
}

/* Shared memory an op's block of matmul_kernel<TOK> needs: its activations,
 * and its warps' staged rows. */
template <int TOK> static size_t op_smem(const matmul_args &a) {
    if (!quant_block_path(a)) return 0;
    return a.stage_bytes ? staged_smem(a.cols, a.stage_bytes) : lg_qx_bytes(TOK, a.cols);
}

/* A launch of kernel (matmul_kernel<TOK> or matmul_staged_kernel) with
 * room for its ops' shared memory. */
template <int TOK> static void launch_tok(lg_cuda_ctx *k, void (*kernel)(matmul_set), const matmul_set &s, dim3 grid) {
    size_t smem = 0;
    for (int i = 0; i < s.n; i++)
        if (op_smem<TOK>(s.op[i]) > smem) smem = op_smem<TOK>(s.op[i]);
    lg_cuda_allow_smem(kernel, smem);
    lg_cuda_launch(k, kernel, grid, THREADS, smem, s);
}

/* Quantises, once for the launch, the activations of its ops on the quant
 * block path (ops reading the same x share one copy), so that a block
 * copies its tokens' bytes instead of quantising them again (each of an
 * op's rows / WARPS blocks would). Without room an op's blocks quantise
 * their own, which gives the same bytes. */
static void quantise_activations(lg_cuda_ctx *k, matmul_set *s) {
    int owner[SET_MAX], which[SET_MAX]; /* owner: the first op of each distinct x */
    int n_x = set_distinct_x(*s, [](const matmul_args &a) { return quant_block_path(a) && a.x_rows > 0; }, which, owner);
    size_t at[SET_MAX], need = 0;
    for (int j = 0; j < n_x; j++) {
        at[j] = need;
        need += (lg_qx_bytes(s->op[owner[j]].x_rows, s->op[owner[j]].cols) + 15) / 16 * 16;
    }
    uint8_t *base = n_x ? (uint8_t *)lg_cuda_scratch(k, need) : NULL;
    if (!base) return;
    for (int j = 0; j < n_x; j++) {
        const matmul_args &a = s->op[owner[j]];
        int8_t *q = (int8_t *)(base + at[j]);
        lg_cuda_launch(k, qx_quantize_kernel, dim3((a.x_rows + QX_ROWS_PER_BLOCK - 1) / QX_ROWS_PER_BLOCK), THREADS, 0,
                       a.x, a.x_rows, a.cols, q, (float *)(q + (size_t)a.x_rows * a.cols));
    }
    for (int i = 0; i < s->n; i++) {
        if (which[i] < 0) continue;
        matmul_args &a = s->op[i];
        a.xq = (const int8_t *)(base + at[which[i]]);
        a.xd = (const float *)(a.xq + (size_t)a.x_rows * a.cols);
    }
}

/* A launch of several tokens a warp over blocks_y token tiles (blocks loop
 * over tiles past the grid) and blocks_z listed experts. */
static void launch_tokens(lg_cuda_ctx *k, matmul_set *s, int blocks_y, int blocks_z) {
    s->first_block[0] = 0;
    for (int i = 0; i < s->n; i++) s->first_block[i + 1] = s->first_block[i] + (s->op[i].rows + WARPS - 1) / WARPS;
    if (!s->n || s->first_block[s->n] == 0 || blocks_y <= 0) return;
    quantise_activations(k, s);
    launch_tok<TOKENS>(k, matmul_kernel<TOKENS>, *s, dim3(s->first_block[s->n], blocks_y, blocks_z));
}

/* Whether a plain product of several tokens goes to matmul_float_rows_kernel:
 * a float matrix on the vector path, with tokens enough for its fewer,
 * fuller warps to fill the GPU (a decode batch keeps matmul_kernel). */
#define FLOAT_ROWS_MIN_TOKENS 256
static bool float_rows_path(const matmul_args &a) {
    return a.vec && !quant_block_path(a) && a.n_tokens >= FLOAT_ROWS_MIN_TOKENS;
}

static void launch_float_rows(lg_cuda_ctx *k, matmul_set *s, int blocks_y) {
    s->first_block[0] = 0;
    for (int i = 0; i < s->n; i++)
        s->first_block[i + 1] = s->first_block[i] + (s->op[i].rows + WARPS * FLOAT_ROWS - 1) / (WARPS * FLOAT_ROWS);
    if (s->first_block[s->n] > 0 && blocks_y > 0)
        lg_cuda_launch(k, matmul_float_rows_kernel, dim3(s->first_block[s->n], blocks_y, 1), THREADS, 0, *s);
}

/* A launch of one token a warp: rows_per_warp rows a warp (1 when 0). */
static void launch_one_token(lg_cuda_ctx *k, void (*kernel)(matmul_set), matmul_set *s, int max_groups) {
    s->first_block[0] = 0;
    for (int i = 0; i < s->n; i++) {
        int rows_per_block = WARPS * (s->op[i].rows_per_warp ? s->op[i].rows_per_warp : 1);
        s->first_block[i + 1] = s->first_block[i] + (s->op[i].rows + rows_per_block - 1) / rows_per_block;
    }
    if (s->n && s->first_block[s->n] > 0) launch_tok<1>(k, kernel, *s, dim3(s->first_block[s->n], 1, max_groups));
}

static void launch_cores(lg_cuda_ctx *k, pending_set *p) {
    matmul_set &s = p->set;
    lg_cuda_set_settle(k, &s);
    if (p->max_tokens > 1) {
        /* plain products over all their token tiles; grouped ones apart,
         * their grid sized for the typical expert (sized for an expert
         * holding every token, nearly all its blocks would start only to
         * find no rows) */
        matmul_set part;
        int most = set_pick_ops_if(s, [](const matmul_args &a) { return !a.offsets && !float_rows_path(a); }, &part);
        if (part.n && most > 0) launch_tokens(k, &part, (most + TOKENS - 1) / TOKENS, 1);
        most = set_pick_ops_if(s, [](const matmul_args &a) { return !a.offsets && float_rows_path(a); }, &part);
        if (part.n && most > 0) launch_float_rows(k, &part, (most + TOKENS - 1) / TOKENS);
        most = set_pick_ops(s, true, &part);
        if (part.n && most > 0) launch_tokens(k, &part, set_grouped_tiles(part, most, TOKENS), p->max_groups);
        pending_begin(p);
        return;
    }
    if (p->max_tokens == 1) {
        for (int i = 0; i < s.n; i++) {
            s.op[i].rows_per_warp = rows_per_warp(s.op[i], p->max_tokens);
            s.op[i].stage_bytes = stage_bytes(s.op[i]);
        }
        matmul_set part;
        set_pick_ops_if(s, [](const matmul_args &a) { return a.stage_bytes > 0; }, &part);
        launch_one_token(k, matmul_staged_kernel, &part, p->max_groups);
        set_pick_ops_if(s, [](const matmul_args &a) { return a.stage_bytes == 0; }, &part);
        launch_one_token(k, matmul_kernel<1>, &part, p->max_groups);
    }
    pending_begin(p);
}

static void launch_mma(lg_cuda_ctx *k, pending_set *p) {
    lg_cuda_mma_launch(k, &p->set, p->max_tokens, p->max_groups);
    pending_begin(p);
}

static void set_launch(lg_cuda_ctx *k, set_builder *b) {
    launch_cores(k, &b->cores);
    launch_mma(k, &b->mma);
}

/* Adds a product over n_groups expert groups (1 for a plain one). */
static void set_add(lg_cuda_ctx *k, set_builder *b, const matmul_args &a, int n_groups) {
    if (a.n_tokens <= 0 || a.rows <= 0) return;
    bool mma = a.dtype == LG_DTYPE_BF16 && a.vec == 8 && lg_cuda_mma_enabled();
    pending_set *p = mma ? &b->mma : &b->cores;
    if (p->set.n == SET_MAX) mma ? launch_mma(k, p) : launch_cores(k, p);
    matmul_args op = a;
    op.hi_only = mma && lg_cuda_bf16_activations(k);
    p->set.op[p->set.n++] = op;
    if (a.n_tokens > p->max_tokens) p->max_tokens = a.n_tokens;
    if (n_groups > p->max_groups) p->max_groups = n_groups;
}

/* Arguments with their padding zeroed (a recorded step compares them bytewise). */
static matmul_args plain_args(const lg_matrix *w, const float *x, float *y, int n_tokens, const float *bias, int vec) {
    matmul_args a;
    memset(&a, 0, sizeof a);
    a.w = w->data, a.row_bytes = w->row_bytes, a.dtype = (int)w->dtype, a.rows = (int)w->rows, a.cols = (int)w->cols;
    a.vec = vec, a.x = x, a.y = y, a.n_tokens = n_tokens, a.bias = bias, a.x_rows = n_tokens;
    a.aligned16 = (uintptr_t)w->data % 16 == 0;
    return a;
}

static void add_plain(lg_cuda_ctx *k, set_builder *b, const lg_matmul_op *o) {
    int vec = vector_width(o->w->dtype, o->w->cols, o->w->row_bytes, o->w->data, o->x);
    set_add(k, b, plain_args(o->w, o->x, o->y, o->n_tokens, o->bias, vec), 1);
}

void lg_cuda_matmul_many(lg_backend_ctx *c, const lg_matmul_op *ops, int n_ops) {
    set_builder b;
    set_begin(&b);
    for (int i = 0; i < n_ops; i++) add_plain(LG_CUDA_CTX(c), &b, &ops[i]);
    set_launch(LG_CUDA_CTX(c), &b);
}

/* add_rmsnorm then the product op (op->x is h): add_rmsnorm_matmul_kernel
 * for one token where the product alone would take matmul_kernel<1>'s
 * float path (not the tensor cores, not quantised), else the two ops.
 * LAGUNA_CUDA_NORM_MATMUL=0: the two ops (measuring). */
void lg_cuda_add_rmsnorm_matmul(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w, int n_rows,
                                int n, float eps, const lg_matmul_op *op) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_NORM_MATMUL");
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    const lg_matrix *m = op->w;
    int vec = op->n_tokens == 1 ? vector_width(m->dtype, m->cols, m->row_bytes, m->data, op->x) : 0;
    bool mma = m->dtype == LG_DTYPE_BF16 && vec == 8 && lg_cuda_mma_enabled();
    bool fits = on && n_rows == 1 && op->x == h && n == (int)m->cols && n <= NORM_MATMUL_MAX && m->rows > 0 &&
                k->norm_counter;
    if (!fits || !vec || mma || lg_quant_unit_align(m->dtype)) {
        lg_backend_add_rmsnorm_matmul_by_parts(c, x, y, h, w, n_rows, n, eps, op);
        return;
    }
    matmul_args a = plain_args(m, op->x, op->y, 1, op->bias, vec);
    unsigned blocks = (unsigned)((m->rows + WARPS - 1) / WARPS);
    if (m->dtype == LG_DTYPE_F32)
        lg_cuda_launch(k, add_rmsnorm_matmul_kernel<LG_DTYPE_F32>, blocks, THREADS, 0, x, y, h, w, n, eps, a,
                       k->norm_counter);
    else if (m->dtype == LG_DTYPE_BF16)
        lg_cuda_launch(k, add_rmsnorm_matmul_kernel<LG_DTYPE_BF16>, blocks, THREADS, 0, x, y, h, w, n, eps, a,
                       k->norm_counter);
    else
        lg_cuda_launch(k, add_rmsnorm_matmul_kernel<LG_DTYPE_F16>, blocks, THREADS, 0, x, y, h, w, n, eps, a,
                       k->norm_counter);
}

/* The device table of an expert list's gate, up and down pointers, made on
 * first use and kept for the context's life (weights never move). */
static const lg_expert_table *expert_table(lg_cuda_ctx *k, const lg_swiglu_weights *experts, int n) {
    for (int i = 0; i < k->n_tables; i++)
        if (k->tables[i].host == experts) return &k->tables[i];
    if (k->n_tables == k->cap_tables) {
        int cap = k->cap_tables ? 2 * k->cap_tables : 16;
        lg_expert_table *t = (lg_expert_table *)realloc(k->tables, sizeof *t * (size_t)cap);
        if (!t) return NULL;
        k->tables = t;
        k->cap_tables = cap;
    }
    const uint8_t **host = (const uint8_t **)malloc(sizeof *host * 3 * (size_t)n);
    const uint8_t **dev = NULL;
    if (!host || cudaMalloc(&dev, sizeof *dev * 3 * (size_t)n) != cudaSuccess) {
        free(host);
        return NULL;
    }
    lg_expert_table *t = &k->tables[k->n_tables];
    *t = (lg_expert_table){experts, dev, {0, 0, 0}};
    for (int e = 0; e < n; e++) {
        host[e] = experts[e].gate.data, host[n + e] = experts[e].up.data, host[2 * n + e] = experts[e].down.data;
        for (int which = 0; which < 3; which++) t->address_bits[which] |= (uintptr_t)host[which * n + e];
    }
    cudaMemcpyAsync(dev, host, sizeof *dev * 3 * (size_t)n, cudaMemcpyHostToDevice, k->stream);
    cudaStreamSynchronize(k->stream);
    free(host);
    k->n_tables++;
    return t;
}

/* Expert matrices share one shape and dtype; the vector path needs every
 * one of them aligned (the table knows their addresses' common alignment). */
static void grouped(lg_cuda_ctx *k, set_builder *b, const lg_expert_table *table, const lg_swiglu_weights *experts,
                    int which, const float *x, float *y, int max_rows, const int32_t *offsets, const int32_t *active,
                    int n_experts, int n_pairs, const lg_moe_args *pending = NULL) {
    const lg_matrix *m = which == 0 ? &experts[0].gate : which == 1 ? &experts[0].up : &experts[0].down;
    int vec = vector_width(m->dtype, m->cols, m->row_bytes, m->data, x);
    uintptr_t bits = table->address_bits[which];
    if (bits % (uintptr_t)vector_align(m->dtype)) vec = 0;
    matmul_args a = plain_args(m, x, y, max_rows, NULL, vec);
    a.aligned16 = a.aligned16 && bits % 16 == 0;
    a.w = NULL, a.w_table = table->dev + (size_t)which * n_experts, a.offsets = offsets, a.active = active;
    a.x_rows = n_pairs;
    int listed = n_pairs < n_experts ? n_pairs : n_experts;
    a.typical_rows = listed > 0 ? (n_pairs + listed - 1) / listed : 1;
    if (pending) /* x's rows are still h's: x_map, packed from h or gathered */
        a.x_from = pending->h, a.x_map = pending->plan->rows, a.x_map_div = pending->top_k;
    set_add(k, b, a, listed); /* at most that many experts have rows */
}

/* A prompt's experts' packing reads their pairs' rows of h through the
 * plan's rows, so moe_group gathers nothing: ~270 MB of gathered float rows
 * a layer at 4096 tokens of XS.2 neither written nor read (h itself, 32
 * MB, is read from L2 as often as it is chosen). On an H200, prefill of
 * 4096: +3.4-3.9% with bf16 activations, +1.9% without (thirty-ninth pass).
 * Every product path but the packed GEMM gathers the rows first
 * (lg_cuda_set_settle). LAGUNA_CUDA_MOE_READS_H=0: gathered (measuring). */
bool lg_cuda_moe_reads_h(lg_backend_ctx *c, int n, int top_k) {
    (void)c, (void)top_k;
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_MOE_READS_H");
    return on && lg_cuda_grouped_packed(n);
}

void lg_cuda_moe_experts(lg_backend_ctx *c, const lg_moe_args *a) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    int first, last, pairs = a->n_tokens * a->top_k;
    lg_moe_plan_experts(a->plan, a->n_experts, &first, &last); /* this device's experts */
    int E = last - first;
    const lg_swiglu_weights *experts = a->experts + first;
    size_t I = (size_t)experts[0].gate.rows;
    const lg_expert_table *table = expert_table(k, experts, E);
    /* offsets stay absolute grouped rows; the active list counts from first */
    const int32_t *off = a->plan->offsets + first, *act = k->moe_active;
    bool routed = table && pairs > 0;
    /* gate and up of the routed and the shared experts in one launch, the
     * two silu products, then both down products in one launch; an expert
     * has at most one pair per token, hence n_tokens rows at most */
    set_builder b;
    set_begin(&b);
    lg_matmul_op shared_gate = {a->shared_gate, a->h, a->n_tokens, a->shared ? &a->shared->gate : NULL, NULL};
    lg_matmul_op shared_up = {a->shared_up, a->h, a->n_tokens, a->shared ? &a->shared->up : NULL, NULL};
    lg_matmul_op shared_down = {a->shared_out, a->shared_gate, a->n_tokens, a->shared ? &a->shared->down : NULL, NULL};
    if (routed) {
        const lg_moe_args *pending = a->expert_in_pending ? a : NULL;
        grouped(k, &b, table, experts, 0, a->expert_in, a->act_gate, a->n_tokens, off, act, E, pairs, pending);
        grouped(k, &b, table, experts, 1, a->expert_in, a->act_up, a->n_tokens, off, act, E, pairs, pending);
    }
    if (a->shared) add_plain(k, &b, &shared_gate), add_plain(k, &b, &shared_up);
    set_launch(k, &b);
    lg_cuda_silu_mul_pair(c, a->act_gate, a->act_gate, a->act_up, routed ? (size_t)pairs * I : 0, a->shared_gate,
                          a->shared_gate, a->shared_up, a->shared ? (size_t)a->n_tokens * a->shared->gate.rows : 0);
    if (routed) grouped(k, &b, table, experts, 2, a->act_gate, a->expert_out, a->n_tokens, off, act, E, pairs);
    if (a->shared) add_plain(k, &b, &shared_down);
    set_launch(k, &b);
}
