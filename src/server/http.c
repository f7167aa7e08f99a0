/* The HTTP layer of laguna serve: libmicrohttpd with one thread per
 * connection. Reads and bounds request bodies, checks the API key, routes,
 * and sends replies: plain JSON, or server-sent events pulled from a job by
 * a content-reader callback that waits on the job's condition variable.
 * Errors on the Anthropic routes (/v1/messages...) take Anthropic's shape,
 * elsewhere OpenAI's.
 * While a request waits for its job it watches its socket, so a client that
 * goes away cancels the job and the scheduler frees its sequence. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/server_internal.h"

/* ---- per-connection request state ------------------------------------------------ */

typedef struct {
    lg_sbuf body;
    bool too_big;
} conn_state;

static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP)) return true;
    char c;
    return (p.revents & POLLIN) && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* ---- replies ------------------------------------------------------------------------ */

static enum MHD_Result send_text(lg_server *srv, struct MHD_Connection *c, int status,
                                 const char *type, const char *text, size_t len) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status >= 400) srv->http_errors++;
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_json(lg_server *srv, struct MHD_Connection *c, int status, char *json) {
    if (!json)
        return send_text(srv, c, 500, "application/json",
                         "{\"error\":{\"message\":\"out of memory\"}}", 38);
    enum MHD_Result rc = send_text(srv, c, status, "application/json", json, strlen(json));
    free(json);
    return rc;
}

static enum MHD_Result send_error(lg_server *srv, struct MHD_Connection *c, lg_api api,
                                  const lg_req_error *e) {
    if (api == LG_API_MESSAGES) return send_json(srv, c, e->status, lg_anthropic_error_json(e));
    return send_json(srv, c, e->status, lg_openai_error_json(e));
}

static enum MHD_Result fail_as(lg_server *srv, struct MHD_Connection *c, lg_api api, int status,
                               const char *type, const char *msg) {
    lg_req_error e = {.type = type};
    lg_req_fail(&e, status, NULL, "%s", msg);
    return send_error(srv, c, api, &e);
}

static enum MHD_Result fail(lg_server *srv, struct MHD_Connection *c, int status, const char *type,
                            const char *msg) {
    return fail_as(srv, c, LG_API_CHAT, status, type, msg);
}

/* ---- generation: streaming ---------------------------------------------------------- */

typedef struct {
    lg_server *srv;
    lg_job *job;
    lg_reply_info info;
    int fd;
    lg_sbuf out;
    size_t sent;
    bool started, finished;
    lg_anthropic_stream anthropic;
    lg_responses_stream responses;
} stream_state;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream_state *st = cls;
    (void)pos;
    while (st->sent == st->out.n) {
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        st->out.n = st->sent = 0;
        lg_job *j = st->job;
        lg_event_list evs = {0};
        lg_logprob_list lps = {0};
        pthread_mutex_lock(&j->mu);
        while (j->events.n == 0 && !j->done) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
            if (j->events.n == 0 && !j->done && client_gone(st->fd)) {
                pthread_mutex_unlock(&j->mu);
                atomic_store(&j->cancelled, 1);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
        evs = j->events; /* take the lists */
        j->events = (lg_event_list){0};
        lps = j->lps;
        j->lps = (lg_logprob_list){0};
        bool done = j->done;
        pthread_mutex_unlock(&j->mu);
        if (st->info.api == LG_API_MESSAGES)
            lg_anthropic_stream_events(&st->out, &st->anthropic, &st->info, j, evs.items, evs.n);
        else if (st->info.api == LG_API_RESPONSES)
            lg_responses_stream_events(&st->out, &st->responses, &st->info, j, evs.items, evs.n);
        else
            lg_openai_stream_events(&st->out, &st->info, evs.items, evs.n, &lps, !st->started);
        st->started = true;
        lg_events_free(&evs);
        lg_logprobs_free(&lps);
        if (done) {
            if (st->info.api == LG_API_MESSAGES)
                lg_anthropic_stream_end(&st->out, &st->anthropic, &st->info, j);
            else if (st->info.api == LG_API_RESPONSES)
                lg_responses_stream_end(&st->out, &st->responses, &st->info, j);
            else
                lg_openai_stream_end(&st->out, &st->info, j);
            st->finished = true;
        }
        if (st->out.failed) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->out.n - st->sent;
    if (n > max) n = max;
    memcpy(buf, st->out.p + st->sent, n);
    st->sent += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream_state *st = cls;
    atomic_store(&st->job->cancelled, 1); /* a no-op when it already finished */
    lg_job_release(st->job);
    lg_sbuf_free(&st->out);
    lg_responses_stream_free(&st->responses);
    free(st);
}

static enum MHD_Result reply_stream(lg_server *srv, struct MHD_Connection *c, lg_job *job,
                                    const lg_reply_info *info) {
    stream_state *st = calloc(1, sizeof *st);
    if (!st) {
        atomic_store(&job->cancelled, 1);
        lg_job_release(job);
        return fail_as(srv, c, info->api, 500, "server_error", "out of memory");
    }
    *st = (stream_state){.srv = srv, .job = job, .info = *info, .fd = conn_fd(c)};
    st->anthropic.open_kind = -1;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- generation: whole replies -------------------------------------------------------- */

static enum MHD_Result reply_whole(lg_server *srv, struct MHD_Connection *c, lg_job *j,
                                   const lg_reply_info *info) {
    int fd = conn_fd(c);
    lg_turn turn = {0};
    lg_responses_stream items = {0}; /* the Responses API's output items */
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (info->api == LG_API_RESPONSES)
            lg_responses_stream_events(NULL, &items, info, j, j->events.items, j->events.n);
        else
            for (size_t i = 0; i < j->events.n; i++)
                lg_turn_add(&turn, &j->events.items[i]);
        lg_events_clear(&j->events);
        if (lg_logprobs_move(&turn.lps, &j->lps)) turn.failed = true;
        if (j->done) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (!j->done && client_gone(fd)) {
            pthread_mutex_unlock(&j->mu);
            atomic_store(&j->cancelled, 1);
            lg_job_release(j);
            lg_turn_free(&turn);
            lg_responses_stream_free(&items);
            return MHD_NO; /* closes the connection */
        }
    }
    pthread_mutex_unlock(&j->mu);
    enum MHD_Result rc;
    if (j->error[0])
        rc = fail_as(srv, c, info->api, 500, "server_error", j->error);
    else if (turn.failed)
        rc = fail_as(srv, c, info->api, 500, "server_error", "out of memory");
    else if (info->api == LG_API_MESSAGES)
        rc = send_json(srv, c, 200, lg_anthropic_response(info, &turn, j));
    else if (info->api == LG_API_RESPONSES)
        rc = send_json(srv, c, 200, lg_responses_response(info, &items, j));
    else
        rc = send_json(srv, c, 200, lg_openai_response(info, &turn, j));
    lg_turn_free(&turn);
    lg_responses_stream_free(&items);
    lg_job_release(j);
    return rc;
}

static enum MHD_Result generate(lg_server *srv, struct MHD_Connection *c, const cJSON *body,
                                lg_api api) {
    lg_job *job = lg_job_new();
    if (!job) return fail_as(srv, c, api, 500, "server_error", "out of memory");
    lg_reply_info info = {0};
    lg_req_error e = {0};
    int rc = api == LG_API_CHAT        ? lg_parse_chat(srv, body, job, &info, &e)
             : api == LG_API_MESSAGES  ? lg_parse_messages(srv, body, false, job, &info, &e)
             : api == LG_API_RESPONSES ? lg_parse_responses(srv, body, job, &info, &e)
                                       : lg_parse_completion(srv, body, job, &info, &e);
    if (rc) {
        lg_job_release(job);
        return send_error(srv, c, api, &e);
    }
    if (lg_sched_submit(srv->sched, job)) {
        lg_job_release(job);
        /* Anthropic's status for "overloaded" is 529 */
        return fail_as(srv, c, api, api == LG_API_MESSAGES ? 529 : 503, "server_overloaded",
                       "the server is busy: the request queue is full; retry later");
    }
    return info.stream ? reply_stream(srv, c, job, &info) : reply_whole(srv, c, job, &info);
}

/* ---- the small endpoints ------------------------------------------------------------------ */

/* POST /v1/messages/count_tokens: the prompt's length as /v1/messages would render it. */
static enum MHD_Result count_tokens(lg_server *srv, struct MHD_Connection *c, const cJSON *body) {
    lg_job *job = lg_job_new();
    if (!job) return fail_as(srv, c, LG_API_MESSAGES, 500, "api_error", "out of memory");
    lg_reply_info info = {0};
    lg_req_error e = {0};
    if (lg_parse_messages(srv, body, true, job, &info, &e)) {
        lg_job_release(job);
        return send_error(srv, c, LG_API_MESSAGES, &e);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "input_tokens", job->n_prompt);
    lg_job_release(job);
    return send_json(srv, c, 200, lg_json_print_free(o));
}

static enum MHD_Result models(lg_server *srv, struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject(), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), m);
    cJSON_AddStringToObject(m, "id", srv->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "laguna.c");
    cJSON_AddNumberToObject(m, "context_length", srv->n_ctx);
    return send_json(srv, c, 200, lg_json_print_free(o));
}

static enum MHD_Result tokenize(lg_server *srv, struct MHD_Connection *c, const cJSON *body) {
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(body, "content");
    if (!text) text = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    const cJSON *special = cJSON_GetObjectItemCaseSensitive(body, "add_special");
    if (!cJSON_IsString(text))
        return fail(srv, c, 400, "invalid_request_error", "'content' must be a string");
    if (special && !cJSON_IsBool(special))
        return fail(srv, c, 400, "invalid_request_error", "'add_special' must be a boolean");
    int32_t *ids = NULL;
    size_t n = 0;
    laguna_error err = {0};
    if (laguna_tokenizer_encode(srv->tok, text->valuestring, strlen(text->valuestring),
                                cJSON_IsTrue(special), &ids, &n, &err))
        return fail(srv, c, 400, "invalid_request_error", err.message);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    cJSON_AddNumberToObject(o, "count", (double)n);
    laguna_tokenizer_free_ids(ids);
    return send_json(srv, c, 200, lg_json_print_free(o));
}

static enum MHD_Result detokenize(lg_server *srv, struct MHD_Connection *c, const cJSON *body) {
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(body, "tokens");
    if (!cJSON_IsArray(toks))
        return fail(srv, c, 400, "invalid_request_error", "'tokens' must be an array of token ids");
    int n = cJSON_GetArraySize(toks), vocab = (int)laguna_tokenizer_vocab_size(srv->tok);
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) return fail(srv, c, 500, "server_error", "out of memory");
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, toks) {
        if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble >= vocab ||
            t->valuedouble != (int)t->valuedouble) {
            free(ids);
            return fail(srv, c, 400, "invalid_request_error",
                        "'tokens' must hold token ids of this model");
        }
        ids[i++] = (int32_t)t->valuedouble;
    }
    char *text = NULL;
    size_t len = 0;
    laguna_error err = {0};
    laguna_status st = laguna_tokenizer_decode(srv->tok, ids, (size_t)n, false, &text, &len, &err);
    free(ids);
    if (st) return fail(srv, c, 400, "invalid_request_error", err.message);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", text);
    laguna_tokenizer_free_text(text);
    return send_json(srv, c, 200, lg_json_print_free(o));
}

/* ---- routing -------------------------------------------------------------------------------- */

static bool authorized(lg_server *srv, struct MHD_Connection *c) {
    if (!srv->opt.api_key || !srv->opt.api_key[0]) return true;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *xkey = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
    if (auth && !strncmp(auth, "Bearer ", 7) && !strcmp(auth + 7, srv->opt.api_key)) return true;
    return xkey && !strcmp(xkey, srv->opt.api_key);
}

static enum MHD_Result route(lg_server *srv, struct MHD_Connection *c, const char *url,
                             const char *method, conn_state *cs) {
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        if (!get) return fail(srv, c, 405, "invalid_request_error", "use GET /health");
        return send_text(srv, c, 200, "application/json", "{\"status\":\"ok\"}", 15);
    }
    lg_api api = !strncmp(url, "/v1/messages", 12) ? LG_API_MESSAGES : LG_API_CHAT;
    if (!authorized(srv, c))
        return fail_as(srv, c, api, 401, "authentication_error", "invalid or missing API key");
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/models")) {
        if (!get) return fail(srv, c, 405, "invalid_request_error", "use GET /v1/models");
        return models(srv, c);
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) return fail(srv, c, 405, "invalid_request_error", "use GET /metrics");
        lg_sbuf b = {0};
        lg_metrics_text(&b, srv);
        enum MHD_Result rc =
            b.failed ? MHD_NO : send_text(srv, c, 200, "text/plain; version=0.0.4", b.p, b.n);
        lg_sbuf_free(&b);
        return rc;
    }
    int which = !strcmp(url, "/v1/chat/completions")        ? 1
                : !strcmp(url, "/v1/completions")           ? 2
                : !strcmp(url, "/tokenize")                 ? 3
                : !strcmp(url, "/detokenize")               ? 4
                : !strcmp(url, "/v1/messages")              ? 5
                : !strcmp(url, "/v1/messages/count_tokens") ? 6
                : !strcmp(url, "/v1/responses")             ? 7
                                                            : 0;
    if (!which) return fail_as(srv, c, api, 404, "not_found_error", "no such endpoint");
    if (!post)
        return fail_as(srv, c, api, 405, "invalid_request_error", "use POST for this endpoint");
    if (cs->too_big)
        return fail_as(srv, c, api, 413, "invalid_request_error", "the request body is too large");
    cJSON *body = cs->body.p ? cJSON_ParseWithLength(cs->body.p, cs->body.n) : NULL;
    if (!body)
        return fail_as(srv, c, api, 400, "invalid_request_error",
                       "the request body is not valid JSON");
    enum MHD_Result rc;
    if (!cJSON_IsObject(body))
        rc = fail_as(srv, c, api, 400, "invalid_request_error",
                     "the request body must be a JSON object");
    else if (which == 1)
        rc = generate(srv, c, body, LG_API_CHAT);
    else if (which == 2)
        rc = generate(srv, c, body, LG_API_COMPLETION);
    else if (which == 3)
        rc = tokenize(srv, c, body);
    else if (which == 4)
        rc = detokenize(srv, c, body);
    else if (which == 5)
        rc = generate(srv, c, body, LG_API_MESSAGES);
    else if (which == 7)
        rc = generate(srv, c, body, LG_API_RESPONSES);
    else
        rc = count_tokens(srv, c, body);
    cJSON_Delete(body);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    lg_server *srv = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs))) return MHD_NO;
        *con_cls = cs;
        srv->http_requests++;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->opt.max_body_bytes) cs->too_big = true;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (cs->body.n + *upload_data_size > srv->opt.max_body_bytes) cs->too_big = true;
        if (!cs->too_big) lg_sbuf_add(&cs->body, upload_data, *upload_data_size);
        if (cs->body.failed) cs->too_big = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return route(srv, c, url, method, cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    conn_state *cs = *con_cls;
    if (!cs) return;
    lg_sbuf_free(&cs->body);
    free(cs);
    *con_cls = NULL;
}

/* ---- start and stop ----------------------------------------------------------------------------
 */

int lg_server_default_sample_threads(const char *device, const char *devices) {
    bool gpu = (device && !strncmp(device, "cuda", 4)) || (devices && strstr(devices, "cuda"));
    if (!gpu) return 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
}

int lg_server_start(laguna_model *model, const laguna_tokenizer *tok,
                    const laguna_chat_template *tmpl, const lg_server_options *opt, lg_server **out,
                    laguna_error *err) {
    lg_server *srv = calloc(1, sizeof *srv);
    if (!srv) return -1;
    srv->model = model;
    srv->tok = tok;
    srv->tmpl = tmpl;
    srv->opt = *opt;
    if (!srv->opt.max_body_bytes) srv->opt.max_body_bytes = 8u << 20;
    if (srv->opt.max_connections <= 0) srv->opt.max_connections = 512;
    if (srv->opt.max_connections_per_ip < 0) srv->opt.max_connections_per_ip = 0;
    if (srv->opt.timeout_s <= 0) srv->opt.timeout_s = 60;
    snprintf(srv->host, sizeof srv->host, "%s", opt->host ? opt->host : "127.0.0.1");
    snprintf(srv->model_name, sizeof srv->model_name, "%s",
             opt->model_name ? opt->model_name : "laguna");
    pthread_mutex_init(&srv->tmpl_mu, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt->port)};
    if (inet_pton(AF_INET, srv->host, &addr.sin_addr) != 1) {
        snprintf(err->message, sizeof err->message, "--host %s: not an IPv4 address", srv->host);
        free(srv);
        return -1;
    }
    lg_sched_options so = {.n_parallel = opt->n_parallel,
                           .n_ctx = opt->n_ctx,
                           .max_queue = opt->max_queue,
                           .cache_bytes = opt->cache_bytes,
                           .cache_seqs = opt->cache_seqs,
                           .sample_threads = opt->sample_threads,
                           .draft_lookup = opt->draft_lookup};
    if (lg_sched_create(model, tok, &so, &srv->sched, err)) {
        free(srv);
        return -1;
    }
    srv->n_ctx = lg_sched_n_ctx(srv->sched);
    srv->vocab = laguna_model_get_info(model)->vocab_size;
    /* One thread per connection (poll, not select, so descriptors past 1024
     * work). The idle timeout closes connections that stop sending (slow or
     * vanished clients) and covers keep-alive connections between requests;
     * a connection waiting on its job is not idle: it runs in our callbacks,
     * which watch the socket. Beyond the connection limits MHD refuses new
     * connections; the scheduler never waits on a connection. */
    srv->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
        NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)srv->opt.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)srv->opt.max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)srv->opt.timeout_s, MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(err->message, sizeof err->message,
                 "cannot listen on %s:%d (in use, or not allowed)", srv->host, opt->port);
        lg_sched_free(srv->sched);
        free(srv);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : opt->port;
    *out = srv;
    return 0;
}

int lg_server_port(const lg_server *srv) {
    return srv->port;
}

void lg_server_stop(lg_server *srv) {
    if (!srv) return;
    lg_sched_stop(srv->sched); /* ends every job first, so waiting connections finish */
    MHD_stop_daemon(srv->daemon);
    lg_sched_free(srv->sched);
    pthread_mutex_destroy(&srv->tmpl_mu);
    free(srv);
}
