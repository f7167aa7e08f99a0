/* bench_sampler: microseconds a draw of the sampler, fast path and (with
 * --reference) the sorting reference, for the common parameter sets at one
 * vocabulary size (default XS.2's 100352). The logits are those `laguna
 * bench` uses for its "sampling alone" lines: a few favourites and a long
 * tail. Each line: the best of --samples samples of --draws draws.
 *
 * usage: bench_sampler [--vocab N] [--draws N] [--samples N] [--reference] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "laguna.h"
#include "runtime/sampler.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int int_arg(const char *name, const char *v, int lo, int hi) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi) {
        fprintf(stderr, "bench_sampler: %s wants a number from %d to %d\n", name, lo, hi);
        exit(2);
    }
    return (int)x;
}

int main(int argc, char **argv) {
    int vocab = 100352, draws = 20, samples = 5;
    bool reference = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab")) vocab = int_arg("--vocab", i + 1 < argc ? argv[++i] : NULL, 1, 1 << 24);
        else if (!strcmp(argv[i], "--draws")) draws = int_arg("--draws", i + 1 < argc ? argv[++i] : NULL, 1, 1 << 20);
        else if (!strcmp(argv[i], "--samples")) samples = int_arg("--samples", i + 1 < argc ? argv[++i] : NULL, 1, 1000);
        else if (!strcmp(argv[i], "--reference")) reference = true;
        else {
            fprintf(stderr, "usage: bench_sampler [--vocab N] [--draws N] [--samples N] [--reference]\n");
            return 2;
        }
    }
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    if (!logits) return 1;
    uint64_t x = 12345;
    for (int i = 0; i < vocab; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(x >> 11) / 9007199254740992.0;
        logits[i] = (float)(14 * u * u * u * u - 4); /* as cmd_bench.c's sampling_us */
    }
    const struct {
        float temperature;
        int top_k;
        float top_p, min_p;
    } sets[] = {{0.8f, 40, 0.95f, 0}, {0.8f, 0, 0.95f, 0}, {0.6f, 0, 0.9f, 0}, {0.7f, 0, 1, 0}, {1, 0, 1, 0.05f}};
    printf("vocab %d, %s, best of %d samples of %d draws\n", vocab, reference ? "sorting reference" : "fast path",
           samples, draws);
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        laguna_sampler_params p = laguna_sampler_default_params();
        p.temperature = sets[k].temperature, p.top_k = sets[k].top_k, p.top_p = sets[k].top_p, p.min_p = sets[k].min_p;
        laguna_sampler *smp = NULL;
        if (laguna_sampler_create(&p, vocab, &smp, NULL) != LAGUNA_OK) return 1;
        lg_sampler_use_reference(smp, reference);
        double best = 1e30;
        for (int s = 0; s < samples; s++) {
            double t0 = now_s();
            for (int d = 0; d < draws; d++) laguna_sampler_accept(smp, laguna_sampler_sample(smp, logits));
            double t = (now_s() - t0) / draws;
            best = t < best ? t : best;
        }
        printf("t %.2f  top-k %-3d  top-p %.2f  min-p %.2f  %9.1f us\n", p.temperature, p.top_k, p.top_p, p.min_p,
               best * 1e6);
        laguna_sampler_free(smp);
    }
    free(logits);
    return 0;
}
