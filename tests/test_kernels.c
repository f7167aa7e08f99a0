/* Fast kernels against the reference ones on random inputs of awkward sizes
 * (odd, not multiples of any vector width), every weight dtype, 1-3 threads. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"
#include "quant/quant_dot.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

static double rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += (a[i] - b[i]) * (double)(a[i] - b[i]), den += (double)b[i] * b[i];
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void matmul_case(lg_dtype dt, int rows, int cols, int tokens, int threads, int with_bias) {
    size_t esize = lg_dtype_row_bytes(dt, 1);
    uint8_t *w = malloc((size_t)rows * cols * esize);
    for (size_t i = 0; i < (size_t)rows * cols; i++) {
        float v = frand();
        if (dt == LG_DTYPE_F32) ((float *)w)[i] = v;
        else if (dt == LG_DTYPE_BF16) ((uint16_t *)w)[i] = lg_f32_to_bf16(v);
        else ((uint16_t *)w)[i] = lg_f32_to_f16(v);
    }
    lg_matrix m = {dt, rows, cols, lg_dtype_row_bytes(dt, cols), w};
    float *x = malloc(sizeof(float) * (size_t)tokens * cols), *bias = malloc(sizeof(float) * rows);
    float *y = malloc(sizeof(float) * (size_t)tokens * rows), *ref = malloc(sizeof(float) * (size_t)tokens * rows);
    for (size_t i = 0; i < (size_t)tokens * cols; i++) x[i] = frand();
    for (int i = 0; i < rows; i++) bias[i] = frand();
    for (size_t i = 0; i < (size_t)tokens * rows; i++) y[i] = NAN; /* poison: every output must be written */
    lg_threadpool *pool = lg_threadpool_new(threads);
    lg_kernel_ctx k;
    CHECK(lg_kernel_ctx_init(&k, pool, (size_t)16 * cols) == 0);
    lg_matmul(&k, y, x, tokens, &m, with_bias ? bias : NULL);
    lg_ref_matmul(ref, x, tokens, &m, with_bias ? bias : NULL);
    double e = rel(y, ref, (size_t)tokens * rows);
    CHECKF(e < 2e-6, "%s %dx%d tokens %d threads %d: rel %.3e", lg_dtype_name(dt), rows, cols, tokens, threads, e);
    lg_kernel_ctx_free(&k);
    lg_threadpool_free(pool);
    free(w), free(x), free(bias), free(y), free(ref);
}

/* Quantised weights: products of the types quant_dot.h serves run on 8-bit
 * activations (all batch sizes with vector dots, up to 8 tokens without), so each output may differ from the float reference by what
 * rounding every activation to half a step of its block's amax/127 can cost:
 * sum_i |w_i| * step_i / 2 (plus float rounding). Other types (Q4_0 here)
 * take the dequantising float path and match the reference to float
 * rounding. */
static void quant_matmul_case(lg_dtype dt, int rows, int cols, int tokens, int threads) {
    float *wf = malloc(sizeof(float) * (size_t)rows * cols), *wd = malloc(sizeof(float) * (size_t)rows * cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++) wf[i] = frand();
    size_t rb = lg_dtype_row_bytes(dt, cols);
    uint8_t *w = malloc(rb * rows);
    for (int r = 0; r < rows; r++) {
        CHECK(lg_dtype_from_f32(dt, wf + (size_t)r * cols, w + r * rb, cols) == 0);
        lg_dtype_to_f32(dt, w + r * rb, wd + (size_t)r * cols, cols);
    }
    lg_matrix m = {dt, rows, cols, rb, w};
    float *x = malloc(sizeof(float) * (size_t)tokens * cols), *bias = malloc(sizeof(float) * rows);
    float *y = malloc(sizeof(float) * (size_t)tokens * rows), *ref = malloc(sizeof(float) * (size_t)tokens * rows);
    for (size_t i = 0; i < (size_t)tokens * cols; i++) x[i] = frand();
    for (int i = 0; i < rows; i++) bias[i] = frand() * 0.01f;
    for (size_t i = 0; i < (size_t)tokens * rows; i++) y[i] = NAN;
    lg_threadpool *pool = lg_threadpool_new(threads);
    lg_kernel_ctx k;
    CHECK(lg_kernel_ctx_init(&k, pool, (size_t)16 * cols) == 0);
    lg_matmul(&k, y, x, tokens, &m, bias);
    lg_ref_matmul(ref, x, tokens, &m, bias);
    bool q8_path = dt != LG_DTYPE_Q4_0 && (tokens <= 8 || lg_quant_dot_vectorized(dt));
    int bad = 0;
    for (int t = 0; t < tokens; t++)
        for (int r = 0; r < rows; r++) {
            const float *xt = x + (size_t)t * cols, *wr = wd + (size_t)r * cols;
            double bound = 0, mag = fabs(bias[r]);
            for (int b = 0; b < cols / 32; b++) {
                float amax = 0;
                for (int i = 32 * b; i < 32 * b + 32; i++) amax = fmaxf(amax, fabsf(xt[i]));
                for (int i = 32 * b; i < 32 * b + 32; i++) {
                    bound += q8_path ? fabs(wr[i]) * 0.5 * amax / 127 : 0;
                    mag += fabs(wr[i] * xt[i]);
                }
            }
            bad += !(fabs(y[(size_t)t * rows + r] - ref[(size_t)t * rows + r]) <= bound * 1.0001 + 2e-6 * mag);
        }
    CHECKF(bad == 0, "%s %dx%d tokens %d threads %d: %d outputs outside the bound", lg_dtype_name(dt), rows, cols, tokens,
           threads, bad);
    lg_kernel_ctx_free(&k);
    lg_threadpool_free(pool);
    free(wf), free(wd), free(w), free(x), free(bias), free(y), free(ref);
}

static void test_quantized_matmul(void) {
    lg_dtype dts[] = {LG_DTYPE_Q8_0, LG_DTYPE_Q4_K, LG_DTYPE_Q5_K, LG_DTYPE_Q6_K, LG_DTYPE_Q4_0};
    int shapes[][3] = {{1, 256, 1},  {37, 512, 1}, {23, 512, 2}, {19, 768, 3}, {13, 256, 5}, {29, 768, 7},
                       {5, 1280, 8}, {33, 256, 9}, {17, 512, 13}, {11, 512, 24}, {7, 256, 37}};
    for (int d = 0; d < 5; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int th = 1; th <= 3; th++) quant_matmul_case(dts[d], shapes[s][0], shapes[s][1], shapes[s][2], th);
}

static void test_matmul_matches_reference(void) {
    int shapes[][3] = {{1, 1, 1}, {3, 7, 1}, {17, 33, 5}, {65, 129, 3}, {100, 257, 2}, {31, 1000, 7}};
    lg_dtype dts[] = {LG_DTYPE_F32, LG_DTYPE_BF16, LG_DTYPE_F16};
    for (int d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int th = 1; th <= 3; th += 2) matmul_case(dts[d], shapes[s][0], shapes[s][1], shapes[s][2], th, (int)s % 2);
}

/* The fast kernel reading keys from spans (a wrapped ring plus the batch)
 * equals the reference reading one contiguous array. */
static void attention_case(int n_heads, int n_kv, int hd, int n_past, int n_new, int window, int threads, lg_dtype cache) {
    int n_keys = n_past + n_new;
    size_t row = (size_t)n_kv * hd;
    float *keys = malloc(sizeof(float) * n_keys * row), *vals = malloc(sizeof(float) * n_keys * row);
    float *q = malloc(sizeof(float) * (size_t)n_new * n_heads * hd);
    float *out = malloc(sizeof(float) * (size_t)n_new * n_heads * hd), *ref = malloc(sizeof(float) * (size_t)n_new * n_heads * hd);
    for (size_t i = 0; i < n_keys * row; i++) keys[i] = frand(), vals[i] = frand();
    for (size_t i = 0; i < (size_t)n_new * n_heads * hd; i++) q[i] = frand() * 3;
    /* cached positions live in a ring of `cap` slots (position p at p % cap) */
    /* stored in the cache's dtype; the reference sees the same rounded values */
    int cap = window > 0 ? window : (n_past > 0 ? n_past : 1);
    size_t rb = lg_dtype_row_bytes(cache, (int64_t)row);
    uint8_t *rk = calloc((size_t)cap, rb), *rv = calloc((size_t)cap, rb);
    for (int p = 0; p < n_past; p++) {
        lg_dtype_from_f32(cache, keys + p * row, rk + (size_t)(p % cap) * rb, (int64_t)row);
        lg_dtype_from_f32(cache, vals + p * row, rv + (size_t)(p % cap) * rb, (int64_t)row);
        lg_dtype_to_f32(cache, rk + (size_t)(p % cap) * rb, keys + p * row, (int64_t)row);
        lg_dtype_to_f32(cache, rv + (size_t)(p % cap) * rb, vals + p * row, (int64_t)row);
    }
    lg_kv_span spans[3];
    int ns = 0, first = n_past - cap > 0 ? n_past - cap : 0;
    for (int p = first; p < n_past;) {
        int slot = p % cap, run = cap - slot < n_past - p ? cap - slot : n_past - p;
        spans[ns++] = (lg_kv_span){rk + (size_t)slot * rb, rv + (size_t)slot * rb, run, rb, p, cache};
        p += run;
    }
    spans[ns++] = (lg_kv_span){keys + (size_t)n_past * row, vals + (size_t)n_past * row, n_new, row * sizeof(float), n_past,
                               LG_DTYPE_F32};
    lg_threadpool *pool = lg_threadpool_new(threads);
    lg_kernel_ctx k;
    CHECK(lg_kernel_ctx_init(&k, pool, (size_t)n_keys + 2 * (size_t)hd + 16) == 0);
    lg_attention(&k, out, q, n_new, n_heads, n_kv, hd, n_past, window, spans, ns);
    lg_ref_attention(ref, q, n_new, n_heads, n_kv, hd, n_past, window, keys, vals, n_keys);
    double e = rel(out, ref, (size_t)n_new * n_heads * hd);
    CHECKF(e < 1e-5, "heads %d/%d hd %d past %d new %d window %d cache %s: rel %.3e", n_heads, n_kv, hd, n_past, n_new,
           window, lg_dtype_name(cache), e);
    lg_kernel_ctx_free(&k);
    lg_threadpool_free(pool);
    free(keys), free(vals), free(q), free(out), free(ref), free(rk), free(rv);
}

static void test_attention_matches_reference(void) {
    lg_dtype dts[] = {LG_DTYPE_F32, LG_DTYPE_F16, LG_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        attention_case(6, 2, 16, 0, 13, 0, 1, dts[d]);
        attention_case(8, 2, 16, 0, 70, 8, 2, dts[d]);  /* sliding, batch longer than the window */
        attention_case(8, 2, 16, 21, 1, 8, 1, dts[d]);  /* decode step with a wrapped ring */
        attention_case(8, 2, 16, 19, 5, 8, 3, dts[d]);  /* batch after a wrapped ring */
        attention_case(12, 4, 24, 37, 9, 0, 2, dts[d]); /* global, odd sizes */
        attention_case(3, 3, 7, 5, 3, 4, 1, dts[d]);    /* no grouping, odd head_dim */
    }
    attention_case(8, 2, 32, 21, 3, 8, 2, LG_DTYPE_Q8_0); /* 8-bit cache, head_dim a multiple of its block */
    attention_case(6, 3, 64, 40, 1, 0, 1, LG_DTYPE_Q8_0);
}

/* Rotation of a pair must preserve its length times the scale, pass the
 * unrotated dims through, and match cos/sin of pos * inv_freq. */
static void test_rope_rotates_pairs(void) {
    int hd = 10, n_rot = 6, heads = 2, T = 3;
    float inv[3] = {1.0f, 0.1f, 0.01f};
    int pos[3] = {0, 5, 77};
    float v[3 * 2 * 10], orig[3 * 2 * 10];
    for (int i = 0; i < 60; i++) orig[i] = v[i] = frand();
    lg_rope_rows(v, T, heads, hd, n_rot, inv, 1.5f, pos);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < heads; h++) {
            const float *a = orig + (t * heads + h) * hd, *b = v + (t * heads + h) * hd;
            for (int i = 0; i < 3; i++) {
                double ang = (double)pos[t] * inv[i];
                double x = (a[i] * cos(ang) - a[i + 3] * sin(ang)) * 1.5, y = (a[i + 3] * cos(ang) + a[i] * sin(ang)) * 1.5;
                CHECKF(fabs(b[i] - x) < 1e-4 && fabs(b[i + 3] - y) < 1e-4, "t %d h %d pair %d", t, h, i);
            }
            for (int i = n_rot; i < hd; i++) CHECK(b[i] == a[i]);
        }
}

static void test_rmsnorm_and_activations(void) {
    float x[7] = {1, -2, 3, -4, 5, -6, 7}, w[7] = {1, 2, 3, 4, 5, 6, 7}, y[7];
    lg_rmsnorm_rows(y, x, w, 1, 7, 1e-6f);
    double ms = (1 + 4 + 9 + 16 + 25 + 36 + 49) / 7.0;
    for (int i = 0; i < 7; i++) CHECK(fabs(y[i] - x[i] / sqrt(ms + 1e-6) * w[i]) < 1e-5);
    CHECK(fabsf(lg_softplus(0) - logf(2)) < 1e-6);
    CHECK(lg_softplus(30) == 30);
    CHECK(fabsf(lg_softplus(-30) - expf(-30)) < 1e-12);
    CHECK(fabsf(lg_sigmoid(0) - 0.5f) < 1e-7);
    float g[2] = {1, -1}, u[2] = {2, 3}, o[2];
    lg_silu_mul(o, g, u, 2);
    CHECK(fabsf(o[0] - 2 * (1 / (1 + expf(-1)))) < 1e-6 && fabsf(o[1] - 3 * (-1 / (1 + expf(1)))) < 1e-6);
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

int main(void) {
    RUN(test_matmul_matches_reference);
    RUN(test_quantized_matmul);
    RUN(test_attention_matches_reference);
    RUN(test_rope_rotates_pairs);
    RUN(test_rmsnorm_and_activations);
    RUN(test_dtype_conversions);
    return test_summary();
}
