/* Binds checkpoint tensors to the model's layers, checking each against the
 * config: name present, shape as the config implies, dtype supported. Any
 * mismatch is reported with the tensor name, expected and found shapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "model/model_synth.h"

typedef struct {
    lg_tensor_source *src;
    const char *source; /* folder or file, for messages */
    laguna_error *err;
    laguna_model *model;
    uint64_t bytes_total, bytes_done; /* for the progress callback */
    bool may_rearrange; /* the backend rearranges weights and the source owns some memory */
} binder;

static void shape_str(char *buf, size_t n, const int64_t *shape, int nd) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static const lg_tensor *need(binder *b, const char *name, int nd, int64_t d0, int64_t d1, laguna_status *st) {
    const lg_tensor *t = lg_tensor_source_find(b->src, name);
    if (!t) {
        *st = lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: missing tensor '%s'", b->source, name);
        return NULL;
    }
    if (t->dtype == LG_DTYPE_I32) {
        *st = lg_fail(b->err, LAGUNA_ERR_UNSUPPORTED, "%s: tensor '%s' has integer dtype I32; weights must be floating point",
                      t->file, name);
        return NULL;
    }
    int64_t want[2] = {d0, d1};
    bool ok = t->n_dims == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char w[64], f[96];
        shape_str(w, sizeof w, want, nd);
        shape_str(f, sizeof f, t->shape, t->n_dims);
        *st = lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: tensor '%s' has shape %s, the config implies %s", t->file, name, f, w);
        return NULL;
    }
    return t;
}

/* The tensor's bytes as the backend will read them (the CPU reads them in
 * place; a GPU keeps an uploaded copy that it frees when destroyed). */
static void advance(binder *b, size_t bytes);

static const uint8_t *adopt(binder *b, const void *host, size_t bytes, const char *name, laguna_status *st) {
    lg_backend *be = b->model->backend;
    const void *p = be->ops->adopt_weights(be, host, bytes);
    if (!p) *st = lg_fail(b->err, LAGUNA_ERR_NOMEM, "%s: no %s memory for tensor '%s' (%zu bytes)", b->source, be->ops->name, name, bytes);
    else advance(b, bytes);
    return p;
}

/* A matrix of a model with no checkpoint: made by the backend or on the host (model_synth.c). */
static const uint8_t *synthesize(binder *b, const lg_tensor *t, int64_t rows, int64_t cols, size_t row_bytes,
                                 laguna_status *st) {
    const uint8_t *p = lg_model_synth_matrix(b->model, t, rows, cols, row_bytes, b->err);
    if (!p) *st = LAGUNA_ERR_NOMEM;
    else advance(b, (size_t)rows * row_bytes);
    return p;
}

static void advance(binder *b, size_t bytes) {
    b->bytes_done += bytes;
    if (b->model->progress && b->bytes_total) {
        double f = (double)b->bytes_done / (double)b->bytes_total;
        b->model->progress(b->model->progress_user, f < 1 ? f : 1); /* float copies of vectors can exceed the file's bytes */
    }
}

static laguna_status backend_runs(binder *b, const lg_tensor *t, const char *name) {
    const lg_backend_ops *ops = b->model->backend->ops;
    if (ops->weights_ok && !ops->weights_ok(t->dtype))
        return lg_fail(b->err, LAGUNA_ERR_UNSUPPORTED, "%s: tensor '%s' is %s, which the %s backend does not run yet", t->file,
                       name, lg_dtype_name(t->dtype), ops->name);
    return LAGUNA_OK;
}

/* A matrix of memory the model owns, in the layout the backend's kernels
 * read fastest (backend.h: rearrange_weights). A file's tensor records its
 * new dtype in the source, so that a second binding neither rearranges nor
 * misreads it; a generated one has no bytes there (generated again, it is
 * rearranged again). Not the token embeddings, whose rows the embedding
 * lookup decodes (they may also be the tied lm_head). */
static void rearrange(binder *b, const lg_tensor *t, lg_matrix *m, const char *name) {
    lg_backend *be = b->model->backend;
    if (!b->may_rearrange || !strcmp(name, "model.embed_tokens.weight")) return;
    size_t bytes = (size_t)m->rows * m->row_bytes;
    if (!lg_tensor_source_owns(b->src, m->data, bytes)) return;
    lg_dtype layout = be->ops->rearrange_weights(be, m->dtype, (void *)m->data, m->rows, m->cols);
    if (layout == m->dtype) return;
    m->dtype = layout;
    if (t->data) lg_tensor_source_set_dtype(b->src, t->name, layout);
    b->model->info.weights_rearranged_bytes += bytes;
}

static laguna_status bind_matrix(binder *b, lg_matrix *m, const char *name, int64_t rows, int64_t cols) {
    laguna_status st = LAGUNA_OK;
    const lg_tensor *t = need(b, name, 2, rows, cols, &st);
    if (!t) return st;
    size_t rb = lg_dtype_row_bytes(t->dtype, cols);
    if ((st = backend_runs(b, t, name))) return st;
    if (rb == 0)
        return lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: tensor '%s' (%s): %lld columns is not a whole number of blocks", t->file,
                       name, lg_dtype_name(t->dtype), (long long)cols);
    *m = (lg_matrix){.dtype = t->dtype, .rows = rows, .cols = cols, .row_bytes = rb,
                     .data = t->data ? adopt(b, t->data, (size_t)rows * rb, name, &st) : synthesize(b, t, rows, cols, rb, &st)};
    if (!st) rearrange(b, t, m, name);
    return st;
}

/* Copies a 1-D tensor to a new float32 array owned by the model. */
static laguna_status bind_vector(binder *b, float **out, const char *name, int64_t n) {
    laguna_status st = LAGUNA_OK;
    const lg_tensor *t = need(b, name, 1, n, 0, &st);
    if (!t) return st;
    if (lg_dtype_block_elems(t->dtype) != 1 && n % lg_dtype_block_elems(t->dtype))
        return lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: tensor '%s' is not a whole number of blocks", t->file, name);
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!v || lg_tensor_source_keep_block(b->model->tensors, v)) {
        free(v);
        return lg_fail(b->err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    if (!t->data && lg_model_synth_vector(b->model, t, v, n)) return lg_fail(b->err, LAGUNA_ERR_NOMEM, "out of memory");
    if (t->data) lg_dtype_to_f32(t->dtype, t->data, v, n);
    *out = (float *)adopt(b, v, sizeof(float) * (size_t)n, name, &st);
    return st;
}

static laguna_status bind_mlp(binder *b, lg_mlp_weights *w, const char *prefix, int64_t hidden, int64_t inter) {
    char name[256];
    laguna_status st;
    snprintf(name, sizeof name, "%s.gate_proj.weight", prefix);
    if ((st = bind_matrix(b, &w->gate, name, inter, hidden))) return st;
    snprintf(name, sizeof name, "%s.up_proj.weight", prefix);
    if ((st = bind_matrix(b, &w->up, name, inter, hidden))) return st;
    snprintf(name, sizeof name, "%s.down_proj.weight", prefix);
    return bind_matrix(b, &w->down, name, hidden, inter);
}

/* The output gate's mode comes from g_proj's row count: heads rows = one gate
 * per head, heads*head_dim rows = one per element (config.json's "gating"
 * is not always explicit). */
static laguna_status bind_gate(binder *b, lg_layer *l, int li, const char *prefix) {
    const lg_config *c = &b->model->cfg;
    char name[256];
    snprintf(name, sizeof name, "%s.g_proj.weight", prefix);
    const lg_tensor *t = lg_tensor_source_find(b->src, name);
    if (!t) return lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: missing tensor '%s'", b->source, name);
    int64_t per_head = l->n_heads, per_element = (int64_t)l->n_heads * c->head_dim;
    if (t->n_dims == 2 && t->shape[0] == per_head) l->gate_mode = LG_GATE_PER_HEAD;
    else if (t->n_dims == 2 && t->shape[0] == per_element) l->gate_mode = LG_GATE_PER_ELEMENT;
    else
        return lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: tensor '%s' has %lld rows; layer %d needs %lld (per head) or %lld (per element)",
                       t->file, name, (long long)t->shape[0], li, (long long)per_head, (long long)per_element);
    if (c->gate_mode_from_config && l->gate_mode != c->gate_mode)
        return lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: tensor '%s' shape says %s gating but config.json says %s", t->file, name,
                       l->gate_mode == LG_GATE_PER_HEAD ? "per-head" : "per-element",
                       c->gate_mode == LG_GATE_PER_HEAD ? "per-head" : "per-element");
    return bind_matrix(b, &l->g_proj, name, l->gate_mode == LG_GATE_PER_HEAD ? per_head : per_element, c->hidden_size);
}

static laguna_status bind_attention(binder *b, lg_layer *l, int li) {
    const lg_config *c = &b->model->cfg;
    char prefix[128], name[256];
    snprintf(prefix, sizeof prefix, "model.layers.%d.self_attn", li);
    int64_t hid = c->hidden_size, qd = (int64_t)l->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    laguna_status st;
    struct { lg_matrix *m; float **bias; const char *part; int64_t rows, cols; } proj[] = {
        {&l->q_proj, &l->q_bias, "q_proj", qd, hid},
        {&l->k_proj, &l->k_bias, "k_proj", kvd, hid},
        {&l->v_proj, &l->v_bias, "v_proj", kvd, hid},
        {&l->o_proj, &l->o_bias, "o_proj", hid, qd},
    };
    for (size_t i = 0; i < sizeof proj / sizeof proj[0]; i++) {
        snprintf(name, sizeof name, "%s.%s.weight", prefix, proj[i].part);
        if ((st = bind_matrix(b, proj[i].m, name, proj[i].rows, proj[i].cols))) return st;
        snprintf(name, sizeof name, "%s.%s.bias", prefix, proj[i].part);
        if (c->attention_bias && (st = bind_vector(b, proj[i].bias, name, proj[i].rows))) return st;
    }
    snprintf(name, sizeof name, "%s.q_norm.weight", prefix);
    if ((st = bind_vector(b, &l->q_norm, name, c->head_dim))) return st;
    snprintf(name, sizeof name, "%s.k_norm.weight", prefix);
    if ((st = bind_vector(b, &l->k_norm, name, c->head_dim))) return st;
    if ((st = bind_gate(b, l, li, prefix))) return st;
    snprintf(name, sizeof name, "%s.g_proj.bias", prefix);
    if (l->gate_mode != LG_GATE_NONE && lg_tensor_source_find(b->src, name))
        return bind_vector(b, &l->g_bias, name, l->g_proj.rows);
    return LAGUNA_OK;
}

/* transformers 5 keeps experts in memory as 3-D tensors (gate_up_proj
 * [experts, 2*inter, hidden], down_proj [experts, hidden, inter]); a
 * checkpoint saved in that layout is read as per-expert views of them. */
static laguna_status bind_fused_experts(binder *b, lg_layer *l, int li) {
    const lg_config *c = &b->model->cfg;
    int64_t E = c->n_experts, I = c->moe_intermediate_size, H = c->hidden_size;
    char name[256];
    const lg_tensor *gu, *down;
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj", li);
    gu = lg_tensor_source_find(b->src, name);
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.down_proj", li);
    down = lg_tensor_source_find(b->src, name);
    if (!gu || !down)
        return lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: missing tensor 'model.layers.%d.mlp.experts.0.gate_proj.weight'", b->source, li);
    if (gu->n_dims != 3 || gu->shape[0] != E || gu->shape[1] != 2 * I || gu->shape[2] != H || down->n_dims != 3 ||
        down->shape[0] != E || down->shape[1] != H || down->shape[2] != I || gu->dtype == LG_DTYPE_I32 || down->dtype == LG_DTYPE_I32)
        return lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: layer %d's fused expert tensors do not have shapes [%lld, %lld, %lld] and [%lld, %lld, %lld]",
                       gu->file, li, (long long)E, (long long)(2 * I), (long long)H, (long long)E, (long long)H, (long long)I);
    size_t gu_row = lg_dtype_row_bytes(gu->dtype, H), down_row = lg_dtype_row_bytes(down->dtype, I);
    if (!gu_row || !down_row) return lg_fail(b->err, LAGUNA_ERR_SHAPE, "%s: layer %d's fused experts are not whole blocks", gu->file, li);
    laguna_status st = backend_runs(b, gu, "gate_up_proj");
    if (!st) st = backend_runs(b, down, "down_proj");
    if (st) return st;
    const uint8_t *gu_data = adopt(b, gu->data, (size_t)(E * 2 * I) * gu_row, "gate_up_proj", &st);
    const uint8_t *down_data = gu_data ? adopt(b, down->data, (size_t)(E * H) * down_row, "down_proj", &st) : NULL;
    if (st) return st;
    for (int64_t e = 0; e < E; e++) {
        const uint8_t *g0 = gu_data + (size_t)(e * 2 * I) * gu_row;
        l->experts[e].gate = (lg_matrix){gu->dtype, I, H, gu_row, g0};
        l->experts[e].up = (lg_matrix){gu->dtype, I, H, gu_row, g0 + (size_t)I * gu_row};
        l->experts[e].down = (lg_matrix){down->dtype, H, I, down_row, down_data + (size_t)(e * H) * down_row};
    }
    return LAGUNA_OK;
}

/* Binds the first name that exists among a layer's alternatives (per-expert
 * checkpoints and transformers' in-memory layout name some tensors apart). */
static const char *pick(binder *b, char *buf, size_t n, int li, const char *a, const char *alt) {
    snprintf(buf, n, a, li);
    if (lg_tensor_source_find(b->src, buf)) return buf;
    char other[256];
    snprintf(other, sizeof other, alt, li);
    if (lg_tensor_source_find(b->src, other)) snprintf(buf, n, "%s", other);
    return buf;
}

static laguna_status bind_sparse_mlp(binder *b, lg_layer *l, int li) {
    const lg_config *c = &b->model->cfg;
    char name[256], prefix[160];
    laguna_status st;
    snprintf(name, sizeof name, "model.layers.%d.mlp.gate.weight", li);
    if ((st = bind_matrix(b, &l->router, name, c->n_experts, c->hidden_size))) return st;
    pick(b, name, sizeof name, li, "model.layers.%d.mlp.experts.e_score_correction_bias", "model.layers.%d.mlp.gate.e_score_correction_bias");
    if ((st = bind_vector(b, &l->expert_bias, name, c->n_experts))) return st;
    l->experts = calloc((size_t)c->n_experts, sizeof *l->experts);
    if (!l->experts) return lg_fail(b->err, LAGUNA_ERR_NOMEM, "out of memory");
    snprintf(name, sizeof name, "model.layers.%d.mlp.experts.0.gate_proj.weight", li);
    if (!lg_tensor_source_find(b->src, name)) {
        if ((st = bind_fused_experts(b, l, li))) return st;
    } else {
        for (int e = 0; e < c->n_experts; e++) {
            snprintf(prefix, sizeof prefix, "model.layers.%d.mlp.experts.%d", li, e);
            if ((st = bind_mlp(b, &l->experts[e], prefix, c->hidden_size, c->moe_intermediate_size))) return st;
        }
    }
    l->has_shared_expert = c->shared_expert_intermediate_size > 0;
    if (l->has_shared_expert) {
        pick(b, name, sizeof name, li, "model.layers.%d.mlp.shared_expert.gate_proj.weight", "model.layers.%d.mlp.shared_experts.gate_proj.weight");
        snprintf(prefix, sizeof prefix, "model.layers.%d.mlp.%s", li, strstr(name, "shared_experts") ? "shared_experts" : "shared_expert");
        if ((st = bind_mlp(b, &l->shared_expert, prefix, c->hidden_size, c->shared_expert_intermediate_size))) return st;
    }
    return LAGUNA_OK;
}

static laguna_status bind_layer(binder *b, int li) {
    const lg_config *c = &b->model->cfg;
    lg_layer *l = &b->model->layers[li];
    l->n_heads = c->n_heads[li];
    l->attention_kind = c->attention_kind[li];
    l->mlp_kind = c->mlp_kind[li];
    char name[256];
    laguna_status st;
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", li);
    if ((st = bind_vector(b, &l->input_norm, name, c->hidden_size))) return st;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", li);
    if ((st = bind_vector(b, &l->post_attention_norm, name, c->hidden_size))) return st;
    if ((st = bind_attention(b, l, li))) return st;
    if (l->mlp_kind == LG_MLP_DENSE) {
        snprintf(name, sizeof name, "model.layers.%d.mlp", li);
        return bind_mlp(b, &l->dense, name, c->hidden_size, c->intermediate_size);
    }
    return bind_sparse_mlp(b, l, li);
}

laguna_status lg_model_bind(laguna_model *model, lg_config *cfg, lg_tensor_source *tensors, const char *source,
                            laguna_error *err) {
    model->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg); /* the model owns the per-layer arrays now */
    model->tensors = tensors;
    binder b = {tensors, source, err, model, 0, 0, false};
    /* copies of files are read-only once read: writable while binding when
     * the backend will rearrange some of them */
    b.may_rearrange = !model->file_layout && model->backend->ops->rearrange_weights &&
                      lg_tensor_source_set_writable(tensors, true) == 0;
    for (size_t i = 0; i < lg_tensor_source_count(tensors); i++) b.bytes_total += lg_tensor_source_at(tensors, i)->n_bytes;
    const lg_config *c = &model->cfg;
    laguna_status st;
    if ((st = bind_matrix(&b, &model->embed_tokens, "model.embed_tokens.weight", c->vocab_size, c->hidden_size))) return st;
    /* tied: transformers points lm_head at the embeddings, whatever the file holds */
    if (c->tie_word_embeddings) model->lm_head = model->embed_tokens;
    else if ((st = bind_matrix(&b, &model->lm_head, "lm_head.weight", c->vocab_size, c->hidden_size))) return st;
    if ((st = bind_vector(&b, &model->final_norm, "model.norm.weight", c->hidden_size))) return st;
    model->layers = calloc((size_t)c->n_layers, sizeof *model->layers);
    if (!model->layers) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (int li = 0; li < c->n_layers; li++)
        if ((st = bind_layer(&b, li))) return st;
    if (!c->gate_mode_from_config) model->cfg.gate_mode = model->layers[0].gate_mode; /* "gating": true */
    for (int k = 0; k < 2; k++)
        if (c->has_rope[k]) {
            if ((st = lg_rope_table_init(&model->rope[k], &c->rope[k], c->head_dim, err))) return st;
            size_t bytes = sizeof(float) * (size_t)(model->rope[k].n_rot / 2);
            model->rope_inv_freq[k] = (const float *)adopt(&b, model->rope[k].inv_freq, bytes, "rope tables", &st);
            if (st) return st;
        }
    if (b.may_rearrange) lg_tensor_source_set_writable(tensors, false);
    if (model->progress) model->progress(model->progress_user, 1.0);
    return LAGUNA_OK;
}

void lg_model_unbind(laguna_model *model) {
    if (model->layers)
        for (int li = 0; li < model->cfg.n_layers; li++) free(model->layers[li].experts);
    free(model->layers);
    model->layers = NULL;
    for (int k = 0; k < 2; k++) lg_rope_table_free(&model->rope[k]);
    lg_tensor_source_free(model->tensors);
    model->tensors = NULL;
    lg_config_free(&model->cfg);
}
