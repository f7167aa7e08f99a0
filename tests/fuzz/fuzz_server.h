/* Shared by the server's request harnesses (fuzz_openai_request,
 * fuzz_messages_request): a server object without a model or an HTTP
 * daemon (models/laguna-tiny's tokenizer, one of four chat templates, a
 * context of 2048), and what follows a parsed request: a made-up model reply
 * run through the parts that take the request's fields (its tools' schemas
 * in the chat parser, its stop strings in the stop matcher, its logprobs
 * count) into every reply the server would write, whole and streamed, in
 * the request's API. The oracles: no crash or leak (ASan), every JSON
 * document written parses, every tool call's argument fragments join into
 * a JSON object. Run from the repository root. */
#ifndef LAGUNA_FUZZ_SERVER_H
#define LAGUNA_FUZZ_SERVER_H

#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "io/file_util.h"
#include "laguna_chat.h"
#include "laguna_generate.h"
#include "server/server_internal.h"

static const char *const FUZZ_TEMPLATES[] = {
    "models/laguna-tiny", /* as the server loads it, with its tokenizer_config.json */
    "tests/fixtures/chat/laguna-real/poolside-Laguna-XS.2.jinja",
    "tests/fixtures/chat/laguna-real/poolside-Laguna-XS-2.1.jinja",
    "tests/fixtures/chat/laguna-real/poolside-Laguna-S-2.1.jinja",
};
#define FUZZ_N_TEMPLATES (sizeof FUZZ_TEMPLATES / sizeof FUZZ_TEMPLATES[0])

static laguna_tokenizer *fuzz_tok;
static laguna_chat_template *fuzz_tmpls[FUZZ_N_TEMPLATES];
static lg_server fuzz_srvs[FUZZ_N_TEMPLATES];

static void fuzz_die(const char *what, const char *msg) {
    fprintf(stderr, "fuzz server harness: %s: %s (run from the repository root)\n", what, msg);
    abort();
}

/* The server for template k (loaded on first use). */
static lg_server *fuzz_server(unsigned k) {
    static int loaded;
    if (!loaded) {
        loaded = 1;
        laguna_error err = {0};
        if (laguna_tokenizer_load("models/laguna-tiny", &fuzz_tok, &err))
            fuzz_die("tokenizer", err.message);
        for (size_t i = 0; i < FUZZ_N_TEMPLATES; i++) {
            char *text = NULL;
            size_t len = 0;
            if (i == 0 ? laguna_chat_template_load(FUZZ_TEMPLATES[i], &fuzz_tmpls[i], &err)
                       : lg_read_file(FUZZ_TEMPLATES[i], 1 << 20, &text, &len, &err) ||
                             laguna_chat_template_compile(text, len, FUZZ_TEMPLATES[i], NULL,
                                                          &fuzz_tmpls[i], &err))
                fuzz_die(FUZZ_TEMPLATES[i], err.message);
            free(text);
            laguna_chat_limits lim = {
                .max_output_bytes = 1 << 20, .max_memory_bytes = 64 << 20, .max_steps = 200000};
            laguna_chat_template_set_limits(fuzz_tmpls[i], &lim);
            lg_server *s = &fuzz_srvs[i];
            s->tok = fuzz_tok;
            s->tmpl = fuzz_tmpls[i];
            pthread_mutex_init(&s->tmpl_mu, NULL);
            s->n_ctx = 2048;
            s->vocab = (int)laguna_tokenizer_vocab_size(fuzz_tok);
            snprintf(s->model_name, sizeof s->model_name, "laguna-tiny");
        }
    }
    return &fuzz_srvs[k % FUZZ_N_TEMPLATES];
}

/* Aborts unless every "data: " line of an SSE body (but [DONE]) is JSON. */
static void fuzz_check_sse(const lg_sbuf *b) {
    const char *p = b->p, *end = b->p + b->n;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > 6 && !memcmp(p, "data: ", 6) && strncmp(p + 6, "[DONE]", 6)) {
            cJSON *j = cJSON_ParseWithLength(p + 6, len - 6);
            if (!j) fuzz_die("an SSE event is not JSON", p);
            cJSON_Delete(j);
        }
        p = nl ? nl + 1 : NULL;
    }
}

static void fuzz_check_json(char *s) {
    if (!s) return; /* out of memory */
    cJSON *j = cJSON_Parse(s);
    if (!j) fuzz_die("a reply is not JSON", s);
    cJSON_Delete(j);
    free(s);
}

/* Runs `reply` (model output, tokenized with special tokens) through the
 * request's job as the scheduler would, and writes every reply. */
static void fuzz_reply(lg_server *srv, lg_job *job, const lg_reply_info *info, const char *reply,
                       size_t reply_len) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    laguna_error err = {0};
    if (laguna_tokenizer_encode(srv->tok, reply, reply_len, true, &ids, &n_ids, &err)) return;
    if (n_ids > 512) n_ids = 512;
    lg_event_list evs = {0}, out = {0};
    lg_chat_parser *parser = NULL;
    laguna_stop_matcher *stop = NULL;
    if (laguna_stop_matcher_new((const char *const *)job->stops, (size_t)job->n_stops, &stop, &err))
        goto done;
    if (job->chat && lg_chat_parser_new(srv->tok, job->tools, job->in_reasoning, &parser))
        goto done;
    bool stopped = false;
    for (size_t i = 0; i < n_ids && !stopped; i++) {
        job->n_completion++;
        if (parser) {
            lg_chat_parser_push(parser, ids[i], &evs);
        } else {
            char *t = NULL;
            size_t len = 0;
            if (!laguna_tokenizer_decode(srv->tok, &ids[i], 1, false, &t, &len, NULL)) {
                lg_events_add(&evs, LG_EV_CONTENT, 0, t, len);
                laguna_tokenizer_free_text(t);
            }
        }
        if (i + 1 == n_ids && parser) lg_chat_parser_finish(parser, &evs);
        for (size_t k = 0; k < evs.n && !stopped; k++) { /* content through the stop strings */
            const lg_event *e = &evs.items[k];
            if (e->kind != LG_EV_CONTENT) {
                lg_events_add(&out, e->kind, e->tool_index, e->text, e->len);
                continue;
            }
            const char *rel;
            size_t rel_len;
            if (laguna_stop_matcher_push(stop, e->text, e->len, &rel, &rel_len, &stopped, NULL))
                break;
            if (rel_len) lg_events_add(&out, LG_EV_CONTENT, 0, rel, rel_len);
        }
        lg_events_clear(&evs);
    }
    if (!stopped) {
        const char *t;
        size_t len;
        if (!laguna_stop_matcher_flush(stop, &t, &len, NULL) && len)
            lg_events_add(&out, LG_EV_CONTENT, 0, t, len);
    }
    job->finish_reason = stopped                                    ? "stop"
                         : parser && lg_chat_parser_n_calls(parser) ? "tool_calls"
                                                                    : "length";
    job->stop_sequence = stopped ? laguna_stop_matcher_matched(stop) : NULL;
    job->n_cached = job->n_prompt / 2;
    job->done = true;

    /* logprobs, when asked for: made up, over real ids */
    lg_logprob_list lps = {0};
    for (size_t i = 0; job->logprobs >= 0 && i < n_ids; i++) {
        lg_token_logprob lp = {.id = ids[i], .logprob = -0.5f * (float)i};
        for (int k = 0; k < job->logprobs && k < LG_MAX_TOP_LOGPROBS; k++) {
            lp.top_id[lp.n_top] = ids[(i + (size_t)k) % n_ids];
            lp.top_logprob[lp.n_top++] = -(float)k;
        }
        lg_logprobs_add(&lps, &lp);
    }

    /* the whole reply: the tool calls' arguments are JSON objects */
    lg_turn turn = {0};
    for (size_t i = 0; i < out.n; i++)
        lg_turn_add(&turn, &out.items[i]);
    for (int c = 0; c < turn.n_calls; c++) {
        cJSON *a = cJSON_ParseWithLength(turn.calls[c].args.p ? turn.calls[c].args.p : "{}",
                                         turn.calls[c].args.p ? turn.calls[c].args.n : 2);
        if (!cJSON_IsObject(a))
            fuzz_die("tool call arguments are not a JSON object",
                     turn.calls[c].args.p ? turn.calls[c].args.p : "");
        cJSON_Delete(a);
    }
    lg_logprobs_move(&turn.lps, &lps);
    if (info->api == LG_API_MESSAGES) {
        fuzz_check_json(lg_anthropic_response(info, &turn, job));
    } else if (info->api == LG_API_RESPONSES) {
        lg_responses_stream items = {0};
        lg_responses_stream_events(NULL, &items, info, job, out.items, out.n);
        fuzz_check_json(lg_responses_response(info, &items, job));
        lg_responses_stream_free(&items);
    } else {
        fuzz_check_json(lg_openai_response(info, &turn, job));
    }
    lg_turn_free(&turn);

    /* streamed, in two deliveries */
    lg_sbuf sse = {0};
    size_t half = out.n / 2;
    lg_event *rest = out.items ? out.items + half : NULL;
    if (info->api == LG_API_MESSAGES) {
        lg_anthropic_stream st = {.open_kind = -1};
        lg_anthropic_stream_events(&sse, &st, info, job, out.items, half);
        lg_anthropic_stream_events(&sse, &st, info, job, rest, out.n - half);
        lg_anthropic_stream_end(&sse, &st, info, job);
    } else if (info->api == LG_API_RESPONSES) {
        lg_responses_stream st = {0};
        lg_responses_stream_events(&sse, &st, info, job, out.items, half);
        lg_responses_stream_events(&sse, &st, info, job, rest, out.n - half);
        lg_responses_stream_end(&sse, &st, info, job);
        lg_responses_stream_free(&st);
    } else {
        lg_openai_stream_events(&sse, info, out.items, half, NULL, true);
        lg_openai_stream_events(&sse, info, rest, out.n - half, NULL, false);
        lg_openai_stream_end(&sse, info, job);
    }
    fuzz_check_sse(&sse);
    lg_sbuf_free(&sse);
    lg_logprobs_free(&lps);
done:
    lg_events_free(&evs);
    lg_events_free(&out);
    lg_chat_parser_free(parser);
    laguna_stop_matcher_free(stop);
    laguna_tokenizer_free_ids(ids);
}

/* Splits an input into the request body and the model's reply (after FUZZ_SEP). */
static void fuzz_split_request(const uint8_t *data, size_t size, const uint8_t **body,
                               size_t *body_len, const uint8_t **reply, size_t *reply_len) {
    const uint8_t *part[2];
    size_t len[2];
    int n = fuzz_split(data, size, part, len, 2);
    *body = part[0];
    *body_len = len[0];
    *reply = n > 1 ? part[1] : (const uint8_t *)"";
    *reply_len = n > 1 ? len[1] : 0;
}

#endif
