/* Inputs and yardsticks shared by the op tests (tests/test_backend_ops.c on
 * the CPU, tests/test_cuda_ops.c on the GPU): one fixed pseudo-random
 * stream, weight matrices made with the project's own converters and
 * quantisers (with the values their bytes decode to), router choices, the
 * norm-wise relative error and the per-output bound that products with
 * quantised weights are held to. */
#ifndef LAGUNA_TESTS_OP_INPUTS_H
#define LAGUNA_TESTS_OP_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "backend/tensor.h"

/* Uniform in [-1, 1), from one xorshift stream (the same sequence every run). */
float op_frand(void);
/* Uniform in [0, n). */
int op_irand(int n);
/* n values uniform in [-amp, amp) (caller frees; at least one element). */
float *op_frand_array(size_t n, float amp);

/* ||a - b|| / ||b|| (||a - b|| when b is all zero); a NaN anywhere gives NaN,
 * which fails every `< tol`. */
double op_rel(const float *a, const float *b, size_t n);

/* A rows x cols matrix of random values in [-amp, amp) stored in dtype
 * (m.data = bytes, host memory); deq holds the floats the bytes decode to. */
typedef struct {
    lg_matrix m;
    uint8_t *bytes;
    float *deq;
} op_weight;

op_weight op_weight_new(lg_dtype dtype, int rows, int cols, float amp);
void op_weight_free(op_weight *w);

/* How many of the tokens x rows outputs y (token-major) lie farther from
 * ref than a product with quantised weights may: what rounding each
 * activation to half a step of its block's amax / 127 can cost (blocks of
 * q8_block values, 0 = activations kept in float), sum_i |w_i| * step_i / 2,
 * plus float_tol * (sum_i |w_i x_i| + |bias|) for float arithmetic. wd is
 * the dequantised weights, x the float activations both sides were given. */
int op_outside_q8_bound(const float *y, const float *ref, const float *x, const float *wd,
                        const float *bias, int rows, int cols, int tokens, int q8_block,
                        double float_tol);

/* top_k distinct experts for each of n tokens, drawn from the first `used`
 * (the rest get no rows); caller frees. */
int32_t *op_random_ids(int n, int top_k, int used);

/* Rows of logits [n_rows][n_cols] for greedy argmax tests (caller frees),
 * each of one kind in turn: random values; its maximum repeated at several
 * places (ties, the first maybe past the middle); few distinct values (ties
 * everywhere); the maximum at the last column; every value -inf; -inf with a
 * few finite values; NaN sprinkled in (at column 0 too in every other such
 * row); +inf twice; -0 and +0 as the maximum. */
float *op_argmax_rows_input(int n_rows, int n_cols);
/* The greedy token of a row, defined plainly (the lowest column holding the
 * largest non-NaN value; 0 when column 0 is NaN, as a left-to-right scan
 * keeping strict improvements gives), written apart from the engine's. */
int32_t op_argmax_plain(const float *row, int n);

#endif
