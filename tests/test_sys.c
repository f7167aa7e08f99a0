/* System helpers without timing asserts: huge-page allocation and its
 * accounting, the memory-bandwidth probe (every load width it can use sums
 * the buffer to the closed-form total), and the rule that picks copy or mmap
 * for the weights. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "io/tensor_source.h"
#include "sys/huge_pages.h"
#include "sys/mem_bandwidth.h"

static void test_huge_alloc(void) {
    size_t sizes[] = {1, 4095, 4097, ((size_t)2 << 20) + 12345, (size_t)9 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t map_bytes = 0;
        lg_page_source source;
        unsigned char *p = lg_huge_alloc(sizes[i], false, &map_bytes, &source);
        CHECKF(p != NULL, "%zu bytes", sizes[i]);
        if (!p) continue;
        CHECK(source == LG_PAGES_THP);
        CHECKF((uintptr_t)p % LG_HUGE_PAGE_BYTES == 0, "start %p not 2 MiB-aligned", (void *)p);
        CHECK(map_bytes >= sizes[i] && map_bytes % 4096 == 0 && map_bytes - sizes[i] < 4096);
        CHECK(p[0] == 0 && p[sizes[i] - 1] == 0); /* zero-filled, writable to the end */
        memset(p, 0xab, sizes[i]);
        int64_t huge = lg_huge_bytes_in(p, sizes[i]);
        CHECKF(huge >= -1 && huge <= (int64_t)sizes[i], "%lld huge bytes of %zu", (long long)huge,
               sizes[i]);
        CHECK(munmap(p, map_bytes) == 0);
    }
    size_t map_bytes = 1;
    lg_page_source source;
    CHECK(lg_huge_alloc(0, false, &map_bytes, &source) == NULL && map_bytes == 0);
    CHECK(lg_huge_alloc(SIZE_MAX, false, &map_bytes, &source) == NULL);
    /* the hugetlbfs pool when it has pages, else the same THP path */
    unsigned char *p = lg_huge_alloc(12345, true, &map_bytes, &source);
    CHECK(p != NULL);
    if (p) {
        CHECK(source == LG_PAGES_HUGETLB ? map_bytes == LG_HUGE_PAGE_BYTES : map_bytes == 16384);
        p[12344] = 1;
        CHECK(munmap(p, map_bytes) == 0);
    }
}

/* Word i holds i * 0x9E3779B97F4A7C15, so the sum of n words is that
 * multiplier times n(n-1)/2, modulo 2^64. */
static uint64_t expected_checksum(size_t bytes) {
    uint64_t n = bytes / 8, tri = n % 2 ? n * ((n - 1) / 2) : (n / 2) * (n - 1);
    return tri * 0x9E3779B97F4A7C15ull;
}

static void test_bandwidth_probe(void) {
    lg_read_isa isas[] = {LG_READ_AUTO, LG_READ_PORTABLE, LG_READ_AVX2, LG_READ_AVX512};
    int threads[] = {1, 3};
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
        if (!lg_read_isa_supported(isas[i])) continue;
        for (int t = 0; t < 2; t++) {
            lg_bandwidth bw;
            laguna_error err = {0};
            /* an awkward size: rounded down to whole 4 KiB shares per thread */
            laguna_status st = lg_measure_read_bandwidth(threads[t], ((size_t)5 << 20) + 777, 3,
                                                         isas[i], &bw, &err);
            CHECKF(st == LAGUNA_OK, "%s: %s", lg_read_isa_name(isas[i]), err.message);
            if (st) continue;
            CHECK(bw.bytes % (4096 * (size_t)threads[t]) == 0 &&
                  bw.bytes <= ((size_t)5 << 20) + 777);
            CHECK(bw.bytes > ((size_t)5 << 20) - 4096 * (size_t)threads[t]);
            CHECKF(bw.checksum == expected_checksum(bw.bytes), "%s, %d threads: checksum %llx",
                   lg_read_isa_name(bw.isa), threads[t], (unsigned long long)bw.checksum);
            CHECK(bw.reps == 3 && bw.n_threads == threads[t] && bw.best_gbps > 0);
            double best = 0;
            for (int r = 0; r < bw.reps; r++)
                best = bw.gbps[r] > best ? bw.gbps[r] : best;
            CHECK(best == bw.best_gbps);
            CHECK(isas[i] == LG_READ_AUTO ? bw.isa != LG_READ_AUTO : bw.isa == isas[i]);
            CHECK(bw.huge_bytes >= -1 && bw.huge_bytes <= (int64_t)bw.bytes);
        }
    }
    CHECK(lg_bandwidth_default_bytes() >= ((size_t)256 << 20) &&
          lg_bandwidth_default_bytes() <= ((size_t)4 << 30));
}

static void test_bandwidth_probe_rejects_bad_arguments(void) {
    lg_bandwidth bw;
    laguna_error err = {0};
    CHECK(lg_measure_read_bandwidth(0, 1 << 20, 1, LG_READ_AUTO, &bw, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(strstr(err.message, "threads") != NULL);
    CHECK(lg_measure_read_bandwidth(1, 1 << 20, 0, LG_READ_AUTO, &bw, &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(lg_measure_read_bandwidth(1, 1 << 20, LG_BANDWIDTH_MAX_REPS + 1, LG_READ_AUTO, &bw,
                                    &err) == LAGUNA_ERR_ARGUMENT);
    CHECK(lg_measure_read_bandwidth(1, 1 << 20, 1, (lg_read_isa)99, &bw, &err) ==
          LAGUNA_ERR_ARGUMENT);
}

static void test_copy_or_map_rule(void) {
    const uint64_t GiB = (uint64_t)1 << 30;
    /* headroom: 10% of the machine, at least 2 GiB */
    CHECK(lg_load_headroom_bytes(8 * GiB) == 2 * GiB);
    CHECK(lg_load_headroom_bytes(24 * GiB) == 24 * GiB / 10);
    CHECK(lg_load_headroom_bytes(256 * GiB) == 256 * GiB / 10);
    /* the case: 18.9 GiB of weights on a 24 GiB machine with 23 GiB free */
    CHECK(lg_load_copy_fits(189 * GiB / 10, 23 * GiB, 24 * GiB));
    CHECK(!lg_load_copy_fits(189 * GiB / 10, 21 * GiB, 24 * GiB)); /* others took 2 GiB */
    CHECK(lg_load_copy_fits(6 * GiB, 8 * GiB, 8 * GiB));
    CHECK(!lg_load_copy_fits(6 * GiB + 1, 8 * GiB, 8 * GiB));
    CHECK(!lg_load_copy_fits(1, 0, 0));          /* unknown memory: map */
    CHECK(!lg_load_copy_fits(1, GiB, 64 * GiB)); /* less free than the headroom */
    CHECK(lg_load_mode_placement(LG_LOAD_COPY, UINT64_MAX) == LG_PLACE_COPY);
    CHECK(lg_load_mode_placement(LG_LOAD_MMAP, 1) == LG_PLACE_MAP);
    CHECK(lg_load_mode_placement(LG_LOAD_AUTO, UINT64_MAX) == LG_PLACE_MAP);
}

int main(void) {
    RUN(test_huge_alloc);
    RUN(test_bandwidth_probe);
    RUN(test_bandwidth_probe_rejects_bad_arguments);
    RUN(test_copy_or_map_rule);
    return test_summary();
}
