/* Post-processors: special tokens around a single encoded sequence, as in
 * tokenizers' processors/{template,bert,roberta,sequence}.rs. */
#include "tokenizer/post_processor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* One element of a single-sequence template: the sequence itself, or the
 * ids of a special token. */
typedef struct {
    bool is_sequence;
    int32_t *ids;
    size_t n_ids;
} template_piece;

struct lg_post_processor {
    bool is_sequence_of_processors;
    lg_post_processor **children;
    size_t n_children;
    template_piece *pieces; /* empty template: nothing to do (ByteLevel) */
    size_t n_pieces;
};

void lg_post_processor_free(lg_post_processor *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_children; i++)
        lg_post_processor_free(p->children[i]);
    free(p->children);
    for (size_t i = 0; i < p->n_pieces; i++)
        free(p->pieces[i].ids);
    free(p->pieces);
    free(p);
}

/* Appends a template piece: the sequence (ids == NULL) or special ids. */
static laguna_status add_piece(const lg_json_ctx *c, lg_post_processor *p, const int32_t *ids,
                               size_t n) {
    template_piece *t = &p->pieces[p->n_pieces];
    *t = (template_piece){.is_sequence = ids == NULL};
    if (ids) {
        if (!(t->ids = malloc((n ? n : 1) * sizeof *t->ids)))
            return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
        memcpy(t->ids, ids, n * sizeof *ids);
        t->n_ids = n;
    }
    p->n_pieces++;
    return LAGUNA_OK;
}

static bool valid_id(const cJSON *e) {
    return cJSON_IsNumber(e) && e->valuedouble == floor(e->valuedouble) && e->valuedouble >= 0 &&
           e->valuedouble <= INT32_MAX;
}

static laguna_status template_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                        lg_post_processor *p) {
    const cJSON *single, *specials = cJSON_GetObjectItemCaseSensitive(json, "special_tokens");
    laguna_status st = lg_json_array(c, json, where, "single", &single);
    if (st) return st;
    size_t n = (size_t)cJSON_GetArraySize(single);
    if (!(p->pieces = calloc(n ? n : 1, sizeof *p->pieces)))
        return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    const cJSON *item;
    cJSON_ArrayForEach(item, single) {
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) {
            if ((st = add_piece(c, p, NULL, 0))) return st;
            continue;
        }
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(tok, "id");
        if (!cJSON_IsString(name))
            return lg_json_fail(
                c, where, LAGUNA_ERR_FORMAT,
                "template pieces must be {\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}");
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(spec, "ids");
        if (!cJSON_IsArray(ids))
            return lg_json_fail(c, where, LAGUNA_ERR_FORMAT,
                                "special token '%s' of the template is not in special_tokens",
                                name->valuestring);
        size_t k = (size_t)cJSON_GetArraySize(ids), i = 0;
        int32_t *v = malloc((k ? k : 1) * sizeof *v);
        if (!v) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
        const cJSON *e;
        cJSON_ArrayForEach(e, ids) {
            if (!valid_id(e)) {
                free(v);
                return lg_json_fail(c, where, LAGUNA_ERR_FORMAT,
                                    "special token '%s' has an invalid id", name->valuestring);
            }
            v[i++] = (int32_t)e->valuedouble;
        }
        st = add_piece(c, p, v, k);
        free(v);
        if (st) return st;
    }
    return LAGUNA_OK;
}

/* BertProcessing / RobertaProcessing: "cls": ["[CLS]", 101], "sep": [...]. */
static laguna_status cls_sep_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                       lg_post_processor *p) {
    if (!(p->pieces = calloc(3, sizeof *p->pieces)))
        return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    const char *keys[2] = {"cls", "sep"};
    for (int k = 0; k < 2; k++) {
        const cJSON *pair = cJSON_GetObjectItemCaseSensitive(json, keys[k]);
        const cJSON *id = cJSON_GetArrayItem(pair, 1);
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !valid_id(id))
            return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "field '%s' must be [token, id]",
                                keys[k]);
        int32_t v = (int32_t)id->valuedouble;
        laguna_status st = add_piece(c, p, &v, 1);
        if (st) return st;
        if (k == 0 && (st = add_piece(c, p, NULL, 0))) return st;
    }
    return LAGUNA_OK;
}

laguna_status lg_post_processor_from_json(const lg_json_ctx *c, const cJSON *json,
                                          const char *where, lg_post_processor **out) {
    *out = NULL;
    const char *type;
    laguna_status st = lg_json_type(c, json, where, &type);
    if (st) return st;
    if (!type) return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "post_processor has no 'type'");
    lg_post_processor *p = calloc(1, sizeof *p);
    if (!p) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    if (!strcmp(type, "TemplateProcessing")) {
        st = template_from_json(c, json, where, p);
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        st = cls_sep_from_json(c, json, where, p);
    } else if (!strcmp(type, "ByteLevel")) {
        /* offsets only */
    } else if (!strcmp(type, "Sequence")) {
        const cJSON *arr;
        p->is_sequence_of_processors = true;
        if (!(st = lg_json_array(c, json, where, "processors", &arr))) {
            size_t count = (size_t)cJSON_GetArraySize(arr);
            if (!(p->children = calloc(count ? count : 1, sizeof *p->children))) {
                st = lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
            } else {
                const cJSON *item;
                cJSON_ArrayForEach(item, arr) {
                    char w[256];
                    lg_json_where(w, sizeof w, where, "processors", (int)p->n_children);
                    if ((st = lg_post_processor_from_json(c, item, w, &p->children[p->n_children])))
                        break;
                    p->n_children++;
                }
            }
        }
    } else {
        st = lg_json_fail(c, where, LAGUNA_ERR_UNSUPPORTED,
                          "post_processor type '%s' is not supported", type);
    }
    if (st) {
        lg_post_processor_free(p);
        return st;
    }
    *out = p;
    return LAGUNA_OK;
}

laguna_status lg_post_processor_apply(const lg_post_processor *p, lg_ids *ids, laguna_error *err) {
    if (p->is_sequence_of_processors) {
        for (size_t i = 0; i < p->n_children; i++) {
            laguna_status st = lg_post_processor_apply(p->children[i], ids, err);
            if (st) return st;
        }
        return LAGUNA_OK;
    }
    if (!p->n_pieces) return LAGUNA_OK;
    lg_ids out = {0};
    for (size_t i = 0; i < p->n_pieces; i++) {
        const template_piece *t = &p->pieces[i];
        if (t->is_sequence)
            for (size_t j = 0; j < ids->n; j++)
                lg_ids_push(&out, ids->v[j]);
        else
            for (size_t j = 0; j < t->n_ids; j++)
                lg_ids_push(&out, t->ids[j]);
    }
    if (out.oom) {
        lg_ids_free(&out);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    lg_ids_free(ids);
    *ids = out;
    return LAGUNA_OK;
}
