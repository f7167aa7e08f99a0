/* Random inputs, test weights and error measures for the op tests (see op_inputs.h). */
#include "op_inputs.h"

#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "quant/quant.h"

static uint64_t rng = 88172645463325252ull;

float op_frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

int op_irand(int n) {
    return (int)((op_frand() + 1) * 0.5f * (float)n) % n;
}

float *op_frand_array(size_t n, float amp) {
    float *a = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        a[i] = op_frand() * amp;
    return a;
}

double op_rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        num += (a[i] - b[i]) * (double)(a[i] - b[i]), den += (double)b[i] * b[i];
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

op_weight op_weight_new(lg_dtype dt, int rows, int cols, float amp) {
    op_weight w = {0};
    size_t rb = lg_dtype_row_bytes(dt, cols);
    CHECK(rb > 0);
    float *src = op_frand_array((size_t)rows * cols, amp);
    w.bytes = malloc(rb * (size_t)rows);
    w.deq = malloc(sizeof(float) * (size_t)rows * cols);
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * cols;
        uint8_t *d = w.bytes + (size_t)r * rb;
        if (lg_dtype_is_quantized(dt)) {
            lg_quantize_row(dt, s, d, cols);
            lg_dequantize_row(dt, d, w.deq + (size_t)r * cols, cols);
        } else {
            CHECK(lg_dtype_from_f32(dt, s, d, cols) == 0);
            lg_dtype_to_f32(dt, d, w.deq + (size_t)r * cols, cols);
        }
    }
    free(src);
    w.m = (lg_matrix){dt, rows, cols, rb, w.bytes};
    return w;
}

void op_weight_free(op_weight *w) {
    free(w->bytes), free(w->deq);
}

int op_outside_q8_bound(const float *y, const float *ref, const float *x, const float *wd,
                        const float *bias, int rows, int cols, int tokens, int q8_block,
                        double float_tol) {
    int bad = 0, block = q8_block > 0 ? q8_block : 32;
    for (int t = 0; t < tokens; t++)
        for (int r = 0; r < rows; r++) {
            const float *xt = x + (size_t)t * cols, *wr = wd + (size_t)r * cols;
            double bound = 0, mag = bias ? fabs(bias[r]) : 0;
            for (int b = 0; b < cols / block; b++) {
                float amax = 0;
                for (int i = block * b; i < block * b + block; i++)
                    amax = fmaxf(amax, fabsf(xt[i]));
                for (int i = block * b; i < block * b + block; i++) {
                    bound += q8_block ? fabs(wr[i]) * 0.5 * amax / 127 : 0;
                    mag += fabs(wr[i] * xt[i]);
                }
            }
            for (int i = cols / block * block; i < cols; i++) /* a float tail past the blocks */
                mag += fabs(wr[i] * xt[i]);
            bad += !(fabs(y[(size_t)t * rows + r] - ref[(size_t)t * rows + r]) <=
                     bound * 1.0001 + float_tol * mag);
        }
    return bad;
}

int32_t *op_random_ids(int n, int top_k, int used) {
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n ? n : 1) * (top_k ? top_k : 1));
    for (int t = 0; t < n; t++)
        for (int j = 0; j < top_k; j++) {
            int e, dup;
            do {
                e = op_irand(used), dup = 0;
                for (int i = 0; i < j; i++)
                    dup |= ids[(size_t)t * top_k + i] == e;
            } while (dup);
            ids[(size_t)t * top_k + j] = e;
        }
    return ids;
}

float *op_argmax_rows_input(int n_rows, int n_cols) {
    float *x = op_frand_array((size_t)n_rows * n_cols, 8.0f);
    for (int r = 0; r < n_rows; r++) {
        float *row = x + (size_t)r * n_cols;
        int kind = r % 9, n = n_cols;
        switch (kind) {
        case 1: /* the maximum at several places */
            for (int k = 0; k < 4; k++)
                row[op_irand(n)] = 9.0f;
            row[n / 2 + op_irand(n - n / 2)] = 9.0f;
            break;
        case 2: /* few distinct values */
            for (int i = 0; i < n; i++)
                row[i] = (float)(op_irand(3) - 1);
            break;
        case 3:
            row[n - 1] = 9.0f;
            break;
        case 4:
            for (int i = 0; i < n; i++)
                row[i] = -INFINITY;
            break;
        case 5:
            for (int i = 0; i < n; i++)
                row[i] = -INFINITY;
            for (int k = 0; k < 3; k++)
                row[op_irand(n)] = op_frand();
            break;
        case 6:
            for (int k = 0; k < 1 + n / 16; k++)
                row[op_irand(n)] = NAN;
            if (r % 2) row[0] = NAN;
            break;
        case 7:
            row[op_irand(n)] = INFINITY, row[op_irand(n)] = INFINITY;
            break;
        case 8:
            for (int i = 0; i < n; i++)
                row[i] = -fabsf(row[i]) - 1.0f;
            row[op_irand(n)] = -0.0f, row[op_irand(n)] = 0.0f, row[op_irand(n)] = -0.0f;
            break;
        default:
            break;
        }
    }
    return x;
}

int32_t op_argmax_plain(const float *row, int n) {
    if (isnan(row[0])) return 0;
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (!isnan(row[i]) && row[i] > max) max = row[i];
    for (int i = 0; i < n; i++)
        if (row[i] == max) return i;
    return 0; /* unreachable: row[0] is a candidate */
}
