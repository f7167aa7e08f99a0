/* The split of a Laguna model over N ranks (see partition.h for the scheme):
 * every count the split divides is checked here, with a message naming it. */
#include "parallel/partition.h"

#include <stdlib.h>

#include "core/error.h"

static bool any_mlp(const lg_config *c, lg_mlp_kind kind) {
    for (int l = 0; l < c->n_layers; l++)
        if (c->mlp_kind[l] == kind) return true;
    return false;
}

/* Rank r's share of n things split evenly over N ranks. */
static lg_range even_share(int n, int N, int r) {
    return (lg_range){r * (n / N), (r + 1) * (n / N)};
}

static laguna_status divides(laguna_error *err, int n, int N, const char *what) {
    if (n % N == 0) return LAGUNA_OK;
    return lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                   "cannot split the model over %d devices: %s (%d) is not a multiple of %d", N,
                   what, n, N);
}

/* Query heads of layer l: whole KV groups when the KV heads split, else a
 * slice of one group among the ranks that share its KV head. */
static laguna_status layer_heads(const lg_config *c, int l, const lg_rank_part *p,
                                 laguna_error *err) {
    int nkv = c->n_kv_heads, group = c->n_heads[l] / nkv, R = p->kv_replicas;
    if (group % R)
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                       "cannot split the model over %d devices: layer %d has %d query heads per KV "
                       "head, which the %d "
                       "devices sharing each of its %d KV heads cannot split evenly",
                       p->n_ranks, l, group, R, nkv);
    int per_rank = group / R, first = p->kv_heads.begin * group + (p->rank % R) * per_rank;
    if (R == 1) per_rank = lg_range_len(p->kv_heads) * group;
    p->q_heads[l] = (lg_range){first, first + per_rank};
    return LAGUNA_OK;
}

laguna_status lg_partition(const lg_config *c, int N, int rank, lg_rank_part *p,
                           laguna_error *err) {
    *p = (lg_rank_part){.rank = rank, .n_ranks = N, .n_layers = c->n_layers};
    if (N < 1 || N > LG_MAX_RANKS)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "%d devices is outside [1, %d]", N, LG_MAX_RANKS);
    if (rank < 0 || rank >= N)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "rank %d is outside [0, %d)", rank, N);
    int nkv = c->n_kv_heads;
    if (nkv % N == 0) {
        p->kv_replicas = 1;
        p->kv_heads = even_share(nkv, N, rank);
    } else if (N % nkv == 0) {
        p->kv_replicas = N / nkv;
        int kv = rank / p->kv_replicas;
        p->kv_heads = (lg_range){kv, kv + 1};
    } else {
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                       "cannot split the model over %d devices: its %d KV heads need a device "
                       "count that divides "
                       "them or is a multiple of them",
                       N, nkv);
    }
    laguna_status st;
    bool dense = any_mlp(c, LG_MLP_DENSE), sparse = any_mlp(c, LG_MLP_SPARSE);
    bool shared = sparse && c->shared_expert_intermediate_size > 0;
    if (dense &&
        (st = divides(err, c->intermediate_size, N, "the dense MLP width (intermediate_size)")))
        return st;
    if (sparse && (st = divides(err, c->n_experts, N, "the expert count (num_experts)"))) return st;
    if (shared && (st = divides(err, c->shared_expert_intermediate_size, N,
                                "the shared expert's width (shared_expert_intermediate_size)")))
        return st;
    if ((st = divides(err, c->vocab_size, N, "the vocabulary (vocab_size)"))) return st;
    p->dense_cols = dense ? even_share(c->intermediate_size, N, rank) : (lg_range){0, 0};
    p->experts = sparse ? even_share(c->n_experts, N, rank) : (lg_range){0, 0};
    p->shared_cols =
        shared ? even_share(c->shared_expert_intermediate_size, N, rank) : (lg_range){0, 0};
    p->vocab = even_share(c->vocab_size, N, rank);
    p->q_heads = calloc((size_t)c->n_layers, sizeof *p->q_heads);
    if (!p->q_heads) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->n_layers; l++)
        if ((st = layer_heads(c, l, p, err))) {
            lg_rank_part_free(p);
            return st;
        }
    return LAGUNA_OK;
}

void lg_rank_part_free(lg_rank_part *p) {
    free(p->q_heads);
    p->q_heads = NULL;
}
