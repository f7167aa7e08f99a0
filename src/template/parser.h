/* Jinja2 parser: tokens -> syntax tree, with jinja2/parser.py's grammar and
 * operator precedence (or < and < not < comparisons < + - < ~ < * / // % <
 * ** < unary minus < postfix, with filters and tests binding to the unary
 * expression). Statements: if/elif/else, for (else, inline if, recursive),
 * set (also namespace attributes and block set), macro, call, include, with,
 * filter, break/continue (loopcontrols), print, block, and transformers'
 * generation tag. extends/import are refused: chat templates do not use them. */
#ifndef LAGUNA_TEMPLATE_PARSER_H
#define LAGUNA_TEMPLATE_PARSER_H

#include "template/ast.h"
#include "template/lexer.h"

/* Parses the whole template. On a syntax error returns false with
 * "line N: reason" in why. Nodes live in the arena. */
bool jt_parse(jt_arena *a, const jt_tokens *tokens, jt_nodes *out, char *why, size_t why_size);

#endif
