/* laguna serve with models/laguna-tiny-chat, over HTTP on a loopback port: full agent round trips
 * on both APIs, streamed and not (a request with tools -> structured tool_calls / tool_use blocks
 * -> the tool's result sent back -> a final answer that uses it, with no tags in the text), the
 * streamed turns equal to the whole ones, turn 2 served from the prefix cache, and the reasoning
 * split with thinking on (reasoning_content / thinking blocks apart from the answer). The requests
 * come from tests/data/tinychat_cases.json. Skipped while the model is absent. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "http_client.h"
#include "served_model.h"
#include "testutil.h"

#define MODEL "models/laguna-tiny-chat"
#define KEY "sk-tinychat"

static int g_port;
static cJSON *g_cases;

static const char *TAGS[] = {"<think>",      "</think>",        "<tool_call>",
                             "</tool_call>", "<arg_key>",       "<arg_value>",
                             "</assistant>", "<tool_response>", "〈|EOS|〉"};

static bool has_tag(const char *s) {
    for (size_t i = 0; i < sizeof TAGS / sizeof *TAGS; i++)
        if (strstr(s, TAGS[i])) return true;
    return false;
}

static cJSON *case_request(const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g_cases, "cases")) {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), name))
            return cJSON_Duplicate(cJSON_GetObjectItem(c, "request"), 1);
    }
    CHECKF(0, "no case %s", name);
    return cJSON_CreateObject();
}

static const char *str(const cJSON *o, const char *name) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, name));
    return s ? s : "";
}

static void cat(char *dst, size_t cap, const char *s) {
    if (s) strncat(dst, s, cap - strlen(dst) - 1);
}

/* One assistant turn as a client sees it, from either API, streamed or not. */
typedef struct {
    int status;
    char content[2048], reasoning[2048], stop[32];
    int n_calls;
    char ids[4][64], names[4][64], args[4][512];
    int cached;    /* usage: prompt tokens served from the prefix cache (-1 absent) */
    int generated; /* usage: completion (output) tokens, whole replies only (-1 absent) */
    cJSON *blocks; /* /v1/messages: the content blocks to send back */
} turn;

static void turn_free(turn *t) {
    cJSON_Delete(t->blocks);
}

/* Starts a turn: t emptied, the request posted to path (and freed), the status checked. The
 * reply's body (caller frees), or NULL when the status is not 200 and there is nothing to read. */
static char *post_turn(const char *path, cJSON *req, turn *t) {
    memset(t, 0, sizeof *t);
    t->cached = -1;
    t->generated = -1;
    char *json = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    http_reply r = http_request(g_port, "POST", path, "Authorization: Bearer " KEY, json);
    free(json);
    t->status = r.status;
    CHECKF(r.status == 200, "%d %s", r.status, r.body ? r.body : "");
    if (r.status == 200) return r.body;
    free(r.body);
    return NULL;
}

/* ---- OpenAI ------------------------------------------------------------------------------ */

static void openai_turn(const cJSON *request, bool stream, turn *t) {
    cJSON *req = cJSON_Duplicate(request, 1);
    cJSON_AddStringToObject(req, "model", "laguna-tiny-chat");
    if (!cJSON_GetObjectItem(req, "max_tokens")) cJSON_AddNumberToObject(req, "max_tokens", 160);
    cJSON_AddNumberToObject(req, "temperature", 0);
    if (stream) {
        cJSON_AddTrueToObject(req, "stream");
        cJSON_AddTrueToObject(cJSON_AddObjectToObject(req, "stream_options"), "include_usage");
    }
    char *body = post_turn("/v1/chat/completions", req, t);
    if (!body) return;
    if (!stream) {
        cJSON *j = cJSON_Parse(body),
              *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        cJSON *m = cJSON_GetObjectItem(c0, "message"), *tc;
        cat(t->content, sizeof t->content, cJSON_GetStringValue(cJSON_GetObjectItem(m, "content")));
        cat(t->reasoning, sizeof t->reasoning, str(m, "reasoning_content"));
        snprintf(t->stop, sizeof t->stop, "%s", str(c0, "finish_reason"));
        cJSON_ArrayForEach(tc, cJSON_GetObjectItem(m, "tool_calls")) {
            if (t->n_calls == 4) break;
            cJSON *f = cJSON_GetObjectItem(tc, "function");
            CHECK(!strcmp(str(tc, "type"), "function"));
            snprintf(t->ids[t->n_calls], 64, "%s", str(tc, "id"));
            snprintf(t->names[t->n_calls], 64, "%s", str(f, "name"));
            snprintf(t->args[t->n_calls++], 512, "%s", str(f, "arguments"));
        }
        cJSON *ct = cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens_details"),
            "cached_tokens");
        if (cJSON_IsNumber(ct)) t->cached = ct->valueint;
        cJSON *gen = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens");
        if (cJSON_IsNumber(gen)) t->generated = gen->valueint;
        cJSON_Delete(j);
    } else {
        bool done;
        cJSON *chunks = sse_payloads(body, &done), *ch;
        CHECKF(done, "the stream did not end with [DONE]");
        cJSON_ArrayForEach(ch, chunks) {
            cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(ch, "choices"), 0);
            cJSON *d = cJSON_GetObjectItem(c0, "delta"), *tc;
            cat(t->content, sizeof t->content,
                cJSON_GetStringValue(cJSON_GetObjectItem(d, "content")));
            cat(t->reasoning, sizeof t->reasoning, str(d, "reasoning_content"));
            if (cJSON_IsString(cJSON_GetObjectItem(c0, "finish_reason")))
                snprintf(t->stop, sizeof t->stop, "%s", str(c0, "finish_reason"));
            cJSON_ArrayForEach(tc, cJSON_GetObjectItem(d, "tool_calls")) {
                int k = cJSON_GetObjectItem(tc, "index")
                            ? cJSON_GetObjectItem(tc, "index")->valueint
                            : -1;
                CHECKF(k >= 0 && k < 4 && k <= t->n_calls, "tool call delta index %d", k);
                if (k < 0 || k >= 4 || k > t->n_calls) continue;
                if (k == t->n_calls) t->n_calls++;
                cJSON *f = cJSON_GetObjectItem(tc, "function");
                cat(t->ids[k], 64, cJSON_GetStringValue(cJSON_GetObjectItem(tc, "id")));
                cat(t->names[k], 64, cJSON_GetStringValue(cJSON_GetObjectItem(f, "name")));
                cat(t->args[k], 512, cJSON_GetStringValue(cJSON_GetObjectItem(f, "arguments")));
            }
            cJSON *ct = cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "usage"), "prompt_tokens_details"),
                "cached_tokens");
            if (cJSON_IsNumber(ct)) t->cached = ct->valueint;
        }
        cJSON_Delete(chunks);
    }
    free(body);
}

/* The request of the next turn: the assistant's message as the openai SDK sends it back (content
 * null, tool_calls with string arguments) and a tool message per call. */
static cJSON *openai_next(const cJSON *request, const turn *t, const char *const *results) {
    cJSON *next = cJSON_Duplicate(request, 1), *msgs = cJSON_GetObjectItem(next, "messages");
    cJSON *a = cJSON_CreateObject(), *calls;
    cJSON_AddStringToObject(a, "role", "assistant");
    if (t->content[0])
        cJSON_AddStringToObject(a, "content", t->content);
    else
        cJSON_AddNullToObject(a, "content");
    if (t->reasoning[0]) cJSON_AddStringToObject(a, "reasoning_content", t->reasoning);
    calls = cJSON_AddArrayToObject(a, "tool_calls");
    for (int k = 0; k < t->n_calls; k++) {
        cJSON *tc = cJSON_CreateObject(), *f;
        cJSON_AddStringToObject(tc, "id", t->ids[k]);
        cJSON_AddStringToObject(tc, "type", "function");
        f = cJSON_AddObjectToObject(tc, "function");
        cJSON_AddStringToObject(f, "name", t->names[k]);
        cJSON_AddStringToObject(f, "arguments", t->args[k]);
        cJSON_AddItemToArray(calls, tc);
    }
    cJSON_AddItemToArray(msgs, a);
    for (int k = 0; k < t->n_calls; k++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "tool");
        cJSON_AddStringToObject(m, "tool_call_id", t->ids[k]);
        cJSON_AddStringToObject(m, "content", results[k]);
        cJSON_AddItemToArray(msgs, m);
    }
    return next;
}

/* ---- Anthropic --------------------------------------------------------------------------- */

/* A case's OpenAI-style request in the Messages API's shape. */
static cJSON *to_anthropic(const cJSON *request) {
    cJSON *out = cJSON_CreateObject(), *tools = cJSON_AddArrayToObject(out, "tools"), *t;
    cJSON_AddStringToObject(out, "model", "laguna-tiny-chat");
    cJSON_AddNumberToObject(out, "max_tokens", 160);
    cJSON_AddNumberToObject(out, "temperature", 0);
    cJSON_AddItemToObject(out, "messages",
                          cJSON_Duplicate(cJSON_GetObjectItem(request, "messages"), 1));
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(request, "tools")) {
        cJSON *f = cJSON_GetObjectItem(t, "function"), *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "name", str(f, "name"));
        cJSON_AddStringToObject(a, "description", str(f, "description"));
        cJSON_AddItemToObject(a, "input_schema",
                              cJSON_Duplicate(cJSON_GetObjectItem(f, "parameters"), 1));
        cJSON_AddItemToArray(tools, a);
    }
    const cJSON *kw = cJSON_GetObjectItem(request, "chat_template_kwargs");
    if (cJSON_IsTrue(cJSON_GetObjectItem(kw, "enable_thinking"))) {
        cJSON *th = cJSON_AddObjectToObject(out, "thinking");
        cJSON_AddStringToObject(th, "type", "enabled");
        cJSON_AddNumberToObject(th, "budget_tokens", 1024);
    }
    return out;
}

static void anth_block(turn *t, const cJSON *b) {
    const char *type = str(b, "type");
    if (!strcmp(type, "text")) cat(t->content, sizeof t->content, str(b, "text"));
    if (!strcmp(type, "thinking")) cat(t->reasoning, sizeof t->reasoning, str(b, "thinking"));
    if (!strcmp(type, "tool_use") && t->n_calls < 4) {
        snprintf(t->ids[t->n_calls], 64, "%s", str(b, "id"));
        snprintf(t->names[t->n_calls], 64, "%s", str(b, "name"));
        char *in = cJSON_PrintUnformatted(cJSON_GetObjectItem(b, "input"));
        snprintf(t->args[t->n_calls++], 512, "%s", in ? in : "");
        free(in);
    }
}

static void anthropic_turn(const cJSON *request, bool stream, turn *t) {
    cJSON *req = cJSON_Duplicate(request, 1);
    if (stream) cJSON_AddTrueToObject(req, "stream");
    char *body = post_turn("/v1/messages", req, t);
    if (!body) return;
    if (!stream) {
        cJSON *j = cJSON_Parse(body), *b;
        cJSON_ArrayForEach(b, cJSON_GetObjectItem(j, "content")) anth_block(t, b);
        t->blocks = cJSON_Duplicate(cJSON_GetObjectItem(j, "content"), 1);
        snprintf(t->stop, sizeof t->stop, "%s", str(j, "stop_reason"));
        cJSON *cr = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "cache_read_input_tokens");
        if (cJSON_IsNumber(cr)) t->cached = cr->valueint;
        cJSON_Delete(j);
    } else { /* rebuild the blocks from the events, as the SDK's stream helper does */
        bool done;
        cJSON *events = sse_payloads(body, &done), *ev;
        t->blocks = cJSON_CreateArray();
        cJSON *input_json[8] = {0};
        cJSON_ArrayForEach(ev, events) {
            const char *type = str(ev, "type");
            int k =
                cJSON_GetObjectItem(ev, "index") ? cJSON_GetObjectItem(ev, "index")->valueint : -1;
            if (!strcmp(type, "content_block_start")) {
                CHECKF(k == cJSON_GetArraySize(t->blocks) && k < 8, "block index %d", k);
                cJSON_AddItemToArray(t->blocks,
                                     cJSON_Duplicate(cJSON_GetObjectItem(ev, "content_block"), 1));
            } else if (!strcmp(type, "content_block_delta") && k >= 0 && k < 8) {
                cJSON *b = cJSON_GetArrayItem(t->blocks, k), *d = cJSON_GetObjectItem(ev, "delta");
                const char *dt = str(d, "type");
                const char *field = !strcmp(dt, "text_delta")       ? "text"
                                    : !strcmp(dt, "thinking_delta") ? "thinking"
                                                                    : NULL;
                if (b && field) {
                    char *joined = NULL;
                    size_t n = strlen(str(b, field)) + strlen(str(d, field)) + 1;
                    joined = malloc(n);
                    snprintf(joined, n, "%s%s", str(b, field), str(d, field));
                    cJSON_ReplaceItemInObject(b, field, cJSON_CreateString(joined));
                    free(joined);
                }
                if (b && !strcmp(dt, "input_json_delta")) {
                    if (!input_json[k]) input_json[k] = cJSON_CreateString("");
                    size_t n =
                        strlen(input_json[k]->valuestring) + strlen(str(d, "partial_json")) + 1;
                    char *joined = malloc(n);
                    snprintf(joined, n, "%s%s", input_json[k]->valuestring, str(d, "partial_json"));
                    cJSON_Delete(input_json[k]);
                    input_json[k] = cJSON_CreateString(joined);
                    free(joined);
                }
            } else if (!strcmp(type, "content_block_stop") && k >= 0 && k < 8 && input_json[k]) {
                cJSON *in = cJSON_Parse(input_json[k]->valuestring);
                CHECKF(in != NULL, "input_json_delta does not join to JSON: %s",
                       input_json[k]->valuestring);
                cJSON_ReplaceItemInObject(cJSON_GetArrayItem(t->blocks, k), "input",
                                          in ? in : cJSON_CreateObject());
            } else if (!strcmp(type, "message_delta")) {
                snprintf(t->stop, sizeof t->stop, "%s",
                         str(cJSON_GetObjectItem(ev, "delta"), "stop_reason"));
            } else if (!strcmp(type, "message_start")) {
                cJSON *u = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "message"), "usage");
                cJSON *cr = cJSON_GetObjectItem(u, "cache_read_input_tokens");
                if (cJSON_IsNumber(cr)) t->cached = cr->valueint;
            }
        }
        const char *last = str(cJSON_GetArrayItem(events, cJSON_GetArraySize(events) - 1), "type");
        CHECKF(!strcmp(last, "message_stop"), "the stream ended with '%s'", last);
        for (int k = 0; k < 8; k++)
            cJSON_Delete(input_json[k]);
        cJSON *b;
        cJSON_ArrayForEach(b, t->blocks) anth_block(t, b);
        cJSON_Delete(events);
    }
    free(body);
}

static cJSON *anthropic_next(const cJSON *request, const turn *t, const char *const *results) {
    cJSON *next = cJSON_Duplicate(request, 1), *msgs = cJSON_GetObjectItem(next, "messages");
    cJSON *a = cJSON_CreateObject(), *u = cJSON_CreateObject(), *content;
    cJSON_AddStringToObject(a, "role", "assistant");
    cJSON_AddItemToObject(a, "content", cJSON_Duplicate(t->blocks, 1));
    cJSON_AddItemToArray(msgs, a);
    cJSON_AddStringToObject(u, "role", "user");
    content = cJSON_AddArrayToObject(u, "content");
    for (int k = 0; k < t->n_calls; k++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", "tool_result");
        cJSON_AddStringToObject(b, "tool_use_id", t->ids[k]);
        cJSON_AddStringToObject(b, "content", results[k]);
        cJSON_AddItemToArray(content, b);
    }
    cJSON_AddItemToArray(msgs, u);
    return next;
}

/* ---- OpenAI Responses -------------------------------------------------------------------- */

/* A case's chat request in the Responses API's shape: messages as input items, the tools
 * flattened, thinking as reasoning.effort. */
static cJSON *to_responses(const cJSON *request) {
    cJSON *out = cJSON_CreateObject(), *tools = cJSON_AddArrayToObject(out, "tools"), *t;
    cJSON_AddStringToObject(out, "model", "laguna-tiny-chat");
    cJSON_AddNumberToObject(out, "max_output_tokens", 160);
    cJSON_AddNumberToObject(out, "temperature", 0);
    cJSON_AddItemToObject(out, "input",
                          cJSON_Duplicate(cJSON_GetObjectItem(request, "messages"), 1));
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(request, "tools")) {
        cJSON *f = cJSON_GetObjectItem(t, "function"), *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "type", "function");
        cJSON_AddStringToObject(a, "name", str(f, "name"));
        cJSON_AddStringToObject(a, "description", str(f, "description"));
        cJSON_AddItemToObject(a, "parameters",
                              cJSON_Duplicate(cJSON_GetObjectItem(f, "parameters"), 1));
        cJSON_AddItemToArray(tools, a);
    }
    cJSON *think = cJSON_GetObjectItem(cJSON_GetObjectItem(request, "chat_template_kwargs"),
                                       "enable_thinking");
    if (cJSON_IsBool(think))
        cJSON_AddStringToObject(cJSON_AddObjectToObject(out, "reasoning"), "effort",
                                cJSON_IsTrue(think) ? "medium" : "none");
    return out;
}

/* A response's output items into the turn (text, reasoning, calls), its status as the stop. */
static void responses_fill(turn *t, const cJSON *response) {
    cJSON *it;
    snprintf(t->stop, sizeof t->stop, "%s", str(response, "status"));
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(response, "output")) {
        const char *type = str(it, "type");
        cJSON *part;
        if (!strcmp(type, "message") || !strcmp(type, "reasoning"))
            cJSON_ArrayForEach(part, cJSON_GetObjectItem(it, "content"))
                cat(!strcmp(type, "message") ? t->content : t->reasoning, sizeof t->content,
                    str(part, "text"));
        if (!strcmp(type, "function_call") && t->n_calls < 4) {
            snprintf(t->ids[t->n_calls], 64, "%s", str(it, "call_id"));
            snprintf(t->names[t->n_calls], 64, "%s", str(it, "name"));
            snprintf(t->args[t->n_calls++], 512, "%s", str(it, "arguments"));
        }
    }
    cJSON *u = cJSON_GetObjectItem(response, "usage");
    cJSON *ct = cJSON_GetObjectItem(cJSON_GetObjectItem(u, "input_tokens_details"), "cached_tokens");
    if (cJSON_IsNumber(ct)) t->cached = ct->valueint;
    cJSON *gen = cJSON_GetObjectItem(u, "output_tokens");
    if (cJSON_IsNumber(gen)) t->generated = gen->valueint;
    t->blocks = cJSON_Duplicate(cJSON_GetObjectItem(response, "output"), 1);
}

/* A streamed response: sequence numbers 0, 1, 2, ...; the deltas of each output item joined
 * equal to the text or arguments its .done events and the final response give; the stream ends
 * with response.completed (or .incomplete). The turn is filled from the final response. */
static void responses_stream(const char *body, turn *t) {
    bool done;
    cJSON *events = sse_payloads(body, &done), *ev, *final = NULL;
    char joined[8][2048] = {{0}};
    int seq = 0;
    cJSON_ArrayForEach(ev, events) {
        const char *type = str(ev, "type");
        cJSON *sn = cJSON_GetObjectItem(ev, "sequence_number");
        CHECKF(cJSON_IsNumber(sn) && sn->valueint == seq, "event %d (%s): sequence_number %d", seq,
               type, cJSON_IsNumber(sn) ? sn->valueint : -1);
        seq++;
        cJSON *oi = cJSON_GetObjectItem(ev, "output_index");
        int k = cJSON_IsNumber(oi) ? oi->valueint : -1;
        if (strstr(type, ".delta") && k >= 0 && k < 8)
            cat(joined[k], sizeof joined[k], str(ev, "delta"));
        if ((!strcmp(type, "response.output_text.done") ||
             !strcmp(type, "response.reasoning_text.done")) && k >= 0 && k < 8)
            CHECKF(!strcmp(joined[k], str(ev, "text")), "item %d: deltas '%s', done '%s'", k,
                   joined[k], str(ev, "text"));
        if (!strcmp(type, "response.function_call_arguments.done") && k >= 0 && k < 8)
            CHECKF(!strcmp(joined[k], str(ev, "arguments")), "call %d: deltas '%s', done '%s'", k,
                   joined[k], str(ev, "arguments"));
        if (!strcmp(type, "response.completed") || !strcmp(type, "response.incomplete"))
            final = cJSON_GetObjectItem(ev, "response");
    }
    const char *last = str(cJSON_GetArrayItem(events, cJSON_GetArraySize(events) - 1), "type");
    CHECKF(final && (!strcmp(last, "response.completed") || !strcmp(last, "response.incomplete")),
           "the stream ended with '%s'", last);
    CHECKF(!done, "a Responses stream sent [DONE]");
    if (final) {
        int k = 0;
        cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(final, "output")) {
            const char *type = str(it, "type");
            const char *text = !strcmp(type, "function_call")
                                   ? str(it, "arguments")
                                   : str(cJSON_GetArrayItem(cJSON_GetObjectItem(it, "content"), 0),
                                         "text");
            CHECKF(k >= 8 || !strcmp(joined[k], text), "final item %d '%s', streamed '%s'", k,
                   text, k < 8 ? joined[k] : "");
            k++;
        }
        responses_fill(t, final);
    }
    cJSON_Delete(events);
}

static void responses_turn(const cJSON *request, bool stream, turn *t) {
    cJSON *req = cJSON_Duplicate(request, 1);
    if (stream) cJSON_AddTrueToObject(req, "stream");
    char *body = post_turn("/v1/responses", req, t);
    if (!body) return;
    if (stream) {
        responses_stream(body, t);
    } else {
        cJSON *j = cJSON_Parse(body);
        CHECKF(j && !strcmp(str(j, "object"), "response"), "not a response: %.200s", body);
        responses_fill(t, j);
        cJSON_Delete(j);
    }
    free(body);
}

/* The next request as Codex-style agents send it: the whole conversation again, the previous
 * output items as they came (reasoning and function calls), then a function_call_output each. */
static cJSON *responses_next(const cJSON *request, const turn *t, const char *const *results) {
    cJSON *next = cJSON_Duplicate(request, 1), *input = cJSON_GetObjectItem(next, "input"), *it;
    cJSON_ArrayForEach(it, t->blocks) cJSON_AddItemToArray(input, cJSON_Duplicate(it, 1));
    for (int k = 0; k < t->n_calls; k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "function_call_output");
        cJSON_AddStringToObject(o, "call_id", t->ids[k]);
        cJSON_AddStringToObject(o, "output", results[k]);
        cJSON_AddItemToArray(input, o);
    }
    return next;
}

/* ---- the round trips --------------------------------------------------------------------- */

static void same_turn(const char *what, const turn *a, const turn *b) {
    CHECKF(
        !strcmp(a->content, b->content) && !strcmp(a->reasoning, b->reasoning) &&
            !strcmp(a->stop, b->stop) && a->n_calls == b->n_calls,
        "%s: streamed ('%s' / '%s', %s, %d calls) differs from whole ('%s' / '%s', %s, %d calls)",
        what, a->reasoning, a->content, a->stop, a->n_calls, b->reasoning, b->content, b->stop,
        b->n_calls);
    for (int k = 0; k < a->n_calls && k < b->n_calls; k++) {
        cJSON *x = cJSON_Parse(a->args[k]), *y = cJSON_Parse(b->args[k]);
        CHECKF(!strcmp(a->names[k], b->names[k]) && x && y && cJSON_Compare(x, y, true),
               "%s: streamed call %s(%s) vs whole %s(%s)", what, a->names[k], a->args[k],
               b->names[k], b->args[k]);
        cJSON_Delete(x);
        cJSON_Delete(y);
    }
}

/* Turn 1 of case weather_call (or think_weather_call): one get_weather call for the case's city.
 * Turn 2, after the result: an answer that uses it. Both, streamed and not, on one API. */
typedef enum { API_OPENAI, API_ANTHROPIC, API_RESPONSES } api_kind;

static void round_trip(api_kind api, const char *case_name, const char *city) {
    static void (*const turn_of[])(const cJSON *, bool, turn *) = {openai_turn, anthropic_turn,
                                                                   responses_turn};
    static cJSON *(*const next_of[])(const cJSON *, const turn *, const char *const *) = {
        openai_next, anthropic_next, responses_next};
    static const char *const tool_stops[] = {"tool_calls", "tool_use", "completed"};
    static const char *const end_stops[] = {"stop", "end_turn", "completed"};
    const char *tool_stop = tool_stops[api], *end_stop = end_stops[api];
    cJSON *oa = case_request(case_name);
    cJSON *req = api == API_ANTHROPIC   ? to_anthropic(oa)
                 : api == API_RESPONSES ? to_responses(oa)
                                        : cJSON_Duplicate(oa, 1);
    bool think = cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(oa, "chat_template_kwargs"), "enable_thinking"));
    turn t1[2], t2[2];
    char result[256];
    snprintf(result, sizeof result,
             "{\"city\": \"%s\", \"temperature\": 17, \"unit\": \"celsius\", \"condition\": "
             "\"cloudy\"}",
             city);
    const char *results[] = {result};
    cJSON *next = NULL;
    for (int s = 0; s < 2; s++) {
        turn *t = &t1[s];
        turn_of[api](req, s == 1, t);
        CHECKF(!strcmp(t->stop, tool_stop) && t->n_calls == 1 &&
                   !strcmp(t->names[0], "get_weather"),
               "%s stream=%d: stop %s, %d calls, '%s' / '%s'", case_name, s, t->stop, t->n_calls,
               t->reasoning, t->content);
        cJSON *args = cJSON_Parse(t->args[0]);
        CHECKF(args && !strcmp(str(args, "city"), city) && cJSON_GetArraySize(args) == 1,
               "%s stream=%d: arguments %s", case_name, s, t->args[0]);
        cJSON_Delete(args);
        CHECKF(t->ids[0][0], "%s: the call has no id", case_name);
        CHECKF(!has_tag(t->content) && !has_tag(t->reasoning), "%s: tags in '%s' / '%s'", case_name,
               t->reasoning, t->content);
        CHECKF(think == (t->reasoning[0] != 0), "%s: reasoning '%s' with thinking %s", case_name,
               t->reasoning, think ? "on" : "off");
    }
    same_turn(case_name, &t1[1], &t1[0]);
    if (t1[0].n_calls != 1) goto done;
    next = next_of[api](req, &t1[0], results);
    for (int s = 0; s < 2; s++) {
        turn *t = &t2[s];
        turn_of[api](next, s == 1, t);
        CHECKF(!strcmp(t->stop, end_stop) && t->n_calls == 0, "%s turn 2 stream=%d: %s, %d calls",
               case_name, s, t->stop, t->n_calls);
        CHECKF(strstr(t->content, city) && strstr(t->content, "17") &&
                   strstr(t->content, "cloudy") && !has_tag(t->content) && !has_tag(t->reasoning),
               "%s turn 2 stream=%d: the answer '%s' / '%s'", case_name, s, t->reasoning,
               t->content);
        CHECKF(think == (t->reasoning[0] != 0), "%s turn 2: reasoning '%s'", case_name,
               t->reasoning);
        /* turn 2's prompt starts with turn 1's prompt and reply: served from the prefix cache */
        if (!think)
            CHECKF(t->cached > 0, "%s turn 2 stream=%d: %d prompt tokens from the prefix cache",
                   case_name, s, t->cached);
    }
    same_turn(case_name, &t2[1], &t2[0]);
    for (int s = 0; s < 2; s++)
        turn_free(&t2[s]);
done:
    for (int s = 0; s < 2; s++)
        turn_free(&t1[s]);
    cJSON_Delete(next);
    cJSON_Delete(req);
    cJSON_Delete(oa);
}

/* A max_tokens that cuts the tool call short: finish_reason "length" (stop_reason "max_tokens";
 * a Responses status "incomplete", its last item too), as OpenAI's and Anthropic's servers say,
 * not "tool_calls" (tool_use) with the arguments seen so far, which an agent would run. The
 * whole call's own length still ends in "tool_calls". */
static void test_cut_tool_call_is_length(void) {
    cJSON *oa = case_request("weather_call");
    turn whole;
    openai_turn(oa, false, &whole);
    int n = whole.generated;
    CHECKF(!strcmp(whole.stop, "tool_calls") && n > 6, "the whole call: %s after %d tokens",
           whole.stop, n);
    turn_free(&whole);
    static const char *const cut_stops[] = {"length", "max_tokens", "incomplete"};
    static const char *const call_stops[] = {"tool_calls", "tool_use", "completed"};
    for (int api = 0; api < 3 && n > 6; api++)
        for (int cut = 0; cut < 2; cut++)
            for (int s = 0; s < 2; s++) {
                cJSON *req = api == 1 ? to_anthropic(oa) : api == 2 ? to_responses(oa) : cJSON_Duplicate(oa, 1);
                const char *field = api == 2 ? "max_output_tokens" : "max_tokens";
                cJSON_DeleteItemFromObject(req, field);
                cJSON_AddNumberToObject(req, field, cut ? n - 4 : n);
                turn t;
                (api == 1 ? anthropic_turn : api == 2 ? responses_turn : openai_turn)(req, s == 1, &t);
                const char *want = cut ? cut_stops[api] : call_stops[api];
                CHECKF(!strcmp(t.stop, want), "api %d stream=%d max_tokens %d: %s, not %s", api, s,
                       cut ? n - 4 : n, t.stop, want);
                if (api == 2 && cut) {
                    cJSON *last = cJSON_GetArrayItem(t.blocks, cJSON_GetArraySize(t.blocks) - 1);
                    CHECKF(!strcmp(str(last, "status"), "incomplete"), "stream=%d: last item %s", s,
                           str(last, "status"));
                }
                turn_free(&t);
                cJSON_Delete(req);
            }
    cJSON_Delete(oa);
}

static void test_openai_agent_round_trip(void) {
    round_trip(API_OPENAI, "weather_call", "Lisbon");
}
static void test_anthropic_agent_round_trip(void) {
    round_trip(API_ANTHROPIC, "weather_call", "Lisbon");
}
static void test_responses_agent_round_trip(void) {
    round_trip(API_RESPONSES, "weather_call", "Lisbon");
}
static void test_openai_thinking_round_trip(void) {
    round_trip(API_OPENAI, "think_weather_call", "Berlin");
}
static void test_anthropic_thinking_round_trip(void) {
    round_trip(API_ANTHROPIC, "think_weather_call", "Berlin");
}
static void test_responses_thinking_round_trip(void) {
    round_trip(API_RESPONSES, "think_weather_call", "Berlin");
}

/* Thinking on, no tools: the reasoning apart from the answer, on both APIs, streamed and not. */
static void test_reasoning_split(void) {
    cJSON *oa = case_request("think_greeting");
    for (int api = 0; api < 2; api++) {
        cJSON *req = api ? to_anthropic(oa) : cJSON_Duplicate(oa, 1);
        turn t[2];
        for (int s = 0; s < 2; s++) {
            (api ? anthropic_turn : openai_turn)(req, s == 1, &t[s]);
            CHECKF(strlen(t[s].reasoning) >= 3 && strlen(t[s].content) >= 3 &&
                       !has_tag(t[s].reasoning) && !has_tag(t[s].content) && t[s].n_calls == 0,
                   "api %d stream=%d: reasoning '%s', answer '%s'", api, s, t[s].reasoning,
                   t[s].content);
            CHECKF(!strcmp(t[s].stop, api ? "end_turn" : "stop"), "stop %s", t[s].stop);
        }
        if (api) { /* the thinking block comes first */
            CHECKF(!strcmp(str(cJSON_GetArrayItem(t[0].blocks, 0), "type"), "thinking") &&
                       !strcmp(str(cJSON_GetArrayItem(t[0].blocks, 1), "type"), "text"),
                   "blocks in the wrong order");
        }
        same_turn(api ? "messages" : "chat", &t[1], &t[0]);
        turn_free(&t[0]);
        turn_free(&t[1]);
        cJSON_Delete(req);
    }
    cJSON_Delete(oa);
}

static void skip_no_model(void) {
    test_skip(MODEL " is absent");
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    if (access(MODEL "/config.json", R_OK)) {
        RUN(skip_no_model);
        return test_summary();
    }
    laguna_error err = {0};
    served_model sm = {0};
    char *cases = tu_read_file("tests/data/tinychat_cases.json", NULL);
    g_cases = cases ? cJSON_Parse(cases) : NULL;
    free(cases);
    lg_server_options so = {
        .api_key = KEY, .model_name = "laguna-tiny-chat", .n_parallel = 4, .n_ctx = 2048};
    if (!g_cases || served_model_open(&sm, MODEL, tu_test_device(), &so, &err)) {
        printf("FAIL setup: %s\n", g_cases ? err.message : "cannot read the cases");
        served_model_close(&sm);
        return 1;
    }
    g_port = lg_server_port(sm.srv);
    RUN(test_openai_agent_round_trip);
    RUN(test_anthropic_agent_round_trip);
    RUN(test_openai_thinking_round_trip);
    RUN(test_anthropic_thinking_round_trip);
    RUN(test_responses_agent_round_trip);
    RUN(test_responses_thinking_round_trip);
    RUN(test_reasoning_split);
    RUN(test_cut_tool_call_is_length);
    served_model_close(&sm);
    cJSON_Delete(g_cases);
    return test_summary();
}
