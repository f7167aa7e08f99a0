/* Bad checkpoints: every malformed input must give a clear error naming the
 * file, tensor or field, and never a crash or an unbounded allocation. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "laguna.h"
#include "testutil.h"

static const char *fixture = "tests/fixtures/tiny-m";

/* Copies tiny-m into a fresh folder; the test then breaks one thing. */
static char *good_copy(void) {
    char *d = tu_temp_dir();
    const char *files[] = {"config.json", "model.safetensors", "generation_config.json"};
    for (int i = 0; d && i < 3; i++) {
        char from[512];
        snprintf(from, sizeof from, "%s/%s", fixture, files[i]);
        CHECK(tu_copy_file(from, d, files[i]) == 0);
    }
    return d;
}

/* Opens dir and expects failure with `code` and a message containing `needle`. */
static void expect_error(const char *dir, laguna_status code, const char *needle) {
    laguna_error err = {0};
    laguna_model *m = NULL;
    laguna_status st = laguna_model_open(dir, &(laguna_model_options){.n_threads = 1}, &m, &err);
    CHECKF(st == code, "status %d (%s), wanted %d: %s", st, laguna_status_name(st), code, err.message);
    CHECKF(m == NULL, "a model was returned on failure");
    CHECKF(strstr(err.message, needle) != NULL, "message '%s' lacks '%s'", err.message, needle);
    CHECKF(strchr(err.message, '\n') == NULL, "message has a newline: %s", err.message);
    laguna_model_free(m);
}

/* A safetensors file from a header text and n data bytes of 0x3f. */
static void write_st(const char *dir, const char *name, const char *header, size_t data_bytes) {
    size_t h = strlen(header);
    unsigned char *buf = malloc(8 + h + data_bytes + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, 0x3f, data_bytes);
    CHECK(tu_write_file(dir, name, buf, 8 + h + data_bytes) == 0);
    free(buf);
}

/* Rewrites tiny-m's config.json with one substitution applied. */
static void patch_config(const char *dir, const char *from, const char *to) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", fixture);
    size_t n;
    char *text = tu_read_file(path, &n);
    char *at = text ? strstr(text, from) : NULL;
    CHECKF(at != NULL, "config lacks '%s'", from);
    if (!at) {
        free(text);
        return;
    }
    size_t out_n = n - strlen(from) + strlen(to);
    char *out = malloc(out_n + 1);
    size_t pre = (size_t)(at - text);
    memcpy(out, text, pre);
    memcpy(out + pre, to, strlen(to));
    strcpy(out + pre + strlen(to), at + strlen(from));
    CHECK(tu_write_file(dir, "config.json", out, out_n) == 0);
    free(out);
    free(text);
}

static void test_missing_folder_and_files(void) {
    expect_error("/nonexistent/laguna", LAGUNA_ERR_IO, "config.json");
    char *d = good_copy();
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    remove(path);
    expect_error(d, LAGUNA_ERR_IO, "model.safetensors");
    tu_remove_dir(d);
}

static void test_truncated_safetensors(void) {
    char *d = good_copy();
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fixture, "model.safetensors");
    size_t n;
    char *data = tu_read_file(path, &n);
    CHECK(tu_write_file(d, "model.safetensors", data, n - 1000) == 0); /* data cut short */
    expect_error(d, LAGUNA_ERR_FORMAT, "past the end");
    CHECK(tu_write_file(d, "model.safetensors", data, 100) == 0); /* header cut short */
    expect_error(d, LAGUNA_ERR_FORMAT, "runs past the end");
    CHECK(tu_write_file(d, "model.safetensors", data, 5) == 0); /* not even a length */
    expect_error(d, LAGUNA_ERR_FORMAT, "too short");
    free(data);
    tu_remove_dir(d);
}

static void test_bad_headers(void) {
    char *d = good_copy();
    unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    CHECK(tu_write_file(d, "model.safetensors", huge, sizeof huge) == 0);
    expect_error(d, LAGUNA_ERR_FORMAT, "header length");
    write_st(d, "model.safetensors", "{\"a\": [1, 2", 0);
    expect_error(d, LAGUNA_ERR_FORMAT, "not valid JSON");
    write_st(d, "model.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,64]}}", 16);
    expect_error(d, LAGUNA_ERR_FORMAT, "'w'");
    write_st(d, "model.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}", 16);
    expect_error(d, LAGUNA_ERR_FORMAT, "need 4 elements of 4 bytes");
    /* 2^62 elements of 4 bytes: the message used to say "needs 0" (the product wrapped) */
    write_st(d, "model.safetensors",
             "{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,16]}}", 16);
    expect_error(d, LAGUNA_ERR_FORMAT, "need 4611686018427387904 elements of 4 bytes");
    /* fractional byte offsets were truncated and accepted */
    write_st(d, "model.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16.5]}}", 17);
    expect_error(d, LAGUNA_ERR_FORMAT, "bad data_offsets");
    write_st(d, "model.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0.5,16]}}", 16);
    expect_error(d, LAGUNA_ERR_FORMAT, "bad data_offsets");
    write_st(d, "model.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
             24);
    expect_error(d, LAGUNA_ERR_FORMAT, "overlap");
    write_st(d, "model.safetensors", "{\"w\":{\"dtype\":\"Q9\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
    expect_error(d, LAGUNA_ERR_UNSUPPORTED, "Q9");
    write_st(d, "model.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16);
    expect_error(d, LAGUNA_ERR_FORMAT, "shape");
    write_st(d, "model.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 16);
    expect_error(d, LAGUNA_ERR_FORMAT, "data_offsets");
    write_st(d, "model.safetensors",
             "{\"w\":{\"dtype\":\"F32\",\"shape\":[4000000000,4000000000,4000000000],\"data_offsets\":[0,16]}}", 16);
    expect_error(d, LAGUNA_ERR_FORMAT, "'w'");
    /* a well-formed file without the model's tensors */
    write_st(d, "model.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16);
    expect_error(d, LAGUNA_ERR_SHAPE, "model.embed_tokens.weight");
    tu_remove_dir(d);
}

static void test_sharded_index_problems(void) {
    char *d = tu_temp_dir();
    const char *files[] = {"config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                           "model.safetensors.index.json"};
    for (int i = 0; i < 4; i++) {
        char from[512];
        snprintf(from, sizeof from, "tests/fixtures/tiny-xs/bf16/%s", files[i]);
        CHECK(tu_copy_file(from, d, files[i]) == 0);
    }
    expect_error(d, LAGUNA_ERR_IO, "model-00003-of-00003.safetensors");
    CHECK(tu_write_file(d, "model.safetensors.index.json", "{\"weight_map\": 3}", 17) == 0);
    expect_error(d, LAGUNA_ERR_FORMAT, "weight_map");
    const char *escape = "{\"weight_map\": {\"x\": \"../etc/passwd\"}}";
    CHECK(tu_write_file(d, "model.safetensors.index.json", escape, strlen(escape)) == 0);
    expect_error(d, LAGUNA_ERR_FORMAT, "file name");
    tu_remove_dir(d);
}

static void test_misshaped_and_missing_tensors(void) {
    /* tiny-m with a config that asks for more KV heads than the tensors have */
    char *d = good_copy();
    patch_config(d, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4");
    expect_error(d, LAGUNA_ERR_SHAPE, "k_proj");
    patch_config(d, "\"num_hidden_layers\": 4", "\"num_hidden_layers\": 5");
    expect_error(d, LAGUNA_ERR_FORMAT, "layer_types"); /* per-layer lists no longer match */
    patch_config(d, "\"vocab_size\": 1024", "\"vocab_size\": 1000");
    expect_error(d, LAGUNA_ERR_SHAPE, "embed_tokens");
    patch_config(d, "\"gating\": \"per-element\"", "\"gating\": \"per-head\"");
    expect_error(d, LAGUNA_ERR_SHAPE, "g_proj");
    tu_remove_dir(d);
}

static void test_bad_configs(void) {
    char *d = good_copy();
    CHECK(tu_write_file(d, "config.json", "{\"vocab_size\": 10,", 18) == 0);
    expect_error(d, LAGUNA_ERR_FORMAT, "invalid JSON");
    CHECK(tu_write_file(d, "config.json", "[1,2]", 5) == 0);
    expect_error(d, LAGUNA_ERR_FORMAT, "not a JSON object");
    /* each patch starts again from tiny-m's config */
    patch_config(d, "\"num_attention_heads_per_layer\": [\n    8,", "\"num_attention_heads_per_layer\": [\n    7,");
    expect_error(d, LAGUNA_ERR_FORMAT, "not a multiple");
    patch_config(d, "\"hidden_size\": 64", "\"hidden_size\": -64");
    expect_error(d, LAGUNA_ERR_FORMAT, "hidden_size");
    patch_config(d, "\"hidden_size\": 64", "\"hidden_size\": 99999999999");
    expect_error(d, LAGUNA_ERR_FORMAT, "hidden_size");
    patch_config(d, "\"vocab_size\": 1024", "\"vocab_size\": \"many\"");
    expect_error(d, LAGUNA_ERR_FORMAT, "vocab_size");
    patch_config(d, "\"num_experts_per_tok\": 8", "\"num_experts_per_tok\": 64");
    expect_error(d, LAGUNA_ERR_FORMAT, "num_experts_per_tok");
    patch_config(d, "\"rope_type\": \"yarn\"", "\"rope_type\": \"longrope\"");
    expect_error(d, LAGUNA_ERR_UNSUPPORTED, "longrope");
    patch_config(d, "\"eos_token_id\": 2", "\"eos_token_id\": 5000");
    expect_error(d, LAGUNA_ERR_FORMAT, "eos_token_id");
    /* out of int32 range: checked before the cast (was UB, then a garbage id) */
    patch_config(d, "\"eos_token_id\": 2", "\"eos_token_id\": 1e20");
    expect_error(d, LAGUNA_ERR_FORMAT, "eos_token_id 100000000000000000000 is not a token id");
    patch_config(d, "\"eos_token_id\": 2", "\"eos_token_id\": [2, -1e20]");
    expect_error(d, LAGUNA_ERR_FORMAT, "eos_token_id -100000000000000000000 is not a token id");
    patch_config(d, "\"eos_token_id\": 2", "\"eos_token_id\": 2.5");
    expect_error(d, LAGUNA_ERR_FORMAT, "eos_token_id entries must be integers");
    patch_config(d, "\"vocab_size\": 1024", "\"vocab_size\": 1024, \"vocab_size\": 1024");
    /* duplicate keys: cJSON takes the first; the model still loads */
    laguna_error err = {0};
    laguna_model *m = NULL;
    CHECKF(laguna_model_open(d, NULL, &m, &err) == LAGUNA_OK, "%s", err.message);
    laguna_model_free(m);
    tu_remove_dir(d);
}

int main(void) {
    RUN(test_missing_folder_and_files);
    RUN(test_truncated_safetensors);
    RUN(test_bad_headers);
    RUN(test_sharded_index_problems);
    RUN(test_misshaped_and_missing_tensors);
    RUN(test_bad_configs);
    return test_summary();
}
