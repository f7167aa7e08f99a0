/* Loading tokenizer.json: parse with cJSON, build each component, add the
 * added tokens as tokenizers' deserializer does (AddedVocabulary::add_tokens:
 * a token already in the vocabulary keeps that id, a new one gets the next
 * free id), and fill the id -> string table for decoding.
 *
 * "truncation" and "padding" are ignored: transformers turns them off for a
 * call that does not ask for them (set_truncation_and_padding), and an
 * inference engine never does. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/file_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

/* tokenizer.json files of real models are tens of MB at most. */
#define LG_TOKENIZER_JSON_MAX_BYTES ((size_t)1 << 30)

/* Word cache bounds: entries, and the longest word worth caching (as
 * tokenizers: 256 bytes). */
#define LG_WORD_CACHE_WORDS 16384
#define LG_WORD_CACHE_MAX_WORD 256

void laguna_tokenizer_free(laguna_tokenizer *tok) {
    if (!tok) return;
    lg_bpe_free(&tok->bpe);
    lg_added_vocab_free(&tok->added);
    lg_normalizer_free(tok->normalizer);
    lg_pretokenizer_free(tok->pre_tokenizer);
    lg_post_processor_free(tok->post_processor);
    lg_decoder_free(tok->decoder);
    free(tok->id_str);
    free(tok->id_len);
    free(tok->id_flags);
    lg_word_cache_free(tok->cache);
    free(tok);
}

static laguna_status load_model(const lg_json_ctx *c, const cJSON *root, laguna_tokenizer *tok) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!model) return lg_json_fail(c, NULL, LAGUNA_ERR_FORMAT, "missing field 'model'");
    const char *type;
    laguna_status st = lg_json_type(c, model, "model", &type);
    if (st) return st;
    /* files from before "type" existed: a BPE model is the one with merges */
    if (!type && !cJSON_GetObjectItemCaseSensitive(model, "merges"))
        return lg_json_fail(c, "model", LAGUNA_ERR_UNSUPPORTED,
                            "model without 'type' or 'merges' is not a BPE model");
    if (type && strcmp(type, "BPE") != 0)
        return lg_json_fail(c, NULL, LAGUNA_ERR_UNSUPPORTED, "model type '%s' is not supported",
                            type);
    return lg_bpe_from_json(c, model, &tok->bpe);
}

/* Builds an optional component: absent or null leaves *out NULL. */
#define LOAD_OPTIONAL(fn, key, out)                                                                \
    do {                                                                                           \
        const cJSON *j_ = cJSON_GetObjectItemCaseSensitive(root, key);                             \
        if (j_ && !cJSON_IsNull(j_) && (st = fn(c, j_, key, out))) return st;                      \
    } while (0)

static laguna_status load_components(const lg_json_ctx *c, const cJSON *root,
                                     laguna_tokenizer *tok) {
    laguna_status st;
    LOAD_OPTIONAL(lg_normalizer_from_json, "normalizer", &tok->normalizer);
    LOAD_OPTIONAL(lg_pretokenizer_from_json, "pre_tokenizer", &tok->pre_tokenizer);
    LOAD_OPTIONAL(lg_post_processor_from_json, "post_processor", &tok->post_processor);
    LOAD_OPTIONAL(lg_decoder_from_json, "decoder", &tok->decoder);
    return LAGUNA_OK;
}

static laguna_status add_token(const lg_json_ctx *c, const cJSON *t, int index,
                               laguna_tokenizer *tok, int32_t *next_id, lg_buf *normalized,
                               lg_regex_scratch *scratch) {
    char where[64];
    lg_json_where(where, sizeof where, "", "added_tokens", index);
    const char *content;
    bool special, single_word, lstrip, rstrip, norm;
    laguna_status st;
    if ((st = lg_json_string(c, t, where, "content", true, &content)) ||
        (st = lg_json_bool(c, t, where, "special", false, &special)) ||
        (st = lg_json_bool(c, t, where, "single_word", false, &single_word)) ||
        (st = lg_json_bool(c, t, where, "lstrip", false, &lstrip)) ||
        (st = lg_json_bool(c, t, where, "rstrip", false, &rstrip)) ||
        (st = lg_json_bool(c, t, where, "normalized", !special, &norm)))
        return st;
    size_t len = strlen(content);
    if (len == 0) return LAGUNA_OK; /* tokenizers ignores empty tokens */
    int32_t id, existing = lg_added_vocab_find(&tok->added, content, len);
    if (existing >= 0)
        id = tok->added.tokens[existing].id;
    else if (!lg_strmap_get(&tok->bpe.vocab, content, len, &id))
        id = (*next_id)++;
    const char *pattern = NULL;
    size_t pattern_len = 0;
    if (norm && tok->normalizer) {
        if (!lg_utf8_valid(content, len))
            return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "content is not valid UTF-8");
        if ((st = lg_normalizer_apply(tok->normalizer, content, len, normalized, scratch, c->err)))
            return st;
        if (normalized->len != len || memcmp(normalized->data, content, len) != 0)
            pattern = normalized->data ? normalized->data : "", pattern_len = normalized->len;
    }
    if (!lg_added_vocab_add(&tok->added, content, len, id, single_word, lstrip, rstrip, norm,
                            special, pattern, pattern_len))
        return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    return LAGUNA_OK;
}

static laguna_status load_added_tokens(const lg_json_ctx *c, const cJSON *root,
                                       laguna_tokenizer *tok) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!list || cJSON_IsNull(list)) return LAGUNA_OK;
    if (!cJSON_IsArray(list))
        return lg_json_fail(c, NULL, LAGUNA_ERR_FORMAT, "field 'added_tokens' must be an array");
    /* New ids continue after the model's vocabulary size (its entry count). */
    int32_t next_id = (int32_t)tok->bpe.vocab.n;
    lg_buf normalized = {0};
    lg_regex_scratch *scratch = lg_regex_scratch_new();
    laguna_status st = scratch ? LAGUNA_OK : lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    int index = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, list) {
        if (st) break;
        if (next_id == INT32_MAX)
            st = lg_json_fail(c, "added_tokens", LAGUNA_ERR_FORMAT, "too many tokens");
        else
            st = add_token(c, t, index++, tok, &next_id, &normalized, scratch);
    }
    lg_buf_free(&normalized);
    lg_regex_scratch_free(scratch);
    if (st) return st;
    if (!lg_added_vocab_build(&tok->added))
        return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    return LAGUNA_OK;
}

/* Fills id_str / id_len / id_flags and vocab_size.
 *
 * skip_special_tokens drops every added token, special or not: that is what
 * transformers' decode(skip_special_tokens=True) returns for Laguna's
 * tokenizer (control tokens such as <think> and </assistant> are added
 * tokens with special=false; see the fixture's decoded_skip_special). As in
 * tokenizers, the test is on the decoded string, so a vocabulary entry
 * spelled like an added token is dropped too. */
static laguna_status build_id_table(const lg_json_ctx *c, laguna_tokenizer *tok) {
    size_t n = tok->bpe.n_ids, overlapping = 0;
    for (size_t i = 0; i < tok->added.n; i++)
        if ((size_t)tok->added.tokens[i].id + 1 > n) n = (size_t)tok->added.tokens[i].id + 1;
    tok->n_ids = n;
    tok->id_str = calloc(n ? n : 1, sizeof *tok->id_str);
    tok->id_len = calloc(n ? n : 1, sizeof *tok->id_len);
    tok->id_flags = calloc(n ? n : 1, 1);
    lg_strmap controls = {0};
    bool ok = tok->id_str && tok->id_len && tok->id_flags;
    for (size_t i = 0; ok && i < tok->bpe.n_ids; i++) {
        const char *s;
        size_t len;
        if (lg_bpe_id_to_token(&tok->bpe, (int32_t)i, &s, &len))
            tok->id_str[i] = s, tok->id_len[i] = (uint32_t)len;
    }
    for (size_t i = 0; ok && i < tok->added.n; i++) {
        const lg_added_token *t = &tok->added.tokens[i];
        int32_t unused;
        tok->id_str[t->id] = t->pattern;
        tok->id_len[t->id] = (uint32_t)t->pattern_len;
        ok = lg_strmap_put(&controls, t->content, t->len, 1);
        overlapping += lg_strmap_get(&tok->bpe.vocab, t->content, t->len, &unused);
    }
    for (size_t i = 0; ok && controls.n && i < n; i++) {
        int32_t unused;
        if (tok->id_str[i] && lg_strmap_get(&controls, tok->id_str[i], tok->id_len[i], &unused))
            tok->id_flags[i] |= LG_ID_SKIP;
    }
    lg_strmap_free(&controls);
    if (!ok) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    tok->vocab_size = tok->bpe.vocab.n + tok->added.by_content.n - overlapping;
    return LAGUNA_OK;
}

static laguna_status load_root(const lg_json_ctx *c, const cJSON *root, laguna_tokenizer *tok) {
    if (!cJSON_IsObject(root))
        return lg_json_fail(c, NULL, LAGUNA_ERR_FORMAT, "expected a JSON object");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (version && !(cJSON_IsString(version) && !strcmp(version->valuestring, "1.0")))
        return lg_json_fail(c, NULL, LAGUNA_ERR_UNSUPPORTED, "tokenizer version is not \"1.0\"");
    laguna_status st;
    if ((st = load_model(c, root, tok)) || (st = load_components(c, root, tok)) ||
        (st = load_added_tokens(c, root, tok)) || (st = build_id_table(c, tok)))
        return st;
    return LAGUNA_OK;
}

/* Offset of the first byte that is not part of valid UTF-8; len if none. */
static size_t first_invalid_utf8(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = lg_utf8_decode(u + i, len - i, &cp, NULL);
        if (cp == LG_UTF8_INVALID) return i;
        i += k;
    }
    return len;
}

laguna_status laguna_tokenizer_load_json(const char *json, size_t len, const char *source,
                                         laguna_tokenizer **out, laguna_error *err) {
    if (!out) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "laguna_tokenizer_load_json: out is NULL");
    *out = NULL;
    if (!json) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "laguna_tokenizer_load_json: json is NULL");
    if (!source) source = "tokenizer.json";
    lg_json_ctx c = {source, err};
    /* Token strings are decoded and matched as UTF-8 from here on (an added
     * token that is half a character would split the input's characters, and
     * decoding a lone lead byte reads past the token); JSON text is UTF-8,
     * and tokenizers (serde) rejects a file that is not. */
    size_t bad = first_invalid_utf8(json, len);
    if (bad < len) return lg_json_fail(&c, NULL, LAGUNA_ERR_FORMAT, "not valid UTF-8 at byte %zu", bad);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (!root) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return lg_json_fail(&c, NULL, LAGUNA_ERR_FORMAT, "invalid JSON near byte %zu", at);
    }
    laguna_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        cJSON_Delete(root);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    laguna_status st = load_root(&c, root, tok);
    cJSON_Delete(root);
    if (st == LAGUNA_OK &&
        !(tok->cache = lg_word_cache_new(LG_WORD_CACHE_WORDS, LG_WORD_CACHE_MAX_WORD)))
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    if (st) {
        laguna_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return LAGUNA_OK;
}

laguna_status laguna_tokenizer_load(const char *path, laguna_tokenizer **out, laguna_error *err) {
    if (!out) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "laguna_tokenizer_load: out is NULL");
    *out = NULL;
    if (!path) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "laguna_tokenizer_load: path is NULL");
    struct stat sb;
    char *file = NULL;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if (!(file = lg_path_join(path, "tokenizer.json")))
            return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    } else if (!(file = strdup(path))) {
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    char *json = NULL;
    size_t len = 0;
    laguna_status st = lg_read_file(file, LG_TOKENIZER_JSON_MAX_BYTES, &json, &len, err);
    if (st == LAGUNA_OK) st = laguna_tokenizer_load_json(json, len, file, out, err);
    free(json);
    free(file);
    return st;
}
