/* The float-weight kernels of backend/cpu/float_gemm.h (F32, BF16, F16 rows
 * times float activations), every instruction set this CPU runs, against a
 * double-precision product of the same weights: awkward sizes (1, 2, 5, 6,
 * 7, 13 and 300 tokens; 1-9 and 37 rows, no multiple of any tile; rows of
 * 1, 16, 37 and 2048 elements, so part-vectors at the end), with and without
 * a bias. And batch invariance: each output, computed for its token alone
 * and its row alone, is bitwise the one it gets in the whole product. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/float_gemm.h"
#include "core/dtype.h"
#include "harness.h"
#include "testutil.h"

static const lg_dtype types[] = {LG_DTYPE_F32, LG_DTYPE_BF16, LG_DTYPE_F16};
#define N_TYPES (int)(sizeof types / sizeof types[0])

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float gauss(void) {
    return tu_gauss(&rng);
}

/* rows x n weights of type dt (deq: the floats they hold) */
static uint8_t *weights(lg_dtype dt, int rows, int64_t n, float *deq) {
    size_t rb = lg_dtype_row_bytes(dt, n);
    uint8_t *w = malloc(rb * (size_t)rows);
    float *src = malloc(sizeof(float) * (size_t)n);
    for (int r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++)
            src[i] = gauss() * (i % 50 == 7 ? 20.0f : 1.0f);
        lg_dtype_from_f32(dt, src, w + (size_t)r * rb, n);
        lg_dtype_to_f32(dt, w + (size_t)r * rb, deq + (size_t)r * n, n);
    }
    free(src);
    return w;
}

static int isa_count(void) {
    int k = 0;
    for (int i = 0; i < LG_ISA_COUNT; i++)
        k += lg_qgemm_isa_available((lg_isa)i) && lg_fgemm_serves((lg_isa)i, LG_DTYPE_F32);
    return k;
}

static void check_product(lg_isa isa, lg_dtype dt, int rows, int tokens, int64_t n,
                          bool with_bias) {
    float *deq = malloc(sizeof(float) * (size_t)rows * (size_t)n);
    uint8_t *w = weights(dt, rows, n, deq);
    size_t rb = lg_dtype_row_bytes(dt, n);
    float *x = malloc(sizeof(float) * (size_t)tokens * (size_t)n),
          *bias = malloc(sizeof(float) * rows);
    for (int64_t i = 0; i < tokens * n; i++)
        x[i] = gauss();
    for (int r = 0; r < rows; r++)
        bias[r] = gauss();
    float *y = malloc(sizeof(float) * (size_t)rows * tokens), *one = malloc(sizeof(float) * 2);
    lg_fgemm_isa(isa, &(lg_fgemm_args){dt, w, rb, rows, x, (size_t)n, tokens, n, y, (size_t)rows,
                                       with_bias ? bias : NULL});
    int bad = 0, unlike = 0;
    for (int t = 0; t < tokens; t++)
        for (int r = 0; r < rows; r++) {
            double want = with_bias ? bias[r] : 0, mag = fabs(want);
            for (int64_t i = 0; i < n; i++) {
                want += (double)deq[(size_t)r * n + i] * x[(size_t)t * n + i];
                mag += fabs((double)deq[(size_t)r * n + i] * x[(size_t)t * n + i]);
            }
            float got = y[(size_t)t * rows + r];
            if (!(fabs(got - want) <= 4e-6 * mag + 1e-30)) {
                if (bad++ < 3)
                    printf("  %s %s rows %d tokens %d n %lld: y[%d][%d] = %.9g, want %.9g (sum "
                           "|wx| %.3g)\n",
                           lg_qgemm_isa_name(isa), lg_dtype_name(dt), rows, tokens, (long long)n, t,
                           r, got, want, mag);
            }
            /* the same output alone: one row, one token */
            lg_fgemm_isa(isa,
                         &(lg_fgemm_args){dt, w + (size_t)r * rb, rb, 1, x + (size_t)t * n,
                                          (size_t)n, 1, n, one, 1, with_bias ? bias + r : NULL});
            if (memcmp(one, &got, sizeof got) != 0 && unlike++ < 3)
                printf("  %s %s rows %d tokens %d n %lld: y[%d][%d] = %.9g in the product, %.9g "
                       "alone\n",
                       lg_qgemm_isa_name(isa), lg_dtype_name(dt), rows, tokens, (long long)n, t, r,
                       got, one[0]);
        }
    CHECK(bad == 0);
    CHECK(unlike == 0);
    free(deq), free(w), free(x), free(bias), free(y), free(one);
}

static void test_against_double(void) {
    if (isa_count() == 0) {
        test_skip("no AVX2 or AVX-512 on this CPU: the float kernels never run here");
        return;
    }
    const int rows[] = {1, 3, 4, 5, 9, 37}, tokens[] = {1, 2, 5, 6, 7, 13};
    const int64_t ns[] = {1, 16, 37, 2048};
    for (int i = 0; i < LG_ISA_COUNT; i++) {
        lg_isa isa = (lg_isa)i;
        if (!lg_qgemm_isa_available(isa) || !lg_fgemm_serves(isa, LG_DTYPE_F32)) continue;
        for (int d = 0; d < N_TYPES; d++)
            for (size_t a = 0; a < sizeof rows / sizeof *rows; a++)
                for (size_t b = 0; b < sizeof tokens / sizeof *tokens; b++)
                    for (size_t c = 0; c < sizeof ns / sizeof *ns; c++)
                        check_product(isa, types[d], rows[a], tokens[b], ns[c],
                                      (a + b + c) % 2 == 0);
    }
}

/* A prompt's worth of tokens over rows of an XS.2 shape's width. */
static void test_many_tokens(void) {
    if (isa_count() == 0) {
        test_skip("no AVX2 or AVX-512 on this CPU: the float kernels never run here");
        return;
    }
    for (int i = 0; i < LG_ISA_COUNT; i++)
        if (lg_qgemm_isa_available((lg_isa)i) && lg_fgemm_serves((lg_isa)i, LG_DTYPE_F32))
            for (int d = 0; d < N_TYPES; d++)
                check_product((lg_isa)i, types[d], 7, 300, 512, true);
}

static void test_serves(void) {
    CHECK(!lg_fgemm_serves(LG_ISA_SCALAR, LG_DTYPE_F32));
    CHECK(!lg_fgemm_serves(LG_ISA_AVX2, LG_DTYPE_Q8_0));
    CHECK(!lg_fgemm_serves(LG_ISA_AVX512_VNNI, LG_DTYPE_Q4_K));
    CHECK(lg_fgemm_serves(LG_ISA_AVX2, LG_DTYPE_BF16) &&
          lg_fgemm_serves(LG_ISA_AVX512_VNNI, LG_DTYPE_F16));
}

int main(void) {
    RUN(test_serves);
    RUN(test_against_double);
    RUN(test_many_tokens);
    return test_summary();
}
