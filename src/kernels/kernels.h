/* The compute kernels the forward pass calls (CPU implementation).
 *
 * The model code only sees these functions: what they compute, in float32,
 * on row-major arrays. How (threads, vector width, weight dtype) stays inside
 * src/kernels/. Each kernel has a slow, obvious twin in reference.h that the
 * tests compare it with. */
#ifndef LAGUNA_KERNELS_KERNELS_H
#define LAGUNA_KERNELS_KERNELS_H

#include <stddef.h>

#include "kernels/matrix.h"
#include "runtime/threadpool.h"

/* Per-thread scratch memory for kernels, owned by whoever runs the forward pass. */
typedef struct {
    lg_threadpool *pool;
    int n_threads;
    float **scratch;       /* one buffer per thread */
    size_t scratch_floats; /* size of each */
    void *act_q8;          /* activations quantised for one lg_matmul_many (grown on demand) */
    size_t act_q8_bytes;
} lg_kernel_ctx;

int lg_kernel_ctx_init(lg_kernel_ctx *k, lg_threadpool *pool, size_t scratch_floats);
void lg_kernel_ctx_free(lg_kernel_ctx *k);

/* y[t][r] = sum_i w[r][i] * x[t][i] (+ bias[r]) for t < n_tokens, r < w->rows.
 * x rows are w->cols long, y rows w->rows long. */
void lg_matmul(lg_kernel_ctx *k, float *y, const float *x, int n_tokens, const lg_matrix *w, const float *bias);

/* One product of a batch given to lg_matmul_many. */
typedef struct {
    float *y;
    const float *x;
    int n_tokens; /* 0 = skip */
    const lg_matrix *w;
    const float *bias;
} lg_matmul_op;

/* Runs independent products together (one dispatch to the threads). */
void lg_matmul_many(lg_kernel_ctx *k, const lg_matmul_op *ops, int n_ops);

/* y = x / sqrt(mean(x^2) + eps) * weight over each row of n; y may equal x. */
void lg_rmsnorm_rows(float *y, const float *x, const float *weight, int n_rows, int n, float eps);

/* Rotates the first n_rot dims of each head of each row ("rotate half": i with
 * i + n_rot/2); rows[t] holds n_heads heads of head_dim at position pos[t]. */
void lg_rope_rows(float *rows, int n_tokens, int n_heads, int head_dim, int n_rot, const float *inv_freq,
                  float scale, const int *pos);

/* A run of cached keys and values for positions first_pos .. first_pos+n-1:
 * position j's row (n_kv_heads * head_dim values in `dtype`) starts at
 * k + j*stride_bytes (likewise v). */
typedef struct {
    const void *k, *v;
    int n;
    size_t stride_bytes;
    int first_pos;
    lg_dtype dtype;
} lg_kv_span;

/* Causal grouped-query attention for n_tokens queries at positions
 * q_pos0 + t. Query t sees keys at positions in [q_pos - window + 1, q_pos]
 * (window 0 = unlimited) found in the spans, which must hold them. q is
 * [n_tokens][n_heads][head_dim]; out likewise. Needs scratch for the scores
 * of one query plus 2 * head_dim floats. */
void lg_attention(lg_kernel_ctx *k, float *out, const float *q, int n_tokens, int n_heads, int n_kv_heads,
                  int head_dim, int q_pos0, int window, const lg_kv_span *spans, int n_spans);

/* out[i] = silu(gate[i]) * up[i] */
void lg_silu_mul(float *out, const float *gate, const float *up, size_t n);
/* softplus with torch's default threshold (x > 20 gives x) */
float lg_softplus(float x);
float lg_sigmoid(float x);

#endif
