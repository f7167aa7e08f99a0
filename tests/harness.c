/* Test harness implementation: runs one case, prints its verdict, counts. */
#include "harness.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int test_case_failed;
static int n_passed, n_failed;
static char skipped[512];

void test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skipped, sizeof skipped, fmt, ap);
    va_end(ap);
}

/* Whether name is one of LAGUNA_TEST_ONLY's comma-separated names (every
 * case when it is unset or empty): one case under a slow tool, e.g.
 * compute-sanitizer, without the cases before it. */
static bool selected(const char *name) {
    const char *only = getenv("LAGUNA_TEST_ONLY");
    if (!only || !*only) return true;
    size_t len = strlen(name);
    for (const char *p = only; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, len) == 0) return true;
        p += n + (end ? 1 : 0);
    }
    return false;
}

void test_run(const char *name, void (*fn)(void)) {
    if (!selected(name)) return;
    test_case_failed = 0;
    skipped[0] = 0;
    fflush(stdout);
    fn();
    if (skipped[0] && !test_case_failed) {
        printf("SKIP %s: %s\n", name, skipped);
    } else if (test_case_failed) {
        printf("FAIL %s\n", name);
        n_failed++;
    } else {
        printf("PASS %s\n", name);
        n_passed++;
    }
    fflush(stdout);
}

int test_summary(void) { return n_failed ? 1 : 0; }
