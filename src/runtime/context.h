/* laguna_context internals shared with the session wrapper. */
#ifndef LAGUNA_RUNTIME_CONTEXT_H
#define LAGUNA_RUNTIME_CONTEXT_H

#include "model/forward.h"
#include "runtime/kv_pages.h"

struct laguna_context {
    laguna_model *model;
    lg_backend_ctx *bc;
    int n_seq_max, n_ctx, n_batch, keep; /* keep: positions sliding layers hold behind the end */
    lg_kv_pool pool;
    lg_kv_seq *seqs;
    bool *seq_used;
    lg_activations act;
    /* one step's host-side description (capacity n_batch rows) */
    int32_t *tokens, *pos, *slots, *logit_rows, *fresh_from, *fresh_at, *fresh_rows;
    int32_t *argmax_rows, *step_argmax; /* rows wanting only their greedy token, and those tokens */
    int32_t *seq_rows, *seq_first, *seq_at; /* per sequence: rows in the call; first position and offset in a step */
    const int32_t **tables;
    int32_t *page_marks; /* laguna_seqs_exclusive_pages' scratch, one per pool page (made on first use) */
    laguna_observer observer;
    bool has_observer;
    /* queued greedy steps (laguna_context_decode_argmax_queued): outstanding
     * ones; rows of the last step when it was queued (0: it was not), which
     * LAGUNA_TOKEN_OF_ROW may name; its tokens, where the step ran at once */
    int n_queued, queued_rows;
    bool queued_device[2]; /* the outstanding steps, oldest at queued_head: whether the backend has it */
    int queued_head;
    const int32_t *queued_argmax;  /* that step's argmax (the caller's) */
    laguna_batch_row *queued_call; /* [n_batch]: a queued call's rows with named tokens put in */
    /* A model on several devices: one context per rank, which hold the KV
     * cache and run the steps (src/parallel/group_context.c); the fields
     * above other than model, n_seq_max, n_ctx and n_batch are then unused. */
    laguna_context **ranks;
    float *rank_logits; /* where ranks other than 0 put the logits they gather */
    size_t rank_logits_floats;
    int32_t *rank_argmax; /* where ranks other than 0 put the greedy tokens (each computes them) */
    size_t rank_argmax_n;
};

/* One decode call: its rows, where their logits and greedy tokens go (host),
 * and how the rows' `logits` field reads. */
typedef struct {
    const laguna_batch_row *rows;
    int n;
    float *logits;   /* [rows wanting logits][vocab] */
    int32_t *argmax; /* [n] or NULL */
    bool flags; /* `logits` holds LAGUNA_ROW_* flags (laguna_context_decode_argmax); else nonzero =
                   logits */
    int named_rows; /* rows of the step before that LAGUNA_TOKEN_OF_ROW may name (a queued call) */
    bool queued;    /* the backend queues the step (queue_argmax): every row wants its token alone,
                       which reaches argmax by laguna_context_wait */
    int keep_more;  /* positions the sequences keep behind their window beyond the context's */
} lg_decode_call;

/* What row i of the call wants, as LAGUNA_ROW_* flags. */
static inline int lg_row_wants(const lg_decode_call *c, int i) {
    int32_t v = c->rows[i].logits;
    return c->flags ? (int)v : v ? LAGUNA_ROW_LOGITS : 0;
}

/* laguna_context_decode(_argmax) in its two halves: checking the rows and
 * taking their pages (nothing has run when it fails), then running them. */
laguna_status lg_context_decode_prepare(laguna_context *x, const lg_decode_call *call,
                                        laguna_error *err);
laguna_status lg_context_decode_run(laguna_context *x, const lg_decode_call *call,
                                    laguna_error *err);

/* Several devices (group_context.c): the ranks' contexts, made with the
 * checked options d; freeing them; a decode on all ranks at once. */
laguna_status lg_group_context_create(laguna_context *x, const laguna_context_options *d, laguna_error *err);
void lg_group_context_free(laguna_context *x);
laguna_status lg_group_decode(laguna_context *x, const lg_decode_call *call, laguna_error *err);

/* The KV type's storage dtype; -1 when unknown. */
int lg_kv_dtype(laguna_kv_type kv);

#endif
