/* The chat output parser (see chat_parser.h): a small state machine driven
 * by control-token ids, with a text scanner for the plain-text inside a tool
 * call. */
#include "server/chat_parser.h"

#include "server/buf.h"

#include "laguna_generate.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- event lists ------------------------------------------------------------ */

int lg_events_add(lg_event_list *l, lg_event_kind kind, int tool_index, const char *text,
                  size_t len) {
    if (l->n > 0 && (kind == LG_EV_CONTENT || kind == LG_EV_REASONING || kind == LG_EV_TOOL_ARGS)) {
        lg_event *last = &l->items[l->n - 1];
        if (last->kind == kind && last->tool_index == tool_index) {
            char *t = realloc(last->text, last->len + len + 1);
            if (!t) return -1;
            memcpy(t + last->len, text, len);
            last->len += len;
            t[last->len] = 0;
            last->text = t;
            return 0;
        }
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        lg_event *p = realloc(l->items, nc * sizeof *p);
        if (!p) return -1;
        l->items = p;
        l->cap = nc;
    }
    char *t = malloc(len + 1);
    if (!t) return -1;
    memcpy(t, text, len);
    t[len] = 0;
    l->items[l->n++] = (lg_event){kind, tool_index, t, len};
    return 0;
}

void lg_events_clear(lg_event_list *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].text);
    l->n = 0;
}

void lg_events_free(lg_event_list *l) {
    lg_events_clear(l);
    free(l->items);
    *l = (lg_event_list){0};
}

/* ---- the parser ------------------------------------------------------------- */

typedef enum { ST_CONTENT, ST_REASONING, ST_TOOL } parser_state;

struct lg_chat_parser {
    const laguna_tokenizer *tok;
    const cJSON *tools;
    laguna_detokenizer *detok;
    int32_t id_think, id_end_think, id_call, id_end_call;
    parser_state state;
    /* the current tool call */
    lg_sbuf body; /* text since <tool_call> */
    size_t scan;   /* where the next key/value pair starts in body */
    int name_done; /* the name was found (and announced, unless raw) */
    int raw;       /* unknown tool: the call goes out as content text */
    int n_pairs;   /* pairs emitted in this call */
    int n_calls;
    const cJSON *schema_props; /* the current tool's parameters.properties */
    char ws[64];               /* whitespace-only answer text held back: the newlines the */
    size_t n_ws;               /* templates put around tags are not content */
    int trim_lead;             /* drop newlines opening a block (after <think>, </think>) */
};

static int32_t token_id(const laguna_tokenizer *tok, const char *s) {
    return laguna_tokenizer_token_to_id(tok, s, strlen(s));
}

int lg_chat_parser_new(const laguna_tokenizer *tok, const cJSON *tools, bool in_reasoning,
                       lg_chat_parser **out) {
    lg_chat_parser *p = calloc(1, sizeof *p);
    if (!p || laguna_detokenizer_new(tok, true, &p->detok, NULL)) {
        free(p);
        return -1;
    }
    p->tok = tok;
    p->tools = tools;
    p->id_think = token_id(tok, "<think>");
    p->id_end_think = token_id(tok, "</think>");
    p->id_call = token_id(tok, "<tool_call>");
    p->id_end_call = token_id(tok, "</tool_call>");
    p->state = in_reasoning ? ST_REASONING : ST_CONTENT;
    p->trim_lead = 1;
    *out = p;
    return 0;
}

void lg_chat_parser_free(lg_chat_parser *p) {
    if (!p) return;
    laguna_detokenizer_free(p->detok);
    lg_sbuf_free(&p->body);
    free(p);
}

int lg_chat_parser_n_calls(const lg_chat_parser *p) {
    return p->n_calls;
}

bool lg_prompt_ends_in_think(const laguna_tokenizer *tok, const int32_t *ids, size_t n) {
    laguna_think_tokens think; /* the library's rule, which the chat uses too */
    return laguna_think_tokens_find(tok, &think, NULL) == LAGUNA_OK && laguna_think_open_at_end(&think, ids, n);
}

/* The tool named `name` in the request's tools, or NULL. */
static const cJSON *find_tool(const cJSON *tools, const char *name) {
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        if (!cJSON_IsObject(f)) f = t;
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(f, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return f;
    }
    return NULL;
}

static int is_space(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* Whether the schema gives `key` the type string (alone or among others). */
static int schema_says_string(const cJSON *props, const char *key) {
    const cJSON *prop = cJSON_GetObjectItemCaseSensitive(props, key);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(prop, "type");
    if (cJSON_IsString(type)) return !strcmp(type->valuestring, "string");
    const cJSON *t;
    cJSON_ArrayForEach(t,
                       type) if (cJSON_IsString(t) && !strcmp(t->valuestring, "string")) return 1;
    return 0;
}

/* The JSON text of one argument value: raw string for string-typed keys (or
 * when the value is not JSON), otherwise the parsed JSON. Heap string. */
static char *value_json(const cJSON *props, const char *key, const char *v, size_t len) {
    char *raw = strndup(v, len);
    if (!raw) return NULL;
    char *out = NULL;
    if (!schema_says_string(props, key)) {
        cJSON *j = cJSON_ParseWithOpts(raw, NULL, 1);
        if (j) out = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
    }
    if (!out) {
        cJSON *s = cJSON_CreateString(raw);
        out = s ? cJSON_PrintUnformatted(s) : NULL;
        cJSON_Delete(s);
    }
    free(raw);
    return out;
}

static int emit(lg_event_list *out, lg_event_kind k, int idx, const char *t, size_t len) {
    return len == 0 && k != LG_EV_TOOL_START && k != LG_EV_TOOL_END
               ? 0
               : lg_events_add(out, k, idx, t, len);
}

/* Looks in the call body for the name and complete key/value pairs. */
static int scan_call(lg_chat_parser *p, lg_event_list *out, int at_end) {
    int idx = p->n_calls - 1;
    if (!p->name_done) {
        size_t i = 0;
        while (i < p->body.n && p->body.p[i] != '\n' && p->body.p[i] != '<')
            i++;
        if (i == p->body.n && !at_end) return 0;
        size_t a = 0, b = i;
        while (a < b && is_space(p->body.p[a]))
            a++;
        while (b > a && is_space(p->body.p[b - 1]))
            b--;
        char *name = strndup(p->body.p + a, b - a);
        if (!name) return -1;
        const cJSON *tool = find_tool(p->tools, name);
        p->raw = cJSON_GetArraySize(p->tools) > 0 && !tool;
        if (p->raw) p->n_calls--; /* reported as text, not counted as a call */
        p->schema_props =
            tool ? cJSON_GetObjectItemCaseSensitive(
                       cJSON_GetObjectItemCaseSensitive(tool, "parameters"), "properties")
                 : NULL;
        p->name_done = 1;
        p->scan = p->raw ? 0 : i; /* raw: the name goes out as text too */
        int rc = p->raw ? emit(out, LG_EV_CONTENT, 0, "<tool_call>", 11)
                        : emit(out, LG_EV_TOOL_START, idx, name, strlen(name));
        free(name);
        if (rc) return -1;
    }
    if (p->raw) {
        if (emit(out, LG_EV_CONTENT, 0, p->body.p + p->scan, p->body.n - p->scan)) return -1;
        p->scan = p->body.n;
        return 0;
    }
    static const char K0[] = "<arg_key>", K1[] = "</arg_key>", V0[] = "<arg_value>",
                      V1[] = "</arg_value>";
    for (;;) {
        const char *s = p->body.p + p->scan, *end = p->body.p + p->body.n;
        while (s < end && is_space(*s))
            s++;
        if (s == end) return 0;
        size_t have = (size_t)(end - s);
        if (have < sizeof K0 - 1) {
            if (memcmp(s, K0, have)) p->scan = (size_t)(s - p->body.p) + 1; /* junk: skip it */
            if (memcmp(s, K0, have)) continue;
            return 0;
        }
        if (memcmp(s, K0, sizeof K0 - 1)) {
            p->scan = (size_t)(s - p->body.p) + 1;
            continue;
        }
        const char *k = s + sizeof K0 - 1;
        const char *ke = memmem(k, (size_t)(end - k), K1, sizeof K1 - 1);
        if (!ke) return 0;
        const char *v = ke + sizeof K1 - 1;
        while (v < end && is_space(*v))
            v++;
        if ((size_t)(end - v) < sizeof V0 - 1) return 0;
        if (memcmp(v, V0, sizeof V0 - 1)) {
            p->scan = (size_t)(v - p->body.p);
            continue;
        }
        v += sizeof V0 - 1;
        const char *ve = memmem(v, (size_t)(end - v), V1, sizeof V1 - 1);
        if (!ve) return 0;
        char *key = strndup(k, (size_t)(ke - k));
        char *val = key ? value_json(p->schema_props, key, v, (size_t)(ve - v)) : NULL;
        cJSON *ks = key ? cJSON_CreateString(key) : NULL;
        char *kjson = ks ? cJSON_PrintUnformatted(ks) : NULL;
        int rc = -1;
        if (val && kjson) {
            size_t n = strlen(kjson) + strlen(val) + 8;
            char *frag = malloc(n);
            if (frag) {
                snprintf(frag, n, "%s%s: %s", p->n_pairs ? ", " : "{", kjson, val);
                rc = emit(out, LG_EV_TOOL_ARGS, idx, frag, strlen(frag));
                free(frag);
            }
        }
        free(key);
        free(val);
        free(kjson);
        cJSON_Delete(ks);
        if (rc) return -1;
        p->n_pairs++;
        p->scan = (size_t)(ve + sizeof V1 - 1 - p->body.p);
    }
}

static int end_call(lg_chat_parser *p, lg_event_list *out) {
    if (scan_call(p, out, 1)) return -1;
    int idx = p->n_calls - 1, rc;
    if (p->raw)
        rc = emit(out, LG_EV_CONTENT, 0, "</tool_call>", 12);
    else
        rc = emit(out, LG_EV_TOOL_ARGS, idx, p->n_pairs ? "}" : "{}", p->n_pairs ? 1 : 2) ||
             emit(out, LG_EV_TOOL_END, idx, "", 0);
    p->state = ST_CONTENT;
    return rc ? -1 : 0;
}

static int append_body(lg_chat_parser *p, const char *t, size_t len) {
    lg_sbuf_add(&p->body, t, len);
    return p->body.failed ? -1 : 0;
}

/* Routes text to the current state's channel. */
static int route_text(lg_chat_parser *p, const char *t, size_t len, lg_event_list *out) {
    if (p->trim_lead && p->state != ST_TOOL) {
        while (len && (*t == '\n' || *t == '\r'))
            t++, len--;
        if (len) p->trim_lead = 0;
    }
    if (!len) return 0;
    if (p->state == ST_TOOL) return append_body(p, t, len) || scan_call(p, out, 0) ? -1 : 0;
    if (p->state == ST_REASONING) return emit(out, LG_EV_REASONING, 0, t, len);
    size_t k = 0;
    while (k < len && is_space(t[k]))
        k++;
    if (k == len && p->n_ws + len <= sizeof p->ws) { /* whitespace only: hold it */
        memcpy(p->ws + p->n_ws, t, len);
        p->n_ws += len;
        return 0;
    }
    if (p->n_ws && emit(out, LG_EV_CONTENT, 0, p->ws, p->n_ws)) return -1;
    p->n_ws = 0;
    return emit(out, LG_EV_CONTENT, 0, t, len);
}

static int flush_text(lg_chat_parser *p, lg_event_list *out) {
    const char *t;
    size_t len;
    if (laguna_detokenizer_flush(p->detok, &t, &len, NULL)) return -1;
    return route_text(p, t, len, out);
}

int lg_chat_parser_push(lg_chat_parser *p, int32_t id, lg_event_list *out) {
    int control = id >= 0 && (id == p->id_think || id == p->id_end_think || id == p->id_call ||
                              id == p->id_end_call);
    if (!control) {
        const char *t;
        size_t len;
        if (laguna_detokenizer_push(p->detok, id, &t, &len, NULL)) return -1;
        return route_text(p, t, len, out);
    }
    if (flush_text(p, out)) return -1;
    if (id == p->id_call) {
        p->n_ws = 0; /* whitespace before a call is layout */
        if (p->state == ST_TOOL && end_call(p, out)) return -1; /* a call left open */
        p->state = ST_TOOL;
        p->body.n = p->scan = 0;
        p->name_done = p->raw = p->n_pairs = 0;
        p->schema_props = NULL;
        p->n_calls++;
        return 0;
    }
    if (id == p->id_end_call) {
        p->trim_lead = 1;
        return p->state == ST_TOOL ? end_call(p, out) : 0;
    }
    if (p->state == ST_TOOL) return 0; /* think tags inside a call: dropped */
    p->state = id == p->id_think ? ST_REASONING : ST_CONTENT;
    p->trim_lead = 1;
    return 0;
}

int lg_chat_parser_finish(lg_chat_parser *p, lg_event_list *out) {
    if (flush_text(p, out)) return -1;
    return p->state == ST_TOOL ? end_call(p, out) : 0;
}
