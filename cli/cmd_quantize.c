/* laguna quantize SRC DST --type q8_0|q4_k_m|q5_k_m|q6_k|bf16 [--threads N]:
 * writes a GGUF with llama.cpp's per-tensor type mix from a Hugging Face
 * checkpoint folder or another Laguna GGUF. A progress bar goes to stderr
 * only when stderr is a terminal; the summary goes to stdout. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "gguf/gguf_quantize.h"
#include "model/model.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: laguna quantize [-m] SRC DST --type q8_0|q4_k_m|q5_k_m|q6_k|bf16 [--threads N]\n"
            "  SRC  a checkpoint folder (config.json, *.safetensors, tokenizer files) or a .gguf\n"
            "  DST  the GGUF to write (through DST.tmp, renamed when complete)\n");
}

static void progress_bar(void *user, uint64_t done, uint64_t total, const char *tensor) {
    (void)user;
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 100, filled = pct * 30 / 100;
    char bar[31];
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '.', (size_t)(30 - filled));
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %3d%% %-40.40s", bar, pct, tensor);
    fflush(stderr);
}

static double mib(uint64_t b) {
    return (double)b / (1024.0 * 1024.0);
}

/* Quantising weights that are already quantised compounds the rounding (as
 * llama.cpp's --allow-requantize warns): say so, naming the types found. */
static void warn_if_quantized(const char *src) {
    laguna_model *m = NULL;
    laguna_model_options mo = {.n_threads = 1, .load_mode = LAGUNA_LOAD_MMAP};
    if (laguna_model_open(src, &mo, &m, NULL) != LAGUNA_OK) return; /* the quantizer will say why */
    bool seen[LG_DTYPE_COUNT] = {0}, any = false;
    for (size_t i = 0; i < lg_tensor_source_count(m->tensors); i++) {
        lg_dtype d = lg_tensor_source_at(m->tensors, i)->dtype;
        if ((int)d >= 0 && d < LG_DTYPE_COUNT && lg_dtype_is_quantized(d)) seen[d] = any = true;
    }
    laguna_model_free(m);
    if (!any) return;
    fprintf(stderr, "laguna quantize: warning: %s is already quantised (", src);
    for (int d = 0, first = 1; d < LG_DTYPE_COUNT; d++)
        if (seen[d]) fprintf(stderr, first ? "%s" : ", %s", lg_dtype_name((lg_dtype)d)), first = 0;
    fprintf(stderr, "); quantising it again loses more accuracy than quantising the original "
                    "weights\n");
}

int cmd_quantize(int argc, char **argv) {
    const char *src = NULL, *dst = NULL, *type = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--type")) {
            if (!(type = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(src = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--threads") || !strcmp(argv[i], "-t")) {
            const char *v = arg_value(argc, argv, &i);
            if (!v || arg_int("--threads", v, 0, 1024, &threads)) return 2;
        } else if (argv[i][0] == '-') {
            return arg_usage_error("unknown option '%s'", argv[i]);
        } else if (!src) {
            src = argv[i];
        } else if (!dst) {
            dst = argv[i];
        } else {
            return arg_usage_error("unexpected argument '%s'", argv[i]);
        }
    }
    lg_quantize_options opt = {.n_threads = threads};
    if (!src) return arg_usage_error("missing -m MODEL (the model to quantize)");
    if (!dst) return arg_usage_error("missing the output file (DST.gguf)");
    if (!type) return arg_usage_error("missing --type");
    if (lg_ftype_parse(type, &opt.ftype) != 0) {
        fprintf(stderr,
                "laguna quantize: --type '%s' is not one of q8_0, q4_k_m, q5_k_m, q6_k, bf16\n",
                type);
        return 2;
    }
    warn_if_quantized(src);
    if (isatty(STDERR_FILENO)) opt.progress = progress_bar;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    lg_quantize_stats stats;
    laguna_error err = {0};
    laguna_status st = lg_quantize_model(src, dst, &opt, &stats, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (opt.progress) fprintf(stderr, "\n");
    if (st) {
        fprintf(stderr, "laguna quantize: %s\n", err.message);
        return 1;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("wrote %s (%s): %zu tensors, %.1f MiB of weights -> %.1f MiB in %.1f s\n", dst,
           lg_ftype_name(opt.ftype), stats.n_tensors, mib(stats.src_bytes), mib(stats.dst_bytes),
           secs);
    printf("types:");
    for (int t = 0; t < LG_DTYPE_COUNT; t++)
        if (stats.count_by_type[t])
            printf(" %s %zu", lg_dtype_name((lg_dtype)t), stats.count_by_type[t]);
    printf("\n");
    if (stats.n_fallbacks)
        printf("%zu tensors have rows that are not whole blocks of the chosen type and fell back "
               "as llama.cpp does\n",
               stats.n_fallbacks);
    return 0;
}
