/* The greedy choice over a row of logits, as every path computes it: the
 * sampler at temperature 0, the backends' argmax_rows op and the host
 * fallback of the forward pass. */
#ifndef LAGUNA_CORE_ARGMAX_H
#define LAGUNA_CORE_ARGMAX_H

#include <stdint.h>

/* The index of the largest of x[0..n) (n >= 1), the lowest one on ties; the
 * result of the plain scan `best = 0; if (x[i] > x[best]) best = i`, so NaN
 * never wins except at index 0, where it wins outright (nothing compares
 * greater than it). -inf is an ordinary value: a row of -inf gives 0. A
 * parallel reduction gets the same index by keeping, of two candidates, the
 * greater value and on equal values the lower index, skipping NaN, then
 * answering 0 when x[0] is NaN. */
int32_t lg_argmax_f32(const float *x, int n);

/* out[r] = lg_argmax_f32 of row r of rows [n_rows][n_cols]. */
void lg_argmax_rows_f32(int32_t *out, const float *rows, int n_rows, int n_cols);

#endif
