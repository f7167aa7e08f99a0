/* The generation loop (laguna_generate): sample -> eos? -> streaming
 * detokenizer -> stop strings -> emit -> feed, one token at a time, until
 * eos, a stop string, the token budget, a full context or the caller cancels.
 * The text side (detokenizer + stop matcher) is a small "text stream" so the
 * loop itself reads as the list above. With a greedy sampler each feed asks
 * for the next token alone: the logits stay on the device and the sampler's
 * argmax is taken there, and the step feeding a token is queued before the
 * host looks at it (laguna_session_next_greedy), so the device works while
 * the host detokenizes, matches stops and makes the next step. With
 * draft_lookup (greedy) a token is instead fed together with the tokens
 * prompt lookup drafts after it (draft_and_check), the accepted ones are
 * taken from a queue before the session is asked again, and steps are not
 * queued ahead. With json_schema each token is drawn among those the
 * schema's grammar allows (grammar/output_constraint.h), from the logits. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "grammar/json_schema.h"
#include "grammar/output_constraint.h"
#include "laguna_generate.h"
#include "runtime/draft_lookup.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

const char *laguna_finish_reason_name(laguna_finish_reason reason) {
    switch (reason) {
    case LAGUNA_FINISH_EOS:
        return "eos";
    case LAGUNA_FINISH_STOP:
        return "stop";
    case LAGUNA_FINISH_LENGTH:
        return "length";
    case LAGUNA_FINISH_CONTEXT:
        return "context";
    case LAGUNA_FINISH_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

void laguna_generate_result_free(laguna_generate_result *r) {
    if (!r) return;
    free(r->tokens);
    r->tokens = NULL;
    r->n_tokens = 0;
}

/* ---- text stream: token -> text released to the caller --------------------- */

typedef struct {
    laguna_detokenizer *detok; /* NULL: the text is the ids, comma-separated */
    laguna_stop_matcher *stops;
    int n_pushed;
    char id_text[16];
} text_stream;

static void text_stream_free(text_stream *ts) {
    laguna_detokenizer_free(ts->detok);
    laguna_stop_matcher_free(ts->stops);
}

/* The text token t releases (*out, *len) and whether a stop string completed. */
static laguna_status text_stream_push(text_stream *ts, int32_t t, const char **out, size_t *len,
                                      bool *stopped, laguna_error *err) {
    *stopped = false;
    if (!ts->detok) {
        int n = snprintf(ts->id_text, sizeof ts->id_text, ts->n_pushed++ ? ",%d" : "%d", (int)t);
        *out = ts->id_text;
        *len = (size_t)n;
        return LAGUNA_OK;
    }
    const char *text;
    size_t text_len;
    laguna_status st = laguna_detokenizer_push(ts->detok, t, &text, &text_len, err);
    return st ? st : laguna_stop_matcher_push(ts->stops, text, text_len, out, len, stopped, err);
}

/* At the end (or where the reasoning ends): what the detokenizer held back
 * goes through the stop strings (it may still complete one), then what they
 * held back; all of it to emit. */
static laguna_status text_stream_flush(text_stream *ts, laguna_emit_fn emit, void *user,
                                       bool *stopped, laguna_error *err) {
    *stopped = false;
    if (!ts->detok) return LAGUNA_OK;
    const char *text, *out;
    size_t len, out_len;
    laguna_status st = laguna_detokenizer_flush(ts->detok, &text, &len, err);
    if (!st) st = laguna_stop_matcher_push(ts->stops, text, len, &out, &out_len, stopped, err);
    if (!st && out_len && emit) emit(user, out, out_len);
    if (!st && !*stopped) st = laguna_stop_matcher_flush(ts->stops, &out, &out_len, err);
    if (!st && !*stopped && out_len && emit) emit(user, out, out_len);
    return st;
}

/* The reasoning split of one generation: which callback the text goes to. */
typedef struct {
    bool on, in_reasoning;
    laguna_think_tokens think;
} think_split;

static think_split think_split_start(const laguna_generate_params *p) {
    think_split ts = {0};
    if (!p->emit_reasoning || !p->tokenizer ||
        laguna_think_tokens_find(p->tokenizer, &ts.think, NULL) != LAGUNA_OK)
        return ts;
    int n;
    const int32_t *held = laguna_session_tokens(p->session, &n);
    ts.on = true;
    ts.in_reasoning = laguna_think_open_at_end(&ts.think, held, (size_t)n);
    return ts;
}

static bool think_split_is_tag(const think_split *ts, int32_t t) {
    return ts->on && (t == ts->think.open_id || t == ts->think.close_id);
}

/* ---- drafts (draft_lookup) ---------------------------------------------------- */

/* Tokens that a checked draft gave, to be taken in turn before the session's
 * own: queue[0 .. n_fed) the accepted drafts (already in the session), then
 * the model's token after them (not yet fed). */
typedef struct {
    int k;     /* the most tokens drafted a step (0: off) */
    int start; /* the session's position when generation began */
    int32_t queue[LAGUNA_DRAFT_LOOKUP_MAX + 1];
    int head, n, n_fed;
} draft_state;

/* After t (sampled, not fed, and not ending generation): drafts up to k
 * tokens by prompt lookup and feeds t with them in one step, every row asking
 * for its greedy successor. The drafts up to the first one the model
 * disagrees with are kept (the rest taken back), and they and the model's
 * token after them are queued. *drafted: 0 when there was no draft (t not fed). */
static laguna_status draft_and_check(draft_state *d, const laguna_generate_params *p,
                                     laguna_generate_result *r, int32_t t, int *drafted,
                                     laguna_error *err) {
    laguna_session *s = p->session;
    int n_hist, pos = laguna_session_position(s);
    const int32_t *hist = laguna_session_tokens(s, &n_hist);
    int k = d->k;
    /* room: drafts past the token budget or the context would be wasted */
    if (p->max_new_tokens >= 0 && k > p->max_new_tokens - r->n_tokens - 1)
        k = p->max_new_tokens - r->n_tokens - 1;
    if (k > laguna_session_capacity(s) - pos - 1) k = laguna_session_capacity(s) - pos - 1;
    int32_t rows[LAGUNA_DRAFT_LOOKUP_MAX + 1], next[LAGUNA_DRAFT_LOOKUP_MAX + 1];
    int m = k > 0 ? lg_draft_lookup(hist, n_hist, t, k, rows + 1) : 0;
    *drafted = m;
    if (m == 0) return LAGUNA_OK;
    rows[0] = t;
    laguna_status st = lg_session_feed_argmax_all(s, rows, (size_t)m + 1, next, err);
    if (st) return st;
    int j = 0;
    while (j < m && rows[1 + j] == next[j])
        j++;
    r->n_drafted += m;
    r->n_accepted += j;
    if (j < m && (st = laguna_session_truncate(s, pos + 1 + j, err))) return st;
    for (int i = 0; i < j; i++)
        d->queue[i] = rows[1 + i];
    d->queue[j] = next[j];
    d->head = 0, d->n = j + 1, d->n_fed = j;
    return LAGUNA_OK;
}

/* ---- structured output (json_schema) ---------------------------------------------- */

typedef struct {
    lg_token_bytes *vocab;
    lg_output_constraint *c; /* NULL: no json_schema */
} structured;

static void structured_free(structured *so) {
    lg_output_constraint_free(so->c);
    lg_token_bytes_free(so->vocab);
}

static laguna_status structured_start(const laguna_generate_params *p, const laguna_model_info *info,
                                      structured *so, laguna_error *err) {
    *so = (structured){0};
    if (!p->json_schema) return LAGUNA_OK;
    if (!p->tokenizer) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "structured output works on text: it needs a tokenizer");
    if (p->draft_lookup) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "json_schema and draft_lookup do not go together");
    if (!laguna_session_logits(p->session))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "structured output draws from the logits: feed the prompt with them");
    cJSON *schema = cJSON_Parse(p->json_schema);
    if (!schema) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "json_schema is not valid JSON");
    lg_grammar g;
    laguna_status st = lg_json_schema_grammar(schema, &g, err);
    cJSON_Delete(schema);
    if (st) return lg_fail_prefix(err, "json_schema: ");
    if ((st = lg_token_bytes_new(p->tokenizer, info->vocab_size, &so->vocab, err))) {
        lg_grammar_free(&g);
        return st;
    }
    lg_output_constraint_opts o = {info->eos_token_ids, info->n_eos_token_ids, -1, false};
    laguna_think_tokens think;
    if (laguna_think_tokens_find(p->tokenizer, &think, NULL) == LAGUNA_OK) {
        int n;
        const int32_t *held = laguna_session_tokens(p->session, &n);
        o.think_close = think.close_id;
        o.in_reasoning = laguna_think_open_at_end(&think, held, (size_t)n);
    }
    return lg_output_constraint_new(&g, so->vocab, &o, &so->c, err);
}

/* The next token from logits, among those the constraint allows (if any). */
static laguna_status structured_sample(structured *so, laguna_sampler *sampler, const float *logits, int32_t *t,
                                       laguna_error *err) {
    const uint64_t *allowed = NULL;
    laguna_status st = so->c ? lg_output_constraint_allowed(so->c, &allowed, err) : LAGUNA_OK;
    if (st) return st;
    *t = lg_sampler_sample_allowed(sampler, logits, allowed);
    if (*t < 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "structured output: no token could be drawn");
    return so->c ? lg_output_constraint_take(so->c, *t, err) : LAGUNA_OK;
}

/* ---- the loop ------------------------------------------------------------- */

static bool is_eos(const laguna_model_info *info, int32_t t) {
    for (int i = 0; i < info->n_eos_token_ids; i++)
        if (info->eos_token_ids[i] == t) return true;
    return false;
}

static laguna_status check_params(const laguna_generate_params *p, laguna_error *err) {
    if (!p->session || !p->sampler)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "generate needs a session and a sampler");
    if (p->max_new_tokens < -1)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "max_new_tokens %d is neither -1 nor a count",
                       p->max_new_tokens);
    if (p->n_stops && !p->tokenizer)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                       "stop strings work on text: they need a tokenizer");
    bool greedy_next =
        laguna_sampler_is_greedy(p->sampler) && lg_session_greedy_token(p->session) >= 0;
    if (!laguna_session_logits(p->session) && !greedy_next)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                       "the session has no logits: feed a prompt before generating");
    return LAGUNA_OK;
}

laguna_status laguna_generate(const laguna_generate_params *p, laguna_generate_result *r,
                              laguna_error *err) {
    if (!r) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "result is NULL");
    *r = (laguna_generate_result){NULL, 0, false, LAGUNA_FINISH_LENGTH, 0, 0};
    if (!p) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "params is NULL");
    laguna_status st = p->session ? lg_session_settle(p->session, err) : LAGUNA_OK;
    if (!st) st = check_params(p, err);
    if (st || p->max_new_tokens == 0) return st;

    laguna_session *s = p->session;
    const laguna_model_info *info = laguna_model_get_info(laguna_session_model(s));
    /* the most tokens this call can sample: one per free position, plus one from the last logits */
    size_t room = (size_t)(laguna_session_capacity(s) - laguna_session_position(s)) + 1;
    size_t max_tokens = p->max_new_tokens < 0 || (size_t)p->max_new_tokens > room
                            ? room
                            : (size_t)p->max_new_tokens;
    r->tokens = malloc(sizeof(int32_t) * max_tokens);
    if (!r->tokens)
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for %zu generated tokens", max_tokens);

    text_stream ts = {0};
    structured so = {0};
    if (p->tokenizer &&
        (st = laguna_detokenizer_new(p->tokenizer, p->skip_special, &ts.detok, err)))
        goto done;
    if (p->tokenizer && (st = laguna_stop_matcher_new(p->stops, p->n_stops, &ts.stops, err)))
        goto done;

    think_split split = think_split_start(p);
    if ((st = structured_start(p, info, &so, err))) goto done;
    bool greedy = laguna_sampler_is_greedy(p->sampler) && !so.c; /* constrained: always from the logits */
    int most = p->draft_lookup < LAGUNA_DRAFT_LOOKUP_MAX ? p->draft_lookup : LAGUNA_DRAFT_LOOKUP_MAX;
    draft_state draft = {.k = greedy ? most : 0,
                         .start = laguna_session_position(s)};
    for (;;) {
        /* the session holds the logits after its last token, or (greedy) the token they choose;
         * with drafts, tokens a checked draft gave come first */
        const float *logits = laguna_session_logits(s);
        int32_t t;
        bool t_fed = false;
        if (draft.head < draft.n) {
            t_fed = draft.head < draft.n_fed;
            t = draft.queue[draft.head++];
        } else if (logits) {
            if ((st = structured_sample(&so, p->sampler, logits, &t, err))) goto done;
        } else { /* the step feeding t is queued before t is looked at, when a token may follow it */
            bool more = !draft.k && (p->max_new_tokens < 0 ||
                                     (long long)r->n_tokens + 1 < (long long)p->max_new_tokens);
            if ((st = laguna_session_next_greedy(s, more, &t, err))) goto done;
        }
        laguna_sampler_accept(p->sampler, t);
        r->tokens[r->n_tokens++] = t;
        r->fed_last = t_fed;
        if (!p->ignore_eos && is_eos(info, t)) {
            r->finish = LAGUNA_FINISH_EOS;
            break;
        }
        laguna_emit_fn emit = split.in_reasoning ? p->emit_reasoning : p->emit;
        bool stopped;
        int cancel = 0;
        if (think_split_is_tag(&split, t)) {
            /* a think tag ends one kind of text: release what was held back to its callback */
            if ((st = text_stream_flush(&ts, emit, p->user, &stopped, err))) goto done;
            split.in_reasoning = t == split.think.open_id;
        } else {
            const char *text;
            size_t len;
            if ((st = text_stream_push(&ts, t, &text, &len, &stopped, err))) goto done;
            cancel = emit ? emit(p->user, text, len) : 0;
        }
        if (stopped) {
            r->finish = LAGUNA_FINISH_STOP;
            goto done; /* the stop string is the end: nothing held back is wanted */
        }
        if (cancel) {
            r->finish = LAGUNA_FINISH_CANCELLED;
            goto done; /* the caller wants nothing more, held-back text included */
        }
        if (p->max_new_tokens >= 0 && r->n_tokens == p->max_new_tokens) {
            r->finish = LAGUNA_FINISH_LENGTH;
            break;
        }
        if (laguna_session_position(s) == laguna_session_capacity(s)) {
            r->finish = LAGUNA_FINISH_CONTEXT;
            break;
        }
        if (t_fed) continue; /* a drafted token the check accepted: already in the session */
        int drafted = 0;
        if (draft.k && (st = draft_and_check(&draft, p, r, t, &drafted, err))) goto done;
        if (!drafted && (st = greedy ? laguna_session_feed_next_greedy(s, t, err)
                                     : laguna_session_feed(s, &t, 1, NULL, err)))
            goto done;
        r->fed_last = true;
    }
    bool stopped;
    laguna_emit_fn emit = split.in_reasoning ? p->emit_reasoning : p->emit;
    if (!(st = text_stream_flush(&ts, emit, p->user, &stopped, err)) && stopped)
        r->finish = LAGUNA_FINISH_STOP;
done:
    text_stream_free(&ts);
    structured_free(&so);
    { /* a step queued ahead of a token not fed is taken back */
        laguna_status settled = lg_session_settle(s, st ? NULL : err);
        if (!st) st = settled;
    }
    /* drafts checked past the token that ended it are taken back */
    int keep = draft.start + r->n_tokens - (r->fed_last ? 0 : 1);
    if (!st && draft.k && r->n_tokens && laguna_session_position(s) > keep)
        st = laguna_session_truncate(s, keep, err);
    return st;
}
