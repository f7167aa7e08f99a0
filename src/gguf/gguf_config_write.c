/* lg_config -> GGUF "laguna.*" metadata, the keys llama.cpp's Laguna
 * converter writes (conversion/laguna.py plus the base TextModel keys), with
 * the same types: u32 counts, f32 reals, head_count as an int32 array.
 * Values llama.cpp has no key for go under "laguna.c extension" keys listed
 * in docs/gguf-laguna.md, written only when they differ from the default. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf_laguna.h"

#define ARCH "laguna"

/* The smallest period P such that layer L is global iff L % P == 0, which is
 * llama.cpp's "dense first" sliding-window pattern; 0 when none fits. */
static int swa_period(const lg_config *cfg) {
    for (int p = 1; p <= cfg->n_layers; p++) {
        bool ok = true;
        for (int l = 0; l < cfg->n_layers && ok; l++)
            ok = (cfg->attention_kind[l] == LG_ATTN_GLOBAL) == (l % p == 0);
        if (ok) return p;
    }
    return 0;
}

static laguna_status put_layout(lg_gguf_writer *w, const lg_config *cfg, laguna_error *err) {
    laguna_status st;
    int n_dense = 0;
    while (n_dense < cfg->n_layers && cfg->mlp_kind[n_dense] == LG_MLP_DENSE)
        n_dense++;
    for (int l = n_dense; l < cfg->n_layers; l++)
        if (cfg->mlp_kind[l] == LG_MLP_DENSE)
            return lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                           "layer %d is dense after a sparse layer: GGUF's "
                           "leading_dense_block_count cannot express it",
                           l);
    if ((st = lg_gguf_set_u32(w, ARCH ".leading_dense_block_count", (uint32_t)n_dense, err)))
        return st;

    bool any_sliding = false;
    for (int l = 0; l < cfg->n_layers; l++)
        any_sliding |= cfg->attention_kind[l] == LG_ATTN_SLIDING;
    if (!any_sliding)
        return LAGUNA_OK; /* no sliding_window key: llama.cpp then treats every layer as global */
    if ((st = lg_gguf_set_u32(w, ARCH ".attention.sliding_window", (uint32_t)cfg->sliding_window,
                              err)))
        return st;
    int period = swa_period(cfg);
    if (period > 0)
        return lg_gguf_set_u32(w, ARCH ".attention.sliding_window_pattern", (uint32_t)period, err);
    uint8_t *pattern = malloc(cfg->n_layers > 0 ? (size_t)cfg->n_layers : 1);
    if (!pattern) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (int l = 0; l < cfg->n_layers; l++)
        pattern[l] = cfg->attention_kind[l] == LG_ATTN_SLIDING;
    st = lg_gguf_set_array(w, ARCH ".attention.sliding_window_pattern", LG_GGUF_BOOL, pattern,
                           (size_t)cfg->n_layers, err);
    free(pattern);
    return st;
}

static int rotary_dims(const lg_config *cfg, const lg_rope_params *r) {
    return (int)(cfg->head_dim * r->partial_rotary_factor);
}

static laguna_status put_rope(lg_gguf_writer *w, const lg_config *cfg, laguna_error *err) {
    laguna_status st;
    const lg_rope_params *g = &cfg->rope[LG_ATTN_GLOBAL], *s = &cfg->rope[LG_ATTN_SLIDING];
    bool any_global = false, any_sliding = false;
    for (int l = 0; l < cfg->n_layers; l++) {
        any_global |= cfg->attention_kind[l] == LG_ATTN_GLOBAL;
        any_sliding |= cfg->attention_kind[l] == LG_ATTN_SLIDING;
    }
    if (!any_global) g = s; /* all sliding: keep the keys meaningful */
    if (any_sliding && s->type != LG_ROPE_DEFAULT)
        return lg_fail(
            err, LAGUNA_ERR_UNSUPPORTED,
            "YaRN on sliding-window layers has no GGUF keys (llama.cpp runs plain RoPE there)");
    if ((st = lg_gguf_set_u32(w, ARCH ".rope.dimension_count", (uint32_t)rotary_dims(cfg, g),
                              err)) ||
        (st = lg_gguf_set_f32(w, ARCH ".rope.freq_base", (float)g->theta, err)))
        return st;
    if (any_sliding &&
        ((st = lg_gguf_set_u32(w, ARCH ".rope.dimension_count_swa", (uint32_t)rotary_dims(cfg, s),
                               err)) ||
         (st = lg_gguf_set_f32(w, ARCH ".rope.freq_base_swa", (float)s->theta, err))))
        return st;
    if (g->type != LG_ROPE_YARN) return LAGUNA_OK;
    if ((st = lg_gguf_set_str(w, ARCH ".rope.scaling.type", "yarn", err)) ||
        (st = lg_gguf_set_f32(w, ARCH ".rope.scaling.factor", (float)g->factor, err)) ||
        (st = lg_gguf_set_u32(w, ARCH ".rope.scaling.original_context_length",
                              (uint32_t)g->original_max_position_embeddings, err)) ||
        (st = lg_gguf_set_f32(w, ARCH ".rope.scaling.yarn_beta_fast", (float)g->beta_fast, err)) ||
        (st = lg_gguf_set_f32(w, ARCH ".rope.scaling.yarn_beta_slow", (float)g->beta_slow, err)))
        return st;
    if (g->attention_factor >= 0 && (st = lg_gguf_set_f32(w, ARCH ".rope.scaling.yarn_attn_factor",
                                                          (float)g->attention_factor, err)))
        return st;
    /* laguna.c extensions: transformers' YaRN options llama.cpp has no key for. */
    if (g->mscale != 0 &&
        (st = lg_gguf_set_f32(w, ARCH ".rope.scaling.yarn_mscale", (float)g->mscale, err)))
        return st;
    if (g->mscale_all_dim != 0 && (st = lg_gguf_set_f32(w, ARCH ".rope.scaling.yarn_mscale_all_dim",
                                                        (float)g->mscale_all_dim, err)))
        return st;
    if (!g->truncate && (st = lg_gguf_set_bool(w, ARCH ".rope.scaling.yarn_truncate", false, err)))
        return st;
    return LAGUNA_OK;
}

static laguna_status put_moe(lg_gguf_writer *w, const lg_config *cfg, laguna_error *err) {
    laguna_status st;
    if ((st = lg_gguf_set_u32(w, ARCH ".expert_count", (uint32_t)cfg->n_experts, err)) ||
        (st = lg_gguf_set_u32(w, ARCH ".expert_used_count", (uint32_t)cfg->n_experts_per_token,
                              err)) ||
        (st = lg_gguf_set_u32(w, ARCH ".expert_feed_forward_length",
                              (uint32_t)cfg->moe_intermediate_size, err)) ||
        (st = lg_gguf_set_u32(w, ARCH ".expert_shared_feed_forward_length",
                              (uint32_t)cfg->shared_expert_intermediate_size, err)) ||
        (st = lg_gguf_set_bool(w, ARCH ".expert_weights_norm", true, err)) ||
        (st = lg_gguf_set_f32(w, ARCH ".expert_weights_scale", (float)cfg->routed_scaling_factor,
                              err)) ||
        (st = lg_gguf_set_u32(w, ARCH ".expert_gating_func", 2 /* sigmoid */, err)))
        return st;
    if (cfg->shared_expert_intermediate_size == 0 &&
        (st = lg_gguf_set_u32(w, ARCH ".expert_shared_count", 0, err)))
        return st;
    /* llama.cpp defines this key (LLM_KV_ROUTER_LOGIT_SOFTCAPPING) but its
     * Laguna graph does not read it yet; released Laguna models have 0. */
    if (cfg->router_logit_softcapping > 0 &&
        (st = lg_gguf_set_f32(w, ARCH ".router_logit_softcapping",
                              (float)cfg->router_logit_softcapping, err)))
        return st;
    return LAGUNA_OK;
}

laguna_status lg_gguf_put_laguna_config(lg_gguf_writer *w, const lg_config *cfg,
                                        laguna_error *err) {
    laguna_status st;
    if (cfg->n_layers < 1) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "config has no layers");
    int32_t *heads = malloc(sizeof(int32_t) * (size_t)cfg->n_layers);
    if (!heads) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (int l = 0; l < cfg->n_layers; l++)
        heads[l] = cfg->n_heads[l];
    st = lg_gguf_set_str(w, "general.architecture", ARCH, err);
    if (!st) st = lg_gguf_set_u32(w, ARCH ".vocab_size", (uint32_t)cfg->vocab_size, err);
    if (!st) st = lg_gguf_set_u32(w, ARCH ".block_count", (uint32_t)cfg->n_layers, err);
    if (!st)
        st =
            lg_gguf_set_u32(w, ARCH ".context_length", (uint32_t)cfg->max_position_embeddings, err);
    if (!st) st = lg_gguf_set_u32(w, ARCH ".embedding_length", (uint32_t)cfg->hidden_size, err);
    if (!st)
        st = lg_gguf_set_u32(w, ARCH ".feed_forward_length", (uint32_t)cfg->intermediate_size, err);
    if (!st)
        st = lg_gguf_set_array(w, ARCH ".attention.head_count", LG_GGUF_INT32, heads,
                               (size_t)cfg->n_layers, err);
    if (!st)
        st = lg_gguf_set_u32(w, ARCH ".attention.head_count_kv", (uint32_t)cfg->n_kv_heads, err);
    if (!st) st = lg_gguf_set_u32(w, ARCH ".attention.key_length", (uint32_t)cfg->head_dim, err);
    if (!st) st = lg_gguf_set_u32(w, ARCH ".attention.value_length", (uint32_t)cfg->head_dim, err);
    if (!st)
        st = lg_gguf_set_f32(w, ARCH ".attention.layer_norm_rms_epsilon", (float)cfg->rms_norm_eps,
                             err);
    free(heads);
    if (!st) st = put_layout(w, cfg, err);
    if (!st) st = put_rope(w, cfg, err);
    if (!st) st = put_moe(w, cfg, err);
    /* Special tokens: eos_token_id as a list becomes eos + eot, as llama.cpp's
     * Laguna converter registers it. */
    if (!st && cfg->bos_token_id >= 0)
        st = lg_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)cfg->bos_token_id, err);
    if (!st && cfg->n_eos > 0)
        st =
            lg_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)cfg->eos_token_ids[0], err);
    if (!st && cfg->n_eos > 1)
        st =
            lg_gguf_set_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)cfg->eos_token_ids[1], err);
    if (!st && cfg->n_eos > 2)
        st = lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                     "%d eos_token_id entries: GGUF holds two (eos and eot)", cfg->n_eos);
    return st;
}
