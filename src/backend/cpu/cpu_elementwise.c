/* Row-wise and element-wise kernels: embedding rows, RMSNorm, RoPE, the
 * output gate, activations, residual adds, row gathers. Each row is computed
 * the same way whatever else is in the batch. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"

float lg_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

float lg_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

void lg_cpu_embed(lg_backend_ctx *c, float *x, const lg_matrix *table, const int32_t *tokens, int n) {
    (void)c;
    for (int t = 0; t < n; t++)
        lg_dtype_to_f32(table->dtype, lg_matrix_row(table, tokens[t]), x + (size_t)t * table->cols, table->cols);
}

void lg_cpu_rmsnorm(lg_backend_ctx *c, float *y, const float *x, const float *weight, int n_rows, int n, float eps) {
    (void)c;
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) yr[i] = xr[i] * inv * weight[i];
    }
}

void lg_cpu_rope(lg_backend_ctx *c, float *rows, int n_rows, int n_heads, int head_dim, int n_rot, const float *inv_freq,
                 float scale, const int32_t *pos) {
    (void)c;
    int half = n_rot / 2;
    for (int t = 0; t < n_rows; t++) {
        for (int i = 0; i < half; i++) {
            /* transformers forms the angle in float32: pos * inv_freq */
            float angle = (float)pos[t] * inv_freq[i];
            float co = cosf(angle) * scale, si = sinf(angle) * scale;
            for (int h = 0; h < n_heads; h++) {
                float *v = rows + ((size_t)t * n_heads + h) * head_dim;
                float a = v[i], b = v[i + half];
                v[i] = a * co - b * si;
                v[i + half] = b * co + a * si;
            }
        }
    }
}

void lg_cpu_output_gate(lg_backend_ctx *c, float *attn, const float *gate, int n_rows, int n_heads, int head_dim,
                        bool per_head) {
    (void)c;
    size_t width = (size_t)n_heads * head_dim;
    for (int t = 0; t < n_rows; t++) {
        float *o = attn + (size_t)t * width;
        if (per_head) {
            const float *g = gate + (size_t)t * n_heads;
            for (int h = 0; h < n_heads; h++) {
                float s = lg_softplus(g[h]);
                for (int e = 0; e < head_dim; e++) o[h * head_dim + e] *= s;
            }
        } else {
            const float *g = gate + (size_t)t * width;
            for (size_t e = 0; e < width; e++) o[e] *= lg_softplus(g[e]);
        }
    }
}

void lg_cpu_silu_mul(lg_backend_ctx *c, float *out, const float *gate, const float *up, size_t n) {
    (void)c;
    for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void lg_cpu_add(lg_backend_ctx *c, float *x, const float *y, size_t n) {
    (void)c;
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void lg_cpu_gather_rows(lg_backend_ctx *c, float *dst, const float *src, const int32_t *rows, int n, int width) {
    (void)c;
    for (int i = 0; i < n; i++)
        memmove(dst + (size_t)i * width, src + (size_t)rows[i] * width, sizeof(float) * (size_t)width);
}
