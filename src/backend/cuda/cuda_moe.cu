/* The sparse MoE block's kernels on the GPU: router, grouping of (token,
 * expert) pairs by expert, and the weighted combine. The grouped expert
 * products are in cuda_matmul.cu. All of it runs without the host looking at
 * the routing, so a step needs no synchronisation. */
#include <stdint.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_matmul.h"
#include "backend/cuda/cuda_norm.h"

/* One thread per token: the same sequential selection as the CPU. */
__global__ void router_kernel(float *logits, int32_t *ids, float *weights, int n, int E, int K, float softcap,
                              const float *bias) {
    lg_cuda_kernel_begin();
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

/* One warp per token, the same selection as router_kernel: lane l holds
 * experts l, l + 32, ... and keeps its best untaken one (highest score +
 * bias, ties to the lower id); each round a warp maximum of the lanes' keys
 * and a minimum of the ids that hold it pick the expert, and only the lane
 * that gave it looks for its next best (two warp reductions a round instead
 * of a butterfly of 15 shuffles). The chosen scores are summed in round
 * order as the CPU sums them. A NaN ranks below every number. */
#define ROUTER_WARP_MAX_EXPERTS 512 /* and top_k <= 32 */

/* A selection value as a key whose unsigned order is the float order (-0
 * and +0 alike); NaN is 1, below every number, and 0 means none. */
__device__ __forceinline__ uint32_t selection_key(float v) {
    if (v != v) return 1u;
    uint32_t b = __float_as_uint(v + 0.0f);
    return b & 0x80000000u ? ~b : b | 0x80000000u;
}

/* Expert e's score for token t (written over its logit) and its selection key. */
__device__ __forceinline__ float expert_score(float *logits, int t, int e, int E, float softcap, const float *bias,
                                              uint32_t *key) {
    float x = logits[(size_t)t * E + e];
    if (softcap > 0) x = softcap * tanhf(x / softcap);
    float sc = 1.0f / (1.0f + expf(-x));
    logits[(size_t)t * E + e] = sc;
    *key = selection_key(sc + bias[e]);
    return sc;
}

/* Token t's selection by the calling warp; the scores and keys computed here,
 * or (pre_sc, pre_key: [tokens][E], shared memory) by the whole block before. */
__device__ void route_token(float *logits, int32_t *ids, float *weights, int t, int E, int K, float softcap,
                            const float *bias, const float *pre_sc = NULL, const uint32_t *pre_key = NULL,
                            int32_t *ids_shared = NULL) {
    const unsigned all = 0xffffffffu;
    int lane = threadIdx.x & 31;
    /* this lane's experts' scores and selection keys stay in registers for the rounds */
    float sc[ROUTER_WARP_MAX_EXPERTS / 32];
    uint32_t key[ROUTER_WARP_MAX_EXPERTS / 32];
#pragma unroll
    for (int i = 0; i < ROUTER_WARP_MAX_EXPERTS / 32; i++) {
        int e = lane + 32 * i;
        if (e >= E) {
            sc[i] = 0.0f, key[i] = 0u;
            continue;
        }
        if (pre_sc) sc[i] = pre_sc[t * E + e], key[i] = pre_key[t * E + e];
        else sc[i] = expert_score(logits, t, e, E, softcap, bias, &key[i]);
    }
    float sum = 0, my_score = 0;
    int my_id = 0; /* lane j < K keeps the id (and score) of round j */
    bool rescan = true;
    uint32_t best_key = 0;
    int best_i = 0;
    float best_sc = 0.0f;
    for (int j = 0; j < K; j++) {
        if (rescan) { /* this lane's best untaken expert (taken ones have key 0) */
            best_key = 0, best_i = 0, best_sc = 0.0f;
#pragma unroll
            for (int i = 0; i < ROUTER_WARP_MAX_EXPERTS / 32; i++)
                if (key[i] > best_key) best_key = key[i], best_i = i, best_sc = sc[i];
            rescan = false;
        }
        uint32_t top = __reduce_max_sync(all, best_key);
        if (!top) { /* fewer experts than K (no config has that): no id, no score */
            if (lane == j) my_id = -1, my_score = 0.0f;
            continue;
        }
        int best = (int)__reduce_min_sync(all, best_key == top ? (uint32_t)(lane + 32 * best_i) : 0xffffffffu);
        float best_s = __shfl_sync(all, best_sc, best & 31);
        if ((best & 31) == lane) {
#pragma unroll
            for (int i = 0; i < ROUTER_WARP_MAX_EXPERTS / 32; i++)
                if (i == best_i) key[i] = 0u;
            rescan = true;
        }
        if (lane == j) my_id = best, my_score = best_s;
        sum += best_s;
    }
    if (lane < K) {
        ids[(size_t)t * K + lane] = my_id;
        weights[(size_t)t * K + lane] = my_score / sum;
        if (ids_shared) ids_shared[lane] = my_id;
    }
}

__global__ void router_warp_kernel(float *logits, int32_t *ids, float *weights, int n, int E, int K, float softcap,
                                   const float *bias) {
    lg_cuda_kernel_begin();
    int t = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (t < n) route_token(logits, ids, weights, t, E, K, softcap, bias);
}

void lg_cuda_router(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n) {
    if (n <= 0) return;
    if (a->n_experts <= ROUTER_WARP_MAX_EXPERTS && a->top_k <= 32)
        lg_cuda_launch(LG_CUDA_CTX(c), router_warp_kernel, (n + 3) / 4, 128, 0, logits, ids, weights, n, a->n_experts, a->top_k, a->softcap, a->bias);
    else
        lg_cuda_launch(LG_CUDA_CTX(c), router_kernel, (n + 127) / 128, 128, 0, logits, ids, weights, n, a->n_experts, a->top_k, a->softcap, a->bias);
}

/* Grouping in one block: a histogram of the pairs per expert, a scan to
 * the offsets, then each pair takes the next free row of its expert. The
 * order of pairs within an expert is whatever the atomics give: it changes
 * no value, since an expert's rows are computed independently of each other
 * and combine_kernel adds a token's pairs in expert order. Also lists the
 * experts that have rows (active[0] = how many, then the ids ascending), so
 * the expert products launch blocks for those only (under expert
 * parallelism, those of this device's range, counted from its first).
 * For a prompt's pairs (busiest_first) the list goes by rows, most first
 * (ties by id): a grouped launch's blocks start in the list's order
 * (blockIdx.z) and an expert's blocks loop over its token tiles, so the
 * busiest expert listed late would run on alone at the launch's end. */
#define GROUP_THREADS 1024
#define GROUP_GATHER_MAX (64 << 10) /* values the grouping block gathers itself (a decode step's) */
#define GROUP_GATHER_PAIRS 1024    /* and pairs (their tokens sit in shared memory) */
#define GATHER_LOADS 4

struct group_args {
    int32_t *off, *rows, *pair_rows, *active;
    const int32_t *ids;
    int pairs, E, first, last;
    float *expert_in; /* NULL: gathered by gather_pairs_kernel */
    const float *h;
    int top_k, hidden;
    bool busiest_first; /* the active list by rows, most first */
};

/* The grouping block's shared memory in ints: a counter per expert, and a
 * token per pair when it gathers (the route kernel's scores follow). */
__host__ __device__ __forceinline__ size_t group_ints(const group_args &g) {
    return (size_t)g.E + (g.expert_in ? (size_t)g.pairs : 0);
}
#define ROUTE_SCORED_BY_BLOCK 4096 /* tokens x experts the route kernel scores with the whole block */

/* Bytes of shared memory after the grouping's for the route kernel's scores
 * and keys of n tokens over E experts; 0: each selecting warp scores its own. */
__host__ __device__ __forceinline__ size_t route_scored_bytes(int n, int E) {
    return (size_t)n * E <= ROUTE_SCORED_BY_BLOCK ? (sizeof(float) + sizeof(uint32_t)) * (size_t)n * E : 0;
}

/* The grouping, by the whole block. */
__device__ void group_pairs(const group_args &g) {
    int32_t *off = g.off, *rows = g.rows, *pair_rows = g.pair_rows, *active = g.active;
    const int32_t *ids = g.ids;
    int pairs = g.pairs, E = g.E, first = g.first, last = g.last, top_k = g.top_k, hidden = g.hidden;
    float *expert_in = g.expert_in;
    const float *h = g.h;
    extern __shared__ int32_t next[]; /* [E], then token [pairs] */
    for (int e = threadIdx.x; e < E; e += blockDim.x) next[e] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < pairs; i += blockDim.x) atomicAdd(&next[ids[i]], 1);
    __syncthreads();
    if (threadIdx.x < 32) { /* warp 0: lane l scans a contiguous run of experts */
        int lane = threadIdx.x, per = (E + 31) / 32, e0 = lane * per, e1 = min(e0 + per, E);
        int count = 0, n_active = 0;
        for (int e = e0; e < e1; e++) count += next[e], n_active += next[e] > 0 && e >= first && e < last;
        int start = count, active_start = n_active; /* inclusive scans, then made exclusive */
        for (int d = 1; d < 32; d <<= 1) {
            int x = __shfl_up_sync(0xffffffffu, start, d), y = __shfl_up_sync(0xffffffffu, active_start, d);
            if (lane >= d) start += x, active_start += y;
        }
        start -= count, active_start -= n_active;
        for (int e = e0; e < e1; e++) {
            int c = next[e];
            off[e] = start;
            if (c > 0 && e >= first && e < last) active[1 + active_start++] = e - first;
            next[e] = start;
            start += c;
        }
        if (lane == 31) off[E] = start, active[0] = active_start;
    }
    __syncthreads();
    int32_t *token = next + E; /* [pairs] when gathering: each grouped row's token */
    for (int i = threadIdx.x; i < pairs; i += blockDim.x) {
        int r = atomicAdd(&next[ids[i]], 1);
        rows[r] = i;
        pair_rows[i] = r;
        if (expert_in) token[r] = i / top_k;
    }
    if (g.busiest_first) {
        __syncthreads(); /* every row taken: next[e] = off[e + 1] */
        for (int e = threadIdx.x; e < E; e += blockDim.x) next[e] -= off[e];
        __syncthreads();
        for (int e = first + threadIdx.x; e < last; e += blockDim.x) {
            int c = next[e], rank = 0;
            if (c == 0) continue;
            for (int o = first; o < last; o++) rank += next[o] > c || (next[o] == c && o < e);
            active[1 + rank] = e - first;
        }
    }
    if (!expert_in) return;
    /* few pairs (decoding): their rows gathered here rather than in a launch of
     * their own, GATHER_LOADS pieces a thread in flight at once */
    __syncthreads();
    const float *__restrict__ src = h;
    float *__restrict__ dst = expert_in;
    bool vec = (hidden & 3) == 0 && ((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 15) == 0;
    int width = vec ? hidden / 4 : hidden, total = pairs * width;
    for (int i0 = threadIdx.x; i0 < total; i0 += blockDim.x * GATHER_LOADS) {
        float4 v[GATHER_LOADS];
#pragma unroll
        for (int u = 0; u < GATHER_LOADS; u++) {
            int i = i0 + u * blockDim.x;
            if (i >= total) break;
            size_t from = (size_t)token[i / width] * width + i % width;
            if (vec) v[u] = __ldg((const float4 *)src + from);
            else v[u].x = __ldg(src + from);
        }
#pragma unroll
        for (int u = 0; u < GATHER_LOADS; u++) {
            int i = i0 + u * blockDim.x;
            if (i >= total) break;
            if (vec) ((float4 *)dst)[i] = v[u];
            else dst[i] = v[u].x;
        }
    }
}

/* group_pairs for one token (a decode step of one sequence), its ids in
 * shared memory: its top_k experts are distinct, so an expert has at most
 * one row and a pair's row is the number of chosen experts below its own.
 * The same plan (offsets, rows, pair rows, active list) and gathered rows as
 * group_pairs, without its histogram, scan, atomics and their barriers. */
__device__ void group_one_token(const group_args &g, const int32_t *ids) {
    int K = g.pairs;
    for (int e = threadIdx.x; e <= g.E; e += blockDim.x) {
        int below = 0, below_here = 0, here = 0;
        bool chosen = false;
        for (int j = 0; j < K; j++) {
            bool in = ids[j] >= g.first && ids[j] < g.last; /* this device's experts */
            below += ids[j] < e, chosen |= ids[j] == e;
            below_here += in && ids[j] < e, here += in;
        }
        g.off[e] = below;
        if (chosen && e >= g.first && e < g.last) g.active[1 + below_here] = e - g.first;
        if (e == g.E) g.active[0] = here;
    }
    for (int i = threadIdx.x; i < K; i += blockDim.x) {
        int r = 0;
        for (int j = 0; j < K; j++) r += ids[j] < ids[i];
        g.rows[r] = i;
        g.pair_rows[i] = r;
    }
    if (!g.expert_in) return;
    /* every pair's row is the token's row of h */
    const float *__restrict__ src = g.h;
    float *__restrict__ dst = g.expert_in;
    bool vec = (g.hidden & 3) == 0 && ((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 15) == 0;
    int width = vec ? g.hidden / 4 : g.hidden;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        if (vec) {
            float4 v = __ldg((const float4 *)src + i);
            for (int r = 0; r < K; r++) ((float4 *)dst)[(size_t)r * width + i] = v;
        } else {
            float v = __ldg(src + i);
            for (int r = 0; r < K; r++) dst[(size_t)r * width + i] = v;
        }
    }
}

/* LAGUNA_CUDA_ROUTE_ONE=0: one token's pairs grouped by group_pairs too (measuring). */
static bool route_one_enabled(void) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_ROUTE_ONE");
    return on;
}

__global__ void __launch_bounds__(GROUP_THREADS) group_kernel(const group_args g) {
    lg_cuda_kernel_begin();
    group_pairs(g);
}

/* router_warp_kernel and group_kernel in one launch, for few tokens (a
 * decode step): warp t selects token t's experts, then the block groups. */
__global__ void __launch_bounds__(GROUP_THREADS) route_group_kernel(float *logits, float *weights, float softcap,
                                                                    const float *bias, int n, const group_args g,
                                                                    bool one) {
    lg_cuda_kernel_begin();
    /* few tokens: the scores by the whole block, one expert a thread, then a warp a token selects (the
     * sigmoid of every expert was most of the selecting warp's serial instructions) */
    extern __shared__ int32_t shared_ints[];
    float *pre_sc = NULL;
    uint32_t *pre_key = NULL;
    if (route_scored_bytes(n, g.E)) {
        pre_sc = (float *)(shared_ints + group_ints(g));
        pre_key = (uint32_t *)(pre_sc + n * g.E);
        for (int i = threadIdx.x; i < n * g.E; i += blockDim.x)
            pre_sc[i] = expert_score(logits, i / g.E, i % g.E, g.E, softcap, bias, &pre_key[i]);
        __syncthreads();
    }
    __shared__ int32_t one_ids[32]; /* one: the token's ids, for group_one_token */
    int t = threadIdx.x >> 5;
    if (t < n)
        route_token(logits, (int32_t *)g.ids, weights, t, g.E, g.top_k, softcap, bias, pre_sc, pre_key,
                    one ? one_ids : NULL);
    __syncthreads(); /* the ids, written by this block, are visible to it */
    bool every_id = true; /* (route_token leaves -1 only with fewer experts than top_k) */
    if (one)
        for (int j = 0; j < g.pairs; j++) every_id &= one_ids[j] >= 0;
    if (one && every_id) group_one_token(g, one_ids);
    else group_pairs(g);
}

/* A block per pair: its token's row of h copied, 16 bytes a thread when
 * rows are whole float4 (a prompt's pairs: 256 single floats a block made
 * the copy ~3x slower than its bytes). */
__global__ void gather_pairs_kernel(float *expert_in, const float *h, const int32_t *rows, int top_k, int hidden) {
    lg_cuda_kernel_begin();
    const float *src = h + (size_t)(rows[blockIdx.x] / top_k) * hidden;
    float *dst = expert_in + (size_t)blockIdx.x * hidden;
    if (hidden % 4 == 0 && (((uintptr_t)h | (uintptr_t)expert_in) & 15) == 0) {
        for (int i = threadIdx.x; i < hidden / 4; i += blockDim.x) ((float4 *)dst)[i] = ((const float4 *)src)[i];
    } else {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = src[i];
    }
}

static group_args grouping(lg_cuda_ctx *k, const lg_moe_plan *plan, float *expert_in, const float *h,
                           const int32_t *ids, int n, int top_k, int n_experts, int hidden) {
    group_args g;
    memset(&g, 0, sizeof g); /* padding too: a recorded step compares arguments bytewise */
    g.pairs = n * top_k;
    lg_moe_plan_experts(plan, n_experts, &g.first, &g.last); /* the active list: this device's experts, from first */
    g.off = plan->offsets, g.rows = plan->rows, g.pair_rows = plan->pair_rows, g.active = k->moe_active;
    g.ids = ids, g.E = n_experts, g.h = h, g.top_k = top_k, g.hidden = hidden;
    g.expert_in = (size_t)g.pairs * hidden <= GROUP_GATHER_MAX && g.pairs <= GROUP_GATHER_PAIRS ? expert_in : NULL;
    /* LAGUNA_CUDA_MOE_BUSIEST_FIRST=0: the list by id (measuring) */
    static const bool busiest_first = lg_cuda_switch_on("LAGUNA_CUDA_MOE_BUSIEST_FIRST");
    g.busiest_first = busiest_first && g.pairs > GROUP_GATHER_PAIRS;
    return g;
}

static size_t group_smem(const group_args &g) { return sizeof(int32_t) * group_ints(g); }

static void gather_rest(lg_cuda_ctx *k, const group_args &g, float *expert_in) {
    if (g.pairs > 0 && !g.expert_in && expert_in)
        lg_cuda_launch(k, gather_pairs_kernel, dim3(g.pairs), 256, 0, expert_in, g.h, g.rows, g.top_k, g.hidden);
}

/* Gathers into x the rows of the ops of s that read them through a map,
 * each distinct x once, clearing the maps from the ops: for every product
 * path but the packed GEMM, which packs the rows from where they are. */
void lg_cuda_set_settle(lg_cuda_ctx *k, matmul_set *s) {
    for (int i = 0; i < s->n; i++) {
        const matmul_args a = s->op[i];
        if (a.x_map && a.x_rows > 0)
            lg_cuda_launch(k, gather_pairs_kernel, dim3((unsigned)a.x_rows), 256, 0, (float *)a.x, a.x_from, a.x_map,
                           a.x_map_div, a.cols);
        for (int j = i; j < s->n && a.x_map; j++)
            if (s->op[j].x == a.x) {
                matmul_args &o = s->op[j];
                o.x_from = NULL, o.x_map = NULL, o.x_map_div = 0;
            }
    }
}

void lg_cuda_moe_group(lg_backend_ctx *c, const lg_moe_plan *plan, float *expert_in, const float *h,
                       const int32_t *ids, int n, int top_k, int n_experts, int hidden) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    group_args g = grouping(k, plan, expert_in, h, ids, n, top_k, n_experts, hidden);
    lg_cuda_launch(k, group_kernel, 1, GROUP_THREADS, group_smem(g), g);
    gather_rest(k, g, expert_in);
}

void lg_cuda_route(lg_backend_ctx *c, const lg_router_args *a, float *logits, int32_t *ids, float *weights, int n,
                   const lg_moe_plan *plan, float *expert_in, const float *h, int hidden) {
    static const bool fused = lg_cuda_switch_on("LAGUNA_CUDA_ROUTE");
    bool few = n > 0 && n <= GROUP_THREADS / 32 && a->n_experts <= ROUTER_WARP_MAX_EXPERTS && a->top_k <= 32;
    if (!fused || !few) {
        lg_backend_route_by_parts(c, a, logits, ids, weights, n, plan, expert_in, h, hidden);
        return;
    }
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    group_args g = grouping(k, plan, expert_in, h, ids, n, a->top_k, a->n_experts, hidden);
    bool one = n == 1 && route_one_enabled(); /* (few: top_k <= 32, one_ids' size) */
    lg_cuda_launch(k, route_group_kernel, 1, GROUP_THREADS, group_smem(g) + route_scored_bytes(n, a->n_experts), logits,
                   weights, a->softcap, a->bias, n, g, one);
    gather_rest(k, g, expert_in);
}

/* Token t's kept pairs for the combine: the grouped rows of its choices
 * (under expert parallelism only those of this device's experts, grouped
 * rows [offsets[first], offsets[last])) and their weights, sorted by row,
 * which is ascending expert order (the order the CPU's grouped loop adds
 * them in). The first warp sorts them once for the block (a lane's rank: the
 * kept pairs with a lower row; rows are distinct), not every thread in
 * local memory (most of the kernel's time over a prompt's tokens once). The
 * caller syncs the block before reading them. */
struct token_pairs {
    int32_t row[LG_CUDA_MAX_TOP_K];
    float wt[LG_CUDA_MAX_TOP_K];
    int kept;
};

__device__ __forceinline__ void sort_token_pairs(token_pairs *p, int t, const int32_t *pair_rows, const float *weights,
                                                 int top_k, const int32_t *offsets, int first, int last) {
    static_assert(LG_CUDA_MAX_TOP_K <= 32, "a token's choices: a lane each");
    if (threadIdx.x >= 32) return;
    int lane = threadIdx.x, lo = offsets ? offsets[first] : 0, hi = offsets ? offsets[last] : 1 << 30;
    int32_t r = 0;
    float w = 0.0f;
    if (lane < top_k) r = pair_rows[t * top_k + lane], w = weights[t * top_k + lane];
    uint32_t in = __ballot_sync(0xffffffffu, lane < top_k && r >= lo && r < hi);
    int rank = 0;
    for (int j = 0; j < top_k; j++) {
        int32_t rj = __shfl_sync(0xffffffffu, r, j);
        rank += (int)((in >> j) & 1u) & (rj < r);
    }
    if ((in >> lane) & 1u) p->row[rank] = r, p->wt[rank] = w;
    if (lane == 0) p->kept = __popc(in);
}

/* A pair's term added to a combined element, and the sum scaled with the
 * shared expert's element added: explicit roundings, so every kernel that
 * combines gives the same bits whatever the compiler contracts. */
__device__ __forceinline__ float combine_term(float acc, float wt, float v) { return __fmaf_rn(wt, v, acc); }
__device__ __forceinline__ float combine_finish(float acc, float scale, bool has_shared, float shared) {
    acc = __fmul_rn(acc, scale);
    return has_shared ? __fadd_rn(acc, shared) : acc;
}

/* A block per token and 256 of its elements: the token's pairs summed in
 * ascending expert order, then scaled, then the shared expert added. */
__global__ void combine_kernel(float *out, const int32_t *pair_rows, const float *expert_out, const float *weights,
                               const float *shared, int top_k, int hidden, float scale, const int32_t *offsets,
                               int first, int last) {
    __shared__ token_pairs p;
    lg_cuda_kernel_begin();
    int t = blockIdx.x, i = blockIdx.y * blockDim.x + threadIdx.x;
    sort_token_pairs(&p, t, pair_rows, weights, top_k, offsets, first, last);
    __syncthreads();
    if (i >= hidden) return;
    float acc = 0;
    for (int k = 0; k < p.kept; k++) acc = combine_term(acc, p.wt[k], expert_out[(size_t)p.row[k] * hidden + i]);
    size_t at = (size_t)t * hidden + i;
    out[at] = combine_finish(acc, scale, shared != NULL, shared ? shared[at] : 0.0f);
}

/* combine_kernel, then the residual add and the next norm over the token's
 * row (rmsnorm_kernel<true>: x += out, h = rmsnorm(x) with w), a block per
 * token of NORM_THREADS, PT elements a thread (rows up to NORM_THREADS *
 * PT): the same values and the same reduction order as the two kernels
 * (the elements past PT that rmsnorm_kernel holds are zeroes, which add
 * nothing to its sum), one launch fewer. One block does what combine_kernel
 * spread over a row's blocks, so its loads are issued COMBINE_BATCH pairs at
 * a time, with the shared expert's and x's elements: a pair at a time, the
 * kernel took ~20 us of a decode step (eight round trips while the next
 * product's weights stream), against ~11 for the two kernels. */
#define COMBINE_BATCH 8

template <int PT>
__global__ void __launch_bounds__(NORM_THREADS)
    combine_norm_kernel(float *out, float *x, float *h, const float *norm, const int32_t *pair_rows,
                        const float *expert_out, const float *weights, const float *shared, int top_k, int H,
                        float scale, float eps, const int32_t *offsets, int first, int last) {
    __shared__ token_pairs p;
    int t = blockIdx.x;
    float wv[PT], acc[PT], xv[PT], sv[PT];
    norm_weights<PT>(wv, norm, H);
    lg_cuda_kernel_begin();
    sort_token_pairs(&p, t, pair_rows, weights, top_k, offsets, first, last);
    float *xr = x + (size_t)t * H, *hr = h + (size_t)t * H, *outr = out + (size_t)t * H;
    const float *sr = shared ? shared + (size_t)t * H : NULL;
#pragma unroll
    for (int u = 0; u < PT; u++) {
        int i = threadIdx.x + u * NORM_THREADS;
        acc[u] = 0.0f;
        xv[u] = i < H ? xr[i] : 0.0f;
        sv[u] = sr && i < H ? sr[i] : 0.0f;
    }
    __syncthreads();
    for (int k0 = 0; k0 < p.kept; k0 += COMBINE_BATCH) {
        float v[COMBINE_BATCH][PT];
#pragma unroll
        for (int kk = 0; kk < COMBINE_BATCH; kk++) {
            const float *src = expert_out + (size_t)p.row[k0 + kk < p.kept ? k0 + kk : k0] * H;
#pragma unroll
            for (int u = 0; u < PT; u++) {
                int i = threadIdx.x + u * NORM_THREADS;
                v[kk][u] = k0 + kk < p.kept && i < H ? src[i] : 0.0f;
            }
        }
#pragma unroll
        for (int kk = 0; kk < COMBINE_BATCH; kk++) {
            if (k0 + kk >= p.kept) break;
#pragma unroll
            for (int u = 0; u < PT; u++) acc[u] = combine_term(acc[u], p.wt[k0 + kk], v[kk][u]);
        }
    }
    double ss = 0;
#pragma unroll
    for (int u = 0; u < PT; u++) {
        int i = threadIdx.x + u * NORM_THREADS;
        if (i >= H) break;
        float y = combine_finish(acc[u], scale, sr != NULL, sv[u]);
        outr[i] = y;
        xv[u] += y;
        xr[i] = xv[u];
        ss += (double)xv[u] * xv[u];
    }
    float inv = norm_inverse(norm_block_sum(ss), H, eps);
#pragma unroll
    for (int u = 0; u < PT; u++) {
        int i = threadIdx.x + u * NORM_THREADS;
        if (i < H) hr[i] = xv[u] * inv * wv[u];
    }
}

/* The pairs the combine adds: all, or this device's experts' (offsets). */
static const int32_t *combine_offsets(const lg_moe_plan *plan) {
    bool all = plan->expert_begin == 0 && plan->expert_end == 0;
    return all ? NULL : plan->offsets;
}

void lg_cuda_moe_combine(lg_backend_ctx *c, float *out, const lg_moe_plan *plan, const float *expert_out,
                         const float *weights, const float *shared, int n, int top_k, int hidden, float scale) {
    if (n > 0)
        lg_cuda_launch(LG_CUDA_CTX(c), combine_kernel, dim3(n, (hidden + 255) / 256), 256, 0, out, plan->pair_rows,
                       expert_out, weights, shared, top_k, hidden, scale, combine_offsets(plan), plan->expert_begin,
                       plan->expert_end);
}

/* LAGUNA_CUDA_COMBINE_NORM=0: the combine and the norm in launches of their own (measuring). */
void lg_cuda_moe_combine_add_rmsnorm(lg_backend_ctx *c, const lg_combine_norm_args *a) {
    static const bool fused = lg_cuda_switch_on("LAGUNA_CUDA_COMBINE_NORM");
    if (!fused || a->hidden > NORM_THREADS * NORM_PER_THREAD) { /* not through the ops table: a profile's
                                                                 * timings would nest */
        lg_cuda_moe_combine(c, a->out, a->plan, a->expert_out, a->weights, a->shared, a->n, a->top_k, a->hidden,
                            a->scale);
        lg_cuda_add_rmsnorm(c, a->x, a->out, a->h, a->norm, a->n, a->hidden, a->eps);
        return;
    }
    if (a->n > 0)
        lg_cuda_launch(LG_CUDA_CTX(c),
                       a->hidden <= NORM_THREADS * NORM_PER_THREAD / 2 ? combine_norm_kernel<NORM_PER_THREAD / 2>
                                                                       : combine_norm_kernel<NORM_PER_THREAD>,
                       a->n, NORM_THREADS, 0, a->out, a->x, a->h, a->norm, a->plan->pair_rows, a->expert_out,
                       a->weights, a->shared, a->top_k, a->hidden, a->scale, a->eps, combine_offsets(a->plan),
                       a->plan->expert_begin, a->plan->expert_end);
}
