/* The shared-memory communicator: N ranks as N threads of one process, for
 * the CPU simulation of a model split over several devices.
 *
 * Each collective is two barriers: every rank publishes its buffer, then
 * each rank works on its own slice of the vector across all buffers (so no
 * two threads touch one element), then all wait until every slice is done.
 * An all-reduce sums a slice's elements in rank order and writes the sum
 * back into every rank's buffer: the result is the same on every rank and
 * in every run. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "parallel/comm.h"

struct lg_shm_world {
    int n_ranks;
    pthread_barrier_t barrier;
    const float **bufs; /* [n_ranks]: each rank's buffer in the collective under way */
};

typedef struct {
    lg_comm base;
    lg_shm_world *world;
} shm_comm;

static lg_shm_world *world_of(lg_comm *c) {
    return ((shm_comm *)c)->world;
}

static void slice(size_t n, int N, int r, size_t *begin, size_t *end) {
    *begin = n * (size_t)r / (size_t)N;
    *end = n * (size_t)(r + 1) / (size_t)N;
}

static void shm_all_reduce(lg_comm *c, lg_backend_ctx *bc, float *x, size_t n) {
    (void)bc;
    lg_shm_world *w = world_of(c);
    int N = w->n_ranks;
    w->bufs[c->rank] = x;
    pthread_barrier_wait(&w->barrier);
    size_t b, e;
    slice(n, N, c->rank, &b, &e);
    for (size_t i = b; i < e; i++) {
        float s = w->bufs[0][i];
        for (int r = 1; r < N; r++)
            s += w->bufs[r][i];
        for (int r = 0; r < N; r++)
            ((float *)w->bufs[r])[i] = s;
    }
    pthread_barrier_wait(&w->barrier);
}

static void shm_gather_columns(lg_comm *c, lg_backend_ctx *bc, float *host_dst, const float *src,
                               int n_rows, int width) {
    (void)bc;
    lg_shm_world *w = world_of(c);
    int N = w->n_ranks;
    w->bufs[c->rank] = src;
    pthread_barrier_wait(&w->barrier);
    size_t W = (size_t)width, row = W * (size_t)N;
    for (int t = 0; t < n_rows; t++)
        for (int r = 0; r < N; r++)
            memcpy(host_dst + t * row + r * W, w->bufs[r] + t * W, sizeof(float) * W);
    pthread_barrier_wait(
        &w->barrier); /* the sources stay untouched until every rank has copied them */
}

static laguna_status shm_status(lg_comm *c, laguna_error *err) {
    (void)c, (void)err;
    return LAGUNA_OK;
}

static void shm_free(lg_comm *c) {
    free(c);
}

static const lg_comm_ops shm_ops = {"shared memory", shm_all_reduce, shm_gather_columns, shm_status,
                                    shm_free};

lg_shm_world *lg_shm_world_new(int n_ranks) {
    lg_shm_world *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->n_ranks = n_ranks;
    w->bufs = calloc((size_t)n_ranks, sizeof *w->bufs);
    if (!w->bufs || pthread_barrier_init(&w->barrier, NULL, (unsigned)n_ranks)) {
        free(w->bufs);
        free(w);
        return NULL;
    }
    return w;
}

lg_comm *lg_shm_comm_new(lg_shm_world *w, int rank) {
    shm_comm *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->base = (lg_comm){&shm_ops, rank, w->n_ranks};
    c->world = w;
    return &c->base;
}

void lg_shm_world_free(lg_shm_world *w) {
    if (!w) return;
    pthread_barrier_destroy(&w->barrier);
    free(w->bufs);
    free(w);
}
