/* A layer's attention inputs in one launch (the attention_inputs op): what
 * rmsnorm of the q and k heads, rope of both and kv_write do in five.
 *
 * Head slots [0, n_heads) are query heads, then n_kv_heads key heads, then
 * n_kv_heads value heads. A query or key head is RMS-normed (its sum of
 * squares in double: lane l of a warp adds the squares of elements l, l +
 * 32, ... in turn from 0, then the lanes by butterfly), rotated ("rotate
 * half" on its first n_rot values, the angle formed in float32 as
 * rope_kernel forms it) and stored back; a key or value head is then
 * written to its pool slot in the pool's dtype, a Q8_0 block of 32 by one
 * warp as kv_write_kernel quantises it.
 *
 * Two kernels, the same bits: a prompt's rows take inputs_per_row_kernel (a
 * block a row, a warp a slot at a time, the row's cosines and sines formed
 * once a warp), a decode step's few rows inputs_per_head_kernel (a block a
 * head, a thread an element: the heads' latency in parallel). The first
 * form was the second alone: at 4096 tokens 330k blocks of one head, two
 * block barriers and a cosine and sine per element, 383 us a layer on an
 * H100 for ~300 MB of traffic (160 us now); a decode step on the first
 * kernel alone was ~2.5 us a layer slower. */
#include "backend/cuda/cuda_internal.h"

#define MAX_HEAD_DIM 1024
#define INPUTS_WARPS 8
#define INPUTS_FEW_ROWS 64 /* up to this many rows: inputs_per_head_kernel */

struct inputs_args {
    float *q, *k;
    const float *v;
    int n_heads, n_kv_heads, head_dim;
    const float *q_norm, *k_norm;
    float eps;
    int n_rot;
    const float *inv_freq;
    float rope_scale;
    const int32_t *pos, *slots;
    uint8_t *pool;
    size_t page_bytes, row_bytes;
    int page_size, dtype;
};

/* Value x (element e of a warp-aligned row segment) into a pool row of dtype. */
__device__ __forceinline__ void store_kv(uint8_t *row, int dtype, int e, float x) {
    if (dtype == LG_DTYPE_Q8_0) {
        float amax = fabsf(x);
        for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
        float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *blk = row + (size_t)(e / 32) * 34;
        if ((e & 31) == 0) *(__half *)blk = __float2half_rn(d);
        blk[2 + (e & 31)] = (uint8_t)(int8_t)roundf(x * id);
    } else if (dtype == LG_DTYPE_F32) {
        ((float *)row)[e] = x;
    } else if (dtype == LG_DTYPE_BF16) {
        ((__nv_bfloat16 *)row)[e] = __float2bfloat16_rn(x);
    } else {
        ((__half *)row)[e] = __float2half_rn(x);
    }
}

/* Head slot `slot` of row r: which kind it is and its floats. */
struct inputs_head_ref {
    bool is_q, is_k;
    int kv; /* the key or value head */
    float *src;
};

__device__ __forceinline__ inputs_head_ref inputs_head_of(const inputs_args &a, int r, int slot) {
    inputs_head_ref h;
    h.is_q = slot < a.n_heads, h.is_k = !h.is_q && slot < a.n_heads + a.n_kv_heads;
    h.kv = h.is_q ? 0 : h.is_k ? slot - a.n_heads : slot - a.n_heads - a.n_kv_heads;
    h.src = h.is_q ? a.q + ((size_t)r * a.n_heads + slot) * a.head_dim
                   : (h.is_k ? a.k : (float *)a.v) + ((size_t)r * a.n_kv_heads + h.kv) * a.head_dim;
    return h;
}

/* The pool row a key or value slot of row r is written to (NULL: a query
 * slot, or no pool to write); looked up once the head is prepared, so the
 * address is not held across the norm. */
__device__ __forceinline__ uint8_t *inputs_pool_row(const inputs_args &a, int r, const inputs_head_ref &h) {
    if (h.is_q || !a.pool) return NULL;
    int slot_r = a.slots[r];
    return a.pool + (size_t)(slot_r / a.page_size) * a.page_bytes + (size_t)(slot_r % a.page_size) * a.row_bytes +
           (size_t)(h.is_k ? 0 : 1) * a.page_size * a.row_bytes;
}

/* Element e of key or value head kv into its pool row: the head's values
 * start at element kv * head_dim (a whole Q8_0 block when head_dim % 32 ==
 * 0). Every lane of the warp calls it for a Q8_0 row (the block's scale
 * takes the warp), whether e is in the head (in) or not. */
__device__ __forceinline__ void store_head_kv(const inputs_args &a, uint8_t *row, int kv, int e, bool in, float x) {
    if (a.dtype == LG_DTYPE_Q8_0) store_kv(row + (size_t)(kv * a.head_dim / 32) * 34, a.dtype, e, x);
    else if (in) store_kv(row, a.dtype, kv * a.head_dim + e, x);
}

/* Element lo (first) or hi of a rotated pair, its roundings written out so
 * that both kernels give the same bits whatever the compiler would fuse. */
__device__ __forceinline__ float rotated(bool first, float lo, float hi, float co, float si) {
    return first ? __fsub_rn(__fmul_rn(lo, co), __fmul_rn(hi, si)) : __fadd_rn(__fmul_rn(hi, co), __fmul_rn(lo, si));
}

/* The rotation factors of row r for rope pairs [0, half), by one warp into
 * its co and si (formed as rope_kernel forms them). */
__device__ __forceinline__ void inputs_factors(const inputs_args &a, int r, float *co, float *si) {
    int half = a.n_rot / 2;
    float p = (float)a.pos[r];
    for (int i = threadIdx.x & 31; i < half; i += 32) {
        float angle = p * a.inv_freq[i];
        co[i] = cosf(angle) * a.rope_scale, si[i] = sinf(angle) * a.rope_scale;
    }
}

/* One head slot of row r by one warp, CH chunks of 32 elements at most
 * (head_dim <= 32 CH): its values and norm weights read into registers at
 * once, the warp's rotation factors formed meanwhile when `factors` (the
 * warp's first slot of the row); normed: the warp's head_dim floats. */
template <int CH>
__device__ void inputs_head(const inputs_args &a, int r, int slot, float *normed, float *co, float *si, bool factors) {
    int lane = threadIdx.x & 31, hd = a.head_dim;
    inputs_head_ref h = inputs_head_of(a, r, slot);
    float *src = h.src;
    bool normed_head = h.is_q || h.is_k;
    const float *w = h.is_q ? a.q_norm : a.k_norm;
    float xv[CH], wv[CH];
#pragma unroll
    for (int j = 0; j < CH; j++) {
        int e = 32 * j + lane;
        xv[j] = e < hd ? src[e] : 0.0f;
        wv[j] = normed_head && e < hd ? w[e] : 0.0f;
    }
    if (factors) inputs_factors(a, r, co, si);
    int half = a.n_rot / 2;
    if (normed_head) {
        double ss = 0;
#pragma unroll
        for (int j = 0; j < CH; j++) ss += (double)xv[j] * xv[j];
        for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
        float inv = (float)(1.0 / sqrt(ss / hd + a.eps));
#pragma unroll
        for (int j = 0; j < CH; j++) {
            xv[j] = xv[j] * inv * wv[j];
            if (32 * j + lane < hd) normed[32 * j + lane] = xv[j];
        }
    }
    __syncwarp(); /* normed, and the factors */
    uint8_t *row = inputs_pool_row(a, r, h);
#pragma unroll
    for (int j = 0; j < CH; j++) { /* every lane runs every chunk: a Q8_0 block's scale takes the warp */
        int e = 32 * j + lane;
        if (32 * j >= hd) break;
        bool in = e < hd;
        float x = xv[j];
        if (normed_head) {
            if (half > 0 && e < 2 * half) {
                int i = e < half ? e : e - half;
                float lo = normed[i], hi = normed[i + half];
                x = rotated(e < half, lo, hi, co[i], si[i]);
            }
            if (in) src[e] = x;
        }
        if (!row) continue;
        store_head_kv(a, row, h.kv, e, in, x);
    }
    __syncwarp(); /* normed is the warp's next slot's */
}

/* A prompt's rows: a block per row, a warp taking every INPUTS_WARPS-th
 * slot. Shared memory a warp: head_dim floats for the normed head, then n_rot
 * / 2 cosines and as many sines. */
template <int CH>
__global__ void __launch_bounds__(32 * INPUTS_WARPS) inputs_per_row_kernel(inputs_args a, int slots) {
    lg_cuda_kernel_begin();
    extern __shared__ float inputs_smem[];
    int r = blockIdx.x, half = a.n_rot / 2, warp = threadIdx.x >> 5;
    float *normed = inputs_smem + (size_t)warp * (a.head_dim + 2 * half), *co = normed + a.head_dim, *si = co + half;
    for (int slot = warp; slot < slots; slot += INPUTS_WARPS) inputs_head<CH>(a, r, slot, normed, co, si, slot == warp);
}

/* A decode step's rows (few): a block per (row, slot), a thread per element,
 * every slot's latency in parallel (the warp-a-slot kernel above ran a
 * decode step ~2.5 us a layer slower on an H100). The sum of squares is
 * formed in the other kernel's order (lane l: its elements l, l + 32, ...
 * in turn, from 0, in double; then the butterfly), so a row gets the same
 * bits from either, whatever else shares its step. */
__global__ void inputs_per_head_kernel(inputs_args a) {
    lg_cuda_kernel_begin();
    __shared__ double squares[MAX_HEAD_DIM];
    __shared__ float normed[MAX_HEAD_DIM];
    __shared__ float inv_rms;
    int r = blockIdx.x, e = threadIdx.x, hd = a.head_dim;
    inputs_head_ref h = inputs_head_of(a, r, blockIdx.y);
    float *src = h.src;
    bool in = e < hd;
    float x = in ? src[e] : 0.0f;
    if (h.is_q || h.is_k) {
        const float *w = h.is_q ? a.q_norm : a.k_norm;
        float wx = in ? w[e] : 0.0f;
        int half = a.n_rot / 2, i = e < half ? e : e - half;
        float co = 0.0f, si = 0.0f;
        if (half > 0 && e < 2 * half) {
            float angle = (float)a.pos[r] * a.inv_freq[i];
            co = cosf(angle) * a.rope_scale, si = sinf(angle) * a.rope_scale;
        }
        if (in) squares[e] = (double)x * x;
        __syncthreads();
        if (e < 32) {
            double ss = 0;
            for (int j = e; j < hd; j += 32) ss += squares[j];
            for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
            if (e == 0) inv_rms = (float)(1.0 / sqrt(ss / hd + a.eps));
        }
        __syncthreads();
        x = x * inv_rms * wx;
        if (in) normed[e] = x;
        __syncthreads();
        if (half > 0 && e < 2 * half) {
            float lo = normed[i], hi = normed[i + half];
            x = rotated(e < half, lo, hi, co, si);
        }
        if (in) src[e] = x;
    }
    uint8_t *row = inputs_pool_row(a, r, h);
    if (!row) return;
    store_head_kv(a, row, h.kv, e, in, x);
}

void lg_cuda_attention_inputs(lg_backend_ctx *c, const lg_attention_inputs_args *a) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    int n = a->n_rows, hd = a->head_dim;
    if (n <= 0) return;
    bool q8 = a->pool->dtype == LG_DTYPE_Q8_0;
    bool fused_write = !q8 || hd % 32 == 0; /* a Q8_0 block must be one warp's */
    if (hd > MAX_HEAD_DIM || a->n_rot > hd) { /* the ops one by one */
        lg_backend_attention_inputs_by_parts(c, a);
        return;
    }
    inputs_args g;
    memset(&g, 0, sizeof g); /* padding too: a recorded step compares arguments bytewise */
    g.q = a->q, g.k = a->k, g.v = a->v;
    g.n_heads = a->n_heads, g.n_kv_heads = a->n_kv_heads, g.head_dim = hd;
    g.q_norm = a->q_norm, g.k_norm = a->k_norm, g.eps = a->eps;
    g.n_rot = a->n_rot, g.inv_freq = a->inv_freq, g.rope_scale = a->rope_scale;
    g.pos = (const int32_t *)lg_cuda_upload(k, a->pos, sizeof(int32_t) * (size_t)n);
    if (fused_write) {
        g.slots = (const int32_t *)lg_cuda_upload(k, a->write.slots, sizeof(int32_t) * (size_t)a->write.n_rows);
        g.pool = a->pool->base, g.page_bytes = a->pool->page_bytes, g.row_bytes = a->pool->row_bytes;
        g.page_size = a->pool->page_size, g.dtype = a->pool->dtype;
    }
    int slots = a->n_heads + (fused_write ? 2 : 1) * a->n_kv_heads; /* value heads only to be written */
    size_t smem = sizeof(float) * INPUTS_WARPS * ((size_t)hd + (size_t)(a->n_rot / 2) * 2);
    if (n <= INPUTS_FEW_ROWS) {
        lg_cuda_launch(k, inputs_per_head_kernel, dim3(n, slots), (hd + 31) / 32 * 32, 0, g);
    } else if (hd <= 128) {
        lg_cuda_launch(k, inputs_per_row_kernel<4>, n, 32 * INPUTS_WARPS, smem, g, slots);
    } else if (hd <= 256) {
        lg_cuda_launch(k, inputs_per_row_kernel<8>, n, 32 * INPUTS_WARPS, smem, g, slots);
    } else {
        lg_cuda_allow_smem(inputs_per_row_kernel<MAX_HEAD_DIM / 32>, smem);
        lg_cuda_launch(k, inputs_per_row_kernel<MAX_HEAD_DIM / 32>, n, 32 * INPUTS_WARPS, smem, g, slots);
    }
    if (!fused_write) lg_cuda_kv_write(c, a->pool, &a->write, a->k, a->v);
}
