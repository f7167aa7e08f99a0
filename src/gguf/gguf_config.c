/* GGUF "laguna.*" metadata -> lg_config, following llama.cpp's reading of the
 * keys (src/models/laguna.cpp, load_arch_hparams) so a GGUF made by
 * llama.cpp's converter reads here with the same meaning:
 *   - per-layer attention kind: sliding iff sliding_window > 0 and the layer
 *     is not first in its period of attention.sliding_window_pattern (default
 *     4, "dense first": layer L is global when L % period == 0); a per-layer
 *     bool array (true = sliding) is accepted too;
 *   - the first leading_dense_block_count layers are dense, the rest sparse;
 *   - global layers' RoPE: rope.freq_base, rope.dimension_count, YaRN from
 *     rope.scaling.*; sliding layers: plain RoPE with rope.freq_base_swa and
 *     rope.dimension_count_swa (each defaulting to the global value);
 *   - the attention gate mode comes from blk.0.attn_gate's row count, as in
 *     llama.cpp (the config has no key for it);
 *   - tied embeddings when output.weight is absent.
 * Keys marked "laguna.c extension" in docs/gguf-laguna.md are optional. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf_laguna.h"

#define ARCH "laguna"

typedef struct {
    const lg_gguf_file *f;
    laguna_error *err;
} ctx;

static const char *path(const ctx *c) {
    return lg_gguf_path(c->f);
}

/* An integer key in [lo, hi]; `def` when absent and not required. */
static laguna_status get_int(ctx *c, const char *key, bool required, int64_t def, int64_t lo,
                             int64_t hi, int *out) {
    const lg_gguf_kv *kv = lg_gguf_find_kv(c->f, key);
    int64_t v = def;
    if (kv) {
        laguna_status st = lg_gguf_get_i64(c->f, key, &v, c->err);
        if (st) return st;
    } else if (required) {
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: missing metadata key '%s'", path(c), key);
    }
    if (v < lo || v > hi)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT,
                       "%s: metadata key '%s' = %lld is outside [%lld, %lld]", path(c), key,
                       (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return LAGUNA_OK;
}

static laguna_status get_float(ctx *c, const char *key, bool required, double def, double *out) {
    if (!lg_gguf_find_kv(c->f, key)) {
        if (required)
            return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: missing metadata key '%s'", path(c),
                           key);
        *out = def;
        return LAGUNA_OK;
    }
    return lg_gguf_get_f64(c->f, key, out, c->err);
}

static laguna_status get_bool(ctx *c, const char *key, bool def, bool *out) {
    if (!lg_gguf_find_kv(c->f, key)) {
        *out = def;
        return LAGUNA_OK;
    }
    return lg_gguf_get_bool(c->f, key, out, c->err);
}

/* attention.head_count: one value, or one per layer (what the converter writes). */
static laguna_status read_heads(ctx *c, lg_config *cfg) {
    const char *key = ARCH ".attention.head_count";
    const lg_gguf_kv *kv = lg_gguf_find_kv(c->f, key);
    if (!kv)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: missing metadata key '%s'", path(c), key);
    if (kv->type != LG_GGUF_ARRAY) {
        laguna_status st = get_int(c, key, true, 0, 1, 65536, &cfg->n_heads_default);
        for (int i = 0; i < cfg->n_layers && !st; i++)
            cfg->n_heads[i] = cfg->n_heads_default;
        return st;
    }
    if (!lg_gguf_type_is_int(kv->elem_type) || kv->elem_type == LG_GGUF_BOOL ||
        kv->count != (uint64_t)cfg->n_layers)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: '%s' must hold %d integers (block_count)",
                       path(c), key, cfg->n_layers);
    for (int i = 0; i < cfg->n_layers; i++) {
        int64_t h = lg_gguf_arr_int(kv, (uint64_t)i);
        if (h < 1 || h > 65536)
            return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: %s[%d] = %lld is not a valid head count",
                           path(c), key, i, (long long)h);
        cfg->n_heads[i] = (int)h;
    }
    cfg->n_heads_default = cfg->n_heads[0];
    return LAGUNA_OK;
}

/* head_count_kv: llama.cpp allows an array; Laguna's is uniform. */
static laguna_status read_kv_heads(ctx *c, lg_config *cfg) {
    const char *key = ARCH ".attention.head_count_kv";
    const lg_gguf_kv *kv = lg_gguf_find_kv(c->f, key);
    if (!kv || kv->type != LG_GGUF_ARRAY)
        return get_int(c, key, false, cfg->n_heads_default, 1, 65536, &cfg->n_kv_heads);
    if (!lg_gguf_type_is_int(kv->elem_type) || kv->count != (uint64_t)cfg->n_layers ||
        cfg->n_layers == 0)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: '%s' must hold %d integers", path(c), key,
                       cfg->n_layers);
    int64_t first = lg_gguf_arr_int(kv, 0);
    for (uint64_t i = 1; i < kv->count; i++)
        if (lg_gguf_arr_int(kv, i) != first)
            return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED,
                           "%s: '%s' varies by layer (Laguna's KV head count is uniform)", path(c),
                           key);
    if (first < 1 || first > 65536)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: '%s' is not a valid head count", path(c),
                       key);
    cfg->n_kv_heads = (int)first;
    return LAGUNA_OK;
}

static laguna_status read_layer_kinds(ctx *c, lg_config *cfg) {
    int n = cfg->n_layers, n_dense = 0;
    laguna_status st = get_int(c, ARCH ".leading_dense_block_count", true, 0, 0, n, &n_dense);
    if (st) return st;
    for (int i = 0; i < n; i++)
        cfg->mlp_kind[i] = i < n_dense ? LG_MLP_DENSE : LG_MLP_SPARSE;
    for (int i = 0; i < n; i++)
        cfg->attention_kind[i] = LG_ATTN_GLOBAL;
    if (cfg->sliding_window <= 0) return LAGUNA_OK;
    const char *key = ARCH ".attention.sliding_window_pattern";
    const lg_gguf_kv *kv = lg_gguf_find_kv(c->f, key);
    if (kv && kv->type == LG_GGUF_ARRAY) {
        if (kv->elem_type != LG_GGUF_BOOL || kv->count != (uint64_t)n)
            return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: '%s' must be one bool per layer (%d)",
                           path(c), key, n);
        for (int i = 0; i < n; i++)
            cfg->attention_kind[i] =
                lg_gguf_arr_int(kv, (uint64_t)i) ? LG_ATTN_SLIDING : LG_ATTN_GLOBAL;
        return LAGUNA_OK;
    }
    int period = 4; /* llama.cpp's default for Laguna */
    if ((st = get_int(c, key, false, 4, 0, 1 << 20, &period))) return st;
    /* llama_hparams::set_swa_pattern(period, dense_first = true) */
    for (int i = 0; i < n; i++)
        cfg->attention_kind[i] =
            (period == 0 || i % period != 0) ? LG_ATTN_SLIDING : LG_ATTN_GLOBAL;
    return LAGUNA_OK;
}

static laguna_status read_rope(ctx *c, lg_config *cfg) {
    laguna_status st;
    int dims = 0, dims_swa = 0;
    lg_rope_params *g = &cfg->rope[LG_ATTN_GLOBAL], *s = &cfg->rope[LG_ATTN_SLIDING];
    if ((st = get_float(c, ARCH ".rope.freq_base", false, 10000.0, &g->theta))) return st;
    if ((st = get_int(c, ARCH ".rope.dimension_count", false, cfg->head_dim, 2, cfg->head_dim,
                      &dims)))
        return st;
    g->partial_rotary_factor = (double)dims / cfg->head_dim;
    g->type = LG_ROPE_DEFAULT;
    const lg_gguf_kv *type = lg_gguf_find_kv(c->f, ARCH ".rope.scaling.type");
    if (type) {
        lg_gguf_str t;
        if ((st = lg_gguf_get_str(c->f, ARCH ".rope.scaling.type", &t, c->err))) return st;
        bool yarn = t.len == 4 && !memcmp(t.ptr, "yarn", 4),
             none = t.len == 4 && !memcmp(t.ptr, "none", 4);
        if (!yarn && !none)
            return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED,
                           "%s: rope.scaling.type '%.*s' is not supported (yarn, none)", path(c),
                           (int)(t.len > 32 ? 32 : t.len), t.ptr);
        if (yarn) g->type = LG_ROPE_YARN;
    }
    if (g->type == LG_ROPE_YARN) {
        if ((st = get_float(c, ARCH ".rope.scaling.factor", true, 0, &g->factor)) ||
            (st = get_int(c, ARCH ".rope.scaling.original_context_length", false,
                          cfg->max_position_embeddings, 1, 1 << 30,
                          &g->original_max_position_embeddings)) ||
            (st = get_float(c, ARCH ".rope.scaling.yarn_beta_fast", false, 32.0, &g->beta_fast)) ||
            (st = get_float(c, ARCH ".rope.scaling.yarn_beta_slow", false, 1.0, &g->beta_slow)) ||
            (st = get_float(c, ARCH ".rope.scaling.yarn_attn_factor", false, -1.0,
                            &g->attention_factor)) ||
            (st = get_float(c, ARCH ".rope.scaling.yarn_mscale", false, 0.0, &g->mscale)) ||
            (st = get_float(c, ARCH ".rope.scaling.yarn_mscale_all_dim", false, 0.0,
                            &g->mscale_all_dim)) ||
            (st = get_bool(c, ARCH ".rope.scaling.yarn_truncate", true, &g->truncate)))
            return st;
        if (g->factor < 1)
            return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: rope.scaling.factor must be >= 1",
                           path(c));
    }
    cfg->has_rope[LG_ATTN_GLOBAL] = true;
    *s = (lg_rope_params){.type = LG_ROPE_DEFAULT, .partial_rotary_factor = 1.0};
    if ((st = get_float(c, ARCH ".rope.freq_base_swa", false, g->theta, &s->theta))) return st;
    if ((st = get_int(c, ARCH ".rope.dimension_count_swa", false, dims, 2, cfg->head_dim,
                      &dims_swa)))
        return st;
    s->partial_rotary_factor = (double)dims_swa / cfg->head_dim;
    for (int i = 0; i < cfg->n_layers; i++)
        if (cfg->attention_kind[i] == LG_ATTN_SLIDING) cfg->has_rope[LG_ATTN_SLIDING] = true;
    if (g->theta <= 0 || s->theta <= 0)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: rope.freq_base must be positive", path(c));
    return LAGUNA_OK;
}

static laguna_status read_moe(ctx *c, lg_config *cfg) {
    laguna_status st;
    int n_shared = 1, gating = 2;
    bool norm = true;
    if ((st = get_int(c, ARCH ".expert_count", false, 0, 0, 65536, &cfg->n_experts)) ||
        (st = get_int(c, ARCH ".expert_used_count", false, 0, 0, 65536,
                      &cfg->n_experts_per_token)) ||
        (st = get_int(c, ARCH ".expert_feed_forward_length", false, 0, 0, 1 << 20,
                      &cfg->moe_intermediate_size)) ||
        (st = get_int(c, ARCH ".expert_shared_feed_forward_length", false, 0, 0, 1 << 20,
                      &cfg->shared_expert_intermediate_size)) ||
        (st = get_int(c, ARCH ".expert_shared_count", false, 1, 0, 1 << 20, &n_shared)) ||
        (st = get_int(c, ARCH ".expert_gating_func", false, 2, 0, 1 << 20, &gating)) ||
        (st = get_bool(c, ARCH ".expert_weights_norm", true, &norm)) ||
        (st =
             get_float(c, ARCH ".expert_weights_scale", false, 1.0, &cfg->routed_scaling_factor)) ||
        (st = get_float(c, ARCH ".router_logit_softcapping", false, 0.0,
                        &cfg->router_logit_softcapping)))
        return st;
    if (n_shared > 1)
        return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED,
                       "%s: expert_shared_count = %d (Laguna has one shared expert)", path(c),
                       n_shared);
    if (n_shared == 0) cfg->shared_expert_intermediate_size = 0;
    if (gating !=
        2) /* llama.cpp: 0 = unset (Laguna defaults to sigmoid), 1 = softmax, 2 = sigmoid */
        if (gating != 0)
            return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED,
                           "%s: expert_gating_func = %d (only sigmoid, 2, is Laguna's)", path(c),
                           gating);
    if (!norm)
        return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED,
                       "%s: expert_weights_norm = false (Laguna normalises the chosen weights)",
                       path(c));
    return LAGUNA_OK;
}

static laguna_status read_tokens(ctx *c, lg_config *cfg) {
    laguna_status st;
    int bos = -1, eos = -1, eot = -1;
    if ((st = get_int(c, "tokenizer.ggml.bos_token_id", false, -1, -1, INT32_MAX, &bos)) ||
        (st = get_int(c, "tokenizer.ggml.eos_token_id", false, -1, -1, INT32_MAX, &eos)) ||
        (st = get_int(c, "tokenizer.ggml.eot_token_id", false, -1, -1, INT32_MAX, &eot)))
        return st;
    cfg->bos_token_id = bos;
    cfg->n_eos = 0;
    if (eos >= 0) cfg->eos_token_ids[cfg->n_eos++] = eos;
    if (eot >= 0 && eot != eos) cfg->eos_token_ids[cfg->n_eos++] = eot;
    return LAGUNA_OK;
}

/* Facts the metadata leaves to the tensors: tying, attention bias, gate mode. */
static void read_from_tensors(ctx *c, lg_config *cfg) {
    cfg->tie_word_embeddings = lg_gguf_find_tensor(c->f, "output.weight") == NULL;
    cfg->attention_bias = lg_gguf_find_tensor(c->f, "blk.0.attn_q.bias") != NULL;
    const lg_gguf_tensor_info *gate = lg_gguf_find_tensor(c->f, "blk.0.attn_gate.weight");
    cfg->gate_mode = LG_GATE_PER_HEAD;
    cfg->gate_mode_from_config = false; /* the shape decides, as in llama.cpp */
    if (gate && gate->n_dims == 2 && gate->ne[1] == (int64_t)cfg->n_heads[0] * cfg->head_dim &&
        cfg->head_dim > 1)
        cfg->gate_mode = LG_GATE_PER_ELEMENT;
    if (!gate) cfg->gate_mode = LG_GATE_NONE;
}

static laguna_status read_all(ctx *c, lg_config *cfg) {
    lg_gguf_str arch;
    laguna_status st = lg_gguf_get_str(c->f, "general.architecture", &arch, c->err);
    if (st) return st;
    if (arch.len != strlen(ARCH) || memcmp(arch.ptr, ARCH, arch.len))
        return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED,
                       "%s: general.architecture is '%.*s', not 'laguna'", path(c),
                       (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    if ((st = get_int(c, ARCH ".block_count", true, 0, 1, LG_MAX_LAYERS, &cfg->n_layers)) ||
        (st = get_int(c, ARCH ".embedding_length", true, 0, 1, 1 << 20, &cfg->hidden_size)) ||
        (st = get_int(c, ARCH ".feed_forward_length", false, 0, 0, 1 << 20,
                      &cfg->intermediate_size)) ||
        (st = get_int(c, ARCH ".context_length", false, 4096, 1, 1 << 30,
                      &cfg->max_position_embeddings)) ||
        (st = get_int(c, ARCH ".attention.sliding_window", false, 0, 0, 1 << 30,
                      &cfg->sliding_window)) ||
        (st = get_float(c, ARCH ".attention.layer_norm_rms_epsilon", true, 0, &cfg->rms_norm_eps)))
        return st;
    int n = cfg->n_layers;
    cfg->n_heads = calloc((size_t)n, sizeof *cfg->n_heads);
    cfg->attention_kind = calloc((size_t)n, sizeof *cfg->attention_kind);
    cfg->mlp_kind = calloc((size_t)n, sizeof *cfg->mlp_kind);
    if (!cfg->n_heads || !cfg->attention_kind || !cfg->mlp_kind)
        return lg_fail(c->err, LAGUNA_ERR_NOMEM, "%s: out of memory", path(c));
    if ((st = read_heads(c, cfg)) || (st = read_kv_heads(c, cfg))) return st;
    if ((st = get_int(c, ARCH ".attention.key_length", false,
                      cfg->hidden_size / cfg->n_heads_default, 1, 65536, &cfg->head_dim)))
        return st;
    int v_len = cfg->head_dim;
    if ((st = get_int(c, ARCH ".attention.value_length", false, cfg->head_dim, 1, 65536, &v_len)))
        return st;
    if (v_len != cfg->head_dim)
        return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED,
                       "%s: attention.value_length %d differs from key_length %d", path(c), v_len,
                       cfg->head_dim);
    /* vocab_size: the key, else the token list, else the embedding rows. */
    const lg_gguf_kv *tokens = lg_gguf_find_kv(c->f, "tokenizer.ggml.tokens");
    const lg_gguf_tensor_info *embd = lg_gguf_find_tensor(c->f, "token_embd.weight");
    int64_t vocab = tokens ? (int64_t)tokens->count : embd ? embd->ne[1] : 0;
    int vocab_i = 0;
    if ((st = get_int(c, ARCH ".vocab_size", vocab == 0, vocab, 1, 1 << 24, &vocab_i))) return st;
    cfg->vocab_size = vocab_i;
    if ((st = read_layer_kinds(c, cfg)) || (st = read_rope(c, cfg)) || (st = read_moe(c, cfg)) ||
        (st = read_tokens(c, cfg)))
        return st;
    read_from_tensors(c, cfg);
    return lg_config_validate(cfg, path(c), c->err);
}

laguna_status lg_gguf_read_laguna_config(const lg_gguf_file *f, lg_config *cfg, laguna_error *err) {
    memset(cfg, 0, sizeof *cfg);
    ctx c = {f, err};
    laguna_status st = read_all(&c, cfg);
    if (st) lg_config_free(cfg);
    return st;
}
