/* File helpers: whole-file reads with a size cap, read-only mappings, paths. */
#include "io/file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/tensor_source.h"
#include "sys/huge_pages.h"

laguna_status lg_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len,
                           laguna_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lg_fail(err, LAGUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lg_fail(err, LAGUNA_ERR_IO, "%s: not a regular file", path);
    }
    if ((size_t)st.st_size > max_bytes) {
        fclose(f);
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: %lld bytes is more than the %zu allowed", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        free(buf);
        return lg_fail(err, LAGUNA_ERR_IO, "%s: short read", path);
    }
    buf[n] = 0;
    *out = buf;
    if (out_len) *out_len = n;
    return LAGUNA_OK;
}

char *lg_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

bool lg_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static _Thread_local void (*progress_fn)(void *user, uint64_t done, uint64_t total);
static _Thread_local void *progress_user;

void lg_map_file_set_progress(void (*fn)(void *user, uint64_t done, uint64_t total), void *user) {
    progress_fn = fn;
    progress_user = user;
}

#define READ_STEP ((size_t)64 << 20) /* bytes per pread, so progress moves */

typedef struct {
    int fd;
    char *dst;
    size_t begin, end;
    _Atomic size_t got;  /* bytes of the range read so far */
    _Atomic int done;
    int error; /* errno, or -1 for an early end of file */
    _Atomic int *stop; /* set by the watcher: give up */
} read_range;

static void *read_range_main(void *arg) {
    read_range *r = arg;
    for (size_t got = r->begin; got < r->end && !*r->stop;) {
        size_t want = r->end - got < READ_STEP ? r->end - got : READ_STEP;
        ssize_t k = pread(r->fd, r->dst + got, want, (off_t)got);
        if (k <= 0) {
            r->error = k < 0 ? errno : -1;
            break;
        }
        /* the bytes now live in our copy: drop the page cache's, so a file
         * near the size of RAM is not held twice while it loads */
        posix_fadvise(r->fd, (off_t)got, k, POSIX_FADV_DONTNEED);
        got += (size_t)k;
        r->got = got - r->begin;
    }
    r->done = 1;
    return NULL;
}

/* Waits for the started readers, reporting progress meanwhile; with a
 * memory floor, stops them when the available memory falls below it. */
static void wait_for_readers(read_range *ranges, int k, size_t n, size_t floor, _Atomic int *stop) {
    for (;;) {
        size_t got = 0;
        int running = 0;
        for (int i = 0; i < k; i++) got += ranges[i].got, running += !ranges[i].done;
        if (progress_fn) progress_fn(progress_user, got, n);
        if (!running) return;
        if (floor && !*stop) {
            size_t avail = lg_memory_available();
            if (avail && avail < floor) *stop = 1;
        }
        usleep(100000);
    }
}

/* Reads the file in parallel ranges: the kernel zeroes each fresh page on
 * first touch, which dominates a single-threaded copy. The copy starts on a
 * 2 MiB boundary so transparent huge pages can back all of it; it is not
 * taken from the hugetlbfs pool, whose mappings munmap only in whole 2 MiB
 * pages (the tensor source frees `n` bytes). */
static laguna_status copy_to_anonymous(int fd, const char *path, size_t n, lg_placement place, void **addr,
                                       laguna_error *err) {
    size_t map_bytes;
    lg_page_source source;
    char *p = lg_huge_alloc(n, false, &map_bytes, &source);
    if (!p) return lg_fail(err, LAGUNA_ERR_NOMEM, "%s: cannot allocate %zu bytes to load it", path, n);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* larger read-ahead */
    enum { MAX_READERS = 16 };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int k = cores < 1 ? 1 : cores > MAX_READERS ? MAX_READERS : (int)cores;
    if (n < ((size_t)64 << 20)) k = 1;
    read_range ranges[MAX_READERS];
    pthread_t threads[MAX_READERS];
    size_t chunk = (n / (size_t)k + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1); /* whole huge pages */
    int started = 0;
    _Atomic int stop = 0;
    /* smaller files take well under a second: no progress, no watching memory */
    size_t floor = place == LG_PLACE_COPY_OR_MAP ? (size_t)(lg_load_headroom_bytes(lg_memory_total()) / 2) : 0;
    bool watch = (progress_fn || floor) && n >= ((size_t)256 << 20);
    for (int i = 0; i < k; i++) {
        size_t b = chunk * (size_t)i, e = b + chunk > n ? n : b + chunk;
        ranges[i] = (read_range){fd, p, b < n ? b : n, e, 0, 0, 0, &stop};
        if ((i == 0 && !watch) || pthread_create(&threads[i], NULL, read_range_main, &ranges[i]) != 0)
            read_range_main(&ranges[i]);
        else
            started |= 1 << i;
    }
    if (watch) wait_for_readers(ranges, k, n, floor, &stop);
    int error = 0;
    for (int i = 0; i < k; i++) {
        if (started & (1 << i)) pthread_join(threads[i], NULL);
        if (ranges[i].error) error = ranges[i].error;
    }
    if (error || stop) munmap(p, n);
    if (error)
        return lg_fail(err, LAGUNA_ERR_IO, "%s: read failed: %s", path, error > 0 ? strerror(error) : "unexpected end of file");
    if (stop) return LAGUNA_OK; /* *addr stays NULL: the caller maps the file */
    mprotect(p, n, PROT_READ);
    *addr = p;
    return LAGUNA_OK;
}

/* A "Name: N kB" line of /proc/meminfo in bytes; 0 if absent. */
static size_t meminfo_bytes(const char *name) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, len = strlen(name);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, name, len) && line[len] == ':' && sscanf(line + len + 1, "%zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

size_t lg_memory_available(void) { return meminfo_bytes("MemAvailable"); }

size_t lg_memory_total(void) { return meminfo_bytes("MemTotal"); }

laguna_status lg_map_file(const char *path, lg_placement place, void **addr, size_t *len, bool *copied,
                          laguna_error *err) {
    *addr = NULL;
    *len = 0;
    *copied = false;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lg_fail(err, LAGUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lg_fail(err, LAGUNA_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return LAGUNA_OK;
    }
    if (place != LG_PLACE_MAP) {
        laguna_status st_copy = copy_to_anonymous(fd, path, (size_t)st.st_size, place, addr, err);
        if (st_copy || *addr) {
            close(fd);
            if (!st_copy) *len = (size_t)st.st_size, *copied = true;
            return st_copy;
        }
        /* memory ran short while copying: map instead */
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return lg_fail(err, LAGUNA_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
#ifdef MADV_HUGEPAGE
    /* Page cache on 2 MiB folios where the file system and kernel allow it
     * (read-ahead in huge steps, PMD mappings): advice, fine if refused. */
    madvise(p, (size_t)st.st_size, MADV_HUGEPAGE);
#endif
    *addr = p;
    *len = (size_t)st.st_size;
    return LAGUNA_OK;
}
