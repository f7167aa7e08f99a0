/* The reference backend: every op written as plainly as possible, one thread,
 * double accumulation, no tricks. It is the yardstick the other backends are
 * tested against op by op, and it runs whole models (slowly), which shows the
 * forward pass needs nothing but the ops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/reference/ref_kernels.h"

static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }
static double softplus_d(double x) { return x > 20.0 ? x : log1p(exp(x)); }

static void *ref_alloc(lg_backend *be, size_t bytes) {
    (void)be;
    return calloc(1, bytes ? bytes : 1);
}
static void ref_free(lg_backend *be, void *buf, size_t bytes) {
    (void)be, (void)bytes;
    free(buf);
}
static const void *ref_adopt_weights(lg_backend *be, const void *host, size_t bytes) {
    (void)be, (void)bytes;
    return host;
}
static lg_backend_ctx *ref_ctx_new(lg_backend *be, const lg_ctx_sizes *sizes) {
    (void)sizes;
    lg_backend_ctx *c = calloc(1, sizeof *c);
    if (c) c->backend = be;
    return c;
}
static void ref_ctx_free(lg_backend_ctx *c) { free(c); }
static void ref_copy(lg_backend_ctx *c, void *dst, const void *src, size_t bytes) {
    (void)c;
    memmove(dst, src, bytes);
}

static void ref_embed(lg_backend_ctx *c, float *x, const lg_matrix *table, const int32_t *tokens, int n) {
    (void)c;
    for (int t = 0; t < n; t++)
        lg_dtype_to_f32(table->dtype, lg_matrix_row(table, tokens[t]), x + (size_t)t * table->cols, table->cols);
}

static void ref_rmsnorm(lg_backend_ctx *c, float *y, const float *x, const float *w, int n_rows, int n, float eps) {
    (void)c;
    for (int r = 0; r < n_rows; r++) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)x[(size_t)r * n + i] * x[(size_t)r * n + i];
        double inv = 1.0 / sqrt(ss / n + eps);
        for (int i = 0; i < n; i++) y[(size_t)r * n + i] = (float)(x[(size_t)r * n + i] * inv * w[i]);
    }
}

static void ref_rope(lg_backend_ctx *c, float *rows, int n_rows, int n_heads, int head_dim, int n_rot,
                     const float *inv_freq, float scale, const int32_t *pos) {
    (void)c;
    int half = n_rot / 2;
    for (int t = 0; t < n_rows; t++)
        for (int h = 0; h < n_heads; h++) {
            float *v = rows + ((size_t)t * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                double angle = (double)((float)pos[t] * inv_freq[i]); /* the angle is formed in float32 */
                double a = v[i], b = v[i + half], co = cos(angle) * scale, si = sin(angle) * scale;
                v[i] = (float)(a * co - b * si);
                v[i + half] = (float)(b * co + a * si);
            }
        }
}

static void ref_matmul_many(lg_backend_ctx *c, const lg_matmul_op *ops, int n_ops) {
    (void)c;
    for (int i = 0; i < n_ops; i++)
        if (ops[i].n_tokens > 0) lg_ref_matmul(ops[i].y, ops[i].x, ops[i].n_tokens, ops[i].w, ops[i].bias);
}

static uint8_t *pool_row(const lg_kv_pool_view *pool, const int32_t *table, int p, int which) {
    return pool->base + (size_t)table[p / pool->page_size] * pool->page_bytes +
           ((size_t)which * pool->page_size + (size_t)(p % pool->page_size)) * pool->row_bytes;
}

static void ref_kv_write(lg_backend_ctx *c, const lg_kv_pool_view *pool, const lg_kv_write_args *a, const float *k,
                         const float *v) {
    (void)c;
    for (int r = 0; r < a->n_rows; r++) {
        int32_t page = a->slots[r] / pool->page_size, at = a->slots[r] % pool->page_size;
        const int32_t table[1] = {page};
        lg_dtype_from_f32(pool->dtype, k + (size_t)r * pool->row_floats, pool_row(pool, table, at, 0), pool->row_floats);
        lg_dtype_from_f32(pool->dtype, v + (size_t)r * pool->row_floats, pool_row(pool, table, at, 1), pool->row_floats);
    }
}

/* Each row: its visible positions gathered to float32, then lg_ref_attention. */
static void ref_attention(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                          const lg_attention_args *a) {
    (void)c;
    size_t width = (size_t)a->n_kv_heads * a->head_dim;
    for (int r = 0; r < a->n_rows; r++) {
        int pos = a->pos[r], lo = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0, n = pos - lo + 1;
        float *keys = malloc(sizeof(float) * width * (size_t)n), *values = malloc(sizeof(float) * width * (size_t)n);
        if (keys && values) {
            for (int p = lo; p <= pos; p++) {
                float *kd = keys + (size_t)(p - lo) * width, *vd = values + (size_t)(p - lo) * width;
                if (p >= a->fresh_from[r]) { /* computed in this step: the exact rows */
                    int row = a->fresh_rows[a->fresh_at[r] + p - a->fresh_from[r]];
                    memcpy(kd, a->fresh_k + (size_t)row * width, sizeof(float) * width);
                    memcpy(vd, a->fresh_v + (size_t)row * width, sizeof(float) * width);
                    continue;
                }
                lg_dtype_to_f32(pool->dtype, pool_row(pool, a->tables[r], p, 0), kd, (int64_t)width);
                lg_dtype_to_f32(pool->dtype, pool_row(pool, a->tables[r], p, 1), vd, (int64_t)width);
            }
            size_t q_width = (size_t)a->n_heads * a->head_dim;
            lg_ref_attention(out + (size_t)r * q_width, q + (size_t)r * q_width, 1, a->n_heads, a->n_kv_heads, a->head_dim,
                             n - 1, 0, keys, values, n);
        }
        free(keys);
        free(values);
    }
}

static void ref_output_gate(lg_backend_ctx *c, float *attn, const float *gate, int n_rows, int n_heads, int head_dim,
                            bool per_head) {
    (void)c;
    size_t width = (size_t)n_heads * head_dim;
    for (int t = 0; t < n_rows; t++)
        for (size_t e = 0; e < width; e++) {
            float g = per_head ? gate[(size_t)t * n_heads + e / (size_t)head_dim] : gate[(size_t)t * width + e];
            attn[(size_t)t * width + e] = (float)(attn[(size_t)t * width + e] * softplus_d(g));
        }
}

static void ref_silu_mul(lg_backend_ctx *c, float *out, const float *gate, const float *up, size_t n) {
    (void)c;
    for (size_t i = 0; i < n; i++) out[i] = (float)(gate[i] * sigmoid_d(gate[i]) * up[i]);
}

static void ref_router(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n) {
    (void)c;
    for (int t = 0; t < n; t++) {
        float *s = logits + (size_t)t * a->n_experts;
        for (int e = 0; e < a->n_experts; e++)
            s[e] = (float)sigmoid_d(a->softcap > 0 ? a->softcap * tanh(s[e] / a->softcap) : s[e]);
        double sum = 0;
        for (int j = 0; j < a->top_k; j++) {
            int best = -1;
            for (int e = 0; e < a->n_experts; e++) {
                int taken = 0;
                for (int i = 0; i < j; i++) taken |= ids[(size_t)t * a->top_k + i] == e;
                if (!taken && (best < 0 || s[e] + a->bias[e] > s[best] + a->bias[best])) best = e;
            }
            ids[(size_t)t * a->top_k + j] = best;
            sum += s[best];
        }
        for (int j = 0; j < a->top_k; j++)
            weights[(size_t)t * a->top_k + j] = (float)(s[ids[(size_t)t * a->top_k + j]] / sum);
    }
}

static void ref_moe_group(lg_backend_ctx *c, const lg_moe_plan *plan, float *expert_in, const float *h,
                          const int32_t *ids, int n, int top_k, int n_experts, int hidden) {
    (void)c;
    int r = 0;
    for (int e = 0; e < n_experts; e++) {
        plan->offsets[e] = r;
        for (int i = 0; i < n * top_k; i++)
            if (ids[i] == e) {
                memcpy(expert_in + (size_t)r * hidden, h + (size_t)(i / top_k) * hidden, sizeof(float) * (size_t)hidden);
                plan->pair_rows[i] = r;
                plan->rows[r++] = i;
            }
    }
    plan->offsets[n_experts] = r;
}

/* out rows = down(silu(gate x) * up x), one row at a time */
static void swiglu_rows(const lg_swiglu_weights *w, float *out, const float *x, float *g, float *u, int n) {
    lg_ref_matmul(g, x, n, &w->gate, NULL);
    lg_ref_matmul(u, x, n, &w->up, NULL);
    ref_silu_mul(NULL, g, g, u, (size_t)n * w->gate.rows);
    lg_ref_matmul(out, g, n, &w->down, NULL);
}

static void ref_moe_experts(lg_backend_ctx *c, const lg_moe_args *a) {
    (void)c;
    int first, last;
    lg_moe_plan_experts(a->plan, a->n_experts, &first, &last);
    size_t I = (size_t)a->experts[first].gate.rows, H = (size_t)a->experts[first].gate.cols;
    for (int e = first; e < last; e++) {
        int start = a->plan->offsets[e], n = a->plan->offsets[e + 1] - start;
        if (n > 0)
            swiglu_rows(&a->experts[e], a->expert_out + start * H, a->expert_in + start * H, a->act_gate + start * I,
                        a->act_up + start * I, n);
    }
    if (a->shared) swiglu_rows(a->shared, a->shared_out, a->h, a->shared_gate, a->shared_up, a->n_tokens);
}

static void ref_moe_combine(lg_backend_ctx *c, float *out, const lg_moe_plan *plan, const float *expert_out,
                            const float *weights, const float *shared, int n, int top_k, int hidden, float scale) {
    (void)c;
    bool all = plan->expert_begin == 0 && plan->expert_end == 0;
    int lo = all ? 0 : plan->offsets[plan->expert_begin], hi = all ? n * top_k : plan->offsets[plan->expert_end];
    for (int t = 0; t < n; t++)
        for (int i = 0; i < hidden; i++) {
            double s = 0;
            for (int r = lo; r < hi; r++)
                if (plan->rows[r] / top_k == t) s += (double)weights[plan->rows[r]] * expert_out[(size_t)r * hidden + i];
            out[(size_t)t * hidden + i] = (float)(s * scale + (shared ? shared[(size_t)t * hidden + i] : 0.0));
        }
}

static void ref_add(lg_backend_ctx *c, float *x, const float *y, size_t n) {
    (void)c;
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void ref_gather_rows(lg_backend_ctx *c, float *dst, const float *src, const int32_t *rows, int n, int width) {
    (void)c;
    for (int i = 0; i < n; i++) memmove(dst + (size_t)i * width, src + (size_t)rows[i] * width, sizeof(float) * (size_t)width);
}

static void ref_destroy(lg_backend *be) { free(be); }

static const lg_backend_ops ref_ops = {
    .name = "reference",
    .host_memory = true,
    .destroy = ref_destroy,
    .alloc = ref_alloc,
    .free = ref_free,
    .adopt_weights = ref_adopt_weights,
    .ctx_new = ref_ctx_new,
    .ctx_free = ref_ctx_free,
    .to_host = ref_copy,
    .copy = ref_copy,
    .embed = ref_embed,
    .rmsnorm = ref_rmsnorm,
    .rope = ref_rope,
    .matmul_many = ref_matmul_many,
    .kv_write = ref_kv_write,
    .attention = ref_attention,
    .output_gate = ref_output_gate,
    .silu_mul = ref_silu_mul,
    .router = ref_router,
    .moe_group = ref_moe_group,
    .moe_experts = ref_moe_experts,
    .moe_combine = ref_moe_combine,
    .add = ref_add,
    .gather_rows = ref_gather_rows,
};

lg_backend *lg_reference_backend_new(void) {
    lg_backend *be = calloc(1, sizeof *be);
    if (!be) return NULL;
    be->ops = &ref_ops;
    be->n_threads = 1;
    return be;
}
