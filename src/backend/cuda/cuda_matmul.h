/* The product launch description shared by the two product kernels: the
 * CUDA-core one (cuda_matmul.cu, every dtype) and the tensor-core one
 * (cuda_matmul_mma.cu, BF16 weights). */
#ifndef LAGUNA_BACKEND_CUDA_MATMUL_H
#define LAGUNA_BACKEND_CUDA_MATMUL_H

#include "backend/cuda/cuda_internal.h"

struct matmul_args {
    const uint8_t *w;                 /* plain: the matrix */
    const uint8_t *const *w_table;    /* grouped: one matrix per expert */
    size_t row_bytes;
    int dtype, rows, cols;
    int vec;                          /* elements per 16-byte load or quant unit (0: one at a time) */
    int rows_per_warp;                /* one token, quant block path: rows a warp takes (0: one, the plain path) */
    int stage_bytes;                  /* rows_per_warp > 0: a warp's shared-memory copy of its rows (0: registers) */
    int aligned16;                    /* the matrix (every expert's) starts 16-byte aligned */
    const float *x;
    float *y;
    int n_tokens;                     /* plain: tokens; grouped: most rows of one expert */
    int typical_rows;                 /* grouped: rows per listed expert, rounded up (grid size) */
    const float *bias;
    const int32_t *offsets;           /* grouped: [n_experts + 1] */
    const int32_t *active;            /* grouped: count, then experts with rows */
    int x_rows;                       /* rows of x the op may read (grouped: every pair) */
    const int8_t *xq;                 /* x quantised once for the whole op (quant block path, */
    const float *xd;                  /* several tokens a warp; NULL: each block quantises its own) */
    int hi_only;                      /* BF16 on tensor cores: activations rounded to bf16 (cuda_mma.h) */
    const uint8_t *xp;                /* x packed once for the whole op (cuda_matmul_wgmma_packed.cu) */
    /* grouped, the pairs' rows not yet gathered into x (lg_moe_args'
     * expert_in_pending): x's row r is row x_map[r] / x_map_div of x_from.
     * The packed GEMM's packing reads them there; every other path gathers
     * them into x first (lg_cuda_set_settle). */
    const float *x_from;
    const int32_t *x_map;
    int x_map_div;
};

/* Up to SET_MAX products in one launch: op i owns blocks
 * [first_block[i], first_block[i + 1]) along x; a plain op uses z = 0 only. */
#define SET_MAX 4
struct matmul_set {
    matmul_args op[SET_MAX];
    int first_block[SET_MAX + 1];
    int n;
};

/* The op a block of a set works on, and its block index within that op. */
__device__ __forceinline__ int set_op_of(const matmul_set &set, int block, int *block_x) {
    int i = 0;
    while (i + 1 < set.n && block >= set.first_block[i + 1]) i++;
    *block_x = block - set.first_block[i];
    return i;
}

__device__ __forceinline__ int set_op_of_block(const matmul_set &set, int *block_x) {
    return set_op_of(set, (int)blockIdx.x, block_x);
}

/* The matrix and token range [t_begin, t_begin + t_count) of a block's
 * blockIdx.z: the op's own for a plain op (z = 0 only), the z-th listed
 * expert's for a grouped one. False when the block has nothing to do. */
__device__ __forceinline__ bool set_block_rows(const matmul_args &a, const uint8_t **w, int *t_begin, int *t_count) {
    *w = a.w, *t_begin = 0, *t_count = a.n_tokens;
    if (!a.offsets) return blockIdx.z == 0;
    /* the count and the entry read together (one L2 round trip, not two;
     * the list has a slot for every expert, so the entry is in it) */
    int n_active = a.active[0], e = a.active[1 + blockIdx.z];
    if ((int)blockIdx.z >= n_active) return false;
    *t_begin = a.offsets[e];
    *t_count = a.offsets[e + 1] - *t_begin;
    *w = a.w_table[e];
    return true;
}

/* Numbers the blocks of a launch whose blocks take bm rows of a product
 * along x: fills first_block, returns the blocks in all. */
static inline int set_number_blocks(matmul_set *s, int bm) {
    s->first_block[0] = 0;
    for (int i = 0; i < s->n; i++) s->first_block[i + 1] = s->first_block[i] + (s->op[i].rows + bm - 1) / bm;
    return s->first_block[s->n];
}

/* Takes the ops of set that keep(op) says into out, bytes as they are (a
 * recorded step hashes them). Returns the most tokens of one. */
template <typename F> static inline int set_pick_ops_if(const matmul_set &set, F keep, matmul_set *out) {
    memset(out, 0, sizeof *out);
    int most = 0;
    for (int i = 0; i < set.n; i++) {
        if (!keep(set.op[i])) continue;
        memcpy(&out->op[out->n++], &set.op[i], sizeof set.op[i]);
        most = set.op[i].n_tokens > most ? set.op[i].n_tokens : most;
    }
    return most;
}

/* Numbers the distinct activation matrices (x, cols, x_rows) of the ops of
 * s that takes(op) accepts: which[i] is op i's among them (-1: not taken),
 * owner[j] the first op with matrix j. Returns how many there are. */
template <typename F> static inline int set_distinct_x(const matmul_set &s, F takes, int *which, int *owner) {
    int n_x = 0;
    for (int i = 0; i < s.n; i++) {
        const matmul_args &a = s.op[i];
        which[i] = -1;
        if (!takes(a)) continue;
        for (int j = 0; j < n_x && which[i] < 0; j++) {
            const matmul_args &o = s.op[owner[j]];
            if (o.x == a.x && o.cols == a.cols && o.x_rows == a.x_rows) which[i] = j;
        }
        if (which[i] < 0) owner[n_x] = i, which[i] = n_x++;
    }
    return n_x;
}

/* Takes the ops of set that are grouped (or not) into out. */
static inline int set_pick_ops(const matmul_set &set, bool grouped, matmul_set *out) {
    return set_pick_ops_if(set, [grouped](const matmul_args &a) { return (a.offsets != NULL) == grouped; }, out);
}

/* Token tiles of tile_tokens the grid of a grouped launch covers: 1.5x the
 * typical expert's rows (its blocks loop over the rest), at most what the
 * most rows of one expert need. */
static inline int set_grouped_tiles(const matmul_set &set, int most, int tile_tokens) {
    int typical = 1;
    for (int i = 0; i < set.n; i++)
        typical = set.op[i].typical_rows > typical ? set.op[i].typical_rows : typical;
    int tiles = (most + tile_tokens - 1) / tile_tokens, cover = (3 * typical / 2 + tile_tokens - 1) / tile_tokens;
    return cover < tiles ? cover : tiles;
}

/* Launches the BF16 products of set on tensor cores (cuda_matmul_mma.cu);
 * first_block is filled in there. max_tokens: most rows any op or expert
 * has; max_groups: blockIdx.z extent. */
void lg_cuda_mma_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups);

/* Whether BF16 products go to the tensor-core kernel (LAGUNA_CUDA_MMA=0: no). */
bool lg_cuda_mma_enabled(void);

/* Makes the x of the ops of s what they multiply: gathers mapped rows
 * (matmul_args.x_map). Every product path but the packed GEMM, which packs
 * them from where they are, calls it first. */
void lg_cuda_set_settle(lg_cuda_ctx *k, matmul_set *s);

/* Whether grouped products of n_tokens tokens an expert at most go to the
 * packed GEMM, which packs mapped rows from where they are
 * (cuda_matmul_wgmma.cu). */
bool lg_cuda_grouped_packed(int n_tokens);

#endif
