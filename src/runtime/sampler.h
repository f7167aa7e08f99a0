/* Inside the library: the sampler's slow, obvious reference path (sort the
 * whole vocabulary), which tests compare the fast path with. */
#ifndef LAGUNA_RUNTIME_SAMPLER_H
#define LAGUNA_RUNTIME_SAMPLER_H

#include <stdbool.h>

#include "laguna.h"

/* on: laguna_sampler_sample sorts every candidate, as the first version did. */
void lg_sampler_use_reference(laguna_sampler *s, bool on);

#endif
