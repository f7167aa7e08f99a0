/* Paged KV cache bookkeeping: the pool's free list and reference counts,
 * and the per-sequence page tables. */
#include "runtime/kv_pages.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

size_t lg_kv_page_bytes(const lg_config *cfg, lg_dtype dtype, int page_size) {
    return 2 * (size_t)page_size * lg_dtype_row_bytes(dtype, (int64_t)cfg->n_kv_heads * cfg->head_dim);
}

int lg_kv_pages_for_sequence(const lg_config *cfg, int page_size, int n_ctx, int keep, int n_batch) {
    int all = (n_ctx + page_size - 1) / page_size, total = 0;
    /* the kept positions, a step's rows, and a partial page at each end */
    int sliding = (keep + n_batch + page_size - 1) / page_size + 2;
    for (int l = 0; l < cfg->n_layers; l++)
        total += cfg->attention_kind[l] == LG_ATTN_SLIDING && sliding < all ? sliding : all;
    return total;
}

laguna_status lg_kv_pool_init(lg_kv_pool *p, lg_backend *be, const lg_config *cfg, lg_dtype dtype, int page_size,
                              int n_pages, laguna_error *err) {
    memset(p, 0, sizeof *p);
    if (cfg->head_dim % lg_dtype_block_elems(dtype) != 0 || lg_dtype_row_bytes(dtype, cfg->head_dim) == 0)
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "KV cache type %s needs head_dim (%d) to be a whole number of its blocks",
                       lg_dtype_name(dtype), cfg->head_dim);
    float probe = 0;
    uint8_t probe_out[64];
    if (lg_dtype_block_elems(dtype) == 1 && lg_dtype_from_f32(dtype, &probe, probe_out, 1) != 0)
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "KV cache type %s cannot be written", lg_dtype_name(dtype));
    int row_floats = cfg->n_kv_heads * cfg->head_dim;
    p->view = (lg_kv_pool_view){NULL, page_size, row_floats, lg_dtype_row_bytes(dtype, row_floats),
                                lg_kv_page_bytes(cfg, dtype, page_size), dtype};
    p->n_pages = n_pages;
    p->bytes = (size_t)n_pages * p->view.page_bytes;
    p->refs = calloc((size_t)n_pages, sizeof *p->refs);
    p->free_list = malloc(sizeof *p->free_list * (size_t)n_pages);
    p->view.base = p->refs && p->free_list ? be->ops->alloc(be, p->bytes) : NULL;
    if (!p->view.base) {
        lg_kv_pool_free(p, be);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for a KV pool of %d pages (%zu bytes)", n_pages,
                       (size_t)n_pages * lg_kv_page_bytes(cfg, dtype, page_size));
    }
    for (int i = 0; i < n_pages; i++) p->free_list[i] = n_pages - 1 - i; /* page 0 is taken first */
    p->n_free = n_pages;
    return LAGUNA_OK;
}

void lg_kv_pool_free(lg_kv_pool *p, lg_backend *be) {
    if (p->view.base) be->ops->free(be, p->view.base, p->bytes);
    free(p->refs);
    free(p->free_list);
    memset(p, 0, sizeof *p);
}

int lg_kv_pool_used(const lg_kv_pool *p) { return p->n_pages - p->n_free; }

static int32_t take_page(lg_kv_pool *p) {
    if (p->n_free == 0) return -1;
    int32_t page = p->free_list[--p->n_free];
    p->refs[page] = 1;
    return page;
}

static void release_page(lg_kv_pool *p, int32_t page) {
    if (page >= 0 && --p->refs[page] == 0) p->free_list[p->n_free++] = page;
}

void lg_kv_seq_init(lg_kv_seq *s) { memset(s, 0, sizeof *s); }

static laguna_status ensure_tables(lg_kv_seq *s, int n_layers, laguna_error *err) {
    if (!s->tables && !(s->tables = calloc((size_t)n_layers, sizeof *s->tables)))
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for a page table");
    return LAGUNA_OK;
}

/* Grows a table to hold logical pages [0, n), new entries -1. */
static laguna_status table_grow(lg_page_table *t, int n, laguna_error *err) {
    if (n > t->cap) {
        int cap = t->cap ? t->cap : 16;
        while (cap < n) cap *= 2;
        int32_t *pages = realloc(t->pages, sizeof *pages * (size_t)cap);
        if (!pages) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for a page table");
        t->pages = pages;
        t->cap = cap;
    }
    for (; t->n < n; t->n++) t->pages[t->n] = -1;
    return LAGUNA_OK;
}

void lg_kv_seq_clear(lg_kv_seq *s, lg_kv_pool *p, int n_layers) {
    if (s->tables)
        for (int l = 0; l < n_layers; l++) {
            for (int i = 0; i < s->tables[l].n; i++) release_page(p, s->tables[l].pages[i]);
            free(s->tables[l].pages);
        }
    free(s->tables);
    lg_kv_seq_init(s);
}

laguna_status lg_kv_seq_fork(lg_kv_seq *dst, const lg_kv_seq *src, lg_kv_pool *p, int n_layers, laguna_error *err) {
    lg_kv_seq_init(dst);
    laguna_status st = ensure_tables(dst, n_layers, err);
    for (int l = 0; !st && src->tables && l < n_layers; l++) {
        const lg_page_table *from = &src->tables[l];
        if ((st = table_grow(&dst->tables[l], from->n, err))) break;
        for (int i = 0; i < from->n; i++) {
            dst->tables[l].pages[i] = from->pages[i];
            if (from->pages[i] >= 0) p->refs[from->pages[i]]++;
        }
    }
    if (st) {
        lg_kv_seq_clear(dst, p, n_layers);
        return st;
    }
    dst->n_pos = src->n_pos;
    dst->floor = src->floor;
    return LAGUNA_OK;
}

int lg_kv_seq_pages_needed(const lg_kv_seq *s, const lg_kv_pool *p, int n_layers, int p0, int n) {
    if (n <= 0) return 0;
    int P = p->view.page_size, first = p0 / P, last = (p0 + n - 1) / P, need = 0;
    for (int l = 0; l < n_layers; l++)
        for (int lp = first; lp <= last; lp++) {
            int32_t page = s->tables && lp < s->tables[l].n ? s->tables[l].pages[lp] : -1;
            need += page < 0 || p->refs[page] > 1;
        }
    return need;
}

laguna_status lg_kv_seq_reserve(lg_kv_seq *s, lg_kv_pool *p, lg_backend_ctx *bc, int n_layers, int p0, int n,
                                laguna_error *err) {
    if (n <= 0) return LAGUNA_OK;
    laguna_status st = ensure_tables(s, n_layers, err);
    int P = p->view.page_size, first = p0 / P, last = (p0 + n - 1) / P;
    for (int l = 0; !st && l < n_layers; l++) {
        lg_page_table *t = &s->tables[l];
        if ((st = table_grow(t, last + 1, err))) break;
        for (int lp = first; lp <= last; lp++) {
            int32_t old = t->pages[lp];
            if (old >= 0 && p->refs[old] == 1) continue;
            int32_t page = take_page(p); /* counted by lg_kv_seq_pages_needed, so never -1 here */
            if (old >= 0) { /* shared with a fork: this sequence gets its own copy */
                bc->backend->ops->copy(bc, p->view.base + (size_t)page * p->view.page_bytes,
                                       p->view.base + (size_t)old * p->view.page_bytes, p->view.page_bytes);
                release_page(p, old);
            }
            t->pages[lp] = page;
        }
    }
    return st;
}

void lg_kv_seq_advance(lg_kv_seq *s, lg_kv_pool *p, const lg_config *cfg, int n_pos, int keep) {
    s->n_pos = n_pos;
    if (n_pos - keep > s->floor) s->floor = n_pos - keep;
    int P = p->view.page_size, below = s->floor / P; /* logical pages wholly before the floor */
    for (int l = 0; s->tables && l < cfg->n_layers; l++) {
        if (cfg->attention_kind[l] != LG_ATTN_SLIDING) continue;
        lg_page_table *t = &s->tables[l];
        for (int lp = 0; lp < below && lp < t->n; lp++) {
            release_page(p, t->pages[lp]);
            t->pages[lp] = -1;
        }
    }
}

bool lg_kv_seq_can_truncate(const lg_kv_seq *s, const lg_config *cfg, int n_keep) {
    if (!lg_config_has_sliding(cfg)) return true;
    int need = n_keep - cfg->sliding_window > 0 ? n_keep - cfg->sliding_window : 0;
    return need >= s->floor;
}

void lg_kv_seq_truncate(lg_kv_seq *s, lg_kv_pool *p, int n_layers, int n_keep) {
    int P = p->view.page_size, first_gone = (n_keep + P - 1) / P; /* pages wholly at or after n_keep */
    for (int l = 0; s->tables && l < n_layers; l++) {
        lg_page_table *t = &s->tables[l];
        for (int lp = first_gone; lp < t->n; lp++) {
            release_page(p, t->pages[lp]);
            t->pages[lp] = -1;
        }
        if (t->n > first_gone) t->n = first_gone;
    }
    s->n_pos = n_keep;
}

int lg_kv_seq_pages(const lg_kv_seq *s, int n_layers) {
    int n = 0;
    for (int l = 0; s->tables && l < n_layers; l++)
        for (int i = 0; i < s->tables[l].n; i++) n += s->tables[l].pages[i] >= 0;
    return n;
}
