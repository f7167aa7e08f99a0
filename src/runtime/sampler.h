/* Inside the library: the sampler's slow, obvious reference path (sort the
 * whole vocabulary), which tests compare the fast path with, and sampling
 * restricted to some ids (structured output). */
#ifndef LAGUNA_RUNTIME_SAMPLER_H
#define LAGUNA_RUNTIME_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "laguna.h"

/* on: laguna_sampler_sample sorts every candidate, as the first version did. */
void lg_sampler_use_reference(laguna_sampler *s, bool on);

/* laguna_sampler_sample over the ids set in allowed (a bitset of the
 * vocabulary; NULL: every id), as if the others had probability zero: the
 * same filters and draw over the allowed logits alone. -1 when none is. */
int32_t lg_sampler_sample_allowed(laguna_sampler *s, const float *logits, const uint64_t *allowed);

#endif
