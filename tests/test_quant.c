/* Quantised weight formats (src/quant/, core/dtype): ggml's bytes for a fixed
 * input, dequantisation of hand-built blocks against hand-computed values,
 * round-trip error bounds on random data of awkward sizes, the quantised dot
 * product, and float16 / bfloat16 conversion edge cases. (The 8-bit
 * activation kernels: tests/test_quant_gemm.c.)
 *
 * The golden hashes below were produced by ggml itself (ggml-org/ggml at
 * d99724f, ggml_quantize_chunk without importance matrix and the type's
 * to_float) on the input that golden_input() builds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "harness.h"
#include "quant/quant.h"

static const lg_dtype all_quant[] = {LG_DTYPE_Q8_0, LG_DTYPE_Q4_0, LG_DTYPE_Q5_0, LG_DTYPE_Q5_1,
                                     LG_DTYPE_Q4_K, LG_DTYPE_Q5_K, LG_DTYPE_Q6_K};
#define N_QUANT (sizeof all_quant / sizeof all_quant[0])

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *c = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

/* Integer-only generator so the input is bit-identical everywhere. */
#define GOLDEN_N 1024
static void golden_input(float *x) {
    uint64_t r = 0x2545F4914F6CDD1Dull;
    for (int i = 0; i < GOLDEN_N; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        float v = (float)((int32_t)(r >> 40) - (1 << 23)) / (float)(1 << 23);
        if (i >= 256 && i < 288) v = 0.0f;  /* an all-zero 32-block */
        if (i >= 512 && i < 544) v = v * v; /* an all-positive 32-block */
        if (i % 131 == 5) v *= 16.0f;       /* outliers */
        x[i] = v * 0.0625f;
    }
}

static void test_bytes_match_ggml(void) {
    static const struct {
        lg_dtype dtype;
        size_t bytes;
        uint64_t quant_hash, dequant_hash;
    } golden[] = {
        {LG_DTYPE_Q8_0, 1088, 0xb529da919f6cc740ull, 0xc8f9417e6d5d64fdull},
        {LG_DTYPE_Q4_0, 576, 0x9eaf9a2f77add4bcull, 0x8cc2c66088562963ull},
        {LG_DTYPE_Q5_0, 704, 0x16c058acd8e0a4a6ull, 0x60507d5f3a8651f9ull},
        {LG_DTYPE_Q5_1, 768, 0xf1b76e968e35348cull, 0xc7d684249db6600aull},
        {LG_DTYPE_Q4_K, 576, 0x2e1fcb8dae9e44b8ull, 0x7ec92e7686f151c7ull},
        {LG_DTYPE_Q5_K, 704, 0x47efd30befde5d39ull, 0x4e63ce425391bbc0ull},
        {LG_DTYPE_Q6_K, 840, 0x694b682d8b65fd52ull, 0xbff10171ed085d48ull},
    };
    float x[GOLDEN_N], y[GOLDEN_N];
    unsigned char q[GOLDEN_N * 2];
    golden_input(x);
    for (size_t k = 0; k < sizeof golden / sizeof golden[0]; k++) {
        lg_dtype t = golden[k].dtype;
        CHECKF(lg_dtype_row_bytes(t, GOLDEN_N) == golden[k].bytes, "%s row bytes %zu",
               lg_dtype_name(t), lg_dtype_row_bytes(t, GOLDEN_N));
        CHECK(lg_dtype_from_f32(t, x, q, GOLDEN_N) == 0);
        CHECKF(fnv1a(q, golden[k].bytes) == golden[k].quant_hash,
               "%s: quantised bytes differ from ggml's", lg_dtype_name(t));
        lg_dtype_to_f32(t, q, y, GOLDEN_N);
        CHECKF(fnv1a(y, sizeof y) == golden[k].dequant_hash,
               "%s: dequantised floats differ from ggml's", lg_dtype_name(t));
    }
}

static void put_f16(uint16_t *dst, float v) {
    *dst = lg_f32_to_f16(v);
}

static void test_dequant_q8_0_q4_0_by_hand(void) {
    lg_block_q8_0 b8;
    put_f16(&b8.d, 0.25f);
    for (int i = 0; i < 32; i++)
        b8.qs[i] = (int8_t)(i * 8 - 128);
    float y[32];
    lg_dtype_to_f32(LG_DTYPE_Q8_0, &b8, y, 32);
    for (int i = 0; i < 32; i++)
        CHECKF(y[i] == (i * 8 - 128) * 0.25f, "q8_0[%d] = %g", i, y[i]);

    lg_block_q4_0 b4;
    put_f16(&b4.d, -1.5f);
    for (int j = 0; j < 16; j++)
        b4.qs[j] = (uint8_t)(j | ((15 - j) << 4)); /* element j: j, element j+16: 15-j */
    lg_dtype_to_f32(LG_DTYPE_Q4_0, &b4, y, 32);
    for (int j = 0; j < 16; j++) {
        CHECKF(y[j] == (j - 8) * -1.5f, "q4_0[%d] = %g", j, y[j]);
        CHECKF(y[j + 16] == (15 - j - 8) * -1.5f, "q4_0[%d] = %g", j + 16, y[j + 16]);
    }
}

static void test_dequant_q5_0_q5_1_by_hand(void) {
    lg_block_q5_0 b;
    put_f16(&b.d, 0.5f);
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)((j & 15) | ((j * 3 & 15) << 4));
    uint32_t qh = 0xA5C3F00Fu; /* element i's fifth bit is bit i */
    memcpy(b.qh, &qh, 4);
    float y[32];
    lg_dtype_to_f32(LG_DTYPE_Q5_0, &b, y, 32);
    for (int i = 0; i < 32; i++) {
        int lo = i < 16 ? (i & 15) : ((i - 16) * 3 & 15);
        int q = lo | (int)((qh >> i) & 1) << 4;
        CHECKF(y[i] == (q - 16) * 0.5f, "q5_0[%d] = %g want %g", i, y[i], (q - 16) * 0.5f);
    }
    lg_block_q5_1 c;
    put_f16(&c.d, 0.125f);
    put_f16(&c.m, -2.0f);
    memcpy(c.qs, b.qs, 16);
    memcpy(c.qh, b.qh, 4);
    lg_dtype_to_f32(LG_DTYPE_Q5_1, &c, y, 32);
    for (int i = 0; i < 32; i++) {
        int lo = i < 16 ? (i & 15) : ((i - 16) * 3 & 15);
        int q = lo | (int)((qh >> i) & 1) << 4;
        CHECKF(y[i] == q * 0.125f - 2.0f, "q5_1[%d] = %g", i, y[i]);
    }
}

/* Sub-block scales and mins chosen above 15 for j >= 4 so the split 6-bit
 * packing (high two bits in bytes 0-7) is exercised. */
static const uint8_t k_sc[8] = {1, 2, 3, 4, 17, 33, 50, 63};
static const uint8_t k_m[8] = {0, 5, 10, 15, 20, 40, 48, 62};

/* ggml's 12-byte scales layout, written out by hand. */
static void pack_k_scales(uint8_t s[12]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(k_sc[j] | ((k_sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(k_m[j] | ((k_m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((k_sc[j + 4] & 15) | ((k_m[j + 4] & 15) << 4));
    }
}

static void test_dequant_q4_K_q5_K_by_hand(void) {
    lg_block_q4_K b;
    put_f16(&b.d, 0.5f);
    put_f16(&b.dmin, 0.25f);
    pack_k_scales(b.scales);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        lg_k4_scale_min(j, b.scales, &sc, &m);
        CHECKF(sc == k_sc[j] && m == k_m[j], "sub-block %d: scale %d min %d", j, sc, m);
    }
    /* element e of the block has q = (e * 7) % 16 */
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++)
            b.qs[32 * g + l] =
                (uint8_t)(((64 * g + l) * 7 % 16) | (((64 * g + 32 + l) * 7 % 16) << 4));
    float y[256];
    lg_dtype_to_f32(LG_DTYPE_Q4_K, &b, y, 256);
    for (int e = 0; e < 256; e++) {
        float want = 0.5f * k_sc[e / 32] * (float)(e * 7 % 16) - 0.25f * k_m[e / 32];
        CHECKF(y[e] == want, "q4_K[%d] = %g want %g", e, y[e], want);
    }

    lg_block_q5_K c;
    put_f16(&c.d, 0.5f);
    put_f16(&c.dmin, 0.25f);
    pack_k_scales(c.scales);
    memset(c.qh, 0, sizeof c.qh);
    for (int e = 0; e < 256; e++) {
        int q = e * 11 % 32, g = e / 64, in_g = e % 64, l = in_g % 32;
        uint8_t *byte = &c.qs[32 * g + l];
        if (in_g < 32)
            *byte = (uint8_t)((*byte & 0xF0) | (q & 15));
        else
            *byte = (uint8_t)((*byte & 0x0F) | ((q & 15) << 4));
        if (q & 16) c.qh[l] |= (uint8_t)(1u << (2 * g + (in_g >= 32)));
    }
    lg_dtype_to_f32(LG_DTYPE_Q5_K, &c, y, 256);
    for (int e = 0; e < 256; e++) {
        float want = 0.5f * k_sc[e / 32] * (float)(e * 11 % 32) - 0.25f * k_m[e / 32];
        CHECKF(y[e] == want, "q5_K[%d] = %g want %g", e, y[e], want);
    }
}

static void test_dequant_q6_K_by_hand(void) {
    lg_block_q6_K b;
    memset(&b, 0, sizeof b);
    put_f16(&b.d, 0.125f);
    for (int j = 0; j < 16; j++)
        b.scales[j] = (int8_t)(j * 17 - 128);
    for (int e = 0; e < 256; e++) {
        int q = e * 13 % 64; /* stored value; x = d * scale * (q - 32) */
        int half = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
        uint8_t *ql = &b.ql[64 * half + l + (quarter & 1) * 32];
        if (quarter < 2)
            *ql = (uint8_t)((*ql & 0xF0) | (q & 15));
        else
            *ql = (uint8_t)((*ql & 0x0F) | ((q & 15) << 4));
        b.qh[32 * half + l] |= (uint8_t)((q >> 4) << (2 * quarter));
    }
    float y[256];
    lg_dtype_to_f32(LG_DTYPE_Q6_K, &b, y, 256);
    for (int e = 0; e < 256; e++) {
        float want = 0.125f * (float)(int8_t)((e / 16) * 17 - 128) * (float)(e * 13 % 64 - 32);
        CHECKF(y[e] == want, "q6_K[%d] = %g want %g", e, y[e], want);
    }
}

static uint64_t rng = 0x853c49e6748fea9bull;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
static float gauss(void) {
    double u = urand() + 1e-300, v = urand();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* Relative RMS error of quantise + dequantise on Gaussian data, bounded a
 * little above what ggml's reference quantisers reach (measured against
 * ggml: Q8_0 0.005, Q6_K 0.018, Q5_K 0.036, Q5_1 0.038, Q5_0 0.043, Q4_K 0.071,
 * Q4_0 0.086). Awkward sizes: 1, 3, 7 and 13 super-blocks. */
static void test_round_trip_error(void) {
    static const struct {
        lg_dtype dtype;
        double max_rel_rmse;
    } bound[] = {{LG_DTYPE_Q8_0, 0.007}, {LG_DTYPE_Q6_K, 0.022}, {LG_DTYPE_Q5_K, 0.042},
                 {LG_DTYPE_Q5_1, 0.045}, {LG_DTYPE_Q5_0, 0.05},  {LG_DTYPE_Q4_K, 0.08},
                 {LG_DTYPE_Q4_0, 0.098}};
    const int sizes[] = {256, 3 * 256, 7 * 256, 13 * 256};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s];
        float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
        unsigned char *q = malloc((size_t)n * 2);
        for (int i = 0; i < n; i++)
            x[i] = gauss() * 0.02f;
        for (size_t k = 0; k < sizeof bound / sizeof bound[0]; k++) {
            lg_dtype t = bound[k].dtype;
            CHECK(lg_dtype_from_f32(t, x, q, n) == 0);
            lg_dtype_to_f32(t, q, y, n);
            double se = 0, sx = 0;
            for (int i = 0; i < n; i++)
                se += (y[i] - x[i]) * (double)(y[i] - x[i]), sx += (double)x[i] * x[i];
            double rel = sqrt(se / sx);
            CHECKF(rel < bound[k].max_rel_rmse, "%s n=%d: relative rmse %.4f >= %.4f",
                   lg_dtype_name(t), n, rel, bound[k].max_rel_rmse);
        }
        free(x), free(y), free(q);
    }
}

/* Q8_0 rounds each element to the nearest multiple of its block's scale: the
 * error is at most half a step plus what rounding the scale to float16 moved. */
static void test_q8_0_elementwise_bound(void) {
    enum { n = 32 * 11 };
    float x[n], y[n];
    lg_block_q8_0 q[n / 32];
    for (int i = 0; i < n; i++)
        x[i] = gauss() * (i < 32 ? 1e-3f : 3.0f);
    lg_quantize_row(LG_DTYPE_Q8_0, x, q, n);
    lg_dequantize_row(LG_DTYPE_Q8_0, q, y, n);
    for (int b = 0; b < n / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * b + j]));
        double d = amax / 127.0, d16 = lg_f16_to_f32(q[b].d);
        for (int j = 0; j < 32; j++) {
            double err = fabs((double)y[32 * b + j] - x[32 * b + j]);
            CHECKF(err <= 0.5 * d16 + 128 * fabs(d - d16) + 1e-12, "block %d elem %d err %g (d %g)",
                   b, j, err, d);
        }
    }
}

static void test_zero_and_constant_rows(void) {
    float x[512], y[512];
    unsigned char q[1024];
    for (size_t k = 0; k < N_QUANT; k++) {
        memset(x, 0, sizeof x);
        lg_dtype_from_f32(all_quant[k], x, q, 512);
        lg_dtype_to_f32(all_quant[k], q, y, 512);
        int ok = 1;
        for (int i = 0; i < 512; i++)
            ok &= y[i] == 0.0f;
        CHECKF(ok, "%s: zeros do not round-trip", lg_dtype_name(all_quant[k]));
        for (int i = 0; i < 512; i++)
            x[i] = 0.75f;
        lg_dtype_from_f32(all_quant[k], x, q, 512);
        lg_dtype_to_f32(all_quant[k], q, y, 512);
        double worst = 0;
        for (int i = 0; i < 512; i++)
            worst = fmax(worst, fabs(y[i] - 0.75));
        CHECKF(worst < 0.75 * 0.02, "%s: constant row error %g", lg_dtype_name(all_quant[k]),
               worst);
    }
}

static void test_dot_matches_dequantised_dot(void) {
    const int n = 5 * 256;
    float *x = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n),
          *w = malloc(sizeof(float) * n);
    unsigned char *q = malloc((size_t)n * 2);
    for (int i = 0; i < n; i++)
        w[i] = gauss(), v[i] = gauss();
    for (size_t k = 0; k < N_QUANT; k++) {
        lg_dtype t = all_quant[k];
        lg_quantize_row(t, w, q, n);
        lg_dequantize_row(t, q, x, n);
        double ref = 0, mag = 0;
        for (int i = 0; i < n; i++)
            ref += (double)x[i] * v[i], mag += fabs((double)x[i] * v[i]);
        float got = lg_quant_dot(t, q, v, n);
        CHECKF(fabs(got - ref) <= 1e-5 * mag, "%s: dot %g want %g", lg_dtype_name(t), got, ref);
    }
    free(x), free(v), free(w), free(q);
}

static void test_sizes_and_names(void) {
    CHECK(lg_dtype_block_elems(LG_DTYPE_Q8_0) == 32 && lg_dtype_block_elems(LG_DTYPE_Q6_K) == 256);
    CHECK(lg_dtype_block_elems(LG_DTYPE_BF16) == 1);
    CHECK(lg_dtype_row_bytes(LG_DTYPE_Q8_0, 64) == 68);
    CHECK(lg_dtype_row_bytes(LG_DTYPE_Q4_0, 32) == 18);
    CHECK(lg_dtype_row_bytes(LG_DTYPE_Q4_K, 512) == 288);
    CHECK(lg_dtype_row_bytes(LG_DTYPE_Q5_K, 256) == 176);
    CHECK(lg_dtype_row_bytes(LG_DTYPE_Q6_K, 2048) == 8 * 210);
    CHECK(lg_dtype_row_bytes(LG_DTYPE_Q4_K, 100) == 0); /* not whole blocks */
    CHECK(lg_dtype_row_bytes(LG_DTYPE_Q8_0, 48) == 0);
    CHECK(!strcmp(lg_dtype_name(LG_DTYPE_Q4_K), "Q4_K") &&
          !strcmp(lg_dtype_name(LG_DTYPE_Q5_1), "Q5_1"));
    CHECK(lg_dtype_is_quantized(LG_DTYPE_Q5_0) && !lg_dtype_is_quantized(LG_DTYPE_F16));
    float x[48] = {0};
    unsigned char q[64];
    CHECK(lg_dtype_from_f32(LG_DTYPE_Q8_0, x, q, 48) == -1); /* not whole blocks: refused */
    CHECK(lg_dtype_from_f32(LG_DTYPE_I32, x, q, 4) == -1);
}

static float f32_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f16_edges(void) {
    CHECK(lg_f32_to_f16(65504.0f) == 0x7bff);  /* largest finite */
    CHECK(lg_f32_to_f16(65519.99f) == 0x7bff); /* rounds down */
    CHECK(lg_f32_to_f16(65520.0f) == 0x7c00);  /* tie rounds to even = inf */
    CHECK(lg_f32_to_f16(1e9f) == 0x7c00);
    CHECK(lg_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(lg_f32_to_f16(-0.0f) == 0x8000);
    CHECK(lg_f32_to_f16(ldexpf(1, -24)) == 0x0001); /* smallest subnormal */
    CHECK(lg_f32_to_f16(ldexpf(1, -25)) == 0x0000); /* tie to even: zero */
    CHECK(lg_f32_to_f16(ldexpf(1.5f, -25)) == 0x0001);
    CHECK(lg_f32_to_f16(ldexpf(3, -25)) == 0x0002);        /* 1.5 ulp: tie to even = 2 */
    CHECK(lg_f32_to_f16(ldexpf(1023, -24)) == 0x03ff);     /* largest subnormal */
    CHECK(lg_f32_to_f16(ldexpf(1, -14)) == 0x0400);        /* smallest normal */
    CHECK(lg_f32_to_f16(ldexpf(2047, -25)) == 0x0400);     /* rounds up into the normals */
    CHECK(lg_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00); /* tie to even */
    CHECK(lg_f32_to_f16(1.0f + ldexpf(3, -11)) == 0x3c02);
    CHECK(lg_f32_to_f16(2047.5f) == 0x67ff + 1); /* 2047.5 ties up to 2048 (even) */
    uint16_t nan = lg_f32_to_f16(NAN);
    CHECK((nan & 0x7c00) == 0x7c00 && (nan & 0x03ff) != 0);
    CHECK(lg_f16_to_f32(0x0001) == ldexpf(1, -24));
    CHECK(lg_f16_to_f32(0x03ff) == ldexpf(1023, -24));
    CHECK(lg_f16_to_f32(0x8000) == 0.0f && signbit(lg_f16_to_f32(0x8000)));
    CHECK(lg_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(isinf(lg_f16_to_f32(0x7c00)) && isnan(lg_f16_to_f32(0x7e00)));
    CHECK(lg_f16_to_f32(0xc000) == -2.0f);
    int round_trip = 1; /* every finite f16 survives f16 -> f32 -> f16 */
    for (uint32_t h = 0; h < 0x10000; h++)
        if ((h & 0x7c00) != 0x7c00) round_trip &= lg_f32_to_f16(lg_f16_to_f32((uint16_t)h)) == h;
    CHECK(round_trip);
}

/* lg_dtype_from_f32 to F16 (8 at a time with F16C where the CPU has it)
 * equals lg_f32_to_f16 bit for bit: every f16 value, the ties and near-ties
 * between neighbours, random float bit patterns (NaNs and infinities among
 * them), a length that leaves a tail. */
static void test_f16_rows_match_scalar(void) {
    enum { N = 3 * 65536 + 4099 };
    float *x = malloc(sizeof(float) * N);
    uint16_t *h = malloc(sizeof(uint16_t) * N);
    uint64_t r = 0x2545F4914F6CDD1Dull;
    for (int i = 0; i < N; i++) {
        uint32_t u;
        if (i < 65536) { /* every f16, and half-way to its upper neighbour, +-1 ulp of float */
            float f = lg_f16_to_f32((uint16_t)i);
            memcpy(&u, &f, 4);
            u += (uint32_t)(i % 3) * 0x1000u - (i % 5 == 0);
        } else {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            u = (uint32_t)r;
        }
        memcpy(&x[i], &u, 4);
    }
    CHECK(lg_dtype_from_f32(LG_DTYPE_F16, x, h, N) == 0);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += h[i] != lg_f32_to_f16(x[i]);
    CHECKF(bad == 0, "%d of %d values differ from lg_f32_to_f16", bad, N);
    free(x), free(h);
}

static void test_bf16_edges(void) {
    CHECK(lg_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(lg_f32_to_bf16(f32_bits(0x3f808000u)) == 0x3f80); /* 1 + 2^-8: tie to even */
    CHECK(lg_f32_to_bf16(f32_bits(0x3f818000u)) == 0x3f82); /* tie to even, up */
    CHECK(lg_f32_to_bf16(f32_bits(0x3f808001u)) == 0x3f81); /* just above the tie */
    CHECK(lg_f32_to_bf16(f32_bits(0x7f7fffffu)) == 0x7f80); /* FLT_MAX rounds to inf */
    CHECK(lg_f32_to_bf16(-0.0f) == 0x8000);
    CHECK(lg_f32_to_bf16(f32_bits(0x00000001u)) == 0x0000); /* tiny subnormal to zero */
    uint16_t nan = lg_f32_to_bf16(f32_bits(0x7f800001u));   /* signalling NaN stays NaN */
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x007f) != 0);
    CHECK(lg_bf16_to_f32(0xc0a0) == -5.0f);
    CHECK(lg_bf16_to_f32(0x0001) == f32_bits(0x00010000u));
}

int main(void) {
    RUN(test_bytes_match_ggml);
    RUN(test_dequant_q8_0_q4_0_by_hand);
    RUN(test_dequant_q5_0_q5_1_by_hand);
    RUN(test_dequant_q4_K_q5_K_by_hand);
    RUN(test_dequant_q6_K_by_hand);
    RUN(test_round_trip_error);
    RUN(test_q8_0_elementwise_bound);
    RUN(test_zero_and_constant_rows);
    RUN(test_dot_matches_dequantised_dot);
    RUN(test_sizes_and_names);
    RUN(test_f16_edges);
    RUN(test_f16_rows_match_scalar);
    RUN(test_bf16_edges);
    return test_summary();
}
