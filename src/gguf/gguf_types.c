/* ggml tensor type ids and GGUF value type names: the mapping to engine
 * dtypes and the names used in messages (ids as in ggml.h's enum ggml_type). */
#include "gguf/gguf.h"

#include <stddef.h>

static const struct {
    uint32_t id;
    const char *name;
    int dtype; /* lg_dtype, or -1 when the engine cannot read it */
} ggml_types[] = {
    {0, "F32", LG_DTYPE_F32},
    {1, "F16", LG_DTYPE_F16},
    {2, "Q4_0", LG_DTYPE_Q4_0},
    {3, "Q4_1", -1},
    {6, "Q5_0", LG_DTYPE_Q5_0},
    {7, "Q5_1", LG_DTYPE_Q5_1},
    {8, "Q8_0", LG_DTYPE_Q8_0},
    {9, "Q8_1", -1},
    {10, "Q2_K", -1},
    {11, "Q3_K", -1},
    {12, "Q4_K", LG_DTYPE_Q4_K},
    {13, "Q5_K", LG_DTYPE_Q5_K},
    {14, "Q6_K", LG_DTYPE_Q6_K},
    {15, "Q8_K", -1},
    {16, "IQ2_XXS", -1},
    {17, "IQ2_XS", -1},
    {18, "IQ3_XXS", -1},
    {19, "IQ1_S", -1},
    {20, "IQ4_NL", -1},
    {21, "IQ3_S", -1},
    {22, "IQ2_S", -1},
    {23, "IQ4_XS", -1},
    {24, "I8", -1},
    {25, "I16", -1},
    {26, "I32", LG_DTYPE_I32},
    {27, "I64", -1},
    {28, "F64", -1},
    {29, "IQ1_M", -1},
    {30, "BF16", LG_DTYPE_BF16},
    {34, "TQ1_0", -1},
    {35, "TQ2_0", -1},
    {39, "MXFP4", -1},
};

bool lg_gguf_dtype_from_ggml(uint32_t ggml_type, lg_dtype *out) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].id == ggml_type && ggml_types[i].dtype >= 0) {
            *out = (lg_dtype)ggml_types[i].dtype;
            return true;
        }
    return false;
}

int lg_gguf_ggml_from_dtype(lg_dtype dtype) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].dtype == (int)dtype) return (int)ggml_types[i].id;
    return -1;
}

const char *lg_gguf_ggml_type_name(uint32_t ggml_type) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].id == ggml_type) return ggml_types[i].name;
    return NULL;
}

const char *lg_gguf_value_type_name(lg_gguf_type t) {
    static const char *const names[LG_GGUF_TYPE_COUNT] = {
        "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
        "bool",  "string", "array",  "uint64", "int64",  "float64"};
    return (unsigned)t < LG_GGUF_TYPE_COUNT ? names[t] : "?";
}
