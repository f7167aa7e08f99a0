/* OpenAI Responses replies (POST /v1/responses): the response object and its
 * stream of semantic events.
 *
 * A turn's events become output items in the order they come: reasoning
 * text a reasoning item (its text as reasoning_text content), answer text a
 * message item (one output_text part), each tool call a function_call item
 * (call_id, name, arguments as a JSON string); a change of kind closes the
 * open item and starts the next. Streamed, every event carries a
 * sequence_number from 0: response.created and response.in_progress, then
 * per item output_item.added, content_part.added (text items), the deltas
 * (output_text / reasoning_text / function_call_arguments), their .done
 * events and output_item.done; last response.completed, or
 * response.incomplete when max_output_tokens cut the turn (its last item
 * then "incomplete"), or response.failed. There is no [DONE]. The whole
 * reply runs the same machine without writing events, so a streamed turn's
 * final response equals the whole one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static void item_id(char *out, size_t n, const char *prefix, const lg_reply_info *info, int index) {
    snprintf(out, n, "%s_%s_%d", prefix, info->id, index);
}

static void event(lg_sbuf *out, lg_responses_stream *st, const char *type, cJSON *data) {
    if (!out) {
        cJSON_Delete(data);
        return;
    }
    cJSON_AddStringToObject(data, "type", type);
    cJSON_AddNumberToObject(data, "sequence_number", st->seq++);
    char *s = lg_json_print_free(data);
    if (!s) {
        out->failed = true;
        return;
    }
    lg_sbuf_printf(out, "event: %s\ndata: %s\n\n", type, s);
    free(s);
}

static cJSON *at_index(const lg_responses_stream *st) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "output_index", st->n_items - 1);
    return d;
}

/* The open item as JSON: status, and its text or arguments so far. */
static cJSON *open_item(const lg_responses_stream *st, const lg_reply_info *info,
                        const char *status) {
    char id[96];
    int index = st->n_items - 1;
    const char *text = st->text.p ? st->text.p : "";
    cJSON *it = cJSON_CreateObject(), *c, *part;
    if (st->open_kind == LG_EV_REASONING) {
        item_id(id, sizeof id, "rs", info, index);
        cJSON_AddStringToObject(it, "id", id);
        cJSON_AddStringToObject(it, "type", "reasoning");
        cJSON_AddArrayToObject(it, "summary");
        c = cJSON_AddArrayToObject(it, "content");
        cJSON_AddItemToArray(c, part = cJSON_CreateObject());
        cJSON_AddStringToObject(part, "type", "reasoning_text");
        cJSON_AddStringToObject(part, "text", text);
    } else if (st->open_kind == LG_EV_CONTENT) {
        item_id(id, sizeof id, "msg", info, index);
        cJSON_AddStringToObject(it, "id", id);
        cJSON_AddStringToObject(it, "type", "message");
        cJSON_AddStringToObject(it, "role", "assistant");
        c = cJSON_AddArrayToObject(it, "content");
        cJSON_AddItemToArray(c, part = cJSON_CreateObject());
        cJSON_AddStringToObject(part, "type", "output_text");
        cJSON_AddStringToObject(part, "text", text);
        cJSON_AddArrayToObject(part, "annotations");
    } else {
        item_id(id, sizeof id, "fc", info, index);
        cJSON_AddStringToObject(it, "id", id);
        cJSON_AddStringToObject(it, "type", "function_call");
        item_id(id, sizeof id, "call", info, index);
        cJSON_AddStringToObject(it, "call_id", id);
        cJSON_AddStringToObject(it, "name", st->name);
        cJSON_AddStringToObject(it, "arguments", text);
    }
    cJSON_AddStringToObject(it, "status", status);
    return it;
}

/* A text part of the open item (output_text or reasoning_text) as JSON. */
static cJSON *open_part(const lg_responses_stream *st, const char *text) {
    cJSON *p = cJSON_CreateObject();
    bool answer = st->open_kind == LG_EV_CONTENT;
    cJSON_AddStringToObject(p, "type", answer ? "output_text" : "reasoning_text");
    cJSON_AddStringToObject(p, "text", text);
    if (answer) cJSON_AddArrayToObject(p, "annotations");
    return p;
}

static cJSON *part_event(const lg_responses_stream *st, const lg_reply_info *info) {
    char id[96];
    item_id(id, sizeof id, st->open_kind == LG_EV_CONTENT ? "msg" : "rs", info, st->n_items - 1);
    cJSON *d = at_index(st);
    cJSON_AddStringToObject(d, "item_id", id);
    cJSON_AddNumberToObject(d, "content_index", 0);
    return d;
}

/* Closes the open item: its .done events, and it joins the finished items. */
static void item_close(lg_sbuf *out, lg_responses_stream *st, const lg_reply_info *info,
                       const char *status) {
    if (st->open_kind < 0) return;
    const char *text = st->text.p ? st->text.p : "";
    char id[96];
    if (st->open_kind == LG_EV_TOOL_START) {
        cJSON *d = at_index(st);
        item_id(id, sizeof id, "fc", info, st->n_items - 1);
        cJSON_AddStringToObject(d, "item_id", id);
        cJSON_AddStringToObject(d, "arguments", text);
        event(out, st, "response.function_call_arguments.done", d);
    } else {
        cJSON *d = part_event(st, info);
        cJSON_AddStringToObject(d, "text", text);
        event(out, st,
              st->open_kind == LG_EV_CONTENT ? "response.output_text.done"
                                             : "response.reasoning_text.done",
              d);
        d = part_event(st, info);
        cJSON_AddItemToObject(d, "part", open_part(st, text));
        event(out, st, "response.content_part.done", d);
    }
    cJSON *d = at_index(st);
    cJSON_AddItemToObject(d, "item", open_item(st, info, status));
    event(out, st, "response.output_item.done", d);
    cJSON_AddItemToArray(st->items, open_item(st, info, status));
    st->open_kind = -1;
    lg_sbuf_free(&st->text);
    st->text = (lg_sbuf){0};
}

/* Opens an item for event e (closing another kind first); a no-op when its
 * kind is open, except that every tool call is an item of its own. */
static void item_open(lg_sbuf *out, lg_responses_stream *st, const lg_reply_info *info,
                      const lg_event *e) {
    if (st->open_kind == (int)e->kind && e->kind != LG_EV_TOOL_START) return;
    item_close(out, st, info, "completed");
    st->open_kind = (int)e->kind;
    st->n_items++;
    if (e->kind == LG_EV_TOOL_START) {
        snprintf(st->name, sizeof st->name, "%s", e->text);
        st->open_tool = e->tool_index;
    }
    cJSON *d = at_index(st);
    cJSON_AddItemToObject(d, "item", open_item(st, info, "in_progress"));
    event(out, st, "response.output_item.added", d);
    if (e->kind == LG_EV_TOOL_START) return;
    d = part_event(st, info);
    cJSON_AddItemToObject(d, "part", open_part(st, ""));
    event(out, st, "response.content_part.added", d);
}

static void text_delta(lg_sbuf *out, lg_responses_stream *st, const lg_reply_info *info,
                       const char *text, size_t len) {
    lg_sbuf_add(&st->text, text, len);
    if (st->text.failed) st->failed = true;
    if (!out) return;
    cJSON *d;
    const char *type;
    if (st->open_kind == LG_EV_TOOL_START) {
        char id[96];
        item_id(id, sizeof id, "fc", info, st->n_items - 1);
        d = at_index(st);
        cJSON_AddStringToObject(d, "item_id", id);
        type = "response.function_call_arguments.delta";
    } else {
        d = part_event(st, info);
        type = st->open_kind == LG_EV_CONTENT ? "response.output_text.delta"
                                              : "response.reasoning_text.delta";
    }
    cJSON_AddStringToObject(d, "delta", text);
    if (st->open_kind == LG_EV_CONTENT) cJSON_AddArrayToObject(d, "logprobs");
    event(out, st, type, d);
}

static const char *status_of(const lg_job *job) {
    if (job->error[0]) return "failed";
    if (job->finish_reason && !strcmp(job->finish_reason, "length")) return "incomplete";
    return job->done ? "completed" : "in_progress";
}

/* The response object; output holds the finished items when final. */
static cJSON *response_object(const lg_responses_stream *st, const lg_reply_info *info,
                              const lg_job *job, bool final) {
    cJSON *o = cJSON_CreateObject();
    const char *status = final ? status_of(job) : "in_progress";
    cJSON_AddStringToObject(o, "id", info->id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddNumberToObject(o, "created_at", (double)info->created);
    cJSON_AddStringToObject(o, "status", status);
    if (final && job->error[0]) {
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(err, "code", "server_error");
        cJSON_AddStringToObject(err, "message", job->error);
    } else {
        cJSON_AddNullToObject(o, "error");
    }
    if (!strcmp(status, "incomplete"))
        cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "incomplete_details"), "reason",
                                "max_output_tokens");
    else
        cJSON_AddNullToObject(o, "incomplete_details");
    cJSON_AddStringToObject(o, "model", info->model);
    cJSON_AddItemToObject(o, "output",
                          final ? cJSON_Duplicate(st->items, 1) : cJSON_CreateArray());
    cJSON_AddBoolToObject(o, "parallel_tool_calls", true);
    if (info->max_output_tokens > 0)
        cJSON_AddNumberToObject(o, "max_output_tokens", info->max_output_tokens);
    else
        cJSON_AddNullToObject(o, "max_output_tokens");
    if (final) {
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "input_tokens", job->n_prompt);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "input_tokens_details"),
                                "cached_tokens", job->n_cached);
        cJSON_AddNumberToObject(u, "output_tokens", job->n_completion);
        cJSON_AddNumberToObject(u, "total_tokens", job->n_prompt + job->n_completion);
    } else {
        cJSON_AddNullToObject(o, "usage");
    }
    return o;
}

static void start(lg_sbuf *out, lg_responses_stream *st, const lg_reply_info *info,
                  const lg_job *job) {
    if (st->started) return;
    st->started = true;
    st->open_kind = -1;
    if (!st->items && !(st->items = cJSON_CreateArray())) st->failed = true;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "response", response_object(st, info, job, false));
    event(out, st, "response.created", d);
    d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "response", response_object(st, info, job, false));
    event(out, st, "response.in_progress", d);
}

void lg_responses_stream_events(lg_sbuf *out, lg_responses_stream *st, const lg_reply_info *info,
                                const lg_job *job, const lg_event *ev, size_t n) {
    start(out, st, info, job);
    for (size_t i = 0; i < n; i++) {
        const lg_event *e = &ev[i];
        switch (e->kind) {
        case LG_EV_REASONING:
        case LG_EV_CONTENT:
            item_open(out, st, info, e);
            text_delta(out, st, info, e->text, e->len);
            break;
        case LG_EV_TOOL_START:
            item_open(out, st, info, e);
            break;
        case LG_EV_TOOL_ARGS:
            if (st->open_kind == LG_EV_TOOL_START && st->open_tool == e->tool_index)
                text_delta(out, st, info, e->text, e->len);
            break;
        case LG_EV_TOOL_END:
            if (st->open_kind == LG_EV_TOOL_START) item_close(out, st, info, "completed");
            break;
        }
    }
}

/* The last item of a cut turn: open (cut inside it) or just closed. */
static void mark_last_incomplete(lg_responses_stream *st) {
    cJSON *last = cJSON_GetArrayItem(st->items, cJSON_GetArraySize(st->items) - 1);
    if (last) cJSON_ReplaceItemInObjectCaseSensitive(last, "status", cJSON_CreateString("incomplete"));
}

void lg_responses_stream_end(lg_sbuf *out, lg_responses_stream *st, const lg_reply_info *info,
                             const lg_job *job) {
    start(out, st, info, job);
    const char *status = status_of(job);
    bool cut = !strcmp(status, "incomplete");
    item_close(out, st, info, cut ? "incomplete" : "completed");
    if (cut) mark_last_incomplete(st);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "response", response_object(st, info, job, true));
    event(out, st,
          !strcmp(status, "failed")  ? "response.failed"
          : cut                      ? "response.incomplete"
                                     : "response.completed",
          d);
}

char *lg_responses_response(const lg_reply_info *info, lg_responses_stream *st,
                            const lg_job *job) {
    lg_responses_stream_end(NULL, st, info, job);
    if (st->failed) return NULL;
    return lg_json_print_free(response_object(st, info, job, true));
}

void lg_responses_stream_free(lg_responses_stream *st) {
    cJSON_Delete(st->items);
    lg_sbuf_free(&st->text);
    *st = (lg_responses_stream){0};
}
