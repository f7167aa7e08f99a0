/* BF16 matrix products on tensor cores for few tokens (decoding), and the
 * choice between this kernel and the tiled GEMM (cuda_matmul_gemm.cu) for
 * many. Both keep the slice contract of cuda_mma.h, so they give the same
 * bits and a token's result does not depend on its batch.
 *
 * narrow (up to 64 tokens): a block of 8 warps takes 16 weight rows and up
 * to 64 tokens, one slice per warp (split K, so a decode step has enough
 * warps streaming weights), each lane loading its 8 consecutive k of rows
 * g and g + 8 and of its token straight from global memory; the slices'
 * sums meet in shared memory and are added in slice order. */
#include "backend/cuda/cuda_mma.h"

#include <stdlib.h>

#define NARROW_WARPS 8
#define NARROW_MAX_TILES 8 /* 64 tokens */

/* acc[j] = the sum over k in [k0, k1) for rows r0.. r0 + 15 and tokens
 * 8j .. 8j + 7 of x (tiles with no token below nt are left alone). LOADS:
 * k steps whose weights are loaded before any of them is used (scheduling
 * only: the order of the mma chain is the same for every LOADS). */
template <int NT, int LOADS>
__device__ __forceinline__ void slice_chain(const uint8_t *w, size_t row_bytes, int rows, int r0, const float *x,
                                            int cols, int nt, int k0, int k1, float (*acc)[4]) {
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const uint4 *ra = r0 + g < rows ? (const uint4 *)(w + (size_t)(r0 + g) * row_bytes) : NULL;
    const uint4 *rb = r0 + g + 8 < rows ? (const uint4 *)(w + (size_t)(r0 + g + 8) * row_bytes) : NULL;
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    const float4 fzero = make_float4(0, 0, 0, 0);
    for (int kb = k0; kb < k1; kb += 32 * LOADS) {
        uint4 wa[LOADS], wb[LOADS];
#pragma unroll
        for (int u = 0; u < LOADS; u++) {
            int k = kb + 32 * u + 8 * q;
            bool in = k < k1;
            wa[u] = in && ra ? __ldg(ra + k / 8) : zero;
            wb[u] = in && rb ? __ldg(rb + k / 8) : zero;
        }
#pragma unroll
        for (int u = 0; u < LOADS; u++) {
            if (kb + 32 * u >= k1) break;
            int k = kb + 32 * u + 8 * q;
#pragma unroll
            for (int j = 0; j < NT; j++) {
                if (8 * j >= nt) break;
                int tok = 8 * j + g;
                float4 xa = fzero, xb = fzero;
                if (tok < nt && k < k1) {
                    const float4 *xp = (const float4 *)(x + (size_t)tok * cols + k);
                    xa = __ldg(xp), xb = __ldg(xp + 1);
                }
                mma_step(acc[j], wa[u], wb[u], mma_split(xa, xb));
            }
        }
    }
}

template <int NT>
__global__ void __launch_bounds__(NARROW_WARPS * 32) mma_narrow_kernel(const __grid_constant__ matmul_set set) {
    lg_cuda_kernel_begin();
    extern __shared__ float part[]; /* [slice][16 rows][8 NT tokens] */
    int block_x, t_begin, t_count;
    const matmul_args &a = set.op[set_op_of_block(set, &block_x)];
    const uint8_t *w;
    if (!set_block_rows(a, &w, &t_begin, &t_count)) return;
    int t0 = blockIdx.y * 8 * NT;
    if (t0 >= t_count) return;
    int nt = min(8 * NT, t_count - t0), r0 = block_x * 16, warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    int steps, n_slices;
    slicing(a.cols, &steps, &n_slices);
    const float *x = a.x + (size_t)(t_begin + t0) * a.cols;
    if (warp < n_slices) {
        float acc[NT][4];
        int k0 = warp * steps * 32, k1 = min(a.cols, k0 + steps * 32);
        slice_chain<NT, 8>(w, a.row_bytes, a.rows, r0, x, a.cols, nt, k0, k1, acc);
        float *p = part + (size_t)warp * 16 * 8 * NT;
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int i = 0; i < 4; i++) p[(g + (i >= 2 ? 8 : 0)) * 8 * NT + 8 * j + 2 * q + (i & 1)] = acc[j][i];
    }
    __syncthreads();
    float *y = a.y + (size_t)(t_begin + t0) * a.rows;
    for (int i = threadIdx.x; i < 16 * 8 * NT; i += blockDim.x) {
        int r = r0 + i / (8 * NT), t = i % (8 * NT);
        float v = part[i];
        for (int s = 1; s < n_slices; s++) v += part[(size_t)s * 16 * 8 * NT + i];
        if (r < a.rows && t < nt) y[(size_t)t * a.rows + r] = v + (a.bias ? a.bias[r] : 0.0f);
    }
}

bool lg_cuda_mma_enabled(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("LAGUNA_CUDA_MMA");
        on = !(e && e[0] == '0');
    }
    return on;
}

template <int NT>
static void launch_narrow(lg_cuda_ctx *k, const matmul_set &set, int max_tokens, int max_groups) {
    int blocks_y = (max_tokens + 8 * NT - 1) / (8 * NT);
    size_t smem = sizeof(float) * MMA_MAX_SLICES * 16 * 8 * NT;
    lg_cuda_launch(k, mma_narrow_kernel<NT>, dim3(set.first_block[set.n], blocks_y, max_groups), NARROW_WARPS * 32,
                   smem, set);
}

void lg_cuda_mma_launch(lg_cuda_ctx *k, matmul_set *set, int max_tokens, int max_groups) {
    if (set->n == 0 || max_tokens <= 0) return;
    if (max_tokens > 8 * NARROW_MAX_TILES) {
        lg_cuda_gemm_launch(k, set, max_tokens, max_groups);
        return;
    }
    set->first_block[0] = 0;
    for (int i = 0; i < set->n; i++)
        set->first_block[i + 1] = set->first_block[i] + (set->op[i].rows + 15) / 16;
    if (set->first_block[set->n] == 0) return;
    if (max_tokens <= 8) {
        launch_narrow<1>(k, *set, max_tokens, max_groups);
    } else if (max_tokens <= 16) {
        launch_narrow<2>(k, *set, max_tokens, max_groups);
    } else if (max_tokens <= 32) {
        launch_narrow<4>(k, *set, max_tokens, max_groups);
    } else {
        launch_narrow<8>(k, *set, max_tokens, max_groups);
    }
}
