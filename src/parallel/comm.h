/* Collectives between the ranks of a model split over several devices: one
 * rank's end of a communicator. forward.c calls lg_comm_all_reduce at the two
 * reduction points of every layer and lg_comm_gather_columns for the logits.
 *
 * Two implementations: shared memory between threads (comm_shm.c: the CPU
 * simulation, N ranks as N threads of one process) and NCCL
 * (comm_nccl.cu, built when nvcc and nccl.h are found; libnccl is opened at
 * run time, so builds without it still link and run).
 *
 * Every rank of a communicator must make the same calls in the same order
 * with the same sizes (each rank runs the same forward pass on the same
 * rows). Ops return nothing, like backend ops: a failure is kept and
 * reported by lg_comm_status after the step. */
#ifndef LAGUNA_PARALLEL_COMM_H
#define LAGUNA_PARALLEL_COMM_H

#include <stddef.h>

#include "backend/backend.h"

typedef struct lg_comm lg_comm;

typedef struct {
    const char *name;
    /* x (n floats in backend memory) = the sum of every rank's x, bitwise
     * the same on every rank. */
    void (*all_reduce)(lg_comm *c, lg_backend_ctx *bc, float *x, size_t n);
    /* host_dst [n_rows][n_ranks * width] (host) receives rank r's src
     * [n_rows][width] (backend memory) in columns [r * width, (r+1) * width). */
    void (*gather_columns)(lg_comm *c, lg_backend_ctx *bc, float *host_dst, const float *src,
                           int n_rows, int width);
    /* LAGUNA_OK, or the first failure since the communicator was made. */
    laguna_status (*status)(lg_comm *c, laguna_error *err);
    void (*free)(lg_comm *c);
} lg_comm_ops;

struct lg_comm {
    const lg_comm_ops *ops;
    int rank, n_ranks;
};

static inline void lg_comm_all_reduce(lg_comm *c, lg_backend_ctx *bc, float *x, size_t n) {
    c->ops->all_reduce(c, bc, x, n);
}
static inline void lg_comm_gather_columns(lg_comm *c, lg_backend_ctx *bc, float *host_dst,
                                          const float *src, int n_rows, int width) {
    c->ops->gather_columns(c, bc, host_dst, src, n_rows, width);
}
static inline laguna_status lg_comm_status(lg_comm *c, laguna_error *err) {
    return c->ops->status(c, err);
}
static inline void lg_comm_free(lg_comm *c) {
    if (c) c->ops->free(c);
}

/* ---- shared memory (threads of one process) ---------------------------- */

/* The state the ranks share; each rank then takes its end. The sum of an
 * all-reduce is formed in rank order, ((x0 + x1) + x2) + ..., by one rank
 * per slice of the vector, so it is the same on every rank and in every
 * run, whatever the threads' timing. Ranks must be backed by host memory. */
typedef struct lg_shm_world lg_shm_world;
lg_shm_world *lg_shm_world_new(int n_ranks);
/* Rank r's end (NULL when out of memory); free the ends before the world. */
lg_comm *lg_shm_comm_new(lg_shm_world *w, int rank);
void lg_shm_world_free(lg_shm_world *w);

/* ---- NCCL -------------------------------------------------------------- */

/* How the ranks of one job find each other: world_size ranks over all
 * hosts, this process driving ranks [first_rank, first_rank + n_local). The
 * unique id comes from the environment (see docs/multi-gpu.md):
 * LAGUNA_NCCL_ID (hex) or LAGUNA_NCCL_ID_FILE (written by the process with
 * first_rank 0, read by the others); a single-process job (world_size ==
 * n_local) makes its own. */
typedef struct {
    int world_size, first_rank, n_local;
} lg_nccl_layout;

/* Reads LAGUNA_WORLD_SIZE and LAGUNA_FIRST_RANK (defaults: n_local, 0). */
laguna_status lg_nccl_layout_from_env(int n_local, lg_nccl_layout *out, laguna_error *err);

/* The job's unique id (id_bytes bytes): from LAGUNA_NCCL_ID (hex), else
 * from the file LAGUNA_NCCL_ID_FILE, which the process holding rank 0 writes
 * (make_id fills a new id; written to a temporary name, then renamed) and
 * the others wait for (LAGUNA_NCCL_ID_WAIT seconds, default 300), else,
 * for a job of one process, a new id from make_id. */
laguna_status lg_nccl_id_exchange(const lg_nccl_layout *layout,
                                  int (*make_id)(void *id, void *user), void *user,
                                  unsigned char *id, size_t id_bytes, laguna_error *err);

/* Makes the communicators of this process's ranks, comms[i] for global
 * rank first_rank + i on CUDA device devices[i]; every process of the job
 * must call it at the same time. Sets NCCL_NVLS_ENABLE=0 before NCCL starts
 * (NVLink multicast can put shared GPUs out of service). Fails with
 * LAGUNA_ERR_UNSUPPORTED in builds without CUDA or when libnccl cannot be
 * loaded. */
laguna_status lg_nccl_comms_new(const lg_nccl_layout *layout, const int *devices, lg_comm **comms,
                                laguna_error *err);

/* Makes `device` the calling thread's current GPU (each CUDA rank's thread
 * calls it first); nothing in builds without CUDA. */
void lg_cuda_use_device(int device);

#endif
