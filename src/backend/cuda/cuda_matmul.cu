/* Matrix products on the GPU: y[t] = W x[t] (+ bias), W in F32, BF16, F16 or
 * Q8_0, float32 arithmetic.
 *
 * One warp per weight row and group of up to TOKENS tokens: the warp streams
 * the row once (16-byte loads where the row allows), each lane multiplying
 * its slice of k into one accumulator per token, then the lanes' sums are
 * added in a fixed butterfly. Which lane takes which k, and the order of
 * every addition, depend only on the matrix, never on the batch, so a row's
 * result is the same in any batch. Decoding reads every weight byte once;
 * a prefill of n tokens reads them n / TOKENS times (from L2 when they fit).
 *
 * The grouped form runs every expert of a sparse layer in one launch:
 * blockIdx.z picks the expert, whose rows are [offsets[e], offsets[e+1]) of
 * the grouped activations; blocks past an expert's rows return at once, so
 * the host never needs the routing. */
#include "backend/cuda/cuda_internal.h"

#define WARPS 8    /* rows per block */
#define TOKENS 8   /* tokens per warp */
#define THREADS (WARPS * 32)

struct matmul_args {
    const uint8_t *w;                 /* plain: the matrix */
    const uint8_t *const *w_table;    /* grouped: one matrix per expert */
    size_t row_bytes;
    int dtype, rows, cols;
    int vec;                          /* elements per 16-byte load (0: one element at a time) */
    const float *x;
    float *y;
    int n_tokens;                     /* plain: tokens; grouped: most rows of one expert */
    const float *bias;
    const int32_t *offsets;           /* grouped: [n_experts + 1] */
};

/* 16-byte chunk c of a row as floats (vec of them). */
__device__ __forceinline__ void load_chunk(int dtype, const uint8_t *row, int64_t c, float *out) {
    uint4 raw = ((const uint4 *)row)[c];
    if (dtype == LG_DTYPE_F32) {
        out[0] = __uint_as_float(raw.x), out[1] = __uint_as_float(raw.y);
        out[2] = __uint_as_float(raw.z), out[3] = __uint_as_float(raw.w);
        return;
    }
    uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
    for (int i = 0; i < 4; i++) {
        uint16_t lo = (uint16_t)(words[i] & 0xffff), hi = (uint16_t)(words[i] >> 16);
        if (dtype == LG_DTYPE_BF16) {
            out[2 * i] = __uint_as_float((uint32_t)lo << 16), out[2 * i + 1] = __uint_as_float((uint32_t)hi << 16);
        } else {
            out[2 * i] = __half2float(__ushort_as_half(lo)), out[2 * i + 1] = __half2float(__ushort_as_half(hi));
        }
    }
}

__global__ void __launch_bounds__(THREADS) matmul_kernel(matmul_args a) {
    const uint8_t *w = a.w;
    int t_begin = 0, t_count = a.n_tokens;
    if (a.offsets) {
        int e = blockIdx.z;
        t_begin = a.offsets[e];
        t_count = a.offsets[e + 1] - t_begin;
        w = a.w_table[e];
    }
    int t0 = blockIdx.y * TOKENS;
    if (t0 >= t_count) return;
    int lane = threadIdx.x & 31, r = blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (r >= a.rows) return;
    int nt = min(TOKENS, t_count - t0);
    const uint8_t *row = w + (size_t)r * a.row_bytes;
    const float *x = a.x + (size_t)(t_begin + t0) * a.cols;
    float acc[TOKENS];
    for (int t = 0; t < TOKENS; t++) acc[t] = 0.0f;
    if (a.vec) {
        int64_t chunks = a.cols / a.vec;
        for (int64_t c = lane; c < chunks; c += 32) {
            float wv[8];
            load_chunk(a.dtype, row, c, wv);
            for (int t = 0; t < TOKENS; t++) {
                if (t >= nt) break;
                const float *xt = x + (size_t)t * a.cols + c * a.vec;
                for (int j = 0; j < 8; j++)
                    if (j < a.vec) acc[t] = fmaf(wv[j], xt[j], acc[t]);
            }
        }
    } else {
        for (int k = lane; k < a.cols; k += 32) {
            float wk = lg_load(a.dtype, row, k);
            for (int t = 0; t < nt; t++) acc[t] = fmaf(wk, x[(size_t)t * a.cols + k], acc[t]);
        }
    }
    for (int t = 0; t < TOKENS; t++) {
        float v = acc[t];
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        acc[t] = v;
    }
    if (lane < nt) {
        float v = acc[0];
        for (int t = 1; t < TOKENS; t++)
            if (lane == t) v = acc[t];
        a.y[(size_t)(t_begin + t0 + lane) * a.rows + r] = v + (a.bias ? a.bias[r] : 0.0f);
    }
}

/* Elements per 16-byte load for this matrix, or 0 for one at a time. */
static int vector_width(lg_dtype dtype, int64_t cols, size_t row_bytes, const void *data) {
    int per = dtype == LG_DTYPE_F32 ? 4 : dtype == LG_DTYPE_BF16 || dtype == LG_DTYPE_F16 ? 8 : 0;
    if (!per || cols % per || row_bytes % 16 || (uintptr_t)data % 16) return 0;
    return per;
}

static void launch(cudaStream_t s, const matmul_args &a, int n_groups) {
    if (a.n_tokens <= 0 || a.rows <= 0) return;
    dim3 grid((a.rows + WARPS - 1) / WARPS, (a.n_tokens + TOKENS - 1) / TOKENS, n_groups);
    matmul_kernel<<<grid, THREADS, 0, s>>>(a);
}

void lg_cuda_matmul_many(lg_backend_ctx *c, const lg_matmul_op *ops, int n_ops) {
    cudaStream_t s = LG_CUDA_CTX(c)->stream;
    for (int i = 0; i < n_ops; i++) {
        const lg_matmul_op *o = &ops[i];
        matmul_args a = {o->w->data, NULL, o->w->row_bytes, (int)o->w->dtype, (int)o->w->rows, (int)o->w->cols,
                         vector_width(o->w->dtype, o->w->cols, o->w->row_bytes, o->w->data), o->x, o->y, o->n_tokens,
                         o->bias, NULL};
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

/* Expert matrices share one shape and dtype; the vector path needs every
 * one of them aligned (host is the model's list, checked on the host). */
static void grouped(cudaStream_t s, const uint8_t *const *table, const lg_swiglu_weights *experts, int which,
                    const float *x, float *y, int max_rows, const int32_t *offsets, int n_experts) {
    const lg_matrix *m = which == 0 ? &experts[0].gate : which == 1 ? &experts[0].up : &experts[0].down;
    int vec = vector_width(m->dtype, m->cols, m->row_bytes, m->data);
    for (int e = 1; e < n_experts && vec; e++) {
        const lg_matrix *me = which == 0 ? &experts[e].gate : which == 1 ? &experts[e].up : &experts[e].down;
        if ((uintptr_t)me->data % 16) vec = 0;
    }
    matmul_args a = {NULL, table, m->row_bytes, (int)m->dtype, (int)m->rows, (int)m->cols, vec, x, y, max_rows, NULL, offsets};
    launch(s, a, n_experts);
}

void lg_cuda_moe_experts(lg_backend_ctx *c, const lg_moe_args *a) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    int first, last, pairs = a->n_tokens * a->top_k;
    lg_moe_plan_experts(a->plan, a->n_experts, &first, &last); /* this device's experts */
    int E = last - first;
    const lg_swiglu_weights *experts = a->experts + first;
    const int32_t *offsets = a->plan->offsets + first; /* offsets stay absolute grouped rows */
    size_t I = (size_t)experts[0].gate.rows;
    const uint8_t *const *table = expert_table(k, experts, E);
    if (table && pairs > 0) {
        /* an expert has at most one pair per token */
        grouped(k->stream, table, experts, 0, a->expert_in, a->act_gate, a->n_tokens, offsets, E);
        grouped(k->stream, table + E, experts, 1, a->expert_in, a->act_up, a->n_tokens, offsets, E);
        lg_cuda_silu_mul(c, a->act_gate, a->act_gate, a->act_up, (size_t)pairs * I);
        grouped(k->stream, table + 2 * E, experts, 2, a->act_gate, a->expert_out, a->n_tokens, offsets, E);
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
