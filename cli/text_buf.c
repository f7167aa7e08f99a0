/* text_buf: doubling growth, always NUL-terminated. */
#include "text_buf.h"

#include <stdlib.h>
#include <string.h>

int text_add(text_buf *b, const char *text, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 256) + len;
        char *p = realloc(b->buf, nc);
        if (!p) return -1;
        b->buf = p;
        b->cap = nc;
    }
    memcpy(b->buf + b->len, text, len);
    b->len += len;
    b->buf[b->len] = 0;
    return 0;
}
