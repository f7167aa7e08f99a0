/* laguna bench -m DIR: prefill and decode speed, as medians over repeats,
 * beside the machine's memory-read bandwidth measured in the same run (the
 * roofline of decoding, which reads every active weight once per token). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "bench_synth.h"
#include "clock.h"
#include "commands.h"
#include "model/model.h"
#include "runtime/sampler.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct {
    const uint64_t *data;
    size_t n;
    uint64_t sum;
} read_part;

static void *read_worker(void *arg) {
    read_part *p = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= p->n; i += 4) s0 += p->data[i], s1 += p->data[i + 1], s2 += p->data[i + 2], s3 += p->data[i + 3];
    p->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* GB/s of reading a buffer much larger than the caches with n_threads threads. */
static double memory_read_gbps(int n_threads, int reps) {
    size_t bytes = (size_t)1 << 30, n = bytes / 8;
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = i;
    double t[16];
    if (reps > 16) reps = 16;
    pthread_t th[512];
    read_part parts[512];
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        for (int k = 0; k < n_threads; k++) {
            parts[k] = (read_part){buf + n / n_threads * k, n / n_threads, 0};
            pthread_create(&th[k], NULL, read_worker, &parts[k]);
        }
        uint64_t s = 0;
        for (int k = 0; k < n_threads; k++) pthread_join(th[k], NULL), s += parts[k].sum;
        t[r] = bytes / (now_s() - t0) / 1e9;
        if (s == 42) fprintf(stderr, " "); /* keep the sum alive */
    }
    free(buf);
    return median(t, reps);
}

static void usage(FILE *f) {
    fprintf(f, "usage: laguna bench -m MODEL_DIR [--prompt N] [--gen N] [--reps R] [--batch B[,B...]] [--threads N] [--load auto|mmap|copy] [--kv-type T]\n"
               "       laguna bench --synth PRESET [--layers N] [--type T] [--seed S] [--device cuda] [same options]\n"
               "  prefill of N tokens (default 256) and decode of N tokens (default 32), median of R runs (default 3)\n"
               "  --batch 1,4,16  B sequences (distinct prompts of --prompt tokens) decoded together: aggregate decode tok/s\n"
               BENCH_SYNTH_USAGE);
}

static int32_t argmax_row(const float *x, int n) {
    int32_t best = 0;
    for (int v = 1; v < n; v++)
        if (x[v] > x[best]) best = v;
    return best;
}

/* Aggregate decode speed of B sequences decoded together in one context:
 * every step is one row per sequence, so each layer's shared weights are
 * read once for all of them. Returns the median tok/s over reps, or -1. */
static double batched_decode_tps(laguna_model *m, int B, int n_prompt, int n_gen, int reps, laguna_kv_type kv) {
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_error err = {0};
    laguna_context *x = NULL;
    if (laguna_context_create(m, &(laguna_context_options){.n_seq_max = B, .n_ctx = n_prompt + n_gen, .kv_type = kv}, &x,
                              &err)) {
        fprintf(stderr, "laguna bench: %s\n", err.message);
        return -1;
    }
    laguna_batch_row *rows = malloc(sizeof *rows * (size_t)B * (size_t)n_prompt);
    float *logits = malloc(sizeof(float) * (size_t)B * V);
    double tps[16];
    int ok = rows && logits;
    for (int r = -1; r < reps && ok; r++) { /* one untimed run first */
        for (int b = 0; b < B; b++) laguna_seq_remove(x, b);
        int n = 0, seq;
        for (int b = 0; b < B && ok; b++) {
            ok = !laguna_seq_add(x, &seq, &err);
            for (int i = 0; i < n_prompt; i++)
                rows[n++] = (laguna_batch_row){(int32_t)((i * 7919 + b * 104729 + 13) % V), i, seq, i == n_prompt - 1};
        }
        for (int done = 0; ok && done < n; done += 512) /* prompts in calls of at most a step */
            ok = !laguna_context_decode(x, rows + done, n - done < 512 ? n - done : 512,
                                        logits + (size_t)(done / n_prompt) * V, &err);
        double t0 = now_s();
        for (int g = 0; g < n_gen && ok; g++) {
            for (int b = 0; b < B; b++) rows[b] = (laguna_batch_row){argmax_row(logits + (size_t)b * V, V), n_prompt + g, b, 1};
            ok = !laguna_context_decode(x, rows, B, logits, &err);
        }
        if (r >= 0) tps[r] = (double)B * n_gen / (now_s() - t0);
    }
    if (!ok) fprintf(stderr, "laguna bench: %s\n", err.message[0] ? err.message : "out of memory");
    free(rows);
    free(logits);
    laguna_context_free(x);
    return ok ? median(tps, reps) : -1;
}

/* Microseconds per draw of a sampler over `vocab` ids (median of reps
 * batches of draws on fixed pseudo-random logits); reference: sort the whole
 * vocabulary, as the first version did. */
static double sampling_us(const laguna_sampler_params *sp, int vocab, bool reference) {
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    laguna_sampler *smp = NULL;
    if (!logits || laguna_sampler_create(sp, vocab, &smp, NULL)) {
        free(logits);
        return -1;
    }
    lg_sampler_use_reference(smp, reference);
    uint64_t x = 12345;
    for (int i = 0; i < vocab; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(x >> 11) / 9007199254740992.0;
        logits[i] = (float)(14 * u * u * u * u - 4); /* a few favourites, a long tail */
    }
    double t[5];
    int draws = reference ? 4 : 32;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
        for (int d = 0; d < draws; d++) laguna_sampler_accept(smp, laguna_sampler_sample(smp, logits));
        t[r] = (now_s() - t0) / draws * 1e6;
    }
    laguna_sampler_free(smp);
    free(logits);
    return median(t, 5);
}

/* Parses "1,4,16" into at most 16 batch sizes in [1, 1024]. */
static int parse_batches(const char *v, int *out) {
    int n = 0;
    for (const char *p = v; *p && n < 16;) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || b < 1 || b > 1024 || (*end && *end != ',')) return -1;
        out[n++] = (int)b;
        p = *end ? end + 1 : end;
    }
    return n;
}

int cmd_bench(int argc, char **argv) {
    const char *dir = NULL;
    int n_prompt = 256, n_gen = 32, reps = 3, batches[16], n_batches = 0;
    run_options ro = run_options_default(); /* --threads, --load, --kv-type */
    bench_synth synth = {0};                /* --synth, --layers, --type, --seed */
    for (int i = 1; i < argc; i++) {
        const char *v;
        int bad = 0, shared;
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) bad = !(dir = arg_value(argc, argv, &i));
        else if (!strcmp(argv[i], "--prompt")) bad = !(v = arg_value(argc, argv, &i)) || arg_int("--prompt", v, 1, 1 << 20, &n_prompt);
        else if (!strcmp(argv[i], "--gen")) bad = !(v = arg_value(argc, argv, &i)) || arg_int("--gen", v, 1, 1 << 20, &n_gen);
        else if (!strcmp(argv[i], "--reps")) bad = !(v = arg_value(argc, argv, &i)) || arg_int("--reps", v, 1, 16, &reps);
        else if (!strcmp(argv[i], "--batch")) {
            bad = !(v = arg_value(argc, argv, &i)) || (n_batches = parse_batches(v, batches)) < 1;
            if (bad && v) fprintf(stderr, "laguna bench: --batch wants sizes like 1,4,16 (each 1 to 1024)\n");
        }
        else if ((shared = bench_synth_option(argc, argv, &i, &synth))) bad = shared < 0;
        else if ((shared = arg_run_option(argc, argv, &i, &ro))) bad = shared < 0;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            return arg_usage_error("unknown argument '%s'", argv[i]);
        }
        if (bad) return 2;
    }
    if (!dir && !synth.preset) return arg_usage_error("missing -m MODEL");
    if (dir && synth.preset) return arg_usage_error("give -m MODEL or --synth PRESET, not both");
    if (!synth.preset && (synth.type || synth.layers || synth.seed_given))
        return arg_usage_error("--type, --layers and --seed go with --synth PRESET");
    laguna_error err = {0};
    laguna_model *m;
    if (bench_open_model(dir, &synth, &ro.model, &m)) return 1;
    dir = synth.label;
    const laguna_model_info *info = laguna_model_get_info(m);
    int n_threads = m->backend->n_threads;
    int n_ctx = n_prompt + n_gen;
    if (n_ctx > info->max_position_embeddings) {
        fprintf(stderr, "laguna bench: --prompt + --gen exceed the model's %d positions\n", info->max_position_embeddings);
        laguna_model_free(m);
        return 2;
    }
    if (n_batches) {
        printf("model %s, %d threads, prompt %d, %d decode steps, %d runs (median)\n", dir, n_threads, n_prompt, n_gen, reps);
        printf("%-6s %22s %16s %12s\n", "batch", "decode tok/s (all)", "per sequence", "vs first");
        double first = 0;
        int rc = 0;
        for (int i = 0; i < n_batches && !rc; i++) {
            double t = batched_decode_tps(m, batches[i], n_prompt, n_gen, reps, ro.session.kv_type);
            if (t < 0) rc = 1;
            else {
                if (i == 0) first = t / batches[0];
                printf("%-6d %22.2f %16.2f %12.2f\n", batches[i], t, t / batches[i], t / first / batches[0]);
            }
        }
        laguna_model_free(m);
        return rc;
    }
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)n_prompt);
    for (int i = 0; i < n_prompt; i++) toks[i] = (int32_t)((i * 7919 + 13) % info->vocab_size);
    double pre[16], dec[16], dec_sampled[16];
    /* llama.cpp's default sampling chain, for the sampled-decoding line */
    laguna_sampler_params sampled = laguna_sampler_default_params();
    sampled.temperature = 0.8f, sampled.top_k = 40, sampled.top_p = 0.95f, sampled.min_p = 0.05f, sampled.seed = 1;
    laguna_sampler *smp = NULL;
    laguna_session *s = NULL;
    int rc = 0;
    if (laguna_session_create(m, &(laguna_session_options){.n_ctx = n_ctx, .kv_type = ro.session.kv_type, .n_rollback = n_gen + 1}, &s,
                              &err)) {
        fprintf(stderr, "laguna bench: %s\n", err.message);
        rc = 1;
    }
    /* one untimed run first: page in the memory-mapped weights */
    for (int r = -1; r < reps && !rc; r++) {
        laguna_session_reset(s);
        double t0 = now_s();
        laguna_session_feed(s, toks, (size_t)n_prompt, NULL, &err);
        double t1 = now_s();
        for (int g = 0; g < n_gen; g++) {
            const float *lg = laguna_session_logits(s);
            int32_t best = 0;
            for (int v = 1; v < info->vocab_size; v++)
                if (lg[v] > lg[best]) best = v;
            laguna_session_feed(s, &best, 1, NULL, &err);
        }
        double t2 = now_s();
        /* the same decode with a sampler in the loop (prompt kept: truncate back to it) */
        laguna_sampler_free(smp);
        smp = NULL;
        if (laguna_session_truncate(s, n_prompt - 1, &err) || laguna_session_feed(s, toks + n_prompt - 1, 1, NULL, &err) ||
            laguna_sampler_create(&sampled, info->vocab_size, &smp, &err)) {
            fprintf(stderr, "laguna bench: %s\n", err.message);
            rc = 1;
            break;
        }
        double t3 = now_s();
        for (int g = 0; g < n_gen; g++) {
            int32_t t = laguna_sampler_sample(smp, laguna_session_logits(s));
            laguna_sampler_accept(smp, t);
            laguna_session_feed(s, &t, 1, NULL, &err);
        }
        double t4 = now_s();
        if (r >= 0) pre[r] = n_prompt / (t1 - t0), dec[r] = n_gen / (t2 - t1), dec_sampled[r] = n_gen / (t4 - t3);
    }
    laguna_sampler_free(smp);
    if (!rc) {
        /* the host memory probe is the roofline of the CPU only */
        bool on_cpu = !ro.model.device || !strcmp(ro.model.device, "cpu");
        double bw = on_cpu ? memory_read_gbps(n_threads, 5) : 0;
        double p = median(pre, reps), d = median(dec, reps);
        double bytes = (double)lg_model_decode_bytes(m);
        printf("model %s, %s, %d runs (median)\n", dir, on_cpu ? "cpu" : ro.model.device, reps);
        printf("%-34s %12s %s\n", "what", "median", "ratio");
        if (on_cpu) printf("%-34s %9.2f GB/s (%d threads)\n", "memory read bandwidth", bw, n_threads);
        printf("%-34s %8.1f tok/s\n", "prefill", p);
        char label[64];
        snprintf(label, sizeof label, "decode (%d tokens after %d)", n_gen, n_prompt);
        printf("%-34s %8.2f tok/s\n", label, d);
        printf("%-34s %8.2f tok/s %.2f of greedy\n", "decode, sampled (t .8 k 40 p .95)", median(dec_sampled, reps),
               median(dec_sampled, reps) / d);
        laguna_sampler_params temp_only = laguna_sampler_default_params();
        temp_only.temperature = 1;
        int vocabs[2] = {info->vocab_size, 100352};
        for (int k = 0; k < 2; k++) {
            if (k == 1 && vocabs[1] == vocabs[0]) break;
            for (int chain = 0; chain < 2; chain++) {
                const laguna_sampler_params *sp = chain ? &sampled : &temp_only;
                double fast = sampling_us(sp, vocabs[k], false), sorted = sampling_us(sp, vocabs[k], true);
                snprintf(label, sizeof label, "sampling alone, vocab %d, %s", vocabs[k], chain ? "t k p" : "t only");
                printf("%-34s %8.1f us   %.1fx faster than sorting (%.1f us)\n", label, fast, sorted / fast, sorted);
            }
        }
        printf("%-34s %9.3f GB\n", "weights read per decoded token", bytes / 1e9);
        printf("%-34s %9.1f GB/s\n", "weight bytes read while decoding", bytes * d / 1e9);
        if (on_cpu)
            printf("%-34s %8.2f tok/s %.2f of the bandwidth roofline\n", "decode roofline (bytes / bandwidth)", bw * 1e9 / bytes,
                   d / (bw * 1e9 / bytes));
        else
            bench_print_device_roofline(m, bytes, d);
    }
    laguna_session_free(s);
    free(toks);
    laguna_model_free(m);
    return rc;
}
