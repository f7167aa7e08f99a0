/* Growable byte buffers and lists of byte strings for the tokenizer.
 *
 * Allocation failures are sticky: after one, `oom` is set and every later
 * append is a no-op, so a pipeline stage appends freely and checks once at
 * its end. Lists keep their strings in one arena and refer to them by
 * offset, so growing the arena never invalidates an entry. */
#ifndef LAGUNA_TOKENIZER_STRBUF_H
#define LAGUNA_TOKENIZER_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data;
    size_t len, cap;
    bool oom;
} lg_buf;

void lg_buf_free(lg_buf *b);
/* Makes room for `extra` more bytes; false (and oom set) on failure. */
bool lg_buf_reserve(lg_buf *b, size_t extra);
void lg_buf_append(lg_buf *b, const void *data, size_t n);
void lg_buf_push(lg_buf *b, char c);
/* Appends the UTF-8 encoding of a code point. */
void lg_buf_push_cp(lg_buf *b, uint32_t cp);

/* Writes the UTF-8 encoding of cp (< 0x110000) to s; returns its length. */
static inline size_t lg_utf8_encode(uint32_t cp, char s[4]) {
    if (cp < 0x80) {
        s[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        s[0] = (char)(0xE0 | (cp >> 12));
        s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    s[0] = (char)(0xF0 | (cp >> 18));
    s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    s[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One string of a list: bytes [off, off+len) of the list's arena. */
typedef struct {
    uint32_t off, len;
} lg_span;

typedef struct {
    lg_buf arena;
    lg_span *items;
    size_t n, cap;
    bool oom;
} lg_strlist;

void lg_strlist_free(lg_strlist *l);
void lg_strlist_clear(lg_strlist *l);
void lg_strlist_add(lg_strlist *l, const char *s, size_t n);
/* Adds an entry for bytes already in the arena. */
void lg_strlist_add_span(lg_strlist *l, uint32_t off, uint32_t len);
static inline const char *lg_strlist_at(const lg_strlist *l, size_t i) {
    return l->arena.data ? l->arena.data + l->items[i].off : "";
}
static inline bool lg_strlist_failed(const lg_strlist *l) {
    return l->oom || l->arena.oom;
}

/* Grows *items (of `size`-byte elements) so that it holds at least `need`;
 * doubles the capacity. False when out of memory or the size overflows. */
bool lg_grow(void **items, size_t *cap, size_t need, size_t size);

#endif
