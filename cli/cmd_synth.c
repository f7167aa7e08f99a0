/* laguna synth --preset xs2|xs2.1|s2.1|m1|synth-tiny --out DIR: writes a random checkpoint in
 * the real layout and shapes, for benchmarks and demos. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "synth/presets.h"
#include "synth/synth.h"
#include "gguf/gguf_quantize.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna synth --preset xs2|xs2.1|s2.1|m1|synth-tiny --out DIR [--layers N] [--dtype f32|bf16|f16]\n"
               "                    [--seed S] [--shard-mb MB]\n"
               "       laguna synth --preset ... --type q8_0|q4_k_m|q5_k_m|q6_k|bf16 --out FILE.gguf [--threads N]\n"
               "       laguna synth --preset ... [--layers N] --config-only --out DIR\n"
               "  --config-only  write only config.json and generation_config.json (the shapes, for\n"
               "                 tools that build the same model elsewhere, e.g. bench/transformers_compare.py)\n"
               "  --type T       write a GGUF quantised as `laguna quantize --type T` would quantise the\n"
               "                 checkpoint above, without ever storing the float weights\n"
               "  --layers N     keep only the first N layers of the preset\n"
               "  --dtype        weight dtype (default bf16)\n"
               "  --shard-mb MB  split into shards of at most MB MiB with an index (default 4096; 0 = one file)\n");
}

static void progress(void *user, uint64_t done, uint64_t total) {
    (void)user;
    fprintf(stderr, "\rlaguna synth: %6.2f / %.2f GiB", done / 1073741824.0, total / 1073741824.0);
    if (done == total) fprintf(stderr, "\n");
}

static void generate(void *user, const lg_tensor *t, size_t offset, void *dst, size_t n) {
    lg_synth_generate(*(const uint64_t *)user, t, offset, dst, n);
}

static void quantize_progress(void *user, uint64_t done, uint64_t total, const char *tensor) {
    (void)tensor;
    progress(user, done, total);
}

int cmd_synth(int argc, char **argv) {
    const char *preset = NULL, *out = NULL, *dtype = "bf16", *type = NULL;
    int layers = 0, shard_mb = 4096, threads = 0, config_only = 0;
    lg_synth_options opt = {.dtype = LG_DTYPE_BF16, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--preset")) {
            if (!(preset = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--out")) {
            if (!(out = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--config-only")) {
            config_only = 1;
        } else if (!strcmp(argv[i], "--type")) {
            if (!(type = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--threads")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int("--threads", v, 1, 512, &threads)) return 2;
        } else if (!strcmp(argv[i], "--dtype")) {
            if (!(dtype = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--layers")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int("--layers", v, 1, 100000, &layers)) return 2;
        } else if (!strcmp(argv[i], "--shard-mb")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_int("--shard-mb", v, 0, 1 << 20, &shard_mb)) return 2;
        } else if (!strcmp(argv[i], "--seed")) {
            if (!(v = arg_value(argc, argv, &i)) || arg_u64("--seed", v, &opt.seed)) return 2;
        } else {
            return arg_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    if (!preset) return arg_usage_error("missing --preset NAME");
    if (!out) return arg_usage_error("missing --out DIR");
    if (!strcmp(dtype, "f32")) opt.dtype = LG_DTYPE_F32;
    else if (!strcmp(dtype, "bf16")) opt.dtype = LG_DTYPE_BF16;
    else if (!strcmp(dtype, "f16")) opt.dtype = LG_DTYPE_F16;
    else {
        fprintf(stderr, "laguna synth: --dtype must be f32, bf16 or f16 (got '%s')\n", dtype);
        return 2;
    }
    opt.max_shard_bytes = (uint64_t)shard_mb << 20;
    if (isatty(2)) opt.progress = progress;
    laguna_error err = {0};
    lg_config cfg;
    if (lg_synth_preset_layers(preset, layers, &cfg, &err)) {
        fprintf(stderr, "laguna synth: %s\n", err.message);
        return 2;
    }
    laguna_status st;
    if (config_only) {
        if (type) {
            lg_config_free(&cfg);
            return arg_usage_error("--config-only writes no weights: drop --type");
        }
        st = lg_synth_write_config(&cfg, out, &err);
    } else if (type) {
        lg_quantize_options qo = {.n_threads = threads, .generate = generate, .generate_user = &opt.seed};
        lg_tensor_source *src = NULL;
        if (lg_ftype_parse(type, &qo.ftype)) {
            fprintf(stderr, "laguna synth: --type must be q8_0, q4_k_m, q5_k_m, q6_k or bf16 (got '%s')\n", type);
            lg_config_free(&cfg);
            return 2;
        }
        if (isatty(2)) qo.progress = quantize_progress;
        st = lg_synth_tensor_source(&cfg, opt.dtype, &src, &err);
        if (!st) st = lg_quantize_source(&cfg, src, preset, out, &qo, NULL, &err);
        lg_tensor_source_free(src);
    } else {
        st = lg_synth_write(&cfg, out, &opt, &err);
    }
    lg_config_free(&cfg);
    if (st) {
        fprintf(stderr, "laguna synth: %s\n", err.message);
        return 1;
    }
    printf("wrote %s (preset %s%s)\n", out, preset, layers ? ", truncated" : "");
    return 0;
}
