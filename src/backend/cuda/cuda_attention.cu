/* Paged attention and KV writes on the GPU.
 *
 * One block of WARPS warps per (query row, head). Warp w takes positions
 * lo + w, lo + w + WARPS, ... in ascending order: its lanes read a key row
 * together (coalesced), the dot product is summed in a fixed butterfly, and
 * the warp keeps an online softmax (running max, sum, and each lane's
 * output dimensions). At the end the warps' partial results are merged in
 * warp order. Every choice depends on the row's own positions only, so a
 * row's result is the same in any batch. Positions earlier than the step
 * come from the pool through the row's page table; the step's own come from
 * its float32 key and value rows, as lg_attention_args says.
 *
 * The split form (used whenever the layer's shape allows: see
 * split_supported) is flash-decoding: a row's positions are cut into
 * chunks, one block per (row, KV head, chunk) computes every query head of
 * that KV group over its chunk (so each key and value row is read once for
 * the group), and a second kernel merges the chunks in order. How a row is
 * cut depends only on its own number of positions, so it too gives a row
 * the same result in any batch. */
#include "backend/cuda/cuda_internal.h"

#define WARPS 4
#define THREADS (WARPS * 32)
#define MAX_HEAD_DIM 512
#define PER_LANE (MAX_HEAD_DIM / 32)

struct attn_args {
    const uint8_t *pool;
    size_t page_bytes, row_bytes;
    int page_size, dtype;
    const int32_t *pos, *table_at, *pages, *fresh_from, *fresh_at, *fresh_rows;
    const float *q, *fresh_k, *fresh_v;
    float *out;
    int n_heads, n_kv_heads, head_dim, window;
    float scale;
};

/* Where head kv of the key (which 0) or value (1) row of position p starts,
 * and in which dtype. */
__device__ __forceinline__ const uint8_t *kv_row(const attn_args &a, int r, int p, int which, int kv, int *dtype,
                                                 int64_t *first) {
    if (p >= a.fresh_from[r]) {
        int row = a.fresh_rows[a.fresh_at[r] + p - a.fresh_from[r]];
        *dtype = LG_DTYPE_F32;
        *first = 0;
        return (const uint8_t *)((which ? a.fresh_v : a.fresh_k) + ((size_t)row * a.n_kv_heads + kv) * a.head_dim);
    }
    int page = a.pages[a.table_at[r] + p / a.page_size];
    *dtype = a.dtype;
    *first = (int64_t)kv * a.head_dim;
    return a.pool + (size_t)page * a.page_bytes + ((size_t)which * a.page_size + (size_t)(p % a.page_size)) * a.row_bytes;
}

__global__ void __launch_bounds__(THREADS) attention_kernel(attn_args a) {
    lg_cuda_kernel_begin();
    __shared__ float part_m[WARPS], part_l[WARPS];
    __shared__ float part_acc[WARPS][MAX_HEAD_DIM];
    int r = blockIdx.x, h = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, hd = a.head_dim;
    int kv = h / (a.n_heads / a.n_kv_heads);
    int pos = a.pos[r], lo = a.window > 0 ? max(pos - a.window + 1, 0) : 0;
    const float *q = a.q + ((size_t)r * a.n_heads + h) * hd;
    float qv[PER_LANE], acc[PER_LANE];
    for (int i = 0; i < PER_LANE; i++) {
        int e = lane + 32 * i;
        qv[i] = e < hd ? q[e] : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int p = lo + warp; p <= pos; p += WARPS) {
        int dtype;
        int64_t first;
        const uint8_t *krow = kv_row(a, r, p, 0, kv, &dtype, &first);
        float d = 0.0f;
        for (int i = 0; i < PER_LANE; i++) {
            int e = lane + 32 * i;
            if (e < hd) d = fmaf(qv[i], lg_load(dtype, krow, first + e), d);
        }
        for (int off = 16; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
        float s = d * a.scale, m_new = fmaxf(m, s);
        float rescale = expf(m - m_new), w = expf(s - m_new);
        l = l * rescale + w;
        const uint8_t *vrow = kv_row(a, r, p, 1, kv, &dtype, &first);
        for (int i = 0; i < PER_LANE; i++) {
            int e = lane + 32 * i;
            if (e < hd) acc[i] = fmaf(w, lg_load(dtype, vrow, first + e), acc[i] * rescale);
        }
        m = m_new;
    }
    if (lane == 0) part_m[warp] = m, part_l[warp] = l;
    for (int i = 0; i < PER_LANE; i++)
        if (lane + 32 * i < hd) part_acc[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    if (warp != 0) return;
    float gm = -INFINITY;
    for (int w = 0; w < WARPS; w++) gm = fmaxf(gm, part_m[w]);
    float gl = 0.0f;
    for (int w = 0; w < WARPS; w++) gl += part_m[w] == -INFINITY ? 0.0f : part_l[w] * expf(part_m[w] - gm);
    for (int i = 0; i < PER_LANE; i++) {
        int e = lane + 32 * i;
        if (e >= hd) continue;
        float o = 0.0f;
        for (int w = 0; w < WARPS; w++)
            if (part_m[w] != -INFINITY) o += part_acc[w][e] * expf(part_m[w] - gm);
        a.out[((size_t)r * a.n_heads + h) * hd + e] = o / gl;
    }
}


#define SPLIT_MAX_GROUP 16  /* query heads per KV head */
#define SPLIT_MAX_DIM 128
#define SPLIT_PER_LANE (SPLIT_MAX_DIM / 32)
#define SPLIT_MAX_CHUNKS 256
#define SPLIT_MIN_CHUNK 32

/* Chunks of a row with n positions: the same for a row in any batch. */
__host__ __device__ __forceinline__ int split_chunks(int n) {
    int c = (n + SPLIT_MIN_CHUNK - 1) / SPLIT_MIN_CHUNK;
    return c < SPLIT_MAX_CHUNKS ? c : SPLIT_MAX_CHUNKS;
}
__host__ __device__ __forceinline__ int split_chunk_len(int n) { return (n + split_chunks(n) - 1) / split_chunks(n); }

/* Partial results of a (row, head, chunk): running max, sum, then head_dim outputs. */
struct split_args {
    attn_args a;
    float *part;      /* [n_rows][n_heads][chunk_stride][head_dim + 2] */
    int chunk_stride; /* the launch's most chunks of a row */
};

template <int DT>
__device__ __forceinline__ float kv_load(bool fresh, const uint8_t *row, int64_t i) {
    return fresh ? ((const float *)row)[i] : lg_load(DT, row, i);
}

/* This lane's elements of head kv's key and value rows at position p. */
template <int DT>
__device__ __forceinline__ void load_kv(const attn_args &a, int r, int p, int kv, int lane, float *kx, float *vx) {
    int dtype;
    int64_t first;
    bool fresh = p >= a.fresh_from[r];
    const uint8_t *krow = kv_row(a, r, p, 0, kv, &dtype, &first);
#pragma unroll
    for (int i = 0; i < SPLIT_PER_LANE; i++) {
        int e = lane + 32 * i;
        kx[i] = e < a.head_dim ? kv_load<DT>(fresh, krow, first + e) : 0.0f;
    }
    const uint8_t *vrow = kv_row(a, r, p, 1, kv, &dtype, &first);
#pragma unroll
    for (int i = 0; i < SPLIT_PER_LANE; i++) {
        int e = lane + 32 * i;
        vx[i] = e < a.head_dim ? kv_load<DT>(fresh, vrow, first + e) : 0.0f;
    }
}

template <int DT>
__global__ void __launch_bounds__(THREADS) attention_split_kernel(split_args sa) {
    lg_cuda_kernel_begin();
    const attn_args &a = sa.a;
    __shared__ float q_s[SPLIT_MAX_GROUP][SPLIT_MAX_DIM];
    __shared__ float part_m[WARPS][SPLIT_MAX_GROUP], part_l[WARPS][SPLIT_MAX_GROUP];
    __shared__ float part_acc[WARPS][SPLIT_MAX_GROUP][SPLIT_MAX_DIM];
    int r = blockIdx.x, kvh = blockIdx.y, chunk = blockIdx.z;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, hd = a.head_dim, G = a.n_heads / a.n_kv_heads;
    int pos = a.pos[r], lo = a.window > 0 ? max(pos - a.window + 1, 0) : 0, n = pos - lo + 1;
    if (chunk >= split_chunks(n)) return;
    int len = split_chunk_len(n), begin = lo + chunk * len, end = min(begin + len - 1, pos);
    for (int i = threadIdx.x; i < G * hd; i += THREADS)
        q_s[i / hd][i % hd] = a.q[((size_t)r * a.n_heads + kvh * G + i / hd) * hd + i % hd];
    __syncthreads();
    float m[SPLIT_MAX_GROUP], l[SPLIT_MAX_GROUP], acc[SPLIT_MAX_GROUP][SPLIT_PER_LANE];
#pragma unroll
    for (int g = 0; g < SPLIT_MAX_GROUP; g++) {
        m[g] = -INFINITY, l[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < SPLIT_PER_LANE; i++) acc[g][i] = 0.0f;
    }
    /* the next position's key and value are loaded while this one is used */
    float kx[SPLIT_PER_LANE], vx[SPLIT_PER_LANE];
    int p = begin + warp;
    if (p <= end) load_kv<DT>(a, r, p, kvh, lane, kx, vx);
    for (; p <= end; p += WARPS) {
        float kn[SPLIT_PER_LANE], vn[SPLIT_PER_LANE];
        if (p + WARPS <= end) load_kv<DT>(a, r, p + WARPS, kvh, lane, kn, vn);
#pragma unroll
        for (int g = 0; g < SPLIT_MAX_GROUP; g++) {
            if (g >= G) break;
            float d = 0.0f;
#pragma unroll
            for (int i = 0; i < SPLIT_PER_LANE; i++) {
                int e = lane + 32 * i;
                if (e < hd) d = fmaf(q_s[g][e], kx[i], d);
            }
            for (int off = 16; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
            float s = d * a.scale, m_new = fmaxf(m[g], s);
            float rescale = expf(m[g] - m_new), w = expf(s - m_new);
            l[g] = l[g] * rescale + w;
#pragma unroll
            for (int i = 0; i < SPLIT_PER_LANE; i++) acc[g][i] = fmaf(w, vx[i], acc[g][i] * rescale);
            m[g] = m_new;
        }
#pragma unroll
        for (int i = 0; i < SPLIT_PER_LANE; i++) kx[i] = kn[i], vx[i] = vn[i];
    }
#pragma unroll
    for (int g = 0; g < SPLIT_MAX_GROUP; g++) {
        if (g >= G) break;
        if (lane == 0) part_m[warp][g] = m[g], part_l[warp][g] = l[g];
#pragma unroll
        for (int i = 0; i < SPLIT_PER_LANE; i++)
            if (lane + 32 * i < hd) part_acc[warp][g][lane + 32 * i] = acc[g][i];
    }
    __syncthreads();
    /* warps merged in warp order, one head per warp in turn */
    for (int g = warp; g < G; g += WARPS) {
        float gm = -INFINITY, gl = 0.0f;
        for (int w = 0; w < WARPS; w++) gm = fmaxf(gm, part_m[w][g]);
        for (int w = 0; w < WARPS; w++) gl += part_m[w][g] == -INFINITY ? 0.0f : part_l[w][g] * expf(part_m[w][g] - gm);
        float *dst = sa.part + (((size_t)r * a.n_heads + kvh * G + g) * sa.chunk_stride + chunk) * (hd + 2);
        if (lane == 0) dst[0] = gm, dst[1] = gl;
        for (int e = lane; e < hd; e += 32) {
            float o = 0.0f;
            for (int w = 0; w < WARPS; w++)
                if (part_m[w][g] != -INFINITY) o += part_acc[w][g][e] * expf(part_m[w][g] - gm);
            dst[2 + e] = o;
        }
    }
}

/* One block per (row, head): the row's chunks merged in chunk order. */
__global__ void attention_merge_kernel(split_args sa) {
    lg_cuda_kernel_begin();
    const attn_args &a = sa.a;
    int r = blockIdx.x, h = blockIdx.y, hd = a.head_dim;
    int pos = a.pos[r], lo = a.window > 0 ? max(pos - a.window + 1, 0) : 0, chunks = split_chunks(pos - lo + 1);
    const float *part = sa.part + ((size_t)r * a.n_heads + h) * sa.chunk_stride * (hd + 2);
    float gm = -INFINITY, gl = 0.0f;
    for (int c = 0; c < chunks; c++) gm = fmaxf(gm, part[c * (hd + 2)]);
    for (int c = 0; c < chunks; c++) {
        float pm = part[c * (hd + 2)];
        if (pm != -INFINITY) gl += part[c * (hd + 2) + 1] * expf(pm - gm);
    }
    for (int e = threadIdx.x; e < hd; e += blockDim.x) {
        float o = 0.0f;
        for (int c = 0; c < chunks; c++) {
            float pm = part[c * (hd + 2)];
            if (pm != -INFINITY) o += part[c * (hd + 2) + 2 + e] * expf(pm - gm);
        }
        a.out[((size_t)r * a.n_heads + h) * hd + e] = o / gl;
    }
}

static bool split_supported(const lg_attention_args *a, int pool_dtype) {
    int G = a->n_heads / a->n_kv_heads;
    bool dtype_ok = pool_dtype == LG_DTYPE_F32 || pool_dtype == LG_DTYPE_BF16 || pool_dtype == LG_DTYPE_F16 ||
                    pool_dtype == LG_DTYPE_Q8_0;
    return dtype_ok && G <= SPLIT_MAX_GROUP && a->head_dim <= SPLIT_MAX_DIM;
}

/* Rows go in groups so the partial results fit a bounded scratch. */
#define SPLIT_SCRATCH_BYTES ((size_t)256 << 20)

static void launch_split(lg_cuda_ctx *k, const attn_args &g, const lg_attention_args *a, int n) {
    int max_chunks = 1;
    for (int r = 0; r < n; r++) {
        int lo = a->window > 0 && a->pos[r] - a->window + 1 > 0 ? a->pos[r] - a->window + 1 : 0;
        int c = split_chunks(a->pos[r] - lo + 1);
        if (c > max_chunks) max_chunks = c;
    }
    int grid_chunks = 1; /* a power of two, so a recorded step's grid rarely changes (extra blocks return) */
    while (grid_chunks < max_chunks) grid_chunks *= 2;
    max_chunks = grid_chunks < SPLIT_MAX_CHUNKS ? grid_chunks : SPLIT_MAX_CHUNKS;
    size_t per_row = (size_t)a->n_heads * (size_t)max_chunks * (size_t)(a->head_dim + 2) * sizeof(float);
    size_t fit = SPLIT_SCRATCH_BYTES / per_row;
    int rows_per = fit < 1 ? 1 : fit < (size_t)n ? (int)fit : n;
    float *part = (float *)lg_cuda_scratch(k, per_row * (size_t)rows_per);
    if (!part) return; /* sync() reports the failed allocation */
    for (int r0 = 0; r0 < n; r0 += rows_per) {
        int rows = n - r0 < rows_per ? n - r0 : rows_per;
        split_args sa;
        memset(&sa, 0, sizeof sa);
        sa.a = g, sa.part = part, sa.chunk_stride = max_chunks;
        sa.a.pos += r0, sa.a.table_at += r0, sa.a.fresh_from += r0, sa.a.fresh_at += r0;
        sa.a.q += (size_t)r0 * a->n_heads * a->head_dim;
        sa.a.out += (size_t)r0 * a->n_heads * a->head_dim;
        dim3 grid(rows, a->n_kv_heads, max_chunks);
        switch (g.dtype) {
        case LG_DTYPE_F32: lg_cuda_launch(k, attention_split_kernel<LG_DTYPE_F32>, grid, THREADS, 0, sa); break;
        case LG_DTYPE_BF16: lg_cuda_launch(k, attention_split_kernel<LG_DTYPE_BF16>, grid, THREADS, 0, sa); break;
        case LG_DTYPE_F16: lg_cuda_launch(k, attention_split_kernel<LG_DTYPE_F16>, grid, THREADS, 0, sa); break;
        default: lg_cuda_launch(k, attention_split_kernel<LG_DTYPE_Q8_0>, grid, THREADS, 0, sa); break;
        }
        lg_cuda_launch(k, attention_merge_kernel, dim3(rows, a->n_heads), 128, 0, sa);
    }
}

void lg_cuda_attention(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                       const lg_attention_args *a) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    int n = a->n_rows;
    if (n <= 0) return;
    /* the step's page tables, flattened: row r's pages start at table_at[r] */
    int32_t *table_at = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    size_t total = 0;
    for (int r = 0; r < n; r++) total += (size_t)(a->pos[r] / pool->page_size + 1);
    int32_t *pages = (int32_t *)malloc(sizeof(int32_t) * (total ? total : 1));
    if (!table_at || !pages) {
        free(table_at), free(pages);
        return;
    }
    size_t at = 0;
    for (int r = 0; r < n; r++) {
        int np = a->pos[r] / pool->page_size + 1;
        table_at[r] = (int32_t)at;
        memcpy(pages + at, a->tables[r], sizeof(int32_t) * (size_t)np);
        at += (size_t)np;
    }
    attn_args g;
    memset(&g, 0, sizeof g); /* padding too: a recorded step compares arguments bytewise */
    g.pool = pool->base;
    g.page_bytes = pool->page_bytes;
    g.row_bytes = pool->row_bytes;
    g.page_size = pool->page_size;
    g.dtype = pool->dtype;
    g.pos = (const int32_t *)lg_cuda_upload(k, a->pos, sizeof(int32_t) * n);
    g.table_at = (const int32_t *)lg_cuda_upload(k, table_at, sizeof(int32_t) * n);
    g.pages = (const int32_t *)lg_cuda_upload(k, pages, sizeof(int32_t) * total);
    g.fresh_from = (const int32_t *)lg_cuda_upload(k, a->fresh_from, sizeof(int32_t) * n);
    g.fresh_at = (const int32_t *)lg_cuda_upload(k, a->fresh_at, sizeof(int32_t) * n);
    g.fresh_rows = (const int32_t *)lg_cuda_upload(k, a->fresh_rows, sizeof(int32_t) * n);
    g.q = q;
    g.fresh_k = a->fresh_k;
    g.fresh_v = a->fresh_v;
    g.out = out;
    g.n_heads = a->n_heads;
    g.n_kv_heads = a->n_kv_heads;
    g.head_dim = a->head_dim;
    g.window = a->window;
    g.scale = 1.0f / sqrtf((float)a->head_dim);
    free(table_at);
    free(pages);
    if (split_supported(a, pool->dtype)) launch_split(k, g, a, n);
    else lg_cuda_launch(k, attention_kernel, dim3(n, a->n_heads), THREADS, 0, g);
}

/* Grid (row, keys or values, slice): each thread converts one element (or
 * one Q8_0 block of 32, quantised as ggml does: scale amax/127, round)
 * into the row's pool slot, in the pool's dtype. */
#define KV_THREADS 128

__global__ void kv_write_kernel(uint8_t *pool, size_t page_bytes, size_t row_bytes, int page_size, int dtype,
                                int row_floats, const int32_t *slots, const float *k, const float *v) {
    lg_cuda_kernel_begin();
    int r = blockIdx.x, slot = slots[r], which = blockIdx.y, i = blockIdx.z * KV_THREADS + threadIdx.x;
    uint8_t *dst = pool + (size_t)(slot / page_size) * page_bytes + (size_t)(slot % page_size) * row_bytes +
                   (size_t)which * page_size * row_bytes;
    const float *src = (which ? v : k) + (size_t)r * row_floats;
    if (dtype == LG_DTYPE_Q8_0) {
        if (i >= row_floats / 32) return;
        float x[32], amax = 0.0f;
#pragma unroll
        for (int j = 0; j < 32; j++) x[j] = src[i * 32 + j], amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *blk = dst + (size_t)i * 34;
        *(__half *)blk = __float2half_rn(d);
#pragma unroll
        for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
        return;
    }
    if (i >= row_floats) return;
    if (dtype == LG_DTYPE_F32) ((float *)dst)[i] = src[i];
    else if (dtype == LG_DTYPE_BF16) ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(src[i]);
    else ((__half *)dst)[i] = __float2half_rn(src[i]);
}

void lg_cuda_kv_write(lg_backend_ctx *c, const lg_kv_pool_view *pool, const lg_kv_write_args *a, const float *k,
                      const float *v) {
    lg_cuda_ctx *x = LG_CUDA_CTX(c);
    if (a->n_rows <= 0) return;
    const int32_t *slots = (const int32_t *)lg_cuda_upload(x, a->slots, sizeof(int32_t) * (size_t)a->n_rows);
    int per_thread = pool->dtype == LG_DTYPE_Q8_0 ? 32 : 1;
    unsigned slices = (unsigned)((pool->row_floats / per_thread + KV_THREADS - 1) / KV_THREADS);
    lg_cuda_launch(x, kv_write_kernel, dim3(a->n_rows, 2, slices), KV_THREADS, 0, pool->base, pool->page_bytes, pool->row_bytes, pool->page_size,
                                                     pool->dtype, pool->row_floats, slots, k, v);
}
