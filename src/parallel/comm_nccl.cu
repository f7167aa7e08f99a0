/* The NCCL communicator: one rank's end per GPU, the collectives on the
 * rank's CUDA stream. libnccl is opened at run time (dlopen), so the
 * library links and runs without it and says what is missing when a
 * multi-GPU run starts. NCCL_NVLS_ENABLE=0 is set before NCCL is loaded:
 * NVLink multicast (NVLS) can put the GPUs of shared hosts out of service.
 *
 * Not yet run on real GPUs (docs/multi-gpu.md lists what is left to run). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

extern "C" {
#include "core/error.h"
#include "parallel/comm.h"
}

extern "C" void lg_cuda_use_device(int device) {
    cudaSetDevice(device);
}

#ifndef LAGUNA_NCCL
extern "C" laguna_status lg_nccl_comms_new(const lg_nccl_layout *layout, const int *devices,
                                           lg_comm **comms, laguna_error *err) {
    return lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                   "several GPUs: this build has no NCCL (nccl.h was not found when it was built)");
}
#else
#include <nccl.h>

/* The NCCL entry points we use, resolved once. */
struct nccl_api {
    bool loaded;
    char why[256];
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*comm_init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*comm_destroy)(ncclComm_t);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
                               ncclComm_t, cudaStream_t);
    ncclResult_t (*all_gather)(const void *, void *, size_t, ncclDataType_t, ncclComm_t,
                               cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    const char *(*error_string)(ncclResult_t);
};

static nccl_api api;
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

static void load_api(void) {
    setenv("NCCL_NVLS_ENABLE", "0", 1); /* before NCCL reads its environment */
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(api.why, sizeof api.why, "cannot load NCCL (libnccl.so.2): %s", dlerror());
        return;
    }
    struct {
        void **slot;
        const char *name;
    } syms[] = {{(void **)&api.get_unique_id, "ncclGetUniqueId"},
                {(void **)&api.comm_init_rank, "ncclCommInitRank"},
                {(void **)&api.comm_destroy, "ncclCommDestroy"},
                {(void **)&api.all_reduce, "ncclAllReduce"},
                {(void **)&api.all_gather, "ncclAllGather"},
                {(void **)&api.group_start, "ncclGroupStart"},
                {(void **)&api.group_end, "ncclGroupEnd"},
                {(void **)&api.error_string, "ncclGetErrorString"}};
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (!(*syms[i].slot = dlsym(h, syms[i].name))) {
            snprintf(api.why, sizeof api.why, "libnccl.so.2 has no %s", syms[i].name);
            return;
        }
    api.loaded = true;
}

struct nccl_comm {
    lg_comm base;
    ncclComm_t comm;
    int device;
    float *gathered; /* device: [n_ranks][rows][width] */
    size_t gathered_bytes;
    float *staged; /* host copy of it */
    size_t staged_bytes;
    laguna_status st; /* first failure */
    laguna_error err;
};

static nccl_comm *of(lg_comm *c) {
    return (nccl_comm *)c;
}

static void fail(nccl_comm *c, const char *what, const char *why) {
    if (!c->st)
        c->st = lg_fail(&c->err, LAGUNA_ERR_UNSUPPORTED, "rank %d (cuda:%d): %s: %s", c->base.rank,
                        c->device, what, why);
}

static void nccl_all_reduce(lg_comm *lc, lg_backend_ctx *bc, float *x, size_t n) {
    nccl_comm *c = of(lc);
    ncclResult_t r =
        api.all_reduce(x, x, n, ncclFloat32, ncclSum, c->comm, LG_CUDA_CTX(bc)->stream);
    if (r != ncclSuccess) fail(c, "ncclAllReduce", api.error_string(r));
}

static bool grow(void **p, size_t *have, size_t need, bool device) {
    if (need <= *have) return true;
    if (device) {
        cudaFree(*p);
        *p = NULL;
        if (cudaMalloc(p, need) != cudaSuccess) return *have = 0, false;
    } else {
        free(*p);
        if (!(*p = malloc(need))) return *have = 0, false;
    }
    *have = need;
    return true;
}

/* All-gather into [rank][rows][width] on the device, then to the host and
 * into columns. */
static void nccl_gather_columns(lg_comm *lc, lg_backend_ctx *bc, float *host_dst, const float *src,
                                int n_rows, int width) {
    nccl_comm *c = of(lc);
    cudaStream_t s = LG_CUDA_CTX(bc)->stream;
    size_t per_rank = (size_t)n_rows * width, bytes = sizeof(float) * per_rank * c->base.n_ranks;
    if (!grow((void **)&c->gathered, &c->gathered_bytes, bytes, true) ||
        !grow((void **)&c->staged, &c->staged_bytes, bytes, false))
        return fail(c, "gathering the logits", "out of memory");
    ncclResult_t r = api.all_gather(src, c->gathered, per_rank, ncclFloat32, c->comm, s);
    if (r != ncclSuccess) return fail(c, "ncclAllGather", api.error_string(r));
    if (cudaMemcpyAsync(c->staged, c->gathered, bytes, cudaMemcpyDeviceToHost, s) != cudaSuccess ||
        cudaStreamSynchronize(s) != cudaSuccess)
        return fail(c, "copying the logits", cudaGetErrorString(cudaGetLastError()));
    for (int t = 0; t < n_rows; t++)
        for (int k = 0; k < c->base.n_ranks; k++)
            memcpy(host_dst + ((size_t)t * c->base.n_ranks + k) * width,
                   c->staged + (k * (size_t)n_rows + t) * width, sizeof(float) * width);
}

static laguna_status nccl_status(lg_comm *lc, laguna_error *err) {
    nccl_comm *c = of(lc);
    if (c->st && err) *err = c->err;
    return c->st;
}

static void nccl_free(lg_comm *lc) {
    nccl_comm *c = of(lc);
    cudaSetDevice(c->device);
    if (c->comm) api.comm_destroy(c->comm);
    cudaFree(c->gathered);
    free(c->staged);
    free(c);
}

static const lg_comm_ops nccl_ops = {"nccl", nccl_all_reduce, nccl_gather_columns, nccl_status,
                                     nccl_free};

static int make_id(void *id, void *user) {
    return api.get_unique_id((ncclUniqueId *)id) != ncclSuccess;
}

extern "C" laguna_status lg_nccl_comms_new(const lg_nccl_layout *l, const int *devices,
                                           lg_comm **comms, laguna_error *err) {
    pthread_once(&api_once, load_api);
    if (!api.loaded) return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "several GPUs: %s", api.why);
    ncclUniqueId id;
    laguna_status st = lg_nccl_id_exchange(l, make_id, NULL, (unsigned char *)&id, sizeof id, err);
    if (st) return st;
    for (int i = 0; i < l->n_local; i++) {
        nccl_comm *c = (nccl_comm *)calloc(1, sizeof *c);
        if (!c) {
            for (int j = 0; j < i; j++)
                free(comms[j]), comms[j] = NULL;
            return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        }
        c->base = lg_comm{&nccl_ops, l->first_rank + i, l->world_size};
        c->device = devices[i];
        comms[i] = &c->base;
    }
    /* one thread initialises all of this process's ranks: inside a group, each after selecting its
     * GPU */
    ncclResult_t r = api.group_start();
    for (int i = 0; i < l->n_local && r == ncclSuccess; i++) {
        nccl_comm *c = of(comms[i]);
        if (cudaSetDevice(c->device) != cudaSuccess) {
            api.group_end();
            return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "cuda:%d cannot be used", c->device);
        }
        r = api.comm_init_rank(&c->comm, l->world_size, id, c->base.rank);
    }
    ncclResult_t end = api.group_end();
    if (r == ncclSuccess) r = end;
    if (r != ncclSuccess)
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "NCCL could not set up %d ranks (%d here): %s",
                       l->world_size, l->n_local, api.error_string(r));
    return LAGUNA_OK;
}
#endif
