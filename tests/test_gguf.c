/* GGUF (src/gguf/). Container: a write-then-read round trip of every value
 * type and several tensor types written in chunks, one hand-built bad file
 * per rule the reader enforces (each must fail with a clear message, never
 * crash), random corruption, and the writer's failure paths (unwritable
 * folder, full disk, short tensor), none of which may leave a file under the
 * destination name. Laguna: the fixtures' checkpoints quantised to GGUF and
 * read back give the same config as config.json and the same tensors under
 * HF names (bit-exact for bf16, within each type's error otherwise); the
 * tokenizer keys match tokenizer.json; names and the llama.cpp type mix
 * against hand-written expectations; bad Laguna metadata fails clearly. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <math.h>

#include "gguf/gguf.h"
#include "gguf/gguf_laguna.h"
#include "gguf/gguf_quantize.h"
#include "gguf/gguf_tokenizer_read.h"
#include "gguf/gguf_writer.h"
#include "harness.h"
#include "io/file_util.h"
#include "io/safetensors_write.h"
#include "io/tensor_source.h"
#include "model/config.h"
#include "testutil.h"

static char *dir;

static char *path_in(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static bool file_exists(const char *p) {
    return access(p, F_OK) == 0;
}

/* ---- round trip ---------------------------------------------------------- */

static const char *const strs[] = {"alpha", "", "ünïcode ✓", "a\nb"};

static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 8));
}

static void write_sample(const char *path, uint32_t alignment, int chunked) {
    laguna_error err = {0};
    lg_gguf_writer *w;
    CHECK(lg_gguf_writer_new(path, &w, &err) == LAGUNA_OK);
    if (!w) return;
    if (alignment != LG_GGUF_DEFAULT_ALIGNMENT)
        CHECK(lg_gguf_set_u32(w, "general.alignment", alignment, &err) == 0);
    CHECK(lg_gguf_set_str(w, "general.architecture", "laguna", &err) == 0);
    CHECK(lg_gguf_set_u32(w, "t.u32", 4000000000u, &err) == 0);
    CHECK(lg_gguf_set_i32(w, "t.i32", -7, &err) == 0);
    CHECK(lg_gguf_set_u64(w, "t.u64", 1ull << 40, &err) == 0);
    CHECK(lg_gguf_set_f32(w, "t.f32", 0.25f, &err) == 0);
    CHECK(lg_gguf_set_f64(w, "t.f64", -1e-300, &err) == 0);
    CHECK(lg_gguf_set_bool(w, "t.bool", true, &err) == 0);
    int32_t ints[5] = {6, 8, 8, 8, -6};
    uint8_t u8s[3] = {0, 200, 255};
    int16_t i16s[2] = {-300, 300};
    float fs[2] = {1.5f, -2.0f};
    uint8_t bools[3] = {1, 0, 1};
    CHECK(lg_gguf_set_array(w, "t.arr_i32", LG_GGUF_INT32, ints, 5, &err) == 0);
    CHECK(lg_gguf_set_array(w, "t.arr_u8", LG_GGUF_UINT8, u8s, 3, &err) == 0);
    CHECK(lg_gguf_set_array(w, "t.arr_i16", LG_GGUF_INT16, i16s, 2, &err) == 0);
    CHECK(lg_gguf_set_array(w, "t.arr_f32", LG_GGUF_FLOAT32, fs, 2, &err) == 0);
    CHECK(lg_gguf_set_array(w, "t.arr_bool", LG_GGUF_BOOL, bools, 3, &err) == 0);
    CHECK(lg_gguf_set_array(w, "t.arr_empty", LG_GGUF_UINT32, NULL, 0, &err) == 0);
    CHECK(lg_gguf_set_str_array(w, "t.arr_str", strs, NULL, 4, &err) == 0);
    int64_t ne_a[2] = {5, 3}, ne_b[3] = {7, 2, 3}, ne_c[2] = {64, 3}, ne_d[1] = {512},
            ne_e[2] = {256, 2};
    CHECK(lg_gguf_add_tensor(w, "a", LG_DTYPE_F32, 2, ne_a, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "b.bf16", LG_DTYPE_BF16, 3, ne_b, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "c.q8", LG_DTYPE_Q8_0, 2, ne_c, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "d.vec", LG_DTYPE_F16, 1, ne_d, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "e.q4k", LG_DTYPE_Q4_K, 2, ne_e, &err) == 0);
    size_t sizes[5] = {5 * 3 * 4, 7 * 2 * 3 * 2, 2 * 34 * 3, 512 * 2, 2 * 144};
    for (int t = 0; t < 5; t++) {
        uint8_t buf[2048];
        fill(buf, sizes[t], (unsigned)t);
        if (chunked) { /* row-sized or odd-sized pieces */
            size_t step = t == 0 ? 20 : 7, done = 0;
            while (done < sizes[t]) {
                size_t k = sizes[t] - done < step ? sizes[t] - done : step;
                CHECK(lg_gguf_writer_write(w, buf + done, k, &err) == 0);
                done += k;
            }
        } else {
            CHECK(lg_gguf_writer_write(w, buf, sizes[t], &err) == 0);
        }
    }
    CHECKF(lg_gguf_writer_finish(w, &err) == LAGUNA_OK, "%s", err.message);
}

static void check_sample(const char *path, uint32_t alignment) {
    laguna_error err = {0};
    lg_gguf_file *f;
    CHECKF(lg_gguf_open(path, false, &f, &err) == LAGUNA_OK, "%s", err.message);
    if (!f) return;
    CHECK(lg_gguf_version(f) == 3);
    CHECK(lg_gguf_alignment(f) == alignment);
    uint32_t u32;
    int64_t i64;
    double f64;
    bool b;
    lg_gguf_str s;
    CHECK(lg_gguf_get_u32(f, "t.u32", &u32, &err) == 0 && u32 == 4000000000u);
    CHECK(lg_gguf_get_i64(f, "t.i32", &i64, &err) == 0 && i64 == -7);
    CHECK(lg_gguf_get_u32(f, "t.i32", &u32, &err) ==
          LAGUNA_ERR_FORMAT); /* negative: out of range */
    CHECK(lg_gguf_get_i64(f, "t.u64", &i64, &err) == 0 && i64 == (1ll << 40));
    CHECK(lg_gguf_get_f64(f, "t.f32", &f64, &err) == 0 && f64 == 0.25);
    CHECK(lg_gguf_get_f64(f, "t.f64", &f64, &err) == 0 && f64 == -1e-300);
    CHECK(lg_gguf_get_bool(f, "t.bool", &b, &err) == 0 && b);
    CHECK(lg_gguf_get_str(f, "general.architecture", &s, &err) == 0 && s.len == 6 &&
          !memcmp(s.ptr, "laguna", 6));
    CHECK(lg_gguf_get_str(f, "t.u32", &s, &err) == LAGUNA_ERR_FORMAT &&
          strstr(err.message, "t.u32"));
    CHECK(lg_gguf_get_u32(f, "no.such.key", &u32, &err) == LAGUNA_ERR_FORMAT &&
          strstr(err.message, "no.such.key"));
    const lg_gguf_kv *kv = lg_gguf_find_kv(f, "t.arr_i32");
    CHECK(kv && kv->type == LG_GGUF_ARRAY && kv->elem_type == LG_GGUF_INT32 && kv->count == 5);
    if (kv) CHECK(lg_gguf_arr_int(kv, 0) == 6 && lg_gguf_arr_int(kv, 4) == -6);
    kv = lg_gguf_find_kv(f, "t.arr_u8");
    if (kv) CHECK(kv->count == 3 && lg_gguf_arr_int(kv, 1) == 200 && lg_gguf_arr_int(kv, 2) == 255);
    kv = lg_gguf_find_kv(f, "t.arr_i16");
    if (kv) CHECK(lg_gguf_arr_int(kv, 0) == -300 && lg_gguf_arr_int(kv, 1) == 300);
    kv = lg_gguf_find_kv(f, "t.arr_f32");
    if (kv) CHECK(lg_gguf_arr_f64(kv, 0) == 1.5 && lg_gguf_arr_f64(kv, 1) == -2.0);
    kv = lg_gguf_find_kv(f, "t.arr_bool");
    if (kv)
        CHECK(kv->elem_type == LG_GGUF_BOOL && lg_gguf_arr_int(kv, 0) == 1 &&
              lg_gguf_arr_int(kv, 1) == 0);
    kv = lg_gguf_find_kv(f, "t.arr_empty");
    CHECK(kv && kv->count == 0);
    kv = lg_gguf_find_kv(f, "t.arr_str");
    CHECK(kv && kv->elem_type == LG_GGUF_STRING && kv->count == 4);
    for (int i = 0; kv && i < 4; i++) {
        lg_gguf_str e = lg_gguf_arr_str(kv, (uint64_t)i);
        CHECKF(e.len == strlen(strs[i]) && !memcmp(e.ptr, strs[i], e.len), "string %d", i);
    }
    CHECK(lg_gguf_tensor_count(f) == 5);
    const char *names[5] = {"a", "b.bf16", "c.q8", "d.vec", "e.q4k"};
    lg_dtype dts[5] = {LG_DTYPE_F32, LG_DTYPE_BF16, LG_DTYPE_Q8_0, LG_DTYPE_F16, LG_DTYPE_Q4_K};
    size_t sizes[5] = {5 * 3 * 4, 7 * 2 * 3 * 2, 2 * 34 * 3, 512 * 2, 2 * 144};
    size_t map_len;
    const uint8_t *base = lg_gguf_take_mapping(f, &map_len);
    for (int t = 0; t < 5; t++) {
        const lg_gguf_tensor_info *ti = lg_gguf_find_tensor(f, names[t]);
        CHECKF(ti != NULL, "tensor %s missing", names[t]);
        if (!ti) continue;
        CHECK(ti == lg_gguf_tensor_at(f, (size_t)t)); /* file order kept */
        CHECK(ti->dtype == dts[t] && ti->n_bytes == sizes[t]);
        CHECK(((const uint8_t *)ti->data - base) % alignment == 0);
        uint8_t want[2048];
        fill(want, sizes[t], (unsigned)t);
        CHECKF(!memcmp(ti->data, want, sizes[t]), "tensor %s data differs", names[t]);
    }
    const lg_gguf_tensor_info *tb = lg_gguf_find_tensor(f, "b.bf16");
    if (tb)
        CHECK(tb->n_dims == 3 && tb->ne[0] == 7 && tb->ne[1] == 2 && tb->ne[2] == 3 &&
              tb->ne[3] == 1);
    CHECK(lg_gguf_find_tensor(f, "zz") == NULL);
    lg_gguf_close(f);
    munmap((void *)base, map_len);
}

static void test_round_trip(void) {
    write_sample(path_in("rt.gguf"), 32, 0);
    check_sample(path_in("rt.gguf"), 32);
    CHECK(!file_exists(path_in("rt.gguf.tmp")));
    write_sample(path_in("rt64.gguf"), 64, 1);
    check_sample(path_in("rt64.gguf"), 64);
}

/* ---- hand-built bad files ------------------------------------------------ */

typedef struct {
    uint8_t p[4096];
    size_t n;
} bytes;

static void put(bytes *b, const void *p, size_t n) {
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void u32(bytes *b, uint32_t v) {
    put(b, &v, 4);
}
static void u64(bytes *b, uint64_t v) {
    put(b, &v, 8);
}
static void str(bytes *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void pad(bytes *b, size_t a) {
    while (b->n % a)
        b->p[b->n++] = 0;
}

/* A valid file: one string key and one F32 [4, 2] tensor. Knobs let each
 * bad case change one thing. */
typedef struct {
    uint32_t magic, version, ggml_type, n_dims;
    uint64_t n_tensors, n_kv, ne0, ne1, offset, str_len;
    size_t cut; /* truncate to this many bytes when non-zero */
} knobs;

static knobs good(void) {
    return (knobs){LG_GGUF_MAGIC, 3, 0, 2, 1, 1, 4, 2, 0, 6, 0};
}

static void build(bytes *b, knobs k) {
    b->n = 0;
    u32(b, k.magic);
    u32(b, k.version);
    u64(b, k.n_tensors);
    u64(b, k.n_kv);
    u64(b, 6);
    put(b, "g.name", 6);
    u32(b, LG_GGUF_STRING);
    u64(b, k.str_len);
    put(b, "laguna", 6);
    str(b, "w");
    u32(b, k.n_dims);
    u64(b, k.ne0);
    if (k.n_dims > 1) u64(b, k.ne1);
    u32(b, k.ggml_type);
    u64(b, k.offset);
    pad(b, 32);
    for (int i = 0; i < 8; i++) {
        float v = (float)i;
        put(b, &v, 4);
    }
    if (k.cut) b->n = k.cut;
}

/* Writes the bytes, opens them, and expects failure with `code` and a message
 * that contains `needle` and the file name. */
static void expect_bad(const bytes *b, laguna_status code, const char *needle, const char *what) {
    CHECK(tu_write_file(dir, "bad.gguf", b->p, b->n) == 0);
    laguna_error err = {0};
    lg_gguf_file *f = NULL;
    laguna_status st = lg_gguf_open(path_in("bad.gguf"), false, &f, &err);
    CHECKF(st == code, "%s: status %d (want %d): %s", what, st, code, err.message);
    CHECKF(st == LAGUNA_OK || (strstr(err.message, needle) && strstr(err.message, "bad.gguf")),
           "%s: message '%s' lacks '%s'", what, err.message, needle);
    CHECK(st != LAGUNA_OK || f != NULL);
    lg_gguf_close(f);
}

static void test_hand_built_valid(void) {
    bytes b;
    build(&b, good());
    expect_bad(&b, LAGUNA_OK, "", "valid file");
    knobs k = good();
    k.version = 2; /* v2 reads the same */
    build(&b, k);
    expect_bad(&b, LAGUNA_OK, "", "version 2");
}

static void test_bad_header(void) {
    bytes b;
    knobs k = good();
    k.magic = 0x46554746;
    build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "bad magic", "magic");
    k = good(), k.version = 1, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_UNSUPPORTED, "version 1", "v1");
    k = good(), k.version = 4, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_UNSUPPORTED, "version 4", "v4");
    k = good(), k.version = 0x03000000, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_UNSUPPORTED, "big-endian", "big endian");
    b.n = 0;
    expect_bad(&b, LAGUNA_ERR_FORMAT, "empty", "empty file");
}

static void test_absurd_counts(void) {
    bytes b;
    knobs k = good();
    k.n_kv = 1ull << 60, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "absurd metadata count", "kv count");
    k = good(), k.n_tensors = 1ull << 60, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "absurd tensor count", "tensor count");
    k = good(), k.str_len = 1ull << 62, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "past the end", "string length");
    k = good(), k.ne1 = 1ull << 62, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "absurd", "dimension");
    k = good(), k.ne0 = 1ull << 40, k.ne1 = 1ull << 40, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "absurdly large", "element count overflow");
    /* an array claiming 2^60 elements */
    b.n = 0;
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, "arr"), u32(&b, LG_GGUF_ARRAY), u32(&b, LG_GGUF_UINT32), u64(&b, 1ull << 60);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "more than the file holds", "array count");
    b.n = 0; /* an array of 2^59 strings */
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, "tokens"), u32(&b, LG_GGUF_ARRAY), u32(&b, LG_GGUF_STRING), u64(&b, 1ull << 59),
        str(&b, "x");
    expect_bad(&b, LAGUNA_ERR_FORMAT, "more than the file holds", "string array count");
}

static void test_bad_tensors(void) {
    bytes b;
    knobs k = good();
    k.ne1 = 3, build(&b, k); /* claims 48 bytes, the file holds 32 */
    expect_bad(&b, LAGUNA_ERR_FORMAT, "runs past the end", "size mismatch");
    k = good(), k.offset = 32, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "has offset 32, expected 0", "offset");
    k = good(), k.offset = 3, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "offset 3", "misaligned offset");
    k = good(), k.ggml_type = 99, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "unknown type 99", "unknown type");
    k = good(), k.ggml_type = 10, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_UNSUPPORTED, "Q2_K", "unsupported type");
    k = good(), k.ggml_type = LG_GGML_TYPE_Q8_0, k.ne0 = 48, k.ne1 = 1, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_SHAPE, "not a multiple", "partial block");
    k = good(), k.n_dims = 5, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "5 dimensions", "rank 5");
    k = good(), k.n_dims = 0, build(&b, k);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "0 dimensions", "rank 0");
    /* two tensors of the same name */
    b.n = 0;
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 2), u64(&b, 0);
    str(&b, "w"), u32(&b, 1), u64(&b, 8), u32(&b, 0), u64(&b, 0);
    str(&b, "w"), u32(&b, 1), u64(&b, 8), u32(&b, 0), u64(&b, 32);
    pad(&b, 32);
    memset(b.p + b.n, 0, 64), b.n += 64;
    expect_bad(&b, LAGUNA_ERR_FORMAT, "'w' appears twice", "duplicate tensor");
}

static void test_bad_metadata(void) {
    bytes b;
    b.n = 0; /* duplicate key */
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 0), u64(&b, 2);
    str(&b, "k"), u32(&b, LG_GGUF_UINT32), u32(&b, 1);
    str(&b, "k"), u32(&b, LG_GGUF_UINT32), u32(&b, 2);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "'k' appears twice", "duplicate key");
    b.n = 0; /* unknown value type */
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, "k"), u32(&b, 13), u32(&b, 1);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "unknown value type 13", "value type");
    b.n = 0; /* nested array */
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, "k"), u32(&b, LG_GGUF_ARRAY), u32(&b, LG_GGUF_ARRAY), u64(&b, 1), u32(&b, 0);
    expect_bad(&b, LAGUNA_ERR_UNSUPPORTED, "nested", "nested array");
    b.n = 0; /* bool that is neither 0 nor 1 */
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, "k"), u32(&b, LG_GGUF_BOOL), b.p[b.n++] = 2;
    expect_bad(&b, LAGUNA_ERR_FORMAT, "bool value 2", "bool");
    b.n = 0; /* alignment not a power of two */
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, "general.alignment"), u32(&b, LG_GGUF_UINT32), u32(&b, 24);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "not a power of two", "alignment");
    b.n = 0; /* alignment of the wrong type */
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, "general.alignment"), u32(&b, LG_GGUF_FLOAT32), u32(&b, 0);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "must be an integer", "alignment type");
    b.n = 0; /* empty key */
    u32(&b, LG_GGUF_MAGIC), u32(&b, 3), u64(&b, 0), u64(&b, 1);
    str(&b, ""), u32(&b, LG_GGUF_UINT32), u32(&b, 1);
    expect_bad(&b, LAGUNA_ERR_FORMAT, "is empty", "empty key");
}

/* Every truncation of a valid file fails cleanly (the data may end early only
 * where the last tensor's bytes are complete). */
static void test_truncations(void) {
    bytes full;
    build(&full, good());
    for (size_t cut = 1; cut < full.n; cut++) {
        bytes b = full;
        b.n = cut;
        CHECK(tu_write_file(dir, "cut.gguf", b.p, b.n) == 0);
        laguna_error err = {0};
        lg_gguf_file *f = NULL;
        laguna_status st = lg_gguf_open(path_in("cut.gguf"), false, &f, &err);
        CHECKF(st != LAGUNA_OK, "cut at %zu of %zu opened", cut, full.n);
        CHECKF(st == LAGUNA_OK || err.message[0], "cut at %zu: empty message", cut);
        lg_gguf_close(f);
    }
}

/* Random byte corruption must never crash or read out of bounds (the
 * sanitizer build checks the latter); most corruptions are rejected. */
static void test_random_corruption(void) {
    bytes full;
    build(&full, good());
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (int it = 0; it < 1500; it++) {
        bytes b = full;
        for (int m = 0; m < 1 + it % 3; m++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            b.p[(r >> 8) % 96] ^= (uint8_t)(1u << (r % 8)); /* the header and infos */
        }
        CHECK(tu_write_file(dir, "fuzz.gguf", b.p, b.n) == 0);
        laguna_error err = {0};
        lg_gguf_file *f = NULL;
        laguna_status st = lg_gguf_open(path_in("fuzz.gguf"), false, &f, &err);
        if (st == LAGUNA_OK) { /* whatever opened must be self-consistent */
            for (size_t i = 0; i < lg_gguf_tensor_count(f); i++) {
                const lg_gguf_tensor_info *t = lg_gguf_tensor_at(f, i);
                volatile uint8_t sink = 0;
                for (size_t j = 0; j < t->n_bytes; j++)
                    sink ^= ((const uint8_t *)t->data)[j];
                (void)sink;
            }
        } else {
            CHECK(err.message[0] != 0);
        }
        lg_gguf_close(f);
    }
}

/* ---- writer failures ------------------------------------------------------ */

static void test_writer_unwritable(void) {
    laguna_error err = {0};
    lg_gguf_writer *w = NULL;
    char p[600];
    snprintf(p, sizeof p, "%s/no/such/dir/x.gguf", dir);
    CHECK(lg_gguf_writer_new(p, &w, &err) == LAGUNA_ERR_IO && w == NULL);
    CHECKF(strstr(err.message, "x.gguf.tmp") != NULL, "%s", err.message);
    CHECK(!file_exists(p));
}

static void test_writer_short_and_overlong(void) {
    laguna_error err = {0};
    lg_gguf_writer *w;
    const char *p = path_in("short.gguf");
    int64_t ne[2] = {4, 2};
    float data[9] = {0};
    CHECK(lg_gguf_writer_new(p, &w, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "t", LG_DTYPE_F32, 2, ne, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "t", LG_DTYPE_F32, 2, ne, &err) == LAGUNA_ERR_ARGUMENT); /* twice */
    lg_gguf_writer_abort(w);
    CHECK(!file_exists(p) && !file_exists(path_in("short.gguf.tmp")));
    CHECK(lg_gguf_writer_new(p, &w, &err) == 0);
    CHECK(lg_gguf_set_u32(w, "k", 1, &err) == 0);
    CHECK(lg_gguf_set_u32(w, "k", 2, &err) == LAGUNA_ERR_ARGUMENT &&
          strstr(err.message, "'k' set twice"));
    CHECK(lg_gguf_writer_finish(w, &err) != LAGUNA_OK); /* a failed writer never completes */
    CHECK(!file_exists(p) && !file_exists(path_in("short.gguf.tmp")));

    CHECK(lg_gguf_writer_new(p, &w, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "t", LG_DTYPE_F32, 2, ne, &err) == 0);
    CHECK(lg_gguf_writer_write(w, data, 16, &err) == 0);
    CHECK(lg_gguf_set_u32(w, "late", 1, &err) == LAGUNA_ERR_ARGUMENT); /* after data began */
    CHECK(lg_gguf_writer_finish(w, &err) != LAGUNA_OK);
    CHECK(!file_exists(p) && !file_exists(path_in("short.gguf.tmp")));

    CHECK(lg_gguf_writer_new(p, &w, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "t", LG_DTYPE_F32, 2, ne, &err) == 0);
    CHECK(lg_gguf_writer_write(w, data, 16, &err) == 0);
    CHECK(lg_gguf_writer_finish(w, &err) == LAGUNA_ERR_ARGUMENT &&
          strstr(err.message, "'t' got 16 of its 32 bytes"));
    CHECK(!file_exists(p) && !file_exists(path_in("short.gguf.tmp")));

    CHECK(lg_gguf_writer_new(p, &w, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "t", LG_DTYPE_F32, 2, ne, &err) == 0);
    CHECK(lg_gguf_writer_write(w, data, 36, &err) == LAGUNA_ERR_ARGUMENT); /* past the tensor */
    CHECK(lg_gguf_writer_finish(w, &err) != LAGUNA_OK);
    CHECK(!file_exists(p) && !file_exists(path_in("short.gguf.tmp")));

    int64_t odd[1] = {48};
    CHECK(lg_gguf_writer_new(p, &w, &err) == 0);
    CHECK(lg_gguf_add_tensor(w, "q", LG_DTYPE_Q8_0, 1, odd, &err) == LAGUNA_ERR_ARGUMENT);
    lg_gguf_writer_abort(w);
}

/* A full disk, simulated with a file-size limit: writes past it fail with
 * EFBIG (SIGXFSZ ignored), exactly the path ENOSPC takes. */
static void test_writer_disk_full(void) {
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) != 0) return;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    const char *p = path_in("full.gguf");
    laguna_error err = {0};
    lg_gguf_writer *w;
    CHECK(lg_gguf_writer_new(p, &w, &err) == 0);
    int64_t ne[1] = {1 << 18}; /* 1 MiB of float32 */
    CHECK(lg_gguf_add_tensor(w, "big", LG_DTYPE_F32, 1, ne, &err) == 0);
    struct rlimit lim = old;
    lim.rlim_cur = 64 * 1024;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    static float chunk[4096];
    laguna_status st = LAGUNA_OK;
    for (int i = 0; i < (1 << 18) / 4096 && st == LAGUNA_OK; i++)
        st = lg_gguf_writer_write(w, chunk, sizeof chunk, &err);
    laguna_status fin = lg_gguf_writer_finish(w, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    CHECK(st != LAGUNA_OK || fin != LAGUNA_OK);
    CHECKF(strstr(err.message, "full.gguf.tmp") != NULL, "%s", err.message);
    CHECK(!file_exists(p) && !file_exists(path_in("full.gguf.tmp")));
}

/* ---- hostile tokenizers --------------------------------------------------- */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A gpt2 tokenizer GGUF with the given token strings (no merges). */
static void write_tokenizer_gguf(const char *p, const char *const *tokens, size_t n) {
    laguna_error err = {0};
    lg_gguf_writer *w = NULL;
    CHECK(lg_gguf_writer_new(p, &w, &err) == 0);
    CHECK(lg_gguf_set_str(w, "tokenizer.ggml.model", "gpt2", &err) == 0);
    CHECK(lg_gguf_set_str(w, "tokenizer.ggml.pre", "gpt2", &err) == 0);
    CHECK(lg_gguf_set_str_array(w, "tokenizer.ggml.tokens", tokens, NULL, n, &err) == 0);
    CHECK(lg_gguf_set_str_array(w, "tokenizer.ggml.merges", NULL, NULL, 0, &err) == 0);
    CHECKF(lg_gguf_writer_finish(w, &err) == 0, "%s", err.message);
}

/* Each token's duplicate check used to scan a cJSON object (a linked list):
 * 100k tokens, a real vocabulary's size, took ~16 s on every load. */
static void test_tokenizer_load_is_linear(void) {
    size_t n = 100000;
    char **tokens = malloc(n * sizeof *tokens);
    for (size_t i = 0; i < n; i++) {
        tokens[i] = malloc(16);
        snprintf(tokens[i], 16, "t%zu", i % 99990); /* a few duplicates: the first id wins */
    }
    const char *p = path_in("bigvocab.gguf");
    write_tokenizer_gguf(p, (const char *const *)tokens, n);
    for (size_t i = 0; i < n; i++) free(tokens[i]);
    free(tokens);
    laguna_tokenizer *tok = NULL;
    laguna_error err = {0};
    double t0 = now_s();
    CHECKF(lg_gguf_load_tokenizer(p, &tok, &err) == LAGUNA_OK, "%s", err.message);
    double secs = now_s() - t0;
    printf("  100k-token GGUF tokenizer loaded in %.2f s\n", secs);
    CHECK(secs < 5);
    CHECK(tok && laguna_tokenizer_token_to_id(tok, "t12", 3) == 12);
    laguna_tokenizer_free(tok);
}

/* A token that is not valid UTF-8 (a lone lead byte, half a character) is
 * refused when the tokenizer is read, naming the token. */
static void test_tokenizer_invalid_utf8(void) {
    static const char *const bad[][2] = {{"a", "\xf0"}, {"b", "\x98"}, {"c", "x\xe2\x82"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = path_in("badtok.gguf");
        write_tokenizer_gguf(p, bad[i], 2);
        laguna_tokenizer *tok = NULL;
        laguna_error err = {0};
        CHECK(lg_gguf_load_tokenizer(p, &tok, &err) == LAGUNA_ERR_FORMAT && !tok);
        CHECKF(strstr(err.message, "tokenizer.ggml.tokens[1] is not valid UTF-8"), "%s",
               err.message);
    }
}

/* ---- Laguna: names and type mix ------------------------------------------ */

static void test_names(void) {
    static const char *const pairs[][2] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"lm_head.weight", "output.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
        {"model.layers.12.post_attention_layernorm.weight", "blk.12.ffn_norm.weight"},
        {"model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight"},
        {"model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight"},
        {"model.layers.3.self_attn.k_norm.weight", "blk.3.attn_k_norm.weight"},
        {"model.layers.3.self_attn.g_proj.weight", "blk.3.attn_gate.weight"},
        {"model.layers.39.mlp.gate.weight", "blk.39.ffn_gate_inp.weight"},
        {"model.layers.39.mlp.experts.e_score_correction_bias", "blk.39.exp_probs_b.bias"},
        {"model.layers.2.mlp.shared_expert.down_proj.weight", "blk.2.ffn_down_shexp.weight"},
        {"model.layers.0.mlp.up_proj.weight", "blk.0.ffn_up.weight"},
    };
    char out[128];
    int expert;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        CHECKF(lg_gguf_name_from_hf(pairs[i][0], out, sizeof out, &expert) == 0 &&
                   !strcmp(out, pairs[i][1]) && expert == -1,
               "%s -> %s", pairs[i][0], out);
        CHECKF(lg_gguf_name_to_hf(pairs[i][1], 0, out, sizeof out) == 0 &&
                   !strcmp(out, pairs[i][0]),
               "%s -> %s", pairs[i][1], out);
    }
    CHECK(lg_gguf_name_from_hf("model.layers.7.mlp.experts.255.down_proj.weight", out, sizeof out,
                               &expert) == 0);
    CHECK(!strcmp(out, "blk.7.ffn_down_exps.weight") && expert == 255);
    CHECK(lg_gguf_name_to_hf("blk.7.ffn_gate_exps.weight", 3, out, sizeof out) == 1);
    CHECK(!strcmp(out, "model.layers.7.mlp.experts.3.gate_proj.weight"));
    CHECK(lg_gguf_name_from_hf("model.layers.x.mlp.gate.weight", out, sizeof out, &expert) == -1);
    CHECK(lg_gguf_name_from_hf("model.layers.1.mlp.experts.2.bogus.weight", out, sizeof out,
                               &expert) == -1);
    CHECK(lg_gguf_name_to_hf("blk.1.rope_freqs", 0, out, sizeof out) == -1);
    CHECK(lg_gguf_name_from_hf("model.layers.3.self_attn.q_proj.weight", out, 8, &expert) ==
          -1); /* too small */
}

/* Expectations written from llama.cpp's rules (llama-quant.cpp), for an
 * XS.2-shaped model: 40 layers, 256 experts, hidden 2048, expert width 512. */
static void test_type_mix(void) {
    int fb;
    const int64_t mat[2] = {2048, 4096}, exps[3] = {512, 2048, 256}, vec[1] = {2048},
                  odd[2] = {2080, 64}, odd2[2] = {1000, 8};
#define TYPE(ft, name, nd, ne) lg_ftype_tensor_type(ft, name, nd, ne, 40, 256, 0, &fb)
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "blk.5.attn_q.weight", 2, mat) == LG_DTYPE_Q4_K);
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "blk.5.attn_norm.weight", 1, vec) == LG_DTYPE_F32);
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "blk.5.attn_q_norm.weight", 1, vec) == LG_DTYPE_F32);
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "blk.5.ffn_gate_inp.weight", 2, mat) == LG_DTYPE_F32); /* router */
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "blk.5.exp_probs_b.bias", 1, vec) == LG_DTYPE_F32);
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "output.weight", 2, mat) == LG_DTYPE_Q6_K);
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "token_embd.weight", 2, mat) == LG_DTYPE_Q4_K); /* untied */
    CHECK(lg_ftype_tensor_type(LG_FTYPE_Q4_K_M, "token_embd.weight", 2, mat, 40, 256, 1, &fb) ==
          LG_DTYPE_Q6_K); /* tied */
    CHECK(TYPE(LG_FTYPE_Q8_0, "output.weight", 2, mat) == LG_DTYPE_Q8_0);
    CHECK(TYPE(LG_FTYPE_Q6_K, "blk.9.ffn_up_exps.weight", 3, exps) == LG_DTYPE_Q6_K);
    CHECK(TYPE(LG_FTYPE_BF16, "blk.9.ffn_up_exps.weight", 3, exps) == LG_DTYPE_BF16);
    CHECK(TYPE(LG_FTYPE_BF16, "blk.9.attn_norm.weight", 1, vec) == LG_DTYPE_F32);
    /* use_more_bits(i, 40): i < 5, i >= 35, or (i - 5) % 3 == 2 */
    const int more[] = {0, 4, 7, 10, 34, 35, 39}, fewer[] = {5, 6, 8, 9, 33};
    char name[64];
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", more[i]);
        CHECKF(TYPE(LG_FTYPE_Q4_K_M, name, 2, mat) == LG_DTYPE_Q6_K, "%s", name);
        CHECKF(TYPE(LG_FTYPE_Q5_K_M, name, 2, mat) == LG_DTYPE_Q6_K, "%s", name);
        snprintf(name, sizeof name, "blk.%d.ffn_down_exps.weight", more[i]);
        CHECKF(TYPE(LG_FTYPE_Q4_K_M, name, 3, exps) == LG_DTYPE_Q6_K, "%s", name);
        snprintf(name, sizeof name, "blk.%d.ffn_down_shexp.weight", more[i]);
        CHECKF(TYPE(LG_FTYPE_Q5_K_M, name, 2, exps) == LG_DTYPE_Q6_K, "%s", name);
    }
    for (size_t i = 0; i < sizeof fewer / sizeof fewer[0]; i++) {
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", fewer[i]);
        CHECKF(TYPE(LG_FTYPE_Q4_K_M, name, 2, mat) == LG_DTYPE_Q4_K, "%s", name);
        CHECKF(TYPE(LG_FTYPE_Q5_K_M, name, 2, mat) == LG_DTYPE_Q5_K, "%s", name);
        snprintf(name, sizeof name, "blk.%d.ffn_down_exps.weight", fewer[i]);
        CHECKF(TYPE(LG_FTYPE_Q4_K_M, name, 3, exps) == LG_DTYPE_Q4_K, "%s", name);
    }
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "blk.7.ffn_up_exps.weight", 3, exps) ==
          LG_DTYPE_Q4_K); /* only down gets more */
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "blk.7.attn_k.weight", 2, mat) == LG_DTYPE_Q4_K);
    /* rows that are not whole 256-blocks fall back; 1000 is not even 32-blocks */
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "blk.5.attn_q.weight", 2, odd) == LG_DTYPE_Q5_0 && fb);
    CHECK(TYPE(LG_FTYPE_Q5_K_M, "blk.5.attn_q.weight", 2, odd) == LG_DTYPE_Q5_1 && fb);
    CHECK(TYPE(LG_FTYPE_Q6_K, "blk.5.attn_q.weight", 2, odd) == LG_DTYPE_Q8_0 && fb);
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "output.weight", 2, odd) == LG_DTYPE_Q8_0);
    CHECK(TYPE(LG_FTYPE_Q4_K_M, "blk.5.attn_q.weight", 2, odd2) == LG_DTYPE_F16 && fb);
    CHECK(TYPE(LG_FTYPE_Q8_0, "blk.5.attn_q.weight", 2, odd2) == LG_DTYPE_F16 && fb);
    CHECK(TYPE(LG_FTYPE_Q8_0, "blk.5.attn_q.weight", 2, mat) == LG_DTYPE_Q8_0 && !fb);
    /* exactly 8 experts (not Laguna): attn_v and attn_k to Q8_0 */
    CHECK(lg_ftype_tensor_type(LG_FTYPE_Q4_K_M, "blk.5.attn_k.weight", 2, mat, 40, 8, 0, &fb) ==
          LG_DTYPE_Q8_0);
#undef TYPE
    lg_ftype ft;
    CHECK(lg_ftype_parse("Q4_K_M", &ft) == 0 && ft == LG_FTYPE_Q4_K_M &&
          lg_ftype_parse("q3_k", &ft) == -1);
}

/* ---- Laguna: checkpoints through GGUF ------------------------------------- */

static const char *const fixtures[] = {"tests/fixtures/tiny-xs/bf16", "tests/fixtures/tiny-m/bf16"};

static laguna_status quantize(const char *src, const char *dst, lg_ftype ft, laguna_error *err) {
    lg_quantize_options opt = {.ftype = ft, .n_threads = 2};
    lg_quantize_stats stats;
    return lg_quantize_model(src, dst, &opt, &stats, err);
}

static int parse_fixture_config(const char *fixture, lg_config *cfg) {
    char path[256], *text;
    snprintf(path, sizeof path, "%s/config.json", fixture);
    laguna_error err = {0};
    if (lg_read_file(path, 1 << 20, &text, NULL, &err)) return -1;
    int r = lg_config_parse(text, path, cfg, &err) == LAGUNA_OK ? 0 : -1;
    free(text);
    return r;
}

static bool near(double a, double b) {
    return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b));
}

static void compare_configs(const lg_config *a, const lg_config *b, const char *what) {
    CHECKF(a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size &&
               a->intermediate_size == b->intermediate_size && a->n_layers == b->n_layers &&
               a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim,
           "%s: sizes", what);
    CHECKF(a->sliding_window == b->sliding_window &&
               a->max_position_embeddings == b->max_position_embeddings,
           "%s: window", what);
    CHECKF(a->n_experts == b->n_experts && a->n_experts_per_token == b->n_experts_per_token &&
               a->moe_intermediate_size == b->moe_intermediate_size &&
               a->shared_expert_intermediate_size == b->shared_expert_intermediate_size,
           "%s: experts", what);
    CHECKF(near(a->routed_scaling_factor, b->routed_scaling_factor) &&
               near(a->router_logit_softcapping, b->router_logit_softcapping) &&
               near(a->rms_norm_eps, b->rms_norm_eps),
           "%s: scaling %g/%g softcap %g/%g eps %g/%g", what, a->routed_scaling_factor,
           b->routed_scaling_factor, a->router_logit_softcapping, b->router_logit_softcapping,
           a->rms_norm_eps, b->rms_norm_eps);
    CHECKF(a->tie_word_embeddings == b->tie_word_embeddings &&
               a->attention_bias == b->attention_bias,
           "%s: flags", what);
    CHECKF(a->bos_token_id == b->bos_token_id && a->n_eos == b->n_eos,
           "%s: bos %d/%d eos count %d/%d", what, a->bos_token_id, b->bos_token_id, a->n_eos,
           b->n_eos);
    for (int i = 0; i < a->n_eos && i < b->n_eos; i++)
        CHECKF(a->eos_token_ids[i] == b->eos_token_ids[i], "%s: eos %d", what, i);
    CHECKF(a->gate_mode == b->gate_mode, "%s: gate mode %d vs %d", what, a->gate_mode,
           b->gate_mode);
    for (int l = 0; l < a->n_layers && l < b->n_layers; l++)
        CHECKF(a->n_heads[l] == b->n_heads[l] && a->attention_kind[l] == b->attention_kind[l] &&
                   a->mlp_kind[l] == b->mlp_kind[l],
               "%s: layer %d", what, l);
    for (int k = 0; k < 2; k++) {
        CHECKF(a->has_rope[k] == b->has_rope[k], "%s: has_rope[%d]", what, k);
        if (!a->has_rope[k] || !b->has_rope[k]) continue;
        const lg_rope_params *x = &a->rope[k], *y = &b->rope[k];
        CHECKF(x->type == y->type && near(x->theta, y->theta) &&
                   near(x->partial_rotary_factor, y->partial_rotary_factor),
               "%s: rope[%d] type/theta/partial", what, k);
        if (x->type == LG_ROPE_YARN)
            CHECKF(near(x->factor, y->factor) &&
                       x->original_max_position_embeddings == y->original_max_position_embeddings &&
                       near(x->beta_fast, y->beta_fast) && near(x->beta_slow, y->beta_slow) &&
                       near(x->attention_factor, y->attention_factor) &&
                       x->truncate == y->truncate && near(x->mscale, y->mscale) &&
                       near(x->mscale_all_dim, y->mscale_all_dim),
                   "%s: rope[%d] yarn", what, k);
    }
}

static void test_config_round_trip(void) {
    for (size_t f = 0; f < 2; f++) {
        lg_config want, got;
        if (parse_fixture_config(fixtures[f], &want)) {
            CHECK(0);
            continue;
        }
        laguna_error err = {0};
        const char *dst = path_in("cfg.gguf");
        CHECKF(quantize(fixtures[f], dst, LG_FTYPE_BF16, &err) == LAGUNA_OK, "%s", err.message);
        lg_tensor_source *src = NULL;
        CHECKF(lg_gguf_open_laguna(dst, false, &got, &src, &err) == LAGUNA_OK, "%s", err.message);
        if (src) {
            compare_configs(&got, &want, fixtures[f]);
            lg_config_free(&got);
        }
        lg_tensor_source_free(src);
        lg_config_free(&want);
    }
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        num += (a[i] - b[i]) * (double)(a[i] - b[i]), den += (double)b[i] * b[i];
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static size_t elems(const lg_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->n_dims; d++)
        n *= (size_t)t->shape[d];
    return n;
}

static double type_bound(lg_dtype t) {
    switch (t) {
    case LG_DTYPE_F32:
    case LG_DTYPE_BF16:
        return 0;
    case LG_DTYPE_F16:
        return 1e-3;
    case LG_DTYPE_Q8_0:
        return 0.01;
    case LG_DTYPE_Q6_K:
        return 0.03;
    case LG_DTYPE_Q5_K:
    case LG_DTYPE_Q5_0:
    case LG_DTYPE_Q5_1:
        return 0.06;
    default:
        return 0.12;
    }
}

/* Every checkpoint tensor is in the GGUF source under its HF name with the
 * same shape; its values within max_rel (or the type's bound when < 0). */
static void compare_sources(const char *fixture, const char *gguf, double max_rel) {
    laguna_error err = {0};
    lg_tensor_source *ref = NULL, *got = NULL;
    lg_config cfg;
    CHECKF(lg_tensor_source_open_safetensors_dir(fixture, LG_LOAD_MMAP, &ref, &err) == 0, "%s",
           err.message);
    CHECKF(lg_gguf_open_laguna(gguf, false, &cfg, &got, &err) == 0, "%s", err.message);
    if (!ref || !got) {
        lg_tensor_source_free(ref);
        lg_tensor_source_free(got);
        return;
    }
    CHECKF(lg_tensor_source_count(got) == lg_tensor_source_count(ref), "%s: %zu tensors vs %zu",
           gguf, lg_tensor_source_count(got), lg_tensor_source_count(ref));
    size_t n_max = 0;
    for (size_t i = 0; i < lg_tensor_source_count(ref); i++)
        n_max =
            elems(lg_tensor_source_at(ref, i)) > n_max ? elems(lg_tensor_source_at(ref, i)) : n_max;
    float *a = malloc(n_max * sizeof(float)), *b = malloc(n_max * sizeof(float));
    for (size_t i = 0; i < lg_tensor_source_count(ref); i++) {
        const lg_tensor *r = lg_tensor_source_at(ref, i), *g = lg_tensor_source_find(got, r->name);
        CHECKF(g != NULL, "%s: no tensor %s", gguf, r->name);
        if (!g) continue;
        bool same_shape = g->n_dims == r->n_dims;
        for (int d = 0; d < r->n_dims && same_shape; d++)
            same_shape = g->shape[d] == r->shape[d];
        CHECKF(same_shape, "%s: %s shape differs", gguf, r->name);
        if (!same_shape) continue;
        size_t n = elems(r);
        lg_dtype_to_f32(r->dtype, r->data, b, (int64_t)n);
        lg_dtype_to_f32(g->dtype, g->data, a, (int64_t)n);
        double e = rel_err(a, b, n), bound = max_rel >= 0 ? max_rel : type_bound(g->dtype);
        CHECKF(e <= bound, "%s: %s (%s) rel err %.3g > %.3g", gguf, r->name,
               lg_dtype_name(g->dtype), e, bound);
    }
    free(a), free(b);
    lg_config_free(&cfg);
    lg_tensor_source_free(ref);
    lg_tensor_source_free(got);
}

static void test_tensors_bf16_exact(void) {
    for (size_t f = 0; f < 2; f++) {
        laguna_error err = {0};
        CHECKF(quantize(fixtures[f], path_in("bf16.gguf"), LG_FTYPE_BF16, &err) == 0, "%s",
               err.message);
        compare_sources(fixtures[f], path_in("bf16.gguf"), 0.0);
    }
    /* the float32 checkpoint gives the same file bytes for its tensors' values */
    laguna_error err = {0};
    CHECKF(quantize("tests/fixtures/tiny-xs", path_in("f32.gguf"), LG_FTYPE_F32, &err) == 0, "%s",
           err.message);
    compare_sources("tests/fixtures/tiny-xs", path_in("f32.gguf"), 0.0);
}

static void test_tensors_quantized(void) {
    const lg_ftype fts[] = {LG_FTYPE_Q8_0, LG_FTYPE_Q6_K, LG_FTYPE_Q5_K_M, LG_FTYPE_Q4_K_M};
    for (size_t f = 0; f < 2; f++)
        for (size_t k = 0; k < sizeof fts / sizeof fts[0]; k++) {
            laguna_error err = {0};
            CHECKF(quantize(fixtures[f], path_in("q.gguf"), fts[k], &err) == 0, "%s", err.message);
            compare_sources(fixtures[f], path_in("q.gguf"), -1);
        }
    /* tiny-xs: hidden 64, so rows fall back; attn_v of layers 2 and 4 get more
     * bits (use_more_bits(L, 5): L >= 4 or (L - 0) % 3 == 2) -> Q6_K -> Q8_0. */
    laguna_error err = {0};
    lg_gguf_file *g = NULL;
    CHECK(quantize(fixtures[0], path_in("q4.gguf"), LG_FTYPE_Q4_K_M, &err) == 0);
    CHECKF(lg_gguf_open(path_in("q4.gguf"), false, &g, &err) == 0, "%s", err.message);
    if (!g) return;
    const char *q8[] = {"blk.2.attn_v.weight", "blk.4.attn_v.weight", "output.weight",
                        "blk.4.ffn_down_exps.weight"};
    const char *q50[] = {"blk.0.attn_v.weight", "blk.1.attn_v.weight", "blk.3.attn_v.weight",
                         "token_embd.weight", "blk.1.ffn_down_exps.weight"};
    for (size_t i = 0; i < 4; i++) {
        const lg_gguf_tensor_info *t = lg_gguf_find_tensor(g, q8[i]);
        CHECKF(t && t->dtype == LG_DTYPE_Q8_0, "%s", q8[i]);
    }
    for (size_t i = 0; i < 5; i++) {
        const lg_gguf_tensor_info *t = lg_gguf_find_tensor(g, q50[i]);
        CHECKF(t && t->dtype == LG_DTYPE_Q5_0, "%s", q50[i]);
    }
    const lg_gguf_tensor_info *t = lg_gguf_find_tensor(g, "blk.1.ffn_gate_exps.weight");
    CHECK(t && t->n_dims == 3 && t->ne[0] == 64 && t->ne[1] == 32 && t->ne[2] == 16);
    t = lg_gguf_find_tensor(g, "blk.1.ffn_down_exps.weight");
    CHECK(t && t->ne[0] == 32 && t->ne[1] == 64 && t->ne[2] == 16);
    t = lg_gguf_find_tensor(g, "blk.1.ffn_gate_inp.weight");
    CHECK(t && t->dtype == LG_DTYPE_F32 && t->ne[0] == 64 && t->ne[1] == 16);
    uint32_t ft;
    CHECK(lg_gguf_get_u32(g, "general.file_type", &ft, &err) == 0 && ft == 15);
    lg_gguf_close(g);
}

/* tokenizer.* keys against tokenizer.json / tokenizer_config.json read here. */
static void check_tokenizer(const char *fixture, const char *gguf, bool jinja_file) {
    laguna_error err = {0};
    lg_gguf_file *g = NULL;
    CHECKF(lg_gguf_open(gguf, false, &g, &err) == 0, "%s", err.message);
    char path[256];
    snprintf(path, sizeof path, "%s/tokenizer.json", fixture);
    char *text = tu_read_file(path, NULL);
    cJSON *tok = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!g || !tok) {
        CHECK(0);
        lg_gguf_close(g);
        cJSON_Delete(tok);
        return;
    }
    lg_gguf_str s;
    CHECK(lg_gguf_get_str(g, "tokenizer.ggml.model", &s, &err) == 0 && s.len == 4 &&
          !memcmp(s.ptr, "gpt2", 4));
    CHECK(lg_gguf_get_str(g, "tokenizer.ggml.pre", &s, &err) == 0 && s.len == 6 &&
          !memcmp(s.ptr, "laguna", 6));
    const lg_gguf_kv *tokens = lg_gguf_find_kv(g, "tokenizer.ggml.tokens"),
                     *types = lg_gguf_find_kv(g, "tokenizer.ggml.token_type");
    const lg_gguf_kv *merges = lg_gguf_find_kv(g, "tokenizer.ggml.merges");
    CHECK(tokens && types && merges && tokens->count == 1024 && types->count == 1024);
    if (tokens && types && tokens->count == 1024 && types->count == 1024) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(cJSON_GetObjectItem(tok, "model"), "vocab")) {
            lg_gguf_str t = lg_gguf_arr_str(tokens, (uint64_t)e->valuedouble);
            CHECKF(t.len == strlen(e->string) && !memcmp(t.ptr, e->string, t.len), "token %d",
                   (int)e->valuedouble);
        }
        CHECK(lg_gguf_arr_int(types, 500) == 1);  /* an ordinary token */
        CHECK(lg_gguf_arr_int(types, 2) == 3);    /* </s>: special */
        CHECK(lg_gguf_arr_int(types, 8) == 3);    /* <|reserved_8|>: looks special */
        CHECK(lg_gguf_arr_int(types, 14) == 4);   /* <think>: user defined */
        CHECK(lg_gguf_arr_int(types, 24) == 3);   /* </assistant>: promoted to control */
        CHECK(lg_gguf_arr_int(types, 1000) == 5); /* beyond tokenizer.json */
        lg_gguf_str pad = lg_gguf_arr_str(tokens, 1023);
        CHECK(pad.len == 9 && !memcmp(pad.ptr, "[PAD1023]", 9));
    }
    const cJSON *jm = cJSON_GetObjectItem(cJSON_GetObjectItem(tok, "model"), "merges");
    CHECK(merges && (int)merges->count == cJSON_GetArraySize(jm));
    if (merges && merges->count > 0) {
        const cJSON *m0 = cJSON_GetArrayItem(jm, 0);
        char want[64];
        snprintf(want, sizeof want, "%s %s", cJSON_GetArrayItem(m0, 0)->valuestring,
                 cJSON_GetArrayItem(m0, 1)->valuestring);
        lg_gguf_str m = lg_gguf_arr_str(merges, 0);
        CHECK(m.len == strlen(want) && !memcmp(m.ptr, want, m.len));
    }
    uint32_t id;
    CHECK(lg_gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &id, &err) == 0 &&
          id == 9); /* "<pad>" */
    CHECK(lg_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &id, &err) == 0 && id == 1);
    CHECK(lg_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id, &err) == 0 && id == 2);
    char *tmpl;
    if (jinja_file) {
        snprintf(path, sizeof path, "%s/chat_template.jinja", fixture);
        tmpl = tu_read_file(path, NULL);
    } else {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", fixture);
        char *t = tu_read_file(path, NULL);
        cJSON *c = t ? cJSON_Parse(t) : NULL;
        tmpl = c ? strdup(cJSON_GetObjectItem(c, "chat_template")->valuestring) : NULL;
        cJSON_Delete(c);
        free(t);
    }
    CHECK(tmpl && lg_gguf_get_str(g, "tokenizer.chat_template", &s, &err) == 0 &&
          s.len == strlen(tmpl) && !memcmp(s.ptr, tmpl, s.len));
    free(tmpl);
    cJSON_Delete(tok);
    lg_gguf_close(g);
}

static void test_tokenizer_keys(void) {
    laguna_error err = {0};
    CHECK(quantize(fixtures[0], path_in("tok.gguf"), LG_FTYPE_Q8_0, &err) == 0);
    check_tokenizer(fixtures[0], path_in("tok.gguf"), true);
    lg_gguf_file *g = NULL;
    uint32_t eot = 0;
    if (lg_gguf_open(path_in("tok.gguf"), false, &g, &err) == 0) {
        CHECK(lg_gguf_get_u32(g, "tokenizer.ggml.eot_token_id", &eot, &err) == 0 &&
              eot == 24); /* eos [2, 24] */
        lg_gguf_close(g);
    }
    CHECK(quantize(fixtures[1], path_in("tok.gguf"), LG_FTYPE_Q8_0, &err) == 0);
    check_tokenizer(fixtures[1], path_in("tok.gguf"), false);
}

/* GGUF -> GGUF: bf16 file requantised to Q8_0 keeps config and tokenizer. */
static void test_requantize_gguf(void) {
    laguna_error err = {0};
    CHECK(quantize(fixtures[0], path_in("src.gguf"), LG_FTYPE_BF16, &err) == 0);
    CHECKF(quantize(path_in("src.gguf"), path_in("re.gguf"), LG_FTYPE_Q8_0, &err) == 0, "%s",
           err.message);
    compare_sources(fixtures[0], path_in("re.gguf"), -1);
    check_tokenizer(fixtures[0], path_in("re.gguf"), true);
    lg_config want, got;
    lg_tensor_source *src = NULL;
    if (parse_fixture_config(fixtures[0], &want) == 0) {
        if (lg_gguf_open_laguna(path_in("re.gguf"), false, &got, &src, &err) == 0) {
            compare_configs(&got, &want, "requantised");
            lg_config_free(&got);
        }
        lg_config_free(&want);
    }
    lg_tensor_source_free(src);
}

/* Minimal Laguna metadata, with one key changed or dropped. */
static laguna_status open_meta(const char *drop, const char *arch, uint32_t gating, int heads_len) {
    laguna_error err = {0};
    lg_gguf_writer *w;
    const char *p = path_in("meta.gguf");
    if (lg_gguf_writer_new(p, &w, &err)) return LAGUNA_ERR_IO;
    int32_t heads[3] = {4, 4, 4};
    struct {
        const char *key;
        uint32_t v;
    } u[] = {{"laguna.block_count", 3},
             {"laguna.embedding_length", 32},
             {"laguna.feed_forward_length", 64},
             {"laguna.vocab_size", 100},
             {"laguna.attention.head_count_kv", 2},
             {"laguna.attention.key_length", 8},
             {"laguna.leading_dense_block_count", 1},
             {"laguna.expert_count", 4},
             {"laguna.expert_used_count", 2},
             {"laguna.expert_feed_forward_length", 16},
             {"laguna.expert_gating_func", gating}};
    lg_gguf_set_str(w, "general.architecture", arch, &err);
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        if (strcmp(u[i].key, drop)) lg_gguf_set_u32(w, u[i].key, u[i].v, &err);
    if (strcmp("laguna.attention.layer_norm_rms_epsilon", drop))
        lg_gguf_set_f32(w, "laguna.attention.layer_norm_rms_epsilon", 1e-6f, &err);
    if (strcmp("laguna.attention.head_count", drop))
        lg_gguf_set_array(w, "laguna.attention.head_count", LG_GGUF_INT32, heads, (size_t)heads_len,
                          &err);
    if (lg_gguf_writer_finish(w, &err)) return LAGUNA_ERR_IO;
    lg_config cfg;
    lg_tensor_source *src = NULL;
    laguna_status st = lg_gguf_open_laguna(p, false, &cfg, &src, &err);
    if (st == LAGUNA_OK)
        lg_config_free(&cfg);
    else
        CHECKF(strstr(err.message, "meta.gguf") != NULL, "message without the file: %s",
               err.message);
    lg_tensor_source_free(src);
    return st;
}

static void test_bad_laguna_metadata(void) {
    CHECK(open_meta("", "laguna", 2, 3) == LAGUNA_OK);
    CHECK(open_meta("", "llama", 2, 3) == LAGUNA_ERR_UNSUPPORTED);
    CHECK(open_meta("laguna.block_count", "laguna", 2, 3) == LAGUNA_ERR_FORMAT);
    CHECK(open_meta("laguna.leading_dense_block_count", "laguna", 2, 3) == LAGUNA_ERR_FORMAT);
    CHECK(open_meta("laguna.attention.layer_norm_rms_epsilon", "laguna", 2, 3) ==
          LAGUNA_ERR_FORMAT);
    CHECK(open_meta("", "laguna", 1, 3) == LAGUNA_ERR_UNSUPPORTED); /* softmax gating */
    CHECK(open_meta("", "laguna", 2, 2) == LAGUNA_ERR_FORMAT); /* head_count of the wrong length */
}

/* A checkpoint in transformers' fused expert layout (gate_up_proj [E, 2I, H],
 * down_proj [E, H, I], mlp.gate.e_score_correction_bias) quantises to the same
 * GGUF tensors: read back under per-expert names they equal the fixture's. */
static void test_fused_expert_layout(void) {
    const char *fx = "tests/fixtures/tiny-xs";
    laguna_error err = {0};
    lg_tensor_source *ref = NULL;
    lg_config cfg;
    if (parse_fixture_config(fx, &cfg) ||
        lg_tensor_source_open_safetensors_dir(fx, LG_LOAD_MMAP, &ref, &err)) {
        CHECKF(0, "%s", err.message);
        lg_tensor_source_free(ref);
        return;
    }
    char *fdir = tu_temp_dir();
    const int E = cfg.n_experts, I = cfg.moe_intermediate_size, H = cfg.hidden_size;
    size_t n = lg_tensor_source_count(ref), k = 0;
    lg_st_spec *specs = calloc(n, sizeof *specs);
    char(*names)[128] = calloc(n, sizeof *names);
    for (size_t i = 0; i < n;
         i++) { /* every tensor but the per-expert ones, plus two fused per sparse layer */
        const lg_tensor *t = lg_tensor_source_at(ref, i);
        int l, e, used = 0;
        if (sscanf(t->name, "model.layers.%d.mlp.experts.%d.%n", &l, &e, &used) == 2 && used)
            continue;
        if (sscanf(t->name, "model.layers.%d.mlp.experts.e_score_correction_bias%n", &l, &used) ==
                1 &&
            used) {
            snprintf(names[k], 128, "model.layers.%d.mlp.gate.e_score_correction_bias", l);
        } else {
            snprintf(names[k], 128, "%s", t->name);
        }
        specs[k] = (lg_st_spec){
            names[k], t->dtype, t->n_dims, {t->shape[0], t->shape[1], t->shape[2], t->shape[3]}};
        k++;
    }
    size_t n_plain = k;
    for (int l = 0; l < cfg.n_layers; l++) {
        if (cfg.mlp_kind[l] != LG_MLP_SPARSE) continue;
        snprintf(names[k], 128, "model.layers.%d.mlp.experts.gate_up_proj", l);
        specs[k++] = (lg_st_spec){names[k - 1], LG_DTYPE_F32, 3, {E, 2 * I, H}};
        snprintf(names[k], 128, "model.layers.%d.mlp.experts.down_proj", l);
        specs[k++] = (lg_st_spec){names[k - 1], LG_DTYPE_F32, 3, {E, H, I}};
    }
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", fdir);
    lg_st_writer *sw = NULL;
    CHECKF(lg_st_writer_open(path, specs, k, &sw, &err) == 0, "%s", err.message);
    for (size_t i = 0; sw && i < k; i++) {
        if (i < n_plain) {
            const lg_tensor *t = NULL;
            for (size_t j = 0; j < n && !t; j++) { /* the source of spec i, in the same order */
                const lg_tensor *c = lg_tensor_source_at(ref, j);
                int l, used = 0;
                if (!strcmp(c->name, names[i]) ||
                    (sscanf(names[i], "model.layers.%d.mlp.gate.e_score_correction_bias%n", &l,
                            &used) == 1 &&
                     used && strstr(c->name, "e_score_correction_bias") && atoi(c->name + 13) == l))
                    t = c;
            }
            lg_st_writer_write(sw, t->data, t->n_bytes, &err);
            continue;
        }
        int l = atoi(names[i] + 13);
        bool gate_up = strstr(names[i], "gate_up") != NULL;
        for (int e = 0; e < E; e++) {
            const char *projs[2] = {gate_up ? "gate_proj" : "down_proj", "up_proj"};
            for (int pj = 0; pj < (gate_up ? 2 : 1); pj++) {
                char name[128];
                snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.%s.weight", l, e,
                         projs[pj]);
                const lg_tensor *t = lg_tensor_source_find(ref, name);
                CHECK(t && t->dtype == LG_DTYPE_F32);
                if (t) lg_st_writer_write(sw, t->data, t->n_bytes, &err);
            }
        }
    }
    if (sw) CHECKF(lg_st_writer_finish(sw, &err) == 0, "%s", err.message);
    CHECK(tu_copy_file("tests/fixtures/tiny-xs/config.json", fdir, "config.json") == 0);
    char gguf[600];
    snprintf(gguf, sizeof gguf, "%s/fused.gguf", fdir);
    CHECKF(quantize(fdir, gguf, LG_FTYPE_F32, &err) == 0, "%s", err.message);
    compare_sources(fx, gguf, 0.0);
    free(specs);
    free(names);
    lg_config_free(&cfg);
    lg_tensor_source_free(ref);
    tu_remove_dir(fdir);
}

static void test_quantize_failures(void) {
    laguna_error err = {0};
    const char *dst = path_in("fail.gguf");
    CHECK(quantize("tests/fixtures/no-such-model", dst, LG_FTYPE_Q8_0, &err) != LAGUNA_OK);
    CHECKF(strstr(err.message, "no-such-model") != NULL, "%s", err.message);
    CHECK(!file_exists(dst) && !file_exists(path_in("fail.gguf.tmp")));
    char bad_dst[600];
    snprintf(bad_dst, sizeof bad_dst, "%s/missing/dir/x.gguf", dir);
    CHECK(quantize(fixtures[0], bad_dst, LG_FTYPE_Q8_0, &err) == LAGUNA_ERR_IO);
    CHECK(quantize("tests/fixtures/tiny-xs/config.json.gguf", dst, LG_FTYPE_Q8_0, &err) !=
          LAGUNA_OK);
    CHECK(!file_exists(dst) && !file_exists(path_in("fail.gguf.tmp")));
}

int main(void) {
    dir = tu_temp_dir();
    if (!dir) return 1;
    RUN(test_round_trip);
    RUN(test_hand_built_valid);
    RUN(test_bad_header);
    RUN(test_absurd_counts);
    RUN(test_bad_tensors);
    RUN(test_bad_metadata);
    RUN(test_truncations);
    RUN(test_random_corruption);
    RUN(test_writer_unwritable);
    RUN(test_writer_short_and_overlong);
    RUN(test_writer_disk_full);
    RUN(test_names);
    RUN(test_type_mix);
    RUN(test_config_round_trip);
    RUN(test_tensors_bf16_exact);
    RUN(test_tensors_quantized);
    RUN(test_tokenizer_keys);
    RUN(test_tokenizer_load_is_linear);
    RUN(test_tokenizer_invalid_utf8);
    RUN(test_requantize_gguf);
    RUN(test_fused_expert_layout);
    RUN(test_bad_laguna_metadata);
    RUN(test_quantize_failures);
    tu_remove_dir(dir);
    return test_summary();
}
