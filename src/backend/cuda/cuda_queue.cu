/* Queued greedy steps (the queue_argmax and wait_step ops): the device runs
 * one step while the host makes the next, whose tokens are the first one's
 * greedy choices, read where they are (the embed kernel, token -2 - j).
 *
 * A queued step's argmax_rows leaves its tokens in the context's device
 * buffer and copies them, behind the step on the stream, to pinned host
 * memory of the step's entry, then records the entry's event; wait_step
 * waits for the oldest entry's event and hands the tokens to the host_out
 * each argmax_rows call was given. The two entries that may be outstanding
 * record their uploads in the two halves of the upload ring (entry i, half
 * i), so the host writing a step's uploads never overwrites those of the
 * step the device may still be reading; an entry is reused only after it
 * was waited for. A step whose uploads outgrow its half moves to a larger
 * ring (lg_cuda_upload), which it may fill past its half, so the next
 * queued step waits for the stream before it writes its own. A recorded step's
 * graph knows its upload range, so a batch size has two graphs, one a half. */
#include <string.h>

#include "backend/cuda/cuda_internal.h"

extern "C" {
#include "core/error.h"
}

#define QUEUE_STEPS 2
#define QUEUE_MIN_ROWS 256 /* pinned tokens an entry holds at first */

struct queued_copy {
    int32_t *host;
    int at, n;
};

struct queued_step {
    cudaEvent_t done;
    int32_t *pinned; /* [cap]: the step's tokens as they arrive */
    int cap;
    std::vector<queued_copy> copies;
};

struct lg_cuda_queue {
    queued_step step[QUEUE_STEPS];
    int first, count; /* the oldest outstanding entry, and how many are */
};

lg_cuda_queue *lg_cuda_queue_new(void) {
    lg_cuda_queue *q = new (std::nothrow) lg_cuda_queue();
    if (!q) return NULL;
    for (auto &e : q->step)
        if (cudaEventCreateWithFlags(&e.done, cudaEventDisableTiming) != cudaSuccess) {
            cudaGetLastError();
            lg_cuda_queue_free(q);
            return NULL;
        }
    return q;
}

void lg_cuda_queue_free(lg_cuda_queue *q) {
    if (!q) return;
    for (auto &e : q->step) {
        if (e.done) cudaEventDestroy(e.done);
        if (e.pinned) cudaFreeHost(e.pinned);
    }
    delete q;
}

/* Hands the oldest entry's tokens to their host_out once its event has come. */
static cudaError_t collect(lg_cuda_queue *q) {
    queued_step &e = q->step[q->first];
    cudaError_t r = cudaEventSynchronize(e.done);
    for (const queued_copy &c : e.copies)
        if (r == cudaSuccess) memcpy(c.host, e.pinned + c.at, sizeof(int32_t) * (size_t)c.n);
        else memset(c.host, 0, sizeof(int32_t) * (size_t)c.n); /* a valid token id; the status says it failed */
    e.copies.clear();
    q->first = (q->first + 1) % QUEUE_STEPS;
    q->count--;
    return r;
}

void lg_cuda_queue_argmax(lg_backend_ctx *c, bool on) { LG_CUDA_CTX(c)->queue_argmax = on; }

laguna_status lg_cuda_wait_step(lg_backend_ctx *c, laguna_error *err) {
    lg_cuda_ctx *k = LG_CUDA_CTX(c);
    if (!k->queue || !k->queue->count) return LAGUNA_OK;
    cudaError_t r = collect(k->queue);
    if (r == cudaSuccess) r = cudaGetLastError();
    if (r != cudaSuccess) return lg_fail(err, LAGUNA_ERR_NOMEM, "cuda: %s", cudaGetErrorString(r));
    return LAGUNA_OK;
}

void lg_cuda_queue_step_begin(lg_cuda_ctx *k) {
    lg_cuda_queue *q = k->queue;
    if (!k->queue_argmax || !q) {
        k->ring_limit = k->ring_bytes;
        return;
    }
    if (q->count == QUEUE_STEPS) collect(q); /* the context keeps to two; never wait on an entry's half */
    if (k->ring_spilled) { /* a step that outgrew its half may still read from this one's */
        cudaStreamSynchronize(k->stream);
        lg_cuda_ring_release(k);
        k->ring_spilled = false;
    }
    int i = (q->first + q->count) % QUEUE_STEPS;
    q->step[i].copies.clear();
    q->count++;
    size_t half = k->ring_bytes / 2;
    k->ring_used = (size_t)i * half;
    k->ring_limit = k->ring_used + half;
}

bool lg_cuda_queue_tokens(lg_cuda_ctx *k, int32_t *host_out, int at, int n) {
    lg_cuda_queue *q = k->queue;
    if (!k->queue_argmax || !q || !q->count) return false;
    queued_step &e = q->step[(q->first + q->count - 1) % QUEUE_STEPS];
    if (at + n > e.cap) { /* rare: this step's earlier copies land first, then a larger buffer */
        int cap = at + n > 2 * e.cap ? at + n : 2 * e.cap;
        cap = cap < QUEUE_MIN_ROWS ? QUEUE_MIN_ROWS : cap;
        int32_t *p = NULL;
        cudaStreamSynchronize(k->stream);
        if (cudaMallocHost(&p, sizeof(int32_t) * (size_t)cap) != cudaSuccess) {
            cudaGetLastError();
            return false; /* the caller copies synchronously */
        }
        if (e.pinned) {
            memcpy(p, e.pinned, sizeof(int32_t) * (size_t)at);
            cudaFreeHost(e.pinned);
        }
        e.pinned = p, e.cap = cap;
    }
    cudaMemcpyAsync(e.pinned + at, k->argmax_dev + at, sizeof(int32_t) * (size_t)n, cudaMemcpyDeviceToHost,
                    k->stream);
    cudaEventRecord(e.done, k->stream);
    e.copies.push_back({host_out, at, n});
    return true;
}
