/* Token sampling: repetition penalty, temperature, top-k, top-p, min-p, in
 * the order transformers' generate applies them, then a draw from a seeded
 * xoshiro256** generator. Temperature 0 is greedy (argmax, lowest id on ties).
 *
 * Every filter keeps a prefix of the candidates in "sorted order" (logit
 * descending, id ascending on ties), and the draw walks that order
 * subtracting weights from a uniform r. The obvious way sorts the whole
 * vocabulary per token (sample_reference below, kept as the reference);
 * the fast way never does: top-k by one pass that turns away what cannot
 * be among the best, then partial selection; min-p by a threshold (alone,
 * only ids whose logit can reach it become candidates); top-p
 * without top-k, and no filter at all, by buckets of values whose masses
 * are walked before one bucket is sorted (top-p after top-k by sorting only
 * the group above a probability threshold that is lowered until it holds
 * top_p of the mass); the draw by selection on cumulative weight. Both
 * choose the same token for the same random draw; only the order of
 * floating-point sums differs, and the fast way's exp may be glibc's vector
 * exp (within a few ulp of exp), which can matter only when r lands within
 * rounding of a boundary. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/argmax.h"
#include "core/error.h"
#include "laguna.h"
#include "runtime/sampler.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define SAMPLER_VECTOR_EXP 1 /* glibc's libmvec (linked by the Makefile on x86-64) */
#include <immintrin.h>
#else
#define SAMPLER_VECTOR_EXP 0
#endif

#define DRAW_BUCKETS 2048 /* draw_unfiltered (ids kept as uint16_t) */
#define MASS_LANES 8 /* fill_buckets adds id i's weight to lane i % MASS_LANES */

typedef struct {
    float value;
    int32_t id;
    double weight; /* exp(value - max), filled by the fast path */
} candidate;

struct laguna_sampler {
    laguna_sampler_params p;
    int vocab;
    uint64_t rng[4];
    unsigned char *seen; /* tokens accepted so far (repetition penalty) */
    float *work;
    candidate *cand;
    double *bucket_mass; /* [DRAW_BUCKETS] (draw_unfiltered) */
    double *lane_mass; /* [MASS_LANES][DRAW_BUCKETS]: fill_buckets' partial masses */
    uint16_t *bucket_id; /* [vocab]: each id's bucket, from fill_buckets */
    int32_t *allowed_id; /* [vocab], made on first use: lg_sampler_sample_allowed's ids */
    bool reference; /* sort the whole vocabulary (lg_sampler_use_reference) */
};

void lg_sampler_use_reference(laguna_sampler *s, bool on) { s->reference = on; }

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* A uniform draw in [0, total): the one random number a sampled token takes. */
static double draw_below(laguna_sampler *s, double total) {
    return (double)(next_u64(s->rng) >> 11) * (1.0 / 9007199254740992.0) * total;
}

laguna_sampler_params laguna_sampler_default_params(void) {
    return (laguna_sampler_params){.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0, .repetition_penalty = 1, .seed = 0};
}

laguna_status laguna_sampler_create(const laguna_sampler_params *p, int vocab, laguna_sampler **out, laguna_error *err) {
    *out = NULL;
    if (vocab <= 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "vocabulary size must be positive");
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "temperature must be >= 0 (got %g)", p->temperature);
    if (p->top_k < 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "top-k must be >= 0 (got %d)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1)) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "top-p must be in (0, 1] (got %g)", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1)) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "min-p must be in [0, 1] (got %g)", p->min_p);
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "repetition penalty must be > 0 (got %g)", p->repetition_penalty);
    laguna_sampler *s = calloc(1, sizeof *s);
    if (!s) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->vocab = vocab;
    s->seen = calloc((size_t)vocab, 1);
    s->work = malloc(sizeof(float) * (size_t)vocab);
    s->cand = malloc(sizeof(candidate) * (size_t)vocab);
    s->bucket_mass = malloc(sizeof(double) * DRAW_BUCKETS);
    s->lane_mass = malloc(sizeof(double) * MASS_LANES * DRAW_BUCKETS);
    s->bucket_id = malloc(sizeof(uint16_t) * (size_t)vocab);
    if (!s->seen || !s->work || !s->cand || !s->bucket_mass || !s->lane_mass || !s->bucket_id) {
        laguna_sampler_free(s);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    *out = s;
    return LAGUNA_OK;
}

void laguna_sampler_free(laguna_sampler *s) {
    if (!s) return;
    free(s->seen);
    free(s->work);
    free(s->cand);
    free(s->bucket_mass);
    free(s->lane_mass);
    free(s->bucket_id);
    free(s->allowed_id);
    free(s);
}

void laguna_sampler_accept(laguna_sampler *s, int32_t token) {
    if (token >= 0 && token < s->vocab) s->seen[token] = 1;
}

static int by_value_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->value != y->value) return x->value > y->value ? -1 : 1;
    return x->id - y->id;
}

/* The reference: sort all candidates, then cut prefixes and walk them. */
static int32_t sample_reference(laguna_sampler *s, const float *w, int V) {
    /* candidates: all ids, or the top_k best; sorted by logit descending */
    int n = V;
    candidate *c = s->cand;
    for (int i = 0; i < V; i++) c[i] = (candidate){w[i], i, 0};
    qsort(c, (size_t)V, sizeof *c, by_value_desc);
    if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;

    /* softmax over the candidates */
    float max = c[0].value;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)c[i].value - max);
    /* top-p: smallest prefix whose probability reaches top_p (at least one) */
    if (s->p.top_p < 1) {
        double acc = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            acc += exp((double)c[i].value - max) / sum;
            if (acc >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    /* min-p: drop candidates below min_p times the best probability */
    if (s->p.min_p > 0) {
        double floor_ratio = s->p.min_p; /* p_i / p_max = exp(w_i - max) */
        int keep = 1;
        while (keep < n && exp((double)c[keep].value - max) >= floor_ratio) keep++;
        n = keep;
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += exp((double)c[i].value - max);
    double r = draw_below(s, total);
    for (int i = 0; i < n; i++) {
        r -= exp((double)c[i].value - max);
        if (r < 0) return c[i].id;
    }
    return c[n - 1].id;
}

/* ---- the fast path ---------------------------------------------------------------- */

/* exp over runs of doubles for the fast path's weights: glibc's vector exp
 * (libmvec, within 4 ulp of exp), 8 lanes where the CPU has AVX-512, 4
 * where it has AVX2 and FMA, exp otherwise. Either way a value's exp does
 * not depend on where it sits in a run, so a weight computed twice is the
 * same weight. */
#define EXP_RUN 256 /* values a run (a multiple of 8) */

#if SAMPLER_VECTOR_EXP
__attribute__((target("avx2,fma"))) __m256d _ZGVdN4v_exp(__m256d x); /* libmvec's AVX2 exp */
__attribute__((target("avx512f"))) __m512d _ZGVeN8v_exp(__m512d x); /* libmvec's AVX-512 exp */

__attribute__((target("avx2,fma"))) static void exp_run_avx2(const double *x, double *y, int n) {
    for (int i = 0; i < n; i += 4) _mm256_storeu_pd(y + i, _ZGVdN4v_exp(_mm256_loadu_pd(x + i)));
}

__attribute__((target("avx512f"))) static void exp_run_avx512(const double *x, double *y, int n) {
    for (int i = 0; i < n; i += 8) _mm512_storeu_pd(y + i, _ZGVeN8v_exp(_mm512_loadu_pd(x + i)));
}

/* 8 (AVX-512), 4 (AVX2 and FMA) or 1: the lanes of the exp this CPU runs.
 * Atomic: samplers of different requests draw on several threads at once. */
static int exp_lanes(void) {
    static _Atomic int lanes = 0;
    int n = atomic_load_explicit(&lanes, memory_order_relaxed);
    if (!n) {
        n = __builtin_cpu_supports("avx512f")                                      ? 8
            : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 4
                                                                               : 1;
        atomic_store_explicit(&lanes, n, memory_order_relaxed);
    }
    return n;
}
#endif

/* y[i] = exp(x[i]) for i < n (n <= EXP_RUN); x is padded to a multiple of 8 here. */
static void exp_run(double *x, double *y, int n) {
    int n8 = (n + 7) & ~7;
    for (int i = n; i < n8; i++) x[i] = 0;
#if SAMPLER_VECTOR_EXP
    int lanes = exp_lanes();
    if (lanes == 8) {
        exp_run_avx512(x, y, n8);
        return;
    }
    if (lanes == 4) {
        exp_run_avx2(x, y, n8);
        return;
    }
#endif
    for (int i = 0; i < n; i++) y[i] = exp(x[i]);
}

/* c[i].weight = exp(c[i].value - max) for i < n. */
static void candidate_weights(candidate *c, int n, float max) {
    double x[EXP_RUN], y[EXP_RUN];
    for (int i0 = 0; i0 < n; i0 += EXP_RUN) {
        int m = n - i0 < EXP_RUN ? n - i0 : EXP_RUN;
        for (int j = 0; j < m; j++) x[j] = (double)c[i0 + j].value - max;
        exp_run(x, y, m);
        for (int j = 0; j < m; j++) c[i0 + j].weight = y[j];
    }
}


/* The walk over c[0, n) in sorted order subtracting weights from *r: the
 * index where it first goes below zero, or -1 (r left for what follows). */
static int walk_sorted(const candidate *c, int n, double *r) {
    for (int i = 0; i < n; i++) {
        *r -= c[i].weight;
        if (*r < 0) return i;
    }
    return -1;
}

/* Whether a comes before b in sorted order. */
static bool before(candidate a, candidate b) { return a.value > b.value || (a.value == b.value && a.id < b.id); }

static void swap_cand(candidate *a, candidate *b) {
    candidate t = *a;
    *a = *b;
    *b = t;
}

/* Partitions c[lo, hi) around a median-of-three pivot: returns its final
 * index p, with everything before it in sorted order in c[lo, p). */
static int partition(candidate *c, int lo, int hi) {
    int mid = lo + (hi - lo) / 2, last = hi - 1;
    if (before(c[mid], c[lo])) swap_cand(&c[mid], &c[lo]);
    if (before(c[last], c[lo])) swap_cand(&c[last], &c[lo]);
    if (before(c[mid], c[last])) swap_cand(&c[mid], &c[last]); /* the median now sits at last */
    candidate pivot = c[last];
    int p = lo;
    for (int i = lo; i < last; i++)
        if (before(c[i], pivot)) swap_cand(&c[i], &c[p++]);
    swap_cand(&c[p], &c[last]);
    return p;
}

/* Puts the first k of c[0, n) in sorted order into c[0, k), in any order. */
static void select_first(candidate *c, int n, int k) {
    int lo = 0, hi = n;
    while (hi - lo > 1) {
        int p = partition(c, lo, hi);
        if (p == k || p == k - 1) return;
        if (p > k) hi = p;
        else lo = p + 1;
    }
}

/* The top k of w[0, V) in sorted order into c[0, k), in any order, without
 * making a candidate of every id: one pass keeps a buffer of those that can
 * still be among the best; when it fills, its best k are selected and the
 * last of them in sorted order becomes the bar an id must come before to
 * enter (any other already has k before it). For a 100k vocabulary and k =
 * 40 nearly every id is turned away by one comparison. */
static void top_k_candidates(candidate *c, const float *w, int V, int k) {
    int cap = 4 * k > 1024 ? 4 * k : 1024, n = 0;
    bool barred = false;
    candidate bar = {0, 0, 0};
    for (int i = 0; i < V; i++) {
        float v = w[i];
        if (barred && !(v > bar.value)) continue; /* an equal value comes after the bar: its id is higher */
        c[n++] = (candidate){v, i, 0};
        if (n == cap && i + 1 < V) {
            select_first(c, n, k);
            bar = c[0];
            for (int j = 1; j < k; j++)
                if (before(bar, c[j])) bar = c[j];
            barred = true;
            n = k;
        }
    }
    if (n > k) select_first(c, n, k);
}

/* Moves the candidates whose weight exp(value - max) is at least `floor`
 * among c[from, n) to c[from, ...); returns the new end of that group and
 * adds their weights to *mass. */
static int gather_above(candidate *c, int from, int n, float max, double floor, double *mass) {
    int end = from;
    for (int i = from; i < n; i++) {
        double e = c[i].weight;
        if (e >= floor) {
            swap_cand(&c[i], &c[end++]);
            *mass += e;
        }
    }
    return end;
}

/* The candidate at which the walk in sorted order, subtracting weights from
 * r, first goes below zero; the last one in sorted order if it never does. */
static int32_t pick_by_weight(candidate *c, int n, float max, double r) {
    int lo = 0, hi = n;
    candidate last = c[0];
    for (int i = 1; i < n; i++)
        if (before(last, c[i])) last = c[i];
    while (hi - lo > 64) {
        int p = partition(c, lo, hi);
        double mass = 0;
        for (int i = lo; i < p; i++) mass += c[i].weight;
        if (r < mass) {
            hi = p;
            continue;
        }
        r -= mass + c[p].weight;
        if (r < 0) return c[p].id;
        lo = p + 1;
    }
    qsort(c + lo, (size_t)(hi - lo), sizeof *c, by_value_desc);
    int i = walk_sorted(c + lo, hi - lo, &r);
    return i >= 0 ? c[lo + i].id : last.id;
}

/* ---- draws by value buckets (no top-k, no min-p) ------------------------------------
 *
 * The weights go into DRAW_BUCKETS buckets by value: bucket b holds the
 * values whose distance below the max falls in its slice, so the buckets
 * follow sorted order and equal values share one. A walk over sorted order
 * then subtracts (or adds) whole buckets' masses, and only the bucket where
 * it stops is sorted and walked candidate by candidate: two or three passes
 * over the logits and no candidate per id. Where rounding lets a walk run
 * past its bucket, or a bucket is huge (many equal logits), the caller
 * falls back to the candidate path (nothing drawn yet, or the same r). */
#define DRAW_BUCKET_SORT_MAX 4096

typedef struct {
    float max, scale;
    double sum; /* every weight: the buckets' masses summed in bucket order */
} buckets;

/* The bucket of value v: its distance below the max in slices, clamped to
 * [0, DRAW_BUCKETS) (a NaN to 0); monotone in v, branch-free so that
 * fill_buckets' loop over a run vectorises. */
static inline int bucket_of(float max, float scale, float v) {
    float d = (max - v) * scale;
    d = d >= 0 ? d : 0;
    d = d < DRAW_BUCKETS - 1 ? d : DRAW_BUCKETS - 1;
    return (int)d;
}

/* The weights exp(w - max) summed into s->bucket_mass, each id's bucket into
 * s->bucket_id. Id i's weight goes to lane i % MASS_LANES of the partial
 * masses, so consecutive ids of one bucket do not wait on each other's add;
 * the lanes are then summed in a fixed order. */
static buckets fill_buckets(laguna_sampler *s, const float *w, int V) {
    float max = w[0], min = w[0];
#pragma omp simd reduction(max : max) reduction(min : min)
    for (int i = 1; i < V; i++) {
        max = w[i] > max ? w[i] : max;
        min = w[i] < min ? w[i] : min;
    }
    buckets bk = {max, max > min ? (float)(DRAW_BUCKETS - 1) / (max - min) : 0.0f, 0};
    double *lane = s->lane_mass;
    uint16_t *ids = s->bucket_id;
    memset(lane, 0, sizeof(double) * MASS_LANES * DRAW_BUCKETS);
    double x[EXP_RUN], e[EXP_RUN];
    for (int i0 = 0; i0 < V; i0 += EXP_RUN) {
        int m = V - i0 < EXP_RUN ? V - i0 : EXP_RUN;
#pragma omp simd
        for (int j = 0; j < m; j++) {
            x[j] = (double)w[i0 + j] - max;
            ids[i0 + j] = (uint16_t)bucket_of(max, bk.scale, w[i0 + j]);
        }
        exp_run(x, e, m);
        const uint16_t *id = ids + i0;
        int j = 0;
        for (; j + MASS_LANES <= m; j += MASS_LANES)
#pragma GCC unroll 8
            for (int l = 0; l < MASS_LANES; l++) lane[l * DRAW_BUCKETS + id[j + l]] += e[j + l];
        for (; j < m; j++) lane[(j % MASS_LANES) * DRAW_BUCKETS + id[j]] += e[j];
    }
    for (int b = 0; b < DRAW_BUCKETS; b++) {
        double m = lane[b];
        for (int l = 1; l < MASS_LANES; l++) m += lane[l * DRAW_BUCKETS + b];
        s->bucket_mass[b] = m;
        bk.sum += m;
    }
    return bk;
}

/* Bucket b's candidates into c, in sorted order; -1 when there are more
 * than DRAW_BUCKET_SORT_MAX. Runs of ids with none in b are skipped by one
 * vector compare. */
static int bucket_sorted(const laguna_sampler *s, const buckets *bk, const float *w, int V, int b,
                         candidate *c) {
    enum { RUN = 64 };
    const uint16_t *ids = s->bucket_id;
    int n = 0;
    for (int i0 = 0; i0 < V; i0 += RUN) {
        int m = V - i0 < RUN ? V - i0 : RUN, any = 0;
#pragma omp simd reduction(| : any)
        for (int j = 0; j < m; j++) any |= ids[i0 + j] == b;
        if (!any) continue;
        for (int i = i0; i < i0 + m; i++)
            if (ids[i] == b) {
                if (n == DRAW_BUCKET_SORT_MAX) return -1;
                c[n++] = (candidate){w[i], i, 0};
            }
    }
    candidate_weights(c, n, bk->max);
    qsort(c, (size_t)n, sizeof *c, by_value_desc);
    return n;
}

/* Temperature alone: the draw over every id. */
static int32_t draw_unfiltered(laguna_sampler *s, const float *w, int V) {
    buckets bk = fill_buckets(s, w, V);
    const double *mass = s->bucket_mass;
    double r0 = draw_below(s, bk.sum), r = r0;
    int b = 0;
    while (b < DRAW_BUCKETS && r >= mass[b]) r -= mass[b++];
    candidate *c = s->cand;
    int n = b < DRAW_BUCKETS ? bucket_sorted(s, &bk, w, V, b, c) : -1, i = walk_sorted(c, n, &r);
    if (i >= 0) return c[i].id;
    for (int i = 0; i < V; i++) c[i] = (candidate){w[i], i, 0};
    candidate_weights(c, V, bk.max);
    return pick_by_weight(c, V, bk.max, r0);
}

/* Top-p alone: the smallest sorted prefix whose probability reaches top_p
 * ends in bucket `cut` (whole buckets before it, then that bucket's sorted
 * candidates one by one), then the draw walks the prefix the same way.
 * Returns -1 (nothing drawn) where the walk must fall back. */
static int32_t draw_top_p(laguna_sampler *s, const float *w, int V) {
    buckets bk = fill_buckets(s, w, V);
    const double *mass = s->bucket_mass;
    double acc = 0;
    int cut = 0;
    while (cut < DRAW_BUCKETS - 1 && acc + mass[cut] / bk.sum < s->p.top_p) acc += mass[cut++] / bk.sum;
    candidate *c = s->cand; /* c[0, n_cut): the cut bucket, sorted; the first keep of them are kept */
    int n_cut = bucket_sorted(s, &bk, w, V, cut, c), keep = -1;
    for (int i = 0; i < n_cut && keep < 0; i++) {
        acc += c[i].weight / bk.sum;
        if (acc >= s->p.top_p) keep = i + 1;
    }
    if (keep < 0) return -1;
    double total = 0; /* the kept mass: whole buckets before the cut, then the cut's kept ones */
    for (int b = 0; b < cut; b++) total += mass[b];
    for (int i = 0; i < keep; i++) total += c[i].weight;
    double r0 = draw_below(s, total), r = r0;
    for (int b = 0;; b++) { /* whole buckets before the cut; one that r falls in is sorted (after the cut's) */
        while (b < cut && r >= mass[b]) r -= mass[b++];
        if (b >= cut) break;
        candidate *cb = c + n_cut;
        int n = bucket_sorted(s, &bk, w, V, b, cb);
        if (n < 0) { /* a huge bucket: every candidate before the cut, sorted, walked from r0 */
            n = 0;
            for (int i = 0; i < V; i++)
                if (s->bucket_id[i] < cut) cb[n++] = (candidate){w[i], i, 0};
            candidate_weights(cb, n, bk.max);
            qsort(cb, (size_t)n, sizeof *cb, by_value_desc);
            r = r0, b = cut;
        }
        int i = walk_sorted(cb, n, &r);
        if (i >= 0) return cb[i].id;
        /* rounding left r (tiny, >= 0) past the bucket: the walk goes on */
    }
    int i = walk_sorted(c, keep, &r);
    return c[i >= 0 ? i : keep - 1].id; /* else the last kept, as the candidate walk returns */
}

/* Min-p alone (no top-k, no top-p): only ids whose weight can reach min_p
 * become candidates. A weight exp(v - max) >= min_p needs v >= max +
 * log(min_p); the bar sits 1e-3 below that, far outside exp's few ulp, so
 * no id that the candidate path keeps is turned away. Then the candidate
 * path's own steps: exact weights, the min_p cut, the draw. */
static int32_t draw_min_p(laguna_sampler *s, const float *w, int V) {
    float max = w[0];
#pragma omp simd reduction(max : max)
    for (int i = 1; i < V; i++) max = w[i] > max ? w[i] : max;
    const double bar = (double)max + log(s->p.min_p) - 1e-3;
    candidate *c = s->cand;
    int n = 0;
    for (int i = 0; i < V; i++)
        if ((double)w[i] >= bar) c[n++] = (candidate){w[i], i, 0};
    if (n == 0) return lg_argmax_f32(w, V); /* only where the logits hold NaN */
    candidate_weights(c, n, max);
    double total = 0;
    n = gather_above(c, 0, n, max, s->p.min_p, &total); /* the best has weight 1 >= min_p */
    return pick_by_weight(c, n, max, draw_below(s, total));
}

static int32_t sample_fast(laguna_sampler *s, const float *w, int V) {
    int n = V;
    candidate *c = s->cand;
    bool top_k = s->p.top_k > 0 && s->p.top_k < n, top_p = s->p.top_p < 1, min_p = s->p.min_p > 0;
    if (!top_k && !top_p) return min_p ? draw_min_p(s, w, V) : draw_unfiltered(s, w, V);
    if (!top_k && !min_p) {
        int32_t t = draw_top_p(s, w, V);
        if (t >= 0) return t;
    }
    if (top_k) {
        top_k_candidates(c, w, V, s->p.top_k);
        n = s->p.top_k;
    } else {
        for (int i = 0; i < V; i++) c[i] = (candidate){w[i], i, 0};
    }
    float max = c[0].value;
    for (int i = 1; i < n; i++)
        if (c[i].value > max) max = c[i].value;
    candidate_weights(c, n, max); /* once per candidate */
    bool sorted = false; /* whether c[0, n) is in sorted order */
    if (top_p) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += c[i].weight;
        /* the group of weights >= floor is a prefix of the sorted order: lower
         * the floor until the group holds top_p of the mass, then sort only it */
        double floor = 1e-2, mass = 0;
        int group = 0;
        for (;;) {
            group = gather_above(c, group, n, max, floor, &mass);
            if (group == n || mass / sum >= s->p.top_p) break;
            floor = floor > 1e-300 ? floor * 1e-3 : 0;
        }
        qsort(c, (size_t)group, sizeof *c, by_value_desc);
        int keep = -1;
        double acc = 0;
        for (int i = 0; i < group && keep < 0; i++) {
            acc += c[i].weight / sum;
            if (acc >= s->p.top_p) keep = i + 1;
        }
        if (keep < 0 && group < n) { /* rounding left the group just short: sort all */
            qsort(c, (size_t)n, sizeof *c, by_value_desc);
            acc = 0;
            for (int i = 0; i < n && keep < 0; i++) {
                acc += c[i].weight / sum;
                if (acc >= s->p.top_p) keep = i + 1;
            }
        }
        n = keep < 0 ? n : keep;
        sorted = true;
    }
    if (min_p) {
        if (sorted) {
            int keep = 1;
            while (keep < n && c[keep].weight >= s->p.min_p) keep++;
            n = keep;
        } else {
            double unused = 0;
            n = gather_above(c, 0, n, max, s->p.min_p, &unused); /* the best has weight 1 >= min_p */
        }
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += c[i].weight;
    double r = draw_below(s, total);
    if (!sorted) return pick_by_weight(c, n, max, r);
    int i = walk_sorted(c, n, &r);
    return c[i >= 0 ? i : n - 1].id;
}

int laguna_sampler_is_greedy(const laguna_sampler *s) {
    return s && s->p.temperature == 0 && s->p.repetition_penalty == 1;
}

int32_t laguna_sampler_sample(laguna_sampler *s, const float *logits) {
    int V = s->vocab;
    float *w = s->work;
    memcpy(w, logits, sizeof(float) * (size_t)V);
    const float penalty = s->p.repetition_penalty, temperature = s->p.temperature; /* locals: w cannot alias them */
    if (penalty != 1) /* as transformers: divide positive logits, multiply negative */
        for (int i = 0; i < V; i++)
            if (s->seen[i]) w[i] = w[i] > 0 ? w[i] / penalty : w[i] * penalty;
    if (temperature == 0) return lg_argmax_f32(w, V);
#pragma omp simd
    for (int i = 0; i < V; i++) w[i] /= temperature;
    return s->reference ? sample_reference(s, w, V) : sample_fast(s, w, V);
}

int32_t lg_sampler_sample_allowed(laguna_sampler *s, const float *logits, const uint64_t *allowed) {
    if (!allowed) return laguna_sampler_sample(s, logits);
    if (!s->allowed_id && !(s->allowed_id = malloc(sizeof *s->allowed_id * (size_t)s->vocab))) return -1;
    /* the allowed ids' logits side by side, in id order (so ties still go to the lowest id) */
    int V = s->vocab, n = 0;
    float *w = s->work;
    int32_t *ids = s->allowed_id;
    for (int i0 = 0; i0 < V; i0 += 64) {
        for (uint64_t bits = allowed[i0 >> 6]; bits; bits &= bits - 1) {
            int id = i0 + __builtin_ctzll(bits);
            if (id >= V) break;
            w[n] = logits[id], ids[n++] = id;
        }
    }
    if (n == 0) return -1;
    const float penalty = s->p.repetition_penalty, temperature = s->p.temperature;
    if (penalty != 1)
        for (int i = 0; i < n; i++)
            if (s->seen[ids[i]]) w[i] = w[i] > 0 ? w[i] / penalty : w[i] * penalty;
    if (temperature == 0) return ids[lg_argmax_f32(w, n)];
    for (int i = 0; i < n; i++) w[i] /= temperature;
    return ids[s->reference ? sample_reference(s, w, n) : sample_fast(s, w, n)];
}
