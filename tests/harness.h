/* Minimal test harness shared by every tests/test_*.c program.
 *
 * A test program defines static test functions and calls RUN(fn) for each from
 * main(), then returns test_summary(). Each case prints "PASS name" or
 * "FAIL name: why"; tests/run.sh adds the lines of all programs up into the
 * suite's "N passed, N failed" line. Paths are relative to the repository root,
 * where run.sh starts every program. */
#ifndef LAGUNA_TESTS_HARNESS_H
#define LAGUNA_TESTS_HARNESS_H

#include <stdio.h>

/* Set by CHECK when the running case fails; reset by test_run. */
extern int test_case_failed;

void test_run(const char *name, void (*fn)(void));
/* Marks the running case skipped (printed "SKIP name: why", counted apart). */
void test_skip(const char *fmt, ...);
int test_summary(void);

/* Records a failure with its location and keeps going (so one run shows all). */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("  check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                    \
            test_case_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

/* Like CHECK but prints a formatted explanation. */
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("  check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);                    \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            test_case_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

#define RUN(fn) test_run(#fn, fn)

#endif
