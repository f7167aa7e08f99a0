/* Test harness implementation: runs one case, prints its verdict, counts. */
#include "harness.h"

#include <stdarg.h>

int test_case_failed;
static int n_passed, n_failed;
static char skipped[512];

void test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skipped, sizeof skipped, fmt, ap);
    va_end(ap);
}

void test_run(const char *name, void (*fn)(void)) {
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
