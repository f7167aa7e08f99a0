/* The paged KV cache: one pool of pages in backend memory, and per sequence
 * one page table per layer (logical page -> pool page).
 *
 * A page holds page_size positions of one layer's keys and values; every
 * layer has the same KV row shape, so any page serves any layer. Global
 * layers keep every page of a sequence. Sliding layers only ever read the
 * last sliding_window positions: pages wholly older than `keep` positions
 * (window + the sequence's rollback allowance) are handed back, so their
 * memory is bounded by the window, not the context. Pages are reference
 * counted: a forked sequence shares its parent's pages, and a page is copied
 * only when a sequence writes into one it shares. */
#ifndef LAGUNA_RUNTIME_KV_PAGES_H
#define LAGUNA_RUNTIME_KV_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "model/config.h"

typedef struct {
    lg_kv_pool_view view; /* what ops see */
    size_t bytes;         /* of the backend buffer */
    int n_pages;
    int32_t *refs;        /* sequences holding each page (0 = free) */
    int32_t *free_list;   /* free pages, most recently freed last (reused first) */
    int n_free;
} lg_kv_pool;

typedef struct {
    int32_t *pages; /* logical page -> pool page, -1 when not held */
    int n, cap;
} lg_page_table;

typedef struct {
    int n_pos;              /* positions held */
    int floor;              /* sliding layers hold positions >= floor at least */
    lg_page_table *tables;  /* one per layer */
} lg_kv_seq;

/* Bytes of one page (keys and values of page_size positions). */
size_t lg_kv_page_bytes(const lg_config *cfg, lg_dtype dtype, int page_size);

/* Pages one sequence of n_ctx positions can hold at once: global layers
 * every page, sliding layers `keep` positions plus a step of n_batch. */
int lg_kv_pages_for_sequence(const lg_config *cfg, int page_size, int n_ctx, int keep, int n_batch);

laguna_status lg_kv_pool_init(lg_kv_pool *p, lg_backend *be, const lg_config *cfg, lg_dtype dtype, int page_size,
                              int n_pages, laguna_error *err);
void lg_kv_pool_free(lg_kv_pool *p, lg_backend *be);
int lg_kv_pool_used(const lg_kv_pool *p);

void lg_kv_seq_init(lg_kv_seq *s);
/* Hands every page back. */
void lg_kv_seq_clear(lg_kv_seq *s, lg_kv_pool *p, int n_layers);
/* dst (empty) shares src's pages. */
laguna_status lg_kv_seq_fork(lg_kv_seq *dst, const lg_kv_seq *src, lg_kv_pool *p, int n_layers, laguna_error *err);

/* Pages that writing positions [p0, p0 + n) would take from the pool
 * (pages not held yet, and shared pages that must be copied). */
int lg_kv_seq_pages_needed(const lg_kv_seq *s, const lg_kv_pool *p, int n_layers, int p0, int n);
/* Makes positions [p0, p0 + n) writable in every layer, taking pages and
 * copying shared ones; the caller checked lg_kv_seq_pages_needed first.
 * Fails only when out of memory for a page table. */
laguna_status lg_kv_seq_reserve(lg_kv_seq *s, lg_kv_pool *p, lg_backend_ctx *bc, int n_layers, int p0, int n,
                                laguna_error *err);
/* Pool slot of position pos in layer l (reserved). */
static inline int32_t lg_kv_seq_slot(const lg_kv_seq *s, const lg_kv_pool *p, int l, int pos) {
    return s->tables[l].pages[pos / p->view.page_size] * p->view.page_size + pos % p->view.page_size;
}

/* After positions up to n_pos were written: sliding layers (those with
 * kind LG_ATTN_SLIDING) hand back pages older than n_pos - keep. */
void lg_kv_seq_advance(lg_kv_seq *s, lg_kv_pool *p, const lg_config *cfg, int n_pos, int keep);

/* Whether the sliding layers still hold the window behind n_keep. */
bool lg_kv_seq_can_truncate(const lg_kv_seq *s, const lg_config *cfg, int n_keep);
/* Keeps positions [0, n_keep) and hands back the pages after them. */
void lg_kv_seq_truncate(lg_kv_seq *s, lg_kv_pool *p, int n_layers, int n_keep);

/* Pages a sequence holds (all layers). */
int lg_kv_seq_pages(const lg_kv_seq *s, int n_layers);

#endif
