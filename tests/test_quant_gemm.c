/* The 8-bit activation kernels of backend/cpu/quant_dot.h: the activation
 * quantiser (the vector one equals the scalar reference bit for bit), the
 * scalar reference product (equal to the float product of what the weight
 * and activation bytes decode to), and every vector kernel this CPU can run
 * (AVX2, AVX512-VNNI) against the reference on awkward sizes: 1, 3, 17 and 300
 * tokens, row counts that are no multiple of any tile, rows of 1, 3 and 5
 * super-blocks (Q8_0: an odd number of 32-blocks), with a bias. And batch
 * invariance: every token's output, computed alone, is bitwise the one it gets
 * in a batch, wherever it sits in the tiles, for any number of rows (the
 * one-token kernels walk many rows in one call). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/quant_dot.h"
#include "core/dtype.h"
#include "harness.h"
#include "quant/quant.h"

static const lg_dtype types[] = {LG_DTYPE_Q8_0, LG_DTYPE_Q4_K, LG_DTYPE_Q5_K, LG_DTYPE_Q6_K};
#define N_TYPES (int)(sizeof types / sizeof types[0])

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float uniform(void) { /* (0, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(((rng >> 11) + 0.5) * (1.0 / 9007199254740992.0));
}
static float gauss(void) {
    return sqrtf(-2.0f * logf(uniform())) * cosf(6.2831853f * uniform());
}

/* n random floats with blocks of very different size, an all-zero 32-block
 * and a few outliers. */
static float *activations(int rows, int64_t n) {
    float *x = malloc(sizeof(float) * (size_t)rows * (size_t)n);
    for (int64_t i = 0; i < rows * n; i++) {
        int64_t blk = (i % n) / 32;
        x[i] = gauss() * (blk % 5 == 3 ? 10.0f : blk % 7 == 1 ? 0.01f : 1.0f);
        if (i % 97 == 13) x[i] *= 30.0f;
        if (blk == 2) x[i] = 0.0f;
    }
    return x;
}

/* rows weight rows of n elements quantised to dt; deq gets what they decode to. */
static uint8_t *weights(lg_dtype dt, int rows, int64_t n, float *deq) {
    size_t rb = lg_dtype_row_bytes(dt, n);
    uint8_t *w = malloc(rb * (size_t)rows);
    float *src = malloc(sizeof(float) * (size_t)n);
    for (int r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++)
            src[i] = gauss() * (i % 64 < 8 ? 3.0f : 1.0f);
        lg_quantize_row(dt, src, w + (size_t)r * rb, n);
        if (deq) lg_dequantize_row(dt, w + (size_t)r * rb, deq + (size_t)r * n, n);
    }
    free(src);
    return w;
}

static uint8_t *q8_rows(const float *x, int rows, int64_t n, int block) {
    uint8_t *q = aligned_alloc(64, lg_q8_row_bytes(n, block) * (size_t)(rows ? rows : 1));
    lg_q8_quantize(x, rows, n, block, q);
    return q;
}

/* q8 rows as the kernels of `isa` read them for weights of dt (their order) */
static uint8_t *q8_rows_for(lg_isa isa, lg_dtype dt, const float *x, int rows, int64_t n) {
    uint8_t *q = aligned_alloc(64, lg_q8_row_bytes(n, lg_q8_block(dt)) * (size_t)(rows ? rows : 1));
    lg_q8_quantize_for(isa, dt, x, rows, n, q);
    return q;
}

/* q8 rows: every value within half a step of its block's scale, never -128,
 * the 16-element sums exact, an all-zero block with scale 0; and the vector
 * quantiser equal to the reference byte for byte, ties of x / d halfway
 * between integers included. */
static void test_activation_rows(void) {
    const int blocks[] = {32, 256};
    for (int k = 0; k < 2; k++) {
        int block = blocks[k], rows = 3;
        int64_t n = 3 * 256;
        size_t stride = lg_q8_row_bytes(n, block);
        CHECK(stride % 64 == 0 && stride >= (size_t)n + 4 * (n / block) + 2 * (n / 16));
        float *x = activations(rows, n);
        for (int i = 0; i < 8; i++)
            x[n + 300 + i] = (float)(i - 4) + 0.5f;
        for (int i = 0; i < 256; i++)
            x[2 * n + i] = 0.0f; /* a whole zero super-block */
        uint8_t *fast = q8_rows(x, rows, n, block), *slow = aligned_alloc(64, stride * rows);
        memset(slow, 0, stride * rows);
        lg_q8_quantize_reference(x, rows, n, block, slow);
        int bad = 0;
        for (int r = 0; r < rows; r++) {
            const uint8_t *row = slow + r * stride;
            const int8_t *q = (const int8_t *)row;
            const float *d = lg_q8_scales(row, n);
            const int16_t *bs = lg_q8_bsums(row, n, block);
            for (int64_t i = 0; i < n; i++) {
                float xi = x[r * n + i], di = d[i / block];
                bad += q[i] == -128 || fabsf(xi - di * q[i]) > 0.5f * di * 1.0001f;
            }
            for (int64_t g = 0; g < n / 16; g++) {
                int s = 0;
                for (int i = 0; i < 16; i++)
                    s += q[16 * g + i];
                bad += s != bs[g];
            }
            if (r == 2) bad += d[0] != 0.0f || (block == 32 && d[2] != 0.0f);
            /* the used bytes are equal (the padding is not written) */
            bad += memcmp(fast + r * stride, row, (size_t)n + 4 * (n / block) + 2 * (n / 16)) != 0;
        }
        CHECKF(bad == 0, "block %d: %d bad values", block, bad);
        free(x), free(fast), free(slow);
    }
}

/* The AVX-512 Q4_K kernels' activation rows (sums of 32, quant_dot.h): the
 * element-order values and scales, and in the sums' place each 32
 * elements' sum; every other (ISA, type) in its own order. */
static void test_sums_of_32(void) {
    CHECK(lg_q8_order_for(LG_ISA_AVX512_VNNI, LG_DTYPE_Q4_K, 1) == LG_Q8_SUMS_OF_32);
    CHECK(lg_q8_order_for(LG_ISA_AVX512_VNNI, LG_DTYPE_Q4_K_X16, 5) == LG_Q8_SUMS_OF_32);
    CHECK(lg_q8_order_for(LG_ISA_AVX512_VNNI, LG_DTYPE_Q6_K, 5) == LG_Q8_ELEMENT_ORDER);
    CHECK(lg_q8_order_for(LG_ISA_AVX512_VNNI, LG_DTYPE_Q5_K, 1) == LG_Q8_SUMS_OF_32);
    CHECK(lg_q8_order_for(LG_ISA_AVX512_VNNI, LG_DTYPE_Q5_K_X16, 9) == LG_Q8_SUMS_OF_32);
    CHECK(lg_q8_order_for(LG_ISA_AVX2, LG_DTYPE_Q4_K, 2) == LG_Q8_PAIR_ORDER);
    CHECK(lg_q8_order_for(LG_ISA_AVX2, LG_DTYPE_Q4_K_X16, 2) == LG_Q8_PAIR_ORDER);
    CHECK(lg_q8_order_for(LG_ISA_AVX2, LG_DTYPE_Q6_K, 300) == LG_Q8_PAIR_ORDER);
    CHECK(lg_q8_order_for(LG_ISA_AVX2, LG_DTYPE_Q4_K, 1) == LG_Q8_ELEMENT_ORDER);
    CHECK(lg_q8_order_for(LG_ISA_AVX2, LG_DTYPE_Q5_K, 1) == LG_Q8_ELEMENT_ORDER);
    CHECK(lg_q8_order_for(LG_ISA_AVX2, LG_DTYPE_Q8_0, 5) == LG_Q8_ELEMENT_ORDER);
    CHECK(lg_q8_order_for(LG_ISA_SCALAR, LG_DTYPE_Q4_K_X16, 5) == LG_Q8_ELEMENT_ORDER);
    CHECK(lg_q8_order_for(LG_ISA_AVX512_VNNI, LG_DTYPE_Q8_0, 1) == LG_Q8_Q8_0_LANE_ORDER);
    CHECK(lg_q8_order_for(LG_ISA_AVX512_VNNI, LG_DTYPE_Q8_0, 9) == LG_Q8_Q8_0_LANE_ORDER);
    if (!lg_qgemm_isa_available(LG_ISA_AVX512_VNNI)) {
        test_skip("this CPU has no AVX512-VNNI");
        return;
    }
    const int rows = 2;
    const int64_t n = 3 * 256;
    size_t stride = lg_q8_row_bytes(n, 256);
    float *x = activations(rows, n);
    uint8_t *elem = q8_rows(x, rows, n, 256),
            *sums = q8_rows_for(LG_ISA_AVX512_VNNI, LG_DTYPE_Q4_K, x, rows, n);
    int bad = 0;
    for (int r = 0; r < rows; r++) {
        const uint8_t *e = elem + r * stride, *s32 = sums + r * stride;
        bad += memcmp(e, s32, (size_t)n + 4 * (n / 256)) != 0;
        const int8_t *q = (const int8_t *)e;
        const int16_t *got = lg_q8_bsums(s32, n, 256);
        for (int64_t g = 0; g < n / 32; g++) {
            int want = 0;
            for (int i = 0; i < 32; i++)
                want += q[32 * g + i];
            bad += got[g] != want;
        }
    }
    CHECKF(bad == 0, "%d rows or sums wrong", bad);
    free(x), free(elem), free(sums);
}

/* The AVX-512 Q8_0 kernel's activation rows (Q8_0 lane order, quant_dot.h):
 * each two blocks' 4-byte pieces alternating, a last odd block in place,
 * every byte + 128; scales and 16-element sums unchanged. */
static void test_q8_0_lane_order(void) {
    if (!lg_qgemm_isa_available(LG_ISA_AVX512_VNNI)) {
        test_skip("this CPU has no AVX512-VNNI");
        return;
    }
    const int rows = 3;
    const int64_t n = 5 * 32; /* two pairs and an odd block */
    size_t stride = lg_q8_row_bytes(n, 32);
    float *x = activations(rows, n);
    uint8_t *elem = q8_rows(x, rows, n, 32),
            *lane = q8_rows_for(LG_ISA_AVX512_VNNI, LG_DTYPE_Q8_0, x, rows, n);
    int bad = 0;
    for (int r = 0; r < rows; r++) {
        const uint8_t *e = elem + r * stride, *l = lane + r * stride;
        for (int64_t i = 0; i < n; i++) {
            int64_t at = i; /* where element i sits */
            if (i < n / 64 * 64) {
                int64_t pair = i / 64, blk = i / 32 % 2, g = i % 32 / 4;
                at = 64 * pair + 8 * g + 4 * blk + i % 4;
            }
            bad += l[at] != (uint8_t)(e[i] ^ 0x80);
        }
        bad += memcmp(l + n, e + n, 4 * (n / 32) + 2 * (n / 16)) != 0;
    }
    CHECKF(bad == 0, "%d values out of place", bad);
    free(x), free(elem), free(lane);
}

/* The AVX2 K-quant kernels' activation rows (pair order, quant_dot.h): each
 * 64 elements (sub-blocks j, k) as A then B, 4-byte lane l of A = elements
 * 4l, 4l+1 of j and of k, of B = 4l+2, 4l+3 of each; scales and 16-element
 * sums unchanged. */
static void test_pair_order(void) {
    if (!lg_qgemm_isa_available(LG_ISA_AVX2)) {
        test_skip("this CPU has no AVX2");
        return;
    }
    const int rows = 2;
    const int64_t n = 3 * 256;
    size_t stride = lg_q8_row_bytes(n, 256);
    float *x = activations(rows, n);
    uint8_t *elem = q8_rows(x, rows, n, 256),
            *pair = q8_rows_for(LG_ISA_AVX2, LG_DTYPE_Q5_K, x, rows, n);
    int bad = 0;
    for (int r = 0; r < rows; r++) {
        const uint8_t *e = elem + r * stride, *p = pair + r * stride;
        for (int64_t o = 0; o < n; o += 64)
            for (int l = 0; l < 8; l++)
                for (int half = 0; half < 2; half++) /* A, B */
                    for (int s = 0; s < 2; s++)      /* sub-block j, k */
                        bad += memcmp(p + o + 32 * half + 4 * l + 2 * s,
                                      e + o + 32 * s + 4 * l + 2 * half, 2) != 0;
        bad += memcmp(p + n, e + n, 4 * (n / 256) + 2 * (n / 16)) != 0;
    }
    CHECKF(bad == 0, "%d pieces out of place", bad);
    free(x), free(elem), free(pair);
}

/* The reference equals the float dot of the dequantised weights with the
 * dequantised activations up to float rounding (its integer sums are exact),
 * and stays within what 8-bit activations can cost of the float dot:
 * sum |w_i| * d_i / 2. */
static void test_reference_is_exact(void) {
    const int64_t lengths[] = {256, 3 * 256, 7 * 256};
    for (int k = 0; k < N_TYPES; k++)
        for (int L = 0; L < 3; L++) {
            int64_t n = lengths[L];
            int block = lg_q8_block(types[k]);
            float *wd = malloc(sizeof(float) * n), *x = activations(1, n), y;
            uint8_t *w = weights(types[k], 1, n, wd), *q = q8_rows(x, 1, n, block);
            lg_qgemm_isa(LG_ISA_SCALAR,
                         &(lg_qgemm_args){types[k], w, 0, 1, q, 0, 1, n, &y, 1, NULL});
            const int8_t *xq = (const int8_t *)q;
            const float *d = lg_q8_scales(q, n);
            double exact = 0, vs_float = 0, mag = 0, bound = 0;
            for (int64_t i = 0; i < n; i++) {
                double xd = (double)d[i / block] * xq[i];
                exact += wd[i] * xd, vs_float += (double)wd[i] * x[i], mag += fabs(wd[i] * xd);
                bound += fabs((double)wd[i]) * 0.5 * d[i / block];
            }
            const char *name = lg_dtype_name(types[k]);
            CHECKF(fabs(y - exact) <= 1e-5 * mag, "%s n=%lld: reference %g exact %g", name,
                   (long long)n, y, exact);
            CHECKF(fabs(y - vs_float) <= bound * 1.0001 + 1e-5 * mag,
                   "%s n=%lld: %g vs float %g (bound %g)", name, (long long)n, y, vs_float, bound);
            free(wd), free(x), free(w), free(q);
        }
}

/* Runs rows x tokens of float activations x (quantised as isa reads them)
 * through one ISA; y[t * rows + r]. */
static float *product(lg_isa isa, lg_dtype dt, const uint8_t *w, int rows, const float *x,
                      int tokens, int64_t n, const float *bias) {
    float *y = malloc(sizeof(float) * (size_t)rows * tokens);
    for (int i = 0; i < rows * tokens; i++)
        y[i] = NAN; /* every output must be written */
    int block = lg_q8_block(dt);
    uint8_t *q = q8_rows_for(isa, dt, x, tokens, n);
    lg_qgemm_isa(isa,
                 &(lg_qgemm_args){dt, w, lg_dtype_row_bytes(dt, n), rows, q,
                                  lg_q8_row_bytes(n, block), tokens, n, y, (size_t)rows, bias});
    free(q);
    return y;
}

/* Every vector kernel against the reference: |fast - slow| <= 1e-5 * sum |w_i x_i|
 * per output (float rounding only: both sum the same exact integers). */
static void test_kernels_match_reference(void) {
    const int row_counts[] = {1, 3, 17}, token_counts[] = {1, 3, 17, 300};
    int tested = 0;
    for (lg_isa isa = LG_ISA_AVX2; isa < LG_ISA_COUNT; isa++) {
        if (!lg_qgemm_isa_available(isa)) continue;
        tested++;
        for (int k = 0; k < N_TYPES; k++) {
            lg_dtype dt = types[k];
            /* 9 super-blocks: wider than one column block of the AVX-512 tiles */
            int64_t lengths[] = {256, 3 * 256, dt == LG_DTYPE_Q8_0 ? 96 : 5 * 256, 9 * 256};
            for (int L = 0; L < 4; L++)
                for (int R = 0; R < 3; R++)
                    for (int T = 0; T < 4; T++) {
                        int64_t n = lengths[L];
                        int rows = row_counts[R], tokens = token_counts[T];
                        if (rows * tokens * n > 17 * 300 * 768) continue; /* keep it quick */
                        float *wd = malloc(sizeof(float) * n * rows), *x = activations(tokens, n);
                        float *bias = activations(1, rows < 32 ? 32 : rows);
                        uint8_t *w = weights(dt, rows, n, wd);
                        float *fast = product(isa, dt, w, rows, x, tokens, n, bias);
                        float *slow = product(LG_ISA_SCALAR, dt, w, rows, x, tokens, n, bias);
                        int bad = 0;
                        for (int t = 0; t < tokens; t++)
                            for (int r = 0; r < rows; r++) {
                                double mag = fabs(bias[r]);
                                for (int64_t i = 0; i < n; i++)
                                    mag += fabs((double)wd[r * n + i] * x[t * n + i]);
                                size_t o = (size_t)t * rows + r;
                                bad += !(fabs(fast[o] - slow[o]) <= 1e-5 * mag);
                            }
                        CHECKF(bad == 0, "%s %s n=%lld rows=%d tokens=%d: %d outputs off",
                               lg_qgemm_isa_name(isa), lg_dtype_name(dt), (long long)n, rows,
                               tokens, bad);
                        free(wd), free(x), free(bias), free(w), free(fast), free(slow);
                    }
        }
    }
    if (!tested) test_skip("this CPU has no AVX2: only the scalar reference runs");
}

/* Batch invariance per ISA: 300 tokens in one product, then each token
 * alone and in batches of 3 and 17 at other offsets; bitwise equal. Rows of
 * 512 and of 2304 (wider than one column block of the AVX-512 tiles). */
static void test_batch_invariance(void) {
    const int tokens = 300, rows = 5;
    for (lg_isa isa = LG_ISA_SCALAR; isa < LG_ISA_COUNT; isa++) {
        if (!lg_qgemm_isa_available(isa)) continue;
        for (int k = 0; k < 2 * N_TYPES; k++) {
            lg_dtype dt = types[k % N_TYPES];
            int64_t n = k < N_TYPES ? 512 : 2304;
            float *x = activations(tokens, n);
            uint8_t *w = weights(dt, rows, n, NULL);
            float *all = product(isa, dt, w, rows, x, tokens, n, NULL);
            int bad = 0;
            const int sizes[] = {1, 3, 17};
            for (int s = 0; s < 3; s++)
                for (int t0 = s; t0 + sizes[s] <= tokens; t0 += sizes[s] + 5) {
                    float *part = product(isa, dt, w, rows, x + (size_t)t0 * n, sizes[s], n, NULL);
                    bad +=
                        memcmp(part, all + (size_t)t0 * rows, sizeof(float) * rows * sizes[s]) != 0;
                    free(part);
                }
            CHECKF(bad == 0, "%s %s: %d sub-batches differ from the full batch",
                   lg_qgemm_isa_name(isa), lg_dtype_name(dt), bad);
            free(x), free(w), free(all);
        }
    }
}

/* One token goes through the decode kernels (many rows in one call where a
 * type has them, the rest one by one); in a batch of 3 it goes row by row
 * through the prefill kernels. Its outputs are bitwise equal either way, for
 * every row count up to 13 (none, one and several passes plus leftovers). */
static void test_one_token_rows(void) {
    const int tokens = 3;
    const int64_t n = 768;
    for (lg_isa isa = LG_ISA_SCALAR; isa < LG_ISA_COUNT; isa++) {
        if (!lg_qgemm_isa_available(isa)) continue;
        for (int k = 0; k < N_TYPES; k++) {
            lg_dtype dt = types[k];
            float *x = activations(tokens, n);
            uint8_t *w = weights(dt, 13, n, NULL);
            int bad = 0;
            for (int rows = 1; rows <= 13; rows++) {
                float *batch = product(isa, dt, w, rows, x, tokens, n, NULL);
                for (int t = 0; t < tokens; t++) {
                    float *one = product(isa, dt, w, rows, x + (size_t)t * n, 1, n, NULL);
                    bad += memcmp(one, batch + (size_t)t * rows, sizeof(float) * rows) != 0;
                    free(one);
                }
                free(batch);
            }
            CHECKF(bad == 0, "%s %s: %d one-token products differ from the batch",
                   lg_qgemm_isa_name(isa), lg_dtype_name(dt), bad);
            free(x), free(w);
        }
    }
}

/* The AVX2 one-token K-quant kernels (element-order activations, each
 * sub-block with its own vpmaddwd) against the pair-order kernel that
 * decode used before them (lg_qgemm_row_avx2 with one token, which the
 * prefill tiles still run): bitwise equal on random blocks, 1..13 rows, rows
 * of 1, 5, 9 and 32 super-blocks. */
static void test_one_token_element_order(void) {
    if (!lg_qgemm_isa_available(LG_ISA_AVX2)) {
        test_skip("this CPU has no AVX2");
        return;
    }
    const lg_dtype k_types[] = {LG_DTYPE_Q4_K, LG_DTYPE_Q5_K, LG_DTYPE_Q6_K};
    const int64_t lengths[] = {256, 1280, 2304, 8192};
    for (int k = 0; k < 3; k++)
        for (int L = 0; L < 4; L++) {
            lg_dtype dt = k_types[k];
            int64_t n = lengths[L];
            size_t rb = lg_dtype_row_bytes(dt, n), xs = lg_q8_row_bytes(n, 256);
            float *x = activations(1, n);
            uint8_t *w = weights(dt, 13, n, NULL);
            uint8_t *elem = aligned_alloc(64, xs), *pair = aligned_alloc(64, xs);
            lg_q8_quantize_in(LG_Q8_ELEMENT_ORDER, LG_ISA_AVX2, dt, x, 1, n, elem);
            lg_q8_quantize_in(LG_Q8_PAIR_ORDER, LG_ISA_AVX2, dt, x, 1, n, pair);
            int bad = 0;
            for (int rows = 1; rows <= 13; rows++) {
                float fast[13], old[13];
                CHECK(lg_qgemm_rows1_avx2(dt, w, rb, rows, elem, n, fast));
                for (int r = 0; r < rows; r++)
                    lg_qgemm_row_avx2(dt, w + (size_t)r * rb, pair, xs, 1, n, &old[r], 1);
                bad += memcmp(fast, old, sizeof(float) * rows) != 0;
            }
            CHECKF(bad == 0, "%s n=%lld: %d row counts differ from the pair-order kernel",
                   lg_dtype_name(dt), (long long)n, bad);
            free(x), free(w), free(elem), free(pair);
        }
}

/* The prefill kernels' token tiles (AVX2: 8 tokens a pass over a row, the
 * sub-block unpacked once for all of them): batches of 1, 5, 17, 33 and 300
 * tokens, which end in part-filled tiles, on row counts that are no multiple
 * of any row blocking; every token's outputs bitwise equal to the same token
 * alone (the one-token decode kernels). */
static void test_token_tiles(void) {
    const int token_counts[] = {1, 5, 17, 33, 300}, row_counts[] = {1, 3, 7};
    for (lg_isa isa = LG_ISA_SCALAR; isa < LG_ISA_COUNT; isa++) {
        if (!lg_qgemm_isa_available(isa)) continue;
        for (int k = 0; k < N_TYPES; k++) {
            lg_dtype dt = types[k];
            const int64_t n = 3 * 256;
            float *x = activations(300, n);
            uint8_t *w = weights(dt, 7, n, NULL);
            float **alone = malloc(sizeof(float *) * 300);
            int bad = 0;
            for (int R = 0; R < 3; R++) {
                int rows = row_counts[R];
                for (int t = 0; t < 300; t++)
                    alone[t] = product(isa, dt, w, rows, x + (size_t)t * n, 1, n, NULL);
                for (int T = 0; T < 5; T++) {
                    int tokens = token_counts[T];
                    float *batch = product(isa, dt, w, rows, x, tokens, n, NULL);
                    for (int t = 0; t < tokens; t++)
                        bad +=
                            memcmp(alone[t], batch + (size_t)t * rows, sizeof(float) * rows) != 0;
                    free(batch);
                }
                for (int t = 0; t < 300; t++)
                    free(alone[t]);
            }
            CHECKF(bad == 0, "%s %s: %d tokens differ between alone and a batch",
                   lg_qgemm_isa_name(isa), lg_dtype_name(dt), bad);
            free(alone), free(x), free(w);
        }
    }
}

/* Q4_K, Q5_K, Q6_K and Q8_0 regrouped at load (LG_DTYPE_Q4_K_X16, Q5_K_X16,
 * Q6_K_X16, Q8_0_X16, quant.h): dword k of row r's block b (from its lead: Q8_0's 2
 * bytes of d) at 16 B b + 64 k + 4 r of its group (B the block's bytes), the
 * 2 bytes left of a Q6_K or Q8_0 block at 16 B b + 64 D + 2 r (D dwords);
 * the regrouping undoes to the same bytes and moves nearly every byte; a row
 * read back from a group is the row, and dequantises to the same floats; and
 * every ISA's product of a grouped matrix is bitwise that of the same rows
 * in ggml's blocks (AVX-512: the grouped kernels against the blocks
 * transposed on the fly; below it, row by row), 16 and 48 rows, 1..17
 * tokens (part and whole passes of 8), rows of 1, 2, 9 and 32 blocks
 * (super-blocks; Q8_0: 1, 2, 9 and 64 blocks of 32), with a bias. */
static void test_x16(void) {
    const int64_t blocks[] = {1, 2, 9, 32};
    const int token_counts[] = {1, 3, 8, 9, 17}, row_counts[] = {16, 48};
    const lg_dtype bases[] = {LG_DTYPE_Q4_K, LG_DTYPE_Q5_K, LG_DTYPE_Q6_K, LG_DTYPE_Q8_0};
    for (int q = 0; q < 4; q++) {
        lg_dtype base = bases[q], dt = lg_x16_of(base);
        size_t B = (size_t)lg_quant_block_bytes(base), L = lg_x16_lead(base), D = (B - L) / 4;
        int64_t qk = lg_quant_block_elems(base);
        int bad_bytes = 0, bad_rows = 0, bad_products = 0, unmoved = 0, bytes_seen = 0;
        for (int k = 0; k < 4; k++) {
            int64_t n = blocks[k] * qk * (base == LG_DTYPE_Q8_0 && k == 3 ? 2 : 1);
            const int rows = 48;
            size_t rb = lg_dtype_row_bytes(base, n), bytes = rb * rows;
            uint8_t *w = weights(base, rows, n, NULL);
            uint8_t *grouped = malloc(bytes), *back = malloc(bytes);
            memcpy(grouped, w, bytes);
            CHECK(lg_x16_group(grouped, base, rows, n) == 0);
            memcpy(back, grouped, bytes);
            CHECK(lg_x16_ungroup(back, base, rows, n) == 0);
            bad_bytes += memcmp(back, w, bytes) != 0;
            for (int r = 0; r < rows; r++)
                for (int64_t b = 0; b < n / qk; b++)
                    for (size_t o = 0; o < B; o++) {
                        bool in_dwords = o >= L && o < L + 4 * D;
                        size_t left = o < L ? o : o - 4 * D; /* among the bytes left */
                        size_t in_group = in_dwords ? 64 * ((o - L) / 4) + 4 * (size_t)(r % 16) + (o - L) % 4
                                                    : 64 * D + (B - 4 * D) * (size_t)(r % 16) + left;
                        bad_bytes += w[(size_t)r * rb + B * (size_t)b + o] !=
                                     grouped[(size_t)(r / 16) * 16 * rb + 16 * B * (size_t)b + in_group];
                    }
            for (size_t i = 0; i < bytes; i++, bytes_seen++)
                unmoved += grouped[i] == w[i];
            uint8_t *row = malloc(rb);
            float *f = malloc(sizeof(float) * (size_t)n), *g = malloc(sizeof(float) * (size_t)n);
            for (int r = 0; r < rows; r++) {
                const uint8_t *group = grouped + (size_t)(r / 16) * 16 * rb;
                lg_x16_row(group, base, r % 16, n, row);
                bad_rows += memcmp(row, w + (size_t)r * rb, rb) != 0;
                lg_dequantize_row(base, w + (size_t)r * rb, f, n);
                lg_x16_dequantize_row(group, base, r % 16, g, n);
                bad_rows += memcmp(f, g, sizeof(float) * (size_t)n) != 0;
            }
            free(row), free(f), free(g);
            float *x = activations(17, n), *bias = activations(1, rows);
            for (lg_isa isa = LG_ISA_SCALAR; isa < LG_ISA_COUNT; isa++) {
                if (!lg_qgemm_isa_available(isa)) continue;
                for (int T = 0; T < 5; T++)
                    for (int R = 0; R < 2; R++) {
                        int tokens = token_counts[T], nr = row_counts[R];
                        float *a = product(isa, base, w, nr, x, tokens, n, bias);
                        float *b = product(isa, dt, grouped, nr, x, tokens, n, bias);
                        bad_products += memcmp(a, b, sizeof(float) * (size_t)nr * tokens) != 0;
                        free(a), free(b);
                    }
            }
            free(x), free(bias), free(w), free(grouped), free(back);
        }
        const char *name = lg_dtype_name(base);
        CHECKF(bad_bytes == 0, "%s: %d regrouped bytes or round trips wrong", name, bad_bytes);
        CHECKF(bad_rows == 0, "%s: %d rows read back from groups differ", name, bad_rows);
        CHECKF(bad_products == 0, "%s: %d products differ from the ungrouped ones", name, bad_products);
        CHECKF(unmoved < bytes_seen / 8, "%s: %d of %d bytes unmoved: the regrouping looks like the identity",
               name, unmoved, bytes_seen);
    }
}

int main(void) {
    printf("kernels: %s\n", lg_qgemm_isa_name(lg_qgemm_isa_best()));
    RUN(test_activation_rows);
    RUN(test_sums_of_32);
    RUN(test_q8_0_lane_order);
    RUN(test_pair_order);
    RUN(test_reference_is_exact);
    RUN(test_kernels_match_reference);
    RUN(test_batch_invariance);
    RUN(test_one_token_rows);
    RUN(test_one_token_element_order);
    RUN(test_token_tiles);
    RUN(test_x16);
    return test_summary();
}
