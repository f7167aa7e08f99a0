/* The CPU backend's kernels and its per-context state.
 *
 * What they compute is specified in backend/backend.h; here is how: a thread
 * pool shared by the contexts of one backend, per-thread scratch owned by
 * each context, float32 arithmetic with the weight dtype converted inside
 * the dot products, 8-bit activations for quantised weights. */
#ifndef LAGUNA_BACKEND_CPU_KERNELS_H
#define LAGUNA_BACKEND_CPU_KERNELS_H

#include <stddef.h>

#include "backend/backend.h"
#include "backend/cpu/threadpool.h"

typedef struct {
    lg_backend base;
    lg_threadpool *pool;
    /* BF16 weights against bf16-rounded activations (bf16_dot.h); set only
     * where the CPU has them (cpu_use_bf16_activations) */
    bool bf16_activations;
} lg_cpu_backend;

typedef struct {
    lg_backend_ctx base;
    lg_threadpool *pool;
    int n_threads;
    float **scratch;       /* one buffer per thread */
    size_t scratch_floats; /* size of each */
    void *act_q8;          /* activations quantised for one matmul_many (grown on demand) */
    size_t act_q8_bytes;
    lg_matmul_op *ops;     /* room for the products of one MoE step: 2 * (n_experts + 1) */
    struct lg_cpu_profile *profile; /* LAGUNA_CPU_PROFILE=1 only (cpu_profile.c) */
} lg_cpu_ctx;

typedef struct lg_cpu_profile lg_cpu_profile;
/* LAGUNA_CPU_PROFILE: ops timed one by one, reported when the context is freed. */
void lg_cpu_profile_wrap(lg_backend_ops *ops);
void lg_cpu_profile_report(lg_cpu_ctx *k);

/* Scratch floats per thread that the kernels need for these sizes. */
size_t lg_cpu_scratch_floats(const lg_ctx_sizes *sizes);

void lg_cpu_matmul_many(lg_backend_ctx *c, const lg_matmul_op *ops, int n_ops);
void lg_cpu_matmul(lg_cpu_ctx *k, float *y, const float *x, int n_tokens, const lg_matrix *w, const float *bias);
/* Scratch floats per thread that lg_cpu_attention needs. */
size_t lg_cpu_attention_scratch_floats(int head_dim);
void lg_cpu_attention(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                      const lg_attention_args *a);
void lg_cpu_kv_write(lg_backend_ctx *c, const lg_kv_pool_view *pool, const lg_kv_write_args *a, const float *k,
                     const float *v);

void lg_cpu_embed(lg_backend_ctx *c, float *x, const lg_matrix *table, const int32_t *tokens, int n);
void lg_cpu_rmsnorm(lg_backend_ctx *c, float *y, const float *x, const float *w, int n_rows, int n, float eps);
void lg_cpu_rope(lg_backend_ctx *c, float *rows, int n_rows, int n_heads, int head_dim, int n_rot, const float *inv_freq,
                 float scale, const int32_t *pos);
void lg_cpu_output_gate(lg_backend_ctx *c, float *attn, const float *gate, int n_rows, int n_heads, int head_dim,
                        bool per_head);
void lg_cpu_silu_mul(lg_backend_ctx *c, float *out, const float *gate, const float *up, size_t n);
void lg_cpu_add(lg_backend_ctx *c, float *x, const float *y, size_t n);
void lg_cpu_gather_rows(lg_backend_ctx *c, float *dst, const float *src, const int32_t *rows, int n, int width);

void lg_cpu_router(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n);
void lg_cpu_moe_group(lg_backend_ctx *c, const lg_moe_plan *plan, float *expert_in, const float *h, const int32_t *ids,
                      int n, int top_k, int n_experts, int hidden);
void lg_cpu_moe_experts(lg_backend_ctx *c, const lg_moe_args *a);
void lg_cpu_moe_combine(lg_backend_ctx *c, float *out, const lg_moe_plan *plan, const float *expert_out,
                        const float *weights, const float *shared, int n, int top_k, int hidden, float scale);

/* Calls fn(ctx, r0, r1) on blocks of rows covering [0, n_rows), spread over
 * the pool's threads when each thread gets at least min_rows rows, else
 * once on this thread (a decode step's single row). Row-wise ops compute
 * each row alone, so how the rows are cut changes no result. */
typedef void (*lg_rows_fn)(void *ctx, int r0, int r1);
void lg_cpu_for_rows(lg_cpu_ctx *k, int n_rows, int min_rows, lg_rows_fn fn, void *ctx);

/* Scalar helpers shared by the CPU kernels and the reference backend. */
float lg_softplus(float x); /* torch's default threshold: x > 20 gives x */
float lg_sigmoid(float x);

#endif
