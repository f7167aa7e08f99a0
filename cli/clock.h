/* Wall-clock seconds (monotonic) for the commands' timings. */
#ifndef LAGUNA_CLI_CLOCK_H
#define LAGUNA_CLI_CLOCK_H

#include <time.h>

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
