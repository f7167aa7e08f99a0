/* The tokenizer against Hugging Face references: the fixture's cases.json
 * (made with transformers / tokenizers 0.23) for the Laguna-like tokenizer
 * and the checkpoints' copies, plus small hand-made tokenizer.json files
 * whose expected ids and text were derived by hand from tokenizers'
 * semantics (and checked against tokenizers 0.23 with
 * tools/tokenizer_crosscheck.py) or, for the later ones, taken from
 * tokenizers 0.23.2 itself. Also: invalid UTF-8, a 10 MB input, empty
 * input, load errors, the streaming detokenizer and the CLI commands. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "laguna_tokenizer.h"
#include "testutil.h"
#include "tokenizer/regex.h"

#define FIXTURE_JSON "tests/fixtures/tokenizer/laguna-like/tokenizer.json"
#define FIXTURE_CASES "tests/fixtures/tokenizer/laguna-like/cases.json"

static cJSON *load_cases(void) {
    size_t n;
    char *text = tu_read_file(FIXTURE_CASES, &n);
    cJSON *root = text ? cJSON_ParseWithLength(text, n) : NULL;
    free(text);
    return root;
}

/* Decodes ids one at a time through a detokenizer; the joined pieces. */
static char *stream_decode(const laguna_tokenizer *tok, const int32_t *ids, size_t n, bool skip,
                           size_t *len) {
    laguna_detokenizer *d;
    if (laguna_detokenizer_new(tok, skip, &d, NULL)) return NULL;
    size_t cap = 64, k = 0;
    char *out = malloc(cap);
    bool ok = out != NULL;
    for (size_t i = 0; ok && i <= n; i++) {
        const char *piece;
        size_t m;
        ok = (i < n ? laguna_detokenizer_push(d, ids[i], &piece, &m, NULL)
                    : laguna_detokenizer_flush(d, &piece, &m, NULL)) == LAGUNA_OK;
        if (!ok) break;
        if (k + m + 1 > cap) {
            while (k + m + 1 > cap)
                cap *= 2;
            char *bigger = realloc(out, cap);
            if (!(ok = bigger != NULL)) break;
            out = bigger;
        }
        memcpy(out + k, piece, m);
        k += m;
    }
    laguna_detokenizer_free(d);
    if (!ok) {
        free(out);
        return NULL;
    }
    out[k] = 0;
    *len = k;
    return out;
}

static bool same_text(const char *got, size_t got_len, const char *want) {
    return got && got_len == strlen(want) && memcmp(got, want, got_len) == 0;
}

/* Every fixture case: ids, both decodings, and the stream equal to both. */
static void check_fixture_cases(const char *path) {
    laguna_tokenizer *tok = NULL;
    laguna_error err = {0};
    CHECKF(laguna_tokenizer_load(path, &tok, &err) == LAGUNA_OK, "%s", err.message);
    cJSON *root = load_cases(), *c;
    CHECK(root != NULL);
    if (!tok || !root) goto done;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        int32_t *ids;
        size_t n;
        n_cases++;
        if (laguna_tokenizer_encode(tok, text, strlen(text), false, &ids, &n, &err)) {
            CHECKF(0, "encode '%.40s': %s", text, err.message);
            continue;
        }
        bool same = n == (size_t)cJSON_GetArraySize(want);
        for (size_t i = 0; same && i < n; i++)
            same = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
        CHECKF(same, "%s: ids of '%.40s' differ (%zu ids, want %d)", path, text, n,
               cJSON_GetArraySize(want));
        const char *keys[2] = {"decoded", "decoded_skip_special"};
        for (int skip = 0; skip < 2; skip++) {
            const char *expect = cJSON_GetObjectItem(c, keys[skip])->valuestring;
            char *out;
            size_t len;
            CHECK(laguna_tokenizer_decode(tok, ids, n, skip, &out, &len, NULL) == LAGUNA_OK);
            CHECKF(same_text(out, len, expect), "%s of '%.40s' is '%.60s'", keys[skip], text, out);
            laguna_tokenizer_free_text(out);
            char *streamed = stream_decode(tok, ids, n, skip, &len);
            CHECKF(same_text(streamed, len, expect), "streamed %s of '%.40s' is '%.60s'",
                   keys[skip], text, streamed ? streamed : "(error)");
            free(streamed);
        }
        laguna_tokenizer_free_ids(ids);
    }
    CHECK(n_cases >= 30);
done:
    cJSON_Delete(root);
    laguna_tokenizer_free(tok);
}

static void test_fixture_cases(void) {
    check_fixture_cases(FIXTURE_JSON);
}

/* The checkpoints ship their own tokenizer.json; a folder path finds it. */
static void test_checkpoint_tokenizers(void) {
    check_fixture_cases("tests/fixtures/tiny-xs");
    check_fixture_cases("tests/fixtures/tiny-m/tokenizer.json");
}

static laguna_tokenizer *load_fixture(void) {
    laguna_tokenizer *tok = NULL;
    laguna_error err = {0};
    CHECKF(laguna_tokenizer_load(FIXTURE_JSON, &tok, &err) == LAGUNA_OK, "%s", err.message);
    return tok;
}

static bool encode_equal(const laguna_tokenizer *tok, const char *a, size_t na, const char *b,
                         size_t nb) {
    int32_t *x = NULL, *y = NULL;
    size_t n, m;
    bool ok = laguna_tokenizer_encode(tok, a, na, false, &x, &n, NULL) == LAGUNA_OK &&
              laguna_tokenizer_encode(tok, b, nb, false, &y, &m, NULL) == LAGUNA_OK && n == m &&
              memcmp(x, y, n * sizeof *x) == 0;
    laguna_tokenizer_free_ids(x);
    laguna_tokenizer_free_ids(y);
    return ok;
}

/* Invalid UTF-8 reads as Python's bytes.decode(errors="replace"): each
 * maximal invalid subpart becomes one U+FFFD. */
static void test_invalid_utf8(void) {
    laguna_tokenizer *tok = load_fixture();
    if (!tok) return;
    static const struct {
        const char *bad, *replaced;
    } cases[] = {
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b"},
        {"x\xe2\x82", "x\xef\xbf\xbd"}, /* cut-off euro sign: one U+FFFD */
        {"\xed\xa0\x80!", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!"}, /* surrogate: three */
        {"\xf0\x9f\x98 ok", "\xef\xbf\xbd ok"}, /* emoji missing its last byte */
        {"\xc0\xaf<s>\x80",
         "\xef\xbf\xbd\xef\xbf\xbd<s>\xef\xbf\xbd"}, /* overlong, stray continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECKF(encode_equal(tok, cases[i].bad, strlen(cases[i].bad), cases[i].replaced,
                            strlen(cases[i].replaced)),
               "case %zu", i);
    /* NUL is a valid character and survives the round trip */
    int32_t *ids;
    size_t n, len;
    char *out;
    CHECK(laguna_tokenizer_encode(tok, "a\0b", 3, false, &ids, &n, NULL) == LAGUNA_OK);
    CHECK(laguna_tokenizer_decode(tok, ids, n, false, &out, &len, NULL) == LAGUNA_OK);
    CHECK(len == 3 && memcmp(out, "a\0b", 3) == 0);
    laguna_tokenizer_free_text(out);
    laguna_tokenizer_free_ids(ids);
    laguna_tokenizer_free(tok);
}

static void test_empty_input(void) {
    laguna_tokenizer *tok = load_fixture();
    if (!tok) return;
    int32_t *ids = NULL;
    size_t n = 99, len = 99;
    char *out = NULL;
    CHECK(laguna_tokenizer_encode(tok, "", 0, true, &ids, &n, NULL) == LAGUNA_OK && n == 0 &&
          ids != NULL);
    CHECK(laguna_tokenizer_decode(tok, ids, 0, false, &out, &len, NULL) == LAGUNA_OK && len == 0 &&
          out && !*out);
    laguna_tokenizer_free_ids(ids);
    laguna_tokenizer_free_text(out);
    laguna_error err = {0};
    CHECK(laguna_tokenizer_encode(tok, NULL, 5, false, &ids, &n, &err) == LAGUNA_ERR_ARGUMENT);
    laguna_tokenizer_free(tok);
}

/* 10 MB of mixed text: it must go through quickly (word cache, bounded
 * memory) and decode back to itself. */
static void test_large_input(void) {
    laguna_tokenizer *tok = load_fixture();
    if (!tok) return;
    size_t cap = 10u << 20, len = 0;
    char *text = malloc(cap + 256);
    for (unsigned i = 0; len < cap; i++)
        len += (size_t)snprintf(text + len, 256,
                                "line %u: The café's naïve übermensch said \"%u\" — 日本語 "
                                "%s\n\tif (x[%u] != y) { return -%u; }\n",
                                i, i * 7919u, i % 3 ? "and" : "or", i % 97, i % 13);
    clock_t t0 = clock();
    int32_t *ids;
    size_t n, out_len;
    char *out;
    CHECK(laguna_tokenizer_encode(tok, text, len, false, &ids, &n, NULL) == LAGUNA_OK);
    double seconds = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("  10 MB encoded into %zu ids in %.2f s\n", n, seconds);
    CHECK(n > len / 10 && n < len);
    CHECK(laguna_tokenizer_decode(tok, ids, n, false, &out, &out_len, NULL) == LAGUNA_OK);
    CHECK(out_len == len && memcmp(out, text, len) == 0);
    laguna_tokenizer_free_text(out);
    laguna_tokenizer_free_ids(ids);
    laguna_tokenizer_free(tok);
    free(text);
}

typedef struct {
    const laguna_tokenizer *tok;
    const char *text;
    int32_t *ids;
    size_t n;
} encode_job;

static void *encode_thread(void *arg) {
    encode_job *j = arg;
    for (int r = 0; r < 3; r++) {
        laguna_tokenizer_free_ids(j->ids);
        if (laguna_tokenizer_encode(j->tok, j->text, strlen(j->text), false, &j->ids, &j->n, NULL))
            j->ids = NULL;
    }
    return NULL;
}

/* Several threads encoding with one tokenizer agree (the word cache is
 * shared under a lock). */
static void test_concurrent_encode(void) {
    laguna_tokenizer *tok = load_fixture();
    cJSON *root = load_cases();
    if (!tok || !root) goto done;
    const cJSON *last = NULL, *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) last = c;
    encode_job jobs[4] = {{0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (encode_job){tok, cJSON_GetObjectItem(last, "text")->valuestring, NULL, 0};
        pthread_create(&th[i], NULL, encode_thread, &jobs[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    const cJSON *want = cJSON_GetObjectItem(last, "ids");
    for (int i = 0; i < 4; i++) {
        bool same = jobs[i].ids && jobs[i].n == (size_t)cJSON_GetArraySize(want);
        for (size_t k = 0; same && k < jobs[i].n; k++)
            same = jobs[i].ids[k] == cJSON_GetArrayItem(want, (int)k)->valueint;
        CHECKF(same, "thread %d", i);
        laguna_tokenizer_free_ids(jobs[i].ids);
    }
done:
    cJSON_Delete(root);
    laguna_tokenizer_free(tok);
}

static void test_lookups(void) {
    laguna_tokenizer *tok = load_fixture();
    if (!tok) return;
    size_t len = 0;
    CHECK(laguna_tokenizer_vocab_size(tok) == 1000);
    CHECK(laguna_tokenizer_token_to_id(tok, "</s>", 4) == 2);
    CHECK(laguna_tokenizer_token_to_id(tok, "<think>", 7) == 14);
    CHECK(laguna_tokenizer_token_to_id(tok, "Ġ", strlen("Ġ")) == 252);
    CHECK(laguna_tokenizer_token_to_id(tok, "no such token", 13) == -1);
    const char *s = laguna_tokenizer_id_to_token(tok, 24, &len);
    CHECK(s && len == 12 && !strcmp(s, "</assistant>"));
    CHECK(laguna_tokenizer_id_to_token(tok, 1000, NULL) == NULL);
    CHECK(laguna_tokenizer_id_to_token(tok, -1, NULL) == NULL);
    CHECK(laguna_tokenizer_is_special(tok, 2) && laguna_tokenizer_is_special(tok, 14));
    CHECK(!laguna_tokenizer_is_special(tok, 252) && !laguna_tokenizer_is_special(tok, 5000));
    /* unknown ids are skipped, as tokenizers does */
    int32_t ids[] = {71, 99999, -3, 373};
    char *out;
    CHECK(laguna_tokenizer_decode(tok, ids, 4, false, &out, &len, NULL) == LAGUNA_OK);
    CHECK(same_text(out, len, "Hel"));
    laguna_tokenizer_free_text(out);
    laguna_tokenizer_free(tok);
}

/* Byte-level streaming: a character split over tokens comes out whole once
 * complete; a cut-off one becomes U+FFFD at the flush; a stray byte right
 * away. Byte tokens are looked up by their printable stand-ins. */
static void test_stream_bytes(void) {
    laguna_tokenizer *tok = load_fixture();
    if (!tok) return;
    int32_t e2 = laguna_tokenizer_token_to_id(tok, "â", strlen("â"));  /* byte 0xE2 */
    int32_t x82 = laguna_tokenizer_token_to_id(tok, "Ĥ", strlen("Ĥ")); /* byte 0x82 */
    int32_t xac = laguna_tokenizer_token_to_id(tok, "¬", strlen("¬")); /* byte 0xAC */
    int32_t xff = laguna_tokenizer_token_to_id(tok, "ÿ", strlen("ÿ")); /* byte 0xFF */
    CHECK(e2 >= 0 && x82 >= 0 && xac >= 0 && xff >= 0);
    laguna_detokenizer *d;
    CHECK(laguna_detokenizer_new(tok, false, &d, NULL) == LAGUNA_OK);
    const char *p;
    size_t n;
    CHECK(laguna_detokenizer_push(d, e2, &p, &n, NULL) == LAGUNA_OK && n == 0);
    CHECK(laguna_detokenizer_push(d, x82, &p, &n, NULL) == LAGUNA_OK && n == 0);
    CHECK(laguna_detokenizer_push(d, xac, &p, &n, NULL) == LAGUNA_OK && same_text(p, n, "€"));
    CHECK(laguna_detokenizer_push(d, xff, &p, &n, NULL) == LAGUNA_OK &&
          same_text(p, n, "\xef\xbf\xbd"));
    CHECK(laguna_detokenizer_push(d, e2, &p, &n, NULL) == LAGUNA_OK && n == 0);
    CHECK(laguna_detokenizer_flush(d, &p, &n, NULL) == LAGUNA_OK &&
          same_text(p, n, "\xef\xbf\xbd"));
    laguna_detokenizer_free(d);
    int32_t ids[] = {e2, x82, xac, xff, e2};
    char *all;
    CHECK(laguna_tokenizer_decode(tok, ids, 5, false, &all, &n, NULL) == LAGUNA_OK);
    CHECK(same_text(all, n, "€\xef\xbf\xbd\xef\xbf\xbd"));
    laguna_tokenizer_free_text(all);
    laguna_tokenizer_free(tok);
}

/* The GPT-4 style split pattern (and the fixture's single-digit variant) on
 * PCRE2 cut text as Oniguruma does in tokenizers: pieces derived by hand
 * from the alternatives' order. Notes: ",\n\n" keeps its newlines; before
 * " they" a run of two spaces gives one space alone (\s+(?!\S)); U+0085 is
 * whitespace to Oniguruma, so "\u0085\u0085x" splits like two spaces and a
 * letter; ſ case-folds to s, so 'ſ is a contraction. */
static void check_pieces(const char *pattern, const char *text, const char *const *want,
                         size_t n_want) {
    char why[200];
    lg_regex *re = lg_regex_compile(pattern, strlen(pattern), false, why, sizeof why);
    CHECKF(re, "%s", why);
    lg_regex_scratch *scratch = lg_regex_scratch_new();
    lg_matches m = {0};
    CHECK(re && scratch &&
          lg_regex_find_matches(re, scratch, text, strlen(text), &m, NULL) == LAGUNA_OK);
    CHECKF(m.n == n_want, "%zu pieces, want %zu", m.n, n_want);
    for (size_t i = 0; i < m.n && i < n_want; i++) {
        size_t len = m.items[i].end - m.items[i].start;
        CHECKF(len == strlen(want[i]) && !memcmp(text + m.items[i].start, want[i], len),
               "piece %zu is '%.*s', want '%s'", i, (int)len, text + m.items[i].start, want[i]);
    }
    lg_matches_free(&m);
    lg_regex_scratch_free(scratch);
    lg_regex_free(re);
}

static void test_split_patterns(void) {
    static const char gpt4[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
        "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char *const gpt4_pieces[] = {
        "I",    "'M",       " sure",     " it",       "'s",       " ",   "123",
        "45",   " apples",  ",\n\n",     " ",         " they",    "'LL", " ",
        " say", "\xc2\x85", "\xc2\x85x", " \xc5\xbf", "'\xc5\xbf"};
    check_pieces(gpt4,
                 "I'M sure it's 12345 apples,\n\n  they'LL  say\xc2\x85\xc2\x85x \xc5\xbf'\xc5\xbf",
                 gpt4_pieces, sizeof gpt4_pieces / sizeof *gpt4_pieces);
    static const char fixture[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^"
                                  "\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
                                  "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char *const fixture_pieces[] = {"x", "\t\t\n", "y", " ", "1",
                                                 "2", "3",      "4", "5", " \r\n\r\n"};
    check_pieces(fixture, "x\t\t\ny 12345 \r\n\r\n", fixture_pieces,
                 sizeof fixture_pieces / sizeof *fixture_pieces);
}

/* ---- hand-made tokenizer.json files ---------------------------------------
 * Written with single quotes for readability (turned into double quotes
 * before parsing). Expected ids follow from the rules by hand; each case
 * notes the reasoning. */

static laguna_tokenizer *load_snippet(const char *single_quoted, laguna_error *err) {
    char *json = strdup(single_quoted);
    for (char *p = json; *p; p++)
        if (*p == '\'') *p = '"';
    laguna_tokenizer *tok = NULL;
    laguna_tokenizer_load_json(json, strlen(json), "snippet.json", &tok, err);
    free(json);
    return tok;
}

/* Metaspace splits "hello world!" into "▁hello" "▁world!"; ▁hello merges
 * fully (18); "!" is missing and falls back to byte <0x21> (5). é has both
 * byte tokens; ü lacks <0xBC>, so it is <unk>, and fuse_unk joins "üü". The
 * decoder turns byte tokens back into text and ▁ into spaces, dropping the
 * first token's. */
static const char SNIP_METASPACE[] =
    "{'version': '1.0', 'added_tokens': [{'id': 0, 'content': '<unk>', 'special': true}], "
    "'pre_tokenizer': {'type': 'Metaspace', 'replacement': '▁', 'prepend_scheme': 'always', "
    "'split': true}, 'decoder': {'type': 'Sequence', 'decoders': [{'type': 'ByteFallback'}, "
    "  {'type': 'Metaspace', 'replacement': '▁', 'prepend_scheme': 'always'}]}, "
    "'model': {'type': 'BPE', 'unk_token': '<unk>', 'fuse_unk': true, 'byte_fallback': true, "
    " 'vocab': {'<unk>': 0, '<s>': 1, '</s>': 2, '<0xC3>': 3, '<0xA9>': 4, '<0x21>': 5, "
    "'▁': 6, 'h': 7, 'e': 8,   'l': 9, 'o': 10, 'w': 11, 'r': 12, 'd': 13, 'he': 14, "
    "'ll': 15, 'llo': 16, 'hello': 17, '▁hello': 18},  'merges': [['h', 'e'], ['l', 'l'], "
    "['ll', 'o'], ['he', 'llo'], ['▁', 'hello']]}}";

/* A Split pre-tokenizer on "-" with a given behaviour; merges a- -b -- a-b
 * show where the pieces end. No decoder: tokens are joined with spaces. */
#define SPLIT_SNIPPET(pattern, behavior, invert)                                                   \
    "{'version': '1.0', 'pre_tokenizer': {'type': 'Split', 'pattern': " pattern                    \
    ", 'behavior': '" behavior "',"                                                                \
    " 'invert': " invert                                                                           \
    "}, 'model': {'type': 'BPE', 'vocab': {'a': 0, 'b': 1, '-': 2, 'a-': 3, '-b': 4, '--': 5,"     \
    " 'a-b': 6}, 'merges': ['a -', '- b', '- -', 'a- b']}}"

/* NFKC makes fullwidth ＡＢ plain, Lowercase, Replace folds whitespace runs,
 * Strip trims, Prepend adds ^ to a non-empty result. */
static const char SNIP_NORMALIZERS[] =
    "{'version': '1.0', 'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'NFKC'}, "
    "{'type': 'Lowercase'},  {'type': 'Replace', 'pattern': {'Regex': '\\\\s+'}, "
    "'content': ' '}, {'type': 'Strip', 'strip_left': true,  'strip_right': true}, "
    "{'type': 'Prepend', 'prepend': '^'}]}, 'decoder': {'type': 'Fuse'}, "
    "'model': {'type': 'BPE', 'vocab': {'^': 0, 'a': 1, 'b': 2, ' ': 3, 'c': 4}, "
    "'merges': []}}";

/* NFD splits é into e + U+0301, StripAccents drops the mark. */
static const char SNIP_NFD[] =
    "{'version': '1.0', 'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'NFD'}, "
    "{'type': 'StripAccents'}]}, 'model': {'type': 'BPE', 'vocab': {'e': 0, '\xcc\x81': 1, "
    "'x': 2}, 'merges': []}}";

/* <mask> takes the spaces around it (lstrip, rstrip); "cat" only matches as
 * a whole word; "Hi" is normalized, so it matches the lowercased text and
 * decodes as "hi". The template adds <s> ... </s> with special tokens. */
static const char SNIP_TEMPLATE[] =
    "{'version': '1.0', 'added_tokens': [{'id': 0, 'content': '<s>', 'special': true}, "
    " {'id': 1, 'content': '</s>', 'special': true},  {'id': 2, 'content': '<mask>', "
    "'lstrip': true, 'rstrip': true, 'special': true},  {'id': 3, 'content': 'cat', "
    "'single_word': true, 'special': false},  {'id': 4, 'content': 'Hi', 'normalized': true, "
    "'special': false}], 'normalizer': {'type': 'Lowercase'}, "
    "'pre_tokenizer': {'type': 'WhitespaceSplit'}, "
    "'post_processor': {'type': 'TemplateProcessing', "
    "'single': [{'SpecialToken': {'id': '<s>', 'type_id': 0}},   {'Sequence': {'id': 'A', "
    "'type_id': 0}}, {'SpecialToken': {'id': '</s>', 'type_id': 0}}], 'pair': [], "
    " 'special_tokens': {'<s>': {'id': '<s>', 'ids': [0], 'tokens': ['<s>']}, "
    "  '</s>': {'id': '</s>', 'ids': [1], 'tokens': ['</s>']}}}, 'model': {'type': 'BPE', "
    "'vocab': {'<s>': 0, '</s>': 1, '<mask>': 2, 'cat': 3, 'Hi': 4, 'a': 5, 'b': 6, 'c': 7, "
    " 'o': 8, 'n': 9, 't': 10, '.': 11, 'h': 12, 'i': 13}, 'merges': []}}";

/* ## on every character but the first, </w> on the last: "abc" merges to
 * abc</w>, "a" is a</w>, "ab" is a + ##b</w> (no merge for that pair); "," and
 * "x" are not in the vocabulary and there is no unk_token, so they vanish.
 * The BPE decoder turns </w> into spaces (none at the very end). */
static const char SNIP_AFFIXES[] =
    "{'version': '1.0', 'pre_tokenizer': {'type': 'Whitespace'}, "
    "'decoder': {'type': 'BPEDecoder', 'suffix': '</w>'}, 'model': {'type': 'BPE', "
    "'continuing_subword_prefix': '##', 'end_of_word_suffix': '</w>',  'vocab': {'a': 0, "
    "'##b': 1, '##c</w>': 2, 'ab': 3, 'abc</w>': 4, 'a</w>': 5, '##b</w>': 6}, "
    " 'merges': [['a', '##b'], ['ab', '##c</w>']]}}";

/* ignore_merges: a word in the vocabulary is one token whatever the merges
 * say; otherwise merges apply by rank: "b c" (rank 0) before "a b". */
static const char SNIP_IGNORE_MERGES[] =
    "{'version': '1.0', 'pre_tokenizer': {'type': 'WhitespaceSplit'}, "
    "'model': {'type': 'BPE', 'ignore_merges': true, 'vocab': {'a': 0, 'b': 1, 'c': 2, "
    "'ab': 3, 'abc': 4, 'bc': 5},  'merges': ['b c', 'a b']}}";

/* The snippets below (through META_SNIPPET) have expectations taken from
 * tokenizers 0.23.2 (the npm package, through node), not derived by hand.
 *
 * NFC composes e + U+0301 to é (bytes C3 A9 -> "Ã©"); Digits splits digits
 * one by one and ByteLevel, with its own GPT-2 regex and add_prefix_space,
 * gives every piece a leading "Ġ"; the ByteLevel post-processor adds
 * nothing. Added tokens match leftmost-longest: "<a><b><c" before "<a><b>"
 * before "<a>"; a character outside the vocabulary (">", "<", "b") is
 * dropped, as there is no unk_token. */
static const char SNIP_BYTE_LEVEL[] =
    "{'version': '1.0', 'added_tokens': [{'id': 11, 'content': '<a>', 'special': true}, "
    " {'id': 12, 'content': '<a><b>', 'special': false, 'normalized': false}, "
    " {'id': 13, 'content': '<a><b><c', 'special': false, 'normalized': false}], "
    "'normalizer': {'type': 'NFC'}, 'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': "
    " [{'type': 'Digits', 'individual_digits': true}, {'type': 'ByteLevel', "
    "'add_prefix_space': true, 'trim_offsets': true, 'use_regex': true}]}, "
    "'post_processor': {'type': 'ByteLevel', 'add_prefix_space': true, 'trim_offsets': true, "
    "'use_regex': true}, 'decoder': {'type': 'ByteLevel', 'add_prefix_space': true, "
    "'trim_offsets': true, 'use_regex': true}, 'model': {'type': 'BPE', 'vocab': {'Ġ': 0, "
    "'h': 1, 'i': 2, 'Ġh': 3, 'Ġhi': 4, '1': 5, '2': 6, 'Ġ1': 7, 'Ã': 8, '©': 9, 'Ã©': 10}, "
    " 'merges': ['Ġ h', 'Ġh i', 'Ġ 1', 'Ã ©']}}";

/* Llama-style: NFKD turns ﬁ into "fi" and é into e + U+0301, Prepend and
 * Replace make spaces "▁"; U+0301 falls back to bytes <0xCC> <0x81>, "q" is
 * <unk>. The decoder replaces "▁" by " ", joins the bytes (ByteFallback),
 * fuses, and strips one leading space (Strip). */
static const char SNIP_LLAMA[] =
    "{'version': '1.0', 'added_tokens': [{'id': 0, 'content': '<unk>', 'special': true}, "
    "{'id': 1, 'content': '<s>', 'special': true}], 'normalizer': {'type': 'Sequence', "
    "'normalizers': [{'type': 'NFKD'}, {'type': 'Prepend', 'prepend': '▁'}, {'type': 'Replace', "
    "'pattern': {'String': ' '}, 'content': '▁'}]}, 'decoder': {'type': 'Sequence', "
    "'decoders': [{'type': 'Replace', 'pattern': {'String': '▁'}, 'content': ' '}, "
    "{'type': 'ByteFallback'}, {'type': 'Fuse'}, {'type': 'Strip', 'content': ' ', 'start': 1, "
    "'stop': 0}]}, 'model': {'type': 'BPE', 'unk_token': '<unk>', 'byte_fallback': true, "
    "'vocab': {'<unk>': 0, '<s>': 1, '▁': 2, 'f': 3, 'i': 4, '▁f': 5, '▁fi': 6, 'e': 7, "
    "'<0xCC>': 8, '<0x81>': 9, 'x': 10}, 'merges': [['▁', 'f'], ['▁f', 'i']]}}";

/* Metaspace with a given prepend_scheme and split; "first" prepends only at
 * the start of the text (not after an added token). The decoder's Strip
 * drops one trailing "!" of every token. */
#define META_SNIPPET(scheme, split)                                                                \
    "{'version': '1.0', 'added_tokens': [{'id': 0, 'content': '<s>', 'special': true}], "          \
    "'pre_tokenizer': {'type': 'Metaspace', 'replacement': '▁', 'prepend_scheme': '" scheme        \
    "', 'split': " split "}, 'decoder': {'type': 'Sequence', 'decoders': [{'type': 'Metaspace', "  \
    "'replacement': '▁', 'prepend_scheme': '" scheme "', 'split': " split "}, {'type': "           \
    "'Strip', 'content': '!', 'start': 0, 'stop': 1}]}, 'model': {'type': 'BPE', 'vocab': "        \
    "{'<s>': 0, '▁': 1, 'a': 2, 'b': 3, '!': 4, '▁a': 5, 'b!': 6, 'a!': 7}, 'merges': "        \
    "[['▁', 'a'], ['b', '!'], ['a', '!']]}}"

typedef struct {
    const char *json, *text;
    bool add_special;
    int32_t ids[12];
    size_t n_ids;
    const char *decoded;
} snippet_case;

static const snippet_case snippet_cases[] = {
    {SNIP_METASPACE, "hello world!", false, {18, 6, 11, 10, 12, 9, 13, 5}, 8, "hello world!"},
    {SNIP_METASPACE, "é üü", false, {6, 3, 4, 6, 0}, 5, "é <unk>"},
    {SNIP_METASPACE, "", false, {0}, 0, ""},
    {SPLIT_SNIPPET("{'String': '-'}", "Isolated", "false"), "a-b", false, {0, 2, 1}, 3, "a - b"},
    {SPLIT_SNIPPET("{'String': '-'}", "Isolated", "false"),
     "a--b",
     false,
     {0, 2, 2, 1},
     4,
     "a - - b"},
    {SPLIT_SNIPPET("{'String': '-'}", "Removed", "false"), "a-b", false, {0, 1}, 2, "a b"},
    {SPLIT_SNIPPET("{'String': '-'}", "MergedWithPrevious", "false"),
     "a-b",
     false,
     {3, 1},
     2,
     "a- b"},
    {SPLIT_SNIPPET("{'Regex': '-'}", "MergedWithNext", "false"), "a-b", false, {0, 4}, 2, "a -b"},
    {SPLIT_SNIPPET("{'Regex': '-'}", "Contiguous", "false"), "a--b", false, {0, 5, 1}, 3, "a -- b"},
    {SPLIT_SNIPPET("{'String': '-'}", "Removed", "true"), "a-b", false, {2}, 1, "-"},
    {SNIP_NORMALIZERS, "  ＡＢ\t\tC  ", false, {0, 1, 2, 3, 4}, 5, "^ab c"},
    {SNIP_NORMALIZERS, "   ", false, {0}, 0, ""},
    {SNIP_NFD, "éx", false, {0, 2}, 2, "e x"},
    {SNIP_TEMPLATE, "a <mask> b", false, {5, 2, 6}, 3, "a <mask> b"},
    {SNIP_TEMPLATE, "a <mask> b", true, {0, 5, 2, 6, 1}, 5, "<s> a <mask> b </s>"},
    {SNIP_TEMPLATE,
     "cat concat cat.",
     false,
     {3, 7, 8, 9, 7, 5, 10, 3, 11},
     9,
     "cat c o n c a t cat ."},
    {SNIP_TEMPLATE, "HI hi", false, {4, 4}, 2, "hi hi"},
    {SNIP_AFFIXES, "abc a ab, x", false, {4, 5, 0, 6}, 4, "abc a a##b"},
    {SNIP_IGNORE_MERGES, "abc abcabc", false, {4, 0, 5, 0, 5}, 5, "abc a bc a bc"},
    {SNIP_BYTE_LEVEL, "hi 12 e\xcc\x81", false, {4, 0, 7, 0, 6, 0, 10}, 7, " hi  1 2 \xc3\xa9"},
    {SNIP_BYTE_LEVEL, "hi 12 e\xcc\x81", true, {4, 0, 7, 0, 6, 0, 10}, 7, " hi  1 2 \xc3\xa9"},
    {SNIP_BYTE_LEVEL, "<a><b><c><a>hi", false, {13, 0, 11, 4}, 4, "<a><b><c <a> hi"},
    {SNIP_BYTE_LEVEL, "<a><b>hi<a><b", false, {12, 4, 11, 0}, 4, "<a><b> hi<a> "},
    {SNIP_LLAMA, "\xef\xac\x81 \xc3\xa9 x", false, {6, 2, 7, 8, 9, 2, 10}, 7, "fi e\xcc\x81 x"},
    {SNIP_LLAMA, "<s>fi  q", false, {1, 6, 2, 2, 0}, 5, "<s> fi  <unk>"},
    {META_SNIPPET("first", "false"), "a b!", false, {5, 1, 6}, 3, "a b"},
    {META_SNIPPET("first", "false"), "<s>a a!", false, {0, 2, 5, 4}, 4, "<s>a a"},
    {META_SNIPPET("never", "true"), "a b! a", false, {2, 1, 6, 5}, 4, "a b a"},
    {META_SNIPPET("always", "true"), "<s>a b!", false, {0, 5, 1, 6}, 4, "<s> a b"},
};

static void test_hand_made_tokenizers(void) {
    for (size_t i = 0; i < sizeof snippet_cases / sizeof snippet_cases[0]; i++) {
        const snippet_case *c = &snippet_cases[i];
        laguna_error err = {0};
        laguna_tokenizer *tok = load_snippet(c->json, &err);
        CHECKF(tok, "case %zu: %s", i, err.message);
        if (!tok) continue;
        int32_t *ids;
        size_t n, len;
        CHECK(laguna_tokenizer_encode(tok, c->text, strlen(c->text), c->add_special, &ids, &n,
                                      &err) == LAGUNA_OK);
        bool same = n == c->n_ids && memcmp(ids, c->ids, n * sizeof *ids) == 0;
        CHECKF(same, "case %zu ('%s'): got %zu ids, first %d", i, c->text, n, n ? ids[0] : -1);
        char *out;
        CHECK(laguna_tokenizer_decode(tok, ids, n, false, &out, &len, NULL) == LAGUNA_OK);
        CHECKF(same_text(out, len, c->decoded), "case %zu: decoded '%s'", i, out);
        char *streamed = stream_decode(tok, ids, n, false, &len);
        CHECKF(same_text(streamed, len, c->decoded), "case %zu: streamed '%s'", i,
               streamed ? streamed : "(error)");
        free(streamed);
        laguna_tokenizer_free_text(out);
        laguna_tokenizer_free_ids(ids);
        laguna_tokenizer_free(tok);
    }
}

/* The generic streaming path (not a lone ByteLevel decoder) holds text back
 * while it ends in U+FFFD: <0xC3> alone is invalid until <0xA9> completes é;
 * a stray <0xC3> waits for the next token. Traced by hand through
 * tokenizers' DecodeStream; the pieces join to the whole decode. */
static void test_stream_generic(void) {
    laguna_tokenizer *tok = load_snippet(SNIP_METASPACE, NULL);
    CHECK(tok != NULL);
    if (!tok) return;
    static const struct {
        int32_t id; /* -1: flush */
        const char *piece;
    } steps[] = {{18, "hello"}, {3, ""},
                 {4, "é"},      {6, " "},
                 {3, ""},       {18, "\xef\xbf\xbd hello"},
                 {3, ""},       {-1, "\xef\xbf\xbd"}};
    laguna_detokenizer *d;
    CHECK(laguna_detokenizer_new(tok, false, &d, NULL) == LAGUNA_OK);
    int32_t ids[8];
    size_t n_ids = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        const char *p;
        size_t n;
        laguna_status st = steps[i].id < 0 ? laguna_detokenizer_flush(d, &p, &n, NULL)
                                           : laguna_detokenizer_push(d, steps[i].id, &p, &n, NULL);
        CHECKF(st == LAGUNA_OK && same_text(p, n, steps[i].piece), "step %zu gave '%.*s'", i,
               (int)n, p);
        if (steps[i].id >= 0) ids[n_ids++] = steps[i].id;
    }
    laguna_detokenizer_free(d);
    char *all;
    size_t len;
    CHECK(laguna_tokenizer_decode(tok, ids, n_ids, false, &all, &len, NULL) == LAGUNA_OK);
    CHECK(same_text(all, len, "helloé \xef\xbf\xbd hello\xef\xbf\xbd"));
    laguna_tokenizer_free_text(all);
    /* A stray <0xC3> after é makes ByteFallback rewrite the é already
     * returned (tokenizers decodes 3 4 3 as three U+FFFD; its DecodeStream
     * fails there). The flush must still return the stray byte, as
     * tokenizers' decode of it alone: U+FFFD. */
    static const int32_t stray[] = {3, 4, 3};
    static const char *const stray_pieces[] = {"", "é", "", "\xef\xbf\xbd"};
    CHECK(laguna_detokenizer_new(tok, false, &d, NULL) == LAGUNA_OK);
    for (size_t i = 0; i < 4; i++) {
        const char *p;
        size_t n;
        laguna_status st = i < 3 ? laguna_detokenizer_push(d, stray[i], &p, &n, NULL)
                                 : laguna_detokenizer_flush(d, &p, &n, NULL);
        CHECKF(st == LAGUNA_OK && same_text(p, n, stray_pieces[i]), "stray step %zu gave '%.*s'", i,
               (int)n, p);
    }
    laguna_detokenizer_free(d);
    laguna_tokenizer_free(tok);
}

/* ---- load errors ----------------------------------------------------------- */

static void expect_load_error(const char *json, laguna_status code, const char *needle) {
    laguna_error err = {0};
    laguna_tokenizer *tok = load_snippet(json, &err);
    CHECKF(!tok && err.code == code && strstr(err.message, needle), "want %d '%s', got %d '%s'",
           code, needle, err.code, err.message);
    laguna_tokenizer_free(tok);
}

#define MODEL "'model': {'type': 'BPE', 'vocab': {'a': 0, 'b': 1}, 'merges': []}"

static void test_load_errors(void) {
    expect_load_error("{'version': '1.0', 'pre_tokenizer': {'type': 'Foo'}, " MODEL "}",
                      LAGUNA_ERR_UNSUPPORTED,
                      "snippet.json: pre_tokenizer: pre_tokenizer type 'Foo' is not supported");
    expect_load_error("{'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [{'type': "
                      "'Digits'}, {'type': 'Bar'}]}, " MODEL "}",
                      LAGUNA_ERR_UNSUPPORTED,
                      "pre_tokenizer.pretokenizers[1]: pre_tokenizer type 'Bar'");
    expect_load_error("{'normalizer': {'type': 'Precompiled'}, " MODEL "}", LAGUNA_ERR_UNSUPPORTED,
                      "normalizer type 'Precompiled' is not supported");
    expect_load_error("{'decoder': {'type': 'Nope'}, " MODEL "}", LAGUNA_ERR_UNSUPPORTED,
                      "decoder type 'Nope'");
    expect_load_error("{'post_processor': {'type': 'Nope'}, " MODEL "}", LAGUNA_ERR_UNSUPPORTED,
                      "post_processor type 'Nope'");
    expect_load_error("{'model': {'type': 'Unigram', 'vocab': []}}", LAGUNA_ERR_UNSUPPORTED,
                      "model type 'Unigram' is not supported");
    expect_load_error("{'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': ['a b']}}",
                      LAGUNA_ERR_FORMAT, "merge 0: token 'b' is not in the vocabulary");
    expect_load_error("{'model': {'type': 'BPE', 'vocab': {'a': 0, 'b': 1}, 'merges': ['a b']}}",
                      LAGUNA_ERR_FORMAT, "token 'ab' is not in the vocabulary");
    expect_load_error("{'model': {'type': 'BPE', 'vocab': {'a': 0, 'b': 1}, 'merges': ['a b c']}}",
                      LAGUNA_ERR_FORMAT, "not two tokens");
    expect_load_error("{'model': {'type': 'BPE', 'vocab': {'a': -1}, 'merges': []}}",
                      LAGUNA_ERR_FORMAT, "token 'a' has no valid id");
    expect_load_error("{'model': {'type': 'BPE', 'vocab': {'a': 2000000000}, 'merges': []}}",
                      LAGUNA_ERR_FORMAT, "far beyond");
    expect_load_error(
        "{'pre_tokenizer': {'type': 'Split', 'pattern': {'Regex': '(a'}, 'behavior': 'Isolated',"
        " 'invert': false}, " MODEL "}",
        LAGUNA_ERR_FORMAT, "bad pattern '(a'");
    expect_load_error("{'pre_tokenizer': {'type': 'Split', 'pattern': {'Regex': 'a'}, 'behavior': "
                      "'Sideways'}, " MODEL "}",
                      LAGUNA_ERR_UNSUPPORTED, "split behavior 'Sideways'");
    expect_load_error("{'version': '2.0', " MODEL "}", LAGUNA_ERR_UNSUPPORTED, "version");
    expect_load_error("{'added_tokens': [{'id': 5}], " MODEL "}", LAGUNA_ERR_FORMAT,
                      "added_tokens[0]: missing field 'content'");
    expect_load_error("{'version': '1.0', " MODEL, LAGUNA_ERR_FORMAT, "snippet.json: invalid JSON");
    expect_load_error("[1, 2]", LAGUNA_ERR_FORMAT, "expected a JSON object");
    expect_load_error("{}", LAGUNA_ERR_FORMAT, "missing field 'model'");
    laguna_error err = {0};
    laguna_tokenizer *tok = NULL;
    CHECK(laguna_tokenizer_load("tests/fixtures/no-such-dir", &tok, &err) == LAGUNA_ERR_IO && !tok);
    CHECKF(strstr(err.message, "no-such-dir/tokenizer.json") || strstr(err.message, "no-such-dir"),
           "%s", err.message);
    CHECK(laguna_tokenizer_load("tests/fixtures/tokenizer/laguna-like/cases.json", &tok, &err) !=
              LAGUNA_OK &&
          !tok);
    CHECK(laguna_tokenizer_load(NULL, &tok, &err) == LAGUNA_ERR_ARGUMENT);
}

/* ---- hostile tokenizer files (found by fuzzing) ----------------------------- */

/* Token text that is not valid UTF-8: an added token that is a lone lead byte
 * made decode and the streaming detokenizer read past the token; one that is
 * a lone continuation byte split the input's characters, and the invalid
 * UTF-8 reached PCRE2 under PCRE2_NO_UTF_CHECK (SEGV). JSON text must be
 * UTF-8 (tokenizers' serde rejects such a file), so loading fails. */
static void test_invalid_utf8_token_text(void) {
    expect_load_error("{'added_tokens': [{'id': 2, 'content': '\xf0', 'special': false}], " MODEL "}",
                      LAGUNA_ERR_FORMAT, "snippet.json: not valid UTF-8 at byte 40");
    expect_load_error("{'added_tokens': [{'id': 2, 'content': '\x98', 'special': false}], " MODEL "}",
                      LAGUNA_ERR_FORMAT, "not valid UTF-8");
    expect_load_error("{'model': {'type': 'BPE', 'vocab': {'a': 0, '\xe2\x82': 1}, 'merges': []}}",
                      LAGUNA_ERR_FORMAT, "not valid UTF-8");
    /* escapes cannot smuggle a lone surrogate in either */
    expect_load_error("{'added_tokens': [{'id': 2, 'content': '\\udc98'}], " MODEL "}",
                      LAGUNA_ERR_FORMAT, "invalid JSON");
    /* a valid multi-byte added token still matches whole characters only */
    laguna_error err = {0};
    laguna_tokenizer *tok = load_snippet(
        "{'added_tokens': [{'id': 2, 'content': '\xc3\xa9', 'special': false}], "
        "'pre_tokenizer': {'type': 'Split', 'pattern': {'Regex': '\\\\w+'}, 'behavior': "
        "'Isolated', 'invert': false}, " MODEL "}",
        &err);
    CHECKF(tok != NULL, "%s", err.message);
    if (!tok) return;
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    CHECK(laguna_tokenizer_encode(tok, "a\xc3\xa9" "b", 4, false, &ids, &n, &err) == LAGUNA_OK);
    CHECK(n == 3 && ids[0] == 0 && ids[1] == 2 && ids[2] == 1);
    char *text = NULL;
    CHECK(laguna_tokenizer_decode(tok, ids, n, false, &text, &len, &err) == LAGUNA_OK);
    CHECK(text && strstr(text, "\xc3\xa9"));
    laguna_tokenizer_free_text(text);
    laguna_tokenizer_free_ids(ids);
    laguna_tokenizer_free(tok);
}

/* A tokenizer with an empty vocabulary: every word encodes to no ids, and
 * the word cache used to memcpy from NULL (UB under -fno-sanitize-recover). */
static void test_empty_vocabulary(void) {
    laguna_error err = {0};
    laguna_tokenizer *tok =
        load_snippet("{'model': {'type': 'BPE', 'vocab': {}, 'merges': []}}", &err);
    CHECKF(tok != NULL, "%s", err.message);
    if (!tok) return;
    int32_t *ids = NULL;
    size_t n = 99;
    for (int round = 0; round < 2; round++) { /* the second round hits the cache */
        CHECK(laguna_tokenizer_encode(tok, "abc abc", 7, false, &ids, &n, &err) == LAGUNA_OK);
        CHECK(n == 0);
        laguna_tokenizer_free_ids(ids);
    }
    laguna_tokenizer_free(tok);
}

/* A Replace normalizer with a large replacement expanded every match without
 * bound (and a Sequence of them multiplied); normalised text is now limited
 * relative to the input. */
static void test_replace_expansion_bounded(void) {
    size_t big = 100000;
    const char *head = "{'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'Replace', "
                       "'pattern': {'String': 'a'}, 'content': '";
    const char *tail = "'}, {'type': 'Replace', 'pattern': {'String': 'b'}, 'content': 'bbbb'}]}, "
                       "'model': {'type': 'BPE', 'vocab': {'a': 0, 'b': 1}, 'merges': []}}";
    char *json = malloc(strlen(head) + big + strlen(tail) + 1);
    strcpy(json, head);
    memset(json + strlen(head), 'b', big);
    strcpy(json + strlen(head) + big, tail);
    laguna_error err = {0};
    laguna_tokenizer *tok = load_snippet(json, &err);
    free(json);
    CHECKF(tok != NULL, "%s", err.message);
    if (!tok) return;
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(laguna_tokenizer_encode(tok, "aaaa", 4, false, &ids, &n, &err) != LAGUNA_OK);
    CHECKF(strstr(err.message, "normalizer output exceeds"), "%s", err.message);
    /* text without the expanding character still encodes: b -> bbbb */
    CHECK(laguna_tokenizer_encode(tok, "bb", 2, false, &ids, &n, &err) == LAGUNA_OK && n == 8);
    laguna_tokenizer_free_ids(ids);
    laguna_tokenizer_free(tok);
}

/* A Sequence of twelve ByteLevel stages would double non-ASCII text twelve
 * times (4096x); pre-tokenization stops at its growth bound instead. */
static void test_pretokenizer_growth_bounded(void) {
    char json[4096];
    size_t k = (size_t)snprintf(json, sizeof json, "{'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [");
    for (int i = 0; i < 12; i++)
        k += (size_t)snprintf(json + k, sizeof json - k, "%s{'type': 'ByteLevel', 'add_prefix_space': false, 'use_regex': false}",
                              i ? ", " : "");
    snprintf(json + k, sizeof json - k, "]}, 'model': {'type': 'BPE', 'vocab': {'a': 0}, 'merges': []}}");
    laguna_error err = {0};
    laguna_tokenizer *tok = load_snippet(json, &err);
    CHECKF(tok != NULL, "%s", err.message);
    if (!tok) return;
    char text[3000];
    for (size_t i = 0; i + 2 < sizeof text; i += 2) text[i] = (char)0xc3, text[i + 1] = (char)0xa9; /* e-acute */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(laguna_tokenizer_encode(tok, text, sizeof text - 2, false, &ids, &n, &err) == LAGUNA_ERR_FORMAT);
    CHECKF(strstr(err.message, "pre-tokenized text exceeds"), "%s", err.message);
    laguna_tokenizer_free(tok);
}

/* Found by fuzz_tokenizer_json: streaming a byte-level token whose text is
 * empty (a "" vocabulary entry) moved bytes from a NULL pending buffer. */
static void test_stream_empty_byte_level_token(void) {
    const char *json = "{'decoder': {'type': 'ByteLevel'}, 'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': false}, "
                       "'model': {'type': 'BPE', 'vocab': {'': 0, 'a': 1}, 'merges': []}}";
    laguna_error err = {0};
    laguna_tokenizer *tok = load_snippet(json, &err);
    CHECKF(tok != NULL, "%s", err.message);
    if (!tok) return;
    laguna_detokenizer *d = NULL;
    CHECK(laguna_detokenizer_new(tok, false, &d, &err) == LAGUNA_OK);
    const char *text = NULL;
    size_t len = 9;
    CHECK(d && laguna_detokenizer_push(d, 0, &text, &len, &err) == LAGUNA_OK && len == 0);
    CHECK(d && laguna_detokenizer_push(d, 1, &text, &len, &err) == LAGUNA_OK && len == 1 && text[0] == 'a');
    laguna_detokenizer_free(d);
    laguna_tokenizer_free(tok);
}

/* ---- the laguna tokenize / detokenize commands ----------------------------- */

static void expect_cli(const char *args, int want_rc, const char *needle) {
    char *out = NULL;
    int rc = tu_run_laguna(args, &out);
    CHECKF(want_rc == 0 ? rc == 0 : (rc != 0 && rc < 128), "laguna %s: exit %d\n%s", args, rc,
           out ? out : "");
    if (needle)
        CHECKF(out && strstr(out, needle), "laguna %s: output lacks '%s':\n%s", args, needle,
               out ? out : "");
    free(out);
}

static void test_cli(void) {
    expect_cli("tokenize tests/fixtures/tiny-xs 'Hello world'", 0, "71 373 353 392 296 107 99\n");
    expect_cli("tokenize " FIXTURE_JSON " --no-special '<s>user</s>'", 0, "1 493 113 2\n");
    expect_cli("detokenize tests/fixtures/tiny-xs 71 373 353,392 296 107 99", 0, "Hello world\n");
    expect_cli("detokenize tests/fixtures/tiny-xs --skip-special 1 493 113 2", 0, "user\n");
    expect_cli("tokenize tests/fixtures/tiny-xs --file /nonexistent.txt", 1, "/nonexistent.txt");
    expect_cli("tokenize /nonexistent 'x'", 1, "/nonexistent");
    expect_cli("tokenize -m tests/fixtures/tiny-xs -p 'Hello world'", 0, "71 373 353 392 296 107 99\n");
    expect_cli("tokenize", 2, "missing -m MODEL");
    expect_cli("tokenize tests/fixtures/tiny-xs < /dev/null", 0, NULL); /* the text from stdin */
    expect_cli("detokenize tests/fixtures/tiny-xs 1 x 3", 2, "token ids");
}

int main(void) {
    RUN(test_fixture_cases);
    RUN(test_checkpoint_tokenizers);
    RUN(test_invalid_utf8);
    RUN(test_empty_input);
    RUN(test_large_input);
    RUN(test_concurrent_encode);
    RUN(test_lookups);
    RUN(test_stream_bytes);
    RUN(test_split_patterns);
    RUN(test_hand_made_tokenizers);
    RUN(test_stream_generic);
    RUN(test_load_errors);
    RUN(test_invalid_utf8_token_text);
    RUN(test_empty_vocabulary);
    RUN(test_replace_expansion_bounded);
    RUN(test_pretokenizer_growth_bounded);
    RUN(test_stream_empty_byte_level_token);
    RUN(test_cli);
    return test_summary();
}
