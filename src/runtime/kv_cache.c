/* KV cache storage: linear slots for global layers, rings for sliding ones. */
#include "runtime/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static int layer_capacity(const lg_config *cfg, int l, int n_ctx) {
    if (cfg->attention_kind[l] == LG_ATTN_SLIDING && cfg->sliding_window < n_ctx) return cfg->sliding_window;
    return n_ctx;
}

size_t lg_kv_cache_bytes_for(const lg_config *cfg, int n_ctx) {
    size_t row = (size_t)cfg->n_kv_heads * cfg->head_dim * sizeof(float) * 2, total = 0;
    for (int l = 0; l < cfg->n_layers; l++) total += row * (size_t)layer_capacity(cfg, l, n_ctx);
    return total;
}

laguna_status lg_kv_cache_init(lg_kv_cache *c, const lg_config *cfg, int n_ctx, laguna_error *err) {
    memset(c, 0, sizeof *c);
    c->n_layers = cfg->n_layers;
    c->row_floats = cfg->n_kv_heads * cfg->head_dim;
    c->layers = calloc((size_t)cfg->n_layers, sizeof *c->layers);
    if (!c->layers) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for the KV cache");
    for (int l = 0; l < cfg->n_layers; l++) {
        lg_kv_layer *kl = &c->layers[l];
        kl->capacity = layer_capacity(cfg, l, n_ctx);
        kl->ring = cfg->attention_kind[l] == LG_ATTN_SLIDING;
        size_t n = (size_t)kl->capacity * (size_t)c->row_floats;
        kl->k = malloc(n * sizeof(float));
        kl->v = malloc(n * sizeof(float));
        if (!kl->k || !kl->v) {
            lg_kv_cache_free(c);
            return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for the KV cache (%zu bytes for %d positions)",
                           lg_kv_cache_bytes_for(cfg, n_ctx), n_ctx);
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
    for (int l = 0; l < c->n_layers; l++) total += (size_t)c->layers[l].capacity * c->row_floats * sizeof(float) * 2;
    return total;
}

int lg_kv_cache_spans(const lg_kv_cache *c, int l, int first, int n_stored, lg_kv_span spans[2]) {
    const lg_kv_layer *kl = &c->layers[l];
    if (first < n_stored - kl->capacity) first = n_stored - kl->capacity;
    if (first < 0) first = 0;
    if (first >= n_stored) return 0;
    size_t stride = (size_t)c->row_floats;
    int n_spans = 0;
    for (int p = first; p < n_stored;) {
        int slot = p % kl->capacity;
        int run = kl->capacity - slot; /* up to the end of the ring */
        if (run > n_stored - p) run = n_stored - p;
        spans[n_spans++] = (lg_kv_span){kl->k + (size_t)slot * stride, kl->v + (size_t)slot * stride, run, stride, p};
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
        memcpy(kl->k + (size_t)slot * row, k_rows + (size_t)i * row, row * sizeof(float));
        memcpy(kl->v + (size_t)slot * row, v_rows + (size_t)i * row, row * sizeof(float));
    }
}
