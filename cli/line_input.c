/* Chat input lines (line_input.h). On a terminal, libedit edits the line
 * (arrows, emacs keys, history); its character reader is ours so that a
 * Ctrl-C (SIGINT, caught without SA_RESTART) ends the read and we can tell
 * an empty line from a line with text. Bracketed paste (xterm's
 * ESC[200~ ... ESC[201~, switched on around each read) is bound to a libedit
 * function that collects the pasted bytes and ends the line, so a pasted
 * block is one message whatever newlines it holds. */
#include "line_input.h"

#include "text_buf.h"

#include <errno.h>
#include <histedit.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PASTE_START "\033[200~"
#define PASTE_END "\033[201~"

/* The one piece of process-wide state: a signal handler can only set a flag. */
static volatile sig_atomic_t sigint_seen;

static void on_sigint(int sig) {
    (void)sig;
    sigint_seen = 1;
}

void line_input_catch_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR */
    sigaction(SIGINT, &sa, NULL);
}

bool line_input_interrupted(void) {
    return sigint_seen != 0;
}
void line_input_clear_interrupt(void) {
    sigint_seen = 0;
}

struct line_input {
    bool editing;
    EditLine *el;
    History *hist;
    const char *prompt;
    bool interrupted, line_had_text; /* set by read_char when Ctrl-C ended the read */
    bool pasted, paste_cr;           /* paste_cr: the last pasted character was a CR */
    text_buf paste;
    char *plain_line; /* getline's buffer when not editing */
    size_t plain_cap;
};

/* ---- libedit hooks ------------------------------------------------------------ */

static line_input *owner(EditLine *el) {
    void *li = NULL;
    el_get(el, EL_CLIENTDATA, &li);
    return li;
}

static char *prompt_fn(EditLine *el) {
    return (char *)owner(el)->prompt;
}

/* One UTF-8 character from stdin as a wide character: 1, 0 at the end of the
 * input, -1 when Ctrl-C interrupted the read. Bytes that are not UTF-8 come
 * through one by one. */
static int read_char(EditLine *el, wchar_t *out) {
    line_input *li = owner(el);
    unsigned char c[4];
    for (;;) {
        /* a Ctrl-C that came just before the read would not interrupt it: look at
         * the flag at least every 100 ms */
        if (sigint_seen) {
            const LineInfo *line = el_line(el);
            li->interrupted = true;
            li->line_had_text = line->lastchar > line->buffer;
            return -1;
        }
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int ready = poll(&p, 1, 100);
        if (ready < 0 && errno != EINTR) return -1;
        if (ready <= 0) continue;
        ssize_t got = read(STDIN_FILENO, c, 1);
        if (got == 1) break;
        if (got == 0) return 0;
        if (errno != EINTR) return -1;
    }
    int n = c[0] < 0x80             ? 1
            : (c[0] & 0xE0) == 0xC0 ? 2
            : (c[0] & 0xF0) == 0xE0 ? 3
            : (c[0] & 0xF8) == 0xF0 ? 4
                                    : 1;
    wchar_t w = n == 1 ? c[0] : n == 2 ? (c[0] & 0x1F) : n == 3 ? (c[0] & 0x0F) : (c[0] & 0x07);
    for (int i = 1; i < n; i++) {
        if (read(STDIN_FILENO, c + i, 1) != 1 || (c[i] & 0xC0) != 0x80) {
            *out = c[0]; /* not UTF-8: the first byte alone (the rest is lost) */
            return 1;
        }
        w = (w << 6) | (c[i] & 0x3F);
    }
    *out = w;
    return 1;
}

static size_t utf8_encode(wchar_t w, char *s) {
    unsigned long u = (unsigned long)w;
    if (u < 0x80) return s[0] = (char)u, 1;
    if (u < 0x800) return s[0] = (char)(0xC0 | u >> 6), s[1] = (char)(0x80 | (u & 0x3F)), 2;
    if (u < 0x10000) {
        s[0] = (char)(0xE0 | u >> 12), s[1] = (char)(0x80 | ((u >> 6) & 0x3F)),
        s[2] = (char)(0x80 | (u & 0x3F));
        return 3;
    }
    s[0] = (char)(0xF0 | u >> 18), s[1] = (char)(0x80 | ((u >> 12) & 0x3F));
    s[2] = (char)(0x80 | ((u >> 6) & 0x3F)), s[3] = (char)(0x80 | (u & 0x3F));
    return 4;
}

/* Bound to ESC[200~: everything up to ESC[201~ is the paste; it ends the line. */
static unsigned char paste_fn(EditLine *el, int ch) {
    (void)ch;
    line_input *li = owner(el);
    size_t end_len = strlen(PASTE_END);
    li->paste.len = 0;
    li->paste_cr = false;
    wchar_t w;
    while (el_wgetc(el, &w) == 1) {
        char s[4];
        size_t n = utf8_encode(w, s);
        /* terminals send a pasted newline as CR (as for the Enter key) */
        if (w == '\r')
            s[0] = '\n';
        else if (w == '\n' && li->paste.len && li->paste.buf[li->paste.len - 1] == '\n' &&
                 li->paste_cr)
            n = 0;
        li->paste_cr = w == '\r';
        if (n && text_add(&li->paste, s, n)) break;
        if (li->paste.len >= end_len &&
            !memcmp(li->paste.buf + li->paste.len - end_len, PASTE_END, end_len)) {
            li->paste.len -= end_len;
            li->paste.buf[li->paste.len] = 0;
            break;
        }
    }
    li->pasted = true;
    return CC_NEWLINE;
}

/* ---- the reader ------------------------------------------------------------- */

line_input *line_input_new(bool editing) {
    line_input *li = calloc(1, sizeof *li);
    if (!li || !editing) return li;
    li->el = el_init("laguna", stdin, stderr, stderr);
    li->hist = history_init();
    if (!li->el || !li->hist) {
        line_input_free(li);
        return NULL;
    }
    HistEvent ev;
    history(li->hist, &ev, H_SETSIZE, 1000);
    history(li->hist, &ev, H_SETUNIQUE, 1);
    el_set(li->el, EL_CLIENTDATA, li);
    el_set(li->el, EL_EDITOR, "emacs");
    el_set(li->el, EL_PROMPT, prompt_fn);
    el_set(li->el, EL_HIST, history, li->hist);
    el_set(li->el, EL_GETCFN, read_char);
    /* the wide form: el_set's narrow one leaks its copies of the two strings */
    el_wset(li->el, EL_ADDFN, L"bracketed-paste", L"take a bracketed paste as one message",
            paste_fn);
    el_set(li->el, EL_BIND, PASTE_START, "bracketed-paste", NULL);
    li->editing = true;
    return li;
}

void line_input_free(line_input *li) {
    if (!li) return;
    if (li->el) el_end(li->el);
    if (li->hist) history_end(li->hist);
    free(li->paste.buf);
    free(li->plain_line);
    free(li);
}

void line_input_add_history(line_input *li, const char *line) {
    HistEvent ev;
    if (li->hist && line[0] && !strchr(line, '\n')) history(li->hist, &ev, H_ENTER, line);
}

static line_status read_plain(line_input *li, char **out) {
    ssize_t got = getline(&li->plain_line, &li->plain_cap, stdin);
    if (got < 0) return sigint_seen ? LINE_INTERRUPTED : LINE_EOF;
    while (got > 0 && (li->plain_line[got - 1] == '\n' || li->plain_line[got - 1] == '\r'))
        li->plain_line[--got] = 0;
    *out = strdup(li->plain_line);
    return *out ? LINE_TEXT : LINE_EOF;
}

line_status line_input_read(line_input *li, const char *prompt, char **out, bool *pasted) {
    *out = NULL;
    *pasted = false;
    sigint_seen = 0;
    if (!li->editing) return read_plain(li, out);
    li->prompt = prompt;
    li->interrupted = li->line_had_text = li->pasted = false;
    fputs("\033[?2004h", stderr); /* bracketed paste on while we read */
    int count = 0;
    const char *line = el_gets(li->el, &count);
    fputs("\033[?2004l", stderr);
    if (li->interrupted) {
        fputs("^C\n", stderr);
        return li->line_had_text ? LINE_CANCELLED : LINE_INTERRUPTED;
    }
    if (!line) {
        fputs("\n", stderr);
        return LINE_EOF;
    }
    text_buf text = {0};
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (text_add(&text, line, len)) return LINE_EOF;
    if (li->pasted) {
        size_t plen = li->paste.len;
        while (plen && (li->paste.buf[plen - 1] == '\n' || li->paste.buf[plen - 1] == '\r'))
            plen--;
        /* the editor did not show the paste: show it now, as it will be sent */
        if (plen) fwrite(li->paste.buf, 1, plen, stderr);
        fputs("\n", stderr);
        if (plen && text_add(&text, li->paste.buf, plen)) {
            free(text.buf);
            return LINE_EOF;
        }
        *pasted = true;
    }
    *out = text.buf ? text.buf : strdup("");
    return *out ? LINE_TEXT : LINE_EOF;
}
