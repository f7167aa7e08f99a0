/* The sparse MoE block's kernels: router, grouping of (token, expert) pairs
 * by expert, the experts' products, and the weighted combine.
 *
 * Every chosen expert runs once per batch on all its tokens: all experts'
 * (and the shared expert's) gate/up products share one dispatch to the
 * threads, then all down products another. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"

/* A prompt's rows are spread over the threads (lg_cpu_for_rows); each row's
 * arithmetic is the same wherever it runs. */
#define MIN_ROWS 4

typedef struct {
    const lg_router_args *a;
    float *logits, *weights;
    int32_t *ids;
} router_job;

static void router_rows(void *ctx, int r0, int r1) {
    const router_job *j = ctx;
    const lg_router_args *a = j->a;
    float *logits = j->logits, *weights = j->weights;
    int32_t *ids = j->ids;
    int E = a->n_experts, K = a->top_k;
    for (int t = r0; t < r1; t++) {
        float *score = logits + (size_t)t * E;
        int32_t *id = ids + (size_t)t * K;
        float *w = weights + (size_t)t * K;
        for (int e = 0; e < E; e++) {
            float x = score[e];
            if (a->softcap > 0) x = a->softcap * tanhf(x / a->softcap);
            score[e] = lg_sigmoid(x);
        }
        float sum = 0;
        for (int j = 0; j < K; j++) { /* ties keep the lower id, as torch.topk on CPU */
            int best = -1;
            float best_v = -INFINITY;
            for (int e = 0; e < E; e++) {
                bool taken = false;
                for (int i = 0; i < j; i++) taken |= id[i] == e;
                float v = score[e] + a->bias[e];
                if (!taken && (best < 0 || v > best_v)) best = e, best_v = v;
            }
            id[j] = best;
            w[j] = score[best];
            sum += score[best];
        }
        for (int j = 0; j < K; j++) w[j] /= sum;
    }
}

void lg_cpu_router(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n) {
    router_job j = {a, logits, weights, ids};
    lg_cpu_for_rows((lg_cpu_ctx *)c, n, MIN_ROWS, router_rows, &j);
}

typedef struct {
    const lg_moe_plan *plan;
    float *expert_in;
    const float *h;
    int top_k, hidden;
} group_job;

static void group_rows(void *ctx, int r0, int r1) {
    const group_job *j = ctx;
    size_t H = (size_t)j->hidden;
    for (int r = r0; r < r1; r++)
        memcpy(j->expert_in + (size_t)r * H, j->h + (size_t)(j->plan->rows[r] / j->top_k) * H, sizeof(float) * H);
}

void lg_cpu_moe_group(lg_backend_ctx *c, const lg_moe_plan *plan, float *expert_in, const float *h, const int32_t *ids,
                      int n, int top_k, int n_experts, int hidden) {
    int pairs = n * top_k;
    int32_t *off = plan->offsets;
    memset(off, 0, sizeof(int32_t) * (size_t)(n_experts + 1));
    for (int i = 0; i < pairs; i++) off[ids[i] + 1]++;
    for (int e = 0; e < n_experts; e++) off[e + 1] += off[e];
    /* stable counting sort: a token's pairs land in ascending expert order */
    for (int e = n_experts; e > 0; e--) off[e] = off[e - 1];
    for (int i = 0; i < pairs; i++) plan->rows[off[ids[i] + 1]++] = i;
    off[0] = 0;
    for (int r = 0; r < pairs; r++) plan->pair_rows[plan->rows[r]] = r;
    group_job j = {plan, expert_in, h, top_k, hidden};
    lg_cpu_for_rows((lg_cpu_ctx *)c, pairs, 4 * MIN_ROWS, group_rows, &j);
}

void lg_cpu_moe_experts(lg_backend_ctx *c, const lg_moe_args *a) {
    lg_cpu_ctx *k = (lg_cpu_ctx *)c;
    const int32_t *off = a->plan->offsets;
    int first, last, n_ops = 0;
    lg_moe_plan_experts(a->plan, a->n_experts, &first, &last); /* this device's experts */
    size_t I = (size_t)a->experts[first].gate.rows, H = (size_t)a->experts[first].gate.cols;
    lg_matmul_op *ops = k->ops; /* 2 * (E + 1) products, sized at ctx_new */
    /* One token (decode): each chosen expert's row is a copy of h (moe_group),
     * so they all read h itself, and matmul_many quantises it once for all of
     * them and the shared expert instead of once per expert. */
    bool one_token = a->n_tokens == 1;
    for (int e = first; e < last; e++) {
        int start = off[e], n = off[e + 1] - start;
        if (n == 0) continue;
        const float *x = one_token ? a->h : a->expert_in + start * H;
        ops[n_ops++] = (lg_matmul_op){a->act_gate + start * I, x, n, &a->experts[e].gate, NULL};
        ops[n_ops++] = (lg_matmul_op){a->act_up + start * I, x, n, &a->experts[e].up, NULL};
    }
    if (a->shared) {
        ops[n_ops++] = (lg_matmul_op){a->shared_gate, a->h, a->n_tokens, &a->shared->gate, NULL};
        ops[n_ops++] = (lg_matmul_op){a->shared_up, a->h, a->n_tokens, &a->shared->up, NULL};
    }
    lg_cpu_matmul_many(c, ops, n_ops);
    size_t lo = (size_t)off[first], hi = (size_t)off[last]; /* the grouped rows of those experts */
    lg_cpu_silu_mul(c, a->act_gate + lo * I, a->act_gate + lo * I, a->act_up + lo * I, (hi - lo) * I);
    if (a->shared)
        lg_cpu_silu_mul(c, a->shared_gate, a->shared_gate, a->shared_up, (size_t)a->n_tokens * a->shared->gate.rows);

    n_ops = 0;
    for (int e = first; e < last; e++) {
        int start = off[e], n = off[e + 1] - start;
        if (n > 0) ops[n_ops++] = (lg_matmul_op){a->expert_out + start * H, a->act_gate + start * I, n, &a->experts[e].down, NULL};
    }
    if (a->shared) ops[n_ops++] = (lg_matmul_op){a->shared_out, a->shared_gate, a->n_tokens, &a->shared->down, NULL};
    lg_cpu_matmul_many(c, ops, n_ops);
}

typedef struct {
    float *out;
    const lg_moe_plan *plan;
    const float *expert_out, *weights, *shared;
    int top_k, hidden, lo, hi;
    float scale;
} combine_job;

/* Token by token, each token's pairs in grouped order (ascending expert),
 * which is the order one pass over the grouped rows visits them in. */
static void combine_rows(void *ctx, int t0, int t1) {
    const combine_job *j = ctx;
    size_t H = (size_t)j->hidden;
    int K = j->top_k;
    for (int t = t0; t < t1; t++) {
        float *dst = j->out + (size_t)t * H;
        memset(dst, 0, sizeof(float) * H);
        /* the token's grouped rows in ascending order: the least above the last (top_k is small) */
        for (int last = -1;;) {
            int next = INT_MAX;
            for (int i = 0; i < K; i++) {
                int r = j->plan->pair_rows[t * K + i];
                if (r > last && r < next && r >= j->lo && r < j->hi) next = r; /* else another device's */
            }
            if (next == INT_MAX) break;
            float w = j->weights[j->plan->rows[next]];
            const float *src = j->expert_out + (size_t)next * H;
            for (size_t i = 0; i < H; i++) dst[i] += w * src[i];
            last = next;
        }
        for (size_t i = 0; i < H; i++) dst[i] *= j->scale;
        if (j->shared) {
            const float *sh = j->shared + (size_t)t * H;
            for (size_t i = 0; i < H; i++) dst[i] += sh[i];
        }
    }
}

void lg_cpu_moe_combine(lg_backend_ctx *c, float *out, const lg_moe_plan *plan, const float *expert_out,
                        const float *weights, const float *shared, int n, int top_k, int hidden, float scale) {
    bool all = plan->expert_begin == 0 && plan->expert_end == 0;
    int lo = all ? 0 : plan->offsets[plan->expert_begin], hi = all ? n * top_k : plan->offsets[plan->expert_end];
    combine_job j = {out, plan, expert_out, weights, shared, top_k, hidden, lo, hi, scale};
    lg_cpu_for_rows((lg_cpu_ctx *)c, n, MIN_ROWS, combine_rows, &j);
}
