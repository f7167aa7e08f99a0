/* Tensor names: Hugging Face Laguna <-> llama.cpp GGUF "laguna" (both ways
 * from one table). Sources for each pair: docs/gguf-laguna.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_laguna.h"

/* Per-layer names after "model.layers.N." / "blk.N.". */
static const struct {
    const char *hf, *gguf;
} layer_names[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.bias", "attn_output.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"self_attn.g_proj.weight", "attn_gate.weight"},
    {"mlp.gate.weight", "ffn_gate_inp.weight"},
    {"mlp.experts.e_score_correction_bias", "exp_probs_b.bias"},
    {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

/* Other spellings of the same tensors that checkpoints use (transformers'
 * in-memory layout, DeepSeek-style names); HF -> GGUF only. */
static const struct {
    const char *hf, *gguf;
} layer_aliases[] = {
    {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias"},
    {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight"},
    {"mlp.experts.down_proj", "ffn_down_exps.weight"}, /* fused [experts, hidden, inter] */
};

/* Routed experts: "mlp.experts.E.<proj>" <-> merged "<gguf>". */
static const struct {
    const char *hf_proj, *gguf;
} expert_names[] = {
    {"gate_proj.weight", "ffn_gate_exps.weight"},
    {"up_proj.weight", "ffn_up_exps.weight"},
    {"down_proj.weight", "ffn_down_exps.weight"},
};

static const struct {
    const char *hf, *gguf;
} global_names[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Parses "<prefix><decimal>." at s; returns the rest or NULL. */
static const char *after_index(const char *s, const char *prefix, int *index) {
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0) return NULL;
    s += n;
    if (*s < '0' || *s > '9') return NULL;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '.' || v < 0 || v > 1000000) return NULL;
    *index = (int)v;
    return end + 1;
}

static int fits(int n, size_t cap) {
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

int lg_gguf_name_from_hf(const char *hf, char *out, size_t cap, int *expert) {
    *expert = -1;
    for (size_t i = 0; i < COUNT(global_names); i++)
        if (!strcmp(hf, global_names[i].hf))
            return fits(snprintf(out, cap, "%s", global_names[i].gguf), cap);
    int layer, e;
    const char *rest = after_index(hf, "model.layers.", &layer);
    if (!rest) return -1;
    for (size_t i = 0; i < COUNT(layer_names); i++)
        if (!strcmp(rest, layer_names[i].hf))
            return fits(snprintf(out, cap, "blk.%d.%s", layer, layer_names[i].gguf), cap);
    for (size_t i = 0; i < COUNT(layer_aliases); i++)
        if (!strcmp(rest, layer_aliases[i].hf))
            return fits(snprintf(out, cap, "blk.%d.%s", layer, layer_aliases[i].gguf), cap);
    const char *proj = after_index(rest, "mlp.experts.", &e);
    if (!proj) return -1;
    for (size_t i = 0; i < COUNT(expert_names); i++)
        if (!strcmp(proj, expert_names[i].hf_proj)) {
            *expert = e;
            return fits(snprintf(out, cap, "blk.%d.%s", layer, expert_names[i].gguf), cap);
        }
    return -1;
}

int lg_gguf_name_to_hf(const char *gguf, int expert, char *out, size_t cap) {
    for (size_t i = 0; i < COUNT(global_names); i++)
        if (!strcmp(gguf, global_names[i].gguf))
            return fits(snprintf(out, cap, "%s", global_names[i].hf), cap);
    int layer;
    const char *rest = after_index(gguf, "blk.", &layer);
    if (!rest) return -1;
    for (size_t i = 0; i < COUNT(layer_names); i++)
        if (!strcmp(rest, layer_names[i].gguf))
            return fits(snprintf(out, cap, "model.layers.%d.%s", layer, layer_names[i].hf), cap);
    for (size_t i = 0; i < COUNT(expert_names); i++)
        if (!strcmp(rest, expert_names[i].gguf))
            return fits(snprintf(out, cap, "model.layers.%d.mlp.experts.%d.%s", layer, expert,
                                 expert_names[i].hf_proj),
                        cap)
                       ? -1
                       : 1;
    return -1;
}
