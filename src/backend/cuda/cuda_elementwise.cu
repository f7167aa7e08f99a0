/* Row-wise and element-wise kernels of the CUDA backend: embedding rows,
 * RMSNorm, RoPE, the output gate, SiLU, residual adds, row gathers. Each
 * row is computed the same way whatever else is in the step. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_norm.h"

#define THREADS 256

static unsigned blocks_for(size_t n) { return (unsigned)((n + THREADS - 1) / THREADS); }

/* Grids of (row, slice of THREADS elements), one element per thread: a
 * block looping over a row serialises its loads behind its stores. */
static dim3 row_grid(int n_rows, int width) { return dim3((unsigned)n_rows, blocks_for((size_t)width)); }

/* A token -2 - j is row j of the step before's greedy tokens (a queued
 * step's, still on the device: backend.h, queue_argmax). */
__global__ void embed_kernel(float *x, const uint8_t *table, size_t row_bytes, int dtype, const int32_t *tokens,
                             const int32_t *previous, int n, int width) {
    lg_cuda_kernel_begin();
    int i = blockIdx.y * blockDim.x + threadIdx.x;
    int32_t t = tokens[blockIdx.x];
    if (t < 0) t = previous[-2 - t];
    if (i < width) x[(size_t)blockIdx.x * width + i] = lg_load(dtype, table + (size_t)t * row_bytes, i);
}

void lg_cuda_embed(lg_backend_ctx *c, float *x, const lg_matrix *table, const int32_t *tokens, int n) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (n <= 0) return;
    const int32_t *dt = (const int32_t *)lg_cuda_upload(k, tokens, sizeof(int32_t) * (size_t)n);
    lg_cuda_launch(k, embed_kernel, row_grid(n, (int)table->cols), THREADS, 0, x, table->data, table->row_bytes,
                   table->dtype, dt, (const int32_t *)k->argmax_dev, n, (int)table->cols);
}

/* One block per row; the sum of squares in double, reduced in a fixed
 * order (cuda_norm.h). A thread loads all its elements (and their weights)
 * before storing any (y may be x). With ADD, x += add first (written back)
 * and the norm is of the sum: the residual add and the next norm in one
 * launch. */
template <bool ADD>
__global__ void rmsnorm_kernel(float *y, float *x, const float *add, const float *w, int n, float eps) {
    float *xr = x + (size_t)blockIdx.x * n;
    const float *ar = ADD ? add + (size_t)blockIdx.x * n : NULL;
    float *yr = y + (size_t)blockIdx.x * n;
    float xv[NORM_PER_THREAD], wv[NORM_PER_THREAD];
    double ss = 0;
    norm_weights(wv, w, n);
    lg_cuda_kernel_begin();
#pragma unroll
    for (int u = 0; u < NORM_PER_THREAD; u++) {
        int i = threadIdx.x + u * NORM_THREADS;
        xv[u] = i < n ? xr[i] : 0.0f;
        if (ADD && i < n) xv[u] += ar[i];
    }
    for (int i = threadIdx.x + NORM_PER_THREAD * NORM_THREADS; i < n; i += NORM_THREADS) {
        float v = xr[i];
        if (ADD) xr[i] = v = v + ar[i];
        ss += (double)v * v;
    }
#pragma unroll
    for (int u = 0; u < NORM_PER_THREAD; u++) {
        ss += (double)xv[u] * xv[u];
        if (ADD && threadIdx.x + u * NORM_THREADS < n) xr[threadIdx.x + u * NORM_THREADS] = xv[u];
    }
    float inv = norm_inverse(norm_block_sum(ss), n, eps);
    for (int i = threadIdx.x + NORM_PER_THREAD * NORM_THREADS; i < n; i += NORM_THREADS) yr[i] = xr[i] * inv * w[i];
#pragma unroll
    for (int u = 0; u < NORM_PER_THREAD; u++) {
        int i = threadIdx.x + u * NORM_THREADS;
        if (i < n) yr[i] = xv[u] * inv * wv[u];
    }
}

void lg_cuda_rmsnorm(lg_backend_ctx *c, float *y, const float *x, const float *w, int n_rows, int n, float eps) {
    if (n_rows > 0)
        lg_cuda_launch(LG_CUDA_CTX(c), rmsnorm_kernel<false>, n_rows, NORM_THREADS, 0, y, (float *)x, (const float *)NULL, w,
                       n, eps);
}

void lg_cuda_add_rmsnorm(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w, int n_rows, int n,
                         float eps) {
    if (n_rows > 0) lg_cuda_launch(LG_CUDA_CTX(c), rmsnorm_kernel<true>, n_rows, NORM_THREADS, 0, h, x, y, w, n, eps);
}

/* Grid (row, group of heads); one thread per (head, rotated pair). */
__global__ void rope_kernel(float *rows, int n_heads, int head_dim, int n_rot, const float *inv_freq, float scale,
                            const int32_t *pos) {
    lg_cuda_kernel_begin();
    int half = n_rot / 2, t = blockIdx.x, per_block = blockDim.x / half;
    int h = blockIdx.y * per_block + threadIdx.x / half, i = threadIdx.x % half;
    if (threadIdx.x >= per_block * half || h >= n_heads) return;
    float angle = (float)pos[t] * inv_freq[i]; /* formed in float32, as transformers does */
    float co = cosf(angle) * scale, si = sinf(angle) * scale;
    float *v = rows + ((size_t)t * n_heads + h) * head_dim;
    float a = v[i], b = v[i + half];
    v[i] = a * co - b * si;
    v[i + half] = b * co + a * si;
}

void lg_cuda_rope(lg_backend_ctx *c, float *rows, int n_rows, int n_heads, int head_dim, int n_rot,
                  const float *inv_freq, float scale, const int32_t *pos) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (n_rows <= 0 || n_rot < 2) return;
    const int32_t *dp = (const int32_t *)lg_cuda_upload(k, pos, sizeof(int32_t) * (size_t)n_rows);
    int half = n_rot / 2, per_block = half < THREADS ? THREADS / half : 1;
    int threads = half < THREADS ? per_block * half : half;
    lg_cuda_launch(k, rope_kernel, dim3(n_rows, (n_heads + per_block - 1) / per_block), threads, 0, rows, n_heads, head_dim,
                   n_rot, inv_freq, scale, dp);
}

/* Grid (row, run of 4 THREADS elements): 4 neighbours a thread, one 16-byte
 * access when the row allows, the gate's index without 64-bit division (the
 * first form divided a flat index per element: 307 us a layer for a
 * 4096-token prompt on an H100, several times its bytes' time). */
__global__ void gate_kernel(float *attn, const float *gate, int width, int n_heads, int head_dim, bool per_head) {
    lg_cuda_kernel_begin();
    int j = 4 * (blockIdx.y * blockDim.x + threadIdx.x);
    if (j >= width) return;
    float *a = attn + (size_t)blockIdx.x * width + j;
    const float *g = per_head ? gate + (size_t)blockIdx.x * n_heads : gate + (size_t)blockIdx.x * width + j;
    int n = min(4, width - j);
    if (n == 4 && width % 4 == 0 && ((uintptr_t)attn & 15) == 0) {
        float4 v = *(float4 *)a;
        if (per_head && head_dim % 4 == 0) {
            float s = lg_softplus(g[j / head_dim]);
            v.x *= s, v.y *= s, v.z *= s, v.w *= s;
        } else {
            v.x *= lg_softplus(per_head ? g[j / head_dim] : g[0]);
            v.y *= lg_softplus(per_head ? g[(j + 1) / head_dim] : g[1]);
            v.z *= lg_softplus(per_head ? g[(j + 2) / head_dim] : g[2]);
            v.w *= lg_softplus(per_head ? g[(j + 3) / head_dim] : g[3]);
        }
        *(float4 *)a = v;
        return;
    }
    for (int e = 0; e < n; e++) a[e] *= lg_softplus(per_head ? g[(j + e) / head_dim] : g[e]);
}

void lg_cuda_output_gate(lg_backend_ctx *c, float *attn, const float *gate, int n_rows, int n_heads, int head_dim,
                         bool per_head) {
    int width = n_heads * head_dim;
    if (n_rows <= 0 || width <= 0) return;
    dim3 grid((unsigned)n_rows, blocks_for(((size_t)width + 3) / 4));
    lg_cuda_launch(LG_CUDA_CTX(c), gate_kernel, grid, THREADS, 0, attn, gate, width, n_heads, head_dim, per_head);
}

/* Two ranges in one launch (a decode step's routed and shared experts: one
 * launch fewer a layer); elements [0, n1) are the first's. VEC: 4 elements a
 * thread in 16-byte accesses (whole float4s in both ranges), for a prompt's
 * millions (a decode step's few thousand keep a thread each: more threads,
 * less latency; 4 a thread cost a decode step ~4 us on an H100). */
#define SILU_VEC_MIN (1 << 16)
__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

template <bool VEC>
__global__ void silu_mul_kernel(float *o1, const float *g1, const float *u1, size_t n1, float *o2, const float *g2,
                                const float *u2, size_t n2) {
    lg_cuda_kernel_begin();
    size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * (VEC ? 4 : 1);
    float *o = o1;
    const float *g = g1, *u = u1;
    if (i >= n1) {
        if ((i -= n1) >= n2) return;
        o = o2, g = g2, u = u2;
    }
    if (VEC) {
        float4 gv = *(const float4 *)(g + i), uv = *(const float4 *)(u + i);
        *(float4 *)(o + i) = make_float4(silu_times(gv.x, uv.x), silu_times(gv.y, uv.y), silu_times(gv.z, uv.z),
                                         silu_times(gv.w, uv.w));
    } else {
        o[i] = silu_times(g[i], u[i]);
    }
}

void lg_cuda_silu_mul_pair(lg_backend_ctx *c, float *o1, const float *g1, const float *u1, size_t n1, float *o2,
                           const float *g2, const float *u2, size_t n2) {
    if (n1 + n2 == 0) return;
    uintptr_t any = (uintptr_t)o1 | (uintptr_t)g1 | (uintptr_t)u1 | (uintptr_t)o2 | (uintptr_t)g2 | (uintptr_t)u2;
    if (n1 + n2 >= SILU_VEC_MIN && (n1 | n2) % 4 == 0 && (any & 15) == 0)
        lg_cuda_launch(LG_CUDA_CTX(c), silu_mul_kernel<true>, blocks_for((n1 + n2) / 4), THREADS, 0, o1, g1, u1, n1, o2,
                       g2, u2, n2);
    else
        lg_cuda_launch(LG_CUDA_CTX(c), silu_mul_kernel<false>, blocks_for(n1 + n2), THREADS, 0, o1, g1, u1, n1, o2, g2,
                       u2, n2);
}

void lg_cuda_silu_mul(lg_backend_ctx *c, float *out, const float *gate, const float *up, size_t n) {
    lg_cuda_silu_mul_pair(c, out, gate, up, n, (float *)NULL, (const float *)NULL, (const float *)NULL, 0);
}

__global__ void add_kernel(float *x, const float *y, size_t n) {
    lg_cuda_kernel_begin();
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

void lg_cuda_add(lg_backend_ctx *c, float *x, const float *y, size_t n) {
    if (n) lg_cuda_launch(LG_CUDA_CTX(c), add_kernel, blocks_for(n), THREADS, 0, x, y, n);
}

__global__ void gather_kernel(float *dst, const float *src, const int32_t *rows, int width) {
    lg_cuda_kernel_begin();
    int i = blockIdx.y * blockDim.x + threadIdx.x;
    if (i < width) dst[(size_t)blockIdx.x * width + i] = src[(size_t)rows[blockIdx.x] * width + i];
}

void lg_cuda_gather_rows(lg_backend_ctx *c, float *dst, const float *src, const int32_t *rows, int n, int width) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (n <= 0) return;
    const int32_t *dr = (const int32_t *)lg_cuda_upload(k, rows, sizeof(int32_t) * (size_t)n);
    lg_cuda_launch(k, gather_kernel, row_grid(n, width), THREADS, 0, dst, src, dr, width);
}
