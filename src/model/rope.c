/* RoPE frequency tables, as transformers' rope initialisation computes them.
 *
 * default: inv_freq[i] = theta^(-2i/r) over the r rotated dims.
 * yarn (Peng et al. 2023; transformers `_compute_yarn_parameters`): a linear
 * ramp between the correction dims of beta_fast and beta_slow blends the
 * extrapolated frequency (fast-rotating dims keep theta^(-2i/r)) with the
 * interpolated one (theta^(-2i/r) / factor); cos and sin are scaled by the
 * attention factor, default 0.1 ln(factor) + 1. transformers computes these
 * in float32; we compute in double and round, which differs by < 1 ulp. */
#include "model/rope.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

static double yarn_mscale(double scale, double mscale) {
    return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

/* Dimension index whose wavelength makes num_rotations turns over max_pos. */
static double correction_dim(double num_rotations, int dim, double base, int max_pos) {
    return (dim * log(max_pos / (num_rotations * 2 * M_PI))) / (2 * log(base));
}

laguna_status lg_rope_table_init(lg_rope_table *t, const lg_rope_params *p, int head_dim, laguna_error *err) {
    int dim = (int)(head_dim * p->partial_rotary_factor);
    t->n_rot = dim;
    t->attention_scale = 1.0f;
    t->inv_freq = malloc(sizeof(float) * (size_t)(dim / 2 > 0 ? dim / 2 : 1));
    if (!t->inv_freq) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    int half = dim / 2;
    if (p->type == LG_ROPE_DEFAULT) {
        for (int i = 0; i < half; i++) t->inv_freq[i] = (float)(1.0 / pow(p->theta, (2.0 * i) / dim));
        return LAGUNA_OK;
    }
    double factor = p->factor;
    double attention = p->attention_factor;
    if (attention < 0) {
        if (p->mscale != 0 && p->mscale_all_dim != 0)
            attention = yarn_mscale(factor, p->mscale) / yarn_mscale(factor, p->mscale_all_dim);
        else
            attention = yarn_mscale(factor, 1.0);
    }
    t->attention_scale = (float)attention;
    double lo = correction_dim(p->beta_fast, dim, p->theta, p->original_max_position_embeddings);
    double hi = correction_dim(p->beta_slow, dim, p->theta, p->original_max_position_embeddings);
    if (p->truncate) {
        lo = floor(lo);
        hi = ceil(hi);
    }
    if (lo < 0) lo = 0;
    if (hi > dim - 1) hi = dim - 1;
    if (lo == hi) hi += 0.001; /* avoid a zero-width ramp */
    for (int i = 0; i < half; i++) {
        double pos_freq = pow(p->theta, (2.0 * i) / dim);
        double extrapolation = 1.0 / pos_freq, interpolation = 1.0 / (factor * pos_freq);
        double ramp = (i - lo) / (hi - lo);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double keep = 1.0 - ramp; /* extrapolation weight */
        t->inv_freq[i] = (float)(interpolation * (1 - keep) + extrapolation * keep);
    }
    return LAGUNA_OK;
}

void lg_rope_table_free(lg_rope_table *t) {
    free(t->inv_freq);
    t->inv_freq = NULL;
}
