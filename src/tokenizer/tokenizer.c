/* Encoding and decoding with a loaded tokenizer, in tokenizers' order:
 * added tokens in the raw text, normalization of the text between them,
 * added tokens in the normalized text, pre-tokenization, the BPE model per
 * word (through the word cache), then the post-processor. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

/* Inputs past this size are refused: offsets inside are 32-bit, and the
 * rewritten text (normalized, byte-level mapped) can take 3-4 times the input. */
#define LG_ENCODE_MAX_BYTES ((size_t)256 << 20)

typedef struct {
    lg_buf arena;
    lg_pieces pieces;
    lg_pretok_scratch pretok;
    lg_buf normalized;
    lg_bpe_work bpe;
    lg_ids word_ids;
} encode_state;

static void encode_state_free(encode_state *s) {
    lg_buf_free(&s->arena);
    lg_pieces_free(&s->pieces);
    lg_pretok_scratch_free(&s->pretok);
    lg_buf_free(&s->normalized);
    lg_bpe_work_free(&s->bpe);
    lg_ids_free(&s->word_ids);
}

static laguna_status nomem(laguna_error *err) {
    return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory encoding text");
}

/* Steps 1-2: split on added tokens, normalizing the text between them. */
static laguna_status split_added_and_normalize(const laguna_tokenizer *tok, encode_state *s,
                                               laguna_error *err) {
    lg_pieces *out = &s->pretok.spare;
    out->n = 0;
    lg_piece whole = {0, (uint32_t)s->arena.len, -1, true};
    lg_added_vocab_split(&tok->added, false, &whole, &s->arena, &s->pieces);
    if (s->pieces.oom) return nomem(err);
    if (!s->pretok.regex && !(s->pretok.regex = lg_regex_scratch_new())) return nomem(err);
    for (size_t i = 0; i < s->pieces.n; i++) {
        lg_piece p = s->pieces.items[i];
        if (p.token >= 0) {
            lg_pieces_add(out, p);
            continue;
        }
        if (tok->normalizer) {
            laguna_status st = lg_normalizer_apply(tok->normalizer, s->arena.data + p.off, p.len,
                                                   &s->normalized, s->pretok.regex, err);
            if (st) return st;
            if (s->arena.len + s->normalized.len > UINT32_MAX) return nomem(err);
            p.off = (uint32_t)s->arena.len;
            p.len = (uint32_t)s->normalized.len;
            lg_buf_append(&s->arena, s->normalized.data, s->normalized.len);
            if (p.len == 0) continue;
        }
        lg_added_vocab_split(&tok->added, true, &p, &s->arena, out);
    }
    if (out->oom || s->arena.oom) return nomem(err);
    lg_pieces t = s->pieces;
    s->pieces = *out;
    *out = t;
    return LAGUNA_OK;
}

/* Step 4: the model on every word, through the word cache when it is free. */
static laguna_status tokenize_words(const laguna_tokenizer *tok, encode_state *s, lg_ids *ids,
                                    laguna_error *err) {
    lg_word_cache *cache = lg_word_cache_acquire(tok->cache) ? tok->cache : NULL;
    laguna_status st = LAGUNA_OK;
    for (size_t i = 0; i < s->pieces.n && st == LAGUNA_OK; i++) {
        const lg_piece *p = &s->pieces.items[i];
        if (p->token >= 0) {
            lg_ids_push(ids, p->token);
            continue;
        }
        const char *word = s->arena.data + p->off;
        const int32_t *hit;
        size_t n_hit;
        if (cache && lg_word_cache_get(cache, word, p->len, &hit, &n_hit)) {
            for (size_t j = 0; j < n_hit; j++)
                lg_ids_push(ids, hit[j]);
            continue;
        }
        s->word_ids.n = 0;
        st = lg_bpe_tokenize(&tok->bpe, word, p->len, &s->bpe, &s->word_ids, err);
        if (st) break;
        for (size_t j = 0; j < s->word_ids.n; j++)
            lg_ids_push(ids, s->word_ids.v[j]);
        if (cache) lg_word_cache_put(cache, word, p->len, s->word_ids.v, s->word_ids.n);
    }
    if (cache) lg_word_cache_release(cache);
    if (st == LAGUNA_OK && ids->oom) st = nomem(err);
    return st;
}

laguna_status laguna_tokenizer_encode(const laguna_tokenizer *tok, const char *text, size_t len,
                                      bool add_special_tokens, int32_t **ids, size_t *n_ids,
                                      laguna_error *err) {
    if (!tok || !ids || !n_ids || (!text && len))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "laguna_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (len > LG_ENCODE_MAX_BYTES)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                       "text of %zu bytes is more than the %zu allowed (encode it in parts)", len,
                       LG_ENCODE_MAX_BYTES);
    encode_state s = {0};
    lg_ids out = {0};
    laguna_status st = LAGUNA_OK;
    /* Invalid UTF-8 reads as Python's errors="replace" would give it. */
    if (!lg_buf_reserve(&s.arena, len + 16))
        st = nomem(err);
    else if (len && lg_utf8_valid(text, len))
        lg_buf_append(&s.arena, text, len);
    else if (len)
        lg_utf8_append_lossy(&s.arena, text, len);
    if (st == LAGUNA_OK && s.arena.oom) st = nomem(err);
    if (st == LAGUNA_OK && s.arena.len) {
        st = split_added_and_normalize(tok, &s, err);
        if (st == LAGUNA_OK && tok->pre_tokenizer)
            st = lg_pretokenizer_apply(tok->pre_tokenizer, &s.pieces, &s.arena, &s.pretok, err);
        if (st == LAGUNA_OK) st = tokenize_words(tok, &s, &out, err);
    }
    if (st == LAGUNA_OK && add_special_tokens && tok->post_processor)
        st = lg_post_processor_apply(tok->post_processor, &out, err);
    encode_state_free(&s);
    if (st) {
        lg_ids_free(&out);
        return st;
    }
    if (!out.v && !(out.v = malloc(sizeof *out.v))) return nomem(err);
    *ids = out.v;
    *n_ids = out.n;
    return LAGUNA_OK;
}

void laguna_tokenizer_free_ids(int32_t *ids) {
    free(ids);
}

laguna_status lg_tokenizer_decode_into(const laguna_tokenizer *tok, const int32_t *ids,
                                       size_t n_ids, bool skip_special_tokens, lg_buf *out,
                                       laguna_error *err) {
    lg_strlist tokens = {0};
    for (size_t i = 0; i < n_ids; i++) {
        size_t len;
        const char *s = lg_tokenizer_id_str(tok, ids[i], &len);
        if (!s || (skip_special_tokens && (tok->id_flags[ids[i]] & LG_ID_SKIP))) continue;
        lg_strlist_add(&tokens, s, len);
    }
    laguna_status st = LAGUNA_OK;
    if (lg_strlist_failed(&tokens)) {
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory decoding");
    } else if (tok->decoder) {
        st = lg_decoder_decode(tok->decoder, &tokens, out, err);
    } else {
        for (size_t i = 0; i < tokens.n; i++) {
            if (i) lg_buf_push(out, ' ');
            lg_buf_append(out, lg_strlist_at(&tokens, i), tokens.items[i].len);
        }
        if (out->oom) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory decoding");
    }
    lg_strlist_free(&tokens);
    return st;
}

laguna_status laguna_tokenizer_decode(const laguna_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                      bool skip_special_tokens, char **text, size_t *len,
                                      laguna_error *err) {
    if (!tok || !text || (!ids && n_ids))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "laguna_tokenizer_decode: NULL argument");
    *text = NULL;
    if (len) *len = 0;
    lg_buf out = {0};
    laguna_status st = lg_tokenizer_decode_into(tok, ids, n_ids, skip_special_tokens, &out, err);
    if (st == LAGUNA_OK && !out.data && !lg_buf_reserve(&out, 1))
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    if (st) {
        lg_buf_free(&out);
        return st;
    }
    out.data[out.len] = 0;
    *text = out.data;
    if (len) *len = out.len;
    return LAGUNA_OK;
}

void laguna_tokenizer_free_text(char *text) {
    free(text);
}

int32_t laguna_tokenizer_token_to_id(const laguna_tokenizer *tok, const char *token, size_t len) {
    if (!tok || (!token && len)) return -1;
    if (!token) token = "";
    int32_t index = lg_added_vocab_find(&tok->added, token, len), id;
    if (index >= 0) return tok->added.tokens[index].id;
    return lg_strmap_get(&tok->bpe.vocab, token, len, &id) ? id : -1;
}

const char *laguna_tokenizer_id_to_token(const laguna_tokenizer *tok, int32_t id, size_t *len) {
    size_t n;
    const char *s = tok ? lg_tokenizer_id_str(tok, id, &n) : NULL;
    if (s && len) *len = n;
    return s;
}

size_t laguna_tokenizer_vocab_size(const laguna_tokenizer *tok) {
    return tok ? tok->vocab_size : 0;
}

bool laguna_tokenizer_is_special(const laguna_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && (size_t)id < tok->n_ids && (tok->id_flags[id] & LG_ID_SKIP);
}
