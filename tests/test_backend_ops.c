/* Every op of the backend ops table (backend/backend.h) on the CPU backend
 * against the reference backend, on random inputs of awkward sizes: odd row
 * counts, 1 and 300 rows, odd head counts with GQA groups 1/2/3, sliding
 * windows around page edges, paged KV pools (page_size 16 and 5) in every
 * cache dtype, weights in every dtype the engine reads. Both backends get the
 * same inputs; each op's tolerance is stated beside its check. Also ported
 * from the old tests/test_kernels.c: the matmul and quantised-matmul cases
 * over 1-3 threads (now through lg_cpu_matmul), the attention shapes (now
 * over the paged pool), hand-computed rope/rmsnorm/activation values and the
 * dtype conversion edges; and the whole tiny fixture models run on the
 * reference backend against their golden files. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_attention.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/quant_dot.h"
#include "core/argmax.h"
#include "harness.h"
#include "laguna.h"
#include "op_inputs.h"
#include "paged_layout.h"
#include "quant/quant.h"
#include "verify/verify.h"

/* ---- helpers ------------------------------------------------------------ */

enum { CPU = 0, REF = 1 };
static const char *const side_name[2] = {"cpu", "reference"};

/* The two backends under comparison, one context each. */
typedef struct {
    lg_backend *be[2];
    lg_backend_ctx *c[2];
} twin;

static const lg_ctx_sizes test_sizes = {.widest_row = 4096, .max_keys = 1024, .head_dim = 128, .n_experts = 64};

static bool twin_open(twin *t, int cpu_threads) {
    memset(t, 0, sizeof *t);
    t->be[CPU] = lg_cpu_backend_new(cpu_threads);
    t->be[REF] = lg_reference_backend_new();
    CHECK(t->be[CPU] && t->be[REF]);
    if (!t->be[CPU] || !t->be[REF]) return false;
    for (int b = 0; b < 2; b++) {
        /* The tests write inputs and read results through plain pointers. */
        CHECK(t->be[b]->ops->host_memory);
        t->c[b] = t->be[b]->ops->ctx_new(t->be[b], &test_sizes);
        CHECK(t->c[b] != NULL);
    }
    return t->c[CPU] && t->c[REF] && t->be[CPU]->ops->host_memory && t->be[REF]->ops->host_memory;
}

static void twin_close(twin *t) {
    for (int b = 0; b < 2; b++) {
        if (t->c[b]) t->be[b]->ops->ctx_free(t->c[b]);
        if (t->be[b]) t->be[b]->ops->destroy(t->be[b]);
    }
}

/* A backend buffer holding a copy of host bytes (zeroes when src is NULL). */
static void *put(lg_backend *be, const void *src, size_t bytes) {
    void *p = be->ops->alloc(be, bytes);
    CHECK(p != NULL);
    if (p && src) memcpy(p, src, bytes);
    return p;
}
static void drop(lg_backend *be, void *p, size_t bytes) {
    be->ops->free(be, p, bytes);
}
/* Result bytes to a new host array, through the op the engine uses. */
static void *get(lg_backend_ctx *c, const void *src, size_t bytes) {
    void *h = malloc(bytes ? bytes : 1);
    c->backend->ops->to_host(c, h, src, bytes);
    return h;
}

/* Both backends adopt weights where they lie (host memory), so one lg_matrix
 * serves both; checked, since the tests rely on it. */
static void adopt(twin *t, op_weight *w) {
    size_t bytes = w->m.row_bytes * (size_t)w->m.rows;
    for (int b = 0; b < 2; b++)
        CHECK(t->be[b]->ops->adopt_weights(t->be[b], w->bytes, bytes) == w->bytes);
}

/* Outputs of products with quantised weights that the CPU runs on 8-bit
 * activations (the types quant_dot.h serves, at every batch size) may differ
 * from the float reference by what rounding every activation to half a step
 * of its block's amax/127 can cost (blocks of lg_q8_block: 32 for Q8_0, 256
 * for the K-quants): sum_i |w_i| * step_i / 2, plus float rounding (2e-6 of
 * sum |w_i x_i|). Other types (Q4_0) take the dequantising float path and must
 * match to float rounding (op_outside_q8_bound counts the outputs outside it).
 * takes_q8_path gives the activation block, 0 for the float path. */
#define FLOAT_ROUNDING 2e-6
static int takes_q8_path(lg_dtype dt, int tokens) {
    (void)tokens;
    return lg_q8_block(dt);
}

/* ---- embed, rmsnorm, rope ------------------------------------------------ */

/* Embedding rows are the table's rows converted exactly: bitwise equal to the
 * reference, and for an F32 table to the table itself. */
static void test_embed(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    struct {
        lg_dtype dt;
        int cols;
    } tables[] = {{LG_DTYPE_F32, 37},  {LG_DTYPE_BF16, 37},  {LG_DTYPE_F16, 37},
                  {LG_DTYPE_Q8_0, 96}, {LG_DTYPE_Q4_K, 256}, {LG_DTYPE_Q6_K, 256}};
    int counts[] = {1, 7, 300};
    for (size_t d = 0; d < sizeof tables / sizeof tables[0]; d++) {
        int rows = 53, cols = tables[d].cols;
        op_weight w = op_weight_new(tables[d].dt, rows, cols, 1.0f);
        adopt(&t, &w);
        for (int ci = 0; ci < 3; ci++) {
            int n = counts[ci];
            int32_t *tok = malloc(sizeof(int32_t) * n);
            for (int i = 0; i < n; i++)
                tok[i] = i == 0 ? rows - 1 : i == 1 ? 0 : op_irand(rows);
            size_t bytes = sizeof(float) * (size_t)n * cols;
            float *out[2];
            for (int b = 0; b < 2; b++) {
                float *x = put(t.be[b], NULL, bytes);
                t.be[b]->ops->embed(t.c[b], x, &w.m, tok, n);
                out[b] = get(t.c[b], x, bytes);
                drop(t.be[b], x, bytes);
            }
            CHECKF(memcmp(out[CPU], out[REF], bytes) == 0, "%s n %d", lg_dtype_name(tables[d].dt),
                   n);
            for (int i = 0; i < n; i++) /* the decoded table row itself */
                CHECKF(memcmp(out[CPU] + (size_t)i * cols, w.deq + (size_t)tok[i] * cols,
                              sizeof(float) * cols) == 0,
                       "%s row %d (token %d)", lg_dtype_name(tables[d].dt), i, tok[i]);
            free(out[0]), free(out[1]), free(tok);
        }
        op_weight_free(&w);
    }
    twin_close(&t);
}

/* The CPU forms the row's scale in double like the reference, then rounds
 * x * scale * w in float32 twice where the reference rounds once: a few ulp,
 * so 1e-6 relative (norm-wise) is ample and a wrong mean or eps is not. */
static void test_rmsnorm(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    int shapes[][2] = {{1, 1}, {1, 33}, {7, 1000}, {300, 37}, {5, 129}};
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
                float *dx = put(t.be[b], x, bytes), *dw = put(t.be[b], w, sizeof(float) * n);
                float *dy = in_place ? dx : put(t.be[b], NULL, bytes);
                t.be[b]->ops->rmsnorm(t.c[b], dy, dx, dw, rows, n, 1e-6f);
                out[b] = get(t.c[b], dy, bytes);
                if (!in_place) drop(t.be[b], dy, bytes);
                drop(t.be[b], dx, bytes), drop(t.be[b], dw, sizeof(float) * n);
            }
            for (int r = 0; r < rows; r++) {
                double e = op_rel(out[CPU] + (size_t)r * n, out[REF] + (size_t)r * n, (size_t)n);
                CHECKF(e < 1e-6, "%d x %d%s row %d: rel %.3e", rows, n, in_place ? " in place" : "",
                       r, e);
            }
            free(out[0]), free(out[1]), free(x), free(w);
        }
    twin_close(&t);
}

/* Both form the angle pos * inv_freq in float32; the CPU takes cosf/sinf and
 * float products where the reference uses double: a few ulp per element,
 * 2e-6 norm-wise. Dims past n_rot must pass through untouched. */
static void test_rope(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    struct {
        int rows, heads, hd, n_rot;
        float scale;
    } cases[] = {
        {1, 3, 10, 6, 1.0f}, {7, 5, 16, 16, 1.0f}, {300, 3, 24, 24, 1.3f}, {13, 1, 18, 8, 0.7f}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int rows = cases[ci].rows, heads = cases[ci].heads, hd = cases[ci].hd,
            n_rot = cases[ci].n_rot;
        size_t n = (size_t)rows * heads * hd, bytes = sizeof(float) * n;
        float *x = op_frand_array(n, 1.0f), inv[64];
        for (int i = 0; i < n_rot / 2; i++)
            inv[i] = powf(10000.0f, -2.0f * i / n_rot);
        int32_t *pos = malloc(sizeof(int32_t) * rows);
        for (int r = 0; r < rows; r++)
            pos[r] = r == 0 ? 0 : op_irand(r % 2 ? 100 : 100000);
        float *out[2];
        for (int b = 0; b < 2; b++) {
            float *d = put(t.be[b], x, bytes), *dinv = put(t.be[b], inv, sizeof inv);
            t.be[b]->ops->rope(t.c[b], d, rows, heads, hd, n_rot, dinv, cases[ci].scale, pos);
            out[b] = get(t.c[b], d, bytes);
            drop(t.be[b], d, bytes), drop(t.be[b], dinv, sizeof inv);
        }
        double e = op_rel(out[CPU], out[REF], n);
        CHECKF(e < 2e-6, "case %zu: rel %.3e", ci, e);
        int moved = 0;
        for (size_t v = 0; v < (size_t)rows * heads; v++)
            for (int i = n_rot; i < hd; i++)
                moved += out[CPU][v * hd + i] != x[v * hd + i];
        CHECKF(moved == 0, "case %zu: %d unrotated dims changed", ci, moved);
        free(out[0]), free(out[1]), free(x), free(pos);
    }
    twin_close(&t);
}

/* ---- matmul_many ---------------------------------------------------------- */

/* Several products in one call: every weight dtype, with and without bias,
 * products sharing one x (the CPU quantises it once for them), a product of
 * 0 tokens that must leave its y alone, and more products than the CPU
 * dispatches at once. Float weights: float32 accumulation in several partial
 * sums against double, 2e-6 norm-wise (the old test's bound); quantised
 * weights: the 8-bit activation bound per output. */
static void test_matmul_many(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    struct {
        lg_dtype dt;
        int rows, cols, tokens, bias, same_x_as;
    } spec[] = {
        {LG_DTYPE_F32, 37, 33, 5, 1, -1},   {LG_DTYPE_BF16, 17, 129, 300, 0, -1},
        {LG_DTYPE_F16, 1, 7, 1, 1, -1},     {LG_DTYPE_Q8_0, 23, 96, 7, 1, -1},
        {LG_DTYPE_Q8_0, 9, 96, 7, 0, 3},    {LG_DTYPE_Q4_K, 19, 256, 3, 0, -1},
        {LG_DTYPE_Q5_K, 13, 512, 1, 1, -1}, {LG_DTYPE_Q6_K, 29, 256, 37, 0, -1},
        {LG_DTYPE_F32, 5, 33, 0, 1, 0},     {LG_DTYPE_Q4_K, 31, 256, 2, 1, 5},
        {LG_DTYPE_F32, 3, 1, 2, 0, -1},     {LG_DTYPE_Q6_K, 3, 256, 0, 0, -1},
    };
    int n_spec = (int)(sizeof spec / sizeof spec[0]);
    for (int round = 0; round < 2;
         round++) { /* round 1: 70 products, past the CPU's 64 per dispatch */
        int n_ops = round ? 70 : n_spec;
        op_weight *w = calloc((size_t)n_ops, sizeof *w);
        float **x = calloc((size_t)n_ops, sizeof *x), **bias = calloc((size_t)n_ops, sizeof *bias);
        float *out[2][70];
        for (int i = 0; i < n_ops; i++) {
            int s = i % n_spec;
            w[i] = op_weight_new(spec[s].dt, spec[s].rows, spec[s].cols, 1.0f);
            adopt(&t, &w[i]);
            int src = spec[s].same_x_as;
            x[i] = src >= 0
                       ? NULL
                       : op_frand_array(
                             (size_t)(spec[s].tokens ? spec[s].tokens : 1) * spec[s].cols, 1.0f);
            if (spec[s].bias) bias[i] = op_frand_array((size_t)spec[s].rows, 0.5f);
        }
        for (int b = 0; b < 2; b++) {
            lg_matmul_op ops[70];
            float *dx[70] = {0}, *dbias[70] = {0};
            for (int i = 0; i < n_ops; i++) {
                int s = i % n_spec, tok = spec[s].tokens, rows = spec[s].rows;
                if (x[i])
                    dx[i] =
                        put(t.be[b], x[i], sizeof(float) * (size_t)(tok ? tok : 1) * spec[s].cols);
                if (bias[i]) dbias[i] = put(t.be[b], bias[i], sizeof(float) * rows);
                size_t ybytes = sizeof(float) * (size_t)(tok ? tok : 1) * rows;
                float *y = put(t.be[b], NULL, ybytes);
                for (size_t e = 0; e < ybytes / sizeof(float); e++)
                    y[e] = 12345.0f; /* must stay when skipped */
                ops[i] = (lg_matmul_op){y, NULL, tok, &w[i].m, dbias[i]};
            }
            for (int i = 0; i < n_ops; i++) { /* shared x: the very same buffer */
                int s = i % n_spec, src = i - s + spec[s].same_x_as;
                ops[i].x = dx[i] ? dx[i] : dx[src];
            }
            t.be[b]->ops->matmul_many(t.c[b], ops, n_ops);
            for (int i = 0; i < n_ops; i++) {
                int s = i % n_spec, tok = spec[s].tokens;
                size_t ybytes = sizeof(float) * (size_t)(tok ? tok : 1) * spec[s].rows;
                out[b][i] = get(t.c[b], ops[i].y, ybytes);
                drop(t.be[b], ops[i].y, ybytes);
                if (dx[i])
                    drop(t.be[b], dx[i], sizeof(float) * (size_t)(tok ? tok : 1) * spec[s].cols);
                if (dbias[i]) drop(t.be[b], dbias[i], sizeof(float) * spec[s].rows);
            }
        }
        for (int i = 0; i < n_ops; i++) {
            int s = i % n_spec, tok = spec[s].tokens, rows = spec[s].rows, cols = spec[s].cols;
            lg_dtype dt = spec[s].dt;
            const float *xi = x[i] ? x[i] : x[i - s + spec[s].same_x_as];
            if (tok == 0) {
                int changed = 0;
                for (int b = 0; b < 2; b++)
                    for (int e = 0; e < rows; e++)
                        changed += out[b][i][e] != 12345.0f;
                CHECKF(changed == 0, "op %d of 0 tokens wrote %d values", i, changed);
            } else if (lg_dtype_is_quantized(dt)) {
                int bad = op_outside_q8_bound(out[CPU][i], out[REF][i], xi, w[i].deq, bias[i], rows,
                                              cols, tok, takes_q8_path(dt, tok), FLOAT_ROUNDING);
                CHECKF(bad == 0, "op %d %s %dx%d tokens %d: %d outputs outside the bound", i,
                       lg_dtype_name(dt), rows, cols, tok, bad);
            } else {
                double e = op_rel(out[CPU][i], out[REF][i], (size_t)tok * rows);
                CHECKF(e < 2e-6, "op %d %s %dx%d tokens %d: rel %.3e", i, lg_dtype_name(dt), rows,
                       cols, tok, e);
            }
        }
        for (int i = 0; i < n_ops; i++) {
            op_weight_free(&w[i]), free(x[i]), free(bias[i]);
            free(out[0][i]), free(out[1][i]);
        }
        free(w), free(x), free(bias);
    }
    twin_close(&t);
}

/* Ported from tests/test_kernels.c: lg_cpu_matmul with 1 and 3 threads
 * against the reference backend's product, float weights, 2e-6 norm-wise. */
static void matmul_case(lg_backend *cpu, lg_backend_ctx *ref, lg_dtype dt, int rows, int cols,
                        int tokens, int with_bias) {
    op_weight w = op_weight_new(dt, rows, cols, 1.0f);
    float *x = op_frand_array((size_t)tokens * cols, 1.0f),
          *bias = op_frand_array((size_t)rows, 1.0f);
    float *y = malloc(sizeof(float) * (size_t)tokens * rows),
          *want = malloc(sizeof(float) * (size_t)tokens * rows);
    for (size_t i = 0; i < (size_t)tokens * rows; i++)
        y[i] = NAN; /* poison: every output must be written */
    lg_backend_ctx *c =
        cpu->ops->ctx_new(cpu, &(lg_ctx_sizes){.widest_row = cols, .max_keys = 1, .head_dim = 1});
    CHECK(c != NULL);
    if (c) lg_cpu_matmul((lg_cpu_ctx *)c, y, x, tokens, &w.m, with_bias ? bias : NULL);
    ref->backend->ops->matmul_many(
        ref, &(lg_matmul_op){want, x, tokens, &w.m, with_bias ? bias : NULL}, 1);
    double e = op_rel(y, want, (size_t)tokens * rows);
    CHECKF(e < 2e-6, "%s %dx%d tokens %d threads %d: rel %.3e", lg_dtype_name(dt), rows, cols,
           tokens, cpu->n_threads, e);
    if (c) cpu->ops->ctx_free(c);
    op_weight_free(&w), free(x), free(bias), free(y), free(want);
}

static void quant_matmul_case(lg_backend *cpu, lg_backend_ctx *ref, lg_dtype dt, int rows, int cols,
                              int tokens) {
    op_weight w = op_weight_new(dt, rows, cols, 1.0f);
    float *x = op_frand_array((size_t)tokens * cols, 1.0f),
          *bias = op_frand_array((size_t)rows, 0.01f);
    float *y = malloc(sizeof(float) * (size_t)tokens * rows),
          *want = malloc(sizeof(float) * (size_t)tokens * rows);
    for (size_t i = 0; i < (size_t)tokens * rows; i++)
        y[i] = NAN;
    lg_backend_ctx *c =
        cpu->ops->ctx_new(cpu, &(lg_ctx_sizes){.widest_row = cols, .max_keys = 1, .head_dim = 1});
    CHECK(c != NULL);
    if (c) lg_cpu_matmul((lg_cpu_ctx *)c, y, x, tokens, &w.m, bias);
    ref->backend->ops->matmul_many(ref, &(lg_matmul_op){want, x, tokens, &w.m, bias}, 1);
    int bad = op_outside_q8_bound(y, want, x, w.deq, bias, rows, cols, tokens,
                                  takes_q8_path(dt, tokens), FLOAT_ROUNDING);
    CHECKF(bad == 0, "%s %dx%d tokens %d threads %d: %d outputs outside the bound",
           lg_dtype_name(dt), rows, cols, tokens, cpu->n_threads, bad);
    if (c) cpu->ops->ctx_free(c);
    op_weight_free(&w), free(x), free(bias), free(y), free(want);
}

static void test_matmul_matches_reference(void) {
    lg_backend *ref = lg_reference_backend_new();
    lg_backend_ctx *rc = ref->ops->ctx_new(ref, &test_sizes);
    int shapes[][3] = {{1, 1, 1},    {3, 7, 1},     {17, 33, 5},
                       {65, 129, 3}, {100, 257, 2}, {31, 1000, 7}};
    lg_dtype dts[] = {LG_DTYPE_F32, LG_DTYPE_BF16, LG_DTYPE_F16};
    for (int th = 1; th <= 3; th += 2) {
        lg_backend *cpu = lg_cpu_backend_new(th);
        for (int d = 0; d < 3; d++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                matmul_case(cpu, rc, dts[d], shapes[s][0], shapes[s][1], shapes[s][2], (int)s % 2);
        cpu->ops->destroy(cpu);
    }
    ref->ops->ctx_free(rc), ref->ops->destroy(ref);
}

static void test_quantized_matmul(void) {
    lg_backend *ref = lg_reference_backend_new();
    lg_backend_ctx *rc = ref->ops->ctx_new(ref, &test_sizes);
    lg_dtype dts[] = {LG_DTYPE_Q8_0, LG_DTYPE_Q4_K, LG_DTYPE_Q5_K, LG_DTYPE_Q6_K, LG_DTYPE_Q4_0};
    int shapes[][3] = {{1, 256, 1},   {37, 512, 1},  {23, 512, 2}, {19, 768, 3},
                       {13, 256, 5},  {29, 768, 7},  {5, 1280, 8}, {33, 256, 9},
                       {17, 512, 13}, {11, 512, 24}, {7, 256, 37}};
    for (int th = 1; th <= 3; th++) {
        lg_backend *cpu = lg_cpu_backend_new(th);
        for (int d = 0; d < 5; d++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                quant_matmul_case(cpu, rc, dts[d], shapes[s][0], shapes[s][1], shapes[s][2]);
        cpu->ops->destroy(cpu);
    }
    ref->ops->ctx_free(rc), ref->ops->destroy(ref);
}

/* ---- kv_write and attention over a paged pool ----------------------------- */

/* The step as tests/paged_layout.h lays it out. kv_write: the pool bytes
 * must be the rows converted, at the slot the layout computed, identical on
 * both backends. Attention: float32 scores and softmax against double,
 * 1e-5 norm-wise (the old test's bound). */
static void attention_case(twin *t, const attention_spec *sp) {
    paged_layout l;
    paged_layout_make(&l, sp, false);
    int width = l.width, ps = sp->page_size;
    size_t wbytes = sizeof(float) * (size_t)(l.n_write + 1) * width,
           fbytes = sizeof(float) * (size_t)(l.n_rows + 1) * width,
           out_bytes = sizeof(float) * (size_t)(l.n_rows + 1) * l.q_width;
    uint8_t *pool_host[2];
    float *out[2];
    for (int b = 0; b < 2; b++) {
        uint8_t *base = put(t->be[b], NULL, l.pool_bytes);
        lg_kv_pool_view view = {base, ps, width, l.row_bytes, l.page_bytes, sp->cache};
        float *dk = put(t->be[b], l.wk, wbytes), *dv = put(t->be[b], l.wv, wbytes);
        t->be[b]->ops->kv_write(t->c[b], &view, &(lg_kv_write_args){l.slots, l.n_write}, dk, dv);
        pool_host[b] = get(t->c[b], base, l.pool_bytes);
        memset(base, 0xff, l.page_bytes); /* page 0: NaN in every cache dtype */
        float *dfk = put(t->be[b], l.fk, fbytes), *dfv = put(t->be[b], l.fv, fbytes),
              *dq = put(t->be[b], l.q, out_bytes), *dout = put(t->be[b], NULL, out_bytes);
        lg_attention_args a = {l.n_rows, l.pos, l.tables, l.from,   l.fresh_at, l.fresh_rows,
                               dfk,      dfv,   sp->n_heads, sp->n_kv, sp->hd,     sp->window};
        t->be[b]->ops->attention(t->c[b], &view, dout, dq, &a);
        out[b] = get(t->c[b], dout, out_bytes);
        drop(t->be[b], base, l.pool_bytes), drop(t->be[b], dk, wbytes), drop(t->be[b], dv, wbytes);
        drop(t->be[b], dfk, fbytes), drop(t->be[b], dfv, fbytes), drop(t->be[b], dq, out_bytes);
        drop(t->be[b], dout, out_bytes);
    }
    char what[160];
    attention_spec_describe(sp, what, sizeof what);

    /* kv_write: identical pools, and each row converted at the slot computed there */
    CHECKF(memcmp(pool_host[CPU], pool_host[REF], l.pool_bytes) == 0, "%s: pools differ after kv_write", what);
    uint8_t *conv = malloc(l.row_bytes);
    int misplaced = 0;
    for (int i = 0; i < l.n_write; i++) {
        size_t page = (size_t)l.slots[i] / ps, off = (size_t)l.slots[i] % ps;
        const uint8_t *kdst = pool_host[CPU] + page * l.page_bytes + off * l.row_bytes;
        lg_dtype_from_f32(sp->cache, l.wk + (size_t)i * width, conv, width);
        misplaced += memcmp(kdst, conv, l.row_bytes) != 0;
        lg_dtype_from_f32(sp->cache, l.wv + (size_t)i * width, conv, width);
        misplaced += memcmp(kdst + (size_t)ps * l.row_bytes, conv, l.row_bytes) != 0;
    }
    CHECKF(misplaced == 0, "%s: %d rows not where kv_write should put them", what, misplaced);
    double e = op_rel(out[CPU], out[REF], (size_t)l.n_rows * l.q_width);
    CHECKF(e < 1e-5, "%s: rel %.3e", what, e);

    free(conv), free(pool_host[0]), free(pool_host[1]), free(out[0]), free(out[1]);
    paged_layout_free(&l);
}

static void test_kv_write_and_attention(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    lg_dtype dts[] = {LG_DTYPE_F32, LG_DTYPE_F16, LG_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        lg_dtype c = dts[d];
        attention_spec cases[] = {
            /* the old test's shapes, one sequence each */
            {6, 2, 16, 16, 0, c, 1, {0}, {13}},
            {8, 2, 16, 16, 8, c, 1, {0}, {70}},  /* sliding, batch longer than the window */
            {8, 2, 16, 5, 8, c, 1, {21}, {1}},   /* decode step, window inside a page */
            {8, 2, 16, 5, 8, c, 1, {19}, {5}},   /* batch after a slid window */
            {12, 4, 24, 16, 0, c, 1, {37}, {9}}, /* global, odd sizes */
            {3, 3, 7, 5, 4, c, 1, {5}, {3}},     /* no grouping, odd head_dim */
            /* several sequences interleaved, GQA groups 1/2/3, windows smaller and larger than the
               context */
            {5, 5, 12, 5, 0, c, 3, {7, 0, 16}, {3, 11, 1}},
            {6, 3, 10, 16, 16, c, 2, {33, 15}, {4, 2}}, /* window of one page, crossing page edges
                                                         */
            {9, 3, 8, 5, 6, c, 3, {12, 4, 30}, {1, 7, 2}},
            {7, 7, 9, 16, 1000, c, 2, {40, 2}, {1, 5}}, /* window larger than the context */
            {6, 2, 20, 5, 5, c, 2, {10, 25}, {5, 1}},   /* window = page size, rows starting on page
                                                           edges */
            {4, 2, 16, 16, 0, c, 2, {0, 300}, {300, 1}}, /* 300 rows of prefill beside a long decode
                                                          */
            {40, 2, 12, 16, 0, c, 1, {70}, {1}}, /* 20 query heads per KV head: a task holds at most
                                                    16 */
            {20, 1, 12, 5, 0, c, 2, {65, 3}, {2, 40}},
            /* head_dim 64, 128 and 256: the AVX-512 or AVX2 step where the CPU has one */
            {16, 2, 128, 16, 0, c, 2, {45, 3}, {1, 37}},
            {6, 2, 64, 5, 20, c, 1, {70}, {3}},
            {4, 2, 256, 16, 0, c, 1, {50}, {2}},
            /* several whole chunks (32 positions) before the step's own rows: an f16 pool
               is read in place, each chunk listing the next one's rows */
            {16, 2, 128, 16, 0, c, 1, {100}, {1}},
            {8, 2, 128, 5, 70, c, 2, {130, 64}, {1, 2}}, /* from a sliding window's start */
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            attention_case(&t, &cases[i]);
    }
    /* 8-bit cache: head_dim a multiple of its block */
    attention_case(&t, &(attention_spec){8, 2, 32, 16, 8, LG_DTYPE_Q8_0, 1, {21}, {3}});
    attention_case(&t, &(attention_spec){6, 3, 64, 16, 0, LG_DTYPE_Q8_0, 1, {40}, {1}});
    attention_case(&t, &(attention_spec){6, 2, 32, 5, 7, LG_DTYPE_Q8_0, 3, {9, 0, 23}, {2, 6, 1}});
    attention_case(&t, &(attention_spec){3, 1, 32, 5, 0, LG_DTYPE_Q8_0, 2, {11, 3}, {4, 4}});
    twin_close(&t);
}

/* ---- output gate, silu_mul, add, gather_rows ------------------------------ */

/* softplus in float32 (log1pf(expf)) against double, then one product: a
 * few ulp per element, 1e-6 norm-wise. Gates span the x > 20 cut-off. */
static void test_output_gate(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    int shapes[][3] = {{1, 5, 13}, {7, 3, 16}, {300, 1, 9}, {11, 9, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int per_head = 0; per_head < 2; per_head++) {
            int rows = shapes[s][0], heads = shapes[s][1], hd = shapes[s][2];
            size_t n = (size_t)rows * heads * hd, ng = per_head ? (size_t)rows * heads : n;
            float *attn = op_frand_array(n, 1.0f), *gate = op_frand_array(ng, 25.0f), *out[2];
            for (int b = 0; b < 2; b++) {
                float *da = put(t.be[b], attn, sizeof(float) * n),
                      *dg = put(t.be[b], gate, sizeof(float) * ng);
                t.be[b]->ops->output_gate(t.c[b], da, dg, rows, heads, hd, per_head);
                out[b] = get(t.c[b], da, sizeof(float) * n);
                drop(t.be[b], da, sizeof(float) * n), drop(t.be[b], dg, sizeof(float) * ng);
            }
            double e = op_rel(out[CPU], out[REF], n);
            CHECKF(e < 1e-6, "%d x %d x %d per_head %d: rel %.3e", rows, heads, hd, per_head, e);
            free(attn), free(gate), free(out[0]), free(out[1]);
        }
    twin_close(&t);
}

/* silu in float32 against double: a few ulp, 1e-6 norm-wise; also in place
 * (out == gate), as the MoE block calls it. */
static void test_silu_mul(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    size_t sizes[] = {1, 7, 1001};
    for (int si = 0; si < 3; si++)
        for (int in_place = 0; in_place < 2; in_place++) {
            size_t n = sizes[si], bytes = sizeof(float) * n;
            float *g = op_frand_array(n, 30.0f), *u = op_frand_array(n, 2.0f), *out[2];
            for (int b = 0; b < 2; b++) {
                float *dg = put(t.be[b], g, bytes), *du = put(t.be[b], u, bytes);
                float *dout = in_place ? dg : put(t.be[b], NULL, bytes);
                t.be[b]->ops->silu_mul(t.c[b], dout, dg, du, n);
                out[b] = get(t.c[b], dout, bytes);
                if (!in_place) drop(t.be[b], dout, bytes);
                drop(t.be[b], dg, bytes), drop(t.be[b], du, bytes);
            }
            double e = op_rel(out[CPU], out[REF], n);
            CHECKF(e < 1e-6, "n %zu in_place %d: rel %.3e", n, in_place, e);
            free(g), free(u), free(out[0]), free(out[1]);
        }
    twin_close(&t);
}

/* The CPU backend's silu (a vector exp, tails padded) gives each value the
 * same bits wherever it sits: 37 values in one call, then each suffix
 * (every value at every offset from the vectors' starts) and each value alone. */
static void test_silu_mul_position_free(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    enum { N = 37 };
    size_t bytes = sizeof(float) * N;
    float *g = op_frand_array(N, 30.0f), *u = op_frand_array(N, 2.0f);
    lg_backend *be = t.be[CPU];
    float *dg = put(be, g, bytes), *du = put(be, u, bytes), *dout = put(be, NULL, bytes);
    be->ops->silu_mul(t.c[CPU], dout, dg, du, N);
    float *all = get(t.c[CPU], dout, bytes);
    int bad = 0;
    for (int k = 0; k < N; k++)
        for (int alone = 0; alone < 2; alone++) {
            size_t n = alone ? 1 : (size_t)(N - k);
            be->ops->silu_mul(t.c[CPU], dout, dg + k, du + k, n);
            float *part = get(t.c[CPU], dout, sizeof(float) * n);
            bad += memcmp(part, all + k, sizeof(float) * n) != 0;
            free(part);
        }
    CHECKF(bad == 0, "%d calls gave other bits for the same values", bad);
    drop(be, dg, bytes), drop(be, du, bytes), drop(be, dout, bytes);
    free(g), free(u), free(all);
    twin_close(&t);
}

/* One float32 add per element: bitwise equal to x + y computed here. */
static void test_add(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    size_t sizes[] = {1, 7, 1001};
    for (int si = 0; si < 3; si++) {
        size_t n = sizes[si], bytes = sizeof(float) * n;
        float *x = op_frand_array(n, 1.0f), *y = op_frand_array(n, 100.0f), *want = malloc(bytes);
        for (size_t i = 0; i < n; i++)
            want[i] = x[i] + y[i];
        for (int b = 0; b < 2; b++) {
            float *dx = put(t.be[b], x, bytes), *dy = put(t.be[b], y, bytes);
            t.be[b]->ops->add(t.c[b], dx, dy, n);
            float *got = get(t.c[b], dx, bytes);
            CHECKF(memcmp(got, want, bytes) == 0, "%s n %zu", side_name[b], n);
            free(got), drop(t.be[b], dx, bytes), drop(t.be[b], dy, bytes);
        }
        free(x), free(y), free(want);
    }
    twin_close(&t);
}

/* Rows copied exactly, repeats and any order allowed. */
static void test_gather_rows(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    int shapes[][3] = {
        {1, 1, 1}, {9, 4, 37}, {300, 300, 5}, {5, 17, 1}}; /* src rows, gathered rows, width */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int src_rows = shapes[s][0], n = shapes[s][1], width = shapes[s][2];
        float *src = op_frand_array((size_t)src_rows * width, 1.0f);
        int32_t *rows = malloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++)
            rows[i] = i == 0 ? src_rows - 1 : op_irand(src_rows);
        size_t sb = sizeof(float) * (size_t)src_rows * width,
               db = sizeof(float) * (size_t)n * width;
        for (int b = 0; b < 2; b++) {
            float *ds = put(t.be[b], src, sb), *dd = put(t.be[b], NULL, db);
            t.be[b]->ops->gather_rows(t.c[b], dd, ds, rows, n, width);
            float *got = get(t.c[b], dd, db);
            int bad = 0;
            for (int i = 0; i < n; i++)
                bad += memcmp(got + (size_t)i * width, src + (size_t)rows[i] * width,
                              sizeof(float) * width) != 0;
            CHECKF(bad == 0, "%s %d rows of %d: %d wrong", side_name[b], n, width, bad);
            free(got), drop(t.be[b], ds, sb), drop(t.be[b], dd, db);
        }
        free(src), free(rows);
    }
    twin_close(&t);
}

/* Greedy tokens of rows of logits: the CPU's argmax_rows op and, on the
 * reference backend (which has none), the forward pass's fallback, both
 * against the plain definition, on rows with ties, -inf, NaN, +inf and
 * signed zeros, vocab-sized and awkward widths; and lg_argmax_f32 itself. */
static void test_argmax_rows(void) {
    twin t;
    if (!twin_open(&t, 2)) return twin_close(&t);
    CHECK(t.be[CPU]->ops->argmax_rows != NULL);
    int shapes[][2] = {{1, 1},     {9, 2},      {18, 7},
                       {27, 1001}, {9, 100352}, {3, 4097}}; /* rows, cols */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n_rows = shapes[s][0], n_cols = shapes[s][1];
        float *x = op_argmax_rows_input(n_rows, n_cols);
        int32_t *want = malloc(sizeof(int32_t) * n_rows), *got = malloc(sizeof(int32_t) * n_rows);
        for (int r = 0; r < n_rows; r++)
            want[r] = op_argmax_plain(x + (size_t)r * n_cols, n_cols);
        for (int b = 0; b < 2; b++) {
            size_t bytes = sizeof(float) * (size_t)n_rows * n_cols;
            float *dx = put(t.be[b], x, bytes);
            memset(got, 0x7f, sizeof(int32_t) * n_rows);
            if (t.be[b]->ops->argmax_rows)
                t.be[b]->ops->argmax_rows(t.c[b], got, dx, n_rows, n_cols);
            else
                lg_backend_argmax_rows_by_parts(t.c[b], got, dx, n_rows, n_cols, NULL);
            int bad = 0, first_bad = -1;
            for (int r = 0; r < n_rows; r++)
                if (got[r] != want[r]) bad++, first_bad = first_bad < 0 ? r : first_bad;
            CHECKF(bad == 0, "%s %d x %d: %d rows wrong, first row %d: %d, want %d", side_name[b],
                   n_rows, n_cols, bad, first_bad, first_bad < 0 ? 0 : got[first_bad],
                   first_bad < 0 ? 0 : want[first_bad]);
            drop(t.be[b], dx, bytes);
        }
        for (int r = 0; r < n_rows; r++)
            CHECKF(lg_argmax_f32(x + (size_t)r * n_cols, n_cols) == want[r],
                   "lg_argmax_f32, %d x %d row %d", n_rows, n_cols, r);
        free(x), free(want), free(got);
    }
    twin_close(&t);
}

/* lg_argmax_f32 against the plain scan it replaces (`best = 0; if (x[i] >
 * x[best]) best = i`) at every width 1..200, so every tail after the vector
 * lanes and the switch to them at 64 are met, on op_argmax_rows_input's
 * rows (ties, -inf rows, NaN, +inf, signed zeros). */
static void test_argmax_widths(void) {
    int bad = 0;
    for (int n = 1; n <= 200; n++) {
        float *x = op_argmax_rows_input(18, n);
        for (int r = 0; r < 18; r++) {
            const float *row = x + (size_t)r * n;
            int32_t best = 0;
            for (int32_t i = 1; i < n; i++)
                if (row[i] > row[best]) best = i;
            if (lg_argmax_f32(row, n) != best && bad++ < 5)
                CHECKF(false, "width %d row %d: %d, the plain scan %d", n, r, lg_argmax_f32(row, n),
                       best);
        }
        free(x);
    }
    CHECKF(bad == 0, "%d rows differ from the plain scan", bad);
}

/* test_attention_heads for one instruction set */
static void attention_heads_case(lg_isa isa, const int dims[3], const int counts[9],
                                 const int keys[5]) {
    bool wide = isa == LG_ISA_AVX512_VNNI;
    for (int di = 0; di < 3; di++) {
        int hd = dims[di];
        lg_attention_heads_fn heads =
            wide ? lg_attention_heads_avx512(hd) : lg_attention_heads_avx2(hd);
        CHECKF(heads != NULL, "head_dim %d: no %s step", hd, lg_qgemm_isa_name(isa));
        if (!heads) continue;
        for (size_t ci = 0; ci < 9; ci++)
            for (size_t ki = 0; ki < 5; ki++) {
                int nh = counts[ci], n = keys[ki], stride = 32;
                float *q = op_frand_array((size_t)nh * hd, 2.0f);
                float *kv = op_frand_array((size_t)2 * n * hd, 1.0f);
                const float *key[32], *val[32];
                for (int i = 0; i < n; i++)
                    key[i] = kv + (size_t)i * hd, val[i] = kv + (size_t)(n + i) * hd;
                float *out[2], *s[2], mx[2][16], sum[2][16];
                for (int w = 0; w < 2; w++) {
                    out[w] = op_frand_array((size_t)nh * hd, 1.0f);
                    s[w] = calloc((size_t)nh * stride, sizeof(float));
                }
                memcpy(out[1], out[0], sizeof(float) * (size_t)nh * hd);
                for (int h = 0; h < nh; h++) /* an earlier chunk's state, the max above or below */
                    mx[0][h] = mx[1][h] = h % 2 ? -INFINITY : op_frand() * 3.0f,
                    sum[0][h] = sum[1][h] = h % 2 ? 0.0f : 1.0f + op_frand() * op_frand();
                heads(nh, q, key, val, n, 0.125f, s[0], stride, out[0], mx[0], sum[0]);
                for (int h = 0; h < nh; h++) /* each head alone: the one-head path */
                    heads(1, q + (size_t)h * hd, key, val, n, 0.125f, s[1] + h * stride, stride,
                          out[1] + (size_t)h * hd, &mx[1][h], &sum[1][h]);
                bool same = !memcmp(out[0], out[1], sizeof(float) * (size_t)nh * hd) &&
                            !memcmp(s[0], s[1], sizeof(float) * (size_t)nh * stride) &&
                            !memcmp(mx[0], mx[1], sizeof(float) * nh) &&
                            !memcmp(sum[0], sum[1], sizeof(float) * nh);
                CHECKF(same, "%s head_dim %d, %d heads, %d keys: not bitwise the one-head step",
                       lg_qgemm_isa_name(isa), hd, nh, n);
                /* the f16 twin on f16 rows against the float32 step on the same values */
                lg_attention_heads_f16_fn heads16 =
                    wide ? lg_attention_heads_f16_avx512(hd) : lg_attention_heads_f16_avx2(hd);
                CHECKF(heads16 != NULL, "head_dim %d: no %s f16 step", hd, lg_qgemm_isa_name(isa));
                uint16_t *kv16 = malloc(sizeof(uint16_t) * 2 * n * hd);
                const uint16_t *key16[32], *val16[32];
                for (int i = 0; i < 2 * n * hd; i++)
                    kv16[i] = lg_f32_to_f16(kv[i]), kv[i] = lg_f16_to_f32(kv16[i]);
                for (int i = 0; i < n; i++)
                    key16[i] = kv16 + (size_t)i * hd, val16[i] = kv16 + (size_t)(n + i) * hd;
                memcpy(out[1], out[0], sizeof(float) * (size_t)nh * hd);
                memcpy(mx[1], mx[0], sizeof mx[0]), memcpy(sum[1], sum[0], sizeof sum[0]);
                heads(nh, q, key, val, n, 0.125f, s[0], stride, out[0], mx[0], sum[0]);
                if (heads16)
                    heads16(nh, q, key16, val16, n, 0.125f, s[1], stride, out[1], mx[1], sum[1],
                            &(lg_attention_next){key16, val16, n});
                same = !memcmp(out[0], out[1], sizeof(float) * (size_t)nh * hd) &&
                       !memcmp(mx[0], mx[1], sizeof(float) * nh) &&
                       !memcmp(sum[0], sum[1], sizeof(float) * nh);
                CHECKF(same, "%s head_dim %d, %d heads, %d keys: f16 step not bitwise the float32 one",
                       lg_qgemm_isa_name(isa), hd, nh, n);
                free(kv16);
                free(q), free(kv);
                for (int w = 0; w < 2; w++)
                    free(out[w]), free(s[w]);
            }
    }
}

/* The AVX2 and AVX-512 attention steps for several heads at once
 * (lg_attention_heads_fn) against the same step given one head at a time,
 * and their f16 twins against them on f16 rows: bitwise the
 * same scores, outputs, running maxima and sums, for 1..9 and 16 heads
 * (groups of 8, the shared-load path from 4 heads, the per-head path below),
 * chunks of 1..32 keys (tails of the 8-, 4- and 2-key passes), head_dim
 * 64/128/256, starting from an earlier chunk's state so that the rescaling
 * is exercised. */
static void test_attention_heads(void) {
    const int dims[] = {64, 128, 256}, counts[] = {1, 2, 3, 4, 5, 7, 8, 9, 16},
              keys[] = {1, 3, 8, 13, 32};
    for (lg_isa isa = LG_ISA_AVX2; isa < LG_ISA_COUNT; isa++)
        if (lg_qgemm_isa_available(isa)) attention_heads_case(isa, dims, counts, keys);
}

/* Buffers start zeroed (small ones and the lazily mapped large ones), copy
 * moves bytes between buffers and to_host brings them back unchanged. */
static void test_buffers_copy_to_host(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    size_t sizes[] = {1, 4099, (size_t)5 << 20};
    for (int b = 0; b < 2; b++)
        for (int si = 0; si < 3; si++) {
            size_t n = sizes[si];
            uint8_t *a = put(t.be[b], NULL, n), *c = put(t.be[b], NULL, n);
            if (!a || !c) continue;
            uint8_t *host = get(t.c[b], a, n);
            size_t nonzero = 0;
            for (size_t i = 0; i < n; i++)
                nonzero += host[i] != 0;
            CHECKF(nonzero == 0, "%s: fresh buffer of %zu bytes has %zu nonzero", side_name[b], n,
                   nonzero);
            for (size_t i = 0; i < n; i++)
                host[i] = (uint8_t)(i * 2654435761u >> 13);
            memcpy(a, host, n); /* host memory: written directly */
            t.be[b]->ops->copy(t.c[b], c, a, n);
            uint8_t *back = get(t.c[b], c, n);
            CHECKF(memcmp(back, host, n) == 0, "%s: %zu bytes through copy and to_host",
                   side_name[b], n);
            if (n > 64) { /* overlapping copy within a buffer, as memmove */
                t.be[b]->ops->copy(t.c[b], c + 3, c, n - 64);
                uint8_t *shifted = get(t.c[b], c + 3, n - 64);
                CHECKF(memcmp(shifted, host, n - 64) == 0, "%s: overlapping copy", side_name[b]);
                free(shifted);
            }
            free(host), free(back), drop(t.be[b], a, n), drop(t.be[b], c, n);
        }
    twin_close(&t);
}

/* ---- router and MoE ------------------------------------------------------- */

/* Scores: sigmoid(softcap) in float32 against double, 1e-6 norm-wise; the
 * chosen ids exactly. Logits are kept where sigmoid is far from saturating,
 * so no two scores lie within float rounding of each other by chance; exact
 * ties are made on purpose and must keep the lower id; a bias must change the
 * choice but not the weights. */
static void test_router(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    struct {
        int n, E, K;
        float softcap, amp;
        int bias_kind;
    } cases[] = {
        {1, 7, 1, 0, 4, 0},     {7, 16, 2, 0, 4, 1}, {300, 8, 4, 0, 4, 2}, {13, 7, 3, 2.5f, 8, 0},
        {5, 16, 4, 2.5f, 8, 2}, {9, 5, 5, 0, 4, 1},  {11, 9, 2, 0, 4, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int n = cases[ci].n, E = cases[ci].E, K = cases[ci].K;
        float *logits = op_frand_array((size_t)n * E, cases[ci].amp),
              *bias = calloc((size_t)E, sizeof(float));
        if (cases[ci].bias_kind == 1)
            for (int e = 0; e < E; e++)
                bias[e] = op_frand() * 0.01f;
        int boosted = E - 1;
        if (cases[ci].bias_kind == 2)
            bias[boosted] = 2.0f; /* more than any score gap: always chosen first */
        if (n > 1)
            for (int e = 0; e < E; e++)
                logits[(size_t)1 * E + e] = 0.25f; /* row 1: all tied */
        if (n > 2 && E > 5)
            logits[(size_t)2 * E + 3] = logits[(size_t)2 * E + 5] =
                10.0f; /* row 2: a tie at the top */
        size_t lb = sizeof(float) * (size_t)n * E, kb = sizeof(float) * (size_t)n * K;
        float *scores[2], *weights[2];
        int32_t *ids[2];
        for (int b = 0; b < 2; b++) {
            float *dl = put(t.be[b], logits, lb), *dw = put(t.be[b], NULL, kb),
                  *db = put(t.be[b], bias, sizeof(float) * E);
            int32_t *di = put(t.be[b], NULL, sizeof(int32_t) * (size_t)n * K);
            lg_router_args a = {E, K, cases[ci].softcap, db};
            t.be[b]->ops->router(t.c[b], &a, dl, di, dw, n);
            scores[b] = get(t.c[b], dl, lb), weights[b] = get(t.c[b], dw, kb);
            ids[b] = get(t.c[b], di, sizeof(int32_t) * (size_t)n * K);
            drop(t.be[b], dl, lb), drop(t.be[b], dw, kb), drop(t.be[b], db, sizeof(float) * E);
            drop(t.be[b], di, sizeof(int32_t) * (size_t)n * K);
        }
        double e = op_rel(scores[CPU], scores[REF], (size_t)n * E),
               ew = op_rel(weights[CPU], weights[REF], (size_t)n * K);
        CHECKF(e < 1e-6 && ew < 1e-6, "case %zu: scores rel %.3e, weights rel %.3e", ci, e, ew);
        CHECKF(memcmp(ids[CPU], ids[REF], sizeof(int32_t) * (size_t)n * K) == 0,
               "case %zu: chosen experts differ", ci);
        for (int b = 0; b < 2; b++) { /* properties checked without the other backend */
            if (n > 1 && cases[ci].bias_kind == 0)
                for (int j = 0; j < K; j++)
                    CHECKF(ids[b][K + j] == j && fabsf(weights[b][K + j] - 1.0f / K) < 1e-6f,
                           "%s tied row: slot %d id %d", side_name[b], j, ids[b][K + j]);
            if (n > 2 && E > 5 && cases[ci].bias_kind == 0 && K >= 2)
                CHECKF(ids[b][2 * K] == 3 && ids[b][2 * K + 1] == 5, "%s top tie: %d %d",
                       side_name[b], ids[b][2 * K], ids[b][2 * K + 1]);
            for (int r = 0; r < n; r++) {
                double sum = 0;
                for (int j = 0; j < K; j++) {
                    sum += weights[b][(size_t)r * K + j];
                    float s = scores[b][(size_t)r * E + ids[b][(size_t)r * K + j]];
                    if (j > 0) /* ranked by score + bias */
                        CHECK(scores[b][(size_t)r * E + ids[b][(size_t)r * K + j - 1]] +
                                  bias[ids[b][(size_t)r * K + j - 1]] >=
                              s + bias[ids[b][(size_t)r * K + j]]);
                }
                CHECKF(fabs(sum - 1) < 1e-5, "%s row %d: weights sum %.7f", side_name[b], r, sum);
                if (cases[ci].bias_kind == 2)
                    CHECKF(ids[b][(size_t)r * K] == boosted, "%s row %d: bias ignored",
                           side_name[b], r);
            }
        }
        free(logits), free(bias);
        for (int b = 0; b < 2; b++)
            free(scores[b]), free(weights[b]), free(ids[b]);
    }
    twin_close(&t);
}

/* The plan (offsets and rows) exactly the reference's, and the gathered rows
 * bitwise the token rows; the offsets also match a histogram made here. */
static void test_moe_group(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    int cases[][5] = {{1, 1, 4, 4, 7},
                      {7, 2, 8, 5, 33},
                      {300, 4, 16, 11, 9},
                      {5, 3, 3, 3, 1}}; /* n, K, E, used, hidden */
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int n = cases[ci][0], K = cases[ci][1], E = cases[ci][2], hidden = cases[ci][4];
        int32_t *ids = op_random_ids(n, K, cases[ci][3]);
        float *h = op_frand_array((size_t)n * hidden, 1.0f);
        size_t pairs = (size_t)n * K, ob = sizeof(int32_t) * (E + 1), rb = sizeof(int32_t) * pairs;
        size_t hb = sizeof(float) * (size_t)n * hidden, eb = sizeof(float) * pairs * hidden;
        int32_t *off[2], *rows[2], *inverse[2];
        float *gathered[2];
        for (int b = 0; b < 2; b++) {
            lg_moe_plan plan = {put(t.be[b], NULL, ob), put(t.be[b], NULL, rb), put(t.be[b], NULL, rb), 0, 0};
            float *dh = put(t.be[b], h, hb), *din = put(t.be[b], NULL, eb);
            int32_t *dids = put(t.be[b], ids, rb);
            t.be[b]->ops->moe_group(t.c[b], &plan, din, dh, dids, n, K, E, hidden);
            off[b] = get(t.c[b], plan.offsets, ob), rows[b] = get(t.c[b], plan.rows, rb),
            inverse[b] = get(t.c[b], plan.pair_rows, rb), gathered[b] = get(t.c[b], din, eb);
            drop(t.be[b], plan.pair_rows, rb);
            drop(t.be[b], plan.offsets, ob), drop(t.be[b], plan.rows, rb), drop(t.be[b], dh, hb),
                drop(t.be[b], din, eb);
            drop(t.be[b], dids, rb);
        }
        CHECKF(memcmp(off[CPU], off[REF], ob) == 0 && memcmp(rows[CPU], rows[REF], rb) == 0,
               "case %zu: plans differ", ci);
        CHECKF(memcmp(gathered[CPU], gathered[REF], eb) == 0, "case %zu: gathered rows differ", ci);
        int count = 0, bad = 0;
        for (int e = 0; e < E; e++) {
            int c = 0;
            for (size_t i = 0; i < pairs; i++)
                c += ids[i] == e;
            bad += off[CPU][e] != count;
            count += c;
        }
        bad += off[CPU][E] != count;
        for (size_t r = 0; r < pairs; r++)
            bad += memcmp(gathered[CPU] + r * hidden, h + (size_t)(rows[CPU][r] / K) * hidden,
                          sizeof(float) * hidden) != 0;
        for (size_t r = 0; r < pairs; r++) /* pair_rows inverts rows */
            bad += inverse[CPU][rows[CPU][r]] != (int32_t)r || inverse[REF][rows[REF][r]] != (int32_t)r;
        CHECKF(bad == 0, "case %zu: %d offsets or rows wrong", ci, bad);
        free(ids), free(h);
        for (int b = 0; b < 2; b++)
            free(off[b]), free(rows[b]), free(inverse[b]), free(gathered[b]);
    }
    twin_close(&t);
}

/* The experts on a grouped batch (some experts with no rows) and the shared
 * expert on the tokens. Float weights: two chained float32 products and a
 * silu against double, 1e-5 norm-wise. Quantised weights, whose error
 * compounds through the chain: each product on its own within the 8-bit
 * bound, i.e. the up products (act_up / shared_up, before the activation)
 * against the reference's, and the down products against the reference's
 * product of the CPU's own hidden activations (act_gate / shared_gate after
 * silu_mul). */
static void moe_experts_case(twin *t, lg_dtype dt, int n, int K, int E, int used, int H, int I,
                             int I_shared, bool with_shared) {
    op_weight *w = calloc((size_t)E, sizeof *w * 3), sw[3] = {0};
    lg_swiglu_weights *experts = calloc((size_t)E, sizeof *experts), shared;
    for (int e = 0; e < E; e++) {
        w[3 * e] = op_weight_new(dt, I, H, 0.3f), w[3 * e + 1] = op_weight_new(dt, I, H, 0.3f),
              w[3 * e + 2] = op_weight_new(dt, H, I, 0.3f);
        for (int k = 0; k < 3; k++)
            adopt(t, &w[3 * e + k]);
        experts[e] = (lg_swiglu_weights){w[3 * e].m, w[3 * e + 1].m, w[3 * e + 2].m};
    }
    if (with_shared) {
        sw[0] = op_weight_new(dt, I_shared, H, 0.3f), sw[1] = op_weight_new(dt, I_shared, H, 0.3f),
        sw[2] = op_weight_new(dt, H, I_shared, 0.3f);
        shared = (lg_swiglu_weights){sw[0].m, sw[1].m, sw[2].m};
    }
    int32_t *ids = op_random_ids(n, K, used);
    float *h = op_frand_array((size_t)n * H, 1.0f);
    size_t pairs = (size_t)n * K;
    /* the plan and grouped rows, made once by the reference and given to both */
    lg_moe_plan plan = {malloc(sizeof(int32_t) * (E + 1)), malloc(sizeof(int32_t) * pairs),
                        malloc(sizeof(int32_t) * pairs), 0, 0};
    float *expert_in = malloc(sizeof(float) * pairs * H);
    t->be[REF]->ops->moe_group(t->c[REF], &plan, expert_in, h, ids, n, K, E, H);
    size_t inb = sizeof(float) * pairs * H, ib = sizeof(float) * pairs * I,
           hb = sizeof(float) * (size_t)n * H;
    size_t sib = sizeof(float) * (size_t)n * (I_shared ? I_shared : 1);
    float *act_gate[2], *act_up[2], *eout[2], *sout[2], *sgate[2], *sup[2];
    for (int b = 0; b < 2; b++) {
        lg_moe_plan dplan = {put(t->be[b], plan.offsets, sizeof(int32_t) * (E + 1)),
                             put(t->be[b], plan.rows, sizeof(int32_t) * pairs),
                             put(t->be[b], plan.pair_rows, sizeof(int32_t) * pairs), 0, 0};
        lg_moe_args a = {&dplan,
                         n,
                         E,
                         K,
                         experts,
                         put(t->be[b], expert_in, inb),
                         put(t->be[b], NULL, ib),
                         put(t->be[b], NULL, ib),
                         put(t->be[b], NULL, inb),
                         with_shared ? &shared : NULL,
                         put(t->be[b], h, hb),
                         put(t->be[b], NULL, sib),
                         put(t->be[b], NULL, sib),
                         put(t->be[b], NULL, hb),
                         false};
        t->be[b]->ops->moe_experts(t->c[b], &a);
        act_gate[b] = get(t->c[b], a.act_gate, ib), act_up[b] = get(t->c[b], a.act_up, ib);
        eout[b] = get(t->c[b], a.expert_out, inb), sout[b] = get(t->c[b], a.shared_out, hb);
        sgate[b] = get(t->c[b], a.shared_gate, sib), sup[b] = get(t->c[b], a.shared_up, sib);
        drop(t->be[b], dplan.pair_rows, sizeof(int32_t) * pairs), drop(t->be[b], dplan.offsets, sizeof(int32_t) * (E + 1)),
            drop(t->be[b], dplan.rows, sizeof(int32_t) * pairs);
        drop(t->be[b], (void *)a.expert_in, inb), drop(t->be[b], a.act_gate, ib),
            drop(t->be[b], a.act_up, ib);
        drop(t->be[b], a.expert_out, inb), drop(t->be[b], (void *)a.h, hb),
            drop(t->be[b], a.shared_gate, sib);
        drop(t->be[b], a.shared_up, sib), drop(t->be[b], a.shared_out, hb);
    }
    char what[120];
    snprintf(what, sizeof what, "%s n %d top_k %d experts %d (%d used) H %d I %d shared %d",
             lg_dtype_name(dt), n, K, E, used, H, I, with_shared ? I_shared : 0);
    if (!lg_dtype_is_quantized(dt)) {
        double e = op_rel(eout[CPU], eout[REF], pairs * H),
               es = with_shared ? op_rel(sout[CPU], sout[REF], (size_t)n * H) : 0;
        CHECKF(e < 1e-5 && es < 1e-5, "%s: experts rel %.3e, shared rel %.3e", what, e, es);
    } else {
        int bad = 0;
        float *want = malloc(sizeof(float) * pairs * H);
        for (int e = 0; e < E; e++) {
            int start = plan.offsets[e], rows = plan.offsets[e + 1] - start;
            if (rows == 0) continue;
            int q8 = takes_q8_path(dt, rows);
            bad +=
                op_outside_q8_bound(act_up[CPU] + (size_t)start * I,
                                    act_up[REF] + (size_t)start * I, expert_in + (size_t)start * H,
                                    w[3 * e + 1].deq, NULL, I, H, rows, q8, FLOAT_ROUNDING);
            t->be[REF]->ops->matmul_many(t->c[REF],
                                         &(lg_matmul_op){want, act_gate[CPU] + (size_t)start * I,
                                                         rows, &experts[e].down, NULL},
                                         1);
            bad += op_outside_q8_bound(eout[CPU] + (size_t)start * H, want,
                                       act_gate[CPU] + (size_t)start * I, w[3 * e + 2].deq, NULL, H,
                                       I, rows, q8, FLOAT_ROUNDING);
        }
        if (with_shared) { /* the shared expert the same way, over the token rows */
            int q8 = takes_q8_path(dt, n);
            bad += op_outside_q8_bound(sup[CPU], sup[REF], h, sw[1].deq, NULL, I_shared, H, n, q8,
                                       FLOAT_ROUNDING);
            float *swant = malloc(hb);
            t->be[REF]->ops->matmul_many(
                t->c[REF], &(lg_matmul_op){swant, sgate[CPU], n, &shared.down, NULL}, 1);
            bad += op_outside_q8_bound(sout[CPU], swant, sgate[CPU], sw[2].deq, NULL, H, I_shared,
                                       n, q8, FLOAT_ROUNDING);
            free(swant);
        }
        CHECKF(bad == 0, "%s: %d outputs outside the 8-bit activation bound", what, bad);
        free(want);
    }
    for (int e = 0; e < 3 * E; e++)
        op_weight_free(&w[e]);
    for (int k = 0; k < 3 && with_shared; k++)
        op_weight_free(&sw[k]);
    for (int b = 0; b < 2; b++)
        free(act_gate[b]), free(act_up[b]), free(eout[b]), free(sout[b]), free(sgate[b]),
            free(sup[b]);
    free(w), free(experts), free(ids), free(h), free(plan.offsets), free(plan.rows), free(plan.pair_rows),
        free(expert_in);
}

static void test_moe_experts(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    moe_experts_case(&t, LG_DTYPE_F32, 7, 2, 6, 4, 37, 23, 29, true);
    moe_experts_case(&t, LG_DTYPE_F32, 1, 1, 5, 5, 33, 9, 0, false);
    moe_experts_case(&t, LG_DTYPE_BF16, 300, 4, 9, 6, 17, 13, 11, true);
    moe_experts_case(&t, LG_DTYPE_F16, 13, 3, 8, 8, 21, 19, 0, false);
    moe_experts_case(&t, LG_DTYPE_Q8_0, 9, 2, 5, 3, 96, 64, 128, true);
    moe_experts_case(&t, LG_DTYPE_Q4_K, 5, 2, 4, 3, 256, 256, 256, true);
    moe_experts_case(&t, LG_DTYPE_Q6_K, 1, 3, 6, 4, 256, 256, 0, false);
    twin_close(&t);
}

/* Weighted sums of up to top_k rows in float32 against double, then the
 * scale and the shared row: a few ulp, 1e-6 norm-wise. */
static void test_moe_combine(void) {
    twin t;
    if (!twin_open(&t, 3)) return twin_close(&t);
    struct {
        int n, K, E, used, hidden;
        float scale;
        bool shared;
        int first, last; /* expert parallelism: the device's experts (0, 0 = all) */
    } cases[] = {{1, 1, 4, 4, 7, 1.0f, false, 0, 0},
                 {7, 2, 8, 5, 33, 2.5f, true, 0, 0},
                 {300, 4, 16, 11, 9, 1.0f, true, 0, 0},
                 {5, 3, 3, 3, 1, 0.5f, false, 0, 0},
                 {7, 2, 8, 8, 33, 2.5f, true, 2, 6},
                 {300, 4, 16, 11, 9, 1.0f, false, 12, 16}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int n = cases[ci].n, K = cases[ci].K, E = cases[ci].E, H = cases[ci].hidden;
        size_t pairs = (size_t)n * K;
        int32_t *ids = op_random_ids(n, K, cases[ci].used);
        float *h = op_frand_array((size_t)n * H, 1.0f),
              *grouped = malloc(sizeof(float) * pairs * H);
        lg_moe_plan plan = {malloc(sizeof(int32_t) * (E + 1)), malloc(sizeof(int32_t) * pairs),
                        malloc(sizeof(int32_t) * pairs), 0, 0};
        t.be[REF]->ops->moe_group(t.c[REF], &plan, grouped, h, ids, n, K, E, H);
        float *eo = op_frand_array(pairs * H, 1.0f), *wts = op_frand_array(pairs, 1.0f),
              *shared = op_frand_array((size_t)n * H, 1.0f);
        float *out[2];
        size_t ob = sizeof(float) * (size_t)n * H;
        for (int b = 0; b < 2; b++) {
            lg_moe_plan dp = {put(t.be[b], plan.offsets, sizeof(int32_t) * (E + 1)),
                              put(t.be[b], plan.rows, sizeof(int32_t) * pairs),
                              put(t.be[b], plan.pair_rows, sizeof(int32_t) * pairs), cases[ci].first,
                              cases[ci].last};
            float *deo = put(t.be[b], eo, sizeof(float) * pairs * H),
                  *dw = put(t.be[b], wts, sizeof(float) * pairs);
            float *ds = put(t.be[b], shared, ob), *dout = put(t.be[b], NULL, ob);
            t.be[b]->ops->moe_combine(t.c[b], dout, &dp, deo, dw, cases[ci].shared ? ds : NULL, n,
                                      K, H, cases[ci].scale);
            out[b] = get(t.c[b], dout, ob);
            drop(t.be[b], dp.pair_rows, sizeof(int32_t) * pairs), drop(t.be[b], dp.offsets, sizeof(int32_t) * (E + 1)),
                drop(t.be[b], dp.rows, sizeof(int32_t) * pairs);
            drop(t.be[b], deo, sizeof(float) * pairs * H), drop(t.be[b], dw, sizeof(float) * pairs);
            drop(t.be[b], ds, ob), drop(t.be[b], dout, ob);
        }
        double e = op_rel(out[CPU], out[REF], (size_t)n * H);
        CHECKF(e < 1e-6, "case %zu: rel %.3e", ci, e);
        free(ids), free(h), free(grouped), free(plan.offsets), free(plan.rows), free(plan.pair_rows), free(eo), free(wts),
            free(shared);
        free(out[0]), free(out[1]);
    }
    twin_close(&t);
}

/* ---- hand-computed values (ported from tests/test_kernels.c) --------------- */

/* Rotation of a pair must preserve its length times the scale, pass the
 * unrotated dims through, and match cos/sin of pos * inv_freq; on both. */
static void test_rope_rotates_pairs(void) {
    twin t;
    if (!twin_open(&t, 2)) return twin_close(&t);
    int hd = 10, n_rot = 6, heads = 2, T = 3;
    float inv[3] = {1.0f, 0.1f, 0.01f};
    int32_t pos[3] = {0, 5, 77};
    float orig[3 * 2 * 10];
    for (int i = 0; i < 60; i++)
        orig[i] = op_frand();
    for (int be = 0; be < 2; be++) {
        float *v = put(t.be[be], orig, sizeof orig), *dinv = put(t.be[be], inv, sizeof inv);
        t.be[be]->ops->rope(t.c[be], v, T, heads, hd, n_rot, dinv, 1.5f, pos);
        for (int r = 0; r < T; r++)
            for (int h = 0; h < heads; h++) {
                const float *a = orig + (r * heads + h) * hd, *b = v + (r * heads + h) * hd;
                for (int i = 0; i < 3; i++) {
                    double ang = (double)pos[r] * inv[i];
                    double x = (a[i] * cos(ang) - a[i + 3] * sin(ang)) * 1.5,
                           y = (a[i + 3] * cos(ang) + a[i] * sin(ang)) * 1.5;
                    CHECKF(fabs(b[i] - x) < 1e-4 && fabs(b[i + 3] - y) < 1e-4,
                           "%s t %d h %d pair %d", side_name[be], r, h, i);
                }
                for (int i = n_rot; i < hd; i++)
                    CHECK(b[i] == a[i]);
            }
        drop(t.be[be], v, sizeof orig), drop(t.be[be], dinv, sizeof inv);
    }
    twin_close(&t);
}

static void test_rmsnorm_and_activations(void) {
    twin t;
    if (!twin_open(&t, 2)) return twin_close(&t);
    for (int b = 0; b < 2; b++) {
        float x[7] = {1, -2, 3, -4, 5, -6, 7}, w[7] = {1, 2, 3, 4, 5, 6, 7}, y[7];
        t.be[b]->ops->rmsnorm(t.c[b], y, x, w, 1, 7, 1e-6f);
        double ms = (1 + 4 + 9 + 16 + 25 + 36 + 49) / 7.0;
        for (int i = 0; i < 7; i++)
            CHECKF(fabs(y[i] - x[i] / sqrt(ms + 1e-6) * w[i]) < 1e-5, "%s %d", side_name[b], i);
        float g[2] = {1, -1}, u[2] = {2, 3}, o[2];
        t.be[b]->ops->silu_mul(t.c[b], o, g, u, 2);
        CHECKF(fabsf(o[0] - 2 * (1 / (1 + expf(-1)))) < 1e-6 &&
                   fabsf(o[1] - 3 * (-1 / (1 + expf(1)))) < 1e-6,
               "%s", side_name[b]);
        /* softplus through the output gate: log 2 at 0, x past 20, exp(x) far below */
        float attn[3] = {1, 1, 1}, gate[3] = {0, 30, -30};
        t.be[b]->ops->output_gate(t.c[b], attn, gate, 1, 3, 1, true);
        CHECKF(fabsf(attn[0] - logf(2)) < 1e-6 && attn[1] == 30 &&
                   fabsf(attn[2] - expf(-30)) < 1e-12,
               "%s: %g %g %g", side_name[b], attn[0], attn[1], attn[2]);
    }
    CHECK(fabsf(lg_softplus(0) - logf(2)) < 1e-6);
    CHECK(lg_softplus(30) == 30);
    CHECK(fabsf(lg_softplus(-30) - expf(-30)) < 1e-12);
    CHECK(fabsf(lg_sigmoid(0) - 0.5f) < 1e-7);
    twin_close(&t);
}

static void test_dtype_conversions(void) {
    float vals[] = {0, -0.0f, 1, -2.5f, 3.14159f, 65504, 1e-8f, -1e30f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        float b = lg_bf16_to_f32(lg_f32_to_bf16(vals[i]));
        CHECKF(fabsf(b - vals[i]) <= fabsf(vals[i]) / 128, "bf16 %g -> %g", vals[i], b);
    }
    CHECK(lg_f16_to_f32(lg_f32_to_f16(65504)) == 65504);
    CHECK(lg_f16_to_f32(lg_f32_to_f16(1.0f)) == 1.0f);
    CHECK(lg_f16_to_f32(0x0001) == ldexpf(1, -24)); /* smallest subnormal */
    CHECK(isinf(lg_f16_to_f32(lg_f32_to_f16(1e6f))));
    CHECK(lg_f32_to_bf16(1.00390625f) == 0x3f80); /* exactly halfway: ties to even */
    CHECK(isnan(lg_bf16_to_f32(lg_f32_to_bf16(NAN))));
}

/* ---- whole models on the reference backend -------------------------------- */

/* The forward pass needs nothing but the ops: the fixture models run on the
 * reference backend match transformers' golden outputs like the CPU does
 * (tests/test_engine.c verify_all). */
static void test_fixtures_on_reference_backend(void) {
    static const char *models[][2] = {
        {"tests/fixtures/tiny-xs", "tests/fixtures/tiny-xs/golden.safetensors"},
        {"tests/fixtures/tiny-m", "tests/fixtures/tiny-m/golden.safetensors"},
    };
    lg_verify_tolerance tol = {.rel_tol = 1e-4, .require_experts = true, .require_greedy = true};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        laguna_error err = {0};
        laguna_model *m = NULL;
        laguna_status st = laguna_model_open(
            models[i][0], &(laguna_model_options){.device = "reference"}, &m, &err);
        CHECKF(st == LAGUNA_OK, "%s: %s", models[i][0], err.message);
        if (!m) continue;
        lg_verify_result *r = NULL;
        int n = 0;
        CHECKF(lg_verify_run(m, models[i][1], &r, &n, &err) == LAGUNA_OK, "%s", err.message);
        CHECKF(n == 3, "%s: %d prompts", models[i][0], n);
        for (int p = 0; p < n; p++) {
            CHECKF(lg_verify_passes(&r[p], &tol),
                   "%s %s: logits %.2e hidden %.2e experts %d/%d greedy %d/%d", models[i][0],
                   r[p].prompt, r[p].logits_rel_err, r[p].hidden_rel_err, r[p].expert_mismatches,
                   r[p].expert_rows, r[p].greedy_match, r[p].greedy_len);
            if (r[p].has_hidden) CHECK(r[p].expert_rows > 0);
        }
        free(r);
        laguna_model_free(m);
    }
}

/* A backend whose kernels take at most max_experts_per_token choices a
 * token refuses a config past it with an error that names the key; 0 means
 * no limit (the CPU backend). */
static void test_backend_top_k_limit(void) {
    lg_backend_ops ops = {.name = "limited", .max_experts_per_token = 32};
    lg_backend limited = {.ops = &ops, .n_threads = 1};
    laguna_error err = {0};
    CHECK(lg_backend_check_top_k(&limited, 32, &err) == LAGUNA_OK);
    CHECK(lg_backend_check_top_k(&limited, 33, &err) == LAGUNA_ERR_UNSUPPORTED);
    CHECKF(strstr(err.message, "num_experts_per_tok is 33") && strstr(err.message, "limited") &&
               strstr(err.message, "at most 32"),
           "message: %s", err.message);
    lg_backend *cpu = lg_cpu_backend_new(1);
    CHECK(cpu && lg_backend_check_top_k(cpu, 1000, &err) == LAGUNA_OK);
    lg_backend_destroy(cpu);
}

int main(void) {
    RUN(test_backend_top_k_limit);
    RUN(test_embed);
    RUN(test_rmsnorm);
    RUN(test_rope);
    RUN(test_matmul_many);
    RUN(test_matmul_matches_reference);
    RUN(test_quantized_matmul);
    RUN(test_kv_write_and_attention);
    RUN(test_output_gate);
    RUN(test_silu_mul);
    RUN(test_silu_mul_position_free);
    RUN(test_add);
    RUN(test_gather_rows);
    RUN(test_buffers_copy_to_host);
    RUN(test_router);
    RUN(test_moe_group);
    RUN(test_moe_experts);
    RUN(test_moe_combine);
    RUN(test_rope_rotates_pairs);
    RUN(test_rmsnorm_and_activations);
    RUN(test_dtype_conversions);
    RUN(test_fixtures_on_reference_backend);
    RUN(test_argmax_rows); /* last: the cases above keep the random inputs they always had */
    RUN(test_argmax_widths);
    RUN(test_attention_heads);
    return test_summary();
}
