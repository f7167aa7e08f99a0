/* GGUF tokenizer keys -> tokenizer.json text -> laguna_tokenizer.
 *
 * Only BPE ("gpt2") vocabularies are read. Pre-tokenizers are named in
 * GGUF (llama.cpp hard-codes their regexes); the names known here map to
 * the tokenizer.json pre-tokenizer they stand for. Token types (llama.cpp):
 * 3 control -> special added token, 4 user defined -> ordinary added token.
 * llama.cpp also marks some ordinary added tokens as control (Laguna's
 * converter promotes "</assistant>"), so those decode as special here. */
#include "gguf/gguf_tokenizer_read.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "template/chat.h"
#include "tokenizer/hashmap.h"
#include "tokenizer/unicode.h"

enum { TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4 };

/* Laguna's (and GPT-4's, with single digits) split, as in tokenizer.json. */
static const char *const laguna_regex =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static cJSON *split(const char *regex) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(s, "pattern"), "Regex", regex);
    cJSON_AddStringToObject(s, "behavior", "Isolated");
    cJSON_AddFalseToObject(s, "invert");
    return s;
}

static cJSON *byte_level(bool use_regex) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "ByteLevel");
    cJSON_AddFalseToObject(b, "add_prefix_space");
    cJSON_AddTrueToObject(b, "trim_offsets");
    cJSON_AddBoolToObject(b, "use_regex", use_regex);
    return b;
}

static cJSON *pre_tokenizer(const char *pre) {
    if (!strcmp(pre, "laguna")) {
        cJSON *seq = cJSON_CreateObject();
        cJSON_AddStringToObject(seq, "type", "Sequence");
        cJSON *list = cJSON_AddArrayToObject(seq, "pretokenizers");
        cJSON_AddItemToArray(list, split("[^\\n]+|[\\n]+"));
        cJSON_AddItemToArray(list, split(laguna_regex));
        cJSON_AddItemToArray(list, byte_level(false));
        return seq;
    }
    if (!strcmp(pre, "gpt2") || !strcmp(pre, "default")) return byte_level(true);
    return NULL;
}

static char *str_dup(lg_gguf_str s) {
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = 0;
    }
    return p;
}

static laguna_status build_json(const lg_gguf_file *f, const char *path, char **out, laguna_error *err) {
    lg_gguf_str model = {0}, pre = {0};
    if (lg_gguf_get_str(f, "tokenizer.ggml.model", &model, err))
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: no tokenizer in this GGUF (tokenizer.ggml.model)", path);
    if (model.len != 4 || memcmp(model.ptr, "gpt2", 4))
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "%s: tokenizer model '%.*s' is not supported (gpt2 BPE)", path,
                       (int)model.len, model.ptr);
    char pre_name[64] = "default";
    if (lg_gguf_get_str(f, "tokenizer.ggml.pre", &pre, NULL) == LAGUNA_OK && pre.len < sizeof pre_name) {
        memcpy(pre_name, pre.ptr, pre.len);
        pre_name[pre.len] = 0;
    }
    const lg_gguf_kv *tokens = lg_gguf_find_kv(f, "tokenizer.ggml.tokens");
    const lg_gguf_kv *types = lg_gguf_find_kv(f, "tokenizer.ggml.token_type");
    const lg_gguf_kv *merges = lg_gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!tokens || tokens->type != LG_GGUF_ARRAY || tokens->elem_type != LG_GGUF_STRING || !merges ||
        merges->type != LG_GGUF_ARRAY || merges->elem_type != LG_GGUF_STRING)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tokenizer.ggml.tokens and .merges must be string arrays", path);
    if (types && (types->type != LG_GGUF_ARRAY || !lg_gguf_type_is_int(types->elem_type) || types->count != tokens->count))
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tokenizer.ggml.token_type does not match the tokens", path);
    cJSON *pt = pre_tokenizer(pre_name);
    if (!pt)
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "%s: GGUF pre-tokenizer '%s' is not supported (laguna, gpt2)", path,
                       pre_name);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", pt);
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", byte_level(true));
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddFalseToObject(m, "fuse_unk");
    cJSON_AddFalseToObject(m, "byte_fallback");
    cJSON_AddFalseToObject(m, "ignore_merges");
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    cJSON *merge_list = cJSON_AddArrayToObject(m, "merges");
    laguna_status st = LAGUNA_OK;
    /* The first id of each token string wins, as in llama.cpp; the strings
     * seen go in a hash set, since asking the cJSON object (a linked list)
     * made loading quadratic in the vocabulary size. */
    lg_strmap seen = {0};
    for (uint64_t i = 0; i < tokens->count && !st; i++) {
        char *t = str_dup(lg_gguf_arr_str(tokens, i));
        if (!t) {
            st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
            break;
        }
        size_t len = strlen(t);
        /* token text is decoded and matched as UTF-8 everywhere after this */
        if (!lg_utf8_valid(t, len)) {
            st = lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%llu] is not valid UTF-8",
                         path, (unsigned long long)i);
            free(t);
            break;
        }
        int64_t type = types ? lg_gguf_arr_int(types, i) : 1;
        int32_t first;
        if (!lg_strmap_get(&seen, t, len, &first)) {
            if (!lg_strmap_put(&seen, t, len, (int32_t)i)) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
            cJSON_AddNumberToObject(vocab, t, (double)i);
        }
        if (type == TOKEN_CONTROL || type == TOKEN_USER_DEFINED) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", t);
            cJSON_AddFalseToObject(a, "single_word");
            cJSON_AddFalseToObject(a, "lstrip");
            cJSON_AddFalseToObject(a, "rstrip");
            cJSON_AddFalseToObject(a, "normalized");
            cJSON_AddBoolToObject(a, "special", type == TOKEN_CONTROL);
            cJSON_AddItemToArray(added, a);
        }
        free(t);
    }
    for (uint64_t i = 0; i < merges->count && !st; i++) {
        char *t = str_dup(lg_gguf_arr_str(merges, i));
        if (!t) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        else if (!lg_utf8_valid(t, strlen(t)))
            st = lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] is not valid UTF-8", path,
                         (unsigned long long)i);
        else cJSON_AddItemToArray(merge_list, cJSON_CreateString(t));
        free(t);
    }
    lg_strmap_free(&seen);
    if (!st && !(*out = cJSON_PrintUnformatted(root))) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    cJSON_Delete(root);
    return st;
}

laguna_status lg_gguf_load_tokenizer(const char *path, laguna_tokenizer **out, laguna_error *err) {
    *out = NULL;
    lg_gguf_file *f = NULL;
    laguna_status st = lg_gguf_open(path, false, &f, err);
    char *json = NULL;
    if (!st) st = build_json(f, path, &json, err);
    if (!st) st = laguna_tokenizer_load_json(json, strlen(json), path, out, err);
    free(json);
    lg_gguf_close(f);
    return st;
}

/* The token string of the id stored under `key`, as the template's name. */
static laguna_status set_token_from_id(laguna_chat_template *t, const lg_gguf_file *f, const char *key, const char *name,
                                       laguna_error *err) {
    uint32_t id;
    const lg_gguf_kv *tokens = lg_gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (lg_gguf_get_u32(f, key, &id, NULL) || !tokens || id >= tokens->count) return LAGUNA_OK;
    char *s = str_dup(lg_gguf_arr_str(tokens, id));
    if (!s) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = lg_chat_set_token(t, name, s, err);
    free(s);
    return st;
}

laguna_status lg_gguf_load_chat_template(const char *path, laguna_chat_template **out, laguna_error *err) {
    *out = NULL;
    lg_gguf_file *f = NULL;
    laguna_status st = lg_gguf_open(path, false, &f, err);
    lg_gguf_str text = {0};
    if (!st && lg_gguf_get_str(f, "tokenizer.chat_template", &text, NULL))
        st = lg_fail(err, LAGUNA_ERR_FORMAT, "%s: no chat template in this GGUF (tokenizer.chat_template)", path);
    if (!st) st = laguna_chat_template_compile(text.ptr, (size_t)text.len, "tokenizer.chat_template", NULL, out, err);
    if (!st) st = set_token_from_id(*out, f, "tokenizer.ggml.bos_token_id", "bos_token", err);
    if (!st) st = set_token_from_id(*out, f, "tokenizer.ggml.eos_token_id", "eos_token", err);
    if (st) {
        laguna_chat_template_free(*out);
        *out = NULL;
    }
    lg_gguf_close(f);
    return st;
}
