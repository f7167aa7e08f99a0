/* What the server's files share: the server object, parsed request
 * metadata, the accumulated reply of a turn and the functions of each part
 * (request.c and anthropic_request.c parse, openai_writer.c and
 * anthropic_writer.c format, http.c serves). */
#ifndef LAGUNA_SERVER_INTERNAL_H
#define LAGUNA_SERVER_INTERNAL_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>

#include "server/buf.h"
#include "server/chat_parser.h"
#include "server/scheduler.h"
#include "server/server.h"

struct MHD_Daemon;

struct lg_server {
    laguna_model *model;
    const laguna_tokenizer *tok;
    const laguna_chat_template *tmpl;
    pthread_mutex_t tmpl_mu; /* template renders, one at a time */
    lg_sched *sched;
    int n_ctx, vocab; /* what the request parsers check against (the sched's and model's) */
    struct MHD_Daemon *daemon;
    lg_server_options opt;
    char host[64];
    char model_name[128];
    int port;
    _Atomic unsigned long next_id;
    _Atomic unsigned long http_requests, http_errors;
};

/* A request error: HTTP status, message and the offending parameter. */
typedef struct {
    int status;
    char message[300];
    const char *param; /* static, may be NULL */
    const char *type;  /* "invalid_request_error", "authentication_error", ... */
} lg_req_error;

int lg_req_fail(lg_req_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* LG_API_MESSAGES: Anthropic's Messages API, LG_API_RESPONSES: OpenAI's
 * Responses API, each rendered as a chat request. */
typedef enum { LG_API_CHAT = 0, LG_API_COMPLETION, LG_API_MESSAGES, LG_API_RESPONSES } lg_api;

/* What a reply needs besides the job's output. */
typedef struct {
    lg_api api;
    bool stream;
    bool include_usage;
    char id[48];
    long created;
    const char *model;           /* the server's model name */
    const laguna_tokenizer *tok; /* for the text of tokens in logprobs */
    int max_output_tokens;       /* Responses: the request's, 0 when it gave none */
} lg_reply_info;

/* request.c: a request body into a ready-to-submit job. 0, or -1 with *e. */
int lg_parse_chat(lg_server *srv, const cJSON *body, lg_job *job, lg_reply_info *info,
                  lg_req_error *e);
int lg_parse_completion(lg_server *srv, const cJSON *body, lg_job *job, lg_reply_info *info,
                        lg_req_error *e);

/* response_format.c: the body's response_format (structured output) into
 * job->grammar (left NULL for text). 0, or -1 with *e. */
int lg_parse_response_format(const cJSON *body, lg_job *job, lg_req_error *e);

/* request.c: pieces of the chat request that the other APIs' requests are
 * converted to. A function tool {type: function, function: {name,
 * description (when not NULL), parameters (a copy; NULL: {})}}; an
 * assistant's tool call {id, type: function, function: {name, arguments}}
 * (arguments, a string or an object, is taken over); tool_choice naming one
 * function, set on req. */
cJSON *lg_chat_tool(const char *name, const char *description, const cJSON *parameters);
cJSON *lg_chat_tool_call(const char *id, const char *name, cJSON *arguments);
void lg_chat_tool_choice_named(cJSON *req, const char *name);

/* anthropic_request.c: an Anthropic Messages body (POST /v1/messages, or
 * /v1/messages/count_tokens when count_only: max_tokens is then not asked
 * for) converted to the OpenAI-style chat request the template takes, then
 * parsed as one. 0, or -1 with *e. */
int lg_parse_messages(lg_server *srv, const cJSON *body, bool count_only, lg_job *job,
                      lg_reply_info *info, lg_req_error *e);

/* responses_request.c: an OpenAI Responses body (POST /v1/responses)
 * converted to the chat request the template takes, then parsed as one. 0,
 * or -1 with *e. */
int lg_parse_responses(lg_server *srv, const cJSON *body, lg_job *job, lg_reply_info *info,
                       lg_req_error *e);

/* The whole output of a turn, gathered from events (non-streaming replies). */
typedef struct {
    char *name;
    lg_sbuf args;
} lg_tool_call;

typedef struct {
    lg_sbuf content, reasoning;
    lg_tool_call *calls;
    int n_calls;
    lg_logprob_list lps; /* when logprobs were asked for */
    bool failed;
} lg_turn;

void lg_turn_add(lg_turn *t, const lg_event *e);
void lg_turn_free(lg_turn *t);

/* openai_writer.c */
char *lg_openai_error_json(const lg_req_error *e);
char *lg_openai_response(const lg_reply_info *info, const lg_turn *t, const lg_job *job);
/* SSE chunks for new events (the first call also sends the role); the
 * logprobs of the tokens behind them ride on the last chunk (lps may be NULL). */
void lg_openai_stream_events(lg_sbuf *out, const lg_reply_info *info, const lg_event *ev, size_t n,
                             const lg_logprob_list *lps, bool first);
/* The closing chunks: finish_reason, usage when asked, then [DONE]. */
void lg_openai_stream_end(lg_sbuf *out, const lg_reply_info *info, const lg_job *job);
/* anthropic_writer.c */
char *lg_anthropic_error_json(const lg_req_error *e);
char *lg_anthropic_response(const lg_reply_info *info, const lg_turn *t, const lg_job *job);
/* Where an Anthropic stream is: content blocks are numbered from 0; one is open at a time. */
typedef struct {
    bool started;  /* message_start sent */
    int n_blocks;  /* blocks started so far */
    int open_kind; /* -1: none, else the lg_event_kind of the open block */
    int open_tool; /* tool_index of an open tool_use block */
} lg_anthropic_stream;
/* Events for new output (the first call also sends message_start). Call with
 * the job's lock not held; it reads the job's counts. */
void lg_anthropic_stream_events(lg_sbuf *out, lg_anthropic_stream *st, const lg_reply_info *info,
                                const lg_job *job, const lg_event *ev, size_t n);
/* Closes the open block, then message_delta and message_stop (or an error event). */
void lg_anthropic_stream_end(lg_sbuf *out, lg_anthropic_stream *st, const lg_reply_info *info,
                             const lg_job *job);

/* responses_writer.c: a turn's output items as they are made, streamed
 * (out not NULL: the events are written to it) or gathered for the whole
 * response (out NULL). Starts zeroed; freed with lg_responses_stream_free. */
typedef struct {
    int seq;        /* the next event's sequence_number */
    bool started;   /* response.created sent */
    int open_kind;  /* -1: no item open, else the lg_event_kind of the open item */
    int open_tool;  /* tool_index of an open function_call item */
    int n_items;    /* items started: the next one's output_index */
    lg_sbuf text;   /* the open item's text or arguments so far */
    char name[128]; /* the open function_call's name */
    cJSON *items;   /* the closed items, in order */
    bool failed;    /* out of memory */
} lg_responses_stream;
void lg_responses_stream_events(lg_sbuf *out, lg_responses_stream *st, const lg_reply_info *info,
                                const lg_job *job, const lg_event *ev, size_t n);
/* Closes the open item, then response.completed, .incomplete or .failed. */
void lg_responses_stream_end(lg_sbuf *out, lg_responses_stream *st, const lg_reply_info *info,
                             const lg_job *job);
/* The final response of a turn whose events all went through st (out NULL);
 * NULL when out of memory. */
char *lg_responses_response(const lg_reply_info *info, lg_responses_stream *st, const lg_job *job);
void lg_responses_stream_free(lg_responses_stream *st);

/* GET /metrics */
void lg_metrics_text(lg_sbuf *out, lg_server *srv);

#endif
