/* How NCCL ranks find each other, from the environment: the job's layout
 * (world size, this process's first rank) and the exchange of its unique
 * id through LAGUNA_NCCL_ID or a file (comm.h; docs/multi-gpu.md). Plain
 * C, so it is tested on machines without GPUs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "parallel/comm.h"

static laguna_status env_int(const char *name, int fallback, int lo, int hi, int *out,
                             laguna_error *err) {
    const char *v = getenv(name);
    *out = fallback;
    if (!v || !*v) return LAGUNA_OK;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "%s='%s' is not a whole number in [%d, %d]", name,
                       v, lo, hi);
    *out = (int)x;
    return LAGUNA_OK;
}

laguna_status lg_nccl_layout_from_env(int n_local, lg_nccl_layout *l, laguna_error *err) {
    l->n_local = n_local;
    laguna_status st = env_int("LAGUNA_WORLD_SIZE", n_local, 1, 1 << 20, &l->world_size, err);
    if (!st) st = env_int("LAGUNA_FIRST_RANK", 0, 0, 1 << 20, &l->first_rank, err);
    if (!st && l->first_rank + n_local > l->world_size)
        st = lg_fail(err, LAGUNA_ERR_ARGUMENT,
                     "this process drives ranks [%d, %d) but LAGUNA_WORLD_SIZE is %d (set "
                     "LAGUNA_FIRST_RANK and "
                     "LAGUNA_WORLD_SIZE for a job over several hosts)",
                     l->first_rank, l->first_rank + n_local, l->world_size);
    return st;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static laguna_status id_from_hex(const char *hex, unsigned char *id, size_t n, laguna_error *err) {
    if (strlen(hex) != 2 * n)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                       "LAGUNA_NCCL_ID has %zu characters; a unique id is %zu hex digits",
                       strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "LAGUNA_NCCL_ID is not hexadecimal");
        id[i] = (unsigned char)(hi * 16 + lo);
    }
    return LAGUNA_OK;
}

static laguna_status write_id(const char *path, const unsigned char *id, size_t n,
                              laguna_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "LAGUNA_NCCL_ID_FILE is too long a path");
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(id, 1, n, f) == n;
    if (f && fclose(f)) ok = false;
    if (!ok || rename(tmp, path)) {
        int e = errno;
        remove(tmp);
        return lg_fail(err, LAGUNA_ERR_IO, "cannot write the NCCL unique id to %s: %s", path,
                       strerror(e));
    }
    return LAGUNA_OK;
}

static laguna_status wait_for_id(const char *path, unsigned char *id, size_t n, laguna_error *err) {
    int wait_s;
    laguna_status st = env_int("LAGUNA_NCCL_ID_WAIT", 300, 0, 1 << 20, &wait_s, err);
    if (st) return st;
    for (int tenths = 0;; tenths++) {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t got = fread(id, 1, n, f);
            fclose(f);
            if (got == n) return LAGUNA_OK;
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s holds %zu bytes; a NCCL unique id is %zu",
                           path, got, n);
        }
        if (tenths >= wait_s * 10)
            return lg_fail(err, LAGUNA_ERR_IO,
                           "no NCCL unique id appeared in %s after %d s (the process with "
                           "LAGUNA_FIRST_RANK=0 writes it)",
                           path, wait_s);
        nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
}

laguna_status lg_nccl_id_exchange(const lg_nccl_layout *l, int (*make_id)(void *id, void *user),
                                  void *user, unsigned char *id, size_t n, laguna_error *err) {
    const char *hex = getenv("LAGUNA_NCCL_ID"), *path = getenv("LAGUNA_NCCL_ID_FILE");
    if (hex && *hex) return id_from_hex(hex, id, n, err);
    bool leader = l->first_rank == 0;
    if (path && *path && !leader) return wait_for_id(path, id, n, err);
    if ((!path || !*path) && l->world_size != l->n_local)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                       "a job of %d ranks over several processes needs LAGUNA_NCCL_ID or "
                       "LAGUNA_NCCL_ID_FILE to share NCCL's unique id",
                       l->world_size);
    if (make_id(id, user))
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "NCCL could not make a unique id");
    return path && *path ? write_id(path, id, n, err) : LAGUNA_OK;
}
