/* Causal grouped-query attention over cached key/value spans.
 *
 * One task per (query token, query head). Scores for the visible keys go to
 * the thread's scratch, then a max-subtracted softmax and the weighted sum of
 * values, all in float32. Query head h reads KV head h / (n_heads / n_kv).
 * Cached rows in another dtype (a half-size or 8-bit cache) are converted a
 * head at a time. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

typedef struct {
    lg_kernel_ctx *k;
    float *out;
    const float *q;
    int n_tokens, n_heads, n_kv_heads, head_dim, q_pos0, window;
    const lg_kv_span *spans;
    int n_spans;
    float scale;
} attention_job;

/* Head kv of row i of a span, as float32 (converted into tmp if needed). */
static const float *head_row(const void *base, const lg_kv_span *sp, int i, int kv, int hd, float *tmp) {
    const uint8_t *row = (const uint8_t *)base + (size_t)i * sp->stride_bytes;
    if (sp->dtype == LG_DTYPE_F32) return (const float *)row + (size_t)kv * hd;
    lg_dtype_to_f32(sp->dtype, row + lg_dtype_row_bytes(sp->dtype, (int64_t)kv * hd), tmp, hd);
    return tmp;
}

static void attention_task(void *ctx, int task, int thread) {
    const attention_job *j = ctx;
    int t = task / j->n_heads, h = task % j->n_heads;
    int kv = h / (j->n_heads / j->n_kv_heads), hd = j->head_dim;
    int pos = j->q_pos0 + t;
    int lo = j->window > 0 ? pos - j->window + 1 : 0;
    if (lo < 0) lo = 0;
    const float *q = j->q + ((size_t)t * j->n_heads + h) * hd;
    float *key_tmp = j->k->scratch[thread], *scores = key_tmp + hd;
    float *out = j->out + ((size_t)t * j->n_heads + h) * hd;

    float max = -INFINITY;
    for (int s = 0; s < j->n_spans; s++) {
        const lg_kv_span *sp = &j->spans[s];
        for (int i = 0; i < sp->n; i++) {
            int p = sp->first_pos + i;
            if (p < lo || p > pos) continue;
            const float *key = head_row(sp->k, sp, i, kv, hd, key_tmp);
            float d = 0;
#pragma omp simd reduction(+ : d)
            for (int e = 0; e < hd; e++) d += q[e] * key[e];
            d *= j->scale;
            scores[p - lo] = d;
            if (d > max) max = d;
        }
    }
    int n = pos - lo + 1;
    float sum = 0;
    for (int i = 0; i < n; i++) {
        scores[i] = expf(scores[i] - max);
        sum += scores[i];
    }
    float inv = 1.0f / sum;
    memset(out, 0, sizeof(float) * (size_t)hd);
    for (int s = 0; s < j->n_spans; s++) {
        const lg_kv_span *sp = &j->spans[s];
        for (int i = 0; i < sp->n; i++) {
            int p = sp->first_pos + i;
            if (p < lo || p > pos) continue;
            const float *val = head_row(sp->v, sp, i, kv, hd, key_tmp);
            float w = scores[p - lo] * inv;
#pragma omp simd
            for (int e = 0; e < hd; e++) out[e] += w * val[e];
        }
    }
}

void lg_attention(lg_kernel_ctx *k, float *out, const float *q, int n_tokens, int n_heads, int n_kv_heads, int head_dim,
                  int q_pos0, int window, const lg_kv_span *spans, int n_spans) {
    attention_job j = {k, out, q, n_tokens, n_heads, n_kv_heads, head_dim, q_pos0, window, spans, n_spans,
                       1.0f / sqrtf((float)head_dim)};
    lg_threadpool_run(k->pool, n_tokens * n_heads, attention_task, &j);
}
