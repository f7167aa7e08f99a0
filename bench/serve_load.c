/* Load test of laguna serve, bounded and loopback only: starts the server in
 * this process on a free 127.0.0.1 port and drives it with C client threads
 * (C = 1, 4, 16), each sending streamed completions of a fixed length.
 * Prints requests/s, p50/p99 time to first token and aggregate tokens/s per
 * concurrency, then the time to first token of turn 2 of an agent-like chat
 * (a long system prompt) with and without the prefix cache.
 *
 *   make build/bench/serve_load && build/bench/serve_load [MODEL] [requests per level] [max_tokens]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "laguna.h"
#include "laguna_chat.h"
#include "laguna_tokenizer.h"
#include "server/scheduler.h"
#include "server/server.h"

static int g_port;

/* Sends a request; returns seconds to the first content byte of the reply
 * body (ttft) and to the end; -1 on failure. */
static int timed_request(const char *path, const char *body, double *ttft, double *total,
                         char **reply) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = 120};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    double t0 = lg_now();
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    char head[256];
    int n = snprintf(
        head, sizeof head,
        "POST %s HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", path,
        strlen(body));
    if (write(fd, head, (size_t)n) != n || write(fd, body, strlen(body)) != (ssize_t)strlen(body)) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    *ttft = -1;
    for (;;) {
        if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0) break;
        len += (size_t)got;
        buf[len] = 0;
        /* the first chunk that carries text (streamed), or the whole body */
        if (*ttft < 0 && (strstr(buf, "\"text\":\"") || strstr(buf, "\"content\":\"") ||
                          strstr(buf, "\"reasoning_content\":\"")))
            *ttft = lg_now() - t0;
    }
    *total = lg_now() - t0;
    close(fd);
    buf[len] = 0;
    if (*ttft < 0) *ttft = *total;
    int ok = strstr(buf, " 200 ") != NULL;
    if (reply)
        *reply = buf;
    else
        free(buf);
    return ok ? 0 : -1;
}

typedef struct {
    int id, n_requests, max_tokens;
    double *ttft;
    int failed;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    for (int i = 0; i < w->n_requests; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"prompt\":\"def task_%d_%d(data):\\n    "
                 "\",\"max_tokens\":%d,\"stream\":true,\"ignore\":0}",
                 w->id, i, w->max_tokens);
        double total;
        if (timed_request("/v1/completions", body, &w->ttft[i], &total, NULL)) w->failed++;
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void level(int conc, int n_total, int max_tokens) {
    int per = (n_total + conc - 1) / conc;
    worker *w = calloc((size_t)conc, sizeof *w);
    pthread_t *th = calloc((size_t)conc, sizeof *th);
    double *ttft = calloc((size_t)(per * conc), sizeof *ttft);
    double t0 = lg_now();
    for (int i = 0; i < conc; i++) {
        w[i] = (worker){i, per, max_tokens, ttft + i * per, 0};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    int failed = 0;
    for (int i = 0; i < conc; i++) {
        pthread_join(th[i], NULL);
        failed += w[i].failed;
    }
    double dt = lg_now() - t0;
    int n = per * conc;
    qsort(ttft, (size_t)n, sizeof *ttft, cmp);
    printf("| %3d | %4d | %5d | %8.2f | %9.1f | %9.1f | %10.0f |\n", conc, n, failed, n / dt,
           1e3 * ttft[n / 2], 1e3 * ttft[(int)(n * 0.99) < n ? (int)(n * 0.99) : n - 1],
           (double)n * max_tokens / dt);
    free(w);
    free(th);
    free(ttft);
}

/* Turn 2 of a chat with a long system prompt: ms to the first token. */
static double agent_turn2(void) {
    char *sys = malloc(40000);
    strcpy(sys, "You are a coding agent. Tools: ");
    for (int i = 0; i < 50; i++) {
        char t[128];
        snprintf(t, sizeof t,
                 "tool_%d(path: string, lines: integer) reads part of file number %d; ", i, i);
        strcat(sys, t);
    }
    char *body = malloc(60000);
    snprintf(body, 60000,
             "{\"messages\":[{\"role\":\"system\",\"content\":\"%s\"},{\"role\":\"user\","
             "\"content\":\"Fix the bug.\"}],"
             "\"max_tokens\":16}",
             sys);
    double ttft, total;
    char *reply = NULL;
    if (timed_request("/v1/chat/completions", body, &ttft, &total, &reply))
        fprintf(stderr, "turn 1 failed: %.300s\n", reply);
    const char *pt = reply ? strstr(reply, "\"prompt_tokens\":") : NULL;
    if (pt) printf("  turn 1 prompt: %d tokens\n", atoi(pt + 16));
    free(reply);
    snprintf(body, 60000,
             "{\"messages\":[{\"role\":\"system\",\"content\":\"%s\"},{\"role\":\"user\","
             "\"content\":\"Fix the bug.\"},"
             "{\"role\":\"assistant\",\"content\":\"Looking at "
             "it.\"},{\"role\":\"user\",\"content\":\"Go on.\"}],"
             "\"max_tokens\":16,\"stream\":true}",
             sys);
    if (timed_request("/v1/chat/completions", body, &ttft, &total, NULL))
        fprintf(stderr, "turn 2 failed\n");
    free(body);
    free(sys);
    return 1e3 * ttft;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models/laguna-tiny";
    int n_total = argc > 2 ? atoi(argv[2]) : 32, max_tokens = argc > 3 ? atoi(argv[3]) : 64;
    signal(SIGPIPE, SIG_IGN);
    laguna_error err = {0};
    laguna_model *model = NULL;
    laguna_tokenizer *tok = NULL;
    laguna_chat_template *tmpl = NULL;
    laguna_model_options mo = {0};
    if (laguna_tokenizer_load(dir, &tok, &err) || laguna_chat_template_load(dir, &tmpl, &err) ||
        laguna_model_open(dir, &mo, &model, &err)) {
        fprintf(stderr, "serve_load: %s\n", err.message);
        return 1;
    }
    printf("laguna serve load test: %s, %d streamed completions per level, %d tokens each, "
           "loopback\n\n",
           dir, n_total, max_tokens);
    printf("| concurrency | requests | failed | requests/s | TTFT p50 ms | TTFT p99 ms | aggregate "
           "tok/s |\n");
    printf("|---|---|---|---|---|---|---|\n");
    int levels[] = {1, 4, 16};
    for (int l = 0; l < 3; l++) {
        lg_server *srv = NULL;
        lg_server_options so = {.n_parallel = levels[l], .max_queue = 256, .n_ctx = 2048};
        if (lg_server_start(model, tok, tmpl, &so, &srv, &err)) {
            fprintf(stderr, "serve_load: %s\n", err.message);
            return 1;
        }
        g_port = lg_server_port(srv);
        level(levels[l], n_total, max_tokens);
        lg_server_stop(srv);
    }
    printf("\nagent turn 2 (long system prompt), time to first token:\n");
    for (int cache = 0; cache < 2; cache++) {
        lg_server *srv = NULL;
        lg_server_options so = {.n_parallel = 4, .n_ctx = 2048, .cache_seqs = cache ? 0 : -1};
        if (lg_server_start(model, tok, tmpl, &so, &srv, &err)) return 1;
        g_port = lg_server_port(srv);
        printf("  prefix cache %-3s: %.1f ms\n", cache ? "on" : "off", agent_turn2());
        lg_server_stop(srv);
    }
    laguna_model_free(model);
    laguna_chat_template_free(tmpl);
    laguna_tokenizer_free(tok);
    return 0;
}
