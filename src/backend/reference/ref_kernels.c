/* Reference kernels: the definitions, written plainly. */
#include "backend/reference/ref_kernels.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

void lg_ref_matmul(float *y, const float *x, int n_tokens, const lg_matrix *w, const float *bias) {
    float *row = malloc(sizeof(float) * (size_t)w->cols);
    if (!row) return;
    for (int64_t r = 0; r < w->rows; r++) {
        lg_dtype_to_f32(w->dtype, lg_matrix_row(w, r), row, w->cols);
        for (int t = 0; t < n_tokens; t++) {
            double s = bias ? bias[r] : 0;
            for (int64_t i = 0; i < w->cols; i++) s += (double)row[i] * x[(size_t)t * w->cols + i];
            y[(size_t)t * w->rows + r] = (float)s;
        }
    }
    free(row);
}

void lg_ref_attention(float *out, const float *q, int n_tokens, int n_heads, int n_kv_heads, int head_dim, int q_pos0,
                      int window, const float *keys, const float *values, int n_keys) {
    double *p = malloc(sizeof(double) * (size_t)(n_keys > 0 ? n_keys : 1));
    if (!p) return;
    int group = n_heads / n_kv_heads;
    for (int t = 0; t < n_tokens; t++) {
        int pos = q_pos0 + t;
        for (int h = 0; h < n_heads; h++) {
            int kv = h / group;
            const float *qv = q + ((size_t)t * n_heads + h) * head_dim;
            double max = -INFINITY, sum = 0;
            for (int j = 0; j < n_keys; j++) {
                bool visible = j <= pos && (window == 0 || j > pos - window);
                p[j] = -INFINITY;
                if (!visible) continue;
                double d = 0;
                for (int e = 0; e < head_dim; e++) d += (double)qv[e] * keys[((size_t)j * n_kv_heads + kv) * head_dim + e];
                p[j] = d / sqrt((double)head_dim);
                if (p[j] > max) max = p[j];
            }
            for (int j = 0; j < n_keys; j++) sum += p[j] == -INFINITY ? 0 : exp(p[j] - max);
            float *o = out + ((size_t)t * n_heads + h) * head_dim;
            for (int e = 0; e < head_dim; e++) {
                double acc = 0;
                for (int j = 0; j < n_keys; j++)
                    if (p[j] != -INFINITY) acc += exp(p[j] - max) / sum * values[((size_t)j * n_kv_heads + kv) * head_dim + e];
                o[e] = (float)acc;
            }
        }
    }
    free(p);
}
