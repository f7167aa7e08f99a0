/* The memory-read bandwidth probe (method in mem_bandwidth.h). */
#include "sys/mem_bandwidth.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/error.h"
#include "io/file_util.h"
#include "sys/huge_pages.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define FILL_MULTIPLIER 0x9E3779B97F4A7C15ull
#define MAX_THREADS 512
#define PART_ALIGN ((size_t)4096)

size_t lg_bandwidth_default_bytes(void) {
    size_t want = (size_t)4 << 30, quarter = lg_memory_available() / 4, floor = (size_t)256 << 20;
    if (quarter && quarter < want) want = quarter;
    return want < floor ? floor : want;
}

int lg_read_isa_supported(lg_read_isa isa) {
    switch (isa) {
    case LG_READ_AUTO:
    case LG_READ_PORTABLE:
        return 1;
#ifdef HAVE_X86
    case LG_READ_AVX2:
        return __builtin_cpu_supports("avx2");
    case LG_READ_AVX512:
        return __builtin_cpu_supports("avx512f");
#endif
    default:
        return 0;
    }
}

const char *lg_read_isa_name(lg_read_isa isa) {
    switch (isa) {
    case LG_READ_PORTABLE:
        return "64-bit loads";
    case LG_READ_AVX2:
        return "AVX2 loads";
    case LG_READ_AVX512:
        return "AVX-512 loads";
    default:
        return "auto";
    }
}

/* ---- the read kernels: sum every 64-bit word of [p, p + bytes) ---------- */

static uint64_t sum_portable(const uint64_t *p, size_t bytes) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0, n = bytes / 8; i + 4 <= n; i += 4)
        s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
    return s0 + s1 + s2 + s3;
}

#ifdef HAVE_X86
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t bytes) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    const __m256i *v = (const __m256i *)p;
    for (size_t i = 0, n = bytes / 32; i + 4 <= n; i += 4) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + i));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + i + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + i + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + i + 3));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx512f"))) static uint64_t sum_avx512(const uint64_t *p, size_t bytes) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    const __m512i *v = (const __m512i *)p;
    for (size_t i = 0, n = bytes / 64; i + 4 <= n; i += 4) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(v + i));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(v + i + 1));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(v + i + 2));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(v + i + 3));
    }
    /* summed as unsigned here: GCC's _mm512_reduce_add_epi64 adds signed lanes
     * in C, which UBSan rightly reports when they wrap */
    uint64_t lanes[8], sum = 0;
    _mm512_storeu_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
    for (int k = 0; k < 8; k++) sum += lanes[k];
    return sum;
}
#endif

static uint64_t sum_words(lg_read_isa isa, const uint64_t *p, size_t bytes) {
#ifdef HAVE_X86
    if (isa == LG_READ_AVX512) return sum_avx512(p, bytes);
    if (isa == LG_READ_AVX2) return sum_avx2(p, bytes);
#endif
    (void)isa;
    return sum_portable(p, bytes);
}

/* ---- parked threads: released together for each job ----------------------- */

enum { JOB_FILL, JOB_READ, JOB_QUIT };

typedef struct probe probe;
typedef struct {
    probe *pr;
    int index;
    size_t begin, bytes; /* this thread's share of the buffer */
    uint64_t sum;
} part;

struct probe {
    uint64_t *buf;
    lg_read_isa isa;
    int n_threads, job;
    _Atomic unsigned generation; /* bumped to release the parked threads */
    _Atomic int finished;        /* threads done with the current job */
    part parts[MAX_THREADS];
};

static void pause_briefly(unsigned *spins) {
    if (++*spins < 1000) {
#ifdef HAVE_X86
        _mm_pause();
#endif
    } else {
        sched_yield(); /* a shared machine: let another job have the core */
    }
}

static void run_job(part *pt) {
    probe *pr = pt->pr;
    uint64_t *w = pr->buf + pt->begin / 8;
    size_t n = pt->bytes / 8;
    if (pr->job == JOB_FILL)
        for (size_t i = 0, first = pt->begin / 8; i < n; i++)
            w[i] = (first + i) * FILL_MULTIPLIER;
    else
        pt->sum = sum_words(pr->isa, w, pt->bytes);
}

static void *worker_main(void *arg) {
    part *pt = arg;
    probe *pr = pt->pr;
    for (unsigned seen = 0;;) {
        unsigned spins = 0;
        while (atomic_load_explicit(&pr->generation, memory_order_acquire) == seen)
            pause_briefly(&spins);
        seen++;
        if (pr->job == JOB_QUIT) return NULL;
        run_job(pt);
        atomic_fetch_add_explicit(&pr->finished, 1, memory_order_release);
    }
}

/* Runs a job on every thread (the caller is thread 0) and returns when all are done. */
static void run_all(probe *pr, int job) {
    pr->job = job;
    atomic_store_explicit(&pr->finished, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&pr->generation, 1, memory_order_release);
    if (job == JOB_QUIT) return;
    run_job(&pr->parts[0]);
    unsigned spins = 0;
    while (atomic_load_explicit(&pr->finished, memory_order_acquire) < pr->n_threads - 1)
        pause_briefly(&spins);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

laguna_status lg_measure_read_bandwidth(int n_threads, size_t bytes, int reps, lg_read_isa isa,
                                        lg_bandwidth *out, laguna_error *err) {
    memset(out, 0, sizeof *out);
    if (n_threads < 1 || n_threads > MAX_THREADS)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "bandwidth probe: %d threads (1 to %d)", n_threads,
                       MAX_THREADS);
    if (reps < 1 || reps > LG_BANDWIDTH_MAX_REPS)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "bandwidth probe: %d repeats (1 to %d)", reps,
                       LG_BANDWIDTH_MAX_REPS);
    if (isa == LG_READ_AUTO)
        isa = lg_read_isa_supported(LG_READ_AVX512) ? LG_READ_AVX512
              : lg_read_isa_supported(LG_READ_AVX2) ? LG_READ_AVX2
                                                    : LG_READ_PORTABLE;
    if (!lg_read_isa_supported(isa))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "bandwidth probe: this CPU cannot run %s",
                       lg_read_isa_name(isa));
    size_t unit = PART_ALIGN * (size_t)n_threads, share;
    if (bytes < ((size_t)1 << 20)) bytes = (size_t)1 << 20;
    bytes = bytes / unit * unit;
    if (bytes == 0) bytes = unit;
    share = bytes / (size_t)n_threads;

    probe *pr = calloc(1, sizeof *pr);
    size_t map_bytes;
    lg_page_source source;
    void *buf = pr ? lg_huge_alloc(bytes, true, &map_bytes, &source) : NULL;
    if (!buf) {
        free(pr);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "bandwidth probe: cannot allocate %zu bytes", bytes);
    }
    pr->buf = buf;
    pr->isa = isa;
    pr->n_threads = n_threads;
    pthread_t threads[MAX_THREADS];
    int started = 1;
    for (int k = 0; k < n_threads; k++)
        pr->parts[k] = (part){pr, k, share * (size_t)k, share, 0};
    for (; started < n_threads; started++)
        if (pthread_create(&threads[started], NULL, worker_main, &pr->parts[started]) != 0) break;
    laguna_status st = LAGUNA_OK;
    if (started < n_threads) {
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "bandwidth probe: cannot start %d threads", n_threads);
    } else {
        run_all(pr, JOB_FILL); /* first touch by the reading thread */
        out->huge_bytes = lg_huge_bytes_in(buf, bytes);
        for (int r = 0; r < reps; r++) {
            double t0 = now_seconds();
            run_all(pr, JOB_READ);
            double dt = now_seconds() - t0;
            uint64_t sum = 0;
            for (int k = 0; k < n_threads; k++)
                sum += pr->parts[k].sum;
            out->checksum = sum;
            out->gbps[r] = dt > 0 ? (double)bytes / dt / 1e9 : 0;
            if (out->gbps[r] > out->best_gbps) out->best_gbps = out->gbps[r];
        }
    }
    pr->n_threads = started; /* the threads that exist */
    run_all(pr, JOB_QUIT);
    for (int k = 1; k < started; k++)
        pthread_join(threads[k], NULL);
    munmap(buf, map_bytes);
    free(pr);
    if (st) return st;
    out->reps = reps;
    out->n_threads = n_threads;
    out->bytes = bytes;
    out->isa = isa;
    return LAGUNA_OK;
}
