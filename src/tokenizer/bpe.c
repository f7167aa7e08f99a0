/* BPE: loading vocab and merges, and tokenizing one word the way tokenizers'
 * models/bpe/model.rs (merge_word) and word.rs (merge_all) do. */
#include "tokenizer/bpe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/strbuf.h"
#include "tokenizer/unicode.h"

/* Ids may leave holes, but not absurdly many (the id table is dense). */
#define LG_BPE_MAX_ID_HOLES (1u << 20)

struct lg_bpe_symbol {
    int32_t id;
    int32_t prev, next; /* -1 at either end */
    uint32_t len;       /* bytes of the word covered; 0 once merged away */
};

/* A queued merge of the symbol at pos with its right neighbour. */
struct lg_bpe_merge {
    uint32_t rank, pos;
    int32_t new_id;
};

void lg_ids_push(lg_ids *ids, int32_t id) {
    if (ids->oom) return;
    if (ids->n == ids->cap && !lg_grow((void **)&ids->v, &ids->cap, ids->n + 1, sizeof *ids->v)) {
        ids->oom = true;
        return;
    }
    ids->v[ids->n++] = id;
}

void lg_ids_free(lg_ids *ids) {
    free(ids->v);
    *ids = (lg_ids){0};
}

void lg_bpe_work_free(lg_bpe_work *w) {
    free(w->symbols);
    free(w->heap);
    *w = (lg_bpe_work){0};
}

void lg_bpe_free(lg_bpe *bpe) {
    lg_strmap_free(&bpe->vocab);
    lg_pairmap_free(&bpe->merges);
    free(bpe->id_token);
    free(bpe->id_len);
    free(bpe->unk_token);
    free(bpe->prefix);
    free(bpe->suffix);
    memset(bpe, 0, sizeof *bpe);
}

/* ---- loading -------------------------------------------------------------- */

static laguna_status opt_string(const lg_json_ctx *c, const cJSON *model, const char *key,
                                char **out) {
    const char *s;
    laguna_status st = lg_json_string(c, model, "model", key, false, &s);
    if (st || !s) return st;
    if (!(*out = strdup(s))) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    return LAGUNA_OK;
}

static laguna_status load_vocab(const lg_json_ctx *c, const cJSON *vocab, lg_bpe *bpe) {
    if (!cJSON_IsObject(vocab))
        return lg_json_fail(c, "model", LAGUNA_ERR_FORMAT, "field 'vocab' must be an object");
    size_t count = 0;
    int64_t max_id = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || v != floor(v) || v < 0 || v > INT32_MAX)
            return lg_json_fail(c, "model.vocab", LAGUNA_ERR_FORMAT, "token '%s' has no valid id",
                                e->string);
        if (!lg_strmap_put(&bpe->vocab, e->string, strlen(e->string), (int32_t)v))
            return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory loading the vocabulary");
        if ((int64_t)v > max_id) max_id = (int64_t)v;
        count++;
    }
    if ((uint64_t)(max_id + 1) > count + LG_BPE_MAX_ID_HOLES)
        return lg_json_fail(c, "model.vocab", LAGUNA_ERR_FORMAT,
                            "id %lld is far beyond the %zu tokens", (long long)max_id, count);
    bpe->n_ids = (size_t)(max_id + 1);
    bpe->id_token = malloc((bpe->n_ids ? bpe->n_ids : 1) * sizeof *bpe->id_token);
    bpe->id_len = malloc((bpe->n_ids ? bpe->n_ids : 1) * sizeof *bpe->id_len);
    if (!bpe->id_token || !bpe->id_len) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < bpe->n_ids; i++)
        bpe->id_token[i] = UINT32_MAX, bpe->id_len[i] = 0;
    /* Two tokens sharing an id: the one stored first in the map keeps it. */
    for (size_t i = 0; i < bpe->vocab.cap; i++) {
        const lg_strmap_slot *s = &bpe->vocab.slots[i];
        if (s->key_len == UINT32_MAX || bpe->id_token[s->value] != UINT32_MAX) continue;
        bpe->id_token[s->value] = s->key_off;
        bpe->id_len[s->value] = s->key_len;
    }
    return LAGUNA_OK;
}

static laguna_status vocab_id(const lg_json_ctx *c, const lg_bpe *bpe, size_t rank, const char *s,
                              size_t n, int32_t *id) {
    if (lg_strmap_get(&bpe->vocab, s, n, id)) return LAGUNA_OK;
    return lg_json_fail(c, "model.merges", LAGUNA_ERR_FORMAT,
                        "merge %zu: token '%.*s' is not in the vocabulary", rank,
                        (int)(n > 200 ? 200 : n), s);
}

static laguna_status add_merge(const lg_json_ctx *c, lg_bpe *bpe, size_t rank, const char *a,
                               size_t na, const char *b, size_t nb, lg_buf *tmp) {
    int32_t ida, idb, idm;
    laguna_status st;
    if ((st = vocab_id(c, bpe, rank, a, na, &ida)) || (st = vocab_id(c, bpe, rank, b, nb, &idb)))
        return st;
    /* the merged token drops the right part's continuing_subword_prefix */
    size_t skip = bpe->prefix ? strlen(bpe->prefix) : 0;
    if (skip > nb)
        return lg_json_fail(c, "model.merges", LAGUNA_ERR_FORMAT,
                            "merge %zu: '%.*s' is shorter than the prefix", rank, (int)nb, b);
    tmp->len = 0;
    lg_buf_append(tmp, a, na);
    lg_buf_append(tmp, b + skip, nb - skip);
    if (tmp->oom) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    if ((st = vocab_id(c, bpe, rank, tmp->data, tmp->len, &idm))) return st;
    if (!lg_pairmap_put(&bpe->merges, ida, idb, (uint32_t)rank, idm))
        return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory loading merges");
    return LAGUNA_OK;
}

static laguna_status load_merges(const lg_json_ctx *c, const cJSON *merges, lg_bpe *bpe) {
    if (!cJSON_IsArray(merges))
        return lg_json_fail(c, "model", LAGUNA_ERR_FORMAT, "field 'merges' must be an array");
    lg_buf tmp = {0};
    laguna_status st = LAGUNA_OK;
    size_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        if (cJSON_IsString(m)) {
            /* "a b"; "#version" lines of old merges.txt files are skipped */
            const char *s = m->valuestring;
            if (!strncmp(s, "#version", 8)) continue;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st =
                    lg_json_fail(c, "model.merges", LAGUNA_ERR_FORMAT,
                                 "merge %zu: '%s' is not two tokens separated by a space", rank, s);
                break;
            }
            st = add_merge(c, bpe, rank, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), &tmp);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            const char *a = m->child->valuestring, *b = m->child->next->valuestring;
            st = add_merge(c, bpe, rank, a, strlen(a), b, strlen(b), &tmp);
        } else {
            st = lg_json_fail(c, "model.merges", LAGUNA_ERR_FORMAT,
                              "merge %zu must be \"a b\" or [\"a\", \"b\"]", rank);
        }
        if (st) break;
        rank++;
    }
    lg_buf_free(&tmp);
    return st;
}

laguna_status lg_bpe_from_json(const lg_json_ctx *c, const cJSON *model, lg_bpe *bpe) {
    memset(bpe, 0, sizeof *bpe);
    laguna_status st;
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return lg_json_fail(c, "model", LAGUNA_ERR_UNSUPPORTED,
                            "BPE dropout %g is not supported (sampling)", dropout->valuedouble);
    if ((st = opt_string(c, model, "unk_token", &bpe->unk_token)) ||
        (st = opt_string(c, model, "continuing_subword_prefix", &bpe->prefix)) ||
        (st = opt_string(c, model, "end_of_word_suffix", &bpe->suffix)) ||
        (st = lg_json_bool(c, model, "model", "fuse_unk", false, &bpe->fuse_unk)) ||
        (st = lg_json_bool(c, model, "model", "byte_fallback", false, &bpe->byte_fallback)) ||
        (st = lg_json_bool(c, model, "model", "ignore_merges", false, &bpe->ignore_merges)))
        return st;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if ((st = load_vocab(c, cJSON_GetObjectItemCaseSensitive(model, "vocab"), bpe))) return st;
    if (!merges) return lg_json_fail(c, "model", LAGUNA_ERR_FORMAT, "missing field 'merges'");
    if ((st = load_merges(c, merges, bpe))) return st;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        if (!lg_strmap_get(&bpe->vocab, name, 6, &bpe->byte_ids[b])) bpe->byte_ids[b] = -1;
    }
    for (uint32_t cp = 0; cp < LG_BPE_CHAR_TABLE; cp++) {
        char s[4];
        size_t n = lg_utf8_encode(cp, s);
        if (cp == 0 || !lg_strmap_get(&bpe->vocab, s, n, &bpe->char_ids[cp]))
            bpe->char_ids[cp] = -1;
    }
    return LAGUNA_OK;
}

/* ---- tokenizing a word ---------------------------------------------------- */

static bool merge_less(const struct lg_bpe_merge *a, const struct lg_bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct lg_bpe_merge *h, size_t *n, struct lg_bpe_merge m) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!merge_less(&m, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = m;
}

static struct lg_bpe_merge heap_pop(struct lg_bpe_merge *h, size_t *n) {
    struct lg_bpe_merge top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && merge_less(&h[child + 1], &h[child])) child++;
        if (!merge_less(&h[child], &last)) break;
        h[i] = h[child];
        i = child;
    }
    if (*n) h[i] = last;
    return top;
}

typedef struct {
    struct lg_bpe_symbol *s;
    size_t n;
} symbols;

static void add_symbol(symbols *w, int32_t id, uint32_t len) {
    int32_t k = (int32_t)w->n;
    if (k > 0) w->s[k - 1].next = k;
    w->s[w->n++] = (struct lg_bpe_symbol){id, k - 1, -1, len};
}

/* Word::merge_all: pop the lowest (rank, position) merge; skip entries made
 * stale by earlier merges (the pair there no longer merges to new_id). */
static void merge_all(const lg_bpe *bpe, symbols *w, struct lg_bpe_merge *heap) {
    size_t n_heap = 0;
    for (size_t i = 0; i + 1 < w->n; i++) {
        const lg_pairmap_slot *m = lg_pairmap_get(&bpe->merges, w->s[i].id, w->s[i + 1].id);
        if (m) heap_push(heap, &n_heap, (struct lg_bpe_merge){m->rank, (uint32_t)i, m->new_id});
    }
    while (n_heap) {
        struct lg_bpe_merge top = heap_pop(heap, &n_heap);
        struct lg_bpe_symbol *cur = &w->s[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        struct lg_bpe_symbol right = w->s[cur->next];
        const lg_pairmap_slot *m = lg_pairmap_get(&bpe->merges, cur->id, right.id);
        if (!m || m->new_id != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right.len;
        w->s[cur->next].len = 0;
        cur->next = right.next;
        if (right.next >= 0) w->s[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            m = lg_pairmap_get(&bpe->merges, w->s[cur->prev].id, cur->id);
            if (m)
                heap_push(heap, &n_heap,
                          (struct lg_bpe_merge){m->rank, (uint32_t)cur->prev, m->new_id});
        }
        if (cur->next >= 0) {
            m = lg_pairmap_get(&bpe->merges, cur->id, w->s[cur->next].id);
            if (m) heap_push(heap, &n_heap, (struct lg_bpe_merge){m->rank, top.pos, m->new_id});
        }
    }
}

/* The id of one character (with prefix/suffix as merge_word adds them). */
static bool char_id(const lg_bpe *bpe, const char *ch, size_t k, uint32_t cp, bool first, bool last,
                    lg_buf *tmp, const char **s, size_t *n, int32_t *id) {
    if (!bpe->prefix && !bpe->suffix) {
        *s = ch, *n = k;
        if (cp < LG_BPE_CHAR_TABLE) {
            *id = bpe->char_ids[cp];
            return *id >= 0;
        }
        return lg_strmap_get(&bpe->vocab, ch, k, id);
    }
    tmp->len = 0;
    if (!first && bpe->prefix) lg_buf_append(tmp, bpe->prefix, strlen(bpe->prefix));
    lg_buf_append(tmp, ch, k);
    if (last && bpe->suffix) lg_buf_append(tmp, bpe->suffix, strlen(bpe->suffix));
    *s = tmp->data, *n = tmp->len;
    return !tmp->oom && lg_strmap_get(&bpe->vocab, tmp->data, tmp->len, id);
}

laguna_status lg_bpe_tokenize(const lg_bpe *bpe, const char *word, size_t len, lg_bpe_work *work,
                              lg_ids *out, laguna_error *err) {
    int32_t whole;
    if (bpe->ignore_merges && lg_strmap_get(&bpe->vocab, word, len, &whole)) {
        lg_ids_push(out, whole);
        return out->oom ? lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory") : LAGUNA_OK;
    }
    /* at most one symbol per byte, plus byte-fallback expansions of prefixes
     * and suffixes; each merge queues at most two new entries */
    size_t affix =
        (bpe->prefix ? strlen(bpe->prefix) : 0) + (bpe->suffix ? strlen(bpe->suffix) : 0);
    size_t need = len * (1 + affix) + affix + 1;
    if (!lg_grow((void **)&work->symbols, &work->cap_symbols, need, sizeof *work->symbols) ||
        !lg_grow((void **)&work->heap, &work->cap_heap, 3 * need, sizeof *work->heap))
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    symbols w = {work->symbols, 0};
    lg_buf tmp = {0};
    bool have_unk = false;
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    laguna_status st = LAGUNA_OK;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = lg_utf8_get(word + i, &cp);
        const char *s;
        size_t n;
        int32_t id;
        bool found = char_id(bpe, word + i, k, cp, i == 0, i + k == len, &tmp, &s, &n, &id);
        i += k;
        if (found) {
            if (have_unk) add_symbol(&w, unk_id, unk_len), have_unk = false;
            add_symbol(&w, id, (uint32_t)k);
            continue;
        }
        if (bpe->byte_fallback) {
            bool all = true;
            for (size_t j = 0; j < n && all; j++)
                all = bpe->byte_ids[(unsigned char)s[j]] >= 0;
            if (all) {
                /* as in merge_word, a pending unknown token stays pending */
                for (size_t j = 0; j < n; j++)
                    add_symbol(&w, bpe->byte_ids[(unsigned char)s[j]], 1);
                continue;
            }
        }
        if (!bpe->unk_token) continue; /* the character is dropped */
        int32_t uid;
        if (!lg_strmap_get(&bpe->vocab, bpe->unk_token, strlen(bpe->unk_token), &uid)) {
            st = lg_fail(err, LAGUNA_ERR_FORMAT, "unk_token '%s' is not in the vocabulary",
                         bpe->unk_token);
            break;
        }
        if (have_unk && bpe->fuse_unk) {
            unk_len += (uint32_t)k;
        } else {
            if (have_unk) add_symbol(&w, unk_id, unk_len);
            have_unk = true, unk_id = uid, unk_len = (uint32_t)k;
        }
    }
    if (have_unk) add_symbol(&w, unk_id, unk_len);
    bool oom = tmp.oom;
    lg_buf_free(&tmp);
    if (st) return st;
    if (oom) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    merge_all(bpe, &w, work->heap);
    for (size_t i = 0; i < w.n; i++)
        if (w.s[i].len) lg_ids_push(out, w.s[i].id);
    return out->oom ? lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory") : LAGUNA_OK;
}
