/* A laguna_context on a model split over several devices: one ordinary
 * context per rank (its KV cache holds the rank's KV heads), all made, fed
 * and freed on the ranks' threads. A decode checks the rows and takes their
 * pages on every rank first, and runs the forward pass (whose collectives
 * need every rank) only when all ranks got that far; rank 0 writes the
 * caller's logits. */
#include <stdlib.h>

#include "core/error.h"
#include "parallel/group.h"
#include "runtime/context.h"

typedef struct {
    laguna_context *x;
    const laguna_context_options *options;
    const laguna_batch_row *rows;
    int n;
    float *logits;
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
    x->ranks = NULL;
}

static void decode_on_rank(void *user, int r) {
    rank_job *j = user;
    float *logits =
        r == 0 || !j->logits ? j->logits : j->x->rank_logits + (size_t)(r - 1) * j->logits_floats;
    laguna_context *rx = j->x->ranks[r];
    j->codes[r] = j->run ? lg_context_decode_run(rx, j->rows, j->n, logits, &j->errs[r])
                         : lg_context_decode_prepare(rx, j->rows, j->n, logits, &j->errs[r]);
}

laguna_status lg_group_decode(laguna_context *x, const laguna_batch_row *rows, int n, float *logits,
                              laguna_error *err) {
    lg_group *g = x->model->group;
    int N = lg_group_size(g);
    size_t wanted = 0;
    for (int i = 0; rows && i < n; i++)
        wanted += rows[i].logits != 0;
    rank_job j = {.rows = rows,
                  .n = n,
                  .logits = logits,
                  .logits_floats = wanted * (size_t)x->model->cfg.vocab_size};
    laguna_status st = with_job(x, &j, err);
    if (st) return st;
    size_t need = j.logits_floats * (size_t)(N - 1); /* ranks 1.. gather the logits too */
    if (logits && need > x->rank_logits_floats) {
        free(x->rank_logits);
        x->rank_logits_floats = 0;
        if (!(x->rank_logits = malloc(sizeof(float) * need)))
            st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        else
            x->rank_logits_floats = need;
    }
    for (int run = 0; run < 2 && !st; run++) { /* every rank prepares before any runs */
        j.run = run;
        lg_group_run(g, decode_on_rank, &j);
        if (first_failure(&j, N, err) >= 0) st = j.codes[first_failure(&j, N, NULL)];
    }
    if (!st) st = lg_group_status(g, err);
    end_job(&j);
    return st;
}
