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
        !jt_parse(&t->arena, &tokens, &t->body, msg, sizeof msg)) {
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
