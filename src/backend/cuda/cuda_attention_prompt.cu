/* Prompt tiles' attention on tensor cores over a bf16 pool: the chunks,
 * scores, softmax, merges and split records of attention_mma_kernel
 * (cuda_attention_mma.cu), so a pair gets the same bits from either, with
 * the staging done differently:
 * - the step's own key and value rows (float32) are split into bf16 hi/lo
 *   once per launch (split_fresh_kernel), not once per chunk and block; a
 *   pool row is its own hi half and its lo is zero, so every row of a chunk
 *   is copied (cp.async) straight into its stage, three chunks in flight;
 * - a warp takes its 16 pairs' whole chunk (all 32 keys of the scores, all
 *   16 dim tiles of the outputs), so the scores stay in registers: no
 *   exchange through shared memory and one barrier a chunk, where the
 *   general kernel's two warps a row tile exchange the scores and both run
 *   the softmax (four barriers a chunk).
 * Head sizes 72..128 in steps of 8 (16 dim tiles, rows in 16-byte pieces).
 * LO false (a.hi_only: the bf16_activations option): no lo halves staged
 * or multiplied, as the general kernel takes them to be zero. */
#include "backend/cuda/cuda_attention_tc.h"

#define PROMPT_WARPS 8 /* 128 pairs: MMA_MAX_PAIRS */
#define PROMPT_STAGES 3

/* Row r's key and value halves, planes [k hi, k lo, v hi, v lo] of
 * split_rows x n_kv_heads x head_dim bf16 each: split4 of the float rows,
 * the halves the general kernel makes of them. */
__global__ void split_fresh_kernel(const chunk_args a) {
    int r = blockIdx.x, width = a.n_kv_heads * a.head_dim;
    size_t plane = (size_t)a.split_rows * width, at = (size_t)r * width;
    lg_cuda_kernel_begin();
    uint16_t *kv = a.split_kv;
    for (int e = threadIdx.x * 4; e < width; e += blockDim.x * 4) {
        uint2 h, l;
        bool unused = false;
        split4(*(const float4 *)(a.fresh_k + at + e), &h, &l, &unused);
        *(uint2 *)(kv + at + e) = h;
        if (!a.hi_only) *(uint2 *)(kv + plane + at + e) = l;
        split4(*(const float4 *)(a.fresh_v + at + e), &h, &l, &unused);
        *(uint2 *)(kv + 2 * plane + at + e) = h;
        if (!a.hi_only) *(uint2 *)(kv + 3 * plane + at + e) = l;
    }
}

/* The kernel's shared memory, bf16 rows of D + 8 elements (ldmatrix rows on
 * distinct banks): q hi (and with LO q lo) per pair, then PROMPT_STAGES
 * stages of k hi, (k lo,) v hi, (v lo) rows per key. */
template <int WARPS, bool LO> struct prompt_layout {
    static constexpr int D = 128, RS = D + 8, PAIRS = WARPS * 16;
    static constexpr int PLANES = LO ? 2 : 1; /* hi, lo */
    static constexpr int STAGE = 2 * PLANES * CHUNK * RS;
    static constexpr size_t bytes =
        sizeof(__nv_bfloat16) * ((size_t)PLANES * PAIRS * RS + (size_t)PROMPT_STAGES * STAGE);
};

/* Grid (tile, KV head) in a loop launch, (tile, KV head, chunk slot) in a
 * split one (SPLIT: a.split), as the general kernel; shared memory as
 * prompt_layout. BLOCKS: blocks an SM the registers are held to (two fit
 * only without lo halves: 104 KB of shared memory a block). A loop launch's
 * kernel has no records' code: ncu found their stores issued, predicated
 * off, beside every output mma. */
template <int WARPS, int NP, bool LO, int BLOCKS, bool SPLIT>
__global__ void __launch_bounds__(WARPS * 32, BLOCKS) attention_prompt_kernel(chunk_args a) {
    using layout = prompt_layout<WARPS, LO>;
    constexpr int D = layout::D, RS = layout::RS, PAIRS = layout::PAIRS;
    constexpr int PLANES = layout::PLANES, STAGE = layout::STAGE;
    constexpr int KSTEPS = D / 16, UNITS = D / 8, THREADS = WARPS * 32;
    constexpr int KEYS = CHUNK * UNITS / THREADS; /* a thread's (key, unit) copies */
    static_assert(CHUNK * UNITS % THREADS == 0, "a chunk's copies: the same number for every thread");
    extern __shared__ uint4 pr_smem4[];
    /* without LO, q_lo is never written nor read (stage_queries: a.hi_only) */
    __nv_bfloat16 *q_hi = (__nv_bfloat16 *)pr_smem4, *q_lo = q_hi + (PLANES - 1) * PAIRS * RS;
    __nv_bfloat16 *stages = q_hi + PLANES * PAIRS * RS;
    /* tiles, positions and page tables come with the step's uploads, and the
     * pool's rows before the step from earlier steps */
    int4 tile = a.tiles[blockIdx.x];
    int kvh = blockIdx.y, r0 = tile.x, G = a.group, P = tile.y * G, hd = a.head_dim;
    int pos0 = a.pos[r0], pos_end = pos0 + tile.y - 1;
    block_span span;
    bool work = block_chunks(a, false, pos0, pos_end, &span);
    const int lo0 = span.lo0, c_first = span.c_first, c_begin = span.c_begin, c_end = span.c_end;
    bool direct = !SPLIT || span.g_first == span.g_last;
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, qd = lane & 3, pa = warp * 16;
    bool active = pa < P;
    const int fresh_from = work ? a.fresh_from[r0] : 0, fresh_at = work ? a.fresh_at[r0] : 0;
    const size_t plane = (size_t)a.split_rows * a.n_kv_heads * hd;
    /* the source of each of the thread's keys in the chunk being fetched,
     * found a chunk before its copy (the loads not waited for until then):
     * kind[t] 0 none (outside the tile's keys: zeros), 1 the pool (src[t] its
     * page), 2 the step's rows (src[t] the split row) */
    int src[KEYS], kind[KEYS];
    auto find_rows = [&](int c) {
#pragma unroll
        for (int t = 0; t < KEYS; t++) {
            int p = c * CHUNK + (tid + t * THREADS) / UNITS;
            kind[t] = c <= c_end && p >= lo0 && p <= pos_end ? (p < fresh_from ? 1 : 2) : 0;
            if (kind[t] == 1) src[t] = a.pages[tile.z + page_of(a, p)];
            else if (kind[t] == 2) src[t] = a.fresh_rows[fresh_at + p - fresh_from];
        }
    };
    auto copy_chunk = [&](int c) {
        __nv_bfloat16 *st = stages + c % PROMPT_STAGES * STAGE;
#pragma unroll
        for (int t = 0; t < KEYS && c <= c_end; t++) {
            int i = tid + t * THREADS, j = i / UNITS, d = i % UNITS * 8, p = c * CHUNK + j;
#pragma unroll
            for (int which = 0; which < 2; which++) {
                __nv_bfloat16 *hi = st + which * PLANES * CHUNK * RS + j * RS + d, *lo = hi + CHUNK * RS;
                if (kind[t] == 1 && d < hd) {
                    cp_async16(hi, pool_row(a, src[t], p, which) + ((size_t)kvh * hd + d) * 2);
                    if (LO) *(uint4 *)lo = make_uint4(0u, 0u, 0u, 0u);
                } else if (kind[t] == 2 && d < hd) {
                    const uint16_t *row = a.split_kv + 2 * which * plane + ((size_t)src[t] * a.n_kv_heads + kvh) * hd + d;
                    cp_async16(hi, row);
                    if (LO) cp_async16(lo, row + plane);
                } else {
                    *(uint4 *)hi = make_uint4(0u, 0u, 0u, 0u);
                    if (LO) *(uint4 *)lo = make_uint4(0u, 0u, 0u, 0u);
                }
            }
        }
        cp_async_commit(); /* a group for every chunk, empty past the last: the waits count chunks */
    };
    bool early = first_chunk_pooled(a, work, c_begin, pos_end, fresh_from);
    if (early) {
        find_rows(c_begin);
        copy_chunk(c_begin);
    }
    lg_cuda_kernel_begin();
    if (!work) return;
    stage_queries<PAIRS, D, RS>(a, q_hi, q_lo, r0, kvh, P);
    /* the first PROMPT_STAGES - 1 chunks in flight (the first may be already), the next one's rows found */
    for (int c = c_begin + (early ? 1 : 0); c < c_begin + PROMPT_STAGES - 1; c++) {
        find_rows(c);
        copy_chunk(c);
    }
    find_rows(c_begin + PROMPT_STAGES - 1);
    int prs[2] = {pa + g, pa + g + 8}, pts[2];
#pragma unroll
    for (int h = 0; h < 2; h++) pts[h] = pos0 + prs[h] / G;
    float M[2] = {-INFINITY, -INFINITY}, L[2] = {0.0f, 0.0f}, O[UNITS][4];
#pragma unroll
    for (int n = 0; n < UNITS; n++) O[n][0] = O[n][1] = O[n][2] = O[n][3] = 0.0f;
    for (int c = c_begin; c <= c_end; c++) {
        cp_async_wait<PROMPT_STAGES - 2>();
        __syncthreads(); /* chunk c is in; chunk c - 1's stage is read */
        copy_chunk(c + PROMPT_STAGES - 1);
        find_rows(c + PROMPT_STAGES);
        if (!active) continue;
        const __nv_bfloat16 *k_hi = stages + c % PROMPT_STAGES * STAGE, *k_lo = k_hi + CHUNK * RS;
        const __nv_bfloat16 *v_hi = k_hi + PLANES * CHUNK * RS, *v_lo = v_hi + CHUNK * RS; /* lo: LO only */
        /* lo rows not all zero: the chunk holds step rows (inside the tile's keys, as fresh_from <= pos0) */
        const bool lo_any = LO && c * CHUNK + CHUNK - 1 >= fresh_from;
        /* scores: 16 pairs x 32 keys, four 8-key tiles, three chains each (q_hi k_hi, q_lo k_hi, q_hi k_lo) */
        float sa[4][3][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int t = 0; t < 3; t++) sa[i][t][0] = sa[i][t][1] = sa[i][t][2] = sa[i][t][3] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < KSTEPS; ks++) {
            uint32_t ah[4], al[4];
            const int qoff = (pa + (lane & 15)) * RS + ks * 16 + (lane >> 4) * 8;
            ldsm_x4(ah, q_hi + qoff);
            if (LO) ldsm_x4(al, q_lo + qoff);
#pragma unroll
            for (int i = 0; i < 4; i += 2) { /* key tiles i and i + 1 in one load */
                uint32_t bh[4], bl[4];
                const int koff = ((i + (lane >> 4)) * 8 + (lane & 7)) * RS + ks * 16 + ((lane >> 3) & 1) * 8;
                ldsm_x4(bh, k_hi + koff);
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    mma_bf16(sa[i + u][0], ah[0], ah[1], ah[2], ah[3], bh[2 * u], bh[2 * u + 1]);
                    if (LO) mma_bf16(sa[i + u][1], al[0], al[1], al[2], al[3], bh[2 * u], bh[2 * u + 1]);
                }
                if (lo_any) {
                    ldsm_x4(bl, k_lo + koff);
#pragma unroll
                    for (int u = 0; u < 2; u++)
                        mma_bf16(sa[i + u][2], ah[0], ah[1], ah[2], ah[3], bl[2 * u], bl[2 * u + 1]);
                }
            }
        }
        /* Without LO the other two chains are zeros, which the general
         * kernel adds: (x + 0) + 0 is x but for -0, which it makes +0.
         * Left out here: a zero score's sign changes no weight (x - m and
         * m - M are +-0 or the same nonzero value, and 2^+-0 is 1), so no
         * output bit either. */
        float s[4][4];
#pragma unroll
        for (int n = 0; n < 4; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[n][e] = LO ? __fadd_rn(__fadd_rn(sa[n][0][e], sa[n][1][e]), sa[n][2][e])
                             : sa[n][0][e];
        float mc[2], lc[2];
        chunk_softmax(s, c, prs, pts, P, a.window, a.scale, mc, lc);
        uint32_t ph[2][4], pl[2][4];
        split_probs(s, ph, pl);
        float ow[2], nw[2];
        bool take[2];
        float *rec[2] = {NULL, NULL};
#pragma unroll
        for (int h = 0; h < 2; h++) {
            take[h] = prs[h] < P && mc[h] != -INFINITY; /* some key of the pair in the chunk */
            ow[h] = 1.0f, nw[h] = 0.0f;
            if (take[h] && direct) merge_chunk(M[h], L[h], mc[h], lc[h], &ow[h], &nw[h]);
            if (!direct) rec[h] = chunk_record(a, kvh, c - c_first, prs[h]);
        }
        /* outputs: 16 pairs x 16 dim tiles, 2 NP at a time */
#pragma unroll
        for (int n2 = 0; n2 < UNITS / 2; n2 += NP) {
            float o[2 * NP][4];
            chunk_outputs<RS, NP>(o, v_hi, v_lo, lo_any, n2, ph, pl, LO);
#pragma unroll
            for (int u = 0; u < 2 * NP; u++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    if (direct) fold_outputs_if(O[2 * n2 + u], o[u], h, ow[h], nw[h], take[h]);
                    else if (take[h])
                        *(float2 *)(rec[h] + (2 * n2 + u) * 8 + 2 * qd) = make_float2(o[u][2 * h], o[u][2 * h + 1]);
                }
        }
        if (!direct && qd == 0)
#pragma unroll
            for (int h = 0; h < 2; h++)
                if (take[h]) rec[h][D] = mc[h], rec[h][D + 1] = lc[h];
    }
    cp_async_wait<0>(); /* no copy outlives the block */
    /* split: attention_merge_kernel, launched after this one, merges the records */
    if (direct && active) store_outputs<UNITS>(a, O, L, prs, P, r0, kvh, 0);
}

/* Tiles of more than 16 pairs (the general kernel's prompt shapes), head
 * sizes 72..128 in steps of 8, a bf16 pool and step rows whose rows copy
 * in 16-byte pieces (a context made with LAGUNA_CUDA_ATTN_PROMPT=0 keeps the
 * general kernel: attn_prompt). */
bool lg_cuda_attention_prompt_takes(const chunk_args &ca, int pairs) {
    int hd = ca.head_dim;
    return !ca.groups && pairs > 16 && pairs <= PROMPT_WARPS * 16 && hd > 64 && hd <= 128 && hd % 8 == 0 &&
           ca.dtype == LG_DTYPE_BF16 && ca.row_bytes % 16 == 0 && ca.page_bytes % 16 == 0 &&
           (uintptr_t)ca.pool % 16 == 0 && (uintptr_t)ca.fresh_k % 16 == 0 && (uintptr_t)ca.fresh_v % 16 == 0;
}

size_t lg_cuda_attention_split_bytes(const chunk_args &ca, int n_rows) {
    size_t bytes = 4 * sizeof(uint16_t) * (size_t)n_rows * ca.n_kv_heads * ca.head_dim;
    return (bytes + 255) / 256 * 256;
}

void lg_cuda_attention_split_fresh(lg_cuda_ctx *k, const chunk_args &ca) {
    lg_cuda_launch(k, split_fresh_kernel, dim3((unsigned)ca.split_rows), 256, 0, ca);
}

template <int NP, bool LO, int BLOCKS> static void launch_shape(lg_cuda_ctx *k, dim3 grid, const chunk_args &ca) {
    size_t smem = prompt_layout<PROMPT_WARPS, LO>::bytes;
    void (*kernel)(chunk_args) = ca.split ? attention_prompt_kernel<PROMPT_WARPS, NP, LO, BLOCKS, true>
                                          : attention_prompt_kernel<PROMPT_WARPS, NP, LO, BLOCKS, false>;
    lg_cuda_allow_smem(kernel, smem);
    lg_cuda_launch(k, kernel, grid, PROMPT_WARPS * 32, smem, ca);
}

/* Without lo halves (a.hi_only) two blocks an SM, registers held to 128 (one
 * output dim tile pair in flight: 16 bytes spilled): the H100's prefill of
 * 4096 on 8 XS.2 layers 94.9k tok/s against 88.7k at one block an SM. With
 * them one block, LAGUNA_CUDA_ATTN_PROMPT_NP (measuring) dim tile pairs in
 * flight, 4 unless set. */
void lg_cuda_attention_prompt_launch(lg_cuda_ctx *k, dim3 grid, const chunk_args &ca) {
    if (ca.hi_only) launch_shape<1, false, 2>(k, grid, ca);
    else if (k->attn_prompt_np == 2) launch_shape<2, true, 1>(k, grid, ca);
    else if (k->attn_prompt_np == 4) launch_shape<4, true, 1>(k, grid, ca);
    else launch_shape<1, true, 1>(k, grid, ca);
}
