/* Parsing OpenAI request bodies (chat completions and completions) into
 * scheduler jobs. Every field is type-checked; unknown fields are ignored,
 * as OpenAI does; a bad field gives a 400 that names it. Chat requests are
 * rendered with the model's chat template (tools, tool_choice and
 * chat_template_kwargs passed to it) and tokenized without adding special
 * tokens (the template writes them). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_internal.h"

int lg_req_fail(lg_req_error *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    e->param = param;
    if (!e->type)
        e->type = status == 401   ? "authentication_error"
                  : status >= 500 ? "server_error"
                                  : "invalid_request_error";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Optional number field in [lo, hi]; *present tells whether it was given. */
static int get_number(const cJSON *body, const char *name, double lo, double hi, double *out,
                      lg_req_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return lg_req_fail(e, 400, name, "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return lg_req_fail(e, 400, name, "'%s' must be between %g and %g", name, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int get_int(const cJSON *body, const char *name, double lo, double hi, int *out,
                   lg_req_error *e) {
    double d = NAN;
    if (get_number(body, name, lo, hi, &d, e)) return -1;
    if (isnan(d)) return 0;
    if (d != floor(d)) return lg_req_fail(e, 400, name, "'%s' must be an integer", name);
    *out = (int)d;
    return 0;
}

static int get_bool(const cJSON *body, const char *name, bool *out, lg_req_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return lg_req_fail(e, 400, name, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Sampling, length, stop strings, stream flags: shared by both endpoints. */
static int parse_common(lg_server *srv, const cJSON *body, lg_job *job, lg_reply_info *info,
                        lg_req_error *e) {
    laguna_sampler_params *sp = &job->sampling;
    double temp = 1.0, top_p = 1.0, min_p = 0.0, rep = 1.0, seed = 0;
    int top_k = 0, n = 1, max_tokens = -1;
    if (get_number(body, "temperature", 0, 2, &temp, e) ||
        get_number(body, "top_p", 0, 1, &top_p, e) || get_number(body, "min_p", 0, 1, &min_p, e) ||
        get_number(body, "repetition_penalty", 0.01, 100, &rep, e) ||
        get_number(body, "seed", -9.2e18, 9.2e18, &seed, e) ||
        get_int(body, "top_k", -1, 1e9, &top_k, e) || get_int(body, "n", -1e9, 1e9, &n, e) ||
        get_int(body, "max_tokens", -1e9, 1e9, &max_tokens, e) ||
        get_int(body, "max_completion_tokens", -1e9, 1e9, &max_tokens, e) ||
        get_bool(body, "stream", &info->stream, e) ||
        get_bool(body, "ignore_eos", &job->ignore_eos, e))
        return -1;
    if (n != 1) return lg_req_fail(e, 400, "n", "only n=1 is supported");
    if (info->api == LG_API_COMPLETION) { /* logprobs: the number of alternatives, or null */
        if (get_int(body, "logprobs", 0, LG_MAX_TOP_LOGPROBS, &job->logprobs, e)) return -1;
    } else { /* logprobs: true, top_logprobs: the number of alternatives */
        bool logprobs = false;
        int top = -1;
        if (get_bool(body, "logprobs", &logprobs, e) ||
            get_int(body, "top_logprobs", 0, LG_MAX_TOP_LOGPROBS, &top, e))
            return -1;
        if (top >= 0 && !logprobs)
            return lg_req_fail(e, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        job->logprobs = logprobs ? (top > 0 ? top : 0) : -1;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(body, "max_completion_tokens");
    if (!mt || cJSON_IsNull(mt)) mt = cJSON_GetObjectItemCaseSensitive(body, "max_tokens");
    if (mt && !cJSON_IsNull(mt) && max_tokens <= 0)
        return lg_req_fail(e, 400, "max_tokens", "'max_tokens' must be at least 1");
    job->max_tokens = max_tokens > 0 ? max_tokens : srv->n_ctx;
    sp->temperature = (float)temp;
    sp->top_p = (float)top_p;
    sp->top_k = top_k > 0 ? top_k : 0;
    sp->min_p = (float)min_p;
    sp->repetition_penalty = (float)rep;
    sp->seed = (uint64_t)(int64_t)seed;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return lg_req_fail(e, 400, "stream_options", "'stream_options' must be an object");
        if (get_bool(so, "include_usage", &info->include_usage, e)) return -1;
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (stop && !cJSON_IsNull(stop)) {
        int count = cJSON_IsString(stop) ? 1 : cJSON_IsArray(stop) ? cJSON_GetArraySize(stop) : -1;
        if (count < 0 || count > 16)
            return lg_req_fail(e, 400, "stop", "'stop' must be a string or up to 16 strings");
        job->stops = calloc((size_t)count + 1, sizeof *job->stops);
        if (!job->stops) return lg_req_fail(e, 500, NULL, "out of memory");
        const cJSON *s = cJSON_IsString(stop) ? stop : stop->child;
        for (int i = 0; i < count; i++, s = s->next) {
            if (!cJSON_IsString(s))
                return lg_req_fail(e, 400, "stop", "'stop' entries must be strings");
            if (!(job->stops[job->n_stops++] = strdup(s->valuestring)))
                return lg_req_fail(e, 500, NULL, "out of memory");
        }
    }
    info->model = srv->model_name;
    info->tok = srv->tok;
    info->created = (long)time(NULL);
    return 0;
}

static int check_prompt(lg_server *srv, lg_job *job, lg_req_error *e) {
    if (job->n_prompt == 0) return lg_req_fail(e, 400, "prompt", "the prompt is empty");
    int n_ctx = srv->n_ctx;
    if (job->n_prompt >= n_ctx) {
        e->type = "invalid_request_error";
        return lg_req_fail(
            e, 400, "messages",
            "the prompt is %d tokens; this server's context is %d tokens (context_length_exceeded)",
            job->n_prompt, n_ctx);
    }
    return 0;
}

static int encode(lg_server *srv, const char *text, bool special, lg_job *job, lg_req_error *e) {
    int32_t *ids = NULL;
    size_t n = 0;
    laguna_error err = {0};
    if (laguna_tokenizer_encode(srv->tok, text, strlen(text), special, &ids, &n, &err))
        return lg_req_fail(e, 400, NULL, "tokenizer: %s", err.message);
    job->prompt = malloc((n ? n : 1) * sizeof *job->prompt);
    if (!job->prompt) {
        laguna_tokenizer_free_ids(ids);
        return lg_req_fail(e, 500, NULL, "out of memory");
    }
    memcpy(job->prompt, ids, n * sizeof *ids);
    job->n_prompt = (int)n;
    laguna_tokenizer_free_ids(ids);
    return 0;
}

/* Message content: a string, null, or an array of {type: "text", text} parts,
 * flattened into one string for the template. */
static int flatten_content(cJSON *msg, int index, lg_req_error *e) {
    cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (!c || cJSON_IsNull(c) || cJSON_IsString(c)) return 0;
    if (!cJSON_IsArray(c))
        return lg_req_fail(e, 400, "messages",
                           "messages[%d].content must be a string or an array of parts", index);
    lg_sbuf b = {0};
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text)) {
            lg_sbuf_free(&b);
            return lg_req_fail(e, 400, "messages",
                               "messages[%d].content: only text parts are supported", index);
        }
        lg_sbuf_str(&b, text->valuestring);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(msg, "content", cJSON_CreateString(b.p ? b.p : ""));
    lg_sbuf_free(&b);
    return 0;
}

cJSON *lg_chat_tool(const char *name, const char *description, const cJSON *parameters) {
    cJSON *t = cJSON_CreateObject(), *f;
    cJSON_AddStringToObject(t, "type", "function");
    f = cJSON_AddObjectToObject(t, "function");
    cJSON_AddStringToObject(f, "name", name);
    if (description) cJSON_AddStringToObject(f, "description", description);
    cJSON_AddItemToObject(f, "parameters",
                          parameters ? cJSON_Duplicate(parameters, 1) : cJSON_CreateObject());
    return t;
}

cJSON *lg_chat_tool_call(const char *id, const char *name, cJSON *arguments) {
    cJSON *c = cJSON_CreateObject(), *f;
    cJSON_AddStringToObject(c, "id", id);
    cJSON_AddStringToObject(c, "type", "function");
    f = cJSON_AddObjectToObject(c, "function");
    cJSON_AddStringToObject(f, "name", name);
    cJSON_AddItemToObject(f, "arguments", arguments);
    return c;
}

void lg_chat_tool_choice_named(cJSON *req, const char *name) {
    cJSON *o = cJSON_AddObjectToObject(req, "tool_choice");
    cJSON_AddStringToObject(o, "type", "function");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "function"), "name", name);
}

int lg_parse_chat(lg_server *srv, const cJSON *body, lg_job *job, lg_reply_info *info,
                  lg_req_error *e) {
    info->api = LG_API_CHAT;
    if (!cJSON_IsObject(body))
        return lg_req_fail(e, 400, NULL, "the request body must be a JSON object");
    if (parse_common(srv, body, job, info, e) || lg_parse_response_format(body, job, e)) return -1;
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!messages) return lg_req_fail(e, 400, "messages", "'messages' is required");
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
        return lg_req_fail(e, 400, "messages", "'messages' must be a non-empty array");
    cJSON *req = cJSON_CreateObject();
    cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            cJSON_Delete(req);
            return lg_req_fail(e, 400, "messages",
                               "messages[%d] must be an object with a string 'role'", i);
        }
        const char *r = role->valuestring;
        if (strcmp(r, "system") && strcmp(r, "developer") && strcmp(r, "user") &&
            strcmp(r, "assistant") && strcmp(r, "tool")) {
            cJSON_Delete(req);
            return lg_req_fail(e, 400, "messages", "messages[%d]: unknown role '%.40s'", i, r);
        }
        cJSON *copy = cJSON_Duplicate(m, 1);
        if (!strcmp(r, "developer"))
            cJSON_ReplaceItemInObjectCaseSensitive(copy, "role", cJSON_CreateString("system"));
        cJSON_AddItemToArray(msgs, copy);
        if (flatten_content(copy, i, e)) {
            cJSON_Delete(req);
            return -1;
        }
        i++;
    }
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    if (tools && !cJSON_IsNull(tools)) {
        if (!cJSON_IsArray(tools)) {
            cJSON_Delete(req);
            return lg_req_fail(e, 400, "tools", "'tools' must be an array");
        }
        const cJSON *tool_choice = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
        bool none = cJSON_IsString(tool_choice) && !strcmp(tool_choice->valuestring, "none");
        if (!none && cJSON_GetArraySize(tools) > 0) {
            cJSON_AddItemToObject(req, "tools", cJSON_Duplicate(tools, 1));
            job->tools = cJSON_Duplicate(tools, 1);
        }
        if (tool_choice) cJSON_AddItemToObject(req, "tool_choice", cJSON_Duplicate(tool_choice, 1));
    }
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(body, "chat_template_kwargs");
    if (kw && !cJSON_IsNull(kw)) {
        if (!cJSON_IsObject(kw)) {
            cJSON_Delete(req);
            return lg_req_fail(e, 400, "chat_template_kwargs",
                               "'chat_template_kwargs' must be an object");
        }
        cJSON_AddItemToObject(req, "chat_template_kwargs", cJSON_Duplicate(kw, 1));
    }
    cJSON_AddTrueToObject(req, "add_generation_prompt");
    char *json = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!json) return lg_req_fail(e, 500, NULL, "out of memory");
    char *prompt = NULL;
    size_t len = 0;
    laguna_error err = {0};
    pthread_mutex_lock(&srv->tmpl_mu);
    laguna_status st =
        laguna_chat_template_apply(srv->tmpl, json, strlen(json), &prompt, &len, &err);
    pthread_mutex_unlock(&srv->tmpl_mu);
    free(json);
    if (st) return lg_req_fail(e, 400, "messages", "chat template: %s", err.message);
    int rc = encode(srv, prompt, false, job, e);
    free(prompt);
    if (rc || check_prompt(srv, job, e)) return -1;
    job->chat = true;
    job->in_reasoning = lg_prompt_ends_in_think(srv->tok, job->prompt, (size_t)job->n_prompt);
    snprintf(info->id, sizeof info->id, "chatcmpl-%lu", (unsigned long)++srv->next_id);
    return 0;
}

int lg_parse_completion(lg_server *srv, const cJSON *body, lg_job *job, lg_reply_info *info,
                        lg_req_error *e) {
    info->api = LG_API_COMPLETION;
    if (!cJSON_IsObject(body))
        return lg_req_fail(e, 400, NULL, "the request body must be a JSON object");
    if (parse_common(srv, body, job, info, e)) return -1;
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (!prompt) return lg_req_fail(e, 400, "prompt", "'prompt' is required");
    if (cJSON_IsArray(prompt) && cJSON_GetArraySize(prompt) == 1 && cJSON_IsString(prompt->child))
        prompt = prompt->child;
    if (cJSON_IsString(prompt)) {
        if (encode(srv, prompt->valuestring, true, job, e)) return -1;
    } else if (cJSON_IsArray(prompt)) { /* token ids */
        int n = cJSON_GetArraySize(prompt), vocab = srv->vocab;
        job->prompt = malloc((size_t)(n ? n : 1) * sizeof *job->prompt);
        if (!job->prompt) return lg_req_fail(e, 500, NULL, "out of memory");
        const cJSON *t;
        cJSON_ArrayForEach(t, prompt) {
            if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) ||
                t->valuedouble < 0 || t->valuedouble >= vocab)
                return lg_req_fail(e, 400, "prompt",
                                   "'prompt' token ids must be integers in [0, %d)", vocab);
            job->prompt[job->n_prompt++] = (int32_t)t->valuedouble;
        }
    } else {
        return lg_req_fail(e, 400, "prompt", "'prompt' must be a string or an array of token ids");
    }
    if (check_prompt(srv, job, e)) return -1;
    snprintf(info->id, sizeof info->id, "cmpl-%lu", (unsigned long)++srv->next_id);
    return 0;
}
