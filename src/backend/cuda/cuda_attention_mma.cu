/* The chunked attention on tensor cores: the same tiles, chunks, loop and
 * split launches and chunk merges as the CUDA-core kernel
 * (cuda_attention.cu; decode rows' chunks merged in groups there too), with
 * a chunk's scores and outputs computed by
 * mma.sync m16n8k16 (bf16 in, float32 accumulators) for head sizes up to
 * 128. A warp takes 16 (row, query head) pairs of the tile.
 *
 * Every float32 operand is split into two bf16 halves, x = hi + lo (lo the
 * rounded rest: x to ~2^-17), and a product is hi*hi + lo*hi + hi*lo, so a
 * chunk's result stays near float32 rather than bf16-rounded (a bf16 pool
 * row has lo = 0). For one chunk and one pair, with d in steps of 16:
 *   s_j = (q . k_j) * scale   per key j, three mma chains over the steps
 *                             of d, q_hi k_hi, q_lo k_hi and q_hi k_lo, added
 *                             in that order
 *   m   = max_j s_j;  p_j = exp(s_j - m)   (chunk_exp: 2^x on the
 *                             special-function unit, ~2^-22 relative)
 *   l   = sum of p_j          each lane's 8 keys in order, then the 4 lanes
 *                             of the pair's quad, pairwise
 *   o   = sum_j p_j v_j       per dim, one mma chain over the two 16-key
 *                             halves, each (p_hi v_hi, p_lo v_hi, p_hi v_lo)
 * and chunks merge into (M, L, O) with merge_chunk, as in the CUDA-core
 * kernel (a split launch's records by attention_merge_kernel, below). An
 * element of an mma depends only on its own row of the first operand and
 * column of the second, so a pair's result is bitwise the same
 * whichever tile, warp row, launch mode or batch computes it. The hi * lo
 * step of a whole chunk is left out when every staged lo is zero (a bf16
 * pool): it would add exact zeros. With a.hi_only (the bf16_activations
 * option) every lo is taken as zero: one chain for the scores, q_hi k_hi,
 * and one for the outputs, p_hi v_hi. */
#include "backend/cuda/cuda_attention_tc.h"

#define TC_MAX_DIM 128

/* Four elements copied raw into a 16-byte slot (8 bytes of it for 16-bit dtypes), as float32. */
__device__ __forceinline__ float4 raw_float4(const float *slot, int dtype) {
    if (dtype == LG_DTYPE_F32) return *(const float4 *)slot;
    uint2 u = *(const uint2 *)slot;
    if (dtype == LG_DTYPE_BF16) return bf16x4_float4(u);
    float2 a = __half22float2(*(const __half2 *)&u.x), b = __half22float2(*(const __half2 *)&u.y);
    return make_float4(a.x, a.y, b.x, b.y);
}

/* Grid as the CUDA-core kernel's. NT: 8-dim column tiles of the padded head
 * (head_dim rounded up to NT * 8, zeros past it). WARPS / WPM mma row tiles
 * of 16 pairs a block, WPM warps on each: a warp computes its share of the
 * 4 key column tiles of the scores (the tile's warps exchange them through
 * shared memory when WPM > 1, and each then runs the same softmax) and its
 * share of the output's dims. Shared memory, bf16 rows of NT * 8 + 8
 * elements (an odd number of 16-byte units: ldmatrix rows hit distinct
 * banks): q hi/lo per pair, k hi/lo and v hi/lo per key; then, float32,
 * the scores' exchange and the next chunk's raw keys and values.
 *
 * DIRECT (lone rows over a bf16 pool, head_dim = D): a pool row's bf16 is
 * its hi half and its lo is zero, so the pool's rows are copied (cp.async)
 * straight into two stages of k and v hi rows, one chunk ahead, and only
 * the step's own row (float32) and rows outside the row's range are
 * written when a chunk is taken; lo rows are used (and written) only in
 * chunks that hold step rows. The same halves as staging through raw
 * bytes, with less shared memory (3 blocks an SM) and two barriers a chunk
 * instead of four. */
template <int NT, int WARPS, int WPM, bool GROUPED, bool DIRECT>
__global__ void __launch_bounds__(WARPS * 32, WARPS == 4 ? 3 : WARPS == 8 ? 2 : 1) attention_mma_kernel(chunk_args a) {
    constexpr int D = NT * 8, RS = D + 8, KSTEPS = D / 16, THREADS = WARPS * 32, PAIRS = WARPS / WPM * 16;
    constexpr int SN = 4 / WPM, ON = NT / WPM; /* the warp's key tiles of the scores, dim tiles of the output */
    constexpr int SX = CHUNK + 1;                /* floats per pair in the exchange */
    /* DIRECT (decode) blocks take a chunk or a few, so code unrolled for speed is mostly fetched,
     * not run: the steps of d stay a loop there */
    constexpr int KS_UNROLL = DIRECT ? 1 : KSTEPS;
    static_assert(WPM > 1 && WPM <= 4 && ON >= 2 && ON % 2 == 0, "a warp's share: whole key tiles, dim tile pairs");
    static_assert(CHUNK * (D / 4) % THREADS == 0, "a chunk's staging: the same loads for every thread");
    static_assert(!DIRECT || CHUNK * (D / 8) % THREADS == 0, "direct copies: the same for every thread");
    extern __shared__ uint4 tc_smem4[];
    /* q hi/lo, k hi/lo, v hi/lo, the exchange, raw bytes; DIRECT: q hi/lo, k lo,
     * v lo, then per stage k hi and v hi, then the exchange */
    __nv_bfloat16 *q_hi = (__nv_bfloat16 *)tc_smem4, *q_lo = q_hi + PAIRS * RS;
    __nv_bfloat16 *k_hi = q_lo + PAIRS * RS, *k_lo = k_hi + CHUNK * RS;
    __nv_bfloat16 *v_hi = k_lo + CHUNK * RS, *v_lo = v_hi + CHUNK * RS;
    float *s_x = (float *)(v_lo + CHUNK * RS);
    __nv_bfloat16 *stages = q_lo + PAIRS * RS + 2 * CHUNK * RS; /* DIRECT: [2][k, v][CHUNK * RS] */
    if (DIRECT) {
        k_lo = q_lo + PAIRS * RS, v_lo = k_lo + CHUNK * RS;
        s_x = (float *)(stages + 4 * CHUNK * RS);
    }
    /* tiles, positions and page tables come with the step's uploads, and the
     * pool's rows before the step from earlier steps: none of it depends on
     * the previous kernel (the queries and the step's own rows do) */
    int4 tile = a.tiles[blockIdx.x];
    int kvh = blockIdx.y, r0 = tile.x, G = a.group, P = tile.y * G, hd = a.head_dim;
    int pos0 = a.pos[r0], pos_end = pos0 + tile.y - 1;
    block_span span;
    bool work = block_chunks(a, GROUPED, pos0, pos_end, &span);
    const int lo0 = span.lo0, c_first = span.c_first, c_begin = span.c_begin,
              c_end = span.c_end, gs = span.gs, g_first = span.g_first, g_last = span.g_last;
    bool direct = !a.split || g_first == g_last;
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, qd = lane & 3;
    int part = warp % WPM, pa = warp / WPM * 16; /* the warp's share, its row tile's first pair */
    bool active = pa < P;
    /* Staging, one chunk ahead: the thread's keys' row indices (a pool page or
     * a fresh row) are found two chunks ahead, their bytes copied into raw
     * shared memory one chunk ahead (cp.async), and turned into hi/lo halves
     * when the chunk is taken. Q8_0 pools and odd head sizes load directly. */
    constexpr int PER = CHUNK * (D / 4) / THREADS;
    const int fresh_from = work ? a.fresh_from[r0] : 0, fresh_at = work ? a.fresh_at[r0] : 0;
    const bool hd4 = (hd & 3) == 0;
    float *raw = s_x + PAIRS * SX; /* keys [CHUNK][D], then values */
    int idx[PER];
    auto in_chunk = [&](int c, int p, int d) {
        return c <= c_end && p >= max(c * CHUNK, lo0) && p <= min(c * CHUNK + CHUNK - 1, pos_end) && d < a.hdp;
    };
    auto copies = [&](int p) { return hd4 && (p >= fresh_from || a.dtype != LG_DTYPE_Q8_0); };
    /* DIRECT: U8 units of 8 dims a thread; the pool page of each, -1 for none */
    constexpr int U8 = DIRECT ? CHUNK * (D / 8) / THREADS : 1;
    int page8[U8];
    auto find_rows = [&](int c) {
        if constexpr (DIRECT) {
#pragma unroll
            for (int u = 0; u < U8; u++) {
                int i = tid + u * THREADS, j = i / (D / 8), p = c * CHUNK + j;
                page8[u] = in_chunk(c, p, 0) && p < fresh_from ? a.pages[tile.z + page_of(a, p)] : -1;
            }
        } else {
#pragma unroll
            for (int u = 0; u < PER; u++) {
                int i = tid + u * THREADS, j = i / (D / 4), d = (i % (D / 4)) * 4, p = c * CHUNK + j;
                idx[u] = -1;
                if (in_chunk(c, p, d) && copies(p))
                    idx[u] = p >= fresh_from ? a.fresh_rows[fresh_at + p - fresh_from]
                                             : a.pages[tile.z + page_of(a, p)];
            }
        }
    };
    auto copy_chunk = [&](int c) {
        if constexpr (DIRECT) {
            __nv_bfloat16 *st = stages + (c & 1) * 2 * CHUNK * RS;
#pragma unroll
            for (int u = 0; u < U8; u++) {
                if (page8[u] < 0) continue;
                int i = tid + u * THREADS, j = i / (D / 8), d = (i % (D / 8)) * 8, p = c * CHUNK + j;
                size_t e = ((size_t)kvh * hd + d) * 2;
                cp_async16(st + j * RS + d, pool_row(a, page8[u], p, 0) + e);
                cp_async16(st + CHUNK * RS + j * RS + d, pool_row(a, page8[u], p, 1) + e);
            }
        } else {
#pragma unroll
            for (int u = 0; u < PER; u++) {
                if (idx[u] < 0) continue;
                int i = tid + u * THREADS, j = i / (D / 4), d = (i % (D / 4)) * 4, p = c * CHUNK + j;
#pragma unroll
                for (int which = 0; which < 2; which++) {
                    float *dst = raw + which * CHUNK * D + j * D + d;
                    if (p >= fresh_from) {
                        const float *src =
                            (which ? a.fresh_v : a.fresh_k) + ((size_t)idx[u] * a.n_kv_heads + kvh) * hd + d;
                        cp_async16(dst, src);
                        continue;
                    }
                    const uint8_t *row = pool_row(a, idx[u], p, which);
                    size_t e = (size_t)kvh * hd + d;
                    if (a.dtype == LG_DTYPE_F32) cp_async16(dst, row + e * 4);
                    else cp_async8(dst, row + e * 2);
                }
            }
        }
        cp_async_commit();
    };
    bool early = first_chunk_pooled(a, work, c_begin, pos_end, fresh_from);
    if (early) {
        find_rows(c_begin);
        copy_chunk(c_begin);
    }
    lg_cuda_kernel_begin();
    if (!work) return;
    stage_queries<PAIRS, D, RS>(a, q_hi, q_lo, r0, kvh, P);
    /* this lane's two pairs: rows g and g + 8 of the warp's mma tiles */
    int prs[2] = {pa + g, pa + g + 8}, pts[2];
#pragma unroll
    for (int h = 0; h < 2; h++) pts[h] = pos0 + prs[h] / G;
    float M[2] = {-INFINITY, -INFINITY}, L[2] = {0.0f, 0.0f}, O[ON][4];
#pragma unroll
    for (int n = 0; n < ON; n++) O[n][0] = O[n][1] = O[n][2] = O[n][3] = 0.0f;
    /* grouped: the current group's (Mg, Lg, Og), folded into (M, L, O) or
     * passed on as the block's record when the group ends */
    constexpr int GO = GROUPED ? ON : 1;
    float Mg[2] = {-INFINITY, -INFINITY}, Lg[2] = {0.0f, 0.0f}, Og[GO][4];
#pragma unroll
    for (int n = 0; n < GO; n++) Og[n][0] = Og[n][1] = Og[n][2] = Og[n][3] = 0.0f;
    /* a chunk taken (its halves in k_hi/k_lo, v_hi/v_lo) through raw bytes;
     * *_lo_any: whether some staged lo is not zero */
    auto take_unit = [&](int c, int u, bool all_copied, bool *k_lo_any, bool *v_lo_any) {
        int i = tid + u * THREADS, j = i / (D / 4), d = (i % (D / 4)) * 4, p = c * CHUNK + j;
        float4 kx = make_float4(0.0f, 0.0f, 0.0f, 0.0f), vx = kx;
        if (in_chunk(c, p, d)) {
            if (!all_copied && !copies(p)) {
                kx = load4(a, r0, tile.z, p, 0, kvh, d);
                vx = load4(a, r0, tile.z, p, 1, kvh, d);
            } else {
                int dt = p >= fresh_from ? LG_DTYPE_F32 : a.dtype;
                kx = raw_float4(raw + j * D + d, dt);
                vx = raw_float4(raw + CHUNK * D + j * D + d, dt);
            }
        }
        uint2 h, l;
        split4(kx, &h, &l, k_lo_any);
        *(uint2 *)(k_hi + j * RS + d) = h, *(uint2 *)(k_lo + j * RS + d) = l;
        split4(vx, &h, &l, v_lo_any);
        *(uint2 *)(v_hi + j * RS + d) = h, *(uint2 *)(v_lo + j * RS + d) = l;
    };
    auto take_raw = [&](int c, bool *k_lo_any, bool *v_lo_any) {
        cp_async_wait_all();
        __syncthreads(); /* the chunk's bytes are in; the previous chunk's halves are read */
        /* rows staging cannot copy (Q8_0 pools, odd head sizes) take load4,
         * in a loop kept rolled: load4's dtype cases inlined into every
         * unrolled step made the kernel larger than an SM's instruction cache */
        if (hd4 && a.dtype != LG_DTYPE_Q8_0) {
#pragma unroll
            for (int u = 0; u < PER; u++) take_unit(c, u, true, k_lo_any, v_lo_any);
        } else {
#pragma unroll 1
            for (int u = 0; u < PER; u++) take_unit(c, u, false, k_lo_any, v_lo_any);
        }
        *k_lo_any = __syncthreads_or(*k_lo_any);
        *v_lo_any = __syncthreads_or(*v_lo_any); /* and the raw bytes are taken */
        if (a.hi_only) *k_lo_any = *v_lo_any = false;
    };
    /* DIRECT: the chunk's stage, with the rows no copy brings written (the
     * step's own, split; outside the row's range, zeros); lo rows only in a
     * chunk that holds step rows */
    auto take_direct = [&](int c, bool *k_lo_any, bool *v_lo_any) {
        k_hi = stages + (c & 1) * 2 * CHUNK * RS, v_hi = k_hi + CHUNK * RS;
        *k_lo_any = *v_lo_any = !a.hi_only && c * CHUNK + CHUNK - 1 >= fresh_from;
        /* step rows in the chunk before too (not a lone row's case): its lo rows are read first */
        if (*k_lo_any && c > c_begin && c * CHUNK - 1 >= fresh_from) __syncthreads();
        /* a chunk wholly in the pool and in the row's range (most of them) has every row copied;
         * the loop is kept rolled: run once a block, its unrolled code cost more to fetch */
        bool copied = c * CHUNK >= lo0 && c * CHUNK + CHUNK - 1 < min(pos_end + 1, fresh_from);
#pragma unroll 1
        for (int u = 0; u < (copied ? 0 : PER); u++) {
            int i = tid + u * THREADS, j = i / (D / 4), d = (i % (D / 4)) * 4, p = c * CHUNK + j;
            bool in = in_chunk(c, p, d), pooled = in && p < fresh_from;
            uint2 kh = make_uint2(0u, 0u), kl = kh, vh = kh, vl = kh;
            if (in && !pooled) {
                bool unused = false;
                split4(fresh4(a, r0, p, 0, kvh, d), &kh, &kl, &unused);
                split4(fresh4(a, r0, p, 1, kvh, d), &vh, &vl, &unused);
            }
            if (!pooled) *(uint2 *)(k_hi + j * RS + d) = kh, *(uint2 *)(v_hi + j * RS + d) = vh;
            if (*k_lo_any) *(uint2 *)(k_lo + j * RS + d) = kl, *(uint2 *)(v_lo + j * RS + d) = vl;
        }
        cp_async_wait_all();
        __syncthreads(); /* the chunk is in; the chunk before it (the other stage) is read */
    };
    if (!early) {
        find_rows(c_begin);
        copy_chunk(c_begin);
    }
    if (c_begin < c_end) find_rows(c_begin + 1);
    for (int c = c_begin; c <= c_end; c++) {
        bool k_lo_any = false, v_lo_any = false;
        if (DIRECT) take_direct(c, &k_lo_any, &v_lo_any);
        else take_raw(c, &k_lo_any, &v_lo_any);
        if (c < c_end) {
            copy_chunk(c + 1);
            find_rows(c + 2);
        }
        /* scores: 16 pairs x 32 keys, four 8-key column tiles; this warp's SN of them */
        float sa[SN][3][4]; /* q_hi k_hi, q_lo k_hi, q_hi k_lo: three chains, a third as long */
#pragma unroll
        for (int i = 0; i < SN; i++)
#pragma unroll
            for (int t = 0; t < 3; t++) sa[i][t][0] = sa[i][t][1] = sa[i][t][2] = sa[i][t][3] = 0.0f;
        if (active) {
#pragma unroll KS_UNROLL
            for (int ks = 0; ks < KSTEPS; ks++) {
                uint32_t ah[4], al[4];
                const int qoff = (pa + (lane & 15)) * RS + ks * 16 + (lane >> 4) * 8;
                ldsm_x4(ah, q_hi + qoff);
                if (!a.hi_only) ldsm_x4(al, q_lo + qoff);
#pragma unroll
                for (int i = 0; i < SN; i++) {
                    uint32_t bh[2], bl[2];
                    const int koff = ((part * SN + i) * 8 + (lane & 7)) * RS + ks * 16 + ((lane >> 3) & 1) * 8;
                    ldsm_x2(bh, k_hi + koff);
                    mma_bf16(sa[i][0], ah[0], ah[1], ah[2], ah[3], bh[0], bh[1]);
                    if (!a.hi_only) mma_bf16(sa[i][1], al[0], al[1], al[2], al[3], bh[0], bh[1]);
                    if (k_lo_any) {
                        ldsm_x2(bl, k_lo + koff);
                        mma_bf16(sa[i][2], ah[0], ah[1], ah[2], ah[3], bl[0], bl[1]);
                    }
                }
            }
        }
        /* every warp of the row tile takes all four key tiles */
        float *x = s_x + (warp / WPM) * 16 * SX, s[4][4];
        if (active)
#pragma unroll
            for (int i = 0; i < SN; i++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    x[(g + (e >> 1) * 8) * SX + (part * SN + i) * 8 + 2 * qd + (e & 1)] =
                        __fadd_rn(__fadd_rn(sa[i][0][e], sa[i][1][e]), sa[i][2][e]);
        __syncthreads();
#pragma unroll
        for (int n = 0; n < 4; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[n][e] = x[(g + (e >> 1) * 8) * SX + n * 8 + 2 * qd + (e & 1)];
        if (!active) continue;
        float mc[2], lc[2];
        chunk_softmax(s, c, prs, pts, P, a.window, a.scale, mc, lc);
        uint32_t ph[2][4], pl[2][4];
        split_probs(s, ph, pl);
        float ow[2], nw[2];
        bool take[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            take[h] = prs[h] < P && mc[h] != -INFINITY; /* some key of the pair in the chunk */
            ow[h] = 1.0f, nw[h] = 0.0f;
            if (take[h] && GROUPED) merge_chunk(Mg[h], Lg[h], mc[h], lc[h], &ow[h], &nw[h]);
            else if (take[h] && direct) merge_chunk(M[h], L[h], mc[h], lc[h], &ow[h], &nw[h]);
        }
        float *rec[2] = {NULL, NULL};
        if (!direct && !GROUPED)
#pragma unroll
            for (int h = 0; h < 2; h++)
                rec[h] = chunk_record(a, kvh, c - c_first, prs[h]);
        /* outputs: 16 pairs x this warp's ON dim tiles, two at a time */
#pragma unroll
        for (int i2 = 0; i2 < ON / 2; i2++) {
            int n2 = part * (ON / 2) + i2;
            float o[2][4];
            chunk_outputs<RS, 1>(o, v_hi, v_lo, v_lo_any, n2, ph, pl, !a.hi_only);
#pragma unroll
            for (int u = 0; u < 2; u++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    if (!take[h]) continue;
                    float *Ou = GROUPED ? Og[(2 * i2 + u) % GO] : O[2 * i2 + u];
                    if (GROUPED || direct) {
                        fold_outputs(Ou, o[u], h, ow[h], nw[h]);
                    } else {
                        *(float2 *)(rec[h] + (2 * n2 + u) * 8 + 2 * qd) = make_float2(o[u][2 * h], o[u][2 * h + 1]);
                    }
                }
        }
        if (!direct && !GROUPED && qd == 0 && part == 0)
#pragma unroll
            for (int h = 0; h < 2; h++)
                if (take[h]) rec[h][D] = mc[h], rec[h][D + 1] = lc[h];
        /* a group ends at a multiple of gs or at the block's last chunk */
        if (GROUPED && ((c + 1) % gs == 0 || c == c_end))
#pragma unroll
            for (int h = 0; h < 2; h++) {
                if (prs[h] >= P) continue;
                if (direct && Mg[h] != -INFINITY) { /* fold the group into the row's result */
                    float o_w, n_w;
                    merge_chunk(M[h], L[h], Mg[h], Lg[h], &o_w, &n_w);
#pragma unroll
                    for (int n = 0; n < GO; n++) fold_outputs(O[n], Og[n], h, o_w, n_w);
                } else if (!direct) { /* the group's record (m = -inf: no key of the pair in it) */
                    float *r = chunk_record(a, kvh, blockIdx.z, prs[h]);
#pragma unroll
                    for (int n = 0; n < GO; n++)
                        *(float2 *)(r + (part * ON + n) * 8 + 2 * qd) = make_float2(Og[n][2 * h], Og[n][2 * h + 1]);
                    if (qd == 0 && part == 0) r[D] = Mg[h], r[D + 1] = Lg[h];
                }
                Mg[h] = -INFINITY, Lg[h] = 0.0f;
#pragma unroll
                for (int n = 0; n < GO; n++) Og[n][2 * h] = Og[n][2 * h + 1] = 0.0f;
            }
    }
    /* split: attention_merge_kernel, launched after this one, merges the records */
    if (direct && active) store_outputs<ON>(a, O, L, prs, P, r0, kvh, part * ON);
}

/* A split launch's records merged, one block a (tile, KV head, pair) and a
 * thread a dim: the pair's records in order (grouped: every group's, those
 * with m = -inf, no key of the pair in them, skipped; not grouped: the
 * chunks of the pair's range), with merge_chunk and O = fmaf(O, ow, o * nw)
 * as the loop mode folds them, so the same bits; then O / L. Every thread of
 * a pair runs its (M, L). (Merged by the split launch's last block, one block
 * working alone through its chain of loads and code run once, it took ~10 us
 * of a decode step's ~17 us attention.) */
#define MERGE_BATCH 16

__global__ void attention_merge_kernel(const chunk_args a) {
    const bool grouped = a.groups > 0; /* lone rows: the GROUPED kernel (their pairs <= CK_MAX_GROUP = 16) */
    int4 tile = a.tiles[blockIdx.x]; /* uploads: read before the wait */
    int kvh = blockIdx.y, pr = blockIdx.z, G = a.group, P = tile.y * G, hd = a.head_dim, d = threadIdx.x;
    int pos0 = a.pos[tile.x], pt = pos0 + pr / G;
    block_span span;
    chunk_span(a, grouped, pos0, pos0 + tile.y - 1, &span);
    int n_rec = grouped ? span.g_last - span.g_first + 1 : span.c_last - span.c_first + 1;
    int s_lo = grouped ? 0 : row_lo(pt, a.window) / CHUNK - span.c_first;
    int s_hi = grouped ? n_rec - 1 : pt / CHUNK - span.c_first;
    lg_cuda_kernel_begin();
    /* one chunk (group) only: the attention block wrote the outputs itself (direct) */
    if (n_rec <= 1 || pr >= P || d >= hd) return;
    float M = -INFINITY, L = 0.0f, O = 0.0f;
    for (int s0 = s_lo; s0 <= s_hi; s0 += MERGE_BATCH) {
        float m[MERGE_BATCH], l[MERGE_BATCH], o[MERGE_BATCH];
#pragma unroll
        for (int u = 0; u < MERGE_BATCH; u++) {
            const float *r = chunk_record(a, kvh, min(s0 + u, s_hi), pr);
            m[u] = __ldcg(r + a.rec - 4), l[u] = __ldcg(r + a.rec - 3), o[u] = __ldcg(r + d);
        }
#pragma unroll
        for (int u = 0; u < MERGE_BATCH; u++) {
            if (s0 + u > s_hi) break;
            if (grouped && m[u] == -INFINITY) continue;
            float ow, nw;
            merge_chunk(M, L, m[u], l[u], &ow, &nw);
            O = fmaf(O, ow, __fmul_rn(o[u], nw));
        }
    }
    size_t rh = (size_t)(tile.x + pr / G) * a.n_heads + kvh * G + pr % G;
    a.out[rh * hd + d] = gated(head_gate_of(a.gate, a.gate_per_head, hd, rh), d, __fdiv_rn(O, L));
}

void lg_cuda_attention_merge_launch(lg_cuda_ctx *k, dim3 grid, const chunk_args &ca) {
    dim3 g(grid.x, grid.y, (unsigned)ca.pair_slots);
    lg_cuda_launch(k, attention_merge_kernel, g, (ca.head_dim + 31) / 32 * 32, 0, ca);
}

static int tiles_of(int head_dim) { return head_dim <= 32 ? 4 : head_dim <= 64 ? 8 : 16; }

/* LAGUNA_CUDA_ATTN_MMA=0 runs the CUDA-core kernel instead (for measuring);
 * LAGUNA_CUDA_ATTN_MMA_DECODE=0 only for lone (decode) rows. */
bool lg_cuda_attention_mma_takes(int head_dim, bool lone_rows) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_ATTN_MMA");
    static const bool decode = lg_cuda_switch_on("LAGUNA_CUDA_ATTN_MMA_DECODE");
    return head_dim <= TC_MAX_DIM && on && (decode || !lone_rows);
}

int lg_cuda_attention_mma_rec(int head_dim) { return tiles_of(head_dim) * 8 + 4; }

/* A chunk's keys and values are staged and split once a block: twice the
 * pairs a block, half that work a pair. */
int lg_cuda_attention_mma_max_pairs(int head_dim) { return tiles_of(head_dim) == 16 ? MMA_MAX_PAIRS : CK_MAX_PAIRS; }

/* Tiles of one row (decode: at most 16 pairs) take 4 warps on one row tile
 * (2 on each of two for the smallest heads); longer tiles 8 warps, 2 on each
 * of 4 row tiles, or with 16 dim tiles and over 64 pairs (MMA_MAX_PAIRS) 16
 * warps on 8 (prefill 4096 +2%, 32768 +13% on the H200: a chunk staged and
 * split once for twice the pairs). A launch with groups set (lone rows)
 * merges in groups. */
template <int NT, int WARPS, int WPM, bool GROUPED, bool DIRECT>
static void launch_shape(lg_cuda_ctx *k, dim3 grid, const chunk_args &ca) {
    constexpr int PAIRS = WARPS / WPM * 16;
    size_t rows = DIRECT ? 2 * PAIRS + 6 * CHUNK : 2 * PAIRS + 4 * CHUNK, raw = DIRECT ? 0 : 2 * CHUNK * NT * 8;
    size_t smem = sizeof(__nv_bfloat16) * (size_t)(NT * 8 + 8) * rows + sizeof(float) * (PAIRS * (CHUNK + 1) + raw);
    lg_cuda_allow_smem(attention_mma_kernel<NT, WARPS, WPM, GROUPED, DIRECT>, smem);
    lg_cuda_launch(k, attention_mma_kernel<NT, WARPS, WPM, GROUPED, DIRECT>, grid, WARPS * 32, smem, ca);
}

/* Lone rows over a bf16 pool whose rows copy in 16-byte pieces (LAGUNA_CUDA_ATTN_DIRECT=0: not). */
static bool direct_staging(const chunk_args &ca, int d) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_ATTN_DIRECT");
    return on && ca.groups && ca.dtype == LG_DTYPE_BF16 && ca.head_dim == d && ca.row_bytes % 16 == 0 &&
           ca.page_bytes % 16 == 0 && (uintptr_t)ca.pool % 16 == 0;
}

template <int NT>
static void launch_nt(lg_cuda_ctx *k, dim3 grid, const chunk_args &ca, int pairs) {
    constexpr int WPM = NT >= 8 ? 4 : 2;
    if (pairs <= 16 && direct_staging(ca, NT * 8)) launch_shape<NT, 4, WPM, true, true>(k, grid, ca);
    else if (pairs <= 16 && ca.groups) launch_shape<NT, 4, WPM, true, false>(k, grid, ca);
    else if (pairs <= 16) launch_shape<NT, 4, WPM, false, false>(k, grid, ca);
    else if constexpr (NT == 16) { /* over CK_MAX_PAIRS: lg_cuda_attention_mma_max_pairs */
        if (pairs > CK_MAX_PAIRS) launch_shape<NT, 16, 2, false, false>(k, grid, ca);
        else launch_shape<NT, 8, 2, false, false>(k, grid, ca);
    } else
        launch_shape<NT, 8, 2, false, false>(k, grid, ca);
}

void lg_cuda_attention_mma_launch(lg_cuda_ctx *k, dim3 grid, const chunk_args &ca, int pairs) {
    switch (tiles_of(ca.head_dim)) {
    case 4: launch_nt<4>(k, grid, ca, pairs); break;
    case 8: launch_nt<8>(k, grid, ca, pairs); break;
    default: launch_nt<16>(k, grid, ca, pairs); break;
    }
}
