/* models/laguna-tiny-chat through the engine and the server's chat parser: every request of
 * tests/data/tinychat_cases.json is rendered with the model's template (the released XS.2 one),
 * decoded greedily, split by src/server/chat_parser into reasoning, content and tool calls, and
 * checked against what the case expects (the tool's name and arguments, words of the answer,
 * no tags in the text) and against transformers' greedy ids for it (the model's reference.json).
 * Then agent round trips: the model's own tool calls fed back with tool responses, and its final
 * answer checked; and golden.safetensors through `laguna verify`'s code. Skipped while the model
 * is absent (tools/train/run_tinychat_on_device.sh makes it). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "laguna.h"
#include "laguna_chat.h"
#include "laguna_tokenizer.h"
#include "server/chat_parser.h"
#include "testutil.h"
#include "verify/verify.h"

#define MODEL "models/laguna-tiny-chat"
#define CASES "tests/data/tinychat_cases.json"
#define MAX_NEW 160

static laguna_model *g_model;
static laguna_tokenizer *g_tok;
static laguna_chat_template *g_tmpl;
static cJSON *g_cases, *g_ref;

typedef struct {
    char reasoning[2048], content[2048];
    char names[4][64];
    cJSON *args[4]; /* each call's arguments, parsed */
    char args_text[4][512];
    int n_calls;
    int32_t ids[MAX_NEW];
    int n_ids;
    bool ended; /* an end-of-turn id came */
    /* against the reference ids: the first step that differs (-1: none) and our logit margin
     * there between our choice and transformers' */
    int first_diff;
    double diff_margin;
} reply;

static void reply_free(reply *r) {
    for (int i = 0; i < 4; i++)
        cJSON_Delete(r->args[i]);
}

static bool is_eos(int32_t id) {
    const laguna_model_info *info = laguna_model_get_info(g_model);
    for (int i = 0; i < info->n_eos_token_ids; i++)
        if (info->eos_token_ids[i] == id) return true;
    return false;
}

static void cat(char *dst, size_t cap, const char *s) {
    strncat(dst, s, cap - strlen(dst) - 1);
}

/* Renders the request (an OpenAI-style body), decodes greedily up to an end-of-turn id and parses
 * the turn. want: transformers' ids for it (may be NULL). */
static int generate(const cJSON *request, const cJSON *want, reply *out) {
    memset(out, 0, sizeof *out);
    out->first_diff = -1;
    laguna_error err = {0};
    cJSON *req = cJSON_Duplicate(request, 1);
    cJSON_AddTrueToObject(req, "add_generation_prompt");
    char *json = cJSON_PrintUnformatted(req), *prompt = NULL;
    cJSON_Delete(req);
    int32_t *ids = NULL;
    size_t n = 0;
    laguna_session *s = NULL;
    lg_chat_parser *p = NULL;
    lg_event_list ev = {0};
    int rc = -1;
    if (laguna_chat_template_apply(g_tmpl, json, strlen(json), &prompt, NULL, &err) ||
        laguna_tokenizer_encode(g_tok, prompt, strlen(prompt), false, &ids, &n, &err) ||
        laguna_session_create(g_model, &(laguna_session_options){.n_ctx = (int)n + MAX_NEW + 1}, &s,
                              &err) ||
        laguna_session_feed(s, ids, n, NULL, &err)) {
        CHECKF(0, "generate: %s", err.message);
        goto done;
    }
    const cJSON *tools = cJSON_GetObjectItem(request, "tools");
    if (lg_chat_parser_new(g_tok, tools, lg_prompt_ends_in_think(g_tok, ids, n), &p)) goto done;
    int V = laguna_model_get_info(g_model)->vocab_size;
    while (out->n_ids < MAX_NEW) {
        const float *lg = laguna_session_logits(s);
        int32_t best = 0;
        for (int v = 1; v < V; v++)
            if (lg[v] > lg[best]) best = v;
        const cJSON *w = cJSON_GetArrayItem(want, out->n_ids);
        if (want && out->first_diff < 0 && (!cJSON_IsNumber(w) || w->valueint != best)) {
            out->first_diff = out->n_ids;
            int wi = cJSON_IsNumber(w) && w->valueint >= 0 && w->valueint < V ? w->valueint : best;
            out->diff_margin = (double)lg[best] - lg[wi];
        }
        out->ids[out->n_ids++] = best;
        if (is_eos(best)) {
            out->ended = true;
            break;
        }
        if (lg_chat_parser_push(p, best, &ev) || laguna_session_feed(s, &best, 1, NULL, &err))
            goto done;
    }
    if (want && out->first_diff < 0 && cJSON_GetArraySize(want) != out->n_ids)
        out->first_diff = out->n_ids;
    lg_chat_parser_finish(p, &ev);
    for (size_t i = 0; i < ev.n; i++) {
        lg_event *e = &ev.items[i];
        int k = e->tool_index;
        if (e->kind == LG_EV_CONTENT) cat(out->content, sizeof out->content, e->text);
        if (e->kind == LG_EV_REASONING) cat(out->reasoning, sizeof out->reasoning, e->text);
        if (e->kind == LG_EV_TOOL_START && out->n_calls < 4)
            snprintf(out->names[out->n_calls++], sizeof out->names[0], "%s", e->text);
        if (e->kind == LG_EV_TOOL_ARGS && k >= 0 && k < 4)
            cat(out->args_text[k], sizeof out->args_text[k], e->text);
    }
    for (int k = 0; k < out->n_calls; k++)
        out->args[k] = cJSON_Parse(out->args_text[k]);
    rc = 0;
done:
    lg_events_free(&ev);
    lg_chat_parser_free(p);
    laguna_session_free(s);
    laguna_tokenizer_free_ids(ids);
    free(prompt);
    free(json);
    return rc;
}

static const char *TAGS[] = {"<think>",         "</think>",    "<tool_call>",  "</tool_call>",
                             "<arg_key>",       "<arg_value>", "</assistant>", "<assistant>",
                             "<tool_response>", "〈|EOS|〉",   "<user>",       "<system>"};

static bool has_tag(const char *s) {
    for (size_t i = 0; i < sizeof TAGS / sizeof *TAGS; i++)
        if (strstr(s, TAGS[i])) return true;
    return false;
}

/* The checks of one case's "expect" on a reply; name labels the messages. */
static void check_expect(const char *name, const cJSON *expect, const reply *r) {
    CHECKF(r->ended, "%s: no end of turn within %d tokens", name, MAX_NEW);
    CHECKF(!has_tag(r->content) && !has_tag(r->reasoning), "%s: a tag in the text: '%s' / '%s'",
           name, r->reasoning, r->content);
    const cJSON *calls = cJSON_GetObjectItem(expect, "tool_calls");
    CHECKF(r->n_calls == cJSON_GetArraySize(calls), "%s: %d tool calls, expected %d (content '%s')",
           name, r->n_calls, cJSON_GetArraySize(calls), r->content);
    for (int k = 0; k < r->n_calls && k < cJSON_GetArraySize(calls); k++) {
        const cJSON *c = cJSON_GetArrayItem(calls, k);
        const char *want = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));
        CHECKF(!strcmp(r->names[k], want), "%s: call %d is '%s', expected '%s'", name, k,
               r->names[k], want);
        char *w = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "arguments"));
        CHECKF(r->args[k] && cJSON_Compare(r->args[k], cJSON_GetObjectItem(c, "arguments"), true),
               "%s: call %d arguments %s, expected %s", name, k, r->args_text[k], w);
        free(w);
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(expect, "content_contains")) {
        CHECKF(strstr(r->content, s->valuestring), "%s: the answer '%s' lacks '%s'", name,
               r->content, s->valuestring);
    }
    const cJSON *cmin = cJSON_GetObjectItem(expect, "content_min");
    const cJSON *rmin = cJSON_GetObjectItem(expect, "reasoning_min");
    if (cmin)
        CHECKF((int)strlen(r->content) >= cmin->valueint, "%s: answer '%s' too short", name,
               r->content);
    if (rmin)
        CHECKF((int)strlen(r->reasoning) >= rmin->valueint, "%s: reasoning '%s' too short", name,
               r->reasoning);
    else
        CHECKF(!r->reasoning[0], "%s: reasoning '%s' with thinking off", name, r->reasoning);
}

static const cJSON *case_named(const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g_cases, "cases")) {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), name)) return c;
    }
    return NULL;
}

static const cJSON *reference_ids(const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g_ref, "cases")) {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), name))
            return cJSON_GetObjectItem(c, "greedy_ids");
    }
    return NULL;
}

/* Every case: what it expects, and transformers' ids. A first difference where our two best
 * logits are within 1e-3 is a tie that float rounding may break either way: reported, not failed.
 */
static void test_cases(void) {
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g_cases, "cases")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));
        const cJSON *want = reference_ids(name);
        CHECKF(want != NULL, "%s: not in reference.json", name);
        reply r;
        if (generate(cJSON_GetObjectItem(c, "request"), want, &r)) continue;
        n++;
        check_expect(name, cJSON_GetObjectItem(c, "expect"), &r);
        if (r.first_diff >= 0 && fabs(r.diff_margin) < 1e-3)
            printf(
                "  note: %s: greedy differs from transformers at token %d, a tie (margin %.2e)\n",
                name, r.first_diff, r.diff_margin);
        else
            CHECKF(r.first_diff < 0, "%s: greedy ids differ from transformers' from token %d of %d",
                   name, r.first_diff, r.n_ids);
        reply_free(&r);
    }
    CHECK(n == cJSON_GetArraySize(cJSON_GetObjectItem(g_cases, "cases")));
}

/* The next request of an agent: the request, the model's calls as an assistant message (with its
 * reasoning when it gave some) and one tool message per call. */
static cJSON *with_tool_results(const cJSON *request, const reply *r, const char **results) {
    cJSON *next = cJSON_Duplicate(request, 1);
    cJSON *msgs = cJSON_GetObjectItem(next, "messages");
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "role", "assistant");
    cJSON_AddStringToObject(a, "content", r->content);
    if (r->reasoning[0]) cJSON_AddStringToObject(a, "reasoning_content", r->reasoning);
    cJSON *calls = cJSON_AddArrayToObject(a, "tool_calls");
    for (int k = 0; k < r->n_calls; k++) {
        char id[16];
        snprintf(id, sizeof id, "call_%d", k);
        cJSON *tc = cJSON_CreateObject(), *f;
        cJSON_AddStringToObject(tc, "id", id);
        cJSON_AddStringToObject(tc, "type", "function");
        f = cJSON_AddObjectToObject(tc, "function");
        cJSON_AddStringToObject(f, "name", r->names[k]);
        cJSON_AddStringToObject(f, "arguments", r->args_text[k]); /* a JSON string, as OpenAI's */
        cJSON_AddItemToArray(calls, tc);
    }
    cJSON_AddItemToArray(msgs, a);
    for (int k = 0; k < r->n_calls; k++) {
        cJSON *t = cJSON_CreateObject();
        char id[16];
        snprintf(id, sizeof id, "call_%d", k);
        cJSON_AddStringToObject(t, "role", "tool");
        cJSON_AddStringToObject(t, "tool_call_id", id);
        cJSON_AddStringToObject(t, "content", results[k]);
        cJSON_AddItemToArray(msgs, t);
    }
    return next;
}

/* The call's "city" argument, or "" */
static const char *city_of(const reply *r, int k) {
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(r->args[k], "city"));
    return c ? c : "";
}

/* request -> the model's tool calls -> results -> a final answer that uses them */
static void round_trip(const char *case_name, int n_calls, const char *const *temps,
                       const char *const *conds) {
    const cJSON *c = case_named(case_name);
    CHECKF(c != NULL, "no case %s", case_name);
    if (!c) return;
    const cJSON *request = cJSON_GetObjectItem(c, "request");
    reply r, fin;
    if (generate(request, NULL, &r)) return;
    CHECKF(r.n_calls == n_calls, "%s: %d calls ('%s')", case_name, r.n_calls, r.content);
    if (r.n_calls != n_calls) {
        reply_free(&r);
        return;
    }
    char results[4][256];
    const char *res[4];
    for (int k = 0; k < n_calls; k++) {
        CHECKF(!strcmp(r.names[k], "get_weather") && city_of(&r, k)[0], "%s: call %d %s(%s)",
               case_name, k, r.names[k], r.args_text[k]);
        snprintf(results[k], sizeof results[k],
                 "{\"city\": \"%s\", \"temperature\": %s, \"unit\": \"celsius\", \"condition\": "
                 "\"%s\"}",
                 city_of(&r, k), temps[k], conds[k]);
        res[k] = results[k];
    }
    cJSON *next = with_tool_results(request, &r, res);
    if (!generate(next, NULL, &fin)) {
        CHECKF(fin.ended && fin.n_calls == 0 && !has_tag(fin.content) && !has_tag(fin.reasoning),
               "%s: final turn: %d calls, '%s'", case_name, fin.n_calls, fin.content);
        for (int k = 0; k < n_calls; k++)
            CHECKF(strstr(fin.content, city_of(&r, k)) && strstr(fin.content, temps[k]) &&
                       strstr(fin.content, conds[k]),
                   "%s: the answer '%s' does not use result %d (%s)", case_name, fin.content, k,
                   res[k]);
        bool think = r.reasoning[0] != 0;
        CHECKF(!think || fin.reasoning[0], "%s: no reasoning in the final turn", case_name);
        reply_free(&fin);
    }
    cJSON_Delete(next);
    reply_free(&r);
}

static void test_agent_round_trip(void) {
    round_trip("weather_call", 1, (const char *[]){"17"}, (const char *[]){"cloudy"});
}

static void test_agent_round_trip_two_calls(void) {
    round_trip("two_calls", 2, (const char *[]){"12", "25"}, (const char *[]){"rainy", "sunny"});
}

static void test_agent_round_trip_thinking(void) {
    round_trip("think_weather_call", 1, (const char *[]){"-3"}, (const char *[]){"snowy"});
}

static void test_golden(void) {
    lg_verify_result *r = NULL;
    int n = 0;
    laguna_error err = {0};
    lg_verify_tolerance tol = lg_verify_default_tolerance(g_model);
    CHECKF(lg_verify_run(g_model, MODEL "/golden.safetensors", &r, &n, &err) == 0, "%s",
           err.message);
    CHECK(n >= 2);
    for (int i = 0; i < n; i++)
        CHECKF(lg_verify_passes(&r[i], &tol), "%s: rel %.2e greedy %d/%d experts %d", r[i].prompt,
               r[i].logits_rel_err, r[i].greedy_match, r[i].greedy_len, r[i].expert_mismatches);
    free(r);
}

static cJSON *read_json(const char *path) {
    char *text = tu_read_file(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

static void skip_no_model(void) {
    test_skip(MODEL " is absent (bash tools/train/run_tinychat_on_device.sh on the GPU machine)");
}

int main(void) {
    if (access(MODEL "/config.json", R_OK)) {
        RUN(skip_no_model);
        return test_summary();
    }
    laguna_error err = {0};
    laguna_model_options mo = {.n_threads = 2, .device = tu_test_device()};
    g_cases = read_json(CASES);
    g_ref = read_json(MODEL "/reference.json");
    if (!g_cases || !g_ref || laguna_tokenizer_load(MODEL, &g_tok, &err) ||
        laguna_chat_template_load(MODEL, &g_tmpl, &err) ||
        laguna_model_open(MODEL, &mo, &g_model, &err)) {
        printf("FAIL setup: %s\n", g_cases && g_ref ? err.message : "cannot read the JSON files");
        return 1;
    }
    RUN(test_cases);
    RUN(test_agent_round_trip);
    RUN(test_agent_round_trip_two_calls);
    RUN(test_agent_round_trip_thinking);
    RUN(test_golden);
    laguna_model_free(g_model);
    laguna_chat_template_free(g_tmpl);
    laguna_tokenizer_free(g_tok);
    cJSON_Delete(g_cases);
    cJSON_Delete(g_ref);
    return test_summary();
}
