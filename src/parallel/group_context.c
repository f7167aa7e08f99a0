/* A laguna_context on a model split over several devices: one ordinary
 * context per rank (its KV cache holds the rank's KV heads), all made, fed
 * and freed on the ranks' threads. A decode checks the rows and takes their
 * pages on every rank first, and runs the forward pass (whose collectives
 * need every rank) only when all ranks got that far; rank 0 writes the
 * caller's logits and greedy tokens. */
#include <stdlib.h>

#include "core/error.h"
#include "parallel/group.h"
#include "runtime/context.h"

typedef struct {
    laguna_context *x;
    const laguna_context_options *options;
    const lg_decode_call *call;
    size_t logits_floats; /* per rank */
    bool run;             /* false: prepare */
    laguna_status *codes;
    laguna_error *errs;
} rank_job;

static int first_failure(const rank_job *j, int n_ranks, laguna_error *err) {
    for (int r = 0; r < n_ranks; r++)
        if (j->codes[r]) {
            if (err) *err = j->errs[r];
            return r;
        }
    return -1;
}

static void create_on_rank(void *user, int r) {
    rank_job *j = user;
    laguna_model *m = lg_group_rank(j->x->model->group, r);
    j->codes[r] = laguna_context_create(m, j->options, &j->x->ranks[r], &j->errs[r]);
}

static void free_on_rank(void *user, int r) {
    rank_job *j = user;
    laguna_context_free(j->x->ranks[r]);
}

static laguna_status with_job(laguna_context *x, rank_job *j, laguna_error *err) {
    int N = lg_group_size(x->model->group);
    j->x = x;
    j->codes = calloc((size_t)N, sizeof *j->codes);
    j->errs = calloc((size_t)N, sizeof *j->errs);
    if (j->codes && j->errs) return LAGUNA_OK;
    free(j->codes), free(j->errs);
    return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
}

static void end_job(rank_job *j) {
    free(j->codes), free(j->errs);
}

laguna_status lg_group_context_create(laguna_context *x, const laguna_context_options *d,
                                      laguna_error *err) {
    lg_group *g = x->model->group;
    rank_job j = {.options = d};
    laguna_status st = with_job(x, &j, err);
    if (st) return st;
    if (!(x->ranks = calloc((size_t)lg_group_size(g), sizeof *x->ranks)))
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    if (!st) lg_group_run(g, create_on_rank, &j);
    int bad = st ? -1 : first_failure(&j, lg_group_size(g), err);
    if (bad >= 0) st = lg_fail_prefix(err, "device %d: ", bad);
    end_job(&j);
    return st;
}

void lg_group_context_free(laguna_context *x) {
    rank_job j = {0};
    if (with_job(x, &j, NULL) == LAGUNA_OK) {
        lg_group_run(x->model->group, free_on_rank, &j);
        end_job(&j);
    }
    free(x->ranks);
    free(x->rank_logits);
    free(x->rank_argmax);
    x->ranks = NULL;
}

/* Rank 0 writes the caller's buffers; the others, which compute the same
 * logits and tokens, their own. */
static void decode_on_rank(void *user, int r) {
    rank_job *j = user;
    lg_decode_call call = *j->call;
    if (r > 0 && call.logits)
        call.logits =
            j->logits_floats ? j->x->rank_logits + (size_t)(r - 1) * j->logits_floats : NULL;
    if (r > 0 && call.argmax)
        call.argmax = call.n > 0 ? j->x->rank_argmax + (size_t)(r - 1) * (size_t)call.n : NULL;
    laguna_context *rx = j->x->ranks[r];
    j->codes[r] = j->run ? lg_context_decode_run(rx, &call, &j->errs[r])
                         : lg_context_decode_prepare(rx, &call, &j->errs[r]);
}

/* buf with room for n items (of *have): itself, or a new one (the old freed);
 * NULL, with *have 0, when out of memory. */
static void *with_room(void *buf, size_t *have, size_t n, size_t item_bytes) {
    if (n <= *have) return buf;
    free(buf);
    buf = malloc(item_bytes * n);
    *have = buf ? n : 0;
    return buf;
}

laguna_status lg_group_decode(laguna_context *x, const lg_decode_call *call, laguna_error *err) {
    lg_group *g = x->model->group;
    int N = lg_group_size(g);
    size_t wanted = 0;
    for (int i = 0; call->rows && i < call->n; i++)
        wanted += (lg_row_wants(call, i) & LAGUNA_ROW_LOGITS) != 0;
    rank_job j = {.call = call, .logits_floats = wanted * (size_t)x->model->cfg.vocab_size};
    laguna_status st = with_job(x, &j, err);
    if (st) return st;
    /* ranks 1.. gather the logits too */
    size_t need = j.logits_floats * (size_t)(N - 1),
           need_argmax = call->n > 0 ? (size_t)call->n * (size_t)(N - 1) : 0;
    if (call->logits && need &&
        !(x->rank_logits = with_room(x->rank_logits, &x->rank_logits_floats, need, sizeof(float))))
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    if (!st && call->argmax && need_argmax &&
        !(x->rank_argmax =
              with_room(x->rank_argmax, &x->rank_argmax_n, need_argmax, sizeof(int32_t))))
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (int run = 0; run < 2 && !st; run++) { /* every rank prepares before any runs */
        j.run = run;
        lg_group_run(g, decode_on_rank, &j);
        if (first_failure(&j, N, err) >= 0) st = j.codes[first_failure(&j, N, NULL)];
    }
    if (!st) st = lg_group_status(g, err);
    end_job(&j);
    return st;
}
