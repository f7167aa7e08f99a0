/* Error reporting: formatted one-line messages carried in laguna_error. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

laguna_status lg_fail(laguna_error *err, laguna_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

laguna_status lg_fail_prefix(laguna_error *err, const char *fmt, ...) {
    if (!err) return LAGUNA_ERR_ARGUMENT;
    char prefix[256], old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    size_t k = strlen(prefix);
    if (k >= sizeof err->message) k = sizeof err->message - 1;
    memcpy(err->message, prefix, k);
    size_t rest = strnlen(old, sizeof old - 1);
    if (rest > sizeof err->message - 1 - k) rest = sizeof err->message - 1 - k;
    memcpy(err->message + k, old, rest);
    err->message[k + rest] = 0;
    return err->code;
}

const char *laguna_status_name(laguna_status status) {
    switch (status) {
    case LAGUNA_OK: return "ok";
    case LAGUNA_ERR_IO: return "i/o error";
    case LAGUNA_ERR_FORMAT: return "format error";
    case LAGUNA_ERR_SHAPE: return "shape error";
    case LAGUNA_ERR_UNSUPPORTED: return "unsupported";
    case LAGUNA_ERR_ARGUMENT: return "bad argument";
    case LAGUNA_ERR_NOMEM: return "out of memory";
    case LAGUNA_ERR_CONTEXT: return "context full";
    }
    return "unknown error";
}
