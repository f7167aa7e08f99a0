/* Anthropic Messages response bodies: the message object, its server-sent
 * event sequence (message_start; content_block_start / content_block_delta /
 * content_block_stop per block; message_delta with the stop reason and
 * usage; message_stop) and error objects ({"type":"error","error":{...}}).
 *
 * A turn's reasoning is a thinking block, its answer a text block and each
 * tool call a tool_use block whose input streams as input_json_delta
 * fragments (the parser's argument fragments concatenate to the input
 * object). Usage follows Anthropic's split: input_tokens counts the prompt
 * tokens computed, cache_read_input_tokens those taken from the prefix cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static const char *error_type(int status) {
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

char *lg_anthropic_error_json(const lg_req_error *e) {
    cJSON *o = cJSON_CreateObject(), *err;
    cJSON_AddStringToObject(o, "type", "error");
    err = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(err, "type", error_type(e->status));
    cJSON_AddStringToObject(err, "message", e->message);
    return lg_json_print_free(o);
}

static const char *stop_reason(const lg_job *job) {
    const char *f = job->finish_reason ? job->finish_reason : "stop";
    if (!strcmp(f, "tool_calls")) return "tool_use";
    if (!strcmp(f, "length")) return "max_tokens";
    return job->stop_sequence ? "stop_sequence" : "end_turn";
}

static void add_stop(cJSON *o, const lg_job *job) {
    cJSON_AddStringToObject(o, "stop_reason", stop_reason(job));
    if (job->stop_sequence)
        cJSON_AddStringToObject(o, "stop_sequence", job->stop_sequence);
    else
        cJSON_AddNullToObject(o, "stop_sequence");
}

static cJSON *usage_json(const lg_job *job, bool with_output) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "input_tokens", job->n_prompt - job->n_cached);
    cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 0);
    cJSON_AddNumberToObject(u, "cache_read_input_tokens", job->n_cached);
    cJSON_AddNumberToObject(u, "output_tokens", with_output ? job->n_completion : 0);
    return u;
}

static void tool_id(char *out, size_t n, const lg_reply_info *info, int index) {
    snprintf(out, n, "toolu_%s_%d", info->id, index);
}

/* The input object of a call from its argument text ({} when it is not an object). */
static cJSON *tool_input(const lg_sbuf *args) {
    cJSON *in = args->p ? cJSON_ParseWithLength(args->p, args->n) : NULL;
    if (cJSON_IsObject(in)) return in;
    cJSON_Delete(in);
    return cJSON_CreateObject();
}

static cJSON *message_object(const lg_reply_info *info) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", info->id);
    cJSON_AddStringToObject(o, "type", "message");
    cJSON_AddStringToObject(o, "role", "assistant");
    cJSON_AddStringToObject(o, "model", info->model);
    cJSON_AddArrayToObject(o, "content");
    return o;
}

/* ---- non-streaming ------------------------------------------------------------ */

char *lg_anthropic_response(const lg_reply_info *info, const lg_turn *t, const lg_job *job) {
    cJSON *o = message_object(info), *content = cJSON_GetObjectItem(o, "content"), *b;
    if (t->reasoning.n) {
        cJSON_AddItemToArray(content, b = cJSON_CreateObject());
        cJSON_AddStringToObject(b, "type", "thinking");
        cJSON_AddStringToObject(b, "thinking", t->reasoning.p);
        cJSON_AddStringToObject(b, "signature", "");
    }
    if (t->content.n) {
        cJSON_AddItemToArray(content, b = cJSON_CreateObject());
        cJSON_AddStringToObject(b, "type", "text");
        cJSON_AddStringToObject(b, "text", t->content.p);
    }
    for (int i = 0; i < t->n_calls; i++) {
        char id[96];
        tool_id(id, sizeof id, info, i);
        cJSON_AddItemToArray(content, b = cJSON_CreateObject());
        cJSON_AddStringToObject(b, "type", "tool_use");
        cJSON_AddStringToObject(b, "id", id);
        cJSON_AddStringToObject(b, "name", t->calls[i].name ? t->calls[i].name : "");
        cJSON_AddItemToObject(b, "input", tool_input(&t->calls[i].args));
    }
    add_stop(o, job);
    cJSON_AddItemToObject(o, "usage", usage_json(job, true));
    return lg_json_print_free(o);
}

/* ---- streaming -------------------------------------------------------------------- */

static void event(lg_sbuf *out, const char *name, cJSON *data) {
    char *s = lg_json_print_free(data);
    if (!s) {
        out->failed = true;
        return;
    }
    lg_sbuf_printf(out, "event: %s\ndata: %s\n\n", name, s);
    free(s);
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static void block_stop(lg_sbuf *out, lg_anthropic_stream *st) {
    if (st->open_kind < 0) return;
    cJSON *d = typed("content_block_stop");
    cJSON_AddNumberToObject(d, "index", st->n_blocks - 1);
    event(out, "content_block_stop", d);
    st->open_kind = -1;
}

/* Opens a block of this kind (closing another one); a no-op when it is open. */
static void block_start(lg_sbuf *out, lg_anthropic_stream *st, const lg_reply_info *info,
                        const lg_event *e) {
    if (st->open_kind == (int)e->kind && e->kind != LG_EV_TOOL_START) return;
    block_stop(out, st);
    cJSON *d = typed("content_block_start"), *b;
    cJSON_AddNumberToObject(d, "index", st->n_blocks++);
    if (e->kind == LG_EV_REASONING) {
        b = cJSON_AddObjectToObject(d, "content_block");
        cJSON_AddStringToObject(b, "type", "thinking");
        cJSON_AddStringToObject(b, "thinking", "");
        cJSON_AddStringToObject(b, "signature", "");
    } else if (e->kind == LG_EV_CONTENT) {
        b = cJSON_AddObjectToObject(d, "content_block");
        cJSON_AddStringToObject(b, "type", "text");
        cJSON_AddStringToObject(b, "text", "");
    } else { /* a tool call */
        char id[96];
        tool_id(id, sizeof id, info, e->tool_index);
        b = cJSON_AddObjectToObject(d, "content_block");
        cJSON_AddStringToObject(b, "type", "tool_use");
        cJSON_AddStringToObject(b, "id", id);
        cJSON_AddStringToObject(b, "name", e->text);
        cJSON_AddObjectToObject(b, "input");
        st->open_tool = e->tool_index;
    }
    st->open_kind = (int)e->kind;
    event(out, "content_block_start", d);
}

static void delta(lg_sbuf *out, lg_anthropic_stream *st, const char *type, const char *field,
                  const char *text) {
    cJSON *d = typed("content_block_delta"), *x;
    cJSON_AddNumberToObject(d, "index", st->n_blocks - 1);
    x = cJSON_AddObjectToObject(d, "delta");
    cJSON_AddStringToObject(x, "type", type);
    cJSON_AddStringToObject(x, field, text);
    event(out, "content_block_delta", d);
}

static void message_start(lg_sbuf *out, lg_anthropic_stream *st, const lg_reply_info *info,
                          const lg_job *job) {
    if (st->started) return;
    st->started = true;
    st->open_kind = -1;
    cJSON *d = typed("message_start"), *m = message_object(info);
    cJSON_AddNullToObject(m, "stop_reason");
    cJSON_AddNullToObject(m, "stop_sequence");
    cJSON_AddItemToObject(m, "usage", usage_json(job, false));
    cJSON_AddItemToObject(d, "message", m);
    event(out, "message_start", d);
}

void lg_anthropic_stream_events(lg_sbuf *out, lg_anthropic_stream *st, const lg_reply_info *info,
                                const lg_job *job, const lg_event *ev, size_t n) {
    message_start(out, st, info, job);
    for (size_t i = 0; i < n; i++) {
        const lg_event *e = &ev[i];
        switch (e->kind) {
        case LG_EV_REASONING:
            block_start(out, st, info, e);
            delta(out, st, "thinking_delta", "thinking", e->text);
            break;
        case LG_EV_CONTENT:
            block_start(out, st, info, e);
            delta(out, st, "text_delta", "text", e->text);
            break;
        case LG_EV_TOOL_START:
            block_start(out, st, info, e);
            break;
        case LG_EV_TOOL_ARGS:
            if (st->open_kind == LG_EV_TOOL_START && st->open_tool == e->tool_index)
                delta(out, st, "input_json_delta", "partial_json", e->text);
            break;
        case LG_EV_TOOL_END:
            if (st->open_kind == LG_EV_TOOL_START) block_stop(out, st);
            break;
        }
    }
}

void lg_anthropic_stream_end(lg_sbuf *out, lg_anthropic_stream *st, const lg_reply_info *info,
                             const lg_job *job) {
    if (job->error[0]) {
        lg_req_error e = {.status = 500};
        snprintf(e.message, sizeof e.message, "%s", job->error);
        char *s = lg_anthropic_error_json(&e);
        lg_sbuf_printf(out, "event: error\ndata: %s\n\n", s ? s : "{}");
        free(s);
        return;
    }
    message_start(out, st, info, job);
    block_stop(out, st);
    cJSON *d = typed("message_delta"), *x = cJSON_AddObjectToObject(d, "delta");
    add_stop(x, job);
    cJSON_AddItemToObject(d, "usage", usage_json(job, true));
    event(out, "message_delta", d);
    event(out, "message_stop", typed("message_stop"));
}
