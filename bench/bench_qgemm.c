/* bench_qgemm: the int8 products of quant_dot.h alone, one thread, from the
 * cache: prefill-sized tiles (many tokens) and one token (decode), for the
 * quantised types at XS.2's shapes. The arithmetic speed of the kernels with
 * no memory stall and no thread pool: GMAC/s (1e9 multiply-adds per second)
 * of thread CPU time, best of --reps, so other jobs on the machine count
 * less than in wall time.
 *
 * usage: bench_qgemm [--reps R] [--isa scalar|avx2|avx512] [--tokens T] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/quant_dot.h"
#include "core/dtype.h"
#include "quant/quant.h"

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static float rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* best GMAC/s of `reps` timings, each long enough to be measured */
static double gmacs(lg_isa isa, lg_dtype dt, int rows, int64_t cols, int tokens, int reps) {
    size_t rb = lg_dtype_row_bytes(dt, cols);
    uint8_t *w = malloc(rb * (size_t)rows);
    float *src = malloc(sizeof(float) * (size_t)(cols > tokens ? cols : 1) * (size_t)tokens);
    for (int r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++)
            src[i] = rnd();
        lg_quantize_row(lg_x16_base(dt), src, w + (size_t)r * rb, cols);
    }
    if (lg_x16_base(dt) != dt && lg_x16_group(w, lg_x16_base(dt), rows, cols)) abort(); /* rows: 16s */
    for (int64_t i = 0; i < cols * tokens; i++)
        src[i] = rnd();
    int block = lg_q8_block(dt);
    size_t xs = lg_q8_row_bytes(cols, block);
    uint8_t *x = aligned_alloc(64, xs * (size_t)tokens);
    lg_q8_quantize_for(isa, dt, src, tokens, cols, x);
    float *y = malloc(sizeof(float) * (size_t)rows * tokens);
    lg_qgemm_args a = {dt, w, rb, rows, x, xs, tokens, cols, y, (size_t)rows, NULL};
    double macs = (double)rows * cols * tokens, best = 0;
    int calls = (int)(2e8 / macs) + 1;
    for (int k = 0; k < reps; k++) {
        double t0 = cpu_s();
        for (int c = 0; c < calls; c++)
            lg_qgemm_isa(isa, &a);
        double g = macs * calls / (cpu_s() - t0) * 1e-9;
        if (g > best) best = g;
    }
    free(w), free(src), free(x), free(y);
    return best;
}

int main(int argc, char **argv) {
    int reps = 5, only_tokens = 0;
    lg_isa isa = lg_qgemm_isa_best();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            only_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            const char *name = argv[++i];
            isa = LG_ISA_COUNT;
            for (int k = 0; k < LG_ISA_COUNT; k++)
                if (!strcmp(name, lg_qgemm_isa_name((lg_isa)k))) isa = (lg_isa)k;
            if (isa == LG_ISA_COUNT || !lg_qgemm_isa_available(isa)) {
                fprintf(stderr, "bench_qgemm: instruction set '%s' not available here\n", name);
                return 1;
            }
        } else {
            fprintf(stderr,
                    "usage: bench_qgemm [--reps R] [--isa scalar|avx2|avx512] [--tokens T]\n");
            return 1;
        }
    }
    if (reps < 1) reps = 1;
    /* each type as files have it, then as a copy is rearranged for these
     * kernels (when they want another layout: 16-row groups for AVX-512) */
    const lg_dtype types[] = {LG_DTYPE_Q4_K, lg_qgemm_layout_for(LG_DTYPE_Q4_K, 16), LG_DTYPE_Q5_K,
                              lg_qgemm_layout_for(LG_DTYPE_Q5_K, 16),
                              LG_DTYPE_Q6_K, lg_qgemm_layout_for(LG_DTYPE_Q6_K, 16), LG_DTYPE_Q8_0,
                              lg_qgemm_layout_for(LG_DTYPE_Q8_0, 16)};
    const int n_types = (int)(sizeof types / sizeof types[0]);
    const struct {
        int rows;
        int64_t cols;
        const char *what;
    } shapes[] = {
        {512, 2048, "expert gate"}, {2048, 512, "expert down"}, {256, 8192, "o_proj rows"}};
    const int token_counts[] = {1, 8, 16, 64};
    printf("isa %s, one thread, GMAC/s best of %d\n", lg_qgemm_isa_name(isa), reps);
    printf("%-6s %-12s %12s", "type", "shape", "");
    for (int t = 0; t < 4; t++)
        printf(" %7d tok", token_counts[t]);
    printf("\n");
    for (int k = 0; k < n_types; k++)
        for (int s = 0; s < 3; s++) {
            if (k > 0 && types[k] == types[k - 1]) continue; /* no other layout here */
            printf("%-6s %4dx%-7lld %12s", lg_dtype_name(types[k]), shapes[s].rows,
                   (long long)shapes[s].cols, shapes[s].what);
            for (int t = 0; t < 4; t++) {
                if (only_tokens && token_counts[t] != only_tokens) {
                    printf(" %11s", "-");
                    continue;
                }
                printf(" %11.1f",
                       gmacs(isa, types[k], shapes[s].rows, shapes[s].cols, token_counts[t], reps));
                fflush(stdout);
            }
            printf("\n");
        }
    return 0;
}
