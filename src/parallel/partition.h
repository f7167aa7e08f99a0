/* How a Laguna model is split over N ranks (devices): which query heads, KV
 * heads, MLP columns, experts and vocabulary rows each rank owns. Plain C
 * over the config, written once for the CPU simulation and the GPUs.
 *
 * The scheme (Megatron-style tensor parallelism for attention and the dense
 * and shared MLPs, expert parallelism for the routed experts):
 *
 *   attention   q/k/v/g_proj split by output rows (column parallel) along
 *               heads: a rank owns whole KV groups (a KV head and the query
 *               heads that read it), so attention runs with no
 *               communication. When N does not divide n_kv_heads but is a
 *               multiple of it, each KV head is replicated on N/n_kv_heads
 *               ranks and its group's query heads are split among them (the
 *               KV cache is then replicated, e.g. 8 KV heads on 16 ranks).
 *               o_proj is split by input columns (row parallel): each rank
 *               produces a partial sum of the block output.
 *               -> one all-reduce (sum) of the [rows, hidden] output.
 *   dense MLP   gate/up split by rows, down by columns -> one all-reduce.
 *   sparse MLP  the router (and its bias) is replicated: every rank computes
 *               the same routing from the same (all-reduced) input. Rank r
 *               owns experts [r*E/N, (r+1)*E/N) whole, and a slice of the
 *               shared expert (split like the dense MLP); it combines its
 *               experts' weighted outputs and its shared-expert partial.
 *               -> one all-reduce per block (routed + shared together).
 *   head        lm_head split by vocabulary rows; the logits are gathered
 *               (all-gather of each rank's columns). Embeddings and norms
 *               are replicated.
 *
 * So a layer costs exactly two all-reduces of n_rows x hidden floats, and a
 * step one all-gather of the wanted rows' logits.
 *
 * Exactness: everything before a reduction (q/k/v, attention, the routing,
 * each expert's output) is computed as one device computes it. The sums
 * differ in order: a row-parallel product (o_proj, the dense and shared
 * down projections) adds N partial dot products where one device runs one
 * loop over the row, and each rank combines its own experts before the
 * ranks' partials are added, where one device adds a token's experts in one
 * sequence. So N > 1 ranks match one device to float32 rounding (about
 * 5e-7 relative on the fixtures), not bitwise; one rank is bitwise. */
#ifndef LAGUNA_PARALLEL_PARTITION_H
#define LAGUNA_PARALLEL_PARTITION_H

#include "model/config.h"

#define LG_MAX_RANKS 64

/* [begin, end) */
typedef struct {
    int begin, end;
} lg_range;

static inline int lg_range_len(lg_range r) {
    return r.end - r.begin;
}

/* What one rank owns. Ranges of heads and columns are contiguous. */
typedef struct {
    int rank, n_ranks;
    lg_range kv_heads;    /* the same in every layer (every layer has one KV shape) */
    int kv_replicas;      /* ranks holding each KV head: 1 when split, N/n_kv_heads otherwise */
    lg_range *q_heads;    /* [n_layers]: query heads of each layer */
    lg_range dense_cols;  /* intermediate columns of the dense MLPs (empty when none) */
    lg_range shared_cols; /* intermediate columns of the shared expert (empty when none) */
    lg_range experts;     /* routed experts (empty when no sparse layer) */
    lg_range vocab;       /* lm_head rows, logits columns */
    int n_layers;
} lg_rank_part;

/* Fills *out with rank `rank` of `n_ranks`. Fails (LAGUNA_ERR_UNSUPPORTED,
 * naming the count that does not divide) when the config cannot be split
 * that way. out->q_heads is allocated: free with lg_rank_part_free. */
laguna_status lg_partition(const lg_config *cfg, int n_ranks, int rank, lg_rank_part *out,
                           laguna_error *err);
void lg_rank_part_free(lg_rank_part *p);

#endif
