/* Causal grouped-query attention over the paged KV pool, and KV writes.
 *
 * One task per (query row, query head). Scores for the visible keys go to
 * the thread's scratch, then a max-subtracted softmax and the weighted sum of
 * values, all in float32, positions in ascending order whatever the batch,
 * so a row's result does not depend on rows of other sequences. Query head h reads
 * KV head h / (n_heads / n_kv). Cached rows in another dtype (a half-size or
 * 8-bit cache) are converted a head at a time. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"

typedef struct {
    lg_cpu_ctx *k;
    const lg_kv_pool_view *pool;
    float *out;
    const float *q;
    const lg_attention_args *a;
    float scale;
} attention_job;

/* Head kv of the key (which = 0) or value (1) row of position p for query
 * row r, as float32 (converted into tmp when the pool stores another dtype). */
static const float *kv_head(const lg_kv_pool_view *pool, const lg_attention_args *a, int r, int p, int which, int kv,
                            float *tmp) {
    int hd = a->head_dim;
    if (p >= a->fresh_from[r]) {
        int row = a->fresh_rows[a->fresh_at[r] + p - a->fresh_from[r]];
        return (which ? a->fresh_v : a->fresh_k) + ((size_t)row * a->n_kv_heads + kv) * hd;
    }
    const int32_t *table = a->tables[r];
    const uint8_t *row = pool->base + (size_t)table[p / pool->page_size] * pool->page_bytes +
                         ((size_t)which * pool->page_size + (size_t)(p % pool->page_size)) * pool->row_bytes;
    if (pool->dtype == LG_DTYPE_F32) return (const float *)row + (size_t)kv * hd;
    lg_dtype_to_f32(pool->dtype, row + lg_dtype_row_bytes(pool->dtype, (int64_t)kv * hd), tmp, hd);
    return tmp;
}

static void attention_task(void *ctx, int task, int thread) {
    const attention_job *j = ctx;
    const lg_attention_args *a = j->a;
    int r = task / a->n_heads, h = task % a->n_heads;
    int kv = h / (a->n_heads / a->n_kv_heads), hd = a->head_dim;
    int pos = a->pos[r];
    int lo = a->window > 0 ? pos - a->window + 1 : 0;
    if (lo < 0) lo = 0;
    const float *q = j->q + ((size_t)r * a->n_heads + h) * hd;
    float *tmp = j->k->scratch[thread], *scores = tmp + hd;
    float *out = j->out + ((size_t)r * a->n_heads + h) * hd;

    float max = -INFINITY;
    for (int p = lo; p <= pos; p++) {
        const float *key = kv_head(j->pool, a, r, p, 0, kv, tmp);
        float d = 0;
#pragma omp simd reduction(+ : d)
        for (int e = 0; e < hd; e++) d += q[e] * key[e];
        d *= j->scale;
        scores[p - lo] = d;
        if (d > max) max = d;
    }
    int n = pos - lo + 1;
    float sum = 0;
    for (int i = 0; i < n; i++) {
        scores[i] = expf(scores[i] - max);
        sum += scores[i];
    }
    float inv = 1.0f / sum;
    memset(out, 0, sizeof(float) * (size_t)hd);
    for (int p = lo; p <= pos; p++) {
        const float *val = kv_head(j->pool, a, r, p, 1, kv, tmp);
        float w = scores[p - lo] * inv;
#pragma omp simd
        for (int e = 0; e < hd; e++) out[e] += w * val[e];
    }
}

void lg_cpu_attention(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                      const lg_attention_args *a) {
    lg_cpu_ctx *k = (lg_cpu_ctx *)c;
    attention_job j = {k, pool, out, q, a, 1.0f / sqrtf((float)a->head_dim)};
    lg_threadpool_run(k->pool, a->n_rows * a->n_heads, attention_task, &j);
}

void lg_cpu_kv_write(lg_backend_ctx *c, const lg_kv_pool_view *pool, const lg_kv_write_args *a, const float *k,
                     const float *v) {
    (void)c;
    size_t n = (size_t)pool->row_floats;
    for (int r = 0; r < a->n_rows; r++) {
        int32_t slot = a->slots[r];
        uint8_t *kdst = pool->base + (size_t)(slot / pool->page_size) * pool->page_bytes +
                        (size_t)(slot % pool->page_size) * pool->row_bytes;
        lg_dtype_from_f32(pool->dtype, k + (size_t)r * n, kdst, (int64_t)n);
        lg_dtype_from_f32(pool->dtype, v + (size_t)r * n, kdst + (size_t)pool->page_size * pool->row_bytes, (int64_t)n);
    }
}
