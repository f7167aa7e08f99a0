/* Per-thread scratch buffers for the kernels, and the buffer of quantised
 * activations that lg_matmul_many fills before each dispatch. */
#include <stdlib.h>

#include "kernels/kernels.h"

int lg_kernel_ctx_init(lg_kernel_ctx *k, lg_threadpool *pool, size_t scratch_floats) {
    k->pool = pool;
    k->n_threads = lg_threadpool_size(pool);
    k->scratch_floats = scratch_floats;
    k->act_q8 = NULL;
    k->act_q8_bytes = 0;
    k->scratch = calloc((size_t)k->n_threads, sizeof *k->scratch);
    if (!k->scratch) return -1;
    for (int i = 0; i < k->n_threads; i++) {
        k->scratch[i] = aligned_alloc(64, ((scratch_floats * sizeof(float)) + 63) / 64 * 64);
        if (!k->scratch[i]) return -1;
    }
    return 0;
}

void lg_kernel_ctx_free(lg_kernel_ctx *k) {
    if (k->scratch)
        for (int i = 0; i < k->n_threads; i++) free(k->scratch[i]);
    free(k->scratch);
    k->scratch = NULL;
    free(k->act_q8);
    k->act_q8 = NULL;
    k->act_q8_bytes = 0;
}
