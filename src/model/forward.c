/* The Laguna forward pass, step by step as in docs/laguna-architecture.md.
 *
 * For each layer: RMSNorm -> attention (q/k/v projections, per-head q/k
 * RMSNorm, RoPE of the layer's kind, KV write, causal GQA over the paged
 * cache, softplus output gate) -> residual add -> RMSNorm -> dense SwiGLU
 * MLP or the sparse MoE (sigmoid router, bias-shifted top-k, normalised
 * weights, routed scale, shared expert) -> residual add. Every row of a step
 * goes through each op together, so each projection is one matrix-matrix
 * product whatever sequences the rows belong to. Only backend ops are
 * called here: no arithmetic, no threads, no device.
 *
 * On a model split over several devices (src/parallel/), m is one rank's
 * view: the same steps on the rank's heads, columns and experts, and the
 * attention and MLP outputs are partial sums that sum_over_ranks adds up,
 * the two reduction points of a layer; the logits are gathered likewise. */
#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

#include "core/argmax.h"
#include "core/error.h"
#include "parallel/comm.h"

#define OP(bc) ((bc)->backend->ops)
#define LOGIT_ROWS_PER_PASS 32 /* lm_head rows per product (bounds the logits buffer off the host) */

static int widest_row(const lg_config *c) {
    int w = c->hidden_size;
    int cols[] = {c->intermediate_size, c->moe_intermediate_size, c->shared_expert_intermediate_size};
    for (size_t i = 0; i < 3; i++)
        if (cols[i] > w) w = cols[i];
    for (int l = 0; l < c->n_layers; l++)
        if (c->n_heads[l] * c->head_dim > w) w = c->n_heads[l] * c->head_dim;
    return w;
}

static bool any_layer(const lg_config *c, lg_mlp_kind kind) {
    for (int l = 0; l < c->n_layers; l++)
        if (c->mlp_kind[l] == kind) return true;
    return false;
}

lg_ctx_sizes lg_forward_ctx_sizes(const laguna_model *m, int max_keys) {
    return (lg_ctx_sizes){widest_row(&m->cfg), max_keys, m->cfg.head_dim,
                          any_layer(&m->cfg, LG_MLP_SPARSE) ? m->cfg.n_experts : 0};
}


/* Carves the buffers out of one block: pass 1 with base NULL counts bytes. */
static size_t carve(lg_activations *a, const laguna_model *m, int B, uint8_t *base) {
    const lg_config *c = &m->cfg;
    size_t off = 0;
#define TAKE(field, type, count)                                                                                       \
    do {                                                                                                               \
        a->field = base ? (type *)(base + off) : NULL;                                                                 \
        off += ((sizeof(type) * (size_t)(count)) + 63) / 64 * 64;                                                      \
    } while (0)
    int max_heads = 0;
    for (int l = 0; l < c->n_layers; l++)
        if (c->n_heads[l] > max_heads) max_heads = c->n_heads[l];
    size_t b = (size_t)B, H = (size_t)c->hidden_size, Q = (size_t)max_heads * c->head_dim;
    size_t KV = (size_t)c->n_kv_heads * c->head_dim;
    bool sparse = any_layer(c, LG_MLP_SPARSE), dense = any_layer(c, LG_MLP_DENSE);
    size_t E = sparse ? (size_t)c->n_experts : 0, K = sparse ? (size_t)c->n_experts_per_token : 0;
    /* gate/up work rows: the routed pairs of a sparse layer or the rows of a dense one */
    size_t act = sparse ? b * K * (size_t)c->moe_intermediate_size : 0;
    if (dense && b * (size_t)c->intermediate_size > act) act = b * (size_t)c->intermediate_size;
    size_t S = sparse ? (size_t)c->shared_expert_intermediate_size : 0;
    size_t logit_rows = b < LOGIT_ROWS_PER_PASS ? b : LOGIT_ROWS_PER_PASS;
    TAKE(x, float, b * H);
    TAKE(h, float, b * H);
    TAKE(q, float, b * Q);
    TAKE(k, float, b * KV);
    TAKE(v, float, b * KV);
    TAKE(attn, float, b * Q);
    size_t gate_width = 0; /* the widest output gate of any layer: one per head or per element */
    for (int l = 0; l < c->n_layers; l++) {
        size_t w = m->layers[l].gate_mode == LG_GATE_PER_ELEMENT ? Q : m->layers[l].gate_mode == LG_GATE_PER_HEAD ? (size_t)max_heads : 0;
        if (w > gate_width) gate_width = w;
    }
    TAKE(gate, float, b * gate_width);
    TAKE(proj, float, b * H);
    TAKE(mlp, float, b * H);
    TAKE(act_gate, float, act);
    TAKE(act_up, float, act);
    TAKE(expert_in, float, b * K * H);
    TAKE(expert_out, float, b * K * H);
    TAKE(shared_gate, float, b * S);
    TAKE(shared_up, float, b * S);
    TAKE(shared_out, float, S ? b * H : 0);
    TAKE(router_logits, float, b * E);
    TAKE(route_weight, float, b * K);
    TAKE(route_expert, int32_t, b * K);
    TAKE(plan.offsets, int32_t, E + 1);
    TAKE(plan.rows, int32_t, b * K);
    TAKE(plan.pair_rows, int32_t, b * K);
    TAKE(head_in, float, logit_rows * H);
    /* lm_head's output where the caller does not take it directly: rows wanting only their greedy
     * token, rows off the host, a rank's share of the vocabulary before it is gathered */
    TAKE(logits, float, logit_rows * (size_t)m->lm_head.rows);
#undef TAKE
    a->n_rows = B;
    a->n_logit_rows = (int)logit_rows;
    return off;
}

laguna_status lg_activations_init(lg_activations *a, const laguna_model *m, int n_rows, laguna_error *err) {
    memset(a, 0, sizeof *a);
    a->bytes = carve(a, m, n_rows, NULL);
    a->block = m->backend->ops->alloc(m->backend, a->bytes);
    if (!a->block)
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of %s memory for activations (%d rows, %zu bytes)",
                       m->backend->ops->name, n_rows, a->bytes);
    carve(a, m, n_rows, a->block);
    const lg_backend_ops *o = m->backend->ops;
    if (m->comm || (!o->host_memory && !o->argmax_rows)) {
        a->host_logits =
            malloc(sizeof(float) * (size_t)a->n_logit_rows * (size_t)m->cfg.vocab_size);
        if (!a->host_logits) {
            lg_activations_free(a, m->backend);
            return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for the host's logits (%d rows)",
                           n_rows);
        }
    }
    return LAGUNA_OK;
}

void lg_activations_free(lg_activations *a, lg_backend *be) {
    if (a->block) be->ops->free(be, a->block, a->bytes);
    free(a->host_copy);
    free(a->host_logits);
    memset(a, 0, sizeof *a);
}

/* Observers read host memory: off the host, rows are copied out first. */
static const void *on_host(lg_backend_ctx *bc, lg_activations *a, const void *src, size_t bytes) {
    if (OP(bc)->host_memory) return src;
    if (bytes > a->host_copy_bytes) {
        void *p = realloc(a->host_copy, bytes);
        if (!p) return NULL;
        a->host_copy = p;
        a->host_copy_bytes = bytes;
    }
    OP(bc)->to_host(bc, a->host_copy, src, bytes);
    return a->host_copy;
}

static void observe_hidden(lg_backend_ctx *bc, lg_activations *a, const laguna_observer *o, int index, const float *rows,
                           int n, int H) {
    if (!o || !o->on_hidden) return;
    const float *host = on_host(bc, a, rows, sizeof(float) * (size_t)n * H);
    if (host) o->on_hidden(o->user, index, host, n, H);
}

/* Several devices: x holds this rank's partial sum of a block's output;
 * afterwards, the sum over all ranks (the same on each). */
static void sum_over_ranks(const laguna_model *m, lg_backend_ctx *bc, float *x, int n_rows) {
    if (m->comm) lg_comm_all_reduce(m->comm, bc, x, (size_t)n_rows * m->cfg.hidden_size);
}

static void prefetch_weights(lg_backend_ctx *bc, const lg_matrix *const *m, int n) {
    if (OP(bc)->prefetch_weights) OP(bc)->prefetch_weights(bc, m, n);
}

/* x += y, then h = rmsnorm(x) with w */
static void add_rmsnorm(lg_backend_ctx *bc, float *x, const float *y, float *h, const float *w, int n, int H, float eps) {
    if (OP(bc)->add_rmsnorm) OP(bc)->add_rmsnorm(bc, x, y, h, w, n, H, eps);
    else lg_backend_add_rmsnorm_by_parts(bc, x, y, h, w, n, H, eps);
}

/* add_rmsnorm, then the product op of h */
static void add_rmsnorm_matmul(lg_backend_ctx *bc, float *x, const float *y, float *h, const float *w, int n, int H,
                               float eps, const lg_matmul_op *op) {
    if (OP(bc)->add_rmsnorm_matmul) OP(bc)->add_rmsnorm_matmul(bc, x, y, h, w, n, H, eps, op);
    else lg_backend_add_rmsnorm_matmul_by_parts(bc, x, y, h, w, n, H, eps, op);
}

/* ---- attention -------------------------------------------------------------- */

static void attention_inputs(lg_backend_ctx *bc, const lg_attention_inputs_args *a) {
    if (OP(bc)->attention_inputs) OP(bc)->attention_inputs(bc, a);
    else lg_backend_attention_inputs_by_parts(bc, a);
}

static void attention_block(const laguna_model *m, lg_backend_ctx *bc, lg_activations *a, const lg_kv_pool_view *pool,
                            const lg_step *s, int li) {
    const lg_config *c = &m->cfg;
    const lg_layer *L = &m->layers[li];
    int hd = c->head_dim, nh = L->n_heads, nkv = c->n_kv_heads, n = s->n_rows;
    float eps = (float)c->rms_norm_eps;

    bool gated = L->gate_mode != LG_GATE_NONE;
    lg_matmul_op proj[4] = {
        {a->q, a->h, n, &L->q_proj, L->q_bias},
        {a->k, a->h, n, &L->k_proj, L->k_bias},
        {a->v, a->h, n, &L->v_proj, L->v_bias},
        {a->gate, a->h, gated ? n : 0, &L->g_proj, L->g_bias},
    };
    OP(bc)->matmul_many(bc, proj, 4);

    /* per-head q/k norms, RoPE of the layer's kind, then keys and values
     * into the cache; queries read what their sequence had before this step
     * from the cache and this step's own positions from the float32 rows, so
     * only the sequence's own chunking matters */
    const lg_rope_table *rope = &m->rope[L->attention_kind];
    lg_attention_inputs_args in = {a->q, a->k, a->v, n, nh, nkv, hd, L->q_norm, L->k_norm, eps,
                                   rope->n_rot, m->rope_inv_freq[L->attention_kind], rope->attention_scale, s->pos,
                                   pool, {s->slots + (size_t)li * n, n}};
    attention_inputs(bc, &in);
    /* o_proj's weights head for the device's cache while attention (latency
     * at few rows, not bandwidth) leaves the memory idle */
    const lg_matrix *o_weights = &L->o_proj;
    prefetch_weights(bc, &o_weights, 1);
    lg_attention_args at = {n, s->pos, s->tables + (size_t)li * n, s->fresh_from, s->fresh_at, s->fresh_rows, a->k, a->v,
                            nh, nkv, hd, L->attention_kind == LG_ATTN_SLIDING ? c->sliding_window : 0};
    bool per_head = L->gate_mode == LG_GATE_PER_HEAD;
    if (gated && OP(bc)->attention_gated) {
        OP(bc)->attention_gated(bc, pool, a->attn, a->q, &at, a->gate, per_head);
    } else {
        OP(bc)->attention(bc, pool, a->attn, a->q, &at);
        if (gated) OP(bc)->output_gate(bc, a->attn, a->gate, n, nh, hd, per_head);
    }
    lg_matmul_op o = {a->proj, a->attn, n, &L->o_proj, L->o_bias};
    OP(bc)->matmul_many(bc, &o, 1);
    sum_over_ranks(m, bc, a->proj, n);
}

/* ---- MLP -------------------------------------------------------------------- */

/* mlp = down(silu(gate h) * up h) */
static void dense_mlp(lg_backend_ctx *bc, lg_activations *a, const lg_mlp_weights *w, int n) {
    lg_matmul_op gate_up[2] = {{a->act_gate, a->h, n, &w->gate, NULL}, {a->act_up, a->h, n, &w->up, NULL}};
    OP(bc)->matmul_many(bc, gate_up, 2);
    OP(bc)->silu_mul(bc, a->act_gate, a->act_gate, a->act_up, (size_t)n * w->gate.rows);
    lg_matmul_op down = {a->mlp, a->act_gate, n, &w->down, NULL};
    OP(bc)->matmul_many(bc, &down, 1);
}

/* x += the attention's output and h = its norm, then the routing and every
 * expert's output over h, for
 * mlp = routed_scaling_factor * sum_k weight_k expert_k(h) + shared_expert(h)
 * (summed by combine_add_rmsnorm). */
static void sparse_mlp(const laguna_model *m, lg_backend_ctx *bc, lg_activations *a, int li, int n,
                       const laguna_observer *observer) {
    const lg_config *c = &m->cfg;
    const lg_layer *L = &m->layers[li];
    int E = c->n_experts, K = c->n_experts_per_token, H = c->hidden_size;

    /* the router's and the shared expert's weights, while the norm and the
     * routing run (the routed experts are known only after it) */
    const lg_matrix *soon[4] = {&L->router, &L->shared_expert.gate, &L->shared_expert.up, &L->shared_expert.down};
    prefetch_weights(bc, soon, L->has_shared_expert ? 4 : 1);
    lg_matmul_op router = {a->router_logits, a->h, n, &L->router, NULL};
    add_rmsnorm_matmul(bc, a->x, a->proj, a->h, L->post_attention_norm, n, H, (float)c->rms_norm_eps, &router);
    lg_router_args ra = {E, K, (float)c->router_logit_softcapping, L->expert_bias};
    bool pending = OP(bc)->moe_reads_h && OP(bc)->moe_reads_h(bc, n, K); /* the experts read h's rows themselves */
    float *expert_in = pending ? NULL : a->expert_in;
    if (OP(bc)->route) OP(bc)->route(bc, &ra, a->router_logits, a->route_expert, a->route_weight, n, &a->plan,
                                     expert_in, a->h, H);
    else lg_backend_route_by_parts(bc, &ra, a->router_logits, a->route_expert, a->route_weight, n, &a->plan,
                                   expert_in, a->h, H);
    if (observer && observer->on_experts) {
        const int32_t *ids = on_host(bc, a, a->route_expert, sizeof(int32_t) * (size_t)n * K);
        if (ids) observer->on_experts(observer->user, li, ids, n, K);
    }
    a->plan.expert_begin = L->expert_begin, a->plan.expert_end = L->expert_end;
    lg_moe_args ma = {&a->plan, n, E, K, L->experts, a->expert_in, a->act_gate, a->act_up, a->expert_out,
                      L->has_shared_expert ? &L->shared_expert : NULL, a->h, a->shared_gate, a->shared_up, a->shared_out,
                      pending};
    OP(bc)->moe_experts(bc, &ma);
}

/* mlp = the experts' weighted sum (sparse_mlp's formula), then x +=
 * mlp, h = norm(x) with w: the fused op or its parts, except across ranks,
 * whose shares of mlp are added between. */
static void combine_add_rmsnorm(const laguna_model *m, lg_backend_ctx *bc, lg_activations *a, int li, int n,
                                const float *w) {
    const lg_config *c = &m->cfg;
    const lg_layer *L = &m->layers[li];
    lg_combine_norm_args ca = {a->mlp, &a->plan, a->expert_out, a->route_weight,
                               L->has_shared_expert ? a->shared_out : NULL, n, c->n_experts_per_token, c->hidden_size,
                               (float)c->routed_scaling_factor, a->x, a->h, w, (float)c->rms_norm_eps};
    if (!m->comm) {
        if (OP(bc)->moe_combine_add_rmsnorm) OP(bc)->moe_combine_add_rmsnorm(bc, &ca);
        else lg_backend_moe_combine_add_rmsnorm_by_parts(bc, &ca);
        return;
    }
    OP(bc)->moe_combine(bc, ca.out, ca.plan, ca.expert_out, ca.weights, ca.shared, n, ca.top_k, ca.hidden, ca.scale);
    sum_over_ranks(m, bc, a->mlp, n);
    add_rmsnorm(bc, a->x, a->mlp, a->h, w, n, ca.hidden, ca.eps);
}

/* ---- the whole model ---------------------------------------------------------- */

/* lm_head on n (<= a->n_logit_rows) of the step's rows into dst. */
static void head_of_rows(const laguna_model *m, lg_backend_ctx *bc, lg_activations *a, const int32_t *rows, int n,
                         float *dst) {
    OP(bc)->gather_rows(bc, a->head_in, a->h, rows, n, m->cfg.hidden_size);
    lg_matmul_op head = {dst, a->head_in, n, &m->lm_head, NULL};
    OP(bc)->matmul_many(bc, &head, 1);
}

/* lm_head on the wanted rows, LOGIT_ROWS_PER_PASS at a time (on several
 * devices, each rank's share of the vocabulary, then gathered). */
static void logits_of_rows(const laguna_model *m, lg_backend_ctx *bc, lg_activations *a, const lg_step *s) {
    size_t V = (size_t)m->cfg.vocab_size;
    for (int done = 0; done < s->n_logit_rows; done += a->n_logit_rows) {
        int n = s->n_logit_rows - done < a->n_logit_rows ? s->n_logit_rows - done : a->n_logit_rows;
        float *dst = OP(bc)->host_memory && !m->comm ? s->logits + (size_t)done * V : a->logits;
        head_of_rows(m, bc, a, s->logit_rows + done, n, dst);
        if (m->comm) lg_comm_gather_columns(m->comm, bc, s->logits + (size_t)done * V, a->logits, n, (int)m->lm_head.rows);
        else if (!OP(bc)->host_memory) OP(bc)->to_host(bc, s->logits + (size_t)done * V, a->logits, sizeof(float) * (size_t)n * V);
    }
}

/* The greedy token of rows that want nothing else: lm_head and argmax_rows
 * on the device, so only the tokens come back. On several devices the
 * logits are gathered to the host and the argmax taken there (a per-rank
 * argmax and a max over ranks would spare that copy; not done yet). */
static void argmax_of_rows(const laguna_model *m, lg_backend_ctx *bc, lg_activations *a,
                           const lg_step *s) {
    int V = m->cfg.vocab_size;
    for (int done = 0; done < s->n_argmax_rows; done += a->n_logit_rows) {
        int n =
            s->n_argmax_rows - done < a->n_logit_rows ? s->n_argmax_rows - done : a->n_logit_rows;
        head_of_rows(m, bc, a, s->argmax_rows + done, n, a->logits);
        int32_t *out = s->argmax + done;
        if (m->comm) {
            lg_comm_gather_columns(m->comm, bc, a->host_logits, a->logits, n, (int)m->lm_head.rows);
            lg_argmax_rows_f32(out, a->host_logits, n, V);
        } else if (OP(bc)->argmax_rows) {
            OP(bc)->argmax_rows(bc, out, a->logits, n, V);
        } else {
            lg_backend_argmax_rows_by_parts(bc, out, a->logits, n, V, a->host_logits);
        }
    }
}

void lg_forward(const laguna_model *m, lg_backend_ctx *bc, lg_activations *a, const lg_kv_pool_view *pool,
                const lg_step *s, const laguna_observer *obs) {
    const lg_config *c = &m->cfg;
    int H = c->hidden_size, n = s->n_rows;
    float eps = (float)c->rms_norm_eps;

    if (OP(bc)->step_begin) OP(bc)->step_begin(bc, n);
    OP(bc)->embed(bc, a->x, &m->embed_tokens, s->tokens, n);
    observe_hidden(bc, a, obs, 0, a->x, n, H);
    /* each residual add is followed by the next norm: x += block output, h = norm(x) */
    OP(bc)->rmsnorm(bc, a->h, a->x, c->n_layers ? m->layers[0].input_norm : m->final_norm, n, H, eps);
    for (int li = 0; li < c->n_layers; li++) {
        const lg_layer *L = &m->layers[li];
        attention_block(m, bc, a, pool, s, li);
        if (L->mlp_kind == LG_MLP_DENSE) {
            add_rmsnorm(bc, a->x, a->proj, a->h, L->post_attention_norm, n, H, eps);
            dense_mlp(bc, a, &L->dense, n);
        } else {
            sparse_mlp(m, bc, a, li, n, obs);
        }
        const lg_layer *N = li + 1 < c->n_layers ? &m->layers[li + 1] : NULL;
        if (N) { /* the next layer's first products, while the combine and the norm run */
            const lg_matrix *next[4] = {&N->q_proj, &N->k_proj, &N->v_proj, &N->g_proj};
            prefetch_weights(bc, next, N->gate_mode != LG_GATE_NONE ? 4 : 3);
        }
        const float *norm = N ? N->input_norm : m->final_norm;
        if (L->mlp_kind == LG_MLP_SPARSE) {
            combine_add_rmsnorm(m, bc, a, li, n, norm);
        } else {
            sum_over_ranks(m, bc, a->mlp, n);
            add_rmsnorm(bc, a->x, a->mlp, a->h, norm, n, H, eps);
        }
        observe_hidden(bc, a, obs, li + 1, a->x, n, H);
    }
    observe_hidden(bc, a, obs, c->n_layers + 1, a->h, n, H);
    logits_of_rows(m, bc, a, s);
    argmax_of_rows(m, bc, a, s);
}
