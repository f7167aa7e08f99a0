/* config.json -> lg_config, with transformers' defaults for absent keys.
 *
 * Defaults follow LagunaConfig in transformers 5.17 (configuration_laguna.py):
 * the scalar sizes default to Laguna-XS.2's; layer_types absent = all full
 * attention; mlp_layer_types absent = first layer dense, rest sparse;
 * num_attention_heads_per_layer absent = num_attention_heads everywhere;
 * rope_parameters absent = default RoPE, theta 500000 on half the dims for
 * full attention and theta 10000 on all dims for sliding attention. */
#include "model/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Sizes beyond these are refused as absurd before anything is allocated. */
#define LG_MAX_DIM (1 << 20)
#define LG_MAX_VOCAB (1 << 24)
#define LG_MAX_EXPERTS 65536

typedef struct {
    const char *source;
    laguna_error *err;
} parse_ctx;

static laguna_status get_int(parse_ctx *c, const cJSON *obj, const char *key, int *out, int def,
                             bool required, int lo, int hi) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: missing field '%s'", c->source, key);
        *out = def;
        return LAGUNA_OK;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: field '%s' must be an integer", c->source, key);
    if (it->valuedouble < lo || it->valuedouble > hi)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: field '%s' = %.0f is outside [%d, %d]",
                       c->source, key, it->valuedouble, lo, hi);
    *out = (int)it->valuedouble;
    return LAGUNA_OK;
}

static laguna_status get_double(parse_ctx *c, const cJSON *obj, const char *key, double *out,
                                double def, bool required) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required) return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: missing field '%s'", c->source, key);
        *out = def;
        return LAGUNA_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: field '%s' must be a number", c->source, key);
    *out = it->valuedouble;
    return LAGUNA_OK;
}

static laguna_status get_bool(parse_ctx *c, const cJSON *obj, const char *key, bool *out, bool def) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return LAGUNA_OK;
    }
    if (!cJSON_IsBool(it))
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: field '%s' must be true or false", c->source, key);
    *out = cJSON_IsTrue(it);
    return LAGUNA_OK;
}

static laguna_status parse_rope(parse_ctx *c, const cJSON *obj, const char *kind_name,
                                lg_rope_params *r) {
    if (!cJSON_IsObject(obj))
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: rope_parameters.%s must be an object", c->source, kind_name);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "default";
    if (!strcmp(t, "default")) {
        r->type = LG_ROPE_DEFAULT;
    } else if (!strcmp(t, "yarn")) {
        r->type = LG_ROPE_YARN;
    } else {
        return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED, "%s: rope_parameters.%s.rope_type '%s' is not supported (default, yarn)",
                       c->source, kind_name, t);
    }
    laguna_status st;
    if ((st = get_double(c, obj, "rope_theta", &r->theta, 10000.0, false))) return st;
    if ((st = get_double(c, obj, "partial_rotary_factor", &r->partial_rotary_factor, 1.0, false))) return st;
    if (r->theta <= 0)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: rope_parameters.%s.rope_theta must be positive", c->source, kind_name);
    if (!(r->partial_rotary_factor > 0 && r->partial_rotary_factor <= 1))
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: rope_parameters.%s.partial_rotary_factor must be in (0, 1]",
                       c->source, kind_name);
    if (r->type == LG_ROPE_YARN) {
        if ((st = get_double(c, obj, "factor", &r->factor, 0, true))) return st;
        if ((st = get_int(c, obj, "original_max_position_embeddings", &r->original_max_position_embeddings, 0, false, 0, 1 << 30)))
            return st;
        if ((st = get_double(c, obj, "beta_fast", &r->beta_fast, 32.0, false))) return st;
        if ((st = get_double(c, obj, "beta_slow", &r->beta_slow, 1.0, false))) return st;
        if ((st = get_double(c, obj, "attention_factor", &r->attention_factor, -1.0, false))) return st;
        if ((st = get_double(c, obj, "mscale", &r->mscale, 0.0, false))) return st;
        if ((st = get_double(c, obj, "mscale_all_dim", &r->mscale_all_dim, 0.0, false))) return st;
        if ((st = get_bool(c, obj, "truncate", &r->truncate, true))) return st;
        if (r->factor < 1)
            return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: rope_parameters.%s.factor must be >= 1", c->source, kind_name);
    }
    return LAGUNA_OK;
}

/* One eos id: an integral JSON number that fits an int32 (checked before the
 * cast, which is undefined for 1e20); the vocabulary check comes later. */
static laguna_status eos_id(parse_ctx *c, const cJSON *it, int32_t *out) {
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: eos_token_id entries must be integers", c->source);
    if (it->valuedouble < (double)INT32_MIN || it->valuedouble > (double)INT32_MAX)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: eos_token_id %.0f is not a token id", c->source,
                       it->valuedouble);
    *out = (int32_t)it->valuedouble;
    return LAGUNA_OK;
}

static laguna_status parse_eos(parse_ctx *c, const cJSON *root, lg_config *cfg) {
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    cfg->n_eos = 0;
    if (!eos || cJSON_IsNull(eos)) return LAGUNA_OK;
    if (cJSON_IsNumber(eos)) return eos_id(c, eos, &cfg->eos_token_ids[cfg->n_eos++]);
    if (!cJSON_IsArray(eos))
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: eos_token_id must be an integer or a list", c->source);
    const cJSON *it;
    cJSON_ArrayForEach(it, eos) {
        if (cfg->n_eos == LG_MAX_EOS)
            return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: more than %d eos_token_id entries", c->source, LG_MAX_EOS);
        laguna_status st = eos_id(c, it, &cfg->eos_token_ids[cfg->n_eos++]);
        if (st) return st;
    }
    return LAGUNA_OK;
}

/* Reads a per-layer list of strings, mapping each through names[] to an index. */
static laguna_status parse_layer_strings(parse_ctx *c, const cJSON *root, const char *key, int n_layers,
                                         const char *const names[2], int *out, bool *present) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
    *present = arr && !cJSON_IsNull(arr);
    if (!*present) return LAGUNA_OK;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n_layers)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: '%s' must be a list of %d entries (num_hidden_layers)",
                       c->source, key, n_layers);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it))
            return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: %s[%d] must be a string", c->source, key, i);
        if (!strcmp(it->valuestring, names[0])) out[i] = 0;
        else if (!strcmp(it->valuestring, names[1])) out[i] = 1;
        else
            return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: %s[%d] = '%s' (expected '%s' or '%s')", c->source, key,
                           i, it->valuestring, names[0], names[1]);
        i++;
    }
    return LAGUNA_OK;
}

/* transformers always builds g_proj: true / absent / "per-head" mean one gate
 * per head, anything else (false, "per-element") one per element. The
 * checkpoint's g_proj shape is what the loader finally trusts. */
static laguna_status parse_gating(parse_ctx *c, const cJSON *root, lg_config *cfg) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "gating");
    cfg->gate_mode_from_config = false;
    if (!g || cJSON_IsNull(g) || cJSON_IsTrue(g)) {
        cfg->gate_mode = LG_GATE_PER_HEAD; /* the g_proj shape decides */
    } else if (cJSON_IsFalse(g)) {
        cfg->gate_mode = LG_GATE_PER_ELEMENT;
    } else if (cJSON_IsString(g) && !strcmp(g->valuestring, "per-head")) {
        cfg->gate_mode = LG_GATE_PER_HEAD;
        cfg->gate_mode_from_config = true;
    } else if (cJSON_IsString(g) && !strcmp(g->valuestring, "per-element")) {
        cfg->gate_mode = LG_GATE_PER_ELEMENT;
        cfg->gate_mode_from_config = true;
    } else {
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: 'gating' must be true, false, \"per-head\" or \"per-element\"",
                       c->source);
    }
    return LAGUNA_OK;
}

static laguna_status parse_all(parse_ctx *c, const cJSON *root, lg_config *cfg) {
    laguna_status st;
#define INT_FIELD(key, dst, def, req, lo, hi)                                                      \
    if ((st = get_int(c, root, key, &cfg->dst, def, req, lo, hi))) return st
    INT_FIELD("vocab_size", vocab_size, 100352, false, 1, LG_MAX_VOCAB);
    INT_FIELD("hidden_size", hidden_size, 2048, false, 1, LG_MAX_DIM);
    INT_FIELD("num_hidden_layers", n_layers, 40, false, 1, LG_MAX_LAYERS);
    INT_FIELD("num_attention_heads", n_heads_default, 48, false, 1, 65536);
    INT_FIELD("num_key_value_heads", n_kv_heads, 8, false, 1, 65536);
    INT_FIELD("head_dim", head_dim, 128, false, 1, 65536);
    INT_FIELD("intermediate_size", intermediate_size, 8192, false, 0, LG_MAX_DIM);
    INT_FIELD("sliding_window", sliding_window, 512, false, 0, 1 << 30);
    INT_FIELD("num_experts", n_experts, 256, false, 0, LG_MAX_EXPERTS);
    INT_FIELD("num_experts_per_tok", n_experts_per_token, 8, false, 0, LG_MAX_EXPERTS);
    INT_FIELD("moe_intermediate_size", moe_intermediate_size, 512, false, 0, LG_MAX_DIM);
    INT_FIELD("shared_expert_intermediate_size", shared_expert_intermediate_size, 512, false, 0, LG_MAX_DIM);
    INT_FIELD("max_position_embeddings", max_position_embeddings, 131072, false, 1, 1 << 30);
    INT_FIELD("bos_token_id", bos_token_id, -1, false, -1, LG_MAX_VOCAB);
#undef INT_FIELD
    if ((st = get_double(c, root, "moe_routed_scaling_factor", &cfg->routed_scaling_factor, 1.0, false))) return st;
    if ((st = get_double(c, root, "moe_router_logit_softcapping", &cfg->router_logit_softcapping, 0.0, false))) return st;
    if ((st = get_double(c, root, "rms_norm_eps", &cfg->rms_norm_eps, 1e-6, false))) return st;
    if ((st = get_bool(c, root, "tie_word_embeddings", &cfg->tie_word_embeddings, false))) return st;
    if ((st = get_bool(c, root, "attention_bias", &cfg->attention_bias, false))) return st;
    bool on_input = false;
    if ((st = get_bool(c, root, "moe_apply_router_weight_on_input", &on_input, false))) return st;
    if (on_input)
        return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED, "%s: moe_apply_router_weight_on_input = true is not supported", c->source);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu")))
        return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED, "%s: hidden_act must be \"silu\"", c->source);
    if ((st = parse_eos(c, root, cfg))) return st;
    if ((st = parse_gating(c, root, cfg))) return st;

    int n = cfg->n_layers;
    cfg->n_heads = calloc((size_t)n, sizeof *cfg->n_heads);
    cfg->attention_kind = calloc((size_t)n, sizeof *cfg->attention_kind);
    cfg->mlp_kind = calloc((size_t)n, sizeof *cfg->mlp_kind);
    int *tmp = calloc((size_t)n, sizeof *tmp);
    if (!cfg->n_heads || !cfg->attention_kind || !cfg->mlp_kind || !tmp) {
        free(tmp);
        return lg_fail(c->err, LAGUNA_ERR_NOMEM, "%s: out of memory", c->source);
    }
    static const char *const attn_names[2] = {"full_attention", "sliding_attention"};
    static const char *const mlp_names[2] = {"dense", "sparse"};
    bool present;
    st = parse_layer_strings(c, root, "layer_types", n, attn_names, tmp, &present);
    for (int i = 0; i < n && !st; i++) cfg->attention_kind[i] = present ? (lg_attention_kind)tmp[i] : LG_ATTN_GLOBAL;
    if (!st) st = parse_layer_strings(c, root, "mlp_layer_types", n, mlp_names, tmp, &present);
    for (int i = 0; i < n && !st; i++)
        cfg->mlp_kind[i] = present ? (lg_mlp_kind)tmp[i] : (i == 0 ? LG_MLP_DENSE : LG_MLP_SPARSE);
    free(tmp);
    if (st) return st;

    const cJSON *heads = cJSON_GetObjectItemCaseSensitive(root, "num_attention_heads_per_layer");
    if (heads && !cJSON_IsNull(heads)) {
        if (!cJSON_IsArray(heads) || cJSON_GetArraySize(heads) != n)
            return lg_fail(c->err, LAGUNA_ERR_FORMAT,
                           "%s: 'num_attention_heads_per_layer' must be a list of %d integers", c->source, n);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, heads) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 1 || it->valuedouble > 65536 ||
                it->valuedouble != floor(it->valuedouble))
                return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: num_attention_heads_per_layer[%d] must be a positive integer",
                               c->source, i);
            cfg->n_heads[i++] = (int)it->valuedouble;
        }
    } else {
        for (int i = 0; i < n; i++) cfg->n_heads[i] = cfg->n_heads_default;
    }

    /* rope_parameters: keyed by layer type. Older configs put rope_theta (and
     * rope_scaling) at the top level; accept that as the full-attention entry. */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && cJSON_IsObject(rp) && cJSON_GetObjectItemCaseSensitive(rp, "rope_type") == NULL &&
        cJSON_GetObjectItemCaseSensitive(rp, "rope_theta") == NULL) {
        for (int k = 0; k < 2; k++) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(rp, attn_names[k]);
            if (!o) continue;
            if ((st = parse_rope(c, o, attn_names[k], &cfg->rope[k]))) return st;
            cfg->has_rope[k] = true;
        }
    } else if (rp && cJSON_IsObject(rp)) { /* one set of parameters for every layer */
        if ((st = parse_rope(c, rp, "(all)", &cfg->rope[0]))) return st;
        cfg->rope[1] = cfg->rope[0];
        cfg->has_rope[0] = cfg->has_rope[1] = true;
    } else if (rp && !cJSON_IsNull(rp)) {
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: 'rope_parameters' must be an object", c->source);
    } else { /* LagunaConfig's defaults */
        cfg->rope[LG_ATTN_GLOBAL] = (lg_rope_params){.type = LG_ROPE_DEFAULT, .theta = 500000.0, .partial_rotary_factor = 0.5};
        cfg->rope[LG_ATTN_SLIDING] = (lg_rope_params){.type = LG_ROPE_DEFAULT, .theta = 10000.0, .partial_rotary_factor = 1.0};
        cfg->has_rope[0] = cfg->has_rope[1] = true;
    }
    for (int k = 0; k < 2; k++)
        if (cfg->has_rope[k] && cfg->rope[k].type == LG_ROPE_YARN && cfg->rope[k].original_max_position_embeddings == 0)
            cfg->rope[k].original_max_position_embeddings = cfg->max_position_embeddings;
    return LAGUNA_OK;
}

laguna_status lg_config_parse(const char *json_text, const char *source, lg_config *cfg, laguna_error *err) {
    memset(cfg, 0, sizeof *cfg);
    parse_ctx c = {source, err};
    cJSON *root = cJSON_Parse(json_text);
    if (!root) {
        const char *where = cJSON_GetErrorPtr();
        int line = 1;
        if (where)
            for (const char *p = json_text; p < where && *p; p++) line += *p == '\n';
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: invalid JSON near line %d", source, line);
    }
    laguna_status st = cJSON_IsObject(root) ? parse_all(&c, root, cfg)
                                            : lg_fail(err, LAGUNA_ERR_FORMAT, "%s: not a JSON object", source);
    cJSON_Delete(root);
    if (!st) st = lg_config_validate(cfg, source, err);
    if (st) lg_config_free(cfg);
    return st;
}

laguna_status lg_config_validate(const lg_config *cfg, const char *source, laguna_error *err) {
    bool any_sparse = false, any_dense = false;
    for (int i = 0; i < cfg->n_layers; i++) {
        if (cfg->n_heads[i] % cfg->n_kv_heads != 0)
            return lg_fail(err, LAGUNA_ERR_FORMAT,
                           "%s: layer %d has %d query heads, not a multiple of num_key_value_heads = %d",
                           source, i, cfg->n_heads[i], cfg->n_kv_heads);
        lg_attention_kind k = cfg->attention_kind[i];
        if (!cfg->has_rope[k])
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: rope_parameters has no entry for layer %d's type '%s'", source,
                           i, k == LG_ATTN_SLIDING ? "sliding_attention" : "full_attention");
        if (k == LG_ATTN_SLIDING && cfg->sliding_window <= 0)
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: layer %d is sliding_attention but sliding_window is %d",
                           source, i, cfg->sliding_window);
        int rot = (int)(cfg->head_dim * cfg->rope[k].partial_rotary_factor);
        if (rot < 2 || rot % 2)
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: head_dim %d * partial_rotary_factor gives %d rotary dims (must be even, >= 2)",
                           source, cfg->head_dim, rot);
        if (cfg->mlp_kind[i] == LG_MLP_SPARSE) any_sparse = true;
        else any_dense = true;
    }
    if (any_dense && cfg->intermediate_size <= 0)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: dense layers need intermediate_size > 0", source);
    if (any_sparse) {
        if (cfg->n_experts <= 0 || cfg->moe_intermediate_size <= 0)
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: sparse layers need num_experts and moe_intermediate_size > 0", source);
        if (cfg->n_experts_per_token <= 0 || cfg->n_experts_per_token > cfg->n_experts)
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: num_experts_per_tok = %d must be in [1, num_experts = %d]", source,
                           cfg->n_experts_per_token, cfg->n_experts);
    }
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_token_ids[i] < 0 || cfg->eos_token_ids[i] >= cfg->vocab_size)
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: eos_token_id %d is outside the vocabulary (%d)", source,
                           cfg->eos_token_ids[i], cfg->vocab_size);
    if (cfg->rms_norm_eps <= 0) return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: rms_norm_eps must be positive", source);
    if (cfg->router_logit_softcapping < 0)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: moe_router_logit_softcapping must be >= 0", source);
    return LAGUNA_OK;
}

void lg_config_free(lg_config *cfg) {
    free(cfg->n_heads);
    free(cfg->attention_kind);
    free(cfg->mlp_kind);
    cfg->n_heads = NULL;
    cfg->attention_kind = NULL;
    cfg->mlp_kind = NULL;
}

bool lg_config_has_sliding(const lg_config *cfg) {
    for (int l = 0; l < cfg->n_layers; l++)
        if (cfg->attention_kind[l] == LG_ATTN_SLIDING) return true;
    return false;
}
