/* Error reporting inside the library: fill a laguna_error and return its code. */
#ifndef LAGUNA_CORE_ERROR_H
#define LAGUNA_CORE_ERROR_H

#include "laguna.h"

/* Sets *err (when non-NULL) to code and the formatted message; returns code so
 * callers can write `return lg_fail(err, LAGUNA_ERR_IO, "...", ...)`. */
laguna_status lg_fail(laguna_error *err, laguna_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with more context ("file.json: " + message). */
laguna_status lg_fail_prefix(laguna_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
