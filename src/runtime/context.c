/* laguna_context: sequences in a paged KV pool, and the decode call that
 * checks a batch, takes its pages and runs it through the forward pass in
 * steps of at most n_batch rows. */
#include <stdlib.h>
#include <string.h>

#include "core/argmax.h"
#include "core/error.h"
#include "parallel/group.h"
#include "runtime/context.h"

/* Rows per step when the caller leaves it to us. A GPU reads every routed
 * expert's weights once per step of a long prompt, so fewer, larger steps
 * save most of that traffic: 4096 rows where the GPU has room to spare
 * after the weights (a step's buffers are ~1 GB of XS.2's at 4096; on the
 * H200 prefill of 4096 tokens 11.3k tok/s against 10.1k at 2048, of 32768
 * 5.7k against 5.4k), else 2048; the CPU gains nothing past 512. */
#define DEFAULT_BATCH 512
#define DEFAULT_BATCH_GPU 2048
#define DEFAULT_BATCH_GPU_ROOMY 4096
#define ROOMY_FREE_BYTES (16ull << 30)
#define DEFAULT_PAGE_SIZE 16

int lg_kv_dtype(laguna_kv_type kv) {
    static const lg_dtype dtypes[] = {LG_DTYPE_F32, LG_DTYPE_F32, LG_DTYPE_F16, LG_DTYPE_BF16, LG_DTYPE_Q8_0};
    return kv != LAGUNA_KV_AUTO && (unsigned)kv <= LAGUNA_KV_Q8_0 ? (int)dtypes[kv] : -1;
}

/* The device backend the model (its first rank) runs on, or NULL on the CPU. */
static lg_backend *gpu_backend(const laguna_model *model) {
    if (model && model->group) model = lg_group_rank(model->group, 0);
    return model && model->backend && !model->backend->ops->host_memory ? model->backend : NULL;
}

static bool model_on_gpu(const laguna_model *model) { return gpu_backend(model) != NULL; }

static int default_batch(const laguna_model *model) {
    lg_backend *be = gpu_backend(model);
    if (!be) return DEFAULT_BATCH;
    bool roomy = be->ops->memory_free && be->ops->memory_free(be) >= ROOMY_FREE_BYTES;
    return roomy ? DEFAULT_BATCH_GPU_ROOMY : DEFAULT_BATCH_GPU;
}

/* On a GPU bf16: half the cache's memory and bytes read, at the same decode
 * speed as f32 since the chunked attention kernel (XS.2 on the H200, decode
 * after 1024: 124.7 vs 125.1 tok/s); keys and values round to bf16 as
 * transformers' bf16 cache rounds them. On the CPU f32, exact. */
laguna_kv_type laguna_model_default_kv_type(const laguna_model *model) {
    return model_on_gpu(model) ? LAGUNA_KV_BF16 : LAGUNA_KV_F32;
}

static laguna_status alloc_step(laguna_context *x, laguna_error *err) {
    size_t n = (size_t)x->n_batch, L = (size_t)x->model->cfg.n_layers;
    x->tokens = malloc(sizeof(int32_t) * n);
    x->pos = malloc(sizeof(int32_t) * n);
    x->logit_rows = malloc(sizeof(int32_t) * n);
    x->argmax_rows = malloc(sizeof(int32_t) * n);
    x->step_argmax = malloc(sizeof(int32_t) * n);
    x->fresh_from = malloc(sizeof(int32_t) * n);
    x->fresh_at = malloc(sizeof(int32_t) * n);
    x->fresh_rows = malloc(sizeof(int32_t) * n);
    x->seq_rows = malloc(sizeof(int32_t) * (size_t)x->n_seq_max);
    x->seq_first = malloc(sizeof(int32_t) * (size_t)x->n_seq_max);
    x->seq_at = malloc(sizeof(int32_t) * (size_t)x->n_seq_max);
    x->slots = malloc(sizeof(int32_t) * n * L);
    x->tables = malloc(sizeof(*x->tables) * n * L);
    x->seqs = calloc((size_t)x->n_seq_max, sizeof *x->seqs);
    x->seq_used = calloc((size_t)x->n_seq_max, sizeof *x->seq_used);
    if (x->tokens && x->pos && x->logit_rows && x->argmax_rows && x->step_argmax && x->fresh_from &&
        x->fresh_at && x->fresh_rows && x->seq_rows && x->seq_first && x->seq_at && x->slots &&
        x->tables && x->seqs && x->seq_used)
        return LAGUNA_OK;
    return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for a context");
}

/* The options with their defaults filled in and checked; keep (positions
 * sliding layers hold behind the end), a page's bytes and the pages one
 * sequence can hold at once. */
static laguna_status resolve_options(const laguna_model *model, const laguna_context_options *o, laguna_context_options *out,
                                     int *keep, size_t *page_bytes, int64_t *seq_pages, laguna_error *err) {
    if (!model) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no model");
    const lg_config *c = &model->cfg;
    laguna_context_options d = o ? *o : (laguna_context_options){0};
    if (!d.n_seq_max) d.n_seq_max = 1;
    if (!d.n_ctx) d.n_ctx = c->max_position_embeddings;
    if (!d.n_batch) d.n_batch = default_batch(model);
    if (!d.kv_page_size) d.kv_page_size = DEFAULT_PAGE_SIZE;
    if (d.n_seq_max < 1 || d.n_seq_max > 65536)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "n_seq_max %d is outside [1, 65536]", d.n_seq_max);
    if (d.n_ctx < 1 || d.n_ctx > c->max_position_embeddings)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "context length %d is outside [1, max_position_embeddings = %d]", d.n_ctx,
                       c->max_position_embeddings);
    if (d.n_batch < 1 || d.n_batch > 65536) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "batch size %d is outside [1, 65536]", d.n_batch);
    if (d.n_rollback < 0 || d.n_rollback > d.n_ctx)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "rollback %d is outside [0, context length %d]", d.n_rollback, d.n_ctx);
    if (d.kv_type == LAGUNA_KV_AUTO) d.kv_type = laguna_model_default_kv_type(model);
    if (d.kv_page_size < 1 || d.kv_page_size > 4096)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "KV page size %d is outside [1, 4096]", d.kv_page_size);
    int kv_dtype = lg_kv_dtype(d.kv_type);
    if (kv_dtype < 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "unknown KV cache type %d", (int)d.kv_type);
    *keep = lg_config_has_sliding(c) ? c->sliding_window + d.n_rollback : d.n_ctx;
    *page_bytes = lg_kv_page_bytes(c, (lg_dtype)kv_dtype, d.kv_page_size);
    *seq_pages = lg_kv_pages_for_sequence(c, d.kv_page_size, d.n_ctx, *keep, d.n_batch);
    *out = d;
    return LAGUNA_OK;
}

laguna_status laguna_context_kv_bytes_for(const laguna_model *model, const laguna_context_options *options, int n_seqs,
                                          size_t *bytes, size_t *page_bytes, laguna_error *err) {
    /* several devices: kv_bytes sizes each rank's pool, so a rank's numbers (all alike) */
    if (model && model->group) return laguna_context_kv_bytes_for(lg_group_rank(model->group, 0), options, n_seqs, bytes, page_bytes, err);
    laguna_context_options d;
    int keep;
    size_t pb;
    int64_t seq_pages;
    laguna_status st = resolve_options(model, options, &d, &keep, &pb, &seq_pages, err);
    if (st) return st;
    if (n_seqs < 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "%d sequences", n_seqs);
    if (bytes) *bytes = (size_t)n_seqs * (size_t)seq_pages * pb;
    if (page_bytes) *page_bytes = pb;
    return LAGUNA_OK;
}

laguna_status laguna_context_create(laguna_model *model, const laguna_context_options *o, laguna_context **out,
                                    laguna_error *err) {
    *out = NULL;
    laguna_context_options d;
    int keep;
    size_t page_bytes;
    int64_t seq_pages;
    laguna_status st = resolve_options(model, o, &d, &keep, &page_bytes, &seq_pages, err);
    if (st) return st;
    const lg_config *c = &model->cfg;
    int kv_dtype = lg_kv_dtype(d.kv_type);

    laguna_context *x = calloc(1, sizeof *x);
    if (!x) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    x->model = model;
    x->n_seq_max = d.n_seq_max;
    x->n_ctx = d.n_ctx;
    x->n_batch = d.n_batch;
    if (model->group) { /* several devices: the ranks' contexts do the work */
        st = lg_group_context_create(x, &d, err);
        if (st) {
            if (x->ranks) lg_group_context_free(x);
            free(x);
        } else
            *out = x;
        return st;
    }
    x->keep = keep;
    int64_t pages = d.kv_bytes ? (int64_t)(d.kv_bytes / (page_bytes ? page_bytes : 1)) : (int64_t)d.n_seq_max * seq_pages;
    if (pages < 1 || pages > INT32_MAX / d.kv_page_size)
        st = lg_fail(err, LAGUNA_ERR_ARGUMENT, "a KV pool of %lld pages of %zu bytes is outside [1 page, 2^31 positions]",
                     (long long)pages, page_bytes);
    if (!st) st = lg_kv_pool_init(&x->pool, model->backend, c, (lg_dtype)kv_dtype, d.kv_page_size, (int)pages, err);
    if (!st) st = alloc_step(x, err);
    if (!st) st = lg_activations_init(&x->act, model, d.n_batch, err);
    if (!st) {
        lg_ctx_sizes sizes = lg_forward_ctx_sizes(model, d.n_ctx);
        x->bc = model->backend->ops->ctx_new(model->backend, &sizes);
        if (!x->bc) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for the %s backend's scratch", model->backend->ops->name);
    }
    if (st) {
        laguna_context_free(x);
        return st;
    }
    *out = x;
    return LAGUNA_OK;
}

void laguna_context_free(laguna_context *x) {
    if (!x) return;
    free(x->queued_call);
    if (x->ranks) {
        lg_group_context_free(x);
        free(x);
        return;
    }
    lg_backend *be = x->model->backend;
    if (x->seqs)
        for (int s = 0; s < x->n_seq_max; s++) lg_kv_seq_clear(&x->seqs[s], &x->pool, x->model->cfg.n_layers);
    lg_kv_pool_free(&x->pool, be);
    lg_activations_free(&x->act, be);
    if (x->bc) be->ops->ctx_free(x->bc);
    void *ptrs[] = {x->tokens,     x->pos,        x->slots,       x->logit_rows,
                    x->fresh_from, x->fresh_at,   x->fresh_rows,  x->seq_rows,
                    x->seq_first,  x->seq_at,     x->tables,      x->seqs,
                    x->seq_used,   x->page_marks, x->argmax_rows, x->step_argmax};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) free(ptrs[i]);
    free(x);
}

static bool valid_seq(const laguna_context *x, int seq) { return seq >= 0 && seq < x->n_seq_max && x->seq_used[seq]; }

static laguna_status free_slot(laguna_context *x, int *seq, laguna_error *err) {
    for (int s = 0; s < x->n_seq_max; s++)
        if (!x->seq_used[s]) {
            *seq = s;
            return LAGUNA_OK;
        }
    return lg_fail(err, LAGUNA_ERR_CONTEXT, "all %d sequences of the context are in use", x->n_seq_max);
}

/* Several devices: sequence calls go to every rank's context alike (they
 * fail alike, before changing anything), so ids and pages stay in step. */
static int n_ranks(const laguna_context *x) { return lg_group_size(x->model->group); }

laguna_status laguna_seq_add(laguna_context *x, int *seq, laguna_error *err) {
    laguna_status st = LAGUNA_OK;
    for (int r = 0; x->ranks && r < n_ranks(x) && !st; r++) st = laguna_seq_add(x->ranks[r], seq, err);
    if (x->ranks) return st;
    st = free_slot(x, seq, err);
    if (st) return st;
    lg_kv_seq_init(&x->seqs[*seq]);
    x->seq_used[*seq] = true;
    return LAGUNA_OK;
}

laguna_status laguna_seq_fork(laguna_context *x, int parent, int *child, laguna_error *err) {
    if (x->ranks) {
        laguna_status st = LAGUNA_OK;
        for (int r = 0; r < n_ranks(x) && !st; r++) st = laguna_seq_fork(x->ranks[r], parent, child, err);
        return st;
    }
    if (!valid_seq(x, parent)) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no sequence %d to fork", parent);
    laguna_status st = free_slot(x, child, err);
    if (!st) st = lg_kv_seq_fork(&x->seqs[*child], &x->seqs[parent], &x->pool, x->model->cfg.n_layers, err);
    if (!st) x->seq_used[*child] = true;
    return st;
}

void laguna_seq_remove(laguna_context *x, int seq) {
    if (x->ranks) {
        for (int r = 0; r < n_ranks(x); r++) laguna_seq_remove(x->ranks[r], seq);
        return;
    }
    if (!valid_seq(x, seq)) return;
    lg_kv_seq_clear(&x->seqs[seq], &x->pool, x->model->cfg.n_layers);
    x->seq_used[seq] = false;
}

laguna_status laguna_seq_truncate(laguna_context *x, int seq, int n_keep, laguna_error *err) {
    if (x->ranks) {
        laguna_status st = LAGUNA_OK;
        for (int r = 0; r < n_ranks(x) && !st; r++) st = laguna_seq_truncate(x->ranks[r], seq, n_keep, err);
        return st;
    }
    if (!valid_seq(x, seq)) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no sequence %d", seq);
    lg_kv_seq *s = &x->seqs[seq];
    if (n_keep < 0 || n_keep > s->n_pos) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "cannot keep %d positions of %d", n_keep, s->n_pos);
    if (!lg_kv_seq_can_truncate(s, &x->model->cfg, n_keep))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                       "cannot take back %d positions: sliding layers no longer hold the window before position %d "
                       "(raise the session's n_rollback)",
                       s->n_pos - n_keep, n_keep);
    lg_kv_seq_truncate(s, &x->pool, x->model->cfg.n_layers, n_keep);
    return LAGUNA_OK;
}

int laguna_seq_length(const laguna_context *x, int seq) {
    if (x->ranks) return laguna_seq_length(x->ranks[0], seq);
    return valid_seq(x, seq) ? x->seqs[seq].n_pos : -1;
}

/* On several devices: rank 0's pool (every rank holds as many pages, of its own KV heads). */
void laguna_context_kv_pages(const laguna_context *x, int *used, int *total, size_t *page_bytes) {
    if (x->ranks) {
        laguna_context_kv_pages(x->ranks[0], used, total, page_bytes);
        return;
    }
    if (used) *used = lg_kv_pool_used(&x->pool);
    if (total) *total = x->pool.n_pages;
    if (page_bytes) *page_bytes = x->pool.view.page_bytes;
}

int laguna_seqs_exclusive_pages(laguna_context *x, const int *seqs, int n) {
    if (x->ranks) return laguna_seqs_exclusive_pages(x->ranks[0], seqs, n); /* every rank holds as many pages */
    int L = x->model->cfg.n_layers, count = 0;
    if (!x->page_marks && !(x->page_marks = calloc((size_t)x->pool.n_pages, sizeof *x->page_marks))) return -1;
    /* marks[page] counts the given sequences holding it; the page goes back
     * with them when that is all its holders. The second pass clears. */
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < n; k++) {
            if (!valid_seq(x, seqs[k]) || !x->seqs[seqs[k]].tables) continue;
            for (int l = 0; l < L; l++) {
                const lg_page_table *t = &x->seqs[seqs[k]].tables[l];
                for (int i = 0; i < t->n; i++) {
                    int32_t page = t->pages[i];
                    if (page < 0) continue;
                    if (pass == 0) {
                        x->page_marks[page]++;
                    } else {
                        count += x->page_marks[page] && x->page_marks[page] == x->pool.refs[page];
                        x->page_marks[page] = 0;
                    }
                }
            }
        }
    return count;
}

void laguna_context_set_observer(laguna_context *x, const laguna_observer *observer) {
    if (x->ranks) x = x->ranks[0]; /* every rank sees the same residual stream and routing */
    x->has_observer = observer != NULL;
    if (observer) x->observer = *observer;
}

/* The row of the step before that token names (LAGUNA_TOKEN_OF_ROW(j)), when
 * it is one of its n_rows rows; else -1. */
static int named_row(int32_t token, int n_rows) {
    int j = LAGUNA_TOKEN_OF_ROW(0) - token;
    return token < 0 && j >= 0 && j < n_rows ? j : -1;
}

/* Checks every row (a token may name one of the named_rows rows of the step
 * before); seq_rows[s] counts each sequence's rows. */
static laguna_status check_rows(laguna_context *x, const laguna_batch_row *rows, int n, int named_rows,
                                laguna_error *err) {
    int V = x->model->cfg.vocab_size;
    memset(x->seq_rows, 0, sizeof(int32_t) * (size_t)x->n_seq_max);
    for (int i = 0; i < n; i++) {
        const laguna_batch_row *r = &rows[i];
        if (!valid_seq(x, r->seq)) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "row %d: no sequence %d", i, r->seq);
        bool named = named_row(r->token, named_rows) >= 0;
        if (!named && r->token < 0 && named_rows > 0)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                           "token %d at index %d is neither in the vocabulary [0, %d) nor LAGUNA_TOKEN_OF_ROW(j) for "
                           "one of the %d rows of the step queued before",
                           r->token, i, V, named_rows);
        if (!named && (r->token < 0 || r->token >= V))
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "token %d at index %d is outside the vocabulary [0, %d)%s", r->token,
                           i, V, r->token < 0 ? " (LAGUNA_TOKEN_OF_ROW names rows of a queued step only)" : "");
        int expect = x->seqs[r->seq].n_pos + x->seq_rows[r->seq];
        if (r->pos != expect)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "row %d: sequence %d's next position is %d, not %d", i, r->seq, expect, r->pos);
        if (r->pos >= x->n_ctx)
            return lg_fail(err, LAGUNA_ERR_CONTEXT, "sequence %d is full: position %d is past the context length %d", r->seq,
                           r->pos, x->n_ctx);
        x->seq_rows[r->seq]++;
    }
    int need = 0, L = x->model->cfg.n_layers;
    for (int s = 0; s < x->n_seq_max; s++)
        if (x->seq_rows[s]) need += lg_kv_seq_pages_needed(&x->seqs[s], &x->pool, L, x->seqs[s].n_pos, x->seq_rows[s]);
    if (need > x->pool.n_free)
        return lg_fail(err, LAGUNA_ERR_CONTEXT, "the KV cache is full: this batch needs %d more pages, %d of %d are free", need,
                       x->pool.n_free, x->pool.n_pages);
    return LAGUNA_OK;
}

/* Where each row of a step finds the positions its sequence computes in
 * the same step: fresh_rows lists each sequence's rows in position order. */
static void index_fresh_rows(laguna_context *x, const laguna_batch_row *rows, int m) {
    for (int i = 0; i < m; i++) x->seq_at[rows[i].seq] = -1;
    for (int i = 0, at = 0; i < m; i++) {
        int s = rows[i].seq;
        if (x->seq_at[s] < 0) {
            int count = 0;
            for (int j = i; j < m; j++) count += rows[j].seq == s;
            x->seq_at[s] = at;
            x->seq_first[s] = rows[i].pos;
            at += count;
        }
        x->fresh_from[i] = x->seq_first[s];
        x->fresh_at[i] = x->seq_at[s];
        x->fresh_rows[x->seq_at[s] + rows[i].pos - x->seq_first[s]] = i;
    }
}

/* Forward steps over the call's rows: the pages are reserved, positions
 * checked. A row wanting its logits gets its greedy token (if it wants that
 * too) from them on the host; a row wanting only its token has it found in
 * the forward pass (on the device, when the backend can). */
static void run_steps(laguna_context *x, const lg_decode_call *call) {
    const lg_config *c = &x->model->cfg;
    size_t V = (size_t)c->vocab_size;
    const laguna_observer *obs = x->has_observer ? &x->observer : NULL;
    float *logits = call->logits;
    for (int done = 0; done < call->n;) {
        int m = call->n - done < x->n_batch ? call->n - done : x->n_batch, n_logits = 0,
            n_argmax = 0;
        const laguna_batch_row *rows = call->rows + done;
        for (int i = 0; i < m; i++) {
            const laguna_batch_row *r = &rows[i];
            const lg_kv_seq *s = &x->seqs[r->seq];
            int want = lg_row_wants(call, done + i);
            x->tokens[i] = r->token;
            x->pos[i] = r->pos;
            if (want & LAGUNA_ROW_LOGITS)
                x->logit_rows[n_logits++] = i;
            else if (want & LAGUNA_ROW_ARGMAX)
                x->argmax_rows[n_argmax++] = i;
            for (int l = 0; l < c->n_layers; l++) {
                x->slots[(size_t)l * m + i] = lg_kv_seq_slot(s, &x->pool, l, r->pos);
                x->tables[(size_t)l * m + i] = s->tables[l].pages;
            }
        }
        index_fresh_rows(x, rows, m);
        /* a queued call's rows all want their token alone: the backend puts them straight in argmax */
        int32_t *step_argmax = call->queued ? call->argmax + done : x->step_argmax;
        lg_step step = {m, x->tokens, x->pos, x->slots, x->tables, x->fresh_from, x->fresh_at,
                        x->fresh_rows, n_logits, x->logit_rows, logits, n_argmax, x->argmax_rows,
                        step_argmax};
        lg_forward(x->model, x->bc, &x->act, &x->pool.view, &step, obs);
        if (call->argmax && !call->queued) {
            int32_t *out = call->argmax + done;
            for (int i = 0; i < m; i++)
                out[i] = -1;
            for (int k = 0; k < n_argmax; k++)
                out[x->argmax_rows[k]] = x->step_argmax[k];
            for (int k = 0; k < n_logits; k++)
                if (lg_row_wants(call, done + x->logit_rows[k]) & LAGUNA_ROW_ARGMAX)
                    out[x->logit_rows[k]] = lg_argmax_f32(logits + (size_t)k * V, (int)V);
        }
        if (logits) logits += (size_t)n_logits * V;
        done += m;
    }
}

/* Checks what each row wants against the buffers given. */
static laguna_status check_wants(const lg_decode_call *call, laguna_error *err) {
    for (int i = 0; i < call->n; i++) {
        int want = lg_row_wants(call, i);
        if (want & ~(LAGUNA_ROW_LOGITS | LAGUNA_ROW_ARGMAX))
            return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                           "row %d: logits = %d is not a combination of LAGUNA_ROW_LOGITS (1) and "
                           "LAGUNA_ROW_ARGMAX (2)",
                           i, call->rows[i].logits);
        if ((want & LAGUNA_ROW_LOGITS) && !call->logits)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                           "row %d wants logits but no logits buffer was given", i);
        if ((want & LAGUNA_ROW_ARGMAX) && !call->argmax)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                           "row %d wants its greedy token but no argmax buffer was given", i);
    }
    return LAGUNA_OK;
}

laguna_status lg_context_decode_prepare(laguna_context *x, const lg_decode_call *call,
                                        laguna_error *err) {
    if (call->n <= 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no rows to decode (empty batch)");
    if (!call->rows) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "rows is NULL");
    laguna_status st = check_rows(x, call->rows, call->n, call->named_rows, err);
    if (!st) st = check_wants(call, err);
    if (st) return st;
    const lg_config *c = &x->model->cfg;
    for (int s = 0; s < x->n_seq_max; s++)
        if (x->seq_rows[s] &&
            (st = lg_kv_seq_reserve(&x->seqs[s], &x->pool, x->bc, c->n_layers, x->seqs[s].n_pos, x->seq_rows[s], err)))
            return st; /* out of memory for a page table: the pages taken stay with their sequences, unused */
    return LAGUNA_OK;
}

laguna_status lg_context_decode_run(laguna_context *x, const lg_decode_call *call,
                                    laguna_error *err) {
    const lg_config *c = &x->model->cfg;
    const lg_backend_ops *ops = x->model->backend->ops;
    bool queue = call->queued; /* queues_on_device() said so */
    if (queue) ops->queue_argmax(x->bc, true);
    run_steps(x, call);
    if (queue) ops->queue_argmax(x->bc, false);
    int keep = x->keep + call->keep_more;
    for (int s = 0; s < x->n_seq_max; s++)
        if (x->seq_rows[s]) lg_kv_seq_advance(&x->seqs[s], &x->pool, c, x->seqs[s].n_pos + x->seq_rows[s], keep);
    if (queue) return LAGUNA_OK; /* laguna_context_wait reports the step */
    return ops->sync ? ops->sync(x->bc, err) : LAGUNA_OK;
}

static laguna_status decode(laguna_context *x, const lg_decode_call *call, laguna_error *err) {
    if (x->ranks) return lg_group_decode(x, call, err);
    laguna_status st = lg_context_decode_prepare(x, call, err);
    return st ? st : lg_context_decode_run(x, call, err);
}

laguna_status laguna_context_wait(laguna_context *x, laguna_error *err) {
    if (!x->n_queued) return LAGUNA_OK;
    bool device = x->queued_device[x->queued_head];
    x->queued_head ^= 1;
    x->n_queued--;
    /* a step that ran at once (no queue on the backend, several devices, watched) has its tokens */
    return device ? x->model->backend->ops->wait_step(x->bc, err) : LAGUNA_OK;
}

/* The backend's outstanding steps collected (their tokens in their argmax),
 * while they stay outstanding for the caller's waits. */
static laguna_status collect_device_steps(laguna_context *x, laguna_error *err) {
    laguna_status st = LAGUNA_OK;
    for (int i = 0; i < x->n_queued; i++) {
        int k = (x->queued_head + i) % 2;
        if (!x->queued_device[k]) continue;
        x->queued_device[k] = false;
        laguna_status s = x->model->backend->ops->wait_step(x->bc, st ? NULL : err);
        if (!st) st = s;
    }
    return st;
}

/* Every outstanding queued step collected (the first failure reported). */
static laguna_status wait_all(laguna_context *x, laguna_error *err) {
    laguna_status st = LAGUNA_OK;
    while (x->n_queued) {
        laguna_status s = laguna_context_wait(x, st ? NULL : err);
        if (!st) st = s;
    }
    return st;
}

/* A plain (unqueued) decode call: queued steps first, and no queued step
 * before the next for LAGUNA_TOKEN_OF_ROW to name. */
static laguna_status decode_now(laguna_context *x, const lg_decode_call *call, laguna_error *err) {
    laguna_status st = wait_all(x, err);
    x->queued_rows = 0;
    return st ? st : decode(x, call, err);
}

laguna_status laguna_context_decode(laguna_context *x, const laguna_batch_row *rows, int n, float *logits,
                                    laguna_error *err) {
    return decode_now(x, &(lg_decode_call){rows, n, logits, NULL, false, 0, false, 0}, err);
}

laguna_status laguna_context_decode_argmax(laguna_context *x, const laguna_batch_row *rows, int n,
                                           float *logits, int32_t *argmax, laguna_error *err) {
    return decode_now(x, &(lg_decode_call){rows, n, logits, argmax, true, 0, false, 0}, err);
}

/* The queued call's own checks (the rows' as a decode's follow). */
static laguna_status check_queued(const laguna_context *x, const laguna_batch_row *rows, int n, const int32_t *argmax,
                                  laguna_error *err) {
    if (x->n_queued >= 2)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "two queued steps are outstanding: laguna_context_wait for one first");
    if (n <= 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no rows to decode (empty batch)");
    if (!rows || !argmax) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "%s is NULL", rows ? "argmax" : "rows");
    if (n > x->n_batch)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "a queued step takes at most n_batch (%d) rows, not %d", x->n_batch, n);
    for (int i = 0; i < n; i++)
        if (rows[i].logits != LAGUNA_ROW_ARGMAX)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "row %d: a queued step's rows want LAGUNA_ROW_ARGMAX alone, not %d", i,
                           rows[i].logits);
    return LAGUNA_OK;
}

/* The step's rows with the tokens they name put in from the step before's
 * argmax (which that step has filled; a token naming no row stays, for the
 * rows' checks to refuse); NULL when out of memory. */
static const laguna_batch_row *named_tokens_put_in(laguna_context *x, const laguna_batch_row *rows, int n) {
    if (!x->queued_call && !(x->queued_call = malloc(sizeof *x->queued_call * (size_t)x->n_batch))) return NULL;
    for (int i = 0; i < n; i++) {
        x->queued_call[i] = rows[i];
        int j = named_row(rows[i].token, x->queued_rows);
        if (j >= 0) x->queued_call[i].token = x->queued_argmax[j];
    }
    return x->queued_call;
}

/* Whether the backend runs this context's queued steps while the host goes
 * on; else a queued call runs at once, its named tokens put in on the host. */
static bool queues_on_device(const laguna_context *x) {
    static int allowed = -1; /* LAGUNA_QUEUED_STEPS=0: every step at once (measuring) */
    if (allowed < 0) allowed = !(getenv("LAGUNA_QUEUED_STEPS") && getenv("LAGUNA_QUEUED_STEPS")[0] == '0');
    const lg_backend_ops *ops = x->model->backend->ops;
    return allowed && !x->ranks && !x->has_observer && ops->queue_argmax && ops->wait_step;
}

laguna_status laguna_context_decode_argmax_queued(laguna_context *x, const laguna_batch_row *rows, int n,
                                                  int32_t *argmax, laguna_error *err) {
    laguna_status st = check_queued(x, rows, n, argmax, err);
    if (st) return st;
    /* one position more behind the window, so the step can be taken back (a step of n_batch >= 2 rows fits
     * in the page budget's slack) */
    int keep_more = x->n_batch >= 2 ? 1 : 0;
    lg_decode_call call = {rows, n, NULL, argmax, true, x->queued_rows, true, keep_more};
    if (!queues_on_device(x)) { /* run now, the named tokens from the step before, which has run */
        call.queued = false;
        if ((st = collect_device_steps(x, err))) return st;
        if (!(call.rows = named_tokens_put_in(x, rows, n)))
            return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for a queued step");
    }
    if ((st = decode(x, &call, err))) return st;
    x->queued_device[(x->queued_head + x->n_queued) % 2] = call.queued;
    x->n_queued++;
    x->queued_rows = n;
    x->queued_argmax = argmax;
    return LAGUNA_OK;
}
