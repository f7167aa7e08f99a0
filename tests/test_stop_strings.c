/* Stop strings across streamed chunks (laguna_stop_matcher): nothing of a
 * stop string is released, text that cannot start one is released at once,
 * the earliest match wins, and bad arguments are errors. */
#include <string.h>

#include "harness.h"
#include "laguna_generate.h"

/* Pushes chunks, concatenating what is released; returns whether a stop hit. */
static int run(const char *const *stops, size_t n_stops, const char *const *chunks, size_t n,
               char *out) {
    laguna_stop_matcher *m = NULL;
    laguna_error err = {0};
    out[0] = 0;
    CHECKF(laguna_stop_matcher_new(stops, n_stops, &m, &err) == LAGUNA_OK, "%s", err.message);
    if (!m) return -1;
    bool hit = false;
    const char *r;
    size_t len;
    for (size_t i = 0; i < n && !hit; i++) {
        CHECK(laguna_stop_matcher_push(m, chunks[i], strlen(chunks[i]), &r, &len, &hit, &err) ==
              LAGUNA_OK);
        CHECK(r[len] == 0);
        strncat(out, r, len);
    }
    if (!hit) {
        CHECK(laguna_stop_matcher_flush(m, &r, &len, &err) == LAGUNA_OK);
        strncat(out, r, len);
    }
    laguna_stop_matcher_free(m);
    return hit;
}

static void test_stop_across_chunks(void) {
    const char *stops[] = {"<|end|>"};
    const char *chunks[] = {"Hel", "lo wo", "rld<|e", "nd|> more"};
    char out[128];
    CHECK(run(stops, 1, chunks, 4, out) == 1);
    CHECKF(!strcmp(out, "Hello world"), "'%s'", out);
}

static void test_stop_one_byte_at_a_time(void) {
    const char *stops[] = {"\n\n"};
    const char *chunks[] = {"a", "\n", "b", "\n", "\n", "c"};
    char out[64];
    CHECK(run(stops, 1, chunks, 6, out) == 1);
    CHECKF(!strcmp(out, "a\nb"), "'%s'", out);
}

static void test_stop_at_the_very_start(void) {
    const char *stops[] = {"END"};
    const char *chunks[] = {"END", "ignored"};
    char out[64];
    CHECK(run(stops, 1, chunks, 2, out) == 1);
    CHECK(out[0] == 0);
}

static void test_partial_match_is_held_then_released(void) {
    const char *stops[] = {"STOP"};
    laguna_stop_matcher *m = NULL;
    CHECK(laguna_stop_matcher_new(stops, 1, &m, NULL) == LAGUNA_OK);
    if (!m) return;
    const char *r;
    size_t len;
    bool hit = true;
    CHECK(laguna_stop_matcher_push(m, "abST", 4, &r, &len, &hit, NULL) == LAGUNA_OK && !hit);
    CHECK(len == 2 && !memcmp(r, "ab", 2)); /* "ST" might begin STOP */
    CHECK(laguna_stop_matcher_push(m, "x", 1, &r, &len, &hit, NULL) == LAGUNA_OK && !hit);
    CHECK(len == 3 && !memcmp(r, "STx", 3));
    CHECK(laguna_stop_matcher_push(m, "S", 1, &r, &len, &hit, NULL) == LAGUNA_OK && !hit);
    CHECK(len == 0);
    CHECK(laguna_stop_matcher_push(m, "", 0, &r, &len, &hit, NULL) == LAGUNA_OK && !hit &&
          len == 0);
    CHECK(laguna_stop_matcher_flush(m, &r, &len, NULL) == LAGUNA_OK);
    CHECK(len == 1 && r[0] == 'S');
    /* after a stop the matcher starts over on fresh text */
    CHECK(laguna_stop_matcher_push(m, "aSTOPb", 6, &r, &len, &hit, NULL) == LAGUNA_OK && hit);
    CHECK(len == 1 && r[0] == 'a');
    CHECK(laguna_stop_matcher_matched(m) && !strcmp(laguna_stop_matcher_matched(m), "STOP"));
    CHECK(laguna_stop_matcher_push(m, "cd", 2, &r, &len, &hit, NULL) == LAGUNA_OK && !hit);
    CHECK(laguna_stop_matcher_matched(m) == NULL); /* only the push that stopped names it */
    CHECK(len == 2 && !memcmp(r, "cd", 2));        /* the "b" after the stop was dropped */
    laguna_stop_matcher_free(m);
}

static void test_earliest_of_several(void) {
    const char *stops[] = {"world", "lo"};
    const char *chunks[] = {"hello world"};
    char out[64];
    CHECK(run(stops, 2, chunks, 1, out) == 1);
    CHECKF(!strcmp(out, "hel"), "'%s'", out);
    laguna_stop_matcher *m = NULL; /* the earliest is the one named */
    const char *r;
    size_t len;
    bool hit;
    CHECK(laguna_stop_matcher_new(stops, 2, &m, NULL) == LAGUNA_OK);
    CHECK(laguna_stop_matcher_push(m, chunks[0], 11, &r, &len, &hit, NULL) == LAGUNA_OK && hit);
    CHECK(laguna_stop_matcher_matched(m) && !strcmp(laguna_stop_matcher_matched(m), "lo"));
    laguna_stop_matcher_free(m);
    const char *none[] = {"zzz", ""};
    CHECK(run(none, 2, chunks, 1, out) == 0);
    CHECK(!strcmp(out, "hello world"));
    CHECK(run(NULL, 0, chunks, 1, out) == 0); /* no stop strings: everything passes */
    CHECK(!strcmp(out, "hello world"));
}

static void test_bad_arguments(void) {
    laguna_error err = {0};
    laguna_stop_matcher *m = (laguna_stop_matcher *)&err; /* must be cleared on failure */
    const char *with_null[] = {"a", NULL};
    CHECK(laguna_stop_matcher_new(with_null, 2, &m, &err) == LAGUNA_ERR_ARGUMENT && m == NULL);
    CHECK(strstr(err.message, "stop string 1") != NULL);
    CHECK(laguna_stop_matcher_new(NULL, 3, &m, &err) == LAGUNA_ERR_ARGUMENT && m == NULL);
    CHECK(laguna_stop_matcher_new(with_null, 1, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_stop_matcher_new(with_null, 1, &m, &err) == LAGUNA_OK && m);
    const char *r;
    size_t len;
    bool hit;
    CHECK(laguna_stop_matcher_push(NULL, "x", 1, &r, &len, &hit, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_stop_matcher_push(m, NULL, 1, &r, &len, &hit, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_stop_matcher_push(m, "x", 1, &r, &len, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_stop_matcher_push(m, "x", 1, NULL, &len, &hit, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_stop_matcher_flush(m, &r, NULL, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(laguna_stop_matcher_flush(NULL, &r, &len, &err) == LAGUNA_ERR_ARGUMENT);
    laguna_stop_matcher_free(m);
    laguna_stop_matcher_free(NULL);
    /* a flush before any push (a turn with no answer text) releases nothing */
    const char *one[] = {"x"};
    CHECK(laguna_stop_matcher_new(one, 1, &m, NULL) == LAGUNA_OK);
    CHECK(laguna_stop_matcher_flush(m, &r, &len, NULL) == LAGUNA_OK && len == 0 && r[0] == 0);
    laguna_stop_matcher_free(m);
}

int main(void) {
    RUN(test_stop_across_chunks);
    RUN(test_stop_one_byte_at_a_time);
    RUN(test_stop_at_the_very_start);
    RUN(test_partial_match_is_held_then_released);
    RUN(test_earliest_of_several);
    RUN(test_bad_arguments);
    return test_summary();
}
