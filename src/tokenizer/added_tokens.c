/* Matching added tokens in text: leftmost-longest search over a byte trie
 * and the single_word / lstrip / rstrip rules of tokenizers'
 * added_vocabulary.rs. */
#include "tokenizer/added_tokens.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/unicode.h"

static void trie_free(lg_token_trie *t) {
    lg_pairmap_free(&t->edges);
    free(t->terminal);
    *t = (lg_token_trie){0};
}

void lg_added_vocab_free(lg_added_vocab *v) {
    for (size_t i = 0; i < v->n; i++) {
        if (v->tokens[i].pattern != v->tokens[i].content) free(v->tokens[i].pattern);
        free(v->tokens[i].content);
    }
    free(v->tokens);
    lg_strmap_free(&v->by_content);
    trie_free(&v->raw);
    trie_free(&v->normalized);
    *v = (lg_added_vocab){0};
}

int32_t lg_added_vocab_find(const lg_added_vocab *v, const char *content, size_t len) {
    int32_t index;
    return lg_strmap_get(&v->by_content, content, len, &index) ? index : -1;
}

static char *dup_bytes(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

bool lg_added_vocab_add(lg_added_vocab *v, const char *content, size_t len, int32_t id,
                        bool single_word, bool lstrip, bool rstrip, bool normalized, bool special,
                        const char *pattern, size_t pattern_len) {
    lg_added_token t = {.id = id,
                        .single_word = single_word,
                        .lstrip = lstrip,
                        .rstrip = rstrip,
                        .normalized = normalized,
                        .special = special};
    t.content = dup_bytes(content, len);
    t.len = len;
    t.pattern = pattern ? dup_bytes(pattern, pattern_len) : t.content;
    t.pattern_len = pattern ? pattern_len : len;
    if (!t.content || !t.pattern) goto fail;
    int32_t index = lg_added_vocab_find(v, content, len);
    if (index >= 0) {
        /* the same content again replaces the earlier entry */
        lg_added_token *old = &v->tokens[index];
        if (old->pattern != old->content) free(old->pattern);
        free(old->content);
        *old = t;
        return true;
    }
    if (!lg_grow((void **)&v->tokens, &v->cap, v->n + 1, sizeof *v->tokens)) goto fail;
    if (!lg_strmap_put(&v->by_content, content, len, (int32_t)v->n)) goto fail;
    v->tokens[v->n++] = t;
    return true;
fail:
    if (t.pattern != t.content) free(t.pattern);
    free(t.content);
    return false;
}

static int32_t trie_new_node(lg_token_trie *t) {
    if (!lg_grow((void **)&t->terminal, &t->cap_nodes, t->n_nodes + 1, sizeof *t->terminal))
        return -1;
    t->terminal[t->n_nodes] = -1;
    return (int32_t)t->n_nodes++;
}

static bool trie_build(lg_token_trie *t, const lg_added_vocab *v, bool normalized) {
    trie_free(t);
    t->empty = true;
    if (trie_new_node(t) < 0) return false;
    for (size_t i = 0; i < v->n; i++) {
        const lg_added_token *tok = &v->tokens[i];
        if (tok->normalized != normalized || tok->pattern_len == 0) continue;
        int32_t node = 0;
        for (size_t j = 0; j < tok->pattern_len; j++) {
            unsigned char b = (unsigned char)tok->pattern[j];
            const lg_pairmap_slot *e = lg_pairmap_get(&t->edges, node, b);
            if (e) {
                node = e->new_id;
                continue;
            }
            int32_t child = trie_new_node(t);
            if (child < 0 || !lg_pairmap_put(&t->edges, node, b, 0, child)) return false;
            node = child;
        }
        /* a later token with the same pattern wins, like a map insert */
        t->terminal[node] = (int32_t)i;
        t->first_byte[(unsigned char)tok->pattern[0]] = true;
        t->empty = false;
    }
    return true;
}

bool lg_added_vocab_build(lg_added_vocab *v) {
    return trie_build(&v->raw, v, false) && trie_build(&v->normalized, v, true);
}

/* The leftmost-longest match at or after `from`; false when none. */
static bool trie_find(const lg_token_trie *t, const char *s, size_t n, size_t from, size_t *start,
                      size_t *end, int32_t *token) {
    for (size_t i = from; i < n; i++) {
        if (!t->first_byte[(unsigned char)s[i]]) continue;
        int32_t node = 0, best = -1;
        size_t best_end = 0;
        for (size_t j = i; j < n; j++) {
            const lg_pairmap_slot *e = lg_pairmap_get(&t->edges, node, (unsigned char)s[j]);
            if (!e) break;
            node = e->new_id;
            if (t->terminal[node] >= 0) best = t->terminal[node], best_end = j + 1;
        }
        if (best >= 0) {
            *start = i, *end = best_end, *token = best;
            return true;
        }
    }
    return false;
}

/* The character ending just before byte `at`. */
static uint32_t char_before(const char *s, size_t at, size_t *start) {
    size_t j = at - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
        j--;
    uint32_t cp;
    lg_utf8_get(s + j, &cp);
    if (start) *start = j;
    return cp;
}

void lg_added_vocab_split(const lg_added_vocab *v, bool normalized, const lg_piece *piece,
                          const lg_buf *arena, lg_pieces *out) {
    const lg_token_trie *t = normalized ? &v->normalized : &v->raw;
    const char *s = arena->data + piece->off;
    size_t n = piece->len;
    if (t->empty) {
        lg_pieces_add(out, *piece);
        return;
    }
    size_t start_offset = 0, search = 0, mstart, mend;
    int32_t index;
    while (trie_find(t, s, n, search, &mstart, &mend, &index)) {
        search = mend; /* the search goes on after the match itself */
        const lg_added_token *tok = &v->tokens[index];
        size_t start = mstart, stop = mend;
        uint32_t cp;
        if (tok->single_word) {
            bool word_before = start > 0 && lg_uni_is_word(char_before(s, start, NULL));
            bool word_after = stop < n && (lg_utf8_get(s + stop, &cp), lg_uni_is_word(cp));
            if (word_before || word_after) continue;
        }
        if (tok->lstrip) {
            /* back over the whitespace before the match, but not into the
             * previous match */
            size_t j = start, k;
            while (j > 0 && lg_uni_is_whitespace(char_before(s, j, &k)))
                j = k;
            start = j > start_offset ? j : start_offset;
        }
        if (tok->rstrip)
            while (stop < n) {
                size_t k = lg_utf8_get(s + stop, &cp);
                if (!lg_uni_is_whitespace(cp)) break;
                stop += k;
            }
        if (start_offset < start)
            lg_pieces_add(out, (lg_piece){piece->off + (uint32_t)start_offset,
                                          (uint32_t)(start - start_offset), -1,
                                          piece->at_origin && start_offset == 0});
        lg_pieces_add(out, (lg_piece){piece->off + (uint32_t)start, (uint32_t)(stop - start),
                                      tok->id, false});
        start_offset = stop;
    }
    if (start_offset < n)
        lg_pieces_add(out,
                      (lg_piece){piece->off + (uint32_t)start_offset, (uint32_t)(n - start_offset),
                                 -1, piece->at_origin && start_offset == 0});
}
