/* Test harness implementation: runs one case, prints its verdict, counts. */
#include "harness.h"

int test_case_failed;
static int n_passed, n_failed;

void test_run(const char *name, void (*fn)(void)) {
    test_case_failed = 0;
    fflush(stdout);
    fn();
    if (test_case_failed) {
        printf("FAIL %s\n", name);
        n_failed++;
    } else {
        printf("PASS %s\n", name);
        n_passed++;
    }
    fflush(stdout);
}

int test_summary(void) { return n_failed ? 1 : 0; }
