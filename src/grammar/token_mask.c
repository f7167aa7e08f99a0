/* Token masks from a grammar matcher (token_mask.h). */
#include "grammar/token_mask.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

#define LG_TOKEN_BYTES_MAX 4096 /* longer "tokens" are not real ones: left out */

struct lg_token_bytes {
    int n_vocab;
    uint8_t *bytes;
    size_t *at;   /* id's bytes: bytes[at[id] .. at[id] + len[id]) */
    int32_t *len; /* -1: no text */
    uint8_t *plain; /* all of id's bytes are plain string characters (plain_byte) */
    int32_t *sorted; /* the ids with text, by their bytes */
    uint16_t *lcp;   /* bytes sorted[i] shares with sorted[i - 1] (0 for the first) */
    int n_sorted, max_len;
};

/* Printable ASCII but '"' and '\\': what a JSON string holds as itself. Inside
 * an unbounded string every such byte leads back to the same state, so a
 * token made only of them needs no walk there. */
static bool plain_byte(uint8_t b) { return b >= 0x20 && b < 0x80 && b != '"' && b != '\\'; }

static int cmp_ids(const void *a, const void *b, void *ctx) {
    const lg_token_bytes *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    int n = t->len[x] < t->len[y] ? t->len[x] : t->len[y];
    int c = memcmp(t->bytes + t->at[x], t->bytes + t->at[y], (size_t)n);
    if (c) return c;
    if (t->len[x] != t->len[y]) return t->len[x] < t->len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Sorts the ids with text by their bytes and notes the prefix each shares
 * with the one before. */
static void sort_tokens(lg_token_bytes *t) {
    qsort_r(t->sorted, (size_t)t->n_sorted, sizeof *t->sorted, cmp_ids, t);
    for (int i = 0; i < t->n_sorted; i++) {
        int l = 0;
        if (i > 0) {
            int32_t a = t->sorted[i - 1], b = t->sorted[i];
            int n = t->len[a] < t->len[b] ? t->len[a] : t->len[b];
            while (l < n && l < UINT16_MAX && t->bytes[t->at[a] + l] == t->bytes[t->at[b] + l]) l++;
        }
        t->lcp[i] = (uint16_t)l;
    }
}

static lg_token_bytes *alloc_tokens(int n_vocab) {
    lg_token_bytes *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->n_vocab = n_vocab;
    t->at = malloc(sizeof *t->at * (size_t)(n_vocab ? n_vocab : 1));
    t->len = malloc(sizeof *t->len * (size_t)(n_vocab ? n_vocab : 1));
    t->sorted = malloc(sizeof *t->sorted * (size_t)(n_vocab ? n_vocab : 1));
    t->lcp = malloc(sizeof *t->lcp * (size_t)(n_vocab ? n_vocab : 1));
    t->plain = calloc((size_t)(n_vocab ? n_vocab : 1), 1);
    if (!t->at || !t->len || !t->sorted || !t->lcp || !t->plain) {
        lg_token_bytes_free(t);
        return NULL;
    }
    return t;
}

/* Notes id's bytes, just appended to all at start (empty or overlong: no text). */
static void keep_token(lg_token_bytes *t, const lg_buf *all, size_t start, int32_t id) {
    size_t len = all->len - start;
    t->len[id] = -1;
    if (len == 0 || len > LG_TOKEN_BYTES_MAX) return; /* nothing to match, or not a real token */
    t->at[id] = start, t->len[id] = (int32_t)len;
    t->sorted[t->n_sorted++] = id;
    bool plain = true;
    for (size_t i = 0; i < len && plain; i++) plain = plain_byte((uint8_t)all->data[start + i]);
    t->plain[id] = plain;
    if ((int)len > t->max_len) t->max_len = (int)len;
}

/* Takes all's bytes into t and sorts it into *out; frees both on failure. */
static laguna_status finish_tokens(lg_token_bytes *t, lg_buf *all, lg_token_bytes **out, laguna_error *err) {
    if (!t || all->oom) {
        lg_buf_free(all);
        lg_token_bytes_free(t);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    t->bytes = (uint8_t *)all->data;
    sort_tokens(t);
    *out = t;
    return LAGUNA_OK;
}

laguna_status lg_token_bytes_new(const laguna_tokenizer *tok, int n_vocab, lg_token_bytes **out,
                                 laguna_error *err) {
    lg_token_bytes *t = alloc_tokens(n_vocab);
    if (!t) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    lg_buf all = {0};
    bool byte_level = lg_decoder_is_byte_level(tok->decoder);
    for (int32_t id = 0; id < n_vocab; id++) {
        t->len[id] = -1;
        size_t n;
        const char *s = lg_tokenizer_id_str(tok, id, &n);
        if (!s || laguna_tokenizer_is_special(tok, id)) continue;
        size_t start = all.len;
        if (byte_level) {
            lg_byte_level_decode_token(&all, s, n);
        } else {
            char *text = NULL;
            size_t tn = 0;
            if (laguna_tokenizer_decode(tok, &id, 1, false, &text, &tn, NULL)) continue;
            lg_buf_append(&all, text, tn);
            laguna_tokenizer_free_text(text);
        }
        if (all.oom) break;
        keep_token(t, &all, start, id);
    }
    return finish_tokens(t, &all, out, err);
}

laguna_status lg_token_bytes_from_list(const char *const *bytes, const int *len, int n_vocab, lg_token_bytes **out,
                                       laguna_error *err) {
    lg_token_bytes *t = alloc_tokens(n_vocab);
    lg_buf all = {0};
    for (int32_t id = 0; t && id < n_vocab && !all.oom; id++) {
        size_t start = all.len;
        if (bytes[id] && len[id] > 0) lg_buf_append(&all, bytes[id], (size_t)len[id]);
        keep_token(t, &all, start, id);
    }
    return finish_tokens(t, &all, out, err);
}

void lg_token_bytes_free(lg_token_bytes *t) {
    if (!t) return;
    free(t->bytes);
    free(t->at);
    free(t->len);
    free(t->sorted);
    free(t->lcp);
    free(t->plain);
    free(t);
}

int lg_token_bytes_n_vocab(const lg_token_bytes *t) { return t->n_vocab; }

int lg_token_bytes_of(const lg_token_bytes *t, int32_t id, const uint8_t **bytes) {
    if (id < 0 || id >= t->n_vocab || t->len[id] < 0) return -1;
    *bytes = t->bytes + t->at[id];
    return t->len[id];
}

/* Whether every plain byte leads from s back to s (inside an unbounded string). */
static bool loops_on_plain(lg_matcher *m, int s) {
    for (int b = 0x20; b < 0x80; b++)
        if (plain_byte((uint8_t)b) && lg_matcher_step(m, s, (uint8_t)b) != s) return false;
    return true;
}

int lg_token_mask(const lg_token_bytes *t, lg_matcher *m, int s, uint64_t *allowed) {
    memset(allowed, 0, sizeof *allowed * (size_t)((t->n_vocab + 63) / 64));
    int *st = malloc(sizeof *st * (size_t)(t->max_len + 1));
    if (!st) return LG_MATCHER_ERROR;
    bool loops = loops_on_plain(m, s);
    st[0] = s;
    int valid = 0, n_allowed = 0; /* st[0 .. valid]: states after the last walked token's prefixes */
    const int32_t *table = lg_matcher_table(m);
    for (int i = 0; i < t->n_sorted; i++) {
        int32_t id = t->sorted[i];
        if (loops && t->plain[id]) { /* no walk: it ends where it started */
            allowed[id >> 6] |= 1ull << (id & 63);
            n_allowed++;
            valid = 0;
            continue;
        }
        const uint8_t *b = t->bytes + t->at[id];
        int n = t->len[id], k = t->lcp[i] < valid ? t->lcp[i] : valid, cur = st[k];
        for (; k < n; k++) {
            int32_t next = table[(size_t)cur * 256 + b[k]];
            if (next < LG_MATCHER_ERROR) { /* not worked out yet */
                next = lg_matcher_step(m, cur, b[k]);
                table = lg_matcher_table(m);
            }
            cur = next;
            if (cur < 0) break;
            st[k + 1] = cur;
        }
        if (cur == LG_MATCHER_ERROR) {
            free(st);
            return LG_MATCHER_ERROR;
        }
        if (k == n) {
            allowed[id >> 6] |= 1ull << (id & 63);
            n_allowed++;
            valid = n;
        } else {
            valid = k;
            while (i + 1 < t->n_sorted && t->lcp[i + 1] > k) i++; /* same refused byte k */
        }
    }
    free(st);
    return n_allowed;
}

int lg_token_advance(const lg_token_bytes *t, lg_matcher *m, int s, int32_t id) {
    const uint8_t *b;
    int n = lg_token_bytes_of(t, id, &b);
    if (n < 0) return LG_MATCHER_DEAD;
    for (int k = 0; k < n && s >= 0; k++) s = lg_matcher_step(m, s, b[k]);
    return s;
}
