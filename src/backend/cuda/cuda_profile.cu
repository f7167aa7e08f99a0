/* A developer's view of where a CUDA step's time goes: with
 * LAGUNA_CUDA_PROFILE=1 in the environment the backend's ops run through
 * wrappers that bracket each op with events on the context's stream; at
 * each sync the GPU time of every op is added to its name's total, and the
 * totals are written to stderr when the context is freed (the only output
 * the library makes, and only when asked for it this way). The GPU time
 * between one op's end and the next op's start is the host's share: time
 * the GPU waited for work to be issued. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

enum {
    P_EMBED, P_RMSNORM, P_ROPE, P_MATMUL, P_KV_WRITE, P_ATTENTION, P_GATE, P_SILU, P_ROUTER, P_GROUP, P_EXPERTS,
    P_COMBINE, P_ADD, P_GATHER, P_ADD_NORM, P_ATTN_INPUTS, P_ROUTE, P_COMBINE_NORM, P_COUNT
};
static const char *const op_names[P_COUNT] = {"embed", "rmsnorm", "rope", "matmul_many", "kv_write", "attention",
                                              "output_gate", "silu_mul", "router", "moe_group", "moe_experts",
                                              "moe_combine", "add", "gather_rows", "add_rmsnorm", "attn_inputs",
                                              "route", "combine_norm"};

struct lg_cuda_profile {
    cudaEvent_t *events; /* pairs: begin, end */
    int *ops;
    int n, cap;
    double op_ms[P_COUNT], gap_ms, step_ms;
    long op_calls[P_COUNT], steps;
};

static lg_cuda_profile *profile_of(lg_backend_ctx *c) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (!k->profile) k->profile = (lg_cuda_profile *)calloc(1, sizeof(lg_cuda_profile));
    return k->profile;
}

static void mark(lg_backend_ctx *c, int op, bool begin) {
    lg_cuda_profile *p = profile_of(c);
    if (!p) return;
    if (begin && p->n + 2 > p->cap) {
        int cap = p->cap ? 2 * p->cap : 4096;
        cudaEvent_t *ev = (cudaEvent_t *)realloc(p->events, sizeof *ev * (size_t)cap);
        if (ev) p->events = ev;
        int *ops = ev ? (int *)realloc(p->ops, sizeof *ops * (size_t)cap / 2) : NULL;
        if (!ev || !ops) return;
        p->ops = ops;
        for (int i = p->cap; i < cap; i++) cudaEventCreate(&p->events[i]);
        p->cap = cap;
    }
    if (begin) p->ops[p->n / 2] = op;
    if (p->n < p->cap) cudaEventRecord(p->events[p->n++], LG_CUDA_CTX(c)->stream);
}

/* After a sync: the step's events are complete. */
void lg_cuda_profile_collect(lg_cuda_ctx *k) {
    lg_cuda_profile *p = k->profile;
    if (!p || p->n < 2) return;
    int pairs = p->n / 2;
    for (int i = 0; i < pairs; i++) {
        float ms = 0;
        cudaEventElapsedTime(&ms, p->events[2 * i], p->events[2 * i + 1]);
        p->op_ms[p->ops[i]] += ms;
        p->op_calls[p->ops[i]]++;
        if (i + 1 < pairs && cudaEventElapsedTime(&ms, p->events[2 * i + 1], p->events[2 * i + 2]) == cudaSuccess)
            p->gap_ms += ms;
    }
    float ms = 0;
    cudaEventElapsedTime(&ms, p->events[0], p->events[p->n - 1]);
    p->step_ms += ms;
    p->steps++;
    p->n = 0;
}

void lg_cuda_profile_report(lg_cuda_ctx *k) {
    lg_cuda_profile *p = k->profile;
    if (!p) return;
    if (p->steps) {
        fprintf(stderr, "laguna cuda profile: %ld steps, %.3f ms of GPU time per step (first op to last)\n", p->steps,
                p->step_ms / p->steps);
        for (int i = 0; i < P_COUNT; i++)
            if (p->op_calls[i])
                fprintf(stderr, "  %-12s %9.3f ms/step %6.1f%% %8.1f calls/step %8.2f us/call\n", op_names[i],
                        p->op_ms[i] / p->steps, 100 * p->op_ms[i] / p->step_ms, (double)p->op_calls[i] / p->steps,
                        1000 * p->op_ms[i] / p->op_calls[i]);
        fprintf(stderr, "  %-12s %9.3f ms/step %6.1f%% (GPU idle between ops: issuing them)\n", "gaps",
                p->gap_ms / p->steps, 100 * p->gap_ms / p->step_ms);
    }
    for (int i = 0; i < p->cap; i++) cudaEventDestroy(p->events[i]);
    free(p->events);
    free(p->ops);
    free(p);
    k->profile = NULL;
}

/* timed<fn, op> has fn's signature: mark, call, mark. */
template <auto fn, int op, typename... A>
static void timed(lg_backend_ctx *c, A... a) {
    mark(c, op, true);
    fn(c, a...);
    mark(c, op, false);
}

extern "C++" void lg_cuda_profile_wrap(lg_backend_ops *o) {
    o->embed = timed<lg_cuda_embed, P_EMBED>;
    o->rmsnorm = timed<lg_cuda_rmsnorm, P_RMSNORM>;
    o->rope = timed<lg_cuda_rope, P_ROPE>;
    o->matmul_many = timed<lg_cuda_matmul_many, P_MATMUL>;
    o->kv_write = timed<lg_cuda_kv_write, P_KV_WRITE>;
    o->attention = timed<lg_cuda_attention, P_ATTENTION>;
    o->output_gate = timed<lg_cuda_output_gate, P_GATE>;
    o->silu_mul = timed<lg_cuda_silu_mul, P_SILU>;
    o->router = timed<lg_cuda_router, P_ROUTER>;
    o->moe_group = timed<lg_cuda_moe_group, P_GROUP>;
    o->moe_experts = timed<lg_cuda_moe_experts, P_EXPERTS>;
    o->moe_combine = timed<lg_cuda_moe_combine, P_COMBINE>;
    o->add = timed<lg_cuda_add, P_ADD>;
    o->gather_rows = timed<lg_cuda_gather_rows, P_GATHER>;
    o->add_rmsnorm = timed<lg_cuda_add_rmsnorm, P_ADD_NORM>;
    o->attention_inputs = timed<lg_cuda_attention_inputs, P_ATTN_INPUTS>;
    o->attention_gated = timed<lg_cuda_attention_gated, P_ATTENTION>; /* "attention": the gate is in it */
    o->moe_combine_add_rmsnorm = timed<lg_cuda_moe_combine_add_rmsnorm, P_COMBINE_NORM>;
    o->route = NULL; /* its fallback calls the (timed) router and moe_group: timings would nest */
}

/* LAGUNA_CUDA_SKIP=name,name or name+name (measuring only: the output is wrong): the
 * named ops do nothing in recorded steps (decoding), so a decode step's
 * time without them shows what they really cost in the pipelined graph,
 * which per-kernel timings of ops run alone cannot. Prefill steps are not
 * recorded and run everything, so the routing tables are valid. */
template <auto fn, typename... A>
static void skipped(lg_backend_ctx *c, A... a) {
    if (!lg_cuda_taping(LG_CUDA_CTX(c))) fn(c, a...);
}

static bool listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',' || p[-1] == '+') && (p[n] == ',' || p[n] == '+' || p[n] == 0)) return true;
    return false;
}

#define SKIP(field, fn, op) \
    if (listed(list, op_names[op])) o->field = skipped<fn>
extern "C++" void lg_cuda_skip_wrap(lg_backend_ops *o, const char *list) {
    SKIP(embed, lg_cuda_embed, P_EMBED);
    SKIP(rmsnorm, lg_cuda_rmsnorm, P_RMSNORM);
    SKIP(rope, lg_cuda_rope, P_ROPE);
    SKIP(matmul_many, lg_cuda_matmul_many, P_MATMUL);
    SKIP(kv_write, lg_cuda_kv_write, P_KV_WRITE);
    SKIP(attention, lg_cuda_attention, P_ATTENTION);
    SKIP(attention_gated, lg_cuda_attention_gated, P_ATTENTION);
    SKIP(output_gate, lg_cuda_output_gate, P_GATE);
    SKIP(silu_mul, lg_cuda_silu_mul, P_SILU);
    SKIP(router, lg_cuda_router, P_ROUTER);
    SKIP(moe_group, lg_cuda_moe_group, P_GROUP);
    SKIP(moe_experts, lg_cuda_moe_experts, P_EXPERTS);
    SKIP(moe_combine, lg_cuda_moe_combine, P_COMBINE);
    SKIP(add, lg_cuda_add, P_ADD);
    SKIP(gather_rows, lg_cuda_gather_rows, P_GATHER);
    SKIP(add_rmsnorm, lg_cuda_add_rmsnorm, P_ADD_NORM);
    SKIP(attention_inputs, lg_cuda_attention_inputs, P_ATTN_INPUTS);
    SKIP(route, lg_cuda_route, P_ROUTE);
    SKIP(moe_combine_add_rmsnorm, lg_cuda_moe_combine_add_rmsnorm, P_COMBINE_NORM);
}
#undef SKIP
