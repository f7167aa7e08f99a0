/* Many sequences in one context: batch invariance (each sequence's logits
 * bitwise equal to its solo run, whatever shares the batch and in whatever
 * order), forks sharing prefix pages, pages handed back, a full pool, bad
 * batches, and two contexts on one model from two threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_quantize.h"
#include "harness.h"
#include "laguna.h"
#include "op_inputs.h"
#include "testutil.h"

#define STEPS 64
#define N_SEQ 4

static laguna_model *open_model(const char *path, int threads) {
    laguna_error err = {0};
    laguna_model *m = NULL;
    laguna_status st = laguna_model_open(path, &(laguna_model_options){.n_threads = threads, .device = tu_test_device()}, &m, &err);
    if (st == LAGUNA_ERR_UNSUPPORTED && tu_test_device()) test_skip("%s", err.message); /* a type the device lacks */
    else CHECKF(st == 0, "%s: %s", path, err.message);
    return m;
}

static int32_t argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The schedule every run follows. Sequences 0-2 start from their own
 * prompts in call 1; sequence 3 is forked from sequence 0 after call 1 and
 * gets its own extra tokens in call 2; then every sequence decodes greedily. */
static const int prompt_len[N_SEQ] = {17, 5, 33, 6};

static int32_t prompt_token(int seq, int i, int vocab) { return (int32_t)((seq * 131 + i * 29 + 7) % vocab); }

typedef struct {
    float *logits; /* [STEPS + 1][vocab]: after the prompt, then after each decoded token */
} seq_trace;

static void decode_ok(laguna_context *x, const laguna_batch_row *rows, int n, float *logits) {
    laguna_error err = {0};
    CHECKF(laguna_context_decode(x, rows, n, logits, &err) == 0, "%s", err.message);
}

/* One sequence alone in its own context, fed in the schedule's chunks. */
static void solo_run(laguna_model *m, const laguna_context_options *o, int seq, seq_trace *t) {
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_context *x = NULL;
    laguna_error err = {0};
    CHECKF(laguna_context_create(m, o, &x, &err) == 0, "%s", err.message);
    if (!x) return;
    int id;
    CHECK(laguna_seq_add(x, &id, &err) == 0);
    laguna_batch_row rows[64];
    int n = 0, pos = 0;
    int first = seq == 3 ? 0 : seq; /* the fork starts with sequence 0's prompt */
    for (int i = 0; i < prompt_len[first]; i++) rows[n++] = (laguna_batch_row){prompt_token(first, i, V), pos++, id, 0};
    if (seq == 3) {
        decode_ok(x, rows, n, NULL);
        n = 0;
        for (int i = 0; i < prompt_len[3]; i++) rows[n++] = (laguna_batch_row){prompt_token(3, i, V), pos++, id, 0};
    }
    rows[n - 1].logits = 1;
    decode_ok(x, rows, n, t->logits);
    for (int s = 0; s < STEPS; s++) {
        laguna_batch_row r = {argmax(t->logits + (size_t)s * V, V), pos++, id, 1};
        decode_ok(x, &r, 1, t->logits + (size_t)(s + 1) * V);
    }
    laguna_context_free(x);
}

/* All sequences in one context, rows interleaved and reordered every step. */
static void batched_run(laguna_model *m, const laguna_context_options *o, seq_trace *t) {
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_context_options bo = *o;
    bo.n_seq_max = N_SEQ;
    laguna_context *x = NULL;
    laguna_error err = {0};
    CHECKF(laguna_context_create(m, &bo, &x, &err) == 0, "%s", err.message);
    if (!x) return;
    int id[N_SEQ], pos[N_SEQ] = {0};
    for (int s = 0; s < 3; s++) CHECK(laguna_seq_add(x, &id[s], &err) == 0);
    laguna_batch_row rows[128];
    float *out = malloc(sizeof(float) * (size_t)N_SEQ * V);
    /* call 1: the three prompts, round robin */
    int n = 0;
    for (int i = 0; i < 33; i++)
        for (int s = 0; s < 3; s++)
            if (i < prompt_len[s]) rows[n++] = (laguna_batch_row){prompt_token(s, i, V), pos[s]++, id[s], i == prompt_len[s] - 1};
    decode_ok(x, rows, n, out);
    int k = 0; /* logits come in batch order: sequence 1 ends first, then 0, then 2 */
    for (int r = 0; r < n; r++)
        if (rows[r].logits) memcpy(t[rows[r].seq].logits, out + (size_t)k++ * V, sizeof(float) * V);
    /* fork, then call 2: the fork's own tokens beside the others' first decode */
    CHECK(laguna_seq_fork(x, id[0], &id[3], &err) == 0);
    pos[3] = pos[0];
    n = 0;
    for (int i = 0; i < prompt_len[3]; i++) {
        rows[n++] = (laguna_batch_row){prompt_token(3, i, V), pos[3]++, id[3], i == prompt_len[3] - 1};
        if (i < 3) rows[n++] = (laguna_batch_row){argmax(t[i].logits, V), pos[i]++, id[i], 1};
    }
    decode_ok(x, rows, n, out);
    k = 0;
    for (int r = 0; r < n; r++)
        if (rows[r].logits) {
            int s = rows[r].seq == id[3] ? 3 : rows[r].seq;
            memcpy(t[s].logits + (size_t)(s == 3 ? 0 : 1) * V, out + (size_t)k++ * V, sizeof(float) * V);
        }
    /* then one row per sequence, in an order that changes every step */
    int done[N_SEQ] = {1, 1, 1, 0}; /* tokens decoded so far */
    while (done[3] < STEPS) {
        n = 0;
        for (int j = 0; j < N_SEQ; j++) {
            int s = (j + done[3]) % N_SEQ;
            if (done[s] >= STEPS) continue;
            rows[n++] = (laguna_batch_row){argmax(t[s].logits + (size_t)done[s] * V, V), pos[s]++, id[s], 1};
        }
        decode_ok(x, rows, n, out);
        for (int r = 0; r < n; r++) {
            int s = 0;
            while (id[s] != rows[r].seq) s++;
            done[s]++;
            memcpy(t[s].logits + (size_t)done[s] * V, out + (size_t)r * V, sizeof(float) * V);
        }
    }
    free(out);
    laguna_context_free(x);
}

static void check_invariance(const char *path, laguna_kv_type kv, int threads) {
    laguna_model *m = open_model(path, threads);
    if (!m) return;
    size_t V = (size_t)laguna_model_get_info(m)->vocab_size;
    laguna_context_options o = {.n_ctx = 160, .kv_type = kv};
    seq_trace solo[N_SEQ], batch[N_SEQ];
    for (int s = 0; s < N_SEQ; s++) {
        solo[s].logits = calloc((STEPS + 1) * V, sizeof(float));
        batch[s].logits = calloc((STEPS + 1) * V, sizeof(float));
        solo_run(m, &o, s, &solo[s]);
    }
    batched_run(m, &o, batch);
    for (int s = 0; s < N_SEQ; s++) {
        int first_diff = -1;
        for (int i = 0; i <= STEPS && first_diff < 0; i++)
            if (memcmp(solo[s].logits + i * V, batch[s].logits + i * V, V * sizeof(float))) first_diff = i;
        CHECKF(first_diff < 0, "%s kv %d: sequence %d differs from its solo run at step %d", path, (int)kv, s, first_diff);
        free(solo[s].logits);
        free(batch[s].logits);
    }
    laguna_model_free(m);
}

static void test_batch_invariance_float(void) {
    check_invariance("tests/fixtures/tiny-xs", LAGUNA_KV_F32, 3);
    check_invariance("tests/fixtures/tiny-xs/bf16", LAGUNA_KV_F16, 2);
    check_invariance("tests/fixtures/tiny-m", LAGUNA_KV_BF16, 1);
}

/* Quantised weights take the 8-bit activation path of the CPU matmul. */
static void test_batch_invariance_quantized(void) {
    char *d = tu_temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/q4_k_m.gguf", d);
    lg_quantize_options opt = {.n_threads = 2};
    laguna_error err = {0};
    CHECK(lg_ftype_parse("q4_k_m", &opt.ftype) == 0);
    lg_quantize_stats stats;
    CHECKF(lg_quantize_model("models/laguna-tiny", path, &opt, &stats, &err) == 0, "%s", err.message);
    check_invariance(path, LAGUNA_KV_Q8_0, 2);
    tu_remove_dir(d);
}

static void feed(laguna_context *x, int seq, int n, int vocab) {
    laguna_batch_row rows[256];
    int p0 = laguna_seq_length(x, seq);
    for (int i = 0; i < n; i++) rows[i] = (laguna_batch_row){prompt_token(seq, p0 + i, vocab), p0 + i, seq, 0};
    decode_ok(x, rows, n, NULL);
}

static int pages_used(const laguna_context *x) {
    int used;
    laguna_context_kv_pages(x, &used, NULL, NULL);
    return used;
}

/* A fork shares every page; the first write into a shared page copies just that page. */
static void test_fork_shares_pages(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-m", 1); /* all layers global */
    if (!m) return;
    int V = laguna_model_get_info(m)->vocab_size, L = laguna_model_get_info(m)->n_layers;
    laguna_context *x = NULL;
    laguna_error err = {0};
    CHECK(laguna_context_create(m, &(laguna_context_options){.n_seq_max = 3, .n_ctx = 128}, &x, &err) == 0);
    int a, b;
    CHECK(laguna_seq_add(x, &a, &err) == 0);
    feed(x, a, 40, V); /* pages 0, 1, 2 (partial) of every layer */
    CHECK(pages_used(x) == 3 * L);
    CHECK(laguna_seq_fork(x, a, &b, &err) == 0);
    CHECK(laguna_seq_length(x, b) == 40);
    CHECK(pages_used(x) == 3 * L);
    feed(x, b, 1, V); /* writes into the shared partial page: copied */
    CHECK(pages_used(x) == 4 * L);
    feed(x, a, 1, V); /* the parent's page is its own again */
    CHECK(pages_used(x) == 4 * L);
    laguna_seq_remove(x, a);
    CHECK(pages_used(x) == 3 * L);
    CHECK(laguna_seq_length(x, a) == -1);
    laguna_seq_remove(x, b);
    CHECK(pages_used(x) == 0);
    CHECK(laguna_seq_fork(x, a, &b, &err) == LAGUNA_ERR_ARGUMENT);
    laguna_context_free(x);
    laguna_model_free(m);
}

/* 1000 cycles of add / feed / fork / truncate / remove leave the pool as it
 * was; the pages only a sequence holds are what removing it hands back. */
static void test_pages_handed_back(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-xs", 1);
    if (!m) return;
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_context *x = NULL;
    laguna_error err = {0};
    CHECK(laguna_context_create(m, &(laguna_context_options){.n_seq_max = 3, .n_ctx = 96, .n_rollback = 96}, &x, &err) == 0);
    if (!x) return;
    int total;
    laguna_context_kv_pages(x, NULL, &total, NULL);
    unsigned rng = 12345;
    int high = 0;
    for (int cycle = 0; cycle < 1000 && !test_case_failed; cycle++) {
        int a, b;
        CHECK(laguna_seq_add(x, &a, &err) == 0);
        rng = rng * 1103515245u + 12345u;
        int n = 1 + (int)(rng >> 16) % 40;
        feed(x, a, n, V);
        CHECK(laguna_seq_fork(x, a, &b, &err) == 0);
        feed(x, b, 1 + (int)(rng >> 8) % 8, V);
        int before = pages_used(x);
        CHECK(laguna_seq_truncate(x, b, n / 2, &err) == 0);
        CHECK(pages_used(x) <= before);
        CHECK(laguna_seq_length(x, b) == n / 2);
        if (pages_used(x) > high) high = pages_used(x);
        int both[2] = {a, b}, first = cycle % 2 ? a : b, used = pages_used(x);
        CHECK(laguna_seqs_exclusive_pages(x, both, 2) == used);
        int own = laguna_seqs_exclusive_pages(x, &first, 1);
        CHECK(own >= 0 && own <= used);
        laguna_seq_remove(x, first);
        CHECKF(used - pages_used(x) == own, "cycle %d: %d pages only its own, %d handed back", cycle, own,
               used - pages_used(x));
        laguna_seq_remove(x, cycle % 2 ? b : a);
        CHECKF(pages_used(x) == 0, "cycle %d: %d pages still used", cycle, pages_used(x));
    }
    CHECK(high > 0 && high <= total);
    size_t bytes = 0, page_bytes = 0, pb;
    laguna_context_kv_pages(x, NULL, NULL, &pb);
    CHECK(laguna_context_kv_bytes_for(m, &(laguna_context_options){.n_ctx = 96, .n_rollback = 96}, 3, &bytes, &page_bytes,
                                      &err) == 0);
    CHECKF(page_bytes == pb && bytes == (size_t)total * pb, "%zu bytes for 3 sequences, pool %d x %zu", bytes, total, pb);
    CHECK(laguna_context_kv_bytes_for(m, &(laguna_context_options){.n_ctx = 1 << 30}, 1, &bytes, NULL, &err) ==
          LAGUNA_ERR_ARGUMENT);
    laguna_context_free(x);
    laguna_model_free(m);
}

/* A batch the pool cannot hold fails before anything changes. */
static void test_pool_full(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-m", 1);
    if (!m) return;
    int V = laguna_model_get_info(m)->vocab_size, L = laguna_model_get_info(m)->n_layers;
    laguna_context *x = NULL;
    laguna_error err = {0};
    size_t page_bytes;
    CHECK(laguna_context_create(m, &(laguna_context_options){.n_seq_max = 2, .n_ctx = 128}, &x, &err) == 0);
    laguna_context_kv_pages(x, NULL, NULL, &page_bytes);
    laguna_context_free(x);
    /* room for 2 pages per layer: 32 positions */
    CHECK(laguna_context_create(m, &(laguna_context_options){.n_seq_max = 2, .n_ctx = 128, .kv_bytes = 2 * L * page_bytes},
                                &x, &err) == 0);
    if (!x) return;
    int a, b;
    CHECK(laguna_seq_add(x, &a, &err) == 0 && laguna_seq_add(x, &b, &err) == 0);
    feed(x, a, 20, V);
    laguna_batch_row rows[20];
    for (int i = 0; i < 20; i++) rows[i] = (laguna_batch_row){1, i, b, 0};
    CHECK(laguna_context_decode(x, rows, 20, NULL, &err) == LAGUNA_ERR_CONTEXT);
    CHECKF(strstr(err.message, "KV cache is full") != NULL, "%s", err.message);
    CHECK(laguna_seq_length(x, b) == 0 && pages_used(x) == 2 * L);
    laguna_seq_remove(x, a);
    CHECK(laguna_context_decode(x, rows, 20, NULL, &err) == 0);
    laguna_context_free(x);
    laguna_model_free(m);
}

static void test_bad_batches(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-xs", 1);
    if (!m) return;
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_context *x = NULL;
    laguna_error err = {0};
    CHECK(laguna_context_create(m, &(laguna_context_options){.n_seq_max = 2, .n_ctx = 8}, &x, &err) == 0);
    if (!x) return;
    int a, b, c;
    CHECK(laguna_seq_add(x, &a, &err) == 0 && laguna_seq_add(x, &b, &err) == 0);
    CHECK(laguna_seq_add(x, &c, &err) == LAGUNA_ERR_CONTEXT);
    float logits[4096];
    laguna_batch_row r = {1, 1, a, 0}; /* position 1 before 0 */
    CHECK(laguna_context_decode(x, &r, 1, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    CHECKF(strstr(err.message, "next position is 0") != NULL, "%s", err.message);
    r = (laguna_batch_row){1, 0, 7, 0};
    CHECK(laguna_context_decode(x, &r, 1, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    r = (laguna_batch_row){V, 0, a, 0};
    CHECK(laguna_context_decode(x, &r, 1, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    r = (laguna_batch_row){1, 0, a, 1};
    CHECK(laguna_context_decode(x, &r, 1, NULL, &err) == LAGUNA_ERR_ARGUMENT); /* logits wanted, no buffer */
    CHECK(laguna_context_decode(x, &r, 0, logits, &err) == LAGUNA_ERR_ARGUMENT);
    laguna_batch_row two[2] = {{1, 0, a, 0}, {1, 0, a, 0}}; /* the same position twice */
    CHECK(laguna_context_decode(x, two, 2, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_seq_length(x, a) == 0 && pages_used(x) == 0);
    feed(x, a, 8, V);
    r = (laguna_batch_row){1, 8, a, 0};
    CHECK(laguna_context_decode(x, &r, 1, NULL, &err) == LAGUNA_ERR_CONTEXT);
    CHECK(laguna_seq_truncate(x, a, 9, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_seq_truncate(x, 5, 0, &err) == LAGUNA_ERR_ARGUMENT);
    laguna_seq_remove(x, 99); /* ignored */
    laguna_context_free(x);
    CHECK(laguna_context_create(m, &(laguna_context_options){.n_seq_max = -1}, &x, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_context_create(m, &(laguna_context_options){.kv_page_size = -4}, &x, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_context_create(m, &(laguna_context_options){.kv_type = (laguna_kv_type)7}, &x, &err) == LAGUNA_ERR_ARGUMENT);
    laguna_model_free(m);
}

/* ---- greedy tokens without logits (laguna_context_decode_argmax) ---------- */

/* The argmax path against the logits path on the same schedule: context a
 * gets every row's logits; context b, on the same rows, a mix of what rows
 * may want (nothing, the token, the logits, both) that changes from row to
 * row and step to step. b's tokens must be the plain argmax of a's logits of
 * the same row, its logits a's bitwise, and rows not asking get -1. A long
 * prompt of token-only rows crosses lm_head's 32-row passes; n_batch cuts
 * the calls into several steps. */
static const int32_t wants_cycle[4] = {0, LAGUNA_ROW_ARGMAX, LAGUNA_ROW_LOGITS,
                                       LAGUNA_ROW_LOGITS | LAGUNA_ROW_ARGMAX};

static void check_argmax_call(laguna_context *a, laguna_context *b, laguna_batch_row *rows, int n,
                              int V, float *la, float *lb, int32_t *tok, const char *what) {
    laguna_error err = {0};
    laguna_batch_row all[64] = {{0}}; /* n <= 64 */
    for (int r = 0; r < n; r++)
        all[r] = rows[r], all[r].logits = 1;
    CHECKF(laguna_context_decode(a, all, n, la, &err) == 0, "%s", err.message);
    for (int r = 0; r < n; r++)
        tok[r] = 12345;
    CHECKF(laguna_context_decode_argmax(b, rows, n, lb, tok, &err) == 0, "%s", err.message);
    int bad_tok = 0, bad_logits = 0, k = 0;
    for (int r = 0; r < n; r++) {
        const float *row = la + (size_t)r * V;
        int32_t want = rows[r].logits & LAGUNA_ROW_ARGMAX ? op_argmax_plain(row, V) : -1;
        bad_tok += tok[r] != want;
        if (rows[r].logits & LAGUNA_ROW_LOGITS)
            bad_logits += memcmp(lb + (size_t)k++ * V, row, sizeof(float) * V) != 0;
    }
    CHECKF(bad_tok == 0, "%s: %d of %d rows' tokens differ from the argmax of their logits", what,
           bad_tok, n);
    CHECKF(bad_logits == 0, "%s: %d rows' logits differ", what, bad_logits);
}

static void check_argmax_rows(laguna_model *m, const char *what) {
    enum { SEQS = 3, STEPS_ARGMAX = 12 };
    static const int plen[SEQS] = {40, 7, 13};
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_context_options o = {.n_seq_max = SEQS, .n_ctx = 96, .n_batch = 48};
    laguna_context *a = NULL, *b = NULL;
    laguna_error err = {0};
    CHECKF(laguna_context_create(m, &o, &a, &err) == 0 &&
               laguna_context_create(m, &o, &b, &err) == 0,
           "%s", err.message);
    float *la = malloc(sizeof(float) * 64 * V), *lb = malloc(sizeof(float) * 64 * V);
    laguna_batch_row rows[64];
    int32_t tok[64], id[SEQS], pos[SEQS] = {0}, next[SEQS];
    for (int s = 0; a && b && s < SEQS; s++)
        CHECK(laguna_seq_add(a, &id[s], &err) == 0 && laguna_seq_add(b, &id[s], &err) == 0);
    if (!a || !b) goto done;
    /* the long prompt alone, every row wanting its token only */
    int n = 0;
    for (int i = 0; i < plen[0]; i++)
        rows[n++] = (laguna_batch_row){prompt_token(0, i, V), pos[0]++, id[0], LAGUNA_ROW_ARGMAX};
    check_argmax_call(a, b, rows, n, V, la, lb, tok, what);
    next[0] = tok[n - 1];
    /* the other prompts interleaved, wants cycling */
    n = 0;
    for (int i = 0; i < 13; i++)
        for (int s = 1; s < SEQS; s++)
            if (i < plen[s])
                rows[n] =
                    (laguna_batch_row){prompt_token(s, i, V), pos[s]++, id[s], wants_cycle[n % 4]},
                n++;
    for (int s = 1; s < SEQS; s++) /* the last row of each prompt gives the first token */
        for (int r = n - 1; r >= 0; r--)
            if (rows[r].seq == id[s]) {
                rows[r].logits |= LAGUNA_ROW_ARGMAX;
                break;
            }
    check_argmax_call(a, b, rows, n, V, la, lb, tok, what);
    for (int s = 1; s < SEQS; s++)
        for (int r = n - 1; r >= 0; r--)
            if (rows[r].seq == id[s]) {
                next[s] = tok[r];
                break;
            }
    /* greedy decoding, one row per sequence, each step's mix different */
    for (int step = 0; step < STEPS_ARGMAX; step++) {
        for (int s = 0; s < SEQS; s++)
            rows[s] = (laguna_batch_row){next[s], pos[s]++, id[s],
                                         wants_cycle[(step + s) % 4] | LAGUNA_ROW_ARGMAX};
        if (step % 3 == 2) rows[1].logits = LAGUNA_ROW_LOGITS; /* a row that samples for itself */
        check_argmax_call(a, b, rows, SEQS, V, la, lb, tok, what);
        for (int s = 0; s < SEQS; s++)
            next[s] = rows[s].logits & LAGUNA_ROW_ARGMAX ? tok[s]
                                                         : op_argmax_plain(la + (size_t)s * V, V);
    }
    /* what the buffers and flags must be */
    laguna_batch_row r = {next[0], pos[0], id[0], LAGUNA_ROW_ARGMAX};
    CHECK(laguna_context_decode_argmax(b, &r, 1, lb, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    CHECKF(strstr(err.message, "no argmax buffer") != NULL, "%s", err.message);
    r.logits = LAGUNA_ROW_LOGITS;
    CHECK(laguna_context_decode_argmax(b, &r, 1, NULL, tok, &err) == LAGUNA_ERR_ARGUMENT);
    r.logits = 4;
    CHECK(laguna_context_decode_argmax(b, &r, 1, lb, tok, &err) == LAGUNA_ERR_ARGUMENT);
    CHECKF(strstr(err.message, "LAGUNA_ROW_ARGMAX") != NULL, "%s", err.message);
    r.logits = -1;
    CHECK(laguna_context_decode_argmax(b, &r, 1, lb, tok, &err) == LAGUNA_ERR_ARGUMENT);
    r.logits = 2; /* laguna_context_decode reads any nonzero value as logits, as it always did */
    CHECK(laguna_context_decode(b, &r, 1, lb, &err) == 0);
    CHECK(laguna_seq_length(b, id[0]) == pos[0] + 1);
done:
    free(la), free(lb);
    laguna_context_free(a);
    laguna_context_free(b);
}

static void test_argmax_rows_match_logits(void) {
    const char *paths[] = {"tests/fixtures/tiny-xs", "tests/fixtures/tiny-m"};
    for (int i = 0; i < 2; i++) {
        laguna_model *m = open_model(paths[i], 2);
        if (m) check_argmax_rows(m, paths[i]);
        laguna_model_free(m);
    }
}

static void check_queued_steps(laguna_model *m, const char *what);

/* On a model split over devices the tokens come from the gathered logits;
 * queued steps run at once there. */
static void test_argmax_rows_split_model(void) {
    laguna_model *m = NULL;
    laguna_error err = {0};
    CHECKF(laguna_model_open("tests/fixtures/tiny-xs",
                             &(laguna_model_options){.n_threads = 2, .devices = "cpu:2"}, &m,
                             &err) == 0,
           "%s", err.message);
    if (m) check_argmax_rows(m, "tiny-xs on cpu:2");
    if (m) check_queued_steps(m, "tiny-xs on cpu:2");
    laguna_model_free(m);
}

/* ---- queued greedy steps (laguna_context_decode_argmax_queued) ------------ */

/* Context b decodes the sequences greedily with queued steps whose tokens
 * name the step before's rows (in an order that changes every step), two
 * steps outstanding; context a the plain way. The tokens must be a's. Then
 * a step queued ahead is taken back (laguna_seq_truncate over a sliding
 * window whose older pages are gone) and both go on alike. */
static void check_queued_steps(laguna_model *m, const char *what) {
    enum { SEQS = 3, QSTEPS = 20 };
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_context_options o = {.n_seq_max = SEQS, .n_ctx = 96, .n_batch = 8, .kv_page_size = 4};
    laguna_context *a = NULL, *b = NULL;
    laguna_error err = {0};
    CHECKF(laguna_context_create(m, &o, &a, &err) == 0 && laguna_context_create(m, &o, &b, &err) == 0, "%s",
           err.message);
    int32_t id[SEQS], pos[SEQS], ta[SEQS], out[2][SEQS], row_of[2][SEQS]; /* row_of[step % 2][seq] */
    laguna_batch_row rows[SEQS];
    for (int s = 0; a && b && s < SEQS; s++) {
        CHECK(laguna_seq_add(a, &id[s], &err) == 0 && laguna_seq_add(b, &id[s], &err) == 0);
        laguna_batch_row p[8];
        pos[s] = 3 + 2 * s;
        for (int i = 0; i < pos[s]; i++)
            p[i] = (laguna_batch_row){prompt_token(s, i, V), i, id[s], i == pos[s] - 1 ? LAGUNA_ROW_ARGMAX : 0};
        int32_t t[8];
        CHECKF(laguna_context_decode_argmax(a, p, pos[s], NULL, t, &err) == 0, "%s", err.message);
        CHECKF(laguna_context_decode_argmax(b, p, pos[s], NULL, t, &err) == 0, "%s", err.message);
        ta[s] = out[1][s] = t[pos[s] - 1];
    }
    if (!a || !b) goto done;
    int bad = 0;
    for (int g = 0; g < QSTEPS; g++) {
        for (int r = 0; r < SEQS; r++) { /* row r holds sequence (r + g) % SEQS */
            int s = (r + g) % SEQS;
            int32_t tok = g ? LAGUNA_TOKEN_OF_ROW(row_of[(g + 1) % 2][s]) : out[1][s];
            rows[r] = (laguna_batch_row){tok, pos[s] + g, id[s], LAGUNA_ROW_ARGMAX};
            row_of[g % 2][s] = r;
        }
        CHECKF(laguna_context_decode_argmax_queued(b, rows, SEQS, out[g % 2], &err) == 0, "%s step %d: %s", what, g,
               err.message);
        if (g == 1) { /* a third outstanding step is refused */
            CHECK(laguna_context_decode_argmax_queued(b, rows, SEQS, out[0], &err) == LAGUNA_ERR_ARGUMENT);
            CHECKF(strstr(err.message, "outstanding") != NULL, "%s", err.message);
        }
        if (g) CHECKF(laguna_context_wait(b, &err) == 0, "%s", err.message); /* step g - 1's tokens */
        for (int s = 0; s < SEQS; s++)
            rows[s] = (laguna_batch_row){ta[s], pos[s] + g, id[s], LAGUNA_ROW_ARGMAX};
        int32_t t[SEQS];
        CHECKF(laguna_context_decode_argmax(a, rows, SEQS, NULL, t, &err) == 0, "%s", err.message);
        if (g) /* b's step g - 1 chose what a chose at g - 1, now fed at g */
            for (int s = 0; s < SEQS; s++) bad += out[(g + 1) % 2][row_of[(g + 1) % 2][s]] != ta[s];
        for (int s = 0; s < SEQS; s++) ta[s] = t[s];
    }
    CHECKF(laguna_context_wait(b, &err) == 0, "%s", err.message);
    for (int s = 0; s < SEQS; s++) bad += out[(QSTEPS + 1) % 2][row_of[(QSTEPS + 1) % 2][s]] != ta[s];
    CHECKF(bad == 0, "%s: %d queued tokens differ from the plain greedy ones", what, bad);
    CHECK(laguna_context_wait(b, &err) == 0); /* none outstanding: at once */

    /* one more queued step for sequence 0, not wanted: taken back past the window */
    int n0 = pos[0] + QSTEPS;
    rows[0] = (laguna_batch_row){LAGUNA_TOKEN_OF_ROW(row_of[(QSTEPS + 1) % 2][0]), n0, id[0], LAGUNA_ROW_ARGMAX};
    CHECKF(laguna_context_decode_argmax_queued(b, rows, 1, out[0], &err) == 0, "%s", err.message);
    CHECK(laguna_seq_length(b, id[0]) == n0 + 1);
    CHECKF(laguna_seq_truncate(b, id[0], n0, &err) == 0, "%s: %s", what, err.message);
    CHECKF(laguna_context_wait(b, &err) == 0, "%s", err.message);
    /* both go on from the same token: the same logits */
    laguna_batch_row r1 = {ta[0], n0, id[0], LAGUNA_ROW_LOGITS};
    float *la = malloc(sizeof(float) * V), *lb = malloc(sizeof(float) * V);
    CHECKF(laguna_context_decode_argmax(a, &r1, 1, la, NULL, &err) == 0, "%s", err.message);
    CHECKF(laguna_context_decode_argmax(b, &r1, 1, lb, NULL, &err) == 0, "%s", err.message);
    CHECKF(la && lb && !memcmp(la, lb, sizeof(float) * V), "%s: logits after the step taken back differ", what);
    free(la), free(lb);

    /* what a queued call must be given */
    laguna_batch_row q = {LAGUNA_TOKEN_OF_ROW(0), n0 + 1, id[0], LAGUNA_ROW_ARGMAX};
    CHECK(laguna_context_decode_argmax_queued(b, &q, 1, out[0], &err) == LAGUNA_ERR_ARGUMENT); /* after a plain call */
    CHECKF(strstr(err.message, "LAGUNA_TOKEN_OF_ROW") != NULL, "%s", err.message);
    q.token = ta[0];
    q.logits = LAGUNA_ROW_LOGITS | LAGUNA_ROW_ARGMAX;
    CHECK(laguna_context_decode_argmax_queued(b, &q, 1, out[0], &err) == LAGUNA_ERR_ARGUMENT);
    q.logits = LAGUNA_ROW_ARGMAX;
    CHECK(laguna_context_decode_argmax_queued(b, &q, 1, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    laguna_batch_row many[9];
    for (int i = 0; i < 9; i++) many[i] = (laguna_batch_row){ta[0], n0 + 1 + i, id[0], LAGUNA_ROW_ARGMAX};
    int32_t t9[9];
    CHECK(laguna_context_decode_argmax_queued(b, many, 9, t9, &err) == LAGUNA_ERR_ARGUMENT); /* > n_batch */
    CHECK(laguna_context_decode_argmax_queued(b, &q, 1, out[0], &err) == 0);
    q = (laguna_batch_row){LAGUNA_TOKEN_OF_ROW(1), n0 + 2, id[0], LAGUNA_ROW_ARGMAX}; /* the step before had 1 row */
    CHECK(laguna_context_decode_argmax_queued(b, &q, 1, out[1], &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_seq_length(b, id[0]) == n0 + 2); /* nothing of the refused call ran */
    CHECK(laguna_context_wait(b, &err) == 0);
    CHECK(out[0][0] >= 0 && out[0][0] < V);
done:
    laguna_context_free(a);
    laguna_context_free(b);
}

static void test_queued_steps(void) {
    const char *paths[] = {"tests/fixtures/tiny-xs", "tests/fixtures/tiny-m"};
    for (int i = 0; i < 2; i++) {
        laguna_model *m = open_model(paths[i], 2);
        if (m) check_queued_steps(m, paths[i]);
        laguna_model_free(m);
    }
}

/* The session's greedy loop with the device a step ahead
 * (laguna_session_next_greedy / laguna_session_feed_next_greedy) gives
 * laguna_session_feed_greedy's tokens; stopping takes the step queued ahead
 * back, so the session holds what was fed and goes on as the plain one. */
static void test_session_greedy_ahead(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-xs", 2);
    if (!m) return;
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_session_options so = {.n_ctx = 64};
    laguna_session *a = NULL, *b = NULL;
    laguna_error err = {0};
    CHECKF(laguna_session_create(m, &so, &a, &err) == 0 && laguna_session_create(m, &so, &b, &err) == 0, "%s",
           err.message);
    int32_t prompt[6], ga, gb;
    for (int i = 0; i < 6; i++) prompt[i] = prompt_token(1, i, V);
    if (!a || !b) goto done;
    CHECK(laguna_session_feed_greedy(a, prompt, 6, &ga, &err) == 0 && laguna_session_feed_greedy(b, prompt, 6, &gb, &err) == 0);
    int bad = 0;
    for (int g = 0; g < 30; g++) {
        CHECKF(laguna_session_next_greedy(b, 1, &gb, &err) == 0, "%s", err.message);
        bad += gb != ga;
        CHECK(laguna_session_position(b) == laguna_session_position(a));
        if (g == 29) break; /* stop with a step queued ahead */
        CHECKF(laguna_session_feed_next_greedy(b, gb, &err) == 0, "%s", err.message);
        CHECK(laguna_session_feed_greedy(a, &ga, 1, &ga, &err) == 0);
    }
    CHECKF(bad == 0, "%d tokens differ from laguna_session_feed_greedy's", bad);
    /* a feed of another token takes the step ahead back first (past the window of 8) */
    int32_t other = (ga + 1) % V, na, nb;
    CHECKF(laguna_session_feed_greedy(b, &other, 1, &nb, &err) == 0, "%s", err.message);
    CHECK(laguna_session_feed_greedy(a, &other, 1, &na, &err) == 0);
    CHECKF(na == nb, "after the step taken back: %d against %d", nb, na);
    int n_a, n_b;
    const int32_t *toks_a = laguna_session_tokens(a, &n_a), *toks_b = laguna_session_tokens(b, &n_b);
    CHECK(n_a == n_b && !memcmp(toks_a, toks_b, sizeof(int32_t) * (size_t)n_a));
    CHECK(laguna_session_feed_next_greedy(b, V, &err) == LAGUNA_ERR_ARGUMENT);
done:
    laguna_session_free(a);
    laguna_session_free(b);
    laguna_model_free(m);
}

/* Two contexts on one model, decoding from two threads at once. */
typedef struct {
    laguna_model *m;
    int seq;
    seq_trace t;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *j = arg;
    laguna_context_options o = {.n_ctx = 160};
    solo_run(j->m, &o, j->seq, &j->t);
    return NULL;
}

static void test_two_threads_two_contexts(void) {
    laguna_model *m = open_model("tests/fixtures/tiny-xs", 2);
    if (!m) return;
    size_t V = (size_t)laguna_model_get_info(m)->vocab_size;
    thread_job jobs[2] = {{m, 1, {0}}, {m, 2, {0}}};
    seq_trace alone[2];
    for (int i = 0; i < 2; i++) {
        jobs[i].t.logits = calloc((STEPS + 1) * V, sizeof(float));
        alone[i].logits = calloc((STEPS + 1) * V, sizeof(float));
        solo_run(m, &(laguna_context_options){.n_ctx = 160}, jobs[i].seq, &alone[i]);
    }
    for (int round = 0; round < 3; round++) {
        pthread_t th[2];
        for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thread_main, &jobs[i]);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 2; i++)
            CHECKF(!memcmp(jobs[i].t.logits, alone[i].logits, (STEPS + 1) * V * sizeof(float)), "round %d thread %d", round, i);
    }
    for (int i = 0; i < 2; i++) free(jobs[i].t.logits), free(alone[i].logits);
    laguna_model_free(m);
}

int main(void) {
    RUN(test_batch_invariance_float);
    RUN(test_batch_invariance_quantized);
    RUN(test_fork_shares_pages);
    RUN(test_pages_handed_back);
    RUN(test_pool_full);
    RUN(test_bad_batches);
    RUN(test_argmax_rows_match_logits);
    RUN(test_argmax_rows_split_model);
    RUN(test_queued_steps);
    RUN(test_session_greedy_ahead);
    RUN(test_two_threads_two_contexts);
    return test_summary();
}
