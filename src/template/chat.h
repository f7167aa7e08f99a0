/* The laguna_chat_template handle shared by chat.c (compile and render) and
 * loader.c (reading a checkpoint folder). */
#ifndef LAGUNA_TEMPLATE_CHAT_H
#define LAGUNA_TEMPLATE_CHAT_H

#include "laguna_chat.h"
#include "template/interp.h"

#define LG_CHAT_MAX_TOKENS 16

struct laguna_chat_template {
    jt_template *tmpl;
    jt_template *tool_use; /* a named "tool_use" template, used when tools are given; may be NULL */
    laguna_chat_limits limits;
    size_t n_tokens; /* special tokens as default context: names[i] = values[i] */
    char *token_names[LG_CHAT_MAX_TOKENS];
    char *token_values[LG_CHAT_MAX_TOKENS];
};

struct cJSON;

/* Renders with a parsed cJSON object as the context (inside the library
 * only: the public API takes JSON text, laguna_chat_template_render_json).
 * cJSON keeps numbers as doubles: integral numbers are taken as ints. */
laguna_status lg_chat_template_render_cjson(const laguna_chat_template *tmpl,
                                            const struct cJSON *context, char **out,
                                            size_t *out_len, laguna_error *err);

/* Adds (or replaces) a special token of the default context. */
laguna_status lg_chat_set_token(laguna_chat_template *t, const char *name, const char *value,
                                laguna_error *err);

#endif
