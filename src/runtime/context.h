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
    int32_t *seq_rows, *seq_first, *seq_at; /* per sequence: rows in the call; first position and offset in a step */
    const int32_t **tables;
    int32_t *page_marks; /* laguna_seqs_exclusive_pages' scratch, one per pool page (made on first use) */
    laguna_observer observer;
    bool has_observer;
};

/* The KV type's storage dtype; -1 when unknown. */
int lg_kv_dtype(laguna_kv_type kv);

#endif
