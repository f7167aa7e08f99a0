/* `laguna quantize` pipeline (gguf_quantize.h): open the source as (config,
 * HF-named tensor source), plan the GGUF tensors (names, merged experts,
 * ggml shapes, target types), write the metadata and tokenizer, then stream
 * the data: rows are converted to float32 and quantised a chunk at a time on
 * the thread pool, or copied untouched when the type does not change. */
#include "gguf/gguf_quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "gguf/gguf_laguna.h"
#include "gguf/gguf_tokenizer.h"
#include "gguf/gguf_writer.h"
#include "io/file_util.h"
#include "backend/cpu/threadpool.h"

#define CHUNK_BYTES ((size_t)8 << 20) /* per chunk of rows, input or output side */
#define MAX_CONFIG_BYTES ((size_t)16 << 20)

/* A run of source bytes: a whole tensor, or one expert's rows of a fused one. */
typedef struct {
    const lg_tensor *t;
    size_t offset, n_bytes;
} part;

typedef struct {
    char name[128];   /* GGUF name */
    int group, layer; /* sort keys: 0 token_embd, 1 blocks, 2 output_norm, 3 output, 4 others */
    int n_parts;      /* 1, or the number of experts merged into it */
    part *parts;      /* source data (experts in order) */
    int n_dims;
    int64_t ne[LG_GGUF_MAX_DIMS]; /* ggml order */
    lg_dtype dtype;
    int fallback;
} plan_tensor;

typedef struct {
    plan_tensor *t;
    size_t n, cap;
} plan;

static void plan_free(plan *p) {
    for (size_t i = 0; i < p->n; i++)
        free(p->t[i].parts);
    free(p->t);
}

static plan_tensor *plan_find(plan *p, const char *name) {
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return &p->t[i];
    return NULL;
}

static plan_tensor *plan_add(plan *p, const char *name, int n_parts) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        plan_tensor *t = realloc(p->t, cap * sizeof *t);
        if (!t) return NULL;
        p->t = t, p->cap = cap;
    }
    plan_tensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    if (!(t->parts = calloc((size_t)n_parts, sizeof *t->parts))) return NULL;
    p->n++;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_parts = n_parts;
    int layer = -1;
    t->group = !strcmp(name, "token_embd.weight")     ? 0
               : sscanf(name, "blk.%d.", &layer) == 1 ? 1
               : !strcmp(name, "output_norm.weight")  ? 2
               : !strcmp(name, "output.weight")       ? 3
                                                      : 4;
    t->layer = layer;
    return t;
}

static int cmp_plan(const void *a, const void *b) {
    const plan_tensor *x = a, *y = b;
    if (x->group != y->group) return x->group - y->group;
    if (x->layer != y->layer) return x->layer - y->layer;
    return strcmp(x->name, y->name);
}

/* transformers' fused layout: gate_up_proj [experts, 2*inter, hidden], each
 * expert's gate rows then its up rows; they become ffn_gate_exps and
 * ffn_up_exps, each expert a run of rows. */
static laguna_status plan_fused_gate_up(plan *p, const lg_tensor *t, int layer,
                                        const lg_config *cfg, laguna_error *err) {
    const int64_t E = cfg->n_experts, I = cfg->moe_intermediate_size;
    size_t row = t->n_dims == 3 ? lg_dtype_row_bytes(t->dtype, t->shape[2]) : 0;
    if (t->n_dims != 3 || t->shape[0] != E || t->shape[1] != 2 * I || row == 0)
        return lg_fail(err, LAGUNA_ERR_SHAPE, "%s: '%s' is not [%lld, %lld, hidden]",
                       t->file ? t->file : "?", t->name, (long long)E, (long long)(2 * I));
    const char *which[2] = {"ffn_gate_exps.weight", "ffn_up_exps.weight"};
    for (int k = 0; k < 2; k++) {
        char name[128];
        snprintf(name, sizeof name, "blk.%d.%s", layer, which[k]);
        if (plan_find(p, name))
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: '%s' given twice", t->file ? t->file : "?",
                           name);
        plan_tensor *pt = plan_add(p, name, (int)E);
        if (!pt) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        pt->n_dims = 3;
        pt->ne[0] = t->shape[2], pt->ne[1] = I, pt->ne[2] = E, pt->ne[3] = 1;
        for (int64_t e = 0; e < E; e++)
            pt->parts[e] = (part){t, (size_t)(e * 2 * I + k * I) * row, (size_t)I * row};
    }
    return LAGUNA_OK;
}

/* Groups the source tensors into GGUF tensors. */
static laguna_status build_plan(const lg_tensor_source *src, const lg_config *cfg, plan *p,
                                laguna_error *err) {
    for (size_t i = 0; i < lg_tensor_source_count(src); i++) {
        const lg_tensor *t = lg_tensor_source_at(src, i);
        char name[128];
        int expert, layer, used = 0;
        if (sscanf(t->name, "model.layers.%d.mlp.experts.gate_up_proj%n", &layer, &used) == 1 &&
            t->name[used] == 0) {
            laguna_status st = plan_fused_gate_up(p, t, layer, cfg, err);
            if (st) return st;
            continue;
        }
        if (lg_gguf_name_from_hf(t->name, name, sizeof name, &expert) != 0) {
            if (!strncmp(t->name, "model.", 6) || !strncmp(t->name, "lm_head.", 8))
                return lg_fail(err, LAGUNA_ERR_FORMAT,
                               "%s: tensor '%s' has no GGUF name (not a Laguna tensor)",
                               t->file ? t->file : "?", t->name);
            snprintf(name, sizeof name, "%s", t->name); /* a GGUF source's own extra tensor */
            expert = -1;
        }
        if (t->dtype == LG_DTYPE_I32 || t->n_dims < 1 || t->n_dims > 3)
            return lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                           "%s: tensor '%s' (%s, %d dims) cannot be quantised",
                           t->file ? t->file : "?", t->name, lg_dtype_name(t->dtype), t->n_dims);
        plan_tensor *pt = plan_find(p, name);
        if (expert < 0) {
            if (pt)
                return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s' maps to '%s' twice",
                               t->file ? t->file : "?", t->name, name);
            if (!(pt = plan_add(p, name, 1)))
                return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
            pt->parts[0] = (part){t, 0, t->n_bytes};
            pt->n_dims = t->n_dims;
            for (int d = 0; d < LG_GGUF_MAX_DIMS; d++)
                pt->ne[d] = d < t->n_dims ? t->shape[t->n_dims - 1 - d] : 1;
            continue;
        }
        if (t->n_dims != 2 || expert >= cfg->n_experts)
            return lg_fail(err, LAGUNA_ERR_SHAPE,
                           "%s: expert tensor '%s': expected 2 dims and an expert below %d",
                           t->file ? t->file : "?", t->name, cfg->n_experts);
        if (!pt) {
            if (!(pt = plan_add(p, name, cfg->n_experts)))
                return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
            pt->n_dims = 3;
            pt->ne[0] = t->shape[1], pt->ne[1] = t->shape[0], pt->ne[2] = cfg->n_experts,
            pt->ne[3] = 1;
        }
        if (pt->parts[expert].t || t->shape[1] != pt->ne[0] || t->shape[0] != pt->ne[1] ||
            (pt->parts[0].t && pt->parts[0].t->dtype != t->dtype))
            return lg_fail(err, LAGUNA_ERR_SHAPE,
                           "%s: expert tensor '%s' is repeated or differs from its siblings",
                           t->file ? t->file : "?", t->name);
        pt->parts[expert] = (part){t, 0, t->n_bytes};
    }
    for (size_t i = 0; i < p->n; i++)
        for (int e = 0; e < p->t[i].n_parts; e++)
            if (!p->t[i].parts[e].t)
                return lg_fail(err, LAGUNA_ERR_SHAPE, "%s: expert %d of %d is missing",
                               p->t[i].name, e, p->t[i].n_parts);
    qsort(p->t, p->n, sizeof *p->t, cmp_plan);
    return LAGUNA_OK;
}

/* ---- streaming the data ------------------------------------------------ */

typedef struct {
    const uint8_t *src;
    uint8_t *dst;
    lg_dtype src_type, dst_type;
    int64_t row_len;
    size_t src_row_bytes, dst_row_bytes;
    float *scratch; /* n_threads rows */
} convert_job;

static void convert_row(void *ctx, int row, int thread) {
    convert_job *j = ctx;
    float *x = j->scratch + (size_t)thread * (size_t)j->row_len;
    lg_dtype_to_f32(j->src_type, j->src + (size_t)row * j->src_row_bytes, x, j->row_len);
    lg_dtype_from_f32(j->dst_type, x, j->dst + (size_t)row * j->dst_row_bytes, j->row_len);
}

typedef struct {
    lg_gguf_writer *w;
    lg_threadpool *pool;
    uint8_t *out; /* CHUNK_BYTES-ish output buffer */
    size_t out_cap;
    float *scratch;
    uint8_t *gen; /* CHUNK_BYTES of generated source data */
    const lg_quantize_options *opt;
    uint64_t done, total;
    laguna_error *err;
} stream;

/* Source bytes [off, off + n) of a part: in the mapping, or generated into
 * s->gen (synthetic sources have no data). */
static const uint8_t *source_bytes(stream *s, const part *pa, size_t off, size_t n) {
    if (pa->t->data) return (const uint8_t *)pa->t->data + pa->offset + off;
    s->opt->generate(s->opt->generate_user, pa->t, pa->offset + off, s->gen, n);
    return s->gen;
}

static laguna_status write_part(stream *s, const plan_tensor *pt, const part *pa) {
    const lg_tensor *t = pa->t;
    const int64_t row_len = pt->ne[0];
    const size_t src_row = lg_dtype_row_bytes(t->dtype, row_len),
                 dst_row = lg_dtype_row_bytes(pt->dtype, row_len);
    if (src_row == 0 || pa->n_bytes % src_row != 0)
        return lg_fail(
            s->err, LAGUNA_ERR_SHAPE, "%s: tensor '%s' is not whole rows of %lld %s elements",
            t->file ? t->file : "?", t->name, (long long)row_len, lg_dtype_name(t->dtype));
    const size_t rows = pa->n_bytes / src_row;
    laguna_status st;
    if (t->dtype == pt->dtype) { /* same type: copy the bytes as they are */
        for (size_t off = 0; off < pa->n_bytes; off += CHUNK_BYTES) {
            size_t k = pa->n_bytes - off < CHUNK_BYTES ? pa->n_bytes - off : CHUNK_BYTES;
            if ((st = lg_gguf_writer_write(s->w, source_bytes(s, pa, off, k), k, s->err))) return st;
            s->done += k;
            if (s->opt->progress) s->opt->progress(s->opt->user, s->done, s->total, pt->name);
        }
        return LAGUNA_OK;
    }
    size_t widest = src_row > dst_row ? src_row : dst_row;
    if ((size_t)row_len * sizeof(float) > widest) widest = (size_t)row_len * sizeof(float);
    size_t chunk_rows = CHUNK_BYTES / widest ? CHUNK_BYTES / widest : 1;
    if (chunk_rows * dst_row > s->out_cap) {
        uint8_t *o = realloc(s->out, chunk_rows * dst_row);
        if (!o) return lg_fail(s->err, LAGUNA_ERR_NOMEM, "out of memory");
        s->out = o, s->out_cap = chunk_rows * dst_row;
    }
    for (size_t r0 = 0; r0 < rows; r0 += chunk_rows) {
        size_t n = rows - r0 < chunk_rows ? rows - r0 : chunk_rows;
        convert_job j = {source_bytes(s, pa, r0 * src_row, n * src_row), s->out, t->dtype, pt->dtype, row_len,
                         src_row, dst_row, s->scratch};
        lg_threadpool_run(s->pool, (int)n, convert_row, &j);
        if ((st = lg_gguf_writer_write(s->w, s->out, n * dst_row, s->err))) return st;
        s->done += n * src_row;
        if (s->opt->progress) s->opt->progress(s->opt->user, s->done, s->total, pt->name);
    }
    return LAGUNA_OK;
}

static laguna_status write_data(lg_gguf_writer *w, const plan *p, const lg_quantize_options *opt,
                                laguna_error *err) {
    stream s = {.w = w, .opt = opt, .err = err};
    int64_t max_row = 1;
    for (size_t i = 0; i < p->n; i++) {
        max_row = p->t[i].ne[0] > max_row ? p->t[i].ne[0] : max_row;
        for (int e = 0; e < p->t[i].n_parts; e++)
            s.total += p->t[i].parts[e].n_bytes;
    }
    s.pool = lg_threadpool_new(opt->n_threads);
    if (s.pool)
        s.scratch = malloc((size_t)lg_threadpool_size(s.pool) * (size_t)max_row * sizeof(float));
    bool generated = false;
    for (size_t i = 0; i < p->n; i++)
        for (int e = 0; e < p->t[i].n_parts; e++) generated |= p->t[i].parts[e].t->data == NULL;
    /* a chunk of rows is at most CHUNK_BYTES, or one row when a row is wider */
    if (generated && opt->generate) s.gen = malloc(CHUNK_BYTES > (size_t)max_row * 4 ? CHUNK_BYTES : (size_t)max_row * 4);
    laguna_status st = s.pool && s.scratch && (!generated || s.gen) ? LAGUNA_OK
                       : generated && !opt->generate ? lg_fail(err, LAGUNA_ERR_ARGUMENT, "a tensor has no data and no generator")
                                                      : lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < p->n && !st; i++)
        for (int e = 0; e < p->t[i].n_parts && !st; e++)
            st = write_part(&s, &p->t[i], &p->t[i].parts[e]);
    free(s.out);
    free(s.scratch);
    free(s.gen);
    if (s.pool) lg_threadpool_free(s.pool);
    return st;
}

/* ---- sources ------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* A checkpoint folder: config.json + safetensors; tokenizer written later. */
static laguna_status open_folder(const char *dir, lg_config *cfg, lg_tensor_source **src,
                                 laguna_error *err) {
    char *path = lg_path_join(dir, "config.json"), *text = NULL;
    size_t len;
    if (!path) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = lg_read_file(path, MAX_CONFIG_BYTES, &text, &len, err);
    if (!st) st = lg_config_parse(text, path, cfg, err);
    free(text);
    free(path);
    if (st) return st;
    st = lg_tensor_source_open_safetensors_dir(dir, LG_LOAD_MMAP, src, err);
    if (st) lg_config_free(cfg);
    return st;
}

/* A GGUF: its config and tensors, plus its tokenizer keys copied to w. */
static laguna_status open_gguf(const char *path, lg_gguf_writer *w, lg_config *cfg,
                               lg_tensor_source **src, laguna_error *err) {
    lg_gguf_file *f;
    laguna_status st = lg_gguf_open(path, false, &f, err);
    if (st) return st;
    st = lg_gguf_read_laguna_config(f, cfg, err);
    for (size_t i = 0; i < lg_gguf_kv_count(f) && !st; i++) {
        const lg_gguf_kv *kv = lg_gguf_kv_at(f, i);
        bool ids = !strcmp(kv->key, "tokenizer.ggml.bos_token_id") ||
                   !strcmp(kv->key, "tokenizer.ggml.eos_token_id") ||
                   !strcmp(kv->key, "tokenizer.ggml.eot_token_id"); /* rewritten from the config */
        if (!strncmp(kv->key, "tokenizer.", 10) && !ids) st = lg_gguf_copy_kv(w, kv, err);
    }
    if (!st) st = lg_gguf_laguna_tensor_source(f, cfg, src, err);
    if (st) lg_config_free(cfg); /* safe on a config that failed to read */
    lg_gguf_close(f);
    return st;
}

static laguna_status put_general(lg_gguf_writer *w, const char *src, lg_ftype ftype,
                                 laguna_error *err) {
    char name[256];
    const char *base = src + strlen(src);
    while (base > src && base[-1] == '/')
        base--;
    const char *end = base;
    while (base > src && base[-1] != '/')
        base--;
    snprintf(name, sizeof name, "%.*s", (int)(end - base), base);
    if (ends_with(name, ".gguf")) name[strlen(name) - 5] = 0;
    laguna_status st = LAGUNA_OK;
    if (name[0]) st = lg_gguf_set_str(w, "general.name", name, err);
    if (!st) st = lg_gguf_set_u32(w, "general.file_type", (uint32_t)ftype, err);
    if (!st) st = lg_gguf_set_u32(w, "general.quantization_version", 2, err); /* GGML_QNT_VERSION */
    return st;
}

/* Plans the GGUF tensors of src, declares them with their target types and
 * streams their data. */
static laguna_status write_tensors(lg_gguf_writer *w, const lg_config *cfg, const lg_tensor_source *src,
                                   const lg_quantize_options *opt, lg_quantize_stats *stats, laguna_error *err) {
    plan p = {0};
    laguna_status st = build_plan(src, cfg, &p, err);
    for (size_t i = 0; i < p.n && !st; i++) {
        plan_tensor *t = &p.t[i];
        t->dtype = lg_ftype_tensor_type(opt->ftype, t->name, t->n_dims, t->ne, cfg->n_layers, cfg->n_experts,
                                        cfg->tie_word_embeddings, &t->fallback);
        st = lg_gguf_add_tensor(w, t->name, t->dtype, t->n_dims, t->ne, err);
        stats->n_tensors++;
        stats->n_fallbacks += t->fallback != 0;
        stats->count_by_type[t->dtype]++;
        stats->dst_bytes += lg_dtype_row_bytes(t->dtype, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
        for (int e = 0; e < t->n_parts; e++) stats->src_bytes += t->parts[e].n_bytes;
    }
    if (!st) st = write_data(w, &p, opt, err);
    plan_free(&p);
    return st;
}

laguna_status lg_quantize_model(const char *src_path, const char *dst,
                                const lg_quantize_options *opt, lg_quantize_stats *stats,
                                laguna_error *err) {
    lg_quantize_stats ignored;
    if (!stats) stats = &ignored; /* optional */
    memset(stats, 0, sizeof *stats);
    lg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    lg_tensor_source *src = NULL;
    lg_gguf_writer *w = NULL;
    bool is_gguf = ends_with(src_path, ".gguf");
    laguna_status st = lg_gguf_writer_new(dst, &w, err);
    if (!st) st = put_general(w, src_path, opt->ftype, err);
    if (!st)
        st = is_gguf ? open_gguf(src_path, w, &cfg, &src, err)
                     : open_folder(src_path, &cfg, &src, err);
    if (!st) st = lg_gguf_put_laguna_config(w, &cfg, err);
    if (!st && !is_gguf) {
        char *tok = lg_path_join(src_path, "tokenizer.json");
        if (!tok)
            st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        else if (lg_file_exists(tok))
            st = lg_gguf_put_tokenizer(w, src_path, cfg.vocab_size, err);
        free(tok);
    }
    if (!st) st = write_tensors(w, &cfg, src, opt, stats, err);
    if (w) {
        if (!st)
            st = lg_gguf_writer_finish(w, err);
        else
            lg_gguf_writer_abort(w);
    }
    lg_tensor_source_free(src);
    lg_config_free(&cfg); /* a no-op on the zeroed config of a failed open */
    return st;
}

laguna_status lg_quantize_source(const lg_config *cfg, const lg_tensor_source *src, const char *name, const char *dst,
                                 const lg_quantize_options *opt, lg_quantize_stats *stats, laguna_error *err) {
    lg_quantize_stats ignored;
    if (!stats) stats = &ignored;
    memset(stats, 0, sizeof *stats);
    lg_gguf_writer *w = NULL;
    laguna_status st = lg_gguf_writer_new(dst, &w, err);
    if (!st) st = put_general(w, name, opt->ftype, err);
    if (!st) st = lg_gguf_put_laguna_config(w, cfg, err);
    if (!st && opt->tokenizer_dir) st = lg_gguf_put_tokenizer(w, opt->tokenizer_dir, cfg->vocab_size, err);
    if (!st) st = write_tensors(w, cfg, src, opt, stats, err);
    if (w) {
        if (!st) st = lg_gguf_writer_finish(w, err);
        else lg_gguf_writer_abort(w);
    }
    return st;
}
