/* Stop-string matching over a held-back tail: after each push, the pending
 * text is searched for a complete stop string; otherwise everything except
 * the longest suffix that is a prefix of some stop string is released. */
#include "runtime/stop_strings.h"

#include <stdlib.h>
#include <string.h>

struct lg_stop_matcher {
    char **stops;
    size_t *lens;
    size_t n;
    char *pending; /* held-back text */
    size_t pending_len, pending_cap;
    char *out;     /* released text of the last call */
    size_t out_cap;
};

lg_stop_matcher *lg_stop_matcher_new(const char *const *stops, size_t n) {
    lg_stop_matcher *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->stops = calloc(n ? n : 1, sizeof *m->stops);
    m->lens = calloc(n ? n : 1, sizeof *m->lens);
    if (!m->stops || !m->lens) {
        lg_stop_matcher_free(m);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!stops[i][0]) continue;
        m->stops[m->n] = strdup(stops[i]);
        if (!m->stops[m->n]) {
            lg_stop_matcher_free(m);
            return NULL;
        }
        m->lens[m->n++] = strlen(stops[i]);
    }
    return m;
}

void lg_stop_matcher_free(lg_stop_matcher *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    free(m->pending);
    free(m->out);
    free(m);
}

static bool reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    char *p = realloc(*buf, nc);
    if (!p) return false;
    *buf = p;
    *cap = nc;
    return true;
}

/* Moves the first k pending bytes to the released buffer. */
static void release(lg_stop_matcher *m, size_t k, const char **out, size_t *out_len) {
    if (!reserve(&m->out, &m->out_cap, k + 1)) k = 0;
    if (k) memcpy(m->out, m->pending, k);
    if (m->out) m->out[k] = 0;
    memmove(m->pending, m->pending + k, m->pending_len - k);
    m->pending_len -= k;
    *out = m->out ? m->out : "";
    *out_len = k;
}

bool lg_stop_matcher_push(lg_stop_matcher *m, const char *text, size_t len, const char **out, size_t *out_len) {
    if (!reserve(&m->pending, &m->pending_cap, m->pending_len + len + 1)) {
        *out = "";
        *out_len = 0;
        return false;
    }
    memcpy(m->pending + m->pending_len, text, len);
    m->pending_len += len;
    /* earliest complete stop string */
    size_t best = (size_t)-1;
    for (size_t i = 0; i < m->n; i++) {
        if (m->lens[i] > m->pending_len) continue;
        for (size_t at = 0; at + m->lens[i] <= m->pending_len && at < best; at++)
            if (!memcmp(m->pending + at, m->stops[i], m->lens[i])) {
                best = at;
                break;
            }
    }
    if (best != (size_t)-1) {
        release(m, best, out, out_len);
        m->pending_len = 0;
        return true;
    }
    /* hold back the longest suffix that could still grow into a stop string */
    size_t hold = 0;
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = m->lens[i] - 1; k > hold; k--)
            if (k <= m->pending_len && !memcmp(m->pending + m->pending_len - k, m->stops[i], k)) {
                hold = k;
                break;
            }
    release(m, m->pending_len - hold, out, out_len);
    return false;
}

void lg_stop_matcher_flush(lg_stop_matcher *m, const char **out, size_t *out_len) {
    release(m, m->pending_len, out, out_len);
}
