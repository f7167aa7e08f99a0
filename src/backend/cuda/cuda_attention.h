/* What the chunked attention kernels share (cuda_attention.cu: float32
 * arithmetic on CUDA cores; cuda_attention_mma.cu: the same chunks on tensor
 * cores): the launch arguments, a row's window, the staging load and the
 * merge of a chunk's partial result into a row's running one. */
#ifndef LAGUNA_BACKEND_CUDA_ATTENTION_H
#define LAGUNA_BACKEND_CUDA_ATTENTION_H

#include "backend/cuda/cuda_internal.h"

#define CHUNK 32 /* keys per chunk */
#define CK_MAX_PAIRS 64 /* (row, query head) pairs of a tile */
#define MMA_MAX_PAIRS 128 /* of a prompt tile on tensor cores, 16 dim tiles (lg_cuda_attention_mma_max_pairs) */

struct chunk_args {
    const uint8_t *pool;
    size_t page_bytes, row_bytes;
    int page_size, dtype;
    int page_shift; /* log2(page_size) when a power of two, else -1 */
    const int32_t *pos, *fresh_from, *fresh_at, *fresh_rows, *pages; /* per step row; pages flat */
    const int4 *tiles; /* (first step row, rows, page table offset, 0) */
    const float *q, *fresh_k, *fresh_v;
    float *out;
    float *part;        /* split: [tile][KV head][chunk slot][pair slot][rec] */
    uint16_t *split_kv; /* the prompt kernel: the step's key and value rows as bf16 halves (cuda_attention_prompt.cu) */
    int split_rows;
    unsigned *counters; /* split, CUDA-core kernel: [tile][KV head], zero between launches */
    int split, chunk_slots, pair_slots, rec;
    int n_heads, n_kv_heads, head_dim, group;
    int window;
    int groups; /* grouped launches (lone rows): a row's chunks merge in at most ~this many groups */
    int early;  /* a block whose first chunk lies in the pool fetches it before waiting for the previous kernel */
    int hdp;    /* head_dim rounded up to 4 */
    int stride; /* floats per staged row: >= hdp, a multiple of 4 with stride / 4 odd */
    float scale;
    int hi_only; /* tensor-core kernels: q, the step's keys and values and the probabilities rounded to bf16
                  * (the bf16_activations option: one mma chain where three were) */
    const float *gate; /* the layer's output gate, applied as the outputs are written (attention_gated); NULL: none */
    int gate_per_head;
};

/* The output gate of one output head (rh = row * n_heads + head), as
 * attention_gated applies it while writing O / L: the value times softplus
 * of the head's gate value (per head) or of the element's, the multiply
 * output_gate's kernel does afterwards, so the same bits (and a prompt's
 * attention output is written once instead of written, read and written
 * again). */
struct head_gate {
    const float *elems; /* per element: the head's gate values */
    float factor;       /* per head: softplus of its value */
    bool on;
};

__device__ __forceinline__ head_gate head_gate_of(const float *gate, int per_head, int head_dim, size_t rh) {
    head_gate g = {NULL, 1.0f, gate != NULL};
    if (gate && per_head) g.factor = lg_softplus(gate[rh]);
    else if (gate) g.elems = gate + rh * head_dim;
    return g;
}

__device__ __forceinline__ float gated(const head_gate &g, int d, float v) {
    return g.on ? __fmul_rn(v, g.elems ? lg_softplus(g.elems[d]) : g.factor) : v;
}

__host__ __device__ __forceinline__ int row_lo(int pos, int window) {
    return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

/* Four packed bf16 (two per word, the lower first) as float32. */
__device__ __forceinline__ float4 bf16x4_float4(uint2 u) {
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
}

/* Position p's page in its sequence's table and its place in that page
 * (shifts for the usual power-of-two pages: a division is ~20 instructions,
 * and a decode block computes a few per chunk and thread). */
__device__ __forceinline__ int page_of(const chunk_args &a, int p) {
    return a.page_shift >= 0 ? p >> a.page_shift : p / a.page_size;
}
__device__ __forceinline__ int in_page(const chunk_args &a, int p) {
    return a.page_shift >= 0 ? p & (a.page_size - 1) : p % a.page_size;
}

/* The start of the key (which 0) or value (1) row at pool position p,
 * which lies in pool page `page`. */
__device__ __forceinline__ const uint8_t *pool_row(const chunk_args &a, int page, int p, int which) {
    return a.pool + (size_t)page * a.page_bytes + ((size_t)which * a.page_size + (size_t)in_page(a, p)) * a.row_bytes;
}

/* load4 of a position of the step itself (p >= fresh_from[r0]): from the
 * step's float32 key or value rows. */
__device__ __forceinline__ float4 fresh4(const chunk_args &a, int r0, int p, int which, int kvh, int d) {
    int hd = a.head_dim;
    int row = a.fresh_rows[a.fresh_at[r0] + p - a.fresh_from[r0]];
    const float *src = (which ? a.fresh_v : a.fresh_k) + ((size_t)row * a.n_kv_heads + kvh) * hd + d;
    if ((hd & 3) == 0) return *(const float4 *)src;
    float x[4];
#pragma unroll
    for (int i = 0; i < 4; i++) x[i] = d + i < hd ? src[i] : 0.0f;
    return make_float4(x[0], x[1], x[2], x[3]);
}

/* Elements d .. d + 3 (zero past head_dim) of KV head kvh of the key (which
 * 0) or value (1) row at position p of the tile's sequence, as float32. */
__device__ __forceinline__ float4 load4(const chunk_args &a, int r0, int table_at, int p, int which, int kvh,
                                        int d) {
    int hd = a.head_dim;
    float x[4];
    if (p >= a.fresh_from[r0]) return fresh4(a, r0, p, which, kvh, d);
    const uint8_t *row = pool_row(a, a.pages[table_at + page_of(a, p)], p, which);
    int64_t e = (int64_t)kvh * hd + d;
    if ((hd & 3) == 0 && a.dtype == LG_DTYPE_F32) return *(const float4 *)(row + e * 4);
    if ((hd & 3) == 0 && a.dtype == LG_DTYPE_BF16) {
        return bf16x4_float4(*(const uint2 *)(row + e * 2));
    }
#pragma unroll
    for (int i = 0; i < 4; i++) x[i] = d + i < hd ? lg_load(a.dtype, row, e + i) : 0.0f;
    return make_float4(x[0], x[1], x[2], x[3]);
}

/* load4 split in two, so that a chunk can be fetched while the previous
 * one is computed: fetch4 issues the load of a position before the step
 * (p < fresh_from) from its pool page, found beforehand, and keeps the raw
 * bits (a bf16 pool: four bf16 in .x and .y, *packed set); other rows come
 * from load4, as four float32. unpack4 makes float32 of them when they are
 * staged. The values are load4's, bit for bit. */
__device__ __forceinline__ uint4 fetch4(const chunk_args &a, int r0, int table_at, int page, int fresh_from, int p,
                                        int which, int kvh, int d, bool *packed) {
    int64_t e = (int64_t)kvh * a.head_dim + d;
    *packed = false;
    if ((a.head_dim & 3) == 0 && p < fresh_from && a.dtype == LG_DTYPE_BF16) {
        uint2 u = *(const uint2 *)(pool_row(a, page, p, which) + e * 2);
        *packed = true;
        return make_uint4(u.x, u.y, 0u, 0u);
    }
    if ((a.head_dim & 3) == 0 && p < fresh_from && a.dtype == LG_DTYPE_F32)
        return *(const uint4 *)(pool_row(a, page, p, which) + e * 4);
    float4 x = load4(a, r0, table_at, p, which, kvh, d);
    return make_uint4(__float_as_uint(x.x), __float_as_uint(x.y), __float_as_uint(x.z), __float_as_uint(x.w));
}

__device__ __forceinline__ float4 unpack4(uint4 r, bool packed) {
    if (packed) return bf16x4_float4(make_uint2(r.x, r.y));
    return make_float4(__uint_as_float(r.x), __uint_as_float(r.y), __uint_as_float(r.z), __uint_as_float(r.w));
}

/* A lone row's chunks [c_first, c_last] are merged in groups of this many
 * chunks at absolute chunk indices (group g: chunks g * size .. g * size +
 * size - 1): within a group in chunk order, then the groups in order. The
 * size depends on the row alone, so the row's bits do not depend on the
 * batch; a split launch gives each group a block, so the last block merges
 * at most ~`groups` records instead of one per chunk. */
__host__ __device__ __forceinline__ int group_size(int c_first, int c_last, int groups) {
    return (c_last - c_first + groups) / groups;
}

/* A chunk's (max m, sum l) into the running (M, L); *old_w and *new_w are
 * what the running outputs and the chunk's outputs are multiplied by:
 * O = fmaf(O, old_w, o * new_w). From the start (M = -inf, L = 0, O = 0) a
 * chunk is taken exactly (weights 0 and 1). */
__device__ __forceinline__ void merge_chunk(float &M, float &L, float m, float l, float *old_w, float *new_w) {
    float mn = fmaxf(M, m);
    *old_w = expf(__fsub_rn(M, mn));
    *new_w = expf(__fsub_rn(m, mn));
    L = fmaf(L, *old_w, __fmul_rn(l, *new_w));
    M = mn;
}

/* The chunks a block of a chunked launch takes, for its tile of positions
 * [pos0, pos_end]: the tile's chunks [c_first, c_last] (from lo0, the
 * first row's window start), as groups [g_first, g_last] of gs chunks (gs 1
 * unless grouped: a group is a chunk), and of them the ones it computes,
 * [c_begin, c_end]: all in a loop launch, group g_first + blockIdx.z in a
 * split one. False when that is past the last (the block has nothing to
 * do). */
struct block_span {
    int lo0, c_first, c_last, c_begin, c_end, gs, g_first, g_last;
};

__device__ __forceinline__ void chunk_span(const chunk_args &a, bool grouped, int pos0, int pos_end, block_span *b) {
    b->lo0 = row_lo(pos0, a.window);
    b->c_first = b->lo0 / CHUNK, b->c_last = pos_end / CHUNK, b->c_begin = b->c_first, b->c_end = b->c_last;
    b->gs = grouped ? group_size(b->c_first, b->c_last, a.groups) : 1;
    b->g_first = b->c_first / b->gs, b->g_last = b->c_last / b->gs;
}
__device__ __forceinline__ bool block_chunks(const chunk_args &a, bool grouped, int pos0, int pos_end,
                                             block_span *b) {
    chunk_span(a, grouped, pos0, pos_end, b);
    if (!a.split) return true;
    int g = b->g_first + (int)blockIdx.z;
    b->c_begin = max(g * b->gs, b->c_first), b->c_end = min(g * b->gs + b->gs - 1, b->c_last);
    return g <= b->g_last;
}

/* Whether a block's first chunk lies wholly in the pool (before the step's
 * own rows, which the previous kernel writes), so that the block fetches it
 * before waiting for that kernel. */
__device__ __forceinline__ bool first_chunk_pooled(const chunk_args &a, bool work, int c_begin, int pos_end,
                                                   int fresh_from) {
    return a.early && work && min(c_begin * CHUNK + CHUNK - 1, pos_end) < fresh_from;
}

/* A split launch, after a block wrote its chunk partials: whether it is the
 * last of its (tile, KV head)'s n_chunks blocks to finish, which then merges
 * them (it also resets the counter for the next launch). Every thread of
 * the block calls it. */
__device__ __forceinline__ bool last_to_finish(const chunk_args &a, int kvh, int n_chunks) {
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned *counter = a.counters + (size_t)blockIdx.x * a.n_kv_heads + kvh;
        unsigned done = atomicAdd(counter, 1u) + 1u;
        last = done == (unsigned)n_chunks;
        if (last) atomicExch(counter, 0u); /* every block has counted: ready for the next launch */
    }
    __syncthreads();
    if (!last) return false;
    __threadfence();
    return true;
}

/* The tensor-core kernel (cuda_attention_mma.cu): whether it takes a head
 * size (for lone rows or for the others), the record length of its split
 * partials, and a launch of grid (tiles, KV heads, chunk slots or 1) over
 * tiles of at most `pairs` pairs (ca.groups set: lone rows, merged in groups). */
bool lg_cuda_attention_mma_takes(int head_dim, bool lone_rows);
int lg_cuda_attention_mma_rec(int head_dim);
/* Most pairs of a prompt tile on tensor cores: MMA_MAX_PAIRS where the head
 * takes 16 dim tiles (16 warps a block), else CK_MAX_PAIRS. */
int lg_cuda_attention_mma_max_pairs(int head_dim);
void lg_cuda_attention_mma_launch(lg_cuda_ctx *k, dim3 grid, const chunk_args &ca, int pairs);
/* After a split launch of it over grid: its records merged into the outputs. */
void lg_cuda_attention_merge_launch(lg_cuda_ctx *k, dim3 grid, const chunk_args &ca);

/* Prompt tiles on the prompt kernel (cuda_attention_prompt.cu): whether it
 * takes a launch of tiles of at most `pairs` pairs; the scratch bytes its
 * split key and value rows take (lg_cuda_attention_split_fresh writes them
 * at ca.split_kv); and its launch. */
bool lg_cuda_attention_prompt_takes(const chunk_args &ca, int pairs);
size_t lg_cuda_attention_split_bytes(const chunk_args &ca, int n_rows);
void lg_cuda_attention_split_fresh(lg_cuda_ctx *k, const chunk_args &ca);
void lg_cuda_attention_prompt_launch(lg_cuda_ctx *k, dim3 grid, const chunk_args &ca);

#endif
