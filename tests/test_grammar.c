/* Structured output's grammars: JSON Schema compiled to a grammar
 * (grammar/json_schema.c), the matcher over bytes (grammar/matcher.c), and
 * token masks over a real vocabulary (grammar/token_mask.c) held to the
 * slow, obvious answer: every token's bytes run through the matcher alone. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"
#include "harness.h"
#include "laguna_tokenizer.h"

/* The matcher's answer for text under schema_json ("" for json_object
 * mode): 1 accepted whole, 0 a valid prefix only, -1 refused, -2 an error
 * (the message in why when given). Compile errors are -3. */
static int match(const char *schema_json, const char *text, size_t len, char *why) {
    cJSON *schema = *schema_json ? cJSON_Parse(schema_json) : NULL;
    if (*schema_json && !schema) return -3;
    lg_grammar g;
    laguna_error err = {0};
    laguna_status st = lg_json_schema_grammar(schema, &g, &err);
    cJSON_Delete(schema);
    if (st) {
        if (why) snprintf(why, 256, "%.200s", err.message);
        return -3;
    }
    lg_matcher *m = NULL;
    if (lg_matcher_new(&g, &m, &err)) {
        lg_grammar_free(&g);
        return -2;
    }
    int s = lg_matcher_start(m);
    for (size_t i = 0; i < len && s >= 0; i++) s = lg_matcher_step(m, s, (uint8_t)text[i]);
    int r = s == LG_MATCHER_ERROR ? -2 : s < 0 ? -1 : lg_matcher_accepting(m, s) ? 1 : 0;
    if (r == -2 && why) snprintf(why, 256, "%s", lg_matcher_error(m));
    lg_matcher_free(m);
    lg_grammar_free(&g);
    return r;
}

static int m_(const char *schema, const char *text) { return match(schema, text, strlen(text), NULL); }

static void test_any_object(void) {
    CHECK(m_("", "{}") == 1);
    CHECK(m_("", "{\"a\": 1, \"b\": [true, null, \"x\\u00e9\\n\", -0.5e+3, {}], \"c\": {\"d\": \"\xc3\xa9\xe2\x82\xac\"}}") == 1);
    CHECK(m_("", "\n{\n  \"a\": 1\n}") == 1);
    CHECK(m_("", "{\"a\"") == 0);
    CHECK(m_("", "[]") == -1);               /* an object, not any value */
    CHECK(m_("", "{\"a\":}") == -1);
    CHECK(m_("", "{\"a\" 1}") == -1);
    CHECK(m_("", "{} x") == -1);             /* nothing after the value */
    CHECK(m_("", "{\"a\":01}") == -1);
    CHECK(m_("", "{\"a\":1,}") == -1);
    CHECK(m_("", "{\"a\":\"\x01\"}") == -1); /* control characters are escaped in JSON */
    CHECK(m_("", "{\"a\":\"\xff\"}") == -1); /* not UTF-8 */
    CHECK(m_("", "{\"a\":\"\xc3\"}") == -1); /* a cut-off character */
    CHECK(m_("", "{\"a\":\"\\x\"}") == -1);
    CHECK(m_("", "{\"a\":12345678901234567}") == -1); /* 17 digits */
    CHECK(m_("", "{\"a\":1234567890123456}") == 1);
    /* whitespace is bounded: a newline and up to 32 spaces, no blank lines */
    CHECK(m_("", "{\n                                \"a\":1}") == 1);
    CHECK(m_("", "{\n                                 \"a\":1}") == -1);
    CHECK(m_("", "{\n\n\"a\":1}") == -1);
}

static const char PERSON[] =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":2}},\"required\":[\"name\"]}";

static void test_object_schema(void) {
    CHECK(m_(PERSON, "{\"name\":\"x\"}") == 1);
    CHECK(m_(PERSON, "{\"name\": \"x\", \"age\": -3}") == 1);
    CHECK(m_(PERSON, "{\"name\":\"x\",\"tags\":[\"a\",\"b\"]}") == 1);
    CHECK(m_(PERSON, "{\"name\":\"x\",\"tags\":[]}") == 1);
    CHECK(m_(PERSON, "{\"age\":3}") == -1);                       /* name is required */
    CHECK(m_(PERSON, "{}") == -1);
    CHECK(m_(PERSON, "{\"name\":\"x\",\"age\":3.5}") == -1);      /* an integer */
    CHECK(m_(PERSON, "{\"name\":\"x\",\"extra\":1}") == -1);      /* no other properties */
    CHECK(m_(PERSON, "{\"name\":\"x\",\"tags\":[\"a\",\"b\",\"c\"]}") == -1);
    CHECK(m_(PERSON, "{\"age\":3,\"name\":\"x\"}") == -1);        /* the schema's order */
    CHECK(m_(PERSON, "{\"name\":1}") == -1);
    /* additionalProperties: more members after the listed ones */
    const char *open = "{\"properties\":{\"a\":{\"type\":\"boolean\"}},\"required\":[\"a\"],"
                       "\"additionalProperties\":{\"type\":\"number\"}}";
    CHECK(m_(open, "{\"a\":true,\"x\":1,\"y\":2.5}") == 1);
    CHECK(m_(open, "{\"a\":true,\"x\":\"s\"}") == -1);
    CHECK(m_(open, "{\"x\":1}") == -1);
    /* all optional: any subset in order, commas right */
    const char *opt = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"null\"},\"b\":{\"type\":\"null\"},"
                      "\"c\":{\"type\":\"null\"}}}";
    CHECK(m_(opt, "{}") == 1);
    CHECK(m_(opt, "{\"b\":null}") == 1);
    CHECK(m_(opt, "{\"a\":null,\"c\":null}") == 1);
    CHECK(m_(opt, "{,\"c\":null}") == -1);
    CHECK(m_(opt, "{\"a\":null\"c\":null}") == -1);
    /* a required name the properties do not list: any value */
    CHECK(m_("{\"type\":\"object\",\"required\":[\"id\"]}", "{\"id\":[1,{}]}") == 1);
}

static void test_values(void) {
    CHECK(m_("{\"enum\":[\"red\",\"green\",3,null]}", "\"green\"") == 1);
    CHECK(m_("{\"enum\":[\"red\",\"green\",3,null]}", "3") == 1);
    CHECK(m_("{\"enum\":[\"red\",\"green\",3,null]}", "\"blue\"") == -1);
    CHECK(m_("{\"const\":{\"k\":[1,2]}}", "{\"k\":[1,2]}") == 1);
    CHECK(m_("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "12") == 1);
    CHECK(m_("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "true") == -1);
    CHECK(m_("{\"type\":[\"string\",\"null\"]}", "null") == 1);
    CHECK(m_("{\"type\":\"string\",\"nullable\":true}", "null") == 1);
    CHECK(m_("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"ab\"") == 1);
    CHECK(m_("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"\xc3\xa9\\nc\"") == 1); /* characters */
    CHECK(m_("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"a\"") == -1);
    CHECK(m_("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"abcd\"") == -1);
    CHECK(m_("{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}", "[1, \"a\"]") == 1);
    CHECK(m_("{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}", "[1]") == -1);
    CHECK(m_("{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":2}", "[true]") == -1);
    CHECK(m_("{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":2}", "[true,false,true]") == 1);
    CHECK(m_("{\"type\":\"number\"}", "-0.25E-7") == 1);
    CHECK(m_("{\"type\":\"number\"}", "1.") == 0);
    CHECK(m_("{\"type\":\"number\"}", ".5") == -1);
    CHECK(m_("true", "[1,\"a\",{\"b\":null}]") == 1);
    CHECK(m_("{\"title\":\"x\",\"description\":\"annotations are ignored\",\"format\":\"date\",\"type\":\"string\"}",
             "\"anything\"") == 1);
}

static void test_refs(void) {
    const char *tree = "{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
                       "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}},\"required\":[\"v\",\"kids\"]}";
    CHECK(m_(tree, "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[]},{\"v\":3,\"kids\":[{\"v\":4,\"kids\":[]}]}]}") == 1);
    CHECK(m_(tree, "{\"v\":1,\"kids\":[{\"v\":2}]}") == -1);
    const char *defs = "{\"$defs\":{\"pt\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"}},"
                       "\"required\":[\"x\"]}},\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/pt\"}}";
    CHECK(m_(defs, "[{\"x\":1},{\"x\":2.5}]") == 1);
    CHECK(m_(defs, "[{\"y\":1}]") == -1);
    CHECK(m_("{\"definitions\":{\"a/b\":{\"type\":\"null\"}},\"$ref\":\"#/definitions/a~1b\"}", "null") == 1);
}

static void test_refused_schemas(void) {
    char why[256] = "";
    CHECK(match("{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{\"type\":\"null\"}}}}", "{}", 2, why) == -3);
    CHECK(strstr(why, "'not'") && strstr(why, "/properties/a"));
    CHECK(match("{\"type\":\"strin\"}", "", 0, why) == -3 && strstr(why, "strin"));
    CHECK(match("false", "", 0, why) == -3);
    CHECK(match("{\"$ref\":\"#/$defs/missing\"}", "", 0, why) == -3 && strstr(why, "missing"));
    CHECK(match("{\"$ref\":\"http://example.com/s.json\"}", "", 0, why) == -3);
    CHECK(match("{\"type\":\"array\",\"minItems\":-1}", "", 0, why) == -3 && strstr(why, "minItems"));
    CHECK(match("{\"type\":\"array\",\"minItems\":5,\"maxItems\":2}", "", 0, why) == -3);
    CHECK(match("{\"allOf\":[{},{}]}", "", 0, why) == -3 && strstr(why, "allOf"));
    CHECK(match("{\"type\":7}", "", 0, why) == -3);
    CHECK(match("{\"enum\":[]}", "", 0, why) == -3);
    /* nesting beyond the compiler's limit */
    char deep[2048] = "";
    for (int i = 0; i < 80; i++) strcat(deep, "{\"items\":");
    strcat(deep, "{}");
    for (int i = 0; i < 80; i++) strcat(deep, "}");
    CHECK(match(deep, "", 0, why) == -3 && strstr(why, "deep"));
    /* left recursion compiles but the matcher refuses to run it, without a crash */
    CHECK(match("{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"},{\"type\":\"null\"}]}},\"$ref\":\"#/$defs/a\"}",
                "null", 4, why) == -2);
    CHECK(strstr(why, "recursion") != NULL);
}

static void test_deep_text(void) {
    /* 3000 nested arrays in any JSON: the matcher says it is too deep, it does not crash */
    size_t n = 3000;
    char *t = malloc(2 * n + 16);
    strcpy(t, "{\"a\":");
    for (size_t i = 0; i < n; i++) strcat(t + 5 + i, "[");
    char why[256] = "";
    CHECK(match("", t, strlen(t), why) == -2);
    CHECK(strstr(why, "deeper") != NULL);
    free(t);
}

/* The mask from state s against each token's bytes run alone. */
static void check_mask(const lg_token_bytes *tb, lg_matcher *m, int s, int *n_allowed) {
    int V = lg_token_bytes_n_vocab(tb);
    uint64_t *allowed = calloc((size_t)(V + 63) / 64, sizeof *allowed);
    int n = lg_token_mask(tb, m, s, allowed);
    CHECK(n >= 0);
    int count = 0, wrong = 0;
    for (int32_t id = 0; id < V; id++) {
        bool bit = (allowed[id >> 6] >> (id & 63)) & 1;
        count += bit;
        if (bit != (lg_token_advance(tb, m, s, id) >= 0)) wrong++;
    }
    CHECK(wrong == 0);
    CHECK(count == n);
    *n_allowed = n;
    free(allowed);
}

static void test_token_masks(void) {
    laguna_tokenizer *tok = NULL;
    laguna_error err = {0};
    if (laguna_tokenizer_load("models/laguna-tiny-chat/tokenizer.json", &tok, &err)) {
        CHECK(!"tokenizer loads");
        return;
    }
    lg_token_bytes *tb = NULL;
    CHECK(lg_token_bytes_new(tok, 8192, &tb, &err) == LAGUNA_OK);
    cJSON *schema = cJSON_Parse(PERSON);
    lg_grammar g;
    CHECK(lg_json_schema_grammar(schema, &g, &err) == LAGUNA_OK);
    lg_matcher *m = NULL;
    CHECK(lg_matcher_new(&g, &m, &err) == LAGUNA_OK);
    /* states: the start, inside a string, after a key, inside a number, done */
    const char *prefixes[] = {"", "{\"name\": \"Ab", "{\"name\":\"x\",", "{\"name\":\"x\",\"age\":1", "{\"name\":\"x\"}"};
    int counts[5];
    for (int i = 0; i < 5; i++) {
        int s = lg_matcher_start(m);
        for (const char *p = prefixes[i]; *p && s >= 0; p++) s = lg_matcher_step(m, s, (uint8_t)*p);
        CHECK(s >= 0);
        check_mask(tb, m, s, &counts[i]);
    }
    CHECK(counts[1] > 4000); /* inside a string nearly every token goes */
    CHECK(counts[0] > 0 && counts[0] < 200);
    CHECK(counts[4] == 0); /* a whole value: only end of text, the caller's */
    /* control tokens never: <think> (14) and </assistant> (24) are added tokens */
    const uint8_t *b;
    CHECK(lg_token_bytes_of(tb, 14, &b) < 0 && lg_token_bytes_of(tb, 24, &b) < 0);
    lg_matcher_free(m);
    lg_grammar_free(&g);
    cJSON_Delete(schema);
    lg_token_bytes_free(tb);
    laguna_tokenizer_free(tok);
}

static void test_forget(void) {
    cJSON *schema = cJSON_Parse(PERSON);
    lg_grammar g;
    laguna_error err = {0};
    CHECK(lg_json_schema_grammar(schema, &g, &err) == LAGUNA_OK);
    lg_matcher *m = NULL;
    CHECK(lg_matcher_new(&g, &m, &err) == LAGUNA_OK);
    const char *text = "{\"name\":\"x\",\"age\":12}";
    int s = lg_matcher_start(m);
    for (const char *p = text; *p; p++) {
        s = lg_matcher_step(m, s, (uint8_t)*p);
        CHECK(s >= 0);
        lg_matcher_forget(m, &s); /* every state but the current one gone */
        CHECK(s == 0 && lg_matcher_n_states(m) == 1);
    }
    CHECK(lg_matcher_accepting(m, s));
    lg_matcher_free(m);
    lg_grammar_free(&g);
    cJSON_Delete(schema);
}

int main(void) {
    RUN(test_any_object);
    RUN(test_object_schema);
    RUN(test_values);
    RUN(test_refs);
    RUN(test_refused_schemas);
    RUN(test_deep_text);
    RUN(test_token_masks);
    RUN(test_forget);
    return test_summary();
}
