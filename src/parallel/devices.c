/* Parsing of the --devices list (devices.h). */
#include "parallel/devices.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* A number in [0, max] spelled with digits only, ending at *end. */
static bool number(const char *s, const char **end, long max, int *out) {
    char *e = NULL;
    if (*s < '0' || *s > '9') return false;
    long v = strtol(s, &e, 10);
    if (v > max) return false;
    *end = e;
    *out = (int)v;
    return true;
}

laguna_status lg_devices_parse(const char *text, lg_device_list *d, laguna_error *err) {
    memset(d, 0, sizeof *d);
    if (!text || !*text) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "empty device list");
    const char *end;
    if (!strncmp(text, "cpu:", 4)) {
        d->kind = LG_DEVICES_CPU;
        if (!number(text + 4, &end, LG_MAX_RANKS, &d->n) || *end || d->n < 1)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                           "bad device list '%s': cpu:N takes N in [1, %d] ranks", text,
                           LG_MAX_RANKS);
        return LAGUNA_OK;
    }
    d->kind = LG_DEVICES_CUDA;
    for (const char *s = text;;) {
        if (strncmp(s, "cuda:", 5))
            return lg_fail(
                err, LAGUNA_ERR_ARGUMENT,
                "bad device list '%s': give cuda:0,cuda:1,... (one entry per GPU) or cpu:N", text);
        int id;
        if (!number(s + 5, &end, 255, &id) || (*end && *end != ','))
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "bad device list '%s': '%.*s' is not cuda:N",
                           text, (int)strcspn(s, ","), s);
        for (int i = 0; i < d->n; i++)
            if (d->ids[i] == id)
                return lg_fail(err, LAGUNA_ERR_ARGUMENT, "device list '%s' names cuda:%d twice",
                               text, id);
        if (d->n == LG_MAX_RANKS)
            return lg_fail(err, LAGUNA_ERR_ARGUMENT, "device list '%s' has more than %d devices",
                           text, LG_MAX_RANKS);
        d->ids[d->n++] = id;
        if (!*end) return LAGUNA_OK;
        s = end + 1;
    }
}
