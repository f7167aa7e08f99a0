/* laguna serve, end to end: the server runs in this process on a free
 * loopback port with models/laguna-tiny and is driven over real sockets by a
 * small HTTP/1.0 client. Also the chat output parser on text in the format
 * of the released Laguna templates (tests/fixtures/chat/laguna-real, copied
 * from the project's shared fixtures). */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "harness.h"
#include "served_model.h"
#include "server/chat_parser.h"
#include "server/server_internal.h"
#include "testutil.h"

#define MODEL "models/laguna-tiny"

static served_model g_sm; /* its server: the one most tests talk to, on g_port */
static int g_port;
#define KEY "sk-test"

/* ---- a small HTTP client ----------------------------------------------------------- */

static int connect_port(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_request(int fd, const char *method, const char *path, const char *key,
                        const char *body) {
    char head[512];
    size_t blen = body ? strlen(body) : 0;
    bool x = key && !strncmp(key, "x:", 2); /* "x:KEY": Anthropic's x-api-key header */
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s%s%sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path,
                     x     ? "x-api-key: "
                     : key ? "Authorization: Bearer "
                           : "",
                     key ? key + (x ? 2 : 0) : "", key ? "\r\n" : "", blen);
    if (write(fd, head, (size_t)n) != n) return -1;
    size_t off = 0;
    while (off < blen) {
        ssize_t w = write(fd, body + off, blen - off);
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    return 0;
}

typedef struct {
    int status;
    char *body; /* after the headers */
} http_reply;

/* One request on a fresh connection, read to EOF. */
static http_reply http_key(int port, const char *method, const char *path, const char *key,
                           const char *body) {
    http_reply r = {0};
    int fd = connect_port(port);
    if (fd < 0 || send_request(fd, method, path, key, body)) {
        if (fd >= 0) close(fd);
        return r;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1024 > cap) buf = realloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = 0;
    sscanf(buf, "HTTP/1.%*d %d", &r.status);
    char *b = strstr(buf, "\r\n\r\n");
    r.body = strdup(b ? b + 4 : "");
    free(buf);
    return r;
}

static http_reply http(const char *method, const char *path, const char *body) {
    return http_key(g_port, method, path, KEY, body);
}

/* The text of a non-streamed reply (chat content or completion text). */
static char *reply_text(const char *body, const char *field) {
    cJSON *j = cJSON_Parse(body);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *src = cJSON_GetObjectItem(c0, "message") ? cJSON_GetObjectItem(c0, "message") : c0;
    cJSON *t = cJSON_GetObjectItem(src, field);
    char *s = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
    cJSON_Delete(j);
    return s;
}

static double usage_field(const char *body, const char *a, const char *b) {
    cJSON *j = cJSON_Parse(body);
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    cJSON *v = cJSON_GetObjectItem(u, a);
    if (b) v = cJSON_GetObjectItem(v, b);
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    cJSON_Delete(j);
    return d;
}

/* Joins the deltas of an SSE body; sets *done when it ended with [DONE]. */
static char *sse_text(const char *body, const char *field, int *done, char *finish,
                      size_t finish_cap, double *usage_prompt) {
    size_t cap = strlen(body) + 1, n = 0;
    char *out = calloc(cap, 1);
    *done = 0;
    const char *p = body;
    while ((p = strstr(p, "data: "))) {
        p += 6;
        const char *e = strstr(p, "\n\n");
        if (!e) break;
        if (!strncmp(p, "[DONE]", 6)) *done = 1;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(e - p));
        cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        cJSON *d = cJSON_GetObjectItem(c0, "delta") ? cJSON_GetObjectItem(c0, "delta") : c0;
        cJSON *t = cJSON_GetObjectItem(d, field);
        if (cJSON_IsString(t)) {
            size_t l = strlen(t->valuestring);
            memcpy(out + n, t->valuestring, l);
            n += l;
        }
        cJSON *f = cJSON_GetObjectItem(c0, "finish_reason");
        if (cJSON_IsString(f) && finish) snprintf(finish, finish_cap, "%s", f->valuestring);
        cJSON *u = cJSON_GetObjectItem(j, "usage");
        if (u && usage_prompt) *usage_prompt = cJSON_GetObjectItem(u, "prompt_tokens")->valuedouble;
        cJSON_Delete(j);
        p = e;
    }
    return out;
}

static double metric(const char *name) {
    http_reply r = http("GET", "/metrics", NULL);
    double v = -1;
    char pat[128];
    snprintf(pat, sizeof pat, "\n%s ", name);
    const char *p = r.body ? strstr(r.body, pat) : NULL;
    if (p) v = atof(p + strlen(pat));
    free(r.body);
    return v;
}

/* ---- endpoints ------------------------------------------------------------------ */

static void test_health_models_tokenize(void) {
    http_reply r = http("GET", "/health", NULL);
    CHECK(r.status == 200 && strstr(r.body, "ok"));
    free(r.body);
    r = http("GET", "/v1/models", NULL);
    CHECK(r.status == 200 && strstr(r.body, "\"laguna-tiny\""));
    free(r.body);
    r = http("POST", "/tokenize", "{\"content\":\"def fibonacci(n):\"}");
    CHECK(r.status == 200 && strstr(r.body, "\"tokens\":["));
    cJSON *j = cJSON_Parse(r.body);
    cJSON *toks = cJSON_GetObjectItem(j, "tokens");
    char *req = NULL;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(d, "tokens", toks);
    req = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    free(r.body);
    r = http("POST", "/detokenize", req);
    CHECKF(r.status == 200 && strstr(r.body, "\"content\":\"def fibonacci(n):\""), "%s", r.body);
    free(r.body);
    free(req);
    cJSON_Delete(j);
    r = http("GET", "/metrics", NULL);
    CHECK(r.status == 200 && strstr(r.body, "laguna_kv_pages_used") &&
          strstr(r.body, "laguna_time_to_first_token_seconds"));
    free(r.body);
}

static void test_completion(void) {
    http_reply r =
        http("POST", "/v1/completions", "{\"prompt\":\"def fibonacci(n):\",\"max_tokens\":20}");
    CHECKF(r.status == 200, "%d %s", r.status, r.body);
    char *text = reply_text(r.body, "text");
    CHECK(text && strlen(text) > 10);
    CHECK(strstr(r.body, "\"finish_reason\":\"length\""));
    CHECK(usage_field(r.body, "completion_tokens", NULL) == 20);
    free(r.body);
    /* streamed: the same text */
    r = http("POST", "/v1/completions",
             "{\"prompt\":\"def fibonacci(n):\",\"max_tokens\":20,\"stream\":true}");
    int done;
    char finish[32] = "";
    char *st = sse_text(r.body, "text", &done, finish, sizeof finish, NULL);
    CHECKF(text && !strcmp(st, text), "stream '%s' vs '%s'", st, text);
    CHECK(done && !strcmp(finish, "length"));
    free(st);
    free(text);
    free(r.body);
    /* a stop string ends it early and is not shown */
    r = http("POST", "/v1/completions",
             "{\"prompt\":\"def fibonacci(n):\",\"max_tokens\":40,\"stop\":[\"if\"]}");
    char *t2 = reply_text(r.body, "text");
    CHECK(r.status == 200 && t2 && !strstr(t2, "if") &&
          strstr(r.body, "\"finish_reason\":\"stop\""));
    free(t2);
    free(r.body);
}

static const char *CHAT1 =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"You write Python.\"},"
    "{\"role\":\"user\",\"content\":\"Write a function that adds two numbers.\"}],"
    "\"max_tokens\":24%s}";

static void test_chat_stream_matches_whole(void) {
    char req[512];
    snprintf(req, sizeof req, CHAT1, "");
    http_reply r = http("POST", "/v1/chat/completions", req);
    CHECKF(r.status == 200, "%d %s", r.status, r.body);
    char *whole = reply_text(r.body, "content");
    CHECK(whole && strstr(r.body, "\"object\":\"chat.completion\""));
    CHECK(!strstr(r.body, "</assistant>"));
    free(r.body);
    snprintf(req, sizeof req, CHAT1,
             ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    r = http("POST", "/v1/chat/completions", req);
    int done;
    char finish[32] = "";
    double prompt_tokens = -1;
    char *st = sse_text(r.body, "content", &done, finish, sizeof finish, &prompt_tokens);
    CHECK(r.status == 200 && done && finish[0] && prompt_tokens > 0);
    CHECKF(whole && !strcmp(st, whole), "stream '%s' vs whole '%s'", st, whole);
    free(st);
    free(whole);
    free(r.body);
}

/* ---- many streams at once ---------------------------------------------------------------- */

#define N_STREAMS 16
typedef struct {
    int i;
    char *text;
    bool greedy; /* temperature 0, max_tokens 9..33 by stream (jobs end at different steps) */
} stream_arg;

static void *stream_thread(void *arg) {
    stream_arg *a = arg;
    char req[256];
    if (a->greedy)
        snprintf(req, sizeof req,
                 "{\"prompt\":\"def g%d(x):\\n    return x +\",\"max_tokens\":%d,\"temperature\":0,"
                 "\"stream\":true}",
                 a->i, 9 + 3 * (a->i % 9));
    else /* odd streams also ask for logprobs, drawn beside the token */
        snprintf(req, sizeof req,
                 "{\"prompt\":\"def f%d(x):\\n    return x *\",\"max_tokens\":32,\"stream\":true%s}",
                 a->i, a->i % 2 ? ",\"logprobs\":2" : "");
    http_reply r = http("POST", "/v1/completions", req);
    int done;
    a->text = r.status == 200 ? sse_text(r.body, "text", &done, NULL, 0, NULL) : NULL;
    bool want_lp = !a->greedy && a->i % 2;
    if (a->text && want_lp != (strstr(r.body, "\"top_logprobs\"") != NULL)) {
        free(a->text); /* logprobs where asked, and only there */
        a->text = NULL;
    }
    if (a->text && !done) {
        free(a->text);
        a->text = NULL;
    }
    free(r.body);
    return NULL;
}

static void concurrent_streams_match_alone(bool greedy) {
    stream_arg alone[N_STREAMS], together[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) {
        alone[i] = (stream_arg){i, NULL, greedy};
        stream_thread(&alone[i]);
    }
    pthread_t th[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) {
        together[i] = (stream_arg){i, NULL, greedy};
        pthread_create(&th[i], NULL, stream_thread, &together[i]);
    }
    for (int i = 0; i < N_STREAMS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N_STREAMS; i++) {
        CHECKF(alone[i].text && together[i].text && !strcmp(alone[i].text, together[i].text),
               "stream %d: '%s' vs '%s'", i, alone[i].text ? alone[i].text : "(none)",
               together[i].text ? together[i].text : "(none)");
        free(alone[i].text);
        free(together[i].text);
    }
}

/* Sampled streams (temperature 1, seed 0, half with logprobs): alone, each
 * step has one row to draw; together, the server's sampling threads
 * (sample_threads 4) draw the rows of a step at once, each job with its own
 * sampler. The texts are the same. */
static void test_concurrent_streams_match_alone(void) { concurrent_streams_match_alone(false); }

/* Greedy streams decode in queued steps (scheduler.c): each step is queued
 * before the tokens of the one before are back, and a job ending on a token
 * takes back the position its row in the next step was given. Ending at
 * different steps while others go on, each text is still its text alone. */
static void test_greedy_streams_match_alone(void) { concurrent_streams_match_alone(true); }

/* ---- cancellation ---------------------------------------------------------------------- */

static void test_disconnect_cancels(void) {
    double before = metric("laguna_requests_cancelled_total");
    int fd = connect_port(g_port);
    send_request(
        fd, "POST", "/v1/completions", KEY,
        "{\"prompt\":\"def f(x):\",\"max_tokens\":1500,\"ignore_eos\":true,\"stream\":true}");
    char buf[512];
    CHECK(read(fd, buf, sizeof buf) > 0); /* it started */
    close(fd);
    double after = before;
    for (int k = 0; k < 100 && after <= before; k++) {
        usleep(50 * 1000);
        after = metric("laguna_requests_cancelled_total");
    }
    CHECKF(after == before + 1, "cancelled %g -> %g", before, after);
    CHECK(metric("laguna_requests_running") == 0);
    /* a non-streamed request whose client leaves is cancelled too */
    fd = connect_port(g_port);
    send_request(fd, "POST", "/v1/completions", KEY,
                 "{\"prompt\":\"def g(x):\",\"max_tokens\":1500,\"ignore_eos\":true}");
    usleep(100 * 1000);
    close(fd);
    for (int k = 0; k < 100 && after <= before + 1; k++) {
        usleep(50 * 1000);
        after = metric("laguna_requests_cancelled_total");
    }
    CHECKF(after == before + 2, "cancelled %g -> %g", before, after);
}

/* ---- prefix cache across turns ----------------------------------------------------------- */

static void test_prefix_cache_turn2(void) {
    const char *t1 = "{\"messages\":[{\"role\":\"system\",\"content\":\"You are a careful Python "
                     "programmer who writes "
                     "short functions with docstrings.\"},{\"role\":\"user\",\"content\":\"Sort a "
                     "list.\"}],\"max_tokens\":16}";
    http_reply r = http("POST", "/v1/chat/completions", t1);
    char *reply = reply_text(r.body, "content");
    double p1 = usage_field(r.body, "prompt_tokens", NULL);
    CHECK(r.status == 200 && reply);
    free(r.body);
    cJSON *req = cJSON_Parse(t1), *msgs = cJSON_GetObjectItem(req, "messages"),
          *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", reply ? reply : "");
    cJSON_AddItemToArray(msgs, m);
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", "Now in reverse.");
    cJSON_AddItemToArray(msgs, m);
    char *t2 = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    double hits0 = metric("laguna_prefix_cache_hit_tokens_total");
    r = http("POST", "/v1/chat/completions", t2);
    double cached = usage_field(r.body, "prompt_tokens_details", "cached_tokens");
    double p2 = usage_field(r.body, "prompt_tokens", NULL);
    /* all of turn 1 but the tail the template rewrites (its empty <think></think>) */
    CHECKF(r.status == 200 && cached >= p1 - 4 && cached < p2,
           "turn 1 prompt %g, turn 2 prompt %g, cached %g", p1, p2, cached);
    CHECK(metric("laguna_prefix_cache_hit_tokens_total") >= hits0 + cached);
    /* the conversation's pages stay, within the budget, and are the pages in use */
    double pages = metric("laguna_prefix_cache_pages");
    CHECKF(pages > 0 && pages <= metric("laguna_prefix_cache_pages_budget") &&
               pages <= metric("laguna_kv_pages_used"),
           "%g cache pages", pages);
    free(r.body);
    free(t2);
    free(reply);
}

/* ---- drafts (draft_lookup) ----------------------------------------------------------------- */

typedef struct {
    int port, i;
    char *text;
} draft_req;

/* Greedy completion i (of a few prompts that repeat themselves, some ending on a stop string
 * inside repeated text) on the server at port; its text, or NULL. */
static void *draft_request(void *arg) {
    draft_req *d = arg;
    static const char *const prompts[] = {
        "def fib(n):\\n    if n < 2:\\n        return n\\n    return fib(n - 1) + fib(n - 2)\\n\\n\\ndef "
        "fib2(n):\\n    if n < 2:",
        "def g(x):\\n    return x + 1\\n\\n\\ndef h(x):\\n    return x +",
        "class A:\\n    def __init__(self):\\n        self.a = 1\\n\\n\\nclass B:\\n"};
    char req[512];
    snprintf(req, sizeof req,
             "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0,\"stream\":%s%s}",
             prompts[d->i % 3], 20 + 17 * (d->i % 5), d->i % 2 ? "true" : "false",
             d->i % 4 == 3 ? ",\"stop\":[\"return n\",\"self.b\"]" : "");
    http_reply r = http_key(d->port, "POST", "/v1/completions", KEY, req);
    int done = 1;
    d->text = r.status != 200   ? NULL
              : d->i % 2 ? sse_text(r.body, "text", &done, NULL, 0, NULL)
                              : reply_text(r.body, "text");
    if (d->text && !done) {
        free(d->text);
        d->text = NULL;
    }
    free(r.body);
    return NULL;
}

/* A server drafting up to 4 tokens a step for greedy requests gives each request the text the
 * plain server gives, alone and 12 at once (drafts in the same step as other requests' rows),
 * and its drafts are often accepted; the sequences it leaves serve the prefix cache as well. */
static void test_drafts_same_text(void) {
    lg_server *ds = NULL;
    laguna_error err = {0};
    lg_server_options so = {.port = 0, .api_key = KEY, .n_parallel = 12, .n_ctx = 512, .draft_lookup = 4};
    if (served_model_start(&g_sm, &so, &ds, &err)) {
        CHECKF(0, "%s", err.message);
        return;
    }
    enum { N = 12 };
    draft_req plain[N], alone[N], together[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        plain[i] = (draft_req){g_port, i, NULL};
        alone[i] = (draft_req){lg_server_port(ds), i, NULL};
        draft_request(&plain[i]);
        draft_request(&alone[i]);
    }
    for (int i = 0; i < N; i++) {
        together[i] = (draft_req){lg_server_port(ds), i, NULL};
        pthread_create(&th[i], NULL, draft_request, &together[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        CHECKF(plain[i].text && alone[i].text && together[i].text &&
                   !strcmp(plain[i].text, alone[i].text) && !strcmp(plain[i].text, together[i].text),
               "request %d: plain '%s', drafted alone '%s', together '%s'", i,
               plain[i].text ? plain[i].text : "(none)", alone[i].text ? alone[i].text : "(none)",
               together[i].text ? together[i].text : "(none)");
        free(plain[i].text);
        free(alone[i].text);
        free(together[i].text);
    }
    http_reply m = http_key(lg_server_port(ds), "GET", "/metrics", KEY, NULL);
    const char *a = m.body ? strstr(m.body, "\nlaguna_draft_accepted_tokens_total ") : NULL;
    double accepted = a ? atof(a + strlen("\nlaguna_draft_accepted_tokens_total ")) : -1;
    CHECKF(accepted > 50, "drafted tokens accepted: %g", accepted);
    free(m.body);
    lg_server_stop(ds);
}

/* ---- the Responses API ------------------------------------------------------------------------ */

static const char *str_or_empty(const cJSON *o, const char *name) {
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, name));
    return v ? v : "";
}

/* The output_text of a response (its message items' parts joined); NULL when there is none. */
static char *response_text(const char *body) {
    cJSON *j = cJSON_Parse(body), *it, *part;
    lg_sbuf b = {0};
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "output")) {
        if (strcmp(str_or_empty(it, "type"), "message")) continue;
        cJSON_ArrayForEach(part, cJSON_GetObjectItem(it, "content"))
            lg_sbuf_str(&b, str_or_empty(part, "text"));
    }
    cJSON_Delete(j);
    char *out = b.p ? strdup(b.p) : NULL;
    lg_sbuf_free(&b);
    return out;
}

/* /v1/responses renders the same conversation as /v1/chat/completions: greedy, the same text
 * and prompt tokens; whole or streamed (the final response event), the same response. */
static void test_responses_match_chat(void) {
    http_reply c = http("POST", "/v1/chat/completions",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"def add(a, b):\"}],"
                        "\"max_tokens\":12,\"temperature\":0}");
    http_reply r = http("POST", "/v1/responses",
                        "{\"input\":\"def add(a, b):\",\"max_output_tokens\":12,\"temperature\":0}");
    http_reply st = http("POST", "/v1/responses",
                         "{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
                         "\"text\":\"def add(a, b):\"}]}],\"max_output_tokens\":12,\"temperature\":0,"
                         "\"stream\":true}");
    char *chat = c.status == 200 ? reply_text(c.body, "content") : NULL;
    char *whole = r.status == 200 ? response_text(r.body) : NULL;
    CHECKF(chat && whole && !strcmp(chat, whole), "chat '%s', responses '%s'", chat ? chat : "",
           whole ? whole : r.body ? r.body : "");
    CHECK(r.body && strstr(r.body, "\"status\":\"incomplete\"") &&
          strstr(r.body, "\"reason\":\"max_output_tokens\""));
    cJSON *rj = cJSON_Parse(r.body ? r.body : "");
    cJSON *ru = cJSON_GetObjectItem(rj, "usage");
    CHECKF(cJSON_GetNumberValue(cJSON_GetObjectItem(ru, "input_tokens")) ==
                   usage_field(c.body, "prompt_tokens", NULL) &&
               cJSON_GetNumberValue(cJSON_GetObjectItem(ru, "output_tokens")) == 12,
           "usage %s", r.body ? r.body : "");
    /* the stream's last event carries the same response, ids and times aside */
    const char *last = st.body ? strstr(st.body, "event: response.incomplete") : NULL;
    const char *data = last ? strstr(last, "data: ") : NULL;
    cJSON *ev = data ? cJSON_Parse(data + 6) : NULL, *sr = cJSON_GetObjectItem(ev, "response");
    char *streamed = NULL;
    if (sr) {
        char *txt = cJSON_PrintUnformatted(sr);
        streamed = response_text(txt);
        free(txt);
    }
    CHECKF(st.status == 200 && streamed && whole && !strcmp(streamed, whole),
           "streamed '%s', whole '%s'", streamed ? streamed : "", whole ? whole : "");
    CHECK(st.body && !strstr(st.body, "[DONE]"));
    cJSON_Delete(ev);
    cJSON_Delete(rj);
    free(streamed);
    free(chat);
    free(whole);
    free(c.body);
    free(r.body);
    free(st.body);
}

/* ---- structured output (response_format) ------------------------------------------------------ */

#define PERSON_SCHEMA                                                                                       \
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"                  \
    "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\",\"c\"]},"  \
    "\"maxItems\":3},\"note\":{\"type\":[\"string\",\"null\"],\"maxLength\":8}},"                          \
    "\"required\":[\"name\",\"age\",\"tags\"]}"

/* Whether text is one JSON value valid under PERSON_SCHEMA (checked here by hand). */
static bool is_person(const char *text) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, true);
    bool ok = cJSON_IsObject(j);
    int n = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, j) {
        n++;
        if (!strcmp(it->string, "name")) ok &= cJSON_IsString(it);
        else if (!strcmp(it->string, "age")) ok &= cJSON_IsNumber(it) && it->valuedouble == floor(it->valuedouble);
        else if (!strcmp(it->string, "tags")) {
            ok &= cJSON_IsArray(it) && cJSON_GetArraySize(it) <= 3;
            cJSON *t;
            cJSON_ArrayForEach(t, it) ok &= cJSON_IsString(t) && strlen(t->valuestring) == 1 && strchr("abc", t->valuestring[0]);
        } else if (!strcmp(it->string, "note")) ok &= cJSON_IsNull(it) || cJSON_IsString(it);
        else ok = false;
    }
    ok &= cJSON_GetObjectItem(j, "name") && cJSON_GetObjectItem(j, "age") && cJSON_GetObjectItem(j, "tags");
    cJSON_Delete(j);
    return ok && n >= 3;
}

typedef struct {
    int seed;
    char *text;
    char finish[32];
} person_req;

static void *person_request(void *arg) {
    person_req *p = arg;
    char body[1024];
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Describe someone.\"}],\"max_tokens\":400,"
             "\"temperature\":1,\"seed\":%d,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
             "{\"name\":\"person\",\"strict\":true,\"schema\":" PERSON_SCHEMA "}}}",
             p->seed);
    http_reply r = http("POST", "/v1/chat/completions", body);
    p->text = r.status == 200 ? reply_text(r.body, "content") : NULL;
    cJSON *j = cJSON_Parse(r.body ? r.body : "");
    const char *f = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "finish_reason"));
    snprintf(p->finish, sizeof p->finish, "%s", f ? f : "");
    cJSON_Delete(j);
    free(r.body);
    return NULL;
}

/* Sampled answers (temperature 1) of this random-weight model follow the
 * schema, alone and eight at once; the same seed gives the same text both
 * ways, so constraints of rows drawn together do not mix. */
static void test_structured_output_schema(void) {
    enum { N = 8 };
    person_req alone[N], together[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        alone[i] = (person_req){.seed = 100 + i};
        person_request(&alone[i]);
        together[i] = (person_req){.seed = 100 + i};
    }
    for (int i = 0; i < N; i++) pthread_create(&th[i], NULL, person_request, &together[i]);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        CHECKF(alone[i].text && is_person(alone[i].text) && !strcmp(alone[i].finish, "stop"),
               "seed %d: '%s' (%s)", alone[i].seed, alone[i].text ? alone[i].text : "(none)", alone[i].finish);
        CHECKF(together[i].text && alone[i].text && !strcmp(together[i].text, alone[i].text),
               "seed %d together: '%s'", together[i].seed, together[i].text ? together[i].text : "(none)");
        free(alone[i].text);
        free(together[i].text);
    }
}

/* Whether text starts a JSON object (the server's own grammar and matcher;
 * the complete texts above are checked by cJSON and by hand). */
static bool json_object_prefix(const char *text) {
    lg_grammar g;
    lg_matcher *m = NULL;
    if (lg_json_schema_grammar(NULL, &g, NULL)) return false;
    bool ok = !lg_matcher_new(&g, &m, NULL);
    int st = ok ? lg_matcher_start(m) : -1;
    for (const char *p = text; *p && st >= 0; p++) st = lg_matcher_step(m, st, (uint8_t)*p);
    lg_matcher_free(m);
    lg_grammar_free(&g);
    return ok && st >= 0 && text[0];
}

/* Tokens the grammar forces (the rest of a key, fixed punctuation) go in with the job's row, not a
 * step each: greedy answers are the same with LAGUNA_JUMP_FORWARD=0, in fewer steps. */
static void test_structured_output_jump_forward(void) {
    const char *schema = "{\"type\":\"object\",\"properties\":{\"identifier\":{\"type\":\"integer\"},"
                         "\"description\":{\"type\":\"string\",\"maxLength\":6},\"is_available\":{\"type\":\"boolean\"}},"
                         "\"required\":[\"identifier\",\"description\",\"is_available\"]}";
    char *text[2][3] = {{0}};
    double steps[2] = {0};
    for (int off = 0; off < 2; off++) {
        if (off) setenv("LAGUNA_JUMP_FORWARD", "0", 1);
        lg_server *srv = NULL;
        laguna_error err = {0};
        lg_server_options so = {.port = 0, .api_key = KEY, .n_parallel = 2, .n_ctx = 512};
        laguna_status st = served_model_start(&g_sm, &so, &srv, &err);
        unsetenv("LAGUNA_JUMP_FORWARD");
        if (st) {
            CHECKF(0, "%s", err.message);
            return;
        }
        for (int i = 0; i < 3; i++) {
            char body[1024];
            snprintf(body, sizeof body,
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"Item %d as JSON\"}],\"max_tokens\":200,"
                     "\"temperature\":0,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":%s}}}",
                     i, schema);
            http_reply r = http_key(lg_server_port(srv), "POST", "/v1/chat/completions", KEY, body);
            text[off][i] = r.status == 200 ? reply_text(r.body, "content") : NULL;
            free(r.body);
        }
        http_reply m = http_key(lg_server_port(srv), "GET", "/metrics", KEY, NULL);
        const char *at = m.body ? strstr(m.body, "\nlaguna_steps_total ") : NULL;
        steps[off] = at ? atof(at + strlen("\nlaguna_steps_total ")) : -1;
        free(m.body);
        lg_server_stop(srv);
    }
    for (int i = 0; i < 3; i++) {
        const char *end = NULL;
        cJSON *j = text[0][i] ? cJSON_ParseWithOpts(text[0][i], &end, true) : NULL;
        CHECKF(cJSON_IsBool(cJSON_GetObjectItem(j, "is_available")), "%s", text[0][i] ? text[0][i] : "(none)");
        CHECKF(text[0][i] && text[1][i] && !strcmp(text[0][i], text[1][i]), "jump forward '%s', without '%s'",
               text[0][i] ? text[0][i] : "", text[1][i] ? text[1][i] : "");
        cJSON_Delete(j);
        free(text[0][i]), free(text[1][i]);
    }
    CHECKF(steps[0] > 0 && steps[0] < steps[1], "steps with jump forward %g, without %g", steps[0], steps[1]);
}

/* json_object (greedy, streamed and whole alike), and the Responses API's text.format. */
static void test_structured_output_object_and_responses(void) {
    const char *req = "{\"messages\":[{\"role\":\"user\",\"content\":\"JSON please\"}],\"max_tokens\":120,"
                      "\"temperature\":0,\"response_format\":{\"type\":\"json_object\"}%s}";
    char body[512];
    snprintf(body, sizeof body, req, "");
    http_reply r = http("POST", "/v1/chat/completions", body);
    char *whole = r.status == 200 ? reply_text(r.body, "content") : NULL;
    /* greedy, this small model may repeat keys until max_tokens: then the text is a prefix of an object */
    const char *end = NULL;
    cJSON *j = whole ? cJSON_ParseWithOpts(whole, &end, true) : NULL;
    bool cut = r.body && strstr(r.body, "\"finish_reason\":\"length\"");
    CHECKF(whole && (cut ? json_object_prefix(whole) : cJSON_IsObject(j)), "json_object: %s", r.body ? r.body : "");
    cJSON_Delete(j);
    snprintf(body, sizeof body, req, ",\"stream\":true");
    http_reply st = http("POST", "/v1/chat/completions", body);
    int done = 0;
    char *streamed = sse_text(st.body ? st.body : "", "content", &done, NULL, 0, NULL);
    CHECKF(whole && done && !strcmp(streamed, whole), "streamed '%s', whole '%s'", streamed, whole ? whole : "");
    free(streamed);
    free(whole);
    free(r.body);
    free(st.body);
    http_reply rr = http("POST", "/v1/responses",
                         "{\"input\":\"Describe someone.\",\"max_output_tokens\":400,\"temperature\":1,\"seed\":7,"
                         "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"person\",\"strict\":true,"
                         "\"schema\":" PERSON_SCHEMA "}}}");
    char *text = rr.status == 200 ? response_text(rr.body) : NULL;
    CHECKF(text && is_person(text), "responses: %s", rr.body ? rr.body : "");
    free(text);
    free(rr.body);
}

/* ---- bad input ------------------------------------------------------------------------------ */

static void expect_status(const char *path, const char *key, const char *body, int status,
                          const char *needle) {
    http_reply r = http_key(g_port, body ? "POST" : "GET", path, key, body);
    CHECKF(r.status == status && r.body && strstr(r.body, "\"error\"") &&
               (!needle || strstr(r.body, needle)),
           "%s %s: %d %s", path, body ? body : "", r.status, r.body ? r.body : "");
    free(r.body);
}

static void test_bad_input(void) {
    const char *chat = "/v1/chat/completions";
    expect_status(chat, KEY, "{\"messages\":", 400, "JSON");
    expect_status(chat, KEY, "[1,2]", 400, NULL);
    expect_status(chat, KEY, "{}", 400, "messages");
    expect_status(chat, KEY, "{\"messages\":[]}", 400, "messages");
    expect_status(chat, KEY, "{\"messages\":\"hi\"}", 400, "messages");
    expect_status(chat, KEY, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", 400,
                  "wizard");
    expect_status(chat, KEY, "{\"messages\":[{\"content\":\"hi\"}]}", 400, "role");
    expect_status(chat, KEY,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":\"hot\"}",
                  400, "temperature");
    expect_status(chat, KEY,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":0}", 400,
                  "max_tokens");
    expect_status(chat, KEY,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":-3}", 400,
                  "max_tokens");
    expect_status(chat, KEY, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":2}", 400,
                  NULL);
    expect_status(chat, KEY, "{\"messages\":[{\"role\":\"user\",\"content\":42}]}", 400, NULL);
    /* structured output: the schema's problem named, with where it is */
#define RF(x) "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":" x "}"
    expect_status(chat, KEY, RF("\"json\""), 400, "response_format");
    expect_status(chat, KEY, RF("{\"type\":\"yaml\"}"), 400, "yaml");
    expect_status(chat, KEY, RF("{\"type\":\"json_schema\"}"), 400, "json_schema");
    expect_status(chat, KEY, RF("{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"type\":\"object\","
                                "\"properties\":{\"a\":{\"if\":{}}}}}}"),
                  400, "/properties/a");
    expect_status(chat, KEY, RF("{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"$ref\":\"#/nowhere\"}}}"),
                  400, "nowhere");
    expect_status(chat, KEY, RF("{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"$defs\":{\"a\":{\"anyOf\":"
                                "[{\"$ref\":\"#/$defs/a\"}]}},\"$ref\":\"#/$defs/a\"}}}"),
                  400, "recursion");
#undef RF
    /* the Responses API: OpenAI's error shape, the offending field named */
    const char *resp = "/v1/responses";
    expect_status(resp, KEY, "{}", 400, "input");
    expect_status(resp, KEY, "{\"input\":42}", 400, "input");
    expect_status(resp, KEY, "{\"input\":[]}", 400, "input");
    expect_status(resp, KEY, "{\"input\":[{\"type\":\"item_reference\",\"id\":\"x\"}]}", 400,
                  "item_reference");
    expect_status(resp, KEY, "{\"input\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", 400,
                  "wizard");
    expect_status(resp, KEY,
                  "{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\"}]}]}",
                  400, "text parts");
    expect_status(resp, KEY, "{\"input\":[{\"type\":\"function_call\",\"name\":\"f\"}]}", 400,
                  "call_id");
    expect_status(resp, KEY, "{\"input\":\"hi\",\"previous_response_id\":\"resp_1\"}", 400,
                  "whole conversation");
    expect_status(resp, KEY, "{\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_schema\"}}}",
                  400, "json_schema");
    expect_status(resp, KEY, "{\"input\":\"hi\",\"max_output_tokens\":0}", 400,
                  "max_output_tokens");
    expect_status(resp, KEY, "{\"input\":\"hi\",\"reasoning\":{\"effort\":\"huge\"}}", 400,
                  "effort");
    expect_status(resp, KEY, "{\"input\":\"hi\",\"tool_choice\":{\"type\":\"web\"}}", 400,
                  "tool_choice");
    expect_status(resp, KEY, "{\"input\":\"hi\",\"tools\":[{\"type\":\"function\"}]}", 400,
                  "name");
    expect_status(resp, NULL, "{\"input\":\"hi\"}", 401, NULL);
    expect_status("/v1/completions", KEY, "{\"prompt\":[1,2,999999999]}", 400, "prompt");
    expect_status("/v1/completions", KEY, "{\"prompt\":true}", 400, "prompt");
    /* a prompt longer than the context (512 in this server) */
    char *big = malloc(20000);
    strcpy(big, "{\"prompt\":\"");
    for (int i = 0; i < 1500; i++)
        strcat(big, "word ");
    strcat(big, "\"}");
    expect_status("/v1/completions", KEY, big, 400, "context");
    free(big);
    /* oversized body (the test server takes 64 KiB) */
    char *huge = malloc(100000);
    memset(huge, ' ', 99999);
    huge[99999] = 0;
    huge[0] = '{';
    huge[99998] = '}';
    expect_status(chat, KEY, huge, 413, NULL);
    free(huge);
    /* keys, routes, methods */
    expect_status(chat, NULL, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 401, NULL);
    expect_status(chat, "sk-wrong", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 401,
                  NULL);
    expect_status("/v1/nothing", KEY, "{}", 404, NULL);
    expect_status(chat, KEY, NULL, 405, NULL);
    /* and it keeps serving */
    http_reply r = http("POST", "/v1/completions", "{\"prompt\":\"x = \",\"max_tokens\":2}");
    CHECK(r.status == 200);
    free(r.body);
}

/* ---- logprobs ------------------------------------------------------------------------------ */

/* Greedy completion with 3 alternatives: the tokens spell the text, the chosen token is the best
 * alternative (same logprob), alternatives are sorted and their probabilities sum to at most 1;
 * streamed, the same tokens and numbers. */
static void test_completion_logprobs(void) {
    const char *req = "{\"prompt\":\"def fibonacci(n):\",\"max_tokens\":12,\"temperature\":0,"
                      "\"logprobs\":3%s}";
    char buf[256];
    snprintf(buf, sizeof buf, req, "");
    http_reply r = http("POST", "/v1/completions", buf);
    cJSON *j = cJSON_Parse(r.body);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *lp = cJSON_GetObjectItem(c0, "logprobs");
    cJSON *tokens = cJSON_GetObjectItem(lp, "tokens"),
          *lps = cJSON_GetObjectItem(lp, "token_logprobs");
    cJSON *tops = cJSON_GetObjectItem(lp, "top_logprobs");
    CHECKF(r.status == 200 && cJSON_GetArraySize(tokens) == 12 && cJSON_GetArraySize(lps) == 12 &&
               cJSON_GetArraySize(tops) == 12,
           "%s", r.body);
    char text[1024] = "";
    for (int i = 0; i < cJSON_GetArraySize(tokens); i++) {
        strncat(text, cJSON_GetArrayItem(tokens, i)->valuestring, sizeof text - strlen(text) - 1);
        double chosen = cJSON_GetArrayItem(lps, i)->valuedouble, best = -1e30, prev = 1, sum = 0;
        cJSON *alt;
        int n_alt = 0;
        bool sorted = true;
        cJSON_ArrayForEach(alt, cJSON_GetArrayItem(tops, i)) {
            if (alt->valuedouble > best) best = alt->valuedouble;
            if (alt->valuedouble > prev) sorted = false;
            prev = alt->valuedouble;
            sum += exp(alt->valuedouble);
            n_alt++;
        }
        CHECKF(chosen <= 0 && chosen == best && sorted && n_alt >= 1 && n_alt <= 3 &&
                   sum <= 1 + 1e-5,
               "token %d: chosen %g best %g sorted %d n %d sum %g", i, chosen, best, sorted, n_alt,
               sum);
    }
    cJSON *t = cJSON_GetObjectItem(c0, "text");
    CHECKF(cJSON_IsString(t) && !strcmp(text, t->valuestring), "'%s' vs '%s'", text,
           cJSON_IsString(t) ? t->valuestring : "");
    /* streamed */
    snprintf(buf, sizeof buf, req, ",\"stream\":true");
    http_reply rs = http("POST", "/v1/completions", buf);
    cJSON *all = cJSON_CreateArray();
    for (const char *p = rs.body; (p = strstr(p, "data: {"));) {
        p += 6;
        const char *e = strstr(p, "\n\n");
        cJSON *ch = cJSON_ParseWithLength(p, (size_t)(e - p));
        cJSON *l = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(ch, "choices"), 0),
                                       "logprobs");
        cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(l, "token_logprobs"))
            cJSON_AddItemToArray(all, cJSON_Duplicate(x, 0));
        cJSON_Delete(ch);
        p = e;
    }
    CHECKF(cJSON_Compare(all, lps, true), "stream %s vs %s", cJSON_PrintUnformatted(all),
           cJSON_PrintUnformatted(lps));
    cJSON_Delete(all);
    cJSON_Delete(j);
    free(rs.body);
    free(r.body);
}

/* A greedy request without logprobs has its tokens chosen on the device
 * (LAGUNA_ROW_ARGMAX: no logits leave it); with logprobs the scheduler takes
 * the logits and samples them itself. Both give the same text. */
static void test_greedy_text_with_and_without_logprobs(void) {
    const char *req = "{\"prompt\":\"def fibonacci(n):\",\"max_tokens\":16,\"temperature\":0%s}";
    char buf[256];
    char *text[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        snprintf(buf, sizeof buf, req, k ? ",\"logprobs\":1" : "");
        http_reply r = http("POST", "/v1/completions", buf);
        cJSON *j = cJSON_Parse(r.body);
        cJSON *t = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "text");
        CHECKF(r.status == 200 && cJSON_IsString(t), "%s", r.body);
        if (cJSON_IsString(t)) text[k] = strdup(t->valuestring);
        cJSON_Delete(j);
        free(r.body);
    }
    CHECKF(text[0] && text[1] && *text[0] && !strcmp(text[0], text[1]), "'%s' vs '%s'",
           text[0] ? text[0] : "", text[1] ? text[1] : "");
    free(text[0]), free(text[1]);
}

static void test_chat_logprobs(void) {
    http_reply r = http("POST", "/v1/chat/completions",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"Sort a list.\"}],"
                        "\"max_tokens\":8,\"temperature\":0,\"logprobs\":true,\"top_logprobs\":2}");
    cJSON *j = cJSON_Parse(r.body);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "logprobs"), "content"), *e;
    int n = 0;
    cJSON_ArrayForEach(e, content) {
        cJSON *top = cJSON_GetObjectItem(e, "top_logprobs");
        const char *tok = cJSON_GetStringValue(cJSON_GetObjectItem(e, "token"));
        CHECKF(tok && cJSON_IsNumber(cJSON_GetObjectItem(e, "logprob")) &&
                   cJSON_GetArraySize(top) == 2 &&
                   cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "logprob")->valuedouble ==
                       cJSON_GetObjectItem(e, "logprob")->valuedouble &&
                   cJSON_GetArraySize(cJSON_GetObjectItem(e, "bytes")) >= (int)strlen(tok) - 2,
               "%s", r.body);
        n++;
    }
    CHECKF(r.status == 200 && n == (int)usage_field(r.body, "completion_tokens", NULL), "%s",
           r.body);
    cJSON_Delete(j);
    free(r.body);
    /* asked for wrongly */
    const char *chat = "/v1/chat/completions";
    expect_status(chat, KEY,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_logprobs\":2}", 400,
                  "logprobs");
    expect_status(chat, KEY,
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logprobs\":true,"
                  "\"top_logprobs\":21}",
                  400, "top_logprobs");
    expect_status("/v1/completions", KEY, "{\"prompt\":\"x\",\"logprobs\":true}", 400, "logprobs");
}

/* ---- Anthropic Messages ---------------------------------------------------------------------- */

/* An Anthropic event stream, summarised: the event names in order (runs of
 * content_block_delta counted once), the text and thinking deltas joined,
 * tool_use names and their input_json_delta joined, and message_delta's stop. */
typedef struct {
    char names[1024], text[2048], thinking[2048], tool_name[64], tool_json[512];
    char stop_reason[32], stop_sequence[32];
    int output_tokens, data_types_match;
} anth_stream;

static void anth_parse(const char *body, anth_stream *a) {
    memset(a, 0, sizeof *a);
    a->data_types_match = 1;
    const char *p = body;
    while ((p = strstr(p, "event: "))) {
        p += 7;
        const char *nl = strchr(p, '\n');
        if (!nl || strncmp(nl, "\ndata: ", 7)) break;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(nl - p), p);
        const char *d = nl + 7, *e = strstr(d, "\n\n");
        if (!e) break;
        cJSON *j = cJSON_ParseWithLength(d, (size_t)(e - d));
        cJSON *type = cJSON_GetObjectItem(j, "type");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, name)) a->data_types_match = 0;
        const char *last = strrchr(a->names, ',');
        if (strcmp(name, "content_block_delta") || !last || strcmp(last + 1, name)) {
            strncat(a->names, ",", sizeof a->names - strlen(a->names) - 1);
            strncat(a->names, name, sizeof a->names - strlen(a->names) - 1);
        }
        cJSON *delta = cJSON_GetObjectItem(j, "delta");
        const char *dt = cJSON_GetStringValue(cJSON_GetObjectItem(delta, "type"));
        const char *v;
        if (dt && !strcmp(dt, "text_delta") &&
            (v = cJSON_GetStringValue(cJSON_GetObjectItem(delta, "text"))))
            strncat(a->text, v, sizeof a->text - strlen(a->text) - 1);
        if (dt && !strcmp(dt, "thinking_delta") &&
            (v = cJSON_GetStringValue(cJSON_GetObjectItem(delta, "thinking"))))
            strncat(a->thinking, v, sizeof a->thinking - strlen(a->thinking) - 1);
        if (dt && !strcmp(dt, "input_json_delta") &&
            (v = cJSON_GetStringValue(cJSON_GetObjectItem(delta, "partial_json"))))
            strncat(a->tool_json, v, sizeof a->tool_json - strlen(a->tool_json) - 1);
        cJSON *cb = cJSON_GetObjectItem(j, "content_block");
        if ((v = cJSON_GetStringValue(cJSON_GetObjectItem(cb, "type"))) && !strcmp(v, "tool_use"))
            snprintf(a->tool_name, sizeof a->tool_name, "%s",
                     cJSON_GetStringValue(cJSON_GetObjectItem(cb, "name")));
        if (!strcmp(name, "message_delta")) {
            if ((v = cJSON_GetStringValue(cJSON_GetObjectItem(delta, "stop_reason"))))
                snprintf(a->stop_reason, sizeof a->stop_reason, "%s", v);
            if ((v = cJSON_GetStringValue(cJSON_GetObjectItem(delta, "stop_sequence"))))
                snprintf(a->stop_sequence, sizeof a->stop_sequence, "%s", v);
            cJSON *u = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "output_tokens");
            a->output_tokens = cJSON_IsNumber(u) ? u->valueint : -1;
        }
        cJSON_Delete(j);
        p = e;
    }
}

/* The text of one content block type in a non-streamed message ("" when absent). */
static char *anth_block(const char *body, const char *type, const char *field) {
    cJSON *j = cJSON_Parse(body), *b;
    char *out = NULL;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(j, "content")) {
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(b, "type"));
        if (t && !strcmp(t, type) && !out)
            out = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(b, field)));
    }
    cJSON_Delete(j);
    return out ? out : strdup("");
}

static char *json_str(const char *body, const char *a, const char *b) {
    cJSON *j = cJSON_Parse(body), *v = cJSON_GetObjectItem(j, a);
    if (b) v = cJSON_GetObjectItem(v, b);
    char *s = cJSON_IsString(v) ? strdup(v->valuestring) : cJSON_IsNumber(v) ? malloc(32) : NULL;
    if (s && cJSON_IsNumber(v)) snprintf(s, 32, "%d", v->valueint);
    cJSON_Delete(j);
    return s;
}

static const char *MSG1 =
    "{\"model\":\"laguna-tiny\",\"max_tokens\":24,\"system\":\"You write Python.\","
    "\"messages\":[{\"role\":\"user\",\"content\":\"Write a function that adds two numbers.\"}]%s}";

static void test_messages_stream_matches_whole(void) {
    char req[600];
    snprintf(req, sizeof req, MSG1, "");
    http_reply r = http_key(g_port, "POST", "/v1/messages", "x:" KEY, req); /* x-api-key */
    CHECKF(r.status == 200, "%d %s", r.status, r.body);
    char *whole = anth_block(r.body, "text", "text");
    char *type = json_str(r.body, "type", NULL), *role = json_str(r.body, "role", NULL);
    char *stop = json_str(r.body, "stop_reason", NULL), *id = json_str(r.body, "id", NULL);
    char *out = json_str(r.body, "usage", "output_tokens");
    CHECK(type && !strcmp(type, "message") && role && !strcmp(role, "assistant"));
    CHECK(id && !strncmp(id, "msg_", 4));
    CHECKF(stop && !strcmp(stop, "max_tokens") && out && !strcmp(out, "24"), "%s", r.body);
    CHECK(strlen(whole) > 5 && !strstr(r.body, "</assistant>") && !strstr(r.body, "thinking"));
    free(type), free(role), free(stop), free(id), free(out);
    free(r.body);
    snprintf(req, sizeof req, MSG1, ",\"stream\":true");
    r = http_key(g_port, "POST", "/v1/messages", "x:" KEY, req);
    anth_stream a;
    anth_parse(r.body, &a);
    CHECKF(r.status == 200 && !strcmp(a.names, ",message_start,content_block_start,"
                                               "content_block_delta,content_block_stop,"
                                               "message_delta,message_stop"),
           "%d events %s", r.status, a.names);
    CHECK(a.data_types_match && !strcmp(a.stop_reason, "max_tokens") && a.output_tokens == 24);
    CHECKF(!strcmp(a.text, whole), "stream '%s' vs whole '%s'", a.text, whole);
    free(whole);
    free(r.body);
}

/* thinking on: the template opens <think>, so the reply starts in a thinking block */
static void test_messages_thinking(void) {
    const char *req = "{\"max_tokens\":12,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":"
                      "1024},\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                      "\"text\":\"Sort a list.\"}]}]%s}";
    char buf[400];
    snprintf(buf, sizeof buf, req, "");
    http_reply r = http("POST", "/v1/messages", buf);
    char *thinking = anth_block(r.body, "thinking", "thinking");
    CHECKF(r.status == 200 && strlen(thinking) > 0, "%d %s", r.status, r.body);
    free(r.body);
    snprintf(buf, sizeof buf, req, ",\"stream\":true");
    r = http("POST", "/v1/messages", buf);
    anth_stream a;
    anth_parse(r.body, &a);
    CHECKF(!strcmp(a.thinking, thinking), "stream '%s' vs whole '%s'", a.thinking, thinking);
    CHECK(strstr(r.body, "\"content_block\":{\"type\":\"thinking\""));
    free(thinking);
    free(r.body);
    /* thinking off: no thinking block */
    r = http("POST", "/v1/messages",
             "{\"max_tokens\":6,\"thinking\":{\"type\":\"disabled\"},\"messages\":[{\"role\":"
             "\"user\",\"content\":\"hi\"}]}");
    CHECKF(r.status == 200 && !strstr(r.body, "\"thinking\""), "%d %s", r.status, r.body);
    free(r.body);
}

/* A stop sequence taken from the middle of the greedy reply ends it there. */
static void test_messages_stop_sequence(void) {
    char req[600];
    snprintf(req, sizeof req, MSG1, "");
    http_reply r = http("POST", "/v1/messages", req);
    char *whole = anth_block(r.body, "text", "text");
    free(r.body);
    CHECK(strlen(whole) > 12);
    if (strlen(whole) <= 12) {
        free(whole);
        return;
    }
    char stop[8];
    snprintf(stop, sizeof stop, "%.4s", whole + strlen(whole) / 2);
    if (strchr(stop, '"') || strchr(stop, '\\') || strchr(stop, '\n'))
        snprintf(stop, sizeof stop, "%.1s", whole + 3);
    cJSON *j = cJSON_Parse(req), *arr = cJSON_AddArrayToObject(j, "stop_sequences");
    cJSON_AddItemToArray(arr, cJSON_CreateString("never-in-the-text"));
    cJSON_AddItemToArray(arr, cJSON_CreateString(stop));
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    r = http("POST", "/v1/messages", body);
    char *text = anth_block(r.body, "text", "text");
    char *reason = json_str(r.body, "stop_reason", NULL),
         *seq = json_str(r.body, "stop_sequence", NULL);
    CHECKF(reason && !strcmp(reason, "stop_sequence") && seq && !strcmp(seq, stop), "%s", r.body);
    CHECKF(!strncmp(text, whole, strlen(text)) && strlen(text) < strlen(whole) &&
               !strstr(text, stop),
           "'%s' stopped at '%s' of '%s'", text, stop, whole);
    free(reason), free(seq), free(text), free(r.body);
    /* streamed: the same */
    j = cJSON_Parse(body);
    cJSON_AddTrueToObject(j, "stream");
    free(body);
    body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    r = http("POST", "/v1/messages", body);
    anth_stream a;
    anth_parse(r.body, &a);
    CHECKF(!strcmp(a.stop_reason, "stop_sequence") && !strcmp(a.stop_sequence, stop), "%s", r.body);
    free(r.body);
    free(body);
    free(whole);
}

/* Tools, tool_use and tool_result blocks render exactly as the same conversation in OpenAI's
 * shape: count_tokens equals the chat completion's prompt_tokens. */
static void test_messages_render_like_openai(void) {
    const char *anth =
        "{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\"}],"
        "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather of a city\","
        "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Let me look.\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{\"city\":"
        "\"Paris\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
        "\"content\":[{\"type\":\"text\",\"text\":\"Sunny, 21 C\"}]},{\"type\":\"text\",\"text\":"
        "\"Thanks.\"}]}]%s}";
    const char *oai =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
        "{\"role\":\"assistant\",\"content\":\"Let me look.\",\"tool_calls\":[{\"id\":\"toolu_1\","
        "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
        "\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"Sunny, 21 C\"},"
        "{\"role\":\"user\",\"content\":\"Thanks.\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Weather of a city\",\"parameters\":{\"type\":\"object\",\"properties\":"
        "{\"city\":{\"type\":\"string\"}}}}}],\"max_tokens\":1}";
    char buf[2048];
    snprintf(buf, sizeof buf, anth, "");
    http_reply r = http("POST", "/v1/messages/count_tokens", buf);
    char *n = json_str(r.body, "input_tokens", NULL);
    http_reply o = http("POST", "/v1/chat/completions", oai);
    double p = usage_field(o.body, "prompt_tokens", NULL);
    CHECKF(r.status == 200 && o.status == 200 && n && atoi(n) == (int)p && p > 40,
           "count_tokens %s (%s), OpenAI prompt_tokens %g (%s)", n ? n : "-", r.body, p, o.body);
    free(n), free(r.body), free(o.body);
    /* and generation over it works */
    snprintf(buf, sizeof buf, anth, ",\"max_tokens\":4");
    r = http("POST", "/v1/messages", buf);
    CHECKF(r.status == 200 && strstr(r.body, "\"stop_reason\""), "%d %s", r.status, r.body);
    free(r.body);
    /* an empty text block is an empty user message, not a missing one */
    r = http(
        "POST", "/v1/messages/count_tokens",
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"\"}]}]}");
    o = http("POST", "/v1/messages/count_tokens",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}");
    CHECKF(r.status == 200 && o.status == 200 && !strcmp(r.body, o.body), "%s vs %s", r.body,
           o.body);
    free(r.body), free(o.body);
}

/* The writer on a turn with reasoning, text and a tool call (as the parser gives them for a
 * released template's tool call): thinking, text and tool_use blocks, stop_reason tool_use. */
static void test_messages_tool_use_blocks(void) {
    lg_event_list ev = {0};
    lg_events_add(&ev, LG_EV_REASONING, 0, "Need weather.", 13);
    lg_events_add(&ev, LG_EV_CONTENT, 0, "Checking.", 9);
    lg_events_add(&ev, LG_EV_TOOL_START, 0, "get_weather", 11);
    lg_events_add(&ev, LG_EV_TOOL_ARGS, 0, "{\"city\": \"Paris\"", 16);
    lg_events_add(&ev, LG_EV_TOOL_ARGS, 1, "x", 1); /* another call's fragment: not this block */
    lg_events_add(&ev, LG_EV_TOOL_ARGS, 0, ", \"days\": 2}", 12);
    lg_events_add(&ev, LG_EV_TOOL_END, 0, "", 0);
    lg_job job = {.n_prompt = 30, .n_cached = 10, .n_completion = 7, .finish_reason = "tool_calls"};
    lg_reply_info info = {.api = LG_API_MESSAGES, .id = "msg_7", .model = "m"};
    lg_sbuf out = {0};
    lg_anthropic_stream st = {.open_kind = -1};
    lg_anthropic_stream_events(&out, &st, &info, &job, ev.items, 3);
    lg_anthropic_stream_events(&out, &st, &info, &job, ev.items + 3, ev.n - 3);
    lg_anthropic_stream_end(&out, &st, &info, &job);
    anth_stream a;
    anth_parse(out.p, &a);
    CHECKF(!strcmp(a.names, ",message_start,content_block_start,content_block_delta,"
                            "content_block_stop,content_block_start,content_block_delta,"
                            "content_block_stop,content_block_start,content_block_delta,"
                            "content_block_stop,message_delta,message_stop"),
           "%s", a.names);
    CHECK(!strcmp(a.thinking, "Need weather.") && !strcmp(a.text, "Checking."));
    CHECKF(!strcmp(a.tool_name, "get_weather") &&
               !strcmp(a.tool_json, "{\"city\": \"Paris\", \"days\": 2}"),
           "%s %s", a.tool_name, a.tool_json);
    CHECK(!strcmp(a.stop_reason, "tool_use") && a.output_tokens == 7);
    CHECK(strstr(out.p, "\"input_tokens\":20") && strstr(out.p, "\"cache_read_input_tokens\":10"));
    /* whole: the same blocks */
    lg_turn t = {0};
    for (size_t i = 0; i < ev.n; i++)
        lg_turn_add(&t, &ev.items[i]);
    char *whole = lg_anthropic_response(&info, &t, &job);
    cJSON *j = cJSON_Parse(whole), *content = cJSON_GetObjectItem(j, "content");
    cJSON *tu = cJSON_GetArrayItem(content, 2);
    CHECKF(cJSON_GetArraySize(content) == 3 &&
               !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(tu, "type")), "tool_use") &&
               !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(tu, "id")), "toolu_msg_7_0") &&
               cJSON_GetObjectItem(cJSON_GetObjectItem(tu, "input"), "days")->valueint == 2,
           "%s", whole);
    CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "stop_reason")), "tool_use"));
    cJSON_Delete(j);
    free(whole);
    lg_turn_free(&t);
    lg_sbuf_free(&out);
    lg_events_free(&ev);
}

static void expect_anthropic_error(const char *path, const char *key, const char *body, int status,
                                   const char *type, const char *needle) {
    http_reply r = http_key(g_port, body ? "POST" : "GET", path, key, body);
    cJSON *j = r.body ? cJSON_Parse(r.body) : NULL;
    cJSON *err = cJSON_GetObjectItem(j, "error");
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));
    const char *et = cJSON_GetStringValue(cJSON_GetObjectItem(err, "type"));
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(err, "message"));
    CHECKF(r.status == status && t && !strcmp(t, "error") && et && !strcmp(et, type) && msg &&
               (!needle || strstr(msg, needle)),
           "%s %.80s: %d %s", path, body ? body : "", r.status, r.body ? r.body : "");
    cJSON_Delete(j);
    free(r.body);
}

static void test_messages_errors(void) {
    const char *m = "/v1/messages", *inv = "invalid_request_error";
    expect_anthropic_error(m, KEY, "{\"max_tokens\":", 400, inv, "JSON");
    expect_anthropic_error(m, KEY, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400,
                           inv, "max_tokens");
    expect_anthropic_error(m, KEY, "{\"max_tokens\":5}", 400, inv, "messages");
    expect_anthropic_error(m, KEY,
                           "{\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"hi\"}]}",
                           400, inv, "max_tokens");
    expect_anthropic_error(m, KEY,
                           "{\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":"
                           "\"hi\"}]}",
                           400, inv, "role");
    expect_anthropic_error(m, KEY,
                           "{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
                           "[{\"type\":\"image\",\"source\":{}}]}]}",
                           400, inv, "image");
    expect_anthropic_error(m, KEY,
                           "{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
                           "[{\"type\":\"tool_result\"}]}]}",
                           400, inv, "tool_use_id");
    expect_anthropic_error(m, KEY,
                           "{\"max_tokens\":5,\"thinking\":{\"type\":\"maybe\"},\"messages\":"
                           "[{\"role\":\"user\",\"content\":\"hi\"}]}",
                           400, inv, "thinking");
    expect_anthropic_error(m, KEY,
                           "{\"max_tokens\":5,\"tools\":[{\"type\":\"bash_20250124\",\"name\":"
                           "\"bash\"}],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                           400, inv, "bash_20250124");
    expect_anthropic_error(m, KEY,
                           "{\"max_tokens\":5,\"stop_sequences\":\"x\",\"messages\":"
                           "[{\"role\":\"user\",\"content\":\"hi\"}]}",
                           400, inv, "stop");
    expect_anthropic_error(m, "x:sk-wrong", "{\"max_tokens\":5,\"messages\":[]}", 401,
                           "authentication_error", NULL);
    expect_anthropic_error(m, NULL, "{}", 401, "authentication_error", NULL);
    expect_anthropic_error(m, KEY, NULL, 405, inv, NULL);
    expect_anthropic_error("/v1/messages/nothing", KEY, "{}", 404, "not_found_error", NULL);
    expect_anthropic_error("/v1/messages/count_tokens", KEY, "{\"messages\":7}", 400, inv,
                           "messages");
    char *huge = malloc(100000);
    memset(huge, ' ', 99999);
    huge[99999] = 0;
    huge[0] = '{';
    huge[99998] = '}';
    expect_anthropic_error(m, KEY, huge, 413, "request_too_large", NULL);
    free(huge);
}

/* A full queue gives 503 with a JSON error. One slot and a queue of one: a takes the slot, b
 * waits, h is refused. Whether the scheduler thread has admitted a yet does not matter (a job a
 * free slot will take is not waiting), so once the server has accepted a and b the 503 is
 * certain, however loaded the machine. */
static void test_queue_full(void) {
    lg_server *s = NULL;
    laguna_error err = {0};
    lg_server_options so = {.port = 0, .n_parallel = 1, .max_queue = 1, .n_ctx = 2048};
    if (served_model_start(&g_sm, &so, &s, &err)) {
        CHECKF(0, "%s", err.message);
        return;
    }
    int port = lg_server_port(s);
    int a = connect_port(port), b = connect_port(port);
    send_request(
        a, "POST", "/v1/completions", NULL,
        "{\"prompt\":\"def f(x):\",\"max_tokens\":1500,\"ignore_eos\":true,\"stream\":true}");
    char buf[256];
    CHECK(read(a, buf, sizeof buf) > 0); /* a was accepted (headers come before its first token) */
    send_request(b, "POST", "/v1/completions", NULL,
                 "{\"prompt\":\"def g(x):\",\"max_tokens\":1500,\"ignore_eos\":true}");
    int accepted = 0; /* until b is accepted too (bounded: 20 s) */
    for (int k = 0; k < 400 && !accepted; k++) {
        http_reply m = http_key(port, "GET", "/metrics", NULL, NULL);
        accepted = m.body && strstr(m.body, "\nlaguna_requests_total 2\n");
        free(m.body);
        if (!accepted) usleep(50 * 1000);
    }
    CHECK(accepted);
    http_reply r = http_key(port, "POST", "/v1/completions", NULL,
                            "{\"prompt\":\"def h(x):\",\"max_tokens\":4}");
    CHECKF(r.status == 503 && strstr(r.body, "queue"), "%d %s", r.status, r.body);
    free(r.body);
    /* the Anthropic route says it with 529 overloaded_error */
    r = http_key(port, "POST", "/v1/messages", NULL,
                 "{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    CHECKF(r.status == 529 && strstr(r.body, "\"overloaded_error\""), "%d %s", r.status, r.body);
    free(r.body);
    close(a);
    close(b);
    lg_server_stop(s); /* ends both and joins */
}

/* Two requests at once to an idle server with one slot and a queue of one: both are taken (the
 * second waits), whenever the scheduler thread gets to run. It used to count the first as
 * waiting until the scheduler admitted it, and refused the second when the machine was busy. */
static void test_queue_counts_only_waiting(void) {
    lg_server *s = NULL;
    laguna_error err = {0};
    lg_server_options so = {.port = 0, .n_parallel = 1, .max_queue = 1, .n_ctx = 256};
    if (served_model_start(&g_sm, &so, &s, &err)) {
        CHECKF(0, "%s", err.message);
        return;
    }
    int port = lg_server_port(s);
    for (int round = 0; round < 5; round++) {
        stream_arg args[2] = {{0, NULL, false}, {1, NULL, false}};
        pthread_t th[2];
        int saved = g_port;
        g_port = port; /* stream_thread talks to g_port; no other test runs meanwhile */
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, stream_thread, &args[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        g_port = saved;
        for (int i = 0; i < 2; i++) {
            CHECKF(args[i].text != NULL, "round %d: request %d was refused", round, i);
            free(args[i].text);
        }
    }
    lg_server_stop(s);
}

/* ---- the chat output parser on the released templates' format -------------------------------- */

typedef struct {
    char content[1024], reasoning[1024], names[4][64], args[4][512];
    int n_calls;
} parsed;

static void parse_ids(const char *text, bool in_reasoning, const cJSON *tools, parsed *out) {
    memset(out, 0, sizeof *out);
    int32_t *ids = NULL;
    size_t n = 0;
    laguna_tokenizer_encode(g_sm.tok, text, strlen(text), false, &ids, &n, NULL);
    lg_chat_parser *p = NULL;
    lg_chat_parser_new(g_sm.tok, tools, in_reasoning, &p);
    lg_event_list evs = {0};
    int32_t end_turn = laguna_tokenizer_token_to_id(g_sm.tok, "</assistant>", 12);
    for (size_t i = 0; i < n && ids[i] != end_turn; i++)
        lg_chat_parser_push(p, ids[i], &evs);
    lg_chat_parser_finish(p, &evs);
    for (size_t i = 0; i < evs.n; i++) {
        lg_event *e = &evs.items[i];
        if (e->kind == LG_EV_CONTENT)
            strncat(out->content, e->text, sizeof out->content - strlen(out->content) - 1);
        if (e->kind == LG_EV_REASONING)
            strncat(out->reasoning, e->text, sizeof out->reasoning - strlen(out->reasoning) - 1);
        if (e->kind == LG_EV_TOOL_START && out->n_calls < 4)
            snprintf(out->names[out->n_calls++], 64, "%s", e->text);
        if (e->kind == LG_EV_TOOL_ARGS && e->tool_index < 4)
            strncat(out->args[e->tool_index], e->text, 511 - strlen(out->args[e->tool_index]));
    }
    lg_events_free(&evs);
    lg_chat_parser_free(p);
    laguna_tokenizer_free_ids(ids);
}

/* The assistant turn that holds the tool call, cut out of a rendered fixture. */
static char *assistant_call_turn(const char *rendered) {
    const char *a = strstr(rendered, "<tool_call>get_weather");
    while (a > rendered && strncmp(a, "<assistant>", 11))
        a--;
    const char *e = strstr(a, "</assistant>");
    return strndup(a + 11, (size_t)(e + 12 - a - 11));
}

static void test_parser_on_released_templates(void) {
    size_t n;
    char *json = tu_read_file("tests/fixtures/chat/laguna-real/expected.json", &n);
    CHECK(json != NULL);
    if (!json) return;
    cJSON *root = cJSON_Parse(json);
    const cJSON *tools = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "requests"), "tools"), "tools");
    const char *names[] = {"poolside-Laguna-XS.2.jinja", "poolside-Laguna-XS-2.1.jinja",
                           "poolside-Laguna-S-2.1.jinja"};
    for (int t = 0; t < 3; t++) {
        cJSON *ex = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "expected"), names[t]);
        const char *rendered = cJSON_GetObjectItem(ex, "tools")->valuestring;
        char *turn = assistant_call_turn(rendered);
        parsed p;
        parse_ids(turn, false, tools, &p);
        CHECKF(p.n_calls == 1 && !strcmp(p.names[0], "get_weather"), "%s: %d calls", names[t],
               p.n_calls);
        CHECKF(!strcmp(p.args[0], "{\"city\": \"Paris\", \"days\": 2}"), "%s: args '%s'", names[t],
               p.args[0]);
        CHECKF(p.content[0] == 0, "%s: content '%s'", names[t], p.content);
        free(turn);
        /* reasoning: the prompt ends in <think>; what follows up to </think> is reasoning */
        const char *think = cJSON_GetObjectItem(ex, "think")->valuestring;
        const char *r0 = strstr(think, "<think>") + 7, *r1 = strstr(think, "</assistant>");
        char *reply = strndup(r0, (size_t)(r1 - r0));
        parse_ids(reply, true, NULL, &p);
        CHECKF(!strcmp(p.reasoning, "Think about light.\n") ||
                   !strcmp(p.reasoning, "Think about light."),
               "%s: reasoning '%s'", names[t], p.reasoning);
        CHECKF(!strcmp(p.content, "Rayleigh scattering.") ||
                   !strcmp(p.content, "Rayleigh scattering.\n"),
               "%s: content '%s'", names[t], p.content);
        free(reply);
    }
    cJSON_Delete(root);
    free(json);
}

static void test_parser_cases(void) {
    cJSON *tools = cJSON_Parse(
        "[{\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"parameters\":{\"type\":"
        "\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"lines\":{\"type\":\"integer\"}"
        ","
        "\"opts\":{\"type\":\"object\"}}}}},{\"type\":\"function\",\"function\":{\"name\":\"now\"}}"
        "]");
    parsed p;
    /* two calls, a string that looks like a number stays a string, whitespace kept, zero-argument
     * call */
    parse_ids("Let me look.\n<tool_call>read_file\n<arg_key>path</arg_key>\n<arg_value>  12 "
              "</arg_value>\n"
              "<arg_key>lines</arg_key><arg_value>30</arg_value><arg_key>opts</"
              "arg_key><arg_value>{\"a\": [1]}</arg_value>"
              "\n</tool_call>\n<tool_call>now</tool_call>",
              false, tools, &p);
    CHECKF(!strcmp(p.content, "Let me look."), "content '%s'", p.content);
    CHECK(p.n_calls == 2 && !strcmp(p.names[0], "read_file") && !strcmp(p.names[1], "now"));
    CHECKF(!strcmp(p.args[0], "{\"path\": \"  12 \", \"lines\": 30, \"opts\": {\"a\":[1]}}"),
           "args '%s'", p.args[0]);
    CHECKF(!strcmp(p.args[1], "{}"), "args '%s'", p.args[1]);
    /* an unknown tool is reported as text, never as a call */
    parse_ids("<tool_call>rm_rf<arg_key>x</arg_key><arg_value>1</arg_value></tool_call>", false,
              tools, &p);
    CHECK(p.n_calls == 0 && strstr(p.content, "rm_rf"));
    /* </think> in an earlier turn does not matter: the scan is scoped to the current turn */
    const char *prompt = "<user>a</think>b</user>\n<assistant>\n<think>";
    int32_t *ids;
    size_t n;
    laguna_tokenizer_encode(g_sm.tok, prompt, strlen(prompt), false, &ids, &n, NULL);
    CHECK(lg_prompt_ends_in_think(g_sm.tok, ids, n));
    CHECK(!lg_prompt_ends_in_think(g_sm.tok, ids, n - 1));
    laguna_tokenizer_free_ids(ids);
    /* a tag written as text by the model outside a call is left as text, no call invented */
    parse_ids("use <arg_key> tags", false, NULL, &p);
    CHECK(p.n_calls == 0 && !strcmp(p.content, "use <arg_key> tags"));
    cJSON_Delete(tools);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    laguna_error err = {0};
    lg_server_options so = {.port = 0,
                            .api_key = KEY,
                            .model_name = "laguna-tiny",
                            .n_parallel = 16,
                            .n_ctx = 512,
                            .max_body_bytes = 64 * 1024,
                            .sample_threads = 4};
    if (served_model_open(&g_sm, MODEL, NULL, &so, &err)) {
        printf("FAIL setup: %s\n", err.message);
        served_model_close(&g_sm);
        return 1;
    }
    g_port = lg_server_port(g_sm.srv);
    RUN(test_parser_cases);
    RUN(test_parser_on_released_templates);
    RUN(test_health_models_tokenize);
    RUN(test_completion);
    RUN(test_chat_stream_matches_whole);
    RUN(test_concurrent_streams_match_alone);
    RUN(test_greedy_streams_match_alone);
    RUN(test_disconnect_cancels);
    RUN(test_prefix_cache_turn2);
    RUN(test_drafts_same_text);
    RUN(test_responses_match_chat);
    RUN(test_structured_output_schema);
    RUN(test_structured_output_object_and_responses);
    RUN(test_structured_output_jump_forward);
    RUN(test_bad_input);
    RUN(test_completion_logprobs);
    RUN(test_chat_logprobs);
    RUN(test_greedy_text_with_and_without_logprobs);
    RUN(test_messages_stream_matches_whole);
    RUN(test_messages_thinking);
    RUN(test_messages_stop_sequence);
    RUN(test_messages_render_like_openai);
    RUN(test_messages_tool_use_blocks);
    RUN(test_messages_errors);
    RUN(test_queue_full);
    RUN(test_queue_counts_only_waiting);
    served_model_close(&g_sm);
    return test_summary();
}
