/* Jinja2's builtin tests (`x is defined`, `n is divisibleby 3`, ...), from
 * jinja2/tests.py. Python's type hierarchy shows through: a bool is a number
 * (but not an integer test-wise), a dict is a sequence. */
#include <math.h>
#include <string.h>

#include "template/interp.h"
#include "template/pystr.h"

typedef bool (*test_fn)(jt_vm *vm, jt_value v, const jt_args *a);

static jt_value one_arg(jt_vm *vm, const jt_args *a, const char *test) {
    if (a->n + a->n_kw != 1) jt_raise(vm, "the '%s' test takes one argument", test);
    return a->n ? a->pos[0] : a->kw_vals[0];
}

static bool t_defined(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind != JT_UNDEF; }
static bool t_undefined(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind == JT_UNDEF; }
static bool t_none(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind == JT_NONE; }
static bool t_string(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind == JT_STR; }
static bool t_number(jt_vm *vm, jt_value v, const jt_args *a) { return jt_is_number(v); }
static bool t_integer(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind == JT_INT; }
static bool t_float(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind == JT_FLOAT; }
static bool t_mapping(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind == JT_DICT; }
static bool t_boolean(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind == JT_BOOL; }
static bool t_true(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind == JT_BOOL && v.as.b; }
static bool t_false(jt_vm *vm, jt_value v, const jt_args *a) { return v.kind == JT_BOOL && !v.as.b; }
static bool t_callable(jt_vm *vm, jt_value v, const jt_args *a) {
    return v.kind == JT_FUNC || v.kind == JT_LOOP || v.kind == JT_UNDEF; /* Undefined has __call__ */
}
static bool t_sequence(jt_vm *vm, jt_value v, const jt_args *a) {
    return v.kind == JT_STR || jt_is_seq(v) || v.kind == JT_DICT;
}
static bool t_iterable(jt_vm *vm, jt_value v, const jt_args *a) {
    return v.kind == JT_STR || jt_is_seq(v) || v.kind == JT_DICT;
}
static bool t_lower(jt_vm *vm, jt_value v, const jt_args *a) {
    return jt_pystr_islower(jt_to_str(vm, v));
}
static bool t_upper(jt_vm *vm, jt_value v, const jt_args *a) {
    return jt_pystr_isupper(jt_to_str(vm, v));
}

static jt_value int_or_raise(jt_vm *vm, jt_value v, const char *test) {
    if (v.kind == JT_UNDEF) jt_raise_undefined(vm, v);
    if (!jt_is_number(v)) jt_raise(vm, "the '%s' test needs a number, not %s", test, jt_type_name(v));
    return v;
}

static bool t_odd(jt_vm *vm, jt_value v, const jt_args *a) {
    v = int_or_raise(vm, v, "odd");
    jt_value r = jt_binop(vm, TK_MOD, v, jt_int(2));
    return jt_equal(r, jt_int(1));
}

static bool t_even(jt_vm *vm, jt_value v, const jt_args *a) {
    v = int_or_raise(vm, v, "even");
    jt_value r = jt_binop(vm, TK_MOD, v, jt_int(2));
    return jt_equal(r, jt_int(0));
}

static bool t_divisibleby(jt_vm *vm, jt_value v, const jt_args *a) {
    v = int_or_raise(vm, v, "divisibleby");
    jt_value r = jt_binop(vm, TK_MOD, v, one_arg(vm, a, "divisibleby"));
    return jt_equal(r, jt_int(0));
}

static bool t_eq(jt_vm *vm, jt_value v, const jt_args *a) { return jt_equal(v, one_arg(vm, a, "eq")); }
static bool t_ne(jt_vm *vm, jt_value v, const jt_args *a) { return !jt_equal(v, one_arg(vm, a, "ne")); }
static bool t_lt(jt_vm *vm, jt_value v, const jt_args *a) { return jt_compare(vm, v, one_arg(vm, a, "lt")) < 0; }
static bool t_le(jt_vm *vm, jt_value v, const jt_args *a) { return jt_compare(vm, v, one_arg(vm, a, "le")) <= 0; }
static bool t_gt(jt_vm *vm, jt_value v, const jt_args *a) { return jt_compare(vm, v, one_arg(vm, a, "gt")) > 0; }
static bool t_ge(jt_vm *vm, jt_value v, const jt_args *a) { return jt_compare(vm, v, one_arg(vm, a, "ge")) >= 0; }
static bool t_in(jt_vm *vm, jt_value v, const jt_args *a) { return jt_contains(vm, one_arg(vm, a, "in"), v); }

/* `sameas`: Python identity; for the immutable values here, kind and content. */
static bool t_sameas(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_value o = one_arg(vm, a, "sameas");
    if (v.kind != o.kind) return false;
    switch (v.kind) {
    case JT_NONE: case JT_UNDEF: return true;
    case JT_BOOL: return v.as.b == o.as.b;
    case JT_INT: return v.as.i == o.as.i;
    case JT_FLOAT: return v.as.f == o.as.f;
    case JT_STR: return v.as.s == o.as.s;
    case JT_LIST: case JT_TUPLE: return v.as.l == o.as.l;
    case JT_DICT: case JT_NS: return v.as.d == o.as.d;
    default: return jt_equal(v, o);
    }
}

static bool t_filter(jt_vm *vm, jt_value v, const jt_args *a) {
    return v.kind == JT_STR && jt_has_filter(jt_sdata(v));
}
static bool t_test(jt_vm *vm, jt_value v, const jt_args *a) {
    return v.kind == JT_STR && jt_has_test(jt_sdata(v));
}
static bool t_escaped(jt_vm *vm, jt_value v, const jt_args *a) { return false; }

static const struct {
    const char *name;
    test_fn fn;
} tests[] = {
    {"defined", t_defined},   {"undefined", t_undefined}, {"none", t_none},
    {"string", t_string},     {"number", t_number},       {"integer", t_integer},
    {"float", t_float},       {"mapping", t_mapping},     {"sequence", t_sequence},
    {"iterable", t_iterable}, {"boolean", t_boolean},     {"true", t_true},
    {"false", t_false},       {"callable", t_callable},   {"lower", t_lower},
    {"upper", t_upper},       {"odd", t_odd},             {"even", t_even},
    {"divisibleby", t_divisibleby}, {"eq", t_eq},         {"equalto", t_eq},
    {"==", t_eq},             {"ne", t_ne},               {"!=", t_ne},
    {"lt", t_lt},             {"lessthan", t_lt},         {"<", t_lt},
    {"le", t_le},             {"<=", t_le},               {"gt", t_gt},
    {"greaterthan", t_gt},    {">", t_gt},                {"ge", t_ge},
    {">=", t_ge},             {"in", t_in},               {"sameas", t_sameas},
    {"filter", t_filter},     {"test", t_test},           {"escaped", t_escaped},
};

static test_fn find_test(const char *name) {
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!strcmp(tests[i].name, name)) return tests[i].fn;
    return NULL;
}

bool jt_has_test(const char *name) { return find_test(name) != NULL; }

bool jt_apply_test(jt_vm *vm, const char *name, jt_value operand, const jt_args *args) {
    test_fn fn = find_test(name);
    if (!fn) jt_raise(vm, "No test named '%s'.", name);
    return fn(vm, operand, args);
}
