/* Python's printf-style `str % args` (and the `format` filter, which is the
 * same operation) for the conversions chat templates use: %s %r %d %i %u %o
 * %x %X %e %E %f %F %g %G and %%, with the flags -+ #0, a width and a
 * precision.
 *
 * The width and precision come from the template, so they are parsed here and
 * never handed to snprintf: "%9999999999s" does not fit an int, and
 * "%2147483647d" would make libc build 2 GB of padding. Both are capped at the
 * render's output limit (larger text could never be rendered anyway) and the
 * padding is built in the render's arena, whose cap bounds the total. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "template/format.h"
#include "template/interp.h"
#include "template/unicode.h"

#define MAX_VALUE_DEPTH 512

typedef struct {
    bool left, plus, space, alt, zero;
    size_t width;
    bool has_prec;
    size_t prec;
} pct_spec;

/* Reads a decimal field at s[*i], raising when it exceeds the cap. */
static size_t read_count(jt_vm *vm, const char *s, size_t n, size_t *i, size_t cap,
                         const char *what) {
    size_t v = 0;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
        v = v * 10 + (size_t)(s[*i] - '0');
        if (v > cap) jt_raise(vm, "format %s too big (the limit is %zu)", what, cap);
        (*i)++;
    }
    return v;
}

static void add_fill(jt_sb *b, char c, size_t count) {
    char chunk[256];
    memset(chunk, c, sizeof chunk);
    while (count) {
        size_t k = count < sizeof chunk ? count : sizeof chunk;
        jt_sb_add(b, chunk, k);
        count -= k;
    }
}

/* Appends body (sign and prefix first, `lead` bytes of it) padded to the
 * width; zero padding goes after the sign and prefix, as in Python. `chars`
 * is body's length in characters. */
static void add_padded(jt_sb *b, const pct_spec *sp, const char *body, size_t len, size_t chars,
                       size_t lead, bool numeric) {
    size_t pad = sp->width > chars ? sp->width - chars : 0;
    if (sp->left) {
        jt_sb_add(b, body, len);
        add_fill(b, ' ', pad);
    } else if (sp->zero && numeric) {
        jt_sb_add(b, body, lead);
        add_fill(b, '0', pad);
        jt_sb_add(b, body + lead, len - lead);
    } else {
        add_fill(b, ' ', pad);
        jt_sb_add(b, body, len);
    }
}

static void format_text(jt_vm *vm, jt_sb *b, const pct_spec *sp, jt_value text) {
    const char *s = jt_sdata(text);
    size_t len = jt_slen(text);
    if (sp->has_prec) len = jt_utf8_offset(s, len, sp->prec); /* precision counts characters */
    add_padded(b, sp, s, len, jt_utf8_count(s, len), 0, false);
}

static void format_int(jt_vm *vm, jt_sb *b, const pct_spec *sp, char conv, jt_value a) {
    int64_t v;
    if (a.kind == JT_FLOAT) {
        double f = a.as.f;
        if (isnan(f)) jt_raise(vm, "cannot convert float NaN to integer");
        if (isinf(f)) jt_raise(vm, "cannot convert float infinity to integer");
        /* -2^63 <= f < 2^63, the doubles that truncate into an int64 */
        if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0))
            jt_raise(vm, "%%%c format: number too large (%g)", conv, f);
        v = (int64_t)f;
    } else {
        v = a.kind == JT_BOOL ? (int64_t)a.as.b : a.as.i;
    }
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char digits[32], head[4];
    size_t nh = 0;
    if (v < 0) head[nh++] = '-';
    else if (sp->plus) head[nh++] = '+';
    else if (sp->space) head[nh++] = ' ';
    const char *fmt = "%" PRIu64;
    if (conv == 'o') fmt = "%" PRIo64;
    else if (conv == 'x') fmt = "%" PRIx64;
    else if (conv == 'X') fmt = "%" PRIX64;
    if (sp->alt && (conv == 'o' || conv == 'x' || conv == 'X')) { /* Python: 0o17, 0x1f, 0X1F */
        head[nh++] = '0';
        head[nh++] = conv == 'o' ? 'o' : conv;
    }
    size_t nd = (size_t)snprintf(digits, sizeof digits, fmt, mag);
    size_t zeros = sp->has_prec && sp->prec > nd ? sp->prec - nd : 0;
    jt_sb body;
    jt_sb_init(&body, vm->arena);
    jt_sb_add(&body, head, nh);
    add_fill(&body, '0', zeros);
    jt_sb_add(&body, digits, nd);
    add_padded(b, sp, body.data, body.len, body.len, nh, true);
}

static void format_float(jt_vm *vm, jt_sb *b, const pct_spec *sp, char conv, double f) {
    char spec[16];
    size_t k = 0;
    spec[k++] = '%';
    if (sp->plus) spec[k++] = '+';
    else if (sp->space) spec[k++] = ' ';
    if (sp->alt) spec[k++] = '#';
    spec[k++] = '.';
    spec[k++] = '*';
    spec[k++] = conv;
    spec[k] = 0;
    int prec = sp->has_prec ? (int)sp->prec : 6; /* the cap keeps it far below INT_MAX */
    int len = snprintf(NULL, 0, spec, prec, f);
    if (len < 0) jt_raise(vm, "cannot format the number %g", f);
    char *body = jt_alloc(vm->arena, (size_t)len + 1);
    snprintf(body, (size_t)len + 1, spec, prec, f);
    size_t lead = body[0] == '-' || body[0] == '+' || body[0] == ' ' ? 1 : 0;
    bool finite = isfinite(f);
    add_padded(b, sp, body, (size_t)len, (size_t)len, lead, finite);
}

jt_value jt_percent_format(jt_vm *vm, jt_value fmt, jt_value args) {
    size_t argc = 1, used = 0;
    const jt_value *argv = &args;
    if (args.kind == JT_TUPLE) {
        argc = args.as.l->n;
        argv = args.as.l->items;
    }
    size_t cap = vm->limits.max_output_bytes;
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    const char *s = jt_sdata(fmt);
    size_t n = jt_slen(fmt);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            jt_sb_addch(&b, s[i]);
            continue;
        }
        i++;
        pct_spec sp = {0};
        for (; i < n && strchr("-+ #0", s[i]); i++) {
            if (s[i] == '-') sp.left = true;
            else if (s[i] == '+') sp.plus = true;
            else if (s[i] == ' ') sp.space = true;
            else if (s[i] == '#') sp.alt = true;
            else sp.zero = true;
        }
        sp.width = read_count(vm, s, n, &i, cap, "width");
        if (i < n && s[i] == '.') {
            i++;
            sp.has_prec = true;
            sp.prec = read_count(vm, s, n, &i, cap, "precision");
        }
        if (i >= n) jt_raise(vm, "incomplete format");
        char conv = s[i];
        if (conv == '%') {
            jt_sb_addch(&b, '%');
            continue;
        }
        if (used >= argc) jt_raise(vm, "not enough arguments for format string");
        jt_value a = argv[used++];
        if (conv == 's' || conv == 'r') {
            jt_value text = a;
            if (conv == 'r') {
                jt_sb tmp;
                jt_sb_init(&tmp, vm->arena);
                if (!jt_write_repr(&tmp, a, MAX_VALUE_DEPTH)) jt_raise(vm, "value nested too deeply to print");
                text = jt_sb_value(&tmp);
            } else {
                text = jt_to_str(vm, a);
            }
            format_text(vm, &b, &sp, text);
        } else if (strchr("diouxX", conv)) {
            if (!jt_is_number(a))
                jt_raise(vm, "%%%c format: a real number is required, not %s", conv, jt_type_name(a));
            format_int(vm, &b, &sp, conv, a);
        } else if (strchr("eEfFgG", conv)) {
            if (!jt_is_number(a)) jt_raise(vm, "must be real number, not %s", jt_type_name(a));
            format_float(vm, &b, &sp, conv, jt_as_double(a));
        } else {
            jt_raise(vm, "unsupported format character '%c'", conv);
        }
        if (b.len > cap) jt_raise(vm, "formatted string exceeds %zu bytes", cap);
    }
    if (used < argc && args.kind == JT_TUPLE)
        jt_raise(vm, "not all arguments converted during string formatting");
    return jt_sb_value(&b);
}
