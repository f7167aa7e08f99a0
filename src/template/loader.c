/* Finding a checkpoint's chat template the way transformers does:
 * chat_template.jinja beside the weights wins; else tokenizer_config.json's
 * "chat_template" (a string, or a list of {name, template} where "default"
 * is the template and "tool_use" the one for requests with tools); else a
 * legacy chat_template.json. The special tokens of tokenizer_config.json
 * become default context variables (transformers passes its
 * special_tokens_map into every render). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file_util.h"
#include "template/chat.h"

#define MAX_CONFIG_BYTES ((size_t)64 << 20)
#define MAX_TEMPLATE_BYTES ((size_t)16 << 20)

static const char *const special_token_keys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                 "pad_token", "cls_token", "mask_token", NULL};

/* Reads dir/name as JSON; *out NULL (and OK) when the file does not exist. */
static laguna_status read_json(const char *dir, const char *name, cJSON **out, laguna_error *err) {
    *out = NULL;
    char *path = lg_path_join(dir, name);
    if (!path) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    if (!lg_file_exists(path)) {
        free(path);
        return LAGUNA_OK;
    }
    char *text = NULL;
    size_t len = 0;
    laguna_status st = lg_read_file(path, MAX_CONFIG_BYTES, &text, &len, err);
    if (st != LAGUNA_OK) {
        free(path);
        return st;
    }
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!*out) {
        st = lg_fail(err, LAGUNA_ERR_FORMAT, "%s: not valid JSON", path);
        free(path);
        return st;
    }
    free(path);
    return LAGUNA_OK;
}

static laguna_status compile_named(const char *source, const char *name, const char *dir,
                                   jt_template **out, laguna_error *err) {
    char why[480];
    if (!jt_template_compile(source, strlen(source), name, dir, out, why, sizeof why))
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s/%s", dir, why);
    return LAGUNA_OK;
}

/* tokenizer_config.json's chat_template: string or [{name, template}, ...]. */
static laguna_status compile_from_config(laguna_chat_template *t, const cJSON *ct, const char *dir,
                                         laguna_error *err) {
    if (cJSON_IsString(ct)) return compile_named(ct->valuestring, "tokenizer_config.json chat_template", dir, &t->tmpl, err);
    if (!cJSON_IsArray(ct))
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s/tokenizer_config.json: chat_template must be a string or a list", dir);
    const cJSON *item;
    cJSON_ArrayForEach(item, ct) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(item, "template");
        if (!cJSON_IsString(name) || !cJSON_IsString(text))
            return lg_fail(err, LAGUNA_ERR_FORMAT,
                           "%s/tokenizer_config.json: chat_template entries need string \"name\" and \"template\"", dir);
        jt_template **slot = !strcmp(name->valuestring, "default") ? &t->tmpl
                             : !strcmp(name->valuestring, "tool_use") ? &t->tool_use : NULL;
        if (!slot || *slot) continue;
        laguna_status st = compile_named(text->valuestring, name->valuestring, dir, slot, err);
        if (st != LAGUNA_OK) return st;
    }
    if (!t->tmpl)
        return lg_fail(err, LAGUNA_ERR_FORMAT,
                       "%s/tokenizer_config.json: chat_template list has no \"default\" template", dir);
    return LAGUNA_OK;
}

static laguna_status read_special_tokens(laguna_chat_template *t, const cJSON *config, laguna_error *err) {
    for (int i = 0; special_token_keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, special_token_keys[i]);
        if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (!cJSON_IsString(v)) continue;
        laguna_status st = lg_chat_set_token(t, special_token_keys[i], v->valuestring, err);
        if (st != LAGUNA_OK) return st;
    }
    return LAGUNA_OK;
}

static laguna_status load_into(laguna_chat_template *t, const char *dir, laguna_error *err) {
    cJSON *config = NULL;
    laguna_status st = read_json(dir, "tokenizer_config.json", &config, err);
    if (st != LAGUNA_OK) return st;
    if (config) {
        st = read_special_tokens(t, config, err);
        if (st != LAGUNA_OK) goto done;
    }
    char *path = lg_path_join(dir, "chat_template.jinja");
    if (!path) {
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (lg_file_exists(path)) {
        char *text = NULL;
        size_t len = 0;
        st = lg_read_file(path, MAX_TEMPLATE_BYTES, &text, &len, err);
        free(path);
        if (st != LAGUNA_OK) goto done;
        char why[480];
        if (!jt_template_compile(text, len, "chat_template.jinja", dir, &t->tmpl, why, sizeof why))
            st = lg_fail(err, LAGUNA_ERR_FORMAT, "%s/%s", dir, why);
        free(text);
        goto done;
    }
    free(path);
    const cJSON *ct = config ? cJSON_GetObjectItemCaseSensitive(config, "chat_template") : NULL;
    if (ct && !cJSON_IsNull(ct)) {
        st = compile_from_config(t, ct, dir, err);
        goto done;
    }
    cJSON *legacy = NULL;
    st = read_json(dir, "chat_template.json", &legacy, err);
    if (st == LAGUNA_OK && legacy) {
        const cJSON *lt = cJSON_GetObjectItemCaseSensitive(legacy, "chat_template");
        if (cJSON_IsString(lt)) st = compile_named(lt->valuestring, "chat_template.json", dir, &t->tmpl, err);
        else st = lg_fail(err, LAGUNA_ERR_FORMAT, "%s/chat_template.json: no \"chat_template\" string", dir);
        cJSON_Delete(legacy);
        goto done;
    }
    if (st == LAGUNA_OK)
        st = lg_fail(err, LAGUNA_ERR_IO,
                     "%s: no chat template (no chat_template.jinja, and tokenizer_config.json has no chat_template)", dir);
done:
    cJSON_Delete(config);
    return st;
}

laguna_status laguna_chat_template_load(const char *dir, laguna_chat_template **out, laguna_error *err) {
    *out = NULL;
    if (!dir) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "chat template: no checkpoint folder given");
    laguna_chat_template *t = calloc(1, sizeof *t);
    if (!t) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = load_into(t, dir, err);
    if (st != LAGUNA_OK) {
        laguna_chat_template_free(t);
        return st;
    }
    *out = t;
    return LAGUNA_OK;
}
