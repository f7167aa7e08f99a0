/* Rotary position embedding tables: the inverse frequencies and the cos/sin
 * scale of one attention kind (default RoPE or YaRN, possibly partial). */
#ifndef LAGUNA_MODEL_ROPE_H
#define LAGUNA_MODEL_ROPE_H

#include "model/config.h"

typedef struct {
    int n_rot;             /* rotated dims per head (even); the rest pass through */
    float *inv_freq;       /* n_rot / 2 entries */
    float attention_scale; /* multiplies cos and sin (YaRN's attention factor; 1 otherwise) */
} lg_rope_table;

laguna_status lg_rope_table_init(lg_rope_table *t, const lg_rope_params *p, int head_dim,
                                 laguna_error *err);
void lg_rope_table_free(lg_rope_table *t);

#endif
