/* Bounded word -> ids cache: open addressing over fixed arenas, cleared
 * when any of them fills up. */
#include "tokenizer/word_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/hashmap.h"

typedef struct {
    uint64_t hash;
    uint32_t key_off, key_len; /* key_len == UINT32_MAX: empty */
    uint32_t ids_off, n_ids;
} slot;

struct lg_word_cache {
    pthread_mutex_t lock;
    slot *slots;
    size_t cap, n, max_words, max_word_bytes;
    char *keys;
    size_t keys_len, keys_cap;
    int32_t *ids;
    size_t ids_len, ids_cap;
};

lg_word_cache *lg_word_cache_new(size_t max_words, size_t max_word_bytes) {
    lg_word_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->lock, NULL);
    c->max_words = max_words;
    c->max_word_bytes = max_word_bytes;
    c->cap = 1;
    while (c->cap < 2 * max_words)
        c->cap *= 2;
    /* room for the average word of source code and prose, several times over */
    c->keys_cap = max_words * 16;
    c->ids_cap = max_words * 8;
    c->slots = malloc(c->cap * sizeof *c->slots);
    c->keys = malloc(c->keys_cap);
    c->ids = malloc(c->ids_cap * sizeof *c->ids);
    if (!c->slots || !c->keys || !c->ids) {
        lg_word_cache_free(c);
        return NULL;
    }
    for (size_t i = 0; i < c->cap; i++)
        c->slots[i].key_len = UINT32_MAX;
    return c;
}

void lg_word_cache_free(lg_word_cache *c) {
    if (!c) return;
    free(c->slots);
    free(c->keys);
    free(c->ids);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

bool lg_word_cache_acquire(lg_word_cache *c) {
    return pthread_mutex_trylock(&c->lock) == 0;
}

void lg_word_cache_release(lg_word_cache *c) {
    pthread_mutex_unlock(&c->lock);
}

static slot *find(const lg_word_cache *c, uint64_t h, const char *word, size_t len) {
    size_t mask = c->cap - 1, i = (size_t)h & mask;
    for (;;) {
        slot *s = &c->slots[i];
        if (s->key_len == UINT32_MAX) return s;
        if (s->hash == h && s->key_len == len && memcmp(c->keys + s->key_off, word, len) == 0)
            return s;
        i = (i + 1) & mask;
    }
}

bool lg_word_cache_get(const lg_word_cache *c, const char *word, size_t len, const int32_t **ids,
                       size_t *n_ids) {
    if (len >= c->max_word_bytes) return false;
    const slot *s = find(c, lg_hash_bytes(word, len), word, len);
    if (s->key_len == UINT32_MAX) return false;
    *ids = c->ids + s->ids_off;
    *n_ids = s->n_ids;
    return true;
}

void lg_word_cache_put(lg_word_cache *c, const char *word, size_t len, const int32_t *ids,
                       size_t n_ids) {
    if (len >= c->max_word_bytes || len > c->keys_cap || n_ids > c->ids_cap) return;
    if (c->n >= c->max_words || c->keys_len + len > c->keys_cap ||
        c->ids_len + n_ids > c->ids_cap) {
        for (size_t i = 0; i < c->cap; i++)
            c->slots[i].key_len = UINT32_MAX;
        c->n = c->keys_len = c->ids_len = 0;
    }
    uint64_t h = lg_hash_bytes(word, len);
    slot *s = find(c, h, word, len);
    if (s->key_len != UINT32_MAX) return;
    /* a word may encode to no ids (an empty vocabulary), with ids NULL */
    if (len) memcpy(c->keys + c->keys_len, word, len);
    if (n_ids) memcpy(c->ids + c->ids_len, ids, n_ids * sizeof *ids);
    *s = (slot){h, (uint32_t)c->keys_len, (uint32_t)len, (uint32_t)c->ids_len, (uint32_t)n_ids};
    c->keys_len += len;
    c->ids_len += n_ids;
    c->n++;
}
