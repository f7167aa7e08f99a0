/* The BPE model of tokenizer.json: vocabulary, ranked merges and the
 * options of tokenizers' models/bpe (unk_token, fuse_unk, byte_fallback,
 * continuing_subword_prefix, end_of_word_suffix, ignore_merges).
 *
 * A word is split into characters, each mapped to its token (or to byte
 * tokens <0xXX> with byte_fallback, or to the unknown token), then merged
 * by increasing rank with a priority queue exactly as Word::merge_all does,
 * so ties and stale queue entries resolve the same way. */
#ifndef LAGUNA_TOKENIZER_BPE_H
#define LAGUNA_TOKENIZER_BPE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/hashmap.h"
#include "tokenizer/json_util.h"

/* Characters below this code point have their single-character token ids in
 * a table (the byte-level alphabet ends at U+0143). */
#define LG_BPE_CHAR_TABLE 0x800

typedef struct {
    lg_strmap vocab;    /* token -> id */
    lg_pairmap merges;  /* (left id, right id) -> rank, merged id */
    uint32_t *id_token; /* id -> offset of the token in vocab.keys, UINT32_MAX if unused */
    uint32_t *id_len;
    size_t n_ids;    /* 1 + the largest id */
    char *unk_token; /* NULL when absent */
    char *prefix;    /* continuing_subword_prefix or NULL */
    char *suffix;    /* end_of_word_suffix or NULL */
    bool fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_ids[256];               /* <0xXX> tokens, -1 when absent */
    int32_t char_ids[LG_BPE_CHAR_TABLE]; /* single-character tokens, -1 when absent */
} lg_bpe;

laguna_status lg_bpe_from_json(const lg_json_ctx *c, const cJSON *model, lg_bpe *bpe);
void lg_bpe_free(lg_bpe *bpe);

static inline bool lg_bpe_id_to_token(const lg_bpe *bpe, int32_t id, const char **s, size_t *len) {
    if (id < 0 || (size_t)id >= bpe->n_ids || bpe->id_token[id] == UINT32_MAX) return false;
    *s = bpe->vocab.keys.data + bpe->id_token[id];
    *len = bpe->id_len[id];
    return true;
}

/* Growable id list. */
typedef struct {
    int32_t *v;
    size_t n, cap;
    bool oom;
} lg_ids;

void lg_ids_push(lg_ids *ids, int32_t id);
void lg_ids_free(lg_ids *ids);

/* Working memory for tokenizing words (one per encode call). */
typedef struct {
    struct lg_bpe_symbol *symbols;
    size_t cap_symbols;
    struct lg_bpe_merge *heap;
    size_t cap_heap;
} lg_bpe_work;

void lg_bpe_work_free(lg_bpe_work *w);

/* Appends the ids of one word (valid UTF-8, non-empty) to out. Fails only
 * when out of memory or when unk_token is needed but not in the vocabulary. */
laguna_status lg_bpe_tokenize(const lg_bpe *bpe, const char *word, size_t len, lg_bpe_work *work,
                              lg_ids *out, laguna_error *err);

#endif
