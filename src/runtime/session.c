/* laguna_session: one sequence's KV cache, work buffers and last logits, and
 * the feed loop that splits a prompt into batches for the forward pass. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/forward.h"

#define DEFAULT_BATCH 512
#define MATMUL_ROWS_PER_TASK 16 /* must cover cpu_matmul.c's ROWS_PER_TASK */

struct laguna_session {
    laguna_model *model;
    int n_ctx, n_batch, n_past;
    lg_kv_cache cache;
    lg_activations act;
    lg_kernel_ctx kernels;
    float *logits;
    bool has_logits;
    laguna_observer observer;
    bool has_observer;
    int32_t *history; /* the tokens at positions [0, n_past): see "token history" below */
};

static int widest_matrix(const lg_config *c) {
    int w = c->hidden_size;
    int cols[] = {c->intermediate_size, c->moe_intermediate_size, c->shared_expert_intermediate_size};
    for (size_t i = 0; i < 3; i++)
        if (cols[i] > w) w = cols[i];
    for (int l = 0; l < c->n_layers; l++)
        if (c->n_heads[l] * c->head_dim > w) w = c->n_heads[l] * c->head_dim;
    return w;
}

laguna_status laguna_session_create(laguna_model *model, const laguna_session_options *options, laguna_session **out,
                                    laguna_error *err) {
    *out = NULL;
    if (!model) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no model");
    const lg_config *c = &model->cfg;
    int n_ctx = options && options->n_ctx ? options->n_ctx : c->max_position_embeddings;
    int n_batch = options && options->n_batch ? options->n_batch : DEFAULT_BATCH;
    if (n_ctx < 1 || n_ctx > c->max_position_embeddings)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "context length %d is outside [1, max_position_embeddings = %d]", n_ctx,
                       c->max_position_embeddings);
    if (n_batch < 1 || n_batch > 65536) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "batch size %d is outside [1, 65536]", n_batch);
    if (n_batch > n_ctx) n_batch = n_ctx;
    if (options && (options->n_rollback < 0 || options->n_rollback > n_ctx))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "rollback %d is outside [0, context length %d]", options->n_rollback, n_ctx);

    laguna_session *s = calloc(1, sizeof *s);
    if (!s) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    s->model = model;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    laguna_kv_type kv = options ? options->kv_type : LAGUNA_KV_F32;
    static const lg_dtype kv_dtypes[] = {LG_DTYPE_F32, LG_DTYPE_F16, LG_DTYPE_BF16, LG_DTYPE_Q8_0};
    lg_dtype kv_dtype = (unsigned)kv <= LAGUNA_KV_Q8_0 ? kv_dtypes[kv] : LG_DTYPE_F32;
    laguna_status st = (unsigned)kv > LAGUNA_KV_Q8_0 ? lg_fail(err, LAGUNA_ERR_ARGUMENT, "unknown KV cache type %d", (int)kv)
                                                      : lg_kv_cache_init(&s->cache, c, n_ctx, options ? options->n_rollback : 0, kv_dtype, err);
    if (!st) st = lg_activations_init(&s->act, c, n_batch, err);
    if (!st) {
        size_t scratch = (size_t)MATMUL_ROWS_PER_TASK * (size_t)widest_matrix(c);
        size_t attention = (size_t)n_ctx + 2 * (size_t)c->head_dim + 16; /* scores + a converted head */
        if (attention > scratch) scratch = attention;
        s->logits = malloc(sizeof(float) * (size_t)c->vocab_size);
        s->history = malloc(sizeof(int32_t) * (size_t)n_ctx);
        if (!s->logits || !s->history || lg_kernel_ctx_init(&s->kernels, model->pool, scratch))
            st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for session buffers");
    }
    if (st) {
        laguna_session_free(s);
        return st;
    }
    *out = s;
    return LAGUNA_OK;
}

void laguna_session_free(laguna_session *s) {
    if (!s) return;
    lg_kv_cache_free(&s->cache);
    lg_activations_free(&s->act);
    lg_kernel_ctx_free(&s->kernels);
    free(s->logits);
    free(s->history);
    free(s);
}

laguna_status laguna_session_feed(laguna_session *s, const int32_t *tokens, size_t n_tokens, float *all_logits,
                                  laguna_error *err) {
    const lg_config *c = &s->model->cfg;
    if (n_tokens == 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no tokens to feed (empty prompt)");
    if (!tokens) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "tokens is NULL");
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "token %d at index %zu is outside the vocabulary [0, %d)", tokens[i], i,
                           c->vocab_size);
    if (n_tokens > (size_t)(s->n_ctx - s->n_past))
        return lg_fail(err, LAGUNA_ERR_CONTEXT, "%zu more tokens do not fit: %d of the context's %d positions are used",
                       n_tokens, s->n_past, s->n_ctx);
    const laguna_observer *obs = s->has_observer ? &s->observer : NULL;
    for (size_t done = 0; done < n_tokens;) {
        int n = (int)(n_tokens - done < (size_t)s->n_batch ? n_tokens - done : (size_t)s->n_batch);
        bool last = done + (size_t)n == n_tokens;
        float *dst = all_logits ? all_logits + done * (size_t)c->vocab_size : last ? s->logits : NULL;
        lg_forward(s->model, &s->kernels, &s->act, &s->cache, tokens + done, n, s->n_past, dst, all_logits != NULL, obs);
        memcpy(s->history + s->n_past, tokens + done, sizeof(int32_t) * (size_t)n);
        if (last && all_logits)
            memcpy(s->logits, dst + (size_t)(n - 1) * c->vocab_size, sizeof(float) * (size_t)c->vocab_size);
        s->n_past += n;
        done += (size_t)n;
    }
    s->has_logits = true;
    return LAGUNA_OK;
}

const float *laguna_session_logits(const laguna_session *s) { return s->has_logits ? s->logits : NULL; }
int laguna_session_position(const laguna_session *s) { return s->n_past; }
int laguna_session_capacity(const laguna_session *s) { return s->n_ctx; }
size_t laguna_session_kv_bytes(const laguna_session *s) { return lg_kv_cache_bytes(&s->cache); }

laguna_status laguna_session_truncate(laguna_session *s, int n_keep, laguna_error *err) {
    if (n_keep < 0 || n_keep > s->n_past)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "cannot keep %d positions of %d", n_keep, s->n_past);
    if (!lg_kv_cache_rollback_ok(&s->cache, s->n_past, n_keep))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                       "cannot take back %d positions: sliding layers no longer hold the window before position %d "
                       "(raise the session's n_rollback)",
                       s->n_past - n_keep, n_keep);
    if (n_keep < s->n_past) s->has_logits = false; /* they belonged to a position now gone */
    s->n_past = n_keep;
    return LAGUNA_OK;
}

void laguna_session_reset(laguna_session *s) {
    s->n_past = 0;
    s->has_logits = false;
}

/* ---- token history ----
 * history[i] is the token at position i, written by feed. Truncate and reset
 * cut it by moving n_past, so it needs no code of its own there. */
const int32_t *laguna_session_tokens(const laguna_session *s, int *n) {
    if (n) *n = s->n_past;
    return s->history;
}

const laguna_model *laguna_session_model(const laguna_session *s) { return s->model; }

void laguna_session_set_observer(laguna_session *s, const laguna_observer *observer) {
    s->has_observer = observer != NULL;
    if (observer) s->observer = *observer;
}

int laguna_kv_type_from_name(const char *name) {
    if (!strcmp(name, "f32")) return LAGUNA_KV_F32;
    if (!strcmp(name, "f16")) return LAGUNA_KV_F16;
    if (!strcmp(name, "bf16")) return LAGUNA_KV_BF16;
    if (!strcmp(name, "q8_0")) return LAGUNA_KV_Q8_0;
    return -1;
}
