/* The paged attention step shared by the op tests (paged_layout.h). */
#include "paged_layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_inputs.h"

/* The pool's pages: 0 the NaN page, then every sequence's, then 2 unused;
 * the sequences' pages shuffled among 1 .. total - 1. */
static int *shuffled_pages(int total) {
    int *perm = malloc(sizeof(int) * total);
    for (int i = 0; i < total - 1; i++)
        perm[i] = i + 1;
    for (int i = total - 2; i > 0; i--) {
        int j = op_irand(i + 1), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    return perm;
}

/* kv_write's rows: past rows of all sequences interleaved, garbage into this step's slots. */
static void lay_writes(paged_layout *l, const attention_spec *sp, const int *len) {
    int width = l->width, ps = sp->page_size;
    l->n_write = 0;
    for (int s = 0; s < sp->n_seq; s++)
        l->n_write += len[s];
    l->slots = malloc(sizeof(int32_t) * (l->n_write + 1));
    l->wk = malloc(sizeof(float) * (size_t)(l->n_write + 1) * width);
    l->wv = malloc(sizeof(float) * (size_t)(l->n_write + 1) * width);
    int w = 0;
    for (int p = 0; w < l->n_write; p++)
        for (int s = 0; s < sp->n_seq; s++) {
            if (p >= len[s]) continue;
            l->slots[w] = l->table[s][p / ps] * ps + p % ps;
            bool past = p < sp->past[s];
            for (int e = 0; e < width; e++) {
                l->wk[(size_t)w * width + e] =
                    past ? l->kf[s][(size_t)p * width + e] : 3 * op_frand();
                l->wv[(size_t)w * width + e] =
                    past ? l->vf[s][(size_t)p * width + e] : 3 * op_frand();
            }
            w++;
        }
}

/* The step's rows; per sequence its rows in position order. */
static void lay_rows(paged_layout *l, const attention_spec *sp, bool by_sequence) {
    int width = l->width, max_fresh = 0, at = 0, seq_at[PAGED_MAX_SEQ];
    l->n_rows = 0;
    for (int s = 0; s < sp->n_seq; s++)
        l->n_rows += sp->fresh[s], max_fresh = sp->fresh[s] > max_fresh ? sp->fresh[s] : max_fresh;
    size_t n = (size_t)l->n_rows + 1;
    l->pos = malloc(sizeof(int32_t) * n), l->from = malloc(sizeof(int32_t) * n);
    l->fresh_at = malloc(sizeof(int32_t) * n), l->fresh_rows = malloc(sizeof(int32_t) * n);
    l->tables = malloc(sizeof(int32_t *) * n);
    l->fk = malloc(sizeof(float) * n * width), l->fv = malloc(sizeof(float) * n * width);
    for (int s = 0; s < sp->n_seq; s++)
        seq_at[s] = at, at += sp->fresh[s];
    int r = 0;
    for (int k = 0; k < max_fresh * sp->n_seq; k++) {
        int s = by_sequence ? k / max_fresh : k % sp->n_seq,
            i = by_sequence ? k % max_fresh : k / sp->n_seq;
        if (i >= sp->fresh[s]) continue;
        int p = sp->past[s] + i;
        l->pos[r] = p, l->from[r] = sp->past[s], l->fresh_at[r] = seq_at[s],
        l->tables[r] = l->att_table[s];
        l->fresh_rows[seq_at[s] + i] = r;
        memcpy(l->fk + (size_t)r * width, l->kf[s] + (size_t)p * width, sizeof(float) * width);
        memcpy(l->fv + (size_t)r * width, l->vf[s] + (size_t)p * width, sizeof(float) * width);
        r++;
    }
    l->q = op_frand_array(n * l->q_width, 3.0f);
}

void paged_layout_make(paged_layout *l, const attention_spec *sp, bool by_sequence) {
    memset(l, 0, sizeof *l);
    int ps = sp->page_size, len[PAGED_MAX_SEQ], n_lp[PAGED_MAX_SEQ],
        total_pages = 1; /* page 0: the NaN page */
    l->n_seq = sp->n_seq;
    l->width = sp->n_kv * sp->hd, l->q_width = sp->n_heads * sp->hd;
    l->row_bytes = lg_dtype_row_bytes(sp->cache, l->width),
    l->page_bytes = 2 * (size_t)ps * l->row_bytes;
    for (int s = 0; s < sp->n_seq; s++) {
        len[s] = sp->past[s] + sp->fresh[s];
        n_lp[s] = (len[s] + ps - 1) / ps;
        total_pages += n_lp[s];
    }
    total_pages += 2; /* unused pages */
    l->pool_bytes = (size_t)total_pages * l->page_bytes;
    l->perm = shuffled_pages(total_pages);
    int next = 0;
    for (int s = 0; s < sp->n_seq; s++) {
        l->table[s] = malloc(sizeof(int32_t) * (n_lp[s] + 1));
        l->att_table[s] = malloc(sizeof(int32_t) * (n_lp[s] + 1));
        int lo = sp->window > 0 ? sp->past[s] - sp->window + 1
                                : 0; /* lowest position any row of s sees */
        for (int p = 0; p < n_lp[s]; p++) {
            l->table[s][p] = l->perm[next++];
            l->att_table[s][p] = (p + 1) * ps - 1 < lo ? 0 : l->table[s][p];
        }
        l->kf[s] = op_frand_array((size_t)len[s] * l->width, 1.0f);
        l->vf[s] = op_frand_array((size_t)len[s] * l->width, 1.0f);
    }
    lay_writes(l, sp, len);
    lay_rows(l, sp, by_sequence);
}

void paged_layout_free(paged_layout *l) {
    for (int s = 0; s < l->n_seq; s++)
        free(l->table[s]), free(l->att_table[s]), free(l->kf[s]), free(l->vf[s]);
    free(l->perm), free(l->slots), free(l->wk), free(l->wv);
    free(l->pos), free(l->from), free(l->fresh_at), free(l->fresh_rows), free(l->tables);
    free(l->fk), free(l->fv), free(l->q);
}

void attention_spec_describe(const attention_spec *sp, char *what, size_t size) {
    snprintf(
        what, size, "heads %d/%d hd %d page %d window %d cache %s seqs %d (%d+%d, %d+%d, %d+%d)",
        sp->n_heads, sp->n_kv, sp->hd, sp->page_size, sp->window, lg_dtype_name(sp->cache),
        sp->n_seq, sp->past[0], sp->fresh[0], sp->past[1], sp->fresh[1], sp->past[2], sp->fresh[2]);
}
