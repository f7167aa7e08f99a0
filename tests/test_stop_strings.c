/* Stop strings across streamed chunks: nothing of a stop string is released,
 * text that cannot start one is released at once, the earliest match wins. */
#include <string.h>

#include "harness.h"
#include "runtime/stop_strings.h"

/* Pushes chunks, concatenating what is released; returns whether a stop hit. */
static int run(const char *const *stops, size_t n_stops, const char *const *chunks, size_t n, char *out) {
    lg_stop_matcher *m = lg_stop_matcher_new(stops, n_stops);
    out[0] = 0;
    int hit = 0;
    for (size_t i = 0; i < n && !hit; i++) {
        const char *r;
        size_t len;
        hit = lg_stop_matcher_push(m, chunks[i], strlen(chunks[i]), &r, &len);
        strncat(out, r, len);
    }
    if (!hit) {
        const char *r;
        size_t len;
        lg_stop_matcher_flush(m, &r, &len);
        strncat(out, r, len);
    }
    lg_stop_matcher_free(m);
    return hit;
}

static void test_stop_across_chunks(void) {
    const char *stops[] = {"<|end|>"};
    const char *chunks[] = {"Hel", "lo wo", "rld<|e", "nd|> more"};
    char out[128];
    CHECK(run(stops, 1, chunks, 4, out) == 1);
    CHECKF(!strcmp(out, "Hello world"), "'%s'", out);
}

static void test_partial_match_is_held_then_released(void) {
    const char *stops[] = {"STOP"};
    lg_stop_matcher *m = lg_stop_matcher_new(stops, 1);
    const char *r;
    size_t len;
    CHECK(!lg_stop_matcher_push(m, "abST", 4, &r, &len));
    CHECK(len == 2 && !memcmp(r, "ab", 2)); /* "ST" might begin STOP */
    CHECK(!lg_stop_matcher_push(m, "x", 1, &r, &len));
    CHECK(len == 3 && !memcmp(r, "STx", 3));
    CHECK(!lg_stop_matcher_push(m, "S", 1, &r, &len));
    CHECK(len == 0);
    lg_stop_matcher_flush(m, &r, &len);
    CHECK(len == 1 && r[0] == 'S');
    lg_stop_matcher_free(m);
}

static void test_earliest_of_several(void) {
    const char *stops[] = {"world", "lo"};
    const char *chunks[] = {"hello world"};
    char out[64];
    CHECK(run(stops, 2, chunks, 1, out) == 1);
    CHECKF(!strcmp(out, "hel"), "'%s'", out);
    const char *none[] = {"zzz", ""};
    CHECK(run(none, 2, chunks, 1, out) == 0);
    CHECK(!strcmp(out, "hello world"));
}

int main(void) {
    RUN(test_stop_across_chunks);
    RUN(test_partial_match_is_held_then_released);
    RUN(test_earliest_of_several);
    return test_summary();
}
