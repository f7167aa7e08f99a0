/* Dev-only, through the device tool: what one link of a chain of dependent
 * kernels costs on this GPU, the floor under a decode layer's small kernels
 * (docs/performance.md, fortieth pass: ~37 us a layer of kernels that move
 * no weights). A chain of LINKS kernels is captured in a CUDA graph and
 * replayed; each kernel waits for the one before (griddepcontrol.wait, as
 * every backend kernel begins: lg_cuda_kernel_begin), lets the next one
 * launch, then does `trips` dependent L2 round trips (a pointer chase over
 * a small table) and passes a counter on. Printed: microseconds a link,
 * the median of 5 replays of the whole graph, for grids of 1 block and of
 * one block an SM, with and without programmatic dependent launch. The
 * counter at the end must equal the number of links (the order held).
 * Build and run:
 *   nvcc -O3 -std=c++20 -arch=sm_90 -o build/chain_latency tools/device/chain_latency.cu && build/chain_latency */
#include <algorithm>
#include <cstdio>
#include <cuda_runtime.h>

#define LINKS 400
#define TABLE 4096 /* ints of the pointer-chase table: 16 KB, L2-resident */
#define REPLAYS 5

__global__ void link_kernel(int *counter, const int *table, int i, int trips) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    if (threadIdx.x != 0) return;
    int v = __ldcg(counter + i); /* the previous link's write, from L2 */
    int at = v & (TABLE - 1);
    for (int t = 0; t < trips; t++) at = __ldcg(table + at); /* each load needs the one before */
    if (blockIdx.x == 0) counter[i + 1] = v + 1 + (at == -1); /* (at is never -1: keeps the chase) */
}

static bool check(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return true;
    fprintf(stderr, "chain_latency: %s: %s\n", what, cudaGetErrorString(e));
    return false;
}

/* One chain as a graph, replayed REPLAYS times: us a link (median), or -1. */
static double chain_us(cudaStream_t s, int *counter, const int *table, int blocks, int threads, bool pdl, int trips) {
    cudaGraph_t g;
    cudaGraphExec_t ge;
    if (!check(cudaMemsetAsync(counter, 0, sizeof(int) * (LINKS + 1), s), "memset") ||
        !check(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), "capture"))
        return -1;
    for (int i = 0; i < LINKS; i++) {
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(blocks), cfg.blockDim = dim3(threads), cfg.stream = s;
        cfg.attrs = attr, cfg.numAttrs = pdl ? 1 : 0;
        cudaLaunchKernelEx(&cfg, link_kernel, counter, table, i, trips);
    }
    if (!check(cudaStreamEndCapture(s, &g), "end capture") || !check(cudaGraphInstantiate(&ge, g, 0), "instantiate"))
        return -1;
    double us[REPLAYS];
    cudaEvent_t a, b;
    cudaEventCreate(&a), cudaEventCreate(&b);
    bool ok = check(cudaGraphLaunch(ge, s), "warm-up") && check(cudaStreamSynchronize(s), "warm-up sync");
    for (int r = 0; ok && r < REPLAYS; r++) {
        cudaMemsetAsync(counter, 0, sizeof(int) * (LINKS + 1), s);
        cudaEventRecord(a, s);
        cudaGraphLaunch(ge, s);
        cudaEventRecord(b, s);
        ok = check(cudaEventSynchronize(b), "replay");
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        us[r] = ms * 1e3 / LINKS;
    }
    int last = -1;
    ok = ok && check(cudaMemcpy(&last, counter + LINKS, sizeof last, cudaMemcpyDeviceToHost), "read back");
    if (ok && last != LINKS) fprintf(stderr, "chain_latency: the counter ended at %d, not %d\n", last, LINKS), ok = false;
    cudaEventDestroy(a), cudaEventDestroy(b);
    cudaGraphExecDestroy(ge), cudaGraphDestroy(g);
    if (!ok) return -1;
    std::sort(us, us + REPLAYS);
    return us[REPLAYS / 2];
}

int main() {
    int sms = 0;
    cudaDeviceProp prop;
    if (!check(cudaGetDeviceProperties(&prop, 0), "device")) return 1;
    sms = prop.multiProcessorCount;
    int *counter, *table, host[TABLE];
    for (int i = 0; i < TABLE; i++) host[i] = (int)((i * 2654435761u + 12345u) % TABLE); /* a scattered chase */
    if (!check(cudaMalloc(&counter, sizeof(int) * (LINKS + 1)), "alloc") ||
        !check(cudaMalloc(&table, sizeof host), "alloc") ||
        !check(cudaMemcpy(table, host, sizeof host, cudaMemcpyHostToDevice), "upload"))
        return 1;
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    printf("%s, %d SMs; %d dependent kernels in a graph, us a link (median of %d replays)\n", prop.name, sms, LINKS,
           REPLAYS);
    printf("%-8s %-8s %-5s %-6s %10s\n", "blocks", "threads", "pdl", "trips", "us/link");
    struct {
        int blocks, threads, trips;
    } shapes[] = {{1, 32, 0}, {1, 1024, 0}, {-1, 256, 0}, {-1, 256, 1}, {-1, 256, 4}, {-1, 256, 16}};
    int rc = 0;
    for (auto sh : shapes) {
        for (int pdl = 0; pdl < 2; pdl++) {
            int blocks = sh.blocks < 0 ? sms : sh.blocks;
            double us = chain_us(s, counter, table, blocks, sh.threads, pdl, sh.trips);
            if (us < 0) rc = 1;
            printf("%-8d %-8d %-5s %-6d %10.2f\n", blocks, sh.threads, pdl ? "yes" : "no", sh.trips, us);
        }
    }
    cudaFree(counter), cudaFree(table);
    cudaStreamDestroy(s);
    return rc;
}
