/* Context-free grammars over bytes, for constrained decoding (structured
 * output). A grammar is a set of rules; a rule is a list of alternatives; an
 * alternative is a sequence of elements, each a byte class (a set of bytes,
 * matching one of them) or a reference to a rule. Repetition is written as
 * right recursion (`list ::= item list | empty`), which the matcher runs
 * without growing its stacks; left recursion is not supported (the matcher
 * reports it as an error when it meets it).
 *
 * Grammars are built with lg_grammar_builder, then frozen into the flat,
 * read-only lg_grammar that the matcher (grammar/matcher.h) walks. The
 * builder records the first failure (out of memory, too many rules or
 * elements) and lg_grammar_build reports it. */
#ifndef LAGUNA_GRAMMAR_GRAMMAR_H
#define LAGUNA_GRAMMAR_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "laguna.h"

/* An element of the frozen grammar: its kind in the top two bits. */
#define LG_GRAMMAR_END 0u                  /* the end of an alternative */
#define LG_GRAMMAR_BYTES (1u << 30)        /* low bits: a byte class's index */
#define LG_GRAMMAR_RULE (2u << 30)         /* low bits: a rule's index */
#define LG_GRAMMAR_KIND(e) ((e) & (3u << 30))
#define LG_GRAMMAR_ARG(e) ((e) & ((1u << 30) - 1))

/* Limits that keep a hostile schema from building a huge grammar. */
#define LG_GRAMMAR_MAX_RULES 8192
#define LG_GRAMMAR_MAX_ELEMENTS (1 << 20)

typedef struct {
    uint64_t bits[4]; /* byte b matches when bit b is set */
} lg_byte_class;

typedef struct {
    uint32_t *elems;   /* every alternative's elements, each followed by LG_GRAMMAR_END */
    uint32_t *alt_at;  /* alternative a starts at elems[alt_at[a]] */
    uint32_t *rule_at; /* rule r's alternatives: alt_at[rule_at[r] .. rule_at[r + 1]) */
    lg_byte_class *classes;
    int n_rules, n_alts, n_classes;
    size_t n_elems;
    int root;
} lg_grammar;

static inline bool lg_byte_class_has(const lg_byte_class *c, uint8_t b) { return (c->bits[b >> 6] >> (b & 63)) & 1; }

/* ---- building ------------------------------------------------------------------ */

typedef struct lg_grammar_builder lg_grammar_builder;

/* An alternative being written: elements are appended, then it is added to a
 * rule (lg_gb_add), which empties it for reuse. */
typedef struct {
    uint32_t *e;
    int n, cap;
    bool oom;
} lg_gb_seq;

lg_grammar_builder *lg_gb_new(void);
void lg_gb_free(lg_grammar_builder *b);
/* A new rule without alternatives; its index, or -1 (the builder failed). */
int lg_gb_rule(lg_grammar_builder *b);
/* Appends to s: the byte class c, the single byte ch, every byte of text in
 * turn, a reference to rule r. */
void lg_gb_class(lg_grammar_builder *b, lg_gb_seq *s, const lg_byte_class *c);
void lg_gb_byte(lg_grammar_builder *b, lg_gb_seq *s, uint8_t ch);
void lg_gb_text(lg_grammar_builder *b, lg_gb_seq *s, const char *text, size_t len);
void lg_gb_ref(lg_gb_seq *s, int r);
/* Adds s as an alternative of rule r and empties s. */
void lg_gb_add(lg_grammar_builder *b, int r, lg_gb_seq *s);
void lg_gb_seq_free(lg_gb_seq *s);
/* A rule matching what one of rules a and b matches. */
int lg_gb_either(lg_grammar_builder *b, int a, int c);
/* A rule matching between lo and hi (hi >= lo) repetitions of rule item. */
int lg_gb_repeat(lg_grammar_builder *b, int item, int lo, int hi);
/* A rule matching any number (>= lo) of repetitions of item. */
int lg_gb_repeat_any(lg_grammar_builder *b, int item, int lo);
/* A rule of one alternative: the byte class c (sugar for the helpers above). */
int lg_gb_class_rule(lg_grammar_builder *b, const lg_byte_class *c);

/* Freezes the grammar with root rule `root` into *out (free with
 * lg_grammar_free); reports the builder's first failure. The builder stays
 * the caller's to free. */
laguna_status lg_gb_build(lg_grammar_builder *b, int root, lg_grammar *out, laguna_error *err);
void lg_grammar_free(lg_grammar *g);

/* Byte classes. */
void lg_byte_class_range(lg_byte_class *c, uint8_t lo, uint8_t hi); /* adds lo..hi */
void lg_byte_class_chars(lg_byte_class *c, const char *chars);      /* adds each char */

#endif
