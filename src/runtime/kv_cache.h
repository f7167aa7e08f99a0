/* Per-layer key/value cache of one sequence.
 *
 * Global layers keep one slot per position up to the session's context
 * length. Sliding layers only ever read the last sliding_window positions, so
 * they keep a ring of exactly that many slots (position p lives in slot
 * p % window): their memory does not grow with the context. Every layer
 * stores n_kv_heads * head_dim floats per slot for keys and for values. */
#ifndef LAGUNA_RUNTIME_KV_CACHE_H
#define LAGUNA_RUNTIME_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "model/config.h"

typedef struct {
    int capacity;    /* slots */
    bool ring;       /* sliding layer */
    int window;      /* positions a query sees (sliding layers) */
    uint8_t *k, *v;  /* [capacity][row_bytes] */
} lg_kv_layer;

typedef struct {
    int n_layers;
    int row_floats;   /* n_kv_heads * head_dim */
    lg_dtype dtype;   /* storage of cached keys and values */
    size_t row_bytes; /* one position's keys (or values) in dtype */
    lg_kv_layer *layers;
} lg_kv_cache;

/* dtype: F32, BF16 or F16 (or a block type whose block divides head_dim).
 * rollback: positions beyond the window that sliding rings keep, so that
 * up to that many positions can be taken back. */
laguna_status lg_kv_cache_init(lg_kv_cache *c, const lg_config *cfg, int n_ctx, int rollback, lg_dtype dtype,
                               laguna_error *err);

/* Whether a cache holding positions [0, n_stored) can go back to n_keep. */
bool lg_kv_cache_rollback_ok(const lg_kv_cache *c, int n_stored, int n_keep);
void lg_kv_cache_free(lg_kv_cache *c);
size_t lg_kv_cache_bytes(const lg_kv_cache *c);

/* Bytes of a cache of n_ctx positions for this config: global layers grow
 * with n_ctx, sliding layers are fixed. */
size_t lg_kv_cache_bytes_for(const lg_config *cfg, int n_ctx, lg_dtype dtype);

/* Spans of the cached positions [first, n_stored) of layer l (at most 2). */
int lg_kv_cache_spans(const lg_kv_cache *c, int l, int first, int n_stored, lg_kv_span spans[2]);

/* Stores rows for positions pos0 .. pos0+n-1 (a ring keeps only its last capacity). */
void lg_kv_cache_store(lg_kv_cache *c, int l, int pos0, const float *k_rows, const float *v_rows, int n);

#endif
