/* KV cache storage: linear slots for global layers, rings for sliding ones. */
#include "runtime/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* A sliding ring keeps `rollback` slots beyond its window so that many
 * positions can be taken back (lg_kv_cache_rollback_ok) and still leave a
 * full window behind the new end. */
static int layer_capacity(const lg_config *cfg, int l, int n_ctx, int rollback) {
    if (cfg->attention_kind[l] == LG_ATTN_SLIDING && cfg->sliding_window + rollback < n_ctx)
        return cfg->sliding_window + rollback;
    return n_ctx;
}

size_t lg_kv_cache_bytes_for(const lg_config *cfg, int n_ctx, lg_dtype dtype) {
    size_t row = lg_dtype_row_bytes(dtype, (int64_t)cfg->n_kv_heads * cfg->head_dim) * 2, total = 0;
    for (int l = 0; l < cfg->n_layers; l++) total += row * (size_t)layer_capacity(cfg, l, n_ctx, 0);
    return total;
}

bool lg_kv_cache_rollback_ok(const lg_kv_cache *c, int n_stored, int n_keep) {
    for (int l = 0; l < c->n_layers; l++) {
        const lg_kv_layer *kl = &c->layers[l];
        /* the ring holds [n_stored - capacity, n_stored); the kept end needs [n_keep - window, n_keep) */
        int need = n_keep - kl->window > 0 ? n_keep - kl->window : 0;
        if (kl->ring && need < n_stored - kl->capacity) return false;
    }
    return true;
}

laguna_status lg_kv_cache_init(lg_kv_cache *c, const lg_config *cfg, int n_ctx, int rollback, lg_dtype dtype,
                               laguna_error *err) {
    memset(c, 0, sizeof *c);
    if (cfg->head_dim % lg_dtype_block_elems(dtype) != 0 || lg_dtype_row_bytes(dtype, cfg->head_dim) == 0)
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "KV cache type %s needs head_dim (%d) to be a whole number of its blocks",
                       lg_dtype_name(dtype), cfg->head_dim);
    float probe = 0;
    uint8_t probe_out[64];
    if (lg_dtype_block_elems(dtype) == 1 && lg_dtype_from_f32(dtype, &probe, probe_out, 1) != 0)
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "KV cache type %s cannot be written", lg_dtype_name(dtype));
    c->n_layers = cfg->n_layers;
    c->row_floats = cfg->n_kv_heads * cfg->head_dim;
    c->dtype = dtype;
    c->row_bytes = lg_dtype_row_bytes(dtype, c->row_floats);
    c->layers = calloc((size_t)cfg->n_layers, sizeof *c->layers);
    if (!c->layers) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for the KV cache");
    for (int l = 0; l < cfg->n_layers; l++) {
        lg_kv_layer *kl = &c->layers[l];
        kl->capacity = layer_capacity(cfg, l, n_ctx, rollback);
        kl->ring = cfg->attention_kind[l] == LG_ATTN_SLIDING;
        kl->window = cfg->sliding_window;
        size_t n = (size_t)kl->capacity * c->row_bytes;
        kl->k = malloc(n);
        kl->v = malloc(n);
        if (!kl->k || !kl->v) {
            lg_kv_cache_free(c);
            return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for the KV cache (%zu bytes for %d positions)",
                           lg_kv_cache_bytes_for(cfg, n_ctx, dtype), n_ctx);
        }
    }
    return LAGUNA_OK;
}

void lg_kv_cache_free(lg_kv_cache *c) {
    if (c->layers)
        for (int l = 0; l < c->n_layers; l++) {
            free(c->layers[l].k);
            free(c->layers[l].v);
        }
    free(c->layers);
    c->layers = NULL;
}

size_t lg_kv_cache_bytes(const lg_kv_cache *c) {
    size_t total = 0;
    for (int l = 0; l < c->n_layers; l++) total += (size_t)c->layers[l].capacity * c->row_bytes * 2;
    return total;
}

int lg_kv_cache_spans(const lg_kv_cache *c, int l, int first, int n_stored, lg_kv_span spans[2]) {
    const lg_kv_layer *kl = &c->layers[l];
    if (first < n_stored - kl->capacity) first = n_stored - kl->capacity;
    if (first < 0) first = 0;
    if (first >= n_stored) return 0;
    size_t stride = c->row_bytes;
    int n_spans = 0;
    for (int p = first; p < n_stored;) {
        int slot = p % kl->capacity;
        int run = kl->capacity - slot; /* up to the end of the ring */
        if (run > n_stored - p) run = n_stored - p;
        spans[n_spans++] = (lg_kv_span){kl->k + (size_t)slot * stride, kl->v + (size_t)slot * stride, run, stride, p, c->dtype};
        p += run;
    }
    return n_spans;
}

void lg_kv_cache_store(lg_kv_cache *c, int l, int pos0, const float *k_rows, const float *v_rows, int n) {
    const lg_kv_layer *kl = &c->layers[l];
    size_t row = (size_t)c->row_floats;
    int skip = n > kl->capacity ? n - kl->capacity : 0;
    for (int i = skip; i < n; i++) {
        int slot = (pos0 + i) % kl->capacity;
        lg_dtype_from_f32(c->dtype, k_rows + (size_t)i * row, kl->k + (size_t)slot * c->row_bytes, (int64_t)row);
        lg_dtype_from_f32(c->dtype, v_rows + (size_t)i * row, kl->v + (size_t)slot * c->row_bytes, (int64_t)row);
    }
}
