/* The model's hyper-parameters, as read from config.json (or GGUF metadata).
 *
 * Every size the engine uses comes from here; nothing about a released model
 * is hard-coded. Per-layer values (query heads, attention kind, MLP kind) are
 * expanded into arrays so the forward pass never re-derives them. */
#ifndef LAGUNA_MODEL_CONFIG_H
#define LAGUNA_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "laguna.h"

#define LG_MAX_LAYERS 1024
#define LG_MAX_EOS 16

typedef enum { LG_ATTN_GLOBAL = 0, LG_ATTN_SLIDING = 1 } lg_attention_kind;
typedef enum { LG_MLP_DENSE = 0, LG_MLP_SPARSE = 1 } lg_mlp_kind;
typedef enum { LG_GATE_NONE = 0, LG_GATE_PER_HEAD, LG_GATE_PER_ELEMENT } lg_gate_mode;
typedef enum { LG_ROPE_DEFAULT = 0, LG_ROPE_YARN } lg_rope_type;

/* RoPE settings of one attention kind (rope_parameters[layer_type]). */
typedef struct {
    lg_rope_type type;
    double theta;
    double partial_rotary_factor;
    /* yarn only */
    double factor;
    int original_max_position_embeddings;
    double beta_fast, beta_slow;
    double attention_factor; /* < 0 when absent (derived from factor / mscale) */
    double mscale, mscale_all_dim; /* 0 when absent */
    bool truncate;
} lg_rope_params;

typedef struct {
    int vocab_size;
    int hidden_size;
    int intermediate_size;   /* dense layers */
    int n_layers;
    int n_heads_default;     /* num_attention_heads */
    int n_kv_heads;
    int head_dim;
    int sliding_window;
    int n_experts;
    int n_experts_per_token;
    int moe_intermediate_size;
    int shared_expert_intermediate_size; /* 0 = no shared expert */
    double routed_scaling_factor;
    double router_logit_softcapping;     /* 0 = off */
    double rms_norm_eps;
    bool tie_word_embeddings;
    bool attention_bias;
    int max_position_embeddings;
    int bos_token_id;                    /* -1 when absent */
    int n_eos;
    int32_t eos_token_ids[LG_MAX_EOS];
    lg_gate_mode gate_mode;              /* config's hint; the g_proj shape decides */
    bool gate_mode_from_config;          /* false: "gating": true, decided by shape */
    lg_rope_params rope[2];              /* indexed by lg_attention_kind */
    bool has_rope[2];

    /* per layer */
    int *n_heads;                        /* query heads of each layer */
    lg_attention_kind *attention_kind;
    lg_mlp_kind *mlp_kind;
} lg_config;

/* Parses config.json text. `source` names the file in messages. */
laguna_status lg_config_parse(const char *json_text, const char *source, lg_config *cfg,
                              laguna_error *err);
/* Checks cross-field consistency (head counts divide, sizes positive, ...). */
laguna_status lg_config_validate(const lg_config *cfg, const char *source, laguna_error *err);
void lg_config_free(lg_config *cfg);

/* Whether any layer uses sliding-window attention. */
bool lg_config_has_sliding(const lg_config *cfg);

#endif
