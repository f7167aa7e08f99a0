/* Backends by name. */
#include "backend/backend.h"

#include <string.h>

#include "core/error.h"

laguna_status lg_backend_create(const char *name, int n_threads, lg_backend **out, laguna_error *err) {
    *out = NULL;
    if (!name || !strcmp(name, "cpu")) *out = lg_cpu_backend_new(n_threads);
    else if (!strcmp(name, "reference")) *out = lg_reference_backend_new();
    else return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "unknown device '%s' (this build has: cpu, reference)", name);
    return *out ? LAGUNA_OK : lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory starting the %s backend", name ? name : "cpu");
}

void lg_backend_destroy(lg_backend *be) {
    if (be) be->ops->destroy(be);
}
