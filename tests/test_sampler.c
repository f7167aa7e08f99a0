/* Sampling: greedy, seeds, and that each filter keeps exactly the tokens its
 * definition allows (checked by sampling many times with fixed seeds). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "laguna.h"
#include "op_inputs.h"
#include "runtime/sampler.h"

#define V 6
/* probabilities after softmax of these logits: about .64 .24 .09 .02 .01 .00 */
static const float logits[V] = {4.0f, 3.0f, 2.0f, 0.5f, 0.0f, -3.0f};

static void histogram(laguna_sampler_params p, int n, int counts[V]) {
    laguna_sampler *s = NULL;
    laguna_error err = {0};
    CHECKF(laguna_sampler_create(&p, V, &s, &err) == LAGUNA_OK, "%s", err.message);
    memset(counts, 0, sizeof(int) * V);
    for (int i = 0; s && i < n; i++) counts[laguna_sampler_sample(s, logits)]++;
    laguna_sampler_free(s);
}

static void test_greedy_and_ties(void) {
    laguna_sampler_params p = laguna_sampler_default_params();
    int c[V];
    histogram(p, 10, c);
    CHECK(c[0] == 10);
    laguna_sampler *s = NULL;
    CHECK(laguna_sampler_create(&p, 4, &s, NULL) == LAGUNA_OK);
    float tie[4] = {1, 5, 5, 2};
    CHECK(laguna_sampler_sample(s, tie) == 1); /* lowest id among equals */
    laguna_sampler_free(s);
}

/* The greedy sampler is the plain argmax, with its NaN and -inf rules (what
 * the argmax_rows ops and LAGUNA_ROW_ARGMAX are held to), and says so through
 * laguna_sampler_is_greedy; anything that changes the choice says it is not. */
static void test_greedy_is_plain_argmax(void) {
    enum { ROWS = 27, COLS = 301 };
    float *x = op_argmax_rows_input(ROWS, COLS);
    laguna_sampler_params p = laguna_sampler_default_params();
    laguna_sampler *s = NULL;
    CHECK(laguna_sampler_create(&p, COLS, &s, NULL) == LAGUNA_OK);
    CHECK(s && laguna_sampler_is_greedy(s));
    for (int r = 0; s && r < ROWS; r++) {
        const float *row = x + (size_t)r * COLS;
        int32_t got = laguna_sampler_sample(s, row), want = op_argmax_plain(row, COLS);
        CHECKF(got == want, "row %d: %d, want %d", r, got, want);
    }
    laguna_sampler_free(s);
    free(x);
    laguna_sampler_params not_greedy[3] = {p, p, p};
    not_greedy[0].temperature = 0.5f;
    not_greedy[1].repetition_penalty = 1.3f;
    not_greedy[2].top_k = 5, not_greedy[2].seed = 9; /* filters alone leave temperature 0 greedy */
    for (int k = 0; k < 3; k++) {
        s = NULL;
        CHECK(laguna_sampler_create(&not_greedy[k], COLS, &s, NULL) == LAGUNA_OK);
        CHECKF(s && laguna_sampler_is_greedy(s) == (k == 2), "case %d", k);
        laguna_sampler_free(s);
    }
    CHECK(!laguna_sampler_is_greedy(NULL));
}

static void test_temperature_follows_softmax(void) {
    laguna_sampler_params p = laguna_sampler_default_params();
    p.temperature = 1.0f;
    p.seed = 7;
    int c[V], n = 20000;
    histogram(p, n, c);
    double z = 0;
    for (int i = 0; i < V; i++) z += exp(logits[i]);
    for (int i = 0; i < V; i++) {
        double want = exp(logits[i]) / z, got = (double)c[i] / n;
        CHECKF(fabs(got - want) < 4 * sqrt(want * (1 - want) / n) + 1e-3, "token %d: %.4f vs %.4f", i, got, want);
    }
}

static void test_seed_reproducible(void) {
    laguna_sampler_params p = laguna_sampler_default_params();
    p.temperature = 1.5f;
    p.seed = 1234;
    int a[V], b[V];
    histogram(p, 500, a);
    histogram(p, 500, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    p.seed = 99;
    histogram(p, 500, b);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

static void test_filters_restrict_support(void) {
    laguna_sampler_params p = laguna_sampler_default_params();
    p.temperature = 1.0f;
    p.seed = 3;
    int c[V];
    p.top_k = 2;
    histogram(p, 3000, c);
    CHECK(c[0] > 0 && c[1] > 0 && c[2] == 0 && c[3] == 0);
    p.top_k = 0;
    p.top_p = 0.8f; /* .64 < .8 <= .64 + .24: two tokens */
    histogram(p, 3000, c);
    CHECK(c[0] > 0 && c[1] > 0 && c[2] == 0);
    p.top_p = 1.0f;
    p.min_p = 0.1f; /* keeps p >= .064: tokens 0, 1, 2 */
    histogram(p, 3000, c);
    CHECK(c[0] > 0 && c[1] > 0 && c[2] > 0 && c[3] == 0 && c[4] == 0);
}

static void test_repetition_penalty(void) {
    laguna_sampler_params p = laguna_sampler_default_params();
    p.repetition_penalty = 2.0f; /* 4 -> 2 once seen: token 1 (3.0) wins */
    laguna_sampler *s = NULL;
    CHECK(laguna_sampler_create(&p, V, &s, NULL) == LAGUNA_OK);
    CHECK(laguna_sampler_sample(s, logits) == 0);
    laguna_sampler_accept(s, 0);
    CHECK(laguna_sampler_sample(s, logits) == 1);
    laguna_sampler_free(s);
}

static void test_bad_parameters(void) {
    laguna_sampler *s = NULL;
    laguna_error err = {0};
    laguna_sampler_params p = laguna_sampler_default_params();
    p.temperature = -1;
    CHECK(laguna_sampler_create(&p, V, &s, &err) == LAGUNA_ERR_ARGUMENT && s == NULL);
    p = laguna_sampler_default_params();
    p.top_p = 0;
    CHECK(laguna_sampler_create(&p, V, &s, &err) == LAGUNA_ERR_ARGUMENT);
    p = laguna_sampler_default_params();
    p.min_p = 2;
    CHECK(laguna_sampler_create(&p, V, &s, &err) == LAGUNA_ERR_ARGUMENT);
    p = laguna_sampler_default_params();
    p.repetition_penalty = 0;
    CHECK(laguna_sampler_create(&p, V, &s, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(strstr(err.message, "repetition") != NULL);
}

/* ---- the fast path chooses as the reference (sort everything) does ------------------ */

static uint64_t lcg(uint64_t *x) {
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 11;
}

/* Logits of four shapes: peaked (a few clear favourites), flat (all near
 * equal, top-p needs most of the vocabulary), coarse (many exact ties) and
 * a plateau (10% of the ids tie at the top, the rest spread below: the fast
 * path's value buckets then hold one bucket too large to sort). */
static void random_logits(float *x, int n, int shape, uint64_t *rng) {
    for (int i = 0; i < n; i++) {
        double u = (double)lcg(rng) / 9007199254740992.0;
        if (shape == 0) x[i] = (float)(12 * u * u * u * u - 3);
        else if (shape == 1) x[i] = (float)(0.05 * u);
        else if (shape == 2) x[i] = (float)((int)(u * 8)) * 0.5f;
        else x[i] = u < 0.1 ? 3.0f : (float)(2 * u - 1);
    }
}

static void test_fast_path_matches_reference(void) {
    const int sizes[] = {1, 2, 7, 67, 1000, 8191, 100352};
    const struct {
        float temp;
        int top_k;
        float top_p, min_p, rep;
    } params[] = {
        {1, 0, 1, 0, 1},       {0.7f, 40, 1, 0, 1},  {0.8f, 0, 0.95f, 0, 1}, {1, 0, 1, 0.05f, 1},
        {0.6f, 20, 0.9f, 0.1f, 1.3f}, {1.5f, 0, 0.5f, 0, 1}, {1, 5000, 0.99f, 0, 1}, {0.9f, 1, 1, 0, 1},
        {2, 0, 0.999f, 0.01f, 1.1f},
    };
    uint64_t rng = 42;
    int draws = 0, mismatches = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int n = sizes[si];
        float *x = malloc(sizeof(float) * (size_t)n);
        for (size_t pi = 0; pi < sizeof params / sizeof params[0]; pi++) {
            laguna_sampler_params p = laguna_sampler_default_params();
            p.temperature = params[pi].temp;
            p.top_k = params[pi].top_k;
            p.top_p = params[pi].top_p;
            p.min_p = params[pi].min_p;
            p.repetition_penalty = params[pi].rep;
            p.seed = 1000 + pi;
            laguna_sampler *fast = NULL, *ref = NULL;
            if (laguna_sampler_create(&p, n, &fast, NULL) || laguna_sampler_create(&p, n, &ref, NULL)) {
                CHECK(0);
                break;
            }
            lg_sampler_use_reference(ref, true);
            int reps = n > 10000 ? 6 : 40;
            for (int r = 0; r < reps; r++) {
                random_logits(x, n, r % 4, &rng);
                int32_t a = laguna_sampler_sample(fast, x), b = laguna_sampler_sample(ref, x);
                draws++;
                if (a != b) {
                    mismatches++;
                    CHECKF(0, "vocab %d params %zu rep %d: fast %d, reference %d", n, pi, r, a, b);
                }
                laguna_sampler_accept(fast, a);
                laguna_sampler_accept(ref, b);
            }
            laguna_sampler_free(fast);
            laguna_sampler_free(ref);
        }
        free(x);
    }
    CHECKF(mismatches == 0, "%d of %d draws differ", mismatches, draws);
}

/* Sampling within a set of allowed ids (structured output) draws what the
 * reference draws from logits where every other id is -infinity. */
static void test_allowed_matches_masked_reference(void) {
    const int sizes[] = {7, 1000, 100352};
    const double density[] = {0.005, 0.3, 0.97};
    const struct {
        float temp;
        int top_k;
        float top_p, min_p, rep;
    } params[] = {{0, 0, 1, 0, 1}, {1, 0, 1, 0, 1}, {0.7f, 40, 1, 0, 1}, {0.8f, 0, 0.95f, 0, 1.2f}, {1, 0, 1, 0.05f, 1}};
    uint64_t rng = 7;
    int draws = 0, mismatches = 0, outside = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int n = sizes[si];
        float *x = malloc(sizeof(float) * (size_t)n), *masked = malloc(sizeof(float) * (size_t)n);
        uint64_t *allowed = calloc((size_t)(n + 63) / 64, sizeof *allowed);
        for (size_t pi = 0; pi < sizeof params / sizeof *params; pi++) {
            laguna_sampler_params p = laguna_sampler_default_params();
            p.temperature = params[pi].temp, p.top_k = params[pi].top_k, p.top_p = params[pi].top_p;
            p.min_p = params[pi].min_p, p.repetition_penalty = params[pi].rep, p.seed = 77 + pi;
            laguna_sampler *fast = NULL, *ref = NULL;
            if (laguna_sampler_create(&p, n, &fast, NULL) || laguna_sampler_create(&p, n, &ref, NULL)) {
                CHECK(0);
                break;
            }
            lg_sampler_use_reference(ref, true);
            for (int r = 0; r < 12; r++) {
                random_logits(x, n, r % 4, &rng);
                memset(allowed, 0, sizeof *allowed * (size_t)((n + 63) / 64));
                double d = density[r % 3];
                for (int i = 0; i < n; i++) {
                    bool on = (double)lcg(&rng) / 9007199254740992.0 < d || i == n / 2; /* at least one */
                    if (on) allowed[i >> 6] |= 1ull << (i & 63);
                    masked[i] = on ? x[i] : -INFINITY;
                }
                int32_t a = lg_sampler_sample_allowed(fast, x, allowed), b = laguna_sampler_sample(ref, masked);
                draws++;
                outside += a < 0 || !((allowed[a >> 6] >> (a & 63)) & 1);
                if (a != b) {
                    mismatches++;
                    CHECKF(0, "vocab %d params %zu rep %d: allowed %d, reference %d", n, pi, r, a, b);
                }
                laguna_sampler_accept(fast, a);
                laguna_sampler_accept(ref, b);
            }
            memset(allowed, 0, sizeof *allowed * (size_t)((n + 63) / 64));
            CHECK(lg_sampler_sample_allowed(fast, x, allowed) == -1); /* nothing allowed */
            laguna_sampler_free(fast);
            laguna_sampler_free(ref);
        }
        free(x), free(masked), free(allowed);
    }
    CHECK(outside == 0);
    CHECKF(mismatches == 0, "%d of %d draws differ", mismatches, draws);
}

int main(void) {
    RUN(test_greedy_and_ties);
    RUN(test_greedy_is_plain_argmax);
    RUN(test_temperature_follows_softmax);
    RUN(test_seed_reproducible);
    RUN(test_filters_restrict_support);
    RUN(test_repetition_penalty);
    RUN(test_bad_parameters);
    RUN(test_fast_path_matches_reference);
    RUN(test_allowed_matches_masked_reference);
    return test_summary();
}
