/* Open-addressing hash maps: byte string -> int32 and id pair -> merge. */
#include "tokenizer/hashmap.h"

#include <stdlib.h>
#include <string.h>

uint64_t lg_hash_bytes(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8, n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

void lg_strmap_free(lg_strmap *m) {
    free(m->slots);
    lg_buf_free(&m->keys);
    *m = (lg_strmap){0};
}

static lg_strmap_slot *strmap_find(const lg_strmap *m, uint64_t h, const char *key, size_t len) {
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (;;) {
        lg_strmap_slot *s = &m->slots[i];
        if (s->key_len == UINT32_MAX) return s;
        if (s->hash == h && s->key_len == len && memcmp(m->keys.data + s->key_off, key, len) == 0)
            return s;
        i = (i + 1) & mask;
    }
}

static bool strmap_resize(lg_strmap *m, size_t cap) {
    lg_strmap_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) {
        m->slots = old;
        return false;
    }
    m->cap = cap;
    for (size_t i = 0; i < cap; i++)
        m->slots[i].key_len = UINT32_MAX;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key_len == UINT32_MAX) continue;
        *strmap_find(m, old[i].hash, m->keys.data + old[i].key_off, old[i].key_len) = old[i];
    }
    free(old);
    return true;
}

bool lg_strmap_put(lg_strmap *m, const char *key, size_t len, int32_t value) {
    if (len >= UINT32_MAX || m->keys.len + len + 1 > UINT32_MAX) return false;
    if ((m->n + 1) * 2 > m->cap && !strmap_resize(m, m->cap ? m->cap * 2 : 64)) return false;
    uint64_t h = lg_hash_bytes(key, len);
    lg_strmap_slot *s = strmap_find(m, h, key, len);
    if (s->key_len != UINT32_MAX) {
        s->value = value;
        return true;
    }
    uint32_t off = (uint32_t)m->keys.len;
    lg_buf_append(&m->keys, key, len);
    lg_buf_push(&m->keys, 0);
    if (m->keys.oom) return false;
    *s = (lg_strmap_slot){h, off, (uint32_t)len, value};
    m->n++;
    return true;
}

bool lg_strmap_get(const lg_strmap *m, const char *key, size_t len, int32_t *value) {
    if (!m->cap) return false;
    const lg_strmap_slot *s = strmap_find(m, lg_hash_bytes(key, len), key, len);
    if (s->key_len == UINT32_MAX) return false;
    *value = s->value;
    return true;
}

void lg_pairmap_free(lg_pairmap *m) {
    free(m->slots);
    *m = (lg_pairmap){0};
}

static lg_pairmap_slot *pairmap_find(lg_pairmap *m, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t mask = m->cap - 1, i = (size_t)(h >> 32) & mask;
    while (m->slots[i].key != key && m->slots[i].key != UINT64_MAX)
        i = (i + 1) & mask;
    return &m->slots[i];
}

bool lg_pairmap_put(lg_pairmap *m, int32_t left, int32_t right, uint32_t rank, int32_t new_id) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        lg_pairmap_slot *old = m->slots;
        size_t old_cap = m->cap;
        m->slots = malloc(cap * sizeof *m->slots);
        if (!m->slots) {
            m->slots = old;
            return false;
        }
        m->cap = cap;
        for (size_t i = 0; i < cap; i++)
            m->slots[i].key = UINT64_MAX;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].key != UINT64_MAX) *pairmap_find(m, old[i].key) = old[i];
        free(old);
    }
    uint64_t key = lg_pair_key(left, right);
    lg_pairmap_slot *s = pairmap_find(m, key);
    if (s->key == UINT64_MAX) m->n++;
    *s = (lg_pairmap_slot){key, rank, new_id};
    return true;
}
