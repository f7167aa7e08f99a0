/* Recursive-descent parser for Jinja2 templates; each parse_* function is the
 * function of the same name in jinja2/parser.py. Errors longjmp back to
 * jt_parse with a message naming the line, like TemplateSyntaxError. */
#include "template/parser.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_NESTING 200

typedef struct {
    jt_arena *arena;
    const jt_token *tok;
    size_t n, i;
    jmp_buf jmp;
    char *why;
    size_t why_size;
    int nesting;
    int *macro_refs;      /* flags of the macro whose body is being parsed */
    const char *end_stack[64][4]; /* end tags looked for, for the EOF message */
    int end_depth;
} parser;

static _Noreturn void fail_at(parser *p, int line, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->why, p->why_size, "line %d: %s", line, msg);
    longjmp(p->jmp, 1);
}

static const jt_token *cur(parser *p) { return &p->tok[p->i]; }
static const jt_token *look(parser *p) { return &p->tok[p->i + 1 < p->n ? p->i + 1 : p->i]; }
static const jt_token *advance(parser *p) {
    const jt_token *t = &p->tok[p->i];
    if (p->i + 1 < p->n) p->i++;
    return t;
}

static bool is_name(const jt_token *t, const char *name) {
    return t->type == TK_NAME && strcmp(t->text, name) == 0;
}

static const char *describe(const jt_token *t) {
    if (t->type == TK_NAME) return t->text;
    return jt_tok_describe(t->type);
}

static const jt_token *expect(parser *p, jt_tok_type type) {
    const jt_token *t = cur(p);
    if (t->type != type) {
        if (t->type == TK_EOF)
            fail_at(p, t->line, "unexpected end of template, expected '%s'.", jt_tok_describe(type));
        fail_at(p, t->line, "expected token '%s', got '%s'", jt_tok_describe(type), describe(t));
    }
    return advance(p);
}

static void expect_name(parser *p, const char *name) {
    const jt_token *t = cur(p);
    if (!is_name(t, name)) fail_at(p, t->line, "expected token '%s', got '%s'", name, describe(t));
    advance(p);
}

static bool skip_if(parser *p, jt_tok_type type) {
    if (cur(p)->type != type) return false;
    advance(p);
    return true;
}

static bool skip_name(parser *p, const char *name) {
    if (!is_name(cur(p), name)) return false;
    advance(p);
    return true;
}

static jt_node *node(parser *p, jt_node_kind kind, int line) {
    jt_node *n = jt_alloc(p->arena, sizeof *n);
    n->kind = kind;
    n->line = line;
    return n;
}

/* Growable node list while parsing. */
typedef struct {
    jt_node **v;
    size_t n, cap;
} node_vec;

static void vec_push(parser *p, node_vec *v, jt_node *n) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        jt_node **nv = jt_alloc(p->arena, cap * sizeof *nv);
        if (v->n) memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = n;
}

static jt_nodes vec_done(node_vec *v) { return (jt_nodes){v->v, v->n}; }

static void enter(parser *p) {
    if (++p->nesting > MAX_NESTING) fail_at(p, cur(p)->line, "template nested too deeply");
}
static void leave(parser *p) { p->nesting--; }

/* Left-associative chains (a+b+c, a.b.c, a|f|g, a[0][0], f()(), elif) are
 * parsed by loops, yet the tree they build is as deep as they are long and
 * the evaluator and the name check recurse down it. Each link counts as one
 * level of nesting until the chain ends, so the nesting limit bounds the
 * depth of the tree, not only the parser's own recursion. */
static void chain_link(parser *p, int *links) {
    enter(p);
    (*links)++;
}
static void chain_end(parser *p, int links) { p->nesting -= links; }

/* ---- expressions ------------------------------------------------------------------ */

static jt_node *parse_expression(parser *p, bool with_condexpr);
static jt_node *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                            bool explicit_parens, bool with_namespace);
static jt_node *parse_unary(parser *p, bool with_filter);
static jt_node *parse_primary(parser *p, bool with_namespace);
static jt_node *parse_postfix(parser *p, jt_node *n);

static void parse_call_args(parser *p, jt_node *n) {
    const jt_token *open = expect(p, TK_LPAREN);
    node_vec args = {0}, kwargs = {0};
    bool require_comma = false;
    while (cur(p)->type != TK_RPAREN) {
        if (require_comma) {
            expect(p, TK_COMMA);
            if (cur(p)->type == TK_RPAREN) break;
        }
        if (cur(p)->type == TK_MUL) {
            if (n->c || n->d) fail_at(p, open->line, "invalid syntax for function call expression");
            advance(p);
            n->c = parse_expression(p, true);
        } else if (cur(p)->type == TK_POW) {
            if (n->d) fail_at(p, open->line, "invalid syntax for function call expression");
            advance(p);
            n->d = parse_expression(p, true);
        } else if (cur(p)->type == TK_NAME && look(p)->type == TK_ASSIGN) {
            if (n->d) fail_at(p, open->line, "invalid syntax for function call expression");
            const jt_token *key = advance(p);
            advance(p);
            jt_node *kw = node(p, N_KEYWORD, key->line);
            kw->name = key->text;
            kw->a = parse_expression(p, true);
            vec_push(p, &kwargs, kw);
        } else {
            if (n->c || n->d || kwargs.n)
                fail_at(p, open->line, "invalid syntax for function call expression");
            vec_push(p, &args, parse_expression(p, true));
        }
        require_comma = true;
    }
    expect(p, TK_RPAREN);
    n->args = vec_done(&args);
    n->kwargs = vec_done(&kwargs);
}

static const char *dotted_name(parser *p) {
    const jt_token *t = expect(p, TK_NAME);
    const char *name = t->text;
    while (cur(p)->type == TK_DOT) {
        advance(p);
        const char *part = expect(p, TK_NAME)->text;
        size_t a = strlen(name), b = strlen(part);
        char *joined = jt_alloc(p->arena, a + b + 2);
        memcpy(joined, name, a);
        joined[a] = '.';
        memcpy(joined + a + 1, part, b + 1);
        name = joined;
    }
    return name;
}

/* `| name(args)` chain; operand NULL for filter blocks and block sets. Each
 * filter is a link of the caller's chain (*links). */
static jt_node *parse_filter(parser *p, jt_node *operand, bool start_inline, int *links) {
    while (cur(p)->type == TK_PIPE || start_inline) {
        chain_link(p, links);
        if (!start_inline) advance(p);
        int line = cur(p)->line;
        jt_node *f = node(p, N_FILTER, line);
        f->name = dotted_name(p);
        f->a = operand;
        if (cur(p)->type == TK_LPAREN) parse_call_args(p, f);
        operand = f;
        start_inline = false;
    }
    return operand;
}

static jt_node *parse_test(parser *p, jt_node *operand) {
    const jt_token *is = advance(p);
    bool negated = skip_name(p, "not");
    jt_node *t = node(p, N_TEST, is->line);
    t->a = operand;
    t->name = dotted_name(p);
    const jt_token *c = cur(p);
    if (c->type == TK_LPAREN) {
        parse_call_args(p, t);
    } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT ||
                c->type == TK_FLOAT || c->type == TK_LPAREN || c->type == TK_LBRACKET ||
                c->type == TK_LBRACE) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) fail_at(p, c->line, "You cannot chain multiple tests with is");
        jt_node *arg = parse_postfix(p, parse_primary(p, false));
        jt_node **v = jt_alloc(p->arena, sizeof *v);
        v[0] = arg;
        t->args = (jt_nodes){v, 1};
    }
    if (negated) {
        jt_node *n = node(p, N_NOT, is->line);
        n->a = t;
        return n;
    }
    return t;
}

static jt_node *parse_subscribed(parser *p) {
    int line = cur(p)->line;
    jt_node *parts[3] = {NULL, NULL, NULL};
    if (cur(p)->type == TK_COLON) {
        advance(p);
    } else {
        jt_node *e = parse_expression(p, true);
        if (cur(p)->type != TK_COLON) return e;
        advance(p);
        parts[0] = e;
    }
    if (cur(p)->type != TK_COLON && cur(p)->type != TK_RBRACKET && cur(p)->type != TK_COMMA)
        parts[1] = parse_expression(p, true);
    if (cur(p)->type == TK_COLON) {
        advance(p);
        if (cur(p)->type != TK_RBRACKET && cur(p)->type != TK_COMMA)
            parts[2] = parse_expression(p, true);
    }
    jt_node *s = node(p, N_SLICE, line);
    s->a = parts[0];
    s->b = parts[1];
    s->c = parts[2];
    return s;
}

static jt_node *parse_subscript(parser *p, jt_node *obj) {
    const jt_token *t = advance(p);
    if (t->type == TK_DOT) {
        const jt_token *attr = advance(p);
        if (attr->type == TK_NAME) {
            jt_node *g = node(p, N_GETATTR, t->line);
            g->a = obj;
            g->name = attr->text;
            return g;
        }
        if (attr->type != TK_INT) fail_at(p, attr->line, "expected name or number");
        jt_node *g = node(p, N_GETITEM, t->line);
        g->a = obj;
        g->b = node(p, N_CONST, attr->line);
        g->b->value = attr->value;
        return g;
    }
    node_vec args = {0};
    while (cur(p)->type != TK_RBRACKET) {
        if (args.n) expect(p, TK_COMMA);
        vec_push(p, &args, parse_subscribed(p));
    }
    expect(p, TK_RBRACKET);
    jt_node *g = node(p, N_GETITEM, t->line);
    g->a = obj;
    if (args.n == 1) g->b = args.v[0];
    else {
        g->b = node(p, N_TUPLE, t->line);
        g->b->args = vec_done(&args);
    }
    return g;
}

static jt_node *parse_call(parser *p, jt_node *callee) {
    jt_node *c = node(p, N_CALL, cur(p)->line);
    c->a = callee;
    parse_call_args(p, c);
    return c;
}

static jt_node *parse_postfix(parser *p, jt_node *n) {
    int links = 0;
    while (true) {
        jt_tok_type t = cur(p)->type;
        if (t != TK_DOT && t != TK_LBRACKET && t != TK_LPAREN) break;
        chain_link(p, &links);
        n = t == TK_LPAREN ? parse_call(p, n) : parse_subscript(p, n);
    }
    chain_end(p, links);
    return n;
}

static jt_node *parse_filter_expr(parser *p, jt_node *n) {
    int links = 0;
    while (true) {
        const jt_token *t = cur(p);
        if (t->type == TK_PIPE) {
            n = parse_filter(p, n, false, &links);
            continue;
        }
        if (!is_name(t, "is") && t->type != TK_LPAREN) break;
        chain_link(p, &links);
        n = t->type == TK_LPAREN ? parse_call(p, n) : parse_test(p, n);
    }
    chain_end(p, links);
    return n;
}

static jt_node *parse_list(parser *p) {
    const jt_token *t = expect(p, TK_LBRACKET);
    node_vec items = {0};
    while (cur(p)->type != TK_RBRACKET) {
        if (items.n) expect(p, TK_COMMA);
        if (cur(p)->type == TK_RBRACKET) break;
        vec_push(p, &items, parse_expression(p, true));
    }
    expect(p, TK_RBRACKET);
    jt_node *n = node(p, N_LIST, t->line);
    n->args = vec_done(&items);
    return n;
}

static jt_node *parse_dict(parser *p) {
    const jt_token *t = expect(p, TK_LBRACE);
    node_vec keys = {0}, vals = {0};
    while (cur(p)->type != TK_RBRACE) {
        if (keys.n) expect(p, TK_COMMA);
        if (cur(p)->type == TK_RBRACE) break;
        vec_push(p, &keys, parse_expression(p, true));
        expect(p, TK_COLON);
        vec_push(p, &vals, parse_expression(p, true));
    }
    expect(p, TK_RBRACE);
    jt_node *n = node(p, N_DICT, t->line);
    n->args = vec_done(&keys);
    n->kwargs = vec_done(&vals);
    return n;
}

static jt_node *parse_primary(parser *p, bool with_namespace) {
    const jt_token *t = cur(p);
    jt_node *n;
    switch (t->type) {
    case TK_NAME:
        advance(p);
        n = node(p, N_CONST, t->line);
        if (!strcmp(t->text, "true") || !strcmp(t->text, "True")) n->value = jt_bool(true);
        else if (!strcmp(t->text, "false") || !strcmp(t->text, "False")) n->value = jt_bool(false);
        else if (!strcmp(t->text, "none") || !strcmp(t->text, "None")) n->value = jt_none();
        else if (with_namespace && cur(p)->type == TK_DOT) {
            advance(p);
            n->kind = N_NSREF;
            n->name = t->text;
            n->attr = expect(p, TK_NAME)->text;
        } else {
            n->kind = N_NAME;
            n->name = t->text;
            if (p->macro_refs) {
                if (!strcmp(t->text, "varargs")) *p->macro_refs |= MACRO_USES_VARARGS;
                else if (!strcmp(t->text, "kwargs")) *p->macro_refs |= MACRO_USES_KWARGS;
                else if (!strcmp(t->text, "caller")) *p->macro_refs |= MACRO_USES_CALLER;
            }
        }
        return n;
    case TK_STRING: {
        advance(p);
        jt_value v = t->value;
        if (cur(p)->type == TK_STRING) { /* adjacent literals concatenate */
            jt_sb b;
            jt_sb_init(&b, p->arena);
            jt_sb_add(&b, jt_sdata(v), jt_slen(v));
            while (cur(p)->type == TK_STRING) {
                jt_value w = advance(p)->value;
                jt_sb_add(&b, jt_sdata(w), jt_slen(w));
            }
            v = jt_sb_value(&b);
        }
        n = node(p, N_CONST, t->line);
        n->value = v;
        return n;
    }
    case TK_INT:
    case TK_FLOAT:
        advance(p);
        n = node(p, N_CONST, t->line);
        n->value = t->value;
        return n;
    case TK_LPAREN:
        advance(p);
        n = parse_tuple(p, false, true, NULL, true, false);
        expect(p, TK_RPAREN);
        return n;
    case TK_LBRACKET: return parse_list(p);
    case TK_LBRACE: return parse_dict(p);
    case TK_EOF: fail_at(p, t->line, "unexpected end of template");
    default: fail_at(p, t->line, "unexpected '%s'", describe(t));
    }
}

static jt_node *parse_unary(parser *p, bool with_filter) {
    const jt_token *t = cur(p);
    jt_node *n;
    enter(p);
    if (t->type == TK_SUB || t->type == TK_ADD) {
        advance(p);
        n = node(p, t->type == TK_SUB ? N_NEG : N_POS, t->line);
        n->a = parse_unary(p, false);
    } else {
        n = parse_primary(p, false);
    }
    n = parse_postfix(p, n);
    if (with_filter) n = parse_filter_expr(p, n);
    leave(p);
    return n;
}

static jt_node *binop(parser *p, int op, jt_node *l, jt_node *r, int line) {
    jt_node *n = node(p, N_BINOP, line);
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static jt_node *parse_pow(parser *p) {
    jt_node *l = parse_unary(p, true);
    int links = 0;
    while (cur(p)->type == TK_POW) {
        chain_link(p, &links);
        int line = advance(p)->line;
        l = binop(p, TK_POW, l, parse_unary(p, true), line);
    }
    chain_end(p, links);
    return l;
}

static jt_node *parse_math2(parser *p) {
    jt_node *l = parse_pow(p);
    int links = 0;
    while (cur(p)->type == TK_MUL || cur(p)->type == TK_DIV || cur(p)->type == TK_FLOORDIV ||
           cur(p)->type == TK_MOD) {
        chain_link(p, &links);
        const jt_token *t = advance(p);
        l = binop(p, t->type, l, parse_pow(p), t->line);
    }
    chain_end(p, links);
    return l;
}

static jt_node *parse_concat(parser *p) {
    int line = cur(p)->line;
    jt_node *first = parse_math2(p);
    if (cur(p)->type != TK_TILDE) return first;
    node_vec args = {0};
    vec_push(p, &args, first);
    while (skip_if(p, TK_TILDE)) vec_push(p, &args, parse_math2(p));
    jt_node *n = node(p, N_CONCAT, line);
    n->args = vec_done(&args);
    return n;
}

static jt_node *parse_math1(parser *p) {
    jt_node *l = parse_concat(p);
    int links = 0;
    while (cur(p)->type == TK_ADD || cur(p)->type == TK_SUB) {
        chain_link(p, &links);
        const jt_token *t = advance(p);
        l = binop(p, t->type, l, parse_concat(p), t->line);
    }
    chain_end(p, links);
    return l;
}

static jt_node *parse_compare(parser *p) {
    int line = cur(p)->line;
    jt_node *first = parse_math1(p);
    node_vec ops = {0};
    while (true) {
        const jt_token *t = cur(p);
        int op;
        if (t->type == TK_EQ || t->type == TK_NE || t->type == TK_LT || t->type == TK_LTEQ ||
            t->type == TK_GT || t->type == TK_GTEQ) {
            op = t->type;
            advance(p);
        } else if (is_name(t, "in")) {
            op = OP_IN;
            advance(p);
        } else if (is_name(t, "not") && is_name(look(p), "in")) {
            op = OP_NOTIN;
            advance(p);
            advance(p);
        } else break;
        jt_node *o = node(p, N_OPERAND, t->line);
        o->op = op;
        o->a = parse_math1(p);
        vec_push(p, &ops, o);
    }
    if (!ops.n) return first;
    jt_node *n = node(p, N_COMPARE, line);
    n->a = first;
    n->args = vec_done(&ops);
    return n;
}

static jt_node *parse_not(parser *p) {
    if (is_name(cur(p), "not")) {
        int line = advance(p)->line;
        enter(p);
        jt_node *n = node(p, N_NOT, line);
        n->a = parse_not(p);
        leave(p);
        return n;
    }
    return parse_compare(p);
}

static jt_node *parse_and(parser *p) {
    jt_node *l = parse_not(p);
    int links = 0;
    while (is_name(cur(p), "and")) {
        chain_link(p, &links);
        int line = advance(p)->line;
        jt_node *n = node(p, N_AND, line);
        n->a = l;
        n->b = parse_not(p);
        l = n;
    }
    chain_end(p, links);
    return l;
}

static jt_node *parse_or(parser *p) {
    jt_node *l = parse_and(p);
    int links = 0;
    while (is_name(cur(p), "or")) {
        chain_link(p, &links);
        int line = advance(p)->line;
        jt_node *n = node(p, N_OR, line);
        n->a = l;
        n->b = parse_and(p);
        l = n;
    }
    chain_end(p, links);
    return l;
}

static jt_node *parse_condexpr(parser *p) {
    int line = cur(p)->line;
    jt_node *expr1 = parse_or(p);
    int links = 0;
    while (skip_name(p, "if")) {
        chain_link(p, &links);
        jt_node *n = node(p, N_CONDEXPR, line);
        n->a = parse_or(p);
        n->b = expr1;
        if (skip_name(p, "else")) {
            enter(p);
            n->c = parse_condexpr(p);
            leave(p);
        }
        expr1 = n;
        line = cur(p)->line;
    }
    chain_end(p, links);
    return expr1;
}

static jt_node *parse_expression(parser *p, bool with_condexpr) {
    enter(p);
    jt_node *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
    leave(p);
    return n;
}

static bool is_tuple_end(parser *p, const char *extra_end) {
    jt_tok_type t = cur(p)->type;
    if (t == TK_VAR_END || t == TK_BLOCK_END || t == TK_RPAREN) return true;
    return extra_end && is_name(cur(p), extra_end);
}

static jt_node *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                            bool explicit_parens, bool with_namespace) {
    int line = cur(p)->line;
    node_vec args = {0};
    bool is_tuple = false;
    while (true) {
        if (args.n) expect(p, TK_COMMA);
        if (is_tuple_end(p, extra_end)) break;
        vec_push(p, &args, simplified ? parse_primary(p, with_namespace)
                                      : parse_expression(p, with_condexpr));
        if (cur(p)->type == TK_COMMA) is_tuple = true;
        else break;
    }
    if (!is_tuple) {
        if (args.n) return args.v[0];
        if (!explicit_parens)
            fail_at(p, cur(p)->line, "Expected an expression, got '%s'", describe(cur(p)));
    }
    jt_node *n = node(p, N_TUPLE, line);
    n->args = vec_done(&args);
    return n;
}

/* ---- statements ------------------------------------------------------------------- */

static jt_nodes subparse(parser *p, const char *const *end_tags);

static _Noreturn void fail_eof(parser *p, const char *const *end_tags) {
    char want[200] = "";
    for (int i = 0; end_tags && end_tags[i]; i++) {
        if (i) strncat(want, " or ", sizeof want - strlen(want) - 1);
        strncat(want, "'", sizeof want - strlen(want) - 1);
        strncat(want, end_tags[i], sizeof want - strlen(want) - 1);
        strncat(want, "'", sizeof want - strlen(want) - 1);
    }
    fail_at(p, cur(p)->line,
            "Unexpected end of template. Jinja was looking for the following tags: %s.", want);
}

static jt_nodes parse_statements(parser *p, const char *const *end_tags, bool drop_needle) {
    skip_if(p, TK_COLON);
    expect(p, TK_BLOCK_END);
    jt_nodes body = subparse(p, end_tags);
    if (cur(p)->type == TK_EOF) fail_eof(p, end_tags);
    if (drop_needle) advance(p);
    return body;
}

static jt_node *parse_assign_target(parser *p, bool with_tuple, bool name_only,
                                    const char *extra_end, bool with_namespace) {
    jt_node *t;
    if (name_only) {
        const jt_token *tok = expect(p, TK_NAME);
        t = node(p, N_NAME, tok->line);
        t->name = tok->text;
        return t;
    }
    t = with_tuple ? parse_tuple(p, true, true, extra_end, false, with_namespace)
                   : parse_primary(p, with_namespace);
    bool ok = t->kind == N_NAME || t->kind == N_NSREF;
    if (t->kind == N_TUPLE) {
        ok = true;
        for (size_t i = 0; i < t->args.n; i++)
            if (t->args.v[i]->kind != N_NAME) ok = false;
    }
    if (!ok) fail_at(p, t->line, "can't assign to this expression");
    return t;
}

static jt_node *parse_for(parser *p) {
    static const char *const body_end[] = {"endfor", "else", NULL};
    static const char *const else_end[] = {"endfor", NULL};
    jt_node *n = node(p, N_FOR, advance(p)->line);
    n->a = parse_assign_target(p, true, false, "in", false);
    expect_name(p, "in");
    n->b = parse_tuple(p, false, false, "recursive", false, false);
    if (skip_name(p, "if")) n->c = parse_expression(p, true);
    n->op = skip_name(p, "recursive");
    n->body = parse_statements(p, body_end, false);
    if (!strcmp(advance(p)->text, "else")) n->else_ = parse_statements(p, else_end, true);
    return n;
}

static jt_node *parse_if(parser *p) {
    static const char *const body_end[] = {"elif", "else", "endif", NULL};
    static const char *const else_end[] = {"endif", NULL};
    jt_node *result = node(p, N_IF, advance(p)->line);
    jt_node *n = result;
    int links = 0;
    while (true) {
        n->a = parse_tuple(p, false, false, NULL, false, false);
        n->body = parse_statements(p, body_end, false);
        const jt_token *t = advance(p);
        if (!strcmp(t->text, "elif")) {
            chain_link(p, &links);
            jt_node *next = node(p, N_IF, t->line);
            jt_node **v = jt_alloc(p->arena, sizeof *v);
            v[0] = next;
            n->else_ = (jt_nodes){v, 1};
            n = next;
            continue;
        }
        if (!strcmp(t->text, "else")) n->else_ = parse_statements(p, else_end, true);
        chain_end(p, links);
        return result;
    }
}

static jt_node *parse_set(parser *p) {
    static const char *const end[] = {"endset", NULL};
    int line = advance(p)->line;
    jt_node *target = parse_assign_target(p, true, false, NULL, true);
    if (skip_if(p, TK_ASSIGN)) {
        jt_node *n = node(p, N_SET, line);
        n->a = target;
        n->b = parse_tuple(p, false, true, NULL, false, false);
        return n;
    }
    jt_node *n = node(p, N_SETBLOCK, line);
    n->a = target;
    int links = 0;
    n->c = parse_filter(p, NULL, false, &links);
    chain_end(p, links);
    n->body = parse_statements(p, end, true);
    return n;
}

static void parse_signature(parser *p, jt_node *n) {
    node_vec params = {0}, defaults = {0};
    expect(p, TK_LPAREN);
    while (cur(p)->type != TK_RPAREN) {
        if (params.n) expect(p, TK_COMMA);
        jt_node *param = parse_assign_target(p, false, true, NULL, false);
        if (skip_if(p, TK_ASSIGN)) vec_push(p, &defaults, parse_expression(p, true));
        else if (defaults.n) fail_at(p, param->line, "non-default argument follows default argument");
        vec_push(p, &params, param);
    }
    expect(p, TK_RPAREN);
    n->args = vec_done(&params);
    n->kwargs = vec_done(&defaults);
}

static jt_node *parse_macro(parser *p) {
    static const char *const end[] = {"endmacro", NULL};
    jt_node *n = node(p, N_MACRO, advance(p)->line);
    n->name = parse_assign_target(p, false, true, NULL, false)->name;
    parse_signature(p, n);
    int *saved = p->macro_refs;
    p->macro_refs = &n->op;
    n->body = parse_statements(p, end, true);
    p->macro_refs = saved;
    return n;
}

static jt_node *parse_call_block(parser *p) {
    static const char *const end[] = {"endcall", NULL};
    jt_node *n = node(p, N_CALLBLOCK, advance(p)->line);
    if (cur(p)->type == TK_LPAREN) parse_signature(p, n);
    n->a = parse_expression(p, true);
    if (n->a->kind != N_CALL) fail_at(p, n->line, "expected call");
    int *saved = p->macro_refs;
    p->macro_refs = &n->op;
    n->body = parse_statements(p, end, true);
    p->macro_refs = saved;
    return n;
}

static jt_node *parse_include(parser *p) {
    jt_node *n = node(p, N_INCLUDE, advance(p)->line);
    n->a = parse_expression(p, true);
    if (is_name(cur(p), "ignore") && is_name(look(p), "missing")) {
        advance(p);
        advance(p);
        n->op |= 1;
    }
    if ((is_name(cur(p), "with") || is_name(cur(p), "without")) && is_name(look(p), "context")) {
        if (is_name(cur(p), "without")) n->op |= 2;
        advance(p);
        advance(p);
    }
    return n;
}

static jt_node *parse_with(parser *p) {
    static const char *const end[] = {"endwith", NULL};
    jt_node *n = node(p, N_WITH, advance(p)->line);
    node_vec targets = {0}, values = {0};
    while (cur(p)->type != TK_BLOCK_END) {
        if (targets.n) expect(p, TK_COMMA);
        vec_push(p, &targets, parse_assign_target(p, true, false, NULL, false));
        expect(p, TK_ASSIGN);
        vec_push(p, &values, parse_expression(p, true));
    }
    n->args = vec_done(&targets);
    n->kwargs = vec_done(&values);
    n->body = parse_statements(p, end, true);
    return n;
}

static jt_node *parse_scope_block(parser *p, const char *end_tag, bool named) {
    const char *end[] = {end_tag, NULL};
    jt_node *n = node(p, N_SCOPE, advance(p)->line);
    if (named) {
        n->name = expect(p, TK_NAME)->text;
        skip_name(p, "scoped");
        skip_name(p, "required");
    } else if (!strcmp(end_tag, "endautoescape")) {
        parse_expression(p, true);
    }
    n->body = parse_statements(p, end, true);
    if (named && cur(p)->type == TK_NAME && !strcmp(cur(p)->text, n->name)) advance(p);
    return n;
}

static jt_node *parse_statement(parser *p) {
    const jt_token *t = cur(p);
    if (t->type != TK_NAME) fail_at(p, t->line, "tag name expected");
    const char *w = t->text;
    if (!strcmp(w, "for")) return parse_for(p);
    if (!strcmp(w, "if")) return parse_if(p);
    if (!strcmp(w, "set")) return parse_set(p);
    if (!strcmp(w, "macro")) return parse_macro(p);
    if (!strcmp(w, "call")) return parse_call_block(p);
    if (!strcmp(w, "include")) return parse_include(p);
    if (!strcmp(w, "with")) return parse_with(p);
    if (!strcmp(w, "filter")) {
        static const char *const end[] = {"endfilter", NULL};
        jt_node *n = node(p, N_FILTERBLOCK, advance(p)->line);
        int links = 0;
        n->c = parse_filter(p, NULL, true, &links);
        chain_end(p, links);
        n->body = parse_statements(p, end, true);
        return n;
    }
    if (!strcmp(w, "print")) {
        jt_node *n = node(p, N_PRINT, advance(p)->line);
        n->a = parse_tuple(p, false, true, NULL, false, false);
        return n;
    }
    if (!strcmp(w, "break") || !strcmp(w, "continue")) {
        advance(p);
        return node(p, w[0] == 'b' ? N_BREAK : N_CONTINUE, t->line);
    }
    if (!strcmp(w, "generation")) return parse_scope_block(p, "endgeneration", false);
    if (!strcmp(w, "block")) return parse_scope_block(p, "endblock", true);
    if (!strcmp(w, "autoescape")) return parse_scope_block(p, "endautoescape", false);
    if (!strcmp(w, "extends") || !strcmp(w, "import") || !strcmp(w, "from"))
        fail_at(p, t->line, "the '%s' tag is not supported in chat templates", w);
    for (int d = p->end_depth - 1; d >= 0; d--)
        for (int k = 0; k < 4 && p->end_stack[d][k]; k++)
            if (!strcmp(w, p->end_stack[d][k]))
                fail_at(p, t->line, "Encountered unknown tag '%s'. Jinja was looking for the "
                        "following tags: '%s'.", w, p->end_stack[p->end_depth - 1][0]);
    fail_at(p, t->line, "Encountered unknown tag '%s'.", w);
}

static jt_nodes subparse(parser *p, const char *const *end_tags) {
    node_vec body = {0};
    enter(p);
    if (end_tags && p->end_depth < 64) {
        for (int k = 0; k < 4; k++) p->end_stack[p->end_depth][k] = NULL;
        for (int k = 0; k < 4 && end_tags[k]; k++) p->end_stack[p->end_depth][k] = end_tags[k];
        p->end_depth++;
    }
    while (cur(p)->type != TK_EOF) {
        const jt_token *t = cur(p);
        if (t->type == TK_DATA) {
            jt_node *n = node(p, N_DATA, t->line);
            n->value = t->value;
            vec_push(p, &body, n);
            advance(p);
        } else if (t->type == TK_VAR_BEGIN) {
            advance(p);
            jt_node *n = node(p, N_PRINT, t->line);
            n->a = parse_tuple(p, false, true, NULL, false, false);
            expect(p, TK_VAR_END);
            vec_push(p, &body, n);
        } else if (t->type == TK_BLOCK_BEGIN) {
            advance(p);
            bool is_end = false;
            for (int k = 0; end_tags && end_tags[k]; k++)
                if (is_name(cur(p), end_tags[k])) is_end = true;
            if (is_end) break;
            vec_push(p, &body, parse_statement(p));
            expect(p, TK_BLOCK_END);
        } else {
            fail_at(p, t->line, "unexpected '%s'", describe(t));
        }
    }
    if (end_tags && p->end_depth > 0) p->end_depth--;
    leave(p);
    return vec_done(&body);
}

bool jt_parse(jt_arena *a, const jt_tokens *tokens, jt_nodes *out, char *why, size_t why_size) {
    parser p = {.arena = a, .tok = tokens->tokens, .n = tokens->n, .why = why, .why_size = why_size};
    if (setjmp(p.jmp)) return false;
    *out = subparse(&p, NULL);
    if (cur(&p)->type != TK_EOF) fail_at(&p, cur(&p)->line, "unexpected '%s'", describe(cur(&p)));
    return true;
}
