/* The Jinja interpreter's shared state and the interfaces between its parts:
 * expressions (eval.c), statements (exec.c), filters (filters.c), tests
 * (jinja_tests.c), methods of str/dict/list (methods.c) and globals
 * (globals.c).
 *
 * Runtime errors call jt_raise, which records "NAME line N: message" and
 * longjmps to the render's entry point; everything a render allocates lives
 * in its arena, so unwinding leaks nothing. Limits (output bytes, call depth,
 * steps) turn runaway templates into errors. */
#ifndef LAGUNA_TEMPLATE_INTERP_H
#define LAGUNA_TEMPLATE_INTERP_H

#include <setjmp.h>

#include "template/ast.h"
#include "template/lexer.h"
#include "template/value.h"

/* A compiled template: its syntax tree in its own arena. */
typedef struct jt_template {
    jt_arena arena;
    jt_nodes body;
    const char *name;     /* for messages: file name or "template" */
    const char *base_dir; /* where {% include %} looks; NULL: nowhere */
} jt_template;

/* Compiles source into *out (heap; free with jt_template_free). */
bool jt_template_compile(const char *source, size_t len, const char *name, const char *base_dir,
                         jt_template **out, char *why, size_t why_size);
void jt_template_free(jt_template *t);

typedef struct jt_scope jt_scope;
struct jt_scope {
    jt_scope *parent;
    size_t n, cap;
    const char **names;
    jt_value *vals;
};

/* Where rendered text goes: the render's output, or a capture (macro call,
 * block set, filter block) in the arena. */
typedef struct {
    char *data;
    size_t len, cap;
    bool heap;
} jt_out;

typedef struct {
    size_t max_output_bytes;
    int max_depth;      /* nested macro calls, includes, recursive loops */
    uint64_t max_steps; /* statements, loop iterations and calls */
} jt_limits;

typedef struct jt_vm {
    jt_arena *arena;
    jmp_buf *jmp;
    char *error;
    size_t error_size;
    const jt_template *tmpl; /* the template running now (changes inside includes) */
    int line;
    jt_out *out;
    size_t out_total;
    jt_limits limits;
    int depth;
    int expr_depth; /* jt_eval calls in progress */
    uint64_t steps;
    jt_template **included; /* templates compiled by {% include %}, freed after the render */
    size_t n_included, cap_included;
} jt_vm;

_Noreturn void jt_raise(jt_vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Raises the UndefinedError (or sandbox SecurityError) that using v means. */
_Noreturn void jt_raise_undefined(jt_vm *vm, jt_value v);
void jt_step(jt_vm *vm); /* counts one step; raises past the limit */

/* ---- calls --------------------------------------------------------------------- */

typedef struct {
    size_t n;
    const jt_value *pos;
    size_t n_kw;
    const char *const *kw_names;
    const jt_value *kw_vals;
} jt_args;

/* Argument `index` (positional) or `name` (keyword), else dflt. *given (may
 * be NULL) tells whether the caller passed it. */
jt_value jt_arg(const jt_args *a, size_t index, const char *name, jt_value dflt, bool *given);
/* Raises when more than max_pos positional arguments or an unknown keyword
 * (not in the NULL-terminated names) was passed. */
void jt_check_args(jt_vm *vm, const char *fname, const jt_args *a, size_t max_pos,
                   const char *const *names);

typedef jt_value (*jt_builtin_fn)(jt_vm *vm, jt_value self, const jt_args *args);

enum { JT_FN_BUILTIN, JT_FN_MACRO };

struct jt_func {
    int kind;
    const char *name;
    jt_builtin_fn fn;     /* builtins and bound methods */
    jt_value self;        /* the bound receiver */
    const jt_node *node;  /* macros: N_MACRO or N_CALLBLOCK */
    jt_scope *closure;    /* macros: the scope they were defined in */
    jt_value caller;      /* macros called from {% call %}: the caller() */
};

jt_value jt_make_builtin(jt_vm *vm, const char *name, jt_builtin_fn fn, jt_value self);

struct jt_loop {
    jt_value items; /* the (filtered) list being iterated */
    size_t index0;
    int depth; /* 1 for the outermost loop */
    jt_value last_changed;
    bool changed_called;
    const jt_node *for_node; /* for recursive loops */
    jt_scope *scope;
};

/* ---- eval.c ------------------------------------------------------------------------ */

/* Nested expression evaluations a render allows (the parser's nesting limit
 * keeps real templates far below it); beyond it the render fails cleanly
 * instead of overflowing the C stack. */
#define JT_MAX_EXPR_DEPTH 1000

jt_value jt_eval(jt_vm *vm, jt_scope *scope, const jt_node *n);
/* Applies a filter chain whose innermost operand is missing (filter blocks,
 * block sets) to hole. */
jt_value jt_eval_filter(jt_vm *vm, jt_scope *scope, const jt_node *n, jt_value hole);
jt_value jt_call(jt_vm *vm, jt_value callee, const jt_args *args);
/* Evaluates an N_CALL node with one extra keyword argument ({% call %}'s caller). */
jt_value jt_eval_call_with(jt_vm *vm, jt_scope *scope, const jt_node *call, const char *kw,
                           jt_value kw_val);
jt_value jt_getattr(jt_vm *vm, jt_value obj, const char *name);
jt_value jt_getitem(jt_vm *vm, jt_value obj, jt_value key);
/* str(v) as a string value (v itself when already a string). */
jt_value jt_to_str(jt_vm *vm, jt_value v);
/* The items a for loop or a filter sees: lists, tuples, dict keys, the
 * characters of a string; nothing for undefined. Raises for non-iterables. */
jt_value jt_iterate(jt_vm *vm, jt_value v);
/* Python's a < b ordering (-1, 0, 1); raises when the types do not compare. */
int jt_compare(jt_vm *vm, jt_value a, jt_value b);
bool jt_contains(jt_vm *vm, jt_value container, jt_value item);
jt_value jt_binop(jt_vm *vm, int op, jt_value a, jt_value b);
/* jinja2's escape(): & < > " ' as HTML entities; the result is Markup, and
 * Markup comes back unchanged. */
jt_value jt_html_escape(jt_vm *vm, jt_value str);
/* Python's `str % args` (also the format filter); width and precision are
 * capped at the output limit. */
jt_value jt_percent_format(jt_vm *vm, jt_value fmt, jt_value args);
jt_value jt_slice(jt_vm *vm, jt_value obj, jt_value start, jt_value stop, jt_value step);
/* len() of strings (code points), lists, dicts; raises for others. */
int64_t jt_length(jt_vm *vm, jt_value v);

/* ---- scopes (exec.c) --------------------------------------------------------------- */

jt_scope *jt_scope_new(jt_vm *vm, jt_scope *parent);
void jt_scope_set(jt_vm *vm, jt_scope *s, const char *name, jt_value v);
/* Looks a name up through the scope chain, then the globals; undefined if absent. */
jt_value jt_lookup(jt_vm *vm, jt_scope *s, const char *name);

/* ---- exec.c ----------------------------------------------------------------------- */

/* Renders a body into vm->out. */
void jt_exec_body(jt_vm *vm, jt_scope *scope, const jt_nodes *body);
void jt_emit(jt_vm *vm, const char *s, size_t n);
jt_value jt_call_macro(jt_vm *vm, const jt_func *fn, const jt_args *args);
/* Renders the loop body again for `loop(items)` in a recursive for loop. */
jt_value jt_loop_recurse(jt_vm *vm, jt_loop *loop, jt_value items);

/* ---- filters.c, jinja_tests.c, methods.c, globals.c ---------------------------------- */

jt_value jt_apply_filter(jt_vm *vm, const char *name, jt_value operand, const jt_args *args);
bool jt_has_filter(const char *name);
bool jt_apply_test(jt_vm *vm, const char *name, jt_value operand, const jt_args *args);
bool jt_has_test(const char *name);
/* obj.name as a bound method of a str, dict or list; JT_UNDEF kind with
 * found=false when the type has no such method. Mutating list/dict methods
 * come back as the sandbox's unsafe undefined. */
jt_value jt_method(jt_vm *vm, jt_value obj, const char *name, bool *found);
/* The global functions (range, namespace, dict, raise_exception,
 * strftime_now, cycler, joiner); found=false when none has the name. */
jt_value jt_global(jt_vm *vm, const char *name, bool *found);
/* Attribute of the loop variable (index, first, cycle, ...). */
jt_value jt_loop_attr(jt_vm *vm, jt_value loop, const char *name);

#endif
