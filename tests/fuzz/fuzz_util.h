/* Shared helpers for the libFuzzer harnesses in tests/fuzz/: a private temp
 * folder per process (for parsers that take paths) and splitting one input
 * into several files. Each harness is one fuzz_*.c defining
 * LLVMFuzzerTestOneInput; `make fuzz` links it with libFuzzer, `make
 * fuzz-replay` with replay_main.c to run the committed inputs once. */
#ifndef LAGUNA_FUZZ_UTIL_H
#define LAGUNA_FUZZ_UTIL_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir_name[64];

/* Removes the folder and its files at exit (libFuzzer exits through exit()). */
static inline void fuzz_dir_remove(void) {
    DIR *d = opendir(fuzz_dir_name);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", fuzz_dir_name, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(fuzz_dir_name);
}

/* A folder of this process's own under /tmp, made on first use. */
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_name[0]) {
        snprintf(fuzz_dir_name, sizeof fuzz_dir_name, "/tmp/laguna-fuzz-XXXXXX");
        if (!mkdtemp(fuzz_dir_name)) abort();
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_name;
}

/* dir/name, in a static buffer (one of four, reused in turn). */
static inline const char *fuzz_path(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", fuzz_dir(), name);
    return buf[k];
}

/* Writes data to dir/name (or removes the file when data is NULL). */
static inline void fuzz_write(const char *name, const void *data, size_t n) {
    const char *p = fuzz_path(name);
    if (!data) {
        unlink(p);
        return;
    }
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

/* The separator between the files packed into one input (in the dictionaries). */
#define FUZZ_SEP "\n#####\n"

/* Splits data at FUZZ_SEP into at most max parts; returns how many. */
static inline int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len,
                             int max) {
    size_t sep = strlen(FUZZ_SEP), start = 0;
    int n = 0;
    for (size_t i = 0; n < max - 1 && i + sep <= size; i++) {
        if (memcmp(data + i, FUZZ_SEP, sep) != 0) continue;
        part[n] = data + start;
        len[n++] = i - start;
        start = i + sep;
        i = start - 1;
    }
    part[n] = data + start;
    len[n++] = size - start;
    return n;
}

#endif
