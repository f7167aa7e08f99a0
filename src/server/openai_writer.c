/* OpenAI response bodies: chat.completion and text_completion objects,
 * their server-sent-event chunks, error objects, and the Prometheus text of
 * GET /metrics. JSON is built with cJSON so every string is escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

/* ---- a turn gathered from events -------------------------------------------- */

void lg_turn_add(lg_turn *t, const lg_event *e) {
    switch (e->kind) {
    case LG_EV_CONTENT:
        lg_sbuf_add(&t->content, e->text, e->len);
        break;
    case LG_EV_REASONING:
        lg_sbuf_add(&t->reasoning, e->text, e->len);
        break;
    case LG_EV_TOOL_START: {
        lg_tool_call *c = realloc(t->calls, (size_t)(t->n_calls + 1) * sizeof *c);
        if (!c) {
            t->failed = true;
            return;
        }
        t->calls = c;
        t->calls[t->n_calls++] = (lg_tool_call){strdup(e->text), {0}};
        break;
    }
    case LG_EV_TOOL_ARGS:
        if (e->tool_index >= 0 && e->tool_index < t->n_calls)
            lg_sbuf_add(&t->calls[e->tool_index].args, e->text, e->len);
        break;
    case LG_EV_TOOL_END:
        break;
    }
}

void lg_turn_free(lg_turn *t) {
    lg_sbuf_free(&t->content);
    lg_sbuf_free(&t->reasoning);
    for (int i = 0; i < t->n_calls; i++) {
        free(t->calls[i].name);
        lg_sbuf_free(&t->calls[i].args);
    }
    free(t->calls);
    lg_logprobs_free(&t->lps);
    *t = (lg_turn){0};
}

/* ---- helpers ------------------------------------------------------------------ */

/* ---- logprobs ------------------------------------------------------------------ */

/* A token's text: its bytes, with any byte that is not part of valid UTF-8 (a token can
 * hold part of a character) shown as U+FFFD, as OpenAI does; *raw gets the bytes. */
static char *token_text(const laguna_tokenizer *tok, int32_t id, lg_sbuf *raw) {
    char *text = NULL;
    size_t len = 0;
    if (laguna_tokenizer_decode(tok, &id, 1, false, &text, &len, NULL)) return strdup("");
    lg_sbuf_add(raw, text, len);
    lg_sbuf out = {0};
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        int n = p[i] < 0x80         ? 1
                : (p[i] >> 5) == 6  ? 2
                : (p[i] >> 4) == 14 ? 3
                : (p[i] >> 3) == 30 ? 4
                                    : 0;
        int ok = n > 0 && i + (size_t)n <= len;
        for (int k = 1; ok && k < n; k++)
            ok = (p[i + k] & 0xC0) == 0x80;
        if (ok) {
            lg_sbuf_add(&out, text + i, (size_t)n);
            i += (size_t)n;
        } else {
            lg_sbuf_str(&out, "\xEF\xBF\xBD");
            i++;
        }
    }
    laguna_tokenizer_free_text(text);
    if (!out.p) return strdup("");
    return out.p;
}

/* {"token", "logprob", "bytes"} of chat logprobs */
static cJSON *chat_token(const laguna_tokenizer *tok, int32_t id, float logprob) {
    cJSON *o = cJSON_CreateObject(), *bytes;
    lg_sbuf raw = {0};
    char *t = token_text(tok, id, &raw);
    cJSON_AddStringToObject(o, "token", t ? t : "");
    cJSON_AddNumberToObject(o, "logprob", logprob);
    bytes = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < raw.n; i++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)raw.p[i]));
    free(t);
    lg_sbuf_free(&raw);
    return o;
}

/* Chat: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]} */
static cJSON *chat_logprobs(const lg_reply_info *info, const lg_logprob_list *l) {
    cJSON *o = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(o, "content");
    for (size_t i = 0; i < l->n; i++) {
        const lg_token_logprob *lp = &l->items[i];
        cJSON *e = chat_token(info->tok, lp->id, lp->logprob);
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int k = 0; k < lp->n_top; k++)
            cJSON_AddItemToArray(top, chat_token(info->tok, lp->top_id[k], lp->top_logprob[k]));
        cJSON_AddItemToArray(content, e);
    }
    cJSON_AddNullToObject(o, "refusal");
    return o;
}

/* Completions (the legacy shape): {"tokens", "token_logprobs", "top_logprobs": [{text: lp}]} */
static cJSON *completion_logprobs(const lg_reply_info *info, const lg_logprob_list *l) {
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    for (size_t i = 0; i < l->n; i++) {
        const lg_token_logprob *lp = &l->items[i];
        lg_sbuf raw = {0};
        char *t = token_text(info->tok, lp->id, &raw);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(t ? t : ""));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(lp->logprob));
        free(t);
        lg_sbuf_free(&raw);
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < lp->n_top; k++) {
            t = token_text(info->tok, lp->top_id[k], &raw);
            if (!cJSON_GetObjectItemCaseSensitive(top, t ? t : "")) /* two ids, one text */
                cJSON_AddNumberToObject(top, t ? t : "", lp->top_logprob[k]);
            free(t);
            lg_sbuf_free(&raw);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return o;
}

static cJSON *logprobs_json(const lg_reply_info *info, const lg_logprob_list *l) {
    return info->api == LG_API_COMPLETION ? completion_logprobs(info, l) : chat_logprobs(info, l);
}

static cJSON *usage_json(const lg_job *job) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", job->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", job->n_completion);
    cJSON_AddNumberToObject(u, "total_tokens", job->n_prompt + job->n_completion);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "prompt_tokens_details"), "cached_tokens",
                            job->n_cached);
    return u;
}

static void call_id(char *out, size_t n, const lg_reply_info *info, int index) {
    snprintf(out, n, "call_%s_%d", info->id, index);
}

static cJSON *envelope(const lg_reply_info *info, bool chunk) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", info->id);
    cJSON_AddStringToObject(o, "object",
                            info->api == LG_API_CHAT
                                ? chunk ? "chat.completion.chunk" : "chat.completion"
                                : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)info->created);
    cJSON_AddStringToObject(o, "model", info->model);
    return o;
}

char *lg_openai_error_json(const lg_req_error *e) {
    cJSON *o = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "invalid_request_error");
    if (e->param)
        cJSON_AddStringToObject(err, "param", e->param);
    else
        cJSON_AddNullToObject(err, "param");
    cJSON_AddNullToObject(err, "code");
    return lg_json_print_free(o);
}

/* ---- non-streaming ------------------------------------------------------------ */

char *lg_openai_response(const lg_reply_info *info, const lg_turn *t, const lg_job *job) {
    cJSON *o = envelope(info, false), *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (info->api == LG_API_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        if (t->n_calls && !t->content.n)
            cJSON_AddNullToObject(m, "content");
        else
            cJSON_AddStringToObject(m, "content", t->content.p ? t->content.p : "");
        if (t->reasoning.n) cJSON_AddStringToObject(m, "reasoning_content", t->reasoning.p);
        if (t->n_calls) {
            cJSON *calls = cJSON_AddArrayToObject(m, "tool_calls");
            for (int i = 0; i < t->n_calls; i++) {
                char id[80];
                call_id(id, sizeof id, info, i);
                cJSON *tc = cJSON_CreateObject(), *f;
                cJSON_AddStringToObject(tc, "id", id);
                cJSON_AddStringToObject(tc, "type", "function");
                f = cJSON_AddObjectToObject(tc, "function");
                cJSON_AddStringToObject(f, "name", t->calls[i].name ? t->calls[i].name : "");
                cJSON_AddStringToObject(f, "arguments",
                                        t->calls[i].args.p ? t->calls[i].args.p : "{}");
                cJSON_AddItemToArray(calls, tc);
            }
        }
    } else {
        cJSON_AddStringToObject(c, "text", t->content.p ? t->content.p : "");
    }
    if (job->logprobs >= 0)
        cJSON_AddItemToObject(c, "logprobs", logprobs_json(info, &t->lps));
    else
        cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", job->finish_reason ? job->finish_reason : "stop");
    cJSON_AddItemToObject(o, "usage", usage_json(job));
    return lg_json_print_free(o);
}

/* ---- streaming -------------------------------------------------------------------- */

static void sse(lg_sbuf *out, cJSON *chunk) {
    char *s = lg_json_print_free(chunk);
    if (!s) {
        out->failed = true;
        return;
    }
    lg_sbuf_str(out, "data: ");
    lg_sbuf_str(out, s);
    lg_sbuf_str(out, "\n\n");
    free(s);
}

/* A chunk with one choice; returns the choice's delta (chat) or the choice (completion). */
static cJSON *chunk_with_choice(const lg_reply_info *info, cJSON **chunk, const char *finish) {
    *chunk = envelope(info, true);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(*chunk, "choices"), c);
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *delta = info->api == LG_API_CHAT ? cJSON_AddObjectToObject(c, "delta") : c;
    cJSON_AddNullToObject(c, "logprobs");
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    return delta;
}

void lg_openai_stream_events(lg_sbuf *out, const lg_reply_info *info, const lg_event *ev, size_t n,
                             const lg_logprob_list *lps, bool first) {
    cJSON *chunk, *held = NULL; /* the last chunk waits for the logprobs */
    if (first && info->api == LG_API_CHAT) {
        cJSON *d = chunk_with_choice(info, &chunk, NULL);
        cJSON_AddStringToObject(d, "role", "assistant");
        cJSON_AddStringToObject(d, "content", "");
        held = chunk;
    }
    for (size_t i = 0; i < n; i++) {
        const lg_event *e = &ev[i];
        if (e->kind == LG_EV_TOOL_END) continue;
        if (held) sse(out, held);
        cJSON *d = chunk_with_choice(info, &chunk, NULL);
        held = chunk;
        if (info->api == LG_API_COMPLETION) {
            cJSON_AddStringToObject(d, "text", e->text);
        } else if (e->kind == LG_EV_CONTENT) {
            cJSON_AddStringToObject(d, "content", e->text);
        } else if (e->kind == LG_EV_REASONING) {
            cJSON_AddStringToObject(d, "reasoning_content", e->text);
        } else {
            cJSON *tc = cJSON_CreateObject(), *f;
            cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"), tc);
            cJSON_AddNumberToObject(tc, "index", e->tool_index);
            if (e->kind == LG_EV_TOOL_START) {
                char id[80];
                call_id(id, sizeof id, info, e->tool_index);
                cJSON_AddStringToObject(tc, "id", id);
                cJSON_AddStringToObject(tc, "type", "function");
                f = cJSON_AddObjectToObject(tc, "function");
                cJSON_AddStringToObject(f, "name", e->text);
                cJSON_AddStringToObject(f, "arguments", "");
            } else {
                f = cJSON_AddObjectToObject(tc, "function");
                cJSON_AddStringToObject(f, "arguments", e->text);
            }
        }
    }
    if (lps && lps->n) {
        if (!held) { /* tokens without text yet (held back by a parser or stop string) */
            cJSON *d = chunk_with_choice(info, &held, NULL);
            if (info->api == LG_API_COMPLETION) cJSON_AddStringToObject(d, "text", "");
        }
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(held, "choices"), 0);
        cJSON_ReplaceItemInObjectCaseSensitive(c, "logprobs", logprobs_json(info, lps));
    }
    if (held) sse(out, held);
}

void lg_openai_stream_end(lg_sbuf *out, const lg_reply_info *info, const lg_job *job) {
    cJSON *chunk;
    if (job->error[0]) {
        lg_req_error e = {.status = 500, .type = "server_error"};
        snprintf(e.message, sizeof e.message, "%s", job->error);
        char *s = lg_openai_error_json(&e);
        lg_sbuf_printf(out, "data: %s\n\n", s ? s : "{}");
        free(s);
    } else {
        cJSON *d =
            chunk_with_choice(info, &chunk, job->finish_reason ? job->finish_reason : "stop");
        if (info->api == LG_API_COMPLETION) cJSON_AddStringToObject(d, "text", "");
        sse(out, chunk);
        if (info->include_usage) {
            chunk = envelope(info, true);
            cJSON_AddArrayToObject(chunk, "choices");
            cJSON_AddItemToObject(chunk, "usage", usage_json(job));
            sse(out, chunk);
        }
    }
    lg_sbuf_str(out, "data: [DONE]\n\n");
}

/* ---- metrics -------------------------------------------------------------------- */

void lg_metrics_text(lg_sbuf *out, lg_server *srv) {
    lg_sched_stats st;
    lg_sched_get_stats(srv->sched, &st);
#define METRIC(name, type, help, fmt, value)                                                       \
    lg_sbuf_printf(out,                                                                            \
                   "# HELP laguna_" name " " help "\n# TYPE laguna_" name " " type                 \
                   "\nlaguna_" name " " fmt "\n",                                                  \
                   value)
    METRIC("http_requests_total", "counter", "HTTP requests received.", "%lu",
           (unsigned long)srv->http_requests);
    METRIC("http_errors_total", "counter", "HTTP requests answered with an error status.", "%lu",
           (unsigned long)srv->http_errors);
    METRIC("requests_total", "counter", "Generation requests accepted.", "%llu",
           (unsigned long long)st.requests);
    METRIC("requests_rejected_total", "counter", "Requests refused because the queue was full.",
           "%llu", (unsigned long long)st.rejected);
    METRIC("requests_failed_total", "counter", "Requests ended by an engine error.", "%llu",
           (unsigned long long)st.failed);
    METRIC("requests_cancelled_total", "counter", "Requests whose client went away.", "%llu",
           (unsigned long long)st.cancelled);
    METRIC("prompt_tokens_total", "counter", "Prompt tokens of accepted requests.", "%llu",
           (unsigned long long)st.prompt_tokens);
    METRIC("generation_tokens_total", "counter", "Tokens generated.", "%llu",
           (unsigned long long)st.completion_tokens);
    METRIC("prefix_cache_hit_tokens_total", "counter",
           "Prompt tokens reused from the prefix cache.", "%llu",
           (unsigned long long)st.cached_tokens);
    METRIC("requests_running", "gauge", "Requests being decoded.", "%d", st.running);
    METRIC("requests_queued", "gauge", "Requests waiting for a sequence.", "%d", st.queued);
    METRIC("prefix_cache_sequences", "gauge", "Finished sequences kept for prefix reuse.", "%d",
           st.cached_seqs);
    METRIC("prefix_cache_pages", "gauge",
           "KV-cache pages only cached sequences hold (what evicting them all frees).", "%d",
           st.cache_pages);
    METRIC("prefix_cache_pages_budget", "gauge", "Most pages the prefix cache may hold.", "%d",
           st.cache_pages_budget);
    METRIC("prefix_cache_evictions_total", "counter",
           "Cached sequences evicted (least recently used first) for the budget or for room.",
           "%llu", (unsigned long long)st.cache_evictions);
    METRIC("kv_pages_used", "gauge", "KV-cache pages in use.", "%d", st.kv_pages_used);
    METRIC("kv_pages_total", "gauge", "KV-cache pages in the pool.", "%d", st.kv_pages_total);
    lg_sbuf_printf(out,
                   "# HELP laguna_time_to_first_token_seconds Time from arrival to the first "
                   "generated token.\n"
                   "# TYPE laguna_time_to_first_token_seconds summary\n"
                   "laguna_time_to_first_token_seconds_sum "
                   "%.6f\nlaguna_time_to_first_token_seconds_count %llu\n",
                   st.ttft_sum, (unsigned long long)st.ttft_count);
    METRIC("step_seconds_total", "counter", "Time spent in batched forward steps.", "%.6f",
           st.decode_seconds);
    METRIC("steps_total", "counter", "Batched forward steps.", "%llu",
           (unsigned long long)st.steps);
    METRIC("draft_tokens_total", "counter", "Tokens drafted by prompt lookup (--draft-lookup).",
           "%llu", (unsigned long long)st.drafted);
    METRIC("draft_accepted_tokens_total", "counter", "Drafted tokens the model agreed with.",
           "%llu", (unsigned long long)st.draft_accepted);
    METRIC("generation_tokens_per_second", "gauge", "Tokens generated per second of forward steps.",
           "%.3f", st.decode_seconds > 0 ? (double)st.completion_tokens / st.decode_seconds : 0.0);
#undef METRIC
}
