/* The syntax tree of a compiled Jinja template, one node type for statements
 * and expressions (mirroring jinja2/nodes.py). Nodes live in the compiled
 * template's arena and are never changed after parsing. Which fields a kind
 * uses is listed next to it. */
#ifndef LAGUNA_TEMPLATE_AST_H
#define LAGUNA_TEMPLATE_AST_H

#include "template/value.h"

typedef enum {
    /* expressions */
    N_CONST,    /* value */
    N_NAME,     /* name */
    N_NSREF,    /* name.attr as an assignment target: name, attr */
    N_GETATTR,  /* a.name */
    N_GETITEM,  /* a[b] */
    N_SLICE,    /* a:b:c (each may be NULL), only as a GETITEM key */
    N_CALL,     /* a(args, kwargs, *c, **d) */
    N_FILTER,   /* a|name(args, kwargs, *c, **d); a NULL inside filter blocks */
    N_TEST,     /* a is name(args, kwargs) */
    N_NOT,      /* not a */
    N_NEG,      /* -a */
    N_POS,      /* +a */
    N_BINOP,    /* a op b, op one of TK_ADD ... TK_POW */
    N_AND,      /* a and b */
    N_OR,       /* a or b */
    N_COMPARE,  /* a (op operand)...: args are N_OPERAND nodes */
    N_OPERAND,  /* op a, op a TK_ comparison or OP_IN / OP_NOTIN */
    N_CONCAT,   /* args joined by ~ */
    N_CONDEXPR, /* b if a else c (c may be NULL) */
    N_LIST,     /* [args] */
    N_TUPLE,    /* (args) */
    N_DICT,     /* {args[i]: kwargs[i]} */
    N_KEYWORD,  /* name=a, inside call kwargs */
    /* statements */
    N_DATA,       /* template text: value */
    N_PRINT,      /* {{ a }} */
    N_IF,         /* if a: body else else_ (elif is a nested N_IF in else_) */
    N_FOR,        /* for a in b if c: body else else_; op = recursive */
    N_SET,        /* set a = b */
    N_SETBLOCK,   /* set a | c: body */
    N_MACRO,      /* macro name(args = N_NAME params, kwargs = defaults): body */
    N_CALLBLOCK,  /* call(args params, kwargs defaults) a: body */
    N_INCLUDE,    /* include a; op bit 1 ignore missing, bit 2 without context */
    N_BREAK,
    N_CONTINUE,
    N_WITH,       /* with args[i] = kwargs[i]: body */
    N_FILTERBLOCK,/* filter c: body */
    N_SCOPE,      /* body run in place: generation, block, autoescape */
} jt_node_kind;

enum { OP_IN = 1000, OP_NOTIN };
/* N_MACRO flags in op: the body mentions these special names */
enum { MACRO_USES_VARARGS = 1, MACRO_USES_KWARGS = 2, MACRO_USES_CALLER = 4 };

typedef struct jt_node jt_node;

typedef struct {
    jt_node **v;
    size_t n;
} jt_nodes;

struct jt_node {
    jt_node_kind kind;
    int line;
    int op;
    const char *name;
    const char *attr;
    jt_value value;
    jt_node *a, *b, *c, *d;
    jt_nodes args, kwargs;
    jt_nodes body, else_;
};

#endif
