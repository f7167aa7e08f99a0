/* The CUDA backend's shared pieces: its state, the per-context stream with
 * an upload ring for the step's host arrays, dtype loads on the device, and
 * the kernel launchers each .cu file provides. */
#ifndef LAGUNA_BACKEND_CUDA_INTERNAL_H
#define LAGUNA_BACKEND_CUDA_INTERNAL_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <new>
#include <vector>

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
    bool bf16_activations; /* BF16 products on tensor cores take activations rounded to bf16 (the model option) */
};

/* Device copies of an expert list's matrices (built once per layer). */
struct lg_expert_table {
    const lg_swiglu_weights *host; /* the model's array this mirrors */
    const uint8_t **dev;           /* [3][n_experts]: gate, up, down data pointers */
    uintptr_t address_bits[3];     /* gate, up, down: every expert's data address or-ed (p % 2^k == 0 for
                                    * all p iff their or is), so a step need not walk the experts */
};

struct lg_cuda_profile;
struct lg_cuda_tape;
struct lg_cuda_prefetcher;
struct lg_cuda_queue;

/* An upload ring outgrown, kept until the stream is idle. */
struct lg_cuda_retired_ring {
    uint8_t *dev, *host;
    lg_cuda_retired_ring *next;
};

struct lg_cuda_ctx {
    lg_backend_ctx base;
    cudaStream_t stream;
    uint8_t *ring_dev, *ring_host; /* host arrays of a step go up through here */
    size_t ring_bytes, ring_used;
    size_t ring_limit;               /* uploads stay below: ring_bytes, or a queued step's half of the ring */
    bool ring_spilled;               /* a step's uploads outgrew the ring since the last queued step began */
    lg_cuda_retired_ring *retired_rings;
    lg_expert_table *tables;
    int n_tables, cap_tables;
    void *scratch;           /* an op's device work space (stream-ordered), grown on demand */
    size_t scratch_bytes;
    unsigned *attn_counters; /* the split attention kernel's, zero between launches */
    size_t attn_counters_n;
    int32_t *moe_active;     /* [n_experts + 1]: count, then the experts with rows (moe_group -> moe_experts) */
    unsigned *norm_counter;  /* add_rmsnorm_matmul_kernel's blocks that have read x; zero between launches */
    int n_experts;
    lg_cuda_profile *profile; /* LAGUNA_CUDA_PROFILE=1 only */
    lg_cuda_tape *tape;       /* decode steps as graphs (cuda_tape.cu); NULL = off */
    lg_cuda_prefetcher *prefetcher; /* prefetch_weights' side stream (cuda_prefetch.cu), made on first use */
    /* greedy tokens (cuda_argmax.cu): a step's, on the device, [argmax_cap]
     * (the next step's embed reads token -2 - j at j), rows written so far in
     * the step; queued steps (cuda_queue.cu) */
    int32_t *argmax_dev;
    int argmax_cap, argmax_at;
    int step_rows; /* the rows of the step begun last (step_begin) */
    bool queue_argmax;
    lg_cuda_queue *queue;
    /* decode attention (cuda_attention.cu), read from the environment when
     * the context is made so that tests can set them per context */
    int attn_groups;            /* a lone row's chunks merge in at most ~this many groups */
    int attn_decode_loop_min;   /* lone-row launches of fewer (row, KV head) blocks split */
    bool attn_early;            /* blocks fetch pool-only first chunks before the PDL wait */
    bool attn_prompt;           /* prompt tiles over a bf16 pool on their own kernel (cuda_attention_prompt.cu) */
    int attn_prompt_np;         /* its output dim tiles in flight, in pairs (measuring: LAGUNA_CUDA_ATTN_PROMPT_NP) */
};

/* cuda_tape.cu */
lg_cuda_tape *lg_cuda_tape_new(void);
void lg_cuda_tape_free(lg_cuda_tape *t);
bool lg_cuda_taping(const lg_cuda_ctx *k);
void lg_cuda_tape_hash(lg_cuda_ctx *k, const void *bytes, size_t n);
void lg_cuda_tape_add(lg_cuda_ctx *k, std::function<void(cudaStream_t)> op);
void lg_cuda_tape_defer_free(lg_cuda_ctx *k, void *p);
/* The step being recorded forked work onto the prefetch side stream. */
void lg_cuda_tape_forked(lg_cuda_ctx *k);
void lg_cuda_tape_flush(lg_cuda_ctx *k);
void lg_cuda_step_begin(lg_backend_ctx *c, int n_rows);

/* cuda_queue.cu: queued greedy steps (the queue_argmax and wait_step ops).
 * step_begin's part (a queued step takes the next entry and its half of the
 * upload ring); argmax_rows' part (the step's tokens copied behind it to
 * host_out's entry, n rows from row at of argmax_dev). */
lg_cuda_queue *lg_cuda_queue_new(void);
void lg_cuda_queue_free(lg_cuda_queue *q);
void lg_cuda_queue_step_begin(lg_cuda_ctx *k);
bool lg_cuda_queue_tokens(lg_cuda_ctx *k, int32_t *host_out, int at, int n);
void lg_cuda_queue_argmax(lg_backend_ctx *c, bool on);
laguna_status lg_cuda_wait_step(lg_backend_ctx *c, laguna_error *err);

/* Programmatic dependent launch (Hopper): every kernel is launched so that
 * the next one may be scheduled while it drains, which hides most of the
 * few microseconds between two small kernels. So every kernel of the
 * backend starts with lg_cuda_kernel_begin(), before anything else (an
 * early return before it would let the kernel finish before its
 * predecessor): it waits until the previous kernel has finished and its
 * writes are visible, then lets the next kernel launch. LAGUNA_CUDA_PDL=0
 * launches kernels plainly (the wait is then a no-op). */
__device__ __forceinline__ void lg_cuda_kernel_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* An environment switch that is on unless set to 0 (LAGUNA_CUDA_PDL, _MMA, _GRAPHS). */
bool lg_cuda_switch_on(const char *name);
bool lg_cuda_pdl_enabled(void);

/* Lets kernel launch with smem bytes of dynamic shared memory on the current
 * device (above the default 48 KB a kernel must ask). The limit belongs to
 * the kernel on a device, not to a launch, and a recorded step issues its
 * launches only after all of them were set up, so it is only ever raised: set
 * lower for a later launch, an earlier, larger one would fail. */
void lg_cuda_allow_smem_on(const void *kernel, size_t smem);
template <typename... P> void lg_cuda_allow_smem(void (*kernel)(P...), size_t smem) {
    lg_cuda_allow_smem_on((const void *)kernel, smem);
}

template <typename... P, typename... A>
void lg_cuda_launch_on(cudaStream_t s, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = s;
    cfg.attrs = attr, cfg.numAttrs = lg_cuda_pdl_enabled() ? 1 : 0;
    cudaLaunchKernelEx(&cfg, kernel, args...);
}

/* Every kernel launch of the backend: on the stream, or on the tape while
 * a step is being recorded (kernel, grid, block and argument bytes hashed;
 * struct arguments are built with their padding zeroed for that). */
template <typename... P, typename... A>
void lg_cuda_launch(lg_cuda_ctx *k, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A... args) {
    if (!lg_cuda_taping(k)) {
        lg_cuda_launch_on(k->stream, kernel, grid, block, smem, args...);
        return;
    }
    lg_cuda_tape_hash(k, &kernel, sizeof kernel);
    lg_cuda_tape_hash(k, &grid, sizeof grid);
    lg_cuda_tape_hash(k, &block, sizeof block);
    lg_cuda_tape_hash(k, &smem, sizeof smem);
    (lg_cuda_tape_hash(k, &args, sizeof args), ...);
    lg_cuda_tape_add(k, [=](cudaStream_t s) { lg_cuda_launch_on(s, kernel, grid, block, smem, args...); });
}

/* Device work space of at least bytes for the op being issued (contents
 * undefined; the next op's call may reuse it). NULL when out of memory. */
void *lg_cuda_scratch(lg_cuda_ctx *c, size_t bytes);

/* Whether the model took the bf16_activations option (the tensor-core
 * products and attention then drop the activations' lo halves). */
static inline bool lg_cuda_bf16_activations(const lg_cuda_ctx *k) {
    return ((const lg_cuda_backend *)k->base.backend)->bf16_activations;
}

/* Copies n bytes of host data to device memory valid for the rest of the
 * step (stream-ordered); when the ring is full the step goes on in a larger
 * one (the old one is freed once the stream is idle). */
const void *lg_cuda_upload(lg_cuda_ctx *c, const void *host, size_t n);
/* Frees the rings uploads outgrew (the stream must be idle). */
void lg_cuda_ring_release(lg_cuda_ctx *k);

/* The output gate's softplus (output_gate, and attention_gated as it writes). */
__device__ __forceinline__ float lg_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

__device__ __forceinline__ float lg_half_at(const uint8_t *p) { return __half2float(*(const __half *)p); }

/* 6-bit scale and min j of a Q4_K/Q5_K super-block (ggml's packing). */
__device__ __forceinline__ void lg_k4_scale_min_dev(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63, *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Value i of a row stored in dtype: the float types, and ggml's blocks as
 * src/quant/quant.h lays them out, dequantised with the CPU's arithmetic. */
__device__ __forceinline__ float lg_load(int dtype, const uint8_t *row, int64_t i) {
    switch (dtype) {
    case LG_DTYPE_F32: return ((const float *)row)[i];
    case LG_DTYPE_BF16: return __uint_as_float((uint32_t)((const uint16_t *)row)[i] << 16);
    case LG_DTYPE_F16: return __half2float(((const __half *)row)[i]);
    case LG_DTYPE_Q8_0: {
        const uint8_t *b = row + (i / 32) * 34;
        return lg_half_at(b) * (float)(int8_t)b[2 + i % 32];
    }
    case LG_DTYPE_Q4_0: {
        const uint8_t *b = row + (i / 32) * 18;
        int j = (int)(i % 32), q = j < 16 ? b[2 + j] & 0xF : b[2 + j - 16] >> 4;
        return (float)(q - 8) * lg_half_at(b);
    }
    case LG_DTYPE_Q5_0:
    case LG_DTYPE_Q5_1: {
        bool with_min = dtype == LG_DTYPE_Q5_1;
        const uint8_t *b = row + (i / 32) * (with_min ? 24 : 22);
        const uint8_t *qh = b + (with_min ? 4 : 2), *qs = qh + 4;
        uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
        int j = (int)(i % 32), q = (j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4) | (int)((h >> j) & 1) << 4;
        return with_min ? (float)q * lg_half_at(b) + lg_half_at(b + 2) : (float)(q - 16) * lg_half_at(b);
    }
    case LG_DTYPE_Q4_K:
    case LG_DTYPE_Q5_K: {
        bool five = dtype == LG_DTYPE_Q5_K;
        const uint8_t *b = row + (i / 256) * (five ? 176 : 144);
        int e = (int)(i % 256), g = e / 64, w = e % 64, l = w % 32, sc, m;
        lg_k4_scale_min_dev(2 * g + (w >= 32), b + 4, &sc, &m);
        const uint8_t *qs = b + (five ? 48 : 16);
        int q = w < 32 ? qs[32 * g + l] & 0xF : qs[32 * g + l] >> 4;
        if (five && (b[16 + l] >> (2 * g + (w >= 32)) & 1)) q += 16;
        return lg_half_at(b) * (float)sc * (float)q - lg_half_at(b + 2) * (float)m;
    }
    case LG_DTYPE_Q6_K: {
        const uint8_t *b = row + (i / 256) * 210;
        int e = (int)(i % 256), h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const int8_t *sc = (const int8_t *)(b + 192) + 8 * h;
        int lo = quarter & 1 ? ql[l + 32] : ql[l];
        int q = (quarter < 2 ? lo & 0xF : lo >> 4) | ((qh[l] >> (2 * quarter)) & 3) << 4;
        return lg_half_at(b + 208) * (float)sc[l / 16 + 2 * quarter] * (float)(q - 32);
    }
    default: return 0.0f;
    }
}

/* Weight dtypes the kernels read: every dtype the model loader takes. */
static inline bool lg_cuda_weight_dtype_ok(lg_dtype d) { return d != LG_DTYPE_I32 && d < LG_DTYPE_COUNT; }

/* A token's chosen experts at most: one a lane of a warp (combine_kernel's
 * ranking; lg_backend_ops.max_experts_per_token refuses larger configs). */
#define LG_CUDA_MAX_TOP_K 32

#define LG_CUDA_CTX(c) ((lg_cuda_ctx *)(c))

/* cuda_matmul.cu */
void lg_cuda_matmul_many(lg_backend_ctx *c, const lg_matmul_op *ops, int n_ops);
void lg_cuda_moe_experts(lg_backend_ctx *c, const lg_moe_args *a);
bool lg_cuda_moe_reads_h(lg_backend_ctx *c, int n, int top_k);
/* cuda_attention.cu */
void lg_cuda_attention(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                       const lg_attention_args *a);
void lg_cuda_attention_gated(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                             const lg_attention_args *a, const float *gate, bool per_head);
void lg_cuda_kv_write(lg_backend_ctx *c, const lg_kv_pool_view *pool, const lg_kv_write_args *a, const float *k,
                      const float *v);
/* Reads LAGUNA_CUDA_ATTN_GROUPS (default 128) and LAGUNA_CUDA_ATTN_DECODE_LOOP_MIN
 * (default 256 blocks) into the context: for tests and measuring. */
void lg_cuda_attention_settings(lg_cuda_ctx *k);
/* cuda_elementwise.cu */
void lg_cuda_embed(lg_backend_ctx *c, float *x, const lg_matrix *table, const int32_t *tokens, int n);
void lg_cuda_rmsnorm(lg_backend_ctx *c, float *y, const float *x, const float *w, int n_rows, int n, float eps);
void lg_cuda_rope(lg_backend_ctx *c, float *rows, int n_rows, int n_heads, int head_dim, int n_rot,
                  const float *inv_freq, float scale, const int32_t *pos);
void lg_cuda_output_gate(lg_backend_ctx *c, float *attn, const float *gate, int n_rows, int n_heads, int head_dim,
                         bool per_head);
void lg_cuda_silu_mul(lg_backend_ctx *c, float *out, const float *gate, const float *up, size_t n);
/* silu_mul over two ranges in one launch (either may be empty). */
void lg_cuda_silu_mul_pair(lg_backend_ctx *c, float *o1, const float *g1, const float *u1, size_t n1, float *o2,
                           const float *g2, const float *u2, size_t n2);
void lg_cuda_add(lg_backend_ctx *c, float *x, const float *y, size_t n);
void lg_cuda_gather_rows(lg_backend_ctx *c, float *dst, const float *src, const int32_t *rows, int n, int width);
void lg_cuda_add_rmsnorm(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w, int n_rows, int n,
                         float eps);
void lg_cuda_add_rmsnorm_matmul(lg_backend_ctx *c, float *x, const float *y, float *h, const float *w, int n_rows,
                                int n, float eps, const lg_matmul_op *op);
/* cuda_attention_inputs.cu */
void lg_cuda_attention_inputs(lg_backend_ctx *c, const lg_attention_inputs_args *a);
/* cuda_synth.cu */
const void *lg_cuda_synth_weights(lg_backend *be, lg_dtype dtype, int64_t rows, int64_t cols, size_t bytes, float std,
                                  uint64_t seed);
double lg_cuda_copy_bandwidth_gbps(lg_backend *be);
/* cuda_moe.cu */
void lg_cuda_router(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n);
void lg_cuda_route(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n,
                   const lg_moe_plan *plan, float *expert_in, const float *h, int hidden);
void lg_cuda_moe_group(lg_backend_ctx *c, const lg_moe_plan *plan, float *expert_in, const float *h,
                       const int32_t *ids, int n, int top_k, int n_experts, int hidden);
void lg_cuda_moe_combine(lg_backend_ctx *c, float *out, const lg_moe_plan *plan, const float *expert_out,
                         const float *weights, const float *shared, int n, int top_k, int hidden, float scale);
void lg_cuda_moe_combine_add_rmsnorm(lg_backend_ctx *c, const lg_combine_norm_args *a);

/* cuda_prefetch.cu; a recorded step that forked prefetches onto the side
 * stream joins it at its end (lg_cuda_prefetch_join: s waits for them) */
void lg_cuda_prefetch_weights(lg_backend_ctx *c, const lg_matrix *const *m, int n);
void lg_cuda_prefetch_join(lg_cuda_ctx *k, cudaStream_t s);
void lg_cuda_prefetcher_free(lg_cuda_ctx *k);

/* cuda_argmax.cu */
void lg_cuda_argmax_rows(lg_backend_ctx *c, int32_t *host_out, const float *logits, int n_rows,
                         int n_cols);

/* cuda_profile.cu (LAGUNA_CUDA_PROFILE=1) */
void lg_cuda_profile_wrap(lg_backend_ops *o);
void lg_cuda_skip_wrap(lg_backend_ops *o, const char *list);
void lg_cuda_profile_collect(lg_cuda_ctx *k);
void lg_cuda_profile_report(lg_cuda_ctx *k);

#endif
