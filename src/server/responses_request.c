/* OpenAI Responses requests (POST /v1/responses, the API Codex-style agents
 * speak) turned into the chat request that request.c parses and the chat
 * template renders, as anthropic_request.c does for /v1/messages.
 *
 * The mapping: `instructions` becomes the first system message; `input` is
 * a string (one user message) or a list of items in conversation order:
 * messages (role user, system, developer or assistant; content a string or
 * input_text / output_text parts), function_call items (call_id, name,
 * arguments as a JSON string) become tool_calls of the assistant message they
 * follow (or of a new one), function_call_output items (call_id, output)
 * tool messages, and reasoning items (summary / content text) the
 * reasoning_content of the assistant message after them. `tools` of type
 * function ({name, description, parameters}) become chat tools; hosted tool
 * types (web_search, file_search, ...) are left out, as this server has none.
 * `tool_choice`, `max_output_tokens`, `temperature`, `top_p`, `stream` and
 * `chat_template_kwargs` carry over; `reasoning.effort` "none" or "minimal"
 * turns the template's thinking off, any other effort on (absent: the
 * template's default); `text.format` json_object and json_schema become the
 * chat request's response_format (structured output). Nothing is stored, so `previous_response_id` is a 400
 * that says to send the whole conversation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static const char *str_field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *new_message(cJSON *msgs, const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content ? content : "");
    cJSON_AddItemToArray(msgs, m);
    return m;
}

/* Appends the text of field `field` (c) of input item `item` to *out: a
 * message's content, a call's output, a reasoning item's summary or
 * content; a string, or parts of the text types (input_text, output_text,
 * text; also summary_text and reasoning_text in reasoning items) joined as
 * they are. On an error *out is freed (and empty) and e says why. */
static int parts_text(const cJSON *c, int item, const char *field, lg_sbuf *out, lg_req_error *e) {
    int rc = 0, i = 0;
    const cJSON *p;
    if (cJSON_IsString(c)) {
        lg_sbuf_str(out, c->valuestring);
    } else if (!cJSON_IsArray(c)) {
        rc = lg_req_fail(e, 400, "input", "input[%d].%s must be a string or an array of text parts",
                         item, field);
    } else {
        cJSON_ArrayForEach(p, c) {
            const char *type = str_field(p, "type"), *text = str_field(p, "text");
            bool texty = type && (!strcmp(type, "input_text") || !strcmp(type, "output_text") ||
                                  !strcmp(type, "text") || !strcmp(type, "summary_text") ||
                                  !strcmp(type, "reasoning_text"));
            if (!texty || !text) {
                rc = lg_req_fail(e, 400, "input",
                                 "input[%d].%s[%d]: only text parts are supported (got '%.40s')",
                                 item, field, i, type ? type : "no type");
                break;
            }
            lg_sbuf_str(out, text);
            i++;
        }
    }
    if (!rc && out->failed) rc = lg_req_fail(e, 500, NULL, "out of memory");
    if (rc) {
        lg_sbuf_free(out);
        *out = (lg_sbuf){0};
    }
    return rc;
}

/* The assistant message a function_call or reasoning item belongs to: the
 * last message when it is an assistant one that has no tool results after
 * it, else a new, empty one. */
static cJSON *assistant_for(cJSON *msgs) {
    cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    const char *role = last ? str_field(last, "role") : NULL;
    if (role && !strcmp(role, "assistant")) return last;
    return new_message(msgs, "assistant", "");
}

/* Reasoning text waiting for the assistant message that follows it. */
typedef struct {
    lg_sbuf text;
} pending_reasoning;

static void attach_reasoning(cJSON *assistant, pending_reasoning *r) {
    if (!r->text.n) return;
    cJSON_DeleteItemFromObjectCaseSensitive(assistant, "reasoning_content");
    cJSON_AddStringToObject(assistant, "reasoning_content", r->text.p);
    lg_sbuf_free(&r->text);
    r->text = (lg_sbuf){0};
}

static int message_item(cJSON *msgs, const cJSON *it, int i, pending_reasoning *r,
                        lg_req_error *e) {
    const char *role = str_field(it, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
    if (!role)
        return lg_req_fail(e, 400, "input", "input[%d]: a message needs a string role", i);
    if (strcmp(role, "user") && strcmp(role, "system") && strcmp(role, "developer") &&
        strcmp(role, "assistant"))
        return lg_req_fail(e, 400, "input",
                           "input[%d]: unknown role '%.40s' (user, system, developer or assistant)",
                           i, role);
    lg_sbuf text = {0};
    if (parts_text(content, i, "content", &text, e)) return -1;
    if (!strcmp(role, "assistant")) {
        cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
        const char *last_role = last ? str_field(last, "role") : NULL;
        cJSON *m;
        if (last_role && !strcmp(last_role, "assistant") && !cJSON_GetObjectItem(last, "tool_calls")) {
            m = last; /* more text of the same turn */
            lg_sbuf joined = {0};
            lg_sbuf_str(&joined, str_field(m, "content") ? str_field(m, "content") : "");
            lg_sbuf_str(&joined, text.p ? text.p : "");
            cJSON_ReplaceItemInObjectCaseSensitive(m, "content",
                                                   cJSON_CreateString(joined.p ? joined.p : ""));
            lg_sbuf_free(&joined);
        } else {
            m = new_message(msgs, "assistant", text.p);
        }
        attach_reasoning(m, r);
    } else {
        new_message(msgs, !strcmp(role, "developer") ? "system" : role, text.p);
        lg_sbuf_free(&r->text); /* reasoning not followed by its answer belongs to no message */
        r->text = (lg_sbuf){0};
    }
    lg_sbuf_free(&text);
    return 0;
}

static int function_call_item(cJSON *msgs, const cJSON *it, int i, pending_reasoning *r,
                              lg_req_error *e) {
    const char *call_id = str_field(it, "call_id"), *name = str_field(it, "name");
    const char *args = str_field(it, "arguments");
    if (!call_id || !name || !args)
        return lg_req_fail(e, 400, "input",
                           "input[%d]: a function_call needs string call_id, name and arguments",
                           i);
    cJSON *m = assistant_for(msgs);
    attach_reasoning(m, r);
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (!calls) calls = cJSON_AddArrayToObject(m, "tool_calls");
    cJSON_AddItemToArray(calls, lg_chat_tool_call(call_id, name, cJSON_CreateString(args)));
    return 0;
}

static int function_output_item(cJSON *msgs, const cJSON *it, int i, lg_req_error *e) {
    const char *call_id = str_field(it, "call_id");
    const cJSON *output = cJSON_GetObjectItemCaseSensitive(it, "output");
    if (!call_id || !output)
        return lg_req_fail(e, 400, "input",
                           "input[%d]: a function_call_output needs a string call_id and an output",
                           i);
    lg_sbuf text = {0};
    if (parts_text(output, i, "output", &text, e)) return -1;
    cJSON *m = new_message(msgs, "tool", text.p);
    cJSON_AddStringToObject(m, "tool_call_id", call_id);
    lg_sbuf_free(&text);
    return 0;
}

static int reasoning_item(const cJSON *it, int i, pending_reasoning *r, lg_req_error *e) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
    const cJSON *summary = cJSON_GetObjectItemCaseSensitive(it, "summary");
    /* the full reasoning where the client kept it, else its summary */
    const cJSON *use = content && cJSON_GetArraySize(content) > 0 ? content : summary;
    if (!use || cJSON_IsNull(use)) return 0;
    return parts_text(use, i, use == content ? "content" : "summary", &r->text, e);
}

static int convert_input(const cJSON *body, cJSON *req, lg_req_error *e) {
    cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
    const cJSON *instr = cJSON_GetObjectItemCaseSensitive(body, "instructions");
    if (instr && !cJSON_IsNull(instr)) {
        if (!cJSON_IsString(instr))
            return lg_req_fail(e, 400, "instructions", "'instructions' must be a string");
        new_message(msgs, "system", instr->valuestring);
    }
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(body, "input");
    if (!input || cJSON_IsNull(input)) return lg_req_fail(e, 400, "input", "'input' is required");
    if (cJSON_IsString(input)) {
        new_message(msgs, "user", input->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(input) || cJSON_GetArraySize(input) == 0)
        return lg_req_fail(e, 400, "input", "'input' must be a string or a non-empty array of items");
    pending_reasoning r = {0};
    int i = 0, rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, input) {
        const char *type = cJSON_IsObject(it) ? str_field(it, "type") : NULL;
        if (!cJSON_IsObject(it))
            rc = lg_req_fail(e, 400, "input", "input[%d] must be an object", i);
        else if (!type || !strcmp(type, "message"))
            rc = message_item(msgs, it, i, &r, e);
        else if (!strcmp(type, "function_call"))
            rc = function_call_item(msgs, it, i, &r, e);
        else if (!strcmp(type, "function_call_output"))
            rc = function_output_item(msgs, it, i, e);
        else if (!strcmp(type, "reasoning"))
            rc = reasoning_item(it, i, &r, e);
        else
            rc = lg_req_fail(e, 400, "input", "input[%d]: item type '%.40s' is not supported", i,
                             type);
        if (rc) break;
        i++;
    }
    lg_sbuf_free(&r.text); /* reasoning with no assistant message after it shows nothing */
    return rc;
}

static int convert_tools(const cJSON *body, cJSON *req, lg_req_error *e) {
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    if (tools && !cJSON_IsNull(tools)) {
        if (!cJSON_IsArray(tools)) return lg_req_fail(e, 400, "tools", "'tools' must be an array");
        cJSON *out = cJSON_AddArrayToObject(req, "tools");
        int i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, tools) {
            const char *type = str_field(t, "type"), *name = str_field(t, "name");
            const cJSON *params = cJSON_GetObjectItemCaseSensitive(t, "parameters");
            const cJSON *desc = cJSON_GetObjectItemCaseSensitive(t, "description");
            if (!type) return lg_req_fail(e, 400, "tools", "tools[%d] needs a string type", i);
            if (strcmp(type, "function")) { /* a hosted tool: this server has none */
                i++;
                continue;
            }
            if (!name || (params && !cJSON_IsNull(params) && !cJSON_IsObject(params)) ||
                (desc && !cJSON_IsNull(desc) && !cJSON_IsString(desc)))
                return lg_req_fail(e, 400, "tools",
                                   "tools[%d]: a function needs a string name, an optional string "
                                   "description and an object parameters",
                                   i);
            cJSON_AddItemToArray(out, lg_chat_tool(name, cJSON_IsString(desc) ? desc->valuestring : NULL,
                                                   cJSON_IsObject(params) ? params : NULL));
            i++;
        }
    }
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    if (!tc || cJSON_IsNull(tc)) return 0;
    if (cJSON_IsString(tc) && (!strcmp(tc->valuestring, "auto") || !strcmp(tc->valuestring, "none") ||
                               !strcmp(tc->valuestring, "required"))) {
        cJSON_AddStringToObject(req, "tool_choice", tc->valuestring);
        return 0;
    }
    const char *type = str_field(tc, "type"), *name = str_field(tc, "name");
    if (type && !strcmp(type, "function") && name) {
        lg_chat_tool_choice_named(req, name);
        return 0;
    }
    return lg_req_fail(e, 400, "tool_choice",
                       "'tool_choice' must be auto, none, required or {\"type\": \"function\", "
                       "\"name\": ...}");
}

/* reasoning.effort into the template's enable_thinking; text.format into
 * the chat API's response_format. */
static int convert_options(const cJSON *body, cJSON *req, lg_req_error *e) {
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(body, "previous_response_id");
    if (prev && !cJSON_IsNull(prev))
        return lg_req_fail(e, 400, "previous_response_id",
                           "this server keeps no responses: send the whole conversation in 'input' "
                           "instead of 'previous_response_id'");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(body, "text");
    const cJSON *format = cJSON_IsObject(text) ? cJSON_GetObjectItemCaseSensitive(text, "format") : NULL;
    const char *ftype = format ? str_field(format, "type") : NULL;
    if (text && !cJSON_IsNull(text) && !cJSON_IsObject(text))
        return lg_req_fail(e, 400, "text", "'text' must be an object");
    if (format && !cJSON_IsNull(format) && !ftype)
        return lg_req_fail(e, 400, "text.format", "'text.format' must be an object with a string 'type'");
    if (ftype && !strcmp(ftype, "json_object")) {
        cJSON_AddStringToObject(cJSON_AddObjectToObject(req, "response_format"), "type", "json_object");
    } else if (ftype && !strcmp(ftype, "json_schema")) { /* the chat API's shape: the schema one level down */
        cJSON *rf = cJSON_AddObjectToObject(req, "response_format"), *js;
        cJSON_AddStringToObject(rf, "type", "json_schema");
        js = cJSON_AddObjectToObject(rf, "json_schema");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(format, "schema");
        if (schema) cJSON_AddItemToObject(js, "schema", cJSON_Duplicate(schema, 1));
    } else if (ftype && strcmp(ftype, "text")) {
        return lg_req_fail(e, 400, "text.format", "'text.format' type must be text, json_object or json_schema (got '%.40s')",
                           ftype);
    }
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(body, "chat_template_kwargs");
    if (kw && !cJSON_IsNull(kw)) cJSON_AddItemToObject(req, "chat_template_kwargs", cJSON_Duplicate(kw, 1));
    const cJSON *reasoning = cJSON_GetObjectItemCaseSensitive(body, "reasoning");
    if (!reasoning || cJSON_IsNull(reasoning)) return 0;
    if (!cJSON_IsObject(reasoning))
        return lg_req_fail(e, 400, "reasoning", "'reasoning' must be an object");
    const cJSON *effort = cJSON_GetObjectItemCaseSensitive(reasoning, "effort");
    if (!effort || cJSON_IsNull(effort)) return 0;
    if (!cJSON_IsString(effort))
        return lg_req_fail(e, 400, "reasoning.effort", "'reasoning.effort' must be a string");
    const char *v = effort->valuestring;
    if (strcmp(v, "none") && strcmp(v, "minimal") && strcmp(v, "low") && strcmp(v, "medium") &&
        strcmp(v, "high") && strcmp(v, "xhigh"))
        return lg_req_fail(e, 400, "reasoning.effort",
                           "'reasoning.effort' must be none, minimal, low, medium or high");
    cJSON *k = cJSON_GetObjectItemCaseSensitive(req, "chat_template_kwargs");
    if (!cJSON_IsObject(k)) {
        cJSON_DeleteItemFromObjectCaseSensitive(req, "chat_template_kwargs");
        k = cJSON_AddObjectToObject(req, "chat_template_kwargs");
    }
    if (!cJSON_GetObjectItemCaseSensitive(k, "enable_thinking")) /* an explicit kwarg wins */
        cJSON_AddBoolToObject(k, "enable_thinking", strcmp(v, "none") && strcmp(v, "minimal"));
    return 0;
}

static void copy_field(const cJSON *body, cJSON *req, const char *from, const char *to) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, from);
    if (v) cJSON_AddItemToObject(req, to, cJSON_Duplicate(v, 1));
}

int lg_parse_responses(lg_server *srv, const cJSON *body, lg_job *job, lg_reply_info *info,
                       lg_req_error *e) {
    if (!cJSON_IsObject(body))
        return lg_req_fail(e, 400, NULL, "the request body must be a JSON object");
    cJSON *req = cJSON_CreateObject();
    if (!req) return lg_req_fail(e, 500, NULL, "out of memory");
    const cJSON *mot = cJSON_GetObjectItemCaseSensitive(body, "max_output_tokens");
    if (mot && !cJSON_IsNull(mot) && (!cJSON_IsNumber(mot) || mot->valuedouble < 1)) {
        cJSON_Delete(req);
        return lg_req_fail(e, 400, "max_output_tokens",
                           "'max_output_tokens' must be a positive integer");
    }
    copy_field(body, req, "max_output_tokens", "max_tokens");
    copy_field(body, req, "stream", "stream");
    copy_field(body, req, "temperature", "temperature");
    copy_field(body, req, "top_p", "top_p");
    int rc = convert_options(body, req, e) || convert_input(body, req, e) ||
             convert_tools(body, req, e);
    if (!rc) rc = lg_parse_chat(srv, req, job, info, e);
    cJSON_Delete(req);
    if (rc) return -1;
    info->api = LG_API_RESPONSES;
    if (job->max_tokens < srv->n_ctx) info->max_output_tokens = job->max_tokens;
    const char *n = strchr(info->id, '-'); /* chatcmpl-N -> resp_N */
    char id[sizeof info->id];
    snprintf(id, sizeof id, "resp_%s", n ? n + 1 : "0");
    snprintf(info->id, sizeof info->id, "%s", id);
    return 0;
}
