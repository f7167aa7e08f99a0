/* Dev-only: a CUPTI activity tracer injected into any CUDA program
 * (CUDA_INJECTION64_PATH=.../kernel_trace.so), for the device machine whose
 * Nsight Systems cannot import its own traces. Writes every kernel (graph
 * nodes one by one), memcpy and memset as "start_ns,end_ns,name" lines to
 * $KERNEL_TRACE_OUT (default kernel_trace.csv). Built and used by
 * tools/device/kernel_trace.sh; never part of the engine. */
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>

static FILE *out;

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *size = (size_t)16 << 20;
    *buffer = aligned_alloc(8, *size);
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid) {
    (void)ctx, (void)stream, (void)size;
    CUpti_Activity *r = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &r) == CUPTI_SUCCESS) {
        if (r->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || r->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)r;
            fprintf(out, "%llu,%llu,%s\n", (unsigned long long)k->start, (unsigned long long)k->end, k->name);
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
            const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)r;
            fprintf(out, "%llu,%llu,memcpy %llu bytes\n", (unsigned long long)m->start, (unsigned long long)m->end,
                    (unsigned long long)m->bytes);
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
            const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)r;
            fprintf(out, "%llu,%llu,memset %llu bytes\n", (unsigned long long)m->start, (unsigned long long)m->end,
                    (unsigned long long)m->bytes);
        }
    }
    free(buffer);
}

static void flush_at_exit(void) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    fflush(out);
}

int InitializeInjection(void) {
    const char *path = getenv("KERNEL_TRACE_OUT");
    out = fopen(path ? path : "kernel_trace.csv", "w");
    if (!out) return 0;
    cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY);
    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET);
    atexit(flush_at_exit);
    return 1;
}
