/* A checkpoint's tokenizer -> GGUF "tokenizer.*" keys, as llama.cpp's
 * converter writes them for Laguna (TextModel._set_vocab_gpt2 plus
 * LagunaModel.set_vocab / get_vocab_base):
 *   tokenizer.ggml.model = "gpt2", tokenizer.ggml.pre = "laguna";
 *   tokens[vocab_size]: model.vocab and added_tokens by id, "[PAD<id>]" for
 *     ids neither defines;
 *   token_type: 1 normal, 3 control (special added tokens, "<|...|>"-looking
 *     ones, and "</assistant>", which Laguna's converter promotes), 4 user
 *     defined (other added tokens), 5 unused (the [PAD] fillers);
 *   merges: "left right" strings (either merges format of tokenizer.json);
 *   padding_token_id from tokenizer_config.json's pad_token; add_bos_token /
 *   add_eos_token when tokenizer_config.json sets them;
 *   tokenizer.chat_template: chat_template.jinja when the folder has one
 *     (the converter prefers it over an {% include %} stub), else
 *     tokenizer_config.json's chat_template (a list of named templates goes
 *     to tokenizer.chat_template and tokenizer.chat_template.NAME).
 * bos / eos / eot ids come with the model config (gguf_config_write.c). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf_laguna.h"
#include "gguf/gguf_tokenizer.h"
#include "io/file_util.h"

#define MAX_TOKENIZER_BYTES ((size_t)1 << 30)
#define MAX_TEMPLATE_BYTES ((size_t)16 << 20)

enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5 };

/* llama.cpp's TextModel.does_token_look_special. */
static bool looks_special(const char *t) {
    size_t n = strlen(t);
    if (!strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") ||
        !strcmp(t, "[@BOS@]"))
        return true;
    if (n >= 4 && !strncmp(t, "<|", 2) && !strcmp(t + n - 2, "|>")) return true;
    if (!strncmp(t, "<\xef\xbd\x9c", 4) && n >= 8 && !strcmp(t + n - 4, "\xef\xbd\x9c>"))
        return true; /* <｜...｜> */
    if (!strncmp(t, "<unused", 7) && t[n - 1] == '>') return true;
    return false;
}

static cJSON *parse_json_file(const char *path, size_t max_bytes, laguna_error *err) {
    char *text;
    size_t len;
    if (lg_read_file(path, max_bytes, &text, &len, err)) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) lg_fail(err, LAGUNA_ERR_FORMAT, "%s: invalid JSON", path);
    return root;
}

typedef struct {
    const char **tokens;
    uint32_t *types;
    int vocab_size;
    const char *path;
    laguna_error *err;
} vocab;

static laguna_status put_token(vocab *v, double id_d, const char *text, uint32_t type) {
    if (id_d < 0 || id_d >= v->vocab_size || id_d != (double)(int)id_d)
        return lg_fail(v->err, LAGUNA_ERR_FORMAT,
                       "%s: token '%.40s' has id %.0f, outside the vocabulary (%d)", v->path, text,
                       id_d, v->vocab_size);
    v->tokens[(int)id_d] = text;
    v->types[(int)id_d] = type;
    return LAGUNA_OK;
}

static laguna_status read_vocab(vocab *v, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsObject(model) || !cJSON_IsString(type) || strcmp(type->valuestring, "BPE"))
        return lg_fail(v->err, LAGUNA_ERR_UNSUPPORTED,
                       "%s: model.type must be \"BPE\" (GGUF gpt2 vocabulary)", v->path);
    const cJSON *tok, *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    laguna_status st;
    cJSON_ArrayForEach(tok, cJSON_GetObjectItemCaseSensitive(model, "vocab")) {
        if (!cJSON_IsNumber(tok))
            return lg_fail(v->err, LAGUNA_ERR_FORMAT, "%s: model.vocab['%.40s'] is not an id",
                           v->path, tok->string);
        if ((st = put_token(v, tok->valuedouble, tok->string, TOKEN_NORMAL))) return st;
    }
    cJSON_ArrayForEach(tok, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(tok, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(tok, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content))
            return lg_fail(v->err, LAGUNA_ERR_FORMAT,
                           "%s: added_tokens entry without id or content", v->path);
        bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tok, "special"));
        /* Laguna's converter: </assistant> ends the assistant turn, so CONTROL. */
        uint32_t t = special || looks_special(content->valuestring) ||
                             !strcmp(content->valuestring, "</assistant>")
                         ? TOKEN_CONTROL
                         : TOKEN_USER_DEFINED;
        if ((st = put_token(v, id->valuedouble, content->valuestring, t))) return st;
    }
    return LAGUNA_OK;
}

static laguna_status put_tokens(lg_gguf_writer *w, vocab *v) {
    char(*pads)[24] = calloc((size_t)v->vocab_size, sizeof *pads);
    if (!pads) return lg_fail(v->err, LAGUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < v->vocab_size; i++)
        if (!v->tokens[i]) {
            snprintf(pads[i], sizeof pads[i], "[PAD%d]", i);
            v->tokens[i] = pads[i];
            v->types[i] = TOKEN_UNUSED;
        }
    laguna_status st = lg_gguf_set_str_array(w, "tokenizer.ggml.tokens", v->tokens, NULL,
                                             (size_t)v->vocab_size, v->err);
    if (!st)
        st = lg_gguf_set_array(w, "tokenizer.ggml.token_type", LG_GGUF_INT32, v->types,
                               (size_t)v->vocab_size, v->err);
    free(pads);
    return st;
}

static laguna_status put_merges(lg_gguf_writer *w, const cJSON *root, const char *path,
                                laguna_error *err) {
    const cJSON *merges =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "merges");
    if (!merges) return LAGUNA_OK;
    int n = cJSON_GetArraySize(merges);
    char **strs = calloc(n > 0 ? (size_t)n : 1, sizeof *strs);
    if (!strs) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = LAGUNA_OK;
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const cJSON *a = cJSON_GetArrayItem(m, 0), *b = cJSON_GetArrayItem(m, 1);
        if (cJSON_IsString(m)) { /* "left right" */
            strs[i] = strdup(m->valuestring);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(a) &&
                   cJSON_IsString(b)) {
            size_t la = strlen(a->valuestring), lb = strlen(b->valuestring);
            if ((strs[i] = malloc(la + lb + 2))) {
                memcpy(strs[i], a->valuestring, la);
                strs[i][la] = ' ';
                memcpy(strs[i] + la + 1, b->valuestring, lb + 1);
            }
        } else {
            st = lg_fail(err, LAGUNA_ERR_FORMAT,
                         "%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", path, i);
            break;
        }
        if (!strs[i++]) {
            st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
            break;
        }
    }
    if (!st)
        st = lg_gguf_set_str_array(w, "tokenizer.ggml.merges", (const char *const *)strs, NULL,
                                   (size_t)n, err);
    for (int k = 0; k < n; k++)
        free(strs[k]);
    free(strs);
    return st;
}

/* The id of a special token named in tokenizer_config.json (a string or an
 * {"content": ...} object), looked up among the tokens; -1 when absent. */
static int special_id(const cJSON *cfg, const char *key, const vocab *v) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(t)) t = cJSON_GetObjectItemCaseSensitive(t, "content");
    if (!cJSON_IsString(t)) return -1;
    for (int i = 0; i < v->vocab_size; i++)
        if (v->tokens[i] && !strcmp(v->tokens[i], t->valuestring)) return i;
    return -1;
}

static laguna_status put_chat_template(lg_gguf_writer *w, const char *dir, const cJSON *tcfg,
                                       laguna_error *err) {
    char *jinja_path = lg_path_join(dir, "chat_template.jinja");
    if (!jinja_path) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = LAGUNA_OK;
    if (lg_file_exists(jinja_path)) {
        char *text;
        size_t len;
        st = lg_read_file(jinja_path, MAX_TEMPLATE_BYTES, &text, &len, err);
        if (!st) {
            st = lg_gguf_set_str_n(w, "tokenizer.chat_template", text, len, err);
            free(text);
        }
        free(jinja_path);
        return st;
    }
    free(jinja_path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(tcfg, "chat_template"), *e;
    if (cJSON_IsString(t))
        return lg_gguf_set_str(w, "tokenizer.chat_template", t->valuestring, err);
    if (!cJSON_IsArray(t)) return LAGUNA_OK;
    cJSON_ArrayForEach(e, t) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name"),
                    *tmpl = cJSON_GetObjectItemCaseSensitive(e, "template");
        if (!cJSON_IsString(name) || !cJSON_IsString(tmpl)) continue;
        char key[256];
        if (!strcmp(name->valuestring, "default"))
            snprintf(key, sizeof key, "tokenizer.chat_template");
        else
            snprintf(key, sizeof key, "tokenizer.chat_template.%.200s", name->valuestring);
        if ((st = lg_gguf_set_str(w, key, tmpl->valuestring, err))) return st;
    }
    return LAGUNA_OK;
}

laguna_status lg_gguf_put_tokenizer(lg_gguf_writer *w, const char *dir, int vocab_size,
                                    laguna_error *err) {
    char *tok_path = lg_path_join(dir, "tokenizer.json"),
         *cfg_path = lg_path_join(dir, "tokenizer_config.json");
    cJSON *root = NULL, *tcfg = NULL;
    vocab v = {.vocab_size = vocab_size, .path = tok_path, .err = err};
    laguna_status st = LAGUNA_OK;
    if (!tok_path || !cfg_path || vocab_size <= 0)
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    if (!st && !(root = parse_json_file(tok_path, MAX_TOKENIZER_BYTES, err)))
        st = err ? err->code : LAGUNA_ERR_FORMAT;
    if (!st && lg_file_exists(cfg_path) &&
        !(tcfg = parse_json_file(cfg_path, MAX_TEMPLATE_BYTES, err)))
        st = err ? err->code : LAGUNA_ERR_FORMAT;
    if (!st) {
        v.tokens = calloc((size_t)vocab_size, sizeof *v.tokens);
        v.types = calloc((size_t)vocab_size, sizeof *v.types);
        if (!v.tokens || !v.types) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    if (!st) st = lg_gguf_set_str(w, "tokenizer.ggml.model", "gpt2", err);
    if (!st) st = lg_gguf_set_str(w, "tokenizer.ggml.pre", "laguna", err);
    if (!st) st = read_vocab(&v, root);
    if (!st) {
        int pad = special_id(tcfg, "pad_token", &v);
        if (pad >= 0)
            st = lg_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad, err);
    }
    if (!st) st = put_tokens(w, &v);
    if (!st) st = put_merges(w, root, tok_path, err);
    const char *flags[2][2] = {{"add_bos_token", "tokenizer.ggml.add_bos_token"},
                               {"add_eos_token", "tokenizer.ggml.add_eos_token"}};
    for (int i = 0; i < 2 && !st; i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(tcfg, flags[i][0]);
        if (cJSON_IsBool(b)) st = lg_gguf_set_bool(w, flags[i][1], cJSON_IsTrue(b), err);
    }
    if (!st) st = put_chat_template(w, dir, tcfg, err);
    cJSON_Delete(root);
    cJSON_Delete(tcfg);
    free(v.tokens);
    free(v.types);
    free(tok_path);
    free(cfg_path);
    return st;
}
