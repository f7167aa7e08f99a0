/* Building grammars (grammar.h): rules of alternatives collected one by one,
 * byte classes shared, then frozen into flat arrays for the matcher. */
#include "grammar/grammar.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct {
    uint32_t *e;
    int n;
} stored_alt;

typedef struct {
    stored_alt *alts;
    int n, cap;
} stored_rule;

struct lg_grammar_builder {
    stored_rule *rules;
    int n_rules, cap_rules;
    lg_byte_class *classes;
    int n_classes, cap_classes;
    int32_t single[256]; /* the class of byte b alone, or -1 */
    size_t n_elems;
    const char *failure; /* the first failure, or NULL */
};

static bool grow(void **p, int *cap, int need, size_t size) {
    if (need <= *cap) return true;
    int c = *cap ? *cap * 2 : 8;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * size);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static void fail(lg_grammar_builder *b, const char *why) {
    if (!b->failure) b->failure = why;
}

lg_grammar_builder *lg_gb_new(void) {
    lg_grammar_builder *b = calloc(1, sizeof *b);
    if (b) memset(b->single, -1, sizeof b->single);
    return b;
}

void lg_gb_free(lg_grammar_builder *b) {
    if (!b) return;
    for (int r = 0; r < b->n_rules; r++) {
        for (int a = 0; a < b->rules[r].n; a++) free(b->rules[r].alts[a].e);
        free(b->rules[r].alts);
    }
    free(b->rules);
    free(b->classes);
    free(b);
}

int lg_gb_rule(lg_grammar_builder *b) {
    if (b->failure) return -1;
    if (b->n_rules >= LG_GRAMMAR_MAX_RULES) {
        fail(b, "the schema needs too many grammar rules");
        return -1;
    }
    if (!grow((void **)&b->rules, &b->cap_rules, b->n_rules + 1, sizeof *b->rules)) {
        fail(b, "out of memory");
        return -1;
    }
    b->rules[b->n_rules] = (stored_rule){0};
    return b->n_rules++;
}

static void push(lg_gb_seq *s, uint32_t e) {
    if (s->oom) return;
    if (!grow((void **)&s->e, &s->cap, s->n + 1, sizeof *s->e)) {
        s->oom = true;
        return;
    }
    s->e[s->n++] = e;
}

static int class_index(lg_grammar_builder *b, const lg_byte_class *c) {
    for (int i = 0; i < b->n_classes; i++)
        if (!memcmp(&b->classes[i], c, sizeof *c)) return i;
    if (!grow((void **)&b->classes, &b->cap_classes, b->n_classes + 1, sizeof *b->classes)) {
        fail(b, "out of memory");
        return 0;
    }
    b->classes[b->n_classes] = *c;
    return b->n_classes++;
}

void lg_gb_class(lg_grammar_builder *b, lg_gb_seq *s, const lg_byte_class *c) {
    push(s, LG_GRAMMAR_BYTES | (uint32_t)class_index(b, c));
}

void lg_gb_byte(lg_grammar_builder *b, lg_gb_seq *s, uint8_t ch) {
    if (b->single[ch] < 0) {
        lg_byte_class c = {{0}};
        lg_byte_class_range(&c, ch, ch);
        b->single[ch] = class_index(b, &c);
    }
    push(s, LG_GRAMMAR_BYTES | (uint32_t)b->single[ch]);
}

void lg_gb_text(lg_grammar_builder *b, lg_gb_seq *s, const char *text, size_t len) {
    for (size_t i = 0; i < len; i++) lg_gb_byte(b, s, (uint8_t)text[i]);
}

void lg_gb_ref(lg_gb_seq *s, int r) {
    if (r < 0) s->oom = true; /* a failed rule: the builder has the reason */
    else push(s, LG_GRAMMAR_RULE | (uint32_t)r);
}

void lg_gb_add(lg_grammar_builder *b, int r, lg_gb_seq *s) {
    if (s->oom) fail(b, "out of memory");
    if (b->failure || r < 0) {
        s->n = 0, s->oom = false;
        return;
    }
    stored_rule *rule = &b->rules[r];
    b->n_elems += (size_t)s->n + 1;
    if (b->n_elems > LG_GRAMMAR_MAX_ELEMENTS) fail(b, "the schema needs too large a grammar");
    uint32_t *e = malloc(sizeof *e * (size_t)(s->n ? s->n : 1));
    if (b->failure || !e || !grow((void **)&rule->alts, &rule->cap, rule->n + 1, sizeof *rule->alts)) {
        free(e);
        fail(b, "out of memory");
        s->n = 0;
        return;
    }
    if (s->n) memcpy(e, s->e, sizeof *e * (size_t)s->n);
    rule->alts[rule->n++] = (stored_alt){e, s->n};
    s->n = 0;
}

void lg_gb_seq_free(lg_gb_seq *s) {
    free(s->e);
    *s = (lg_gb_seq){0};
}

int lg_gb_either(lg_grammar_builder *b, int a, int c) {
    int r = lg_gb_rule(b);
    lg_gb_seq s = {0};
    lg_gb_ref(&s, a);
    lg_gb_add(b, r, &s);
    lg_gb_ref(&s, c);
    lg_gb_add(b, r, &s);
    lg_gb_seq_free(&s);
    return b->failure ? -1 : r;
}

int lg_gb_repeat_any(lg_grammar_builder *b, int item, int lo) {
    /* more ::= item more | empty; then lo items before it */
    int more = lg_gb_rule(b), r = lg_gb_rule(b);
    lg_gb_seq s = {0};
    lg_gb_ref(&s, item);
    lg_gb_ref(&s, more);
    lg_gb_add(b, more, &s);
    lg_gb_add(b, more, &s);
    for (int i = 0; i < lo; i++) lg_gb_ref(&s, item);
    lg_gb_ref(&s, more);
    lg_gb_add(b, r, &s);
    lg_gb_seq_free(&s);
    return b->failure ? -1 : r;
}

int lg_gb_repeat(lg_grammar_builder *b, int item, int lo, int hi) {
    /* up_to[k] ::= item up_to[k - 1] | empty, right-nested so that the
     * matcher's stacks stay flat; then lo items before up_to[hi - lo] */
    int tail = lg_gb_rule(b);
    lg_gb_seq s = {0};
    lg_gb_add(b, tail, &s); /* up_to[0]: empty */
    for (int k = 1; k <= hi - lo && !b->failure; k++) {
        int next = lg_gb_rule(b);
        lg_gb_ref(&s, item);
        lg_gb_ref(&s, tail);
        lg_gb_add(b, next, &s);
        lg_gb_add(b, next, &s);
        tail = next;
    }
    int r = lg_gb_rule(b);
    for (int i = 0; i < lo; i++) lg_gb_ref(&s, item);
    lg_gb_ref(&s, tail);
    lg_gb_add(b, r, &s);
    lg_gb_seq_free(&s);
    return b->failure ? -1 : r;
}

int lg_gb_class_rule(lg_grammar_builder *b, const lg_byte_class *c) {
    int r = lg_gb_rule(b);
    lg_gb_seq s = {0};
    lg_gb_class(b, &s, c);
    lg_gb_add(b, r, &s);
    lg_gb_seq_free(&s);
    return b->failure ? -1 : r;
}

laguna_status lg_gb_build(lg_grammar_builder *b, int root, lg_grammar *g, laguna_error *err) {
    memset(g, 0, sizeof *g);
    if (!b->failure && (root < 0 || root >= b->n_rules)) fail(b, "no grammar to build");
    if (b->failure) return lg_fail(err, strcmp(b->failure, "out of memory") ? LAGUNA_ERR_ARGUMENT : LAGUNA_ERR_NOMEM,
                                   "%s", b->failure);
    int n_alts = 0;
    for (int r = 0; r < b->n_rules; r++) n_alts += b->rules[r].n;
    g->elems = malloc(sizeof *g->elems * (b->n_elems ? b->n_elems : 1));
    g->alt_at = malloc(sizeof *g->alt_at * (size_t)(n_alts + 1));
    g->rule_at = malloc(sizeof *g->rule_at * (size_t)(b->n_rules + 1));
    g->classes = malloc(sizeof *g->classes * (size_t)(b->n_classes ? b->n_classes : 1));
    if (!g->elems || !g->alt_at || !g->rule_at || !g->classes) {
        lg_grammar_free(g);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    size_t at = 0;
    int a_at = 0;
    for (int r = 0; r < b->n_rules; r++) {
        g->rule_at[r] = (uint32_t)a_at;
        for (int a = 0; a < b->rules[r].n; a++) {
            const stored_alt *alt = &b->rules[r].alts[a];
            g->alt_at[a_at++] = (uint32_t)at;
            memcpy(g->elems + at, alt->e, sizeof *alt->e * (size_t)alt->n);
            at += (size_t)alt->n;
            g->elems[at++] = LG_GRAMMAR_END;
        }
    }
    g->rule_at[b->n_rules] = (uint32_t)a_at;
    g->alt_at[a_at] = (uint32_t)at;
    if (b->n_classes) memcpy(g->classes, b->classes, sizeof *g->classes * (size_t)b->n_classes);
    g->n_rules = b->n_rules, g->n_alts = n_alts, g->n_classes = b->n_classes, g->n_elems = at, g->root = root;
    return LAGUNA_OK;
}

void lg_grammar_free(lg_grammar *g) {
    if (!g) return;
    free(g->elems);
    free(g->alt_at);
    free(g->rule_at);
    free(g->classes);
    memset(g, 0, sizeof *g);
}

void lg_byte_class_range(lg_byte_class *c, uint8_t lo, uint8_t hi) {
    for (int v = lo; v <= hi; v++) c->bits[v >> 6] |= 1ull << (v & 63);
}

void lg_byte_class_chars(lg_byte_class *c, const char *chars) {
    for (; *chars; chars++) lg_byte_class_range(c, (uint8_t)*chars, (uint8_t)*chars);
}
