/* Prompt-lookup drafts (see draft_lookup.h). One pass from the end of the
 * text towards its start finds the places where the text's last token
 * occurred before (64-token runs without one are skipped by one vector
 * compare), and measures how many tokens before each match the tail too:
 * the most recent place matching LG_DRAFT_NGRAM_MAX tokens ends the search;
 * else the most recent one of the longest match found. A long context
 * costs one compare a token, not one a token for each n-gram length. */
#include "runtime/draft_lookup.h"

int lg_draft_lookup(const int32_t *hist, int n, int32_t last, int k, int32_t *out) {
    enum { RUN = 64 };
    int len = n + 1; /* the text's length */
    int best_end[LG_DRAFT_NGRAM_MAX + 1] = {0}; /* per match length: the most recent end (0: none) */
    int end = 0;
    for (int hi = n - 1; hi >= 0 && !end; hi -= RUN) {
        int lo = hi - RUN + 1 > 0 ? hi - RUN + 1 : 0, any = 0;
#pragma omp simd reduction(| : any)
        for (int i = lo; i <= hi; i++) any |= hist[i] == last;
        if (!any) continue;
        for (int p = hi; p >= lo && !end; p--) {
            if (hist[p] != last) continue;
            /* the occurrence ends at p; the tail's token len - 1 - i is hist[n - i] for i >= 1 */
            int g = 1;
            while (g < LG_DRAFT_NGRAM_MAX && p - g >= 0 && hist[p - g] == hist[n - g]) g++;
            if (g == LG_DRAFT_NGRAM_MAX) end = p + 1;
            else if (!best_end[g]) best_end[g] = p + 1;
        }
    }
    for (int g = LG_DRAFT_NGRAM_MAX - 1; !end && g >= LG_DRAFT_NGRAM_MIN; g--) end = best_end[g];
    if (!end) return 0;
    int m = 0;
    for (; m < k && end + m < len; m++) out[m] = end + m < n ? hist[end + m] : last;
    return m;
}
