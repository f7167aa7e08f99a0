/* The Laguna forward pass, step by step as in docs/laguna-architecture.md.
 *
 * For each layer: RMSNorm -> attention (q/k/v projections, per-head q/k
 * RMSNorm, RoPE of the layer's kind, causal GQA over the cache, softplus
 * output gate) -> residual add -> RMSNorm -> dense SwiGLU MLP or the sparse
 * MoE (sigmoid router, bias-shifted top-k, normalised weights, routed scale,
 * shared expert) -> residual add. A batch of tokens goes through each step
 * together, so every projection is a matrix-matrix product. */
#include "model/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static float *alloc_floats(size_t n) { return malloc(sizeof(float) * (n ? n : 1)); }

laguna_status lg_activations_init(lg_activations *a, const lg_config *c, int B, laguna_error *err) {
    memset(a, 0, sizeof *a);
    a->n_batch = B;
    int max_heads = 0;
    for (int l = 0; l < c->n_layers; l++)
        if (c->n_heads[l] > max_heads) max_heads = c->n_heads[l];
    size_t H = (size_t)c->hidden_size, Q = (size_t)max_heads * c->head_dim, KV = (size_t)c->n_kv_heads * c->head_dim;
    size_t I = (size_t)c->intermediate_size;
    if ((size_t)c->moe_intermediate_size > I) I = (size_t)c->moe_intermediate_size;
    if ((size_t)c->shared_expert_intermediate_size > I) I = (size_t)c->shared_expert_intermediate_size;
    size_t E = (size_t)(c->n_experts > 0 ? c->n_experts : 1), K = (size_t)(c->n_experts_per_token > 0 ? c->n_experts_per_token : 1);
    size_t b = (size_t)B, rows = b * K + b; /* every routed (token, expert) pair plus the shared expert */
    a->x = alloc_floats(b * H);
    a->h = alloc_floats(b * H);
    a->q = alloc_floats(b * Q);
    a->k = alloc_floats(b * KV);
    a->v = alloc_floats(b * KV);
    a->attn = alloc_floats(b * Q);
    a->gate = alloc_floats(b * Q);
    a->proj = alloc_floats(b * H);
    a->mlp = alloc_floats(b * H);
    a->act_gate = alloc_floats(rows * I);
    a->act_up = alloc_floats(rows * I);
    a->expert_in = alloc_floats(b * K * H);
    a->expert_out = alloc_floats(rows * H);
    a->router_logits = alloc_floats(b * E);
    a->route_weight = alloc_floats(b * K);
    a->route_expert = malloc(sizeof(int32_t) * b * K);
    a->expert_count = malloc(sizeof(int) * E);
    a->expert_rows = malloc(sizeof(int) * b * K);
    a->pos = malloc(sizeof(int) * b);
    a->ops = malloc(sizeof(lg_matmul_op) * 2 * (E + 1));
    if (!a->x || !a->h || !a->q || !a->k || !a->v || !a->attn || !a->gate || !a->proj || !a->mlp || !a->act_gate ||
        !a->act_up || !a->expert_in || !a->expert_out || !a->router_logits || !a->route_weight || !a->route_expert ||
        !a->expert_count || !a->expert_rows || !a->pos || !a->ops) {
        lg_activations_free(a);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for activations (batch %d)", B);
    }
    return LAGUNA_OK;
}

void lg_activations_free(lg_activations *a) {
    void *ptrs[] = {a->x, a->h, a->q, a->k, a->v, a->attn, a->gate, a->proj, a->mlp, a->act_gate, a->act_up,
                    a->expert_in, a->expert_out, a->router_logits, a->route_weight, a->route_expert,
                    a->expert_count, a->expert_rows, a->pos, a->ops};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) free(ptrs[i]);
    memset(a, 0, sizeof *a);
}

/* ---- attention -------------------------------------------------------------- */

static void attention_block(const laguna_model *m, lg_kernel_ctx *k, lg_activations *a, lg_kv_cache *cache, int li,
                            int n, int pos0) {
    const lg_config *c = &m->cfg;
    const lg_layer *L = &m->layers[li];
    int hd = c->head_dim, nh = L->n_heads, nkv = c->n_kv_heads;
    float eps = (float)c->rms_norm_eps;

    bool gated = L->gate_mode != LG_GATE_NONE;
    lg_matmul_op proj[4] = {
        {a->q, a->h, n, &L->q_proj, L->q_bias},
        {a->k, a->h, n, &L->k_proj, L->k_bias},
        {a->v, a->h, n, &L->v_proj, L->v_bias},
        {a->gate, a->h, gated ? n : 0, &L->g_proj, L->g_bias},
    };
    lg_matmul_many(k, proj, 4);
    lg_rmsnorm_rows(a->q, a->q, L->q_norm, n * nh, hd, eps);
    lg_rmsnorm_rows(a->k, a->k, L->k_norm, n * nkv, hd, eps);

    const lg_rope_table *rope = &m->rope[L->attention_kind];
    lg_rope_rows(a->q, n, nh, hd, rope->n_rot, rope->inv_freq, rope->attention_scale, a->pos);
    lg_rope_rows(a->k, n, nkv, hd, rope->n_rot, rope->inv_freq, rope->attention_scale, a->pos);

    /* keys: cached positions still visible to the first query, then this batch */
    int window = L->attention_kind == LG_ATTN_SLIDING ? c->sliding_window : 0;
    int first = window > 0 ? pos0 - window + 1 : 0;
    lg_kv_span spans[3];
    int n_spans = lg_kv_cache_spans(cache, li, first, pos0, spans);
    spans[n_spans++] = (lg_kv_span){a->k, a->v, n, (size_t)nkv * hd * sizeof(float), pos0, LG_DTYPE_F32};
    lg_attention(k, a->attn, a->q, n, nh, nkv, hd, pos0, window, spans, n_spans);
    lg_kv_cache_store(cache, li, pos0, a->k, a->v, n);

    /* output gate: softplus(Wg h), one value per head or per element */
    if (gated) {
        size_t q_width = (size_t)nh * hd;
        for (int t = 0; t < n; t++) {
            float *o = a->attn + (size_t)t * q_width;
            if (L->gate_mode == LG_GATE_PER_HEAD) {
                const float *g = a->gate + (size_t)t * nh;
                for (int h = 0; h < nh; h++) {
                    float s = lg_softplus(g[h]);
                    for (int e = 0; e < hd; e++) o[h * hd + e] *= s;
                }
            } else {
                const float *g = a->gate + (size_t)t * q_width;
                for (size_t e = 0; e < q_width; e++) o[e] *= lg_softplus(g[e]);
            }
        }
    }
    lg_matmul(k, a->proj, a->attn, n, &L->o_proj, L->o_bias);
}

/* ---- MLP -------------------------------------------------------------------- */

/* out[t] = down(silu(gate x[t]) * up x[t]) for n rows */
static void swiglu(lg_kernel_ctx *k, lg_activations *a, const lg_mlp_weights *w, float *out, const float *x, int n) {
    lg_matmul(k, a->act_gate, x, n, &w->gate, NULL);
    lg_matmul(k, a->act_up, x, n, &w->up, NULL);
    lg_silu_mul(a->act_gate, a->act_gate, a->act_up, (size_t)n * w->gate.rows);
    lg_matmul(k, out, a->act_gate, n, &w->down, NULL);
}

/* Chooses top_k experts of one token by sigmoid score + bias (the bias only
 * selects); weights are the chosen scores normalised to sum 1. The logits
 * row is overwritten with the scores. Ties keep the
 * lower expert id, as torch.topk does on CPU for equal values. */
static void route_token(const lg_config *c, float *logits_to_scores, const float *bias, int32_t *ids, float *weights) {
    int E = c->n_experts, K = c->n_experts_per_token;
    float *score = logits_to_scores;
    for (int e = 0; e < E; e++) {
        float x = score[e];
        if (c->router_logit_softcapping > 0) {
            float cap = (float)c->router_logit_softcapping;
            x = cap * tanhf(x / cap);
        }
        score[e] = lg_sigmoid(x);
    }
    float sum = 0;
    for (int j = 0; j < K; j++) {
        int best = -1;
        float best_v = -INFINITY;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int i = 0; i < j; i++) taken |= ids[i] == e;
            float v = score[e] + bias[e];
            if (!taken && (best < 0 || v > best_v)) best = e, best_v = v;
        }
        ids[j] = best;
        weights[j] = score[best];
        sum += score[best];
    }
    for (int j = 0; j < K; j++) weights[j] /= sum;
}

/* Sparse MoE block. Tokens are grouped by expert so each chosen expert runs
 * once per batch on all its tokens; all experts' (and the shared expert's)
 * gate/up products share one dispatch, then all down products another. */
static void sparse_mlp(const laguna_model *m, lg_kernel_ctx *k, lg_activations *a, int li, int n,
                       const laguna_observer *observer) {
    const lg_config *c = &m->cfg;
    const lg_layer *L = &m->layers[li];
    int E = c->n_experts, K = c->n_experts_per_token, pairs = n * K;
    size_t H = (size_t)c->hidden_size, I = (size_t)c->moe_intermediate_size;

    lg_matmul(k, a->router_logits, a->h, n, &L->router, NULL);
    for (int t = 0; t < n; t++)
        route_token(c, a->router_logits + (size_t)t * E, L->expert_bias, a->route_expert + (size_t)t * K,
                    a->route_weight + (size_t)t * K);
    if (observer && observer->on_experts) observer->on_experts(observer->user, li, a->route_expert, n, K);

    /* counting sort of the (token, slot) pairs by expert: expert e's pairs are
     * expert_rows[start[e] .. start[e] + count) */
    memset(a->expert_count, 0, sizeof(int) * (size_t)E);
    for (int i = 0; i < pairs; i++) a->expert_count[a->route_expert[i]]++;
    for (int e = 0, offset = 0; e < E; e++) {
        int cnt = a->expert_count[e];
        a->expert_count[e] = offset; /* start, advanced below to the end */
        offset += cnt;
    }
    for (int i = 0; i < pairs; i++) a->expert_rows[a->expert_count[a->route_expert[i]]++] = i;
    for (int r = 0; r < pairs; r++)
        memcpy(a->expert_in + (size_t)r * H, a->h + (size_t)(a->expert_rows[r] / K) * H, H * sizeof(float));

    /* the shared expert's rows follow the routed ones in the work buffers */
    size_t S = (size_t)c->shared_expert_intermediate_size;
    float *shared_gate = a->act_gate + (size_t)pairs * I, *shared_up = a->act_up + (size_t)pairs * I;
    float *shared_out = a->expert_out + (size_t)pairs * H;
    lg_matmul_op *ops = a->ops;
    int n_ops = 0;
    for (int e = 0, start = 0; e < E; e++) {
        int end = a->expert_count[e];
        if (end > start) {
            ops[n_ops++] = (lg_matmul_op){a->act_gate + start * I, a->expert_in + start * H, end - start, &L->experts[e].gate, NULL};
            ops[n_ops++] = (lg_matmul_op){a->act_up + start * I, a->expert_in + start * H, end - start, &L->experts[e].up, NULL};
        }
        start = end;
    }
    if (L->has_shared_expert) {
        ops[n_ops++] = (lg_matmul_op){shared_gate, a->h, n, &L->shared_expert.gate, NULL};
        ops[n_ops++] = (lg_matmul_op){shared_up, a->h, n, &L->shared_expert.up, NULL};
    }
    lg_matmul_many(k, ops, n_ops);
    lg_silu_mul(a->act_gate, a->act_gate, a->act_up, (size_t)pairs * I);
    if (L->has_shared_expert) lg_silu_mul(shared_gate, shared_gate, shared_up, (size_t)n * S);
    n_ops = 0;
    for (int e = 0, start = 0; e < E; e++) {
        int end = a->expert_count[e];
        if (end > start)
            ops[n_ops++] = (lg_matmul_op){a->expert_out + start * H, a->act_gate + start * I, end - start, &L->experts[e].down, NULL};
        start = end;
    }
    if (L->has_shared_expert) ops[n_ops++] = (lg_matmul_op){shared_out, shared_gate, n, &L->shared_expert.down, NULL};
    lg_matmul_many(k, ops, n_ops);

    /* mlp = routed_scaling_factor * sum_k weight_k expert_k(h) + shared_expert(h) */
    memset(a->mlp, 0, sizeof(float) * (size_t)n * H);
    for (int r = 0; r < pairs; r++) {
        int pair = a->expert_rows[r];
        float w = a->route_weight[pair];
        float *dst = a->mlp + (size_t)(pair / K) * H;
        const float *src = a->expert_out + (size_t)r * H;
        for (size_t i = 0; i < H; i++) dst[i] += w * src[i];
    }
    float scale = (float)c->routed_scaling_factor;
    for (size_t i = 0; i < (size_t)n * H; i++) a->mlp[i] *= scale;
    if (L->has_shared_expert)
        for (size_t i = 0; i < (size_t)n * H; i++) a->mlp[i] += shared_out[i];
}

/* ---- the whole model ---------------------------------------------------------- */

static void add_rows(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void lg_forward(const laguna_model *m, lg_kernel_ctx *k, lg_activations *a, lg_kv_cache *cache, const int32_t *tokens,
                int n, int pos0, float *logits, bool all_logits, const laguna_observer *observer) {
    const lg_config *c = &m->cfg;
    size_t H = (size_t)c->hidden_size;
    float eps = (float)c->rms_norm_eps;
    bool watch_hidden = observer && observer->on_hidden;

    for (int t = 0; t < n; t++) {
        a->pos[t] = pos0 + t;
        lg_dtype_to_f32(m->embed_tokens.dtype, lg_matrix_row(&m->embed_tokens, tokens[t]), a->x + (size_t)t * H,
                        (int64_t)H);
    }
    if (watch_hidden) observer->on_hidden(observer->user, 0, a->x, n, (int)H);

    for (int li = 0; li < c->n_layers; li++) {
        const lg_layer *L = &m->layers[li];
        lg_rmsnorm_rows(a->h, a->x, L->input_norm, n, (int)H, eps);
        attention_block(m, k, a, cache, li, n, pos0);
        add_rows(a->x, a->proj, (size_t)n * H);

        lg_rmsnorm_rows(a->h, a->x, L->post_attention_norm, n, (int)H, eps);
        if (L->mlp_kind == LG_MLP_DENSE) swiglu(k, a, &L->dense, a->mlp, a->h, n);
        else sparse_mlp(m, k, a, li, n, observer);
        add_rows(a->x, a->mlp, (size_t)n * H);
        if (watch_hidden) observer->on_hidden(observer->user, li + 1, a->x, n, (int)H);
    }

    lg_rmsnorm_rows(a->h, a->x, m->final_norm, n, (int)H, eps);
    if (watch_hidden) observer->on_hidden(observer->user, c->n_layers + 1, a->h, n, (int)H);
    if (!logits) return;
    if (all_logits) lg_matmul(k, logits, a->h, n, &m->lm_head, NULL);
    else lg_matmul(k, logits, a->h + (size_t)(n - 1) * H, 1, &m->lm_head, NULL);
}
