/* Models with no checkpoint (model_synth.h): the preset's tensor list,
 * retyped as `laguna synth --type` would, opened like a checkpoint whose
 * tensors have no data; the binder asks here for each one's values. */
#include "model/model_synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend/cpu/threadpool.h"
#include "core/error.h"
#include "gguf/gguf_laguna.h"
#include "gguf/gguf_quantize.h"
#include "synth/presets.h"
#include "synth/synth.h"
#include "sys/huge_pages.h"

#define CHUNK_BYTES ((size_t)64 << 20) /* host memory shared by the smaller matrices */
#define SLICE_ALIGN ((size_t)4096)     /* where each of them starts in a chunk */
#define TASK_ELEMS ((int64_t)1 << 16) /* elements per task of host generation */

/* The synth tensors with the dtype each gets in a GGUF of this file type:
 * the GGUF name and shape decide (llama.cpp's mix, gguf_type_mix.c); a
 * routed expert's matrix is a slice of its merged 3-D tensor. */
static laguna_status retype(const lg_config *cfg, lg_ftype ftype, lg_tensor_source **io,
                            laguna_error *err) {
    lg_tensor_source *src = *io, *out = lg_tensor_source_new();
    laguna_status st = out ? LAGUNA_OK : lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < lg_tensor_source_count(src) && !st; i++) {
        lg_tensor t = *lg_tensor_source_at(src, i);
        char gguf_name[128];
        int expert, fallback;
        if (lg_gguf_name_from_hf(t.name, gguf_name, sizeof gguf_name, &expert) != 0) {
            st = lg_fail(err, LAGUNA_ERR_FORMAT, "synthetic tensor '%s' has no GGUF name", t.name);
            break;
        }
        int64_t cols = t.shape[t.n_dims - 1], rows = t.n_dims == 2 ? t.shape[0] : 1;
        int64_t ne[4] = {cols, rows, expert >= 0 ? cfg->n_experts : 1, 1};
        int n_dims = expert >= 0 ? 3 : t.n_dims;
        t.dtype = lg_ftype_tensor_type(ftype, gguf_name, n_dims, ne, cfg->n_layers, cfg->n_experts,
                                       cfg->tie_word_embeddings, &fallback);
        t.n_bytes = (size_t)rows * lg_dtype_row_bytes(t.dtype, cols);
        st = lg_tensor_source_add(out, &t, err);
    }
    lg_tensor_source_free(src);
    *io = out;
    return st;
}

laguna_status lg_model_open_synth(const char *preset, int layers, const char *type, uint64_t seed,
                                  const laguna_model_options *options, laguna_model **out,
                                  laguna_error *err) {
    *out = NULL;
    if (!preset) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no synth preset given");
    lg_ftype ftype = LG_FTYPE_BF16;
    if (type && lg_ftype_parse(type, &ftype) != 0)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                       "unknown weight type '%s' (q8_0, q4_k_m, q5_k_m, q6_k, bf16, f32)", type);
    lg_config cfg;
    laguna_status st = lg_synth_preset_layers(preset, layers, &cfg, err);
    if (st) return st;
    lg_tensor_source *src = NULL;
    st = lg_synth_tensor_source(&cfg, LG_DTYPE_BF16, &src, err);
    if (!st && type) st = retype(&cfg, ftype, &src, err);
    if (st) {
        lg_tensor_source_free(src);
        lg_config_free(&cfg);
        return st;
    }
    char name[96];
    snprintf(name, sizeof name, "synthetic %s", preset);
    return lg_model_open_source(&cfg, src, name, seed, false, options, out, err);
}

/* ---- values made on the host --------------------------------------------- */

/* Rows [r0, r0 + n) of t in its dtype: the bf16 values `laguna synth`
 * writes, converted (quantised) row by row as `laguna quantize` does. bf and
 * x are scratch of cols values. */
static void host_rows(uint64_t seed, const lg_tensor *t, int64_t cols, int64_t r0, int64_t n,
                      uint8_t *dst, uint16_t *bf, float *x) {
    lg_tensor src = *t;
    src.dtype = LG_DTYPE_BF16;
    size_t row_bytes = lg_dtype_row_bytes(t->dtype, cols), src_row = (size_t)cols * 2;
    for (int64_t r = 0; r < n; r++) {
        uint8_t *row = dst + (size_t)r * row_bytes;
        size_t offset = (size_t)(r0 + r) * src_row;
        if (t->dtype == LG_DTYPE_BF16) {
            lg_synth_generate(seed, &src, offset, row, src_row);
            continue;
        }
        lg_synth_generate(seed, &src, offset, bf, src_row);
        lg_dtype_to_f32(LG_DTYPE_BF16, bf, x, cols);
        lg_dtype_from_f32(t->dtype, x, row, cols);
    }
}

typedef struct {
    uint64_t seed;
    const lg_tensor *t;
    int64_t rows, cols, rows_per_task;
    size_t row_bytes;
    uint8_t *dst;
    uint16_t *bf; /* [threads][cols] */
    float *x;     /* [threads][cols] */
} fill_job;

static void fill_task(void *ctx, int task, int thread) {
    fill_job *j = ctx;
    int64_t r0 = (int64_t)task * j->rows_per_task,
            n = j->rows - r0 < j->rows_per_task ? j->rows - r0 : j->rows_per_task;
    host_rows(j->seed, j->t, j->cols, r0, n, j->dst + (size_t)r0 * j->row_bytes,
              j->bf + (size_t)thread * j->cols, j->x + (size_t)thread * j->cols);
}

/* bytes of anonymous huge-page memory the source keeps (and counts as
 * copied); *map_bytes: what was mapped. NULL when either fails. */
static uint8_t *kept_huge(laguna_model *m, size_t bytes, size_t *map_bytes) {
    lg_page_source source;
    void *p = lg_huge_alloc(bytes, false, map_bytes, &source);
    if (!p) return NULL;
    if (lg_tensor_source_keep_mapping(m->tensors, p, *map_bytes, true) == 0) return p;
    munmap(p, *map_bytes);
    return NULL;
}

/* Host memory the source keeps for the model's life, all of it on
 * 2 MiB-aligned huge-page mappings: the CPU kernels stream weights at a
 * fraction of the speed from 4 KiB pages (docs/performance.md). Matrices
 * smaller than a chunk (a routed expert's is ~0.6-1.1 MB at XS.2 shapes) are
 * laid side by side in shared chunks, as a file's merged expert tensors are;
 * each used to be its own malloc block, on 4 KiB pages and not counted in the
 * model's memory report. */
static uint8_t *host_matrix(laguna_model *m, size_t bytes) {
    size_t need = (bytes + SLICE_ALIGN - 1) / SLICE_ALIGN * SLICE_ALIGN, map_bytes;
    if (need > CHUNK_BYTES / 4 || !need) return kept_huge(m, bytes ? bytes : 1, &map_bytes);
    if (!m->synth_chunk || m->synth_chunk_bytes - m->synth_chunk_used < need) {
        uint8_t *p = kept_huge(m, CHUNK_BYTES, &map_bytes);
        if (!p) return NULL;
        m->synth_chunk = p;
        m->synth_chunk_bytes = map_bytes;
        m->synth_chunk_used = 0;
    }
    uint8_t *p = m->synth_chunk + m->synth_chunk_used;
    m->synth_chunk_used += need;
    return p;
}

static const uint8_t *host_generated(laguna_model *m, const lg_tensor *t, int64_t rows,
                                     int64_t cols, size_t row_bytes) {
    lg_backend *be = m->backend;
    if (!m->synth_pool && !(m->synth_pool = lg_threadpool_new(be->n_threads))) return NULL;
    int threads = lg_threadpool_size(m->synth_pool);
    size_t bytes = (size_t)rows * row_bytes;
    uint8_t *dst = host_matrix(m, bytes);
    fill_job j = {m->synth_seed,
                  t,
                  rows,
                  cols,
                  TASK_ELEMS / cols > 0 ? TASK_ELEMS / cols : 1,
                  row_bytes,
                  dst,
                  malloc(sizeof(uint16_t) * (size_t)cols * (size_t)threads),
                  malloc(sizeof(float) * (size_t)cols * (size_t)threads)};
    const uint8_t *p = NULL;
    if (dst && j.bf && j.x) {
        lg_threadpool_run(m->synth_pool, (int)((rows + j.rows_per_task - 1) / j.rows_per_task),
                          fill_task, &j);
        p = be->ops->adopt_weights(be, dst, bytes); /* the host's own memory on the CPU */
    }
    free(j.bf);
    free(j.x);
    return p;
}

const uint8_t *lg_model_synth_matrix(laguna_model *m, const lg_tensor *t, int64_t rows,
                                     int64_t cols, size_t row_bytes, laguna_error *err) {
    lg_backend *be = m->backend;
    size_t bytes = (size_t)rows * row_bytes;
    const uint8_t *p;
    if (be->ops->synth_weights) {
        float mean, std;
        uint64_t state;
        lg_synth_noise(t->name, m->synth_seed, &mean, &std, &state); /* matrices have mean 0 */
        p = be->ops->synth_weights(be, t->dtype, rows, cols, bytes, std, state);
    } else {
        p = host_generated(m, t, rows, cols, row_bytes);
    }
    if (!p)
        lg_fail(err, LAGUNA_ERR_NOMEM, "no %s memory to make tensor '%s' (%zu bytes)",
                be->ops->name, t->name, bytes);
    return p;
}

int lg_model_synth_vector(const laguna_model *m, const lg_tensor *t, float *dst, int64_t n) {
    uint8_t *row = malloc(lg_dtype_row_bytes(t->dtype, n) + 1);
    uint16_t *bf = malloc(sizeof(uint16_t) * (size_t)n + 1);
    if (row && bf) {
        host_rows(m->synth_seed, t, n, 0, 1, row, bf, dst);
        lg_dtype_to_f32(t->dtype, row, dst, n);
    }
    free(bf);
    free(row);
    return row && bf ? 0 : -1;
}

void lg_model_synth_finish(laguna_model *m) {
    if (m->synth_pool) lg_threadpool_free(m->synth_pool);
    m->synth_pool = NULL;
    m->synth_chunk = NULL; /* the source keeps it */
    m->synth_chunk_used = m->synth_chunk_bytes = 0;
}
