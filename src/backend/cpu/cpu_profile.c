/* A developer's view of where a CPU step's time goes: with
 * LAGUNA_CPU_PROFILE=1 in the environment the backend's ops run through
 * wrappers that time each call (wall clock, on the calling thread, which
 * waits for the pool's loops), and the totals per op are written to stderr
 * when the context is freed (the only output the library makes, and only
 * when asked for it this way), as LAGUNA_CUDA_PROFILE does for the GPU.
 * Products are split into the lm_head (a single product of more than 32768
 * rows) and the rest, each with the weight bytes it read per second; "host"
 * is the time between ops (the caller's own work: sampling, bookkeeping).
 * The first step of each kind is left out: it pays the first touches of the
 * step's buffers (pages faulted in and zeroed), which made a short run's
 * experts look twice as slow as they are (docs/performance.md). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend/cpu/cpu_kernels.h"

enum {
    P_EMBED,
    P_RMSNORM,
    P_ROPE,
    P_MATMUL,
    P_LM_HEAD,
    P_KV_WRITE,
    P_ATTENTION,
    P_GATE,
    P_SILU,
    P_ROUTER,
    P_GROUP,
    P_EXPERTS,
    P_COMBINE,
    P_ADD,
    P_GATHER,
    P_COUNT
};
static const char *const op_names[P_COUNT] = {
    "embed",     "rmsnorm",     "rope",        "matmul_many", "lm_head",
    "kv_write",  "attention",   "output_gate", "silu_mul",    "router",
    "moe_group", "moe_experts", "moe_combine", "add",         "gather_rows"};

typedef struct {
    double s[P_COUNT], bytes[P_COUNT];
    long calls[P_COUNT], steps, skipped;
    double host_s; /* time outside ops */
} table;

/* Steps of one row (decode) and of several (prefill, batches) apart. */
struct lg_cpu_profile {
    table t[2];
    int many;     /* the current step has several rows */
    int skipping; /* the current step is the first of its kind: not counted */
    double last_end;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double begin(lg_backend_ctx *c) {
    lg_cpu_ctx *k = (lg_cpu_ctx *)c;
    double t = now_s();
    if (!k->profile) k->profile = calloc(1, sizeof *k->profile);
    if (k->profile && k->profile->last_end > 0 && !k->profile->skipping)
        k->profile->t[k->profile->many].host_s += t - k->profile->last_end;
    return t;
}

static void end(lg_backend_ctx *c, int op, double t0, double bytes) {
    lg_cpu_profile *p = ((lg_cpu_ctx *)c)->profile;
    if (!p) return;
    p->last_end = now_s();
    if (p->skipping) return;
    table *t = &p->t[p->many];
    t->s[op] += p->last_end - t0;
    t->bytes[op] += bytes;
    t->calls[op]++;
}

static double weight_bytes(const lg_matmul_op *ops, int n) {
    double b = 0;
    for (int i = 0; i < n; i++)
        if (ops[i].n_tokens > 0) b += (double)ops[i].w->rows * (double)ops[i].w->row_bytes;
    return b;
}

static void report(const table *p, const char *what) {
    if (p->steps) {
        double total = p->host_s;
        for (int i = 0; i < P_COUNT; i++)
            total += p->s[i];
        fprintf(stderr, "laguna cpu profile: %ld steps of %s (after the first), %.3f ms per step\n",
                p->steps, what, 1e3 * total / p->steps);
        for (int i = 0; i < P_COUNT; i++) {
            if (!p->calls[i]) continue;
            fprintf(stderr, "  %-12s %9.3f ms/step %6.1f%% %7.1f calls/step %9.2f us/call",
                    op_names[i], 1e3 * p->s[i] / p->steps, 100 * p->s[i] / total,
                    (double)p->calls[i] / p->steps, 1e6 * p->s[i] / p->calls[i]);
            if (p->bytes[i] > 0)
                fprintf(stderr, " %6.1f GB/s of weights", p->bytes[i] / p->s[i] * 1e-9);
            fputc('\n', stderr);
        }
        fprintf(stderr, "  %-12s %9.3f ms/step %6.1f%% (between ops)\n", "host",
                1e3 * p->host_s / p->steps, 100 * p->host_s / total);
    }
}

void lg_cpu_profile_report(lg_cpu_ctx *k) {
    lg_cpu_profile *p = k->profile;
    if (!p) return;
    report(&p->t[0], "one row");
    report(&p->t[1], "several rows");
    free(p);
    k->profile = NULL;
}

#define ARGS(...) __VA_ARGS__
#define TIMED(name, op, params, call, bytes)                                                       \
    static void name params {                                                                      \
        double t0 = begin(c);                                                                      \
        call;                                                                                      \
        end(c, op, t0, bytes);                                                                     \
    }

/* a step starts with embed: its row count picks the table */
static void p_embed(lg_backend_ctx *c, float *x, const lg_matrix *t, const int32_t *tok, int n) {
    double t0 = begin(c);
    lg_cpu_profile *p = ((lg_cpu_ctx *)c)->profile;
    if (p) {
        table *t = &p->t[p->many = n > 1];
        p->skipping = t->skipped == 0;
        if (p->skipping)
            t->skipped++;
        else
            t->steps++;
    }
    lg_cpu_embed(c, x, t, tok, n);
    end(c, P_EMBED, t0, 0);
}
TIMED(p_rmsnorm, P_RMSNORM,
      (lg_backend_ctx * c, float *y, const float *x, const float *w, int r, int n, float e),
      lg_cpu_rmsnorm(c, y, x, w, r, n, e), 0)
TIMED(p_rope, P_ROPE,
      (lg_backend_ctx * c, float *rows, int nr, int nh, int hd, int rot, const float *f, float s,
       const int32_t *pos),
      lg_cpu_rope(c, rows, nr, nh, hd, rot, f, s, pos), 0)
TIMED(p_kv_write, P_KV_WRITE,
      (lg_backend_ctx * c, const lg_kv_pool_view *pool, const lg_kv_write_args *a, const float *k,
       const float *v),
      lg_cpu_kv_write(c, pool, a, k, v), 0)
TIMED(p_attention, P_ATTENTION,
      (lg_backend_ctx * c, const lg_kv_pool_view *pool, float *out, const float *q,
       const lg_attention_args *a),
      lg_cpu_attention(c, pool, out, q, a), 0)
TIMED(p_gate, P_GATE,
      (lg_backend_ctx * c, float *attn, const float *g, int nr, int nh, int hd, bool ph),
      lg_cpu_output_gate(c, attn, g, nr, nh, hd, ph), 0)
TIMED(p_silu, P_SILU, (lg_backend_ctx * c, float *out, const float *g, const float *u, size_t n),
      lg_cpu_silu_mul(c, out, g, u, n), 0)
TIMED(p_router, P_ROUTER,
      (lg_backend_ctx * c, const lg_router_args *a, float *l, int32_t *ids, float *w, int n),
      lg_cpu_router(c, a, l, ids, w, n), 0)
TIMED(p_group, P_GROUP,
      (lg_backend_ctx * c, const lg_moe_plan *plan, float *in, const float *h, const int32_t *ids,
       int n, int k, int e, int hid),
      lg_cpu_moe_group(c, plan, in, h, ids, n, k, e, hid), 0)
TIMED(p_combine, P_COMBINE,
      (lg_backend_ctx * c, float *out, const lg_moe_plan *plan, const float *eo, const float *w,
       const float *sh, int n, int k, int hid, float s),
      lg_cpu_moe_combine(c, out, plan, eo, w, sh, n, k, hid, s), 0)
TIMED(p_add, P_ADD, (lg_backend_ctx * c, float *x, const float *y, size_t n),
      lg_cpu_add(c, x, y, n), 0)
TIMED(p_gather, P_GATHER,
      (lg_backend_ctx * c, float *d, const float *s, const int32_t *rows, int n, int w),
      lg_cpu_gather_rows(c, d, s, rows, n, w), 0)

static void p_matmul(lg_backend_ctx *c, const lg_matmul_op *ops, int n) {
    double t0 = begin(c);
    lg_cpu_matmul_many(c, ops, n);
    end(c, n == 1 && ops[0].w->rows > 32768 ? P_LM_HEAD : P_MATMUL, t0, weight_bytes(ops, n));
}

/* the experts' weights read: those of experts with rows, and the shared expert */
static void p_experts(lg_backend_ctx *c, const lg_moe_args *a) {
    double t0 = begin(c), bytes = 0;
    int first, last;
    lg_moe_plan_experts(a->plan, a->n_experts, &first, &last);
    for (int e = first; e < last; e++)
        if (a->plan->offsets[e + 1] > a->plan->offsets[e]) {
            const lg_swiglu_weights *w = &a->experts[e];
            bytes += (double)w->gate.rows * w->gate.row_bytes +
                     (double)w->up.rows * w->up.row_bytes +
                     (double)w->down.rows * w->down.row_bytes;
        }
    if (a->shared)
        bytes += (double)a->shared->gate.rows * a->shared->gate.row_bytes +
                 (double)a->shared->up.rows * a->shared->up.row_bytes +
                 (double)a->shared->down.rows * a->shared->down.row_bytes;
    lg_cpu_moe_experts(c, a);
    end(c, P_EXPERTS, t0, bytes);
}

void lg_cpu_profile_wrap(lg_backend_ops *o) {
    o->embed = p_embed;
    o->rmsnorm = p_rmsnorm;
    o->rope = p_rope;
    o->matmul_many = p_matmul;
    o->kv_write = p_kv_write;
    o->attention = p_attention;
    o->output_gate = p_gate;
    o->silu_mul = p_silu;
    o->router = p_router;
    o->moe_group = p_group;
    o->moe_experts = p_experts;
    o->moe_combine = p_combine;
    o->add = p_add;
    o->gather_rows = p_gather;
}
