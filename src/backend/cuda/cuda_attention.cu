/* Paged attention and KV writes on the GPU.
 *
 * The chunked kernel (attention_chunk_kernel) takes every shape with at most
 * CK_MAX_GROUP query heads per KV head and head_dim up to CK_MAX_DIM. A
 * row's visible positions are cut into chunks at ABSOLUTE positions (chunk c
 * is [c * CHUNK, c * CHUNK + CHUNK), clipped to the row's window). A block
 * takes a tile (consecutive step rows of one sequence at consecutive
 * positions, found on the host) and one KV head: it stages a chunk's keys
 * and values in shared memory as float32 (from the pool's dtype, or the
 * step's own float32 rows) and computes, for every (row, query head) pair of
 * the tile, the chunk's partial result:
 *   s_j = (q . k_j) * scale     the dot in ascending dims, one fma chain
 *   m   = max_j s_j;  p_j = exp(s_j - m)
 *   l   = sum_j p_j             ascending j
 *   o   = sum_j p_j v_j         ascending j, one fma chain per dim
 * Chunk results are merged in ascending chunk order into a running (M, L, O)
 * (merge_chunk), and the row's output is O / L. Every operation is written
 * with explicit rounding (fmaf, __fmul_rn, ...), so the compiler contracts
 * nothing, and none depends on which block, tile or lane computes it: a
 * row's result is bitwise the same in any tile, launch mode or batch. (Keys
 * of a chunk outside a row's range enter its sums with p_j = 0, which adds
 * an exact zero.)
 *
 * Rows take the same chunks on tensor cores when the head size allows
 * (cuda_attention_mma.cu, its own fixed arithmetic, as invariant): prompts'
 * rows in tiles, and a sequence's only row in a step (a decode row) in its
 * own launch with chunk groups (lg_cuda_attention_mma_takes(hd, true);
 * LAGUNA_CUDA_ATTN_MMA_DECODE=0 keeps decode rows here on CUDA cores). So
 * which kernel computes a row depends on the head size and on how many
 * rows its own sequence has in the step, never on the other sequences'
 * rows.
 *
 * Two ways to run a launch, same arithmetic:
 *   - loop: one block per (tile, KV head) walks the tile's chunks in order,
 *     merging in registers. For prompts: each staged chunk serves every row
 *     and head of the tile.
 *   - split (flash-decoding): one block per (tile, KV head, chunk) writes its
 *     chunk's partials to scratch; the last block of a (tile, KV head) to
 *     finish (an atomic counter, reset by that block for the next launch)
 *     merges them in chunk order. For decode steps, where a loop would give
 *     too few blocks.
 * Lone rows (decode) merge their chunks in groups instead (group_size in
 * cuda_attention.h: at most ~128 groups of consecutive chunks at absolute
 * chunk indices, one chunk a group up to 4096 positions): within a group,
 * then the groups in order, in both modes; a split launch then takes one
 * block per group, which walks the group's chunks fetching the next while
 * computing the current, and the last block merges one record per group.
 * (One record per chunk made a decode step after 32k positions spend
 * ~0.6 ms in each global layer's attention: 1024 short blocks per KV head
 * and a serial merge of 1024 records.)
 *
 * Shapes past those limits run the one-pass kernel (attention_kernel): one
 * block of WARPS warps per (query row, head), warps over positions, merged
 * in warp order; it is batch invariant too (it depends on the row alone).
 *
 * Positions earlier than the step come from the pool through the page
 * table; the step's own from its float32 key and value rows, as
 * lg_attention_args says. */
#include "backend/cuda/cuda_attention.h"

/* ---- the one-pass kernel (shapes the chunked kernel does not take) ------- */

#define WARPS 4
#define THREADS (WARPS * 32)
#define MAX_HEAD_DIM 512
#define PER_LANE (MAX_HEAD_DIM / 32)

struct attn_args {
    const uint8_t *pool;
    size_t page_bytes, row_bytes;
    int page_size, dtype;
    const int32_t *pos, *table_at, *pages, *fresh_from, *fresh_at, *fresh_rows;
    const float *q, *fresh_k, *fresh_v;
    float *out;
    int n_heads, n_kv_heads, head_dim, window;
    float scale;
    const float *gate; /* as chunk_args' */
    int gate_per_head;
};

/* Where head kv of the key (which 0) or value (1) row of position p starts,
 * and in which dtype. */
__device__ __forceinline__ const uint8_t *kv_row(const attn_args &a, int r, int p, int which, int kv, int *dtype,
                                                 int64_t *first) {
    if (p >= a.fresh_from[r]) {
        int row = a.fresh_rows[a.fresh_at[r] + p - a.fresh_from[r]];
        *dtype = LG_DTYPE_F32;
        *first = 0;
        return (const uint8_t *)((which ? a.fresh_v : a.fresh_k) + ((size_t)row * a.n_kv_heads + kv) * a.head_dim);
    }
    int page = a.pages[a.table_at[r] + p / a.page_size];
    *dtype = a.dtype;
    *first = (int64_t)kv * a.head_dim;
    return a.pool + (size_t)page * a.page_bytes + ((size_t)which * a.page_size + (size_t)(p % a.page_size)) * a.row_bytes;
}

__global__ void __launch_bounds__(THREADS) attention_kernel(attn_args a) {
    lg_cuda_kernel_begin();
    __shared__ float part_m[WARPS], part_l[WARPS];
    __shared__ float part_acc[WARPS][MAX_HEAD_DIM];
    int r = blockIdx.x, h = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, hd = a.head_dim;
    int kv = h / (a.n_heads / a.n_kv_heads);
    int pos = a.pos[r], lo = a.window > 0 ? max(pos - a.window + 1, 0) : 0;
    const float *q = a.q + ((size_t)r * a.n_heads + h) * hd;
    float qv[PER_LANE], acc[PER_LANE];
    for (int i = 0; i < PER_LANE; i++) {
        int e = lane + 32 * i;
        qv[i] = e < hd ? q[e] : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int p = lo + warp; p <= pos; p += WARPS) {
        int dtype;
        int64_t first;
        const uint8_t *krow = kv_row(a, r, p, 0, kv, &dtype, &first);
        float d = 0.0f;
        for (int i = 0; i < PER_LANE; i++) {
            int e = lane + 32 * i;
            if (e < hd) d = fmaf(qv[i], lg_load(dtype, krow, first + e), d);
        }
        for (int off = 16; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
        float s = d * a.scale, m_new = fmaxf(m, s);
        float rescale = expf(m - m_new), w = expf(s - m_new);
        l = l * rescale + w;
        const uint8_t *vrow = kv_row(a, r, p, 1, kv, &dtype, &first);
        for (int i = 0; i < PER_LANE; i++) {
            int e = lane + 32 * i;
            if (e < hd) acc[i] = fmaf(w, lg_load(dtype, vrow, first + e), acc[i] * rescale);
        }
        m = m_new;
    }
    if (lane == 0) part_m[warp] = m, part_l[warp] = l;
    for (int i = 0; i < PER_LANE; i++)
        if (lane + 32 * i < hd) part_acc[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    if (warp != 0) return;
    float gm = -INFINITY;
    for (int w = 0; w < WARPS; w++) gm = fmaxf(gm, part_m[w]);
    float gl = 0.0f;
    for (int w = 0; w < WARPS; w++) gl += part_m[w] == -INFINITY ? 0.0f : part_l[w] * expf(part_m[w] - gm);
    const head_gate g = head_gate_of(a.gate, a.gate_per_head, hd, (size_t)r * a.n_heads + h);
    for (int i = 0; i < PER_LANE; i++) {
        int e = lane + 32 * i;
        if (e >= hd) continue;
        float o = 0.0f;
        for (int w = 0; w < WARPS; w++)
            if (part_m[w] != -INFINITY) o += part_acc[w][e] * expf(part_m[w] - gm);
        a.out[((size_t)r * a.n_heads + h) * hd + e] = gated(g, e, o / gl);
    }
}

/* ---- the chunked kernel ---------------------------------------------------- */

#define CK_WARPS 8
#define CK_THREADS (CK_WARPS * 32)
#define MERGE_AHEAD 8 /* chunk records the merging block loads before merging them */
#define CK_MAX_GROUP 16
#define CK_MAX_DIM 256
/* A launch of fewer (tile, KV head) blocks than this runs split: decode rows walking
 * their chunks alone have little to overlap with (lone rows: the context's
 * attn_decode_loop_min, CK_LOOP_MIN_DECODE unless the environment says). Measured on
 * the H200, XS.2 (8 KV heads) after 1024 tokens: 32 sequences decode 848 tok/s
 * looping against 786 split (256 blocks); 8 sequences 449 looping against 522 split. */
#define CK_LOOP_MIN_DECODE 256
#define CK_LOOP_MIN_TILES 256
#define CK_SCRATCH_BYTES ((size_t)256 << 20) /* split partials of one launch at most */
#define CK_GROUPS 128 /* default attn_groups */

/* Grid (tile, KV head) in a loop launch, (tile, KV head, chunk slot) in a
 * split one. Warp w takes pairs [w * PT, w * PT + PT) of the tile (pair = row
 * in tile * group + head in group): for the scores its lanes are the chunk's
 * keys, for the outputs its lanes are dims (4 each, DG groups of 128).
 *
 * GROUPED (launches of lone rows, one row a tile): a row's chunks are merged
 * in groups (group_size), first within a group, then the groups in order;
 * a split launch's slot is a group, whose block walks the group's chunks,
 * each fetched while the previous one is computed. Not grouped: every
 * chunk is merged into the row's result at once, a split launch's slot is
 * a chunk (group size 1 is the same arithmetic). */
template <int PT, int DG, bool GROUPED>
__global__ void __launch_bounds__(CK_THREADS, PT * DG >= 16 ? 1 : 2) attention_chunk_kernel(chunk_args a) {
    extern __shared__ float4 ck_smem4[];
    /* tiles, positions and page tables come with the step's uploads, and the
     * pool's rows before the step from earlier steps: none of it depends on
     * the previous kernel, so they are read before waiting for it */
    int4 tile = a.tiles[blockIdx.x];
    int kvh = blockIdx.y, r0 = tile.x, G = a.group, P = tile.y * G, hd = a.head_dim;
    int pos0 = a.pos[r0], pos_end = pos0 + tile.y - 1;
    block_span span;
    bool work = block_chunks(a, GROUPED, pos0, pos_end, &span);
    const int lo0 = span.lo0, c_first = span.c_first, c_begin = span.c_begin, c_end = span.c_end, gs = span.gs,
              g_first = span.g_first, g_last = span.g_last;
    const int PP = CK_WARPS * PT, PS = PP + 1;
    int S = a.stride, n4 = a.hdp / 4, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    /* this thread's share of a chunk's keys and values (head_dim <= 128 DG: at most 4 DG
     * float4 of each), fetched one chunk ahead; their pool pages two ahead */
    constexpr int FU = 4 * DG;
    uint4 fk[FU], fv[FU];
    int page[FU], fresh_from = a.fresh_from[r0];
    unsigned packed = 0;
    /* unit u of this thread: key j0 + u * j_step of a chunk, dims d0 .. d0 + 3 (when n4
     * divides the block; otherwise computed per unit) */
    bool regular = CK_THREADS % n4 == 0;
    int j0 = tid / n4, j_step = CK_THREADS / n4, d0 = (tid % n4) * 4;
    auto unit = [&](int u, int *j, int *d) {
        int i = tid + u * CK_THREADS;
        *j = regular ? j0 + u * j_step : i / n4, *d = regular ? d0 : (i % n4) * 4;
        return i < CHUNK * n4;
    };
    auto pages_of = [&](int c) {
        int st_lo = max(c * CHUNK, lo0), st_hi = min(c * CHUNK + CHUNK - 1, pos_end);
#pragma unroll
        for (int u = 0; u < FU; u++) {
            int j, d;
            bool in = unit(u, &j, &d);
            int p = c * CHUNK + j;
            page[u] = in && p >= st_lo && p <= st_hi && p < fresh_from ? a.pages[tile.z + page_of(a, p)] : 0;
        }
    };
    auto fetch = [&](int c) {
        int st_lo = max(c * CHUNK, lo0), st_hi = min(c * CHUNK + CHUNK - 1, pos_end);
        packed = 0;
#pragma unroll
        for (int u = 0; u < FU; u++) {
            int j, d;
            bool in = unit(u, &j, &d);
            int p = c * CHUNK + j;
            fk[u] = fv[u] = make_uint4(0u, 0u, 0u, 0u);
            if (in && p >= st_lo && p <= st_hi) {
                bool pk, pv;
                fk[u] = fetch4(a, r0, tile.z, page[u], fresh_from, p, 0, kvh, d, &pk);
                fv[u] = fetch4(a, r0, tile.z, page[u], fresh_from, p, 1, kvh, d, &pv);
                packed |= (pk ? 1u : 0u) << (2 * u) | (pv ? 2u : 0u) << (2 * u);
            }
        }
    };
    bool early = first_chunk_pooled(a, work, c_begin, pos_end, fresh_from);
    if (early) {
        pages_of(c_begin);
        fetch(c_begin);
    }
    lg_cuda_kernel_begin();
    if (!work) return;
    /* one group: merging its partial from scratch would give these same bits */
    bool direct = !a.split || g_first == g_last;
    float *k_s = (float *)ck_smem4, *v_s = k_s + CHUNK * S, *q_s = v_s + CHUNK * S, *p_s = q_s + PP * S;
    for (int i = tid; i < PP * n4; i += CK_THREADS) {
        int pr = i / n4, d = (i % n4) * 4;
        float x[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (pr < P) {
            const float *src = a.q + ((size_t)(r0 + pr / G) * a.n_heads + kvh * G + pr % G) * hd;
#pragma unroll
            for (int e = 0; e < 4; e++) x[e] = d + e < hd ? src[d + e] : 0.0f;
        }
        *(float4 *)(q_s + pr * S + d) = make_float4(x[0], x[1], x[2], x[3]);
    }
    int pa = warp * PT; /* this warp's first pair */
    /* the row's result (M, L, O) and, grouped, the current group's (Mg, Lg, Og) */
    constexpr int GP = GROUPED ? PT : 1;
    float M[PT], L[PT], O[PT][4 * DG], Mg[GP], Lg[GP], Og[GP][4 * DG];
#pragma unroll
    for (int i = 0; i < PT; i++) {
        M[i] = -INFINITY, L[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < 4 * DG; e++) O[i][e] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < GP; i++) {
        Mg[i] = -INFINITY, Lg[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < 4 * DG; e++) Og[i][e] = 0.0f;
    }
    if (!early) {
        pages_of(c_begin);
        fetch(c_begin);
    }
    if (c_begin < c_end) pages_of(c_begin + 1);
    for (int c = c_begin; c <= c_end; c++) {
        __syncthreads(); /* the previous chunk's rows are read */
#pragma unroll
        for (int u = 0; u < FU; u++) {
            int j, d;
            if (!unit(u, &j, &d)) break;
            *(float4 *)(k_s + j * S + d) = unpack4(fk[u], packed >> (2 * u) & 1u);
            *(float4 *)(v_s + j * S + d) = unpack4(fv[u], packed >> (2 * u) & 2u);
        }
        if (c < c_end) { /* in flight while this chunk is computed */
            fetch(c + 1);
            if (c + 1 < c_end) pages_of(c + 2);
        }
        __syncthreads();
        if (pa >= P) continue;
        /* scores: lane = key */
        float acc[PT];
#pragma unroll
        for (int i = 0; i < PT; i++) acc[i] = 0.0f;
        for (int d = 0; d < a.hdp; d += 4) {
            float4 kx = *(const float4 *)(k_s + lane * S + d);
#pragma unroll
            for (int i = 0; i < PT; i++) {
                float4 qx = *(const float4 *)(q_s + (pa + i) * S + d);
                acc[i] = fmaf(qx.x, kx.x, acc[i]);
                acc[i] = fmaf(qx.y, kx.y, acc[i]);
                acc[i] = fmaf(qx.z, kx.z, acc[i]);
                acc[i] = fmaf(qx.w, kx.w, acc[i]);
            }
        }
        int p = c * CHUNK + lane;
        float mc[PT], lc[PT];
#pragma unroll
        for (int i = 0; i < PT; i++) {
            int pr = pa + i, pt = pos0 + pr / G;
            bool valid = pr < P && p >= row_lo(pt, a.window) && p <= pt;
            float s = valid ? __fmul_rn(acc[i], a.scale) : -INFINITY, m = s;
            for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
            p_s[lane * PS + pr] = valid ? expf(__fsub_rn(s, m)) : 0.0f;
            mc[i] = m;
        }
        __syncwarp();
        float lsum = 0.0f;
        if (lane < PT)
            for (int j = 0; j < CHUNK; j++) lsum = __fadd_rn(lsum, p_s[j * PS + pa + lane]);
#pragma unroll
        for (int i = 0; i < PT; i++) lc[i] = __shfl_sync(0xffffffffu, lsum, i);
        /* outputs: lane = dims 4 * lane + 128 * k */
        float o[PT][4 * DG];
#pragma unroll
        for (int i = 0; i < PT; i++)
#pragma unroll
            for (int e = 0; e < 4 * DG; e++) o[i][e] = 0.0f;
        for (int j = 0; j < CHUNK; j++) {
            float4 vx[DG];
#pragma unroll
            for (int k = 0; k < DG; k++) {
                int d = 4 * lane + 128 * k;
                vx[k] = d < a.hdp ? *(const float4 *)(v_s + j * S + d) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
#pragma unroll
            for (int i = 0; i < PT; i++) {
                float w = p_s[j * PS + pa + i];
#pragma unroll
                for (int k = 0; k < DG; k++) {
                    o[i][4 * k + 0] = fmaf(w, vx[k].x, o[i][4 * k + 0]);
                    o[i][4 * k + 1] = fmaf(w, vx[k].y, o[i][4 * k + 1]);
                    o[i][4 * k + 2] = fmaf(w, vx[k].z, o[i][4 * k + 2]);
                    o[i][4 * k + 3] = fmaf(w, vx[k].w, o[i][4 * k + 3]);
                }
            }
        }
        /* a group ends at a multiple of gs or at the block's last chunk */
        bool group_ends = (c + 1) % gs == 0 || c == c_end;
#pragma unroll
        for (int i = 0; i < PT; i++) {
            int pr = pa + i;
            if (pr >= P) continue;
            float *m_to = GROUPED ? &Mg[i % GP] : &M[i], *l_to = GROUPED ? &Lg[i % GP] : &L[i];
            float *o_to = GROUPED ? Og[i % GP] : O[i];
            if (mc[i] != -INFINITY && (GROUPED || direct)) { /* -inf: no key of this row in the chunk */
                float ow, nw;
                merge_chunk(*m_to, *l_to, mc[i], lc[i], &ow, &nw);
#pragma unroll
                for (int e = 0; e < 4 * DG; e++) o_to[e] = fmaf(o_to[e], ow, __fmul_rn(o[i][e], nw));
            }
            if (!GROUPED && (direct || mc[i] == -INFINITY)) continue;
            if (GROUPED && !group_ends) continue;
            /* the partial to pass on: the chunk's (not grouped, split) or the group's */
            float pm = GROUPED ? Mg[i % GP] : mc[i], pl = GROUPED ? Lg[i % GP] : lc[i];
            const float *po = GROUPED ? Og[i % GP] : o[i];
            if (GROUPED && direct) { /* fold the group into the row's result */
                if (pm != -INFINITY) {
                    float ow, nw;
                    merge_chunk(M[i], L[i], pm, pl, &ow, &nw);
#pragma unroll
                    for (int e = 0; e < 4 * DG; e++) O[i][e] = fmaf(O[i][e], ow, __fmul_rn(po[e], nw));
                }
            } else {
                int slot = GROUPED ? (int)blockIdx.z : c - c_first;
                float *rec = a.part + (((size_t)(blockIdx.x * a.n_kv_heads + kvh) * a.chunk_slots + slot) *
                                           a.pair_slots + pr) * a.rec;
#pragma unroll
                for (int k = 0; k < DG; k++) {
                    int d = 4 * lane + 128 * k;
                    if (d < a.hdp)
                        *(float4 *)(rec + d) = make_float4(po[4 * k], po[4 * k + 1], po[4 * k + 2], po[4 * k + 3]);
                }
                if (lane == 0) rec[a.hdp] = pm, rec[a.hdp + 1] = pl;
            }
            if (GROUPED) {
                Mg[i % GP] = -INFINITY, Lg[i % GP] = 0.0f;
#pragma unroll
                for (int e = 0; e < 4 * DG; e++) Og[i % GP][e] = 0.0f;
            }
        }
    }
    if (!direct) {
        /* the last block of this (tile, KV head) merges the chunks (groups) in order */
        if (!last_to_finish(a, kvh, g_last - g_first + 1) || pa >= P) return;
#pragma unroll
        for (int i = 0; i < PT; i++) {
            int pr = pa + i, pt = pos0 + pr / G;
            if (pr >= P) continue;
            /* in chunk (group) order, as the loop mode merges; each record a round trip to L2,
             * so MERGE_AHEAD of them are loaded before they are merged */
            constexpr int AHEAD = PT * DG >= 8 ? 2 : PT * DG == 1 ? 2 * MERGE_AHEAD : MERGE_AHEAD; /* registers */
            int u_lo = GROUPED ? g_first : row_lo(pt, a.window) / CHUNK, u_hi = GROUPED ? g_last : pt / CHUNK;
            int slot0 = GROUPED ? g_first : c_first;
            for (int cb = u_lo; cb <= u_hi; cb += AHEAD) {
                float mm[AHEAD], ll[AHEAD];
                float4 ox[AHEAD][DG];
#pragma unroll
                for (int u = 0; u < AHEAD; u++) {
                    int c = min(cb + u, u_hi);
                    const float *rec = a.part + (((size_t)(blockIdx.x * a.n_kv_heads + kvh) * a.chunk_slots +
                                                  (c - slot0)) * a.pair_slots + pr) * a.rec;
                    mm[u] = __ldcg(rec + a.hdp), ll[u] = __ldcg(rec + a.hdp + 1);
#pragma unroll
                    for (int k = 0; k < DG; k++) {
                        int d = 4 * lane + 128 * k;
                        ox[u][k] = d < a.hdp ? __ldcg((const float4 *)(rec + d)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    }
                }
#pragma unroll
                for (int u = 0; u < AHEAD; u++) {
                    if (cb + u > u_hi) break;
                    if (GROUPED && mm[u] == -INFINITY) continue;
                    float ow, nw;
                    merge_chunk(M[i], L[i], mm[u], ll[u], &ow, &nw);
#pragma unroll
                    for (int k = 0; k < DG; k++) {
                        O[i][4 * k + 0] = fmaf(O[i][4 * k + 0], ow, __fmul_rn(ox[u][k].x, nw));
                        O[i][4 * k + 1] = fmaf(O[i][4 * k + 1], ow, __fmul_rn(ox[u][k].y, nw));
                        O[i][4 * k + 2] = fmaf(O[i][4 * k + 2], ow, __fmul_rn(ox[u][k].z, nw));
                        O[i][4 * k + 3] = fmaf(O[i][4 * k + 3], ow, __fmul_rn(ox[u][k].w, nw));
                    }
                }
            }
        }
    }
    if (pa >= P) return;
#pragma unroll
    for (int i = 0; i < PT; i++) {
        int pr = pa + i;
        if (pr >= P) continue;
        size_t rh = (size_t)(r0 + pr / G) * a.n_heads + kvh * G + pr % G;
        float *dst = a.out + rh * hd;
        const head_gate g = head_gate_of(a.gate, a.gate_per_head, hd, rh);
#pragma unroll
        for (int e = 0; e < 4 * DG; e++) {
            int d = 4 * lane + 128 * (e / 4) + e % 4;
            if (d < hd) dst[d] = gated(g, d, __fdiv_rn(O[i][e], L[i]));
        }
    }
}

/* ---- launches -------------------------------------------------------------- */

static bool chunked_supported(const lg_attention_args *a) {
    return a->n_heads / a->n_kv_heads <= CK_MAX_GROUP && a->head_dim <= CK_MAX_DIM;
}

static int tile_chunks(const lg_attention_args *a, int4 t) {
    return (a->pos[t.x] + t.y - 1) / CHUNK - row_lo(a->pos[t.x], a->window) / CHUNK + 1;
}

/* The slots a split launch gives a tile: its chunks, or (grouped: a lone row) its groups. */
static int tile_slots(const lg_attention_args *a, int4 t, int groups) {
    if (!groups) return tile_chunks(a, t);
    int c_first = row_lo(a->pos[t.x], a->window) / CHUNK, c_last = a->pos[t.x] / CHUNK;
    int gs = group_size(c_first, c_last, groups);
    return c_last / gs - c_first / gs + 1;
}

template <int PT, bool GROUPED>
static void launch_chunk_pt(lg_cuda_ctx *k, dim3 grid, size_t smem, const chunk_args &ca) {
    if (ca.hdp > 128) {
        lg_cuda_allow_smem(attention_chunk_kernel<PT, 2, GROUPED>, smem);
        lg_cuda_launch(k, attention_chunk_kernel<PT, 2, GROUPED>, grid, CK_THREADS, smem, ca);
    } else {
        lg_cuda_allow_smem(attention_chunk_kernel<PT, 1, GROUPED>, smem);
        lg_cuda_launch(k, attention_chunk_kernel<PT, 1, GROUPED>, grid, CK_THREADS, smem, ca);
    }
}

void lg_cuda_attention_settings(lg_cuda_ctx *k) {
    const char *g = getenv("LAGUNA_CUDA_ATTN_GROUPS"), *l = getenv("LAGUNA_CUDA_ATTN_DECODE_LOOP_MIN");
    k->attn_groups = g && atoi(g) > 0 ? atoi(g) : CK_GROUPS;
    k->attn_decode_loop_min = l && atoi(l) > 0 ? atoi(l) : CK_LOOP_MIN_DECODE;
    k->attn_early = lg_cuda_switch_on("LAGUNA_CUDA_ATTN_EARLY");
    k->attn_prompt = lg_cuda_switch_on("LAGUNA_CUDA_ATTN_PROMPT");
    const char *np = getenv("LAGUNA_CUDA_ATTN_PROMPT_NP");
    k->attn_prompt_np = np ? atoi(np) : 4;
}

/* Zeroed counters (the split kernel leaves them zero), at least n. */
static unsigned *chunk_counters(lg_cuda_ctx *k, size_t n) {
    if (n <= k->attn_counters_n) return k->attn_counters;
    size_t want = 1024;
    while (want < n) want *= 2;
    if (k->attn_counters && lg_cuda_taping(k)) lg_cuda_tape_defer_free(k, k->attn_counters);
    else if (k->attn_counters) cudaFreeAsync(k->attn_counters, k->stream);
    k->attn_counters = NULL;
    k->attn_counters_n = 0;
    if (cudaMallocAsync(&k->attn_counters, want * sizeof(unsigned), k->stream) != cudaSuccess) return NULL;
    if (cudaMemsetAsync(k->attn_counters, 0, want * sizeof(unsigned), k->stream) != cudaSuccess) return NULL;
    k->attn_counters_n = want;
    return k->attn_counters;
}

/* One launch (or, split, a few, each within the scratch) over tiles; grouped
 * (tiles of one lone row each): their chunks merged in groups. */
static void launch_chunked(lg_cuda_ctx *k, chunk_args ca, const lg_attention_args *a, const int4 *tiles,
                           int n_tiles, int loop_min_blocks, bool tensor_cores, bool grouped) {
    if (n_tiles <= 0) return;
    ca.groups = grouped ? k->attn_groups : 0;
    ca.early = k->attn_early;
    int pairs = 1, most_slots = 1;
    for (int t = 0; t < n_tiles; t++) {
        int slots = tile_slots(a, tiles[t], ca.groups);
        if (tiles[t].y * ca.group > pairs) pairs = tiles[t].y * ca.group;
        if (slots > most_slots) most_slots = slots;
    }
    int pt = pairs <= 8 ? 1 : pairs <= 16 ? 2 : pairs <= 32 ? 4 : 8, pp = CK_WARPS * pt;
    size_t smem = sizeof(float) * ((size_t)(2 * CHUNK + pp) * ca.stride + (size_t)CHUNK * (pp + 1));
    /* slots rounded so that a decode step's grid (and graph) changes every 16 chunks only */
    int slots = (most_slots + 15) / 16 * 16;
    ca.split = (long)n_tiles * a->n_kv_heads < loop_min_blocks && most_slots > 1 && slots <= 65535;
    const int4 *dev_tiles = (const int4 *)lg_cuda_upload(k, tiles, sizeof(int4) * (size_t)n_tiles);
    int per_launch = n_tiles;
    /* the prompt kernel's split rows, then the split records, in one scratch */
    bool prompt = tensor_cores && k->attn_prompt && lg_cuda_attention_prompt_takes(ca, pairs);
    size_t split_bytes = prompt ? lg_cuda_attention_split_bytes(ca, a->n_rows) : 0, records = 0;
    if (ca.split) {
        ca.chunk_slots = slots, ca.pair_slots = pairs;
        ca.rec = tensor_cores ? lg_cuda_attention_mma_rec(a->head_dim) : ca.hdp + 4;
        size_t per_tile = sizeof(float) * (size_t)a->n_kv_heads * slots * pairs * ca.rec;
        size_t fit = CK_SCRATCH_BYTES / per_tile;
        per_launch = fit < 1 ? 1 : fit < (size_t)n_tiles ? (int)fit : n_tiles;
        records = per_tile * (size_t)per_launch;
    }
    if (split_bytes + records) {
        uint8_t *scratch = (uint8_t *)lg_cuda_scratch(k, split_bytes + records);
        if (!scratch) return; /* sync() reports the failed allocation */
        ca.split_kv = prompt ? (uint16_t *)scratch : NULL;
        ca.split_rows = prompt ? a->n_rows : 0;
        ca.part = ca.split ? (float *)(scratch + split_bytes) : NULL;
    }
    /* the CUDA-core kernel's last block merges its records (counters); the tensor-core kernel's are merged by
     * attention_merge_kernel */
    if (ca.split && !tensor_cores && !(ca.counters = chunk_counters(k, (size_t)per_launch * a->n_kv_heads))) return;
    if (prompt) lg_cuda_attention_split_fresh(k, ca);
    for (int t0 = 0; t0 < n_tiles; t0 += per_launch) {
        int n = n_tiles - t0 < per_launch ? n_tiles - t0 : per_launch;
        ca.tiles = dev_tiles + t0;
        dim3 grid(n, a->n_kv_heads, ca.split ? slots : 1);
        if (tensor_cores) {
            if (prompt) lg_cuda_attention_prompt_launch(k, grid, ca);
            else lg_cuda_attention_mma_launch(k, grid, ca, pairs);
            if (ca.split) lg_cuda_attention_merge_launch(k, grid, ca);
            continue;
        }
        if (grouped) { /* a lone row's pairs are one group of query heads: at most 16 */
            if (pt == 1) launch_chunk_pt<1, true>(k, grid, smem, ca);
            else launch_chunk_pt<2, true>(k, grid, smem, ca);
            continue;
        }
        switch (pt) {
        case 1: launch_chunk_pt<1, false>(k, grid, smem, ca); break;
        case 2: launch_chunk_pt<2, false>(k, grid, smem, ca); break;
        case 4: launch_chunk_pt<4, false>(k, grid, smem, ca); break;
        default: launch_chunk_pt<8, false>(k, grid, smem, ca); break;
        }
    }
}

/* lone[r]: whether row r is the only row of its sequence (page table) in the step. */
typedef struct {
    const int32_t *table;
    int row;
} row_table;

static int by_table(const void *x, const void *y) {
    uintptr_t a = (uintptr_t)((const row_table *)x)->table, b = (uintptr_t)((const row_table *)y)->table;
    return a < b ? -1 : a > b;
}

static bool lone_rows(const lg_attention_args *a, bool *lone) {
    int n = a->n_rows;
    row_table *rt = (row_table *)malloc(sizeof(row_table) * (size_t)n);
    if (!rt) return false;
    for (int r = 0; r < n; r++) rt[r] = (row_table){a->tables[r], r};
    qsort(rt, (size_t)n, sizeof *rt, by_table);
    for (int i = 0; i < n; i++)
        lone[rt[i].row] = (i == 0 || rt[i - 1].table != rt[i].table) && (i + 1 == n || rt[i + 1].table != rt[i].table);
    free(rt);
    return true;
}

/* Tiles with their chunk count in .w, most chunks first, then by first row. */
static int by_chunks_descending(const void *x, const void *y) {
    const int4 *a = (const int4 *)x, *b = (const int4 *)y;
    if (a->w != b->w) return a->w > b->w ? -1 : 1;
    return a->x < b->x ? -1 : a->x > b->x;
}

/* Tiles: runs of step rows of one sequence (same page table and fresh rows)
 * at consecutive positions, CK_MAX_PAIRS (MMA_MAX_PAIRS) / group rows at most. Page tables
 * go up once per run of tiles with the same table. Single-row tiles (decode
 * rows) and longer ones launch apart, each as loop or split by its count. */
static void attention_chunked(lg_cuda_ctx *k, const lg_kv_pool_view *pool, float *out, const float *q,
                              const lg_attention_args *a, const float *gate, bool per_head) {
    int n = a->n_rows, G = a->n_heads / a->n_kv_heads;
    int max_pairs = lg_cuda_attention_mma_takes(a->head_dim, false) ? lg_cuda_attention_mma_max_pairs(a->head_dim)
                                                                     : CK_MAX_PAIRS;
    int max_rows = max_pairs / G;
    int4 *tiles = (int4 *)malloc(sizeof(int4) * (size_t)n * 2);
    int32_t *need = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    bool *lone = (bool *)malloc(sizeof(bool) * (size_t)n);
    if (!tiles || !need || !lone || !lone_rows(a, lone)) {
        free(tiles), free(need), free(lone);
        return;
    }
    int n_tiles = 0;
    for (int r = 0; r < n; r++) {
        bool joins = r > 0 && tiles[n_tiles - 1].y < max_rows && a->tables[r] == a->tables[r - 1] &&
                     a->fresh_from[r] == a->fresh_from[r - 1] && a->fresh_at[r] == a->fresh_at[r - 1] &&
                     a->pos[r] == a->pos[r - 1] + 1;
        if (joins) tiles[n_tiles - 1].y++;
        else tiles[n_tiles++] = make_int4(r, 1, 0, 0);
    }
    /* table runs: tile t uses run entries [0, pos_end / page_size] */
    size_t total = 0;
    for (int t = 0, run = -1; t < n_tiles; t++) {
        int entries = (a->pos[tiles[t].x] + tiles[t].y - 1) / pool->page_size + 1;
        if (run < 0 || a->tables[tiles[t].x] != a->tables[tiles[run].x]) {
            if (run >= 0) total += (size_t)need[run];
            run = t, need[run] = 0;
        }
        tiles[t].z = (int)total;
        if (entries > need[run]) need[run] = entries;
        if (t == n_tiles - 1) total += (size_t)need[run];
    }
    int32_t *pages = (int32_t *)malloc(sizeof(int32_t) * (total ? total : 1));
    if (!pages) {
        free(tiles), free(need), free(lone);
        return;
    }
    for (int t = 0; t < n_tiles; t++)
        if (t == 0 || tiles[t].z != tiles[t - 1].z)
            memcpy(pages + tiles[t].z, a->tables[tiles[t].x], sizeof(int32_t) * (size_t)need[t]);
    chunk_args ca;
    memset(&ca, 0, sizeof ca); /* padding too: a recorded step compares arguments bytewise */
    ca.pool = pool->base;
    ca.page_bytes = pool->page_bytes;
    ca.row_bytes = pool->row_bytes;
    ca.page_size = pool->page_size;
    ca.page_shift = -1;
    for (int b = 0; b < 31; b++)
        if (pool->page_size == 1 << b) ca.page_shift = b;
    ca.dtype = pool->dtype;
    ca.pos = (const int32_t *)lg_cuda_upload(k, a->pos, sizeof(int32_t) * n);
    ca.fresh_from = (const int32_t *)lg_cuda_upload(k, a->fresh_from, sizeof(int32_t) * n);
    ca.fresh_at = (const int32_t *)lg_cuda_upload(k, a->fresh_at, sizeof(int32_t) * n);
    ca.fresh_rows = (const int32_t *)lg_cuda_upload(k, a->fresh_rows, sizeof(int32_t) * n);
    ca.pages = (const int32_t *)lg_cuda_upload(k, pages, sizeof(int32_t) * (total ? total : 1));
    ca.q = q;
    ca.fresh_k = a->fresh_k;
    ca.fresh_v = a->fresh_v;
    ca.out = out;
    ca.gate = gate;
    ca.gate_per_head = per_head;
    ca.n_heads = a->n_heads;
    ca.n_kv_heads = a->n_kv_heads;
    ca.head_dim = a->head_dim;
    ca.group = G;
    ca.window = a->window;
    ca.hdp = (a->head_dim + 3) / 4 * 4;
    ca.stride = ca.hdp / 4 % 2 ? ca.hdp : ca.hdp + 4; /* float4 rows read by 8 lanes at once hit distinct banks */
    ca.scale = 1.0f / sqrtf((float)a->head_dim);
    ca.hi_only = lg_cuda_bf16_activations(k);
    /* lone rows (their sequence's only row in the step: decode rows) first, then the others */
    int4 *sorted = tiles + n;
    int n_single = 0;
    for (int t = 0; t < n_tiles; t++)
        if (tiles[t].y == 1 && lone[tiles[t].x]) sorted[n_single++] = tiles[t];
    int n_sorted = n_single;
    for (int t = 0; t < n_tiles; t++)
        if (tiles[t].y > 1 || !lone[tiles[t].x]) sorted[n_sorted++] = make_int4(tiles[t].x, tiles[t].y, tiles[t].z,
                                                                              tile_chunks(a, tiles[t]));
    /* the others longest first: blocks start in grid order, so a causal prompt's last wave is not its longest
     * tiles (each tile's pairs come out the same wherever it runs) */
    static const bool longest_first = lg_cuda_switch_on("LAGUNA_CUDA_ATTN_LONGEST_FIRST"); /* 0: for measuring */
    if (longest_first) qsort(sorted + n_single, (size_t)(n_tiles - n_single), sizeof(int4), by_chunks_descending);
    for (int t = n_single; t < n_tiles; t++) sorted[t].w = 0;
    launch_chunked(k, ca, a, sorted, n_single, k->attn_decode_loop_min,
                   lg_cuda_attention_mma_takes(a->head_dim, true), true);
    launch_chunked(k, ca, a, sorted + n_single, n_tiles - n_single, CK_LOOP_MIN_TILES,
                   lg_cuda_attention_mma_takes(a->head_dim, false), false);
    free(tiles), free(need), free(pages), free(lone);
}

/* The one-pass kernel's launch: each row's page table uploaded in full. */
static void attention_one_pass(lg_cuda_ctx *k, const lg_kv_pool_view *pool, float *out, const float *q,
                               const lg_attention_args *a, const float *gate, bool per_head) {
    int n = a->n_rows;
    int32_t *table_at = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    size_t total = 0;
    for (int r = 0; r < n; r++) total += (size_t)(a->pos[r] / pool->page_size + 1);
    int32_t *pages = (int32_t *)malloc(sizeof(int32_t) * (total ? total : 1));
    if (!table_at || !pages) {
        free(table_at), free(pages);
        return;
    }
    size_t at = 0;
    for (int r = 0; r < n; r++) {
        int np = a->pos[r] / pool->page_size + 1;
        table_at[r] = (int32_t)at;
        memcpy(pages + at, a->tables[r], sizeof(int32_t) * (size_t)np);
        at += (size_t)np;
    }
    attn_args g;
    memset(&g, 0, sizeof g); /* padding too: a recorded step compares arguments bytewise */
    g.pool = pool->base;
    g.page_bytes = pool->page_bytes;
    g.row_bytes = pool->row_bytes;
    g.page_size = pool->page_size;
    g.dtype = pool->dtype;
    g.pos = (const int32_t *)lg_cuda_upload(k, a->pos, sizeof(int32_t) * n);
    g.table_at = (const int32_t *)lg_cuda_upload(k, table_at, sizeof(int32_t) * n);
    g.pages = (const int32_t *)lg_cuda_upload(k, pages, sizeof(int32_t) * total);
    g.fresh_from = (const int32_t *)lg_cuda_upload(k, a->fresh_from, sizeof(int32_t) * n);
    g.fresh_at = (const int32_t *)lg_cuda_upload(k, a->fresh_at, sizeof(int32_t) * n);
    g.fresh_rows = (const int32_t *)lg_cuda_upload(k, a->fresh_rows, sizeof(int32_t) * n);
    g.q = q;
    g.fresh_k = a->fresh_k;
    g.fresh_v = a->fresh_v;
    g.out = out;
    g.gate = gate;
    g.gate_per_head = per_head;
    g.n_heads = a->n_heads;
    g.n_kv_heads = a->n_kv_heads;
    g.head_dim = a->head_dim;
    g.window = a->window;
    g.scale = 1.0f / sqrtf((float)a->head_dim);
    free(table_at);
    free(pages);
    lg_cuda_launch(k, attention_kernel, dim3(n, a->n_heads), THREADS, 0, g);
}

void lg_cuda_attention_gated(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                             const lg_attention_args *a, const float *gate, bool per_head) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (a->n_rows <= 0) return;
    if (chunked_supported(a)) attention_chunked(k, pool, out, q, a, gate, per_head);
    else attention_one_pass(k, pool, out, q, a, gate, per_head);
}

void lg_cuda_attention(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                       const lg_attention_args *a) {
    lg_cuda_attention_gated(c, pool, out, q, a, NULL, false);
}

/* Grid (row, keys or values, slice): each thread converts one element (or
 * one Q8_0 block of 32, quantised as ggml does: scale amax/127, round)
 * into the row's pool slot, in the pool's dtype. */
#define KV_THREADS 128

__global__ void kv_write_kernel(uint8_t *pool, size_t page_bytes, size_t row_bytes, int page_size, int dtype,
                                int row_floats, const int32_t *slots, const float *k, const float *v) {
    lg_cuda_kernel_begin();
    int r = blockIdx.x, slot = slots[r], which = blockIdx.y, i = blockIdx.z * KV_THREADS + threadIdx.x;
    uint8_t *dst = pool + (size_t)(slot / page_size) * page_bytes + (size_t)(slot % page_size) * row_bytes +
                   (size_t)which * page_size * row_bytes;
    const float *src = (which ? v : k) + (size_t)r * row_floats;
    if (dtype == LG_DTYPE_Q8_0) {
        if (i >= row_floats / 32) return;
        float x[32], amax = 0.0f;
#pragma unroll
        for (int j = 0; j < 32; j++) x[j] = src[i * 32 + j], amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *blk = dst + (size_t)i * 34;
        *(__half *)blk = __float2half_rn(d);
#pragma unroll
        for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
        return;
    }
    if (i >= row_floats) return;
    if (dtype == LG_DTYPE_F32) ((float *)dst)[i] = src[i];
    else if (dtype == LG_DTYPE_BF16) ((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(src[i]);
    else ((__half *)dst)[i] = __float2half_rn(src[i]);
}

void lg_cuda_kv_write(lg_backend_ctx *c, const lg_kv_pool_view *pool, const lg_kv_write_args *a, const float *k,
                      const float *v) {
    lg_cuda_ctx *x = LG_CUDA_CTX(c);
    if (a->n_rows <= 0) return;
    const int32_t *slots = (const int32_t *)lg_cuda_upload(x, a->slots, sizeof(int32_t) * (size_t)a->n_rows);
    int per_thread = pool->dtype == LG_DTYPE_Q8_0 ? 32 : 1;
    unsigned slices = (unsigned)((pool->row_floats / per_thread + KV_THREADS - 1) / KV_THREADS);
    lg_cuda_launch(x, kv_write_kernel, dim3(a->n_rows, 2, slices), KV_THREADS, 0, pool->base, pool->page_bytes, pool->row_bytes, pool->page_size,
                                                     pool->dtype, pool->row_floats, slots, k, v);
}
