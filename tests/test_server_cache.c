/* The server's prefix cache under its page budget, driven through the
 * scheduler (src/server/scheduler.h) with models/laguna-tiny, whose sliding
 * layers (window 128) limit where a cached sequence can be resumed: entries
 * are evicted least recently used first once the pages only they hold pass
 * the budget; a request that needs pages the cache holds gets them (evicting
 * under page pressure, also an entry a running request was forked from);
 * and every reply is the one a server without a cache gives. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "laguna.h"
#include "server/scheduler.h"

#define MODEL "models/laguna-tiny"

static laguna_model *g_model;
static laguna_tokenizer *g_tok;

typedef struct {
    char *text;
    int n_cached, n_completion;
    char error[256];
} result;

/* A greedy completion of `prompt` (token ids) for exactly n_gen tokens. */
static lg_job *submit(lg_sched *s, const int32_t *prompt, int n, int n_gen) {
    lg_job *j = lg_job_new();
    j->prompt = malloc((size_t)n * sizeof *j->prompt);
    memcpy(j->prompt, prompt, (size_t)n * sizeof *prompt);
    j->n_prompt = n;
    j->sampling.temperature = 0;
    j->max_tokens = n_gen;
    j->ignore_eos = true;
    CHECK(lg_sched_submit(s, j) == 0);
    return j;
}

static result wait_job(lg_job *j) {
    result r = {0};
    size_t cap = 1, len = 0;
    r.text = calloc(1, 1);
    pthread_mutex_lock(&j->mu);
    for (;;) {
        for (size_t i = 0; i < j->events.n; i++) {
            const lg_event *e = &j->events.items[i];
            r.text = realloc(r.text, cap += e->len);
            memcpy(r.text + len, e->text, e->len);
            r.text[len += e->len] = 0;
        }
        lg_events_clear(&j->events);
        if (j->done) break;
        pthread_cond_wait(&j->cv, &j->mu);
    }
    r.n_cached = j->n_cached;
    r.n_completion = j->n_completion;
    snprintf(r.error, sizeof r.error, "%s", j->error);
    pthread_mutex_unlock(&j->mu);
    lg_job_release(j);
    return r;
}

static result run(lg_sched *s, const int32_t *prompt, int n, int n_gen) {
    return wait_job(submit(s, prompt, n, n_gen));
}

static lg_sched *new_sched(lg_sched_options o) {
    lg_sched *s = NULL;
    laguna_error err = {0};
    o.n_ctx = 512;
    CHECKF(lg_sched_create(g_model, g_tok, &o, &s, &err) == 0, "%s", err.message);
    return s;
}

static lg_sched_stats stats(lg_sched *s) {
    lg_sched_stats st;
    lg_sched_get_stats(s, &st);
    return st;
}

/* n pseudo-random ids from a seed: different seeds differ from the first token. */
static void tokens(int32_t *out, int n, unsigned seed) {
    out[0] = (int32_t)(1000 + seed);
    for (int i = 1; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        out[i] = (int32_t)(100 + (seed >> 12) % 7000);
    }
}

/* The reply a server without a prefix cache gives. */
static result reference(const int32_t *prompt, int n, int n_gen) {
    lg_sched *s = new_sched((lg_sched_options){.n_parallel = 1, .cache_bytes = -1});
    result r = s ? run(s, prompt, n, n_gen) : (result){0};
    CHECK(s && r.n_cached == 0 && stats(s).kv_pages_used == 0);
    lg_sched_free(s);
    return r;
}

static void check_same(const result *got, const result *want, const char *what) {
    CHECKF(!got->error[0], "%s: %s", what, got->error);
    CHECKF(got->text && want->text && !strcmp(got->text, want->text), "%s: '%.60s' vs '%.60s'",
           what, got->text ? got->text : "", want->text ? want->text : "");
}

static void free_result(result *r) {
    free(r->text);
}

/* Three conversations in a budget of two and a half: the least recently used
 * goes, the others still hit, the budget holds after every request. */
static void test_budget_evicts_lru(void) {
    enum { N = 100, GEN = 12 };
    int32_t a[N + 20], b[N], c[N + 20];
    tokens(a, N + 20, 1);
    tokens(b, N, 2);
    tokens(c, N + 20, 3);
    /* how many pages one finished conversation keeps */
    lg_sched *probe = new_sched((lg_sched_options){.n_parallel = 1});
    if (!probe) return;
    result r = run(probe, a, N, GEN);
    int one = stats(probe).cache_pages;
    free_result(&r);
    lg_sched_free(probe);
    CHECKF(one > 0, "%d pages", one);
    size_t page_bytes = 0;
    laguna_error err = {0};
    CHECK(laguna_context_kv_bytes_for(g_model, &(laguna_context_options){.n_ctx = 512}, 1, NULL,
                                      &page_bytes, &err) == 0);
    lg_sched *s = new_sched(
        (lg_sched_options){.n_parallel = 1, .cache_bytes = (int64_t)(one * 5 / 2) * page_bytes});
    if (!s) return;
    CHECK(stats(s).cache_pages_budget == one * 5 / 2);
    const int32_t *convs[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        r = run(s, convs[k], N, GEN);
        CHECK(r.n_cached == 0 && !r.error[0]);
        free_result(&r);
        lg_sched_stats st = stats(s);
        CHECKF(st.cache_pages <= st.cache_pages_budget && st.cached_seqs == (k < 2 ? k + 1 : 2),
               "after %d: %d pages of %d, %d sequences", k, st.cache_pages, st.cache_pages_budget,
               st.cached_seqs);
    }
    CHECK(stats(s).cache_evictions == 1);
    /* a (least recently used) is gone; c is still there */
    result want_a = reference(a, N + 20, GEN), want_c = reference(c, N + 20, GEN);
    r = run(s, a, N + 20, GEN);
    CHECKF(r.n_cached == 0, "a: %d cached", r.n_cached);
    check_same(&r, &want_a, "a after eviction");
    free_result(&r);
    r = run(s, c, N + 20, GEN);
    CHECKF(r.n_cached >= N && r.n_cached < N + 20, "c: %d cached", r.n_cached);
    check_same(&r, &want_c, "c from the cache");
    free_result(&r);
    lg_sched_stats st = stats(s);
    CHECK(st.cache_pages <= st.cache_pages_budget && st.running == 0 && st.queued == 0);
    lg_sched_free(s);
    free_result(&want_a);
    free_result(&want_c);
}

/* One slot, a pool with room for one conversation and a little: the next
 * request takes its pages from the cache, also from the entry it was forked
 * from while it runs (its sliding layers drop pages the entry still holds).
 * The prompts pass the window, so resuming depends on the rollback rule:
 * cut back within the rollback allowance a fork resumes, beyond it the prompt
 * is computed in full; either way the text is the uncached one. */
static void test_eviction_under_page_pressure(void) {
    enum { N = 300, GEN = 20, MORE = 150, HELD = N + GEN - 1 }; /* the last token is never fed */
    int32_t x[HELD + MORE], y[N], z[N];
    tokens(x, HELD + MORE, 7);
    tokens(y, N, 8);
    memcpy(z, x, 200 * sizeof *z); /* x's first 200 tokens, then its own */
    tokens(z + 200, N - 200, 9);
    result want_x = reference(x, N, GEN), want_y = reference(y, N, GEN),
           want_z = reference(z, N, GEN);
    /* x' continues x: x's prompt, its reply, then more */
    lg_sched *probe = new_sched((lg_sched_options){.n_parallel = 1});
    if (!probe) return;
    lg_job *j = submit(probe, x, N, GEN);
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        pthread_cond_wait(&j->cv, &j->mu);
    memcpy(x + N, j->fed + N, (GEN - 1) * sizeof *x); /* the tokens it generated and fed */
    pthread_mutex_unlock(&j->mu);
    result r = wait_job(j);
    free_result(&r);
    lg_sched_free(probe);
    result want_x2 = reference(x, HELD + MORE, GEN);

    for (int rollback = 16; rollback <= 160; rollback += 144) {
        /* the pages x, then x' (which replaces x: x is its prefix), keep */
        lg_sched *s = new_sched((lg_sched_options){.n_parallel = 1, .n_rollback = rollback});
        if (!s) break;
        r = run(s, x, N, GEN);
        free_result(&r);
        int px = stats(s).cache_pages;
        r = run(s, x, HELD + MORE, GEN);
        free_result(&r);
        int px2 = stats(s).cache_pages;
        lg_sched_free(s);
        CHECK(px > 0 && px2 > px);
        /* room for x' and its steps, not for x' and x besides */
        s = new_sched((lg_sched_options){.n_parallel = 1,
                                         .n_rollback = rollback,
                                         .cache_bytes = 1ll << 40,
                                         .kv_pages = px2 + 64});
        if (!s) break;
        CHECK(stats(s).cache_pages_budget > stats(s).kv_pages_total); /* pressure, not budget */
        r = run(s, x, N, GEN);
        check_same(&r, &want_x, "x");
        free_result(&r);
        r = run(s, x, HELD + MORE, GEN); /* forks x, which goes while it runs */
        CHECKF(r.n_cached == HELD, "x': %d cached", r.n_cached);
        check_same(&r, &want_x2, "x' forked from x");
        free_result(&r);
        CHECKF(stats(s).cache_evictions >= 1, "rollback %d: %llu evictions", rollback,
               (unsigned long long)stats(s).cache_evictions);
        r = run(s, y, N, GEN); /* needs the pages x' keeps */
        CHECK(r.n_cached == 0);
        check_same(&r, &want_y, "y");
        free_result(&r);
        r = run(s, x, N, GEN); /* refill the cache with x, then z shares its first 200 */
        free_result(&r);
        r = run(s, z, N, GEN);
        /* x holds HELD positions; going back to 200 keeps the window behind
         * 200 only with the larger rollback allowance */
        if (rollback < HELD - 200)
            CHECKF(r.n_cached == 0, "z, rollback %d: %d cached", rollback, r.n_cached);
        else
            CHECKF(r.n_cached == 200, "z, rollback %d: %d cached", rollback, r.n_cached);
        check_same(&r, &want_z, "z");
        free_result(&r);
        lg_sched_stats st = stats(s);
        CHECK(st.failed == 0 && st.running == 0 && st.kv_pages_used == st.cache_pages);
        lg_sched_free(s);
    }
    free_result(&want_x);
    free_result(&want_y);
    free_result(&want_z);
    free_result(&want_x2);
}

int main(void) {
    laguna_error err = {0};
    laguna_model_options mo = {.n_threads = 2};
    if (laguna_tokenizer_load(MODEL, &g_tok, &err) ||
        laguna_model_open(MODEL, &mo, &g_model, &err)) {
        printf("FAIL setup: %s\n", err.message);
        return 1;
    }
    RUN(test_budget_evicts_lru);
    RUN(test_eviction_under_page_pressure);
    laguna_model_free(g_model);
    laguna_tokenizer_free(g_tok);
    return test_summary();
}
