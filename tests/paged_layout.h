/* A step of attention over a paged KV pool, laid out the same way for the
 * op tests on every backend (tests/test_backend_ops.c, tests/test_cuda_ops.c):
 * sequences over their own shuffled pages of one pool; past positions given
 * as kv_write's rows and slots, this step's slots given garbage rows
 * (reading them from the pool instead of the step's float rows shows),
 * pages wholly before every window pointing at page 0, which the caller
 * fills with NaN (reading outside the window shows), and the step's rows of
 * the sequences interleaved or one sequence after another. */
#ifndef LAGUNA_TESTS_PAGED_LAYOUT_H
#define LAGUNA_TESTS_PAGED_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/tensor.h"

#define PAGED_MAX_SEQ 3

typedef struct {
    int n_heads, n_kv, hd, page_size, window;
    lg_dtype cache;
    int n_seq;
    int past[PAGED_MAX_SEQ],
        fresh[PAGED_MAX_SEQ]; /* per sequence: positions already in the pool, of this step */
} attention_spec;

typedef struct {
    int width, q_width; /* floats of a key (or value) row, of a query row */
    size_t row_bytes, page_bytes, pool_bytes;
    /* kv_write's input: n_write rows (every position of every sequence) */
    int n_write;
    int32_t *slots;
    float *wk, *wv;
    /* the attention's input: n_rows query rows and their own key and value rows */
    int n_rows;
    int32_t *pos, *from, *fresh_at, *fresh_rows;
    const int32_t **tables;
    float *fk, *fv, *q;
    /* what the above point into */
    int n_seq, *perm;
    int32_t *table[PAGED_MAX_SEQ], *att_table[PAGED_MAX_SEQ];
    float *kf[PAGED_MAX_SEQ], *vf[PAGED_MAX_SEQ];
} paged_layout;

/* by_sequence: the step's rows one sequence after another, not interleaved. */
void paged_layout_make(paged_layout *l, const attention_spec *sp, bool by_sequence);
void paged_layout_free(paged_layout *l);

/* The spec in words, for a failed check. */
void attention_spec_describe(const attention_spec *sp, char *what, size_t size);

#endif
