/* One rank's view of a model split over several devices: a laguna_model
 * whose matrices are the rank's slices (partition.h) and whose config holds
 * the rank's head counts and widths, so forward.c runs it unchanged and
 * calls the rank's communicator at the reduction points. */
#ifndef LAGUNA_PARALLEL_RANK_MODEL_H
#define LAGUNA_PARALLEL_RANK_MODEL_H

#include "model/model.h"
#include "parallel/partition.h"

/* Builds rank p->rank's view of `full` (bound on a host-memory backend) on
 * backend `be`. On a host-memory backend the slices are views into full's
 * weights (a column slice keeps the full row stride); on a device each slice
 * is copied into contiguous memory and adopted by `be`, so only the rank's
 * share reaches it. `full`, `be` and `comm` must outlive the view. Fails
 * when a slice does not fall on a whole block of a quantised matrix. */
laguna_status lg_rank_model_new(const laguna_model *full, const lg_rank_part *p, lg_backend *be,
                                lg_comm *comm, laguna_model **out, laguna_error *err);
void lg_rank_model_free(laguna_model *rank_model);

#endif
