/* laguna bench -m DIR: prefill and decode speed (greedy and sampled), every
 * repeat and the median, beside the machine's memory-read bandwidth measured
 * in the same run (sys/mem_bandwidth.h: the roofline of decoding, which
 * reads every active weight once per token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "bench_experts.h"
#include "bench_synth.h"
#include "clock.h"
#include "commands.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "sys/mem_bandwidth.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (n <= 32), leaving v in its order. */
static double median(const double *v, int n) {
    double s[32];
    if (n < 1 || n > 32) return 0;
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* " [a b c]": every sample, in the order measured. */
static void print_samples(const double *v, int n, int decimals) {
    printf(" [");
    for (int i = 0; i < n; i++) printf(i ? " %.*f" : "%.*f", decimals, v[i]);
    printf("]");
}

/* One result line: label, median and unit, then every repeat. */
static void print_row(const char *label, const double *v, int n, const char *unit, int decimals) {
    printf("%-36s %9.*f %s", label, decimals, median(v, n), unit);
    print_samples(v, n, decimals);
}

/* The CPU roofline: best of 5 reads of a buffer far larger than the caches
 * on n_threads threads (method in sys/mem_bandwidth.h). Run before the model
 * is loaded, so the buffer does not compete with the weights for memory. */
static int probe_bandwidth(int n_threads, size_t bytes, lg_bandwidth *bw) {
    laguna_error err = {0};
    if (lg_measure_read_bandwidth(n_threads, bytes, 5, LG_READ_AUTO, bw, &err)) {
        fprintf(stderr, "laguna bench: %s\n", err.message);
        return -1;
    }
    return 0;
}

static void print_bandwidth(const lg_bandwidth *bw) {
    printf("%-36s %9.1f GB/s best of %d", "memory read bandwidth", bw->best_gbps, bw->reps);
    print_samples(bw->gbps, bw->reps, 1);
    printf("\n%-36s %.2f GiB buffer, ", "", bw->bytes / 1073741824.0);
    if (bw->huge_bytes >= 0) printf("%.0f%% on 2 MiB pages, ", 100.0 * (double)bw->huge_bytes / (double)bw->bytes);
    printf("%s, %d threads\n", lg_read_isa_name(bw->isa), bw->n_threads);
}

/* "weights 3.90 GB copied into memory (100% on 2 MiB pages)": what the load did. */
static void print_weights_line(const laguna_model_info *info, laguna_load_mode asked) {
    if (info->weights_bytes == 0) { /* --synth on a GPU: made there, no host copy or file */
        printf("weights made on the device");
        return;
    }
    printf("weights %.2f GB ", info->weights_bytes / 1e9);
    if (info->weights_load == LAGUNA_LOAD_COPY)
        printf("copied into memory (%.0f%% on 2 MiB pages)", info->weights_bytes
                                                                 ? 100.0 * (double)info->weights_huge_bytes /
                                                                       (double)info->weights_bytes
                                                                 : 0.0);
    else
        printf("memory-mapped%s", asked == LAGUNA_LOAD_AUTO ? " (too large to copy with headroom: --load copy forces it)"
                                                            : "");
    if (info->weights_rearranged_bytes)
        printf(", %.2f GB regrouped for the AVX-512 kernels", info->weights_rearranged_bytes / 1e9);
}

static void usage(FILE *f) {
    fprintf(f, "usage: laguna bench -m MODEL_DIR [--prompt N] [--gen N] [--reps R] [--batch B[,B...]] [--threads N] [--load auto|mmap|copy] [--kv-type T] [-b N] [--bf16-activations]\n"
               "       laguna bench --synth PRESET [--layers N] [--type T] [--seed S] [--device cuda] [same options]\n"
               "  prefill of N tokens (default 256), then N tokens decoded greedily and again sampled (default 32);\n"
               "  R timed runs after one untimed (default 3), each printed, and their median; the CPU's memory\n"
               "  read bandwidth (best of 5, AVX-512/AVX2 loads on huge pages) and decode's fraction of that roofline\n"
               "  --probe-mib M   the bandwidth probe's buffer in MiB (default: 4096, or a quarter of the\n"
               "                  available memory if less; 0 = no probe)\n"
               "  --batch 1,4,16  B sequences (distinct prompts of --prompt tokens) decoded together: aggregate decode tok/s\n"
               "  --expert-spread after the runs, how the prompt's tokens spread over the routed experts\n"
               BENCH_SYNTH_USAGE);
}

/* Aggregate decode speed of B sequences decoded together in one context:
 * every step is one row per sequence, so each layer's shared weights are
 * read once for all of them; each row asks for its greedy token alone
 * (LAGUNA_ROW_ARGMAX: no logits leave the device). Fills tps[0..reps) with
 * each run's aggregate tok/s; returns 0, or -1 (message printed). */
static int batched_decode_tps(laguna_model *m, int B, int n_prompt, int n_gen, int reps, laguna_kv_type kv,
                              double *tps) {
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_error err = {0};
    laguna_context *x = NULL;
    laguna_context_options co = {.n_seq_max = B, .n_ctx = n_prompt + n_gen, .kv_type = kv, .n_batch = B > 512 ? B : 0};
    if (laguna_context_create(m, &co, &x, &err)) {
        fprintf(stderr, "laguna bench: %s\n", err.message);
        return -1;
    }
    laguna_batch_row *rows = malloc(sizeof *rows * (size_t)B * (size_t)n_prompt);
    int32_t *next = malloc(sizeof(int32_t) * (size_t)B * (size_t)n_prompt),
            *last = malloc(sizeof(int32_t) * 2 * (size_t)B);
    int ok = rows && next && last;
    for (int r = -1; r < reps && ok; r++) { /* one untimed run first */
        for (int b = 0; b < B; b++) laguna_seq_remove(x, b);
        int n = 0, seq;
        for (int b = 0; b < B && ok; b++) {
            ok = !laguna_seq_add(x, &seq, &err);
            for (int i = 0; i < n_prompt; i++)
                rows[n++] = (laguna_batch_row){(int32_t)((i * 7919 + b * 104729 + 13) % V), i, seq,
                                               i == n_prompt - 1 ? LAGUNA_ROW_ARGMAX : 0};
        }
        for (int done = 0; ok && done < n; done += 512) /* prompts in calls of at most a step */
            ok = !laguna_context_decode_argmax(x, rows + done, n - done < 512 ? n - done : 512,
                                               NULL, next + done, &err);
        for (int b = 0; b < B; b++)
            last[b] = next[(size_t)(b + 1) * n_prompt - 1];
        /* queued steps, each taking the step before's tokens where they are; a step
         * is collected once the next is queued (its tokens alternate between two halves of last) */
        double t0 = now_s();
        for (int g = 0; g < n_gen && ok; g++) {
            for (int b = 0; b < B; b++)
                rows[b] = (laguna_batch_row){g ? LAGUNA_TOKEN_OF_ROW(b) : last[b], n_prompt + g, b, LAGUNA_ROW_ARGMAX};
            ok = !laguna_context_decode_argmax_queued(x, rows, B, last + (size_t)(g % 2) * B, &err);
            if (ok && g) ok = !laguna_context_wait(x, &err);
        }
        if (ok) ok = !laguna_context_wait(x, &err);
        if (r >= 0) tps[r] = (double)B * n_gen / (now_s() - t0);
    }
    if (!ok) fprintf(stderr, "laguna bench: %s\n", err.message[0] ? err.message : "out of memory");
    free(rows);
    free(next);
    free(last);
    laguna_context_free(x);
    return ok ? 0 : -1;
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

/* Prefill, greedy decode and sampled decode of one sequence, reps times
 * after one untimed run (which also pages in memory-mapped weights, and
 * counts the prompt's expert choices into spread unless NULL). */
static int single_sequence(laguna_model *m, const run_options *ro, int n_prompt, int n_gen, int reps, double *pre,
                           double *dec, double *dec_sampled, const laguna_sampler_params *sampled,
                           lg_expert_load *spread) {
    const laguna_model_info *info = laguna_model_get_info(m);
    laguna_error err = {0};
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)n_prompt);
    laguna_sampler *smp = NULL;
    laguna_session *s = NULL;
    int rc = 0;
    if (!toks) {
        fprintf(stderr, "laguna bench: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n_prompt; i++) toks[i] = (int32_t)((i * 7919 + 13) % info->vocab_size);
    laguna_session_options so = {.n_ctx = n_prompt + n_gen, .n_batch = ro->session.n_batch, .kv_type = ro->session.kv_type, .n_rollback = n_gen + 1};
    if (laguna_session_create(m, &so, &s, &err)) rc = 1;
    for (int r = -1; r < reps && !rc; r++) {
        laguna_session_reset(s);
        double t0 = now_s();
        int32_t best = -1; /* greedy: only the chosen token leaves the device */
        laguna_observer obs = spread ? lg_expert_load_observer(spread) : (laguna_observer){0};
        if (r < 0 && spread) laguna_session_set_observer(s, &obs);
        rc |= laguna_session_feed_greedy(s, toks, (size_t)n_prompt, &best, &err) != LAGUNA_OK;
        if (r < 0 && spread) laguna_session_set_observer(s, NULL);
        double t1 = now_s();
        for (int g = 0; g < n_gen && !rc; g++) { /* the device a step ahead of the host */
            rc |= laguna_session_feed_next_greedy(s, best, &err) != LAGUNA_OK;
            rc |= !rc && laguna_session_next_greedy(s, g + 1 < n_gen, &best, &err) != LAGUNA_OK;
        }
        double t2 = now_s();
        /* the same decode with the sampler in the loop (prompt kept: truncate back to it) */
        laguna_sampler_free(smp);
        smp = NULL;
        if (rc || laguna_session_truncate(s, n_prompt - 1, &err) ||
            laguna_session_feed(s, toks + n_prompt - 1, 1, NULL, &err) ||
            laguna_sampler_create(sampled, info->vocab_size, &smp, &err)) {
            rc = 1;
            break;
        }
        double t3 = now_s();
        for (int g = 0; g < n_gen && !rc; g++) {
            int32_t t = laguna_sampler_sample(smp, laguna_session_logits(s));
            laguna_sampler_accept(smp, t);
            rc |= laguna_session_feed(s, &t, 1, NULL, &err) != LAGUNA_OK;
        }
        double t4 = now_s();
        if (r >= 0) pre[r] = n_prompt / (t1 - t0), dec[r] = n_gen / (t2 - t1), dec_sampled[r] = n_gen / (t4 - t3);
    }
    if (rc) fprintf(stderr, "laguna bench: %s\n", err.message[0] ? err.message : "out of memory");
    laguna_sampler_free(smp);
    laguna_session_free(s);
    free(toks);
    return rc;
}

/* The sampler alone, at the model's vocabulary and at XS.2's. */
static void print_sampling(int vocab, const laguna_sampler_params *sampled) {
    laguna_sampler_params temp_only = laguna_sampler_default_params();
    temp_only.temperature = 1;
    int vocabs[2] = {vocab, 100352};
    char label[64];
    for (int k = 0; k < 2; k++) {
        if (k == 1 && vocabs[1] == vocabs[0]) break;
        for (int chain = 0; chain < 2; chain++) {
            const laguna_sampler_params *sp = chain ? sampled : &temp_only;
            double fast = sampling_us(sp, vocabs[k], false), sorted = sampling_us(sp, vocabs[k], true);
            snprintf(label, sizeof label, "sampling alone, vocab %d, %s", vocabs[k], chain ? "t k p" : "t only");
            printf("%-36s %9.1f us   %.1fx faster than sorting (%.1f us)\n", label, fast, sorted / fast, sorted);
        }
    }
}

int cmd_bench(int argc, char **argv) {
    const char *dir = NULL;
    int n_prompt = 256, n_gen = 32, reps = 3, batches[16], n_batches = 0, probe_mib = -1;
    bool spread = false;
    run_options ro = run_options_default(); /* --threads, --load, --kv-type */
    bench_synth synth = {0};                /* --synth, --layers, --type, --seed */
    for (int i = 1; i < argc; i++) {
        const char *v;
        int bad = 0, shared;
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) bad = !(dir = arg_value(argc, argv, &i));
        else if (!strcmp(argv[i], "--prompt")) bad = !(v = arg_value(argc, argv, &i)) || arg_int("--prompt", v, 1, 1 << 20, &n_prompt);
        else if (!strcmp(argv[i], "--gen")) bad = !(v = arg_value(argc, argv, &i)) || arg_int("--gen", v, 1, 1 << 20, &n_gen);
        else if (!strcmp(argv[i], "--reps")) bad = !(v = arg_value(argc, argv, &i)) || arg_int("--reps", v, 1, 16, &reps);
        else if (!strcmp(argv[i], "--probe-mib")) bad = !(v = arg_value(argc, argv, &i)) || arg_int("--probe-mib", v, 0, 1 << 20, &probe_mib);
        else if (!strcmp(argv[i], "--expert-spread")) spread = true;
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
    /* the host memory probe is the roofline of the CPU only; it runs first,
     * with as many threads as the model will get */
    bool on_cpu = !ro.model.device || !strcmp(ro.model.device, "cpu");
    lg_bandwidth bw = {0};
    if (on_cpu && probe_mib != 0) {
        size_t bytes = probe_mib < 0 ? lg_bandwidth_default_bytes() : (size_t)probe_mib << 20;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int probe_threads = ro.model.n_threads > 0 ? ro.model.n_threads : cores > 0 ? (int)cores : 1;
        if (probe_bandwidth(probe_threads, bytes, &bw)) return 1;
    }
    laguna_model *m;
    if (bench_open_model(dir, &synth, &ro.model, &m)) return 1;
    dir = synth.label;
    const laguna_model_info *info = laguna_model_get_info(m);
    int n_threads = m->backend->n_threads;
    if (n_prompt + n_gen > info->max_position_embeddings) {
        fprintf(stderr, "laguna bench: --prompt + --gen exceed the model's %d positions\n", info->max_position_embeddings);
        laguna_model_free(m);
        return 2;
    }
    if (ro.session.kv_type == LAGUNA_KV_AUTO) ro.session.kv_type = laguna_model_default_kv_type(m);
    printf("model %s: %s, %d threads, KV cache %s; ", dir, on_cpu ? "cpu" : ro.model.device, n_threads,
           laguna_kv_type_name(ro.session.kv_type));
    print_weights_line(info, ro.model.load_mode);
    if (info->bf16_activations) printf("; bf16 activations (--bf16-activations)");
    model_options_note(&ro.model, m);
    printf("\nprompt %d tokens, %d decode steps; %d timed runs after one untimed (median, then every run)\n",
           n_prompt, n_gen, reps);
    if (bw.reps) print_bandwidth(&bw);
    int rc = 0;
    if (n_batches) {
        printf("%-6s %22s %16s %12s  %s\n", "batch", "decode tok/s (all)", "per sequence", "vs first", "runs (all)");
        double first = 0, tps[16];
        for (int i = 0; i < n_batches && !rc; i++) {
            if (batched_decode_tps(m, batches[i], n_prompt, n_gen, reps, ro.session.kv_type, tps)) {
                rc = 1;
                break;
            }
            double t = median(tps, reps);
            if (i == 0) first = t / batches[0];
            printf("%-6d %22.2f %16.2f %12.2f ", batches[i], t, t / batches[i], t / first / batches[0]);
            print_samples(tps, reps, 2);
            printf("\n");
        }
        laguna_model_free(m);
        return rc;
    }
    double pre[16], dec[16], dec_sampled[16];
    /* llama.cpp's default sampling chain, for the sampled-decoding line */
    laguna_sampler_params sampled = laguna_sampler_default_params();
    sampled.temperature = 0.8f, sampled.top_k = 40, sampled.top_p = 0.95f, sampled.min_p = 0.05f, sampled.seed = 1;
    lg_expert_load counts = {0};
    if (spread && !lg_expert_load_init(&counts, info->n_layers, info->n_experts > 0 ? info->n_experts : 1)) {
        fprintf(stderr, "laguna bench: out of memory\n");
        laguna_model_free(m);
        return 1;
    }
    rc = single_sequence(m, &ro, n_prompt, n_gen, reps, pre, dec, dec_sampled, &sampled, spread ? &counts : NULL);
    if (!rc) {
        double d = median(dec, reps), ds = median(dec_sampled, reps);
        double bytes = (double)lg_model_decode_bytes(m);
        char label[64];
        printf("%-36s %9s %s\n", "what", "median", "runs");
        snprintf(label, sizeof label, "prefill (%d tokens)", n_prompt);
        print_row(label, pre, reps, "tok/s", 1);
        printf("\n");
        snprintf(label, sizeof label, "decode greedy (%d after %d)", n_gen, n_prompt);
        print_row(label, dec, reps, "tok/s", 2);
        printf("\n");
        print_row("decode sampled (t .8 k 40 p .95)", dec_sampled, reps, "tok/s", 2);
        printf(" %.2f of greedy\n", ds / d);
        print_sampling(info->vocab_size, &sampled);
        /* mapped pages count once read: the kernel may have put the page cache on 2 MiB folios */
        lg_tensor_memory mem = lg_tensor_source_memory(m->tensors);
        uint64_t all = mem.mapped_bytes + mem.copied_bytes;
        if (all) printf("%-36s %9.0f %%\n", "weights on 2 MiB pages after the runs", 100.0 * (double)mem.huge_bytes / (double)all);
        printf("%-36s %9.3f GB\n", "weights read per decoded token", bytes / 1e9);
        printf("%-36s %9.1f GB/s\n", "weight bytes read, greedy decode", bytes * d / 1e9);
        if (bw.reps)
            printf("%-36s %9.2f tok/s; greedy decode at %.2f of it\n", "decode roofline (bandwidth / bytes)",
                   bw.best_gbps * 1e9 / bytes, d / (bw.best_gbps * 1e9 / bytes));
        else if (!on_cpu)
            bench_print_device_roofline(m, bytes, d);
    }
    if (!rc && spread) rc = bench_print_expert_spread(m, &counts);
    free(counts.load);
    laguna_model_free(m);
    return rc;
}
