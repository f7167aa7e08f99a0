/* Global functions a chat template can call: Jinja2's range (capped at
 * 100000 items like the sandbox's safe_range), dict and namespace, and
 * transformers' raise_exception and strftime_now. Also the `loop` object's
 * attributes and its cycle()/changed() helpers. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "template/interp.h"

#define MAX_RANGE 100000 /* jinja2.sandbox.MAX_RANGE */

static int64_t int_of(jt_vm *vm, jt_value v, const char *fname) {
    if (v.kind == JT_INT) return v.as.i;
    if (v.kind == JT_BOOL) return v.as.b;
    if (v.kind == JT_UNDEF) jt_raise_undefined(vm, v);
    jt_raise(vm, "'%s' object cannot be interpreted as an integer (in %s)", jt_type_name(v), fname);
}

static jt_value g_range(jt_vm *vm, jt_value self, const jt_args *a) {
    jt_check_args(vm, "range", a, 3, NULL);
    if (a->n == 0) jt_raise(vm, "range expected at least 1 argument, got 0");
    int64_t start = 0, stop, step = 1;
    if (a->n == 1) stop = int_of(vm, a->pos[0], "range");
    else {
        start = int_of(vm, a->pos[0], "range");
        stop = int_of(vm, a->pos[1], "range");
        if (a->n == 3) step = int_of(vm, a->pos[2], "range");
    }
    if (step == 0) jt_raise(vm, "range() arg 3 must not be zero");
    int64_t count = 0;
    if (step > 0 && stop > start) count = (stop - start - 1) / step + 1;
    if (step < 0 && stop < start) count = (start - stop - 1) / (-step) + 1;
    if (count > MAX_RANGE)
        jt_raise(vm, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
    jt_value l = jt_list_new(vm->arena, (size_t)count, false);
    for (int64_t i = 0; i < count; i++) jt_items(l)[i] = jt_int(start + i * step);
    return l;
}

/* dict(mapping_or_pairs?, **kwargs) and namespace(...) build the same way. */
static jt_value build_dict(jt_vm *vm, const jt_args *a, const char *fname) {
    if (a->n > 1) jt_raise(vm, "%s expected at most 1 argument, got %zu", fname, a->n);
    jt_value d = jt_dict_new(vm->arena, a->n_kw + 4);
    if (a->n == 1) {
        jt_value src = a->pos[0];
        if (src.kind == JT_DICT || src.kind == JT_NS) {
            for (size_t i = 0; i < src.as.d->n; i++) jt_dict_set(vm->arena, d.as.d, src.as.d->keys[i], src.as.d->vals[i]);
        } else {
            jt_value pairs = jt_iterate(vm, src);
            for (size_t i = 0; i < pairs.as.l->n; i++) {
                jt_value p = jt_iterate(vm, pairs.as.l->items[i]);
                if (p.as.l->n != 2)
                    jt_raise(vm, "dictionary update sequence element #%zu has length %zu; 2 is required", i, p.as.l->n);
                jt_dict_set(vm->arena, d.as.d, p.as.l->items[0], p.as.l->items[1]);
            }
        }
    }
    for (size_t i = 0; i < a->n_kw; i++)
        jt_dict_set(vm->arena, d.as.d, jt_str_cstr(vm->arena, a->kw_names[i]), a->kw_vals[i]);
    return d;
}

static jt_value g_dict(jt_vm *vm, jt_value self, const jt_args *a) { return build_dict(vm, a, "dict"); }

static jt_value g_namespace(jt_vm *vm, jt_value self, const jt_args *a) {
    jt_value d = build_dict(vm, a, "namespace");
    d.kind = JT_NS;
    return d;
}

static jt_value g_raise_exception(jt_vm *vm, jt_value self, const jt_args *a) {
    jt_value msg = a->n ? jt_to_str(vm, a->pos[0]) : jt_str_new(vm->arena, "", 0);
    jt_raise(vm, "%s", jt_sdata(msg));
}

static jt_value g_strftime_now(jt_vm *vm, jt_value self, const jt_args *a) {
    jt_check_args(vm, "strftime_now", a, 1, NULL);
    if (a->n != 1 || a->pos[0].kind != JT_STR) jt_raise(vm, "strftime_now expects a format string");
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char buf[512];
    size_t n = strftime(buf, sizeof buf, jt_sdata(a->pos[0]), &tm);
    if (n == 0 && jt_slen(a->pos[0]) > 0) jt_raise(vm, "strftime_now: format too long or empty result");
    return jt_str_new(vm->arena, buf, n);
}

jt_value jt_global(jt_vm *vm, const char *name, bool *found) {
    static const struct {
        const char *name;
        jt_builtin_fn fn;
    } globals[] = {
        {"range", g_range},
        {"dict", g_dict},
        {"namespace", g_namespace},
        {"raise_exception", g_raise_exception},
        {"strftime_now", g_strftime_now},
    };
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (!strcmp(globals[i].name, name)) {
            *found = true;
            return jt_make_builtin(vm, globals[i].name, globals[i].fn, jt_none());
        }
    *found = false;
    return jt_undef_plain();
}

/* ---- loop ------------------------------------------------------------------------- */

static jt_value loop_cycle(jt_vm *vm, jt_value self, const jt_args *a) {
    if (a->n == 0) jt_raise(vm, "no items for cycling given");
    return a->pos[self.as.loop->index0 % a->n];
}

static jt_value loop_changed(jt_vm *vm, jt_value self, const jt_args *a) {
    jt_loop *loop = self.as.loop;
    jt_value now = jt_list_new(vm->arena, a->n, true);
    for (size_t i = 0; i < a->n; i++) jt_items(now)[i] = a->pos[i];
    if (loop->changed_called && jt_equal(loop->last_changed, now)) return jt_bool(false);
    loop->changed_called = true;
    loop->last_changed = now;
    return jt_bool(true);
}

jt_value jt_loop_attr(jt_vm *vm, jt_value v, const char *name) {
    jt_loop *loop = v.as.loop;
    int64_t i = (int64_t)loop->index0, n = (int64_t)loop->items.as.l->n;
    if (!strcmp(name, "index")) return jt_int(i + 1);
    if (!strcmp(name, "index0")) return jt_int(i);
    if (!strcmp(name, "revindex")) return jt_int(n - i);
    if (!strcmp(name, "revindex0")) return jt_int(n - i - 1);
    if (!strcmp(name, "first")) return jt_bool(i == 0);
    if (!strcmp(name, "last")) return jt_bool(i == n - 1);
    if (!strcmp(name, "length")) return jt_int(n);
    if (!strcmp(name, "depth")) return jt_int(loop->depth);
    if (!strcmp(name, "depth0")) return jt_int(loop->depth - 1);
    if (!strcmp(name, "previtem"))
        return i > 0 ? loop->items.as.l->items[i - 1] : jt_undef_msg(vm->arena, "there is no previous item");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? loop->items.as.l->items[i + 1] : jt_undef_msg(vm->arena, "there is no next item");
    if (!strcmp(name, "cycle")) return jt_make_builtin(vm, "cycle", loop_cycle, v);
    if (!strcmp(name, "changed")) return jt_make_builtin(vm, "changed", loop_changed, v);
    return jt_undef_attr(vm->arena, v, name);
}
