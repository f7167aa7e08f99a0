/* Prompt-lookup drafts (see draft_lookup.h). */
#include "runtime/draft_lookup.h"

/* Token i of the text hist[0..n) + last. */
static inline int32_t at(const int32_t *hist, int n, int32_t last, int i) {
    return i < n ? hist[i] : last;
}

int lg_draft_lookup(const int32_t *hist, int n, int32_t last, int k, int32_t *out) {
    int len = n + 1; /* the text's length */
    for (int g = LG_DRAFT_NGRAM_MAX; g >= LG_DRAFT_NGRAM_MIN; g--) {
        if (g >= len) continue;
        /* an occurrence ending at e (its last token at e - 1), before the tail itself */
        for (int e = len - 1; e >= g; e--) {
            int i = 0;
            while (i < g && at(hist, n, last, e - g + i) == at(hist, n, last, len - g + i))
                i++;
            if (i < g) continue;
            int m = 0;
            while (m < k && e + m < len) {
                out[m] = at(hist, n, last, e + m);
                m++;
            }
            if (m > 0) return m;
        }
    }
    return 0;
}
