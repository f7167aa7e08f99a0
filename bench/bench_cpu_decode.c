/* bench_cpu_decode: the CPU kernels of one decoded token, alone.
 *
 * For each quantised type, one activation row times a weight matrix of 2048
 * columns through the backend's int8 kernels (lg_qgemm, the ISA it picks),
 * and for F32, BF16 and F16 through its float kernels (lg_fgemm_isa),
 * split over the thread pool in blocks of rows as a decode step does:
 *   - "stream": a matrix far larger than the caches (--mib, default 512 MiB,
 *     on 2 MiB pages), read once per repeat: what decode sees;
 *   - "cached": a 512 x 2048 matrix (an XS.2 expert's gate) read again and
 *     again: the kernel's arithmetic speed with no memory stall;
 * and, for reference, the machine's streaming read bandwidth with the same
 * threads. Prints GB/s of weight bytes (1e9 B/s), best of --reps. Q4_K is
 * timed as files have it and, where the kernels want another layout, as a
 * copied file is rearranged at load (Q4_K (lanes) with AVX-512). Then one
 * decode row's attention, ms a layer: over one layer's cache again and again
 * (from the CPU's caches) and over 40 layers' caches in turn (from memory, as
 * a decode step reads them).
 *
 * usage: bench_cpu_decode [--threads N] [--mib M] [--reps R] [--tokens T] [--cols C] [--dealt]
 * (--dealt: row blocks dealt out to the threads in turn, as before
 * lg_threadpool_run_contiguous, for comparison) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "backend/backend.h"
#include "backend/cpu/float_gemm.h"
#include "backend/cpu/quant_dot.h"
#include "backend/cpu/threadpool.h"
#include "core/dtype.h"
#include "sys/huge_pages.h"
#include "sys/mem_bandwidth.h"

static int COLS = 2048; /* --cols */
#define ROWS_PER_TASK 16

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    lg_dtype dtype;
    const uint8_t *w;
    size_t row_bytes;
    int rows;
    const uint8_t *x;
    size_t x_stride;
    int tokens;
    float *y;
    const float *xf; /* float types: the activations as floats */
} job;

static void task(void *ctx, int t, int thread) {
    (void)thread;
    const job *j = ctx;
    int r0 = t * ROWS_PER_TASK, n = j->rows - r0 < ROWS_PER_TASK ? j->rows - r0 : ROWS_PER_TASK;
    if (j->xf) {
        lg_fgemm_isa(lg_qgemm_isa_best(), &(lg_fgemm_args){j->dtype, j->w + (size_t)r0 * j->row_bytes, j->row_bytes,
                                                           n, j->xf, (size_t)COLS, j->tokens, COLS, j->y + r0,
                                                           (size_t)j->rows, NULL});
        return;
    }
    lg_qgemm(&(lg_qgemm_args){j->dtype, j->w + (size_t)r0 * j->row_bytes, j->row_bytes, n, j->x,
                              j->x_stride, j->tokens, COLS, j->y + r0, (size_t)j->rows, NULL});
}

static int dealt; /* --dealt: tasks dealt out in turn (lg_threadpool_run), not contiguous */

static double run(lg_threadpool *pool, job *j, int passes) {
    double t0 = now_s();
    int n = (j->rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    for (int p = 0; p < passes; p++)
        (dealt ? lg_threadpool_run : lg_threadpool_run_contiguous)(pool, n, task, j);
    return now_s() - t0;
}

/* One decode row's attention at position `pos` over an f16 pool of the XS.2
 * layout (64 query heads, 8 KV heads of 128, pages of 16 positions spread in
 * a shuffled order, as a long-running pool has them); ms per layer. With
 * layers > 1 each timed pass walks that many layers' caches in turn, as a
 * decode step does, so a layer's keys and values come from memory (40 XS.2
 * layers at depth 512 hold 88 MB) rather than from the cache of the call
 * before. */
static double attention_ms(int threads, int pos, int reps, int layers) {
    const int n_heads = 64, n_kv = 8, hd = 128, ps = 16, n_pages = pos / ps + 1;
    lg_backend *be = lg_cpu_backend_new(threads);
    lg_ctx_sizes sizes = {n_heads * hd, pos + 1, hd, 0};
    lg_backend_ctx *c = be->ops->ctx_new(be, &sizes);
    size_t row_bytes = lg_dtype_row_bytes(LG_DTYPE_F16, n_kv * hd), page_bytes = 2 * ps * row_bytes;
    size_t map_bytes, pool_bytes = page_bytes * (size_t)(2 * n_pages) * (size_t)layers;
    lg_page_source src;
    uint8_t *pool = lg_huge_alloc(pool_bytes, false, &map_bytes, &src);
    for (size_t i = 0; i < pool_bytes; i += 2) {
        uint16_t h = (uint16_t)(0x3000 + (i * 2654435761u >> 20) % 0x800); /* 0.125..1 */
        memcpy(pool + i, &h, 2);
    }
    int32_t *table = malloc(sizeof(int32_t) * (size_t)n_pages * (size_t)layers);
    for (int l = 0; l < layers; l++)
        for (int p = 0; p < n_pages; p++)
            table[l * n_pages + p] = (int32_t)(2 * n_pages * l + (p * 7919) % (2 * n_pages));
    float *q = malloc(sizeof(float) * n_heads * hd), *out = malloc(sizeof(float) * n_heads * hd);
    float *fk = malloc(sizeof(float) * n_kv * hd), *fv = malloc(sizeof(float) * n_kv * hd);
    for (int i = 0; i < n_heads * hd; i++)
        q[i] = (float)(i % 17) / 17.0f;
    for (int i = 0; i < n_kv * hd; i++)
        fk[i] = fv[i] = 0.5f;
    int32_t pos32 = pos, from = pos, at = 0, rows = 0;
    lg_kv_pool_view view = {pool, ps, n_kv * hd, row_bytes, page_bytes, LG_DTYPE_F16};
    const int passes = layers > 1 ? 2 : 20;
    double best = 1e30;
    for (int r = -1; r < reps; r++) { /* r = -1: untimed */
        double t0 = now_s();
        for (int i = 0; i < passes; i++)
            for (int l = 0; l < layers; l++) {
                const int32_t *tables[1] = {table + (size_t)l * n_pages};
                lg_attention_args a = {1, &pos32, tables, &from, &at, &rows, fk, fv,
                                       n_heads, n_kv, hd, 0};
                be->ops->attention(c, &view, out, q, &a);
            }
        double t = (now_s() - t0) / (passes * layers);
        if (r >= 0 && t < best) best = t;
    }
    be->ops->ctx_free(c);
    be->ops->destroy(be);
    munmap(pool, map_bytes);
    free(table), free(q), free(out), free(fk), free(fv);
    return best * 1e3;
}

int main(int argc, char **argv) {
    int threads = 2, mib = 512, reps = 5, tokens = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--threads"))
            threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--mib"))
            mib = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps"))
            reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--tokens"))
            tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dealt"))
            dealt = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--cols"))
            COLS = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cpu_decode [--threads N] [--mib M] [--reps R] [--tokens "
                            "T] [--cols C] [--dealt]\n");
            return 2;
        }
    }
    if (threads < 1 || mib < 16 || reps < 1 || tokens < 1 || tokens > 64 || COLS < 256 ||
        COLS % 256) {
        fprintf(stderr, "bench_cpu_decode: threads >= 1, mib >= 16, reps >= 1, 1 <= tokens <= 64, "
                        "cols a multiple of 256\n");
        return 2;
    }
    lg_threadpool *pool = lg_threadpool_new(threads);
    /* the prefetch distance the CPU backend picks for this many threads */
    lg_qgemm_set_prefetch_ahead(lg_qgemm_prefetch_for_threads(threads));
    lg_bandwidth bw;
    laguna_error err = {0};
    if (lg_measure_read_bandwidth(threads, (size_t)mib << 20, reps, LG_READ_AUTO, &bw, &err) ==
        LAGUNA_OK)
        printf("read bandwidth (%s loads, %d threads, %d MiB): %.1f GB/s\n",
               lg_read_isa_name(bw.isa), threads, mib, bw.best_gbps);
    printf("kernels: %s, %d token(s), %d threads, weights %d columns, row blocks %s\n",
           lg_qgemm_isa_name(lg_qgemm_isa_best()), tokens, threads, COLS,
           dealt ? "dealt in turn" : "contiguous per thread");
    printf("%-12s %12s %12s\n", "type", "stream GB/s", "cached GB/s");

    /* Q4_K and Q6_K as files have them, then as a copy is rearranged for
     * these kernels (when they want another layout: 16-row groups for
     * AVX-512; random bytes either way, so no need to move them) */
    const lg_dtype types[] = {LG_DTYPE_Q4_K, lg_qgemm_layout_for(LG_DTYPE_Q4_K, ROWS_PER_TASK), LG_DTYPE_Q5_K,
                              lg_qgemm_layout_for(LG_DTYPE_Q5_K, ROWS_PER_TASK),
                              LG_DTYPE_Q6_K, lg_qgemm_layout_for(LG_DTYPE_Q6_K, ROWS_PER_TASK), LG_DTYPE_Q8_0,
                              lg_qgemm_layout_for(LG_DTYPE_Q8_0, ROWS_PER_TASK), LG_DTYPE_F32, LG_DTYPE_BF16,
                              LG_DTYPE_F16};
    float *xf = malloc(sizeof(float) * COLS * (size_t)tokens);
    for (int i = 0; i < COLS * tokens; i++)
        xf[i] = (float)((i * 7919) % 211 - 105) / 37.0f;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        lg_dtype dt = types[k];
        if (k > 0 && dt == types[k - 1]) continue; /* no other layout here */
        bool floats = lg_fgemm_serves(lg_qgemm_isa_best(), dt);
        if (!floats && lg_q8_block(dt) == 0) continue; /* float types below AVX2 */
        int block = floats ? 32 : lg_q8_block(dt);
        size_t rb = lg_dtype_row_bytes(dt, COLS), xs = lg_q8_row_bytes(COLS, block);
        int rows = (int)(((size_t)mib << 20) / rb) / ROWS_PER_TASK * ROWS_PER_TASK;
        size_t map_bytes;
        lg_page_source src;
        uint8_t *w = lg_huge_alloc(rb * (size_t)rows, false, &map_bytes, &src);
        uint8_t *x = aligned_alloc(64, xs * (size_t)tokens);
        float *y = malloc(sizeof(float) * (size_t)rows * (size_t)tokens);
        if (!w || !x || !y) {
            fprintf(stderr, "bench_cpu_decode: out of memory\n");
            return 1;
        }
        /* random bytes with small f16 scales (0x1000-0x13ff: ~6e-5..1e-4) in the
         * first words of every block: only the timing matters here */
        uint64_t s = 88172645463325252ull;
        for (size_t i = 0; i < rb * (size_t)rows; i += 8) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            if (floats) /* numbers of about 1e-3 to 1 in every 16-bit half (no NaN, no denormals) */
                s = (s & 0x00FF00FF00FF00FFull) | 0x3A003A003A003A00ull;
            memcpy(w + i, &s, 8);
        }
        if (!floats) /* the float kernels read xf itself */
            lg_q8_quantize_for(lg_qgemm_isa_best(), dt, xf, tokens, COLS, x);
        job j = {dt, w, rb, rows, x, xs, tokens, y, floats ? xf : NULL};
        double stream = 1e30, cached = 1e30;
        run(pool, &j, 1);
        for (int r = 0; r < reps; r++) {
            double t = run(pool, &j, 1);
            if (t < stream) stream = t;
        }
        job c = j;
        c.rows = (int)((576u << 10) / rb); /* an XS.2 expert matrix's bytes in Q4_K */
        int passes = 200;
        run(pool, &c, 2);
        for (int r = 0; r < reps; r++) {
            double t = run(pool, &c, passes) / passes;
            if (t < cached) cached = t;
        }
        printf("%-12s %12.1f %12.1f\n", lg_dtype_name(dt), rb * (double)rows / stream * 1e-9,
               rb * (double)c.rows / cached * 1e-9);
        free(x), free(y);
        munmap(w, map_bytes);
    }
    free(xf);
    lg_threadpool_free(pool);
    for (int pos = 512; pos <= 4096; pos *= 8) {
        printf("attention, 1 row at %d (64/8 heads of 128, f16 cache): %.3f ms per layer\n", pos,
               attention_ms(threads, pos, reps, 1));
        printf("attention, 1 row at %d, 40 layers' caches in turn:        %.3f ms per layer\n", pos,
               attention_ms(threads, pos, reps, 40));
    }
    return 0;
}
