/* GPT-2's reversible map between bytes and printable characters, which the
 * ByteLevel pre-tokenizer, normalizer and decoder use: printable Latin-1
 * bytes stand for themselves, the other 68 bytes for U+0100..U+0143 in
 * order (tokenizers' bytes_char()). */
#ifndef LAGUNA_TOKENIZER_BYTE_LEVEL_H
#define LAGUNA_TOKENIZER_BYTE_LEVEL_H

#include <stdint.h>

#include "tokenizer/strbuf.h"

static inline uint32_t lg_byte_level_cp(unsigned char b) {
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return b + 162u;
    if (b == 0xAD) return 323u;
    return b;
}

/* The byte a character stands for, or -1 when it is not in the map. */
static inline int lg_byte_level_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)(cp - 256);
    if (cp >= 289 && cp <= 322) return (int)(cp - 162);
    if (cp == 323) return 0xAD;
    return -1;
}

/* Appends the UTF-8 of the character standing for byte b. */
static inline void lg_byte_level_append(lg_buf *out, unsigned char b) {
    uint32_t cp = lg_byte_level_cp(b);
    if (cp < 0x80) {
        lg_buf_push(out, (char)cp);
    } else if (lg_buf_reserve(out, 2)) {
        out->data[out->len++] = (char)(0xC0 | (cp >> 6));
        out->data[out->len++] = (char)(0x80 | (cp & 0x3F));
        out->data[out->len] = 0;
    }
}

#endif
