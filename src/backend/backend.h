/* The seam between the model math and the hardware.
 *
 * A backend (lg_backend) is a device: it owns buffers (weights, activations,
 * the KV pool) and runs ops. A backend context (lg_backend_ctx) is one
 * stream of work on it with its own scratch memory; each laguna context has
 * one, so several contexts can run on one model from several threads. Ops
 * are immediate calls in the order given (no graph); pointers they take are
 * backend memory (from lg_backend_alloc or weights adopted by the backend),
 * except where a comment says "host". The forward pass (model/forward.c)
 * calls only these ops (through the table: bc->backend->ops->name(bc, ...)).
 *
 * Every op has a slow, obvious twin in the reference backend
 * (src/backend/reference/), and tests compare the two; the optional fused
 * ops have none: their twin is the plain ops they stand for, in turn (as
 * forward.c calls them for a backend without the fused op). */
#ifndef LAGUNA_BACKEND_BACKEND_H
#define LAGUNA_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/tensor.h"
#include "laguna.h"

typedef struct lg_backend lg_backend;
typedef struct lg_backend_ctx lg_backend_ctx;

/* One product y[t] = W x[t] (+ bias) for t < n_tokens, of a batch of them. */
typedef struct {
    float *y;
    const float *x;
    int n_tokens; /* 0 = skip */
    const lg_matrix *w;
    const float *bias;
} lg_matmul_op;

/* The paged KV pool: page p holds page_size positions of keys, then as many
 * of values, each position row_bytes (n_kv_heads * head_dim values in dtype). */
typedef struct {
    uint8_t *base;
    int page_size;
    int row_floats;
    size_t row_bytes, page_bytes;
    lg_dtype dtype;
} lg_kv_pool_view;

/* Where a row's keys and values go: pool slot = page * page_size + offset. */
typedef struct {
    const int32_t *slots; /* [n_rows] (host) */
    int n_rows;
} lg_kv_write_args;

/* Causal grouped-query attention of n_rows queries, each with its own
 * position and its sequence's page table for this layer (logical page ->
 * pool page); row r sees positions [pos - window + 1, pos] (window 0 =
 * unlimited). Positions its sequence had before this step come from the
 * pool; those computed in this step come from the step's float32 key and
 * value rows (as exact as they were computed, whatever the cache dtype):
 * position p >= fresh_from[r] is step row fresh_rows[fresh_at[r] + p -
 * fresh_from[r]]. */
typedef struct {
    int n_rows;
    const int32_t *pos;            /* [n_rows] (host) */
    const int32_t *const *tables;  /* [n_rows] (host) */
    const int32_t *fresh_from, *fresh_at, *fresh_rows; /* [n_rows] each (host) */
    const float *fresh_k, *fresh_v; /* [n_rows][n_kv_heads * head_dim] */
    int n_heads, n_kv_heads, head_dim, window;
} lg_attention_args;

/* The inputs of a layer's attention, prepared in place (attention_inputs):
 * each query and key head RMS-normed over head_dim (q_norm, k_norm), then
 * both rotated by RoPE at the rows' positions, then the keys and values
 * written to the pool: what rmsnorm, rope and kv_write do in turn. */
typedef struct {
    float *q, *k;
    const float *v;
    int n_rows, n_heads, n_kv_heads, head_dim;
    const float *q_norm, *k_norm;
    float eps;
    int n_rot;
    const float *inv_freq;
    float rope_scale;
    const int32_t *pos; /* [n_rows] (host) */
    const lg_kv_pool_view *pool;
    lg_kv_write_args write;
} lg_attention_inputs_args;

/* Sigmoid router: scores = sigmoid(softcap(logits)); top_k experts by
 * score + bias (the bias only selects; ties keep the lower id); weights =
 * chosen scores normalised to sum 1. */
typedef struct {
    int n_experts, top_k;
    float softcap; /* 0 = none */
    const float *bias;
} lg_router_args;

/* Grouping of a batch's (token, slot) pairs by expert: expert e's pairs are
 * rows[offsets[e] .. offsets[e+1]); a pair is token * top_k + slot, and
 * pair_rows is the inverse (the grouped row of each pair). Under expert
 * parallelism (src/parallel/) a device owns experts [expert_begin,
 * expert_end): moe_experts runs only those and moe_combine adds only their
 * pairs (a partial sum the devices then add up); both 0 = every expert. */
typedef struct {
    int32_t *offsets;   /* [n_experts + 1] */
    int32_t *rows;      /* [n_rows * top_k] */
    int32_t *pair_rows; /* [n_rows * top_k] */
    int expert_begin, expert_end; /* (host) */
} lg_moe_plan;

/* The experts a plan's device owns, as [*begin, *end). */
static inline void lg_moe_plan_experts(const lg_moe_plan *p, int n_experts, int *begin, int *end) {
    bool all = p->expert_begin == 0 && p->expert_end == 0;
    *begin = all ? 0 : p->expert_begin;
    *end = all ? n_experts : p->expert_end;
}

/* The experts' weighted combine (moe_combine's arguments), then the
 * residual add and the next norm: x += out, h = rmsnorm(x) with norm. */
typedef struct {
    float *out;
    const lg_moe_plan *plan;
    const float *expert_out, *weights, *shared; /* shared: NULL when the layer has none */
    int n, top_k, hidden;
    float scale;
    float *x, *h;
    const float *norm;
    float eps;
} lg_combine_norm_args;

/* The experts of one sparse layer over a grouped batch, and its shared
 * expert over the token rows. */
typedef struct {
    const lg_moe_plan *plan;
    int n_tokens, n_experts, top_k;
    const lg_swiglu_weights *experts;   /* [n_experts] */
    const float *expert_in;             /* [n_tokens * top_k] rows of h, grouped (moe_group) */
    float *act_gate, *act_up;           /* work, [n_tokens * top_k] x intermediate */
    float *expert_out;                  /* [n_tokens * top_k] x hidden, grouped */
    const lg_swiglu_weights *shared;    /* NULL when the layer has none */
    const float *h;                     /* [n_tokens] x hidden */
    float *shared_gate, *shared_up;     /* work, [n_tokens] x shared intermediate */
    float *shared_out;                  /* [n_tokens] x hidden */
    /* expert_in was not filled (route / moe_group were given NULL, where
     * moe_reads_h said so): moe_experts reads each pair's row of h through
     * plan->rows itself, expert_in being room it may gather them into */
    bool expert_in_pending;
} lg_moe_args;

/* What a context's scratch must hold. */
typedef struct {
    int widest_row;  /* most columns of any weight matrix */
    int max_keys;    /* most positions one query attends to */
    int head_dim;
    int n_experts;   /* experts of a sparse layer (0 when none) */
} lg_ctx_sizes;

typedef struct {
    const char *name;
    bool host_memory; /* buffers are host memory the caller may read directly */
    int max_experts_per_token; /* the most a token may choose (0: no limit) */

    void (*destroy)(lg_backend *be);
    /* Buffers hold zeroes until written. Large ones may be reserved lazily
     * (untouched pages cost nothing on the CPU). */
    void *(*alloc)(lg_backend *be, size_t bytes);
    void (*free)(lg_backend *be, void *buf, size_t bytes);
    /* Makes weight bytes in host memory usable by ops: the CPU uses them
     * where they are; a GPU uploads them. NULL when out of memory. */
    const void *(*adopt_weights)(lg_backend *be, const void *host, size_t bytes);
    /* Whether matrices of this dtype can be multiplied (NULL = every dtype). */
    bool (*weights_ok)(lg_dtype dtype);
    /* Optional (NULL: matrices stay as the file has them). Rearranges the
     * bytes of a matrix of dtype ([rows, cols], rows contiguous) in place into
     * the layout this backend's kernels read fastest and returns its dtype
     * after; dtype itself when it leaves them. The model calls it only on
     * memory it owns (weights copied from a file or generated), never on a
     * mapped file. */
    lg_dtype (*rearrange_weights)(lg_backend *be, lg_dtype dtype, void *data, int64_t rows, int64_t cols);
    /* Optional: BF16 weights against activations rounded to bf16 from now
     * on; returns whether this backend can. */
    bool (*use_bf16_activations)(lg_backend *be);
    /* Bytes of device memory free for weights (NULL: the host's, not checked here). */
    size_t (*memory_free)(lg_backend *be);
    /* Optional (NULL: the model generates such weights on the host and
     * adopts them). A rows x cols matrix of dtype (bytes in all) made in
     * backend memory, freed with the backend like adopted weights, holding
     * random values valid for the dtype with mean 0 and about this standard
     * deviation (finite, positive block scales), a function of seed alone:
     * the weights of a model with no checkpoint (lg_model_open_synth). NULL
     * when out of memory. */
    const void *(*synth_weights)(lg_backend *be, lg_dtype dtype, int64_t rows, int64_t cols, size_t bytes, float std,
                                 uint64_t seed);
    /* Optional: GB/s of a large device-to-device copy, bytes read plus bytes
     * written, best of a few; 0 when it cannot be measured. Decoding reads
     * every active weight once per token, so this is a device's roofline. */
    double (*copy_bandwidth_gbps)(lg_backend *be);

    lg_backend_ctx *(*ctx_new)(lg_backend *be, const lg_ctx_sizes *sizes);
    void (*ctx_free)(lg_backend_ctx *c);
    void (*to_host)(lg_backend_ctx *c, void *host_dst, const void *src, size_t bytes);
    /* Waits for the context's work and reports what failed in it (ops
     * themselves return nothing); NULL when ops complete as they return. */
    laguna_status (*sync)(lg_backend_ctx *c, laguna_error *err);
    void (*copy)(lg_backend_ctx *c, void *dst, const void *src, size_t bytes);
    /* A forward step of n_rows rows begins (NULL = nothing to do): a GPU may
     * record the step's ops and launch them together at the next to_host or
     * sync. */
    void (*step_begin)(lg_backend_ctx *c, int n_rows);

    /* x[t] = row tokens[t] of the table, as float32; tokens are host. */
    void (*embed)(lg_backend_ctx *c, float *x, const lg_matrix *table, const int32_t *tokens, int n);
    /* y = x / sqrt(mean(x^2) + eps) * w over each row of n; y may equal x. */
    void (*rmsnorm)(lg_backend_ctx *c, float *y, const float *x, const float *w, int n_rows, int n, float eps);
    /* Rotates the first n_rot dims of each head ("rotate half"), row t at pos[t] (host). */
    void (*rope)(lg_backend_ctx *c, float *rows, int n_rows, int n_heads, int head_dim, int n_rot, const float *inv_freq,
                 float scale, const int32_t *pos);
    void (*matmul_many)(lg_backend_ctx *c, const lg_matmul_op *ops, int n_ops);
    void (*kv_write)(lg_backend_ctx *c, const lg_kv_pool_view *pool, const lg_kv_write_args *a, const float *k,
                     const float *v);
    void (*attention)(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                      const lg_attention_args *a);
    /* attn *= softplus(gate), one gate value per head or per element. */
    void (*output_gate)(lg_backend_ctx *c, float *attn, const float *gate, int n_rows, int n_heads, int head_dim,
                        bool per_head);
    /* out = silu(gate) * up over n values. */
    void (*silu_mul)(lg_backend_ctx *c, float *out, const float *gate, const float *up, size_t n);
    /* logits [n][n_experts] in, overwritten by scores; ids and weights [n][top_k] out. */
    void (*router)(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n);
    /* Fills the plan from ids [n][top_k] and gathers each pair's token row of
     * h into expert_in (NULL: not, for a moe_experts with expert_in_pending). */
    void (*moe_group)(lg_backend_ctx *c, const lg_moe_plan *plan, float *expert_in, const float *h, const int32_t *ids,
                      int n, int top_k, int n_experts, int hidden);
    /* Every expert on its grouped rows, and the shared expert on every token. */
    void (*moe_experts)(lg_backend_ctx *c, const lg_moe_args *a);
    /* out[t] = scale * sum_k weights[t][k] * expert_out[pair (t,k)] (+ shared[t]), summed in expert order. */
    void (*moe_combine)(lg_backend_ctx *c, float *out, const lg_moe_plan *plan, const float *expert_out,
                        const float *weights, const float *shared, int n, int top_k, int hidden, float scale);
    /* x += y over n values. */
    void (*add)(lg_backend_ctx *c, float *x, const float *y, size_t n);
    /* dst[i] = src row rows[i] (host) for i < n. */
    void (*gather_rows)(lg_backend_ctx *c, float *dst, const float *src, const int32_t *rows, int n, int width);

    /* Optional fused ops (NULL: the forward pass calls the ops they stand
     * for, in turn), for devices where each op is a launch that costs more
     * than the work of a small one.
     * x += y, then h = rmsnorm(x) with w, over n_rows rows of n (add, rmsnorm). */
    void (*add_rmsnorm)(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w, int n_rows, int n,
                        float eps);
    /* add_rmsnorm, then the product op, whose x is h and n_tokens n_rows
     * (matmul_many of it alone): a decode step's router after the residual. */
    void (*add_rmsnorm_matmul)(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w, int n_rows,
                               int n, float eps, const lg_matmul_op *op);
    /* rmsnorm of every q and k head, rope of both, kv_write (see the args). */
    void (*attention_inputs)(lg_backend_ctx *c, const lg_attention_inputs_args *a);
    /* attention, then output_gate over its output with gate (same arguments
     * as those two): the output written once, gated. */
    void (*attention_gated)(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                            const lg_attention_args *a, const float *gate, bool per_head);
    /* moe_combine into out, then x += out and h = rmsnorm(x) (add_rmsnorm). */
    void (*moe_combine_add_rmsnorm)(lg_backend_ctx *c, const lg_combine_norm_args *a);
    /* router, then moe_group over its ids (same arguments as those two). */
    void (*route)(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n,
                  const lg_moe_plan *plan, float *expert_in, const float *h, int hidden);
    /* Whether moe_experts over n tokens, top_k pairs each, had best read the
     * pairs' rows of h through the plan itself (expert_in_pending) rather
     * than from expert_in as moe_group gathers it: route / moe_group are then
     * given no expert_in, and h must not change before moe_experts. */
    bool (*moe_reads_h)(lg_backend_ctx *c, int n, int top_k);

    /* Optional (NULL: nothing), a hint: the n matrices' weights are read
     * soon, by a later op of this step. A device with a cache in front of its
     * memory may start bringing them in now, while the ops before them (a few
     * rows' attention, norms, routing: latency, not bandwidth) leave the
     * memory idle. Results never depend on it. */
    void (*prefetch_weights)(lg_backend_ctx *c, const lg_matrix *const *m, int n);

    /* Optional (NULL: the forward pass copies the rows to the host and takes
     * lg_argmax_f32 there, lg_backend_argmax_rows_by_parts): host_out[r] =
     * the greedy choice over row r of logits [n_rows][n_cols], exactly
     * lg_argmax_f32's (core/argmax.h: the largest float32, the lowest index on
     * ties, NaN only at index 0). Only the n_rows results reach the host, and
     * they are there when the op returns. */
    void (*argmax_rows)(lg_backend_ctx *c, int32_t *host_out, const float *logits, int n_rows,
                        int n_cols);
    /* Optional, with argmax_rows (NULL: every step runs to its end before the
     * next is made, and the context puts earlier steps' tokens in on the host):
     * queued greedy steps, so the host makes a step while the device runs the
     * one before. While queue_argmax(c, true) holds, argmax_rows starts the
     * step and returns at once, its tokens reaching host_out only at the
     * wait_step that collects the step; a step's embed reads a token -2 - j as
     * row j (counted over the step's argmax_rows calls) of the step before's
     * greedy tokens, where they are on the device. wait_step waits for the
     * oldest step started in queue mode and not yet waited for, fills its
     * host_out and reports what failed; LAGUNA_OK when there is none. At most
     * two such steps are outstanding (the context's job). */
    void (*queue_argmax)(lg_backend_ctx *c, bool on);
    laguna_status (*wait_step)(lg_backend_ctx *c, laguna_error *err);
} lg_backend_ops;

struct lg_backend {
    const lg_backend_ops *ops;
    int n_threads;
};

struct lg_backend_ctx {
    lg_backend *backend;
};

/* Backends by name: "cpu" (the default), "cuda" (or "cuda:N", in builds
 * with nvcc) and "reference" (slow, exact; for tests). n_threads is the CPU
 * backend's worker count (0 = all cores). */
/* The optional fused ops done by the plain ops they stand for, in turn
 * (through c's ops table): what the forward pass runs on a backend without
 * them, and what the fused ops are tested against. */
void lg_backend_add_rmsnorm_by_parts(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w, int n_rows,
                                     int n, float eps);
void lg_backend_add_rmsnorm_matmul_by_parts(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w,
                                            int n_rows, int n, float eps, const lg_matmul_op *op);
void lg_backend_attention_inputs_by_parts(lg_backend_ctx *c, const lg_attention_inputs_args *a);
void lg_backend_moe_combine_add_rmsnorm_by_parts(lg_backend_ctx *c, const lg_combine_norm_args *a);
void lg_backend_route_by_parts(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights,
                               int n, const lg_moe_plan *plan, float *expert_in, const float *h, int hidden);
/* argmax_rows without the op: to_host into host_scratch ([n_rows][n_cols]
 * floats; unused, and may be NULL, on a host-memory backend), then
 * lg_argmax_f32 on each row. */
void lg_backend_argmax_rows_by_parts(lg_backend_ctx *c, int32_t *host_out, const float *logits,
                                     int n_rows, int n_cols, float *host_scratch);

laguna_status lg_backend_create(const char *name, int n_threads, lg_backend **out, laguna_error *err);
/* LAGUNA_ERR_UNSUPPORTED when a token's top_k experts are more than be's
 * kernels take (lg_backend_ops.max_experts_per_token). */
laguna_status lg_backend_check_top_k(const lg_backend *be, int top_k, laguna_error *err);
void lg_backend_destroy(lg_backend *be);

lg_backend *lg_cpu_backend_new(int n_threads);
lg_backend *lg_reference_backend_new(void);
/* NULL with the reason in err when there is no usable GPU. */
lg_backend *lg_cuda_backend_new(int device, laguna_error *err);

#endif
