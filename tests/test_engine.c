/* End-to-end engine tests against the transformers reference fixtures:
 * verify on every fixture model, incremental and chunked decoding equal to
 * one-batch prefill, context limits and bad feeds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors_write.h"
#include "testutil.h"
#include "io/tensor_source.h"
#include "laguna.h"
#include "model/model.h"
#include "verify/perplexity.h"
#include "verify/verify.h"

static const char *models[][2] = {
    {"tests/fixtures/tiny-xs", "tests/fixtures/tiny-xs/golden.safetensors"},
    {"tests/fixtures/tiny-xs/bf16", "tests/fixtures/tiny-xs/golden.safetensors"},
    {"tests/fixtures/tiny-m", "tests/fixtures/tiny-m/golden.safetensors"},
    {"tests/fixtures/tiny-m/bf16", "tests/fixtures/tiny-m/golden.safetensors"},
};

static laguna_model *open_model(const char *dir, int threads) {
    laguna_error err = {0};
    laguna_model *m = NULL;
    laguna_status st = laguna_model_open(dir, &(laguna_model_options){.n_threads = threads, .device = tu_test_device()}, &m, &err);
    CHECKF(st == LAGUNA_OK, "%s: %s", dir, err.message);
    return m;
}

static void verify_all(int threads) {
    lg_verify_tolerance tol = {.rel_tol = 1e-4, .require_experts = true, .require_greedy = true};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        laguna_model *m = open_model(models[i][0], threads);
        if (!m) continue;
        lg_verify_result *r = NULL;
        int n = 0;
        laguna_error err = {0};
        CHECKF(lg_verify_run(m, models[i][1], &r, &n, &err) == LAGUNA_OK, "%s", err.message);
        CHECKF(n == 3, "%s: %d prompts", models[i][0], n);
        for (int p = 0; p < n; p++) {
            CHECKF(lg_verify_passes(&r[p], &tol), "%s %s: logits %.2e hidden %.2e experts %d/%d greedy %d/%d",
                   models[i][0], r[p].prompt, r[p].logits_rel_err, r[p].hidden_rel_err, r[p].expert_mismatches,
                   r[p].expert_rows, r[p].greedy_match, r[p].greedy_len);
            if (r[p].has_hidden) CHECK(r[p].expert_rows > 0); /* p70 carries expert references */
        }
        free(r);
        laguna_model_free(m);
    }
}

static void test_verify_fixtures_one_thread(void) { verify_all(1); }
static void test_verify_fixtures_three_threads(void) { verify_all(3); }

/* Logits of every position of p70, fed in the given batch size. */
static float *logits_fed_in_batches(laguna_model *m, const int32_t *tok, int T, int batch, int step) {
    const laguna_model_info *info = laguna_model_get_info(m);
    laguna_session *s = NULL;
    laguna_error err = {0};
    CHECKF(laguna_session_create(m, &(laguna_session_options){.n_ctx = T, .n_batch = batch, .kv_type = LAGUNA_KV_F32}, &s, &err) == 0, "%s", err.message);
    float *out = malloc(sizeof(float) * (size_t)T * info->vocab_size);
    for (int i = 0; s && i < T; i += step) {
        int n = T - i < step ? T - i : step;
        CHECKF(laguna_session_feed(s, tok + i, (size_t)n, out + (size_t)i * info->vocab_size, &err) == 0, "%s", err.message);
    }
    laguna_session_free(s);
    return out;
}

static double rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += (a[i] - b[i]) * (double)(a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / den);
}

/* The sliding ring must give the same logits whatever the batch boundaries:
 * one token at a time, feeds of 5 in batches of 3 (crossing the window of 8),
 * and the whole prompt at once. */
static void test_incremental_equals_batched(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-xs", 2);
    lg_tensor_source *g = lg_tensor_source_new();
    laguna_error err = {0};
    CHECK(lg_tensor_source_add_safetensors_file(g, "tests/fixtures/tiny-xs/golden.safetensors", false, &err) == 0);
    const lg_tensor *t = lg_tensor_source_find(g, "tokens.p70");
    CHECK(t != NULL);
    if (m && t) {
        int T = (int)t->shape[0];
        size_t n = (size_t)T * laguna_model_get_info(m)->vocab_size;
        float *whole = logits_fed_in_batches(m, t->data, T, T, T);
        float *single = logits_fed_in_batches(m, t->data, T, 1, 1);
        float *mixed = logits_fed_in_batches(m, t->data, T, 3, 5);
        const lg_tensor *ref = lg_tensor_source_find(g, "logits.p70");
        CHECKF(rel(single, whole, n) < 1e-5, "token by token differs: %.3e", rel(single, whole, n));
        CHECKF(rel(mixed, whole, n) < 1e-5, "batches of 3 differ: %.3e", rel(mixed, whole, n));
        CHECKF(rel(single, ref->data, n) < 1e-4, "token by token vs reference: %.3e", rel(single, ref->data, n));
        free(whole), free(single), free(mixed);
    }
    lg_tensor_source_free(g);
    laguna_model_free(m);
}

/* Half-size KV caches: logits stay close to the reference and greedy
 * continuations of tiny-xs stay identical. Tolerance 1e-2 (f16/bf16 keys). */
static void test_half_kv_cache(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-xs", 2);
    lg_tensor_source *g = lg_tensor_source_new();
    CHECK(lg_tensor_source_add_safetensors_file(g, "tests/fixtures/tiny-xs/golden.safetensors", false, NULL) == 0);
    const lg_tensor *t = lg_tensor_source_find(g, "tokens.p70"), *ref = lg_tensor_source_find(g, "logits.p70");
    laguna_kv_type types[2] = {LAGUNA_KV_F16, LAGUNA_KV_BF16};
    for (int k = 0; m && t && ref && k < 2; k++) {
        int T = (int)t->shape[0], V = laguna_model_get_info(m)->vocab_size;
        laguna_session *s = NULL;
        laguna_error err = {0};
        CHECK(laguna_session_create(m, &(laguna_session_options){.n_ctx = T, .n_batch = 4, .kv_type = types[k]}, &s, &err) == 0);
        float *logits = malloc(sizeof(float) * (size_t)T * V);
        CHECK(laguna_session_feed(s, t->data, (size_t)T, logits, &err) == 0);
        double e = rel(logits, ref->data, (size_t)T * V);
        CHECKF(e < 1e-2 && e > 0, "kv type %d: rel %.3e", (int)types[k], e);
        free(logits);
        laguna_session_free(s);
    }
    lg_tensor_source_free(g);
    laguna_model_free(m);
}

/* Perplexity of p70 from our logits equals the one from the reference logits. */
static void test_perplexity_matches_reference_logits(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-xs", 2);
    lg_tensor_source *g = lg_tensor_source_new();
    CHECK(lg_tensor_source_add_safetensors_file(g, "tests/fixtures/tiny-xs/golden.safetensors", false, NULL) == 0);
    const lg_tensor *t = lg_tensor_source_find(g, "tokens.p70"), *ref = lg_tensor_source_find(g, "logits.p70");
    if (m && t && ref) {
        int T = (int)t->shape[0], V = (int)ref->shape[1];
        const int32_t *tok = t->data;
        double want = 0;
        for (int i = 0; i + 1 < T; i++) {
            const float *row = (const float *)ref->data + (size_t)i * V;
            double max = row[0], z = 0;
            for (int v = 1; v < V; v++) max = row[v] > max ? row[v] : max;
            for (int v = 0; v < V; v++) z += exp(row[v] - max);
            want += -(row[tok[i + 1]] - max - log(z));
        }
        lg_perplexity_result r;
        laguna_error err = {0};
        CHECKF(lg_perplexity(m, tok, (size_t)T, T, LAGUNA_KV_F32, true, &r, &err) == 0, "%s", err.message);
        CHECK(r.n_predicted == T - 1);
        CHECKF(fabs(r.nll_sum - want) < 1e-4 * fabs(want), "nll %.6f vs reference %.6f", r.nll_sum, want);
        /* every token chose top_k experts in each of the 4 sparse layers */
        int64_t total = 0;
        for (int i = 0; r.expert_load && i < 5 * 16; i++) total += r.expert_load[i];
        CHECK(total == (int64_t)T * 4 * 4);
        free(r.expert_load);
        /* windows of 16: 5 windows, each predicting all but its last token */
        CHECK(lg_perplexity(m, tok, (size_t)T, 16, LAGUNA_KV_F32, false, &r, &err) == 0);
        CHECK(r.n_predicted == T - 5);
        CHECK(lg_perplexity(m, tok, 1, 16, LAGUNA_KV_F32, false, &r, &err) == LAGUNA_ERR_ARGUMENT);
    }
    lg_tensor_source_free(g);
    laguna_model_free(m);
}

/* Rewrites tiny-xs with experts fused into 3-D tensors and the shared expert
 * and router bias under transformers' in-memory names; it must verify too. */
static void test_fused_expert_layout(void) {
    lg_tensor_source *src = NULL;
    laguna_error err = {0};
    CHECK(lg_tensor_source_open_safetensors_dir("tests/fixtures/tiny-xs", LG_LOAD_MMAP, &src, &err) == 0);
    if (!src) return;
    size_t n = lg_tensor_source_count(src), k = 0;
    lg_st_spec *specs = calloc(n, sizeof *specs);
    const void **data = calloc(n, sizeof *data);
    char (*names)[128] = calloc(n, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        const lg_tensor *t = lg_tensor_source_at(src, i);
        int layer, expert;
        char part[64];
        if (sscanf(t->name, "model.layers.%d.mlp.experts.%d.%63s", &layer, &expert, part) == 3) continue;
        snprintf(names[k], sizeof names[k], "%s", t->name);
        char *p = strstr(names[k], "shared_expert.");
        if (p) memmove(p + 14, p + 13, strlen(p + 13) + 1), p[13] = 's'; /* shared_expert. -> shared_experts. */
        if ((p = strstr(names[k], "experts.e_score"))) memcpy(p - 0, "gate.", 5), memmove(p + 5, p + 8, strlen(p + 8) + 1);
        specs[k] = (lg_st_spec){names[k], t->dtype, t->n_dims, {t->shape[0], t->shape[1]}};
        data[k++] = t->data;
    }
    /* fused tensors per sparse layer (1-4), 16 experts of 32 x 64 */
    float *gu[5] = {0}, *down[5] = {0};
    for (int l = 1; l <= 4; l++) {
        gu[l] = malloc(sizeof(float) * 16 * 64 * 64);
        down[l] = malloc(sizeof(float) * 16 * 64 * 32);
        for (int e = 0; e < 16; e++) {
            char name[128];
            const char *parts[3] = {"gate_proj", "up_proj", "down_proj"};
            for (int q = 0; q < 3; q++) {
                snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.%s.weight", l, e, parts[q]);
                const lg_tensor *t = lg_tensor_source_find(src, name);
                CHECK(t && t->dtype == LG_DTYPE_F32);
                if (!t) continue;
                float *dst = q == 2 ? down[l] + (size_t)e * 64 * 32 : gu[l] + ((size_t)e * 64 + q * 32) * 64;
                memcpy(dst, t->data, t->n_bytes);
            }
        }
        snprintf(names[k], sizeof names[k], "model.layers.%d.mlp.experts.gate_up_proj", l);
        specs[k] = (lg_st_spec){names[k], LG_DTYPE_F32, 3, {16, 64, 64}};
        data[k++] = gu[l];
        snprintf(names[k], sizeof names[k], "model.layers.%d.mlp.experts.down_proj", l);
        specs[k] = (lg_st_spec){names[k], LG_DTYPE_F32, 3, {16, 64, 32}};
        data[k++] = down[l];
    }
    char *d = tu_temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    lg_st_writer *w = NULL;
    CHECK(lg_st_writer_open(path, specs, k, &w, &err) == 0);
    for (size_t i = 0; w && i < k; i++) CHECK(lg_st_writer_write(w, data[i], lg_st_spec_bytes(&specs[i]), &err) == 0);
    if (w) CHECKF(lg_st_writer_finish(w, &err) == 0, "%s", err.message);
    CHECK(tu_copy_file("tests/fixtures/tiny-xs/config.json", d, "config.json") == 0);
    laguna_model *m = open_model(d, 2);
    if (m) {
        lg_verify_result *r = NULL;
        int nr = 0;
        lg_verify_tolerance tol = {.rel_tol = 1e-4, .require_experts = true, .require_greedy = true};
        CHECKF(lg_verify_run(m, "tests/fixtures/tiny-xs/golden.safetensors", &r, &nr, &err) == 0, "%s", err.message);
        for (int i = 0; i < nr; i++) CHECKF(lg_verify_passes(&r[i], &tol), "%s: %.3e", r[i].prompt, r[i].logits_rel_err);
        free(r);
        laguna_model_free(m);
    }
    for (int l = 1; l <= 4; l++) free(gu[l]), free(down[l]);
    free(specs), free(data), free(names);
    tu_remove_dir(d);
    lg_tensor_source_free(src);
}

typedef struct {
    float final[64];
} final_capture;

static void capture_final(void *user, int index, const float *rows, int n, int h) {
    if (index == 5 && h == 64) memcpy(((final_capture *)user)->final, rows + (size_t)(n - 1) * h, sizeof(float) * 64);
}

/* tie_word_embeddings: logits are the embeddings times the final hidden
 * state, even though the file also holds an lm_head (as transformers ties). */
static void test_tied_embeddings(void) {
    char *d = tu_temp_dir();
    size_t n;
    char *cfg = tu_read_file("tests/fixtures/tiny-m/config.json", &n);
    char *at = cfg ? strstr(cfg, "\"tie_word_embeddings\": false") : NULL;
    CHECK(at != NULL);
    if (at) memcpy(at, "\"tie_word_embeddings\": true ", 28);
    CHECK(tu_write_file(d, "config.json", cfg, n) == 0);
    CHECK(tu_copy_file("tests/fixtures/tiny-m/model.safetensors", d, "model.safetensors") == 0);
    laguna_model *m = open_model(d, 1);
    if (m) {
        laguna_session *s = NULL;
        final_capture cap;
        CHECK(laguna_session_create(m, NULL, &s, NULL) == 0);
        laguna_session_set_observer(s, &(laguna_observer){capture_final, NULL, &cap});
        int32_t toks[3] = {7, 8, 9};
        CHECK(laguna_session_feed(s, toks, 3, NULL, NULL) == 0);
        const float *logits = laguna_session_logits(s);
        /* the checkpoint's bytes (the model's own pointer may be device memory) */
        const lg_tensor *t = lg_tensor_source_find(m->tensors, "model.embed_tokens.weight");
        CHECK(t && t->dtype == LG_DTYPE_F32);
        const float *embed = t ? (const float *)t->data : NULL;
        double worst = 0;
        for (int v = 0; embed && v < 1024; v++) {
            double dot = 0;
            for (int i = 0; i < 64; i++) dot += (double)embed[(size_t)v * 64 + i] * cap.final[i];
            worst = fmax(worst, fabs(dot - logits[v]));
        }
        CHECKF(worst < 1e-4, "tied logits differ by %.3e", worst);
        laguna_session_free(s);
        laguna_model_free(m);
    }
    free(cfg);
    tu_remove_dir(d);
}

/* The load progress callback reports a nondecreasing fraction that ends at 1. */
typedef struct {
    int calls, backwards;
    double last;
} progress_log;

static void log_progress(void *user, double f) {
    progress_log *p = user;
    p->backwards += f < p->last || f < 0 || f > 1;
    p->last = f;
    p->calls++;
}

static void test_load_progress(void) {
    progress_log p = {0};
    laguna_model *m = NULL;
    laguna_error err = {0};
    laguna_model_options o = {.n_threads = 1, .device = tu_test_device(), .progress = log_progress, .progress_user = &p};
    CHECKF(laguna_model_open("tests/fixtures/tiny-xs", &o, &m, &err) == 0, "%s", err.message);
    CHECKF(p.calls > laguna_model_get_info(m)->n_layers && p.backwards == 0 && p.last == 1.0, "%d calls, %d backwards, last %f",
           p.calls, p.backwards, p.last);
    laguna_model_free(m);
}

/* Taking positions back and feeding another continuation gives the logits a
 * fresh session gets for the new sequence; beyond n_rollback it is refused. */
static void test_truncate_and_refeed(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-xs", 2);
    if (!m) return;
    int32_t a[20], b[20];
    for (int i = 0; i < 20; i++) a[i] = b[i] = 100 + 7 * i;
    b[17] = 5, b[18] = 6, b[19] = 7; /* b shares a's first 17 tokens */
    laguna_session *s = NULL, *fresh = NULL;
    laguna_error err = {0};
    CHECK(laguna_session_create(m, &(laguna_session_options){.n_ctx = 64, .n_rollback = 4, .kv_type = LAGUNA_KV_F32}, &s, &err) == 0);
    CHECK(laguna_session_create(m, &(laguna_session_options){.n_ctx = 64, .kv_type = LAGUNA_KV_F32}, &fresh, &err) == 0);
    CHECK(laguna_session_feed(s, a, 20, NULL, &err) == 0);
    CHECK(laguna_session_truncate(s, 17, &err) == 0);
    CHECK(laguna_session_logits(s) == NULL);
    CHECK(laguna_session_feed(s, b + 17, 3, NULL, &err) == 0);
    CHECK(laguna_session_feed(fresh, b, 20, NULL, &err) == 0);
    const float *x = laguna_session_logits(s), *y = laguna_session_logits(fresh);
    CHECKF(x && y && rel(x, y, 1024) < 1e-6, "after truncate: %.3e", x && y ? rel(x, y, 1024) : -1.0);
    CHECK(laguna_session_truncate(s, 10, &err) == LAGUNA_ERR_ARGUMENT); /* 10 back > window slack 4 */
    CHECKF(strstr(err.message, "n_rollback") != NULL, "%s", err.message);
    CHECK(laguna_session_position(s) == 20);
    CHECK(laguna_session_truncate(fresh, 19, &err) == LAGUNA_ERR_ARGUMENT); /* no slack at all */
    CHECK(laguna_session_truncate(fresh, 21, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_session_truncate(fresh, 20, &err) == LAGUNA_OK);
    laguna_session_free(s);
    laguna_session_free(fresh);
    laguna_model_free(m);
}

static void test_context_limit_and_bad_feeds(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-m", 1);
    if (!m) return;
    laguna_session *s = NULL;
    laguna_error err = {0};
    CHECK(laguna_session_create(m, &(laguna_session_options){.n_ctx = 4}, &s, &err) == LAGUNA_OK);
    int32_t toks[5] = {5, 6, 7, 8, 9};
    CHECK(laguna_session_feed(s, toks, 3, NULL, &err) == LAGUNA_OK);
    CHECK(laguna_session_feed(s, toks, 2, NULL, &err) == LAGUNA_ERR_CONTEXT);
    CHECKF(strstr(err.message, "context") != NULL, "%s", err.message);
    CHECK(laguna_session_position(s) == 3); /* a refused feed changes nothing */
    CHECK(laguna_session_feed(s, toks, 1, NULL, &err) == LAGUNA_OK);
    laguna_session_reset(s);
    CHECK(laguna_session_position(s) == 0);
    CHECK(laguna_session_feed(s, toks, 0, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    int32_t bad[2] = {1, 1024};
    CHECK(laguna_session_feed(s, bad, 2, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    CHECKF(strstr(err.message, "1024") != NULL, "%s", err.message);
    int32_t neg = -1;
    CHECK(laguna_session_feed(s, &neg, 1, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    laguna_session_free(s);
    CHECK(laguna_session_create(m, &(laguna_session_options){.n_ctx = 100000}, &s, &err) == LAGUNA_ERR_ARGUMENT);
    /* tiny-m's head_dim 16 is not a whole number of Q8_0 blocks */
    CHECK(laguna_session_create(m, &(laguna_session_options){.kv_type = LAGUNA_KV_Q8_0}, &s, &err) == LAGUNA_ERR_UNSUPPORTED);
    CHECKF(strstr(err.message, "head_dim") != NULL, "%s", err.message);
    CHECK(laguna_session_create(m, &(laguna_session_options){.kv_type = (laguna_kv_type)9}, &s, &err) == LAGUNA_ERR_ARGUMENT);
    laguna_model_free(m);
}

/* A session holds the KV pages its tokens use, whatever its context length:
 * global layers one page per 16 positions, sliding layers only the pages
 * that still hold the last `window` positions. */
static size_t expected_kv_bytes(const lg_config *c, int n_pos) {
    size_t page = (size_t)16 * c->n_kv_heads * c->head_dim * sizeof(float) * 2;
    int floor = n_pos - c->sliding_window > 0 ? n_pos - c->sliding_window : 0;
    size_t pages = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int first = 0; first < n_pos; first += 16)
            pages += c->attention_kind[l] == LG_ATTN_GLOBAL || first + 16 > floor;
    return pages * page;
}

static void test_kv_cache_sizes(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-xs", 1);
    if (!m) return;
    laguna_session *a = NULL, *b = NULL;
    laguna_error err = {0};
    CHECK(laguna_session_create(m, &(laguna_session_options){.n_ctx = 128, .kv_type = LAGUNA_KV_F32}, &a, &err) == 0);
    CHECK(laguna_session_create(m, &(laguna_session_options){.n_ctx = 256, .kv_type = LAGUNA_KV_F32}, &b, &err) == 0);
    const lg_config *c = &m->cfg;
    CHECK(laguna_session_kv_bytes(a) == 0 && laguna_session_kv_bytes(b) == 0);
    int32_t tok[120];
    for (int i = 0; i < 120; i++) tok[i] = (i * 7 + 3) % laguna_model_get_info(m)->vocab_size;
    /* tiny-xs: 2 global layers, 3 sliding with window 8 */
    CHECK(laguna_session_feed(a, tok, 100, NULL, &err) == 0 && laguna_session_feed(b, tok, 100, NULL, &err) == 0);
    size_t page = (size_t)16 * c->n_kv_heads * c->head_dim * sizeof(float) * 2;
    CHECKF(laguna_session_kv_bytes(a) == 20 * page, "%zu bytes, %zu pages", laguna_session_kv_bytes(a), laguna_session_kv_bytes(a) / page);
    CHECK(laguna_session_kv_bytes(a) == expected_kv_bytes(c, 100));
    CHECK(laguna_session_kv_bytes(b) == laguna_session_kv_bytes(a)); /* not the context length */
    for (int i = 100; i < 120; i++) CHECK(laguna_session_feed(a, &tok[i], 1, NULL, &err) == 0);
    CHECKF(laguna_session_kv_bytes(a) == expected_kv_bytes(c, 120), "%zu pages", laguna_session_kv_bytes(a) / page);
    CHECK(laguna_session_truncate(a, 118, &err) == LAGUNA_ERR_ARGUMENT); /* no rollback allowance */
    CHECK(laguna_session_kv_bytes(a) == expected_kv_bytes(c, 120));
    laguna_session_reset(a);
    CHECK(laguna_session_kv_bytes(a) == 0);
    laguna_session_free(a);
    laguna_session_free(b);
    laguna_model_free(m);
}

int main(void) {
    RUN(test_verify_fixtures_one_thread);
    RUN(test_verify_fixtures_three_threads);
    RUN(test_incremental_equals_batched);
    RUN(test_half_kv_cache);
    RUN(test_perplexity_matches_reference_logits);
    RUN(test_fused_expert_layout);
    RUN(test_tied_embeddings);
    RUN(test_load_progress);
    RUN(test_truncate_and_refeed);
    RUN(test_context_limit_and_bad_feeds);
    RUN(test_kv_cache_sizes);
    return test_summary();
}
