/* laguna info -m DIR | --preset NAME: layer layout, parameter counts, and
 * KV-cache size per token and at the maximum (or a chosen) context. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "model/model.h"
#include "runtime/kv_pages.h"
#include "synth/presets.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna info (-m MODEL_DIR | --preset xs2|m1|tiny) [--ctx N]\n");
}

static void print_bytes(const char *label, double bytes) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double v = bytes;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    printf("%-28s %.0f bytes (%.2f %s)\n", label, bytes, v, unit[u]);
}

static void describe(const lg_config *c, int n_ctx) {
    int n_sliding = 0, n_dense = 0;
    for (int l = 0; l < c->n_layers; l++) {
        n_sliding += c->attention_kind[l] == LG_ATTN_SLIDING;
        n_dense += c->mlp_kind[l] == LG_MLP_DENSE;
    }
    printf("layers                       %d (%d global, %d sliding with window %d; %d dense, %d sparse)\n", c->n_layers,
           c->n_layers - n_sliding, n_sliding, c->sliding_window, n_dense, c->n_layers - n_dense);
    printf("hidden / head_dim / kv heads %d / %d / %d\n", c->hidden_size, c->head_dim, c->n_kv_heads);
    printf("vocabulary                   %d\n", c->vocab_size);
    printf("experts                      %d routed, top-%d, moe_intermediate %d, shared %d\n", c->n_experts,
           c->n_experts_per_token, c->moe_intermediate_size, c->shared_expert_intermediate_size);
    printf("layer  attention  q_heads  rope              mlp\n");
    for (int l = 0; l < c->n_layers; l++) {
        const lg_rope_params *r = &c->rope[c->attention_kind[l]];
        char rope[64];
        if (r->type == LG_ROPE_YARN)
            snprintf(rope, sizeof rope, "yarn x%g p=%.2g", r->factor, r->partial_rotary_factor);
        else
            snprintf(rope, sizeof rope, "default p=%.2g", r->partial_rotary_factor);
        printf("%5d  %-9s  %7d  %-16s  %s\n", l, c->attention_kind[l] == LG_ATTN_SLIDING ? "sliding" : "global", c->n_heads[l],
               rope, c->mlp_kind[l] == LG_MLP_DENSE ? "dense" : "sparse");
    }
    int64_t total, active;
    lg_model_count_params(c, &total, &active);
    printf("parameters total             %lld (%.2fB)\n", (long long)total, total / 1e9);
    printf("parameters active per token  %lld (%.2fB)\n", (long long)active, active / 1e9);
    int n_global = 0;
    for (int l = 0; l < c->n_layers; l++) n_global += c->attention_kind[l] == LG_ATTN_GLOBAL || c->sliding_window >= n_ctx;
    lg_dtype kv_types[3] = {LG_DTYPE_F32, LG_DTYPE_F16, LG_DTYPE_Q8_0};
    const char *kv_names[3] = {"f32", "f16", "q8_0"};
    for (int k = 0; k < 3; k++) {
        if (c->head_dim % lg_dtype_block_elems(kv_types[k])) continue;
        size_t global_row = lg_dtype_row_bytes(kv_types[k], (int64_t)c->n_kv_heads * c->head_dim) * 2;
        printf("KV cache (--kv-type %s)\n", kv_names[k]);
        print_bytes("  per token (global layers)", (double)global_row * n_global);
        char label[64];
        snprintf(label, sizeof label, "  at context %d", n_ctx);
        /* pages of 16 positions; sliding layers keep their window plus a decode step */
        print_bytes(label, (double)lg_kv_pages_for_sequence(c, 16, n_ctx, c->sliding_window, 1) *
                               (double)lg_kv_page_bytes(c, kv_types[k], 16));
        print_bytes("  all-global equivalent", (double)global_row * c->n_layers * n_ctx);
    }
}

int cmd_info(int argc, char **argv) {
    const char *dir = NULL, *preset = NULL;
    int n_ctx = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(dir = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--preset")) {
            if (!(preset = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--ctx") || !strcmp(argv[i], "-c") || !strcmp(argv[i], "--ctx-size")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int("--ctx", v, 1, 1 << 30, &n_ctx)) return 2;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            return arg_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    if (!dir && !preset) return arg_usage_error("missing -m MODEL (or --preset NAME)");
    if (dir && preset) return arg_usage_error("give -m MODEL or --preset NAME, not both");
    laguna_error err = {0};
    if (preset) {
        lg_config cfg;
        if (lg_synth_preset(preset, &cfg, &err)) {
            fprintf(stderr, "laguna info: %s\n", err.message);
            return 2;
        }
        printf("preset %s\n", preset);
        describe(&cfg, n_ctx ? n_ctx : cfg.max_position_embeddings);
        lg_config_free(&cfg);
        return 0;
    }
    laguna_model *m;
    if (laguna_model_open(dir, &(laguna_model_options){.n_threads = 1}, &m, &err)) {
        fprintf(stderr, "laguna info: %s\n", err.message);
        return 1;
    }
    printf("model %s\n", dir);
    describe(&m->cfg, n_ctx ? n_ctx : m->cfg.max_position_embeddings);
    laguna_model_free(m);
    return 0;
}
