/* Statement execution: output, if, for (loop variable, filters, else, break
 * and continue, recursion), set (names, tuples, namespace attributes, block
 * set), macros and {% call %}, include, with, filter blocks. Also the scopes
 * the statements create, following Jinja2's rules: a for loop body gets a
 * fresh scope per iteration (so `set` inside a loop does not survive it,
 * which is why templates use namespace()), `if` gets none, macros see the
 * scope they were defined in. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file_util.h"
#include "template/interp.h"

enum { FLOW_NEXT = 0, FLOW_BREAK, FLOW_CONTINUE };

_Noreturn void jt_raise(jt_vm *vm, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(vm->error, vm->error_size, "%s line %d: %s", vm->tmpl ? vm->tmpl->name : "template",
             vm->line, msg);
    longjmp(*vm->jmp, 1);
}

void jt_step(jt_vm *vm) {
    if (++vm->steps > vm->limits.max_steps)
        jt_raise(vm, "template ran for more than %llu steps (runaway loop?)",
                 (unsigned long long)vm->limits.max_steps);
}

/* ---- scopes ----------------------------------------------------------------------- */

jt_scope *jt_scope_new(jt_vm *vm, jt_scope *parent) {
    jt_scope *s = jt_alloc(vm->arena, sizeof *s);
    s->parent = parent;
    return s;
}

void jt_scope_set(jt_vm *vm, jt_scope *s, const char *name, jt_value v) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) {
            s->vals[i] = v;
            return;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        const char **names = jt_alloc(vm->arena, cap * sizeof *names);
        jt_value *vals = jt_alloc(vm->arena, cap * sizeof *vals);
        if (s->n) {
            memcpy(names, s->names, s->n * sizeof *names);
            memcpy(vals, s->vals, s->n * sizeof *vals);
        }
        s->names = names;
        s->vals = vals;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = v;
    s->n++;
}

jt_value jt_lookup(jt_vm *vm, jt_scope *s, const char *name) {
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (s->names[i][0] == name[0] && !strcmp(s->names[i], name)) return s->vals[i];
    bool found;
    jt_value g = jt_global(vm, name, &found);
    if (found) return g;
    return jt_undef_named(vm->arena, name);
}

/* ---- output ----------------------------------------------------------------------- */

void jt_emit(jt_vm *vm, const char *s, size_t n) {
    if (n == 0) return;
    vm->out_total += n;
    if (vm->out_total > vm->limits.max_output_bytes)
        jt_raise(vm, "rendered output exceeds %zu bytes", vm->limits.max_output_bytes);
    jt_out *o = vm->out;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        while (cap < o->len + n + 1) cap *= 2;
        char *data;
        if (o->heap) {
            data = realloc(o->data, cap);
            if (!data) jt_raise(vm, "out of memory");
        } else {
            data = jt_alloc(vm->arena, cap);
            if (o->len) memcpy(data, o->data, o->len);
        }
        o->data = data;
        o->cap = cap;
    }
    memcpy(o->data + o->len, s, n);
    o->len += n;
    o->data[o->len] = 0;
}

static int exec_nodes(jt_vm *vm, jt_scope *scope, const jt_nodes *body);

/* Renders body into a string instead of the output. */
static jt_value capture(jt_vm *vm, jt_scope *scope, const jt_nodes *body) {
    jt_out buf = {0};
    jt_out *saved = vm->out;
    vm->out = &buf;
    exec_nodes(vm, scope, body);
    vm->out = saved;
    return jt_str_new(vm->arena, buf.data ? buf.data : "", buf.len);
}

static void enter_call(jt_vm *vm, const char *what) {
    if (++vm->depth > vm->limits.max_depth)
        jt_raise(vm, "maximum recursion depth exceeded in %s", what);
}

/* ---- assignment --------------------------------------------------------------------- */

static void assign(jt_vm *vm, jt_scope *scope, const jt_node *target, jt_value v) {
    if (target->kind == N_NAME) {
        jt_scope_set(vm, scope, target->name, v);
    } else if (target->kind == N_NSREF) {
        jt_value ns = jt_lookup(vm, scope, target->name);
        if (ns.kind != JT_NS) jt_raise(vm, "cannot assign attribute on non-namespace object");
        jt_dict_set(vm->arena, ns.as.d, jt_str_cstr(vm->arena, target->attr), v);
    } else { /* tuple of names */
        jt_value items = jt_iterate(vm, v);
        size_t want = target->args.n, got = items.as.l->n;
        if (got < want)
            jt_raise(vm, "not enough values to unpack (expected %zu, got %zu)", want, got);
        if (got > want) jt_raise(vm, "too many values to unpack (expected %zu)", want);
        for (size_t i = 0; i < want; i++) assign(vm, scope, target->args.v[i], items.as.l->items[i]);
    }
}

/* ---- macros ----------------------------------------------------------------------- */

jt_value jt_call_macro(jt_vm *vm, const jt_func *fn, const jt_args *args) {
    const jt_node *m = fn->node;
    const char *name = fn->name;
    size_t n_params = m->args.n, n_defaults = m->kwargs.n;
    enter_call(vm, name);
    jt_scope *scope = jt_scope_new(vm, fn->closure);
    jt_list_builder extra;
    jt_lb_init(&extra, vm->arena);
    for (size_t i = n_params; i < args->n; i++) jt_lb_push(&extra, args->pos[i]);
    if (extra.n && !(m->op & MACRO_USES_VARARGS))
        jt_raise(vm, "macro '%s' takes not more than %zu argument(s)", name, n_params);
    jt_value kwargs = jt_dict_new(vm->arena, 0);
    bool have_caller = false;
    for (size_t k = 0; k < args->n_kw; k++) {
        const char *kw = args->kw_names[k];
        bool is_param = false;
        for (size_t i = 0; i < n_params; i++)
            if (!strcmp(m->args.v[i]->name, kw)) {
                is_param = true;
                if (i < args->n) jt_raise(vm, "macro '%s' got multiple values for argument '%s'", name, kw);
            }
        if (is_param) continue;
        if (!strcmp(kw, "caller")) {
            jt_scope_set(vm, scope, "caller", args->kw_vals[k]);
            have_caller = true;
            continue;
        }
        if (!(m->op & MACRO_USES_KWARGS))
            jt_raise(vm, "macro '%s' takes no keyword argument '%s'", name, kw);
        jt_dict_set(vm->arena, kwargs.as.d, jt_str_cstr(vm->arena, kw), args->kw_vals[k]);
    }
    if (!have_caller && (m->op & MACRO_USES_CALLER) && m->kind == N_MACRO)
        jt_scope_set(vm, scope, "caller", jt_undef_named(vm->arena, "caller"));
    for (size_t i = 0; i < n_params; i++) {
        const char *p = m->args.v[i]->name;
        bool given;
        jt_value v = jt_arg(args, i, p, jt_none(), &given);
        if (!given) {
            if (i >= n_params - n_defaults) v = jt_eval(vm, scope, m->kwargs.v[i - (n_params - n_defaults)]);
            else {
                char msg[160];
                snprintf(msg, sizeof msg, "parameter '%s' was not provided", p);
                v = jt_undef_msg(vm->arena, jt_strndup(vm->arena, msg, strlen(msg)));
            }
        }
        jt_scope_set(vm, scope, p, v);
    }
    jt_scope_set(vm, scope, "varargs", jt_lb_finish(&extra, true));
    jt_scope_set(vm, scope, "kwargs", kwargs);
    jt_value out = capture(vm, scope, &m->body);
    vm->depth--;
    return out;
}

static jt_value make_macro(jt_vm *vm, jt_scope *scope, const jt_node *n, const char *name) {
    jt_func *f = jt_alloc(vm->arena, sizeof *f);
    f->kind = JT_FN_MACRO;
    f->name = name;
    f->node = n;
    f->closure = scope;
    return (jt_value){.kind = JT_FUNC, .as.fn = f};
}

/* ---- for loops ------------------------------------------------------------------------ */

static bool defines_macro(const jt_nodes *body) {
    for (size_t i = 0; i < body->n; i++) {
        const jt_node *n = body->v[i];
        if (n->kind == N_MACRO || n->kind == N_CALLBLOCK) return true;
        if (defines_macro(&n->body) || defines_macro(&n->else_)) return true;
    }
    return false;
}

static int run_loop(jt_vm *vm, jt_scope *scope, const jt_node *n, jt_value iterable, int depth) {
    jt_value items = jt_iterate(vm, iterable);
    if (n->c) { /* `for x in xs if cond`: filter first, so loop.length counts the kept items */
        jt_list_builder kept;
        jt_lb_init(&kept, vm->arena);
        jt_scope *tmp = jt_scope_new(vm, scope);
        for (size_t i = 0; i < items.as.l->n; i++) {
            tmp->n = 0;
            assign(vm, tmp, n->a, items.as.l->items[i]);
            if (jt_truthy(jt_eval(vm, tmp, n->c))) jt_lb_push(&kept, items.as.l->items[i]);
        }
        items = jt_lb_finish(&kept, false);
    }
    if (items.as.l->n == 0) return exec_nodes(vm, scope, &n->else_);
    jt_loop *loop = jt_alloc(vm->arena, sizeof *loop);
    loop->items = items;
    loop->depth = depth;
    loop->for_node = n;
    loop->scope = scope;
    jt_value loop_value = {.kind = JT_LOOP, .as.loop = loop};
    /* Each iteration starts from an empty scope (Jinja2: `set` does not carry
     * over to the next iteration). The scope is reused so that long loops run
     * in constant memory, unless the body defines macros, which keep it. */
    bool fresh_scopes = defines_macro(&n->body);
    jt_scope *it = jt_scope_new(vm, scope);
    for (size_t i = 0; i < items.as.l->n; i++) {
        jt_step(vm);
        loop->index0 = i;
        if (fresh_scopes) it = jt_scope_new(vm, scope);
        it->n = 0;
        jt_scope_set(vm, it, "loop", loop_value);
        vm->line = n->line;
        assign(vm, it, n->a, items.as.l->items[i]);
        if (exec_nodes(vm, it, &n->body) == FLOW_BREAK) break;
    }
    return FLOW_NEXT;
}

jt_value jt_loop_recurse(jt_vm *vm, jt_loop *loop, jt_value items) {
    enter_call(vm, "recursive loop");
    jt_out buf = {0};
    jt_out *saved = vm->out;
    vm->out = &buf;
    run_loop(vm, loop->scope, loop->for_node, items, loop->depth + 1);
    vm->out = saved;
    vm->depth--;
    return jt_str_new(vm->arena, buf.data ? buf.data : "", buf.len);
}

/* ---- include --------------------------------------------------------------------------- */

static const jt_template *load_include(jt_vm *vm, jt_value name, bool ignore_missing) {
    jt_value names = name.kind == JT_STR ? jt_list_new(vm->arena, 1, false) : jt_iterate(vm, name);
    if (name.kind == JT_STR) jt_items(names)[0] = name;
    const char *base = vm->tmpl->base_dir;
    for (size_t k = 0; k < names.as.l->n; k++) {
        jt_value nm = names.as.l->items[k];
        if (nm.kind != JT_STR) jt_raise(vm, "include expects a template name (a string)");
        const char *rel = jt_sdata(nm);
        /* Jinja's FileSystemLoader refuses names that leave the search path */
        if (rel[0] == '/' || strstr(rel, "..")) jt_raise(vm, "template not found: %s", rel);
        for (size_t i = 0; i < vm->n_included; i++)
            if (!strcmp(vm->included[i]->name, rel)) return vm->included[i];
        if (!base) continue;
        char *path = lg_path_join(base, rel);
        if (!path) jt_raise(vm, "out of memory");
        char *text = NULL;
        size_t len = 0;
        laguna_error err;
        laguna_status st = lg_file_exists(path) ? lg_read_file(path, 16u << 20, &text, &len, &err) : LAGUNA_ERR_IO;
        free(path);
        if (st != LAGUNA_OK) continue;
        jt_template *t = NULL;
        char why[400];
        bool ok = jt_template_compile(text, len, rel, base, &t, why, sizeof why);
        free(text);
        if (!ok) jt_raise(vm, "in included template: %s", why);
        if (vm->n_included == vm->cap_included) {
            size_t cap = vm->cap_included ? vm->cap_included * 2 : 4;
            jt_template **v = realloc(vm->included, cap * sizeof *v);
            if (!v) {
                jt_template_free(t);
                jt_raise(vm, "out of memory");
            }
            vm->included = v;
            vm->cap_included = cap;
        }
        vm->included[vm->n_included++] = t;
        return t;
    }
    if (ignore_missing) return NULL;
    jt_raise(vm, "template not found: %s%s", name.kind == JT_STR ? jt_sdata(name) : "(list)",
             base ? "" : " (no template folder was given)");
}

static jt_scope *root_scope(jt_scope *s) {
    while (s->parent) s = s->parent;
    return s;
}

static void exec_include(jt_vm *vm, jt_scope *scope, const jt_node *n) {
    jt_value name = jt_eval(vm, scope, n->a);
    const jt_template *t = load_include(vm, name, n->op & 1);
    if (!t) return;
    enter_call(vm, "include");
    const jt_template *saved = vm->tmpl;
    int saved_line = vm->line;
    vm->tmpl = t;
    jt_scope *inner = jt_scope_new(vm, (n->op & 2) ? root_scope(scope) : scope);
    exec_nodes(vm, inner, &t->body);
    vm->tmpl = saved;
    vm->line = saved_line;
    vm->depth--;
}

/* ---- statements ---------------------------------------------------------------------- */

static void emit_value(jt_vm *vm, jt_value v) {
    if (v.kind == JT_STR) jt_emit(vm, jt_sdata(v), jt_slen(v));
    else if (v.kind != JT_UNDEF) {
        jt_value s = jt_to_str(vm, v);
        jt_emit(vm, jt_sdata(s), jt_slen(s));
    }
}

static int exec_node(jt_vm *vm, jt_scope *scope, const jt_node *n) {
    jt_step(vm);
    vm->line = n->line;
    switch (n->kind) {
    case N_DATA: jt_emit(vm, jt_sdata(n->value), jt_slen(n->value)); return FLOW_NEXT;
    case N_PRINT: emit_value(vm, jt_eval(vm, scope, n->a)); return FLOW_NEXT;
    case N_IF:
        if (jt_truthy(jt_eval(vm, scope, n->a))) return exec_nodes(vm, scope, &n->body);
        return exec_nodes(vm, scope, &n->else_);
    case N_FOR: {
        jt_value iterable = jt_eval(vm, scope, n->b);
        return run_loop(vm, scope, n, iterable, 1);
    }
    case N_SET: {
        jt_value v = jt_eval(vm, scope, n->b);
        vm->line = n->line;
        assign(vm, scope, n->a, v);
        return FLOW_NEXT;
    }
    case N_SETBLOCK: {
        jt_value v = capture(vm, scope, &n->body);
        if (n->c) v = jt_eval_filter(vm, scope, n->c, v);
        assign(vm, scope, n->a, v);
        return FLOW_NEXT;
    }
    case N_MACRO: jt_scope_set(vm, scope, n->name, make_macro(vm, scope, n, n->name)); return FLOW_NEXT;
    case N_CALLBLOCK: {
        jt_value caller = make_macro(vm, scope, n, "caller");
        emit_value(vm, jt_eval_call_with(vm, scope, n->a, "caller", caller));
        return FLOW_NEXT;
    }
    case N_INCLUDE: exec_include(vm, scope, n); return FLOW_NEXT;
    case N_BREAK: return FLOW_BREAK;
    case N_CONTINUE: return FLOW_CONTINUE;
    case N_WITH: {
        jt_scope *inner = jt_scope_new(vm, scope);
        for (size_t i = 0; i < n->args.n; i++)
            assign(vm, inner, n->args.v[i], jt_eval(vm, scope, n->kwargs.v[i]));
        return exec_nodes(vm, inner, &n->body);
    }
    case N_FILTERBLOCK: {
        jt_value v = capture(vm, scope, &n->body);
        emit_value(vm, jt_eval_filter(vm, scope, n->c, v));
        return FLOW_NEXT;
    }
    case N_SCOPE: return exec_nodes(vm, scope, &n->body);
    default: jt_raise(vm, "cannot execute this statement");
    }
}

static int exec_nodes(jt_vm *vm, jt_scope *scope, const jt_nodes *body) {
    for (size_t i = 0; i < body->n; i++) {
        int flow = exec_node(vm, scope, body->v[i]);
        if (flow != FLOW_NEXT) return flow;
    }
    return FLOW_NEXT;
}

void jt_exec_body(jt_vm *vm, jt_scope *scope, const jt_nodes *body) { exec_nodes(vm, scope, body); }
