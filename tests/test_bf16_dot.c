/* The opt-in bf16-activation products of backend/cpu/bf16_dot.h (BF16
 * weight rows times activations rounded to bf16, AVX-512 BF16), where this
 * CPU has them: the rounding against lg_dtype_from_f32 (to nearest even,
 * zeros after each row's end), and the product against a double-precision
 * one of the same bf16 values: awkward sizes (1-13 and 300 tokens; 1-9 and
 * 37 rows; rows of 1, 16, 31, 32, 37 and 2048 elements, so part-steps at
 * the end), with and without a bias. And batch invariance: each output,
 * computed for its token alone and its row alone, is bitwise the one it gets
 * in the whole product. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/bf16_dot.h"
#include "core/dtype.h"
#include "harness.h"
#include "testutil.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float gauss(void) {
    return tu_gauss(&rng);
}

static bool skipped(void) {
    if (lg_bf16_dot_available()) return false;
    test_skip("no AVX-512 BF16 on this CPU: the bf16-activation products never run here");
    return true;
}

static float bf16_value(uint16_t v) {
    union { uint32_t u; float f; } c = {.u = (uint32_t)v << 16};
    return c.f;
}

static void test_rounding(void) {
    if (skipped()) return;
    const int64_t ns[] = {1, 15, 16, 17, 33, 100};
    for (size_t c = 0; c < sizeof ns / sizeof *ns; c++) {
        int64_t n = ns[c];
        int rows = 3;
        size_t rb = lg_bf16_row_bytes(n);
        CHECK(rb % 64 == 0 && rb >= (size_t)(n + 31) / 32 * 64);
        float *x = malloc(sizeof(float) * (size_t)rows * (size_t)n);
        for (int64_t i = 0; i < rows * n; i++)
            x[i] = gauss() * (i % 7 == 3 ? 1e4f : 1.0f);
        uint8_t *out = malloc(rb * (size_t)rows);
        memset(out, 0xAB, rb * (size_t)rows);
        lg_bf16_round_rows(x, rows, n, out);
        uint16_t *want = malloc(sizeof(uint16_t) * (size_t)n);
        for (int r = 0; r < rows; r++) {
            lg_dtype_from_f32(LG_DTYPE_BF16, x + (size_t)r * n, (uint8_t *)want, n);
            CHECKF(!memcmp(out + (size_t)r * rb, want, 2 * (size_t)n), "n %lld row %d: not rounded as bf16",
                   (long long)n, r);
            for (size_t b = 2 * (size_t)n; b < rb; b++)
                CHECKF(out[(size_t)r * rb + b] == 0, "n %lld row %d: byte %zu after the row is not zero",
                       (long long)n, r, b);
        }
        free(x), free(out), free(want);
    }
}

static void check_product(int rows, int tokens, int64_t n, bool with_bias) {
    size_t wb = 2 * (size_t)n, xb = lg_bf16_row_bytes(n);
    uint8_t *w = malloc(wb * (size_t)rows), *xq = malloc(xb * (size_t)tokens);
    float *src = malloc(sizeof(float) * (size_t)(rows > tokens ? rows : tokens) * (size_t)n);
    for (int64_t i = 0; i < rows * n; i++)
        src[i] = gauss() * (i % 50 == 7 ? 20.0f : 1.0f);
    lg_dtype_from_f32(LG_DTYPE_BF16, src, w, rows * n);
    for (int64_t i = 0; i < tokens * n; i++)
        src[i] = gauss();
    lg_bf16_round_rows(src, tokens, n, xq);
    float *bias = malloc(sizeof(float) * (size_t)rows), *y = malloc(sizeof(float) * (size_t)rows * tokens), one;
    for (int r = 0; r < rows; r++)
        bias[r] = gauss();
    lg_bf16_dot_gemm(&(lg_bf16_dot_args){w, wb, rows, (const uint16_t *)xq, xb / 2, tokens, n, y, (size_t)rows,
                                         with_bias ? bias : NULL});
    int bad = 0, unlike = 0;
    for (int t = 0; t < tokens; t++)
        for (int r = 0; r < rows; r++) {
            const uint16_t *wr = (const uint16_t *)(w + (size_t)r * wb), *xr = (const uint16_t *)(xq + (size_t)t * xb);
            double want = with_bias ? bias[r] : 0, mag = fabs(want);
            for (int64_t i = 0; i < n; i++) {
                double p = (double)bf16_value(wr[i]) * bf16_value(xr[i]);
                want += p, mag += fabs(p);
            }
            float got = y[(size_t)t * rows + r];
            if (!(fabs(got - want) <= 4e-6 * mag + 1e-30) && bad++ < 3)
                printf("  rows %d tokens %d n %lld: y[%d][%d] = %.9g, want %.9g (sum |wx| %.3g)\n", rows, tokens,
                       (long long)n, t, r, got, want, mag);
            lg_bf16_dot_gemm(&(lg_bf16_dot_args){(const uint8_t *)wr, wb, 1, xr, xb / 2, 1, n, &one, 1,
                                                 with_bias ? bias + r : NULL});
            if (memcmp(&one, &got, sizeof got) != 0 && unlike++ < 3)
                printf("  rows %d tokens %d n %lld: y[%d][%d] = %.9g in the product, %.9g alone\n", rows, tokens,
                       (long long)n, t, r, got, one);
        }
    CHECK(bad == 0);
    CHECK(unlike == 0);
    free(w), free(xq), free(src), free(bias), free(y);
}

static void test_against_double(void) {
    if (skipped()) return;
    const int rows[] = {1, 3, 4, 5, 9, 37}, tokens[] = {1, 2, 5, 6, 7, 13};
    const int64_t ns[] = {1, 16, 31, 32, 37, 2048};
    for (size_t a = 0; a < sizeof rows / sizeof *rows; a++)
        for (size_t b = 0; b < sizeof tokens / sizeof *tokens; b++)
            for (size_t c = 0; c < sizeof ns / sizeof *ns; c++)
                check_product(rows[a], tokens[b], ns[c], (a + b + c) % 2 == 0);
}

/* A prompt's worth of tokens. */
static void test_many_tokens(void) {
    if (skipped()) return;
    check_product(7, 300, 512, true);
}

int main(void) {
    RUN(test_rounding);
    RUN(test_against_double);
    RUN(test_many_tokens);
    return test_summary();
}
