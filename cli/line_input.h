/* Reading the chat's input lines: with line editing, history and bracketed
 * paste (libedit) when stdin is a terminal, plain lines otherwise; Ctrl-C
 * handling shared with the reply that is being generated. */
#ifndef LAGUNA_CLI_LINE_INPUT_H
#define LAGUNA_CLI_LINE_INPUT_H

#include <stdbool.h>

typedef struct line_input line_input;

typedef enum {
    LINE_TEXT,        /* *out holds a line (or a whole bracketed paste) */
    LINE_EOF,         /* Ctrl-D on an empty line, or the end of the input */
    LINE_INTERRUPTED, /* Ctrl-C on an empty line */
    LINE_CANCELLED,   /* Ctrl-C with text on the line: the text is dropped */
} line_status;

/* editing: use libedit on the terminal (stdin must be one); otherwise
 * lines are read as they come. NULL when out of memory. */
line_input *line_input_new(bool editing);
void line_input_free(line_input *li);

/* Shows prompt (editing only) and reads one line, without its newline, into
 * *out (heap, caller frees; only for LINE_TEXT). A bracketed paste ends the
 * line at once and is returned whole, newlines kept, after what was typed
 * before it; *pasted says so. */
line_status line_input_read(line_input *li, const char *prompt, char **out, bool *pasted);

/* Remembers a line for the up arrow. */
void line_input_add_history(line_input *li, const char *line);

/* Ctrl-C: once installed, SIGINT sets a flag instead of ending the program
 * (and interrupts a blocking read). line_input_read clears it when it
 * starts; a running reply polls it with line_input_interrupted. */
void line_input_catch_sigint(void);
bool line_input_interrupted(void);
void line_input_clear_interrupt(void);

#endif
