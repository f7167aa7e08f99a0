/* The greedy choice over a row of logits (see argmax.h). */
#include "core/argmax.h"

#include <stddef.h>

int32_t lg_argmax_f32(const float *x, int n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void lg_argmax_rows_f32(int32_t *out, const float *rows, int n_rows, int n_cols) {
    for (int r = 0; r < n_rows; r++)
        out[r] = lg_argmax_f32(rows + (size_t)r * (size_t)n_cols, n_cols);
}
