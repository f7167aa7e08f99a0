/* Python's str methods on UTF-8 strings (strip, split, splitlines, replace,
 * find, case mapping), shared by the str methods templates call
 * (`s.strip()`) and the filters built on them (`s|trim`, `s|title`). Results
 * are new strings in the arena. Offsets given to and returned by find/count
 * are code point indexes, as in Python. */
#ifndef LAGUNA_TEMPLATE_PYSTR_H
#define LAGUNA_TEMPLATE_PYSTR_H

#include "template/value.h"

enum { JT_STRIP_LEFT = 1, JT_STRIP_RIGHT = 2, JT_STRIP_BOTH = 3 };

/* str.strip/lstrip/rstrip; chars NULL strips whitespace. */
jt_value jt_pystr_strip(jt_arena *a, jt_value s, const jt_value *chars, int sides);
jt_value jt_pystr_upper(jt_arena *a, jt_value s);
jt_value jt_pystr_lower(jt_arena *a, jt_value s);
jt_value jt_pystr_title(jt_arena *a, jt_value s);      /* str.title() */
jt_value jt_pystr_capitalize(jt_arena *a, jt_value s); /* str.capitalize() */
/* str.split / str.rsplit: sep NULL splits on runs of whitespace; maxsplit < 0
 * means no limit. */
jt_value jt_pystr_split(jt_arena *a, jt_value s, const jt_value *sep, int64_t maxsplit, bool right);
jt_value jt_pystr_splitlines(jt_arena *a, jt_value s, bool keepends);
/* str.replace; count < 0 replaces all. */
jt_value jt_pystr_replace(jt_arena *a, jt_value s, jt_value old, jt_value new_, int64_t count);
/* str.find (right: rfind) within code points [start, end); -1 when absent. */
int64_t jt_pystr_find(jt_value s, jt_value sub, int64_t start, int64_t end, bool right);
int64_t jt_pystr_count(jt_value s, jt_value sub);
bool jt_pystr_startswith(jt_value s, jt_value prefix);
bool jt_pystr_endswith(jt_value s, jt_value suffix);
/* True when every cased character is lower (upper) case and there is one. */
bool jt_pystr_islower(jt_value s);
bool jt_pystr_isupper(jt_value s);

#endif
