/* Growable byte buffers and string lists with sticky out-of-memory flags. */
#include "tokenizer/strbuf.h"

#include <stdlib.h>
#include <string.h>

bool lg_grow(void **items, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2) return false;
        n *= 2;
    }
    if (n > SIZE_MAX / size) return false;
    void *p = realloc(*items, n * size);
    if (!p) return false;
    *items = p;
    *cap = n;
    return true;
}

void lg_buf_free(lg_buf *b) {
    free(b->data);
    *b = (lg_buf){0};
}

bool lg_buf_reserve(lg_buf *b, size_t extra) {
    if (b->oom) return false;
    if (extra > SIZE_MAX - b->len - 1 ||
        !lg_grow((void **)&b->data, &b->cap, b->len + extra + 1, 1)) {
        b->oom = true;
        return false;
    }
    return true;
}

void lg_buf_append(lg_buf *b, const void *data, size_t n) {
    if (!lg_buf_reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

void lg_buf_push(lg_buf *b, char c) {
    if (!lg_buf_reserve(b, 1)) return;
    b->data[b->len++] = c;
    b->data[b->len] = 0;
}

void lg_buf_push_cp(lg_buf *b, uint32_t cp) {
    char s[4];
    lg_buf_append(b, s, lg_utf8_encode(cp, s));
}

void lg_strlist_free(lg_strlist *l) {
    lg_buf_free(&l->arena);
    free(l->items);
    *l = (lg_strlist){0};
}

void lg_strlist_clear(lg_strlist *l) {
    l->arena.len = 0;
    l->n = 0;
}

void lg_strlist_add_span(lg_strlist *l, uint32_t off, uint32_t len) {
    if (l->oom) return;
    if (!lg_grow((void **)&l->items, &l->cap, l->n + 1, sizeof *l->items)) {
        l->oom = true;
        return;
    }
    l->items[l->n++] = (lg_span){off, len};
}

void lg_strlist_add(lg_strlist *l, const char *s, size_t n) {
    if (l->arena.len + n > UINT32_MAX) {
        l->oom = true;
        return;
    }
    uint32_t off = (uint32_t)l->arena.len;
    lg_buf_append(&l->arena, s, n);
    lg_strlist_add_span(l, off, (uint32_t)n);
}
