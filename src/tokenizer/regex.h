/* Regular expressions as Hugging Face tokenizers runs them (Oniguruma, Ruby
 * syntax), on PCRE2 with JIT in UTF + UCP mode.
 *
 * Patterns are translated where the two engines disagree: Oniguruma's \s also
 * matches U+0085, its \w (and so \b) is Unicode's Word set (plus a few
 * Latin-1 digits), \h is a hex digit, ^ and $ match at every line, (?m) means
 * dot-all, and \uHHHH is a code point. Matches are enumerated like
 * rust-onig's find_iter: an empty match right where the previous match ended
 * is skipped. */
#ifndef LAGUNA_TOKENIZER_REGEX_H
#define LAGUNA_TOKENIZER_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "laguna.h"

typedef struct lg_regex lg_regex;

/* Compiles `pattern` (a literal string when `literal`). On failure returns
 * NULL and writes PCRE2's reason into why[0..why_cap). */
lg_regex *lg_regex_compile(const char *pattern, size_t len, bool literal, char *why,
                           size_t why_cap);
void lg_regex_free(lg_regex *re);

/* One piece of a subject: a match of the pattern or the gap between two. */
typedef struct {
    uint32_t start, end;
    bool is_match;
} lg_match;

typedef struct {
    lg_match *items;
    size_t n, cap;
    bool oom;
} lg_matches;

/* Per-call matching state (PCRE2 match data); not shared between threads. */
typedef struct lg_regex_scratch lg_regex_scratch;
lg_regex_scratch *lg_regex_scratch_new(void);
void lg_regex_scratch_free(lg_regex_scratch *scratch);

/* Replaces *out with tokenizers' Pattern::find_matches of valid UTF-8
 * s[0..n): ordered, contiguous pieces covering s, each flagged as a match or
 * not (nothing for an empty s). Fails only when out of memory or when PCRE2
 * gives up (match limits). */
laguna_status lg_regex_find_matches(const lg_regex *re, lg_regex_scratch *scratch, const char *s,
                                    size_t n, lg_matches *out, laguna_error *err);

void lg_matches_free(lg_matches *m);
/* Appends a piece, merging nothing; sets oom on failure. */
void lg_matches_add(lg_matches *m, uint32_t start, uint32_t end, bool is_match);

#endif
