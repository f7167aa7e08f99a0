/* laguna serve driven by curl, the client people try first: a tool call from
 * models/laguna-tiny-chat through /v1/chat/completions whole and streamed and
 * through /v1/messages, the answer after the tool's result, and the errors a
 * hand-typed request meets (broken JSON, a wrong key, an unknown path, a
 * wrong method, an empty body). Every request is a real curl process against
 * the server on a loopback port. Skipped when curl or the model is absent. */
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
#define KEY "sk-curl"

static int g_port;

typedef struct {
    int status;  /* curl's %{http_code}; 0 when curl itself failed */
    char *body;  /* the reply body (caller frees) */
} curl_reply;

/* Runs curl with extra arguments (already shell-quoted) against path, the
 * request body (if any) from a file; the reply body and status come back. */
static curl_reply curl(const char *args, const char *path, const char *body) {
    curl_reply r = {0};
    char req[] = "/tmp/laguna-curl-req-XXXXXX", out[] = "/tmp/laguna-curl-out-XXXXXX";
    int rfd = mkstemp(req), ofd = mkstemp(out);
    if (rfd < 0 || ofd < 0) return r;
    if (body && write(rfd, body, strlen(body)) != (ssize_t)strlen(body)) CHECK(0);
    close(rfd), close(ofd);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "curl -sS -N --max-time 60 -o %s -w '%%{http_code}' %s %s%s 'http://127.0.0.1:%d%s'", out,
             args, body ? "--data-binary @" : "", body ? req : "", g_port, path);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%d", &r.status) != 1) r.status = 0;
        pclose(p);
    }
    r.body = tu_read_file(out, NULL);
    if (!r.body) r.body = strdup("");
    unlink(req), unlink(out);
    return r;
}

#define JSON_AUTH "-H 'Content-Type: application/json' -H 'Authorization: Bearer " KEY "'"
#define ANTHROPIC_AUTH "-H 'Content-Type: application/json' -H 'x-api-key: " KEY "' -H 'anthropic-version: 2023-06-01'"

static const char *TOOLS =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the current weather in a "
    "city\",\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"The "
    "city name\"},\"unit\":{\"type\":\"string\",\"enum\":[\"celsius\",\"fahrenheit\"]}},\"required\":[\"city\"]}}}]";

static char *chat_body(const char *messages, bool stream) {
    size_t n = strlen(messages) + strlen(TOOLS) + 128;
    char *b = malloc(n);
    snprintf(b, n, "{\"model\":\"x\",\"max_tokens\":64,\"stream\":%s,\"messages\":%s,\"tools\":%s}",
             stream ? "true" : "false", messages, TOOLS);
    return b;
}

static const char *USER = "[{\"role\":\"user\",\"content\":\"What's the weather in Lisbon?\"}]";

static const char *str(const cJSON *o, const char *name) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, name));
    return s ? s : "";
}

static bool has_tag(const char *s) {
    return strstr(s, "<tool_call>") || strstr(s, "</tool_call>") || strstr(s, "<arg_key>") ||
           strstr(s, "</assistant>") || strstr(s, "<think>");
}

/* The tool call of the first turn, whole: structured, finish_reason tool_calls. Returns the call's id. */
static char *expect_weather_call(const char *body) {
    cJSON *j = cJSON_Parse(body);
    CHECKF(j != NULL, "not JSON: %.200s", body);
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem(choice, "message");
    CHECKF(!strcmp(str(choice, "finish_reason"), "tool_calls"), "finish_reason %s", str(choice, "finish_reason"));
    const cJSON *call = cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "tool_calls"), 0);
    const cJSON *fn = cJSON_GetObjectItem(call, "function");
    CHECKF(!strcmp(str(fn, "name"), "get_weather"), "tool %s", str(fn, "name"));
    cJSON *args = cJSON_Parse(str(fn, "arguments"));
    CHECKF(args && !strcmp(str(args, "city"), "Lisbon"), "arguments %s", str(fn, "arguments"));
    CHECK(!has_tag(str(msg, "content")));
    char *id = strdup(str(call, "id"));
    CHECK(id[0] != 0);
    cJSON_Delete(args), cJSON_Delete(j);
    return id;
}

static void test_openai_tool_round_trip(void) {
    char *body = chat_body(USER, false);
    curl_reply r = curl(JSON_AUTH, "/v1/chat/completions", body);
    CHECKF(r.status == 200, "status %d: %.200s", r.status, r.body);
    char *id = expect_weather_call(r.body);
    /* turn 2: the call and its result go back; the answer uses the result */
    char msgs[2048];
    snprintf(msgs, sizeof msgs,
             "[{\"role\":\"user\",\"content\":\"What's the weather in Lisbon?\"},"
             "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"%s\",\"type\":\"function\","
             "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\": \\\"Lisbon\\\"}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"{\\\"temperature\\\": 21, \\\"unit\\\": "
             "\\\"celsius\\\", \\\"condition\\\": \\\"sunny\\\"}\"}]",
             id, id);
    char *body2 = chat_body(msgs, false);
    curl_reply r2 = curl(JSON_AUTH, "/v1/chat/completions", body2);
    CHECKF(r2.status == 200, "status %d", r2.status);
    cJSON *j = cJSON_Parse(r2.body);
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const char *answer = str(cJSON_GetObjectItem(choice, "message"), "content");
    CHECKF(strstr(answer, "21") && strstr(answer, "Lisbon"), "answer: %s", answer);
    CHECKF(!strcmp(str(choice, "finish_reason"), "stop"), "finish_reason %s", str(choice, "finish_reason"));
    CHECK(!has_tag(answer));
    cJSON_Delete(j);
    free(id), free(body), free(body2), free(r.body), free(r2.body);
}

/* Streamed: the same call arrives as tool_calls deltas, never as text, and the stream ends with [DONE]. */
static void test_openai_tool_call_streamed(void) {
    char *body = chat_body(USER, true);
    curl_reply r = curl(JSON_AUTH, "/v1/chat/completions", body);
    CHECKF(r.status == 200, "status %d", r.status);
    bool done = false;
    cJSON *events = sse_payloads(r.body, &done);
    CHECK(done);
    char name[64] = "", args[256] = "", finish[32] = "";
    const cJSON *e;
    cJSON_ArrayForEach(e, events) {
        const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "choices"), 0);
        const cJSON *delta = cJSON_GetObjectItem(choice, "delta");
        CHECK(!has_tag(str(delta, "content")));
        const cJSON *call = cJSON_GetArrayItem(cJSON_GetObjectItem(delta, "tool_calls"), 0);
        const cJSON *fn = cJSON_GetObjectItem(call, "function");
        strncat(name, str(fn, "name"), sizeof name - strlen(name) - 1);
        strncat(args, str(fn, "arguments"), sizeof args - strlen(args) - 1);
        if (str(choice, "finish_reason")[0]) snprintf(finish, sizeof finish, "%s", str(choice, "finish_reason"));
    }
    CHECKF(!strcmp(name, "get_weather"), "name %s", name);
    cJSON *a = cJSON_Parse(args);
    CHECKF(a && !strcmp(str(a, "city"), "Lisbon"), "arguments %s", args);
    CHECKF(!strcmp(finish, "tool_calls"), "finish_reason %s", finish);
    cJSON_Delete(a), cJSON_Delete(events);
    free(body), free(r.body);
}

/* Anthropic's Messages API: a tool_use block with the parsed input, stop_reason tool_use. */
static void test_messages_tool_use(void) {
    const char *body =
        "{\"model\":\"x\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":\"What's the weather in "
        "Lisbon?\"}],\"tools\":[{\"name\":\"get_weather\",\"description\":\"Get the current weather in a city\","
        "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"The "
        "city name\"},\"unit\":{\"type\":\"string\",\"enum\":[\"celsius\",\"fahrenheit\"]}},\"required\":[\"city\"]}}]}";
    curl_reply r = curl(ANTHROPIC_AUTH, "/v1/messages", body);
    CHECKF(r.status == 200, "status %d: %.200s", r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    CHECKF(!strcmp(str(j, "stop_reason"), "tool_use"), "stop_reason %s", str(j, "stop_reason"));
    const cJSON *b, *use = NULL;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(j, "content")) {
        if (!strcmp(str(b, "type"), "tool_use")) use = b;
        if (!strcmp(str(b, "type"), "text")) CHECK(!has_tag(str(b, "text")));
    }
    CHECK(use != NULL);
    CHECKF(!strcmp(str(use, "name"), "get_weather"), "name %s", str(use, "name"));
    CHECKF(!strcmp(str(cJSON_GetObjectItem(use, "input"), "city"), "Lisbon"), "input: %.200s", r.body);
    cJSON_Delete(j);
    free(r.body);
}

/* The error an API client gets: JSON with an error object, the right status, and the server still serves. */
static void expect_error(const char *args, const char *path, const char *body, int status) {
    curl_reply r = curl(args, path, body);
    CHECKF(r.status == status, "%s: status %d, wanted %d (%.200s)", path, r.status, status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *err = cJSON_GetObjectItem(j, "error");
    CHECKF(cJSON_IsObject(err) && str(err, "message")[0], "%s %d: no error object: %.200s", path, status, r.body);
    cJSON_Delete(j);
    free(r.body);
}

static void test_errors(void) {
    expect_error(JSON_AUTH, "/v1/chat/completions", "{\"messages\": [", 400);
    expect_error(JSON_AUTH, "/v1/chat/completions", "{\"messages\": \"hello\"}", 400);
    expect_error(JSON_AUTH, "/v1/chat/completions", "", 400);
    expect_error(JSON_AUTH, "/v1/chat/completions", "{\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", 400);
    expect_error(JSON_AUTH, "/v1/chat/completions",
                 "{\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400);
    expect_error("-H 'Content-Type: application/json' -H 'Authorization: Bearer wrong'", "/v1/chat/completions",
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 401);
    expect_error("-H 'Content-Type: application/json'", "/v1/chat/completions",
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 401);
    expect_error(JSON_AUTH, "/v1/nothing-here", "{}", 404);
    expect_error(ANTHROPIC_AUTH, "/v1/messages", "{\"max_tokens\":16,\"messages\":[}", 400);
    /* and it still answers */
    curl_reply r = curl(JSON_AUTH, "/health", NULL);
    CHECKF(r.status == 200, "health after errors: %d", r.status);
    free(r.body);
}

static void skip_absent(void) {
    test_skip(access(MODEL "/config.json", R_OK) ? MODEL " is absent" : "curl is not installed");
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    if (access(MODEL "/config.json", R_OK) || system("curl --version > /dev/null 2>&1") != 0) {
        RUN(skip_absent);
        return test_summary();
    }
    laguna_error err = {0};
    served_model sm;
    lg_server_options so = {.api_key = KEY, .model_name = "laguna-tiny-chat", .n_parallel = 2, .n_ctx = 2048};
    if (served_model_open(&sm, MODEL, tu_test_device(), &so, &err)) {
        printf("FAIL setup: %s\n", err.message);
        served_model_close(&sm);
        return 1;
    }
    g_port = lg_server_port(sm.srv);
    RUN(test_openai_tool_round_trip);
    RUN(test_openai_tool_call_streamed);
    RUN(test_messages_tool_use);
    RUN(test_errors);
    served_model_close(&sm);
    return test_summary();
}
