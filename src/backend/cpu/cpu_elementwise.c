/* Row-wise and element-wise kernels: embedding rows, RMSNorm, RoPE, the
 * output gate, activations, residual adds, row gathers. Each row is computed
 * the same way whatever else is in the batch; a prompt's rows are spread over
 * the threads (lg_cpu_for_rows), a decode row runs on the caller. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/quant_dot.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define SILU_VECTOR_EXP 1 /* glibc's libmvec (linked by the Makefile on x86-64) */
#include <immintrin.h>
#else
#define SILU_VECTOR_EXP 0
#endif

float lg_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

float lg_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* Rows per block below which a row-wise op stays on one thread: a block
 * should be worth a hand-off to another thread (a few microseconds). */
#define MIN_ROWS 4
/* Element-wise ops (silu, add) are cut into "rows" of this many values. */
#define SPAN 4096

typedef struct {
    float *x;
    const lg_matrix *table;
    const int32_t *tokens;
} embed_job;

static void embed_rows(void *ctx, int r0, int r1) {
    const embed_job *j = ctx;
    for (int t = r0; t < r1; t++)
        lg_dtype_to_f32(j->table->dtype, lg_matrix_row(j->table, j->tokens[t]), j->x + (size_t)t * j->table->cols,
                        j->table->cols);
}

void lg_cpu_embed(lg_backend_ctx *c, float *x, const lg_matrix *table, const int32_t *tokens, int n) {
    embed_job j = {x, table, tokens};
    lg_cpu_for_rows((lg_cpu_ctx *)c, n, MIN_ROWS, embed_rows, &j);
}

typedef struct {
    float *y;
    const float *x, *weight;
    int n;
    float eps;
} rmsnorm_job;

static void rmsnorm_rows(void *ctx, int r0, int r1) {
    const rmsnorm_job *j = ctx;
    int n = j->n;
    for (int r = r0; r < r1; r++) {
        const float *xr = j->x + (size_t)r * n;
        float *yr = j->y + (size_t)r * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / n + j->eps));
        for (int i = 0; i < n; i++) yr[i] = xr[i] * inv * j->weight[i];
    }
}

void lg_cpu_rmsnorm(lg_backend_ctx *c, float *y, const float *x, const float *weight, int n_rows, int n, float eps) {
    rmsnorm_job j = {y, x, weight, n, eps};
    /* q and k heads come as many short rows (a decode row's 64 heads of 128
     * stay on this thread): blocks of at least MIN_ROWS * 2048 values */
    int min_rows = n < 2048 ? MIN_ROWS * (2048 / n) : MIN_ROWS;
    lg_cpu_for_rows((lg_cpu_ctx *)c, n_rows, min_rows, rmsnorm_rows, &j);
}

typedef struct {
    float *rows;
    int n_heads, head_dim, n_rot;
    const float *inv_freq;
    float scale;
    const int32_t *pos;
} rope_job;

static void rope_rows(void *ctx, int r0, int r1) {
    const rope_job *j = ctx;
    int half = j->n_rot / 2, n_heads = j->n_heads, head_dim = j->head_dim;
    const float *inv_freq = j->inv_freq;
    float *rows = j->rows, scale = j->scale;
    const int32_t *pos = j->pos;
    for (int t = r0; t < r1; t++) {
        for (int i = 0; i < half; i++) {
            /* transformers forms the angle in float32: pos * inv_freq */
            float angle = (float)pos[t] * inv_freq[i];
            float co = cosf(angle) * scale, si = sinf(angle) * scale;
            for (int h = 0; h < n_heads; h++) {
                float *v = rows + ((size_t)t * n_heads + h) * head_dim;
                float a = v[i], b = v[i + half];
                v[i] = a * co - b * si;
                v[i + half] = b * co + a * si;
            }
        }
    }
}

void lg_cpu_rope(lg_backend_ctx *c, float *rows, int n_rows, int n_heads, int head_dim, int n_rot, const float *inv_freq,
                 float scale, const int32_t *pos) {
    rope_job j = {rows, n_heads, head_dim, n_rot, inv_freq, scale, pos};
    lg_cpu_for_rows((lg_cpu_ctx *)c, n_rows, MIN_ROWS, rope_rows, &j);
}

typedef struct {
    float *attn;
    const float *gate;
    int n_heads, head_dim;
    bool per_head;
} gate_job;

static void gate_rows(void *ctx, int r0, int r1) {
    const gate_job *j = ctx;
    int n_heads = j->n_heads, head_dim = j->head_dim;
    size_t width = (size_t)n_heads * head_dim;
    for (int t = r0; t < r1; t++) {
        float *attn = j->attn;
        const float *gate = j->gate;
        bool per_head = j->per_head;
        float *o = attn + (size_t)t * width;
        if (per_head) {
            const float *g = gate + (size_t)t * n_heads;
            for (int h = 0; h < n_heads; h++) {
                float s = lg_softplus(g[h]);
                for (int e = 0; e < head_dim; e++) o[h * head_dim + e] *= s;
            }
        } else {
            const float *g = gate + (size_t)t * width;
            for (size_t e = 0; e < width; e++) o[e] *= lg_softplus(g[e]);
        }
    }
}

void lg_cpu_output_gate(lg_backend_ctx *c, float *attn, const float *gate, int n_rows, int n_heads, int head_dim,
                        bool per_head) {
    gate_job j = {attn, gate, n_heads, head_dim, per_head};
    lg_cpu_for_rows((lg_cpu_ctx *)c, n_rows, MIN_ROWS, gate_rows, &j);
}

typedef struct {
    float *out;
    const float *a, *b;
    size_t n;
} span_job;

/* silu(gate) * up = gate / (1 + exp(-gate)) * up. Where the kernels run
 * with AVX-512 or AVX2 the exp is glibc's vector expf (libmvec, within 4 ulp;
 * scalar expf cost ~9 ns a value, 3-7% of a prefill), on every value: a last
 * part-vector goes through a padded copy, so a value's result does not depend
 * on where it sits (batch invariance). Scalar expf otherwise. */
#if SILU_VECTOR_EXP
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512 x);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256 x);

__attribute__((target("avx512f"))) static void silu16(float *out, const float *gate, const float *up) {
    __m512 g = _mm512_loadu_ps(gate), e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), _mm512_loadu_ps(up)));
}

__attribute__((target("avx2,fma"))) static void silu8(float *out, const float *gate, const float *up) {
    __m256 g = _mm256_loadu_ps(gate), e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), _mm256_loadu_ps(up)));
}
#endif

static void silu_run(float *out, const float *gate, const float *up, size_t n) {
#if SILU_VECTOR_EXP
    lg_isa isa = lg_qgemm_isa_best();
    size_t w = isa == LG_ISA_AVX512_VNNI ? 16 : isa == LG_ISA_AVX2 ? 8 : 0;
    if (w) {
        void (*vec)(float *, const float *, const float *) = w == 16 ? silu16 : silu8;
        size_t i = 0;
        for (; i + w <= n; i += w) vec(out + i, gate + i, up + i);
        if (i < n) { /* the last part-vector, padded */
            float g[16] = {0}, u[16] = {0}, o[16];
            memcpy(g, gate + i, sizeof(float) * (n - i));
            memcpy(u, up + i, sizeof(float) * (n - i));
            vec(o, g, u);
            memcpy(out + i, o, sizeof(float) * (n - i));
        }
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void silu_spans(void *ctx, int s0, int s1) {
    const span_job *j = ctx;
    size_t i0 = (size_t)s0 * SPAN, i1 = (size_t)s1 * SPAN < j->n ? (size_t)s1 * SPAN : j->n;
    silu_run(j->out + i0, j->a + i0, j->b + i0, i1 - i0);
}

void lg_cpu_silu_mul(lg_backend_ctx *c, float *out, const float *gate, const float *up, size_t n) {
    span_job j = {out, gate, up, n};
    lg_cpu_for_rows((lg_cpu_ctx *)c, (int)((n + SPAN - 1) / SPAN), MIN_ROWS, silu_spans, &j);
}

static void add_spans(void *ctx, int s0, int s1) {
    const span_job *j = ctx;
    size_t i1 = (size_t)s1 * SPAN < j->n ? (size_t)s1 * SPAN : j->n;
    float *x = j->out;
    const float *y = j->a;
    for (size_t i = (size_t)s0 * SPAN; i < i1; i++) x[i] += y[i];
}

void lg_cpu_add(lg_backend_ctx *c, float *x, const float *y, size_t n) {
    span_job j = {x, y, NULL, n};
    lg_cpu_for_rows((lg_cpu_ctx *)c, (int)((n + SPAN - 1) / SPAN), MIN_ROWS, add_spans, &j);
}

void lg_cpu_gather_rows(lg_backend_ctx *c, float *dst, const float *src, const int32_t *rows, int n, int width) {
    (void)c;
    for (int i = 0; i < n; i++)
        memmove(dst + (size_t)i * width, src + (size_t)rows[i] * width, sizeof(float) * (size_t)width);
}
