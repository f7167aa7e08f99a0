/* The machine's memory-read bandwidth, as a roofline for decoding (which
 * reads every active weight once per token).
 *
 * Method, chosen so the number is the most a weight-streaming kernel could
 * hope for and not a flattering low one: one buffer far larger than the
 * caches, on 2 MiB pages where the kernel gives them (hugetlbfs pool, else
 * transparent huge pages), filled with non-zero data by the same threads
 * that read it (so every page is real and local); the threads are started
 * and parked before any timing; each repeat releases them together, each
 * sums its contiguous share with the widest vector loads the CPU has
 * (AVX-512 or AVX2, chosen at run time; plain 64-bit loads elsewhere), and
 * the repeat ends when the last one finishes. The best repeat is the result:
 * on a shared machine, other jobs only ever make a repeat slower. */
#ifndef LAGUNA_SYS_MEM_BANDWIDTH_H
#define LAGUNA_SYS_MEM_BANDWIDTH_H

#include <stddef.h>
#include <stdint.h>

#include "laguna.h"

#define LG_BANDWIDTH_MAX_REPS 32

typedef enum {
    LG_READ_AUTO = 0, /* the widest the CPU supports */
    LG_READ_PORTABLE, /* 64-bit integer loads, any CPU */
    LG_READ_AVX2,
    LG_READ_AVX512,
} lg_read_isa;

typedef struct {
    double best_gbps;                   /* 1e9 bytes per second, best repeat */
    double gbps[LG_BANDWIDTH_MAX_REPS]; /* every repeat, in order */
    int reps;
    int n_threads;
    size_t bytes;       /* buffer size */
    int64_t huge_bytes; /* of the buffer on huge pages after filling; -1 unknown */
    lg_read_isa isa;    /* the loads used */
    uint64_t checksum;  /* sum of the buffer's 64-bit words: the same for every isa */
} lg_bandwidth;

/* The buffer size to use: 4 GiB, or a quarter of the available memory if
 * that is smaller, but at least 256 MiB (still ~8x the largest L3 of the
 * machines measured). */
size_t lg_bandwidth_default_bytes(void);

/* Whether this CPU (and build) can run the loads of `isa`. */
int lg_read_isa_supported(lg_read_isa isa);
const char *lg_read_isa_name(lg_read_isa isa);

/* Measures reading `bytes` (rounded down to a multiple of 4 KiB x n_threads;
 * at least 1 MiB) with n_threads threads, reps times (1 to
 * LG_BANDWIDTH_MAX_REPS). Word i of the buffer holds i * 0x9E3779B97F4A7C15. */
laguna_status lg_measure_read_bandwidth(int n_threads, size_t bytes, int reps, lg_read_isa isa,
                                        lg_bandwidth *out, laguna_error *err);

#endif
