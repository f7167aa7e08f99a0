/* Stop strings for streamed generation (laguna_stop_matcher in
 * laguna_generate.h): pushed text joins a held-back tail, which is searched
 * for a complete stop string; otherwise everything except the longest suffix
 * that is a prefix of some stop string is released. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "laguna_generate.h"

struct laguna_stop_matcher {
    char **stops;
    size_t *lens;
    size_t n;
    char *pending; /* held-back text */
    size_t pending_len, pending_cap;
    char *out; /* released text of the last call */
    size_t out_cap;
    const char *matched; /* the stop string the last push completed, or NULL */
};

laguna_status laguna_stop_matcher_new(const char *const *stops, size_t n, laguna_stop_matcher **out,
                                      laguna_error *err) {
    if (!out)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no place for the stop matcher (out is NULL)");
    *out = NULL;
    if (n && !stops)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "%zu stop strings but the array is NULL", n);
    for (size_t i = 0; i < n; i++)
        if (!stops[i]) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "stop string %zu is NULL", i);
    laguna_stop_matcher *m = calloc(1, sizeof *m);
    if (!m) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for the stop matcher");
    m->stops = calloc(n ? n : 1, sizeof *m->stops);
    m->lens = calloc(n ? n : 1, sizeof *m->lens);
    if (!m->stops || !m->lens) goto nomem;
    for (size_t i = 0; i < n; i++) {
        if (!stops[i][0]) continue;
        m->stops[m->n] = strdup(stops[i]);
        if (!m->stops[m->n]) goto nomem;
        m->lens[m->n++] = strlen(stops[i]);
    }
    *out = m;
    return LAGUNA_OK;
nomem:
    laguna_stop_matcher_free(m);
    return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for %zu stop strings", n);
}

void laguna_stop_matcher_free(laguna_stop_matcher *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    free(m->pending);
    free(m->out);
    free(m);
}

static bool reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    char *p = realloc(*buf, nc);
    if (!p) return false;
    *buf = p;
    *cap = nc;
    return true;
}

/* Moves the first k pending bytes to the released buffer. */
static laguna_status release(laguna_stop_matcher *m, size_t k, const char **out, size_t *out_len,
                             laguna_error *err) {
    *out = "";
    *out_len = 0;
    if (!reserve(&m->out, &m->out_cap, k + 1))
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for stop-string text");
    if (k) memcpy(m->out, m->pending, k);
    m->out[k] = 0;
    if (m->pending_len > k) /* pending is NULL until the first push */
        memmove(m->pending, m->pending + k, m->pending_len - k);
    m->pending_len -= k;
    *out = m->out;
    *out_len = k;
    return LAGUNA_OK;
}

static laguna_status check_call(const laguna_stop_matcher *m, const char **out, size_t *out_len,
                                laguna_error *err) {
    if (!m || !out || !out_len)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "stop matcher, release or release_len is NULL");
    *out = "";
    *out_len = 0;
    return LAGUNA_OK;
}

laguna_status laguna_stop_matcher_push(laguna_stop_matcher *m, const char *text, size_t len,
                                       const char **out, size_t *out_len, bool *stopped,
                                       laguna_error *err) {
    laguna_status st = check_call(m, out, out_len, err);
    if (st) return st;
    if (!stopped || (len && !text))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "text or stopped is NULL");
    *stopped = false;
    m->matched = NULL;
    if (!reserve(&m->pending, &m->pending_cap, m->pending_len + len + 1))
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory for stop-string text");
    if (len) memcpy(m->pending + m->pending_len, text, len);
    m->pending_len += len;
    /* earliest complete stop string */
    size_t best = (size_t)-1, best_i = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->lens[i] > m->pending_len) continue;
        for (size_t at = 0; at + m->lens[i] <= m->pending_len && at < best; at++)
            if (!memcmp(m->pending + at, m->stops[i], m->lens[i])) {
                best = at;
                best_i = i;
                break;
            }
    }
    if (best != (size_t)-1) {
        if ((st = release(m, best, out, out_len, err))) return st;
        m->pending_len = 0;
        m->matched = m->stops[best_i];
        *stopped = true;
        return LAGUNA_OK;
    }
    /* hold back the longest suffix that could still grow into a stop string */
    size_t hold = 0;
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = m->lens[i] - 1; k > hold; k--)
            if (k <= m->pending_len && !memcmp(m->pending + m->pending_len - k, m->stops[i], k)) {
                hold = k;
                break;
            }
    return release(m, m->pending_len - hold, out, out_len, err);
}

const char *laguna_stop_matcher_matched(const laguna_stop_matcher *m) {
    return m ? m->matched : NULL;
}

laguna_status laguna_stop_matcher_flush(laguna_stop_matcher *m, const char **out, size_t *out_len,
                                        laguna_error *err) {
    laguna_status st = check_call(m, out, out_len, err);
    return st ? st : release(m, m->pending_len, out, out_len, err);
}
