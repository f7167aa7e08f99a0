/* A layer's attention inputs in one launch (the attention_inputs op): what
 * rmsnorm of the q and k heads, rope of both and kv_write do in five.
 *
 * Grid (row, head slot): slots [0, n_heads) are query heads, then n_kv_heads
 * key heads, then n_kv_heads value heads; one thread per element of the
 * head. A query or key head is RMS-normed (sum of squares in double: lanes
 * by butterfly, warps in order), rotated ("rotate half" on its first n_rot
 * values, the angle formed in float32 as rope_kernel forms it) and stored
 * back; a key or value head is then written to its pool slot in the pool's
 * dtype, a Q8_0 block of 32 by one warp as kv_write_kernel quantises it. */
#include "backend/cuda/cuda_internal.h"

#define MAX_HEAD_DIM 1024

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

__global__ void attention_inputs_kernel(inputs_args a) {
    lg_cuda_kernel_begin();
    __shared__ double warp_sum[MAX_HEAD_DIM / 32];
    __shared__ float normed[MAX_HEAD_DIM];
    int r = blockIdx.x, slot = blockIdx.y, e = threadIdx.x, hd = a.head_dim;
    bool is_q = slot < a.n_heads, is_k = !is_q && slot < a.n_heads + a.n_kv_heads;
    int kv = is_q ? 0 : is_k ? slot - a.n_heads : slot - a.n_heads - a.n_kv_heads;
    float *src = is_q ? a.q + ((size_t)r * a.n_heads + slot) * hd
                      : (is_k ? a.k : (float *)a.v) + ((size_t)r * a.n_kv_heads + kv) * hd;
    bool in = e < hd;
    float x = in ? src[e] : 0.0f;
    if (is_q || is_k) {
        const float *w = is_q ? a.q_norm : a.k_norm;
        float wx = in ? w[e] : 0.0f;
        double ss = (double)x * x;
        for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
        if ((e & 31) == 0) warp_sum[e >> 5] = ss;
        __syncthreads();
        double total = 0;
        for (int wi = 0; wi < (int)(blockDim.x >> 5); wi++) total += warp_sum[wi];
        float inv = (float)(1.0 / sqrt(total / hd + a.eps));
        x = x * inv * wx;
        normed[e] = x;
        __syncthreads();
        int half = a.n_rot / 2;
        if (half > 0 && e < 2 * half) {
            int i = e < half ? e : e - half;
            float angle = (float)a.pos[r] * a.inv_freq[i];
            float co = cosf(angle) * a.rope_scale, si = sinf(angle) * a.rope_scale;
            float lo = normed[i], hi = normed[i + half];
            x = e < half ? lo * co - hi * si : hi * co + lo * si;
        }
        if (in) src[e] = x;
    }
    if (is_q || !a.pool) return;
    int slot_r = a.slots[r];
    uint8_t *row = a.pool + (size_t)(slot_r / a.page_size) * a.page_bytes + (size_t)(slot_r % a.page_size) * a.row_bytes +
                   (size_t)(is_k ? 0 : 1) * a.page_size * a.row_bytes;
    /* this head's values start at element kv * hd of the row (a whole Q8_0 block when hd % 32 == 0) */
    if (a.dtype == LG_DTYPE_Q8_0) store_kv(row + (size_t)(kv * hd / 32) * 34, a.dtype, e, x);
    else if (in) store_kv(row, a.dtype, kv * hd + e, x);
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
    int threads = (hd + 31) / 32 * 32;
    int slots = a->n_heads + (fused_write ? 2 : 1) * a->n_kv_heads; /* value heads only to be written */
    lg_cuda_launch(k, attention_inputs_kernel, dim3(n, slots), threads, 0, g);
    if (!fused_write) lg_cuda_kv_write(c, a->pool, &a->write, a->k, a->v);
}
