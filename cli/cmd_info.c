/* laguna info -m DIR | --preset NAME: layer layout, parameter counts, and
 * KV-cache size per token and at the maximum (or a chosen) context; for a
 * model, also its weight dtypes, size on disk and the memory it needs. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "model/model.h"
#include "runtime/kv_pages.h"
#include "synth/presets.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna info (-m MODEL | --preset xs2|xs2.1|s2.1|m1|synth-tiny) [-c N]\n");
}

static void print_bytes(const char *label, double bytes) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double v = bytes;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    printf("%-28s %.0f bytes (%.2f %s)\n", label, bytes, v, unit[u]);
}

/* 12194304 -> "12.19M": counts in K, M, B, T. */
static const char *readable_count(double n, char *buf, size_t size) {
    const char *unit[] = {"", "K", "M", "B", "T"};
    int u = 0;
    while (n >= 1000 && u < 4) n /= 1000, u++;
    snprintf(buf, size, u ? "%.2f%s" : "%.0f%s", n, unit[u]);
    return buf;
}

/* Bytes of the model's files: the GGUF, or a folder's .safetensors. */
static double disk_bytes(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (S_ISREG(st.st_mode)) return (double)st.st_size;
    DIR *d = opendir(path);
    double total = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        char file[4096];
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors")) continue;
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) total += (double)st.st_size;
    }
    if (d) closedir(d);
    return total;
}

/* Weight dtypes with their tensor counts and bytes; returns all weight bytes. */
static double describe_weights(const laguna_model *m) {
    double bytes[LG_DTYPE_COUNT] = {0}, total = 0;
    int count[LG_DTYPE_COUNT] = {0};
    for (size_t i = 0; i < lg_tensor_source_count(m->tensors); i++) {
        const lg_tensor *t = lg_tensor_source_at(m->tensors, i);
        if ((int)t->dtype < 0 || t->dtype >= LG_DTYPE_COUNT) continue;
        bytes[t->dtype] += (double)t->n_bytes;
        count[t->dtype]++;
        total += (double)t->n_bytes;
    }
    printf("weights                     ");
    for (int d = 0; d < LG_DTYPE_COUNT; d++)
        if (count[d]) printf(" %s x%d (%.1f MiB)", lg_dtype_name((lg_dtype)d), count[d], bytes[d] / 1048576);
    printf("\n");
    return total;
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
    char buf[32];
    printf("parameters total             %lld (%s)\n", (long long)total, readable_count((double)total, buf, sizeof buf));
    printf("parameters active per token  %lld (%s)\n", (long long)active,
           readable_count((double)active, buf, sizeof buf));
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
    laguna_model_options mo = {.n_threads = 1, .load_mode = LAGUNA_LOAD_MMAP}; /* no copy just to look */
    if (laguna_model_open(dir, &mo, &m, &err)) {
        fprintf(stderr, "laguna info: %s\n", err.message);
        return 1;
    }
    int ctx = n_ctx ? n_ctx : m->cfg.max_position_embeddings;
    printf("model %s\n", dir);
    describe(&m->cfg, ctx);
    double weights = describe_weights(m);
    print_bytes("size on disk", disk_bytes(dir));
    const lg_config *c = &m->cfg;
    double kv = (double)lg_kv_pages_for_sequence(c, 16, ctx, c->sliding_window, 1) *
                (double)lg_kv_page_bytes(c, LG_DTYPE_F32, 16);
    char label[64];
    snprintf(label, sizeof label, "memory (weights + f32 KV at %d)", ctx);
    print_bytes(label, weights + kv);
    laguna_model_free(m);
    return 0;
}
