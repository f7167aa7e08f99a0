/* The sparse MoE block's kernels on the GPU: router, grouping of (token,
 * expert) pairs by expert, and the weighted combine. The grouped expert
 * products are in cuda_matmul.cu. All of it runs without the host looking at
 * the routing, so a step needs no synchronisation. */
#include "backend/cuda/cuda_internal.h"

/* One thread per token: the same sequential selection as the CPU. */
__global__ void router_kernel(float *logits, int32_t *ids, float *weights, int n, int E, int K, float softcap,
                              const float *bias) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    float *score = logits + (size_t)t * E;
    int32_t *id = ids + (size_t)t * K;
    float *w = weights + (size_t)t * K;
    for (int e = 0; e < E; e++) {
        float x = score[e];
        if (softcap > 0) x = softcap * tanhf(x / softcap);
        score[e] = 1.0f / (1.0f + expf(-x));
    }
    float sum = 0;
    for (int j = 0; j < K; j++) { /* ties keep the lower id */
        int best = -1;
        float best_v = -INFINITY;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int i = 0; i < j; i++) taken |= id[i] == e;
            float v = score[e] + bias[e];
            if (!taken && (best < 0 || v > best_v)) best = e, best_v = v;
        }
        id[j] = best;
        w[j] = score[best];
        sum += score[best];
    }
    for (int j = 0; j < K; j++) w[j] /= sum;
}

void lg_cuda_router(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n) {
    if (n > 0)
        router_kernel<<<(n + 127) / 128, 128, 0, LG_CUDA_CTX(c)->stream>>>(logits, ids, weights, n, a->n_experts, a->top_k,
                                                                           a->softcap, a->bias);
}

/* A stable counting sort by one thread (a step has at most n_batch * top_k
 * pairs): grouped order is the CPU's, so results match it row for row. */
__global__ void group_kernel(int32_t *off, int32_t *rows, int32_t *pair_rows, const int32_t *ids, int pairs, int E) {
    for (int e = 0; e <= E; e++) off[e] = 0;
    for (int i = 0; i < pairs; i++) off[ids[i] + 1]++;
    for (int e = 0; e < E; e++) off[e + 1] += off[e];
    for (int i = 0; i < pairs; i++) { /* off[e] is the next free row of e while placing */
        int r = off[ids[i]]++;
        rows[r] = i;
        pair_rows[i] = r;
    }
    for (int e = E; e > 0; e--) off[e] = off[e - 1]; /* back to starts */
    off[0] = 0;
}

__global__ void gather_pairs_kernel(float *expert_in, const float *h, const int32_t *rows, int top_k, int hidden) {
    const float *src = h + (size_t)(rows[blockIdx.x] / top_k) * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) expert_in[(size_t)blockIdx.x * hidden + i] = src[i];
}

void lg_cuda_moe_group(lg_backend_ctx *c, const lg_moe_plan *plan, float *expert_in, const float *h,
                       const int32_t *ids, int n, int top_k, int n_experts, int hidden) {
    cudaStream_t s = LG_CUDA_CTX(c)->stream;
    int pairs = n * top_k;
    group_kernel<<<1, 1, 0, s>>>(plan->offsets, plan->rows, plan->pair_rows, ids, pairs, n_experts);
    if (pairs > 0) gather_pairs_kernel<<<pairs, 256, 0, s>>>(expert_in, h, plan->rows, top_k, hidden);
}

/* One block per token: its pairs summed in ascending expert order (the
 * order the CPU's grouped loop adds them in; grouped rows ascend with the
 * expert, so sorting a token's pairs by grouped row gives it), then scaled,
 * then the shared expert added. Under expert parallelism only the pairs of
 * this device's experts (grouped rows [offsets[first], offsets[last])) count. */
__global__ void combine_kernel(float *out, const int32_t *pair_rows, const float *expert_out, const float *weights,
                               const float *shared, int top_k, int hidden, float scale, const int32_t *offsets,
                               int first, int last) {
    int t = blockIdx.x;
    int row[32], slot[32], lo = offsets ? offsets[first] : 0, hi = offsets ? offsets[last] : 1 << 30, kept = 0;
    for (int k = 0; k < top_k; k++) {
        int r = pair_rows[t * top_k + k];
        if (r >= lo && r < hi) row[kept] = r, slot[kept++] = k;
    }
    for (int a = 1; a < kept; a++) /* insertion sort by grouped row */
        for (int b = a; b > 0 && row[b] < row[b - 1]; b--) {
            int r = row[b], s = slot[b];
            row[b] = row[b - 1], slot[b] = slot[b - 1];
            row[b - 1] = r, slot[b - 1] = s;
        }
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        float acc = 0;
        for (int k = 0; k < kept; k++) acc += weights[t * top_k + slot[k]] * expert_out[(size_t)row[k] * hidden + i];
        acc *= scale;
        if (shared) acc += shared[(size_t)t * hidden + i];
        out[(size_t)t * hidden + i] = acc;
    }
}

void lg_cuda_moe_combine(lg_backend_ctx *c, float *out, const lg_moe_plan *plan, const float *expert_out,
                         const float *weights, const float *shared, int n, int top_k, int hidden, float scale) {
    bool all = plan->expert_begin == 0 && plan->expert_end == 0;
    if (n > 0)
        combine_kernel<<<n, 256, 0, LG_CUDA_CTX(c)->stream>>>(out, plan->pair_rows, expert_out, weights, shared, top_k,
                                                               hidden, scale, all ? NULL : plan->offsets,
                                                               plan->expert_begin, plan->expert_end);
}
