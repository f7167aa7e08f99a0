/* Compiling a template: lex, parse, keep the tree in the template's arena. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/interp.h"
#include "template/lexer.h"
#include "template/parser.h"

/* Templates are small; this bounds what a hostile one can make us allocate. */
#define COMPILE_ARENA_CAP ((size_t)256 << 20)

typedef struct {
    jmp_buf jmp;
    char *why;
    size_t why_size;
} compile_fail;

static void on_arena_fail(void *ctx, const char *why) {
    compile_fail *f = ctx;
    snprintf(f->why, f->why_size, "%s", why);
    longjmp(f->jmp, 1);
}

typedef struct {
    const char *source;
    size_t len;
    const char *name, *base_dir;
    char *why;
    size_t why_size;
} compile_args;

/* Jinja2 resolves filter and test names when it compiles: an unknown name
 * fails the template even if it never runs, except inside an `if` or an
 * inline if ("soft" frames, checked at run time instead); loop, macro and
 * block bodies start hard again. */
static bool check_names(const jt_node *n, bool soft, char *msg, size_t msg_size);

static bool check_list(const jt_nodes *l, bool soft, char *msg, size_t msg_size) {
    for (size_t i = 0; i < l->n; i++)
        if (!check_names(l->v[i], soft, msg, msg_size)) return false;
    return true;
}

static bool check_names(const jt_node *n, bool soft, char *msg, size_t msg_size) {
    if (!n) return true;
    if (!soft && n->kind == N_FILTER && !jt_has_filter(n->name)) {
        snprintf(msg, msg_size, "line %d: No filter named '%s'.", n->line, n->name);
        return false;
    }
    if (!soft && n->kind == N_TEST && !jt_has_test(n->name)) {
        snprintf(msg, msg_size, "line %d: No test named '%s'.", n->line, n->name);
        return false;
    }
    bool inner = soft;
    if (n->kind == N_IF || n->kind == N_CONDEXPR) soft = inner = true;
    if (n->kind == N_FOR || n->kind == N_MACRO || n->kind == N_CALLBLOCK || n->kind == N_WITH ||
        n->kind == N_FILTERBLOCK || n->kind == N_SETBLOCK)
        inner = false; /* bodies get a fresh frame */
    return check_names(n->a, soft, msg, msg_size) && check_names(n->b, soft, msg, msg_size) &&
           check_names(n->c, soft, msg, msg_size) && check_names(n->d, soft, msg, msg_size) &&
           check_list(&n->args, soft, msg, msg_size) && check_list(&n->kwargs, soft, msg, msg_size) &&
           check_list(&n->body, inner, msg, msg_size) && check_list(&n->else_, inner, msg, msg_size);
}

/* Everything that allocates, run under the arena's failure jump. */
static bool compile_into(jt_template *t, const compile_args *c) {
    const char *source = c->source, *name = c->name, *base_dir = c->base_dir;
    size_t len = c->len;
    char *why = c->why;
    size_t why_size = c->why_size;
    const char *nm = name ? name : "template";
    t->name = jt_strndup(&t->arena, nm, strlen(nm));
    t->base_dir = base_dir ? jt_strndup(&t->arena, base_dir, strlen(base_dir)) : NULL;
    jt_tokens tokens;
    char msg[400];
    if (!jt_lex(&t->arena, source, len, &tokens, msg, sizeof msg) ||
        !jt_parse(&t->arena, &tokens, &t->body, msg, sizeof msg) ||
        !check_list(&t->body, false, msg, sizeof msg)) {
        snprintf(why, why_size, "%s %s", t->name, msg);
        return false;
    }
    return true;
}

/* The jump target for arena failures, kept apart so that no caller variable
 * lives across setjmp. */
static bool __attribute__((noinline)) guarded_compile(jt_template *t, compile_fail *fail,
                                                      const compile_args *args) {
    if (setjmp(fail->jmp)) return false;
    return compile_into(t, args);
}

bool jt_template_compile(const char *source, size_t len, const char *name, const char *base_dir,
                         jt_template **out, char *why, size_t why_size) {
    *out = NULL;
    jt_template *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(why, why_size, "out of memory");
        return false;
    }
    compile_fail fail = {.why = why, .why_size = why_size};
    compile_args args = {source, len, name, base_dir, why, why_size};
    jt_arena_init(&t->arena, COMPILE_ARENA_CAP, on_arena_fail, &fail);
    if (!guarded_compile(t, &fail, &args)) {
        jt_template_free(t);
        return false;
    }
    *out = t;
    return true;
}

void jt_template_free(jt_template *t) {
    if (!t) return;
    jt_arena_free(&t->arena);
    free(t);
}
