/* The server's scheduler: one thread that runs continuous batching over one
 * laguna_context. Requests ("jobs") arrive from the HTTP threads through a
 * bounded queue; between steps the scheduler admits them (up to n_parallel
 * running), and every step decodes one row for each running request plus
 * fixed-size chunks of pending prompts, within a per-step row budget, so
 * decoding never waits behind a long prefill. A prompt is always cut at the
 * same positions (multiples of prefill_chunk from where it starts), whatever
 * else runs, so a request's tokens do not depend on its neighbours
 * (laguna_context_decode is batch invariant).
 *
 * Finished requests leave their sequence in a prefix cache; a new request
 * forks the cached sequence that shares the longest prefix with its prompt
 * and computes only the rest. The cache is bounded by a page budget: the KV
 * pages that only cached sequences hold (pages a running fork shares are the
 * running request's) stay within cache_bytes, least recently used sequences
 * going first; the pool holds n_parallel full sequences besides the budget,
 * so a running request never waits for, or fails on, pages the cache holds
 * (and should a step still lack pages, cached sequences are dropped, least
 * recently used first, until it fits). Truncating a fork is subject to the
 * sliding-window rollback rule (laguna_seq_truncate): when it refuses, the
 * prompt is computed in full.
 *
 * Ownership: a job is created by the HTTP side, handed to lg_sched_submit
 * (the scheduler then holds a reference), and released by both; the last
 * release frees it. Output flows through job->events under job->mu. */
#ifndef LAGUNA_SERVER_SCHEDULER_H
#define LAGUNA_SERVER_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "laguna.h"
#include "laguna_generate.h"
#include "grammar/grammar.h"
#include "grammar/output_constraint.h"
#include "laguna_tokenizer.h"
#include "server/chat_parser.h"

struct cJSON;
typedef struct lg_sched lg_sched;

/* The log-probability of a generated token under the model (log-softmax of
 * the raw logits, before any sampling transform) and the most likely
 * alternatives at that position, best first. */
#define LG_MAX_TOP_LOGPROBS 20
typedef struct {
    int32_t id;
    float logprob;
    int n_top;
    int32_t top_id[LG_MAX_TOP_LOGPROBS];
    float top_logprob[LG_MAX_TOP_LOGPROBS];
} lg_token_logprob;

typedef struct {
    lg_token_logprob *items;
    size_t n, cap;
} lg_logprob_list;

/* Appends (copying); -1 when out of memory. Moving all of src to the end of dst empties src. */
int lg_logprobs_add(lg_logprob_list *l, const lg_token_logprob *lp);
int lg_logprobs_move(lg_logprob_list *dst, lg_logprob_list *src);
void lg_logprobs_free(lg_logprob_list *l);

typedef struct lg_job {
    /* ---- filled by the submitter before lg_sched_submit; read-only after ---- */
    int32_t *prompt; /* owned (free()) */
    int n_prompt;
    laguna_sampler_params sampling;
    int max_tokens; /* > 0; clamped to the context by submit */
    char **stops;   /* owned: n_stops strings */
    int n_stops;
    bool ignore_eos;     /* keep going past end-of-turn ids (vLLM's extension) */
    bool chat;           /* run the chat parser (reasoning, tool calls) */
    bool in_reasoning;   /* the prompt ends inside <think> */
    int logprobs;        /* -1: off; else alternatives per token (0..LG_MAX_TOP_LOGPROBS) */
    struct cJSON *tools; /* owned, may be NULL: the request's tools */
    lg_grammar *grammar; /* owned, may be NULL: structured output's grammar (response_format) */

    /* ---- shared, under mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    lg_event_list events; /* produced and not yet taken by the HTTP side */
    lg_logprob_list lps;  /* logprobs of generated tokens, not yet taken (when asked for) */
    bool done;
    const char *finish_reason; /* "stop", "length", "tool_calls" (static strings) */
    const char *stop_sequence; /* the stop string that ended it, or NULL (the matcher's) */
    char error[256];           /* non-empty: failed */
    int n_completion;          /* tokens generated */
    int n_cached;              /* prompt tokens taken from the prefix cache */
    double t_submit, t_first;  /* seconds (monotonic); t_first 0 until the first token */
    atomic_int cancelled;      /* set by the HTTP side; the scheduler drops the job */
    int refs;

    /* ---- the scheduler's own ---- */
    int seq;      /* sequence id while running, -1 otherwise */
    int n_fed;    /* prompt positions in the sequence */
    int32_t *fed; /* tokens in the sequence (prompt then generated) */
    int fed_cap;
    int32_t next;  /* sampled token waiting to be fed (decode phase) */
    bool decoding; /* prompt done: feeding sampled tokens */
    bool admitted; /* counted in the scheduler's active jobs (under the scheduler's mu) */
    laguna_sampler *sampler;
    lg_chat_parser *parser;
    laguna_detokenizer *detok; /* completions (no parser) */
    laguna_stop_matcher *stop;
    lg_output_constraint *constraint; /* made from grammar at the start */
    laguna_error draw_error;          /* why a token could not be chosen (structured output) */
    lg_event_list pending; /* events of this step, moved to events under mu */
    lg_logprob_list pending_lps;
    struct lg_job *next_in_queue;
} lg_job;

/* A new job with one reference (the caller's). */
lg_job *lg_job_new(void);
/* Drops a reference; the last one frees the job. */
void lg_job_release(lg_job *job);

typedef struct {
    int n_parallel;      /* requests decoded together (sequences running); default 4 */
    int n_ctx;           /* positions per sequence; 0 = the model's maximum */
    int max_queue;       /* requests waiting for a free slot; default 64 */
    int prefill_chunk;   /* prompt rows of one request per step; default 128 */
    int prefill_budget;  /* prompt rows of all requests per step; default 256 */
    int64_t cache_bytes; /* prefix cache budget (KV bytes only cached sequences hold); 0 = as
                            much as n_parallel full sequences; -1 = no cache */
    int cache_seqs;      /* most finished sequences kept; 0 = 64; -1 = no cache */
    int n_rollback;      /* positions a cached sequence may be cut back by; default 256 */
    int kv_pages;        /* pages in the KV pool; 0 = n_parallel full sequences plus the cache
                            budget (fewer: tests of eviction under page pressure) */
    int sample_threads;  /* host threads drawing a step's sampled rows; 0 or 1 = the scheduler's
                            own, one row after another */
    int draft_lookup;    /* greedy rows: up to this many tokens drafted by prompt lookup and
                            checked in the same step (runtime/draft_lookup.h); 0 = off. Steps
                            are then never queued ahead. */
} lg_sched_options;

typedef struct {
    uint64_t requests, rejected, failed, cancelled;
    uint64_t prompt_tokens, completion_tokens, cached_tokens;
    int running, queued, cached_seqs;
    int kv_pages_used, kv_pages_total;
    int cache_pages, cache_pages_budget; /* pages only cached sequences hold, and their budget */
    uint64_t cache_evictions;            /* cached sequences dropped for the budget or for room */
    double ttft_sum;                     /* seconds, over ttft_count first tokens */
    uint64_t ttft_count;
    double decode_seconds; /* time spent in steps */
    uint64_t steps;
    uint64_t drafted, draft_accepted; /* draft_lookup: tokens drafted, and kept */
} lg_sched_stats;

int lg_sched_create(laguna_model *model, const laguna_tokenizer *tok, const lg_sched_options *opt,
                    lg_sched **out, laguna_error *err);
/* Stops the thread; queued and running jobs end with an error and later
 * submits are refused. Idempotent. */
void lg_sched_stop(lg_sched *s);
/* Stops (if needed) and frees. */
void lg_sched_free(lg_sched *s);
/* The context length of a sequence. */
int lg_sched_n_ctx(const lg_sched *s);
/* Queues a job (takes a reference). Returns 0, or -1 when the queue is full
 * (the job is untouched). Clamps max_tokens to the room left in the context. */
int lg_sched_submit(lg_sched *s, lg_job *job);
void lg_sched_get_stats(lg_sched *s, lg_sched_stats *out);

/* Monotonic seconds. */
double lg_now(void);

#endif
