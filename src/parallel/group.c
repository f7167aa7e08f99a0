/* The ranks of a model on several devices (group.h): their partitions,
 * backends, communicators and views of the model, and the rank threads
 * that run jobs on all ranks at once. */
#include "parallel/group.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "parallel/comm.h"
#include "parallel/devices.h"
#include "parallel/partition.h"
#include "parallel/rank_model.h"

typedef struct {
    lg_group *g;
    int rank;
} rank_thread;

struct lg_group {
    lg_device_list devices;
    int n, threads_per_rank; /* ranks driven by this process */
    lg_nccl_layout
        layout; /* where they sit among all ranks of the job (several hosts: docs/multi-gpu.md) */
    laguna_model *full;
    lg_rank_part *parts;
    lg_backend **backends;
    lg_comm **comms;
    laguna_model **ranks;
    laguna_error *errs; /* per rank, for the setup jobs */
    laguna_status *codes;
    lg_shm_world *world; /* cpu:N */

    pthread_t *threads;
    rank_thread *args;
    int n_threads_started;
    bool locks_made;
    pthread_mutex_t run_lock; /* one job at a time */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long generation;
    int pending;
    bool quit;
    void (*fn)(void *user, int rank);
    void *user;
};

static void *rank_main(void *arg) {
    rank_thread *t = arg;
    lg_group *g = t->g;
    if (g->devices.kind == LG_DEVICES_CUDA) lg_cuda_use_device(g->devices.ids[t->rank]);
    unsigned long seen = 0;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (g->generation == seen && !g->quit)
            pthread_cond_wait(&g->go, &g->mu);
        if (g->quit) break;
        seen = g->generation;
        void (*fn)(void *, int) = g->fn;
        void *user = g->user;
        pthread_mutex_unlock(&g->mu);
        fn(user, t->rank);
        pthread_mutex_lock(&g->mu);
        if (--g->pending == 0) pthread_cond_signal(&g->done);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

void lg_group_run(lg_group *g, void (*fn)(void *user, int rank), void *user) {
    pthread_mutex_lock(&g->run_lock);
    pthread_mutex_lock(&g->mu);
    g->fn = fn;
    g->user = user;
    g->pending = g->n;
    g->generation++;
    pthread_cond_broadcast(&g->go);
    while (g->pending > 0)
        pthread_cond_wait(&g->done, &g->mu);
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&g->run_lock);
}

int lg_group_size(const lg_group *g) {
    return g->n;
}
laguna_model *lg_group_rank(lg_group *g, int rank) {
    return g->ranks[rank];
}

laguna_status lg_group_status(lg_group *g, laguna_error *err) {
    for (int r = 0; r < g->n; r++) {
        laguna_status st = g->comms[r] ? lg_comm_status(g->comms[r], err) : LAGUNA_OK;
        if (st) return st;
    }
    return LAGUNA_OK;
}

/* The first rank's failure of a setup job, with the device named. */
static laguna_status first_failure(lg_group *g, laguna_error *err) {
    for (int r = 0; r < g->n; r++)
        if (g->codes[r]) {
            if (err) *err = g->errs[r];
            return lg_fail_prefix(err, "device %d of %d: ", r, g->n);
        }
    return LAGUNA_OK;
}

static void make_backend(void *user, int r) {
    lg_group *g = user;
    char name[32];
    if (g->devices.kind == LG_DEVICES_CUDA)
        snprintf(name, sizeof name, "cuda:%d", g->devices.ids[r]);
    else
        snprintf(name, sizeof name, "cpu");
    g->codes[r] = lg_backend_create(name, g->threads_per_rank, &g->backends[r], &g->errs[r]);
    if (!g->codes[r])
        g->codes[r] = lg_backend_check_top_k(g->backends[r], g->full->cfg.n_experts_per_token, &g->errs[r]);
}

static void make_rank_model(void *user, int r) {
    lg_group *g = user;
    g->codes[r] = lg_rank_model_new(g->full, &g->parts[r], g->backends[r], g->comms[r],
                                    &g->ranks[r], &g->errs[r]);
}

static laguna_status make_comms(lg_group *g, laguna_error *err) {
    if (g->devices.kind == LG_DEVICES_CPU) {
        if (!(g->world = lg_shm_world_new(g->n)))
            return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        for (int r = 0; r < g->n; r++)
            if (!(g->comms[r] = lg_shm_comm_new(g->world, r)))
                return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        return LAGUNA_OK;
    }
    return lg_nccl_comms_new(&g->layout, g->devices.ids, g->comms, err);
}

static laguna_status start_threads(lg_group *g, laguna_error *err) {
    if (pthread_mutex_init(&g->run_lock, NULL) || pthread_mutex_init(&g->mu, NULL) ||
        pthread_cond_init(&g->go, NULL) || pthread_cond_init(&g->done, NULL))
        return lg_fail(err, LAGUNA_ERR_NOMEM, "cannot make the rank threads' locks");
    g->locks_made = true;
    for (int r = 0; r < g->n; r++) {
        g->args[r] = (rank_thread){g, r};
        if (pthread_create(&g->threads[r], NULL, rank_main, &g->args[r]))
            return lg_fail(err, LAGUNA_ERR_NOMEM, "cannot start the thread of device %d", r);
        g->n_threads_started++;
    }
    return LAGUNA_OK;
}

static int threads_per_rank(int n_threads, int n_ranks) {
    if (n_threads <= 0) n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n_threads / n_ranks > 1 ? n_threads / n_ranks : 1;
}

laguna_status lg_group_new(laguna_model *full, const char *devices, int n_threads, lg_group **out,
                           laguna_error *err) {
    *out = NULL;
    lg_group *g = calloc(1, sizeof *g);
    if (!g) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = lg_devices_parse(devices, &g->devices, err);
    if (st) {
        free(g);
        return st;
    }
    int N = g->n = g->devices.n;
    g->full = full;
    g->threads_per_rank = threads_per_rank(n_threads, N);
    g->parts = calloc((size_t)N, sizeof *g->parts);
    g->backends = calloc((size_t)N, sizeof *g->backends);
    g->comms = calloc((size_t)N, sizeof *g->comms);
    g->ranks = calloc((size_t)N, sizeof *g->ranks);
    g->errs = calloc((size_t)N, sizeof *g->errs);
    g->codes = calloc((size_t)N, sizeof *g->codes);
    g->threads = calloc((size_t)N, sizeof *g->threads);
    g->args = calloc((size_t)N, sizeof *g->args);
    if (!g->parts || !g->backends || !g->comms || !g->ranks || !g->errs || !g->codes ||
        !g->threads || !g->args)
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    g->layout = (lg_nccl_layout){N, 0, N};
    if (!st && g->devices.kind == LG_DEVICES_CUDA) st = lg_nccl_layout_from_env(N, &g->layout, err);
    for (int r = 0; r < N && !st; r++)
        st = lg_partition(&full->cfg, g->layout.world_size, g->layout.first_rank + r, &g->parts[r],
                          err);
    if (!st) st = start_threads(g, err);
    if (!st) { /* a CUDA backend is made on its rank's thread, which keeps that GPU current */
        lg_group_run(g, make_backend, g);
        st = first_failure(g, err);
        if (st && g->devices.kind == LG_DEVICES_CUDA)
            lg_fail_prefix(err, "--devices %s needs one GPU per listed device: ", devices);
    }
    if (!st) st = make_comms(g, err);
    if (!st) {
        lg_group_run(g, make_rank_model, g);
        st = first_failure(g, err);
    }
    if (st) {
        lg_group_free(g);
        return st;
    }
    *out = g;
    return LAGUNA_OK;
}

static void free_rank(void *user, int r) {
    lg_group *g = user;
    lg_rank_model_free(g->ranks[r]);
    lg_comm_free(g->comms[r]);
    lg_backend_destroy(g->backends[r]); /* after the weights it holds */
    g->ranks[r] = NULL, g->comms[r] = NULL, g->backends[r] = NULL;
}

void lg_group_free(lg_group *g) {
    if (!g) return;
    if (g->n_threads_started == g->n)
        lg_group_run(g, free_rank, g); /* on the threads that made them */
    else
        for (int r = 0; g->backends && r < g->n; r++)
            free_rank(g, r);
    if (g->n_threads_started) {
        pthread_mutex_lock(&g->mu);
        g->quit = true;
        pthread_cond_broadcast(&g->go);
        pthread_mutex_unlock(&g->mu);
        for (int r = 0; r < g->n_threads_started; r++)
            pthread_join(g->threads[r], NULL);
    }
    if (g->locks_made) {
        pthread_mutex_destroy(&g->run_lock);
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->go);
        pthread_cond_destroy(&g->done);
    }
    lg_shm_world_free(g->world);
    for (int r = 0; g->parts && r < g->n; r++)
        lg_rank_part_free(&g->parts[r]);
    void *ptrs[] = {g->parts, g->backends, g->comms,   g->ranks,
                    g->errs,  g->codes,    g->threads, g->args};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        free(ptrs[i]);
    free(g);
}
