/* Stop strings for streamed generation: text is released only when no stop
 * string could still begin inside it, and generation ends at the first
 * complete stop string (which is not released). */
#ifndef LAGUNA_RUNTIME_STOP_STRINGS_H
#define LAGUNA_RUNTIME_STOP_STRINGS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct lg_stop_matcher lg_stop_matcher;

/* stops: n NUL-terminated non-empty strings (copied). NULL when out of memory. */
lg_stop_matcher *lg_stop_matcher_new(const char *const *stops, size_t n);
void lg_stop_matcher_free(lg_stop_matcher *m);

/* Adds generated text. *release / *release_len: text now safe to show
 * (borrowed until the next call). Returns true when a stop string completed:
 * the released text then ends just before it and generation should stop. */
bool lg_stop_matcher_push(lg_stop_matcher *m, const char *text, size_t len, const char **release,
                          size_t *release_len);
/* At the end of generation: whatever was held back (no stop string matched). */
void lg_stop_matcher_flush(lg_stop_matcher *m, const char **release, size_t *release_len);

#endif
