/* Python's str() and repr() of template values, byte for byte: what `{{ x }}`
 * prints for numbers, booleans, None, lists and dicts ("['a', 1.0, True]"). */
#ifndef LAGUNA_TEMPLATE_FORMAT_H
#define LAGUNA_TEMPLATE_FORMAT_H

#include "template/value.h"

/* Python repr(float) ("1.0", "0.1", "1e-05", "1e+16", "inf", "nan") into buf (>= 32 bytes). */
void jt_format_float(double f, char *buf);
/* Writes str(v) / repr(v). False when values nest deeper than max_depth. */
bool jt_write_str(jt_sb *b, jt_value v, int max_depth);
bool jt_write_repr(jt_sb *b, jt_value v, int max_depth);
/* repr() of a string alone. */
void jt_write_str_repr(jt_sb *b, const char *s, size_t n);

#endif
