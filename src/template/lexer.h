/* Jinja2 lexer: template text -> tokens, with Jinja2's whitespace rules as
 * transformers configures them (trim_blocks and lstrip_blocks on,
 * keep_trailing_newline off): `{%-`/`-%}` strip, `{%+`/`+%}` keep, a newline
 * right after a block or comment tag is dropped, and spaces before a block or
 * comment tag that starts a line are dropped. Newlines are normalised to "\n"
 * and one trailing newline of the template is removed, as Jinja2 does.
 * Raw blocks become data; comments vanish. */
#ifndef LAGUNA_TEMPLATE_LEXER_H
#define LAGUNA_TEMPLATE_LEXER_H

#include "template/value.h"

typedef enum {
    TK_EOF = 0,
    TK_DATA,        /* literal template text (value is a string) */
    TK_VAR_BEGIN,   /* {{ */
    TK_VAR_END,     /* }} */
    TK_BLOCK_BEGIN, /* {% */
    TK_BLOCK_END,   /* %} */
    TK_NAME,
    TK_STRING, /* value holds the unescaped string */
    TK_INT,
    TK_FLOAT,
    /* operators */
    TK_ADD, TK_SUB, TK_DIV, TK_FLOORDIV, TK_MUL, TK_MOD, TK_POW, TK_TILDE,
    TK_LBRACKET, TK_RBRACKET, TK_LPAREN, TK_RPAREN, TK_LBRACE, TK_RBRACE,
    TK_EQ, TK_NE, TK_GT, TK_GTEQ, TK_LT, TK_LTEQ, TK_ASSIGN, TK_DOT, TK_COLON,
    TK_PIPE, TK_COMMA, TK_SEMICOLON,
} jt_tok_type;

typedef struct {
    jt_tok_type type;
    int line;
    const char *text; /* names: the identifier (NUL-terminated, in the arena) */
    jt_value value;   /* strings, data, ints, floats */
} jt_token;

typedef struct {
    jt_token *tokens;
    size_t n;
} jt_tokens;

/* Tokenizes source. On a syntax error returns false with "line N: reason" in
 * why. Tokens live in the arena. */
bool jt_lex(jt_arena *a, const char *source, size_t len, jt_tokens *out, char *why,
            size_t why_size);

/* A readable name for a token type ("end of print statement", "'('", ...). */
const char *jt_tok_describe(jt_tok_type t);

#endif
