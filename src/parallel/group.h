/* A model run on several devices: one rank per device, each with its view
 * of the model (rank_model.h), its backend and its end of a communicator,
 * and one thread per rank that does all of the rank's work (a CUDA rank's
 * thread keeps its GPU current). laguna_model_open makes a group when given
 * laguna_model_options.devices; a context on such a model keeps one context
 * per rank and runs each step on all ranks at once (runtime/context.c). */
#ifndef LAGUNA_PARALLEL_GROUP_H
#define LAGUNA_PARALLEL_GROUP_H

#include "model/model.h"

/* Splits `full` (opened on the CPU; borrowed, must outlive the group) over
 * the devices listed in `devices` (parallel/devices.h). n_threads: the CPU
 * simulation's compute threads in all (0 = all cores), shared out between
 * the ranks. Fails, naming the count, when the model does not split over
 * that many devices, and when a listed GPU is missing. */
laguna_status lg_group_new(laguna_model *full, const char *devices, int n_threads, lg_group **out,
                           laguna_error *err);
void lg_group_free(lg_group *g);

int lg_group_size(const lg_group *g);
laguna_model *lg_group_rank(lg_group *g, int rank);

/* Runs fn(user, rank) for every rank, each on its rank's thread, and
 * returns when all have returned. Calls from several threads take turns. */
void lg_group_run(lg_group *g, void (*fn)(void *user, int rank), void *user);

/* The first failure of any rank's communicator (after a step). */
laguna_status lg_group_status(lg_group *g, laguna_error *err);

#endif
