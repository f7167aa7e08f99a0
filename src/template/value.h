/* Values of the Jinja interpreter: Python's types as chat templates see them.
 *
 * A jt_value is a small tagged struct passed by value. Scalars live inside it;
 * strings, lists, dicts and callables point into an arena (jt_arena) that is
 * freed as a whole when a render (or a compiled template) ends, so nothing is
 * freed one by one and a runtime error can unwind with longjmp without leaks.
 * Lists and dicts are immutable once built, as in transformers' sandbox
 * (ImmutableSandboxedEnvironment); only namespace() objects change, through
 * `{% set ns.attr = ... %}`.
 *
 * Strings hold UTF-8 bytes; Python semantics (length, indexing, slicing) count
 * code points, which unicode.h provides. */
#ifndef LAGUNA_TEMPLATE_VALUE_H
#define LAGUNA_TEMPLATE_VALUE_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena ----------------------------------------------------------------- */

typedef struct jt_arena_block jt_arena_block;

/* Bump allocator with a byte cap. When an allocation fails or would pass the
 * cap, fail(fail_ctx) is called and must not return (it longjmps). */
typedef struct {
    jt_arena_block *head;
    size_t used_bytes;
    size_t cap_bytes;
    void (*fail)(void *fail_ctx, const char *why);
    void *fail_ctx;
} jt_arena;

void jt_arena_init(jt_arena *a, size_t cap_bytes, void (*fail)(void *, const char *), void *ctx);
void jt_arena_free(jt_arena *a);
void *jt_alloc(jt_arena *a, size_t n);          /* zeroed, 16-byte aligned */
char *jt_strndup(jt_arena *a, const char *s, size_t n);

/* ---- values ------------------------------------------------------------------ */

typedef enum {
    JT_UNDEF = 0, /* jinja2.Undefined: prints "", false, iterates as empty */
    JT_NONE,
    JT_BOOL,
    JT_INT,
    JT_FLOAT,
    JT_STR,
    JT_LIST,
    JT_TUPLE,
    JT_DICT,
    JT_NS,    /* namespace(): a dict of attributes that `set` may change */
    JT_FUNC,  /* builtin global, bound method, macro, caller, loop helper */
    JT_LOOP,  /* the `loop` variable of a for loop */
} jt_kind;

/* How a list prints when it came from dict.items()/keys()/values(). */
enum { JT_VIEW_NONE = 0, JT_VIEW_ITEMS, JT_VIEW_KEYS, JT_VIEW_VALUES };

typedef struct jt_str jt_str;
typedef struct jt_list jt_list;
typedef struct jt_dict jt_dict;
typedef struct jt_func jt_func;
typedef struct jt_undef jt_undef;
typedef struct jt_loop jt_loop;

typedef struct {
    uint8_t kind;
    uint8_t view;   /* JT_VIEW_* for lists */
    uint8_t markup; /* strings: jinja2's Markup (from |safe or |escape), whose + escapes the
                       other operand */
    union {
        bool b;
        int64_t i;
        double f;
        const jt_str *s;
        const jt_list *l;
        jt_dict *d;
        const jt_func *fn;
        const jt_undef *u;
        jt_loop *loop;
    } as;
} jt_value;

struct jt_str {
    size_t len;   /* bytes, not counting the NUL */
    bool ascii;   /* every byte < 0x80: code points == bytes */
    char bytes[]; /* NUL-terminated */
};

struct jt_list {
    size_t n;
    jt_value *items;
};

struct jt_dict {
    size_t n, cap;
    jt_value *keys;
    jt_value *vals;
};

/* Why a value is undefined, for the error raised when it is used. */
struct jt_undef {
    const char *name;     /* variable, attribute or key name; NULL when an index */
    int64_t index;        /* the missing index when name is NULL */
    const char *obj_type; /* "dict object", ... when looked up on an object, else NULL */
    const char *message;  /* explicit message (e.g. "No first item..."), else NULL */
    bool unsafe;          /* the sandbox refused the attribute: using it is an error */
};

static inline jt_value jt_none(void) { return (jt_value){.kind = JT_NONE}; }
static inline jt_value jt_bool(bool b) { return (jt_value){.kind = JT_BOOL, .as.b = b}; }
static inline jt_value jt_int(int64_t i) { return (jt_value){.kind = JT_INT, .as.i = i}; }
static inline jt_value jt_float(double f) { return (jt_value){.kind = JT_FLOAT, .as.f = f}; }
static inline jt_value jt_undef_plain(void) { return (jt_value){.kind = JT_UNDEF}; }

jt_value jt_undef_named(jt_arena *a, const char *name);
jt_value jt_undef_attr(jt_arena *a, jt_value obj, const char *name);
jt_value jt_undef_index(jt_arena *a, jt_value obj, int64_t index);
jt_value jt_undef_msg(jt_arena *a, const char *message);
jt_value jt_undef_unsafe(jt_arena *a, jt_value obj, const char *name);
/* The message Jinja's UndefinedError carries for this value. */
const char *jt_undef_describe(jt_arena *a, jt_value v);

/* Strings. jt_str_new copies; jt_str_lit wraps a C string literal. */
jt_value jt_str_new(jt_arena *a, const char *s, size_t n);
jt_value jt_str_cstr(jt_arena *a, const char *s);
static inline const char *jt_sdata(jt_value v) { return v.as.s->bytes; }
static inline size_t jt_slen(jt_value v) { return v.as.s->len; }
bool jt_str_eq_c(jt_value v, const char *s); /* v is a string equal to s */

/* Lists and tuples: make one of n items, then fill items[0..n). */
jt_value jt_list_new(jt_arena *a, size_t n, bool tuple);
static inline jt_value *jt_items(jt_value v) { return v.as.l->items; }
static inline size_t jt_len_list(jt_value v) { return v.as.l->n; }

/* Growable list used while building results (filters, split, ...). */
typedef struct {
    jt_arena *arena;
    size_t n, cap;
    jt_value *items;
} jt_list_builder;
void jt_lb_init(jt_list_builder *b, jt_arena *a);
void jt_lb_push(jt_list_builder *b, jt_value v);
jt_value jt_lb_finish(jt_list_builder *b, bool tuple);

/* Dicts keep insertion order; setting an existing key replaces its value. */
jt_value jt_dict_new(jt_arena *a, size_t cap);
void jt_dict_set(jt_arena *a, jt_dict *d, jt_value key, jt_value val);
/* Lookup by key; NULL when absent. */
const jt_value *jt_dict_get(const jt_dict *d, jt_value key);
const jt_value *jt_dict_get_c(const jt_dict *d, const char *key);

/* Growable string in the arena, for building results piece by piece. */
typedef struct {
    jt_arena *arena;
    char *data;
    size_t len, cap;
} jt_sb;
void jt_sb_init(jt_sb *b, jt_arena *a);
void jt_sb_add(jt_sb *b, const char *s, size_t n);
void jt_sb_addc(jt_sb *b, const char *s); /* NUL-terminated */
void jt_sb_addch(jt_sb *b, char c);
jt_value jt_sb_value(jt_sb *b); /* the string built so far */

/* ---- Python semantics --------------------------------------------------------- */

bool jt_truthy(jt_value v);
/* Python ==, deep for containers; int 1 == float 1.0 == True. */
bool jt_equal(jt_value a, jt_value b);
/* Python's name of the type ("str", "int", "list", "dict", "NoneType", ...). */
const char *jt_type_name(jt_value v);
static inline bool jt_is_number(jt_value v) {
    return v.kind == JT_INT || v.kind == JT_FLOAT || v.kind == JT_BOOL;
}
static inline bool jt_is_seq(jt_value v) { return v.kind == JT_LIST || v.kind == JT_TUPLE; }
double jt_as_double(jt_value v); /* for numbers (bool, int, float) */

#endif
