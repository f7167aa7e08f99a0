/* Jinja2 lexer, following jinja2/lexer.py rule for rule: the root state finds
 * the next `{{`, `{%` or `{#` and applies the whitespace control of its sign
 * (OptionalLStrip), the tag states read expression tokens until the end
 * delimiter (only while brackets are balanced), and the end rules carry the
 * trim_blocks newline and `-` stripping. `line_starting` mirrors Jinja2's flag
 * that lets lstrip_blocks strip a tag's indentation right after a trimmed tag. */
#include "template/lexer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/unicode.h"

typedef struct {
    jt_arena *arena;
    const char *s; /* newline-normalised source */
    size_t n, pos;
    size_t line_pos; /* line_no is the line of byte line_pos */
    int line_no;
    bool line_starting;
    jt_token *tokens;
    size_t n_tokens, cap_tokens;
    char balance[256];
    int depth;
    char *why;
    size_t why_size;
} lexer;

static int line_at(lexer *lx, size_t pos) {
    while (lx->line_pos < pos) {
        if (lx->s[lx->line_pos] == '\n') lx->line_no++;
        lx->line_pos++;
    }
    return lx->line_no;
}

static bool lex_fail(lexer *lx, size_t pos, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    snprintf(lx->why, lx->why_size, "line %d: %s", line_at(lx, pos), msg);
    return false;
}

static jt_token *push(lexer *lx, jt_tok_type type, size_t pos) {
    if (lx->n_tokens == lx->cap_tokens) {
        size_t cap = lx->cap_tokens ? lx->cap_tokens * 2 : 64;
        jt_token *t = jt_alloc(lx->arena, cap * sizeof *t);
        if (lx->n_tokens) memcpy(t, lx->tokens, lx->n_tokens * sizeof *t);
        lx->tokens = t;
        lx->cap_tokens = cap;
    }
    jt_token *t = &lx->tokens[lx->n_tokens++];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->line = line_at(lx, pos);
    return t;
}

/* Byte length of the (Python) whitespace character at pos, 0 if none. */
static size_t space_at(const lexer *lx, size_t pos) {
    if (pos >= lx->n) return 0;
    unsigned char c = (unsigned char)lx->s[pos];
    if (c < 0x80) return jt_py_isspace(c) ? 1 : 0;
    size_t p = pos;
    int32_t cp = jt_utf8_next(lx->s, lx->n, &p);
    return jt_py_isspace(cp) ? p - pos : 0;
}

static size_t skip_spaces(const lexer *lx, size_t pos) {
    size_t k;
    while ((k = space_at(lx, pos)) > 0) pos += k;
    return pos;
}

static bool starts(const lexer *lx, size_t pos, const char *lit) {
    size_t k = strlen(lit);
    return pos + k <= lx->n && memcmp(lx->s + pos, lit, k) == 0;
}

/* Emits template text s[start, end) after Jinja2's OptionalLStrip rule for a
 * tag with the given sign ('-', '+' or 0); lstrip applies to block and
 * comment tags, not to `{{`. */
static void emit_text(lexer *lx, size_t start, size_t end, char sign, bool lstrip_ok) {
    if (sign == '-') {
        end = start + (end - start - jt_space_suffix(lx->s + start, end - start));
    } else if (sign != '+' && lstrip_ok) {
        size_t l_pos = start;
        for (size_t i = end; i > start; i--)
            if (lx->s[i - 1] == '\n') {
                l_pos = i;
                break;
            }
        if (l_pos > start || lx->line_starting) {
            size_t tail = end - l_pos;
            if (tail > 0 && jt_space_suffix(lx->s + l_pos, tail) == tail) end = l_pos;
        }
    }
    if (end > start) {
        jt_token *t = push(lx, TK_DATA, start);
        t->value = jt_str_new(lx->arena, lx->s + start, end - start);
    }
}

/* Python's unicode-escape decoding of a string literal's body. */
static bool unescape(lexer *lx, size_t start, size_t end, jt_value *out) {
    jt_sb b;
    jt_sb_init(&b, lx->arena);
    const char *s = lx->s;
    size_t i = start;
    while (i < end) {
        if (s[i] != '\\' || i + 1 >= end) {
            size_t j = i + 1;
            while (j < end && s[j] != '\\') j++;
            jt_sb_add(&b, s + i, j - i);
            i = j;
            continue;
        }
        char c = s[i + 1];
        i += 2;
        int32_t cp = -1;
        switch (c) {
        case '\n': continue; /* line continuation */
        case '\\': cp = '\\'; break;
        case '\'': cp = '\''; break;
        case '"': cp = '"'; break;
        case 'a': cp = 7; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'n': cp = 10; break;
        case 'r': cp = 13; break;
        case 't': cp = 9; break;
        case 'v': cp = 11; break;
        case 'x': case 'u': case 'U': {
            int digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            cp = 0;
            for (int k = 0; k < digits; k++, i++) {
                char h = i < end ? s[i] : 0;
                int v = h >= '0' && h <= '9' ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (v < 0) return lex_fail(lx, start, "truncated \\%sXX escape", c == 'x' ? "x" : "u");
                cp = cp * 16 + v;
            }
            if (cp > 0x10ffff) return lex_fail(lx, start, "illegal Unicode character%s", "");
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                cp = c - '0';
                for (int k = 0; k < 2 && i < end && s[i] >= '0' && s[i] <= '7'; k++, i++)
                    cp = cp * 8 + (s[i] - '0');
            } else if (c == 'N') {
                return lex_fail(lx, start, "\\N{...} escapes are not supported%s", "");
            } else {
                jt_sb_addch(&b, '\\');
                i--; /* keep the character after the backslash as text */
                continue;
            }
        }
        char buf[4];
        if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd;
        jt_sb_add(&b, buf, jt_utf8_put(cp, buf));
    }
    *out = jt_sb_value(&b);
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_name_start(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
static bool is_name_char(unsigned char c) { return is_name_start(c) || is_digit((char)c); }

/* Digits with single underscores between them ("1_000"); returns the end. */
static size_t scan_digits(const lexer *lx, size_t pos) {
    if (pos >= lx->n || !is_digit(lx->s[pos])) return pos;
    while (pos < lx->n) {
        if (is_digit(lx->s[pos])) pos++;
        else if (lx->s[pos] == '_' && pos + 1 < lx->n && is_digit(lx->s[pos + 1])) pos++;
        else break;
    }
    return pos;
}

static bool lex_number(lexer *lx, size_t *pos_io) {
    size_t start = *pos_io, p = scan_digits(lx, start);
    size_t end = start;
    bool is_float = false;
    bool after_dot = start > 0 && lx->s[start - 1] == '.';
    if (!after_dot) {
        size_t q = p;
        if (q < lx->n && lx->s[q] == '.' && q + 1 < lx->n && is_digit(lx->s[q + 1])) {
            q = scan_digits(lx, q + 1);
            is_float = true;
            end = q;
        }
        if (q < lx->n && (lx->s[q] == 'e' || lx->s[q] == 'E')) {
            size_t e = q + 1;
            if (e < lx->n && (lx->s[e] == '+' || lx->s[e] == '-')) e++;
            size_t e2 = scan_digits(lx, e);
            if (e2 > e) {
                is_float = true;
                end = e2;
            }
        }
    }
    char buf[128];
    size_t k = 0;
    if (is_float) {
        for (size_t i = start; i < end && k < sizeof buf - 1; i++)
            if (lx->s[i] != '_') buf[k++] = lx->s[i];
        buf[k] = 0;
        jt_token *t = push(lx, TK_FLOAT, start);
        t->value = jt_float(strtod(buf, NULL));
        *pos_io = end;
        return true;
    }
    int base = 10;
    size_t digits_start = start;
    if (lx->s[start] == '0' && start + 1 < lx->n && strchr("xXoObB", lx->s[start + 1]) &&
        lx->s[start + 1]) {
        char b = (char)(lx->s[start + 1] | 0x20);
        base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
        digits_start = start + 2;
        p = digits_start;
        while (p < lx->n && (lx->s[p] == '_' || (base == 16 ? strchr("0123456789abcdefABCDEF", lx->s[p]) != NULL
                                                             : lx->s[p] >= '0' && lx->s[p] < '0' + base)) &&
               lx->s[p])
            p++;
        if (p == digits_start) return lex_fail(lx, start, "invalid integer literal%s", "");
    }
    for (size_t i = digits_start; i < p && k < sizeof buf - 1; i++)
        if (lx->s[i] != '_') buf[k++] = lx->s[i];
    buf[k] = 0;
    char *endp;
    unsigned long long v = strtoull(buf, &endp, base);
    if (k >= sizeof buf - 1 || v > (unsigned long long)INT64_MAX)
        return lex_fail(lx, start, "integer literal too large%s", "");
    jt_token *t = push(lx, TK_INT, start);
    t->value = jt_int((int64_t)v);
    *pos_io = p;
    return true;
}

static const struct {
    const char *text;
    jt_tok_type type;
} operators[] = {
    {"**", TK_POW}, {"//", TK_FLOORDIV}, {"==", TK_EQ}, {"!=", TK_NE}, {">=", TK_GTEQ},
    {"<=", TK_LTEQ}, {"+", TK_ADD}, {"-", TK_SUB}, {"/", TK_DIV}, {"*", TK_MUL},
    {"%", TK_MOD}, {"~", TK_TILDE}, {"[", TK_LBRACKET}, {"]", TK_RBRACKET},
    {"(", TK_LPAREN}, {")", TK_RPAREN}, {"{", TK_LBRACE}, {"}", TK_RBRACE},
    {">", TK_GT}, {"<", TK_LT}, {"=", TK_ASSIGN}, {".", TK_DOT}, {":", TK_COLON},
    {"|", TK_PIPE}, {",", TK_COMMA}, {";", TK_SEMICOLON},
};

/* Reads the inside of a `{{ }}` (is_block false) or `{% %}` tag up to and
 * including its end delimiter. */
static bool lex_tag(lexer *lx, bool is_block) {
    size_t pos = lx->pos;
    lx->depth = 0;
    while (true) {
        if (pos >= lx->n) { /* the parser reports the missing end */
            lx->pos = pos;
            return true;
        }
        if (lx->depth == 0) {
            size_t end = 0;
            bool strip = false, trim = false;
            if (is_block && starts(lx, pos, "+%}")) end = pos + 3;
            else if (is_block && starts(lx, pos, "-%}")) end = pos + 3, strip = true;
            else if (is_block && starts(lx, pos, "%}")) end = pos + 2, trim = true;
            else if (!is_block && starts(lx, pos, "-}}")) end = pos + 3, strip = true;
            else if (!is_block && starts(lx, pos, "}}")) end = pos + 2;
            if (end) {
                push(lx, is_block ? TK_BLOCK_END : TK_VAR_END, pos);
                if (strip) end = skip_spaces(lx, end);
                else if (trim && end < lx->n && lx->s[end] == '\n') end++;
                lx->line_starting = lx->s[end - 1] == '\n';
                lx->pos = end;
                return true;
            }
        }
        size_t k = space_at(lx, pos);
        if (k) {
            pos += k;
            continue;
        }
        unsigned char c = (unsigned char)lx->s[pos];
        if (is_digit((char)c)) {
            if (!lex_number(lx, &pos)) return false;
            continue;
        }
        if (is_name_start(c)) {
            size_t start = pos;
            while (pos < lx->n && is_name_char((unsigned char)lx->s[pos])) pos++;
            jt_token *t = push(lx, TK_NAME, start);
            t->text = jt_strndup(lx->arena, lx->s + start, pos - start);
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t start = pos, q = pos + 1;
            while (q < lx->n && lx->s[q] != (char)c) q += lx->s[q] == '\\' ? 2 : 1;
            if (q >= lx->n) return lex_fail(lx, start, "unexpected char '%s'", c == '"' ? "\"" : "'");
            jt_token *t = push(lx, TK_STRING, start);
            if (!unescape(lx, start + 1, q, &t->value)) return false;
            pos = q + 1;
            continue;
        }
        bool found = false;
        for (size_t i = 0; i < sizeof operators / sizeof operators[0]; i++) {
            if (!starts(lx, pos, operators[i].text)) continue;
            jt_tok_type type = operators[i].type;
            char open = 0;
            if (type == TK_LBRACE || type == TK_LPAREN || type == TK_LBRACKET) {
                if (lx->depth >= (int)sizeof lx->balance)
                    return lex_fail(lx, pos, "brackets nested too deeply%s", "");
                lx->balance[lx->depth++] = operators[i].text[0];
            } else if (type == TK_RBRACE || type == TK_RPAREN || type == TK_RBRACKET) {
                if (lx->depth == 0) return lex_fail(lx, pos, "unexpected '%s'", operators[i].text);
                open = lx->balance[--lx->depth];
                char want = open == '{' ? '}' : open == '(' ? ')' : ']';
                if (want != operators[i].text[0]) {
                    char msg[64];
                    snprintf(msg, sizeof msg, "unexpected '%s', expected '%c'", operators[i].text, want);
                    return lex_fail(lx, pos, "%s", msg);
                }
            }
            push(lx, type, pos);
            pos += strlen(operators[i].text);
            found = true;
            break;
        }
        if (!found) {
            char ch[8] = {0};
            size_t p = pos;
            jt_utf8_next(lx->s, lx->n, &p);
            memcpy(ch, lx->s + pos, p - pos < 7 ? p - pos : 7);
            return lex_fail(lx, pos, "unexpected char '%s'", ch);
        }
    }
}

/* `{% raw %}...{% endraw %}`: pos is just after the raw start tag. */
static bool lex_raw(lexer *lx, size_t start) {
    size_t p = start;
    while (true) {
        const char *hit = memmem(lx->s + p, lx->n - p, "{%", 2);
        if (!hit) return lex_fail(lx, start, "Missing end of raw directive%s", "");
        size_t tp = (size_t)(hit - lx->s);
        size_t q = tp + 2;
        char sign = 0;
        if (q < lx->n && (lx->s[q] == '-' || lx->s[q] == '+')) sign = lx->s[q++];
        q = skip_spaces(lx, q);
        if (starts(lx, q, "endraw")) {
            q = skip_spaces(lx, q + 6);
            size_t end = 0;
            if (starts(lx, q, "+%}")) end = q + 3;
            else if (starts(lx, q, "-%}")) end = skip_spaces(lx, q + 3);
            else if (starts(lx, q, "%}")) {
                end = q + 2;
                if (end < lx->n && lx->s[end] == '\n') end++;
            }
            if (end) {
                emit_text(lx, start, tp, sign, true);
                lx->line_starting = lx->s[end - 1] == '\n';
                lx->pos = end;
                return true;
            }
        }
        p = tp + 2;
    }
}

static bool lex_root(lexer *lx) {
    while (lx->pos < lx->n) {
        size_t tp = lx->pos;
        char kind = 0;
        while (true) {
            const char *hit = memchr(lx->s + tp, '{', lx->n - tp);
            if (!hit) break;
            tp = (size_t)(hit - lx->s);
            if (tp + 1 < lx->n && (lx->s[tp + 1] == '%' || lx->s[tp + 1] == '{' || lx->s[tp + 1] == '#')) {
                kind = lx->s[tp + 1];
                break;
            }
            tp++;
        }
        if (!kind) { /* the rest is text */
            emit_text(lx, lx->pos, lx->n, '+', false);
            lx->pos = lx->n;
            break;
        }
        size_t after = tp + 2;
        char sign = 0;
        if (after < lx->n && (lx->s[after] == '-' || lx->s[after] == '+')) sign = lx->s[after++];
        if (kind == '%') { /* raw start? */
            size_t q = skip_spaces(lx, after);
            if (starts(lx, q, "raw")) {
                q = skip_spaces(lx, q + 3);
                size_t end = 0;
                if (starts(lx, q, "-%}")) end = skip_spaces(lx, q + 3);
                else if (starts(lx, q, "%}")) end = q + 2;
                if (end) {
                    emit_text(lx, lx->pos, tp, sign, true);
                    lx->line_starting = lx->s[end - 1] == '\n';
                    if (!lex_raw(lx, end)) return false;
                    continue;
                }
            }
        }
        emit_text(lx, lx->pos, tp, sign, kind != '{');
        lx->line_starting = false;
        if (kind == '#') {
            size_t q = after;
            while (true) {
                const char *hit = memmem(lx->s + q, lx->n - q, "#}", 2);
                if (!hit) return lex_fail(lx, tp, "Missing end of comment tag%s", "");
                size_t cp = (size_t)(hit - lx->s);
                size_t end = cp + 2;
                if (cp > after && lx->s[cp - 1] == '-') end = skip_spaces(lx, end);
                else if (!(cp > after && lx->s[cp - 1] == '+') && end < lx->n && lx->s[end] == '\n')
                    end++;
                lx->line_starting = lx->s[end - 1] == '\n';
                lx->pos = end;
                break;
            }
            continue;
        }
        push(lx, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, tp);
        lx->pos = after;
        if (!lex_tag(lx, kind == '%')) return false;
    }
    return true;
}

bool jt_lex(jt_arena *a, const char *source, size_t len, jt_tokens *out, char *why,
            size_t why_size) {
    /* normalise \r\n and \r to \n, drop one trailing newline */
    char *s = jt_alloc(a, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (source[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && source[i + 1] == '\n') i++;
        } else s[n++] = source[i];
    }
    if (n > 0 && s[n - 1] == '\n') n--;
    s[n] = 0;
    lexer lx = {.arena = a, .s = s, .n = n, .line_no = 1, .line_starting = true, .why = why,
                .why_size = why_size};
    if (!lex_root(&lx)) return false;
    push(&lx, TK_EOF, n);
    out->tokens = lx.tokens;
    out->n = lx.n_tokens;
    return true;
}

const char *jt_tok_describe(jt_tok_type t) {
    switch (t) {
    case TK_EOF: return "end of template";
    case TK_DATA: return "template data";
    case TK_VAR_BEGIN: return "begin of print statement";
    case TK_VAR_END: return "end of print statement";
    case TK_BLOCK_BEGIN: return "begin of statement block";
    case TK_BLOCK_END: return "end of statement block";
    case TK_NAME: return "name";
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    default:
        for (size_t i = 0; i < sizeof operators / sizeof operators[0]; i++)
            if (operators[i].type == t) return operators[i].text;
        return "token";
    }
}
