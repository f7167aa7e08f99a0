/* laguna chat as a person at a terminal uses it, through a pseudo-terminal
 * (forkpty): arrow keys edit the line and the up arrow recalls it, Ctrl-C
 * during a reply stops the reply and returns to the prompt with the
 * conversation intact, a bracketed paste of several lines is one message,
 * Ctrl-C on an empty line and Ctrl-D leave. /history shows what the chat
 * holds. */
#include <poll.h>
#include <stdbool.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define TIMEOUT_S 60.0
/* a fresh prompt: bracketed paste switched on, then "> " */
#define PROMPT "\033[?2004h> "

typedef struct {
    pid_t pid;
    int fd;
    char out[1 << 18]; /* everything the terminal showed */
    size_t len, mark;  /* mark: where the next wait starts looking */
    bool reaped;       /* the program ended (status holds how) */
    int status;
} tty_chat;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int start(tty_chat *c, const char *args) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s/laguna chat %s", build, args);
    struct winsize ws = {.ws_row = 40, .ws_col = 200};
    c->len = c->mark = 0;
    c->out[0] = 0;
    c->reaped = false;
    c->pid = forkpty(&c->fd, NULL, NULL, &ws);
    if (c->pid < 0) return -1;
    if (c->pid == 0) {
        setenv("TERM", "xterm", 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return 0;
}

/* Reads what the terminal shows for up to `seconds`; 1 when more came. */
static int pump(tty_chat *c, double seconds) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, (int)(seconds * 1000)) <= 0) return 0;
    ssize_t n = read(c->fd, c->out + c->len, sizeof c->out - 1 - c->len);
    if (n <= 0) return 0;
    c->len += (size_t)n;
    c->out[c->len] = 0;
    return 1;
}

/* Waits until `needle` appears after the mark; moves the mark past it. */
static int wait_for(tty_chat *c, const char *needle) {
    double end = now_s() + TIMEOUT_S;
    for (;;) {
        char *at = strstr(c->out + c->mark, needle);
        if (at) {
            c->mark = (size_t)(at - c->out) + strlen(needle);
            if (!strcmp(needle, PROMPT))
                pump(c, 0.2); /* let the editor take the terminal, as a person would */
            return 1;
        }
        if (now_s() > end || c->len + 1 >= sizeof c->out) break;
        if (!pump(c, 0.1) && !c->reaped && waitpid(c->pid, &c->status, WNOHANG) == c->pid) c->reaped = true;
        if (c->reaped && !pump(c, 0)) break; /* it ended and nothing more will come */
    }
    CHECKF(0, "the terminal never showed '%s'; it shows:\n%s", needle, c->out + c->mark);
    return 0;
}

static void type(tty_chat *c, const char *keys) {
    size_t n = strlen(keys);
    CHECK(write(c->fd, keys, n) == (ssize_t)n);
}

/* Waits for the program to end; its exit status, or -1. */
static int finish(tty_chat *c) {
    double end = now_s() + TIMEOUT_S;
    int status = c->status;
    while (now_s() < end) {
        pump(c, 0.05);
        if (c->reaped || waitpid(c->pid, &status, WNOHANG) == c->pid) {
            close(c->fd);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
    close(c->fd);
    return -1;
}

static void exited_cleanly(tty_chat *c) {
    size_t from = c->len;
    int rc = finish(c);
    CHECKF(rc == 0, "exit status %d after:\n%s", rc, c->out + (from > 2000 ? from - 2000 : 0));
}

/* Counts the occurrences of needle after position from. */
static int count(const tty_chat *c, size_t from, const char *needle) {
    int k = 0;
    for (const char *p = c->out + from; (p = strstr(p, needle)); p += strlen(needle))
        k++;
    return k;
}

static tty_chat chat;

static void test_arrow_keys_edit_and_recall(void) {
    tty_chat *c = &chat;
    if (start(c, "-m models/laguna-tiny -n 4") || !wait_for(c, PROMPT)) return;
    type(c, "wrld\033[D\033[D\033[Do\r"); /* three times left, then the missing o */
    wait_for(c, PROMPT);
    type(c, "\033[A\r"); /* up: the same message again */
    wait_for(c, PROMPT);
    size_t from = c->mark;
    type(c, "/history\r");
    wait_for(c, PROMPT);
    CHECKF(count(c, from, "user: world\r\n") == 2, "history:\n%s", c->out + from);
    type(c, "\004"); /* Ctrl-D leaves */
    exited_cleanly(c);
}

static void test_ctrl_c_stops_the_reply(void) {
    tty_chat *c = &chat;
    /* -n -1 --ignore-eos: the reply would go on until the context (2048) is full */
    if (start(c, "-m models/laguna-tiny -n -1 --ignore-eos") || !wait_for(c, PROMPT)) return;
    type(c, "hello\r");
    wait_for(c, "hello\r\n");
    size_t reply_from = c->mark;
    while (c->len < reply_from + 40 && pump(c, TIMEOUT_S)) {
    }
    type(c, "\003");
    if (!wait_for(c, "[reply stopped]") || !wait_for(c, PROMPT)) return;
    size_t from = c->mark;
    type(c, "/history\r");
    wait_for(c, PROMPT);
    CHECKF(count(c, from, "user: hello\r\n") == 1 && count(c, from, "assistant: ") == 1,
           "history:\n%s", c->out + from);
    /* the conversation goes on from there */
    type(c, "again\r");
    wait_for(c, "again\r\n");
    reply_from = c->mark;
    while (c->len < reply_from + 40 && pump(c, TIMEOUT_S)) {
    }
    type(c, "\003");
    wait_for(c, "[reply stopped]");
    wait_for(c, PROMPT);
    from = c->mark;
    type(c, "/history\r");
    wait_for(c, PROMPT);
    CHECKF(count(c, from, "user: ") == 2 && count(c, from, "assistant: ") == 2, "history:\n%s",
           c->out + from);
    type(c, "\003"); /* Ctrl-C on the empty line leaves */
    exited_cleanly(c);
    CHECK(strstr(c->out + from, "^C\r\n") != NULL);
}

static void test_bracketed_paste_is_one_message(void) {
    tty_chat *c = &chat;
    if (start(c, "-m models/laguna-tiny -n 3") || !wait_for(c, PROMPT)) return;
    CHECK(strstr(c->out, "\033[?2004h") != NULL); /* the chat asked for bracketed paste */
    type(c, "explain: \033[200~def f(x):\r    return x\r\rprint(f(1))\r\033[201~");
    wait_for(c, PROMPT);
    size_t from = c->mark;
    type(c, "/history\r");
    wait_for(c, PROMPT);
    CHECKF(count(c, from, "user: ") == 1 && count(c, from, "assistant: ") == 1, "history:\n%s",
           c->out + from);
    CHECKF(strstr(c->out + from,
                  "user: explain: def f(x):\r\n    return x\r\n\r\nprint(f(1))\r\n") != NULL,
           "history:\n%s", c->out + from);
    /* an explicit multi-line message between """ lines is one message too */
    type(c, "\"\"\"first line\r");
    wait_for(c, "... ");
    type(c, "second line\"\"\"\r");
    wait_for(c, PROMPT);
    from = c->mark;
    type(c, "/history\r");
    wait_for(c, PROMPT);
    CHECKF(strstr(c->out + from, "user: first line\r\nsecond line\r\n") != NULL, "history:\n%s",
           c->out + from);
    type(c, "/help\r");
    wait_for(c, "/think on|off");
    wait_for(c, PROMPT);
    type(c, "/quit\r");
    exited_cleanly(c);
}

int main(void) {
    RUN(test_arrow_keys_edit_and_recall);
    RUN(test_ctrl_c_stops_the_reply);
    RUN(test_bracketed_paste_is_one_message);
    return test_summary();
}
