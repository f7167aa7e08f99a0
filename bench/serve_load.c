/* Load test of laguna serve, bounded and loopback only: starts the server in
 * this process on a free 127.0.0.1 port (the model on --device) and drives
 * it with C client threads, each sending streamed completions of a fixed
 * length (ignore_eos, so every request generates exactly --max-tokens), at
 * each --concurrency level (the server's --parallel set to the level). Then
 * agent conversations: turn 1 with a long system prompt (tool schemas), turn
 * 2 resending it all, timed to its first token, with the prefix cache off
 * and on. One table: requests/s, p50/p99 time to first token, aggregate
 * generated tokens/s.
 *
 *   make bench && build/bench/serve_load [-m MODEL] [--device cpu|cuda[:N]] [--threads N]
 *       [--requests N] [--max-tokens N] [--concurrency 1,4,16] [--conversations N] [--ctx-size N]
 *       [--temperature T] [--sample-threads N] [--draft-lookup K]
 * The completions are sampled at the server's default temperature (1) unless --temperature is
 * given; --temperature 0 makes them greedy (the scheduler's queued steps need greedy rows).
 * MODEL: a checkpoint folder or a GGUF file with its tokenizer (e.g. `laguna synth --preset xs2
 * --layers 8 --type q4_k_m --tokenizer models/laguna-tiny-chat --out x8.gguf`: XS.2-sized layers). */
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
#include "../cli/text_input.h" /* a checkpoint folder or a GGUF file, as the CLI takes them */

static int g_port;
static char g_sampling[48]; /* ",\"temperature\":T" when --temperature is given, else "" */

/* Sends a request; seconds to the first generated text of the reply (ttft)
 * and to the end; -1 on failure. The reply (headers and body) in *reply. */
static int timed_request(const char *path, const char *body, double *ttft, double *total,
                         char **reply) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = 600};
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
        /* the first chunk that carries generated text (streamed), or the whole body */
        if (*ttft < 0 && (strstr(buf, "\"text\":\"") || strstr(buf, "\"content\":\"") ||
                          strstr(buf, "\"reasoning_content\":\"")))
            *ttft = lg_now() - t0;
    }
    *total = lg_now() - t0;
    close(fd);
    buf[len] = 0;
    if (*ttft < 0) *ttft = *total;
    int ok = strstr(buf, " 200 ") != NULL && !strstr(buf, "\"error\"");
    if (reply)
        *reply = buf;
    else
        free(buf);
    return ok ? 0 : -1;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void row(const char *what, int n, int failed, double seconds, double *ttft, long tokens) {
    qsort(ttft, (size_t)n, sizeof *ttft, cmp);
    int p99 = (int)(n * 0.99) < n ? (int)(n * 0.99) : n - 1;
    printf("| %-34s | %4d | %3d | %8.2f | %9.1f | %9.1f | %9.0f |\n", what, n, failed, n / seconds,
           1e3 * ttft[n / 2], 1e3 * ttft[p99], tokens / seconds);
    fflush(stdout);
}

/* ---- concurrency levels ------------------------------------------------------------------ */

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
                 "{\"prompt\":\"def task_%d_%d(data):\\n    \",\"max_tokens\":%d,\"stream\":true,"
                 "\"ignore_eos\":true%s}",
                 w->id, i, w->max_tokens, g_sampling);
        double total;
        if (timed_request("/v1/completions", body, &w->ttft[i], &total, NULL)) w->failed++;
    }
    return NULL;
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
    char what[64];
    snprintf(what, sizeof what, "concurrency %d", conc);
    int n = per * conc;
    row(what, n, failed, dt, ttft, (long)(n - failed) * max_tokens);
    free(w);
    free(th);
    free(ttft);
}

/* ---- agent turn 2 ------------------------------------------------------------------------------
 */

/* Conversation k's request: a system prompt with ~50 tool descriptions (its
 * own first line, so conversations share nothing), then its turns. */
static char *agent_body(int k, int turn) {
    size_t cap = 80000, n = 0;
    char *b = malloc(cap);
    n += (size_t)snprintf(b + n, cap - n,
                          "{\"messages\":[{\"role\":\"system\",\"content\":\"Session %d. You are a "
                          "coding agent. Tools: ",
                          k);
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(
            b + n, cap - n, "tool_%d(path: string, lines: integer) reads part of file number %d; ",
            i, i);
    n += (size_t)snprintf(b + n, cap - n,
                          "\"},{\"role\":\"user\",\"content\":\"Fix the bug in module %d.\"}", k);
    if (turn == 2)
        n += (size_t)snprintf(b + n, cap - n,
                              ",{\"role\":\"assistant\",\"content\":\"Looking at it.\"},"
                              "{\"role\":\"user\",\"content\":\"Go on.\"}");
    snprintf(b + n, cap - n, "],\"max_tokens\":16,\"ignore_eos\":true%s}",
             turn == 2 ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "");
    return b;
}

static double json_number_after(const char *s, const char *key) {
    const char *p = s ? strstr(s, key) : NULL;
    return p ? atof(p + strlen(key)) : -1;
}

static void agent_turn2(int n_conv, bool cache) {
    double *ttft = calloc((size_t)n_conv, sizeof *ttft), seconds = 0, prompt = 0, cached = 0;
    int failed = 0;
    for (int k = 0; k < n_conv; k++) {
        double t1, total;
        char *body = agent_body(k, 1), *reply = NULL;
        if (timed_request("/v1/chat/completions", body, &t1, &total, &reply)) failed++;
        free(reply);
        free(body);
        body = agent_body(k, 2);
        reply = NULL;
        if (timed_request("/v1/chat/completions", body, &ttft[k], &total, &reply)) failed++;
        seconds += total;
        prompt += json_number_after(reply, "\"prompt_tokens\":");
        cached += json_number_after(reply, "\"cached_tokens\":");
        free(reply);
        free(body);
    }
    char what[80];
    snprintf(what, sizeof what, "agent turn 2, cache %s (%.0f/%.0f)", cache ? "on" : "off",
             cached / n_conv, prompt / n_conv);
    row(what, n_conv, failed, seconds, ttft, (long)(n_conv - failed) * 16);
    free(ttft);
}

/* ---- main
 * ------------------------------------------------------------------------------------------ */

static int usage(void) {
    fprintf(stderr, "usage: serve_load [-m MODEL] [--device cpu|cuda[:N]] [--threads N] "
                    "[--requests N] [--max-tokens N] [--concurrency 1,4,16] [--conversations N] "
                    "[--ctx-size N] [--temperature T] [--sample-threads N] [--draft-lookup K]\n");
    return 2;
}

static int positive(const char *opt, const char *v, int *out) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < 1 || x > 1000000) {
        fprintf(stderr, "serve_load: %s needs a positive integer\n", opt);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = "models/laguna-tiny", *conc_list = "1,4,16";
    int n_total = 32, max_tokens = 64, n_conv = 5, n_ctx = 2048, sample_threads = 0, draft = 0;
    laguna_model_options mo = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-m"))
            bad = !(dir = v);
        else if (!strcmp(a, "--device"))
            bad = !(mo.device = v);
        else if (!strcmp(a, "--concurrency"))
            bad = !(conc_list = v);
        else if (!strcmp(a, "--threads"))
            bad = positive(a, v, &mo.n_threads);
        else if (!strcmp(a, "--requests"))
            bad = positive(a, v, &n_total);
        else if (!strcmp(a, "--max-tokens"))
            bad = positive(a, v, &max_tokens);
        else if (!strcmp(a, "--conversations"))
            bad = positive(a, v, &n_conv);
        else if (!strcmp(a, "--ctx-size"))
            bad = positive(a, v, &n_ctx);
        else if (!strcmp(a, "--sample-threads"))
            bad = positive(a, v, &sample_threads);
        else if (!strcmp(a, "--draft-lookup"))
            bad = positive(a, v, &draft);
        else if (!strcmp(a, "--temperature")) {
            char *end = NULL;
            double t = v ? strtod(v, &end) : -1;
            bad = !v || *end || !(t >= 0 && t <= 2);
            if (bad) fprintf(stderr, "serve_load: --temperature needs a number from 0 to 2\n");
            else snprintf(g_sampling, sizeof g_sampling, ",\"temperature\":%g", t);
        } else
            return usage();
        if (bad) return usage();
        i++;
    }
    int levels[16], n_levels = 0;
    for (const char *p = conc_list; *p && n_levels < 16;) {
        char *end;
        long c = strtol(p, &end, 10);
        if (end == p || c < 1 || c > 256) return usage();
        levels[n_levels++] = (int)c;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return usage();
    }
    if (!sample_threads) sample_threads = lg_server_default_sample_threads(mo.device, mo.devices);
    signal(SIGPIPE, SIG_IGN);
    laguna_error err = {0};
    laguna_model *model = NULL;
    laguna_tokenizer *tok = NULL;
    laguna_chat_template *tmpl = NULL;
    if (text_input_load_tokenizer(dir, &tok, &err) || text_input_load_template(dir, &tmpl, &err) ||
        laguna_model_open(dir, &mo, &model, &err)) {
        fprintf(stderr, "serve_load: %s\n", err.message);
        return 1;
    }
    printf("laguna serve load test: %s on %s, %d streamed completions of %d tokens per level "
           "(--parallel = the level, temperature %s, %d sampling threads, drafts %d), %d agent "
           "conversations; loopback\n\n",
           dir, mo.device ? mo.device : "cpu", n_total, max_tokens,
           g_sampling[0] ? strchr(g_sampling, ':') + 1 : "1 (the server's default: sampled)",
           sample_threads, draft, n_conv);
    printf("| what (turn 2: cached/prompt tokens) | reqs | err | req/s | TTFT p50 ms | TTFT p99 "
           "ms | tok/s |\n");
    printf("|---|---|---|---|---|---|---|\n");
    int rc = 0;
    for (int l = 0; l < n_levels + 2 && !rc; l++) {
        lg_server *srv = NULL;
        bool agent = l >= n_levels, cache = l == n_levels + 1;
        lg_server_options so = {.n_parallel = agent ? 4 : levels[l],
                                .max_queue = 1024,
                                .n_ctx = n_ctx,
                                .cache_bytes = agent && !cache ? -1 : 0,
                                .sample_threads = sample_threads,
                                .draft_lookup = draft};
        if (lg_server_start(model, tok, tmpl, &so, &srv, &err)) {
            fprintf(stderr, "serve_load: %s\n", err.message);
            rc = 1;
            break;
        }
        g_port = lg_server_port(srv);
        if (agent)
            agent_turn2(n_conv, cache);
        else
            level(levels[l], n_total, max_tokens);
        lg_server_stop(srv);
    }
    laguna_model_free(model);
    laguna_chat_template_free(tmpl);
    laguna_tokenizer_free(tok);
    return rc;
}
