/* Scale searches behind ggml's k-quant reference quantisers (internal to
 * src/quant/). Each fits integer levels L to a group of floats and returns the
 * scale, reproducing ggml-quants.c's make_qx_quants / make_qkx2_quants float
 * operation by operation so quantised files match llama-quantize's bytes. */
#ifndef LAGUNA_QUANT_SEARCH_H
#define LAGUNA_QUANT_SEARCH_H

#include <stdint.h>

/* Rounds to the nearest integer, ties to even, for |x| < 2^22 (ggml's trick of
 * adding 1.5 * 2^23 and reading the mantissa). */
int lg_nearest_int(float x);

/* Symmetric levels: x ~ scale * (L - nmax), L in [0, 2*nmax - 1]. Chooses the
 * scale minimising the x^2-weighted squared error among 19 candidates around
 * -nmax / max (ggml make_qx_quants with rmse_type 1, no importance weights).
 * Returns 0 with L = 0 for an all-zero group. */
float lg_make_qx_quants(int n, int nmax, const float *x, int8_t *L);

/* Asymmetric levels: x ~ scale * L - the_min, L in [0, nmax]. Tries nstep + 1
 * grids iscale = (rmin + rdelta*is + nmax) / (max - min), each refined by
 * weighted least squares, and keeps the one of least weighted squared error
 * (ggml make_qkx2_quants with use_mad = false). Laux is n bytes of scratch. */
float lg_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                          float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep);

#endif
