/* laguna.c generation API: the token loop (sample, stop, stream text, feed)
 * that a program runs after feeding a prompt, the stop strings it uses, and
 * prefix reuse, which lets a chat or a server re-feed only what changed.
 *
 * Same rules as laguna.h: every call that can fail returns a laguna_status
 * and fills a laguna_error when given one; the library never prints; whoever
 * creates a handle frees it. Text reaches the caller through a callback, so
 * the caller decides where it goes (a terminal, a socket, a buffer). */
#ifndef LAGUNA_GENERATE_H
#define LAGUNA_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "laguna.h"
#include "laguna_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- stop strings ------------------------------------------------------- */

/* Watches streamed text for stop strings. Text is released only once no stop
 * string could still begin inside it; at the first complete stop string the
 * text before it is released, the stop string itself never is, and the
 * matcher reports the stop. The earliest match wins when several complete in
 * one push. A matcher belongs to one thread. */
typedef struct laguna_stop_matcher laguna_stop_matcher;

/* stops: n_stops NUL-terminated strings, copied; empty strings are ignored,
 * NULL entries are an error. n_stops may be 0 (the matcher then releases
 * everything at once). */
laguna_status laguna_stop_matcher_new(const char *const *stops, size_t n_stops,
                                      laguna_stop_matcher **out, laguna_error *err);
void laguna_stop_matcher_free(laguna_stop_matcher *m);

/* Adds len bytes of text. *release receives the *release_len bytes now safe
 * to show (borrowed until the next call on m, NUL-terminated, possibly empty).
 * *stopped is set when a stop string completed: *release then ends just
 * before it, whatever followed it is dropped, and the matcher starts over. */
laguna_status laguna_stop_matcher_push(laguna_stop_matcher *m, const char *text, size_t len,
                                       const char **release, size_t *release_len, bool *stopped,
                                       laguna_error *err);

/* The stop string the last push completed (when it set *stopped), else NULL.
 * Owned by the matcher: valid until it is freed. */
const char *laguna_stop_matcher_matched(const laguna_stop_matcher *m);

/* At the end of the text: releases whatever was held back (a partial stop
 * string that never completed) and starts over. */
laguna_status laguna_stop_matcher_flush(laguna_stop_matcher *m, const char **release,
                                        size_t *release_len, laguna_error *err);

/* ---- prefix reuse ---------------------------------------------------------- */

/* Brings the session to hold exactly ids[0..n), feeding only the tokens after
 * the longest common prefix with what it holds (laguna_session_tokens), and
 * always at least the last token so that laguna_session_logits belongs to
 * ids. When the sliding layers can no longer take back that far (see
 * laguna_session_options.n_rollback), the session is reset and every token is
 * fed. *n_reused (optional) receives the number of tokens kept from before.
 * Bad ids, n == 0 or n above the session's capacity fail before anything
 * changes; on any error the session holds a prefix of what it held before. */
laguna_status laguna_session_feed_reuse(laguna_session *session, const int32_t *ids, size_t n,
                                        size_t *n_reused, laguna_error *err);

/* ---- reasoning and answer ----------------------------------------------------- */

/* Models that think write their reasoning between the added tokens <think>
 * and </think>, then the answer. Being added (special) tokens, the tags never
 * appear in text decoded with skip_special, so the split must be made on
 * token ids, as here; a </think> typed as text inside the reasoning does not
 * end it. */
typedef struct {
    int32_t open_id;  /* <think> */
    int32_t close_id; /* </think> */
    int32_t turn_id;  /* <assistant>, where a turn starts (-1 when the vocabulary has none) */
} laguna_think_tokens;

/* Finds the two tags in the tokenizer's vocabulary; LAGUNA_ERR_UNSUPPORTED
 * when it has no such tokens (a model that does not think). */
laguna_status laguna_think_tokens_find(const laguna_tokenizer *tok, laguna_think_tokens *out,
                                       laguna_error *err);

/* Whether text generated after ids[0..n) starts inside the reasoning: the
 * last think tag of the current assistant turn (after the last <assistant>)
 * is an opening one (a chat template with thinking on ends its generation
 * prompt with <think>; with thinking off with <think></think>; an earlier
 * turn's unclosed tag does not count). */
bool laguna_think_open_at_end(const laguna_think_tokens *think, const int32_t *ids, size_t n);

/* ---- the generation loop --------------------------------------------------- */

typedef enum {
    LAGUNA_FINISH_EOS = 0,   /* sampled one of the model's eos_token_ids */
    LAGUNA_FINISH_STOP,      /* a stop string completed */
    LAGUNA_FINISH_LENGTH,    /* max_new_tokens were generated */
    LAGUNA_FINISH_CONTEXT,   /* the session's context is full */
    LAGUNA_FINISH_CANCELLED, /* emit returned non-zero */
} laguna_finish_reason;

/* "eos", "stop", "length", "context" or "cancelled". */
const char *laguna_finish_reason_name(laguna_finish_reason reason);

/* Receives generated text as it becomes final: once per generated token (the
 * bytes that token released, possibly none) and once more at the end for what
 * was held back. Return 0 to go on, non-zero to cancel: generation then ends
 * before the next token with LAGUNA_FINISH_CANCELLED (a signal handler that
 * sets a flag the callback reads gives Ctrl-C). */
typedef int (*laguna_emit_fn)(void *user, const char *text, size_t len);

/* The most tokens laguna_generate_params.draft_lookup (and the server's
 * --draft-lookup) drafts a step. */
#define LAGUNA_DRAFT_LOOKUP_MAX 16

typedef struct {
    laguna_session *session;           /* holds the prompt; its logits give the first token */
    laguna_sampler *sampler;           /* each sampled token is accepted into it */
    const laguna_tokenizer *tokenizer; /* NULL: emit ids as "12,7,301" instead of text */
    const char *const *stops;          /* stop strings (need a tokenizer); may be NULL */
    size_t n_stops;
    int max_new_tokens;  /* -1: until eos or the context is full */
    bool ignore_eos;     /* keep going after an eos token */
    bool skip_special;   /* leave special (added) tokens out of the text */
    laguna_emit_fn emit; /* may be NULL (no text wanted, no cancellation) */
    void *user;          /* passed to emit */
    /* When non-NULL (and the tokenizer has think tags), the text of the
     * reasoning goes here instead of to emit, and the tags themselves to
     * neither: generation starts inside the reasoning when the session's
     * tokens end inside an open <think> (laguna_think_open_at_end), and each
     * generated <think> / </think> switches between the two callbacks. Its
     * return value cancels as emit's does. */
    laguna_emit_fn emit_reasoning;
    /* Speculative decoding without a draft model, greedy samplers only (else
     * ignored): after each token up to this many more are drafted from the
     * most recent earlier occurrence of the text's last tokens (prompt
     * lookup) and checked in one step; the longest run the model agrees with
     * is kept, with the model's own token after it. The tokens are exactly
     * those of plain greedy decoding (the forward pass is batch invariant);
     * fewer steps when the text repeats itself (code, edits, JSON). 0: off.
     * The session's n_rollback must be at least this (rejected drafts are
     * taken back with laguna_session_truncate). Capped at
     * LAGUNA_DRAFT_LOOKUP_MAX. */
    int draft_lookup;
    /* Structured output: when non-NULL, a JSON Schema (its JSON text; {"type":
     * "object"} for any object) the answer must follow. Each token is drawn
     * among those that continue a valid JSON text (needs a tokenizer; the
     * session must hold logits, and draft_lookup is not used), end of text
     * only once the value is whole; reasoning stays free until </think> when
     * generation starts inside <think>. A schema it cannot follow is
     * LAGUNA_ERR_ARGUMENT with the keyword and its place (the keywords
     * enforced: src/grammar/json_schema.h). */
    const char *json_schema;
} laguna_generate_params;

typedef struct {
    int32_t *tokens; /* every sampled token, a final eos included (free with _result_free) */
    int n_tokens;
    bool fed_last; /* whether the last sampled token went into the session; the others did */
    laguna_finish_reason finish;
    int n_drafted;  /* draft_lookup: tokens drafted and checked */
    int n_accepted; /* of those, the ones the model agreed with */
} laguna_generate_result;

/* Samples from the session's logits, streams the text through emit and feeds
 * each token back, until eos, a stop string, max_new_tokens, a full context or
 * cancellation. The token that ends generation is not fed (its logits would go
 * unused), so afterwards the session holds the prompt and every generated
 * token but possibly the last (see fed_last): laguna_session_feed_reuse can
 * pick up from there. The session must have logits (a prompt fed), or with
 * a greedy sampler the token of a laguna_session_feed_greedy. With a greedy
 * sampler (laguna_sampler_is_greedy) each token goes in through
 * laguna_session_feed_greedy, so the logits stay on the device and
 * laguna_session_logits is NULL afterwards when a token was fed. *r is
 * filled in every case, on error with what was generated before it; free it
 * with laguna_generate_result_free. */
laguna_status laguna_generate(const laguna_generate_params *params, laguna_generate_result *r,
                              laguna_error *err);
void laguna_generate_result_free(laguna_generate_result *r);

#ifdef __cplusplus
}
#endif
#endif
