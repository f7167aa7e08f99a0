/* The CUDA backend: plain device allocations (no managed memory), weights
 * uploaded once when the model adopts them, one stream per context with an
 * upload ring for the step's host arrays, and the ops table. Errors inside
 * a step (a failed launch, an out-of-memory table) are kept by the context
 * and reported by sync() at the end of the step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>

#include "backend/cuda/cuda_internal.h"

extern "C" {
#include "core/error.h"
}

/* The upload ring: a step of XS.2 uploads ~100 bytes a row a layer (~4 MB
 * for a 4096-row prefill step of 40 layers); a step that outgrows it moves
 * to a larger one (ring_grow), so this is only where it starts */
#define RING_BYTES (32u << 20)

static void *cuda_alloc(lg_backend *be, size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* clear it: the caller reports the failure */
        return NULL;
    }
    /* the contexts' streams do not wait for the default stream: the zeroes
     * must have landed before any of them uses the buffer */
    cudaMemset(p, 0, bytes ? bytes : 1);
    cudaStreamSynchronize(0);
    return p;
}

static void cuda_free(lg_backend *be, void *buf, size_t bytes) {
    (void)be, (void)bytes;
    if (buf) cudaFree(buf);
}

static const void *cuda_adopt_weights(lg_backend *be, const void *host, size_t bytes) {
    lg_cuda_backend *b = (lg_cuda_backend *)be;
    lg_weight_block *blk = (lg_weight_block *)malloc(sizeof *blk);
    if (!blk) return NULL;
    if (cudaMalloc(&blk->dev, bytes ? bytes : 1) != cudaSuccess ||
        cudaMemcpy(blk->dev, host, bytes, cudaMemcpyHostToDevice) != cudaSuccess ||
        cudaStreamSynchronize(0) != cudaSuccess) { /* a pageable copy may return before it lands */
        cudaGetLastError();
        free(blk);
        return NULL;
    }
    blk->next = b->weights;
    b->weights = blk;
    b->weight_bytes += bytes;
    return blk->dev;
}

static bool cuda_weights_ok(lg_dtype d) { return lg_cuda_weight_dtype_ok(d); }

static size_t cuda_memory_free(lg_backend *be) {
    size_t free_bytes = 0, total = 0;
    if (cudaSetDevice(((lg_cuda_backend *)be)->device) != cudaSuccess || cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return free_bytes;
}

static void cuda_ctx_free(lg_backend_ctx *c) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (!k) return;
    lg_cuda_tape_flush(k);
    if (k->stream) cudaStreamSynchronize(k->stream);
    lg_cuda_tape_free(k->tape);
    lg_cuda_prefetcher_free(k);
    lg_cuda_queue_free(k->queue);
    if (k->argmax_dev) cudaFree(k->argmax_dev);
    lg_cuda_profile_report(k);
    if (k->stream) cudaStreamDestroy(k->stream);
    if (k->ring_dev) cudaFree(k->ring_dev);
    if (k->ring_host) cudaFreeHost(k->ring_host);
    lg_cuda_ring_release(k);
    if (k->scratch) cudaFree(k->scratch);
    if (k->attn_counters) cudaFree(k->attn_counters);
    if (k->moe_active) cudaFree(k->moe_active);
    if (k->norm_counter) cudaFree(k->norm_counter);
    for (int i = 0; i < k->n_tables; i++) cudaFree((void *)k->tables[i].dev);
    free(k->tables);
    free(k);
}

static lg_backend_ctx *cuda_ctx_new(lg_backend *be, const lg_ctx_sizes *sizes) {
    lg_cuda_ctx *k = (lg_cuda_ctx *)calloc(1, sizeof *k);
    if (!k) return NULL;
    k->base.backend = be;
    /* LAGUNA_CUDA_RING_BYTES=N (tests): a small upload ring, so that steps outgrow it */
    const char *ring = getenv("LAGUNA_CUDA_RING_BYTES");
    k->ring_bytes = k->ring_limit = ring && atol(ring) >= 4096 ? (size_t)atol(ring) : RING_BYTES;
    k->n_experts = sizes->n_experts;
    lg_cuda_attention_settings(k);
    if (cudaSetDevice(((lg_cuda_backend *)be)->device) != cudaSuccess ||
        cudaStreamCreateWithFlags(&k->stream, cudaStreamNonBlocking) != cudaSuccess ||
        cudaMalloc(&k->moe_active, sizeof(int32_t) * (size_t)(k->n_experts + 1)) != cudaSuccess ||
        cudaMalloc(&k->norm_counter, sizeof(unsigned)) != cudaSuccess ||
        cudaMemset(k->norm_counter, 0, sizeof(unsigned)) != cudaSuccess ||
        cudaMalloc(&k->ring_dev, k->ring_bytes) != cudaSuccess ||
        cudaMallocHost(&k->ring_host, k->ring_bytes) != cudaSuccess) {
        cudaGetLastError();
        cuda_ctx_free(&k->base);
        return NULL;
    }
    if (be->ops->step_begin && lg_cuda_switch_on("LAGUNA_CUDA_GRAPHS") && !(k->tape = lg_cuda_tape_new())) {
        cuda_ctx_free(&k->base);
        return NULL;
    }
    if (be->ops->wait_step && !(k->queue = lg_cuda_queue_new())) {
        cuda_ctx_free(&k->base);
        return NULL;
    }
    return &k->base;
}

bool lg_cuda_switch_on(const char *name) {
    const char *e = getenv(name);
    return !(e && e[0] == '0');
}

void lg_cuda_allow_smem_on(const void *kernel, size_t smem) {
    struct allowed {
        const void *kernel;
        int device;
        size_t bytes;
    };
    static std::mutex lock;
    static std::vector<allowed> done;
    if (smem <= 48 * 1024) return;
    int dev = 0;
    cudaGetDevice(&dev);
    std::lock_guard<std::mutex> hold(lock);
    for (allowed &a : done)
        if (a.kernel == kernel && a.device == dev) {
            if (a.bytes < smem && cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       (int)smem) == cudaSuccess)
                a.bytes = smem;
            return;
        }
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) == cudaSuccess)
        done.push_back({kernel, dev, smem});
}

bool lg_cuda_pdl_enabled(void) {
    static const bool on = lg_cuda_switch_on("LAGUNA_CUDA_PDL");
    return on;
}

void *lg_cuda_scratch(lg_cuda_ctx *k, size_t bytes) {
    if (bytes <= k->scratch_bytes) return k->scratch;
    if (k->scratch && lg_cuda_taping(k)) lg_cuda_tape_defer_free(k, k->scratch); /* recorded ops still use it */
    else if (k->scratch) cudaFreeAsync(k->scratch, k->stream);
    k->scratch = NULL;
    k->scratch_bytes = 0;
    if (cudaMallocAsync(&k->scratch, bytes, k->stream) != cudaSuccess) return NULL; /* sync() reports it */
    k->scratch_bytes = bytes;
    return k->scratch;
}

/* While recording, uploads take the next power of two of at least 256 bytes,
 * so that a page table growing by a page rarely moves the offsets after it
 * (a moved offset is a new graph: it moves when the table doubles); the
 * step's range goes up in one copy at flush, ahead of the step's first
 * kernel (~320 uploads a step of XS.2: ~150 KB this way, 1.3 MB when each
 * took 4 KB). */
static size_t upload_bytes(const lg_cuda_ctx *k, size_t n) {
    size_t need = 256;
    if (!lg_cuda_taping(k)) return (n + need - 1) / need * need;
    while (need < n) need *= 2;
    return need;
}

/* The ring outgrown within a step: the rest of the step (and what follows)
 * goes on in one at least twice as large. The old one may hold uploads not
 * read yet (the op being issued may have put its first arrays there, a
 * queued step its own), so it is kept until the stream is idle
 * (lg_cuda_ring_release). Reusing it from its start, as a wrap did,
 * overwrote the first arrays of an op whose later ones did not fit. */
static bool ring_grow(lg_cuda_ctx *k, size_t need) {
    lg_cuda_retired_ring *r = (lg_cuda_retired_ring *)malloc(sizeof *r);
    if (!r) return false;
    size_t bytes = 2 * (need > k->ring_bytes ? need : k->ring_bytes);
    r->dev = k->ring_dev, r->host = k->ring_host, r->next = k->retired_rings;
    k->retired_rings = r;
    k->ring_dev = NULL, k->ring_host = NULL;
    k->ring_bytes = k->ring_limit = k->ring_used = 0;
    k->ring_spilled = true; /* this step may fill the new ring past its half: the next queued one waits */
    if (cudaMalloc(&k->ring_dev, bytes) != cudaSuccess || cudaMallocHost(&k->ring_host, bytes) != cudaSuccess) {
        if (k->ring_dev) cudaFree(k->ring_dev);
        k->ring_dev = NULL, k->ring_host = NULL;
        return false; /* sync() reports the error */
    }
    k->ring_bytes = k->ring_limit = bytes;
    return true;
}

void lg_cuda_ring_release(lg_cuda_ctx *k) {
    while (k->retired_rings) {
        lg_cuda_retired_ring *r = k->retired_rings;
        k->retired_rings = r->next;
        cudaFree(r->dev);
        cudaFreeHost(r->host);
        free(r);
    }
}

const void *lg_cuda_upload(lg_cuda_ctx *k, const void *host, size_t n) {
    size_t need = upload_bytes(k, n);
    if (k->ring_used + need > k->ring_limit) {
        if (lg_cuda_taping(k)) lg_cuda_tape_flush(k); /* the recorded range is in this ring: the rest goes direct */
        if (!ring_grow(k, need)) return NULL;
    }
    uint8_t *h = k->ring_host + k->ring_used, *d = k->ring_dev + k->ring_used;
    memcpy(h, host, n);
    if (!lg_cuda_taping(k)) cudaMemcpyAsync(d, h, n, cudaMemcpyHostToDevice, k->stream);
    k->ring_used += need;
    return d;
}

static void cuda_to_host(lg_backend_ctx *c, void *host_dst, const void *src, size_t bytes) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    lg_cuda_tape_flush(k);
    cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, k->stream);
    cudaStreamSynchronize(k->stream);
}

static void cuda_copy(lg_backend_ctx *c, void *dst, const void *src, size_t bytes) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (!lg_cuda_taping(k)) {
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, k->stream);
        return;
    }
    lg_cuda_tape_hash(k, &dst, sizeof dst);
    lg_cuda_tape_hash(k, &src, sizeof src);
    lg_cuda_tape_hash(k, &bytes, sizeof bytes);
    lg_cuda_tape_add(k, [=](cudaStream_t s) { cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s); });
}

static laguna_status cuda_sync(lg_backend_ctx *c, laguna_error *err) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    lg_cuda_tape_flush(k);
    cudaError_t e = cudaStreamSynchronize(k->stream);
    if (e == cudaSuccess) e = cudaGetLastError();
    k->ring_used = 0; /* the step is done: its uploads are consumed */
    lg_cuda_ring_release(k);
    k->argmax_at = 0;
    if (k->profile) lg_cuda_profile_collect(k);
    if (e != cudaSuccess) return lg_fail(err, LAGUNA_ERR_NOMEM, "cuda: %s", cudaGetErrorString(e));
    return LAGUNA_OK;
}

static void cuda_destroy(lg_backend *be) {
    lg_cuda_backend *b = (lg_cuda_backend *)be;
    for (lg_weight_block *w = b->weights, *next; w; w = next) {
        next = w->next;
        cudaFree(w->dev);
        free(w);
    }
    free(b);
}

/* The bf16_activations option: every BF16 product on tensor cores drops
 * its activations' lo halves (cuda_mma.h), half the mma of a prompt's
 * products. The mma unit takes bf16 on every GPU this backend runs on. */
static bool cuda_use_bf16_activations(lg_backend *be) {
    ((lg_cuda_backend *)be)->bf16_activations = true;
    return true;
}

static lg_backend_ops make_ops(void) {
    lg_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.max_experts_per_token = LG_CUDA_MAX_TOP_K;
    o.host_memory = false;
    o.destroy = cuda_destroy;
    o.alloc = cuda_alloc;
    o.free = cuda_free;
    o.adopt_weights = cuda_adopt_weights;
    o.weights_ok = cuda_weights_ok;
    o.memory_free = cuda_memory_free;
    o.synth_weights = lg_cuda_synth_weights;
    o.copy_bandwidth_gbps = lg_cuda_copy_bandwidth_gbps;
    o.use_bf16_activations = cuda_use_bf16_activations;
    o.ctx_new = cuda_ctx_new;
    o.ctx_free = cuda_ctx_free;
    o.to_host = cuda_to_host;
    o.sync = cuda_sync;
    o.copy = cuda_copy;
    o.step_begin = lg_cuda_step_begin;
    o.embed = lg_cuda_embed;
    o.rmsnorm = lg_cuda_rmsnorm;
    o.rope = lg_cuda_rope;
    o.matmul_many = lg_cuda_matmul_many;
    o.kv_write = lg_cuda_kv_write;
    o.attention = lg_cuda_attention;
    o.output_gate = lg_cuda_output_gate;
    o.silu_mul = lg_cuda_silu_mul;
    o.router = lg_cuda_router;
    o.moe_group = lg_cuda_moe_group;
    o.moe_experts = lg_cuda_moe_experts;
    o.moe_reads_h = lg_cuda_moe_reads_h;
    o.moe_combine = lg_cuda_moe_combine;
    o.add = lg_cuda_add;
    o.gather_rows = lg_cuda_gather_rows;
    o.add_rmsnorm = lg_cuda_add_rmsnorm;
    o.moe_combine_add_rmsnorm = lg_cuda_moe_combine_add_rmsnorm;
    o.add_rmsnorm_matmul = lg_cuda_add_rmsnorm_matmul;
    o.attention_inputs = lg_cuda_attention_inputs;
    o.attention_gated = lg_cuda_attention_gated;
    o.route = lg_cuda_route;
    o.prefetch_weights = lg_cuda_prefetch_weights;
    o.argmax_rows = lg_cuda_argmax_rows;
    o.queue_argmax = lg_cuda_queue_argmax;
    o.wait_step = lg_cuda_wait_step;
    return o;
}

static const lg_backend_ops cuda_ops = make_ops();

static lg_backend_ops make_profiled_ops(void) {
    lg_backend_ops o = make_ops();
    lg_cuda_profile_wrap(&o);
    o.step_begin = NULL; /* ops timed one by one, so not recorded as graphs */
    o.queue_argmax = NULL, o.wait_step = NULL; /* nor queued */
    return o;
}

static const lg_backend_ops cuda_profiled_ops = make_profiled_ops();

extern "C" lg_backend *lg_cuda_backend_new(int device, laguna_error *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "no CUDA device found (%s)",
                e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none");
        return NULL;
    }
    if (device >= n) {
        lg_fail(err, LAGUNA_ERR_ARGUMENT, "cuda:%d does not exist: this machine has %d CUDA device%s", device, n,
                n == 1 ? "" : "s");
        return NULL;
    }
    if (cudaSetDevice(device) != cudaSuccess) {
        lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "cuda:%d cannot be used: %s", device, cudaGetErrorString(cudaGetLastError()));
        return NULL;
    }
    lg_cuda_backend *b = (lg_cuda_backend *)calloc(1, sizeof *b);
    if (!b) {
        lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        return NULL;
    }
    const char *profile = getenv("LAGUNA_CUDA_PROFILE");
    b->base.ops = profile && *profile && strcmp(profile, "0") ? &cuda_profiled_ops : &cuda_ops;
    const char *skip = getenv("LAGUNA_CUDA_SKIP");
    if (skip && *skip) { /* measuring only (cuda_profile.cu) */
        static lg_backend_ops skipping;
        skipping = *b->base.ops;
        lg_cuda_skip_wrap(&skipping, skip);
        b->base.ops = &skipping;
    }
    b->base.n_threads = 1;
    b->device = device;
    return &b->base;
}
