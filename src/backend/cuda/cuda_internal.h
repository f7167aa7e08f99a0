/* The CUDA backend's shared pieces: its state, the per-context stream with
 * an upload ring for the step's host arrays, dtype loads on the device, and
 * the kernel launchers each .cu file provides. */
#ifndef LAGUNA_BACKEND_CUDA_INTERNAL_H
#define LAGUNA_BACKEND_CUDA_INTERNAL_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "backend/backend.h"
}

struct lg_weight_block {
    void *dev;
    lg_weight_block *next;
};

struct lg_cuda_backend {
    lg_backend base;
    int device;
    lg_weight_block *weights; /* uploads, freed with the backend */
    size_t weight_bytes;
};

/* Device copies of an expert list's matrices (built once per layer). */
struct lg_expert_table {
    const lg_swiglu_weights *host; /* the model's array this mirrors */
    const uint8_t **dev;           /* [3][n_experts]: gate, up, down data pointers */
};

struct lg_cuda_ctx {
    lg_backend_ctx base;
    cudaStream_t stream;
    uint8_t *ring_dev, *ring_host; /* host arrays of a step go up through here */
    size_t ring_bytes, ring_used;
    lg_expert_table *tables;
    int n_tables, cap_tables;
};

/* Copies n bytes of host data to device memory valid for the rest of the
 * step (stream-ordered); when the ring is full it waits for the stream. */
const void *lg_cuda_upload(lg_cuda_ctx *c, const void *host, size_t n);

/* Value i of a row stored in dtype (F32, BF16, F16 or Q8_0). */
__device__ __forceinline__ float lg_load(int dtype, const uint8_t *row, int64_t i) {
    switch (dtype) {
    case LG_DTYPE_F32: return ((const float *)row)[i];
    case LG_DTYPE_BF16: return __uint_as_float((uint32_t)((const uint16_t *)row)[i] << 16);
    case LG_DTYPE_F16: return __half2float(((const __half *)row)[i]);
    case LG_DTYPE_Q8_0: {
        const uint8_t *b = row + (i / 32) * 34;
        return __half2float(*(const __half *)b) * (float)(int8_t)b[2 + i % 32];
    }
    default: return 0.0f;
    }
}

/* Weight dtypes the kernels read. */
static inline bool lg_cuda_weight_dtype_ok(lg_dtype d) {
    return d == LG_DTYPE_F32 || d == LG_DTYPE_BF16 || d == LG_DTYPE_F16 || d == LG_DTYPE_Q8_0;
}

#define LG_CUDA_CTX(c) ((lg_cuda_ctx *)(c))

/* cuda_matmul.cu */
void lg_cuda_matmul_many(lg_backend_ctx *c, const lg_matmul_op *ops, int n_ops);
void lg_cuda_moe_experts(lg_backend_ctx *c, const lg_moe_args *a);
/* cuda_attention.cu */
void lg_cuda_attention(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                       const lg_attention_args *a);
void lg_cuda_kv_write(lg_backend_ctx *c, const lg_kv_pool_view *pool, const lg_kv_write_args *a, const float *k,
                      const float *v);
/* cuda_elementwise.cu */
void lg_cuda_embed(lg_backend_ctx *c, float *x, const lg_matrix *table, const int32_t *tokens, int n);
void lg_cuda_rmsnorm(lg_backend_ctx *c, float *y, const float *x, const float *w, int n_rows, int n, float eps);
void lg_cuda_rope(lg_backend_ctx *c, float *rows, int n_rows, int n_heads, int head_dim, int n_rot,
                  const float *inv_freq, float scale, const int32_t *pos);
void lg_cuda_output_gate(lg_backend_ctx *c, float *attn, const float *gate, int n_rows, int n_heads, int head_dim,
                         bool per_head);
void lg_cuda_silu_mul(lg_backend_ctx *c, float *out, const float *gate, const float *up, size_t n);
void lg_cuda_add(lg_backend_ctx *c, float *x, const float *y, size_t n);
void lg_cuda_gather_rows(lg_backend_ctx *c, float *dst, const float *src, const int32_t *rows, int n, int width);
/* cuda_moe.cu */
void lg_cuda_router(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n);
void lg_cuda_moe_group(lg_backend_ctx *c, const lg_moe_plan *plan, float *expert_in, const float *h,
                       const int32_t *ids, int n, int top_k, int n_experts, int hidden);
void lg_cuda_moe_combine(lg_backend_ctx *c, float *out, const lg_moe_plan *plan, const float *expert_out,
                         const float *weights, const float *shared, int n, int top_k, int hidden, float scale);

#endif
