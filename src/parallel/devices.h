/* The --devices list (laguna_model_options.devices): "cuda:0,cuda:1,..."
 * for one rank per GPU, or "cpu:N" for N ranks simulated by threads on the
 * CPU (tests, and trying the split without GPUs). */
#ifndef LAGUNA_PARALLEL_DEVICES_H
#define LAGUNA_PARALLEL_DEVICES_H

#include "laguna.h"
#include "parallel/partition.h"

typedef enum { LG_DEVICES_CPU, LG_DEVICES_CUDA } lg_device_kind;

typedef struct {
    lg_device_kind kind;
    int n;                 /* ranks */
    int ids[LG_MAX_RANKS]; /* cuda: the GPU of each rank */
} lg_device_list;

/* Parses text; a clear message for anything else (unknown names, mixed
 * kinds, a GPU listed twice, more than LG_MAX_RANKS). */
laguna_status lg_devices_parse(const char *text, lg_device_list *out, laguna_error *err);

#endif
