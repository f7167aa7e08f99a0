/* Backends by name. */
#include "backend/backend.h"

#include <stdlib.h>
#include <string.h>

#include "core/argmax.h"
#include "core/error.h"

laguna_status lg_backend_create(const char *name, int n_threads, lg_backend **out, laguna_error *err) {
    *out = NULL;
    if (!name || !strcmp(name, "cpu")) *out = lg_cpu_backend_new(n_threads);
    else if (!strcmp(name, "reference")) *out = lg_reference_backend_new();
    else if (!strncmp(name, "cuda", 4) && (name[4] == 0 || name[4] == ':')) {
#ifdef LAGUNA_CUDA
        char *end = NULL;
        long dev = name[4] ? strtol(name + 5, &end, 10) : 0;
        if (name[4] && (end == name + 5 || *end || dev < 0 || dev > 255))
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "bad device '%s' (cuda or cuda:N)", name);
        *out = lg_cuda_backend_new((int)dev, err);
        return *out ? LAGUNA_OK : LAGUNA_ERR_UNSUPPORTED;
#else
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "device '%s': this build has no CUDA backend (nvcc was not found when it was built)", name);
#endif
    } else
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "unknown device '%s' (cpu, cuda[:N] or reference)", name);
    return *out ? LAGUNA_OK : lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory starting the %s backend", name ? name : "cpu");
}

laguna_status lg_backend_check_top_k(const lg_backend *be, int top_k, laguna_error *err) {
    int most = be->ops->max_experts_per_token;
    if (most && top_k > most)
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "num_experts_per_tok is %d; the %s backend takes at most %d", top_k,
                       be->ops->name, most);
    return LAGUNA_OK;
}

void lg_backend_destroy(lg_backend *be) {
    if (be) be->ops->destroy(be);
}

void lg_backend_add_rmsnorm_by_parts(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w, int n_rows,
                                     int n, float eps) {
    const lg_backend_ops *o = c->backend->ops;
    o->add(c, x, y, (size_t)n_rows * n);
    o->rmsnorm(c, h, x, w, n_rows, n, eps);
}

void lg_backend_add_rmsnorm_matmul_by_parts(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w,
                                            int n_rows, int n, float eps, const lg_matmul_op *op) {
    const lg_backend_ops *o = c->backend->ops;
    if (o->add_rmsnorm) o->add_rmsnorm(c, x, y, h, w, n_rows, n, eps);
    else lg_backend_add_rmsnorm_by_parts(c, x, y, h, w, n_rows, n, eps);
    o->matmul_many(c, op, 1);
}

void lg_backend_attention_inputs_by_parts(lg_backend_ctx *c, const lg_attention_inputs_args *a) {
    const lg_backend_ops *o = c->backend->ops;
    o->rmsnorm(c, a->q, a->q, a->q_norm, a->n_rows * a->n_heads, a->head_dim, a->eps);
    o->rmsnorm(c, a->k, a->k, a->k_norm, a->n_rows * a->n_kv_heads, a->head_dim, a->eps);
    o->rope(c, a->q, a->n_rows, a->n_heads, a->head_dim, a->n_rot, a->inv_freq, a->rope_scale, a->pos);
    o->rope(c, a->k, a->n_rows, a->n_kv_heads, a->head_dim, a->n_rot, a->inv_freq, a->rope_scale, a->pos);
    o->kv_write(c, a->pool, &a->write, a->k, a->v);
}

void lg_backend_moe_combine_add_rmsnorm_by_parts(lg_backend_ctx *c, const lg_combine_norm_args *a) {
    const lg_backend_ops *o = c->backend->ops;
    o->moe_combine(c, a->out, a->plan, a->expert_out, a->weights, a->shared, a->n, a->top_k, a->hidden, a->scale);
    if (o->add_rmsnorm) o->add_rmsnorm(c, a->x, a->out, a->h, a->norm, a->n, a->hidden, a->eps);
    else lg_backend_add_rmsnorm_by_parts(c, a->x, a->out, a->h, a->norm, a->n, a->hidden, a->eps);
}

void lg_backend_route_by_parts(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights,
                               int n, const lg_moe_plan *plan, float *expert_in, const float *h, int hidden) {
    const lg_backend_ops *o = c->backend->ops;
    o->router(c, a, logits, ids, weights, n);
    o->moe_group(c, plan, expert_in, h, ids, n, a->top_k, a->n_experts, hidden);
}

void lg_backend_argmax_rows_by_parts(lg_backend_ctx *c, int32_t *host_out, const float *logits,
                                     int n_rows, int n_cols, float *host_scratch) {
    const lg_backend_ops *o = c->backend->ops;
    const float *rows = logits;
    if (!o->host_memory) {
        o->to_host(c, host_scratch, logits, sizeof(float) * (size_t)n_rows * (size_t)n_cols);
        rows = host_scratch;
    }
    lg_argmax_rows_f32(host_out, rows, n_rows, n_cols);
}
