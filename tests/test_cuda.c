/* The CUDA backend against the same files as the CPU: every fixture model
 * verified against transformers' reference at the CPU's tolerance (identical
 * experts and greedy continuations), and Q8_0 and Q4_K_M GGUFs beside the CPU. Without
 * a GPU (or in a build without nvcc) each case prints SKIP with the reason.
 * The quantised products are also checked op by op against the CPU's
 * dequantisation (each weight's decoding, sums to float rounding).
 * The engine and context tests run on the GPU too with
 * LAGUNA_TEST_DEVICE=cuda (tests/testutil.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "gguf/gguf_quantize.h"
#include "harness.h"
#include "laguna.h"
#include "model/model_synth.h"
#include "quant/quant.h"
#include "testutil.h"
#include "verify/verify.h"

static char skip_reason[512];

/* Whether a CUDA model can be opened at all (no GPU, no driver or no nvcc). */
static bool have_cuda(void) {
    laguna_model *m = NULL;
    laguna_error err = {0};
    if (laguna_model_open("tests/fixtures/tiny-m", &(laguna_model_options){.device = "cuda"}, &m, &err) == LAGUNA_OK) {
        laguna_model_free(m);
        return true;
    }
    snprintf(skip_reason, sizeof skip_reason, "%s", err.message);
    return false;
}

static bool skip(void) {
    if (skip_reason[0] == 0) return false;
    test_skip("%s", skip_reason);
    return true;
}

static const char *models[][2] = {
    {"tests/fixtures/tiny-xs", "tests/fixtures/tiny-xs/golden.safetensors"},
    {"tests/fixtures/tiny-xs/bf16", "tests/fixtures/tiny-xs/golden.safetensors"},
    {"tests/fixtures/tiny-m", "tests/fixtures/tiny-m/golden.safetensors"},
    {"tests/fixtures/tiny-m/bf16", "tests/fixtures/tiny-m/golden.safetensors"},
    {"models/laguna-tiny", "models/laguna-tiny/golden.safetensors"},
};

static void verify_on_cuda(void) {
    lg_verify_tolerance tol = {.rel_tol = 1e-4, .require_experts = true, .require_greedy = true};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        laguna_model *m = NULL;
        laguna_error err = {0};
        CHECKF(laguna_model_open(models[i][0], &(laguna_model_options){.device = "cuda"}, &m, &err) == 0, "%s: %s",
               models[i][0], err.message);
        if (!m) continue;
        lg_verify_result *r = NULL;
        int n = 0;
        CHECKF(lg_verify_run(m, models[i][1], &r, &n, &err) == LAGUNA_OK, "%s", err.message);
        for (int p = 0; p < n; p++) {
            printf("  %-28s %-4s logits %.2e hidden %.2e experts %d/%d greedy %d/%d\n", models[i][0], r[p].prompt,
                   r[p].logits_rel_err, r[p].hidden_rel_err, r[p].expert_rows - r[p].expert_mismatches, r[p].expert_rows,
                   r[p].greedy_match, r[p].greedy_len);
            CHECKF(lg_verify_passes(&r[p], &tol), "%s %s", models[i][0], r[p].prompt);
        }
        free(r);
        laguna_model_free(m);
    }
}

static void test_fixtures_match_transformers_on_cuda(void) {
    if (!skip()) verify_on_cuda();
}

/* --bf16-activations on the GPU: taken (laguna_model_info says so), verify
 * then holds the bf16 fixtures and the trained model to its bf16-activation
 * bound (top-1 agreement >= 0.90, mean KL <= 5e-3 against transformers'
 * float32: the CPU's bound for the same option, tests/test_quantized_models.c),
 * and the logits did move past the float bound (the option took effect). */
static void test_bf16_activations_on_cuda(void) {
    if (skip()) return;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        if (!strstr(models[i][0], "bf16") && !strstr(models[i][0], "laguna-tiny")) continue;
        laguna_model *m = NULL;
        laguna_error err = {0};
        CHECKF(laguna_model_open(models[i][0], &(laguna_model_options){.device = "cuda", .bf16_activations = 1}, &m,
                                 &err) == 0,
               "%s: %s", models[i][0], err.message);
        if (!m) continue;
        CHECK(laguna_model_get_info(m)->bf16_activations == 1);
        lg_verify_tolerance tol = lg_verify_default_tolerance(m);
        CHECKF(tol.distribution_only && tol.min_top1 == 0.90 && tol.max_mean_kl == 5e-3, "%s: tolerance %s",
               models[i][0], tol.name);
        lg_verify_result *r = NULL;
        int n = 0;
        lg_verify_summary sum = {0};
        CHECKF(lg_verify_run(m, models[i][1], &r, &n, &err) == LAGUNA_OK, "%s", err.message);
        lg_verify_summarize(r, n, &sum);
        printf("  %-28s bf16 activations: logits %.2e top-1 %.3f KL %.2e\n", models[i][0], sum.max_logits_rel_err,
               sum.top1_agreement, sum.mean_kl);
        CHECKF(lg_verify_summary_passes(&sum, &tol), "%s: top-1 %.3f, KL %.2e", models[i][0], sum.top1_agreement,
               sum.mean_kl);
        CHECKF(sum.max_logits_rel_err > 1e-4, "%s: logits within %.2e: were the activations rounded?", models[i][0],
               sum.max_logits_rel_err);
        free(r);
        laguna_model_free(m);
    }
}

/* Logits of a prompt fed in chunks of `batch`, on one device and KV type. */
static float *prompt_logits(const char *path, const char *device, laguna_kv_type kv, const int32_t *tok, int n, int batch) {
    laguna_model *m = NULL;
    laguna_error err = {0};
    CHECKF(laguna_model_open(path, &(laguna_model_options){.device = device, .n_threads = 2}, &m, &err) == 0, "%s", err.message);
    if (!m) return NULL;
    int V = laguna_model_get_info(m)->vocab_size;
    laguna_session *s = NULL;
    float *logits = malloc(sizeof(float) * (size_t)n * V);
    CHECKF(laguna_session_create(m, &(laguna_session_options){.n_ctx = 256, .n_batch = batch, .kv_type = kv}, &s, &err) == 0,
           "%s", err.message);
    CHECKF(s && laguna_session_feed(s, tok, (size_t)n, logits, &err) == 0, "%s", err.message);
    laguna_session_free(s);
    laguna_model_free(m);
    return logits;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return den > 0 ? num / den : num;
}

/* The KV types and a Q8_0 GGUF, CUDA beside the CPU on the same prompt. The
 * f32 cache is held to 1e-4 like the fixtures. Half caches perturb the
 * model, and on these random tiny models a near-tied sigmoid router score
 * then flips under the two backends' 1e-7 float differences (verify.c says
 * the same of quantised weights), moving a row's logits by ~1e-4: 1e-3 for
 * them. Both multiply quantised weights by 8-bit activations, in blocks of
 * their own (the CPU's K-quant blocks are 256 wide, the GPU's 32), so Q8_0
 * and Q4_K_M files are held to verify's bounds for their types (top-1
 * agreement 0.80 and 0.45 of the positions). */
static void test_kv_types_and_gguf_beside_cpu(void) {
    if (skip()) return;
    int32_t tok[70];
    for (int i = 0; i < 70; i++) tok[i] = (i * 37 + 11) % 512;
    laguna_kv_type kvs[] = {LAGUNA_KV_F32, LAGUNA_KV_F16, LAGUNA_KV_BF16};
    for (int k = 0; k < 3; k++) {
        float *cpu = prompt_logits("tests/fixtures/tiny-xs", "cpu", kvs[k], tok, 70, 16);
        float *gpu = prompt_logits("tests/fixtures/tiny-xs", "cuda", kvs[k], tok, 70, 16);
        double e = cpu && gpu ? max_rel(gpu, cpu, (size_t)70 * 512) : 1;
        printf("  tiny-xs kv %d: max rel %.2e\n", (int)kvs[k], e);
        CHECKF(e < (kvs[k] == LAGUNA_KV_F32 ? 1e-4 : 1e-3), "kv type %d: %.3e", (int)kvs[k], e);
        free(cpu), free(gpu);
    }
    char *d = tu_temp_dir();
    const char *types[] = {"q8_0", "q4_k_m"};
    for (int q = 0; q < 2; q++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.gguf", d, types[q]);
        lg_quantize_options opt = {.n_threads = 2};
        laguna_error err = {0};
        CHECK(lg_ftype_parse(types[q], &opt.ftype) == 0);
        lg_quantize_stats stats;
        CHECKF(lg_quantize_model("models/laguna-tiny", path, &opt, &stats, &err) == 0, "%s", err.message);
        float *cpu = prompt_logits(path, "cpu", LAGUNA_KV_Q8_0, tok, 70, 32);
        float *gpu = prompt_logits(path, "cuda", LAGUNA_KV_Q8_0, tok, 70, 32);
        laguna_model *m = NULL;
        CHECK(laguna_model_open(path, NULL, &m, &err) == 0);
        if (cpu && gpu && m) {
            int V = laguna_model_get_info(m)->vocab_size, agree = 0;
            double min_top1 = lg_verify_default_tolerance(m).min_top1;
            for (int t = 0; t < 70; t++) {
                const float *a = cpu + (size_t)t * V, *b = gpu + (size_t)t * V;
                int ia = 0, ib = 0;
                for (int v = 1; v < V; v++) ia = a[v] > a[ia] ? v : ia, ib = b[v] > b[ib] ? v : ib;
                agree += ia == ib;
            }
            printf("  laguna-tiny %s: top-1 agreement %d/70 (bound %.2f), max rel %.2e\n", types[q], agree, min_top1,
                   max_rel(gpu, cpu, (size_t)70 * V));
            CHECKF(agree >= min_top1 * 70, "%s: top-1 agreement %d/70", types[q], agree);
        }
        laguna_model_free(m);
        free(cpu), free(gpu);
    }
    tu_remove_dir(d);
}

/* The GPU's weight generator (cuda_synth.cu), every dtype: the bytes read
 * back and dequantised on the host are finite with mean ~0 and the asked
 * standard deviation (each block type's scales are set from its moments);
 * a seed gives the same bytes again, another seed others. */
static void test_synth_weights_every_dtype_on_cuda(void) {
    if (skip()) return;
    lg_backend *be = NULL;
    laguna_error err = {0};
    CHECKF(lg_backend_create("cuda", 0, &be, &err) == 0, "%s", err.message);
    if (!be) return;
    lg_backend_ctx *c = be->ops->ctx_new(be, &(lg_ctx_sizes){.widest_row = 512, .max_keys = 16, .head_dim = 16});
    CHECK(c && be->ops->synth_weights);
    const lg_dtype types[] = {LG_DTYPE_F32,  LG_DTYPE_BF16, LG_DTYPE_F16,  LG_DTYPE_Q8_0, LG_DTYPE_Q4_0,
                              LG_DTYPE_Q5_0, LG_DTYPE_Q5_1, LG_DTYPE_Q4_K, LG_DTYPE_Q5_K, LG_DTYPE_Q6_K};
    const int64_t rows = 24, cols = 768; /* three K-quant super-blocks per row */
    float *x = malloc(sizeof(float) * rows * cols);
    for (size_t k = 0; c && be->ops->synth_weights && k < sizeof types / sizeof types[0]; k++) {
        lg_dtype dt = types[k];
        size_t row_bytes = lg_dtype_row_bytes(dt, cols), bytes = (size_t)rows * row_bytes;
        const void *d1 = be->ops->synth_weights(be, dt, rows, cols, bytes, 0.02f, 77);
        const void *d2 = be->ops->synth_weights(be, dt, rows, cols, bytes, 0.02f, 77);
        const void *d3 = be->ops->synth_weights(be, dt, rows, cols, bytes, 0.02f, 78);
        uint8_t *h1 = malloc(bytes), *h2 = malloc(bytes), *h3 = malloc(bytes);
        CHECK(d1 && d2 && d3);
        if (!d1 || !d2 || !d3) continue;
        be->ops->to_host(c, h1, d1, bytes);
        be->ops->to_host(c, h2, d2, bytes);
        be->ops->to_host(c, h3, d3, bytes);
        double sum = 0, sq = 0;
        int finite = 1;
        for (int64_t r = 0; r < rows; r++) lg_dtype_to_f32(dt, h1 + r * row_bytes, x + r * cols, cols);
        for (int64_t i = 0; i < rows * cols; i++) finite &= isfinite(x[i]) != 0, sum += x[i], sq += (double)x[i] * x[i];
        double n = (double)(rows * cols), mean = sum / n, sd = sqrt(sq / n - mean * mean);
        printf("  %-5s mean %+.5f sd %.5f\n", lg_dtype_name(dt), mean, sd);
        CHECKF(finite && fabs(mean) < 0.003 && sd > 0.016 && sd < 0.024, "%s: mean %g sd %g", lg_dtype_name(dt), mean, sd);
        CHECKF(memcmp(h1, h2, bytes) == 0 && memcmp(h1, h3, bytes) != 0, "%s: seeds", lg_dtype_name(dt));
        free(h1), free(h2), free(h3);
    }
    free(x);
    if (c) be->ops->ctx_free(c);
    lg_backend_destroy(be);
}

/* ---- quantised products, op by op --------------------------------------- */

static uint64_t qrng = 0x9E3779B97F4A7C15ull;
static float qrand(void) { /* uniform in [-1, 1) */
    qrng ^= qrng << 13, qrng ^= qrng >> 7, qrng ^= qrng << 17;
    return (float)((qrng >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

/* Host bytes on the device (kept until the backend goes); pad bytes of
 * zeroes go in front, so the returned pointer is pad bytes past an aligned one. */
static const void *upload(lg_backend *be, const void *host, size_t bytes, size_t pad) {
    uint8_t *tmp = calloc(1, bytes + pad);
    memcpy(tmp + pad, host, bytes);
    const uint8_t *d = be->ops->adopt_weights(be, tmp, bytes + pad);
    free(tmp);
    CHECK(d != NULL);
    return d ? d + pad : NULL;
}

/* y = W x on the GPU for n tokens; x_pad floats in front of x (1 leaves x
 * unaligned: the element-by-element path). Returns y [n][rows] on the host. */
static float *gpu_product(lg_backend *be, lg_backend_ctx *c, const lg_matrix *w, const float *x,
                          int n, int x_pad, const float *bias_dev) {
    const float *dx =
        upload(be, x, sizeof(float) * (size_t)n * w->cols, sizeof(float) * (size_t)x_pad);
    size_t ybytes = sizeof(float) * (size_t)n * w->rows;
    float *dy = be->ops->alloc(be, ybytes), *y = malloc(ybytes);
    CHECK(dx && dy);
    if (dx && dy) {
        be->ops->matmul_many(c, &(lg_matmul_op){dy, dx, n, w, bias_dev}, 1);
        be->ops->to_host(c, y, dy, ybytes);
    }
    laguna_error err = {0};
    CHECKF(!be->ops->sync || be->ops->sync(c, &err) == LAGUNA_OK, "%s", err.message);
    if (dy) be->ops->free(be, dy, ybytes);
    return y;
}

/* The GPU's 8-bit activations, computed on the host the same way
 * (cuda_quant_dot.h, lg_qx_quantize_rows): blocks of 32, scale amax / 127,
 * x times the scale's reciprocal rounded to nearest even. xhat is q * scale,
 * what the GPU's products multiply the weights by. */
static void quantised_activations(const float *x, int n, int cols, float *xhat) {
    for (int t = 0; t < n; t++)
        for (int b = 0; b < cols / 32; b++) {
            const float *xb = x + (size_t)t * cols + 32 * b;
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmaxf(amax, fabsf(xb[i]));
            float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
            for (int i = 0; i < 32; i++)
                xhat[(size_t)t * cols + 32 * b + i] = rintf(xb[i] * id) * d;
        }
}

/* Q8_0, Q4_K, Q5_K and Q6_K matrices of awkward shapes (rows not multiples
 * of the 8 rows of a block, 1-9 super-blocks, Q8_0 and Q6_K rows that start
 * 2 bytes past a 4-byte boundary, matrices placed off alignment), on the
 * block-wise path (8-bit activations) and element by element (x unaligned:
 * float activations; Q4_K data 4 bytes off). Checked against the CPU's
 * lg_dequantize_row:
 *   - decoding: token t = the unit vector e_t, so y[t][r] is weight (r, t)
 *     alone (every other term is +-0). Element by element: bit for bit. On
 *     the block path the 1 becomes 127 times its block's scale and the
 *     weight's scales multiply integers: within 1e-5 of the row's largest
 *     weight (a wrong quant or scale bit is off by 1/64 of it and more);
 *   - products on random x, n = 1, 3, 9, 17 tokens, with bias: against the
 *     exact sum over the dequantised weights times the activations the path
 *     multiplies them by (float x element by element; the host's copy of the
 *     GPU's 8-bit blocks on the block path). Element by element a lane adds
 *     cols/32 terms in float32, the butterfly 5 more, so |y - exact| <=
 *     (cols/32 + 6) 2^-24 sum|w x| (twice that as margin). On the block path
 *     the integer sums are exact and a unit's few float operations round
 *     relative to its scaled terms, which the K-quants' mins can make larger
 *     than sum|w x|: 2e-5 of sum|w x| (a block's activations on another scale
 *     or a rounding unlike the host's cost 1e-4 and more);
 *   - batch invariance, bitwise: the first n tokens of the 17 alone give
 *     the same rows, and token 9 (a copy of token 0, in another group of
 *     8) the same as token 0. */
static void test_quantised_products_beside_cpu(void) {
    if (skip()) return;
    lg_backend *be = NULL;
    laguna_error err = {0};
    CHECKF(lg_backend_create("cuda", 0, &be, &err) == 0, "%s", err.message);
    if (!be) return;
    lg_backend_ctx *c =
        be->ops->ctx_new(be, &(lg_ctx_sizes){.widest_row = 2304, .max_keys = 16, .head_dim = 16});
    CHECK(c != NULL);
    const struct {
        lg_dtype dt;
        int rows, cols, w_pad;
    } cases[] = {
        {LG_DTYPE_Q8_0, 37, 96, 0},  {LG_DTYPE_Q8_0, 3, 32, 2},   {LG_DTYPE_Q8_0, 9, 2048, 0},
        {LG_DTYPE_Q8_0, 5, 96, 2},   {LG_DTYPE_Q4_K, 37, 256, 0}, {LG_DTYPE_Q4_K, 13, 2304, 0},
        {LG_DTYPE_Q4_K, 6, 512, 4},  {LG_DTYPE_Q5_K, 21, 512, 0}, {LG_DTYPE_Q5_K, 5, 1280, 0},
        {LG_DTYPE_Q6_K, 29, 256, 0}, {LG_DTYPE_Q6_K, 11, 768, 0}, {LG_DTYPE_Q6_K, 7, 2048, 2},
        {LG_DTYPE_Q6_K, 1, 512, 0},
    };
    for (size_t ci = 0; c && ci < sizeof cases / sizeof cases[0]; ci++) {
        lg_dtype dt = cases[ci].dt;
        int rows = cases[ci].rows, cols = cases[ci].cols;
        size_t rb = lg_dtype_row_bytes(dt, cols);
        uint8_t *bytes = malloc(rb * rows);
        float *src = malloc(sizeof(float) * cols), *deq = malloc(sizeof(float) * (size_t)rows * cols),
              *row_max = calloc((size_t)rows, sizeof(float));
        /* rows of different scales, some with an offset (the K-quant mins) */
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < cols; i++)
                src[i] = qrand() * (float)(1 + r % 5) + (r % 3 ? 0.25f : 0.0f);
            lg_quantize_row(dt, src, bytes + r * rb, cols);
            lg_dequantize_row(dt, bytes + r * rb, deq + (size_t)r * cols, cols);
            for (int i = 0; i < cols; i++)
                row_max[r] = fmaxf(row_max[r], fabsf(deq[(size_t)r * cols + i]));
        }
        lg_matrix w = {dt, rows, cols, rb, upload(be, bytes, rb * rows, (size_t)cases[ci].w_pad)};
        float *bias = malloc(sizeof(float) * rows);
        for (int r = 0; r < rows; r++)
            bias[r] = qrand();
        const float *dbias = upload(be, bias, sizeof(float) * rows, 0);
        char what[96];
        snprintf(what, sizeof what, "%s %dx%d (data +%d)", lg_dtype_name(dt), rows, cols,
                 cases[ci].w_pad);
        float *onehot = calloc((size_t)cols * cols, sizeof(float)),
              *x = malloc(sizeof(float) * 17 * cols), *xhat = malloc(sizeof(float) * 17 * cols);
        for (int t = 0; t < cols; t++)
            onehot[(size_t)t * cols + t] = 1;
        for (int i = 0; i < 17 * cols; i++)
            x[i] = qrand();
        memcpy(x + 9 * cols, x, sizeof(float) * cols);
        quantised_activations(x, 17, cols, xhat);
        for (int x_pad = 0; x_pad < 2 && w.data && dbias; x_pad++) {
            /* the block path: x 16-byte aligned, the matrix at its unit alignment
             * (Q4_K and Q5_K super-blocks 16 bytes, the others 2) */
            int unit_align = dt == LG_DTYPE_Q4_K || dt == LG_DTYPE_Q5_K ? 16 : 2;
            bool blocks = x_pad == 0 && cases[ci].w_pad % unit_align == 0;
            float *y = gpu_product(be, c, &w, onehot, cols, x_pad, NULL);
            int wrong = 0;
            for (int t = 0; t < cols; t++)
                for (int r = 0; r < rows; r++) {
                    float got = y[(size_t)t * rows + r], want = deq[(size_t)r * cols + t];
                    wrong += blocks ? !(fabsf(got - want) <= 1e-5f * row_max[r]) : !(got == want);
                }
            CHECKF(wrong == 0, "%s x +%d: %d of %d weights decode differently from the CPU", what,
                   x_pad, wrong, rows * cols);
            free(y);
            const float *xs = blocks ? xhat : x;
            float *y17 = gpu_product(be, c, &w, x, 17, x_pad, dbias);
            double worst = 0;
            int outside = 0;
            for (int t = 0; t < 17; t++)
                for (int r = 0; r < rows; r++) {
                    double exact = bias[r], mag = fabs(bias[r]);
                    for (int i = 0; i < cols; i++) {
                        double p = (double)deq[(size_t)r * cols + i] * xs[(size_t)t * cols + i];
                        exact += p, mag += fabs(p);
                    }
                    double e = fabs(y17[(size_t)t * rows + r] - exact),
                           bound = blocks ? 2e-5 * mag : 2 * (cols / 32 + 6) * 0x1p-24 * mag;
                    outside += !(e <= bound);
                    if (e / mag > worst) worst = e / mag;
                }
            printf("  %-26s x +%d, %s: %d weights off, 17 tokens max err %.2e of sum|wx|\n", what,
                   x_pad, blocks ? "8-bit blocks" : "float x     ", wrong, worst);
            CHECKF(outside == 0, "%s x +%d: %d outputs outside the rounding bound", what, x_pad,
                   outside);
            const int ns[] = {1, 3, 9};
            for (int k = 0; k < 3; k++) {
                float *yn = gpu_product(be, c, &w, x, ns[k], x_pad, dbias);
                CHECKF(memcmp(yn, y17, sizeof(float) * (size_t)ns[k] * rows) == 0,
                       "%s x +%d: %d tokens differ from 17", what, x_pad, ns[k]);
                free(yn);
            }
            CHECKF(memcmp(y17 + 9 * rows, y17, sizeof(float) * rows) == 0,
                   "%s x +%d: token 9 differs from token 0", what, x_pad);
            free(y17);
        }
        free(bytes), free(src), free(deq), free(row_max), free(bias), free(onehot), free(x), free(xhat);
    }
    if (c) be->ops->ctx_free(c);
    lg_backend_destroy(be);
}

/* XS.2's shapes (2 layers: the dense one and a sparse one of 256 experts)
 * with weights made on the GPU, in every file type `laguna bench --synth`
 * takes: finite logits that differ across the vocabulary. */
static void test_synth_models_run_on_cuda(void) {
    if (skip()) return;
    const char *types[] = {NULL, "q8_0", "q4_k_m", "q5_k_m", "q6_k", "f32"};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        laguna_model *m = NULL;
        laguna_error err = {0};
        CHECKF(lg_model_open_synth("xs2", 2, types[k], 3, &(laguna_model_options){.device = "cuda"}, &m, &err) == 0,
               "%s: %s", types[k] ? types[k] : "bf16", err.message);
        if (!m) continue;
        int V = laguna_model_get_info(m)->vocab_size;
        int32_t tok[40];
        for (int i = 0; i < 40; i++) tok[i] = (i * 7919 + 13) % V;
        laguna_session *s = NULL;
        CHECKF(laguna_session_create(m, &(laguna_session_options){.n_ctx = 64, .kv_type = LAGUNA_KV_F32}, &s, &err) == 0, "%s", err.message);
        if (s && laguna_session_feed(s, tok, 40, NULL, &err) == 0) {
            const float *lg = laguna_session_logits(s);
            double lo = lg[0], hi = lg[0];
            int finite = 1;
            for (int v = 0; v < V; v++) finite &= isfinite(lg[v]) != 0, lo = fmin(lo, lg[v]), hi = fmax(hi, lg[v]);
            printf("  xs2 x2 %-6s logits in [%.3f, %.3f]\n", types[k] ? types[k] : "bf16", lo, hi);
            CHECKF(finite && hi > lo && hi - lo < 1e4, "%s: logits [%g, %g]", types[k] ? types[k] : "bf16", lo, hi);
        } else {
            CHECKF(0, "%s", err.message);
        }
        laguna_session_free(s);
        laguna_model_free(m);
    }
}

/* A synthetic model too large for the GPU is refused before anything is made. */
static void test_synth_too_large_for_cuda(void) {
    if (skip()) return;
    laguna_model *m = NULL;
    laguna_error err = {0};
    CHECK(lg_model_open_synth("m1", 0, NULL, 1, &(laguna_model_options){.device = "cuda"}, &m, &err) ==
              LAGUNA_ERR_NOMEM && !m);
    CHECKF(strstr(err.message, "synthetic m1: the weights need") && strstr(err.message, "GiB are free"), "%s",
           err.message);
}

int main(void) {
    have_cuda();
    RUN(test_fixtures_match_transformers_on_cuda);
    RUN(test_bf16_activations_on_cuda);
    RUN(test_kv_types_and_gguf_beside_cpu);
    RUN(test_synth_weights_every_dtype_on_cuda);
    RUN(test_quantised_products_beside_cpu);
    RUN(test_synth_models_run_on_cuda);
    RUN(test_synth_too_large_for_cuda);
    return test_summary();
}
