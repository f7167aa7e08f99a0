/* Hash maps for the tokenizer's lookups: byte string -> int32 (vocabulary,
 * added tokens) and token-id pair -> merge (BPE merges ranked by position).
 * Open addressing with linear probing at load factor <= 1/2. */
#ifndef LAGUNA_TOKENIZER_HASHMAP_H
#define LAGUNA_TOKENIZER_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/strbuf.h"

uint64_t lg_hash_bytes(const void *data, size_t n);

typedef struct {
    uint64_t hash;
    uint32_t key_off, key_len; /* key_len == UINT32_MAX: empty slot */
    int32_t value;
} lg_strmap_slot;

typedef struct {
    lg_strmap_slot *slots;
    size_t cap, n; /* cap is a power of two */
    lg_buf keys;   /* key bytes, NUL-separated */
} lg_strmap;

void lg_strmap_free(lg_strmap *m);
/* Inserts or overwrites; false when out of memory. */
bool lg_strmap_put(lg_strmap *m, const char *key, size_t len, int32_t value);
bool lg_strmap_get(const lg_strmap *m, const char *key, size_t len, int32_t *value);

/* A BPE merge: the pair (left, right) becomes new_id with priority rank. */
typedef struct {
    uint64_t key; /* UINT64_MAX: empty slot */
    uint32_t rank;
    int32_t new_id;
} lg_pairmap_slot;

typedef struct {
    lg_pairmap_slot *slots;
    size_t cap, n;
} lg_pairmap;

void lg_pairmap_free(lg_pairmap *m);
bool lg_pairmap_put(lg_pairmap *m, int32_t left, int32_t right, uint32_t rank, int32_t new_id);

static inline uint64_t lg_pair_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

static inline const lg_pairmap_slot *lg_pairmap_get(const lg_pairmap *m, int32_t left,
                                                    int32_t right) {
    if (!m->cap) return NULL;
    uint64_t key = lg_pair_key(left, right);
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t mask = m->cap - 1, i = (size_t)(h >> 32) & mask;
    for (;;) {
        const lg_pairmap_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        i = (i + 1) & mask;
    }
}

#endif
