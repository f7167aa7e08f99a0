/* The grammar matcher (matcher.h): stack-set states, interned and linked by
 * byte as they are met. A state is stored as its stacks in sorted order,
 * each written as its length then its positions (bottom first), so equal
 * sets have equal words and a hash of the words finds them. */
#include "grammar/matcher.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define UNKNOWN (-3)            /* a successor not worked out yet */
#define EXPAND_WORK_MAX 200000 /* expansions in one step: beyond, the grammar is runaway */
#define EXPAND_NESTING_MAX 2048 /* expand's own recursion (the thread's stack) */

typedef struct {
    uint32_t *w;
    size_t n, cap;
} words;

struct lg_matcher {
    const lg_grammar *g;
    words arena;      /* every state's words */
    size_t *state_at; /* state i: arena.w[state_at[i] .. state_at[i + 1]) */
    bool *accepting;
    int32_t *next; /* [state][256]: successor, LG_MATCHER_DEAD or UNKNOWN */
    int n_states, cap_states;
    int32_t *slots; /* hash table of state ids, -1 empty; cap_slots a power of two */
    size_t cap_slots;
    /* one step's work */
    uint32_t stack[LG_MATCHER_MAX_DEPTH + 2];
    words out;    /* the stacks found, each [len, positions...] */
    size_t *found; /* where each starts in out */
    int n_found;
    long work;
    int nesting;
    const char *error;
};

static bool words_reserve(words *v, size_t more) {
    if (v->n + more <= v->cap) return true;
    size_t c = v->cap ? v->cap * 2 : 256;
    while (c < v->n + more) c *= 2;
    uint32_t *w = realloc(v->w, c * sizeof *w);
    if (!w) return false;
    v->w = w, v->cap = c;
    return true;
}

laguna_status lg_matcher_new(const lg_grammar *g, lg_matcher **out, laguna_error *err) {
    lg_matcher *m = calloc(1, sizeof *m);
    if (m) m->found = malloc(sizeof *m->found * LG_MATCHER_MAX_STACKS);
    if (!m || !m->found) {
        free(m);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    m->g = g;
    *out = m;
    return LAGUNA_OK;
}

void lg_matcher_free(lg_matcher *m) {
    if (!m) return;
    free(m->arena.w);
    free(m->state_at);
    free(m->accepting);
    free(m->next);
    free(m->slots);
    free(m->out.w);
    free(m->found);
    free(m);
}

const char *lg_matcher_error(const lg_matcher *m) { return m->error ? m->error : "no error"; }
int lg_matcher_n_states(const lg_matcher *m) { return m->n_states; }
const int32_t *lg_matcher_table(const lg_matcher *m) { return m->next; }
bool lg_matcher_accepting(const lg_matcher *m, int s) { return s >= 0 && s < m->n_states && m->accepting[s]; }

/* ---- expansion: stacks until each top is a byte class ------------------------------ */

static void found(lg_matcher *m, int len) {
    if (m->n_found >= LG_MATCHER_MAX_STACKS) {
        m->error = "the grammar is too ambiguous (too many parses at once)";
        return;
    }
    if (!words_reserve(&m->out, (size_t)len + 1)) {
        m->error = "out of memory";
        return;
    }
    m->found[m->n_found++] = m->out.n;
    m->out.w[m->out.n++] = (uint32_t)len;
    memcpy(m->out.w + m->out.n, m->stack, sizeof(uint32_t) * (size_t)len);
    m->out.n += (size_t)len;
}

static void expand(lg_matcher *m, int len);

/* One level of expand: the top of m->stack[0..len). */
static void expand_top(lg_matcher *m, int len) {
    if (len == 0) {
        found(m, 0);
        return;
    }
    const lg_grammar *g = m->g;
    uint32_t p = m->stack[len - 1], e = g->elems[p];
    if (LG_GRAMMAR_KIND(e) == LG_GRAMMAR_BYTES) {
        found(m, len);
    } else if (LG_GRAMMAR_KIND(e) == LG_GRAMMAR_END) {
        expand(m, len - 1); /* the alternative is done: back to its caller */
    } else {
        uint32_t r = LG_GRAMMAR_ARG(e);
        /* the position after the reference, unless the alternative ends
         * there (a tail call: right recursion keeps the stack flat) */
        bool ret = g->elems[p + 1] != LG_GRAMMAR_END;
        int base = ret ? len : len - 1;
        if (base >= LG_MATCHER_MAX_DEPTH) {
            m->error = "nested deeper than the grammar matcher allows";
            return;
        }
        uint32_t saved_top = m->stack[len - 1], saved_above = m->stack[len];
        if (ret) m->stack[len - 1] = p + 1;
        for (uint32_t a = g->rule_at[r]; a < g->rule_at[r + 1] && !m->error; a++) {
            m->stack[base] = g->alt_at[a];
            expand(m, base + 1);
        }
        m->stack[len - 1] = saved_top, m->stack[len] = saved_above;
    }
}

/* Expands m->stack[0..len) until every stack found has a byte class on top
 * (or is empty); every write above len is undone before returning, so
 * callers may go on with the same stack. The recursion is bounded: a
 * grammar that expands without end (left recursion) is an error. */
static void expand(lg_matcher *m, int len) {
    if (m->error) return;
    if (++m->work > EXPAND_WORK_MAX || m->nesting >= EXPAND_NESTING_MAX) {
        m->error = "the grammar does not terminate (left recursion)";
        return;
    }
    m->nesting++;
    expand_top(m, len);
    m->nesting--;
}

/* ---- interning --------------------------------------------------------------------- */

static const uint32_t *found_at(const lg_matcher *m, int i) { return m->out.w + m->found[i]; }

static int cmp_stacks(const uint32_t *a, const uint32_t *b) {
    uint32_t n = a[0] < b[0] ? a[0] : b[0];
    for (uint32_t i = 1; i <= n; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return a[0] == b[0] ? 0 : a[0] < b[0] ? -1 : 1;
}

/* Insertion sort of the found stacks' offsets (a state holds few stacks). */
static void sort_found(lg_matcher *m) {
    for (int i = 1; i < m->n_found; i++) {
        size_t x = m->found[i];
        int j = i - 1;
        while (j >= 0 && cmp_stacks(m->out.w + m->found[j], m->out.w + x) > 0) {
            m->found[j + 1] = m->found[j];
            j--;
        }
        m->found[j + 1] = x;
    }
}

static uint64_t hash_words(const uint32_t *w, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ w[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static const uint32_t *state_words(const lg_matcher *m, int s, size_t *n) {
    *n = m->state_at[s + 1] - m->state_at[s];
    return m->arena.w + m->state_at[s];
}

static bool rehash(lg_matcher *m, size_t cap) {
    int32_t *slots = malloc(sizeof *slots * cap);
    if (!slots) return false;
    memset(slots, -1, sizeof *slots * cap);
    for (int s = 0; s < m->n_states; s++) {
        size_t n;
        const uint32_t *w = state_words(m, s, &n);
        size_t i = hash_words(w, n) & (cap - 1);
        while (slots[i] >= 0) i = (i + 1) & (cap - 1);
        slots[i] = s;
    }
    free(m->slots);
    m->slots = slots, m->cap_slots = cap;
    return true;
}

static bool add_state_room(lg_matcher *m) {
    if (m->n_states + 1 < m->cap_states) return true;
    int c = m->cap_states ? m->cap_states * 2 : 64;
    size_t *at = realloc(m->state_at, sizeof *at * (size_t)(c + 1));
    if (at) m->state_at = at;
    bool *acc = realloc(m->accepting, sizeof *acc * (size_t)c);
    if (acc) m->accepting = acc;
    int32_t *next = realloc(m->next, sizeof *next * 256 * (size_t)c);
    if (next) m->next = next;
    if (!at || !acc || !next) return false;
    m->cap_states = c;
    return true;
}

/* The state of the found stacks (sorted, duplicates dropped), added when new. */
static int intern(lg_matcher *m) {
    if (m->error) return LG_MATCHER_ERROR;
    if (m->n_found == 0) return LG_MATCHER_DEAD;
    sort_found(m);
    size_t start = m->arena.n;
    bool accepting = false;
    for (int i = 0; i < m->n_found; i++) {
        const uint32_t *st = found_at(m, i);
        if (i > 0 && cmp_stacks(found_at(m, i - 1), st) == 0) continue;
        if (!words_reserve(&m->arena, st[0] + 1)) {
            m->arena.n = start;
            m->error = "out of memory";
            return LG_MATCHER_ERROR;
        }
        memcpy(m->arena.w + m->arena.n, st, sizeof(uint32_t) * (st[0] + 1));
        m->arena.n += st[0] + 1;
        accepting |= st[0] == 0;
    }
    size_t n = m->arena.n - start;
    const uint32_t *w = m->arena.w + start;
    uint64_t h = hash_words(w, n);
    if (m->cap_slots) {
        for (size_t i = h & (m->cap_slots - 1); m->slots[i] >= 0; i = (i + 1) & (m->cap_slots - 1)) {
            size_t sn;
            const uint32_t *sw = state_words(m, m->slots[i], &sn);
            if (sn == n && !memcmp(sw, w, n * sizeof *w)) {
                m->arena.n = start; /* known: drop the copy */
                return m->slots[i];
            }
        }
    }
    if (!add_state_room(m) || ((size_t)(m->n_states + 1) * 2 > m->cap_slots && !rehash(m, m->cap_slots ? m->cap_slots * 2 : 128))) {
        m->arena.n = start;
        m->error = "out of memory";
        return LG_MATCHER_ERROR;
    }
    int s = m->n_states++;
    m->state_at[s] = start, m->state_at[s + 1] = m->arena.n;
    m->accepting[s] = accepting;
    for (int b = 0; b < 256; b++) m->next[(size_t)s * 256 + b] = UNKNOWN;
    size_t i = h & (m->cap_slots - 1);
    while (m->slots[i] >= 0) i = (i + 1) & (m->cap_slots - 1);
    m->slots[i] = s;
    return s;
}

static void begin_work(lg_matcher *m) {
    m->out.n = 0, m->n_found = 0, m->work = 0, m->nesting = 0, m->error = NULL;
}

int lg_matcher_start(lg_matcher *m) {
    begin_work(m);
    /* no grammar position refers to the root: its alternatives start the stacks */
    const lg_grammar *g = m->g;
    for (uint32_t a = g->rule_at[g->root]; a < g->rule_at[g->root + 1] && !m->error; a++) {
        m->stack[0] = g->alt_at[a];
        expand(m, 1);
    }
    return intern(m);
}

int lg_matcher_step(lg_matcher *m, int s, uint8_t b) {
    if (s < 0 || s >= m->n_states) return LG_MATCHER_DEAD;
    int32_t *slot = &m->next[(size_t)s * 256 + b];
    if (*slot != UNKNOWN) return *slot;
    begin_work(m);
    size_t n;
    const uint32_t *w = state_words(m, s, &n);
    const lg_grammar *g = m->g;
    for (size_t i = 0; i < n && !m->error; i += w[i] + 1) {
        uint32_t len = w[i];
        if (len == 0) continue;
        uint32_t p = w[i + len]; /* the top: a byte class (states hold expanded stacks) */
        if (!lg_byte_class_has(&g->classes[LG_GRAMMAR_ARG(g->elems[p])], b)) continue;
        memcpy(m->stack, w + i + 1, sizeof(uint32_t) * len);
        m->stack[len - 1] = p + 1;
        expand(m, (int)len);
    }
    int t = intern(m);
    /* the state array may have moved */
    if (t != LG_MATCHER_ERROR) m->next[(size_t)s * 256 + b] = t;
    return t;
}

void lg_matcher_forget(lg_matcher *m, int *s) {
    size_t n;
    const uint32_t *w = state_words(m, *s, &n);
    uint32_t *keep = malloc(sizeof *keep * (n ? n : 1));
    if (!keep) return; /* keep everything: still correct */
    memcpy(keep, w, sizeof *keep * n);
    m->n_states = 0, m->arena.n = 0;
    if (m->cap_slots) memset(m->slots, -1, sizeof *m->slots * m->cap_slots);
    begin_work(m);
    for (size_t i = 0; i < n; i += keep[i] + 1) {
        memcpy(m->stack, keep + i + 1, sizeof(uint32_t) * keep[i]);
        found(m, (int)keep[i]);
    }
    free(keep);
    *s = intern(m);
}
