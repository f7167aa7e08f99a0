/* laguna serve under hundreds of connections: 300 clients at once against a
 * server in this process (models/laguna-tiny, loopback), some idle, some
 * sending their request a byte at a time, some vanishing mid-body or
 * mid-stream, some never reading their stream, the rest making real
 * requests. The server must keep answering (and give every real request the
 * text it gives alone), close idle connections after its timeout, end every
 * request (none left running or queued, no pages held but the prefix
 * cache's) and answer normally afterwards. Also the connection limits. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "http_client.h"
#include "served_model.h"

#define MODEL "models/laguna-tiny"
#define TIMEOUT_S 2 /* the server's idle timeout in this test */

static served_model g_sm; /* no server of its own: each test starts its own */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a small client ------------------------------------------------------------------------ */

/* "POST path" with a JSON body, as one string. */
static char *request_text(const char *path, const char *body) {
    size_t n = strlen(body) + 256;
    char *s = malloc(n);
    snprintf(s, n,
             "POST %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             path, strlen(body), body);
    return s;
}

/* Reads to EOF (or the receive timeout); the status, and the body in *body. */
static int read_reply(int fd, char **body) {
    http_reply r = http_read_reply(fd);
    if (body)
        *body = r.body;
    else
        free(r.body);
    return r.status;
}

static int request(int port, const char *path, const char *body, char **reply) {
    http_reply r = http_request(port, "POST", path, NULL, body);
    *reply = r.body;
    return r.status;
}

static double metric(int port, const char *name) {
    http_reply r = http_request(port, "GET", "/metrics", NULL, NULL);
    double v = -1;
    if (r.status == 200) {
        char pat[128];
        snprintf(pat, sizeof pat, "\n%s ", name);
        const char *p = strstr(r.body, pat);
        if (p) v = atof(p + strlen(pat));
    }
    free(r.body);
    return v;
}

/* ---- the clients ----------------------------------------------------------------------------- */

typedef enum { IDLE, SLOW, VANISH_BODY, VANISH_STREAM, STALLED, REAL, N_KINDS } client_kind;
static const char *const KIND_NAME[N_KINDS] = {
    "idle", "slow sender", "vanishing mid-body", "vanishing mid-stream", "stalled reader", "real"};
static const int KIND_COUNT[N_KINDS] = {80, 50, 50, 40, 20, 60};

#define REAL_BODY "{\"prompt\":\"def add(a, b):\",\"max_tokens\":8,\"temperature\":0}"
#define SLOW_BODY "{\"prompt\":\"import os\",\"max_tokens\":4,\"temperature\":0}"
#define STREAM_BODY                                                                                \
    "{\"prompt\":\"class Tree:\",\"max_tokens\":200,\"stream\":true,\"ignore_eos\":true}"

typedef struct {
    client_kind kind;
    int port, index;
    const char *want_real, *want_slow; /* the texts alone */
    atomic_int *release;               /* stalled readers wait for it */
    int ok;
    char why[160];
} client;

static char *text_of(const char *reply) {
    const char *t = reply ? strstr(reply, "\"text\":\"") : NULL;
    if (!t) return NULL;
    t += 8;
    const char *e = t;
    while (*e && !(*e == '"' && e[-1] != '\\'))
        e++;
    return strndup(t, (size_t)(e - t));
}

static void *client_main(void *arg) {
    client *c = arg;
    c->ok = 0;
    int fd = http_connect(c->port, 60);
    if (fd < 0) {
        snprintf(c->why, sizeof c->why, "cannot connect: %s", strerror(errno));
        return NULL;
    }
    switch (c->kind) {
    case IDLE: { /* the server closes it after its timeout */
        double t0 = now_s();
        char b;
        ssize_t got = read(fd, &b, 1);
        double dt = now_s() - t0;
        c->ok = got == 0 && dt >= TIMEOUT_S - 1.0 && dt < 30;
        snprintf(c->why, sizeof c->why, "read %zd after %.1f s", got, dt);
        break;
    }
    case SLOW: { /* the request a byte at a time, gaps well under the timeout */
        char *req = request_text("/v1/completions", SLOW_BODY);
        for (size_t i = 0; req[i] && !c->ok; i++) {
            if (write(fd, req + i, 1) != 1) break;
            sleep_ms(10 + (c->index * 7 + (int)i) % 20);
        }
        free(req);
        char *reply = NULL;
        int status = read_reply(fd, &reply);
        char *text = text_of(reply);
        c->ok = status == 200 && text && !strcmp(text, c->want_slow);
        snprintf(c->why, sizeof c->why, "%d %.100s", status, reply ? reply : "");
        free(text);
        free(reply);
        break;
    }
    case VANISH_BODY: { /* promises 500 bytes, sends a few, goes */
        const char *head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                           "{\"messages\":[{\"role\":\"user\",\"cont";
        c->ok = http_write_all(fd, head, strlen(head)) == 0;
        sleep_ms(c->index % 50);
        break;
    }
    case VANISH_STREAM: { /* reads the start of a long stream, goes */
        char *req = request_text("/v1/completions", STREAM_BODY);
        char buf[256];
        c->ok = http_write_all(fd, req, strlen(req)) == 0 && read(fd, buf, sizeof buf) > 0;
        snprintf(c->why, sizeof c->why, "no reply");
        free(req);
        break;
    }
    case STALLED: { /* asks for a stream and reads nothing until released */
        char *req = request_text("/v1/completions", STREAM_BODY);
        c->ok = http_write_all(fd, req, strlen(req)) == 0;
        free(req);
        while (!atomic_load(c->release))
            sleep_ms(20);
        break;
    }
    case REAL: {
        sleep_ms(c->index * 20);
        char *req = request_text("/v1/completions", REAL_BODY), *reply = NULL;
        int status = http_write_all(fd, req, strlen(req)) ? -1 : read_reply(fd, &reply);
        char *text = text_of(reply);
        c->ok = status == 200 && text && !strcmp(text, c->want_real);
        snprintf(c->why, sizeof c->why, "%d %.100s", status, reply ? reply : "");
        free(text);
        free(reply);
        free(req);
        break;
    }
    default:
        break;
    }
    close(fd);
    return NULL;
}

static lg_server *start(lg_server_options so) {
    lg_server *srv = NULL;
    laguna_error err = {0};
    CHECKF(served_model_start(&g_sm, &so, &srv, &err) == 0, "%s", err.message);
    return srv;
}

static char *reference_text(int port, const char *body) {
    char *reply = NULL;
    int status = request(port, "/v1/completions", body, &reply);
    char *text = status == 200 ? text_of(reply) : NULL;
    CHECKF(text, "%d %s", status, reply ? reply : "");
    free(reply);
    return text;
}

/* Waits (up to 60 s) for no request running or queued. */
static int settled(int port) {
    for (int i = 0; i < 600; i++) {
        if (metric(port, "laguna_requests_running") == 0 &&
            metric(port, "laguna_requests_queued") == 0)
            return 1;
        sleep_ms(100);
    }
    return 0;
}

static void test_three_hundred_connections(void) {
    lg_server *srv = start((lg_server_options){.n_parallel = 4,
                                               .n_ctx = 512,
                                               .max_queue = 256,
                                               .max_connections = 400,
                                               .timeout_s = TIMEOUT_S});
    if (!srv) return;
    int port = lg_server_port(srv);
    char *want_real = reference_text(port, REAL_BODY), *want_slow = reference_text(port, SLOW_BODY);
    if (!want_real || !want_slow) goto done;
    atomic_int release = 0;
    int n = 0;
    for (int k = 0; k < N_KINDS; k++)
        n += KIND_COUNT[k];
    client *cl = calloc((size_t)n, sizeof *cl);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    int started = 0;
    for (int k = 0, i = 0; k < N_KINDS; k++)
        for (int m = 0; m < KIND_COUNT[k]; m++, i++) {
            cl[i] = (client){k, port, m, want_real, want_slow, &release, 0, ""};
            if (pthread_create(&th[i], &attr, client_main, &cl[i]) == 0) started++;
        }
    CHECKF(started == n, "%d of %d client threads", started, n);
    /* while they run, the server answers */
    sleep_ms(300);
    char *reply = NULL;
    double t0 = now_s();
    int status = request(port, "/v1/completions", REAL_BODY, &reply);
    char *text = text_of(reply);
    CHECKF(status == 200 && text && !strcmp(text, want_real), "during the storm: %d %s", status,
           reply ? reply : "");
    printf("  a request during the storm: %.2f s\n", now_s() - t0);
    free(text);
    free(reply);
    sleep_ms(1000 * TIMEOUT_S);
    atomic_store(&release, 1);
    int bad[N_KINDS] = {0};
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (!cl[i].ok && bad[cl[i].kind]++ < 2)
            printf("  %s client %d: %s\n", KIND_NAME[cl[i].kind], cl[i].index, cl[i].why);
    }
    for (int k = 0; k < N_KINDS; k++)
        CHECKF(bad[k] == 0, "%d of %d %s clients failed", bad[k], KIND_COUNT[k], KIND_NAME[k]);
    pthread_attr_destroy(&attr);
    free(cl);
    free(th);
    /* every request ended; the pages in use are the prefix cache's */
    CHECK(settled(port));
    double used = metric(port, "laguna_kv_pages_used"),
           cached = metric(port, "laguna_prefix_cache_pages");
    CHECKF(used >= 0 && used == cached, "%g pages used, %g cached", used, cached);
    CHECK(metric(port, "laguna_requests_cancelled_total") >= 1);
    CHECK(metric(port, "laguna_requests_failed_total") == 0);
    /* and it still answers */
    text = reference_text(port, REAL_BODY);
    CHECKF(text && !strcmp(text, want_real), "after: %s", text ? text : "");
    free(text);
done:
    free(want_real);
    free(want_slow);
    lg_server_stop(srv);
}

/* Beyond --max-connections (or the per-address limit) a connection is closed
 * unanswered; when the idle ones time out the server takes new ones again. */
static void test_connection_limits(void) {
    for (int per_ip = 0; per_ip < 2; per_ip++) {
        lg_server *srv = start((lg_server_options){.n_ctx = 512,
                                                   .max_connections = per_ip ? 100 : 4,
                                                   .max_connections_per_ip = per_ip ? 4 : 0,
                                                   .timeout_s = TIMEOUT_S});
        if (!srv) return;
        int port = lg_server_port(srv), idle[4];
        for (int i = 0; i < 4; i++)
            idle[i] = http_connect(port, 10);
        sleep_ms(200);
        char *reply = NULL;
        int status = request(port, "/v1/completions", REAL_BODY, &reply);
        CHECKF(status <= 0, "%s: over the limit: %d %s", per_ip ? "per address" : "in all", status,
               reply ? reply : "");
        free(reply);
        reply = NULL;
        sleep_ms(1000 * TIMEOUT_S + 1500); /* the idle ones are closed */
        status = request(port, "/v1/completions", REAL_BODY, &reply);
        CHECKF(status == 200, "after the timeout: %d %s", status, reply ? reply : "");
        free(reply);
        for (int i = 0; i < 4; i++)
            if (idle[i] >= 0) close(idle[i]);
        lg_server_stop(srv);
    }
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    laguna_error err = {0};
    if (served_model_open(&g_sm, MODEL, NULL, NULL, &err)) {
        printf("FAIL setup: %s\n", err.message);
        served_model_close(&g_sm);
        return 1;
    }
    RUN(test_three_hundred_connections);
    RUN(test_connection_limits);
    served_model_close(&g_sm);
    return test_summary();
}
