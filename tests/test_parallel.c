/* A model split over several devices (src/parallel/): the partition's
 * invariants and its errors, the device list, the NCCL id exchange, and the
 * CPU simulation (N ranks as N threads over shared memory) against the
 * single-device result on the fixtures and the trained tiny model.
 *
 * What must be bitwise and what cannot be: with one rank (cpu:1) the split
 * model runs every op of the single-device pass on the same numbers, so
 * its logits are bitwise equal. With N ranks, a row-parallel product (o_proj,
 * the MLPs' down projections) sums N partial dot products, and the experts'
 * combine sums each rank's experts apart, then the ranks' partial sums; one
 * device adds the same terms in another order, so the logits differ by
 * float32 rounding: held to a relative error of 1e-5, with greedy tokens
 * and the chosen experts identical. Between ranks, and between runs, the
 * simulation is bitwise the same (the all-reduce sums in rank order). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/quant_dot.h"
#include "gguf/gguf_quantize.h"
#include "harness.h"
#include "io/file_util.h"
#include "io/tensor_source.h"
#include "laguna.h"
#include "model/config.h"
#include "parallel/comm.h"
#include "parallel/devices.h"
#include "parallel/partition.h"
#include "runtime/context.h"
#include "testutil.h"

static bool parse_config(const char *dir, lg_config *cfg) {
    char path[512], *text = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    laguna_error err = {0};
    bool ok = lg_read_file(path, 1 << 20, &text, NULL, &err) == LAGUNA_OK &&
              lg_config_parse(text, path, cfg, &err) == LAGUNA_OK;
    CHECKF(ok, "%s: %s", dir, err.message);
    free(text);
    return ok;
}

/* Every query head, KV head, column, expert and vocabulary row owned as the
 * scheme says, by partitions made independently for each rank. */
static void check_partition(const lg_config *c, int N, const char *what) {
    lg_rank_part *p = calloc((size_t)N, sizeof *p);
    laguna_error err = {0};
    for (int r = 0; r < N; r++)
        CHECKF(lg_partition(c, N, r, &p[r], &err) == LAGUNA_OK, "%s over %d: %s", what, N,
               err.message);
    int L = c->n_layers, max_q = 0;
    for (int l = 0; l < L; l++)
        max_q = c->n_heads[l] > max_q ? c->n_heads[l] : max_q;
    int *owners = calloc((size_t)(max_q + c->vocab_size + c->n_experts + c->intermediate_size + 64),
                         sizeof *owners);
    for (int l = 0; l < L && p[N - 1].q_heads; l++) {
        int group = c->n_heads[l] / c->n_kv_heads;
        memset(owners, 0, sizeof *owners * (size_t)max_q);
        for (int r = 0; r < N; r++) {
            lg_range q = p[r].q_heads[l], kv = p[r].kv_heads;
            CHECKF(lg_range_len(q) > 0 && lg_range_len(kv) > 0,
                   "%s over %d: rank %d owns nothing in layer %d", what, N, r, l);
            CHECK(lg_range_len(q) == c->n_heads[l] / N); /* the same share on every rank */
            for (int h = q.begin; h < q.end; h++) {
                owners[h]++;
                /* a query head's KV head lives on the same rank */
                CHECKF(h / group >= kv.begin && h / group < kv.end,
                       "%s over %d: layer %d head %d reads KV head %d, "
                       "rank %d holds [%d, %d)",
                       what, N, l, h, h / group, r, kv.begin, kv.end);
            }
        }
        for (int h = 0; h < c->n_heads[l]; h++)
            CHECKF(owners[h] == 1, "%s over %d: layer %d head %d owned %d times", what, N, l, h,
                   owners[h]);
    }
    /* KV heads: each held by kv_replicas ranks (split when they divide) */
    memset(owners, 0, sizeof *owners * (size_t)c->n_kv_heads);
    for (int r = 0; r < N; r++)
        for (int k = p[r].kv_heads.begin; k < p[r].kv_heads.end; k++)
            owners[k]++;
    int replicas = c->n_kv_heads % N == 0 ? 1 : N / c->n_kv_heads;
    for (int k = 0; k < c->n_kv_heads; k++)
        CHECKF(owners[k] == replicas, "%s over %d: KV head %d held %d times", what, N, k,
               owners[k]);
    struct {
        size_t field;
        int n;
    } ranges[] = {{offsetof(lg_rank_part, dense_cols), c->intermediate_size},
                  {offsetof(lg_rank_part, shared_cols), c->shared_expert_intermediate_size},
                  {offsetof(lg_rank_part, experts), c->n_experts},
                  {offsetof(lg_rank_part, vocab), c->vocab_size}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        int covered = 0; /* contiguous, in rank order, exactly covering [0, n) */
        for (int r = 0; r < N; r++) {
            lg_range g = *(lg_range *)((char *)&p[r] + ranges[i].field);
            CHECKF(g.begin == covered && g.end > g.begin,
                   "%s over %d: range %zu of rank %d is [%d, %d)", what, N, i, r, g.begin, g.end);
            covered = g.end;
        }
        CHECKF(covered == ranges[i].n, "%s over %d: range %zu covers %d of %d", what, N, i, covered,
               ranges[i].n);
    }
    for (int r = 0; r < N; r++)
        lg_rank_part_free(&p[r]);
    free(owners);
    free(p);
}

static void test_partition_invariants(void) {
    const char *dirs[] = {"tests/fixtures/tiny-xs", "tests/fixtures/tiny-m", "models/laguna-tiny"};
    int counts[][3] = {{1, 2, 0}, {1, 2, 4}, {1, 2, 4}};
    for (int d = 0; d < 3; d++) {
        lg_config c;
        if (!parse_config(dirs[d], &c)) continue;
        for (int i = 0; i < 3 && counts[d][i]; i++)
            check_partition(&c, counts[d][i], dirs[d]);
        /* Laguna-XS.2's head layout on 8 KV heads (48 / 64 query heads per
         * layer), widths scaled to divide: split 2, 4, 8 ways and, with
         * the KV heads replicated, 16 ways */
        c.n_kv_heads = 8;
        for (int l = 0; l < c.n_layers; l++)
            c.n_heads[l] = l % 4 == 0 ? 48 : 64;
        c.intermediate_size = 8192, c.shared_expert_intermediate_size = 512, c.n_experts = 256,
        c.vocab_size = 100352;
        int xs[] = {2, 4, 8, 16};
        for (int i = 0; i < 4; i++)
            check_partition(&c, xs[i], "XS.2 heads");
        lg_config_free(&c);
    }
}

static void expect_split_error(const lg_config *c, int N, const char *words) {
    lg_rank_part p;
    laguna_error err = {0};
    laguna_status st = lg_partition(c, N, N - 1, &p, &err);
    CHECKF(st != LAGUNA_OK && strstr(err.message, words),
           "over %d: status %d, message '%s' (want '%s')", N, (int)st, err.message, words);
    if (!st) lg_rank_part_free(&p);
}

static void test_partition_errors(void) {
    lg_config c;
    if (!parse_config("tests/fixtures/tiny-xs", &c)) return;
    expect_split_error(&c, 3, "2 KV heads"); /* neither divides the other */
    expect_split_error(
        &c, 4, "layer 0 has 3 query heads per KV head"); /* 6 heads: groups of 3 on 2 ranks each */
    expect_split_error(&c, 0, "outside");
    expect_split_error(&c, LG_MAX_RANKS + 1, "outside");
    int inter = c.intermediate_size;
    c.intermediate_size = 161;
    expect_split_error(&c, 2, "intermediate_size");
    c.intermediate_size = inter, c.n_experts = 15;
    expect_split_error(&c, 2, "num_experts");
    c.n_experts = 16, c.shared_expert_intermediate_size = 47;
    expect_split_error(&c, 2, "shared_expert_intermediate_size");
    c.shared_expert_intermediate_size = 48, c.vocab_size = 1023;
    expect_split_error(&c, 2, "vocab_size");
    lg_config_free(&c);

    /* the same through the API: a clear error, no model */
    laguna_model *m = NULL;
    laguna_error err = {0};
    laguna_status st =
        laguna_model_open("tests/fixtures/tiny-xs",
                          &(laguna_model_options){.devices = "cpu:4", .n_threads = 1}, &m, &err);
    CHECKF(st == LAGUNA_ERR_UNSUPPORTED && !m && strstr(err.message, "4 devices"), "%d: %s",
           (int)st, err.message);
    st = laguna_model_open("tests/fixtures/tiny-xs",
                           &(laguna_model_options){.devices = "cpu:2", .device = "cuda"}, &m, &err);
    CHECKF(st == LAGUNA_ERR_ARGUMENT && !m && strstr(err.message, "not both"), "%d: %s", (int)st,
           err.message);
}

static void test_device_lists(void) {
    lg_device_list d;
    laguna_error err = {0};
    CHECK(lg_devices_parse("cpu:3", &d, &err) == LAGUNA_OK && d.kind == LG_DEVICES_CPU && d.n == 3);
    CHECK(lg_devices_parse("cuda:0,cuda:1", &d, &err) == LAGUNA_OK && d.kind == LG_DEVICES_CUDA &&
          d.n == 2 && d.ids[1] == 1);
    CHECK(lg_devices_parse("cuda:3,cuda:1,cuda:2", &d, &err) == LAGUNA_OK && d.n == 3 &&
          d.ids[0] == 3);
    const char *bad[] = {"",        "cpu",     "cpu:0",         "cpu:x",   "cpu:2,cpu:3",
                         "gpu:0",   "cuda:0,", "cuda:0,cuda:0", "cuda:-1", "cuda:0,cpu:1",
                         "cuda:1x", "cpu:65"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.message[0] = 0;
        CHECKF(lg_devices_parse(bad[i], &d, &err) == LAGUNA_ERR_ARGUMENT && err.message[0],
               "'%s' accepted", bad[i]);
    }
    /* a CUDA list in a build or on a machine without those GPUs: a clear error */
    laguna_model *m = NULL;
    laguna_status st = laguna_model_open(
        "tests/fixtures/tiny-m", &(laguna_model_options){.devices = "cuda:0,cuda:1"}, &m, &err);
    CHECKF(st != LAGUNA_OK && !m &&
               (strstr(err.message, "CUDA") || strstr(err.message, "GPU") ||
                strstr(err.message, "NCCL")),
           "%d: %s", (int)st, err.message);
}

static int fake_id(void *id, void *user) {
    memset(id, *(int *)user, 16);
    return 0;
}

static void test_nccl_id_exchange(void) {
    unsigned char id[16];
    int fill = 0xab;
    laguna_error err = {0};
    lg_nccl_layout one = {2, 0, 2}, leader = {4, 0, 2}, follower = {4, 2, 2};
    unsetenv("LAGUNA_NCCL_ID"), unsetenv("LAGUNA_NCCL_ID_FILE");
    CHECK(lg_nccl_id_exchange(&one, fake_id, &fill, id, sizeof id, &err) == LAGUNA_OK &&
          id[15] == 0xab);
    CHECK(lg_nccl_id_exchange(&follower, fake_id, &fill, id, sizeof id, &err) ==
          LAGUNA_ERR_ARGUMENT);
    CHECK(strstr(err.message, "LAGUNA_NCCL_ID") != NULL);
    setenv("LAGUNA_NCCL_ID", "00112233445566778899aabbccddeeff", 1);
    CHECK(lg_nccl_id_exchange(&follower, fake_id, &fill, id, sizeof id, &err) == LAGUNA_OK &&
          id[1] == 0x11 && id[15] == 0xff);
    setenv("LAGUNA_NCCL_ID", "0011", 1);
    CHECK(lg_nccl_id_exchange(&follower, fake_id, &fill, id, sizeof id, &err) ==
          LAGUNA_ERR_ARGUMENT);
    setenv("LAGUNA_NCCL_ID", "zz112233445566778899aabbccddeeff", 1);
    CHECK(lg_nccl_id_exchange(&follower, fake_id, &fill, id, sizeof id, &err) ==
          LAGUNA_ERR_ARGUMENT);
    unsetenv("LAGUNA_NCCL_ID");
    /* through a file: the leader writes, a follower reads */
    char *dir = tu_temp_dir(), path[512];
    snprintf(path, sizeof path, "%s/id", dir);
    setenv("LAGUNA_NCCL_ID_FILE", path, 1);
    setenv("LAGUNA_NCCL_ID_WAIT", "0", 1);
    CHECK(lg_nccl_id_exchange(&follower, fake_id, &fill, id, sizeof id, &err) ==
          LAGUNA_ERR_IO); /* not there yet */
    fill = 0x5c;
    CHECK(lg_nccl_id_exchange(&leader, fake_id, &fill, id, sizeof id, &err) == LAGUNA_OK);
    memset(id, 0, sizeof id);
    CHECK(lg_nccl_id_exchange(&follower, fake_id, &fill, id, sizeof id, &err) == LAGUNA_OK &&
          id[0] == 0x5c && id[15] == 0x5c);
    unsetenv("LAGUNA_NCCL_ID_FILE"), unsetenv("LAGUNA_NCCL_ID_WAIT");
    tu_remove_dir(dir);
    /* the layout from the environment */
    lg_nccl_layout l;
    setenv("LAGUNA_WORLD_SIZE", "8", 1), setenv("LAGUNA_FIRST_RANK", "4", 1);
    CHECK(lg_nccl_layout_from_env(4, &l, &err) == LAGUNA_OK && l.world_size == 8 &&
          l.first_rank == 4 && l.n_local == 4);
    setenv("LAGUNA_FIRST_RANK", "6", 1);
    CHECK(lg_nccl_layout_from_env(4, &l, &err) == LAGUNA_ERR_ARGUMENT);
    setenv("LAGUNA_WORLD_SIZE", "eight", 1);
    CHECK(lg_nccl_layout_from_env(4, &l, &err) == LAGUNA_ERR_ARGUMENT);
    unsetenv("LAGUNA_WORLD_SIZE"), unsetenv("LAGUNA_FIRST_RANK");
    CHECK(lg_nccl_layout_from_env(2, &l, &err) == LAGUNA_OK && l.world_size == 2 &&
          l.first_rank == 0);
}

/* ---- the simulation against one device ------------------------------------- */

typedef struct {
    int n_tokens, vocab;
    float *logits;      /* every position of the prompt */
    float *rank_logits; /* what ranks 1.. gathered (NULL on one device) */
    int32_t greedy[16];
    int32_t *experts; /* chosen experts of every sparse layer, in order of arrival */
    size_t n_experts;
} run_result;

static void on_experts(void *user, int layer, const int32_t *ids, int n, int k) {
    run_result *r = user;
    int32_t *p = realloc(r->experts, sizeof *p * (r->n_experts + (size_t)n * k));
    if (!p) return;
    r->experts = p;
    memcpy(p + r->n_experts, ids, sizeof *p * (size_t)n * k);
    r->n_experts += (size_t)n * k;
}

static void free_result(run_result *r) {
    free(r->logits), free(r->rank_logits), free(r->experts);
}

/* The prompt through a context in one batch, all logits, then 16 greedy tokens. */
static bool run_model(const char *dir, const char *devices, const int32_t *tok, int T,
                      run_result *out) {
    memset(out, 0, sizeof *out);
    laguna_model *m = NULL;
    laguna_error err = {0};
    if (laguna_model_open(dir, &(laguna_model_options){.n_threads = 2, .devices = devices}, &m,
                          &err)) {
        CHECKF(0, "%s on %s: %s", dir, devices ? devices : "one device", err.message);
        return false;
    }
    int V = out->vocab = laguna_model_get_info(m)->vocab_size;
    laguna_context *x = NULL;
    laguna_batch_row *rows = calloc((size_t)T, sizeof *rows);
    out->n_tokens = T;
    out->logits = malloc(sizeof(float) * (size_t)T * V);
    CHECK(laguna_context_create(m, &(laguna_context_options){.n_ctx = T + 32, .n_batch = T}, &x,
                                &err) == LAGUNA_OK);
    int seq = -1;
    CHECK(x && laguna_seq_add(x, &seq, &err) == LAGUNA_OK);
    laguna_context_set_observer(x, &(laguna_observer){NULL, on_experts, out});
    for (int i = 0; i < T; i++)
        rows[i] = (laguna_batch_row){tok[i], i, seq, 1};
    CHECKF(x && laguna_context_decode(x, rows, T, out->logits, &err) == LAGUNA_OK, "%s",
           err.message);
    if (x && x->ranks && x->rank_logits_floats) { /* what the other ranks gathered */
        size_t n = x->rank_logits_floats;
        out->rank_logits = malloc(sizeof(float) * n);
        memcpy(out->rank_logits, x->rank_logits, sizeof(float) * n);
    }
    laguna_context_set_observer(x, NULL);
    float *last = malloc(sizeof(float) * V);
    memcpy(last, out->logits + (size_t)(T - 1) * V, sizeof(float) * V);
    for (int g = 0; x && g < 16; g++) {
        int best = 0;
        for (int v = 1; v < V; v++)
            best = last[v] > last[best] ? v : best;
        out->greedy[g] = best;
        laguna_batch_row r = {best, T + g, seq, 1};
        CHECK(laguna_context_decode(x, &r, 1, last, &err) == LAGUNA_OK);
    }
    CHECK(!x || laguna_seq_length(x, seq) == T + 16);
    free(last);
    free(rows);
    laguna_context_free(x);
    laguna_model_free(m);
    return true;
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        num += (a[i] - (double)b[i]) * (a[i] - (double)b[i]), den += (double)b[i] * b[i];
    return sqrt(num / den);
}

static int32_t *prompt_of(const char *golden, int *T, lg_tensor_source **src) {
    *src = lg_tensor_source_new();
    laguna_error err = {0};
    CHECKF(lg_tensor_source_add_safetensors_file(*src, golden, false, &err) == LAGUNA_OK, "%s",
           err.message);
    const lg_tensor *t = lg_tensor_source_find(*src, "tokens.p70");
    if (!t) t = lg_tensor_source_find(*src, "tokens.p1");
    CHECKF(t != NULL, "%s: no prompt", golden);
    *T = t ? (int)t->shape[0] : 0;
    return t ? (int32_t *)t->data : NULL;
}

/* One model split N ways against itself on one device. */
static void compare_split(const char *dir, const char *golden, int N) {
    lg_tensor_source *src;
    int T;
    const int32_t *tok = prompt_of(golden, &T, &src);
    run_result one, split, again;
    char devices[16];
    snprintf(devices, sizeof devices, "cpu:%d", N);
    if (tok && run_model(dir, NULL, tok, T, &one)) {
        if (run_model(dir, devices, tok, T, &split)) {
            size_t n = (size_t)T * one.vocab;
            double e = rel_err(split.logits, one.logits, n);
            if (N == 1)
                CHECKF(memcmp(split.logits, one.logits, sizeof(float) * n) == 0,
                       "%s cpu:1: logits differ (rel %.3e)", dir, e);
            else
                CHECKF(e < 1e-5 && e > 0, "%s on %s: logits rel %.3e", dir, devices, e);
            printf("  %s on %s: logits rel %.3e\n", dir, devices,
                   e); /* > 0: the ranks really summed apart */
            CHECKF(memcmp(split.greedy, one.greedy, sizeof one.greedy) == 0,
                   "%s on %s: greedy tokens differ", dir, devices);
            CHECKF(split.n_experts == one.n_experts && one.n_experts > 0 &&
                       memcmp(split.experts, one.experts, sizeof(int32_t) * one.n_experts) == 0,
                   "%s on %s: chosen experts differ", dir, devices);
            for (int r = 1; r < N; r++) /* every rank gathered the same logits */
                CHECKF(memcmp(split.rank_logits + (size_t)(r - 1) * n, split.logits,
                              sizeof(float) * n) == 0,
                       "%s on %s: rank %d's logits differ from rank 0's", dir, devices, r);
            if (N > 1 && run_model(dir, devices, tok, T, &again)) { /* and every run the same */
                CHECKF(memcmp(again.logits, split.logits, sizeof(float) * n) == 0,
                       "%s on %s: two runs differ", dir, devices);
                free_result(&again);
            }
            free_result(&split);
        }
        /* against transformers' greedy continuation where the fixture has one */
        const lg_tensor *g = lg_tensor_source_find(src, "greedy40.p70");
        if (g)
            CHECKF(memcmp(g->data, one.greedy, sizeof one.greedy) == 0,
                   "%s: greedy differs from the reference", dir);
        free_result(&one);
    }
    lg_tensor_source_free(src);
}

static void test_one_rank_is_bitwise(void) {
    compare_split("tests/fixtures/tiny-xs", "tests/fixtures/tiny-xs/golden.safetensors", 1);
    compare_split("tests/fixtures/tiny-m/bf16", "tests/fixtures/tiny-m/golden.safetensors", 1);
}

static void test_tiny_xs_over_2(void) {
    compare_split("tests/fixtures/tiny-xs", "tests/fixtures/tiny-xs/golden.safetensors", 2);
    compare_split("tests/fixtures/tiny-xs/bf16", "tests/fixtures/tiny-xs/golden.safetensors", 2);
}

static void test_tiny_m_over_2_and_4(void) {
    compare_split("tests/fixtures/tiny-m", "tests/fixtures/tiny-m/golden.safetensors", 2);
    compare_split("tests/fixtures/tiny-m/bf16", "tests/fixtures/tiny-m/golden.safetensors", 4);
}

static void test_laguna_tiny_over_2_and_4(void) {
    compare_split("models/laguna-tiny", "models/laguna-tiny/golden.safetensors", 2);
    compare_split("models/laguna-tiny", "models/laguna-tiny/golden.safetensors", 4);
}

/* A split model's full model keeps the file's layout: the ranks' slices are
 * views by rows and columns, which the CPU's 16-row groups (Q4_K and Q6_K
 * where AVX-512 runs, quant.h) are not. The trained tiny model in Q4_K_M
 * (copied into memory, not mapped): opened for cpu:1 nothing is rearranged,
 * and its logits are bitwise those of one device, where the copy is
 * regrouped (the kernels give the same bits either way). (Its 384-wide MLP
 * cannot be cut in two on Q4_K's 256-element blocks, so no 2-rank case.) */
static void test_quantized_split_keeps_file_layout(void) {
    char *d = tu_temp_dir(), dst[512];
    snprintf(dst, sizeof dst, "%s/tiny-q4_k_m.gguf", d);
    lg_quantize_options opt = {.n_threads = 2};
    laguna_error err = {0};
    CHECK(lg_ftype_parse("q4_k_m", &opt.ftype) == 0);
    bool made = lg_quantize_model("models/laguna-tiny", dst, &opt, NULL, &err) == LAGUNA_OK;
    CHECKF(made, "%s", err.message);
    laguna_model *one = NULL, *split = NULL;
    laguna_model_options copy = {.n_threads = 2, .load_mode = LAGUNA_LOAD_COPY};
    if (made && laguna_model_open(dst, &copy, &one, &err) == LAGUNA_OK) {
        copy.devices = "cpu:1";
        CHECKF(laguna_model_open(dst, &copy, &split, &err) == LAGUNA_OK, "%s", err.message);
        bool grouped = lg_qgemm_layout_for(LG_DTYPE_Q4_K, 16) != LG_DTYPE_Q4_K;
        CHECK(!grouped || laguna_model_get_info(one)->weights_rearranged_bytes > 0);
        CHECK(split && laguna_model_get_info(split)->weights_rearranged_bytes == 0);
    }
    laguna_model_free(one), laguna_model_free(split);
    lg_tensor_source *src;
    int T;
    const int32_t *tok = prompt_of("models/laguna-tiny/golden.safetensors", &T, &src);
    run_result a, b;
    if (made && tok && run_model(dst, NULL, tok, T, &a)) {
        if (run_model(dst, "cpu:1", tok, T, &b)) {
            CHECK(memcmp(a.logits, b.logits, sizeof(float) * (size_t)T * a.vocab) == 0);
            CHECK(memcmp(a.greedy, b.greedy, sizeof a.greedy) == 0);
            free_result(&b);
        }
        free_result(&a);
    }
    lg_tensor_source_free(src);
    tu_remove_dir(d);
}

/* A session (the generation API) on a split model: the same text. */
static void test_session_on_split_model(void) {
    laguna_model *m = NULL, *one = NULL;
    laguna_error err = {0};
    CHECK(laguna_model_open("tests/fixtures/tiny-m",
                            &(laguna_model_options){.n_threads = 2, .devices = "cpu:2"}, &m,
                            &err) == 0);
    CHECK(laguna_model_open("tests/fixtures/tiny-m", &(laguna_model_options){.n_threads = 2}, &one,
                            &err) == 0);
    if (!m || !one) return laguna_model_free(m), laguna_model_free(one);
    laguna_session *s[2] = {NULL, NULL};
    int32_t tokens[5] = {5, 17, 300, 42, 9}, next[2];
    for (int i = 0; i < 2; i++) {
        CHECK(laguna_session_create(i ? one : m,
                                    &(laguna_session_options){.n_ctx = 64, .n_batch = 3}, &s[i],
                                    &err) == 0);
        CHECK(s[i] && laguna_session_feed(s[i], tokens, 5, NULL, &err) == 0);
        CHECK(s[i] && laguna_session_truncate(s[i], 3, &err) == 0);
        CHECK(s[i] && laguna_session_feed(s[i], tokens + 1, 4, NULL, &err) == 0);
        const float *l = s[i] ? laguna_session_logits(s[i]) : NULL;
        next[i] = 0;
        for (int v = 1; l && v < 1024; v++)
            next[i] = l[v] > l[next[i]] ? v : next[i];
    }
    CHECK(s[0] && laguna_session_position(s[0]) == 7 && laguna_session_kv_bytes(s[0]) > 0);
    CHECK(s[0] && laguna_session_kv_bytes(s[0]) <
                      laguna_session_kv_bytes(s[1])); /* a rank holds half the KV heads */
    CHECKF(next[0] == next[1], "split %d, one device %d", next[0], next[1]);
    /* a bad token fails on every rank alike and the session goes on */
    int32_t bad = 5000;
    CHECK(s[0] && laguna_session_feed(s[0], &bad, 1, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(s[0] && laguna_session_feed(s[0], tokens, 1, NULL, &err) == LAGUNA_OK &&
          laguna_session_position(s[0]) == 8);
    laguna_session_free(s[0]), laguna_session_free(s[1]);
    laguna_model_free(m), laguna_model_free(one);
}

/* The laguna program: --devices cpu:N prints the single device's text; bad
 * lists and indivisible splits are one-line errors with a non-zero exit. */
static void test_cli_devices(void) {
    char *one = NULL, *split = NULL, *out = NULL;
    const char *args = "generate -m tests/fixtures/tiny-m --tokens 1,2,3 -n 12 --ids -t 2";
    char cmd[512];
    CHECK(tu_run_laguna(args, &one) == 0);
    snprintf(cmd, sizeof cmd, "%s --devices cpu:4", args);
    CHECK(tu_run_laguna(cmd, &split) == 0);
    CHECKF(one && split && !strcmp(one, split), "one device:\n%s\ncpu:4:\n%s", one, split);
    struct {
        const char *args, *words;
    } bad[] = {
        {"generate -m tests/fixtures/tiny-xs --tokens 1 -n 1 --devices cpu:3", "KV heads"},
        {"generate -m tests/fixtures/tiny-xs --tokens 1 -n 1 --devices cuda:0,cuda:0", "twice"},
        {"generate -m tests/fixtures/tiny-xs --tokens 1 -n 1 --devices tpu:1", "bad device list"},
        {"generate -m tests/fixtures/tiny-xs --tokens 1 -n 1 --devices", "--devices"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tu_run_laguna(bad[i].args, &out);
        CHECKF(rc != 0 && out && strstr(out, bad[i].words), "%s: exit %d, output %s", bad[i].args,
               rc, out);
        free(out);
        out = NULL;
    }
    free(one), free(split);
}

int main(void) {
    RUN(test_partition_invariants);
    RUN(test_partition_errors);
    RUN(test_device_lists);
    RUN(test_nccl_id_exchange);
    RUN(test_one_rank_is_bitwise);
    RUN(test_tiny_xs_over_2);
    RUN(test_tiny_m_over_2_and_4);
    RUN(test_laguna_tiny_over_2_and_4);
    RUN(test_quantized_split_keeps_file_layout);
    RUN(test_session_on_split_model);
    RUN(test_cli_devices);
    return test_summary();
}
