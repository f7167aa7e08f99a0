/* laguna_session: a context of one sequence, with the tokens it holds and
 * the logits of the last one (or, after a greedy feed, its greedy token
 * alone); feeds split prompts into steps of n_batch. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/context.h"
#include "runtime/session.h"

struct laguna_session {
    laguna_context *ctx;
    int seq, n_ctx, n_batch;
    int32_t *tokens; /* the n_pos tokens held */
    laguna_batch_row *rows;
    int32_t *row_argmax; /* [n_batch]: laguna_context_decode_argmax's output */
    float *logits;
    bool has_logits;
    int32_t greedy; /* after laguna_session_feed_greedy: the greedy token after the last fed one;
                       else -1 */
    /* queued greedy steps (laguna_session_next_greedy): the outstanding ones'
     * tokens as they arrive, a ring kept in step with the context's own (its
     * n_queued steps from its queued_head); whether greedy is still one of
     * them (the oldest's); whether the newest feeds greedy ahead of the
     * caller, at position ahead_pos */
    int32_t queued[2];
    bool pending, ahead;
    int ahead_pos;
};

static laguna_status settle(laguna_session *s, laguna_error *err);

laguna_status laguna_session_create(laguna_model *model, const laguna_session_options *options, laguna_session **out,
                                    laguna_error *err) {
    *out = NULL;
    if (!model) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no model");
    const lg_config *c = &model->cfg;
    laguna_context_options co = {
        .n_seq_max = 1,
        .n_ctx = options ? options->n_ctx : 0,
        .n_batch = options ? options->n_batch : 0,
        .kv_type = options ? options->kv_type : LAGUNA_KV_AUTO,
        .n_rollback = options ? options->n_rollback : 0,
    };
    int n_ctx = co.n_ctx ? co.n_ctx : c->max_position_embeddings;
    if (co.n_batch > n_ctx && n_ctx > 0) co.n_batch = n_ctx; /* no step is longer than the context */
    laguna_session *s = calloc(1, sizeof *s);
    if (!s) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = laguna_context_create(model, &co, &s->ctx, err);
    if (!st) st = laguna_seq_add(s->ctx, &s->seq, err);
    if (!st) {
        s->n_ctx = s->ctx->n_ctx;
        s->n_batch = s->ctx->n_batch;
        s->tokens = malloc(sizeof(int32_t) * (size_t)s->n_ctx);
        s->rows = malloc(sizeof(laguna_batch_row) * (size_t)s->n_batch);
        s->row_argmax = malloc(sizeof(int32_t) * (size_t)s->n_batch);
        s->logits = malloc(sizeof(float) * (size_t)c->vocab_size);
        s->greedy = -1;
        if (!s->tokens || !s->rows || !s->row_argmax || !s->logits)
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
    if (s->ctx) settle(s, NULL); /* (none when its creation failed) */
    laguna_context_free(s->ctx);
    free(s->tokens);
    free(s->rows);
    free(s->row_argmax);
    free(s->logits);
    free(s);
}

/* ---- queued greedy steps ------------------------------------------------------ */

/* The oldest outstanding step's token (into greedy when it is that one). */
static laguna_status collect(laguna_session *s, laguna_error *err) {
    int oldest = s->ctx->queued_head;
    laguna_status st = laguna_context_wait(s->ctx, err);
    if (s->pending) s->greedy = st ? -1 : s->queued[oldest];
    s->pending = false;
    return st;
}

/* Queues a step feeding token (a literal, or LAGUNA_TOKEN_OF_ROW(0)) at the
 * sequence's next position. */
static laguna_status queue_step(laguna_session *s, int32_t token, laguna_error *err) {
    int pos = laguna_seq_length(s->ctx, s->seq);
    laguna_batch_row row = {token, pos, s->seq, LAGUNA_ROW_ARGMAX};
    int32_t *out = &s->queued[(s->ctx->queued_head + s->ctx->n_queued) % 2]; /* the context's next entry */
    return laguna_context_decode_argmax_queued(s->ctx, &row, 1, out, err);
}

/* Everything queued collected, and a step queued ahead and not fed taken
 * back: the session holds what it was fed, greedy the token after it. */
static laguna_status settle(laguna_session *s, laguna_error *err) {
    laguna_status st = LAGUNA_OK;
    while (s->ctx->n_queued) {
        laguna_status c = collect(s, st ? NULL : err);
        if (!st) st = c;
    }
    if (s->ahead) {
        s->ahead = false;
        laguna_status t = laguna_seq_truncate(s->ctx, s->seq, s->ahead_pos, st ? NULL : err);
        if (!st) st = t;
    }
    return st;
}

laguna_status laguna_session_next_greedy(laguna_session *s, int ahead, int32_t *next, laguna_error *err) {
    if (!next) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "next is NULL");
    *next = -1;
    if (s->greedy < 0 && !s->pending)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no greedy token: feed with laguna_session_feed_greedy first");
    laguna_status st;
    int pos = laguna_seq_length(s->ctx, s->seq);
    if (ahead && !s->ahead && pos < s->n_ctx) {
        /* the token is the step before's greedy choice, on the device while pending */
        if ((st = queue_step(s, s->pending ? LAGUNA_TOKEN_OF_ROW(0) : s->greedy, err))) return st;
        s->ahead = true;
        s->ahead_pos = pos;
    }
    if (s->pending && (st = collect(s, err))) return st;
    *next = s->greedy;
    return LAGUNA_OK;
}

laguna_status laguna_session_feed_next_greedy(laguna_session *s, int32_t token, laguna_error *err) {
    laguna_status st;
    if (s->ahead && !s->pending && token == s->greedy) { /* the step queued ahead fed it: take it as fed */
        s->ahead = false;
        s->tokens[s->ahead_pos] = token;
    } else {
        if ((st = settle(s, err))) return st;
        const lg_config *c = &s->ctx->model->cfg;
        if (token < 0 || token >= c->vocab_size)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "token %d is outside the vocabulary [0, %d)", token, c->vocab_size);
        int pos = laguna_seq_length(s->ctx, s->seq);
        if (pos >= s->n_ctx)
            return lg_fail(err, LAGUNA_ERR_CONTEXT, "1 more token does not fit: %d of the context's %d positions are used",
                           pos, s->n_ctx);
        if ((st = queue_step(s, token, err))) return st;
        s->tokens[pos] = token;
    }
    s->pending = true;
    s->has_logits = false;
    s->greedy = -1;
    return LAGUNA_OK;
}

laguna_status lg_session_settle(laguna_session *s, laguna_error *err) { return settle(s, err); }

/* ---- feeding ---------------------------------------------------------------- */

/* Feeds tokens; the last one's logits are kept, or with next its greedy
 * token alone (found where the logits are: on the device for a GPU); with
 * all_argmax every token's greedy successor, next being the last of them. */
static laguna_status feed(laguna_session *s, const int32_t *tokens, size_t n_tokens,
                          float *all_logits, int32_t *all_argmax, int32_t *next, laguna_error *err) {
    laguna_status settled = settle(s, err);
    if (settled) return settled;
    const lg_config *c = &s->ctx->model->cfg;
    int n_past = laguna_seq_length(s->ctx, s->seq);
    if (n_tokens == 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no tokens to feed (empty prompt)");
    if (!tokens) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "tokens is NULL");
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "token %d at index %zu is outside the vocabulary [0, %d)", tokens[i], i,
                           c->vocab_size);
    if (n_tokens > (size_t)(s->n_ctx - n_past))
        return lg_fail(err, LAGUNA_ERR_CONTEXT, "%zu more tokens do not fit: %d of the context's %d positions are used",
                       n_tokens, n_past, s->n_ctx);
    size_t V = (size_t)c->vocab_size;
    for (size_t done = 0; done < n_tokens;) {
        int n = (int)(n_tokens - done < (size_t)s->n_batch ? n_tokens - done : (size_t)s->n_batch);
        bool last = done + (size_t)n == n_tokens;
        int32_t last_wants = next ? LAGUNA_ROW_ARGMAX : LAGUNA_ROW_LOGITS;
        for (int i = 0; i < n; i++) {
            int32_t wants = (all_logits ? LAGUNA_ROW_LOGITS : 0) |
                            (all_argmax ? LAGUNA_ROW_ARGMAX : 0) |
                            (last && i == n - 1 ? last_wants : 0);
            s->rows[i] = (laguna_batch_row){tokens[done + i], n_past + i, s->seq, wants};
        }
        float *dst = all_logits ? all_logits + done * V : last && !next ? s->logits : NULL;
        laguna_status st =
            laguna_context_decode_argmax(s->ctx, s->rows, n, dst, s->row_argmax, err);
        if (st) return st;
        memcpy(s->tokens + n_past, tokens + done, sizeof(int32_t) * (size_t)n);
        if (last && all_logits && !next)
            memcpy(s->logits, dst + (size_t)(n - 1) * V, sizeof(float) * V);
        if (all_argmax) memcpy(all_argmax + done, s->row_argmax, sizeof(int32_t) * (size_t)n);
        if (last && next) *next = s->row_argmax[n - 1];
        n_past += n;
        done += (size_t)n;
    }
    s->has_logits = !next;
    s->greedy = next ? *next : -1;
    return LAGUNA_OK;
}

laguna_status laguna_session_feed(laguna_session *s, const int32_t *tokens, size_t n_tokens,
                                  float *all_logits, laguna_error *err) {
    return feed(s, tokens, n_tokens, all_logits, NULL, NULL, err);
}

laguna_status laguna_session_feed_greedy(laguna_session *s, const int32_t *tokens, size_t n_tokens,
                                         int32_t *next, laguna_error *err) {
    if (!next) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "next is NULL");
    return feed(s, tokens, n_tokens, NULL, NULL, next, err);
}

laguna_status lg_session_feed_argmax_all(laguna_session *s, const int32_t *tokens, size_t n_tokens,
                                         int32_t *next, laguna_error *err) {
    if (!next) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "next is NULL");
    int32_t last;
    return feed(s, tokens, n_tokens, NULL, next, &last, err);
}

int32_t lg_session_greedy_token(const laguna_session *s) {
    return s->greedy;
}

const float *laguna_session_logits(const laguna_session *s) { return s->has_logits ? s->logits : NULL; }
/* (a step queued ahead and not yet fed does not count) */
int laguna_session_position(const laguna_session *s) { return laguna_seq_length(s->ctx, s->seq) - (s->ahead ? 1 : 0); }
int laguna_session_capacity(const laguna_session *s) { return s->n_ctx; }

size_t laguna_session_kv_bytes(const laguna_session *s) {
    const laguna_context *x = s->ctx->ranks ? s->ctx->ranks[0] : s->ctx; /* several devices: what each holds */
    return (size_t)lg_kv_seq_pages(&x->seqs[s->seq], x->model->cfg.n_layers) * x->pool.view.page_bytes;
}

const laguna_model *laguna_session_model(const laguna_session *s) { return s->ctx->model; }

const int32_t *laguna_session_tokens(const laguna_session *s, int *n) {
    if (n) *n = laguna_session_position(s);
    return s->tokens;
}

laguna_status laguna_session_truncate(laguna_session *s, int n_keep, laguna_error *err) {
    laguna_status settled = settle(s, err);
    if (settled) return settled;
    int n_past = laguna_session_position(s);
    laguna_status st = laguna_seq_truncate(s->ctx, s->seq, n_keep, err);
    if (!st && n_keep < n_past) { /* they belonged to a position now gone */
        s->has_logits = false;
        s->greedy = -1;
    }
    return st;
}

void laguna_session_reset(laguna_session *s) {
    settle(s, NULL);
    laguna_seq_remove(s->ctx, s->seq);
    laguna_seq_add(s->ctx, &s->seq, NULL); /* the slot just freed: cannot fail */
    s->has_logits = false;
    s->greedy = -1;
}

void laguna_session_set_observer(laguna_session *s, const laguna_observer *observer) {
    laguna_context_set_observer(s->ctx, observer);
}

int laguna_kv_type_from_name(const char *name) {
    if (!strcmp(name, "auto")) return LAGUNA_KV_AUTO;
    if (!strcmp(name, "f32")) return LAGUNA_KV_F32;
    if (!strcmp(name, "f16")) return LAGUNA_KV_F16;
    if (!strcmp(name, "bf16")) return LAGUNA_KV_BF16;
    if (!strcmp(name, "q8_0")) return LAGUNA_KV_Q8_0;
    return -1;
}

const char *laguna_kv_type_name(laguna_kv_type type) {
    static const char *const names[] = {"auto", "f32", "f16", "bf16", "q8_0"};
    return (unsigned)type <= LAGUNA_KV_Q8_0 ? names[type] : "?";
}
