/* Expression evaluation with Python's semantics as Jinja2 runs them:
 * arithmetic and its TypeErrors, comparisons, `in`, attribute and item
 * lookup the way jinja2's sandbox does it (attribute first for `.`, item
 * first for `[]`, missing ones give Undefined), slicing, calls. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "template/format.h"
#include "template/interp.h"
#include "template/unicode.h"

#define MAX_VALUE_DEPTH 512

_Noreturn void jt_raise_undefined(jt_vm *vm, jt_value v) {
    jt_raise(vm, "%s", jt_undef_describe(vm->arena, v));
}

jt_value jt_to_str(jt_vm *vm, jt_value v) {
    if (v.kind == JT_STR) return v;
    if (v.kind == JT_UNDEF) return jt_str_new(vm->arena, "", 0);
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    if (!jt_write_str(&b, v, MAX_VALUE_DEPTH)) jt_raise(vm, "value nested too deeply to print");
    return jt_sb_value(&b);
}

int64_t jt_length(jt_vm *vm, jt_value v) {
    switch (v.kind) {
    case JT_STR: return v.as.s->ascii ? (int64_t)v.as.s->len : (int64_t)jt_utf8_count(jt_sdata(v), jt_slen(v));
    case JT_LIST:
    case JT_TUPLE: return (int64_t)v.as.l->n;
    case JT_DICT:
    case JT_NS: return (int64_t)v.as.d->n;
    case JT_UNDEF: return 0;
    default: jt_raise(vm, "object of type '%s' has no len()", jt_type_name(v));
    }
}

jt_value jt_iterate(jt_vm *vm, jt_value v) {
    switch (v.kind) {
    case JT_LIST:
    case JT_TUPLE: return v;
    case JT_UNDEF:
        if (v.as.u && v.as.u->unsafe) jt_raise_undefined(vm, v);
        return jt_list_new(vm->arena, 0, false);
    case JT_DICT: {
        jt_value l = jt_list_new(vm->arena, v.as.d->n, false);
        for (size_t i = 0; i < v.as.d->n; i++) jt_items(l)[i] = v.as.d->keys[i];
        return l;
    }
    case JT_STR: {
        jt_list_builder b;
        jt_lb_init(&b, vm->arena);
        const char *s = jt_sdata(v);
        size_t n = jt_slen(v), pos = 0;
        while (pos < n) {
            size_t start = pos;
            jt_utf8_next(s, n, &pos);
            jt_lb_push(&b, jt_str_new(vm->arena, s + start, pos - start));
        }
        return jt_lb_finish(&b, false);
    }
    default: jt_raise(vm, "'%s' object is not iterable", jt_type_name(v));
    }
}

/* ---- comparisons --------------------------------------------------------------------- */

static int cmp_bytes(jt_value a, jt_value b) {
    size_t n = a.as.s->len < b.as.s->len ? a.as.s->len : b.as.s->len;
    int c = memcmp(a.as.s->bytes, b.as.s->bytes, n);
    if (c) return c < 0 ? -1 : 1;
    return a.as.s->len < b.as.s->len ? -1 : a.as.s->len > b.as.s->len;
}

int jt_compare(jt_vm *vm, jt_value a, jt_value b) {
    if (a.kind == JT_UNDEF) jt_raise_undefined(vm, a);
    if (b.kind == JT_UNDEF) jt_raise_undefined(vm, b);
    if (jt_is_number(a) && jt_is_number(b)) {
        if (a.kind != JT_FLOAT && b.kind != JT_FLOAT) {
            int64_t x = a.kind == JT_BOOL ? a.as.b : a.as.i, y = b.kind == JT_BOOL ? b.as.b : b.as.i;
            return x < y ? -1 : x > y;
        }
        double x = jt_as_double(a), y = jt_as_double(b);
        return x < y ? -1 : x > y;
    }
    if (a.kind == JT_STR && b.kind == JT_STR) return cmp_bytes(a, b);
    if (a.kind == b.kind && jt_is_seq(a)) {
        size_t n = a.as.l->n < b.as.l->n ? a.as.l->n : b.as.l->n;
        for (size_t i = 0; i < n; i++)
            if (!jt_equal(a.as.l->items[i], b.as.l->items[i]))
                return jt_compare(vm, a.as.l->items[i], b.as.l->items[i]);
        return a.as.l->n < b.as.l->n ? -1 : a.as.l->n > b.as.l->n;
    }
    jt_raise(vm, "'<' not supported between instances of '%s' and '%s'", jt_type_name(a),
             jt_type_name(b));
}

bool jt_contains(jt_vm *vm, jt_value container, jt_value item) {
    switch (container.kind) {
    case JT_STR:
        if (item.kind == JT_UNDEF) jt_raise_undefined(vm, item);
        if (item.kind != JT_STR)
            jt_raise(vm, "'in <string>' requires string as left operand, not %s", jt_type_name(item));
        if (jt_slen(item) == 0) return true;
        return memmem(jt_sdata(container), jt_slen(container), jt_sdata(item), jt_slen(item)) != NULL;
    case JT_LIST:
    case JT_TUPLE:
        for (size_t i = 0; i < container.as.l->n; i++)
            if (jt_equal(container.as.l->items[i], item)) return true;
        return false;
    case JT_DICT:
    case JT_NS: return jt_dict_get(container.as.d, item) != NULL;
    case JT_UNDEF: return false;
    default: jt_raise(vm, "argument of type '%s' is not iterable", jt_type_name(container));
    }
}

static bool compare_op(jt_vm *vm, int op, jt_value a, jt_value b) {
    switch (op) {
    case TK_EQ: return jt_equal(a, b);
    case TK_NE: return !jt_equal(a, b);
    case TK_LT: return jt_compare(vm, a, b) < 0;
    case TK_LTEQ: return jt_compare(vm, a, b) <= 0;
    case TK_GT: return jt_compare(vm, a, b) > 0;
    case TK_GTEQ: return jt_compare(vm, a, b) >= 0;
    case OP_IN: return jt_contains(vm, b, a);
    case OP_NOTIN: return !jt_contains(vm, b, a);
    default: jt_raise(vm, "unknown comparison");
    }
}

/* ---- arithmetic ---------------------------------------------------------------------- */

static const char *op_text(int op) {
    switch (op) {
    case TK_ADD: return "+";
    case TK_SUB: return "-";
    case TK_MUL: return "*";
    case TK_DIV: return "/";
    case TK_FLOORDIV: return "//";
    case TK_MOD: return "%";
    default: return "** or pow()";
    }
}

static int64_t as_int(jt_value v) { return v.kind == JT_BOOL ? (int64_t)v.as.b : v.as.i; }

static jt_value repeat(jt_vm *vm, jt_value seq, int64_t times) {
    if (times < 0) times = 0;
    if (seq.kind == JT_STR) {
        if (times > 0 && jt_slen(seq) > (SIZE_MAX / 4) / (size_t)times) jt_raise(vm, "string too large");
        jt_sb b;
        jt_sb_init(&b, vm->arena);
        for (int64_t i = 0; i < times; i++) jt_sb_add(&b, jt_sdata(seq), jt_slen(seq));
        return jt_sb_value(&b);
    }
    size_t n = seq.as.l->n;
    if (times > 0 && n > (SIZE_MAX / 64) / (size_t)times) jt_raise(vm, "list too large");
    jt_value l = jt_list_new(vm->arena, n * (size_t)times, seq.kind == JT_TUPLE);
    for (int64_t i = 0; n > 0 && i < times; i++) /* an empty list has no items array */
        memcpy(jt_items(l) + (size_t)i * n, seq.as.l->items, n * sizeof(jt_value));
    return l;
}

jt_value jt_binop(jt_vm *vm, int op, jt_value a, jt_value b) {
    if (a.kind == JT_UNDEF) jt_raise_undefined(vm, a);
    if (b.kind == JT_UNDEF) jt_raise_undefined(vm, b);
    bool nums = jt_is_number(a) && jt_is_number(b);
    bool ints = nums && a.kind != JT_FLOAT && b.kind != JT_FLOAT;
    int64_t x = ints ? as_int(a) : 0, y = ints ? as_int(b) : 0, r;
    switch (op) {
    case TK_ADD:
        if (ints) {
            if (__builtin_add_overflow(x, y, &r)) jt_raise(vm, "integer overflow");
            return jt_int(r);
        }
        if (nums) return jt_float(jt_as_double(a) + jt_as_double(b));
        if (a.kind == JT_STR && b.kind == JT_STR && (a.markup || b.markup)) {
            /* Markup + str (or str + Markup): the plain string is escaped,
             * the sum is Markup (markupsafe's __add__ / __radd__) */
            a = jt_html_escape(vm, a);
            b = jt_html_escape(vm, b);
        }
        if (a.kind == JT_STR && b.kind == JT_STR) {
            bool markup = a.markup || b.markup;
            jt_sb s;
            jt_sb_init(&s, vm->arena);
            jt_sb_add(&s, jt_sdata(a), jt_slen(a));
            jt_sb_add(&s, jt_sdata(b), jt_slen(b));
            jt_value sum = jt_sb_value(&s);
            sum.markup = markup;
            return sum;
        }
        if (jt_is_seq(a) && a.kind == b.kind) {
            size_t n = a.as.l->n, m = b.as.l->n;
            jt_value l = jt_list_new(vm->arena, n + m, a.kind == JT_TUPLE);
            if (n) memcpy(jt_items(l), a.as.l->items, n * sizeof(jt_value));
            if (m) memcpy(jt_items(l) + n, b.as.l->items, m * sizeof(jt_value));
            return l;
        }
        if (a.kind == JT_STR || jt_is_seq(a))
            jt_raise(vm, "can only concatenate %s (not \"%s\") to %s", jt_type_name(a), jt_type_name(b),
                     jt_type_name(a));
        break;
    case TK_SUB:
        if (ints) {
            if (__builtin_sub_overflow(x, y, &r)) jt_raise(vm, "integer overflow");
            return jt_int(r);
        }
        if (nums) return jt_float(jt_as_double(a) - jt_as_double(b));
        break;
    case TK_MUL:
        if (ints) {
            if (__builtin_mul_overflow(x, y, &r)) jt_raise(vm, "integer overflow");
            return jt_int(r);
        }
        if (nums) return jt_float(jt_as_double(a) * jt_as_double(b));
        if ((a.kind == JT_STR || jt_is_seq(a)) && jt_is_number(b) && b.kind != JT_FLOAT)
            return repeat(vm, a, as_int(b));
        if ((b.kind == JT_STR || jt_is_seq(b)) && jt_is_number(a) && a.kind != JT_FLOAT)
            return repeat(vm, b, as_int(a));
        if (a.kind == JT_STR || jt_is_seq(a))
            jt_raise(vm, "can't multiply sequence by non-int of type '%s'", jt_type_name(b));
        break;
    case TK_DIV:
        if (nums) {
            if (jt_as_double(b) == 0) jt_raise(vm, "division by zero");
            return jt_float(jt_as_double(a) / jt_as_double(b));
        }
        break;
    case TK_FLOORDIV:
        if (ints) {
            if (y == 0) jt_raise(vm, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) jt_raise(vm, "integer overflow");
            int64_t q = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
            return jt_int(q);
        }
        if (nums) {
            if (jt_as_double(b) == 0) jt_raise(vm, "float floor division by zero");
            return jt_float(floor(jt_as_double(a) / jt_as_double(b)));
        }
        break;
    case TK_MOD:
        if (ints) {
            if (y == 0) jt_raise(vm, "integer modulo by zero");
            if (y == -1) return jt_int(0);
            int64_t m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            return jt_int(m);
        }
        if (nums) {
            double fa = jt_as_double(a), fb = jt_as_double(b);
            if (fb == 0) jt_raise(vm, "float modulo");
            double m = fmod(fa, fb);
            if (m != 0 && ((m < 0) != (fb < 0))) m += fb;
            return jt_float(m);
        }
        if (a.kind == JT_STR) return jt_percent_format(vm, a, b);
        break;
    case TK_POW:
        if (ints && y >= 0) {
            int64_t acc = 1, base = x;
            int64_t e = y;
            while (e > 0) {
                if (e & 1)
                    if (__builtin_mul_overflow(acc, base, &acc)) jt_raise(vm, "integer overflow");
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base)) jt_raise(vm, "integer overflow");
            }
            return jt_int(acc);
        }
        if (nums) {
            double fa = jt_as_double(a), fb = jt_as_double(b);
            if (fa == 0 && fb < 0) jt_raise(vm, "0.0 cannot be raised to a negative power");
            return jt_float(pow(fa, fb));
        }
        break;
    }
    jt_raise(vm, "unsupported operand type(s) for %s: '%s' and '%s'", op_text(op), jt_type_name(a),
             jt_type_name(b));
}

/* ---- lookup ------------------------------------------------------------------------ */

jt_value jt_getattr(jt_vm *vm, jt_value obj, const char *name) {
    bool found;
    switch (obj.kind) {
    case JT_UNDEF: jt_raise_undefined(vm, obj);
    case JT_DICT: {
        jt_value m = jt_method(vm, obj, name, &found);
        if (found) return m;
        const jt_value *v = jt_dict_get_c(obj.as.d, name);
        if (v) return *v;
        break;
    }
    case JT_NS: {
        const jt_value *v = jt_dict_get_c(obj.as.d, name);
        if (v) return *v;
        break;
    }
    case JT_LOOP: return jt_loop_attr(vm, obj, name);
    case JT_STR:
    case JT_LIST:
    case JT_TUPLE: {
        jt_value m = jt_method(vm, obj, name, &found);
        if (found) return m;
        break;
    }
    default: break;
    }
    return jt_undef_attr(vm->arena, obj, name);
}

static bool index_of(jt_value key, int64_t *out) {
    if (key.kind == JT_INT) *out = key.as.i;
    else if (key.kind == JT_BOOL) *out = key.as.b;
    else return false;
    return true;
}

jt_value jt_getitem(jt_vm *vm, jt_value obj, jt_value key) {
    int64_t i;
    if (obj.kind == JT_UNDEF) jt_raise_undefined(vm, obj);
    if (key.kind == JT_UNDEF && obj.kind != JT_DICT) jt_raise_undefined(vm, key);
    switch (obj.kind) {
    case JT_DICT:
    case JT_NS: {
        const jt_value *v = jt_dict_get(obj.as.d, key);
        if (v) return *v;
        break;
    }
    case JT_LIST:
    case JT_TUPLE:
        if (index_of(key, &i)) {
            int64_t n = (int64_t)obj.as.l->n;
            if (i < 0) i += n;
            if (i >= 0 && i < n) return obj.as.l->items[i];
            return jt_undef_index(vm->arena, obj, index_of(key, &i) ? i : 0);
        }
        break;
    case JT_STR:
        if (index_of(key, &i)) {
            const char *s = jt_sdata(obj);
            size_t n = jt_slen(obj);
            int64_t len = jt_length(vm, obj);
            int64_t j = i < 0 ? i + len : i;
            if (j >= 0 && j < len) {
                size_t start = obj.as.s->ascii ? (size_t)j : jt_utf8_offset(s, n, (size_t)j);
                size_t end = start;
                jt_utf8_next(s, n, &end);
                return jt_str_new(vm->arena, s + start, end - start);
            }
            return jt_undef_index(vm->arena, obj, i);
        }
        break;
    default: break;
    }
    if (key.kind == JT_STR) return jt_getattr(vm, obj, jt_sdata(key));
    if (index_of(key, &i)) return jt_undef_index(vm->arena, obj, i);
    return jt_undef_attr(vm->arena, obj, "?");
}

/* Python's slice.indices(): clamps start/stop for a sequence of length n. */
static void slice_indices(jt_vm *vm, jt_value vstart, jt_value vstop, jt_value vstep, int64_t n,
                          int64_t *start, int64_t *stop, int64_t *step) {
    jt_value parts[3] = {vstart, vstop, vstep};
    int64_t vals[3];
    bool has[3];
    for (int k = 0; k < 3; k++) {
        has[k] = parts[k].kind != JT_NONE;
        if (has[k] && !index_of(parts[k], &vals[k])) {
            if (parts[k].kind == JT_UNDEF) jt_raise_undefined(vm, parts[k]);
            jt_raise(vm, "slice indices must be integers or None or have an __index__ method");
        }
    }
    *step = has[2] ? vals[2] : 1;
    if (*step == 0) jt_raise(vm, "slice step cannot be zero");
    if (*step > 0) {
        *start = has[0] ? vals[0] : 0;
        *stop = has[1] ? vals[1] : n;
        if (*start < 0) *start = *start + n < 0 ? 0 : *start + n;
        if (*start > n) *start = n;
        if (*stop < 0) *stop = *stop + n < 0 ? 0 : *stop + n;
        if (*stop > n) *stop = n;
    } else {
        *start = has[0] ? vals[0] : n - 1;
        *stop = has[1] ? vals[1] : -1 - n; /* "before the beginning" */
        if (*start < 0) *start = *start + n < 0 ? -1 : *start + n;
        if (*start >= n) *start = n - 1;
        if (has[1]) {
            if (*stop < 0) *stop = *stop + n < 0 ? -1 : *stop + n;
            if (*stop >= n) *stop = n - 1;
        } else *stop = -1;
    }
}

jt_value jt_slice(jt_vm *vm, jt_value obj, jt_value start, jt_value stop, jt_value step) {
    if (obj.kind == JT_UNDEF) jt_raise_undefined(vm, obj);
    if (obj.kind != JT_STR && !jt_is_seq(obj))
        return jt_undef_attr(vm->arena, obj, "slice"); /* e.g. dicts: Jinja gives Undefined */
    int64_t n = jt_length(vm, obj), a, b, st;
    slice_indices(vm, start, stop, step, n, &a, &b, &st);
    if (obj.kind == JT_STR) {
        const char *s = jt_sdata(obj);
        size_t len = jt_slen(obj);
        if (st == 1) {
            if (b <= a) return jt_str_new(vm->arena, "", 0);
            size_t o1 = obj.as.s->ascii ? (size_t)a : jt_utf8_offset(s, len, (size_t)a);
            size_t o2 = obj.as.s->ascii ? (size_t)b : o1 + jt_utf8_offset(s + o1, len - o1, (size_t)(b - a));
            return jt_str_new(vm->arena, s + o1, o2 - o1);
        }
        /* general step: index code points */
        size_t *offs = jt_alloc(vm->arena, ((size_t)n + 1) * sizeof *offs);
        size_t pos = 0;
        for (int64_t k = 0; k < n; k++) {
            offs[k] = pos;
            jt_utf8_next(s, len, &pos);
        }
        offs[n] = len;
        jt_sb sb;
        jt_sb_init(&sb, vm->arena);
        for (int64_t k = a; st > 0 ? k < b : k > b; k += st)
            jt_sb_add(&sb, s + offs[k], offs[k + 1] - offs[k]);
        return jt_sb_value(&sb);
    }
    jt_list_builder lb;
    jt_lb_init(&lb, vm->arena);
    for (int64_t k = a; st > 0 ? k < b : k > b; k += st) jt_lb_push(&lb, obj.as.l->items[k]);
    return jt_lb_finish(&lb, obj.kind == JT_TUPLE);
}

/* ---- calls ------------------------------------------------------------------------- */

jt_value jt_arg(const jt_args *a, size_t index, const char *name, jt_value dflt, bool *given) {
    if (given) *given = true;
    if (index < a->n) return a->pos[index];
    for (size_t i = 0; name && i < a->n_kw; i++)
        if (!strcmp(a->kw_names[i], name)) return a->kw_vals[i];
    if (given) *given = false;
    return dflt;
}

void jt_check_args(jt_vm *vm, const char *fname, const jt_args *a, size_t max_pos,
                   const char *const *names) {
    if (a->n > max_pos)
        jt_raise(vm, "%s() takes at most %zu positional argument(s) (%zu given)", fname, max_pos, a->n);
    for (size_t i = 0; i < a->n_kw; i++) {
        bool known = false;
        for (size_t k = 0; names && names[k]; k++)
            if (!strcmp(names[k], a->kw_names[i])) known = true;
        if (!known) jt_raise(vm, "%s() got an unexpected keyword argument '%s'", fname, a->kw_names[i]);
    }
}

jt_value jt_make_builtin(jt_vm *vm, const char *name, jt_builtin_fn fn, jt_value self) {
    jt_func *f = jt_alloc(vm->arena, sizeof *f);
    f->kind = JT_FN_BUILTIN;
    f->name = name;
    f->fn = fn;
    f->self = self;
    return (jt_value){.kind = JT_FUNC, .as.fn = f};
}

jt_value jt_call(jt_vm *vm, jt_value callee, const jt_args *args) {
    jt_step(vm);
    switch (callee.kind) {
    case JT_FUNC:
        if (callee.as.fn->kind == JT_FN_MACRO) return jt_call_macro(vm, callee.as.fn, args);
        return callee.as.fn->fn(vm, callee.as.fn->self, args);
    case JT_LOOP:
        if (!callee.as.loop->for_node || !callee.as.loop->for_node->op)
            jt_raise(vm, "Tried to call non recursive loop.  Maybe you forgot the 'recursive' modifier.");
        if (args->n != 1) jt_raise(vm, "loop() takes exactly one argument");
        return jt_loop_recurse(vm, callee.as.loop, args->pos[0]);
    case JT_UNDEF: jt_raise_undefined(vm, callee);
    default: jt_raise(vm, "'%s' object is not callable", jt_type_name(callee));
    }
}

/* Evaluates call arguments, with *args and **kwargs spread in. */
static void eval_args(jt_vm *vm, jt_scope *scope, const jt_node *n, jt_args *out, size_t extra_kw) {
    jt_value dyn_args = n->c ? jt_eval(vm, scope, n->c) : jt_none();
    jt_value dyn_kwargs = n->d ? jt_eval(vm, scope, n->d) : jt_none();
    size_t n_dyn = 0, n_dynkw = 0;
    if (n->c) {
        dyn_args = jt_iterate(vm, dyn_args);
        n_dyn = dyn_args.as.l->n;
    }
    if (n->d) {
        if (dyn_kwargs.kind != JT_DICT) jt_raise(vm, "argument after ** must be a mapping");
        n_dynkw = dyn_kwargs.as.d->n;
    }
    jt_value *pos = jt_alloc(vm->arena, (n->args.n + n_dyn + 1) * sizeof *pos);
    for (size_t i = 0; i < n->args.n; i++) pos[i] = jt_eval(vm, scope, n->args.v[i]);
    for (size_t i = 0; i < n_dyn; i++) pos[n->args.n + i] = dyn_args.as.l->items[i];
    size_t nkw = n->kwargs.n + n_dynkw;
    const char **names = jt_alloc(vm->arena, (nkw + extra_kw + 1) * sizeof *names);
    jt_value *vals = jt_alloc(vm->arena, (nkw + extra_kw + 1) * sizeof *vals);
    for (size_t i = 0; i < n->kwargs.n; i++) {
        names[i] = n->kwargs.v[i]->name;
        vals[i] = jt_eval(vm, scope, n->kwargs.v[i]->a);
    }
    for (size_t i = 0; i < n_dynkw; i++) {
        jt_value k = dyn_kwargs.as.d->keys[i];
        if (k.kind != JT_STR) jt_raise(vm, "keywords must be strings");
        names[n->kwargs.n + i] = jt_sdata(k);
        vals[n->kwargs.n + i] = dyn_kwargs.as.d->vals[i];
    }
    *out = (jt_args){n->args.n + n_dyn, pos, nkw, names, vals};
}

/* A call node evaluated with one more keyword argument (used by {% call %}
 * to pass caller=). */
jt_value jt_eval_call_with(jt_vm *vm, jt_scope *scope, const jt_node *call, const char *kw,
                           jt_value kw_val) {
    jt_value callee = jt_eval(vm, scope, call->a);
    jt_args args;
    eval_args(vm, scope, call, &args, 1);
    ((const char **)args.kw_names)[args.n_kw] = kw;
    ((jt_value *)args.kw_vals)[args.n_kw] = kw_val;
    args.n_kw++;
    vm->line = call->line;
    return jt_call(vm, callee, &args);
}

/* Every expression level (filter chains included) passes through here, so
 * the C stack an expression can use is bounded whatever the parser let
 * through. */
static void enter_expr(jt_vm *vm) {
    if (++vm->expr_depth > JT_MAX_EXPR_DEPTH)
        jt_raise(vm, "expression nested too deeply (more than %d levels)", JT_MAX_EXPR_DEPTH);
}

jt_value jt_eval_filter(jt_vm *vm, jt_scope *scope, const jt_node *n, jt_value hole) {
    if (!n) return hole;
    enter_expr(vm);
    jt_value operand = !n->a ? hole
                       : n->a->kind == N_FILTER ? jt_eval_filter(vm, scope, n->a, hole)
                                                : jt_eval(vm, scope, n->a);
    jt_args args;
    eval_args(vm, scope, n, &args, 0);
    vm->line = n->line;
    jt_value v = jt_apply_filter(vm, n->name, operand, &args);
    vm->expr_depth--;
    return v;
}

/* ---- the evaluator ---------------------------------------------------------------- */

static jt_value eval_node(jt_vm *vm, jt_scope *scope, const jt_node *n);

jt_value jt_eval(jt_vm *vm, jt_scope *scope, const jt_node *n) {
    enter_expr(vm);
    jt_value v = eval_node(vm, scope, n);
    vm->expr_depth--;
    return v;
}

static jt_value eval_node(jt_vm *vm, jt_scope *scope, const jt_node *n) {
    vm->line = n->line;
    switch (n->kind) {
    case N_CONST: return n->value;
    case N_NAME: return jt_lookup(vm, scope, n->name);
    case N_GETATTR: {
        jt_value obj = jt_eval(vm, scope, n->a);
        vm->line = n->line;
        return jt_getattr(vm, obj, n->name);
    }
    case N_GETITEM: {
        jt_value obj = jt_eval(vm, scope, n->a);
        if (n->b->kind == N_SLICE) {
            const jt_node *s = n->b;
            jt_value a = s->a ? jt_eval(vm, scope, s->a) : jt_none();
            jt_value b = s->b ? jt_eval(vm, scope, s->b) : jt_none();
            jt_value c = s->c ? jt_eval(vm, scope, s->c) : jt_none();
            vm->line = n->line;
            return jt_slice(vm, obj, a, b, c);
        }
        jt_value key = jt_eval(vm, scope, n->b);
        vm->line = n->line;
        return jt_getitem(vm, obj, key);
    }
    case N_CALL: {
        jt_value callee = jt_eval(vm, scope, n->a);
        jt_args args;
        eval_args(vm, scope, n, &args, 0);
        vm->line = n->line;
        return jt_call(vm, callee, &args);
    }
    case N_FILTER: return jt_eval_filter(vm, scope, n, jt_undef_plain());
    case N_TEST: {
        jt_value operand = jt_eval(vm, scope, n->a);
        jt_args args;
        eval_args(vm, scope, n, &args, 0);
        vm->line = n->line;
        return jt_bool(jt_apply_test(vm, n->name, operand, &args));
    }
    case N_NOT: return jt_bool(!jt_truthy(jt_eval(vm, scope, n->a)));
    case N_NEG:
    case N_POS: {
        jt_value v = jt_eval(vm, scope, n->a);
        vm->line = n->line;
        if (v.kind == JT_UNDEF) jt_raise_undefined(vm, v);
        if (v.kind == JT_BOOL) v = jt_int(v.as.b);
        if (n->kind == N_POS && jt_is_number(v)) return v;
        if (v.kind == JT_INT) {
            if (v.as.i == INT64_MIN) jt_raise(vm, "integer overflow");
            return jt_int(-v.as.i);
        }
        if (v.kind == JT_FLOAT) return jt_float(-v.as.f);
        jt_raise(vm, "bad operand type for unary %c: '%s'", n->kind == N_NEG ? '-' : '+', jt_type_name(v));
    }
    case N_BINOP: {
        jt_value a = jt_eval(vm, scope, n->a);
        jt_value b = jt_eval(vm, scope, n->b);
        vm->line = n->line;
        return jt_binop(vm, n->op, a, b);
    }
    case N_AND: {
        jt_value a = jt_eval(vm, scope, n->a);
        return jt_truthy(a) ? jt_eval(vm, scope, n->b) : a;
    }
    case N_OR: {
        jt_value a = jt_eval(vm, scope, n->a);
        return jt_truthy(a) ? a : jt_eval(vm, scope, n->b);
    }
    case N_COMPARE: {
        jt_value left = jt_eval(vm, scope, n->a);
        for (size_t i = 0; i < n->args.n; i++) {
            const jt_node *o = n->args.v[i];
            jt_value right = jt_eval(vm, scope, o->a);
            vm->line = o->line;
            if (!compare_op(vm, o->op, left, right)) return jt_bool(false);
            left = right;
        }
        return jt_bool(true);
    }
    case N_CONCAT: {
        jt_sb b;
        jt_sb_init(&b, vm->arena);
        for (size_t i = 0; i < n->args.n; i++) {
            jt_value v = jt_to_str(vm, jt_eval(vm, scope, n->args.v[i]));
            jt_sb_add(&b, jt_sdata(v), jt_slen(v));
        }
        return jt_sb_value(&b);
    }
    case N_CONDEXPR:
        if (jt_truthy(jt_eval(vm, scope, n->a))) return jt_eval(vm, scope, n->b);
        if (n->c) return jt_eval(vm, scope, n->c);
        return jt_undef_msg(vm->arena, "the inline if-expression evaluated to false and no else "
                                       "section was defined.");
    case N_LIST:
    case N_TUPLE: {
        jt_value l = jt_list_new(vm->arena, n->args.n, n->kind == N_TUPLE);
        for (size_t i = 0; i < n->args.n; i++) jt_items(l)[i] = jt_eval(vm, scope, n->args.v[i]);
        return l;
    }
    case N_DICT: {
        jt_value d = jt_dict_new(vm->arena, n->args.n);
        for (size_t i = 0; i < n->args.n; i++) {
            jt_value k = jt_eval(vm, scope, n->args.v[i]);
            jt_value v = jt_eval(vm, scope, n->kwargs.v[i]);
            if (k.kind == JT_LIST || k.kind == JT_DICT || k.kind == JT_NS)
                jt_raise(vm, "unhashable type: '%s'", jt_type_name(k));
            jt_dict_set(vm->arena, d.as.d, k, v);
        }
        return d;
    }
    default: jt_raise(vm, "cannot evaluate this expression");
    }
}
