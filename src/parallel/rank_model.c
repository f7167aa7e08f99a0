/* A rank's view of a split model: slices of the full model's matrices by the
 * rank's partition (which rows for column-parallel projections, which
 * columns for row-parallel ones, which experts, which vocabulary rows),
 * placed on the rank's backend. */
#include "parallel/rank_model.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct {
    lg_backend *be;
    laguna_error *err;
    laguna_status st; /* first failure; later placements do nothing */
} placer;

/* Rows [r0, r0 + n) of m: a view. */
static lg_matrix rows_of(const lg_matrix *m, int64_t r0, int64_t n) {
    lg_matrix v = *m;
    v.rows = n;
    v.data = m->data + (size_t)r0 * m->row_bytes;
    return v;
}

/* Columns [c0, c0 + n) of m: a view with m's row stride, on whole blocks. */
static lg_matrix cols_of(placer *pl, const lg_matrix *m, int64_t c0, int64_t n, const char *what,
                         int layer) {
    lg_matrix v = *m;
    size_t skip = lg_dtype_row_bytes(m->dtype, c0);
    if ((c0 && !skip) || !lg_dtype_row_bytes(m->dtype, n)) {
        if (!pl->st)
            pl->st = lg_fail(pl->err, LAGUNA_ERR_UNSUPPORTED,
                             "cannot split layer %d's %s (%s, blocks of %lld values) at columns "
                             "[%lld, %lld) between "
                             "devices",
                             layer, what, lg_dtype_name(m->dtype),
                             (long long)lg_dtype_block_elems(m->dtype), (long long)c0,
                             (long long)(c0 + n));
        return v;
    }
    v.cols = n;
    v.data = m->data + skip;
    return v;
}

/* Puts a view where the rank's backend reads it: as it is in host memory,
 * else copied row by row into one contiguous block the backend adopts. */
static void place_matrix(placer *pl, lg_matrix *m) {
    if (pl->st || pl->be->ops->host_memory || !m->data) return;
    size_t rb = lg_dtype_row_bytes(m->dtype, m->cols), bytes = (size_t)m->rows * rb;
    uint8_t *host = malloc(bytes ? bytes : 1);
    if (!host) {
        pl->st = lg_fail(pl->err, LAGUNA_ERR_NOMEM, "out of memory");
        return;
    }
    for (int64_t r = 0; r < m->rows; r++)
        memcpy(host + (size_t)r * rb, lg_matrix_row(m, r), rb);
    const void *dev = pl->be->ops->adopt_weights(pl->be, host, bytes);
    free(host);
    if (!dev) {
        pl->st = lg_fail(pl->err, LAGUNA_ERR_NOMEM,
                         "out of %s memory for a %lld x %lld weight slice (%zu bytes)",
                         pl->be->ops->name, (long long)m->rows, (long long)m->cols, bytes);
        return;
    }
    m->data = dev;
    m->row_bytes = rb;
}

/* n floats from v (a host vector of the full model), placed likewise. */
static float *place_vector(placer *pl, const float *v, size_t n) {
    if (pl->st || !v) return NULL;
    if (pl->be->ops->host_memory) return (float *)v;
    const void *dev = pl->be->ops->adopt_weights(pl->be, v, sizeof(float) * n);
    if (!dev)
        pl->st =
            lg_fail(pl->err, LAGUNA_ERR_NOMEM, "out of %s memory for a vector", pl->be->ops->name);
    return (float *)dev;
}

static void place_mlp(placer *pl, lg_mlp_weights *w) {
    place_matrix(pl, &w->gate);
    place_matrix(pl, &w->up);
    place_matrix(pl, &w->down);
}

/* A SwiGLU MLP's intermediate columns [c.begin, c.end): gate and up by rows,
 * down by columns. */
static lg_mlp_weights split_mlp(placer *pl, const lg_mlp_weights *w, lg_range c, int layer) {
    lg_mlp_weights s = {
        rows_of(&w->gate, c.begin, lg_range_len(c)), rows_of(&w->up, c.begin, lg_range_len(c)),
        cols_of(pl, &w->down, c.begin, lg_range_len(c), "MLP down projection", layer)};
    place_mlp(pl, &s);
    return s;
}

static void split_layer(placer *pl, const laguna_model *full, const lg_rank_part *p, int li,
                        lg_layer *L) {
    const lg_config *c = &full->cfg;
    const lg_layer *F = &full->layers[li];
    int64_t hd = c->head_dim, hidden = c->hidden_size;
    lg_range q = p->q_heads[li], kv = p->kv_heads;
    *L = *F;
    L->n_heads = lg_range_len(q);
    L->input_norm = place_vector(pl, F->input_norm, (size_t)hidden);
    L->post_attention_norm = place_vector(pl, F->post_attention_norm, (size_t)hidden);
    L->q_norm = place_vector(pl, F->q_norm, (size_t)hd);
    L->k_norm = place_vector(pl, F->k_norm, (size_t)hd);

    /* attention: heads by output rows, o_proj by input columns */
    L->q_proj = rows_of(&F->q_proj, q.begin * hd, L->n_heads * hd);
    L->k_proj = rows_of(&F->k_proj, kv.begin * hd, lg_range_len(kv) * hd);
    L->v_proj = rows_of(&F->v_proj, kv.begin * hd, lg_range_len(kv) * hd);
    L->o_proj = cols_of(pl, &F->o_proj, q.begin * hd, L->n_heads * hd, "o_proj", li);
    int64_t g_unit = F->gate_mode == LG_GATE_PER_ELEMENT ? hd : 1; /* g_proj rows per query head */
    if (F->gate_mode != LG_GATE_NONE)
        L->g_proj = rows_of(&F->g_proj, q.begin * g_unit, L->n_heads * g_unit);
    lg_matrix *mats[] = {&L->q_proj, &L->k_proj, &L->v_proj, &L->o_proj, &L->g_proj};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
        place_matrix(pl, mats[i]);
    L->q_bias =
        F->q_bias ? place_vector(pl, F->q_bias + q.begin * hd, (size_t)(L->n_heads * hd)) : NULL;
    L->k_bias = F->k_bias
                    ? place_vector(pl, F->k_bias + kv.begin * hd, (size_t)(lg_range_len(kv) * hd))
                    : NULL;
    L->v_bias = F->v_bias
                    ? place_vector(pl, F->v_bias + kv.begin * hd, (size_t)(lg_range_len(kv) * hd))
                    : NULL;
    L->g_bias = F->g_bias
                    ? place_vector(pl, F->g_bias + q.begin * g_unit, (size_t)(L->n_heads * g_unit))
                    : NULL;
    /* a row-parallel bias belongs to the sum once: rank 0 adds it */
    L->o_bias = F->o_bias && p->rank == 0 ? place_vector(pl, F->o_bias, (size_t)hidden) : NULL;

    L->experts = NULL;
    if (F->mlp_kind == LG_MLP_DENSE) {
        L->dense = split_mlp(pl, &F->dense, p->dense_cols, li);
        return;
    }
    /* the router is replicated; experts are owned whole */
    place_matrix(pl, &L->router);
    L->expert_bias = place_vector(pl, F->expert_bias, (size_t)c->n_experts);
    L->experts = calloc((size_t)c->n_experts, sizeof *L->experts);
    if (!L->experts) {
        if (!pl->st) pl->st = lg_fail(pl->err, LAGUNA_ERR_NOMEM, "out of memory");
        return;
    }
    for (int e = p->experts.begin; e < p->experts.end; e++) {
        L->experts[e] = F->experts[e];
        place_mlp(pl, &L->experts[e]);
    }
    L->expert_begin = p->experts.begin, L->expert_end = p->experts.end;
    if (F->has_shared_expert)
        L->shared_expert = split_mlp(pl, &F->shared_expert, p->shared_cols, li);
}

/* The config as the rank sees it: its head counts and widths. */
static laguna_status rank_config(const lg_config *full, const lg_rank_part *p, lg_config *c,
                                 laguna_error *err) {
    *c = *full;
    size_t L = (size_t)full->n_layers;
    c->n_heads = malloc(sizeof *c->n_heads * L);
    c->attention_kind = malloc(sizeof *c->attention_kind * L);
    c->mlp_kind = malloc(sizeof *c->mlp_kind * L);
    if (!c->n_heads || !c->attention_kind || !c->mlp_kind) {
        lg_config_free(c);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    for (size_t l = 0; l < L; l++)
        c->n_heads[l] = lg_range_len(p->q_heads[l]);
    memcpy(c->attention_kind, full->attention_kind, sizeof *c->attention_kind * L);
    memcpy(c->mlp_kind, full->mlp_kind, sizeof *c->mlp_kind * L);
    c->n_kv_heads = lg_range_len(p->kv_heads);
    c->n_heads_default = c->n_heads[0];
    if (lg_range_len(p->dense_cols)) c->intermediate_size = lg_range_len(p->dense_cols);
    if (lg_range_len(p->shared_cols))
        c->shared_expert_intermediate_size = lg_range_len(p->shared_cols);
    return LAGUNA_OK; /* vocab_size stays the model's: the logits are gathered whole */
}

laguna_status lg_rank_model_new(const laguna_model *full, const lg_rank_part *p, lg_backend *be,
                                lg_comm *comm, laguna_model **out, laguna_error *err) {
    *out = NULL;
    if (!full->backend->ops->host_memory)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                       "a model is split between devices from host memory");
    laguna_model *m = calloc(1, sizeof *m);
    if (!m) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = rank_config(&full->cfg, p, &m->cfg, err);
    if (st) {
        free(m);
        return st;
    }
    m->backend = be;
    m->comm = comm;
    m->info = full->info;
    m->layers = calloc((size_t)full->cfg.n_layers, sizeof *m->layers);
    if (!m->layers) {
        lg_rank_model_free(m);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    placer pl = {be, err, LAGUNA_OK};
    m->embed_tokens = full->embed_tokens; /* replicated: a step reads one row per token */
    place_matrix(&pl, &m->embed_tokens);
    m->lm_head = rows_of(&full->lm_head, p->vocab.begin, lg_range_len(p->vocab));
    place_matrix(&pl, &m->lm_head);
    m->final_norm = place_vector(&pl, full->final_norm, (size_t)full->cfg.hidden_size);
    for (int k = 0; k < 2; k++) {
        m->rope[k] = full->rope[k]; /* host tables, borrowed */
        if (full->rope_inv_freq[k])
            m->rope_inv_freq[k] =
                place_vector(&pl, full->rope_inv_freq[k], (size_t)(full->rope[k].n_rot / 2));
    }
    for (int li = 0; li < full->cfg.n_layers && !pl.st; li++)
        split_layer(&pl, full, p, li, &m->layers[li]);
    if (pl.st) {
        lg_rank_model_free(m);
        return pl.st;
    }
    *out = m;
    return LAGUNA_OK;
}

void lg_rank_model_free(laguna_model *m) {
    if (!m) return;
    if (m->layers)
        for (int li = 0; li < m->cfg.n_layers; li++)
            free(m->layers[li].experts);
    free(m->layers);
    lg_config_free(&m->cfg);
    free(m); /* the weights are views, or the backend's (freed when it is destroyed) */
}
