/* The server's continuous-batching scheduler (see scheduler.h). */
#include "server/scheduler.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/threadpool.h"
#include "runtime/draft_lookup.h"
#include "runtime/sampler.h"

typedef struct {
    int seq;
    int32_t *tokens;
    int n;
    uint64_t last_use;
} cache_entry;

struct lg_sched {
    laguna_model *model;
    const laguna_tokenizer *tok;
    laguna_context *ctx;
    lg_sched_options opt;
    int n_ctx, vocab;
    const int32_t *eos;
    int n_eos;
    lg_token_bytes *token_bytes; /* the vocabulary's bytes, made for the first structured output */

    pthread_t thread;
    pthread_mutex_t mu; /* queue, stop flag, stats */
    pthread_cond_t cv;
    bool stop, joined;
    lg_job *queue_head, *queue_tail;
    int n_queued;
    int n_active; /* jobs admitted and not yet ended (the thread's n_running, under mu) */
    lg_sched_stats stats;

    /* the scheduler thread's own */
    lg_job **running;
    int n_running;
    cache_entry *cache;
    int n_cache;
    int *cache_ids;   /* scratch: the cached sequences' ids */
    int cache_budget; /* pages only cached sequences may hold */
    uint64_t clock;
    laguna_batch_row *rows;
    lg_job **row_job; /* job of each row that wants a token chosen, in order */
    int *row_of;      /* and that row's index in the batch */
    float *logits;    /* the rows wanting logits, in order */
    int32_t *argmax;  /* [rows]: greedy tokens of the rows asking only for theirs */
    int *n_drafted;   /* [n_parallel]: draft rows after row row_of[k] (draft_lookup) */
    int *n_forced;    /* [n_parallel]: forced rows ending at row row_of[k] (structured output) */
    bool jump_forward; /* forced rows on (LAGUNA_JUMP_FORWARD=0: off, for measuring) */
    /* the token of each row in row_job: drawn from its logits (draw_row[k]),
     * or the device's argmax where draw_row[k] is NULL; with its logprob
     * where the job asks. draw_pool (sample_threads > 1) draws several rows at once. */
    const float **draw_row;
    int32_t *drawn;
    lg_token_logprob *drawn_lp;
    lg_threadpool *draw_pool;

    /* queued steps (greedy rows only): the step the device may still run
     * is slot `ahead`, its row i for job q_job[ahead][i] (NULL: the job ended
     * after the step was queued, the row is ignored); the other slot takes
     * the next step */
    int ahead;                  /* slot of the outstanding step, -1: none */
    int n_ahead;                /* its rows */
    laguna_batch_row *q_rows[2];
    lg_job **q_job[2];
    int32_t *q_argmax[2];
};

double lg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- jobs ------------------------------------------------------------------- */

lg_job *lg_job_new(void) {
    lg_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->seq = -1;
    j->max_tokens = 16;
    j->sampling = laguna_sampler_default_params();
    j->logprobs = -1;
    return j;
}

void lg_job_release(lg_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    free(j->prompt);
    for (int i = 0; i < j->n_stops; i++)
        free(j->stops[i]);
    free(j->stops);
    cJSON_Delete(j->tools);
    lg_grammar_free(j->grammar);
    free(j->grammar);
    lg_output_constraint_free(j->constraint);
    lg_events_free(&j->events);
    lg_events_free(&j->pending);
    lg_logprobs_free(&j->lps);
    lg_logprobs_free(&j->pending_lps);
    free(j->fed);
    laguna_sampler_free(j->sampler);
    lg_chat_parser_free(j->parser);
    laguna_detokenizer_free(j->detok);
    laguna_stop_matcher_free(j->stop);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

int lg_logprobs_add(lg_logprob_list *l, const lg_token_logprob *lp) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 16;
        lg_token_logprob *p = realloc(l->items, nc * sizeof *p);
        if (!p) return -1;
        l->items = p;
        l->cap = nc;
    }
    l->items[l->n++] = *lp;
    return 0;
}

int lg_logprobs_move(lg_logprob_list *dst, lg_logprob_list *src) {
    for (size_t i = 0; i < src->n; i++)
        if (lg_logprobs_add(dst, &src->items[i])) return -1;
    src->n = 0;
    return 0;
}

void lg_logprobs_free(lg_logprob_list *l) {
    free(l->items);
    *l = (lg_logprob_list){0};
}

/* log-softmax of one row of logits at id, and the n_top best entries. */
static void token_logprob(const float *row, int vocab, int32_t id, int n_top,
                          lg_token_logprob *out) {
    float max = row[0];
    for (int v = 1; v < vocab; v++)
        if (row[v] > max) max = row[v];
    double sum = 0;
    for (int v = 0; v < vocab; v++)
        sum += exp((double)row[v] - max);
    float lse = max + (float)log(sum);
    out->id = id;
    out->logprob = row[id] - lse;
    out->n_top = 0;
    for (int v = 0; v < vocab && n_top > 0; v++) { /* insertion into the best n_top */
        if (out->n_top == n_top && row[v] <= row[out->top_id[n_top - 1]]) continue;
        int k = out->n_top < n_top ? out->n_top++ : n_top - 1; /* full: the last one goes */
        while (k > 0 && row[out->top_id[k - 1]] < row[v]) {
            out->top_id[k] = out->top_id[k - 1];
            k--;
        }
        out->top_id[k] = v;
    }
    for (int k = 0; k < out->n_top; k++)
        out->top_logprob[k] = row[out->top_id[k]] - lse;
}

/* Publishes the step's events (and the end, when finish or error is given). */
static void job_publish(lg_job *j, const char *finish, const char *error) {
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->pending.n; i++) {
        lg_event *e = &j->pending.items[i];
        lg_events_add(&j->events, e->kind, e->tool_index, e->text, e->len);
    }
    lg_logprobs_move(&j->lps, &j->pending_lps);
    if (finish || error) {
        j->done = true;
        j->finish_reason = finish;
        if (error) snprintf(j->error, sizeof j->error, "%s", error);
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    lg_events_clear(&j->pending);
}

/* ---- prefix cache ------------------------------------------------------------ */

static void cache_drop(lg_sched *s, int i) {
    laguna_seq_remove(s->ctx, s->cache[i].seq);
    free(s->cache[i].tokens);
    s->cache[i] = s->cache[--s->n_cache];
}

/* Drops the least recently used entry (an eviction). */
static void cache_drop_lru(lg_sched *s) {
    if (!s->n_cache) return;
    int lru = 0;
    for (int i = 1; i < s->n_cache; i++)
        if (s->cache[i].last_use < s->cache[lru].last_use) lru = i;
    cache_drop(s, lru);
    pthread_mutex_lock(&s->mu);
    s->stats.cache_evictions++;
    pthread_mutex_unlock(&s->mu);
}

/* Pages only cached sequences hold: what dropping them all would free. */
static int cache_pages(lg_sched *s) {
    for (int i = 0; i < s->n_cache; i++)
        s->cache_ids[i] = s->cache[i].seq;
    int n = s->n_cache ? laguna_seqs_exclusive_pages(s->ctx, s->cache_ids, s->n_cache) : 0;
    return n < 0 ? INT32_MAX : n; /* out of memory for the count: treat as over budget */
}

/* Evicts least recently used entries until the cache is within its budget.
 * Needed after any change: an entry's pages become its own alone when the
 * running fork that shared them ends. Returns the pages the cache holds. */
static int cache_trim(lg_sched *s) {
    int pages = cache_pages(s);
    while (s->n_cache && pages > s->cache_budget) {
        cache_drop_lru(s);
        pages = cache_pages(s);
    }
    return pages;
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Keeps a finished job's sequence for later prompts (or frees it). */
static void cache_keep(lg_sched *s, lg_job *j) {
    int seq = j->seq;
    j->seq = -1;
    if (s->opt.cache_seqs <= 0 || s->cache_budget <= 0 || j->n_fed <= 0) {
        laguna_seq_remove(s->ctx, seq);
        return;
    }
    /* entries that are a prefix of this one add nothing */
    for (int i = s->n_cache; i-- > 0;)
        if (common_prefix(s->cache[i].tokens, s->cache[i].n, j->fed, j->n_fed) == s->cache[i].n)
            cache_drop(s, i);
    if (s->n_cache == s->opt.cache_seqs) cache_drop_lru(s);
    int32_t *copy = malloc((size_t)j->n_fed * sizeof *copy);
    if (!copy) {
        laguna_seq_remove(s->ctx, seq);
        return;
    }
    memcpy(copy, j->fed, (size_t)j->n_fed * sizeof *copy);
    s->cache[s->n_cache++] = (cache_entry){seq, copy, j->n_fed, ++s->clock};
    cache_trim(s);
}

/* A sequence for a job: a fork of the cached sequence sharing the longest
 * prefix with its prompt (keeping at least the last prompt token to feed),
 * else a new one. Returns the number of prompt tokens reused, or -1. */
static int seq_for_job(lg_sched *s, lg_job *j, laguna_error *err) {
    int best = -1, best_n = 0;
    for (int i = 0; i < s->n_cache; i++) {
        int n = common_prefix(s->cache[i].tokens, s->cache[i].n, j->prompt, j->n_prompt);
        if (n > j->n_prompt - 1) n = j->n_prompt - 1;
        if (n > best_n) best = i, best_n = n;
    }
    if (best >= 0) {
        cache_entry *e = &s->cache[best];
        int child;
        if (!laguna_seq_fork(s->ctx, e->seq, &child, NULL)) {
            if (best_n == e->n || !laguna_seq_truncate(s->ctx, child, best_n, NULL)) {
                e->last_use = ++s->clock;
                j->seq = child;
                return best_n;
            }
            laguna_seq_remove(s->ctx, child); /* the window is gone: compute it all */
        }
    }
    if (laguna_seq_add(s->ctx, &j->seq, NULL)) {
        cache_drop_lru(s);
        if (laguna_seq_add(s->ctx, &j->seq, err)) return -1;
    }
    return 0;
}

/* ---- one job's life in the scheduler ---------------------------------------------- */

/* Structured output: the job's grammar into its constraint; the
 * vocabulary's bytes are worked out for the first such job. */
static int constraint_start(lg_sched *s, lg_job *j, laguna_error *err) {
    if (!s->token_bytes && lg_token_bytes_new(s->tok, s->vocab, &s->token_bytes, err)) return -1;
    laguna_think_tokens think;
    lg_output_constraint_opts o = {s->eos, s->n_eos, -1, j->in_reasoning};
    if (!laguna_think_tokens_find(s->tok, &think, NULL)) o.think_close = think.close_id;
    laguna_status st = lg_output_constraint_new(j->grammar, s->token_bytes, &o, &j->constraint, err);
    free(j->grammar); /* its contents are the constraint's (or freed) */
    j->grammar = NULL;
    return st ? -1 : 0;
}

static int job_start(lg_sched *s, lg_job *j, laguna_error *err) {
    j->fed_cap = j->n_prompt + j->max_tokens + 1;
    j->fed = malloc((size_t)j->fed_cap * sizeof *j->fed);
    if (!j->fed) return -1;
    if (laguna_sampler_create(&j->sampling, s->vocab, &j->sampler, err)) return -1;
    for (int i = 0; i < j->n_prompt; i++)
        laguna_sampler_accept(j->sampler, j->prompt[i]);
    if (j->chat && lg_chat_parser_new(s->tok, j->tools, j->in_reasoning, &j->parser)) return -1;
    if (!j->chat && laguna_detokenizer_new(s->tok, true, &j->detok, err)) return -1;
    if (laguna_stop_matcher_new((const char *const *)j->stops, (size_t)j->n_stops, &j->stop, err))
        return -1;
    if (j->grammar && constraint_start(s, j, err)) return -1;
    int reused = seq_for_job(s, j, err);
    if (reused < 0) return -1;
    memcpy(j->fed, j->prompt, (size_t)reused * sizeof *j->fed);
    j->n_fed = reused;
    j->n_cached = reused;
    pthread_mutex_lock(&s->mu);
    s->stats.cached_tokens += (uint64_t)reused;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void publish_gauges(lg_sched *s);

static void job_end(lg_sched *s, lg_job *j, const char *finish, const char *error) {
    bool cancelled = atomic_load(&j->cancelled);
    if (j->seq >= 0) {
        if (error || cancelled) {
            laguna_seq_remove(s->ctx, j->seq);
            j->seq = -1;
        } else {
            cache_keep(s, j);
        }
    }
    if (!error && !cancelled && j->stop) { /* release text held back by the stop matcher */
        const char *t;
        size_t len;
        if (!laguna_stop_matcher_flush(j->stop, &t, &len, NULL) && len)
            lg_events_add(&j->pending, LG_EV_CONTENT, 0, t, len);
    }
    pthread_mutex_lock(&s->mu);
    if (j->admitted) s->n_active--;
    j->admitted = false;
    if (error) s->stats.failed++;
    if (cancelled) s->stats.cancelled++;
    s->stats.completion_tokens += (uint64_t)j->n_completion;
    pthread_mutex_unlock(&s->mu);
    publish_gauges(s); /* so a client that sees the end sees the pages it left */
    job_publish(j, finish ? finish : "stop", error);
    lg_job_release(j);
}

/* Sends content text through the stop matcher; returns 1 when a stop string completed. */
static int push_content(lg_job *j, const char *t, size_t len) {
    const char *rel;
    size_t rel_len;
    bool stopped = false;
    if (laguna_stop_matcher_push(j->stop, t, len, &rel, &rel_len, &stopped, NULL)) return -1;
    if (rel_len && lg_events_add(&j->pending, LG_EV_CONTENT, 0, rel, rel_len)) return -1;
    if (stopped) j->stop_sequence = laguna_stop_matcher_matched(j->stop);
    return stopped;
}

static int is_eos(const lg_sched *s, int32_t id) {
    for (int i = 0; i < s->n_eos; i++)
        if (s->eos[i] == id) return 1;
    return 0;
}

/* A token was sampled for j: turn it into events. Returns the finish reason
 * when the job ends here, else NULL. */
static const char *job_take_token(lg_sched *s, lg_job *j, int32_t id) {
    if (j->n_completion == 0) {
        j->t_first = lg_now();
        pthread_mutex_lock(&s->mu);
        s->stats.ttft_sum += j->t_first - j->t_submit;
        s->stats.ttft_count++;
        pthread_mutex_unlock(&s->mu);
    }
    j->n_completion++;
    laguna_sampler_accept(j->sampler, id);
    bool eos = !j->ignore_eos && is_eos(s, id);
    int stopped = 0;
    lg_event_list evs = {0};
    if (!eos) {
        if (j->parser) {
            lg_chat_parser_push(j->parser, id, &evs);
        } else {
            const char *t;
            size_t len;
            if (!laguna_detokenizer_push(j->detok, id, &t, &len, NULL) && len)
                lg_events_add(&evs, LG_EV_CONTENT, 0, t, len);
        }
    }
    if (eos || j->n_completion >= j->max_tokens) {
        if (j->parser)
            lg_chat_parser_finish(j->parser, &evs);
        else {
            const char *t;
            size_t len;
            if (!laguna_detokenizer_flush(j->detok, &t, &len, NULL) && len)
                lg_events_add(&evs, LG_EV_CONTENT, 0, t, len);
        }
    }
    for (size_t i = 0; i < evs.n && !stopped; i++) {
        lg_event *e = &evs.items[i];
        if (e->kind == LG_EV_CONTENT) {
            stopped = push_content(j, e->text, e->len) != 0;
        } else {
            const char *t; /* text held back for a stop string goes out before other events */
            size_t len;
            if (!laguna_stop_matcher_flush(j->stop, &t, &len, NULL) && len)
                lg_events_add(&j->pending, LG_EV_CONTENT, 0, t, len);
            lg_events_add(&j->pending, e->kind, e->tool_index, e->text, e->len);
        }
    }
    lg_events_free(&evs);
    bool calls = j->parser && lg_chat_parser_n_calls(j->parser) > 0;
    if (stopped) return "stop";
    if (eos) return calls ? "tool_calls" : "stop";
    /* cut by max_tokens: "length" even with a call open or made (OpenAI's servers say so), so no
     * client runs a call whose arguments were cut short */
    if (j->n_completion >= j->max_tokens) return "length";
    j->next = id;
    return NULL;
}

/* ---- the loop --------------------------------------------------------------------- */

static void drain(lg_sched *s);

static void admit(lg_sched *s) {
    pthread_mutex_lock(&s->mu);
    bool admits = s->queue_head && s->n_running < s->opt.n_parallel;
    pthread_mutex_unlock(&s->mu);
    if (admits) drain(s); /* a queued step holds the running jobs' rows only */
    pthread_mutex_lock(&s->mu);
    while (s->queue_head && s->n_running < s->opt.n_parallel) {
        lg_job *j = s->queue_head;
        s->queue_head = j->next_in_queue;
        if (!s->queue_head) s->queue_tail = NULL;
        s->n_queued--;
        s->n_active++;
        j->admitted = true;
        s->running[s->n_running++] = j;
        j->decoding = false;
        j->seq = -2; /* to be set up below */
    }
    s->stats.running = s->n_running;
    s->stats.queued = s->n_queued;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_running; i++) {
        lg_job *j = s->running[i];
        if (j->seq != -2) continue;
        j->seq = -1;
        laguna_error err = {0};
        if (atomic_load(&j->cancelled) || job_start(s, j, &err)) {
            job_end(s, j, NULL,
                    atomic_load(&j->cancelled) ? NULL
                    : err.message[0]           ? err.message
                                               : "could not start");
            s->running[i--] = s->running[--s->n_running];
        }
    }
}

/* What j's row wants when a token is to be chosen from it: the greedy token
 * alone when the job samples exactly greedily and wants nothing more of the
 * logits (the argmax is then taken on the device), else the logits. */
static int32_t row_wants(const lg_job *j) {
    return laguna_sampler_is_greedy(j->sampler) && j->logprobs < 0 && !j->constraint ? LAGUNA_ROW_ARGMAX
                                                                                     : LAGUNA_ROW_LOGITS;
}

/* ---- queued steps ------------------------------------------------------------------ */

/* Greedy decode rows need not wait for their tokens to come back: the step
 * after is queued naming them (LAGUNA_TOKEN_OF_ROW), so the device runs it
 * while the host turns the first step's tokens into events. A job that ends
 * on a token of the step waited for had a row in the step queued after it:
 * that position is taken back (laguna_seq_truncate) before the sequence goes
 * to the prefix cache, and the row's token ignored. Anything else (a prompt
 * to feed, a sampled or logprobs row, a job admitted or cancelled) first
 * drains the queue, then runs a plain step. */

/* Whether every running job decodes greedily with nothing more asked of its
 * logits (the rows a queued step may hold). */
static bool all_greedy_decoding(const lg_sched *s) {
    if (s->n_running == 0) return false;
    for (int i = 0; i < s->n_running; i++) {
        const lg_job *j = s->running[i];
        if (!j->decoding || row_wants(j) != LAGUNA_ROW_ARGMAX) return false;
    }
    return true;
}

static void end_all(lg_sched *s, const char *error) {
    for (int i = 0; i < s->n_running; i++)
        job_end(s, s->running[i], NULL, error);
    s->n_running = 0;
}

static void unrun(lg_sched *s, const lg_job *j) {
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] == j) s->running[i] = s->running[--s->n_running];
}

static void count_step(lg_sched *s, double seconds) {
    pthread_mutex_lock(&s->mu);
    s->stats.decode_seconds += seconds;
    s->stats.steps++;
    pthread_mutex_unlock(&s->mu);
}

/* Keeps the first n_keep positions of j's sequence (j->n_fed = n_keep):
 * taking back rows of a step that the job will not use. Should the
 * sequence refuse (it should not: a queued step and the drafts stay within
 * n_rollback), it is removed rather than cached with positions its tokens
 * do not say, and false is returned. */
static bool take_back(lg_sched *s, lg_job *j, int n_keep) {
    j->n_fed = n_keep;
    if (!laguna_seq_truncate(s->ctx, j->seq, n_keep, NULL)) return true;
    laguna_seq_remove(s->ctx, j->seq);
    j->seq = -1;
    return false;
}

/* Queues a step into slot `slot`: with a step ahead, a row for each of its
 * live rows' jobs naming that row's token; else the running jobs' known next
 * tokens. */
static laguna_status queue_rows(lg_sched *s, int slot, laguna_error *err) {
    bool named = s->ahead >= 0;
    int n = 0, from = named ? s->n_ahead : s->n_running;
    for (int r = 0; r < from; r++) {
        lg_job *j = named ? s->q_job[s->ahead][r] : s->running[r];
        if (!j) continue;
        int32_t token = named ? LAGUNA_TOKEN_OF_ROW(r) : j->next;
        s->q_rows[slot][n] = (laguna_batch_row){token, j->n_fed, j->seq, LAGUNA_ROW_ARGMAX};
        s->q_job[slot][n++] = j;
    }
    laguna_status st = laguna_context_decode_argmax_queued(s->ctx, s->q_rows[slot], n, s->q_argmax[slot], err);
    if (st) return st;
    if (!named) /* the rows' tokens are in the sequences now */
        for (int i = 0; i < n; i++) s->q_job[slot][i]->fed[s->q_job[slot][i]->n_fed++] = s->q_rows[slot][i].token;
    return LAGUNA_OK;
}

/* Waits for the step ahead and hands each live row's token to its job. With
 * `next` queued after it (a slot, else -1), a job that goes on feeds that
 * token there; one that ends takes back the position its row in `next` was
 * given. Returns false when the device failed (every job ended). */
static bool collect_ahead(lg_sched *s, int next, int n_next) {
    laguna_error err = {0};
    double t0 = lg_now();
    laguna_status st = laguna_context_wait(s->ctx, &err);
    count_step(s, lg_now() - t0);
    int slot = s->ahead, n = s->n_ahead;
    s->ahead = -1, s->n_ahead = 0;
    if (st) {
        if (next >= 0) laguna_context_wait(s->ctx, NULL);
        end_all(s, err.message);
        return false;
    }
    for (int r = 0; r < n; r++) {
        lg_job *j = s->q_job[slot][r];
        if (!j) continue;
        int32_t id = s->q_argmax[slot][r];
        const char *finish = job_take_token(s, j, id);
        if (!finish) {
            if (next >= 0) j->fed[j->n_fed++] = id;
            job_publish(j, NULL, NULL);
            continue;
        }
        if (next >= 0) {
            for (int i = 0; i < n_next; i++)
                if (s->q_job[next][i] == j) s->q_job[next][i] = NULL;
            take_back(s, j, j->n_fed); /* its row in `next` */
        }
        unrun(s, j);
        job_end(s, j, finish, NULL);
    }
    return true;
}

/* Collects the step ahead, if any, with nothing queued after it. */
static void drain(lg_sched *s) {
    if (s->ahead >= 0) collect_ahead(s, -1, 0);
}

/* A step of greedy rows queued instead of run: the next one after the step
 * ahead (then that one is collected), or the first. False when it could not
 * be queued (the plain step then runs, after draining). */
static bool queued_step(lg_sched *s) {
    if (s->opt.draft_lookup > 0 || !all_greedy_decoding(s)) return false;
    int slot = s->ahead >= 0 ? 1 - s->ahead : 0;
    if (s->ahead >= 0) {
        int live = 0; /* the same jobs as the step ahead (none admitted since: admit drains) */
        for (int r = 0; r < s->n_ahead; r++) live += s->q_job[s->ahead][r] != NULL;
        if (live != s->n_running || queue_rows(s, slot, NULL)) return false;
        int n = s->n_running;
        if (!collect_ahead(s, slot, n)) return true;
        s->ahead = slot, s->n_ahead = n;
        return true;
    }
    if (queue_rows(s, slot, NULL)) return false;
    s->ahead = slot, s->n_ahead = s->n_running;
    return true;
}

/* Whether row k of the step (row_job[k]) reports its token's logprob. */
static bool wants_logprob(const lg_sched *s, int k) {
    const lg_job *j = s->row_job[k];
    return s->draw_row[k] && j->logprobs >= 0 && s->drawn[k] >= 0 && (j->ignore_eos || !is_eos(s, s->drawn[k]));
}

/* Row k's token (and logprob): a task of draw_pool, or called in turn. Each
 * job has its own sampler, so rows of different jobs draw at once. */
static void draw_task(void *ctx, int k, int thread) {
    lg_sched *s = ctx;
    const float *row = s->draw_row[k];
    if (!row) {
        s->drawn[k] = s->argmax[s->row_of[k]];
        return;
    }
    lg_job *j = s->row_job[k];
    const uint64_t *allowed = NULL; /* structured output: the tokens that continue the answer */
    if (j->constraint && lg_output_constraint_allowed(j->constraint, &allowed, &j->draw_error)) {
        s->drawn[k] = -1;
        return;
    }
    s->drawn[k] = lg_sampler_sample_allowed(j->sampler, row, allowed);
    if (s->drawn[k] < 0) snprintf(j->draw_error.message, sizeof j->draw_error.message, "no token could be chosen");
    if (wants_logprob(s, k)) token_logprob(row, s->vocab, s->drawn[k], j->logprobs, &s->drawn_lp[k]);
}

/* ---- drafts (draft_lookup) -------------------------------------------------------- */

/* Rows drafting j's next tokens after its row (j->next at j->n_fed), when
 * it decodes greedily: up to draft_lookup tokens by prompt lookup, within
 * its token budget and the context; each row asks for its greedy
 * successor. Returns how many (0: none). */
static int draft_rows(lg_sched *s, const lg_job *j, laguna_batch_row *out) {
    int k = s->opt.draft_lookup;
    if (k <= 0 || row_wants(j) != LAGUNA_ROW_ARGMAX) return 0;
    if (k > j->max_tokens - j->n_completion - 1) k = j->max_tokens - j->n_completion - 1;
    if (k > s->n_ctx - j->n_fed - 1) k = s->n_ctx - j->n_fed - 1;
    int32_t draft[LAGUNA_DRAFT_LOOKUP_MAX];
    int m = k > 0 ? lg_draft_lookup(j->fed, j->n_fed, j->next, k, draft) : 0;
    for (int i = 0; i < m; i++)
        out[i] = (laguna_batch_row){draft[i], j->n_fed + 1 + i, j->seq, LAGUNA_ROW_ARGMAX};
    return m;
}

/* take_drafts' and take_forced's answer when tokens fed ahead could not be
 * taken back (n_rollback covers them, so it should not happen): the job
 * ends with an error. */
static const char TAKE_BACK_STUCK[] = "tokens fed ahead could not be taken back";

/* j's step had m draft rows after its row r (all of them now in j->fed and
 * its sequence): keeps the run the model agreed with and takes back the
 * rest, then takes the kept drafts as tokens in turn and the model's token
 * after them. A token that ends the job is not kept in the sequence (as a
 * finishing token is never fed). Returns the finish reason, TAKE_BACK_STUCK, or
 * NULL with j->next set. */
static const char *take_drafts(lg_sched *s, lg_job *j, int r, int m) {
    int acc = 0;
    while (acc < m && s->rows[r + 1 + acc].token == s->argmax[r + acc])
        acc++;
    pthread_mutex_lock(&s->mu);
    s->stats.drafted += (uint64_t)m;
    s->stats.draft_accepted += (uint64_t)acc;
    pthread_mutex_unlock(&s->mu);
    int base = j->n_fed - m, i = 0; /* base: the position after j's row (draft 0's) */
    const char *finish = NULL;
    while (i < acc && !(finish = job_take_token(s, j, s->rows[r + 1 + i].token)))
        i++;
    /* the sequence keeps the drafts taken before the one that ended the job, or all kept ones */
    if (!finish) finish = job_take_token(s, j, s->argmax[r + acc]);
    if (j->n_fed > base + i && !take_back(s, j, base + i)) return TAKE_BACK_STUCK;
    return finish;
}

/* ---- forced tokens (structured output) ------------------------------------------------ */

#define FORCED_MAX 16 /* forced tokens fed after a job's row in one step */

/* Rows after j's row (j->next at j->n_fed) for the tokens its grammar then
 * allows alone (the rest of a key, fixed punctuation): fed in the same step
 * instead of one step each ("jump forward"), each taken into the constraint
 * now; within room, the job's token budget and the context; not for jobs
 * that want logprobs (a forced token has none). Returns how many. */
static int forced_rows(lg_sched *s, lg_job *j, laguna_batch_row *out, int room) {
    if (!s->jump_forward || !j->constraint || j->logprobs >= 0) return 0;
    int k = room < FORCED_MAX ? room : FORCED_MAX;
    if (k > j->max_tokens - j->n_completion - 1) k = j->max_tokens - j->n_completion - 1;
    if (k > s->n_ctx - j->n_fed - 1) k = s->n_ctx - j->n_fed - 1;
    int m = 0;
    int32_t f;
    while (m < k && lg_output_constraint_forced(j->constraint, &f) && !lg_output_constraint_take(j->constraint, f, NULL)) {
        out[m] = (laguna_batch_row){f, j->n_fed + 1 + m, j->seq, 0};
        m++;
    }
    return m;
}

/* j's step fed m forced tokens after its row, ending at row r (all of them
 * now in j->fed and its sequence): takes them as tokens in turn; one that
 * ends the job is not kept in the sequence, nor those after it. Returns the
 * finish reason, TAKE_BACK_STUCK, or NULL (the token drawn after them comes
 * next). */
static const char *take_forced(lg_sched *s, lg_job *j, int r, int m) {
    int base = j->n_fed - m; /* the first forced token's position */
    for (int i = 0; i < m; i++) {
        const char *finish = job_take_token(s, j, s->rows[r - m + 1 + i].token);
        if (finish) return take_back(s, j, base + i) ? finish : TAKE_BACK_STUCK;
    }
    return NULL;
}

static void step(lg_sched *s) {
    if (queued_step(s)) return;
    drain(s);
    int n = 0, n_logits = 0;
    /* decode rows first, then prompt chunks within the budget */
    int budget = s->opt.prefill_budget, forced_room = budget / 2; /* forced rows take from the prompts' budget */
    for (int i = 0; i < s->n_running; i++) {
        lg_job *j = s->running[i];
        if (!j->decoding) continue;
        s->row_of[n_logits] = n;
        s->row_job[n_logits] = j;
        s->rows[n++] = (laguna_batch_row){j->next, j->n_fed, j->seq, row_wants(j)};
        int m = s->n_forced[n_logits] = forced_rows(s, j, s->rows + n, forced_room);
        if (m) { /* the logits that choose the next token are the last forced row's */
            s->rows[n - 1].logits = 0;
            n += m;
            s->rows[n - 1].logits = LAGUNA_ROW_LOGITS;
            s->row_of[n_logits] = n - 1;
            forced_room -= m, budget -= m;
        }
        n += s->n_drafted[n_logits++] = draft_rows(s, j, s->rows + n);
    }
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        lg_job *j = s->running[i];
        if (j->decoding) continue;
        int start = j->n_fed, end = start + s->opt.prefill_chunk;
        if (end > j->n_prompt) end = j->n_prompt;
        if (end - start > budget) break; /* whole chunks only: the same cuts whatever else runs */
        for (int p = start; p < end; p++)
            s->rows[n++] = (laguna_batch_row){j->prompt[p], p, j->seq,
                                              p == j->n_prompt - 1 ? row_wants(j) : 0};
        if (end == j->n_prompt)
            s->row_of[n_logits] = n - 1, s->n_drafted[n_logits] = s->n_forced[n_logits] = 0, s->row_job[n_logits++] = j;
        budget -= end - start;
    }
    if (n == 0) return;
    double t0 = lg_now();
    laguna_error err = {0};
    laguna_status st = laguna_context_decode_argmax(s->ctx, s->rows, n, s->logits, s->argmax, &err);
    while (st == LAGUNA_ERR_CONTEXT && s->n_cache > 0) { /* make room: evict, oldest first */
        cache_drop_lru(s); /* (a failed decode only checked the rows: nothing changed) */
        st = laguna_context_decode_argmax(s->ctx, s->rows, n, s->logits, s->argmax, &err);
    }
    double t1 = lg_now();
    if (st) {
        end_all(s, err.message);
        return;
    }
    /* advance positions */
    for (int r = 0; r < n; r++) {
        for (int i = 0; i < s->n_running; i++) {
            lg_job *j = s->running[i];
            if (j->seq != s->rows[r].seq) continue;
            j->fed[j->n_fed++] = s->rows[r].token;
            break;
        }
    }
    int with_logits = 0;
    for (int k = 0; k < n_logits; k++)
        s->draw_row[k] = s->rows[s->row_of[k]].logits == LAGUNA_ROW_LOGITS
                             ? s->logits + (size_t)with_logits++ * s->vocab
                             : NULL;
    if (s->draw_pool && with_logits > 1)
        lg_threadpool_run(s->draw_pool, n_logits, draw_task, s);
    else
        for (int k = 0; k < n_logits; k++) draw_task(s, k, 0);
    for (int k = 0; k < n_logits; k++) {
        lg_job *j = s->row_job[k];
        j->decoding = true;
        int32_t id = s->drawn[k];
        if (id < 0 || (j->constraint && lg_output_constraint_take(j->constraint, id, &j->draw_error))) {
            unrun(s, j);
            job_end(s, j, NULL, j->draw_error.message);
            continue;
        }
        if (wants_logprob(s, k)) lg_logprobs_add(&j->pending_lps, &s->drawn_lp[k]);
        const char *finish = s->n_forced[k] ? take_forced(s, j, s->row_of[k], s->n_forced[k]) : NULL;
        if (!finish)
            finish = s->n_drafted[k] ? take_drafts(s, j, s->row_of[k], s->n_drafted[k]) : job_take_token(s, j, id);
        if (finish) {
            unrun(s, j);
            job_end(s, j, finish == TAKE_BACK_STUCK ? NULL : finish, finish == TAKE_BACK_STUCK ? finish : NULL);
        } else {
            job_publish(j, NULL, NULL);
        }
    }
    count_step(s, t1 - t0);
}

static void publish_gauges(lg_sched *s) {
    int used, total;
    size_t pb;
    int cached = cache_trim(s);
    laguna_context_kv_pages(s->ctx, &used, &total, &pb);
    pthread_mutex_lock(&s->mu);
    s->stats.cache_pages = cached;
    s->stats.kv_pages_used = used;
    s->stats.kv_pages_total = total;
    s->stats.cached_seqs = s->n_cache;
    s->stats.running = s->n_active; /* admitted and not ended */
    s->stats.queued = s->n_queued;
    pthread_mutex_unlock(&s->mu);
}

static void drop_cancelled(lg_sched *s) {
    for (int i = 0; i < s->n_running; i++)
        if (atomic_load(&s->running[i]->cancelled)) {
            drain(s);
            break;
        }
    for (int i = 0; i < s->n_running; i++) {
        lg_job *j = s->running[i];
        if (!atomic_load(&j->cancelled)) continue;
        s->running[i--] = s->running[--s->n_running];
        job_end(s, j, NULL, NULL);
    }
}

static void *sched_main(void *arg) {
    lg_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && !s->queue_head && s->n_running == 0)
            pthread_cond_wait(&s->cv, &s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        admit(s);
        drop_cancelled(s);
        cache_trim(s);
        step(s);
        publish_gauges(s);
    }
    if (s->ahead >= 0) laguna_context_wait(s->ctx, NULL);
    s->ahead = -1;
    end_all(s, "the server is shutting down");
    pthread_mutex_lock(&s->mu);
    lg_job *q = s->queue_head;
    s->queue_head = s->queue_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        lg_job *nx = q->next_in_queue;
        job_end(s, q, NULL, "the server is shutting down");
        q = nx;
    }
    return NULL;
}

/* ---- create, submit, free ------------------------------------------------------ */

int lg_sched_create(laguna_model *model, const laguna_tokenizer *tok, const lg_sched_options *opt,
                    lg_sched **out, laguna_error *err) {
    lg_sched *s = calloc(1, sizeof *s);
    if (!s) return -1;
    const laguna_model_info *info = laguna_model_get_info(model);
    s->model = model;
    s->tok = tok;
    s->opt = *opt;
    if (s->opt.n_parallel <= 0) s->opt.n_parallel = 4;
    if (s->opt.max_queue <= 0) s->opt.max_queue = 64;
    if (s->opt.prefill_chunk <= 0) s->opt.prefill_chunk = 128;
    if (s->opt.prefill_budget < s->opt.prefill_chunk)
        s->opt.prefill_budget = 2 * s->opt.prefill_chunk;
    if (s->opt.cache_seqs == 0) s->opt.cache_seqs = 64;
    s->n_ctx = opt->n_ctx > 0 ? opt->n_ctx : info->max_position_embeddings;
    if (s->opt.n_rollback <= 0) s->opt.n_rollback = 256;
    if (s->opt.n_rollback > s->n_ctx) s->opt.n_rollback = s->n_ctx;
    s->vocab = info->vocab_size;
    s->eos = info->eos_token_ids;
    s->n_eos = info->n_eos_token_ids;
    bool cache_on = s->opt.cache_seqs > 0 && s->opt.cache_bytes >= 0;
    int n_cache = cache_on ? s->opt.cache_seqs : 0;
    if (s->opt.draft_lookup < 0) s->opt.draft_lookup = 0;
    if (s->opt.draft_lookup > LAGUNA_DRAFT_LOOKUP_MAX) s->opt.draft_lookup = LAGUNA_DRAFT_LOOKUP_MAX;
    if (s->opt.n_rollback < s->opt.draft_lookup) s->opt.n_rollback = s->opt.draft_lookup;
    /* a decode row each (and its drafts), and the prompt chunks */
    int n_rows = s->opt.n_parallel * (1 + s->opt.draft_lookup) + s->opt.prefill_budget;
    laguna_context_options co = {.n_seq_max = s->opt.n_parallel + n_cache,
                                 .n_ctx = s->n_ctx,
                                 .n_batch = n_rows,
                                 .n_rollback = s->opt.n_rollback};
    /* the pool: n_parallel full sequences, and the cache's budget besides */
    size_t running_bytes = 0, page_bytes = 1;
    if (laguna_context_kv_bytes_for(model, &co, s->opt.n_parallel, &running_bytes, &page_bytes,
                                    err)) {
        free(s);
        return -1;
    }
    int64_t running_pages = (int64_t)(running_bytes / page_bytes), budget = 0;
    if (cache_on)
        budget = s->opt.cache_bytes ? s->opt.cache_bytes / (int64_t)page_bytes : running_pages;
    if (budget > INT32_MAX / 2) budget = INT32_MAX / 2;
    s->cache_budget = (int)budget;
    int64_t pool = s->opt.kv_pages > 0 ? s->opt.kv_pages : running_pages + budget;
    co.kv_bytes = (size_t)pool * page_bytes;
    s->stats.cache_pages_budget = s->cache_budget;
    s->running = calloc((size_t)s->opt.n_parallel, sizeof *s->running);
    s->cache = calloc((size_t)n_cache + 1, sizeof *s->cache);
    s->cache_ids = calloc((size_t)n_cache + 1, sizeof *s->cache_ids);
    s->rows = calloc((size_t)n_rows, sizeof *s->rows);
    s->row_job = calloc((size_t)s->opt.n_parallel, sizeof *s->row_job);
    s->row_of = calloc((size_t)s->opt.n_parallel, sizeof *s->row_of);
    s->argmax = calloc((size_t)n_rows, sizeof *s->argmax);
    s->n_drafted = calloc((size_t)s->opt.n_parallel, sizeof *s->n_drafted);
    s->n_forced = calloc((size_t)s->opt.n_parallel, sizeof *s->n_forced);
    s->jump_forward = !(getenv("LAGUNA_JUMP_FORWARD") && getenv("LAGUNA_JUMP_FORWARD")[0] == '0');
    s->draw_row = calloc((size_t)s->opt.n_parallel, sizeof *s->draw_row);
    s->drawn = calloc((size_t)s->opt.n_parallel, sizeof *s->drawn);
    s->drawn_lp = calloc((size_t)s->opt.n_parallel, sizeof *s->drawn_lp);
    bool draw_ok = s->draw_row && s->drawn && s->drawn_lp && s->n_drafted && s->n_forced;
    if (s->opt.sample_threads > 1 && s->opt.n_parallel > 1) {
        int n = s->opt.sample_threads < s->opt.n_parallel ? s->opt.sample_threads : s->opt.n_parallel;
        draw_ok = draw_ok && (s->draw_pool = lg_threadpool_new(n)) != NULL;
    }
    s->ahead = -1;
    bool queue_ok = true;
    for (int q = 0; q < 2; q++) {
        s->q_rows[q] = calloc((size_t)s->opt.n_parallel, sizeof *s->q_rows[q]);
        s->q_job[q] = calloc((size_t)s->opt.n_parallel, sizeof *s->q_job[q]);
        s->q_argmax[q] = calloc((size_t)s->opt.n_parallel, sizeof *s->q_argmax[q]);
        queue_ok = queue_ok && s->q_rows[q] && s->q_job[q] && s->q_argmax[q];
    }
    s->logits = malloc((size_t)s->opt.n_parallel * (size_t)s->vocab * sizeof *s->logits);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!s->running || !s->cache || !s->cache_ids || !s->rows || !s->row_job || !s->row_of ||
        !s->argmax || !s->logits || !queue_ok || !draw_ok || laguna_context_create(model, &co, &s->ctx, err) ||
        pthread_create(&s->thread, NULL, sched_main, s)) {
        if (err && !err->message[0])
            snprintf(err->message, sizeof err->message, "scheduler: out of memory");
        laguna_context_free(s->ctx);
        s->ctx = NULL;
        s->thread = 0;
        lg_sched_free(s);
        return -1;
    }
    int used, total;
    size_t pb;
    laguna_context_kv_pages(s->ctx, &used, &total, &pb);
    s->stats.kv_pages_total = total;
    *out = s;
    return 0;
}

void lg_sched_stop(lg_sched *s) {
    if (!s || !s->ctx || s->joined) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->joined = true;
}

void lg_sched_free(lg_sched *s) {
    if (!s) return;
    if (s->ctx) {
        lg_sched_stop(s);
        while (s->n_cache)
            cache_drop(s, 0);
        laguna_context_free(s->ctx);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->running);
    free(s->cache);
    free(s->cache_ids);
    free(s->rows);
    free(s->row_job);
    free(s->row_of);
    free(s->argmax);
    free(s->n_drafted);
    free(s->n_forced);
    free(s->logits);
    free(s->draw_row);
    free(s->drawn);
    free(s->drawn_lp);
    lg_threadpool_free(s->draw_pool);
    lg_token_bytes_free(s->token_bytes);
    for (int q = 0; q < 2; q++) free(s->q_rows[q]), free(s->q_job[q]), free(s->q_argmax[q]);
    free(s);
}

int lg_sched_n_ctx(const lg_sched *s) {
    return s->n_ctx;
}

int lg_sched_submit(lg_sched *s, lg_job *j) {
    int room = s->n_ctx - j->n_prompt;
    if (j->max_tokens > room) j->max_tokens = room;
    pthread_mutex_lock(&s->mu);
    /* Waiting means waiting for a slot: a job that a free slot will take at the
     * next step does not count, however late the scheduler thread wakes (it
     * used to, so two requests sent at once to an idle server with one slot
     * and a queue of one could be refused). */
    int free_slots = s->opt.n_parallel - s->n_active;
    if (s->stop || s->n_queued >= s->opt.max_queue + free_slots) {
        s->stats.rejected++;
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
    j->t_submit = lg_now();
    j->next_in_queue = NULL;
    if (s->queue_tail)
        s->queue_tail->next_in_queue = j;
    else
        s->queue_head = j;
    s->queue_tail = j;
    s->n_queued++;
    s->stats.requests++;
    s->stats.prompt_tokens += (uint64_t)j->n_prompt;
    s->stats.queued = s->n_queued;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void lg_sched_get_stats(lg_sched *s, lg_sched_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}
