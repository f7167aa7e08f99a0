/* Inside the library: what the generation loop (generate.c) reads of a
 * session beyond the public API. */
#ifndef LAGUNA_RUNTIME_SESSION_H
#define LAGUNA_RUNTIME_SESSION_H

#include "laguna.h"

/* After laguna_session_feed_greedy, the greedy token after the last fed
 * token (what it returned in *next); -1 after any other feed, a truncate
 * that took positions back, or a reset. */
int32_t lg_session_greedy_token(const laguna_session *s);

/* Feeds tokens in one step, each row asking for its greedy successor alone:
 * next[i] is the greedy token after tokens[i] (speculative verification). */
laguna_status lg_session_feed_argmax_all(laguna_session *s, const int32_t *tokens, size_t n_tokens,
                                         int32_t *next, laguna_error *err);

/* Waits for the session's queued steps and takes back one queued ahead and
 * not fed (laguna_session_next_greedy). */
laguna_status lg_session_settle(laguna_session *s, laguna_error *err);

#endif
