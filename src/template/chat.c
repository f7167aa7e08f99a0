/* The public chat-template API: compile, render with a context (cJSON or
 * JSON text), and apply to an OpenAI-style request. One render owns one arena
 * and one output buffer; errors longjmp back to guarded_render, which frees
 * both and reports the message. */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "template/chat.h"
#include "template/json.h"

#define MAX_JSON_DEPTH 256

laguna_status laguna_chat_template_compile(const char *source, size_t source_len, const char *name,
                                           const char *base_dir, laguna_chat_template **out,
                                           laguna_error *err) {
    *out = NULL;
    if (!source) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "chat template: no source given");
    laguna_chat_template *t = calloc(1, sizeof *t);
    if (!t) return lg_fail(err, LAGUNA_ERR_NOMEM, "chat template: out of memory");
    char why[480];
    if (!jt_template_compile(source, source_len, name ? name : "chat_template", base_dir, &t->tmpl,
                             why, sizeof why)) {
        free(t);
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s", why);
    }
    *out = t;
    return LAGUNA_OK;
}

void laguna_chat_template_free(laguna_chat_template *t) {
    if (!t) return;
    jt_template_free(t->tmpl);
    jt_template_free(t->tool_use);
    for (size_t i = 0; i < t->n_tokens; i++) {
        free(t->token_names[i]);
        free(t->token_values[i]);
    }
    free(t);
}

laguna_status lg_chat_set_token(laguna_chat_template *t, const char *name, const char *value,
                                laguna_error *err) {
    for (size_t i = 0; i < t->n_tokens; i++)
        if (!strcmp(t->token_names[i], name)) {
            char *v = strdup(value);
            if (!v) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
            free(t->token_values[i]);
            t->token_values[i] = v;
            return LAGUNA_OK;
        }
    if (t->n_tokens == LG_CHAT_MAX_TOKENS) return LAGUNA_OK; /* only the standard few are kept */
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    t->token_names[t->n_tokens] = n;
    t->token_values[t->n_tokens] = v;
    t->n_tokens++;
    return LAGUNA_OK;
}

const char *laguna_chat_template_token(const laguna_chat_template *t, const char *name) {
    for (size_t i = 0; t && i < t->n_tokens; i++)
        if (!strcmp(t->token_names[i], name)) return t->token_values[i];
    return NULL;
}

void laguna_chat_template_set_limits(laguna_chat_template *t, const laguna_chat_limits *limits) {
    if (t && limits) t->limits = *limits;
}

/* ---- rendering ------------------------------------------------------------------- */

typedef enum { CTX_CJSON, CTX_JSON_TEXT, CTX_REQUEST } ctx_kind;

typedef struct {
    ctx_kind kind;
    const cJSON *cjson;
    const char *text;
    size_t len;
} ctx_source;

static void render_arena_fail(void *ctx, const char *why) { jt_raise(ctx, "%s", why); }

static jt_value parse_json_or_raise(jt_vm *vm, const char *text, size_t len, const char *what) {
    jt_value v;
    char why[200];
    if (!jt_json_parse(vm->arena, text, len, MAX_JSON_DEPTH, &v, why, sizeof why))
        jt_raise(vm, "%s is not valid JSON: %s", what, why);
    return v;
}

/* OpenAI clients send tool-call arguments as a JSON string; templates expect
 * the object (they iterate `arguments|items`), so servers decode it first. */
static jt_value decode_tool_arguments(jt_vm *vm, jt_value messages) {
    if (messages.kind != JT_LIST) return messages;
    for (size_t i = 0; i < messages.as.l->n; i++) {
        jt_value m = messages.as.l->items[i];
        const jt_value *calls = m.kind == JT_DICT ? jt_dict_get_c(m.as.d, "tool_calls") : NULL;
        if (!calls || calls->kind != JT_LIST) continue;
        for (size_t k = 0; k < calls->as.l->n; k++) {
            jt_value call = calls->as.l->items[k];
            const jt_value *fn = call.kind == JT_DICT ? jt_dict_get_c(call.as.d, "function") : NULL;
            if (!fn || fn->kind != JT_DICT) continue;
            const jt_value *args = jt_dict_get_c(fn->as.d, "arguments");
            if (!args || args->kind != JT_STR) continue;
            jt_value parsed;
            char why[100];
            if (jt_json_parse(vm->arena, jt_sdata(*args), jt_slen(*args), MAX_JSON_DEPTH, &parsed, why,
                              sizeof why) &&
                parsed.kind == JT_DICT)
                jt_dict_set(vm->arena, fn->as.d, jt_str_cstr(vm->arena, "arguments"), parsed);
        }
    }
    return messages;
}

static void bind_dict(jt_vm *vm, jt_scope *root, jt_value d) {
    for (size_t i = 0; i < d.as.d->n; i++) {
        jt_value k = d.as.d->keys[i];
        if (k.kind == JT_STR) jt_scope_set(vm, root, jt_sdata(k), d.as.d->vals[i]);
    }
}

/* Fills the root scope as transformers' render call does. */
static void bind_context(jt_vm *vm, jt_scope *root, const laguna_chat_template *t, const ctx_source *src) {
    for (size_t i = 0; i < t->n_tokens; i++)
        jt_scope_set(vm, root, t->token_names[i], jt_str_cstr(vm->arena, t->token_values[i]));
    jt_value ctx;
    if (src->kind == CTX_CJSON) {
        if (!cJSON_IsObject(src->cjson)) jt_raise(vm, "the render context must be a JSON object");
        if (!jt_from_cjson(vm->arena, src->cjson, MAX_JSON_DEPTH, &ctx)) jt_raise(vm, "context JSON nested too deeply");
        bind_dict(vm, root, ctx);
        return;
    }
    const char *what = src->kind == CTX_REQUEST ? "the chat request" : "the render context";
    ctx = parse_json_or_raise(vm, src->text, src->len, what);
    if (ctx.kind != JT_DICT) jt_raise(vm, "%s must be a JSON object", what);
    if (src->kind == CTX_JSON_TEXT) {
        bind_dict(vm, root, ctx);
        return;
    }
    const jt_value *messages = jt_dict_get_c(ctx.as.d, "messages");
    if (!messages || messages->kind != JT_LIST) jt_raise(vm, "the chat request needs a \"messages\" list");
    const jt_value *tools = jt_dict_get_c(ctx.as.d, "tools");
    const jt_value *agp = jt_dict_get_c(ctx.as.d, "add_generation_prompt");
    const jt_value *kwargs = jt_dict_get_c(ctx.as.d, "chat_template_kwargs");
    const jt_value *documents = jt_dict_get_c(ctx.as.d, "documents");
    jt_scope_set(vm, root, "messages", decode_tool_arguments(vm, *messages));
    jt_scope_set(vm, root, "tools", tools ? *tools : jt_none());
    jt_scope_set(vm, root, "documents", documents ? *documents : jt_none());
    jt_scope_set(vm, root, "add_generation_prompt", agp ? *agp : jt_bool(true));
    if (kwargs && kwargs->kind == JT_DICT) bind_dict(vm, root, *kwargs);
    else if (kwargs && kwargs->kind != JT_NONE) jt_raise(vm, "chat_template_kwargs must be an object");
}

typedef struct {
    const laguna_chat_template *t;
    const ctx_source *src;
    jt_vm *vm;
    jt_out *out;
} render_job;

static bool __attribute__((noinline)) guarded_render(render_job *job) {
    jmp_buf jmp;
    job->vm->jmp = &jmp;
    if (setjmp(jmp)) return false;
    jt_scope *root = jt_scope_new(job->vm, NULL);
    bind_context(job->vm, root, job->t, job->src);
    job->vm->line = 0;
    /* transformers picks a named "tool_use" template when tools are passed */
    const jt_template *tmpl = job->t->tmpl;
    if (job->t->tool_use) {
        jt_value tools = jt_lookup(job->vm, root, "tools");
        if (tools.kind != JT_NONE && tools.kind != JT_UNDEF) tmpl = job->t->tool_use;
    }
    job->vm->tmpl = tmpl;
    jt_exec_body(job->vm, root, &tmpl->body);
    return true;
}

static laguna_status render(const laguna_chat_template *t, const ctx_source *src, char **out,
                            size_t *out_len, laguna_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "chat template: no template given");
    const laguna_chat_limits *l = &t->limits;
    char error[512] = "";
    jt_arena arena;
    jt_out output = {.heap = true};
    jt_vm vm = {
        .arena = &arena,
        .error = error,
        .error_size = sizeof error,
        .tmpl = t->tmpl,
        .out = &output,
        .limits = {l->max_output_bytes ? l->max_output_bytes : (size_t)16 << 20,
                   l->max_depth > 0 ? l->max_depth : 64, l->max_steps ? l->max_steps : 20000000},
    };
    jt_arena_init(&arena, l->max_memory_bytes ? l->max_memory_bytes : (size_t)256 << 20,
                  render_arena_fail, &vm);
    render_job job = {t, src, &vm, &output};
    bool ok = guarded_render(&job);
    jt_arena_free(&arena);
    for (size_t i = 0; i < vm.n_included; i++) jt_template_free(vm.included[i]);
    free(vm.included);
    if (!ok) {
        free(output.data);
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "%s", error);
    }
    if (!output.data) {
        output.data = calloc(1, 1);
        if (!output.data) return lg_fail(err, LAGUNA_ERR_NOMEM, "chat template: out of memory");
    }
    *out = output.data;
    if (out_len) *out_len = output.len;
    return LAGUNA_OK;
}

laguna_status lg_chat_template_render_cjson(const laguna_chat_template *t, const cJSON *context,
                                            char **out, size_t *out_len, laguna_error *err) {
    ctx_source src = {.kind = CTX_CJSON, .cjson = context};
    return render(t, &src, out, out_len, err);
}

laguna_status laguna_chat_template_render_json(const laguna_chat_template *t, const char *context_json,
                                               size_t len, char **out, size_t *out_len,
                                               laguna_error *err) {
    if (!context_json) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "chat template: no context given");
    ctx_source src = {.kind = CTX_JSON_TEXT, .text = context_json, .len = len};
    return render(t, &src, out, out_len, err);
}

laguna_status laguna_chat_template_apply(const laguna_chat_template *t, const char *request_json,
                                         size_t len, char **out, size_t *out_len, laguna_error *err) {
    if (!request_json) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "chat template: no request given");
    ctx_source src = {.kind = CTX_REQUEST, .text = request_json, .len = len};
    return render(t, &src, out, out_len, err);
}
