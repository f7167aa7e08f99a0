/* GGUF files (llama.cpp's single-file model format): reading and validating.
 *
 * Layout (little-endian): "GGUF", u32 version (2 or 3 here), u64 tensor
 * count, u64 metadata count, the metadata key/values (string key, u32 value
 * type, value; arrays are u32 element type + u64 count + elements), the tensor
 * infos (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml
 * type, u64 offset into the data section), padding to general.alignment
 * (default 32), then the data section. Strings are u64 length + bytes, not
 * NUL-terminated.
 *
 * lg_gguf_open maps the file read-only and checks everything before it
 * returns: header, every key/value, tensor names, shapes and types, and that
 * each tensor starts where ggml expects it (the previous one's end, padded to
 * the alignment) and ends inside the file. Counts in the file never size an
 * allocation before they are checked against the bytes that remain. Values
 * and tensor data are borrowed from the mapping. */
#ifndef LAGUNA_GGUF_GGUF_H
#define LAGUNA_GGUF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "io/file_util.h"
#include "laguna.h"

#define LG_GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define LG_GGUF_VERSION 3
#define LG_GGUF_DEFAULT_ALIGNMENT 32
#define LG_GGUF_MAX_DIMS 4

/* Metadata value types, numbered as in the GGUF specification. */
typedef enum {
    LG_GGUF_UINT8 = 0,
    LG_GGUF_INT8 = 1,
    LG_GGUF_UINT16 = 2,
    LG_GGUF_INT16 = 3,
    LG_GGUF_UINT32 = 4,
    LG_GGUF_INT32 = 5,
    LG_GGUF_FLOAT32 = 6,
    LG_GGUF_BOOL = 7,
    LG_GGUF_STRING = 8,
    LG_GGUF_ARRAY = 9,
    LG_GGUF_UINT64 = 10,
    LG_GGUF_INT64 = 11,
    LG_GGUF_FLOAT64 = 12,
    LG_GGUF_TYPE_COUNT
} lg_gguf_type;

/* A string inside the mapping (not NUL-terminated). */
typedef struct {
    const char *ptr;
    uint64_t len;
} lg_gguf_str;

typedef struct {
    char *key;               /* NUL-terminated copy */
    lg_gguf_type type;       /* LG_GGUF_ARRAY for arrays */
    lg_gguf_type elem_type;  /* arrays: the element type; scalars: == type */
    uint64_t count;          /* arrays: number of elements; scalars: 1 */
    const uint8_t *data;     /* the scalar, or the first element, in the mapping */
    const uint64_t *str_off; /* arrays of strings: each element's offset from data */
} lg_gguf_kv;

typedef struct {
    char *name; /* NUL-terminated copy */
    int n_dims;
    int64_t ne[LG_GGUF_MAX_DIMS]; /* ggml order: ne[0] is the row length; unused = 1 */
    uint32_t ggml_type;
    lg_dtype dtype;
    uint64_t offset; /* from the start of the data section */
    size_t n_bytes;
    const void *data; /* in the mapping */
} lg_gguf_tensor_info;

typedef struct lg_gguf_file lg_gguf_file;

/* `place` as for lg_map_file: mapped (LG_PLACE_MAP, or false), or read into
 * (huge-page) anonymous memory instead of the page cache. */
laguna_status lg_gguf_open(const char *path, lg_placement place, lg_gguf_file **out, laguna_error *err);
/* Unmaps the file unless the mapping was taken with lg_gguf_take_mapping. */
void lg_gguf_close(lg_gguf_file *f);

const char *lg_gguf_path(const lg_gguf_file *f);
uint32_t lg_gguf_version(const lg_gguf_file *f);
size_t lg_gguf_alignment(const lg_gguf_file *f);

size_t lg_gguf_kv_count(const lg_gguf_file *f);
const lg_gguf_kv *lg_gguf_kv_at(const lg_gguf_file *f, size_t i);
const lg_gguf_kv *lg_gguf_find_kv(const lg_gguf_file *f, const char *key);

size_t lg_gguf_tensor_count(const lg_gguf_file *f);
const lg_gguf_tensor_info *lg_gguf_tensor_at(const lg_gguf_file *f, size_t i);
const lg_gguf_tensor_info *lg_gguf_find_tensor(const lg_gguf_file *f, const char *name);

/* Typed reads of a key. A missing key or a value of the wrong kind fails
 * with a message naming the file and key. Integers of any width convert when
 * the value fits; floats accept FLOAT32 or FLOAT64. */
laguna_status lg_gguf_get_u32(const lg_gguf_file *f, const char *key, uint32_t *out,
                              laguna_error *err);
laguna_status lg_gguf_get_i64(const lg_gguf_file *f, const char *key, int64_t *out,
                              laguna_error *err);
laguna_status lg_gguf_get_f64(const lg_gguf_file *f, const char *key, double *out,
                              laguna_error *err);
laguna_status lg_gguf_get_bool(const lg_gguf_file *f, const char *key, bool *out,
                               laguna_error *err);
laguna_status lg_gguf_get_str(const lg_gguf_file *f, const char *key, lg_gguf_str *out,
                              laguna_error *err);

/* Element i of an array (i < count, type checked by the caller through
 * elem_type). Integer and bool elements read as int64, floats as double. */
bool lg_gguf_type_is_int(lg_gguf_type t);
/* Bytes of one value of a fixed-size type; 0 for strings and arrays. */
size_t lg_gguf_value_size(lg_gguf_type t);
int64_t lg_gguf_arr_int(const lg_gguf_kv *kv, uint64_t i);
double lg_gguf_arr_f64(const lg_gguf_kv *kv, uint64_t i);
lg_gguf_str lg_gguf_arr_str(const lg_gguf_kv *kv, uint64_t i);
/* A scalar integer / float / bool key's value (type checked by the caller). */
int64_t lg_gguf_kv_int(const lg_gguf_kv *kv);
double lg_gguf_kv_f64(const lg_gguf_kv *kv);

/* Hands the file mapping to the caller (who munmaps it); lg_gguf_close then
 * leaves it mapped. Tensor data pointers stay valid while it is mapped. */
void *lg_gguf_take_mapping(lg_gguf_file *f, size_t *len);
/* Whether the file was read into anonymous memory (copy) rather than mapped. */
bool lg_gguf_is_copy(const lg_gguf_file *f);

/* ggml tensor type ids <-> engine dtypes (gguf_types.c). */
#define LG_GGML_TYPE_F32 0
#define LG_GGML_TYPE_F16 1
#define LG_GGML_TYPE_Q4_0 2
#define LG_GGML_TYPE_Q5_0 6
#define LG_GGML_TYPE_Q5_1 7
#define LG_GGML_TYPE_Q8_0 8
#define LG_GGML_TYPE_Q4_K 12
#define LG_GGML_TYPE_Q5_K 13
#define LG_GGML_TYPE_Q6_K 14
#define LG_GGML_TYPE_I32 26
#define LG_GGML_TYPE_BF16 30

/* The engine dtype of a ggml type id; false when the engine cannot read it. */
bool lg_gguf_dtype_from_ggml(uint32_t ggml_type, lg_dtype *out);
/* The ggml type id of an engine dtype; -1 when GGUF has none. */
int lg_gguf_ggml_from_dtype(lg_dtype dtype);
/* ggml's name of a type id ("Q4_K"), or NULL for an id ggml does not define. */
const char *lg_gguf_ggml_type_name(uint32_t ggml_type);
const char *lg_gguf_value_type_name(lg_gguf_type t);

#endif
