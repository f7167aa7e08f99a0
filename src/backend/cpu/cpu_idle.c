/* Reading the idle time of this process's CPUs from /proc/stat (cpu_idle.h). */
#include "backend/cpu/cpu_idle.h"

#include <ctype.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

struct lg_cpu_idle {
    int fd;
    cpu_set_t usable; /* the affinity mask when opened */
    int64_t ns_per_tick;
    size_t buf_bytes; /* room for every "cpuN ..." line */
    char *buf;
};

lg_cpu_idle *lg_cpu_idle_open(void) {
    lg_cpu_idle *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    long ticks = sysconf(_SC_CLK_TCK);
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    r->ns_per_tick = ticks > 0 ? 1000000000 / ticks : 10000000;
    /* a cpu line is under 160 characters (ten 20-digit counters at most) */
    r->buf_bytes = (size_t)(cpus > 0 ? cpus + 1 : 2) * 160 + 64;
    r->buf = malloc(r->buf_bytes + 1);
    r->fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (sched_getaffinity(0, sizeof r->usable, &r->usable) != 0) CPU_ZERO(&r->usable);
    if (!r->buf || r->fd < 0 || CPU_COUNT(&r->usable) == 0 || lg_cpu_idle_ns(r) < 0) {
        lg_cpu_idle_close(r);
        return NULL;
    }
    return r;
}

void lg_cpu_idle_close(lg_cpu_idle *r) {
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    free(r->buf);
    free(r);
}

/* Parses an unsigned decimal at *s, moving *s past it; -1 when none. */
static int64_t number_at(const char **s) {
    const char *p = *s;
    while (*p == ' ')
        p++;
    if (!isdigit((unsigned char)*p)) return -1;
    int64_t v = 0;
    while (isdigit((unsigned char)*p))
        v = v * 10 + (*p++ - '0');
    *s = p;
    return v;
}

int64_t lg_cpu_idle_ns(lg_cpu_idle *r) {
    ssize_t n = pread(r->fd, r->buf, r->buf_bytes, 0);
    if (n <= 0) return -1;
    r->buf[n] = 0;
    /* "cpu  a b c ..." (all CPUs) then "cpuN user nice system idle iowait ...": sum idle and
     * iowait over the usable N; the cpu lines come first, so stop at the first other line */
    int64_t ticks = 0;
    int found = 0;
    for (const char *line = r->buf; line && line[0] == 'c' && line[1] == 'p' && line[2] == 'u';) {
        const char *p = line + 3;
        int64_t cpu = isdigit((unsigned char)*p) ? number_at(&p) : -1;
        if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET((int)cpu, &r->usable)) {
            int64_t f[5];
            for (int i = 0; i < 5; i++)
                f[i] = number_at(&p);
            if (f[3] < 0 || f[4] < 0) return -1;
            ticks += f[3] + f[4];
            found++;
        }
        const char *next = line;
        while (*next && *next != '\n')
            next++;
        line = *next ? next + 1 : NULL;
    }
    return found ? ticks * r->ns_per_tick : -1;
}
