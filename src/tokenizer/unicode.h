/* UTF-8 and Unicode helpers for the tokenizer: decoding with the "maximal
 * subpart" rule for invalid bytes (what Rust's String::from_utf8_lossy and
 * Python's bytes.decode(errors="replace") do), the character classes Hugging
 * Face tokenizers asks Rust about (char::is_whitespace, is_numeric, ...), and
 * Unicode normalization forms through libutf8proc. */
#ifndef LAGUNA_TOKENIZER_UNICODE_H
#define LAGUNA_TOKENIZER_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/strbuf.h"

#define LG_UTF8_INVALID 0xFFFFFFFFu
#define LG_REPLACEMENT_CHAR 0xFFFDu

/* Decodes the next character of s[0..n) (n >= 1). Returns the bytes used and
 * sets *cp; for an invalid sequence *cp = LG_UTF8_INVALID and the return is
 * the length of its maximal subpart (>= 1). *incomplete (may be NULL) is set
 * when the sequence was cut short by the end of the input only. */
size_t lg_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, bool *incomplete);

/* Length in bytes of the UTF-8 character starting with lead byte b (1 for an
 * invalid lead byte). For stepping through text already known to be valid. */
static inline size_t lg_utf8_len(unsigned char b) {
    return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
}

/* Decodes one character of valid UTF-8; returns its length. */
size_t lg_utf8_get(const char *s, uint32_t *cp);

bool lg_utf8_valid(const char *s, size_t n);

/* Appends s with every invalid sequence replaced by U+FFFD. */
void lg_utf8_append_lossy(lg_buf *out, const char *s, size_t n);

/* Rust char::is_whitespace (the White_Space property). */
bool lg_uni_is_whitespace(uint32_t cp);
/* Rust char::is_numeric (general categories Nd, Nl, No). */
bool lg_uni_is_numeric(uint32_t cp);
/* ASCII punctuation or a Unicode P* category (tokenizers' is_punc). */
bool lg_uni_is_punctuation(uint32_t cp);
/* Rust regex \w: Alphabetic, marks, decimal digits, connectors, joiners. */
bool lg_uni_is_word(uint32_t cp);
/* General category M* (unicode-normalization's is_combining_mark). */
bool lg_uni_is_mark(uint32_t cp);
/* Categories Cc, Cf, Co, Cs (unicode_categories' is_other, which has no
 * table for unassigned code points). */
bool lg_uni_is_other(uint32_t cp);

/* Appends Rust's char::to_lowercase(cp) (one or more characters). */
void lg_uni_append_lowercase(lg_buf *out, uint32_t cp);

typedef enum { LG_NF_NFC, LG_NF_NFD, LG_NF_NFKC, LG_NF_NFKD } lg_norm_form;

/* Appends the normalization form of valid UTF-8 s[0..n). */
void lg_uni_append_normalized(lg_buf *out, const char *s, size_t n, lg_norm_form form);

#endif
