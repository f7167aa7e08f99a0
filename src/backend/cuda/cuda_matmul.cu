/* Matrix products on the GPU: y[t] = W x[t] (+ bias), W in F32, BF16, F16 or
 * Q8_0, float32 arithmetic.
 *
 * One kernel for every size, so that a row's result never depends on the
 * batch: each thread owns outputs (row r, token t) and accumulates them over
 * k in increasing order, one fused multiply-add at a time, whatever the tile
 * it sits in. A block stages a tile of ROWS weight rows and TOKENS
 * activation rows through shared memory, K_TILE columns at a time (weights
 * are read once per block of TOKENS tokens, coalesced along k).
 *
 * The grouped form runs every expert of a sparse layer in one launch:
 * blockIdx.z picks the expert, whose rows are [offsets[e], offsets[e+1]) of
 * the grouped activations; blocks past an expert's rows return at once, so
 * the host never needs the routing. */
#include "backend/cuda/cuda_internal.h"

#define ROWS 32
#define TOKENS 8
#define K_TILE 64
#define THREADS (ROWS * TOKENS)

struct matmul_args {
    const uint8_t *w;                 /* plain: the matrix */
    const uint8_t *const *w_table;    /* grouped: one matrix per expert */
    size_t row_bytes;
    int dtype, rows, cols;
    const float *x;
    float *y;
    int n_tokens;                     /* plain: tokens; grouped: most rows of one expert */
    const float *bias;
    const int32_t *offsets;           /* grouped: [n_experts + 1] */
};

__global__ void __launch_bounds__(THREADS) matmul_kernel(matmul_args a) {
    __shared__ float ws[ROWS][K_TILE + 1];
    __shared__ float xs[TOKENS][K_TILE + 1];
    const uint8_t *w = a.w;
    int t_begin = 0, t_count = a.n_tokens;
    if (a.offsets) {
        int e = blockIdx.z;
        t_begin = a.offsets[e];
        t_count = a.offsets[e + 1] - t_begin;
        w = a.w_table[e];
    }
    int r0 = blockIdx.x * ROWS, t0 = blockIdx.y * TOKENS;
    if (t0 >= t_count) return;
    int tid = threadIdx.x, my_r = tid % ROWS, my_t = tid / ROWS;
    const float *x = a.x + (size_t)t_begin * a.cols;
    float acc = 0.0f;
    for (int k0 = 0; k0 < a.cols; k0 += K_TILE) {
        for (int i = tid; i < ROWS * K_TILE; i += THREADS) {
            int r = i / K_TILE, k = i % K_TILE;
            ws[r][k] = r0 + r < a.rows && k0 + k < a.cols
                           ? lg_load(a.dtype, w + (size_t)(r0 + r) * a.row_bytes, k0 + k) : 0.0f;
        }
        for (int i = tid; i < TOKENS * K_TILE; i += THREADS) {
            int t = i / K_TILE, k = i % K_TILE;
            xs[t][k] = t0 + t < t_count && k0 + k < a.cols ? x[(size_t)(t0 + t) * a.cols + k0 + k] : 0.0f;
        }
        __syncthreads();
        int kn = a.cols - k0 < K_TILE ? a.cols - k0 : K_TILE;
        for (int k = 0; k < kn; k++) acc = fmaf(ws[my_r][k], xs[my_t][k], acc);
        __syncthreads();
    }
    int r = r0 + my_r, t = t0 + my_t;
    if (r < a.rows && t < t_count)
        a.y[(size_t)(t_begin + t) * a.rows + r] = acc + (a.bias ? a.bias[r] : 0.0f);
}

static void launch(cudaStream_t s, const matmul_args &a, int n_groups) {
    if (a.n_tokens <= 0 || a.rows <= 0) return;
    dim3 grid((a.rows + ROWS - 1) / ROWS, (a.n_tokens + TOKENS - 1) / TOKENS, n_groups);
    matmul_kernel<<<grid, THREADS, 0, s>>>(a);
}

void lg_cuda_matmul_many(lg_backend_ctx *c, const lg_matmul_op *ops, int n_ops) {
    cudaStream_t s = LG_CUDA_CTX(c)->stream;
    for (int i = 0; i < n_ops; i++) {
        const lg_matmul_op *o = &ops[i];
        matmul_args a = {o->w->data, NULL, o->w->row_bytes, (int)o->w->dtype, (int)o->w->rows, (int)o->w->cols,
                         o->x, o->y, o->n_tokens, o->bias, NULL};
        launch(s, a, 1);
    }
}

/* The device table of an expert list's gate, up and down pointers, made on
 * first use and kept for the context's life (weights never move). */
static const uint8_t *const *expert_table(lg_cuda_ctx *k, const lg_swiglu_weights *experts, int n) {
    for (int i = 0; i < k->n_tables; i++)
        if (k->tables[i].host == experts) return k->tables[i].dev;
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
    for (int e = 0; e < n; e++) host[e] = experts[e].gate.data, host[n + e] = experts[e].up.data, host[2 * n + e] = experts[e].down.data;
    cudaMemcpyAsync(dev, host, sizeof *dev * 3 * (size_t)n, cudaMemcpyHostToDevice, k->stream);
    cudaStreamSynchronize(k->stream);
    free(host);
    k->tables[k->n_tables++] = (lg_expert_table){experts, dev};
    return dev;
}

static void grouped(cudaStream_t s, const uint8_t *const *table, const lg_matrix *m, const float *x, float *y,
                    int max_rows, const int32_t *offsets, int n_experts) {
    matmul_args a = {NULL, table, m->row_bytes, (int)m->dtype, (int)m->rows, (int)m->cols, x, y, max_rows, NULL, offsets};
    launch(s, a, n_experts);
}

void lg_cuda_moe_experts(lg_backend_ctx *c, const lg_moe_args *a) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    int E = a->n_experts, pairs = a->n_tokens * a->top_k;
    const lg_swiglu_weights *e0 = &a->experts[0];
    size_t I = (size_t)e0->gate.rows;
    const uint8_t *const *table = expert_table(k, a->experts, E);
    if (table && pairs > 0) {
        /* an expert has at most one pair per token */
        grouped(k->stream, table, &e0->gate, a->expert_in, a->act_gate, a->n_tokens, a->plan->offsets, E);
        grouped(k->stream, table + E, &e0->up, a->expert_in, a->act_up, a->n_tokens, a->plan->offsets, E);
        lg_cuda_silu_mul(c, a->act_gate, a->act_gate, a->act_up, (size_t)pairs * I);
        grouped(k->stream, table + 2 * E, &e0->down, a->act_gate, a->expert_out, a->n_tokens, a->plan->offsets, E);
    }
    if (a->shared) {
        lg_matmul_op gate_up[2] = {{a->shared_gate, a->h, a->n_tokens, &a->shared->gate, NULL},
                                   {a->shared_up, a->h, a->n_tokens, &a->shared->up, NULL}};
        lg_cuda_matmul_many(c, gate_up, 2);
        lg_cuda_silu_mul(c, a->shared_gate, a->shared_gate, a->shared_up, (size_t)a->n_tokens * a->shared->gate.rows);
        lg_matmul_op down = {a->shared_out, a->shared_gate, a->n_tokens, &a->shared->down, NULL};
        lg_cuda_matmul_many(c, &down, 1);
    }
}
