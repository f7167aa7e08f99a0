/* laguna generate: feed a prompt (token ids, or text once a tokenizer is
 * loaded) and sample a continuation, streaming it to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "commands.h"
#include "laguna.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna generate -m MODEL_DIR (--tokens 1,2,3 | -p TEXT) [-n N] [options]\n"
               "  -n N                   tokens to generate (default 64)\n"
               "  --temp T               temperature, 0 = greedy (default 0)\n"
               "  --top-k K --top-p P --min-p P --repeat-penalty R --seed S\n"
               "  --ctx N                context length (default: the model's maximum)\n"
               "  --kv-type T            KV cache storage: f32 (default), f16, bf16\n"
               "  --threads N            compute threads (default: all cores)\n"
               "  --load auto|mmap|copy  map the weights or copy them into RAM (default auto)\n"
               "  --ignore-eos           keep going after an end-of-sequence token\n"
               "  --stats                print timings to stderr\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int is_eos(const laguna_model_info *info, int32_t t) {
    for (int i = 0; i < info->n_eos_token_ids; i++)
        if (info->eos_token_ids[i] == t) return 1;
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *dir = NULL, *tokens_text = NULL, *prompt = NULL;
    int n_gen = 64, n_ctx = 0, ignore_eos = 0, stats = 0, kv_type = LAGUNA_KV_F32;
    laguna_model_options mo = {0};
    laguna_sampler_params sp = laguna_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = 1;
        } else if (!strcmp(a, "--stats")) {
            stats = 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            bad = !(dir = arg_value(argc, argv, &i));
        } else if (!strcmp(a, "--tokens")) {
            bad = !(tokens_text = arg_value(argc, argv, &i));
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            bad = !(prompt = arg_value(argc, argv, &i));
        } else if (!strcmp(a, "-n")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 0, 1 << 30, &n_gen);
        } else if (!strcmp(a, "--ctx")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 1, 1 << 30, &n_ctx);
        } else if (!strcmp(a, "--kv-type")) {
            if ((bad = !(v = arg_value(argc, argv, &i))) == 0 && (kv_type = laguna_kv_type_from_name(v)) < 0) {
                fprintf(stderr, "laguna generate: --kv-type must be f32, f16 or bf16 (got '%s')\n", v);
                bad = 1;
            }
        } else if (!strcmp(a, "--load")) {
            int mode = 0;
            bad = !(v = arg_value(argc, argv, &i)) || arg_load_mode(a, v, &mode);
            mo.load_mode = (laguna_load_mode)mode;
        } else if (!strcmp(a, "--threads")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 1, 512, &mo.n_threads);
        } else if (!strcmp(a, "--temp")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_float(a, v, 0, 1e6, &sp.temperature);
        } else if (!strcmp(a, "--top-k")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 0, 1 << 30, &sp.top_k);
        } else if (!strcmp(a, "--top-p")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_float(a, v, 1e-9, 1, &sp.top_p);
        } else if (!strcmp(a, "--min-p")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_float(a, v, 0, 1, &sp.min_p);
        } else if (!strcmp(a, "--repeat-penalty")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_float(a, v, 1e-6, 1e6, &sp.repetition_penalty);
        } else if (!strcmp(a, "--seed")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_u64(a, v, &sp.seed);
        } else {
            fprintf(stderr, "laguna generate: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) return 2;
    }
    if (!dir || (!tokens_text == !prompt)) {
        usage(stderr);
        return 2;
    }
    if (prompt) {
        fprintf(stderr, "laguna generate: -p needs the tokenizer, which is not built yet; use --tokens\n");
        return 2;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (arg_token_list("--tokens", tokens_text, &ids, &n_ids)) return 2;
    if (n_ids == 0) {
        fprintf(stderr, "laguna generate: the prompt is empty\n");
        free(ids);
        return 2;
    }

    laguna_error err = {0};
    laguna_model *m = NULL;
    laguna_session *s = NULL;
    laguna_sampler *smp = NULL;
    int rc = 1;
    double t0 = now_s(), t_load, t_prompt, t_end;
    if (laguna_model_open(dir, &mo, &m, &err)) goto fail;
    t_load = now_s();
    const laguna_model_info *info = laguna_model_get_info(m);
    if (laguna_session_create(m, &(laguna_session_options){.n_ctx = n_ctx, .kv_type = (laguna_kv_type)kv_type}, &s, &err)) goto fail;
    if (laguna_sampler_create(&sp, info->vocab_size, &smp, &err)) goto fail;
    if (n_ids + (size_t)n_gen > (size_t)laguna_session_capacity(s)) {
        fprintf(stderr, "laguna generate: prompt (%zu tokens) + %d new tokens exceed the context length %d\n", n_ids, n_gen,
                laguna_session_capacity(s));
        goto done;
    }
    for (size_t i = 0; i < n_ids; i++) laguna_sampler_accept(smp, ids[i]);
    if (laguna_session_feed(s, ids, n_ids, NULL, &err)) goto fail;
    t_prompt = now_s();
    int produced = 0;
    for (; produced < n_gen; produced++) {
        int32_t t = laguna_sampler_sample(smp, laguna_session_logits(s));
        laguna_sampler_accept(smp, t);
        printf(produced ? ",%d" : "%d", t);
        fflush(stdout);
        if (!ignore_eos && is_eos(info, t)) {
            produced++;
            break;
        }
        if (produced + 1 < n_gen && laguna_session_feed(s, &t, 1, NULL, &err)) goto fail;
    }
    printf("\n");
    t_end = now_s();
    if (stats)
        fprintf(stderr, "load %.3f s | prompt %zu tokens in %.3f s (%.1f tok/s) | generated %d tokens in %.3f s (%.2f tok/s)\n",
                t_load - t0, n_ids, t_prompt - t_load, n_ids / (t_prompt - t_load), produced, t_end - t_prompt,
                produced / (t_end - t_prompt));
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "laguna generate: %s\n", err.message);
done:
    laguna_sampler_free(smp);
    laguna_session_free(s);
    laguna_model_free(m);
    free(ids);
    return rc;
}
