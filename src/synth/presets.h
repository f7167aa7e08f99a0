/* Model shapes for synthetic checkpoints (benchmarks, demos, size checks). */
#ifndef LAGUNA_SYNTH_PRESETS_H
#define LAGUNA_SYNTH_PRESETS_H

#include "model/config.h"

/* Fills cfg for "xs2" (Laguna-XS.2's published shape), "m1" (Laguna-M.1's
 * layout; sizes not published are estimated) or "tiny". n_layers > 0 keeps
 * only the first n layers. Caller frees with lg_config_free. */
laguna_status lg_synth_preset(const char *name, lg_config *cfg, laguna_error *err);
laguna_status lg_synth_preset_layers(const char *name, int n_layers, lg_config *cfg, laguna_error *err);

/* config.json text for cfg (heap string, caller frees; NULL when out of memory). */
char *lg_config_to_json(const lg_config *cfg);

#endif
