/* Row-wise and element-wise kernels: RMSNorm, RoPE, activations. */
#include <math.h>

#include "kernels/kernels.h"

void lg_rmsnorm_rows(float *y, const float *x, const float *weight, int n_rows, int n, float eps) {
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) yr[i] = xr[i] * inv * weight[i];
    }
}

void lg_rope_rows(float *rows, int n_tokens, int n_heads, int head_dim, int n_rot, const float *inv_freq, float scale,
                  const int *pos) {
    int half = n_rot / 2;
    for (int t = 0; t < n_tokens; t++) {
        for (int i = 0; i < half; i++) {
            /* transformers forms the angle in float32: pos * inv_freq */
            float angle = (float)pos[t] * inv_freq[i];
            float c = cosf(angle) * scale, s = sinf(angle) * scale;
            for (int h = 0; h < n_heads; h++) {
                float *v = rows + ((size_t)t * n_heads + h) * head_dim;
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

float lg_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

float lg_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

void lg_silu_mul(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
