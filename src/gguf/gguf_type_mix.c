/* Which storage type each tensor gets, per file type, following llama.cpp
 * (src/llama-quant.cpp: tensor_allows_quantization, llama_tensor_get_type_impl,
 * tensor_type_fallback) for the file types laguna.c writes:
 *   - kept float32: 1-D tensors, names not ending in "weight" (biases,
 *     exp_probs_b.bias), "*_norm.weight", the router ffn_gate_inp.weight
 *     (llama.cpp's converter stores these as F32 and llama-quantize leaves them);
 *   - output.weight (token_embd.weight when embeddings are tied): Q6_K for the
 *     k-quant mixes, Q8_0 for Q8_0 or when its rows are not whole 256-blocks;
 *   - Q4_K_M / Q5_K_M: attn_v.weight and every ffn_down* tensor of layer L
 *     get Q6_K when use_more_bits(L, n_layers): the first and last eighth of
 *     the layers and every third layer between;
 *   - models with exactly 8 experts: attn_v / attn_k to Q8_0, attn_output of
 *     Q4_K_M to Q5_K (never the case for Laguna, kept for fidelity);
 *   - rows not a multiple of the block: Q4_K -> Q5_0, Q5_K -> Q5_1,
 *     Q6_K -> Q8_0, then F16 when not a multiple of 32 either. (llama.cpp
 *     aborts for Q8_0 there; laguna.c falls back to F16 as well.) */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gguf/gguf_quantize.h"

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

static int layer_of(const char *name) {
    int layer;
    return sscanf(name, "blk.%d.", &layer) == 1 ? layer : -1;
}

static lg_dtype default_type(lg_ftype ftype) {
    switch (ftype) {
    case LG_FTYPE_Q8_0:
        return LG_DTYPE_Q8_0;
    case LG_FTYPE_Q4_K_M:
        return LG_DTYPE_Q4_K;
    case LG_FTYPE_Q5_K_M:
        return LG_DTYPE_Q5_K;
    case LG_FTYPE_Q6_K:
        return LG_DTYPE_Q6_K;
    case LG_FTYPE_BF16:
        return LG_DTYPE_BF16;
    default:
        return LG_DTYPE_F32;
    }
}

static lg_dtype fall_back(lg_dtype t, int64_t row, int *fallback) {
    if (row % lg_dtype_block_elems(t) == 0) return t;
    *fallback = 1;
    lg_dtype f = t == LG_DTYPE_Q4_K   ? LG_DTYPE_Q5_0
                 : t == LG_DTYPE_Q5_K ? LG_DTYPE_Q5_1
                                      : LG_DTYPE_Q8_0;
    return row % lg_dtype_block_elems(f) == 0 ? f : LG_DTYPE_F16;
}

lg_dtype lg_ftype_tensor_type(lg_ftype ftype, const char *name, int n_dims, const int64_t *ne,
                              int n_layers, int n_experts, int tied_embeddings, int *fallback) {
    *fallback = 0;
    if (n_dims < 2 || !ends_with(name, "weight") || ends_with(name, "_norm.weight") ||
        strstr(name, "ffn_gate_inp.weight"))
        return LG_DTYPE_F32;
    lg_dtype t = default_type(ftype);
    if (!lg_dtype_is_quantized(t)) return t;
    const bool k_m = ftype == LG_FTYPE_Q4_K_M || ftype == LG_FTYPE_Q5_K_M;
    if (!strcmp(name, "output.weight") || (tied_embeddings && !strcmp(name, "token_embd.weight"))) {
        if (ne[0] % lg_dtype_block_elems(t) != 0)
            t = LG_DTYPE_Q8_0;
        else if (t != LG_DTYPE_Q8_0)
            t = LG_DTYPE_Q6_K;
    } else if (strstr(name, "attn_v.weight")) {
        if (k_m && use_more_bits(layer_of(name), n_layers)) t = LG_DTYPE_Q6_K;
        if (n_experts == 8) t = LG_DTYPE_Q8_0;
    } else if (strstr(name, "attn_k.weight")) {
        if (n_experts == 8) t = LG_DTYPE_Q8_0;
    } else if (strstr(name, "ffn_down")) {
        if (k_m && use_more_bits(layer_of(name), n_layers)) t = LG_DTYPE_Q6_K;
    } else if (strstr(name, "attn_output.weight")) {
        if (n_experts == 8 && ftype == LG_FTYPE_Q4_K_M) t = LG_DTYPE_Q5_K;
    }
    return fall_back(t, ne[0], fallback);
}

int lg_ftype_parse(const char *s, lg_ftype *out) {
    static const struct {
        const char *name;
        lg_ftype ftype;
    } names[] = {{"q8_0", LG_FTYPE_Q8_0}, {"q4_k_m", LG_FTYPE_Q4_K_M}, {"q5_k_m", LG_FTYPE_Q5_K_M},
                 {"q6_k", LG_FTYPE_Q6_K}, {"bf16", LG_FTYPE_BF16},     {"f32", LG_FTYPE_F32}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(s, names[i].name)) {
            *out = names[i].ftype;
            return 0;
        }
    return -1;
}

const char *lg_ftype_name(lg_ftype ftype) {
    switch (ftype) {
    case LG_FTYPE_Q8_0:
        return "Q8_0";
    case LG_FTYPE_Q4_K_M:
        return "Q4_K_M";
    case LG_FTYPE_Q5_K_M:
        return "Q5_K_M";
    case LG_FTYPE_Q6_K:
        return "Q6_K";
    case LG_FTYPE_BF16:
        return "BF16";
    case LG_FTYPE_F32:
        return "F32";
    default:
        return "?";
    }
}
