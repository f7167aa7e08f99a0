/* Decode steps replayed as CUDA graphs.
 *
 * A decode step is ~25 small kernels per layer; launched one by one, each
 * costs the GPU a few microseconds of launch latency, more than many of them
 * take to run. When a step of few rows begins (step_begin), the context
 * records it instead of launching it: every launch goes on a tape together
 * with a hash of the kernel, its grid and its argument bytes, and the step's
 * uploads all land in one range of the upload ring. At the first point the
 * host needs results (to_host, sync) the tape is flushed: when a graph made
 * from an identical tape exists, that graph is launched (one launch for the
 * whole step, with one copy of the upload range at its start); otherwise the
 * tape is captured into a graph (updating the least recently used one when
 * the shapes allow, instantiating otherwise) and launched. Identical tapes
 * are the common case: decode steps of one batch size differ only in the
 * contents of their uploads (tokens, positions, page tables), which the
 * graph's copy brings in, while the upload sizes are rounded so that their
 * offsets rarely move. Tapes are compared by a 64-bit hash of every
 * argument byte (lg_cuda_tape_hash): two that differ in one 8-byte word never
 * hash alike, others with a chance of ~2^-64, so a changed pointer or size
 * does not replay a stale graph. The host's recording is on the critical
 * path between two steps (the GPU waits for it), so it is kept cheap.
 * LAGUNA_CUDA_GRAPHS=0 turns it off; LAGUNA_CUDA_GRAPH_STATS=1 prints the
 * counts and the host's time a step at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/cuda_internal.h"

#define GRAPHS 8              /* graphs kept per context */
#define TAPE_MAX_ROWS 256     /* larger steps (prefill) launch directly */
#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

struct graph_entry {
    uint64_t hash, used;
    cudaGraphExec_t exec;
};

struct lg_cuda_tape {
    bool on;
    uint64_t hash;
    size_t ring_start; /* the step's uploads: ring [ring_start, ring_used) */
    std::vector<std::function<void(cudaStream_t)>> ops;
    std::vector<void *> deferred_free;
    bool forked; /* ops fork onto the prefetch side stream: the step ends by joining it */
    graph_entry graphs[GRAPHS];
    uint64_t clock;
    long replays, captures, direct;
    /* host time (LAGUNA_CUDA_GRAPH_STATS): recording steps, and flushing them (lookup, capture, launch) */
    double begun_at, record_s, flush_s;
    long steps, hashed;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lg_cuda_tape *lg_cuda_tape_new(void) { return new (std::nothrow) lg_cuda_tape(); }

void lg_cuda_tape_free(lg_cuda_tape *t) {
    if (!t) return;
    if (getenv("LAGUNA_CUDA_GRAPH_STATS"))
        fprintf(stderr, "laguna cuda graphs: %ld replays, %ld captures, %ld direct; host per step: %.1f us recording (%.0f bytes hashed), %.1f us flushing\n",
                t->replays, t->captures, t->direct, t->steps ? 1e6 * t->record_s / (double)t->steps : 0.0,
                t->steps ? (double)t->hashed / (double)t->steps : 0.0, t->steps ? 1e6 * t->flush_s / (double)t->steps : 0.0);
    for (auto &g : t->graphs)
        if (g.exec) cudaGraphExecDestroy(g.exec);
    for (void *p : t->deferred_free) cudaFree(p);
    delete t;
}

bool lg_cuda_taping(const lg_cuda_ctx *k) { return k->tape && k->tape->on; }

/* Eight bytes a round (a step hashes ~100 KB of arguments, on the host's
 * critical path between two steps): xor, multiply, fold; each round is a
 * bijection of the state, so tapes that differ in one word never collide. */
void lg_cuda_tape_hash(lg_cuda_ctx *k, const void *bytes, size_t n) {
    const uint8_t *p = (const uint8_t *)bytes;
    uint64_t h = k->tape->hash, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * FNV_PRIME;
        h ^= h >> 32;
    }
    if (i < n) {
        w = (uint64_t)(n - i) << 56;
        memcpy(&w, p + i, n - i);
        h = (h ^ w) * FNV_PRIME;
        h ^= h >> 32;
    }
    k->tape->hash = h;
    k->tape->hashed += n;
}

void lg_cuda_tape_add(lg_cuda_ctx *k, std::function<void(cudaStream_t)> op) { k->tape->ops.push_back(std::move(op)); }

void lg_cuda_tape_defer_free(lg_cuda_ctx *k, void *p) { k->tape->deferred_free.push_back(p); }

void lg_cuda_tape_forked(lg_cuda_ctx *k) { k->tape->forked = true; }

void lg_cuda_step_begin(lg_backend_ctx *c, int n_rows) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    k->argmax_at = 0;
    k->step_rows = n_rows;
    lg_cuda_queue_step_begin(k); /* a queued step's upload range first: the tape starts there */
    lg_cuda_tape *t = k->tape;
    if (!t || t->on || n_rows > TAPE_MAX_ROWS) return;
    t->on = true;
    t->begun_at = now_s();
    t->hash = FNV_OFFSET;
    t->ring_start = k->ring_used;
}

/* The step's upload range, then its ops, on the stream. */
static void issue(lg_cuda_ctx *k, cudaStream_t s) {
    lg_cuda_tape *t = k->tape;
    size_t n = k->ring_used - t->ring_start;
    if (n) cudaMemcpyAsync(k->ring_dev + t->ring_start, k->ring_host + t->ring_start, n, cudaMemcpyHostToDevice, s);
    for (auto &op : t->ops) op(s);
    if (t->forked) lg_cuda_prefetch_join(k, s); /* a capture must end with every forked stream joined */
}

static graph_entry *capture(lg_cuda_ctx *k) {
    lg_cuda_tape *t = k->tape;
    graph_entry *lru = &t->graphs[0];
    for (auto &g : t->graphs)
        if (g.used < lru->used) lru = &g;
    cudaGraph_t graph = NULL;
    if (cudaStreamBeginCapture(k->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return NULL;
    issue(k, k->stream);
    if (cudaStreamEndCapture(k->stream, &graph) != cudaSuccess || !graph) return NULL;
    cudaGraphExecUpdateResultInfo info;
    if (lru->exec && cudaGraphExecUpdate(lru->exec, graph, &info) != cudaSuccess) {
        cudaGetLastError();
        cudaGraphExecDestroy(lru->exec);
        lru->exec = NULL;
    }
    if (!lru->exec && cudaGraphInstantiate(&lru->exec, graph, 0) != cudaSuccess) lru->exec = NULL;
    cudaGraphDestroy(graph);
    if (!lru->exec) return NULL;
    lru->hash = t->hash;
    return lru;
}

void lg_cuda_tape_flush(lg_cuda_ctx *k) {
    lg_cuda_tape *t = k->tape;
    if (!t || !t->on) return;
    t->on = false;
    double flush_at = now_s();
    t->record_s += flush_at - t->begun_at;
    t->steps++;
    if (!t->ops.empty()) {
        lg_cuda_tape_hash(k, &k->ring_dev, sizeof k->ring_dev); /* a graph copies between these two */
        lg_cuda_tape_hash(k, &k->ring_host, sizeof k->ring_host);
        lg_cuda_tape_hash(k, &t->ring_start, sizeof t->ring_start);
        lg_cuda_tape_hash(k, &k->ring_used, sizeof k->ring_used);
        graph_entry *g = NULL;
        for (auto &e : t->graphs)
            if (e.exec && e.hash == t->hash) g = &e;
        if (g) {
            t->replays++;
        } else if ((g = capture(k))) {
            t->captures++;
        } else { /* not capturable: launch the ops as they are */
            cudaGetLastError();
            issue(k, k->stream);
            t->direct++;
        }
        if (g) {
            g->used = ++t->clock;
            /* LAGUNA_CUDA_REPLAY=N (measuring only): each step's graph runs N times (a step
             * recomputes the same values), so the GPU's share of a step's time shows apart
             * from the host's */
            static int replays = -1;
            if (replays < 0) replays = getenv("LAGUNA_CUDA_REPLAY") ? atoi(getenv("LAGUNA_CUDA_REPLAY")) : 1;
            for (int i = 0; i < (replays > 1 ? replays : 1); i++) cudaGraphLaunch(g->exec, k->stream);
        }
        t->ops.clear();
        t->forked = false;
    }
    for (void *p : t->deferred_free) cudaFreeAsync(p, k->stream);
    t->deferred_free.clear();
    t->flush_s += now_s() - flush_at;
}
