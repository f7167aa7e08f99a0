/* Preset shapes for `laguna synth` and `laguna info --preset`.
 *
 * xs2 follows Laguna-XS.2's published configuration (see
 * docs/laguna-architecture.md). m1 follows Laguna-M.1's published layout (70
 * global layers, 64/8 heads, per-element gate, 256 experts top-16, dense
 * layers 0-2); its hidden and expert sizes are not published and are
 * estimated here so that total and active parameters land near 225B / 23B.
 * xs2.1 is XS.2's shapes with YaRN x32 (../shared/docs/laguna-family-and-chat.md).
 * s2.1 follows what is published of Laguna-S-2.1 (48 layers mixing sliding
 * and global attention, 72 query heads on sliding and 48 on global layers,
 * top-10 routing, YaRN x128 to a 1M context, 118B total / ~8B active); its
 * hidden size (3072), 256 experts of 1024 with a 1024 shared expert, the
 * XS.2-style 1-in-4 global layout, window 512 and one dense layer are
 * inferred (XS.2's choices, sized to land on 118B / 8B). synth-tiny is a
 * toy of the same layout for tests ("tiny" names it too); it is not the
 * trained models/laguna-tiny. */
#include "synth/presets.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static laguna_status alloc_layers(lg_config *c, laguna_error *err) {
    c->n_heads = calloc((size_t)c->n_layers, sizeof *c->n_heads);
    c->attention_kind = calloc((size_t)c->n_layers, sizeof *c->attention_kind);
    c->mlp_kind = calloc((size_t)c->n_layers, sizeof *c->mlp_kind);
    if (!c->n_heads || !c->attention_kind || !c->mlp_kind) {
        lg_config_free(c);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    return LAGUNA_OK;
}

/* XS.2-style layout: every 4th layer (from 0) global, the rest sliding. */
static void hybrid_layout(lg_config *c, int global_heads, int sliding_heads, int n_dense) {
    for (int l = 0; l < c->n_layers; l++) {
        c->attention_kind[l] = l % 4 == 0 ? LG_ATTN_GLOBAL : LG_ATTN_SLIDING;
        c->n_heads[l] = l % 4 == 0 ? global_heads : sliding_heads;
        c->mlp_kind[l] = l < n_dense ? LG_MLP_DENSE : LG_MLP_SPARSE;
    }
}

laguna_status lg_synth_preset_layers(const char *name, int n_layers, lg_config *c, laguna_error *err) {
    memset(c, 0, sizeof *c);
    c->rms_norm_eps = 1e-6;
    c->bos_token_id = 1;
    c->n_eos = 2;
    c->eos_token_ids[0] = 2;
    c->eos_token_ids[1] = 24;
    c->gate_mode_from_config = true;
    lg_rope_params yarn = {.type = LG_ROPE_YARN, .theta = 500000, .partial_rotary_factor = 0.5, .factor = 64,
                           .original_max_position_embeddings = 4096, .beta_fast = 64, .beta_slow = 1,
                           .attention_factor = -1, .truncate = true};
    lg_rope_params plain = {.type = LG_ROPE_DEFAULT, .theta = 10000, .partial_rotary_factor = 1.0};
    if (!strcmp(name, "xs2")) {
        *c = (lg_config){.vocab_size = 100352, .hidden_size = 2048, .intermediate_size = 8192, .n_layers = 40,
                         .n_heads_default = 64, .n_kv_heads = 8, .head_dim = 128, .sliding_window = 512,
                         .n_experts = 256, .n_experts_per_token = 8, .moe_intermediate_size = 512,
                         .shared_expert_intermediate_size = 512, .routed_scaling_factor = 2.5,
                         .max_position_embeddings = 131072, .gate_mode = LG_GATE_PER_HEAD};
    } else if (!strcmp(name, "xs2.1")) {
        *c = (lg_config){.vocab_size = 100352, .hidden_size = 2048, .intermediate_size = 8192, .n_layers = 40,
                         .n_heads_default = 64, .n_kv_heads = 8, .head_dim = 128, .sliding_window = 512,
                         .n_experts = 256, .n_experts_per_token = 8, .moe_intermediate_size = 512,
                         .shared_expert_intermediate_size = 512, .routed_scaling_factor = 2.5,
                         .max_position_embeddings = 131072, .gate_mode = LG_GATE_PER_HEAD};
        yarn.factor = 32;
    } else if (!strcmp(name, "s2.1")) {
        *c = (lg_config){.vocab_size = 100352, .hidden_size = 3072, .intermediate_size = 12288, .n_layers = 48,
                         .n_heads_default = 72, .n_kv_heads = 8, .head_dim = 128, .sliding_window = 512,
                         .n_experts = 256, .n_experts_per_token = 10, .moe_intermediate_size = 1024,
                         .shared_expert_intermediate_size = 1024, .routed_scaling_factor = 2.5,
                         .max_position_embeddings = 1048576, .gate_mode = LG_GATE_PER_HEAD};
        yarn.factor = 128;
        yarn.original_max_position_embeddings = 8192;
    } else if (!strcmp(name, "m1")) {
        *c = (lg_config){.vocab_size = 100352, .hidden_size = 4096, .intermediate_size = 16384, .n_layers = 70,
                         .n_heads_default = 64, .n_kv_heads = 8, .head_dim = 128, .sliding_window = 0,
                         .n_experts = 256, .n_experts_per_token = 16, .moe_intermediate_size = 1024,
                         .shared_expert_intermediate_size = 1024, .routed_scaling_factor = 2.5,
                         .router_logit_softcapping = 30, .max_position_embeddings = 131072,
                         .gate_mode = LG_GATE_PER_ELEMENT};
        yarn.partial_rotary_factor = 1.0;
        yarn.factor = 32;
    } else if (!strcmp(name, "synth-tiny") || !strcmp(name, "tiny")) {
        *c = (lg_config){.vocab_size = 1024, .hidden_size = 64, .intermediate_size = 160, .n_layers = 5,
                         .n_heads_default = 8, .n_kv_heads = 2, .head_dim = 16, .sliding_window = 8, .n_experts = 16,
                         .n_experts_per_token = 4, .moe_intermediate_size = 32, .shared_expert_intermediate_size = 48,
                         .routed_scaling_factor = 2.5, .max_position_embeddings = 256, .gate_mode = LG_GATE_PER_HEAD};
        yarn.factor = 8;
        yarn.original_max_position_embeddings = 32;
    } else {
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "unknown preset '%s' (xs2, xs2.1, s2.1, m1, synth-tiny)", name);
    }
    c->rms_norm_eps = !strcmp(name, "m1") ? 1e-5 : 1e-6;
    c->bos_token_id = 1;
    c->n_eos = 2;
    c->eos_token_ids[0] = 2;
    c->eos_token_ids[1] = 24;
    c->gate_mode_from_config = true;
    c->rope[LG_ATTN_GLOBAL] = yarn;
    c->rope[LG_ATTN_SLIDING] = plain;
    c->has_rope[0] = true;
    c->has_rope[1] = strcmp(name, "m1") != 0;
    if (n_layers > 0) {
        if (n_layers > c->n_layers)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "preset '%s' has %d layers; --layers %d is more", name, c->n_layers, n_layers);
        c->n_layers = n_layers;
    }
    laguna_status st = alloc_layers(c, err);
    if (st) return st;
    if (!strcmp(name, "m1")) {
        for (int l = 0; l < c->n_layers; l++) {
            c->attention_kind[l] = LG_ATTN_GLOBAL;
            c->n_heads[l] = 64;
            c->mlp_kind[l] = l < 3 ? LG_MLP_DENSE : LG_MLP_SPARSE;
        }
    } else if (!strcmp(name, "xs2") || !strcmp(name, "xs2.1")) {
        hybrid_layout(c, 48, 64, 1);
    } else if (!strcmp(name, "s2.1")) {
        hybrid_layout(c, 48, 72, 1);
    } else {
        hybrid_layout(c, 6, 8, 1);
    }
    return lg_config_validate(c, name, err);
}

laguna_status lg_synth_preset(const char *name, lg_config *cfg, laguna_error *err) {
    return lg_synth_preset_layers(name, 0, cfg, err);
}

/* A float field written with a decimal point (cJSON writes 0.0 as 0, which
 * transformers' config validation rejects where it expects a float). */
static void add_float(cJSON *o, const char *key, double v) {
    char text[64];
    snprintf(text, sizeof text, "%.15g", v);
    if (strtod(text, NULL) != v) snprintf(text, sizeof text, "%.17g", v); /* the shortest that reads back */
    if (!strpbrk(text, ".eEn")) strncat(text, ".0", sizeof text - strlen(text) - 1);
    cJSON_AddRawToObject(o, key, text);
}

static cJSON *rope_json(const lg_rope_params *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "rope_type", r->type == LG_ROPE_YARN ? "yarn" : "default");
    add_float(o, "rope_theta", r->theta);
    add_float(o, "partial_rotary_factor", r->partial_rotary_factor);
    if (r->type == LG_ROPE_YARN) {
        add_float(o, "factor", r->factor);
        cJSON_AddNumberToObject(o, "original_max_position_embeddings", r->original_max_position_embeddings);
        add_float(o, "beta_fast", r->beta_fast);
        add_float(o, "beta_slow", r->beta_slow);
        if (r->attention_factor >= 0) add_float(o, "attention_factor", r->attention_factor);
        if (!r->truncate) cJSON_AddFalseToObject(o, "truncate");
    }
    return o;
}

char *lg_config_to_json(const lg_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LagunaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", "laguna");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads_default);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "sliding_window", c->sliding_window);
    cJSON_AddNumberToObject(o, "num_experts", c->n_experts);
    cJSON_AddNumberToObject(o, "num_experts_per_tok", c->n_experts_per_token);
    cJSON_AddNumberToObject(o, "moe_intermediate_size", c->moe_intermediate_size);
    cJSON_AddNumberToObject(o, "shared_expert_intermediate_size", c->shared_expert_intermediate_size);
    add_float(o, "moe_routed_scaling_factor", c->routed_scaling_factor);
    add_float(o, "moe_router_logit_softcapping", c->router_logit_softcapping);
    cJSON_AddFalseToObject(o, "moe_apply_router_weight_on_input");
    add_float(o, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddBoolToObject(o, "attention_bias", c->attention_bias);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(o, "bos_token_id", c->bos_token_id);
    if (c->n_eos == 1) {
        cJSON_AddNumberToObject(o, "eos_token_id", c->eos_token_ids[0]);
    } else if (c->n_eos > 1) {
        cJSON *eos = cJSON_AddArrayToObject(o, "eos_token_id");
        for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(c->eos_token_ids[i]));
    }
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    if (c->gate_mode == LG_GATE_NONE) cJSON_AddFalseToObject(o, "gating");
    else cJSON_AddStringToObject(o, "gating", c->gate_mode == LG_GATE_PER_HEAD ? "per-head" : "per-element");
    cJSON *heads = cJSON_AddArrayToObject(o, "num_attention_heads_per_layer");
    cJSON *types = cJSON_AddArrayToObject(o, "layer_types");
    cJSON *mlp = cJSON_AddArrayToObject(o, "mlp_layer_types");
    for (int l = 0; l < c->n_layers; l++) {
        cJSON_AddItemToArray(heads, cJSON_CreateNumber(c->n_heads[l]));
        cJSON_AddItemToArray(types, cJSON_CreateString(c->attention_kind[l] == LG_ATTN_SLIDING ? "sliding_attention" : "full_attention"));
        cJSON_AddItemToArray(mlp, cJSON_CreateString(c->mlp_kind[l] == LG_MLP_SPARSE ? "sparse" : "dense"));
    }
    cJSON *rp = cJSON_AddObjectToObject(o, "rope_parameters");
    if (c->has_rope[LG_ATTN_GLOBAL]) cJSON_AddItemToObject(rp, "full_attention", rope_json(&c->rope[LG_ATTN_GLOBAL]));
    if (c->has_rope[LG_ATTN_SLIDING]) cJSON_AddItemToObject(rp, "sliding_attention", rope_json(&c->rope[LG_ATTN_SLIDING]));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}
