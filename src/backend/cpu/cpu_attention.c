/* Causal grouped-query attention over the paged KV pool, and KV writes.
 *
 * One task per (query row, KV head, group of the query heads that read that
 * KV head): the keys and values are fetched (and converted from a half-size
 * or 8-bit cache) once for all the task's heads, CHUNK positions at a time
 * into the thread's scratch, so an f16 cache is converted once per KV head
 * rather than once per query head (with AVX2 the task's heads then run
 * through one step that loads each key and value vector once for all of
 * them, and an f16 pool is read in place, with no converted copy). Per
 * head, an online softmax over the chunks (running max, rescaled sum and
 * output), all float32, positions in ascending order from the row's first
 * visible one: each head's arithmetic depends only on its own row, whatever
 * the batch and whichever heads share its task, so a row's result does not
 * depend on rows of other sequences or on the number of threads. Query
 * head h reads KV head h / (n_heads / n_kv). */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_attention.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/quant_dot.h"

#define CHUNK 32     /* positions per pass (keys and values of one KV head, in L1) */
#define MAX_GROUP 16 /* query heads per task at most */

typedef struct {
    lg_cpu_ctx *k;
    const lg_kv_pool_view *pool;
    float *out;
    const float *q;
    const lg_attention_args *a;
    float scale;
    int group;                   /* query heads per KV head */
    int task_heads;              /* of them per task */
    int splits;                  /* tasks per (row, KV head) */
    lg_attention_heads_fn heads; /* the AVX-512 or AVX2 step for the task's heads, or NULL for chunk_c */
    lg_attention_heads_f16_fn heads_f16; /* the same reading an f16 pool directly, or NULL */
    lg_attention_f16_fn f16;             /* the AVX-512 or AVX2 f16 converter, or NULL */
} attention_job;

/* The keys and values of KV head kv at positions [c0, c0 + n) for query
 * row r, as float32 row pointers: rows of this step straight from the fresh
 * K/V, cached rows from the pool (converted into kbuf/vbuf, n x head_dim,
 * when it stores another dtype; f16 by the AVX-512 or AVX2 converter when
 * the CPU has one). Consecutive positions walk the page table one page at a time, with
 * no division per position. */
static void fetch_chunk(const lg_kv_pool_view *pool, const lg_attention_args *a, int r, int c0,
                        int n, int kv, float *kbuf, float *vbuf, const float **key,
                        const float **val, lg_attention_f16_fn f16) {
    int hd = a->head_dim;
    size_t at = lg_dtype_row_bytes(pool->dtype, (int64_t)kv * hd),
           v_off = (size_t)pool->page_size * pool->row_bytes;
    const int32_t *table = a->tables[r];
    int page = c0 / pool->page_size, in_page = c0 % pool->page_size;
    for (int i = 0; i < n; i++) {
        int p = c0 + i;
        if (p >= a->fresh_from[r]) {
            int row = a->fresh_rows[a->fresh_at[r] + p - a->fresh_from[r]];
            key[i] = a->fresh_k + ((size_t)row * a->n_kv_heads + kv) * hd;
            val[i] = a->fresh_v + ((size_t)row * a->n_kv_heads + kv) * hd;
        } else {
            const uint8_t *row = pool->base + (size_t)table[page] * pool->page_bytes +
                                 (size_t)in_page * pool->row_bytes + at;
            if (pool->dtype == LG_DTYPE_F32) {
                key[i] = (const float *)row, val[i] = (const float *)(row + v_off);
            } else {
                float *kd = kbuf + (size_t)i * hd, *vd = vbuf + (size_t)i * hd;
                if (f16) {
                    f16((const uint16_t *)row, kd, hd);
                    f16((const uint16_t *)(row + v_off), vd, hd);
                } else {
                    lg_dtype_to_f32(pool->dtype, row, kd, hd);
                    lg_dtype_to_f32(pool->dtype, row + v_off, vd, hd);
                }
                key[i] = kd, val[i] = vd;
            }
        }
        if (++in_page == pool->page_size) in_page = 0, page++;
    }
}

/* The f16 rows of KV head kv at positions [c0, c0 + n), all in the pool
 * (none of this step's own), as row pointers into it: for a step that
 * reads f16 itself (lg_attention_heads_f16_fn). */
static void chunk_rows_f16(const lg_kv_pool_view *pool, const lg_attention_args *a, int r, int c0,
                           int n, int kv, const uint16_t **key, const uint16_t **val) {
    size_t at = lg_dtype_row_bytes(pool->dtype, (int64_t)kv * a->head_dim),
           v_off = (size_t)pool->page_size * pool->row_bytes;
    const int32_t *table = a->tables[r];
    int page = c0 / pool->page_size, in_page = c0 % pool->page_size;
    for (int i = 0; i < n; i++) {
        const uint8_t *row = pool->base + (size_t)table[page] * pool->page_bytes +
                             (size_t)in_page * pool->row_bytes + at;
        key[i] = (const uint16_t *)row, val[i] = (const uint16_t *)(row + v_off);
        if (++in_page == pool->page_size) in_page = 0, page++;
    }
}

/* Asks for the cache lines of the keys and values of positions [p0, p0 +
 * CHUNK) that sit in the pool, while the current chunk is computed: a task
 * reads one head's slice of each row, a strided walk the hardware
 * prefetchers do not follow. */
static void prefetch_chunk(const lg_kv_pool_view *pool, const lg_attention_args *a, int r, int p0,
                           int pos, int kv) {
    size_t head_bytes = lg_dtype_row_bytes(pool->dtype, a->head_dim);
    size_t at = lg_dtype_row_bytes(pool->dtype, (int64_t)kv * a->head_dim),
           v_off = (size_t)pool->page_size * pool->row_bytes;
    int page = p0 / pool->page_size, in_page = p0 % pool->page_size;
    for (int p = p0; p < p0 + CHUNK && p <= pos && p < a->fresh_from[r]; p++) {
        const uint8_t *row = pool->base + (size_t)a->tables[r][page] * pool->page_bytes +
                             (size_t)in_page * pool->row_bytes + at;
        for (size_t b = 0; b < head_bytes; b += 64) {
            __builtin_prefetch(row + b);
            __builtin_prefetch(row + v_off + b);
        }
        if (++in_page == pool->page_size) in_page = 0, page++;
    }
}

/* The plain C step for one head, any head_dim (where no vector step serves). */
static void chunk_c(const float *q, const float *const *key, const float *const *val, int n, int hd,
                    float scale, float *s, float *out, float *run_max, float *run_sum) {
    float m = *run_max;
    int i = 0;
    for (; i + 4 <= n; i += 4) { /* four keys per pass over q */
        const float *k0 = key[i], *k1 = key[i + 1], *k2 = key[i + 2], *k3 = key[i + 3];
        float d0 = 0, d1 = 0, d2 = 0, d3 = 0;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
        for (int e = 0; e < hd; e++)
            d0 += q[e] * k0[e], d1 += q[e] * k1[e], d2 += q[e] * k2[e], d3 += q[e] * k3[e];
        s[i] = d0 * scale, s[i + 1] = d1 * scale, s[i + 2] = d2 * scale, s[i + 3] = d3 * scale;
    }
    for (; i < n; i++) {
        const float *kr = key[i];
        float d = 0;
#pragma omp simd reduction(+ : d)
        for (int e = 0; e < hd; e++)
            d += q[e] * kr[e];
        s[i] = d * scale;
    }
    for (i = 0; i < n; i++)
        if (s[i] > m) m = s[i];
    /* rescale what the earlier chunks summed to the new maximum */
    float keep = expf(*run_max - m), sum = *run_sum * keep;
    if (keep != 1.0f)
#pragma omp simd
        for (int e = 0; e < hd; e++)
            out[e] *= keep;
    for (i = 0; i < n; i++) {
        s[i] = expf(s[i] - m);
        sum += s[i];
    }
    for (i = 0; i + 4 <= n; i += 4) { /* four values per pass over out */
        const float *v0 = val[i], *v1 = val[i + 1], *v2 = val[i + 2], *v3 = val[i + 3];
        float w0 = s[i], w1 = s[i + 1], w2 = s[i + 2], w3 = s[i + 3];
#pragma omp simd
        for (int e = 0; e < hd; e++)
            out[e] += w0 * v0[e] + w1 * v1[e] + w2 * v2[e] + w3 * v3[e];
    }
    for (; i < n; i++) {
        const float *vr = val[i];
        float w = s[i];
#pragma omp simd
        for (int e = 0; e < hd; e++)
            out[e] += w * vr[e];
    }
    *run_max = m, *run_sum = sum;
}

static void attention_task(void *ctx, int task, int thread) {
    const attention_job *j = ctx;
    const lg_attention_args *a = j->a;
    int hd = a->head_dim;
    int split = task % j->splits, kv = task / j->splits % a->n_kv_heads,
        r = task / j->splits / a->n_kv_heads;
    int h0 = kv * j->group + split * j->task_heads;
    int nh = j->group - split * j->task_heads < j->task_heads ? j->group - split * j->task_heads
                                                              : j->task_heads;
    int pos = a->pos[r];
    int lo = a->window > 0 ? pos - a->window + 1 : 0;
    if (lo < 0) lo = 0;
    /* scratch: CHUNK converted keys, CHUNK values, then the scores of the task's heads */
    float *kbuf = j->k->scratch[thread], *vbuf = kbuf + (size_t)CHUNK * hd,
          *score = vbuf + (size_t)CHUNK * hd;
    const float *key[CHUNK], *val[CHUNK];
    /* an f16 chunk's row pointers, and the next chunk's (listed for the step to
     * ask for, then used as they are when that chunk comes): the two swap */
    const uint16_t *rows16[2][2][CHUNK], **key16 = rows16[0][0], **val16 = rows16[0][1];
    const uint16_t **next_key16 = rows16[1][0], **next_val16 = rows16[1][1];
    float run_max[MAX_GROUP], run_sum[MAX_GROUP];
    for (int h = 0; h < nh; h++) {
        run_max[h] = -INFINITY, run_sum[h] = 0;
        memset(j->out + ((size_t)r * a->n_heads + h0 + h) * hd, 0, sizeof(float) * (size_t)hd);
    }
    for (int c0 = lo; c0 <= pos; c0 += CHUNK) {
        int n = pos + 1 - c0 < CHUNK ? pos + 1 - c0 : CHUNK;
        /* a chunk all in an f16 pool: read in place, no converted copy */
        bool in_place = j->heads_f16 && c0 + n <= a->fresh_from[r];
        if (in_place) {
            if (c0 == lo) {
                chunk_rows_f16(j->pool, a, r, c0, n, kv, key16, val16);
            } else { /* in-place chunks come first: the one before listed these rows */
                const uint16_t **k = key16, **v = val16;
                key16 = next_key16, val16 = next_val16, next_key16 = k, next_val16 = v;
            }
            /* the next chunk's pool rows, asked for by the step as it goes
             * (lg_attention_next); a chunk that ends in this step's own rows
             * is asked for in one go */
            int c1 = c0 + CHUNK, n1 = pos + 1 - c1 < CHUNK ? pos + 1 - c1 : CHUNK;
            lg_attention_next next = {next_key16, next_val16, 0};
            if (n1 > 0 && c1 + n1 <= a->fresh_from[r]) {
                chunk_rows_f16(j->pool, a, r, c1, n1, kv, next_key16, next_val16);
                next.n = n1;
            } else if (n1 > 0) {
                prefetch_chunk(j->pool, a, r, c1, pos, kv);
            }
            size_t first = ((size_t)r * a->n_heads + h0) * hd;
            j->heads_f16(nh, j->q + first, key16, val16, n, j->scale, score, CHUNK, j->out + first,
                         run_max, run_sum, &next);
            continue;
        }
        fetch_chunk(j->pool, a, r, c0, n, kv, kbuf, vbuf, key, val, j->f16);
        if (c0 + CHUNK <= pos) prefetch_chunk(j->pool, a, r, c0 + CHUNK, pos, kv);
        if (j->heads) {
            size_t first = ((size_t)r * a->n_heads + h0) * hd;
            j->heads(nh, j->q + first, key, val, n, j->scale, score, CHUNK, j->out + first, run_max,
                     run_sum);
            continue;
        }
        for (int h = 0; h < nh; h++) {
            const float *q = j->q + ((size_t)r * a->n_heads + h0 + h) * hd;
            float *out = j->out + ((size_t)r * a->n_heads + h0 + h) * hd,
                  *s = score + (size_t)h * CHUNK;
            chunk_c(q, key, val, n, hd, j->scale, s, out, &run_max[h], &run_sum[h]);
        }
    }
    for (int h = 0; h < nh; h++) {
        float *out = j->out + ((size_t)r * a->n_heads + h0 + h) * hd, inv = 1.0f / run_sum[h];
#pragma omp simd
        for (int e = 0; e < hd; e++)
            out[e] *= inv;
    }
}

size_t lg_cpu_attention_scratch_floats(int head_dim) {
    return 2 * (size_t)CHUNK * (size_t)head_dim + (size_t)MAX_GROUP * CHUNK;
}

void lg_cpu_attention(lg_backend_ctx *c, const lg_kv_pool_view *pool, float *out, const float *q,
                      const lg_attention_args *a) {
    lg_cpu_ctx *k = (lg_cpu_ctx *)c;
    int group = a->n_heads / a->n_kv_heads, task_heads = group;
    /* a task's heads: at most MAX_GROUP, and fewer when that leaves threads idle
     * (a decode step has only n_kv_heads (row, KV head) pairs); each head's
     * arithmetic is the same either way */
    if (task_heads > MAX_GROUP) task_heads = MAX_GROUP;
    while (task_heads > 1 &&
           a->n_rows * a->n_kv_heads * ((group + task_heads - 1) / task_heads) < 2 * k->n_threads)
        task_heads = (task_heads + 1) / 2;
    int splits = (group + task_heads - 1) / task_heads;
    /* the ISA is decided once per process, so every row takes the same step */
    lg_isa isa = lg_qgemm_isa_best();
    lg_attention_f16_fn f16 = pool->dtype != LG_DTYPE_F16 ? NULL
                              : isa == LG_ISA_AVX512_VNNI ? lg_attention_f16_avx512(a->head_dim)
                              : isa == LG_ISA_AVX2        ? lg_attention_f16_avx2(a->head_dim)
                                                          : NULL;
    lg_attention_heads_fn heads = isa == LG_ISA_AVX512_VNNI ? lg_attention_heads_avx512(a->head_dim)
                                  : isa == LG_ISA_AVX2      ? lg_attention_heads_avx2(a->head_dim)
                                                            : NULL;
    lg_attention_heads_f16_fn heads_f16 =
        pool->dtype != LG_DTYPE_F16 ? NULL
        : isa == LG_ISA_AVX512_VNNI ? lg_attention_heads_f16_avx512(a->head_dim)
        : isa == LG_ISA_AVX2        ? lg_attention_heads_f16_avx2(a->head_dim)
                                    : NULL;
    attention_job j = {k,     pool,       out,    q,    a,     1.0f / sqrtf((float)a->head_dim),
                       group, task_heads, splits, heads, heads_f16,
                       f16};
    lg_threadpool_run(k->pool, a->n_rows * a->n_kv_heads * splits, attention_task, &j);
}

typedef struct {
    const lg_kv_pool_view *pool;
    const lg_kv_write_args *a;
    const float *k, *v;
} kv_write_job;

static void kv_write_rows(void *ctx, int r0, int r1) {
    const kv_write_job *j = ctx;
    const lg_kv_pool_view *pool = j->pool;
    size_t n = (size_t)pool->row_floats;
    for (int r = r0; r < r1; r++) {
        int32_t slot = j->a->slots[r];
        uint8_t *kdst = pool->base + (size_t)(slot / pool->page_size) * pool->page_bytes +
                        (size_t)(slot % pool->page_size) * pool->row_bytes;
        lg_dtype_from_f32(pool->dtype, j->k + (size_t)r * n, kdst, (int64_t)n);
        lg_dtype_from_f32(pool->dtype, j->v + (size_t)r * n,
                          kdst + (size_t)pool->page_size * pool->row_bytes, (int64_t)n);
    }
}

/* A prompt's rows spread over the threads: every row goes to its own slot. */
void lg_cpu_kv_write(lg_backend_ctx *c, const lg_kv_pool_view *pool, const lg_kv_write_args *a,
                     const float *k, const float *v) {
    kv_write_job j = {pool, a, k, v};
    lg_cpu_for_rows((lg_cpu_ctx *)c, a->n_rows, 8, kv_write_rows, &j);
}
