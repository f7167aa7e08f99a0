/* Anthropic Messages requests (POST /v1/messages, /v1/messages/count_tokens)
 * turned into the OpenAI-style chat request that request.c parses and the
 * chat template renders, so both APIs share one rendering, one tokenization
 * and one set of field checks.
 *
 * The mapping: `system` (a string or text blocks) becomes the first system
 * message; a user message's text blocks become a user message and each
 * tool_result block a tool message (in block order); an assistant message's
 * text becomes its content, thinking blocks its reasoning_content and
 * tool_use blocks its tool_calls (the input object as the arguments).
 * `tools` ({name, description, input_schema}) become function tools,
 * `tool_choice` the OpenAI one, `stop_sequences` `stop`, and `thinking`
 * ({type: enabled|disabled}) the template's enable_thinking; without it the
 * template's default holds. Unknown fields are ignored; a bad one is a 400
 * that names it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static const char *str_field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Text of a `system` or tool_result `content`: a string, or text blocks joined by newlines. */
static int blocks_text(const cJSON *c, const char *what, lg_sbuf *out, lg_req_error *e) {
    if (cJSON_IsString(c)) {
        lg_sbuf_str(out, c->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(c))
        return lg_req_fail(e, 400, NULL, "%s must be a string or an array of text blocks", what);
    const cJSON *b;
    int i = 0;
    cJSON_ArrayForEach(b, c) {
        const char *type = str_field(b, "type"), *text = str_field(b, "text");
        if (!type || strcmp(type, "text") || !text)
            return lg_req_fail(e, 400, NULL, "%s[%d]: only text blocks are supported here", what,
                               i);
        if (i++) lg_sbuf_str(out, "\n");
        lg_sbuf_str(out, text);
    }
    return 0;
}

static cJSON *new_message(cJSON *msgs, const char *role) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddItemToArray(msgs, m);
    return m;
}

/* A user message: text blocks into user messages, tool_result blocks into tool messages. */
static int user_message(cJSON *msgs, const cJSON *content, int index, lg_req_error *e) {
    if (cJSON_IsString(content)) {
        cJSON_AddStringToObject(new_message(msgs, "user"), "content", content->valuestring);
        return 0;
    }
    lg_sbuf text = {0};
    bool have_text = false;
    const cJSON *b;
    int k = 0;
    cJSON_ArrayForEach(b, content) {
        const char *type = str_field(b, "type");
        if (type && !strcmp(type, "text") && str_field(b, "text")) {
            if (have_text) lg_sbuf_str(&text, "\n");
            lg_sbuf_str(&text, str_field(b, "text"));
            have_text = true;
        } else if (type && !strcmp(type, "tool_result")) {
            const char *id = str_field(b, "tool_use_id");
            if (!id) {
                lg_sbuf_free(&text);
                return lg_req_fail(e, 400, NULL,
                                   "messages.%d.content.%d: tool_result needs a string tool_use_id",
                                   index, k);
            }
            if (have_text) { /* keep the order of text and results */
                cJSON_AddStringToObject(new_message(msgs, "user"), "content", text.p ? text.p : "");
                lg_sbuf_free(&text);
                have_text = false;
            }
            lg_sbuf r = {0};
            const cJSON *is_error = cJSON_GetObjectItemCaseSensitive(b, "is_error");
            if (cJSON_IsTrue(is_error)) lg_sbuf_str(&r, "Error: ");
            const cJSON *rc = cJSON_GetObjectItemCaseSensitive(b, "content");
            char what[64];
            snprintf(what, sizeof what, "messages.%d.content.%d.content", index, k);
            if (rc && !cJSON_IsNull(rc) && blocks_text(rc, what, &r, e)) {
                lg_sbuf_free(&r);
                lg_sbuf_free(&text);
                return -1;
            }
            cJSON *m = new_message(msgs, "tool");
            cJSON_AddStringToObject(m, "tool_call_id", id);
            cJSON_AddStringToObject(m, "content", r.p ? r.p : "");
            lg_sbuf_free(&r);
        } else {
            lg_sbuf_free(&text);
            return lg_req_fail(e, 400, NULL,
                               "messages.%d.content.%d: a user message takes text and tool_result "
                               "blocks (got '%.40s')",
                               index, k, type ? type : "no type");
        }
        k++;
    }
    if (have_text)
        cJSON_AddStringToObject(new_message(msgs, "user"), "content", text.p ? text.p : "");
    bool failed = text.failed;
    lg_sbuf_free(&text);
    return failed ? lg_req_fail(e, 500, NULL, "out of memory") : 0;
}

/* An assistant message: text, thinking and tool_use blocks into one message. */
static int assistant_message(cJSON *msgs, const cJSON *content, int index, lg_req_error *e) {
    cJSON *m = new_message(msgs, "assistant");
    if (cJSON_IsString(content)) {
        cJSON_AddStringToObject(m, "content", content->valuestring);
        return 0;
    }
    lg_sbuf text = {0}, thinking = {0};
    cJSON *calls = NULL;
    const cJSON *b;
    int k = 0;
    cJSON_ArrayForEach(b, content) {
        const char *type = str_field(b, "type");
        if (type && !strcmp(type, "text") && str_field(b, "text")) {
            lg_sbuf_str(&text, str_field(b, "text"));
        } else if (type && !strcmp(type, "thinking") && str_field(b, "thinking")) {
            lg_sbuf_str(&thinking, str_field(b, "thinking"));
        } else if (type && !strcmp(type, "redacted_thinking")) {
            /* opaque to us: nothing to show the model */
        } else if (type && !strcmp(type, "tool_use")) {
            const char *id = str_field(b, "id"), *name = str_field(b, "name");
            const cJSON *input = cJSON_GetObjectItemCaseSensitive(b, "input");
            if (!id || !name || (input && !cJSON_IsObject(input))) {
                lg_sbuf_free(&text);
                lg_sbuf_free(&thinking);
                return lg_req_fail(e, 400, NULL,
                                   "messages.%d.content.%d: tool_use needs a string id and name "
                                   "and an object input",
                                   index, k);
            }
            if (!calls) calls = cJSON_AddArrayToObject(m, "tool_calls");
            cJSON_AddItemToArray(calls, lg_chat_tool_call(id, name,
                                                          input ? cJSON_Duplicate(input, 1)
                                                                : cJSON_CreateObject()));
        } else {
            lg_sbuf_free(&text);
            lg_sbuf_free(&thinking);
            return lg_req_fail(e, 400, NULL,
                               "messages.%d.content.%d: an assistant message takes text, thinking "
                               "and tool_use blocks (got '%.40s')",
                               index, k, type ? type : "no type");
        }
        k++;
    }
    cJSON_AddStringToObject(m, "content", text.p ? text.p : "");
    if (thinking.n) cJSON_AddStringToObject(m, "reasoning_content", thinking.p);
    bool failed = text.failed || thinking.failed;
    lg_sbuf_free(&text);
    lg_sbuf_free(&thinking);
    return failed ? lg_req_fail(e, 500, NULL, "out of memory") : 0;
}

static int convert_messages(const cJSON *body, cJSON *req, lg_req_error *e) {
    cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
    const cJSON *system = cJSON_GetObjectItemCaseSensitive(body, "system");
    if (system && !cJSON_IsNull(system)) {
        lg_sbuf s = {0};
        if (blocks_text(system, "system", &s, e)) {
            lg_sbuf_free(&s);
            return -1;
        }
        cJSON_AddStringToObject(new_message(msgs, "system"), "content", s.p ? s.p : "");
        lg_sbuf_free(&s);
    }
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!messages) return lg_req_fail(e, 400, "messages", "messages: Field required");
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
        return lg_req_fail(e, 400, "messages", "messages: must be a non-empty array");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role = str_field(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !role)
            return lg_req_fail(e, 400, "messages",
                               "messages.%d: must be an object with a string role", i);
        if (!cJSON_IsString(content) && !cJSON_IsArray(content))
            return lg_req_fail(e, 400, "messages",
                               "messages.%d.content: must be a string or an array of blocks", i);
        int rc;
        if (!strcmp(role, "user"))
            rc = user_message(msgs, content, i, e);
        else if (!strcmp(role, "assistant"))
            rc = assistant_message(msgs, content, i, e);
        else
            return lg_req_fail(e, 400, "messages",
                               "messages.%d.role: unknown role '%.40s' (user or assistant)", i,
                               role);
        if (rc) return -1;
        i++;
    }
    return 0;
}

static int convert_tools(const cJSON *body, cJSON *req, lg_req_error *e) {
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    if (!tools || cJSON_IsNull(tools)) return 0;
    if (!cJSON_IsArray(tools)) return lg_req_fail(e, 400, "tools", "tools: must be an array");
    cJSON *out = cJSON_AddArrayToObject(req, "tools");
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const char *type = str_field(t, "type"), *name = str_field(t, "name");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, "input_schema");
        const cJSON *desc = cJSON_GetObjectItemCaseSensitive(t, "description");
        if (type && strcmp(type, "custom"))
            return lg_req_fail(e, 400, "tools", "tools.%d: tool type '%.40s' is not supported", i,
                               type);
        if (!name || (schema && !cJSON_IsObject(schema)) || (desc && !cJSON_IsString(desc)))
            return lg_req_fail(e, 400, "tools",
                               "tools.%d: needs a string name, an optional string description "
                               "and an object input_schema",
                               i);
        cJSON_AddItemToArray(out, lg_chat_tool(name, desc ? desc->valuestring : NULL, schema));
        i++;
    }
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    if (!tc || cJSON_IsNull(tc)) return 0;
    const char *type = str_field(tc, "type");
    if (!type)
        return lg_req_fail(e, 400, "tool_choice", "tool_choice: must be an object with a type");
    if (!strcmp(type, "auto") || !strcmp(type, "none")) {
        cJSON_AddStringToObject(req, "tool_choice", type);
    } else if (!strcmp(type, "any")) {
        cJSON_AddStringToObject(req, "tool_choice", "required");
    } else if (!strcmp(type, "tool") && str_field(tc, "name")) {
        lg_chat_tool_choice_named(req, str_field(tc, "name"));
    } else {
        return lg_req_fail(e, 400, "tool_choice",
                           "tool_choice: type must be auto, any, none, or tool with a name");
    }
    return 0;
}

/* Fields that keep their name and meaning (their types are checked by lg_parse_chat). */
static void copy_field(const cJSON *body, cJSON *req, const char *from, const char *to) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, from);
    if (v) cJSON_AddItemToObject(req, to, cJSON_Duplicate(v, 1));
}

static cJSON *to_chat_request(const cJSON *body, bool count_only, lg_req_error *e) {
    cJSON *req = cJSON_CreateObject();
    if (!req) {
        lg_req_fail(e, 500, NULL, "out of memory");
        return NULL;
    }
    const cJSON *max_tokens = cJSON_GetObjectItemCaseSensitive(body, "max_tokens");
    if (!count_only && (!max_tokens || cJSON_IsNull(max_tokens))) {
        lg_req_fail(e, 400, "max_tokens", "max_tokens: Field required");
        goto fail;
    }
    if (!count_only) {
        copy_field(body, req, "max_tokens", "max_tokens");
        copy_field(body, req, "stream", "stream");
        copy_field(body, req, "temperature", "temperature");
        copy_field(body, req, "top_p", "top_p");
        copy_field(body, req, "top_k", "top_k");
        const cJSON *stops = cJSON_GetObjectItemCaseSensitive(body, "stop_sequences");
        if (stops && !cJSON_IsNull(stops) && !cJSON_IsArray(stops)) {
            lg_req_fail(e, 400, "stop_sequences", "stop_sequences: must be an array of strings");
            goto fail;
        }
        copy_field(body, req, "stop_sequences", "stop");
    }
    const cJSON *thinking = cJSON_GetObjectItemCaseSensitive(body, "thinking");
    if (thinking && !cJSON_IsNull(thinking)) {
        const char *type = str_field(thinking, "type");
        if (!type || (strcmp(type, "enabled") && strcmp(type, "disabled"))) {
            lg_req_fail(e, 400, "thinking",
                        "thinking: must be {\"type\": \"enabled\"} or {\"type\": \"disabled\"}");
            goto fail;
        }
        cJSON_AddBoolToObject(cJSON_AddObjectToObject(req, "chat_template_kwargs"),
                              "enable_thinking", !strcmp(type, "enabled"));
    }
    if (convert_messages(body, req, e) || convert_tools(body, req, e)) goto fail;
    return req;
fail:
    cJSON_Delete(req);
    return NULL;
}

int lg_parse_messages(lg_server *srv, const cJSON *body, bool count_only, lg_job *job,
                      lg_reply_info *info, lg_req_error *e) {
    if (!cJSON_IsObject(body))
        return lg_req_fail(e, 400, NULL, "the request body must be a JSON object");
    cJSON *req = to_chat_request(body, count_only, e);
    if (!req) return -1;
    int rc = lg_parse_chat(srv, req, job, info, e);
    cJSON_Delete(req);
    if (rc) return -1;
    info->api = LG_API_MESSAGES;
    const char *n = strchr(info->id, '-'); /* chatcmpl-N -> msg_N */
    char id[sizeof info->id];
    snprintf(id, sizeof id, "msg_%s", n ? n + 1 : "0");
    snprintf(info->id, sizeof info->id, "%s", id);
    return 0;
}
