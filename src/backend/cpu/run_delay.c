/* Reading a thread's run-queue wait from /proc (run_delay.h). */
#include "backend/cpu/run_delay.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int lg_thread_id(void) {
    return (int)syscall(SYS_gettid);
}

int lg_run_delay_open(int tid) {
    if (tid <= 0) return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && lg_run_delay_ns(fd) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int64_t lg_run_delay_ns(int fd) {
    /* "time on the CPU, time waiting on a run queue, time slices", in ns */
    char buf[96];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *end;
    strtoull(buf, &end, 10);
    if (end == buf || *end != ' ') return -1;
    char *start = end + 1;
    unsigned long long wait = strtoull(start, &end, 10);
    if (end == start) return -1;
    return (int64_t)wait;
}
