/* Every op of the backend ops table (backend/backend.h) on the CUDA backend
 * against the reference backend (issue 10), on random inputs of awkward
 * sizes: odd row and column counts (not multiples of the kernels' 8-row,
 * 8-token, 32-lane or 256-value tiles), 1 and 300 tokens, odd head counts
 * with GQA groups 1/2/3 and past the split kernel's limits, sliding windows
 * around page edges of paged pools (page sizes 16 and 5) in every cache
 * dtype, contexts long enough for the split (flash-decoding) path, every
 * weight dtype the loader takes, top_k 1..8 with experts that get no rows,
 * RoPE tables made from real configs. Also that the GPU is batch invariant:
 * a token's product, expert outputs and combined row are bitwise the same
 * alone as inside batches of 17, 64 and 300.
 *
 * Inputs go to the device and results come back through the backend's own
 * ops only (alloc, adopt_weights + copy, to_host); each check states its
 * tolerance and why. Without a GPU, or in a build without nvcc, every case
 * prints SKIP with the reason. LAGUNA_OPS_DEVICE names another backend to
 * hold to the same checks (default "cuda"; "cuda:1" for a second GPU, or
 * "cpu" to exercise this test itself on a machine without one). */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/quant_dot.h"
#include "harness.h"
#include "laguna.h"
#include "model/config.h"
#include "model/rope.h"
#include "op_inputs.h"
#include "paged_layout.h"
#include "synth/presets.h"
#include "testutil.h"

/* ---- the two backends and their memory ----------------------------------- */

enum { DEV = 0, REF = 1 };

typedef struct {
    lg_backend *be[2];
    lg_backend_ctx *c[2];
    bool bf16_activations; /* the device took the option (twin_open_as) */
} twin;

/* Room for every case: 9000-position contexts, head_dim 160, 128 experts. */
static const lg_ctx_sizes test_sizes = {
    .widest_row = 8192, .max_keys = 16384, .head_dim = 256, .n_experts = 128};

static const char *device_name(void) {
    const char *d = getenv("LAGUNA_OPS_DEVICE");
    return d && *d ? d : "cuda";
}

static void twin_close(twin *t) {
    for (int b = 0; b < 2; b++) {
        if (t->c[b]) t->be[b]->ops->ctx_free(t->c[b]);
        if (t->be[b]) t->be[b]->ops->destroy(t->be[b]);
    }
    memset(t, 0, sizeof *t);
}

/* Both backends with a context each; false (the case skipped when there is
 * no device, failed otherwise) when they cannot be had. */
static bool twin_open_as(twin *t, bool bf16_activations) {
    memset(t, 0, sizeof *t);
    laguna_error err = {0};
    if (lg_backend_create(device_name(), 1, &t->be[DEV], &err) != LAGUNA_OK) {
        test_skip("%s", err.message);
        return false;
    }
    if (bf16_activations &&
        !(t->be[DEV]->ops->use_bf16_activations && t->be[DEV]->ops->use_bf16_activations(t->be[DEV]))) {
        test_skip("%s does not take bf16 activations", t->be[DEV]->ops->name);
        twin_close(t);
        return false;
    }
    t->bf16_activations = bf16_activations;
    t->be[REF] = lg_reference_backend_new();
    CHECK(t->be[REF] != NULL);
    for (int b = 0; b < 2 && t->be[REF]; b++) {
        t->c[b] = t->be[b]->ops->ctx_new(t->be[b], &test_sizes);
        CHECKF(t->c[b] != NULL, "%s: no context", t->be[b]->ops->name);
    }
    if (t->c[DEV] && t->c[REF]) return true;
    twin_close(t);
    return false;
}

static bool twin_open(twin *t) { return twin_open_as(t, false); }

/* Whether the device's ops table has an optional op; the case skipped (and
 * t closed) when not. */
static bool twin_has(twin *t, bool has, const char *op) {
    if (has) return true;
    test_skip("%s has no %s op", t->be[DEV]->ops->name, op);
    twin_close(t);
    return false;
}

/* A new device context, as a fresh engine context would start. The CUDA
 * context keeps each expert list's device table by the list's host address,
 * so a case whose list may reuse a freed one's address starts a new one. */
static void fresh_dev_ctx(twin *t) {
    if (t->c[DEV]) t->be[DEV]->ops->ctx_free(t->c[DEV]);
    t->c[DEV] = t->be[DEV]->ops->ctx_new(t->be[DEV], &test_sizes);
    CHECK(t->c[DEV] != NULL);
}

/* Waits for side b's work and fails the case on an error it reports (a
 * launch that failed, an allocation in an op). */
static void settle(twin *t, int b, const char *what) {
    if (!t->c[b] || !t->be[b]->ops->sync) return;
    laguna_error err = {0};
    laguna_status st = t->be[b]->ops->sync(t->c[b], &err);
    CHECKF(st == LAGUNA_OK, "%s on %s: %s", what, t->be[b]->ops->name, err.message);
}

/* The CUDA backend's alloc zeroes with cudaMemset and its adopt_weights
 * copies with a blocking cudaMemcpy, both on the default stream, where a
 * pageable copy may return before its DMA lands; contexts run on
 * non-blocking streams that do not wait for that stream. synth_weights ends
 * by synchronising it, so a one-value synth is the barrier that orders a
 * buffer's zeroes and staged bytes before the ops that use them. */
static void default_stream_barrier(twin *t, int b) {
    lg_backend *be = t->be[b];
    if (!be->ops->host_memory && be->ops->synth_weights)
        CHECK(be->ops->synth_weights(be, LG_DTYPE_F32, 1, 1, sizeof(float), 1.0f, 1) != NULL);
}

/* Host bytes in backend memory through the ops table: backend.h has no
 * upload for activation buffers (the engine's host inputs travel as op
 * arguments), so they go up as adopted weights, held until the backend is
 * destroyed (each case opens its own). */
static const void *stage(twin *t, int b, const void *src, size_t bytes) {
    lg_backend *be = t->be[b];
    const void *p = be->ops->adopt_weights(be, src, bytes ? bytes : 1);
    CHECKF(p != NULL, "%s: adopting %zu bytes", be->ops->name, bytes);
    default_stream_barrier(t, b);
    return p;
}

/* Host bytes into a buffer: staged, then moved with copy. */
static void write_bytes(twin *t, int b, void *dst, const void *src, size_t bytes) {
    if (!bytes || !dst) return;
    const void *staged = stage(t, b, src, bytes);
    if (staged) t->be[b]->ops->copy(t->c[b], dst, staged, bytes);
}

/* A new buffer holding a copy of src (zeroes when src is NULL). */
static void *put(twin *t, int b, const void *src, size_t bytes) {
    void *p = t->be[b]->ops->alloc(t->be[b], bytes ? bytes : 1);
    CHECKF(p != NULL, "%s: alloc of %zu bytes", t->be[b]->ops->name, bytes);
    if (!src)
        default_stream_barrier(t, b); /* (write_bytes has one) */
    else
        write_bytes(t, b, p, src, bytes);
    return p;
}

static void drop(twin *t, int b, const void *p, size_t bytes) {
    if (p) t->be[b]->ops->free(t->be[b], (void *)p, bytes ? bytes : 1);
}

/* Result bytes in a new host array (caller frees), through to_host. */
static void *get(twin *t, int b, const void *src, size_t bytes) {
    void *h = calloc(1, bytes ? bytes : 1);
    if (src && bytes) t->be[b]->ops->to_host(t->c[b], h, src, bytes);
    return h;
}

/* A test matrix as each side reads it: the reference its host bytes, the
 * device its own copy made by adopt_weights, as the model loader makes it. */
typedef struct {
    op_weight w;
    lg_matrix m[2];
} twin_weight;

static twin_weight twin_weight_new(twin *t, lg_dtype dt, int rows, int cols, float amp) {
    twin_weight tw = {.w = op_weight_new(dt, rows, cols, amp)};
    for (int b = 0; b < 2; b++) {
        tw.m[b] = tw.w.m;
        tw.m[b].data = stage(t, b, tw.w.bytes, tw.w.m.row_bytes * (size_t)rows);
    }
    return tw;
}

static bool is_float_dtype(lg_dtype dt) {
    return dt == LG_DTYPE_F32 || dt == LG_DTYPE_BF16 || dt == LG_DTYPE_F16;
}

/* Tolerances of products (lg_matmul_op), used below.
 * Float weights: float32 accumulation in another order than the reference's
 * double costs a few 1e-7 of the result (norm-wise): 1e-5 norm-wise. BF16
 * weights run on tensor cores with each activation split into two bf16
 * halves (at most 2^-18 relative per term) and the tensor cores' own float32
 * accumulation: held per output to QUANT_FLOAT_TOL of sum |w x|, since a
 * product with few outputs that cancel can miss a norm-wise 1e-5 (seen:
 * 1.9e-5 on a 1x1000 matrix) while every term is as exact as it should be.
 * Quantised weights, per output: the bound the CPU is held to
 * (tests/test_backend_ops.c), what 8-bit activations in blocks of
 * lg_q8_block(dtype) can cost (nothing where that is 0), since a GPU kernel
 * may quantise activations likewise; plus 2e-5 of sum |w x| for float
 * rounding (the halves' 2^-16 and the accumulation). */
#define FLOAT_PRODUCT_TOL 1e-5
#define QUANT_FLOAT_TOL 2e-5

/* Every weight dtype the model loader takes (src/core/dtype.h less I32). */
static const lg_dtype all_weight_dtypes[] = {
    LG_DTYPE_F32,  LG_DTYPE_BF16, LG_DTYPE_F16,  LG_DTYPE_Q8_0, LG_DTYPE_Q4_0, LG_DTYPE_Q5_0,
    LG_DTYPE_Q5_1, LG_DTYPE_Q4_K, LG_DTYPE_Q5_K, LG_DTYPE_Q6_K, LG_DTYPE_COUNT};

/* ---- embed, rmsnorm, rope ------------------------------------------------ */

/* Embedding rows are table rows decoded: bitwise the reference's, except
 * where the decoding is a product plus an offset (Q5_1, Q4_K, Q5_K), which
 * nvcc may fuse into one fma, a rounding fewer: 1e-6 of each row
 * (norm-wise) there, while a wrong nibble or scale is off by 1e-2 and more. */
static void test_embed(void) {
    twin t;
    if (!twin_open(&t)) return;
    static const int cols_of[] = {37, 1000, 37, 96, 96, 96, 96, 256, 512, 256};
    int counts[] = {1, 7, 300};
    for (int d = 0; all_weight_dtypes[d] != LG_DTYPE_COUNT; d++) {
        lg_dtype dt = all_weight_dtypes[d];
        int rows = 53, cols = cols_of[d];
        bool fused = dt == LG_DTYPE_Q5_1 || dt == LG_DTYPE_Q4_K || dt == LG_DTYPE_Q5_K;
        twin_weight w = twin_weight_new(&t, dt, rows, cols, 1.0f);
        for (int ci = 0; ci < 3; ci++) {
            int n = counts[ci];
            int32_t *tok = malloc(sizeof(int32_t) * n);
            for (int i = 0; i < n; i++)
                tok[i] = i == 0 ? rows - 1 : i == 1 ? 0 : op_irand(rows);
            size_t bytes = sizeof(float) * (size_t)n * cols;
            float *out[2];
            for (int b = 0; b < 2; b++) {
                float *x = put(&t, b, NULL, bytes);
                t.be[b]->ops->embed(t.c[b], x, &w.m[b], tok, n);
                out[b] = get(&t, b, x, bytes);
                settle(&t, b, "embed");
                drop(&t, b, x, bytes);
            }
            int bad = 0;
            for (int i = 0; i < n; i++) {
                const float *a = out[DEV] + (size_t)i * cols, *r = out[REF] + (size_t)i * cols;
                bad += fused ? !(op_rel(a, r, (size_t)cols) < 1e-6)
                             : memcmp(a, r, sizeof(float) * cols) != 0;
            }
            CHECKF(bad == 0, "%s %d tokens: %d rows differ", lg_dtype_name(dt), n, bad);
            free(out[0]), free(out[1]), free(tok);
        }
        op_weight_free(&w.w);
    }
    twin_close(&t);
}

/* The GPU sums squares in double like the reference, then rounds x * scale
 * * w in float32 twice where the reference rounds once: a few ulp, 1e-6 of
 * each row (norm-wise), while a wrong mean or eps is off by far more. Rows
 * of the hidden size and the q/k head norms' many short rows (tokens x heads
 * rows of head_dim), rows longer than a block's registers (4096), in place
 * and not. */
static void test_rmsnorm(void) {
    twin t;
    if (!twin_open(&t)) return;
    int shapes[][2] = {{1, 1},        {1, 33},   {7, 1000}, {300, 37},  {5, 4099},
                       {300 * 7, 24}, {48, 128}, {3, 5000}, {9 * 3, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int in_place = 0; in_place < 2; in_place++) {
            int rows = shapes[s][0], n = shapes[s][1];
            size_t bytes = sizeof(float) * (size_t)rows * n;
            float *x = op_frand_array((size_t)rows * n, 1.0f), *w = op_frand_array((size_t)n, 2.0f);
            for (int r = 0; r < rows; r++) /* rows of very different magnitude */
                for (int i = 0; i < n; i++)
                    x[(size_t)r * n + i] *= powf(10.0f, (float)(r % 7) - 3);
            float *out[2];
            for (int b = 0; b < 2; b++) {
                float *dx = put(&t, b, x, bytes), *dw = put(&t, b, w, sizeof(float) * n);
                float *dy = in_place ? dx : put(&t, b, NULL, bytes);
                t.be[b]->ops->rmsnorm(t.c[b], dy, dx, dw, rows, n, 1e-6f);
                out[b] = get(&t, b, dy, bytes);
                settle(&t, b, "rmsnorm");
                if (!in_place) drop(&t, b, dy, bytes);
                drop(&t, b, dx, bytes), drop(&t, b, dw, sizeof(float) * n);
            }
            int bad = 0;
            double worst = 0;
            for (int r = 0; r < rows; r++) {
                double e = op_rel(out[DEV] + (size_t)r * n, out[REF] + (size_t)r * n, (size_t)n);
                bad += !(e < 1e-6), worst = e > worst || isnan(e) ? e : worst;
            }
            CHECKF(bad == 0, "%d x %d%s: %d rows off, worst rel %.3e", rows, n,
                   in_place ? " in place" : "", bad, worst);
            free(out[0]), free(out[1]), free(x), free(w);
        }
    twin_close(&t);
}

/* One rope call on both sides; checks 2e-6 norm-wise (both form the angle
 * pos * inv_freq in float32; the GPU's cosf/sinf and float products against
 * the reference's double: a few ulp per element) and that the dims past
 * n_rot come back bitwise untouched. */
static void rope_case(twin *t, const char *what, int rows, int heads, int hd, int n_rot,
                      const float *inv, float scale, const int32_t *pos) {
    size_t n = (size_t)rows * heads * hd, bytes = sizeof(float) * n;
    size_t inv_bytes = sizeof(float) * (size_t)(n_rot / 2 > 0 ? n_rot / 2 : 1);
    float *x = op_frand_array(n, 1.0f), *out[2];
    for (int b = 0; b < 2; b++) {
        float *d = put(t, b, x, bytes), *dinv = put(t, b, inv, inv_bytes);
        t->be[b]->ops->rope(t->c[b], d, rows, heads, hd, n_rot, dinv, scale, pos);
        out[b] = get(t, b, d, bytes);
        settle(t, b, "rope");
        drop(t, b, d, bytes), drop(t, b, dinv, inv_bytes);
    }
    double e = op_rel(out[DEV], out[REF], n);
    CHECKF(e < 2e-6, "%s (%d rows, %d heads, head_dim %d, n_rot %d): rel %.3e", what, rows, heads,
           hd, n_rot, e);
    int moved = 0;
    for (size_t v = 0; v < (size_t)rows * heads; v++)
        moved += memcmp(out[DEV] + v * hd + n_rot, x + v * hd + n_rot,
                        sizeof(float) * (size_t)(hd - n_rot)) != 0;
    CHECKF(moved == 0, "%s: %d heads' unrotated dims changed", what, moved);
    free(out[0]), free(out[1]), free(x);
}

/* Awkward shapes with made-up tables: odd head counts, partial rotation,
 * a single pair, more pairs than a block has threads. */
static void test_rope_shapes(void) {
    twin t;
    if (!twin_open(&t)) return;
    struct {
        int rows, heads, hd, n_rot;
        float scale;
    } cases[] = {{1, 3, 10, 6, 1.0f},    {7, 5, 16, 16, 1.0f}, {300, 3, 24, 24, 1.3f},
                 {13, 1, 18, 8, 0.7f},   {5, 7, 2, 2, 1.0f},   {3, 2, 600, 520, 1.1f},
                 {300, 9, 128, 64, 1.0f}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int rows = cases[ci].rows, n_rot = cases[ci].n_rot;
        float *inv = malloc(sizeof(float) * (size_t)(n_rot / 2));
        for (int i = 0; i < n_rot / 2; i++)
            inv[i] = powf(10000.0f, -2.0f * i / n_rot);
        int32_t *pos = malloc(sizeof(int32_t) * rows);
        for (int r = 0; r < rows; r++)
            pos[r] = r == 0 ? 0 : op_irand(r % 2 ? 100 : 100000);
        char what[32];
        snprintf(what, sizeof what, "case %zu", ci);
        rope_case(&t, what, rows, cases[ci].heads, cases[ci].hd, n_rot, inv, cases[ci].scale, pos);
        free(inv), free(pos);
    }
    twin_close(&t);
}

/* The two kinds of RoPE as the models use them: tables built by the model
 * code (lg_rope_table_init) from the fixtures' config.json files (tiny-xs:
 * YaRN on half the dims of global layers, plain RoPE on sliding ones;
 * tiny-m: YaRN on all dims) and from the XS.2 and M.1 presets' shapes
 * (head_dim 128, YaRN factors 64 and 32), on the query heads of the first
 * layer of each kind and on the KV heads. Positions: one decode row at the
 * last position the model takes, and 300 prefill rows across YaRN's
 * original context length. */
static void rope_config_cases(twin *t, const char *what, const lg_config *cfg) {
    for (int kind = 0; kind < 2; kind++) {
        if (!cfg->has_rope[kind]) continue;
        int layer = -1;
        for (int l = 0; l < cfg->n_layers && layer < 0; l++)
            if ((int)cfg->attention_kind[l] == kind) layer = l;
        if (layer < 0) continue;
        lg_rope_table tab = {0};
        laguna_error err = {0};
        CHECKF(lg_rope_table_init(&tab, &cfg->rope[kind], cfg->head_dim, &err) == LAGUNA_OK,
               "%s: %s", what, err.message);
        if (!tab.inv_freq) continue;
        int orig = cfg->rope[kind].original_max_position_embeddings;
        int start = orig > 150 ? orig - 150 : 0, last = cfg->max_position_embeddings - 1;
        int32_t pos[300];
        for (int r = 0; r < 300; r++)
            pos[r] = start + r;
        int heads[2] = {cfg->n_heads[layer], cfg->n_kv_heads};
        for (int h = 0; h < 2; h++) {
            char name[96];
            snprintf(name, sizeof name, "%s %s layer %d %s", what, kind ? "sliding" : "global",
                     layer, h ? "keys" : "queries");
            int32_t one = last > 0 ? last : 0;
            rope_case(t, name, 1, heads[h], cfg->head_dim, tab.n_rot, tab.inv_freq,
                      tab.attention_scale, &one);
            rope_case(t, name, 300, heads[h], cfg->head_dim, tab.n_rot, tab.inv_freq,
                      tab.attention_scale, pos);
        }
        lg_rope_table_free(&tab);
    }
}

static void test_rope_as_configured(void) {
    twin t;
    if (!twin_open(&t)) return;
    const char *files[] = {"tests/fixtures/tiny-xs/config.json",
                           "tests/fixtures/tiny-m/config.json"};
    for (int i = 0; i < 2; i++) {
        char *text = tu_read_file(files[i], NULL);
        CHECKF(text != NULL, "%s unreadable", files[i]);
        if (!text) continue;
        lg_config cfg = {0};
        laguna_error err = {0};
        CHECKF(lg_config_parse(text, files[i], &cfg, &err) == LAGUNA_OK, "%s", err.message);
        if (cfg.n_heads) rope_config_cases(&t, files[i], &cfg);
        lg_config_free(&cfg), free(text);
    }
    const char *presets[] = {"xs2", "m1"};
    for (int i = 0; i < 2; i++) {
        lg_config cfg = {0};
        laguna_error err = {0};
        CHECKF(lg_synth_preset_layers(presets[i], 0, &cfg, &err) == LAGUNA_OK, "%s", err.message);
        if (cfg.n_heads) rope_config_cases(&t, presets[i], &cfg);
        lg_config_free(&cfg);
    }
    twin_close(&t);
}

/* ---- matmul_many ---------------------------------------------------------- */

/* One product as both sides get it; x and bias host arrays. */
typedef struct {
    lg_dtype dt;
    int rows, cols, tokens;
    bool bias;
    int x_offset; /* floats into the device's x buffer (1: not 16-byte aligned) */
} product_spec;

/* Runs products in one matmul_many call on each side and checks each at its
 * tolerance (FLOAT_PRODUCT_TOL, or the quantised bound); a product of 0
 * tokens must leave its y alone. */
static void matmul_products(twin *t, const product_spec *spec, int n) {
    twin_weight *w = calloc((size_t)n, sizeof *w);
    float **x = calloc((size_t)n, sizeof *x), **bias = calloc((size_t)n, sizeof *bias);
    float **out[2] = {calloc((size_t)n, sizeof(float *)), calloc((size_t)n, sizeof(float *))};
    lg_matmul_op *ops = calloc((size_t)n, sizeof *ops);
    float **dx = calloc((size_t)n, sizeof *dx), **dbias = calloc((size_t)n, sizeof *dbias);
    for (int i = 0; i < n; i++) {
        w[i] = twin_weight_new(t, spec[i].dt, spec[i].rows, spec[i].cols, 1.0f);
        x[i] = op_frand_array((size_t)(spec[i].tokens ? spec[i].tokens : 1) * spec[i].cols, 1.0f);
        if (spec[i].bias) bias[i] = op_frand_array((size_t)spec[i].rows, 0.5f);
    }
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < n; i++) {
            size_t tok = (size_t)(spec[i].tokens ? spec[i].tokens : 1), off = spec[i].x_offset;
            size_t xb = sizeof(float) * tok * spec[i].cols, yn = tok * spec[i].rows;
            dx[i] = put(t, b, NULL, xb + sizeof(float) * off);
            write_bytes(t, b, dx[i] + off, x[i], xb);
            dbias[i] = bias[i] ? put(t, b, bias[i], sizeof(float) * spec[i].rows) : NULL;
            float *poison = malloc(sizeof(float) * yn);
            for (size_t e = 0; e < yn; e++)
                poison[e] = 12345.0f; /* must stay where tokens is 0 */
            ops[i] = (lg_matmul_op){put(t, b, poison, sizeof(float) * yn), dx[i] + off,
                                    spec[i].tokens, &w[i].m[b], dbias[i]};
            free(poison);
        }
        t->be[b]->ops->matmul_many(t->c[b], ops, n);
        for (int i = 0; i < n; i++) {
            size_t tok = (size_t)(spec[i].tokens ? spec[i].tokens : 1);
            size_t yb = sizeof(float) * tok * spec[i].rows;
            out[b][i] = get(t, b, ops[i].y, yb);
            drop(t, b, ops[i].y, yb);
            drop(t, b, dx[i], sizeof(float) * (tok * spec[i].cols + spec[i].x_offset));
            drop(t, b, dbias[i], sizeof(float) * spec[i].rows);
        }
        settle(t, b, "matmul_many");
    }
    for (int i = 0; i < n; i++) {
        int rows = spec[i].rows, cols = spec[i].cols, tok = spec[i].tokens;
        lg_dtype dt = spec[i].dt;
        char what[96];
        snprintf(what, sizeof what, "product %d of %d: %s %dx%d, %d tokens%s%s", i, n,
                 lg_dtype_name(dt), rows, cols, tok, bias[i] ? ", bias" : "",
                 spec[i].x_offset ? ", unaligned x" : "");
        if (tok == 0) {
            int changed = 0;
            for (int e = 0; e < rows; e++)
                changed += out[DEV][i][e] != 12345.0f;
            CHECKF(changed == 0, "%s: wrote %d values", what, changed);
        } else if (dt == LG_DTYPE_BF16) { /* per output: few outputs make a norm-wise bound fragile */
            int bad = op_outside_q8_bound(out[DEV][i], out[REF][i], x[i], w[i].w.deq, bias[i], rows,
                                          cols, tok, 0, QUANT_FLOAT_TOL);
            CHECKF(bad == 0, "%s: %d outputs outside 2e-5 of sum |w x|", what, bad);
        } else if (is_float_dtype(dt)) {
            double e = op_rel(out[DEV][i], out[REF][i], (size_t)tok * rows);
            CHECKF(e < FLOAT_PRODUCT_TOL, "%s: rel %.3e", what, e);
        } else {
            int bad = op_outside_q8_bound(out[DEV][i], out[REF][i], x[i], w[i].w.deq, bias[i], rows,
                                          cols, tok, lg_q8_block(dt), QUANT_FLOAT_TOL);
            CHECKF(bad == 0, "%s: %d outputs outside the bound", what, bad);
        }
    }
    for (int i = 0; i < n; i++)
        op_weight_free(&w[i].w), free(x[i]), free(bias[i]), free(out[0][i]), free(out[1][i]);
    free(w), free(x), free(bias), free(out[0]), free(out[1]), free(ops), free(dx), free(dbias);
}

/* Per weight dtype, one call of seven products of 1, 3, 9, 17, 64, 65 and
 * 300 tokens (the kernels' 8-token tiles cut and uncut), rows not multiples
 * of 8 or 16, columns not multiples of 32 or 256 where the dtype allows
 * (for float weights both the 16-byte vector path, columns a multiple of 8,
 * and the element path), every other one with a bias. */
static void test_matmul_every_dtype(void) {
    twin t;
    if (!twin_open(&t)) return;
    static const int tokens[7] = {1, 3, 9, 17, 64, 65, 300};
    static const int rows[7] = {37, 1, 19, 3, 65, 9, 129};
    static const int float_cols[7] = {33, 1000, 7, 1, 264, 129, 2048};
    static const int block32_cols[7] = {96, 32, 160, 1024, 64, 288, 32};
    static const int k_cols[7] = {256, 512, 768, 256, 1280, 256, 512};
    for (int d = 0; all_weight_dtypes[d] != LG_DTYPE_COUNT; d++) {
        lg_dtype dt = all_weight_dtypes[d];
        const int *cols = is_float_dtype(dt)                ? float_cols
                          : lg_dtype_block_elems(dt) == 256 ? k_cols
                                                            : block32_cols;
        product_spec spec[7];
        for (int i = 0; i < 7; i++)
            spec[i] = (product_spec){dt, rows[i], cols[i], tokens[i], i % 2 == 1, 0};
        matmul_products(&t, spec, 7);
    }
    twin_close(&t);
}

/* A call mixing dtypes (more products than one launch takes), products of
 * 0 tokens, and x not 16-byte aligned where the float vector path would
 * otherwise be taken. */
static void test_matmul_mixed_call(void) {
    twin t;
    if (!twin_open(&t)) return;
    product_spec spec[] = {
        {LG_DTYPE_F32, 37, 33, 5, true, 0},   {LG_DTYPE_BF16, 17, 128, 300, false, 1},
        {LG_DTYPE_F16, 1, 7, 1, true, 0},     {LG_DTYPE_Q8_0, 23, 96, 7, true, 0},
        {LG_DTYPE_Q8_0, 9, 96, 0, false, 0},  {LG_DTYPE_Q4_K, 19, 256, 3, false, 0},
        {LG_DTYPE_Q5_K, 13, 512, 1, true, 0}, {LG_DTYPE_Q6_K, 29, 256, 37, false, 0},
        {LG_DTYPE_F32, 5, 36, 0, true, 0},    {LG_DTYPE_Q4_K, 31, 256, 2, true, 0},
        {LG_DTYPE_F32, 3, 1, 2, false, 0},    {LG_DTYPE_Q6_K, 3, 256, 0, false, 0},
        {LG_DTYPE_F32, 11, 64, 17, true, 3},  {LG_DTYPE_F16, 65, 256, 65, false, 2},
    };
    matmul_products(&t, spec, (int)(sizeof spec / sizeof spec[0]));
    twin_close(&t);
}

/* The product of w over n random tokens in one call and token by token:
 * how many tokens' outputs differ by a bit. */
static int matmul_alone_vs_batch(twin *t, const twin_weight *w, int n, const float *dbias) {
    int rows = (int)w->m[DEV].rows, cols = (int)w->m[DEV].cols;
    size_t xb = sizeof(float) * (size_t)n * cols, yb = sizeof(float) * (size_t)n * rows;
    float *x = op_frand_array((size_t)n * cols, 1.0f);
    float *dx = put(t, DEV, x, xb), *dy = put(t, DEV, NULL, yb), *dy1 = put(t, DEV, NULL, yb);
    lg_matmul_op whole = {dy, dx, n, &w->m[DEV], dbias};
    t->be[DEV]->ops->matmul_many(t->c[DEV], &whole, 1);
    for (int i = 0; i < n; i++) {
        lg_matmul_op one = {dy1 + (size_t)i * rows, dx + (size_t)i * cols, 1, &w->m[DEV], dbias};
        t->be[DEV]->ops->matmul_many(t->c[DEV], &one, 1);
    }
    float *y = get(t, DEV, dy, yb), *y1 = get(t, DEV, dy1, yb);
    settle(t, DEV, "matmul_many");
    int differ = 0;
    for (int i = 0; i < n; i++)
        differ += memcmp(y + (size_t)i * rows, y1 + (size_t)i * rows, sizeof(float) * rows) != 0;
    drop(t, DEV, dx, xb), drop(t, DEV, dy, yb), drop(t, DEV, dy1, yb);
    free(x), free(y), free(y1);
    return differ;
}

/* Batch invariance: a token's product alone (a decode step, the narrow
 * kernel) is bitwise its row of the same product over a prefill's tokens
 * (the tiled GEMM above 64 tokens; 9-32 tokens of bf16 in the one-shot
 * blocks, 3 and 4 groups of 8, the last of 1 at 17), for bf16 weights on the vector path and
 * the element path (1001 columns), and the quantised block path. The GEMM's edges: rows not a
 * multiple of its 128-row blocks or 16-row tiles, 65/129/300 tokens (its
 * 32- and 128-token blocks cut), K not a multiple of the 32-wide step (264:
 * slices of 2 steps, the last short; 8: one partial step) and long K (2056:
 * 8 slices of 9 steps, the last of 2); the last matrix is large enough
 * (2100 x 1290 tokens) for its dense 128 x 128 blocks; F32 and F16 over 256
 * tokens and more take the float kernel of several rows a warp. The single-token
 * products read x where the batch keeps that token (row starts stay
 * 16-byte aligned where the batch's are). */
static void test_matmul_batch_invariant(void) {
    twin t;
    if (!twin_open(&t)) return;
    struct {
        lg_dtype dt;
        int rows, cols;
        int batches[5]; /* 0 ends (or the fifth) */
    } mats[] = {
        {LG_DTYPE_BF16, 37, 1000, {17, 32, 64, 65, 300}},
        {LG_DTYPE_BF16, 19, 1001, {17, 64, 300, 0}},
        {LG_DTYPE_BF16, 129, 264, {65, 129, 300, 0}},
        {LG_DTYPE_BF16, 200, 8, {66, 129, 0}},
        {LG_DTYPE_BF16, 16, 2056, {129, 0}},
        /* one token, a slice longer than one batch of units: the ring
         * kernel, 5 batches a warp through 3 slots, the last slice 4 */
        {LG_DTYPE_BF16, 37, 8200, {17, 32, 0}},
        /* whole steps of 16-byte aligned rows, which take the bulk-copy ring:
         * 4 batches (the last in registers), 5 */
        {LG_DTYPE_BF16, 37, 8192, {17, 32, 0}},
        {LG_DTYPE_BF16, 37, 10240, {17, 0}},
        /* staged blocks of 4 tiles of 2 steps (the second block a tile of
         * 6 rows) and of 8 tiles of one step (the second block 2 rows) */
        {LG_DTYPE_BF16, 70, 512, {17, 0}},
        {LG_DTYPE_BF16, 130, 96, {17, 0}},
        /* 17 to 64 tokens: K's slices in blocks of their own (cuda_matmul_sliced.cu),
         * three row ranges, 3 and 5 token groups, 8 steps a slice through rings of 4;
         * 9 in one-shot blocks; a ragged last step (1032) and K below the sliced
         * blocks' least (1000, 1001: one-shot blocks) */
        {LG_DTYPE_BF16, 300, 2048, {9, 24, 40, 0}},
        {LG_DTYPE_BF16, 37, 1032, {24, 40, 0}},
        {LG_DTYPE_Q4_K, 37, 768, {17, 64, 300, 0}},
        /* one-token quantised products take 1, 2, 4 or 8 rows a warp by
         * row length (lg_quant_rows_per_warp): 8 (512), 2 (2048), 1 (4096);
         * staged through shared memory, a warp's rows start at any even
         * byte (Q8_0 4128: 4386-byte rows, Q6_K 4352: 3570), its last
         * piece short (rows x row bytes not a multiple of 16) */
        {LG_DTYPE_Q6_K, 21, 512, {17, 300, 0}},
        {LG_DTYPE_Q5_K, 13, 2048, {17, 65, 0}},
        {LG_DTYPE_Q8_0, 23, 4096, {17, 0}},
        {LG_DTYPE_Q8_0, 9, 4128, {17, 0}},
        {LG_DTYPE_Q6_K, 7, 4352, {17, 0}},
        {LG_DTYPE_Q4_K, 45, 1024, {17, 0}},
        {LG_DTYPE_BF16, 2100, 264, {1290, 0}},
        /* float matrices over 256 tokens and more: 4 rows a warp
         * (matmul_float_rows_kernel), rows past a block's 32, a last token
         * tile of 4 (300) or 1 (257) */
        {LG_DTYPE_F32, 37, 1000, {300, 0}},
        {LG_DTYPE_F16, 40, 264, {257, 0}},
    };
    for (size_t m = 0; m < sizeof mats / sizeof mats[0]; m++) {
        int rows = mats[m].rows, cols = mats[m].cols;
        twin_weight w = twin_weight_new(&t, mats[m].dt, rows, cols, 1.0f);
        float *bias = op_frand_array((size_t)rows, 0.5f),
              *dbias = put(&t, DEV, bias, sizeof(float) * rows);
        for (int bi = 0; bi < 5 && mats[m].batches[bi]; bi++) {
            int n = mats[m].batches[bi];
            int differ = matmul_alone_vs_batch(&t, &w, n, bi % 2 ? NULL : dbias);
            CHECKF(differ == 0, "%s %dx%d: %d of %d tokens differ alone from in the batch",
                   lg_dtype_name(mats[m].dt), rows, cols, differ, n);
        }
        drop(&t, DEV, dbias, sizeof(float) * rows);
        op_weight_free(&w.w), free(bias);
    }
    twin_close(&t);
}

/* The bf16_activations option: BF16 products on tensor cores take the
 * activations rounded to bf16 (to nearest even) in every kernel, so
 * - a token's product alone (one-shot blocks, the ring kernel for 8200
 *   columns) is still bitwise its row of the same product over 9-64 tokens
 *   (one-shot groups) and 65-1290 (the tiled GEMM, both shapes);
 * - each output is the product of the rounded activations: within
 *   QUANT_FLOAT_TOL of sum |w x| of the reference's product of x rounded on
 *   the host (the bf16 products are exact; float32 sums as before);
 * - the rounding really happened: against x itself, outputs fall outside
 *   that bound (an activation moves by up to 2^-9 relative).
 * Quantised and float16 weights are not affected. */
static void test_matmul_bf16_activations(void) {
    twin t;
    if (!twin_open_as(&t, true)) return;
    struct {
        int rows, cols;
        int batches[3]; /* 0 ends */
    } mats[] = {{37, 1000, {17, 64, 300}}, {129, 264, {9, 65, 129}}, {16, 2056, {129, 0}},
                {37, 8200, {17, 32, 0}},   {2100, 264, {1290, 0}}};
    for (size_t m = 0; m < sizeof mats / sizeof mats[0]; m++) {
        int rows = mats[m].rows, cols = mats[m].cols;
        twin_weight w = twin_weight_new(&t, LG_DTYPE_BF16, rows, cols, 1.0f);
        for (int bi = 0; bi < 3 && mats[m].batches[bi]; bi++) {
            int n = mats[m].batches[bi];
            size_t xn = (size_t)n * cols, xb = sizeof(float) * xn, yb = sizeof(float) * (size_t)n * rows;
            float *x = op_frand_array(xn, 1.0f), *xr = malloc(xb);
            for (size_t e = 0; e < xn; e++)
                xr[e] = lg_bf16_to_f32(lg_f32_to_bf16(x[e]));
            float *dx = put(&t, DEV, x, xb), *dy = put(&t, DEV, NULL, yb), *dy1 = put(&t, DEV, NULL, yb);
            lg_matmul_op whole = {dy, dx, n, &w.m[DEV], NULL};
            t.be[DEV]->ops->matmul_many(t.c[DEV], &whole, 1);
            for (int i = 0; i < n; i++) {
                lg_matmul_op one = {dy1 + (size_t)i * rows, dx + (size_t)i * cols, 1, &w.m[DEV], NULL};
                t.be[DEV]->ops->matmul_many(t.c[DEV], &one, 1);
            }
            float *y = get(&t, DEV, dy, yb), *y1 = get(&t, DEV, dy1, yb);
            settle(&t, DEV, "matmul_many, bf16 activations");
            float *ref[2]; /* the reference's products of xr and of x */
            for (int v = 0; v < 2; v++) {
                float *rx = put(&t, REF, v ? x : xr, xb), *ry = put(&t, REF, NULL, yb);
                lg_matmul_op op = {ry, rx, n, &w.m[REF], NULL};
                t.be[REF]->ops->matmul_many(t.c[REF], &op, 1);
                ref[v] = get(&t, REF, ry, yb);
                drop(&t, REF, rx, xb), drop(&t, REF, ry, yb);
            }
            settle(&t, REF, "matmul_many");
            int differ = 0;
            for (int i = 0; i < n; i++)
                differ += memcmp(y + (size_t)i * rows, y1 + (size_t)i * rows, sizeof(float) * rows) != 0;
            CHECKF(differ == 0, "bf16 %dx%d, %d tokens: %d differ alone from in the batch", rows, cols, n, differ);
            int bad = op_outside_q8_bound(y, ref[0], xr, w.w.deq, NULL, rows, cols, n, 0, QUANT_FLOAT_TOL);
            CHECKF(bad == 0, "bf16 %dx%d, %d tokens: %d outputs outside 2e-5 of sum |w x| of the rounded x", rows,
                   cols, n, bad);
            int moved = op_outside_q8_bound(y, ref[1], x, w.w.deq, NULL, rows, cols, n, 0, QUANT_FLOAT_TOL);
            CHECKF(moved > 0, "bf16 %dx%d, %d tokens: every output within the float bound: not rounded?", rows,
                   cols, n);
            drop(&t, DEV, dx, xb), drop(&t, DEV, dy, yb), drop(&t, DEV, dy1, yb);
            free(x), free(xr), free(y), free(y1), free(ref[0]), free(ref[1]);
        }
        op_weight_free(&w.w);
    }
    twin_close(&t);
}

/* One-token quantised products of a recorded step (a decode step's graph),
 * each launch needing less shared memory than the one before, all above
 * the 48 KiB a kernel gets by default (staged rows): the step's launches are
 * issued only after all of them were set up, so each must still find room
 * then. The results are bitwise those of the same products not recorded. */
static void test_matmul_recorded_smem(void) {
    twin t;
    if (!twin_open(&t)) return;
    if (!t.be[DEV]->ops->step_begin) { /* a backend that records no steps */
        twin_close(&t);
        return;
    }
    struct {
        lg_dtype dt;
        int rows, cols;
    } mats[] = {{LG_DTYPE_Q8_0, 9, 8192}, {LG_DTYPE_Q8_0, 9, 4128}, {LG_DTYPE_Q6_K, 7, 4352}};
    enum { N = sizeof mats / sizeof mats[0] };
    twin_weight w[N];
    float *dx[N], *dy[N], *plain[N];
    for (int i = 0; i < N; i++) {
        w[i] = twin_weight_new(&t, mats[i].dt, mats[i].rows, mats[i].cols, 1.0f);
        float *x = op_frand_array((size_t)mats[i].cols, 1.0f);
        dx[i] = put(&t, DEV, x, sizeof(float) * mats[i].cols);
        dy[i] = put(&t, DEV, NULL, sizeof(float) * mats[i].rows);
        free(x);
        lg_matmul_op op = {dy[i], dx[i], 1, &w[i].m[DEV], NULL};
        t.be[DEV]->ops->matmul_many(t.c[DEV], &op, 1);
        plain[i] = get(&t, DEV, dy[i], sizeof(float) * mats[i].rows);
    }
    settle(&t, DEV, "matmul_many");
    for (int round = 0; round < 2; round++) { /* recorded, then replayed */
        t.be[DEV]->ops->step_begin(t.c[DEV], 1);
        for (int i = 0; i < N; i++) {
            lg_matmul_op op = {dy[i], dx[i], 1, &w[i].m[DEV], NULL};
            t.be[DEV]->ops->matmul_many(t.c[DEV], &op, 1);
        }
        settle(&t, DEV, "recorded matmul_many");
        for (int i = 0; i < N; i++) {
            float *y = get(&t, DEV, dy[i], sizeof(float) * mats[i].rows);
            CHECKF(memcmp(y, plain[i], sizeof(float) * mats[i].rows) == 0, "%s %dx%d, round %d: recorded differs",
                   lg_dtype_name(mats[i].dt), mats[i].rows, mats[i].cols, round);
            free(y);
        }
    }
    for (int i = 0; i < N; i++) {
        drop(&t, DEV, dx[i], sizeof(float) * mats[i].cols), drop(&t, DEV, dy[i], sizeof(float) * mats[i].rows);
        op_weight_free(&w[i].w), free(plain[i]);
    }
    twin_close(&t);
}

/* ---- kv_write and attention over a paged pool ----------------------------- */

/* attention_gated on the device against its attention (plain, already
 * computed) then output_gate, with gates per head and per element: bitwise,
 * on every kernel path the attention cases reach (the fused op writes O / L
 * times the same softplus). Gates span softplus's cut at 20. Returns the
 * rows that differ. */
static int gated_vs_parts(twin *t, const lg_kv_pool_view *view, const float *dq, const lg_attention_args *a,
                          const float *plain) {
    int rows = a->n_rows, width = a->n_heads * a->head_dim, differ = 0;
    size_t n = (size_t)rows * width;
    for (int per_head = 0; per_head < 2; per_head++) {
        size_t ng = per_head ? (size_t)rows * a->n_heads : n;
        float *gate = op_frand_array(ng, 25.0f);
        float *dg = put(t, DEV, gate, sizeof(float) * ng), *da = put(t, DEV, plain, sizeof(float) * n),
              *dout = put(t, DEV, NULL, sizeof(float) * n);
        t->be[DEV]->ops->output_gate(t->c[DEV], da, dg, rows, a->n_heads, a->head_dim, per_head);
        t->be[DEV]->ops->attention_gated(t->c[DEV], view, dout, dq, a, dg, per_head);
        float *parts = get(t, DEV, da, sizeof(float) * n), *fused = get(t, DEV, dout, sizeof(float) * n);
        settle(t, DEV, "attention_gated");
        for (int r = 0; r < rows; r++)
            differ += memcmp(parts + (size_t)r * width, fused + (size_t)r * width, sizeof(float) * width) != 0;
        drop(t, DEV, dg, sizeof(float) * ng), drop(t, DEV, da, sizeof(float) * n), drop(t, DEV, dout, sizeof(float) * n);
        free(gate), free(parts), free(fused);
    }
    return differ;
}

/* The step as tests/paged_layout.h lays it out (as tests/test_backend_ops.c
 * runs it).
 * kv_write: the pools bitwise equal (the GPU converts with the same
 * arithmetic: bf16/f16 round to nearest even, Q8_0 amax / 127 and roundf).
 * attention: float32 scores, exponentials and an online softmax merged
 * across warps and chunks against the reference's double, 1e-5 norm-wise;
 * 1e-2 with bf16 activations (queries, the step's keys and values, and the
 * probabilities rounded to bf16 on tensor cores: 2^-9 relative each).
 * And the device's attention_gated against its parts (gated_vs_parts). */
static void attention_case_laid(twin *t, const attention_spec *sp, bool by_sequence) {
    paged_layout l;
    paged_layout_make(&l, sp, by_sequence);
    int width = l.width, ps = sp->page_size;
    uint8_t *nan_page = malloc(l.page_bytes);
    memset(nan_page, 0xff, l.page_bytes); /* NaN in every cache dtype */
    size_t wbytes = sizeof(float) * (size_t)(l.n_write + 1) * width,
           fbytes = sizeof(float) * (size_t)(l.n_rows + 1) * width,
           out_bytes = sizeof(float) * (size_t)(l.n_rows + 1) * l.q_width;
    uint8_t *pool_host[2];
    float *out[2];
    int gated_differ = 0;
    for (int b = 0; b < 2; b++) {
        uint8_t *base = put(t, b, NULL, l.pool_bytes);
        lg_kv_pool_view view = {base, ps, width, l.row_bytes, l.page_bytes, sp->cache};
        float *dk = put(t, b, l.wk, wbytes), *dv = put(t, b, l.wv, wbytes);
        t->be[b]->ops->kv_write(t->c[b], &view, &(lg_kv_write_args){l.slots, l.n_write}, dk, dv);
        pool_host[b] = get(t, b, base, l.pool_bytes);
        write_bytes(t, b, base, nan_page, l.page_bytes);
        float *dfk = put(t, b, l.fk, fbytes), *dfv = put(t, b, l.fv, fbytes), *dq = put(t, b, l.q, out_bytes),
              *dout = put(t, b, NULL, out_bytes);
        lg_attention_args a = {l.n_rows, l.pos, l.tables, l.from,   l.fresh_at, l.fresh_rows,
                               dfk,      dfv,   sp->n_heads, sp->n_kv, sp->hd,     sp->window};
        t->be[b]->ops->attention(t->c[b], &view, dout, dq, &a);
        out[b] = get(t, b, dout, out_bytes);
        settle(t, b, "kv_write and attention");
        if (b == DEV && t->be[b]->ops->attention_gated) gated_differ = gated_vs_parts(t, &view, dq, &a, out[b]);
        drop(t, b, base, l.pool_bytes), drop(t, b, dk, wbytes), drop(t, b, dv, wbytes);
        drop(t, b, dfk, fbytes), drop(t, b, dfv, fbytes), drop(t, b, dq, out_bytes);
        drop(t, b, dout, out_bytes);
    }
    char what[160];
    attention_spec_describe(sp, what, sizeof what);
    CHECKF(memcmp(pool_host[DEV], pool_host[REF], l.pool_bytes) == 0, "%s: pools differ after kv_write", what);
    double e = op_rel(out[DEV], out[REF], (size_t)l.n_rows * l.q_width), tol = t->bf16_activations ? 1e-2 : 1e-5;
    CHECKF(e < tol, "%s: rel %.3e", what, e);
    CHECKF(gated_differ == 0, "%s: %d rows differ gated in the attention from gated after it", what, gated_differ);

    free(pool_host[0]), free(pool_host[1]), free(out[0]), free(out[1]), free(nan_page);
    paged_layout_free(&l);
}

/* The step's rows interleaved across sequences. */
static void attention_case(twin *t, const attention_spec *sp) { attention_case_laid(t, sp, false); }

/* The shapes of tests/test_backend_ops.c in the float caches (f32, f16,
 * bf16): page sizes 16 and 5, GQA groups 1/2/3 with odd head counts and
 * head_dim, windows inside a page, of one page and larger than the context,
 * rows starting on page edges, 1 and 300 query rows. */
static void test_attention_shapes(void) {
    twin t;
    if (!twin_open(&t)) return;
    lg_dtype dts[] = {LG_DTYPE_F32, LG_DTYPE_F16, LG_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        lg_dtype c = dts[d];
        attention_spec cases[] = {
            {6, 2, 16, 16, 0, c, 1, {0}, {13}},
            {8, 2, 16, 16, 8, c, 1, {0}, {70}},  /* sliding, batch longer than the window */
            {8, 2, 16, 5, 8, c, 1, {21}, {1}},   /* decode step, window inside a page */
            {8, 2, 16, 5, 8, c, 1, {19}, {5}},   /* batch after a slid window */
            {12, 4, 24, 16, 0, c, 1, {37}, {9}}, /* global, odd sizes */
            {3, 3, 7, 5, 4, c, 1, {5}, {3}},     /* no grouping, odd head_dim */
            {5, 5, 12, 5, 0, c, 3, {7, 0, 16}, {3, 11, 1}},
            {6, 3, 10, 16, 16, c, 2, {33, 15}, {4, 2}}, /* window of one page, across edges */
            {9, 3, 8, 5, 6, c, 3, {12, 4, 30}, {1, 7, 2}},
            {7, 7, 9, 16, 1000, c, 2, {40, 2}, {1, 5}},  /* window larger than the context */
            {6, 2, 20, 5, 5, c, 2, {10, 25}, {5, 1}},    /* window = page, rows on page edges */
            {4, 2, 16, 16, 0, c, 2, {0, 300}, {300, 1}}, /* 300 rows of prefill beside a decode */
            {6, 2, 16, 5, 37, c, 1, {0}, {300}}, /* 300 rows sliding over 5-position pages */
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            attention_case(&t, &cases[i]);
    }
    twin_close(&t);
}

/* Contexts past 256 positions (many chunks of 32 positions: 282 at 9000,
 * merged by the last block), windows of XS.2's 512 over longer contexts
 * with a window edge inside a page, the Q8_0 cache (head_dim a multiple of
 * its block), head_dim 160 (two groups of 128 dims per lane), head_dim 96
 * and 128 (prompt tiles of 128 pairs on tensor cores), and 17 query heads per
 * KV head (> 16: the one-pass kernel). */
static void test_attention_long_and_unsplit(void) {
    twin t;
    if (!twin_open(&t)) return;
    lg_dtype dts[] = {LG_DTYPE_F32, LG_DTYPE_BF16, LG_DTYPE_F16};
    for (int d = 0; d < 3; d++) {
        lg_dtype c = dts[d];
        attention_spec cases[] = {
            {8, 2, 64, 16, 0, c, 1, {700}, {1}},
            {6, 3, 32, 5, 0, c, 2, {300, 0}, {1, 300}},
            {12, 4, 128, 16, 512, c, 2, {900, 517}, {3, 1}},
            {2, 1, 32, 16, 0, c, 1, {9000}, {1}},
            {17, 1, 16, 16, 0, c, 1, {40}, {3}},
            {4, 2, 160, 5, 7, c, 2, {30, 300}, {2, 1}},
            {34, 2, 24, 5, 0, c, 2, {260, 3}, {1, 4}},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            attention_case(&t, &cases[i]);
    }
    lg_dtype q8 = LG_DTYPE_Q8_0;
    attention_spec q8_cases[] = {
        {8, 2, 32, 16, 8, q8, 1, {21}, {3}},
        {6, 3, 64, 16, 0, q8, 1, {40}, {1}},
        {6, 2, 32, 5, 7, q8, 3, {9, 0, 23}, {2, 6, 1}},
        {3, 1, 32, 5, 0, q8, 2, {11, 3}, {4, 4}},
        {8, 2, 64, 16, 0, q8, 1, {400}, {1}},
        {6, 2, 32, 16, 0, q8, 2, {0, 333}, {300, 1}},
        {12, 4, 128, 16, 512, q8, 1, {1000}, {2}},
        {17, 1, 32, 5, 0, q8, 1, {50}, {2}},
        {4, 2, 160, 16, 0, q8, 1, {300}, {1}},
    };
    for (size_t i = 0; i < sizeof q8_cases / sizeof q8_cases[0]; i++)
        attention_case(&t, &q8_cases[i]);
    twin_close(&t);
}

/* Prompts laid out as the engine lays them out (each sequence's rows
 * together, at consecutive positions): the chunked kernel's tiles, run as
 * one block per tile walking its chunks (at least 256 blocks of (tile, KV
 * head)) or split over chunks (fewer), tiles cut by windows and page edges,
 * with decode rows of other sequences around them; and many single rows
 * (1024 blocks and more walk their chunks too). */
static void test_attention_tiles(void) {
    twin t;
    if (!twin_open(&t)) return;
    lg_dtype dts[] = {LG_DTYPE_F32, LG_DTYPE_BF16, LG_DTYPE_Q8_0};
    for (int d = 0; d < 3; d++) {
        lg_dtype c = dts[d];
        attention_spec cases[] = {
            {48, 8, 64, 16, 100, c, 1, {50}, {330}},          /* 33 tiles x 8: loop */
            {64, 8, 32, 5, 0, c, 2, {0, 61}, {290, 1}},       /* 37 tiles x 8: loop */
            {8, 2, 64, 5, 37, c, 3, {3, 90, 0}, {1, 75, 40}}, /* split, window cuts tiles */
            {16, 1, 32, 16, 0, c, 2, {33, 7}, {21, 2}},       /* group 16: 4-row tiles */
            {6, 6, 32, 5, 9, c, 2, {100, 0}, {130, 3}},       /* group 1: 64-row tiles */
            {4, 2, 160, 5, 0, c, 1, {40}, {45}},              /* head_dim 160 */
            /* head_dim 65-128 on tensor cores: prompt tiles of up to 128 pairs (16 warps) */
            {16, 2, 128, 16, 0, c, 1, {20}, {150}},           /* group 8: 16-row tiles */
            {12, 4, 96, 5, 37, c, 2, {0, 61}, {200, 1}},      /* group 3: 42-row tiles, sliding */
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            attention_case_laid(&t, &cases[i], true);
        /* 380 decode-like rows of three sequences interleaved, x 8 KV heads: single-row tiles
         * walking their chunks in one block each */
        attention_case(&t, &(attention_spec){16, 8, 32, 5, 20, c, 3, {10, 0, 40}, {130, 120, 130}});
    }
    twin_close(&t);
}

/* Batch invariance of attention: each row's output is bitwise the same
 * whatever else the step holds. A run of a sequence's rows: in the whole
 * prompt, in a prompt that starts at another position (tiles cut
 * elsewhere), behind decode rows of another sequence. A sequence's single
 * row (a decode step, its earlier positions from the pool; the GPU computes
 * it in groups of chunks, runs chunk by chunk): alone and behind other rows.
 * The pool is float32 (unless the shape says otherwise), so a position reads
 * the same float from the pool as from the step's rows; every call gives
 * each row the same inputs. Shapes
 * of XS.2 (64 or 48 heads over 8 KV heads, head_dim 128, window 512) and
 * awkward ones (page 5, windows inside tiles, groups 1-16, odd head_dim,
 * head_dim 160); calls of many tiles run as loops, calls of few split. */
typedef struct {
    int n_heads, n_kv, hd, page_size, window, n;
    lg_dtype pool; /* LG_DTYPE_F32 unless set */
} invariance_shape;

typedef struct {
    invariance_shape sh;
    int width, q_width, nb;   /* nb: positions of the second sequence */
    float *k[2], *v[2], *q[2]; /* per sequence, per position */
    int32_t *table[2];
    lg_kv_pool_view view;
    size_t pool_bytes;
} invariance_setup;

/* Query rows: `other` rows of sequence 1 (its last positions), then
 * sequence 0's positions [first, first + count); sequence 0's rows of the
 * output into out (count x q_width). */
static void invariance_call(twin *t, const invariance_setup *u, int first, int count, int other,
                            float *out) {
    int n_rows = other + count, width = u->width, q_width = u->q_width;
    int32_t *pos = malloc(sizeof(int32_t) * n_rows), *from = malloc(sizeof(int32_t) * n_rows);
    int32_t *fat = malloc(sizeof(int32_t) * n_rows), *frows = malloc(sizeof(int32_t) * n_rows);
    const int32_t **tabs = malloc(sizeof(int32_t *) * n_rows);
    float *fk = malloc(sizeof(float) * (size_t)n_rows * width),
          *fv = malloc(sizeof(float) * (size_t)n_rows * width),
          *q = malloc(sizeof(float) * (size_t)n_rows * q_width);
    for (int r = 0; r < n_rows; r++) {
        int s = r < other ? 1 : 0, p = s ? u->nb - other + r : first + r - other;
        pos[r] = p, from[r] = s ? u->nb - other : first, fat[r] = s ? 0 : other;
        frows[r] = r, tabs[r] = u->table[s];
        memcpy(fk + (size_t)r * width, u->k[s] + (size_t)p * width, sizeof(float) * width);
        memcpy(fv + (size_t)r * width, u->v[s] + (size_t)p * width, sizeof(float) * width);
        memcpy(q + (size_t)r * q_width, u->q[s] + (size_t)p * q_width, sizeof(float) * q_width);
    }
    size_t kv_bytes = sizeof(float) * (size_t)n_rows * width,
           q_bytes = sizeof(float) * (size_t)n_rows * q_width;
    float *dk = put(t, DEV, fk, kv_bytes), *dv = put(t, DEV, fv, kv_bytes),
          *dq = put(t, DEV, q, q_bytes), *dout = put(t, DEV, NULL, q_bytes);
    lg_attention_args a = {n_rows, pos, tabs, from, fat, frows, dk, dv, u->sh.n_heads, u->sh.n_kv,
                           u->sh.hd, u->sh.window};
    t->be[DEV]->ops->attention(t->c[DEV], &u->view, dout, dq, &a);
    float *o = get(t, DEV, dout, q_bytes);
    settle(t, DEV, "attention");
    memcpy(out, o + (size_t)other * q_width, sizeof(float) * (size_t)count * q_width);
    drop(t, DEV, dk, kv_bytes), drop(t, DEV, dv, kv_bytes), drop(t, DEV, dq, q_bytes);
    drop(t, DEV, dout, q_bytes);
    free(o), free(pos), free(from), free(fat), free(frows), free(tabs), free(fk), free(fv), free(q);
}

/* Both sequences' keys, values and queries (random), written into a float32
 * pool over shuffled pages of the device. */
static void invariance_setup_new(twin *t, invariance_setup *u, invariance_shape sh) {
    *u = (invariance_setup){.sh = sh, .nb = 40};
    int n = u->sh.n, ps = u->sh.page_size, len[2] = {n, u->nb};
    u->width = u->sh.n_kv * u->sh.hd, u->q_width = u->sh.n_heads * u->sh.hd;
    size_t row_bytes = lg_dtype_row_bytes(sh.pool, u->width), page_bytes = 2 * (size_t)ps * row_bytes;
    int n_pages = (n + ps - 1) / ps + (u->nb + ps - 1) / ps, next = 0;
    int *perm = malloc(sizeof(int) * n_pages);
    for (int i = 0; i < n_pages; i++)
        perm[i] = i;
    for (int i = n_pages - 1; i > 0; i--) {
        int j = op_irand(i + 1), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    u->pool_bytes = (size_t)n_pages * page_bytes;
    uint8_t *base = put(t, DEV, NULL, u->pool_bytes);
    u->view = (lg_kv_pool_view){base, ps, u->width, row_bytes, page_bytes, sh.pool};
    for (int s = 0; s < 2; s++) {
        u->table[s] = malloc(sizeof(int32_t) * ((len[s] + ps - 1) / ps));
        for (int p = 0; p < (len[s] + ps - 1) / ps; p++)
            u->table[s][p] = perm[next++];
        u->k[s] = op_frand_array((size_t)len[s] * u->width, 1.0f);
        u->v[s] = op_frand_array((size_t)len[s] * u->width, 1.0f);
        u->q[s] = op_frand_array((size_t)len[s] * u->q_width, 3.0f);
        int32_t *slots = malloc(sizeof(int32_t) * len[s]);
        for (int p = 0; p < len[s]; p++)
            slots[p] = u->table[s][p / ps] * ps + p % ps;
        size_t bytes = sizeof(float) * (size_t)len[s] * u->width;
        float *dk = put(t, DEV, u->k[s], bytes), *dv = put(t, DEV, u->v[s], bytes);
        t->be[DEV]->ops->kv_write(t->c[DEV], &u->view, &(lg_kv_write_args){slots, len[s]}, dk, dv);
        settle(t, DEV, "kv_write");
        drop(t, DEV, dk, bytes), drop(t, DEV, dv, bytes);
        free(slots);
    }
    free(perm);
}

static void invariance_setup_free(twin *t, invariance_setup *u) {
    drop(t, DEV, u->view.base, u->pool_bytes);
    for (int s = 0; s < 2; s++)
        free(u->table[s]), free(u->k[s]), free(u->v[s]), free(u->q[s]);
}

static void attention_invariance(twin *t, const invariance_shape *shapes, size_t n_shapes) {
    for (size_t si = 0; si < n_shapes; si++) {
        invariance_setup u;
        invariance_setup_new(t, &u, shapes[si]);
        int n = u.sh.n, ps = u.sh.page_size;
        size_t row_floats = (size_t)u.q_width;
        float *whole = malloc(sizeof(float) * (size_t)n * row_floats),
              *part = malloc(sizeof(float) * (size_t)n * row_floats), *alone = malloc(sizeof(float) * row_floats);
        invariance_call(t, &u, 0, n, 0, whole);
        const int calls[][3] = {/* first, count, other rows before */
                                {n - 1, 1, 3},  {0, 1, 2},           {n / 2, 1, 2},
                                {5, 1, 1},      {1, n - 1, 0},       {7, 30, 3},
                                {n - 17, 17, 1}, {n / 3, n - n / 3, 0}, {n - 70, 70, 2},
                                {n - 2, 2, 1},  {9, 11, 0},          {n / 2, 2, 0}};
        for (size_t ci = 0; ci < sizeof calls / sizeof calls[0]; ci++) {
            int first = calls[ci][0], count = calls[ci][1];
            /* a single row (a decode row) against itself alone, runs of rows against the whole prompt */
            const float *want = whole + (size_t)first * row_floats;
            if (count == 1) {
                invariance_call(t, &u, first, 1, 0, alone);
                want = alone;
            }
            invariance_call(t, &u, first, count, calls[ci][2], part);
            int differ = 0;
            for (int r = 0; r < count; r++)
                differ += memcmp(part + (size_t)r * row_floats, want + (size_t)r * row_floats,
                                 sizeof(float) * row_floats) != 0;
            CHECKF(differ == 0,
                   "heads %d/%d hd %d page %d window %d: %d of rows [%d, %d) (after %d rows of "
                   "another sequence) differ from the %s",
                   u.sh.n_heads, u.sh.n_kv, u.sh.hd, ps, u.sh.window, differ, first, first + count,
                   calls[ci][2], count == 1 ? "row alone" : "whole prompt's");
        }
        invariance_setup_free(t, &u);
        free(whole), free(part), free(alone);
    }
}

static void test_attention_batch_invariant(void) {
    twin t;
    if (!twin_open(&t)) return;
    const invariance_shape shapes[] = {
        {64, 8, 128, 16, 512, 300, LG_DTYPE_F32}, {48, 8, 128, 16, 0, 400, LG_DTYPE_F32},
        {8, 2, 64, 5, 0, 300, LG_DTYPE_F32}, {12, 2, 24, 5, 40, 200, LG_DTYPE_F32},
        {16, 1, 36, 16, 0, 150, LG_DTYPE_F32}, {6, 6, 20, 5, 0, 100, LG_DTYPE_F32},
        {4, 2, 160, 5, 37, 120, LG_DTYPE_F32}, {3, 1, 7, 16, 0, 90, LG_DTYPE_F32},
    };
    attention_invariance(&t, shapes, sizeof shapes / sizeof shapes[0]);
    twin_close(&t);
}

/* Attention with bf16 activations (the option): on tensor cores the
 * queries, the step's keys and values and the probabilities are rounded to
 * bf16 in every kernel alike, so rows stay batch invariant; over a bf16
 * pool a step's rounded keys are the pool's own, so a decode row (its
 * earlier positions from the pool) is bitwise its row of the whole prompt
 * too (head_dim up to 128; past it the CUDA-core kernel keeps float32).
 * Against the reference at the bf16 bound (attention_case_laid), in
 * the general kernel, prompt tiles of 128 pairs and the decode kernel. */
static void test_attention_bf16_activations(void) {
    twin t;
    if (!twin_open_as(&t, true)) return;
    const invariance_shape shapes[] = {
        {12, 2, 24, 5, 40, 200, LG_DTYPE_F32},     {16, 2, 96, 16, 0, 150, LG_DTYPE_F32},
        {4, 2, 160, 5, 37, 120, LG_DTYPE_F32},     {64, 8, 128, 16, 512, 300, LG_DTYPE_BF16},
        {48, 8, 128, 16, 0, 400, LG_DTYPE_BF16},   {8, 2, 64, 5, 0, 300, LG_DTYPE_BF16},
    };
    /* the bf16 pools' claim is the GPU's: the CPU's attention stays float32 with the option */
    bool rounds_attention = strcmp(t.be[DEV]->ops->name, "cuda") == 0;
    attention_invariance(&t, shapes, rounds_attention ? 6 : 3);
    lg_dtype dts[] = {LG_DTYPE_BF16, LG_DTYPE_F32};
    for (int d = 0; d < 2; d++) {
        lg_dtype c = dts[d];
        attention_spec cases[] = {
            {64, 8, 128, 16, 512, c, 2, {700, 0}, {1, 300}}, /* XS.2's shape: a decode row beside a prompt */
            {16, 2, 128, 16, 0, c, 1, {20}, {150}},          /* prompt tiles of 128 pairs */
            {12, 4, 96, 5, 37, c, 2, {0, 61}, {200, 1}},     /* group 3, sliding */
            {8, 2, 64, 5, 37, c, 3, {3, 90, 0}, {1, 75, 40}},
            {6, 3, 32, 5, 0, c, 2, {300, 0}, {1, 300}},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            attention_case_laid(&t, &cases[i], true);
    }
    twin_close(&t);
}

/* A device context made with an environment switch set (the CUDA backend
 * reads its attention settings when a context is made); NULL to unset. */
static lg_backend_ctx *ctx_with(twin *t, const char *name, const char *value) {
    if (value) setenv(name, value, 1);
    else unsetenv(name);
    lg_backend_ctx *c = t->be[DEV]->ops->ctx_new(t->be[DEV], &test_sizes);
    unsetenv(name);
    CHECKF(c != NULL, "%s: no context with %s=%s", t->be[DEV]->ops->name, name, value ? value : "");
    return c;
}

/* Decode rows (their sequence's only row in the step) merge their chunks in
 * groups (CUDA: LAGUNA_CUDA_ATTN_GROUPS, ~128 groups by default, so one chunk
 * a group below 4096 positions): with 3 groups a row, groups of many chunks at
 * short contexts, against the reference (float32, bf16 read raw and fetched
 * ahead, f16, Q8_0; windows; head_dim 160; 16 query heads per KV head); and a
 * row's bits the same split over its groups (few rows) and walked by one
 * block (many rows: LAGUNA_CUDA_ATTN_DECODE_LOOP_MIN=1 makes one row do it),
 * with 3 groups and with the default ones,
 * over float32 and bf16 pools (CUDA: a bf16 pool's rows copied straight into
 * the tensor-core kernel's stages). */
static void test_attention_decode_groups(void) {
    setenv("LAGUNA_CUDA_ATTN_GROUPS", "3", 1);
    twin t;
    bool open = twin_open(&t);
    unsetenv("LAGUNA_CUDA_ATTN_GROUPS");
    if (!open) return;
    lg_dtype dts[] = {LG_DTYPE_F32, LG_DTYPE_BF16, LG_DTYPE_F16, LG_DTYPE_Q8_0};
    for (int d = 0; d < 4; d++) {
        lg_dtype c = dts[d];
        attention_spec cases[] = {
            {8, 2, 64, 16, 0, c, 1, {700}, {1}},
            {2, 1, 32, 16, 0, c, 1, {9000}, {1}},
            {12, 4, 128, 16, 512, c, 2, {900, 517}, {1, 1}},
            {6, 2, 32, 5, 37, c, 3, {100, 3, 64}, {1, 1, 1}},
            {16, 1, 32, 16, 0, c, 1, {333}, {1}},
            {4, 2, 160, 5, 70, c, 2, {30, 300}, {1, 1}},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            attention_case(&t, &cases[i]); /* head_dim a multiple of 32: whole Q8_0 blocks */
    }
    const invariance_shape shapes[] = {
        {64, 8, 128, 16, 512, 1100, LG_DTYPE_F32}, {48, 8, 128, 16, 0, 2000, LG_DTYPE_F32},
        {64, 8, 128, 16, 512, 1100, LG_DTYPE_BF16}, {48, 8, 128, 16, 0, 2000, LG_DTYPE_BF16},
        {8, 2, 64, 5, 37, 300, LG_DTYPE_BF16}, {2, 1, 32, 16, 0, 700, LG_DTYPE_BF16},
        {12, 2, 24, 5, 40, 300, LG_DTYPE_F32}, {16, 1, 36, 16, 0, 500, LG_DTYPE_F32},
        {4, 2, 160, 5, 0, 400, LG_DTYPE_F32}, {3, 1, 7, 16, 0, 90, LG_DTYPE_F32},
    };
    lg_backend_ctx *split = ctx_with(&t, "LAGUNA_CUDA_ATTN_GROUPS", "3");
    setenv("LAGUNA_CUDA_ATTN_GROUPS", "3", 1);
    lg_backend_ctx *walk = ctx_with(&t, "LAGUNA_CUDA_ATTN_DECODE_LOOP_MIN", "1");
    unsetenv("LAGUNA_CUDA_ATTN_GROUPS");
    /* the default groups (one chunk a group here): up to 63 records a row, past the
     * merge kernel's batches of 16 */
    lg_backend_ctx *split_default = ctx_with(&t, "LAGUNA_CUDA_ATTN_DECODE_LOOP_MIN", NULL);
    lg_backend_ctx *walk_default = ctx_with(&t, "LAGUNA_CUDA_ATTN_DECODE_LOOP_MIN", "1");
    lg_backend_ctx *plain = t.c[DEV];
    for (size_t si = 0; split && walk && split_default && walk_default && si < sizeof shapes / sizeof shapes[0];
         si++) {
        invariance_setup u;
        invariance_setup_new(&t, &u, shapes[si]);
        size_t bytes = sizeof(float) * (size_t)u.q_width;
        float *a = malloc(bytes), *b = malloc(bytes);
        int rows[] = {u.sh.n - 1, u.sh.n / 2, 33, 0};
        for (int k = 0; k < 4; k++) {
            lg_backend_ctx *pairs[2][2] = {{split, walk}, {split_default, walk_default}};
            for (int p = 0; p < 2; p++) {
                t.c[DEV] = pairs[p][0];
                invariance_call(&t, &u, rows[k], 1, 0, a);
                t.c[DEV] = pairs[p][1];
                invariance_call(&t, &u, rows[k], 1, 0, b);
                t.c[DEV] = plain;
                CHECKF(memcmp(a, b, bytes) == 0,
                       "heads %d/%d hd %d window %d pool %s: row %d split over %s groups and walked differ",
                       u.sh.n_heads, u.sh.n_kv, u.sh.hd, u.sh.window, lg_dtype_name(u.sh.pool), rows[k],
                       p ? "the default" : "3");
            }
        }
        invariance_setup_free(&t, &u);
        free(a), free(b);
    }
    t.c[DEV] = plain;
    if (split) t.be[DEV]->ops->ctx_free(split);
    if (walk) t.be[DEV]->ops->ctx_free(walk);
    if (split_default) t.be[DEV]->ops->ctx_free(split_default);
    if (walk_default) t.be[DEV]->ops->ctx_free(walk_default);
    twin_close(&t);
}

/* Prompt tiles over a bf16 pool (head_dim 72-128) take their own kernel
 * (CUDA: cuda_attention_prompt.cu, the step's keys and values split once a
 * launch, a warp's pairs' whole chunk in registers) that computes the
 * general tensor-core kernel's chunks (LAGUNA_CUDA_ATTN_PROMPT=0): each
 * row's output bitwise the same from both, looping (>= 256 blocks of
 * (tile, KV head)) and split, whole prompts and prompts after pooled
 * positions (chunks of pool and step rows together, behind rows of another
 * sequence), XS.2's shapes (windowed and global) and head_dim 96 over
 * 5-position pages; and a loop-sized prompt against the reference. */
static void test_attention_prompt_kernel(void) {
    twin t;
    if (!twin_open(&t)) return;
    attention_case_laid(&t, &(attention_spec){64, 8, 128, 16, 512, LG_DTYPE_BF16, 1, {40}, {600}}, true);
    lg_backend_ctx *general = ctx_with(&t, "LAGUNA_CUDA_ATTN_PROMPT", "0"), *plain = t.c[DEV];
    const invariance_shape shapes[] = {
        {64, 8, 128, 16, 512, 1100, LG_DTYPE_BF16},
        {48, 8, 128, 16, 0, 700, LG_DTYPE_BF16},
        {12, 4, 96, 5, 37, 400, LG_DTYPE_BF16},
    };
    for (size_t si = 0; general && si < sizeof shapes / sizeof shapes[0]; si++) {
        invariance_setup u;
        invariance_setup_new(&t, &u, shapes[si]);
        int n = u.sh.n;
        size_t floats = (size_t)n * u.q_width;
        float *a = malloc(sizeof(float) * floats), *b = malloc(sizeof(float) * floats);
        const int calls[][3] = {/* first, count, other rows before */
                                {0, n, 0}, {n / 3, n - n / 3, 2}, {n - 150, 150, 0}, {7, 30, 1}};
        for (size_t ci = 0; ci < sizeof calls / sizeof calls[0]; ci++) {
            int first = calls[ci][0], count = calls[ci][1];
            t.c[DEV] = plain;
            invariance_call(&t, &u, first, count, calls[ci][2], a);
            t.c[DEV] = general;
            invariance_call(&t, &u, first, count, calls[ci][2], b);
            t.c[DEV] = plain;
            int differ = 0;
            for (int r = 0; r < count; r++)
                differ += memcmp(a + (size_t)r * u.q_width, b + (size_t)r * u.q_width, sizeof(float) * u.q_width) != 0;
            CHECKF(differ == 0, "heads %d/%d hd %d page %d window %d: %d of rows [%d, %d) differ between the prompt "
                   "kernel and the general one", u.sh.n_heads, u.sh.n_kv, u.sh.hd, u.sh.page_size, u.sh.window,
                   differ, first, first + count);
        }
        invariance_setup_free(&t, &u);
        free(a), free(b);
    }
    t.c[DEV] = plain;
    if (general) t.be[DEV]->ops->ctx_free(general);
    twin_close(&t);
}

/* ---- output gate, silu_mul, add, gather_rows, buffers --------------------- */

/* softplus in float32 (log1pf(expf), x past 20 as is) against double, then
 * one product: a few ulp per element, 1e-6 norm-wise; gates span the cut. */
static void test_output_gate(void) {
    twin t;
    if (!twin_open(&t)) return;
    /* rows of whole float4s or not; per head, heads of whole float4s or not ({5, 4, 3}) */
    int shapes[][3] = {{1, 5, 13}, {7, 3, 16}, {300, 1, 9}, {11, 9, 1}, {300, 48, 128}, {5, 4, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int per_head = 0; per_head < 2; per_head++) {
            int rows = shapes[s][0], heads = shapes[s][1], hd = shapes[s][2];
            size_t n = (size_t)rows * heads * hd, ng = per_head ? (size_t)rows * heads : n;
            float *attn = op_frand_array(n, 1.0f), *gate = op_frand_array(ng, 25.0f), *out[2];
            for (int b = 0; b < 2; b++) {
                float *da = put(&t, b, attn, sizeof(float) * n),
                      *dg = put(&t, b, gate, sizeof(float) * ng);
                t.be[b]->ops->output_gate(t.c[b], da, dg, rows, heads, hd, per_head);
                out[b] = get(&t, b, da, sizeof(float) * n);
                settle(&t, b, "output_gate");
                drop(&t, b, da, sizeof(float) * n), drop(&t, b, dg, sizeof(float) * ng);
            }
            double e = op_rel(out[DEV], out[REF], n);
            CHECKF(e < 1e-6, "%d x %d x %d per_head %d: rel %.3e", rows, heads, hd, per_head, e);
            free(attn), free(gate), free(out[0]), free(out[1]);
        }
    twin_close(&t);
}

/* silu in float32 against double: a few ulp, 1e-6 norm-wise; also in place
 * (out == gate), as the MoE block calls it. */
static void test_silu_mul(void) {
    twin t;
    if (!twin_open(&t)) return;
    size_t sizes[] = {1, 7, 1001, (1u << 20) + 3, 1u << 20}; /* the last in 16-byte pieces */
    for (int si = 0; si < 5; si++)
        for (int in_place = 0; in_place < 2; in_place++) {
            size_t n = sizes[si], bytes = sizeof(float) * n;
            float *g = op_frand_array(n, 30.0f), *u = op_frand_array(n, 2.0f), *out[2];
            for (int b = 0; b < 2; b++) {
                float *dg = put(&t, b, g, bytes), *du = put(&t, b, u, bytes);
                float *dout = in_place ? dg : put(&t, b, NULL, bytes);
                t.be[b]->ops->silu_mul(t.c[b], dout, dg, du, n);
                out[b] = get(&t, b, dout, bytes);
                settle(&t, b, "silu_mul");
                if (!in_place) drop(&t, b, dout, bytes);
                drop(&t, b, dg, bytes), drop(&t, b, du, bytes);
            }
            double e = op_rel(out[DEV], out[REF], n);
            CHECKF(e < 1e-6, "n %zu in_place %d: rel %.3e", n, in_place, e);
            free(g), free(u), free(out[0]), free(out[1]);
        }
    twin_close(&t);
}

/* One float32 add per element: bitwise x + y computed here. */
static void test_add(void) {
    twin t;
    if (!twin_open(&t)) return;
    size_t sizes[] = {1, 7, 1001, (1u << 20) + 3};
    for (int si = 0; si < 4; si++) {
        size_t n = sizes[si], bytes = sizeof(float) * n;
        float *x = op_frand_array(n, 1.0f), *y = op_frand_array(n, 100.0f), *want = malloc(bytes);
        for (size_t i = 0; i < n; i++)
            want[i] = x[i] + y[i];
        float *dx = put(&t, DEV, x, bytes), *dy = put(&t, DEV, y, bytes);
        t.be[DEV]->ops->add(t.c[DEV], dx, dy, n);
        float *got = get(&t, DEV, dx, bytes);
        settle(&t, DEV, "add");
        CHECKF(memcmp(got, want, bytes) == 0, "n %zu", n);
        free(got), drop(&t, DEV, dx, bytes), drop(&t, DEV, dy, bytes);
        free(x), free(y), free(want);
    }
    twin_close(&t);
}

/* prefetch_weights is a hint: matrices at any address and of any size (none
 * a multiple of 16 bytes, one empty, one beyond what L2 holds, one that is
 * NULL) leave the stream working, the op after them exact. */
static void test_prefetch_weights(void) {
    twin t;
    if (!twin_open(&t) || !twin_has(&t, t.be[DEV]->ops->prefetch_weights != NULL, "prefetch_weights")) return;
    size_t big = (size_t)160 << 20;
    uint8_t *weights = put(&t, DEV, NULL, big);
    lg_matrix m[6] = {
        {LG_DTYPE_BF16, 1, 2, 5, weights + 1},       {LG_DTYPE_BF16, 3, 2049, 4099, weights + 7},
        {LG_DTYPE_BF16, 0, 8, 16, weights + 15},     {LG_DTYPE_BF16, 40000, 2048, 4097, weights + 3},
        {LG_DTYPE_BF16, 2, 8, 16, NULL},             {LG_DTYPE_BF16, 7, 3, 6, weights + big - 42},
    };
    const lg_matrix *all[6] = {&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]};
    for (int n = 1; n <= 6; n++) t.be[DEV]->ops->prefetch_weights(t.c[DEV], all + 6 - n, n);
    size_t n = 1001, bytes = sizeof(float) * n;
    float *x = op_frand_array(n, 1.0f), *y = op_frand_array(n, 1.0f), *want = malloc(bytes);
    for (size_t i = 0; i < n; i++) want[i] = x[i] + y[i];
    float *dx = put(&t, DEV, x, bytes), *dy = put(&t, DEV, y, bytes);
    t.be[DEV]->ops->prefetch_weights(t.c[DEV], all + 3, 1);
    t.be[DEV]->ops->add(t.c[DEV], dx, dy, n);
    float *got = get(&t, DEV, dx, bytes);
    settle(&t, DEV, "prefetch_weights");
    CHECK(memcmp(got, want, bytes) == 0);
    free(got), free(x), free(y), free(want);
    drop(&t, DEV, dx, bytes), drop(&t, DEV, dy, bytes), drop(&t, DEV, weights, big);
    twin_close(&t);
}

/* Rows copied exactly, repeats and any order allowed. */
static void test_gather_rows(void) {
    twin t;
    if (!twin_open(&t)) return;
    int shapes[][3] = {{1, 1, 1}, {9, 4, 37}, {300, 300, 5}, {5, 17, 1}, {3, 300, 4099}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int src_rows = shapes[s][0], n = shapes[s][1], width = shapes[s][2];
        float *src = op_frand_array((size_t)src_rows * width, 1.0f);
        int32_t *rows = malloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++)
            rows[i] = i == 0 ? src_rows - 1 : op_irand(src_rows);
        size_t sb = sizeof(float) * (size_t)src_rows * width,
               db = sizeof(float) * (size_t)n * width;
        float *ds = put(&t, DEV, src, sb), *dd = put(&t, DEV, NULL, db);
        t.be[DEV]->ops->gather_rows(t.c[DEV], dd, ds, rows, n, width);
        float *got = get(&t, DEV, dd, db);
        settle(&t, DEV, "gather_rows");
        int bad = 0;
        for (int i = 0; i < n; i++)
            bad += memcmp(got + (size_t)i * width, src + (size_t)rows[i] * width,
                          sizeof(float) * width) != 0;
        CHECKF(bad == 0, "%d rows of %d: %d wrong", n, width, bad);
        free(got), drop(&t, DEV, ds, sb), drop(&t, DEV, dd, db);
        free(src), free(rows);
    }
    twin_close(&t);
}

/* Greedy tokens of rows of logits (argmax_rows) against the CPU's op, which
 * is lg_argmax_f32 on each row, and the plain definition: exactly, since
 * both compare float32 values only. Rows of XS.2's vocabulary (100,352) and
 * awkward widths, starting at every alignment (the kernel loads 16 bytes at
 * a time between scalar edges), with ties, -inf, NaN (at column 0 too),
 * +inf and signed zeros; once more while a step is being recorded (the op
 * must launch the recording before it copies its results back), twice so
 * the second replays the graph. */
static void test_argmax_rows(void) {
    twin t;
    if (!twin_open(&t) || !twin_has(&t, t.be[DEV]->ops->argmax_rows != NULL, "argmax_rows")) return;
    lg_backend *cpu = lg_cpu_backend_new(1);
    lg_backend_ctx *cc = cpu ? cpu->ops->ctx_new(cpu, &test_sizes) : NULL;
    CHECK(cc && cpu->ops->argmax_rows);
    int shapes[][3] = {
        {1, 100352, 0}, {18, 100352, 0}, {9, 100352, 1}, {32, 100352, 3}, {1, 1, 0},
        {9, 5, 1},      {27, 1023, 2},   {45, 4097, 3},  {300, 37, 1}}; /* rows, cols, offset */
    for (size_t s = 0; cc && s < sizeof shapes / sizeof shapes[0]; s++) {
        int n_rows = shapes[s][0], n_cols = shapes[s][1], off = shapes[s][2];
        float *x = op_argmax_rows_input(n_rows, n_cols);
        int32_t *want = malloc(sizeof(int32_t) * n_rows), *got = malloc(sizeof(int32_t) * n_rows);
        cpu->ops->argmax_rows(cc, want, x, n_rows, n_cols);
        int plain_bad = 0;
        for (int r = 0; r < n_rows; r++)
            plain_bad += want[r] != op_argmax_plain(x + (size_t)r * n_cols, n_cols);
        CHECKF(plain_bad == 0, "the CPU op: %d rows differ from the plain argmax", plain_bad);
        size_t bytes = sizeof(float) * ((size_t)n_rows * n_cols + (size_t)off);
        float *dx = put(&t, DEV, NULL, bytes);
        write_bytes(&t, DEV, dx + off, x, sizeof(float) * (size_t)n_rows * n_cols);
        for (int taped = 0; taped < 3; taped++) {
            memset(got, 0x7f, sizeof(int32_t) * n_rows);
            if (taped && t.be[DEV]->ops->step_begin) t.be[DEV]->ops->step_begin(t.c[DEV], n_rows);
            t.be[DEV]->ops->argmax_rows(t.c[DEV], got, dx + off, n_rows, n_cols);
            settle(&t, DEV, "argmax_rows");
            int bad = 0, first = -1;
            for (int r = 0; r < n_rows; r++)
                if (got[r] != want[r]) bad++, first = first < 0 ? r : first;
            CHECKF(bad == 0, "%d x %d at +%d%s: %d rows wrong, first row %d (kind %d): %d, want %d",
                   n_rows, n_cols, off, taped ? " (recorded)" : "", bad, first, first % 9,
                   first < 0 ? 0 : got[first], first < 0 ? 0 : want[first]);
        }
        drop(&t, DEV, dx, bytes);
        free(x), free(want), free(got);
    }
    if (cc) cpu->ops->ctx_free(cc);
    if (cpu) cpu->ops->destroy(cpu);
    twin_close(&t);
}

/* Buffers start zeroed, copy moves bytes between buffers (and to an offset
 * within one, not overlapping: backend.h does not promise memmove) and
 * to_host brings them back unchanged. */
static void test_buffers(void) {
    twin t;
    if (!twin_open(&t)) return;
    size_t sizes[] = {1, 4099, (size_t)5 << 20};
    for (int si = 0; si < 3; si++) {
        size_t n = sizes[si];
        uint8_t *a = put(&t, DEV, NULL, n), *c = put(&t, DEV, NULL, 2 * n + 3);
        if (!a || !c) continue;
        uint8_t *host = get(&t, DEV, a, n);
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++)
            nonzero += host[i] != 0;
        CHECKF(nonzero == 0, "fresh buffer of %zu bytes has %zu nonzero", n, nonzero);
        for (size_t i = 0; i < n; i++)
            host[i] = (uint8_t)(i * 2654435761u >> 13);
        write_bytes(&t, DEV, a, host, n);
        t.be[DEV]->ops->copy(t.c[DEV], c, a, n);
        t.be[DEV]->ops->copy(t.c[DEV], c + n + 3, c, n);
        uint8_t *back = get(&t, DEV, c, 2 * n + 3);
        settle(&t, DEV, "copy");
        CHECKF(memcmp(back, host, n) == 0 && memcmp(back + n + 3, host, n) == 0 && back[n] == 0 &&
                   back[n + 2] == 0,
               "%zu bytes through copy and to_host", n);
        free(host), free(back), drop(&t, DEV, a, n), drop(&t, DEV, c, 2 * n + 3);
    }
    twin_close(&t);
}

/* ---- router and MoE ------------------------------------------------------- */

/* Whether row r's choice is a near tie on the reference: two of its top
 * top_k + 1 selection values (score + bias) within 1e-6 but not equal.
 * The GPU's expf differs from the reference's exp by an ulp or two, so
 * there either choice is right; exact ties (equal logits) stay exact. */
static bool near_tie(const float *score, const float *bias, const int32_t *ids, int E, int K) {
    float prev = score[ids[0]] + bias[ids[0]], rest = -INFINITY;
    for (int j = 1; j < K; j++) {
        float v = score[ids[j]] + bias[ids[j]];
        if (prev != v && prev - v < 1e-6f) return true;
        prev = v;
    }
    for (int e = 0; e < E; e++) {
        bool chosen = false;
        for (int j = 0; j < K; j++)
            chosen |= ids[j] == e;
        if (!chosen && score[e] + bias[e] > rest) rest = score[e] + bias[e];
    }
    return rest != -INFINITY && prev != rest && prev - rest < 1e-6f;
}

/* Whether the device's choice `dev` for a row is a right top-K of the
 * reference's selection values to within tol: K distinct experts, none
 * valued below the reference's K-th choice less tol. (A near tie that
 * near_tie's neighbour test misses still passes; an expert the reference
 * ranks clearly lower fails.) */
static bool top_k_within(const float *score, const float *bias, const int32_t *ref, const int32_t *dev, int K,
                         float tol) {
    float kth = INFINITY;
    for (int j = 0; j < K; j++)
        kth = fminf(kth, score[ref[j]] + bias[ref[j]]);
    for (int j = 0; j < K; j++) {
        for (int i = 0; i < j; i++)
            if (dev[i] == dev[j]) return false;
        if (score[dev[j]] + bias[dev[j]] < kth - tol) return false;
    }
    return true;
}

/* Scores: sigmoid(softcap) in float32 against double, 1e-6 norm-wise; the
 * chosen experts exactly (but near ties, see near_tie and top_k_within), their weights 1e-6
 * norm-wise; exact ties keep the lower id, a bias changes the choice but not
 * the weights. Expert counts on both sides of the warp kernel's limits (512
 * experts, top_k 32), top_k 1..8 and 32 and 40. */
static void test_router(void) {
    twin t;
    if (!twin_open(&t)) return;
    struct {
        int n, E, K;
        float softcap, amp;
        int bias_kind;
    } cases[] = {
        {1, 7, 1, 0, 4, 0},     {7, 16, 2, 0, 4, 1},      {300, 8, 4, 0, 4, 2},
        {13, 7, 3, 2.5f, 8, 0}, {5, 16, 4, 2.5f, 8, 2},   {9, 5, 5, 0, 4, 1},
        {11, 9, 2, 0, 4, 0},    {300, 64, 8, 0, 4, 1},    {17, 33, 8, 30.0f, 4, 0},
        {5, 600, 8, 0, 4, 0},   {3, 600, 8, 30.0f, 4, 2}, {7, 512, 32, 0, 4, 0},
        {4, 1000, 40, 0, 4, 1}, {64, 128, 6, 0, 4, 0},    {3, 256, 7, 0, 4, 2},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int n = cases[ci].n, E = cases[ci].E, K = cases[ci].K;
        float *logits = op_frand_array((size_t)n * E, cases[ci].amp),
              *bias = calloc((size_t)E, sizeof(float));
        if (cases[ci].bias_kind == 1)
            for (int e = 0; e < E; e++)
                bias[e] = op_frand() * 0.01f;
        int boosted = E - 1;
        if (cases[ci].bias_kind == 2) bias[boosted] = 2.0f; /* past any score gap: always first */
        if (n > 1)
            for (int e = 0; e < E; e++)
                logits[(size_t)1 * E + e] = 0.25f; /* row 1: all tied */
        if (n > 2 && E > 5) logits[(size_t)2 * E + 3] = logits[(size_t)2 * E + 5] = 10.0f;
        size_t lb = sizeof(float) * (size_t)n * E, kb = sizeof(float) * (size_t)n * K,
               ib = sizeof(int32_t) * (size_t)n * K;
        float *scores[2], *weights[2];
        int32_t *ids[2];
        for (int b = 0; b < 2; b++) {
            float *dl = put(&t, b, logits, lb), *dw = put(&t, b, NULL, kb),
                  *db = put(&t, b, bias, sizeof(float) * E);
            int32_t *di = put(&t, b, NULL, ib);
            lg_router_args a = {E, K, cases[ci].softcap, db};
            t.be[b]->ops->router(t.c[b], &a, dl, di, dw, n);
            scores[b] = get(&t, b, dl, lb), weights[b] = get(&t, b, dw, kb);
            ids[b] = get(&t, b, di, ib);
            settle(&t, b, "router");
            drop(&t, b, dl, lb), drop(&t, b, dw, kb), drop(&t, b, db, sizeof(float) * E);
            drop(&t, b, di, ib);
        }
        double e = op_rel(scores[DEV], scores[REF], (size_t)n * E);
        CHECKF(e < 1e-6, "case %zu: scores rel %.3e", ci, e);
        int differ = 0, near = 0;
        double num = 0, den = 0;
        for (int r = 0; r < n; r++) {
            const int32_t *ri = ids[REF] + (size_t)r * K, *got = ids[DEV] + (size_t)r * K;
            bool same = memcmp(got, ri, sizeof(int32_t) * K) == 0;
            if (near_tie(scores[REF] + (size_t)r * E, bias, ri, E, K) ||
                (!same && top_k_within(scores[REF] + (size_t)r * E, bias, ri, got, K, 1e-6f))) {
                near++;
                continue;
            }
            differ += !same;
            for (int j = 0; j < K; j++) {
                double d = weights[DEV][(size_t)r * K + j] - weights[REF][(size_t)r * K + j];
                num += d * d, den += (double)weights[REF][(size_t)r * K + j] *
                                     weights[REF][(size_t)r * K + j];
            }
        }
        CHECKF(differ == 0,
               "case %zu (%d experts, top %d): %d of %d rows chose other experts "
               "(%d near ties not compared)",
               ci, E, K, differ, n, near);
        CHECKF(sqrt(num / (den > 0 ? den : 1)) < 1e-6, "case %zu: weights rel %.3e", ci,
               sqrt(num / (den > 0 ? den : 1)));
        /* properties of the device's own answer */
        const int32_t *di = ids[DEV];
        const float *dw = weights[DEV], *ds = scores[DEV];
        if (n > 1 && cases[ci].bias_kind == 0)
            for (int j = 0; j < K; j++)
                CHECKF(di[K + j] == j && fabsf(dw[K + j] - 1.0f / K) < 1e-6f,
                       "case %zu tied row: slot %d id %d", ci, j, di[K + j]);
        if (n > 2 && E > 5 && cases[ci].bias_kind == 0 && K >= 2)
            CHECKF(di[2 * K] == 3 && di[2 * K + 1] == 5, "case %zu top tie: %d %d", ci, di[2 * K],
                   di[2 * K + 1]);
        int unranked = 0, unsummed = 0, ignored = 0;
        for (int r = 0; r < n; r++) {
            double sum = 0;
            for (int j = 0; j < K; j++) {
                int32_t id = di[(size_t)r * K + j], before = j ? di[(size_t)r * K + j - 1] : id;
                sum += dw[(size_t)r * K + j];
                unranked +=
                    id < 0 || id >= E ||
                    ds[(size_t)r * E + before] + bias[before] < ds[(size_t)r * E + id] + bias[id];
            }
            unsummed += !(fabs(sum - 1) < 1e-5);
            ignored += cases[ci].bias_kind == 2 && di[(size_t)r * K] != boosted;
        }
        CHECKF(unranked + unsummed + ignored == 0,
               "case %zu: %d choices out of rank, %d rows' weights not summing to 1, %d rows "
               "ignoring the bias",
               ci, unranked, unsummed, ignored);
        free(logits), free(bias);
        for (int b = 0; b < 2; b++)
            free(scores[b]), free(weights[b]), free(ids[b]);
    }
    twin_close(&t);
}

/* A plan in device memory and its host copy. */
typedef struct {
    lg_moe_plan dev, host;
    int n_experts;
    size_t pairs;
} twin_plan;

static twin_plan plan_alloc(twin *t, int b, int E, size_t pairs, int first, int last) {
    twin_plan p = {.n_experts = E, .pairs = pairs};
    p.dev = (lg_moe_plan){put(t, b, NULL, sizeof(int32_t) * (E + 1)),
                          put(t, b, NULL, sizeof(int32_t) * pairs),
                          put(t, b, NULL, sizeof(int32_t) * pairs), first, last};
    return p;
}
static void plan_fetch(twin *t, int b, twin_plan *p) {
    p->host = (lg_moe_plan){get(t, b, p->dev.offsets, sizeof(int32_t) * (p->n_experts + 1)),
                            get(t, b, p->dev.rows, sizeof(int32_t) * p->pairs),
                            get(t, b, p->dev.pair_rows, sizeof(int32_t) * p->pairs),
                            p->dev.expert_begin, p->dev.expert_end};
}
static void plan_free(twin *t, int b, twin_plan *p) {
    drop(t, b, p->dev.offsets, sizeof(int32_t) * (p->n_experts + 1));
    drop(t, b, p->dev.rows, sizeof(int32_t) * p->pairs);
    drop(t, b, p->dev.pair_rows, sizeof(int32_t) * p->pairs);
    free(p->host.offsets), free(p->host.rows), free(p->host.pair_rows);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Whether a plan is a grouping of pairs pairs over E experts at all:
 * offsets rising from 0 to pairs, rows a permutation with pair_rows its
 * inverse (a broken one would send the checks out of bounds). */
static bool plan_valid(const lg_moe_plan *p, int E, size_t pairs) {
    bool ok = p->offsets[0] == 0 && p->offsets[E] == (int32_t)pairs;
    for (int e = 0; e < E && ok; e++)
        ok = p->offsets[e] <= p->offsets[e + 1];
    for (size_t i = 0; i < pairs && ok; i++)
        ok =
            p->rows[i] >= 0 && (size_t)p->rows[i] < pairs && p->pair_rows[p->rows[i]] == (int32_t)i;
    return ok;
}

/* The device groups pairs with atomics, so the order of an expert's rows
 * is its own: offsets exactly the reference's, each expert's set of pairs
 * the reference's, pair_rows the inverse of rows, and each gathered row
 * bitwise its token's row. top_k 1..8, experts with no rows, every token on
 * one expert; past 1024 pairs the rows are gathered by their own kernel
 * (16-byte copies when hidden is a multiple of 4: the last case). */
static void test_moe_group(void) {
    twin t;
    if (!twin_open(&t)) return;
    int cases[][5] = {{1, 1, 4, 4, 7},   {7, 2, 8, 5, 33},     {300, 4, 16, 11, 9},
                      {5, 3, 3, 3, 1},   {300, 8, 64, 64, 37}, {9, 8, 8, 8, 5},
                      {17, 5, 40, 7, 3}, {64, 6, 128, 20, 16}, {300, 1, 2, 1, 4099},
                      {65, 7, 9, 9, 24},   {200, 8, 32, 30, 64}}; /* n, K, E, used, hidden */
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int n = cases[ci][0], K = cases[ci][1], E = cases[ci][2], hidden = cases[ci][4];
        int32_t *ids = op_random_ids(n, K, cases[ci][3]);
        float *h = op_frand_array((size_t)n * hidden, 1.0f);
        size_t pairs = (size_t)n * K, hb = sizeof(float) * (size_t)n * hidden,
               eb = sizeof(float) * pairs * hidden;
        twin_plan plan[2];
        float *gathered[2];
        for (int b = 0; b < 2; b++) {
            plan[b] = plan_alloc(&t, b, E, pairs, 0, 0);
            float *dh = put(&t, b, h, hb), *din = put(&t, b, NULL, eb);
            int32_t *dids = put(&t, b, ids, sizeof(int32_t) * pairs);
            t.be[b]->ops->moe_group(t.c[b], &plan[b].dev, din, dh, dids, n, K, E, hidden);
            plan_fetch(&t, b, &plan[b]);
            gathered[b] = get(&t, b, din, eb);
            settle(&t, b, "moe_group");
            drop(&t, b, dh, hb), drop(&t, b, din, eb), drop(&t, b, dids, sizeof(int32_t) * pairs);
        }
        const lg_moe_plan *d = &plan[DEV].host, *r = &plan[REF].host;
        CHECKF(memcmp(d->offsets, r->offsets, sizeof(int32_t) * (E + 1)) == 0,
               "case %zu: offsets differ", ci);
        int bad_sets = 0, bad_rows = 0;
        bool valid = plan_valid(d, E, pairs);
        CHECKF(valid, "case %zu: the device's plan is not a grouping", ci);
        for (size_t p = 0; p < pairs && valid; p++) /* the device's rows in its own order */
            bad_rows += memcmp(gathered[DEV] + p * hidden, h + (size_t)(d->rows[p] / K) * hidden,
                               sizeof(float) * hidden) != 0;
        for (int e = 0; e < E && valid; e++) { /* then sorted */
            int lo = r->offsets[e], cnt = r->offsets[e + 1] - lo;
            if (cnt <= 0) continue;
            qsort(d->rows + lo, (size_t)cnt, sizeof(int32_t), cmp_i32);
            qsort(r->rows + lo, (size_t)cnt, sizeof(int32_t), cmp_i32);
            bad_sets += memcmp(d->rows + lo, r->rows + lo, sizeof(int32_t) * cnt) != 0;
        }
        CHECKF(bad_sets == 0 && bad_rows == 0,
               "case %zu (%d tokens, top %d of %d): %d experts' pairs differ, %d rows wrong", ci, n,
               K, E, bad_sets, bad_rows);
        for (int b = 0; b < 2; b++)
            plan_free(&t, b, &plan[b]), free(gathered[b]);
        free(ids), free(h);
    }
    twin_close(&t);
}

/* The fused route op (router + moe_group in one launch for few tokens) on
 * the device against the device's own two ops: the same scores, ids and
 * weights bit for bit, the same offsets, and a valid grouping whose rows
 * hold their tokens' hidden rows; for one token (grouped without atomics,
 * group_one_token) the same rows and pair rows too, also where the plan
 * keeps a range of experts (expert parallelism). Token counts on both sides
 * of the fused path's limit (32), and expert counts past the warp router's
 * (512). */
static void test_route(void) {
    twin t;
    if (!twin_open(&t) || !twin_has(&t, t.be[DEV]->ops->route != NULL, "route")) return;
    /* n, E, K, hidden, the plan's experts [first, last) (0, 0: all); the fused kernel scores with the whole
     * block up to 4096 n x E (32 x 256: its warps) */
    int cases[][6] = {{1, 256, 8, 2048, 0, 0}, {3, 256, 8, 64, 0, 0},   {8, 16, 4, 33, 0, 0},
                      {32, 64, 8, 16, 0, 0},   {32, 256, 8, 16, 0, 0},  {33, 64, 8, 16, 0, 0},
                      {300, 128, 8, 8, 0, 0},  {2, 600, 8, 16, 0, 0},   {1, 16, 4, 33, 0, 0},
                      {1, 256, 8, 2048, 64, 192}, {1, 64, 16, 16, 8, 40}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int n = cases[ci][0], E = cases[ci][1], K = cases[ci][2], hidden = cases[ci][3];
        size_t pairs = (size_t)n * K, lb = sizeof(float) * (size_t)n * E, kb = sizeof(float) * pairs,
               ib = sizeof(int32_t) * pairs, hb = sizeof(float) * (size_t)n * hidden, eb = kb * hidden;
        float *logits = op_frand_array((size_t)n * E, 4.0f), *bias = op_frand_array((size_t)E, 0.01f);
        float *h = op_frand_array((size_t)n * hidden, 1.0f);
        float *db = put(&t, DEV, bias, sizeof(float) * E), *dh = put(&t, DEV, h, hb);
        lg_router_args a = {E, K, 0.0f, db};
        float *scores[2], *weights[2], *gathered[2];
        int32_t *ids[2];
        twin_plan plan[2];
        for (int fused = 0; fused < 2; fused++) {
            float *dl = put(&t, DEV, logits, lb), *dw = put(&t, DEV, NULL, kb), *din = put(&t, DEV, NULL, eb);
            int32_t *di = put(&t, DEV, NULL, ib);
            plan[fused] = plan_alloc(&t, DEV, E, pairs, cases[ci][4], cases[ci][5]);
            if (fused) t.be[DEV]->ops->route(t.c[DEV], &a, dl, di, dw, n, &plan[fused].dev, din, dh, hidden);
            else lg_backend_route_by_parts(t.c[DEV], &a, dl, di, dw, n, &plan[fused].dev, din, dh, hidden);
            scores[fused] = get(&t, DEV, dl, lb), weights[fused] = get(&t, DEV, dw, kb);
            ids[fused] = get(&t, DEV, di, ib), gathered[fused] = get(&t, DEV, din, eb);
            plan_fetch(&t, DEV, &plan[fused]);
            settle(&t, DEV, "route");
            drop(&t, DEV, dl, lb), drop(&t, DEV, dw, kb), drop(&t, DEV, din, eb), drop(&t, DEV, di, ib);
        }
        CHECKF(memcmp(scores[0], scores[1], lb) == 0 && memcmp(weights[0], weights[1], kb) == 0 &&
                   memcmp(ids[0], ids[1], ib) == 0,
               "case %zu (%d tokens, top %d of %d): fused routing differs", ci, n, K, E);
        const lg_moe_plan *d = &plan[1].host;
        CHECKF(memcmp(d->offsets, plan[0].host.offsets, sizeof(int32_t) * (E + 1)) == 0,
               "case %zu: fused offsets differ", ci);
        bool valid = plan_valid(d, E, pairs);
        CHECKF(valid, "case %zu: the fused plan is not a grouping", ci);
        int bad_rows = 0;
        for (size_t p = 0; p < pairs && valid; p++)
            bad_rows += memcmp(gathered[1] + p * hidden, h + (size_t)(d->rows[p] / K) * hidden,
                               sizeof(float) * hidden) != 0;
        CHECKF(bad_rows == 0, "case %zu: %d gathered rows wrong", ci, bad_rows);
        if (n == 1)
            CHECKF(memcmp(d->rows, plan[0].host.rows, ib) == 0 && memcmp(d->pair_rows, plan[0].host.pair_rows, ib) == 0,
                   "case %zu: one token's fused rows differ", ci);
        for (int f = 0; f < 2; f++) {
            plan_free(&t, DEV, &plan[f]);
            free(scores[f]), free(weights[f]), free(ids[f]), free(gathered[f]);
        }
        drop(&t, DEV, db, sizeof(float) * E), drop(&t, DEV, dh, hb);
        free(logits), free(bias), free(h);
    }
    twin_close(&t);
}

/* A sparse layer's experts and shared expert, as both sides see them. */
typedef struct {
    int E, H, I, I_shared;
    lg_dtype dt;
    twin_weight *w;    /* [3 * E]: gate, up, down of each */
    twin_weight sw[3]; /* the shared expert's, when I_shared > 0 */
    lg_swiglu_weights *experts[2], shared[2];
} twin_experts;

static twin_experts experts_new(twin *t, lg_dtype dt, int E, int H, int I, int I_shared) {
    twin_experts x = {.E = E, .H = H, .I = I, .I_shared = I_shared, .dt = dt};
    x.w = calloc((size_t)E * 3, sizeof(twin_weight));
    for (int b = 0; b < 2; b++)
        x.experts[b] = calloc((size_t)E, sizeof(lg_swiglu_weights));
    for (int e = 0; e < E; e++) {
        x.w[3 * e] = twin_weight_new(t, dt, I, H, 0.3f);
        x.w[3 * e + 1] = twin_weight_new(t, dt, I, H, 0.3f);
        x.w[3 * e + 2] = twin_weight_new(t, dt, H, I, 0.3f);
        for (int b = 0; b < 2; b++)
            x.experts[b][e] =
                (lg_swiglu_weights){x.w[3 * e].m[b], x.w[3 * e + 1].m[b], x.w[3 * e + 2].m[b]};
    }
    if (I_shared) {
        x.sw[0] = twin_weight_new(t, dt, I_shared, H, 0.3f);
        x.sw[1] = twin_weight_new(t, dt, I_shared, H, 0.3f);
        x.sw[2] = twin_weight_new(t, dt, H, I_shared, 0.3f);
        for (int b = 0; b < 2; b++)
            x.shared[b] = (lg_swiglu_weights){x.sw[0].m[b], x.sw[1].m[b], x.sw[2].m[b]};
    }
    return x;
}

static void experts_free(twin_experts *x) {
    for (int i = 0; i < 3 * x->E; i++)
        op_weight_free(&x->w[i].w);
    for (int k = 0; k < 3 && x->I_shared; k++)
        op_weight_free(&x->sw[k].w);
    free(x->w), free(x->experts[0]), free(x->experts[1]);
}

/* The buffers of one moe_experts call on one side. */
typedef struct {
    lg_moe_args a;
    size_t in_b, act_b, h_b, sact_b;
} moe_buffers;

static moe_buffers moe_buffers_new(twin *t, int b, const twin_experts *x, const lg_moe_plan *plan,
                                   int n, int K, const float *expert_in, const float *h) {
    size_t pairs = (size_t)n * K;
    moe_buffers m = {.in_b = sizeof(float) * pairs * x->H,
                     .act_b = sizeof(float) * pairs * x->I,
                     .h_b = sizeof(float) * (size_t)n * x->H,
                     .sact_b = sizeof(float) * (size_t)n * (x->I_shared ? x->I_shared : 1)};
    m.a = (lg_moe_args){plan,
                        n,
                        x->E,
                        K,
                        x->experts[b],
                        expert_in ? expert_in : put(t, b, NULL, m.in_b),
                        put(t, b, NULL, m.act_b),
                        put(t, b, NULL, m.act_b),
                        put(t, b, NULL, m.in_b),
                        x->I_shared ? &x->shared[b] : NULL,
                        h ? h : put(t, b, NULL, m.h_b),
                        put(t, b, NULL, m.sact_b),
                        put(t, b, NULL, m.sact_b),
                        put(t, b, NULL, m.h_b),
                        false};
    return m;
}

/* Frees what moe_buffers_new allocated (not the given expert_in and h). */
static void moe_buffers_free(twin *t, int b, moe_buffers *m, bool own_in, bool own_h) {
    if (own_in) drop(t, b, m->a.expert_in, m->in_b);
    if (own_h) drop(t, b, m->a.h, m->h_b);
    drop(t, b, m->a.act_gate, m->act_b), drop(t, b, m->a.act_up, m->act_b);
    drop(t, b, m->a.expert_out, m->in_b), drop(t, b, m->a.shared_gate, m->sact_b);
    drop(t, b, m->a.shared_up, m->sact_b), drop(t, b, m->a.shared_out, m->h_b);
}

/* The device groups (moe_group fills its list of experts with rows, which
 * moe_experts reads) and runs the experts; the reference runs its experts on
 * the device's own plan and grouped rows. Float weights: two chained
 * products (FLOAT_PRODUCT_TOL each) and a silu, 2e-5 norm-wise over the
 * rows of the experts run and over the shared expert's. Quantised weights,
 * whose error compounds through the chain: each product on its own within
 * the quantised bound, the up products against the reference's and the down
 * products against the reference's product of the device's own hidden
 * activations. Under expert parallelism (first..last) only the rows of
 * those experts are compared. */
static void moe_experts_case(twin *t, lg_dtype dt, int n, int K, int E, int used, int H, int I,
                             int I_shared, int first, int last) {
    fresh_dev_ctx(t);
    if (!t->c[DEV]) return;
    twin_experts x = experts_new(t, dt, E, H, I, I_shared);
    int32_t *ids = op_random_ids(n, K, used);
    float *h = op_frand_array((size_t)n * H, 1.0f);
    size_t pairs = (size_t)n * K;
    /* the device: group, then the experts */
    twin_plan dplan = plan_alloc(t, DEV, E, pairs, first, last);
    int32_t *dids = put(t, DEV, ids, sizeof(int32_t) * pairs);
    moe_buffers dm = moe_buffers_new(t, DEV, &x, &dplan.dev, n, K, NULL, NULL);
    write_bytes(t, DEV, (void *)dm.a.h, h, dm.h_b);
    t->be[DEV]->ops->moe_group(t->c[DEV], &dplan.dev, (float *)dm.a.expert_in, dm.a.h, dids, n, K,
                               E, H);
    t->be[DEV]->ops->moe_experts(t->c[DEV], &dm.a);
    plan_fetch(t, DEV, &dplan);
    float *expert_in = get(t, DEV, dm.a.expert_in, dm.in_b);
    float *act_gate[2], *act_up[2], *eout[2], *sgate[2], *sout[2], *sup[2];
    act_gate[DEV] = get(t, DEV, dm.a.act_gate, dm.act_b),
    act_up[DEV] = get(t, DEV, dm.a.act_up, dm.act_b);
    eout[DEV] = get(t, DEV, dm.a.expert_out, dm.in_b),
    sout[DEV] = get(t, DEV, dm.a.shared_out, dm.h_b);
    sgate[DEV] = get(t, DEV, dm.a.shared_gate, dm.sact_b),
    sup[DEV] = get(t, DEV, dm.a.shared_up, dm.sact_b);
    settle(t, DEV, "moe_group and moe_experts");
    char what[140];
    snprintf(what, sizeof what, "%s %d tokens top %d of %d experts (%d used) H %d I %d shared %d%s",
             lg_dtype_name(dt), n, K, E, used, H, I, I_shared, first || last ? " (a range)" : "");
    bool plan_ok = plan_valid(&dplan.host, E, pairs);
    CHECKF(plan_ok, "%s: the device's plan is not a grouping", what);
    /* the reference on the device's plan */
    lg_moe_plan rplan = dplan.host;
    moe_buffers rm = moe_buffers_new(t, REF, &x, &rplan, n, K, expert_in, h);
    if (plan_ok) t->be[REF]->ops->moe_experts(t->c[REF], &rm.a);
    act_gate[REF] = get(t, REF, rm.a.act_gate, rm.act_b),
    act_up[REF] = get(t, REF, rm.a.act_up, rm.act_b);
    eout[REF] = get(t, REF, rm.a.expert_out, rm.in_b),
    sout[REF] = get(t, REF, rm.a.shared_out, rm.h_b);
    sgate[REF] = get(t, REF, rm.a.shared_gate, rm.sact_b),
    sup[REF] = get(t, REF, rm.a.shared_up, rm.sact_b);

    int e0, e1;
    lg_moe_plan_experts(&dplan.host, E, &e0, &e1);
    const int32_t *off = dplan.host.offsets;
    if (plan_ok && is_float_dtype(dt)) {
        size_t lo = (size_t)off[e0], cnt = (size_t)(off[e1] - off[e0]);
        double e = op_rel(eout[DEV] + lo * H, eout[REF] + lo * H, cnt * H),
               es = I_shared ? op_rel(sout[DEV], sout[REF], (size_t)n * H) : 0;
        CHECKF(e < 2e-5 && es < 2e-5, "%s: experts rel %.3e, shared rel %.3e", what, e, es);
    } else if (plan_ok) {
        int bad = 0, q8 = lg_q8_block(dt);
        float *want = malloc(sizeof(float) * pairs * H + sizeof(float) * (size_t)n * H);
        for (int e = e0; e < e1; e++) {
            int start = off[e], rows = off[e + 1] - start;
            if (rows == 0) continue;
            bad +=
                op_outside_q8_bound(act_up[DEV] + (size_t)start * I,
                                    act_up[REF] + (size_t)start * I, expert_in + (size_t)start * H,
                                    x.w[3 * e + 1].w.deq, NULL, I, H, rows, q8, QUANT_FLOAT_TOL);
            lg_matmul_op down = {want, act_gate[DEV] + (size_t)start * I, rows,
                                 &x.experts[REF][e].down, NULL};
            t->be[REF]->ops->matmul_many(t->c[REF], &down, 1);
            bad += op_outside_q8_bound(eout[DEV] + (size_t)start * H, want,
                                       act_gate[DEV] + (size_t)start * I, x.w[3 * e + 2].w.deq,
                                       NULL, H, I, rows, q8, QUANT_FLOAT_TOL);
        }
        if (I_shared) {
            bad += op_outside_q8_bound(sup[DEV], sup[REF], h, x.sw[1].w.deq, NULL, I_shared, H, n,
                                       q8, QUANT_FLOAT_TOL);
            lg_matmul_op down = {want, sgate[DEV], n, &x.shared[REF].down, NULL};
            t->be[REF]->ops->matmul_many(t->c[REF], &down, 1);
            bad += op_outside_q8_bound(sout[DEV], want, sgate[DEV], x.sw[2].w.deq, NULL, H,
                                       I_shared, n, q8, QUANT_FLOAT_TOL);
        }
        CHECKF(bad == 0, "%s: %d outputs outside the quantised bound", what, bad);
        free(want);
    }
    moe_buffers_free(t, DEV, &dm, true, true);
    moe_buffers_free(t, REF, &rm, false, false);
    drop(t, DEV, dids, sizeof(int32_t) * pairs);
    plan_free(t, DEV, &dplan);
    for (int b = 0; b < 2; b++)
        free(act_gate[b]), free(act_up[b]), free(eout[b]), free(sout[b]), free(sgate[b]),
            free(sup[b]);
    free(expert_in), free(ids), free(h);
    experts_free(&x);
}

/* Every weight dtype; top_k 1..8; experts with no rows (used < experts);
 * many tokens on one expert (300 tokens over 6); 1, 17 and 300 tokens;
 * sizes on and off the kernels' tiles; with and without a shared expert;
 * an expert range as under expert parallelism. */
static void test_moe_experts(void) {
    twin t;
    if (!twin_open(&t)) return;
    moe_experts_case(&t, LG_DTYPE_F32, 7, 2, 6, 4, 37, 23, 29, 0, 0);
    moe_experts_case(&t, LG_DTYPE_F32, 1, 1, 5, 5, 33, 9, 0, 0, 0);
    moe_experts_case(&t, LG_DTYPE_BF16, 300, 4, 9, 6, 136, 40, 24, 0, 0);
    moe_experts_case(&t, LG_DTYPE_BF16, 17, 8, 16, 16, 264, 40, 48, 0, 0);
    moe_experts_case(&t, LG_DTYPE_F16, 13, 3, 8, 8, 21, 19, 0, 0, 0);
    moe_experts_case(&t, LG_DTYPE_F16, 65, 5, 12, 7, 64, 33, 16, 0, 0);
    moe_experts_case(&t, LG_DTYPE_Q8_0, 9, 2, 5, 3, 96, 64, 128, 0, 0);
    moe_experts_case(&t, LG_DTYPE_Q4_0, 17, 6, 10, 8, 64, 96, 32, 0, 0);
    moe_experts_case(&t, LG_DTYPE_Q5_0, 3, 3, 4, 4, 32, 64, 0, 0, 0);
    moe_experts_case(&t, LG_DTYPE_Q5_1, 5, 2, 6, 2, 96, 32, 64, 0, 0);
    moe_experts_case(&t, LG_DTYPE_Q4_K, 5, 2, 4, 3, 256, 256, 256, 0, 0);
    moe_experts_case(&t, LG_DTYPE_Q4_K, 300, 7, 12, 9, 256, 256, 0, 0, 0);
    moe_experts_case(&t, LG_DTYPE_Q5_K, 17, 4, 8, 5, 512, 256, 256, 0, 0);
    moe_experts_case(&t, LG_DTYPE_Q6_K, 1, 3, 6, 4, 256, 256, 0, 0, 0);
    moe_experts_case(&t, LG_DTYPE_Q6_K, 64, 8, 10, 10, 256, 256, 256, 0, 0);
    moe_experts_case(&t, LG_DTYPE_BF16, 300, 1, 6, 6, 40, 24, 0, 0, 0);
    moe_experts_case(&t, LG_DTYPE_F32, 17, 4, 12, 12, 33, 17, 9, 3, 9);
    moe_experts_case(&t, LG_DTYPE_Q4_K, 9, 3, 8, 8, 256, 256, 256, 6, 8);
    twin_close(&t);
}

/* Weighted sums of up to top_k rows in float32 against double, scaled, the
 * shared row added: a few ulp, 1e-6 norm-wise; top_k 1..8, expert ranges
 * as under expert parallelism. */
static void test_moe_combine(void) {
    twin t;
    if (!twin_open(&t)) return;
    struct {
        int n, K, E, used, hidden;
        float scale;
        bool shared;
        int first, last; /* expert parallelism: the device's experts (0, 0 = all) */
    } cases[] = {{1, 1, 4, 4, 7, 1.0f, false, 0, 0},      {7, 2, 8, 5, 33, 2.5f, true, 0, 0},
                 {300, 4, 16, 11, 9, 1.0f, true, 0, 0},   {5, 3, 3, 3, 1, 0.5f, false, 0, 0},
                 {7, 2, 8, 8, 33, 2.5f, true, 2, 6},      {300, 4, 16, 11, 9, 1.0f, false, 12, 16},
                 {300, 8, 64, 40, 300, 2.5f, true, 0, 0}, {17, 6, 9, 9, 4099, 1.0f, true, 0, 0},
                 {64, 5, 32, 32, 64, 2.5f, true, 8, 24},  {9, 7, 7, 7, 13, 1.5f, false, 0, 0}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int n = cases[ci].n, K = cases[ci].K, E = cases[ci].E, H = cases[ci].hidden;
        size_t pairs = (size_t)n * K, ob = sizeof(float) * (size_t)n * H;
        int32_t *ids = op_random_ids(n, K, cases[ci].used);
        float *h = op_frand_array((size_t)n * H, 1.0f),
              *grouped = malloc(sizeof(float) * pairs * H);
        lg_moe_plan plan = {malloc(sizeof(int32_t) * (E + 1)), malloc(sizeof(int32_t) * pairs),
                            malloc(sizeof(int32_t) * pairs), 0, 0};
        t.be[REF]->ops->moe_group(t.c[REF], &plan, grouped, h, ids, n, K, E, H);
        float *eo = op_frand_array(pairs * H, 1.0f), *wts = op_frand_array(pairs, 1.0f),
              *shared = op_frand_array((size_t)n * H, 1.0f), *out[2];
        for (int b = 0; b < 2; b++) {
            lg_moe_plan dp = {put(&t, b, plan.offsets, sizeof(int32_t) * (E + 1)),
                              put(&t, b, plan.rows, sizeof(int32_t) * pairs),
                              put(&t, b, plan.pair_rows, sizeof(int32_t) * pairs), cases[ci].first,
                              cases[ci].last};
            float *deo = put(&t, b, eo, sizeof(float) * pairs * H),
                  *dw = put(&t, b, wts, sizeof(float) * pairs);
            float *ds = put(&t, b, shared, ob), *dout = put(&t, b, NULL, ob);
            t.be[b]->ops->moe_combine(t.c[b], dout, &dp, deo, dw, cases[ci].shared ? ds : NULL, n,
                                      K, H, cases[ci].scale);
            out[b] = get(&t, b, dout, ob);
            settle(&t, b, "moe_combine");
            drop(&t, b, dp.offsets, sizeof(int32_t) * (E + 1));
            drop(&t, b, dp.rows, sizeof(int32_t) * pairs);
            drop(&t, b, dp.pair_rows, sizeof(int32_t) * pairs);
            drop(&t, b, deo, sizeof(float) * pairs * H), drop(&t, b, dw, sizeof(float) * pairs);
            drop(&t, b, ds, ob), drop(&t, b, dout, ob);
        }
        double e = op_rel(out[DEV], out[REF], (size_t)n * H);
        CHECKF(e < 1e-6, "case %zu (%d tokens, top %d, hidden %d): rel %.3e", ci, n, K, H, e);
        free(ids), free(h), free(grouped), free(plan.offsets), free(plan.rows),
            free(plan.pair_rows);
        free(eo), free(wts), free(shared), free(out[0]), free(out[1]);
    }
    twin_close(&t);
}

/* The routed experts (moe_group, moe_experts, moe_combine) over n random
 * tokens, each choosing K of E experts among the first `used`, in one call
 * and token by token: how many tokens' outputs (each expert's rows, the
 * shared expert's, the combined) differ by a bit. */
static int moe_alone_vs_batch(twin *t, const twin_experts *x, int E, int H, int K, int used, int n) {
    size_t pairs = (size_t)n * K, hb = sizeof(float) * (size_t)n * H;
    int32_t *ids = op_random_ids(n, K, used);
    float *h = op_frand_array((size_t)n * H, 1.0f), *wts = op_frand_array(pairs, 1.0f);
    int32_t *dids = put(t, DEV, ids, sizeof(int32_t) * pairs);
    float *dh = put(t, DEV, h, hb), *dw = put(t, DEV, wts, sizeof(float) * pairs);
    float *dout = put(t, DEV, NULL, hb), *dout1 = put(t, DEV, NULL, sizeof(float) * H);
    /* the batch */
    twin_plan plan = plan_alloc(t, DEV, E, pairs, 0, 0);
    moe_buffers mb = moe_buffers_new(t, DEV, x, &plan.dev, n, K, NULL, dh);
    t->be[DEV]->ops->moe_group(t->c[DEV], &plan.dev, (float *)mb.a.expert_in, dh, dids, n, K,
                              E, H);
    t->be[DEV]->ops->moe_experts(t->c[DEV], &mb.a);
    t->be[DEV]->ops->moe_combine(t->c[DEV], dout, &plan.dev, mb.a.expert_out, dw,
                                mb.a.shared_out, n, K, H, 2.5f);
    plan_fetch(t, DEV, &plan);
    float *eout = get(t, DEV, mb.a.expert_out, mb.in_b),
          *sout = get(t, DEV, mb.a.shared_out, mb.h_b), *out = get(t, DEV, dout, hb);
    /* each token alone */
    twin_plan plan1 = plan_alloc(t, DEV, E, (size_t)K, 0, 0);
    int differ = 0;
    for (int tk = 0; tk < n; tk++) {
        moe_buffers m1 =
            moe_buffers_new(t, DEV, x, &plan1.dev, 1, K, NULL, dh + (size_t)tk * H);
        t->be[DEV]->ops->moe_group(t->c[DEV], &plan1.dev, (float *)m1.a.expert_in, m1.a.h,
                                  dids + (size_t)tk * K, 1, K, E, H);
        t->be[DEV]->ops->moe_experts(t->c[DEV], &m1.a);
        t->be[DEV]->ops->moe_combine(t->c[DEV], dout1, &plan1.dev, m1.a.expert_out,
                                    dw + (size_t)tk * K, m1.a.shared_out, 1, K, H, 2.5f);
        int32_t *pr1 = get(t, DEV, plan1.dev.pair_rows, sizeof(int32_t) * K);
        float *eout1 = get(t, DEV, m1.a.expert_out, m1.in_b),
              *sout1 = get(t, DEV, m1.a.shared_out, m1.h_b),
              *out1 = get(t, DEV, dout1, sizeof(float) * H);
        bool same = memcmp(sout1, sout + (size_t)tk * H, sizeof(float) * H) == 0 &&
                    memcmp(out1, out + (size_t)tk * H, sizeof(float) * H) == 0;
        for (int k = 0; k < K; k++) {
            int32_t r1 = pr1[k], r = plan.host.pair_rows[(size_t)tk * K + k];
            same = same && r1 >= 0 && r1 < K && r >= 0 && (size_t)r < pairs &&
                   memcmp(eout1 + (size_t)r1 * H, eout + (size_t)r * H,
                          sizeof(float) * H) == 0;
        }
        differ += !same;
        free(pr1), free(eout1), free(sout1), free(out1);
        moe_buffers_free(t, DEV, &m1, true, false);
    }
    settle(t, DEV, "moe_group, moe_experts and moe_combine");
    moe_buffers_free(t, DEV, &mb, true, false);
    plan_free(t, DEV, &plan), plan_free(t, DEV, &plan1);
    drop(t, DEV, dids, sizeof(int32_t) * pairs), drop(t, DEV, dh, hb);
    drop(t, DEV, dw, sizeof(float) * pairs), drop(t, DEV, dout, hb);
    drop(t, DEV, dout1, sizeof(float) * H);
    free(ids), free(h), free(wts), free(eout), free(sout), free(out);
    return differ;
}

/* Batch invariance of the sparse block: a token's expert outputs, shared
 * expert output and combined row, grouped and run alone (a decode step),
 * are bitwise the same as inside batches of 17, 64 and 300 tokens where its
 * experts have many rows; bf16 and Q4_K weights. The last case routes to 3
 * of 16 experts (13 listed with no rows; ~200 rows each at 300 tokens, so
 * the GEMM's blocks loop over several token tiles of one expert), with no
 * shared expert. The single-token runs read the token's ids, row and
 * weights where the batch keeps them. */
static void test_moe_batch_invariant(void) {
    twin t;
    if (!twin_open(&t)) return;
    struct {
        lg_dtype dt;
        int H, I, I_shared, K, used;
    } mats[] = {{LG_DTYPE_BF16, 264, 136, 48, 4, 16},
                {LG_DTYPE_Q4_K, 256, 256, 256, 4, 16},
                {LG_DTYPE_BF16, 136, 264, 0, 2, 3}};
    int batches[] = {17, 64, 300}, E = 16;
    for (int m = 0; m < 3; m++) {
        fresh_dev_ctx(&t);
        if (!t.c[DEV]) break;
        int H = mats[m].H, K = mats[m].K;
        twin_experts x = experts_new(&t, mats[m].dt, E, H, mats[m].I, mats[m].I_shared);
        for (int bi = 0; bi < 3; bi++) {
            int n = batches[bi];
            int differ = moe_alone_vs_batch(&t, &x, E, H, K, mats[m].used, n);
            CHECKF(differ == 0, "%s: %d of %d tokens differ alone from in the batch",
                   lg_dtype_name(mats[m].dt), differ, n);
        }
        experts_free(&x);
    }
    twin_close(&t);
}

/* One moe_experts call on the device over n tokens of h: its rows gathered
 * by moe_group (pending false) or read by the experts through the plan
 * (moe_group given no expert_in, expert_in_pending). The plan and every
 * output fetched into out (freed by moe_run_free). */
typedef struct {
    twin_plan plan;
    float *in, *gate, *up, *eout, *sout;
} moe_run;

static moe_run moe_run_dev(twin *t, const twin_experts *x, const int32_t *dids, float *dh, int n, int K, int E,
                           bool pending) {
    moe_run r = {.plan = plan_alloc(t, DEV, E, (size_t)n * K, 0, 0)};
    moe_buffers m = moe_buffers_new(t, DEV, x, &r.plan.dev, n, K, NULL, dh);
    m.a.expert_in_pending = pending;
    t->be[DEV]->ops->moe_group(t->c[DEV], &r.plan.dev, pending ? NULL : (float *)m.a.expert_in, dh, dids, n, K, E,
                               x->H);
    t->be[DEV]->ops->moe_experts(t->c[DEV], &m.a);
    plan_fetch(t, DEV, &r.plan);
    r.in = get(t, DEV, m.a.expert_in, m.in_b);
    r.gate = get(t, DEV, m.a.act_gate, m.act_b), r.up = get(t, DEV, m.a.act_up, m.act_b);
    r.eout = get(t, DEV, m.a.expert_out, m.in_b), r.sout = get(t, DEV, m.a.shared_out, m.h_b);
    settle(t, DEV, pending ? "moe_experts reading h through the plan" : "moe_group and moe_experts");
    moe_buffers_free(t, DEV, &m, true, false);
    return r;
}

static void moe_run_free(twin *t, moe_run *r) {
    plan_free(t, DEV, &r->plan);
    free(r->in), free(r->gate), free(r->up), free(r->eout), free(r->sout);
}

/* The experts reading their pairs' rows of h through the plan give the bits
 * they give from the rows moe_group gathers: each pair's gate, up and
 * output rows (found through each run's own grouping) and the shared
 * expert's, where the packed GEMM's packing reads the rows from h (300 and
 * 520 tokens of bf16 experts, with and without bf16 activations) and where
 * the products gather them first (40 tokens; Q4_K experts). moe_reads_h
 * says yes for prompt-sized steps only; where it does, bf16 experts' rows
 * are packed from h (expert_in left zero), so the map itself is what is
 * tested. */
static void test_moe_rows_through_plan(void) {
    struct {
        lg_dtype dt;
        int n, K, E, used, H, I, I_shared;
    } cases[] = {{LG_DTYPE_BF16, 300, 4, 9, 6, 136, 264, 48},
                 {LG_DTYPE_BF16, 520, 8, 16, 12, 264, 136, 0},
                 {LG_DTYPE_BF16, 40, 4, 8, 8, 136, 40, 24},
                 {LG_DTYPE_Q4_K, 100, 3, 8, 6, 256, 256, 256}};
    for (int bf16 = 0; bf16 < 2; bf16++) {
        twin t;
        if (!twin_open_as(&t, bf16 == 1)) continue;
        if (!twin_has(&t, t.be[DEV]->ops->moe_reads_h != NULL, "moe_reads_h")) continue;
        CHECK(!t.be[DEV]->ops->moe_reads_h(t.c[DEV], 1, 8) && !t.be[DEV]->ops->moe_reads_h(t.c[DEV], 32, 8));
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            fresh_dev_ctx(&t);
            int n = cases[ci].n, K = cases[ci].K, E = cases[ci].E, H = cases[ci].H, I = cases[ci].I;
            twin_experts x = experts_new(&t, cases[ci].dt, E, H, I, cases[ci].I_shared);
            size_t pairs = (size_t)n * K;
            int32_t *ids = op_random_ids(n, K, cases[ci].used);
            float *h = op_frand_array((size_t)n * H, 1.0f);
            int32_t *dids = put(&t, DEV, ids, sizeof(int32_t) * pairs);
            float *dh = put(&t, DEV, h, sizeof(float) * (size_t)n * H);
            moe_run g = moe_run_dev(&t, &x, dids, dh, n, K, E, false), p = moe_run_dev(&t, &x, dids, dh, n, K, E, true);
            int differ = 0;
            for (size_t i = 0; i < pairs; i++) {
                size_t rg = (size_t)g.plan.host.pair_rows[i], rp = (size_t)p.plan.host.pair_rows[i];
                bool same = rg < pairs && rp < pairs &&
                            !memcmp(g.gate + rg * I, p.gate + rp * I, sizeof(float) * I) &&
                            !memcmp(g.up + rg * I, p.up + rp * I, sizeof(float) * I) &&
                            !memcmp(g.eout + rg * H, p.eout + rp * H, sizeof(float) * H);
                differ += !same;
            }
            if (cases[ci].I_shared) differ += memcmp(g.sout, p.sout, sizeof(float) * (size_t)n * H) != 0;
            if (cases[ci].dt == LG_DTYPE_BF16 && t.be[DEV]->ops->moe_reads_h(t.c[DEV], n, K)) {
                size_t written = 0;
                for (size_t e = 0; e < pairs * H; e++) written += p.in[e] != 0.0f;
                CHECKF(written == 0, "%d tokens: the rows were gathered (%zu values), not read through the plan", n,
                       written);
            }
            CHECKF(differ == 0, "%s, %s %d tokens top %d of %d experts: %d pairs differ read through the plan",
                   bf16 ? "bf16 activations" : "float activations", lg_dtype_name(cases[ci].dt), n, K, E, differ);
            moe_run_free(&t, &g), moe_run_free(&t, &p);
            drop(&t, DEV, dids, sizeof(int32_t) * pairs), drop(&t, DEV, dh, sizeof(float) * (size_t)n * H);
            free(ids), free(h);
            experts_free(&x);
        }
        twin_close(&t);
    }
}


/* The wgmma GEMMs' stage rings and slices (cuda_matmul_wgmma.cu,
 * cuda_matmul_wgmma_packed.cu): K = 520 is 17 steps, so the rings wrap, the
 * packed GEMM's last two-step stage holds one step and its 3-step slices
 * end in the middle of a stage. A plain 2100 x 520 over 1290 tokens (17
 * row blocks x 11 token tiles: more than a wave, the last tile of 10
 * tokens) and 3 of 16 experts of hidden 520 (intermediate 264: 9 steps)
 * over 300 tokens (~200 rows an expert: several token tiles), and 4 of 7
 * (~171 rows: last tiles of under 64 tokens, on 64-wide instructions), in
 * both activation modes: each token alone is bitwise its row of the batch. */
static void test_wgmma_ring(void) {
    for (int bf16 = 0; bf16 < 2; bf16++) {
        twin t;
        if (!twin_open_as(&t, bf16 == 1)) continue;
        const char *mode = bf16 ? "bf16 activations" : "float activations";
        twin_weight w = twin_weight_new(&t, LG_DTYPE_BF16, 2100, 520, 1.0f);
        int differ = matmul_alone_vs_batch(&t, &w, 1290, NULL);
        CHECKF(differ == 0, "%s, 2100x520: %d of 1290 tokens differ alone from in the batch", mode, differ);
        op_weight_free(&w.w);
        twin_experts x = experts_new(&t, LG_DTYPE_BF16, 16, 520, 264, 0);
        differ = moe_alone_vs_batch(&t, &x, 16, 520, 2, 3, 300);
        CHECKF(differ == 0, "%s, experts of hidden 520: %d of 300 tokens differ alone from in the batch", mode,
               differ);
        differ = moe_alone_vs_batch(&t, &x, 16, 520, 4, 7, 300);
        CHECKF(differ == 0, "%s, experts of hidden 520, top 4 of 7: %d of 300 tokens differ alone from in the batch",
               mode, differ);
        experts_free(&x);
        twin_close(&t);
    }
}

/* ---- fused ops: add_rmsnorm, attention_inputs ---------------------------- */

/* add_rmsnorm against the reference's add then rmsnorm: the sum x + y is
 * one float addition on both sides (bitwise), the norm held as test_rmsnorm
 * holds it (1e-6 per row). */
static void test_add_rmsnorm(void) {
    twin t;
    if (!twin_open(&t) || !twin_has(&t, t.be[DEV]->ops->add_rmsnorm != NULL, "add_rmsnorm")) return;
    int shapes[][2] = {{1, 2048}, {1, 33}, {7, 1000}, {300, 37}, {5, 4099}, {3, 5000}, {64, 2048}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int rows = shapes[s][0], n = shapes[s][1];
        size_t bytes = sizeof(float) * (size_t)rows * n;
        float *x = op_frand_array((size_t)rows * n, 1.0f), *y = op_frand_array((size_t)rows * n, 1.0f);
        float *w = op_frand_array((size_t)n, 2.0f);
        float *hx[2], *hh[2];
        for (int b = 0; b < 2; b++) {
            float *dx = put(&t, b, x, bytes), *dy = put(&t, b, y, bytes), *dw = put(&t, b, w, sizeof(float) * n);
            float *dh = put(&t, b, NULL, bytes);
            if (b == DEV) {
                t.be[b]->ops->add_rmsnorm(t.c[b], dx, dy, dh, dw, rows, n, 1e-6f);
            } else {
                lg_backend_add_rmsnorm_by_parts(t.c[b], dx, dy, dh, dw, rows, n, 1e-6f);
            }
            hx[b] = get(&t, b, dx, bytes), hh[b] = get(&t, b, dh, bytes);
            settle(&t, b, "add_rmsnorm");
            drop(&t, b, dx, bytes), drop(&t, b, dy, bytes), drop(&t, b, dh, bytes), drop(&t, b, dw, sizeof(float) * n);
        }
        CHECKF(memcmp(hx[DEV], hx[REF], bytes) == 0, "%d x %d: x + y differs", rows, n);
        int bad = 0;
        double worst = 0;
        for (int r = 0; r < rows; r++) {
            double e = op_rel(hh[DEV] + (size_t)r * n, hh[REF] + (size_t)r * n, (size_t)n);
            bad += !(e < 1e-6), worst = e > worst || isnan(e) ? e : worst;
        }
        CHECKF(bad == 0, "%d x %d: %d rows off, worst rel %.3e", rows, n, bad, worst);
        for (int b = 0; b < 2; b++) free(hx[b]), free(hh[b]);
        free(x), free(y), free(w);
    }
    twin_close(&t);
}

/* moe_combine_add_rmsnorm on the device against the device's own
 * moe_combine then add_rmsnorm: out, x and h bitwise (the fused kernel is
 * meant to give the same bits, so the greedy tokens and batch invariance
 * hold whichever runs), and against the reference's parts as test_moe_combine
 * and test_add_rmsnorm hold them. Rows up to 4096 take the fused kernel, 4099
 * the parts; top_k up to 16 (the kernel loads 8 pairs at a time); expert
 * ranges as under expert parallelism. */
static void test_combine_add_rmsnorm(void) {
    twin t;
    if (!twin_open(&t) || !twin_has(&t, t.be[DEV]->ops->moe_combine_add_rmsnorm != NULL, "moe_combine_add_rmsnorm"))
        return;
    struct {
        int n, K, E, used, hidden;
        float scale;
        bool shared;
        int first, last;
    } cases[] = {{1, 8, 256, 256, 2048, 2.5f, true, 0, 0}, {1, 1, 4, 4, 7, 1.0f, false, 0, 0},
                 {7, 2, 8, 5, 33, 2.5f, true, 0, 0},       {32, 8, 64, 40, 2048, 2.5f, true, 0, 0},
                 {300, 4, 16, 11, 300, 1.0f, false, 0, 0}, {5, 6, 9, 9, 4096, 1.5f, true, 0, 0},
                 {3, 6, 9, 9, 4099, 1.0f, true, 0, 0},     {9, 4, 16, 16, 1000, 2.5f, true, 4, 12},
                 {4, 10, 32, 32, 3072, 2.5f, true, 0, 0},  {2, 16, 64, 64, 1024, 1.0f, false, 8, 40}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int n = cases[ci].n, K = cases[ci].K, E = cases[ci].E, H = cases[ci].hidden;
        size_t pairs = (size_t)n * K, ob = sizeof(float) * (size_t)n * H;
        int32_t *ids = op_random_ids(n, K, cases[ci].used);
        float *h0 = op_frand_array((size_t)n * H, 1.0f), *grouped = malloc(sizeof(float) * pairs * H);
        lg_moe_plan plan = {malloc(sizeof(int32_t) * (E + 1)), malloc(sizeof(int32_t) * pairs),
                            malloc(sizeof(int32_t) * pairs), 0, 0};
        t.be[REF]->ops->moe_group(t.c[REF], &plan, grouped, h0, ids, n, K, E, H);
        float *eo = op_frand_array(pairs * H, 1.0f), *wts = op_frand_array(pairs, 1.0f);
        float *shared = op_frand_array((size_t)n * H, 1.0f), *x = op_frand_array((size_t)n * H, 2.0f);
        float *norm = op_frand_array((size_t)H, 2.0f);
        float *got[3][3]; /* [fused on the device, parts on the device, parts on the reference][out, x, h] */
        for (int run = 0; run < 3; run++) {
            int b = run < 2 ? DEV : REF;
            lg_moe_plan dp = {put(&t, b, plan.offsets, sizeof(int32_t) * (E + 1)),
                              put(&t, b, plan.rows, sizeof(int32_t) * pairs),
                              put(&t, b, plan.pair_rows, sizeof(int32_t) * pairs), cases[ci].first, cases[ci].last};
            lg_combine_norm_args a = {put(&t, b, NULL, ob), &dp, put(&t, b, eo, sizeof(float) * pairs * H),
                                      put(&t, b, wts, sizeof(float) * pairs),
                                      cases[ci].shared ? put(&t, b, shared, ob) : NULL, n, K, H, cases[ci].scale,
                                      put(&t, b, x, ob), put(&t, b, NULL, ob), put(&t, b, norm, sizeof(float) * H),
                                      1e-6f};
            if (run == 0) t.be[b]->ops->moe_combine_add_rmsnorm(t.c[b], &a);
            else lg_backend_moe_combine_add_rmsnorm_by_parts(t.c[b], &a);
            got[run][0] = get(&t, b, a.out, ob), got[run][1] = get(&t, b, a.x, ob), got[run][2] = get(&t, b, a.h, ob);
            settle(&t, b, run == 0 ? "moe_combine_add_rmsnorm" : "moe_combine and add_rmsnorm");
            drop(&t, b, dp.offsets, sizeof(int32_t) * (E + 1)), drop(&t, b, dp.rows, sizeof(int32_t) * pairs);
            drop(&t, b, dp.pair_rows, sizeof(int32_t) * pairs), drop(&t, b, a.out, ob);
            drop(&t, b, a.expert_out, sizeof(float) * pairs * H);
            drop(&t, b, a.weights, sizeof(float) * pairs);
            if (a.shared) drop(&t, b, a.shared, ob);
            drop(&t, b, a.x, ob), drop(&t, b, a.h, ob), drop(&t, b, a.norm, sizeof(float) * H);
        }
        static const char *const what[3] = {"out", "x", "h"};
        for (int v = 0; v < 3; v++) {
            CHECKF(memcmp(got[0][v], got[1][v], ob) == 0, "case %zu (%d tokens, top %d, hidden %d): %s fused differs",
                   ci, n, K, H, what[v]);
            double e = op_rel(got[0][v], got[2][v], (size_t)n * H);
            CHECKF(e < 1e-6, "case %zu (%d tokens, top %d, hidden %d): %s rel %.3e to the reference", ci, n, K, H,
                   what[v], e);
        }
        for (int run = 0; run < 3; run++)
            for (int v = 0; v < 3; v++) free(got[run][v]);
        free(ids), free(h0), free(grouped), free(plan.offsets), free(plan.rows), free(plan.pair_rows);
        free(eo), free(wts), free(shared), free(x), free(norm);
    }
    twin_close(&t);
}

/* add_rmsnorm_matmul (the residual add, the next norm and the router's
 * product of one token in one launch where the product would take the
 * float path) against the device's own two ops: x, h and the product
 * bitwise; against the reference's parts within 1e-6 (x, h) and 1e-5 (the
 * product, float32 sums in another order). Routers of XS.2's shape in F32
 * (fused) and BF16 (tensor cores: the parts), F16; fewer chunks a lane than
 * a batch of loads (64 and 40 columns); rows 4096 (fused) and 4099, 7
 * columns (no vector path) and three tokens (the parts); cases in a row, so
 * a counter left non-zero would lose the next case's x. */
static void test_add_rmsnorm_matmul(void) {
    twin t;
    if (!twin_open(&t) || !twin_has(&t, t.be[DEV]->ops->add_rmsnorm_matmul != NULL, "add_rmsnorm_matmul")) return;
    struct {
        lg_dtype dt;
        int rows, hidden, n;
        bool bias;
    } cases[] = {{LG_DTYPE_F32, 256, 2048, 1, false}, {LG_DTYPE_BF16, 256, 2048, 1, false},
                 {LG_DTYPE_F16, 37, 1000, 1, true},   {LG_DTYPE_F32, 8, 64, 1, false},
                 {LG_DTYPE_F16, 40, 40, 1, true},     {LG_DTYPE_F32, 300, 4096, 1, true},
                 {LG_DTYPE_F32, 19, 4099, 1, false},  {LG_DTYPE_F32, 19, 7, 1, false},
                 {LG_DTYPE_F32, 256, 2048, 3, true},  {LG_DTYPE_F32, 256, 2048, 1, false}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int n = cases[ci].n, H = cases[ci].hidden, R = cases[ci].rows;
        size_t xb = sizeof(float) * (size_t)n * H, ob = sizeof(float) * (size_t)n * R;
        twin_weight w = twin_weight_new(&t, cases[ci].dt, R, H, 1.0f);
        float *x = op_frand_array((size_t)n * H, 2.0f), *y = op_frand_array((size_t)n * H, 1.0f);
        float *norm = op_frand_array((size_t)H, 2.0f), *bias = op_frand_array((size_t)R, 0.5f);
        float *got[3][3]; /* [fused on the device, parts on the device, parts on the reference][x, h, out] */
        for (int run = 0; run < 3; run++) {
            int b = run < 2 ? DEV : REF;
            float *dx = put(&t, b, x, xb), *dy = put(&t, b, y, xb), *dh = put(&t, b, NULL, xb);
            float *dn = put(&t, b, norm, sizeof(float) * H), *dout = put(&t, b, NULL, ob);
            float *dbias = cases[ci].bias ? put(&t, b, bias, sizeof(float) * R) : NULL;
            lg_matmul_op op = {dout, dh, n, &w.m[b], dbias};
            if (run == 0) t.be[b]->ops->add_rmsnorm_matmul(t.c[b], dx, dy, dh, dn, n, H, 1e-6f, &op);
            else lg_backend_add_rmsnorm_matmul_by_parts(t.c[b], dx, dy, dh, dn, n, H, 1e-6f, &op);
            got[run][0] = get(&t, b, dx, xb), got[run][1] = get(&t, b, dh, xb), got[run][2] = get(&t, b, dout, ob);
            settle(&t, b, run == 0 ? "add_rmsnorm_matmul" : "add_rmsnorm and matmul_many");
            drop(&t, b, dx, xb), drop(&t, b, dy, xb), drop(&t, b, dh, xb), drop(&t, b, dn, sizeof(float) * H);
            drop(&t, b, dout, ob), drop(&t, b, dbias, sizeof(float) * R);
        }
        static const char *const what[3] = {"x", "h", "out"};
        for (int v = 0; v < 3; v++) {
            size_t count = (size_t)n * (v == 2 ? R : H);
            CHECKF(memcmp(got[0][v], got[1][v], sizeof(float) * count) == 0,
                   "case %zu (%s %dx%d, %d tokens): %s fused differs", ci, lg_dtype_name(cases[ci].dt), R, H, n,
                   what[v]);
            double e = op_rel(got[0][v], got[2][v], count);
            CHECKF(e < (v == 2 ? 1e-5 : 1e-6), "case %zu (%s %dx%d, %d tokens): %s rel %.3e to the reference", ci,
                   lg_dtype_name(cases[ci].dt), R, H, n, what[v], e);
        }
        for (int run = 0; run < 3; run++)
            for (int v = 0; v < 3; v++) free(got[run][v]);
        free(x), free(y), free(norm), free(bias);
        op_weight_free(&w.w);
    }
    twin_close(&t);
}

/* The inputs of an attention_inputs case: random q, k, v rows and norm
 * weights, positions, the rows' pool slots, the rotation's frequencies. */
typedef struct {
    int rows, nh, nkv, hd, n_rot, ps, width;
    lg_dtype cache;
    size_t row_bytes, page_bytes, pool_bytes, qn, kn;
    int32_t *pos, *slots;
    float *inv, *q, *k, *v, *qw, *kw;
} inputs_data;

/* slots: the rows' slots in order, or shuffled over the pool and two pages
 * more; positions up to 100000. */
static inputs_data inputs_data_new(int rows, int nh, int nkv, int hd, int n_rot, lg_dtype cache, int ps,
                                   bool shuffled) {
    inputs_data d = {.rows = rows, .nh = nh, .nkv = nkv, .hd = hd, .n_rot = n_rot, .ps = ps, .width = nkv * hd,
                     .cache = cache};
    d.row_bytes = lg_dtype_row_bytes(cache, d.width), d.page_bytes = 2 * (size_t)ps * d.row_bytes;
    int pages = (rows + ps - 1) / ps + (shuffled ? 2 : 0);
    d.pool_bytes = (size_t)pages * d.page_bytes;
    d.pos = malloc(sizeof(int32_t) * rows), d.slots = malloc(sizeof(int32_t) * rows);
    int *perm = malloc(sizeof(int) * (size_t)pages * ps);
    for (int i = 0; i < pages * ps; i++) perm[i] = i;
    for (int i = pages * ps - 1; shuffled && i > 0; i--) {
        int j = op_irand(i + 1), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    for (int r = 0; r < rows; r++) d.pos[r] = r == 0 ? 0 : op_irand(r % 2 ? 100 : 100000), d.slots[r] = perm[r];
    free(perm);
    d.inv = malloc(sizeof(float) * (size_t)(n_rot / 2 > 0 ? n_rot / 2 : 1));
    for (int i = 0; i < n_rot / 2; i++) d.inv[i] = powf(10000.0f, -2.0f * i / n_rot);
    d.qn = (size_t)rows * nh * hd, d.kn = (size_t)rows * d.width;
    d.q = op_frand_array(d.qn, 2.0f), d.k = op_frand_array(d.kn, 2.0f), d.v = op_frand_array(d.kn, 2.0f);
    d.qw = op_frand_array((size_t)hd, 2.0f), d.kw = op_frand_array((size_t)hd, 2.0f);
    return d;
}

static void inputs_data_free(inputs_data *d) {
    free(d->pos), free(d->slots), free(d->inv), free(d->q), free(d->k), free(d->v), free(d->qw), free(d->kw);
}

/* The first n rows of d through backend b's attention_inputs (by_parts: the
 * generic sequence of ops instead), into a fresh pool; q, k and the pool
 * read back into *q, *k, *pool (the caller frees them). */
static void inputs_run(twin *t, int b, const inputs_data *d, int n, bool by_parts, float **q, float **k,
                       uint8_t **pool) {
    size_t inv_bytes = sizeof(float) * (size_t)(d->n_rot / 2 > 0 ? d->n_rot / 2 : 1);
    float *dq = put(t, b, d->q, sizeof(float) * d->qn), *dk = put(t, b, d->k, sizeof(float) * d->kn);
    float *dv = put(t, b, d->v, sizeof(float) * d->kn);
    float *dqw = put(t, b, d->qw, sizeof(float) * d->hd), *dkw = put(t, b, d->kw, sizeof(float) * d->hd);
    float *dinv = put(t, b, d->inv, inv_bytes);
    uint8_t *base = put(t, b, NULL, d->pool_bytes);
    lg_kv_pool_view view = {base, d->ps, d->width, d->row_bytes, d->page_bytes, d->cache};
    lg_attention_inputs_args a = {dq, dk, dv, n, d->nh, d->nkv, d->hd, dqw, dkw, 1e-6f, d->n_rot, dinv, 1.1f, d->pos,
                                  &view, {d->slots, n}};
    if (by_parts) lg_backend_attention_inputs_by_parts(t->c[b], &a);
    else t->be[b]->ops->attention_inputs(t->c[b], &a);
    *q = get(t, b, dq, sizeof(float) * d->qn), *k = get(t, b, dk, sizeof(float) * d->kn);
    *pool = get(t, b, base, d->pool_bytes);
    settle(t, b, "attention_inputs");
    drop(t, b, dq, sizeof(float) * d->qn), drop(t, b, dk, sizeof(float) * d->kn), drop(t, b, dv, sizeof(float) * d->kn);
    drop(t, b, dqw, sizeof(float) * d->hd), drop(t, b, dkw, sizeof(float) * d->hd), drop(t, b, base, d->pool_bytes);
    drop(t, b, dinv, inv_bytes);
}

/* attention_inputs against the reference's rmsnorm, rope and kv_write in
 * turn, on a pool of every cache dtype with page sizes 16 and 5 and rows
 * written to shuffled slots: q and k 4e-6 norm-wise per head kind (the norm's
 * 1e-6 and rope's 2e-6 of test_rmsnorm and rope_case); the pool's value
 * rows bitwise (the same conversion of the same floats); its key rows
 * decoded, within one rounding step of the cache dtype of each other (the
 * keys may differ in their last bits before they are rounded). */
static void inputs_case(twin *t, int rows, int nh, int nkv, int hd, int n_rot, lg_dtype cache, int ps) {
    inputs_data d = inputs_data_new(rows, nh, nkv, hd, n_rot, cache, ps, true);
    int width = d.width;
    size_t row_bytes = d.row_bytes, page_bytes = d.page_bytes;
    float *hq[2], *hk[2];
    uint8_t *hpool[2];
    for (int b = 0; b < 2; b++) inputs_run(t, b, &d, rows, b != DEV, &hq[b], &hk[b], &hpool[b]);
    char what[120];
    snprintf(what, sizeof what, "%d rows, heads %d/%d, hd %d, n_rot %d, cache %s, page %d", rows, nh, nkv, hd, n_rot,
             lg_dtype_name(cache), ps);
    double eq = op_rel(hq[DEV], hq[REF], d.qn), ek = op_rel(hk[DEV], hk[REF], d.kn);
    CHECKF(eq < 4e-6 && ek < 4e-6, "%s: q rel %.3e, k rel %.3e", what, eq, ek);
    /* the pool, row by row of the written slots */
    float step = cache == LG_DTYPE_F32 ? 0 : cache == LG_DTYPE_F16 ? 1.0f / 1024 : cache == LG_DTYPE_BF16 ? 1.0f / 128 : 0;
    float *kd[2] = {malloc(sizeof(float) * width), malloc(sizeof(float) * width)};
    int v_differ = 0, k_far = 0;
    for (int r = 0; r < rows; r++) {
        size_t at = (size_t)(d.slots[r] / ps) * page_bytes + (size_t)(d.slots[r] % ps) * row_bytes;
        v_differ += memcmp(hpool[DEV] + at + (size_t)ps * row_bytes, hpool[REF] + at + (size_t)ps * row_bytes, row_bytes) != 0;
        for (int b = 0; b < 2; b++) lg_dtype_to_f32(cache, hpool[b] + at, kd[b], width);
        float amax = 0;
        for (int e = 0; e < width; e++) amax = fabsf(kd[REF][e]) > amax ? fabsf(kd[REF][e]) : amax;
        for (int e = 0; e < width; e++) {
            float ref = kd[REF][e], tol = cache == LG_DTYPE_Q8_0 ? amax / 127 * 1.01f : step * fabsf(ref) + 1e-6f * amax;
            k_far += !(fabsf(kd[DEV][e] - ref) <= tol);
        }
    }
    CHECKF(v_differ == 0, "%s: %d value rows differ in the pool", what, v_differ);
    CHECKF(k_far == 0, "%s: %d key values beyond a rounding step", what, k_far);
    for (int b = 0; b < 2; b++) free(hq[b]), free(hk[b]), free(hpool[b]), free(kd[b]);
    inputs_data_free(&d);
}

/* A row's inputs have the same bits whichever kernel prepares them: the
 * first 40 rows of a 300-row call (a prompt's kernel) against the same rows
 * in a call of their own (a decode step's), q, k and the pool bitwise. */
static void inputs_kernels_agree(twin *t, lg_dtype cache) {
    int rows = 300, few = 40;
    inputs_data d = inputs_data_new(rows, 48, 8, 128, 64, cache, 16, false);
    float *hq[2], *hk[2];
    uint8_t *hpool[2];
    for (int pass = 0; pass < 2; pass++) /* all rows, then the first few alone */
        inputs_run(t, DEV, &d, pass ? few : rows, false, &hq[pass], &hk[pass], &hpool[pass]);
    int q_differ = memcmp(hq[0], hq[1], sizeof(float) * (size_t)few * d.nh * d.hd) != 0;
    int k_differ = memcmp(hk[0], hk[1], sizeof(float) * (size_t)few * d.width) != 0;
    int pool_differ = 0; /* the pages the few rows fill, keys and values */
    for (int r = 0; r < few; r++)
        for (int kind = 0; kind < 2; kind++) {
            size_t at = (size_t)(r / d.ps) * d.page_bytes + ((size_t)kind * d.ps + (size_t)(r % d.ps)) * d.row_bytes;
            pool_differ += memcmp(hpool[0] + at, hpool[1] + at, d.row_bytes) != 0;
        }
    CHECKF(!q_differ && !k_differ && !pool_differ, "cache %s: rows alone differ from the same rows among 300 (q %d, k %d, "
           "pool rows %d)", lg_dtype_name(cache), q_differ, k_differ, pool_differ);
    for (int pass = 0; pass < 2; pass++) free(hq[pass]), free(hk[pass]), free(hpool[pass]);
    inputs_data_free(&d);
}

static void test_attention_inputs(void) {
    twin t;
    if (!twin_open(&t) || !twin_has(&t, t.be[DEV]->ops->attention_inputs != NULL, "attention_inputs")) return;
    lg_dtype caches[] = {LG_DTYPE_F32, LG_DTYPE_BF16, LG_DTYPE_F16, LG_DTYPE_Q8_0};
    for (int c = 0; c < 4; c++) {
        inputs_case(&t, 1, 64, 8, 128, 128, caches[c], 16);   /* XS.2 sliding layer, one decode row */
        inputs_case(&t, 300, 48, 8, 128, 64, caches[c], 16);  /* XS.2 global layer (half rotated), prefill */
        inputs_case(&t, 17, 7, 3, 96, 32, caches[c], 5);      /* odd heads, page size 5 */
        inputs_case(&t, 9, 4, 2, 48, 48, caches[c], 5);       /* Q8_0 blocks across heads: the unfused write */
        if (caches[c] != LG_DTYPE_Q8_0)                        /* (rows of 99 values: no Q8_0 cache) */
            inputs_case(&t, 3, 3, 3, 33, 10, caches[c], 16);  /* head_dim not a multiple of 32 */
        inputs_kernels_agree(&t, caches[c]);
    }
    twin_close(&t);
}

int main(void) {
    RUN(test_embed);
    RUN(test_rmsnorm);
    RUN(test_rope_shapes);
    RUN(test_rope_as_configured);
    RUN(test_matmul_every_dtype);
    RUN(test_matmul_mixed_call);
    RUN(test_matmul_batch_invariant);
    RUN(test_matmul_bf16_activations);
    RUN(test_matmul_recorded_smem);
    RUN(test_attention_shapes);
    RUN(test_attention_long_and_unsplit);
    RUN(test_attention_tiles);
    RUN(test_attention_batch_invariant);
    RUN(test_attention_bf16_activations);
    RUN(test_attention_decode_groups);
    RUN(test_attention_prompt_kernel);
    RUN(test_output_gate);
    RUN(test_silu_mul);
    RUN(test_add);
    RUN(test_gather_rows);
    RUN(test_prefetch_weights);
    RUN(test_buffers);
    RUN(test_router);
    RUN(test_moe_group);
    RUN(test_route);
    RUN(test_moe_experts);
    RUN(test_moe_combine);
    RUN(test_moe_batch_invariant);
    RUN(test_moe_rows_through_plan);
    RUN(test_add_rmsnorm);
    RUN(test_combine_add_rmsnorm);
    RUN(test_add_rmsnorm_matmul);
    RUN(test_attention_inputs);
    RUN(test_argmax_rows); /* the cases above keep the random inputs they always had */
    RUN(test_wgmma_ring);
    return test_summary();
}
