/* laguna serve: an OpenAI- and Anthropic-compatible HTTP server over one model.
 *
 * The server owns an HTTP daemon (libmicrohttpd, one thread per connection)
 * and a scheduler thread (scheduler.h) that decodes every running request in
 * one batched forward step. It borrows the model, tokenizer and chat
 * template, which must outlive it. Endpoints: POST /v1/chat/completions,
 * POST /v1/completions, GET /v1/models, GET /health, GET /metrics,
 * POST /tokenize, POST /detokenize, POST /v1/messages,
 * POST /v1/messages/count_tokens. */
#ifndef LAGUNA_SERVER_H
#define LAGUNA_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "laguna.h"
#include "laguna_chat.h"
#include "laguna_tokenizer.h"

typedef struct {
    const char *host;           /* address to bind; NULL = 127.0.0.1 */
    int port;                   /* 0 = any free port (see lg_server_port) */
    const char *api_key;        /* NULL = no authentication */
    const char *model_name;     /* the id /v1/models reports; NULL = "laguna" */
    int n_parallel;             /* requests decoded together; 0 = 4 */
    int n_ctx;                  /* positions per request; 0 = the model's maximum */
    int max_queue;              /* requests waiting for a slot before 503; 0 = 64 */
    int64_t cache_bytes;        /* prefix cache budget: KV bytes only finished sequences hold;
                                   0 = as much as n_parallel full sequences, -1 = off */
    int cache_seqs;             /* prefix cache: most finished sequences kept; 0 = 64, -1 = off */
    size_t max_body_bytes;      /* larger request bodies get 413; 0 = 8 MiB */
    int max_connections;        /* open connections at once (one thread each); 0 = 512 */
    int max_connections_per_ip; /* from one address; 0 = no limit */
    int timeout_s;              /* a connection idle this long is closed; 0 = 60 */
    int sample_threads;         /* host threads drawing a step's sampled rows; 0 = 1 */
    int draft_lookup;           /* greedy requests: tokens drafted by prompt lookup a step; 0 = off */
} lg_server_options;

typedef struct lg_server lg_server;

/* sample_threads for a model on `device` / `devices` (laguna_model_options'
 * fields): on a GPU the host's cores are free while a step runs, so up to 8
 * of them draw sampled rows; on CPUs 1, the compute threads have the cores. */
int lg_server_default_sample_threads(const char *device, const char *devices);

int lg_server_start(laguna_model *model, const laguna_tokenizer *tok,
                    const laguna_chat_template *tmpl, const lg_server_options *opt, lg_server **out,
                    laguna_error *err);
/* The port the server listens on. */
int lg_server_port(const lg_server *srv);
/* Stops accepting, ends every request, joins the threads and frees. */
void lg_server_stop(lg_server *srv);

#endif
