/* Post-processors of tokenizer.json: what encode(add_special_tokens=true)
 * adds around a single sequence. Supported: TemplateProcessing (its "single"
 * template), BertProcessing and RobertaProcessing ([CLS] A [SEP]),
 * ByteLevel (offsets only: nothing to do for ids) and Sequence; any other
 * type is a load error naming it. Pair templates are not used. */
#ifndef LAGUNA_TOKENIZER_POST_PROCESSOR_H
#define LAGUNA_TOKENIZER_POST_PROCESSOR_H

#include <cjson/cJSON.h>

#include "tokenizer/bpe.h"
#include "tokenizer/json_util.h"

typedef struct lg_post_processor lg_post_processor;

laguna_status lg_post_processor_from_json(const lg_json_ctx *c, const cJSON *json,
                                          const char *where, lg_post_processor **out);
void lg_post_processor_free(lg_post_processor *p);

/* Replaces *ids with the processed sequence. */
laguna_status lg_post_processor_apply(const lg_post_processor *p, lg_ids *ids, laguna_error *err);

#endif
