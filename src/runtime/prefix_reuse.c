/* Prefix reuse (laguna_session_feed_reuse): a chat re-renders the whole
 * conversation every turn and a server sees requests that share a system
 * prompt; both want the KV cache of the longest prefix the session already
 * holds instead of recomputing it. Only the tail after that prefix is fed. */
#include "core/error.h"
#include "laguna_generate.h"

laguna_status laguna_session_feed_reuse(laguna_session *s, const int32_t *ids, size_t n,
                                        size_t *n_reused, laguna_error *err) {
    if (n_reused) *n_reused = 0;
    if (!s) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "session is NULL");
    if (n == 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no tokens to feed (empty prompt)");
    if (!ids) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "tokens is NULL");
    /* checked here so that a bad prompt leaves the session as it was */
    int vocab = laguna_model_get_info(laguna_session_model(s))->vocab_size;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                           "token %d at index %zu is outside the vocabulary [0, %d)", ids[i], i,
                           vocab);
    if (n > (size_t)laguna_session_capacity(s))
        return lg_fail(err, LAGUNA_ERR_CONTEXT, "%zu tokens do not fit the context length %d", n,
                       laguna_session_capacity(s));

    int n_held = 0;
    const int32_t *held = laguna_session_tokens(s, &n_held);
    size_t keep = 0;
    while (keep < n && keep < (size_t)n_held && held[keep] == ids[keep])
        keep++;
    if (keep == n)
        keep = n - 1; /* feed at least one token: the logits must be those after ids[n-1] */
    if (keep < (size_t)n_held && laguna_session_truncate(s, (int)keep, NULL) != LAGUNA_OK) {
        laguna_session_reset(s); /* the sliding layers' rings no longer reach back that far */
        keep = 0;
    }
    laguna_status st = laguna_session_feed(s, ids + keep, n - keep, NULL, err);
    if (st) return st;
    if (n_reused) *n_reused = keep;
    return LAGUNA_OK;
}
