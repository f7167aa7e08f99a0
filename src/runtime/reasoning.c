/* The reasoning/answer split on token ids (laguna_think_tokens in
 * laguna_generate.h): where the tags are in the vocabulary and whether a
 * prompt leaves the model inside its reasoning. laguna_generate and the
 * server both route text with these, so the rule lives in one place. */
#include <string.h>

#include "core/error.h"
#include "laguna_generate.h"

laguna_status laguna_think_tokens_find(const laguna_tokenizer *tok, laguna_think_tokens *out,
                                       laguna_error *err) {
    if (!tok || !out) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "think tokens: NULL argument");
    out->open_id = laguna_tokenizer_token_to_id(tok, "<think>", strlen("<think>"));
    out->close_id = laguna_tokenizer_token_to_id(tok, "</think>", strlen("</think>"));
    out->turn_id = laguna_tokenizer_token_to_id(tok, "<assistant>", strlen("<assistant>"));
    if (out->open_id < 0 || out->close_id < 0)
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                       "the tokenizer has no <think> and </think> tokens");
    return LAGUNA_OK;
}

bool laguna_think_open_at_end(const laguna_think_tokens *think, const int32_t *ids, size_t n) {
    if (!think || !ids) return false;
    for (size_t i = n; i-- > 0;) {
        if (ids[i] == think->open_id) return true;
        if (ids[i] == think->close_id || (think->turn_id >= 0 && ids[i] == think->turn_id)) return false;
    }
    return false;
}
