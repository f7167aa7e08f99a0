/* lg_tensor_source: named tensors with a hash index, plus the mappings and
 * heap blocks that back them (released together on free). */
#include "io/tensor_source.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/error.h"
#include "io/file_util.h"
#include "sys/huge_pages.h"

typedef struct {
    void *addr;
    size_t len;
    bool copied;
} mapping;

struct lg_tensor_source {
    lg_tensor *tensors;
    size_t n, cap;
    size_t *slots; /* open addressing: index+1 into tensors, 0 = empty */
    size_t n_slots;
    mapping *maps;
    size_t n_maps, cap_maps;
    void **blocks;
    size_t n_blocks, cap_blocks;
};

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

lg_tensor_source *lg_tensor_source_new(void) { return calloc(1, sizeof(lg_tensor_source)); }

void lg_tensor_source_free(lg_tensor_source *src) {
    if (!src) return;
    for (size_t i = 0; i < src->n; i++) free(src->tensors[i].name);
    for (size_t i = 0; i < src->n_maps; i++) munmap(src->maps[i].addr, src->maps[i].len);
    for (size_t i = 0; i < src->n_blocks; i++) free(src->blocks[i]);
    free(src->tensors);
    free(src->slots);
    free(src->maps);
    free(src->blocks);
    free(src);
}

int lg_tensor_source_keep_mapping(lg_tensor_source *src, void *addr, size_t len, bool copied) {
    if (grow((void **)&src->maps, &src->cap_maps, src->n_maps + 1, sizeof(mapping))) return -1;
    src->maps[src->n_maps++] = (mapping){addr, len, copied};
    return 0;
}

lg_tensor_memory lg_tensor_source_memory(const lg_tensor_source *src) {
    lg_tensor_memory m = {0};
    for (size_t i = 0; i < src->n_maps; i++) {
        const mapping *p = &src->maps[i];
        *(p->copied ? &m.copied_bytes : &m.mapped_bytes) += p->len;
        int64_t huge = lg_huge_bytes_in(p->addr, p->len);
        if (huge > 0) m.huge_bytes += (uint64_t)huge;
    }
    return m;
}

bool lg_tensor_source_owns(const lg_tensor_source *src, const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    for (size_t i = 0; i < src->n_maps; i++) {
        const mapping *m = &src->maps[i];
        uintptr_t lo = (uintptr_t)m->addr;
        if (m->copied && a >= lo && a - lo <= m->len && bytes <= m->len - (a - lo)) return true;
    }
    return false;
}

int lg_tensor_source_set_writable(lg_tensor_source *src, bool writable) {
    int rc = 0;
    for (size_t i = 0; i < src->n_maps; i++)
        if (src->maps[i].copied &&
            mprotect(src->maps[i].addr, src->maps[i].len, writable ? PROT_READ | PROT_WRITE : PROT_READ))
            rc = -1;
    return rc;
}

int lg_tensor_source_keep_block(lg_tensor_source *src, void *block) {
    if (grow((void **)&src->blocks, &src->cap_blocks, src->n_blocks + 1, sizeof(void *))) return -1;
    src->blocks[src->n_blocks++] = block;
    return 0;
}

static size_t *find_slot(const lg_tensor_source *src, const char *name) {
    size_t mask = src->n_slots - 1;
    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        size_t *slot = &src->slots[i];
        if (*slot == 0 || !strcmp(src->tensors[*slot - 1].name, name)) return slot;
    }
}

static int rehash(lg_tensor_source *src, size_t n_slots) {
    size_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return -1;
    free(src->slots);
    src->slots = slots;
    src->n_slots = n_slots;
    for (size_t i = 0; i < src->n; i++) *find_slot(src, src->tensors[i].name) = i + 1;
    return 0;
}

laguna_status lg_tensor_source_add(lg_tensor_source *src, const lg_tensor *t, laguna_error *err) {
    if (src->n_slots == 0 || (src->n + 1) * 2 > src->n_slots)
        if (rehash(src, src->n_slots ? src->n_slots * 2 : 64)) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    size_t *slot = find_slot(src, t->name);
    if (*slot) return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s' appears twice", t->file ? t->file : "?", t->name);
    if (grow((void **)&src->tensors, &src->cap, src->n + 1, sizeof(lg_tensor)))
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    lg_tensor copy = *t;
    copy.name = strdup(t->name);
    if (!copy.name) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    src->tensors[src->n++] = copy;
    *slot = src->n;
    return LAGUNA_OK;
}

const lg_tensor *lg_tensor_source_find(const lg_tensor_source *src, const char *name) {
    if (src->n_slots == 0) return NULL;
    size_t slot = *find_slot(src, name);
    return slot ? &src->tensors[slot - 1] : NULL;
}

void lg_tensor_source_set_dtype(lg_tensor_source *src, const char *name, lg_dtype dtype) {
    if (src->n_slots == 0) return;
    size_t slot = *find_slot(src, name);
    if (slot) src->tensors[slot - 1].dtype = dtype;
}

size_t lg_tensor_source_count(const lg_tensor_source *src) { return src->n; }

const lg_tensor *lg_tensor_source_at(const lg_tensor_source *src, size_t i) {
    return i < src->n ? &src->tensors[i] : NULL;
}

uint64_t lg_load_headroom_bytes(uint64_t total_memory_bytes) {
    uint64_t floor = (uint64_t)2 << 30, tenth = total_memory_bytes / 10;
    return tenth > floor ? tenth : floor;
}

bool lg_load_copy_fits(uint64_t total_bytes, uint64_t available_bytes, uint64_t total_memory_bytes) {
    uint64_t headroom = lg_load_headroom_bytes(total_memory_bytes);
    return available_bytes > headroom && total_bytes <= available_bytes - headroom;
}

lg_placement lg_load_mode_placement(lg_load_mode mode, uint64_t total_bytes) {
    if (mode != LG_LOAD_AUTO) return mode == LG_LOAD_COPY ? LG_PLACE_COPY : LG_PLACE_MAP;
    return lg_load_copy_fits(total_bytes, lg_memory_available(), lg_memory_total()) ? LG_PLACE_COPY_OR_MAP
                                                                                     : LG_PLACE_MAP;
}
