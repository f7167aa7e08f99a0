/* laguna: the command-line front end. Dispatches to one cli/cmd_*.c per command. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "laguna.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"generate", cmd_generate, "generate text from a prompt (-m MODEL -p TEXT | -f FILE | --tokens IDS)"},
    {"chat", cmd_chat, "interactive chat with the model's chat template (-m MODEL)"},
    {"info", cmd_info, "describe a model: layers, parameters, memory (-m MODEL | --preset NAME)"},
    {"verify", cmd_verify, "compare the engine with a golden reference file (-m MODEL GOLDEN)"},
    {"perplexity", cmd_perplexity, "perplexity of a text, and the experts' load (-m MODEL -f TEXT)"},
    {"bench", cmd_bench, "prefill and decode speed against the memory roofline (-m MODEL [--batch B,..])"},
    {"tokenize", cmd_tokenize, "print the token ids of a text (-m MODEL TEXT | -f FILE)"},
    {"detokenize", cmd_detokenize, "print the text of token ids (-m MODEL ID...)"},
    {"template", cmd_template, "print the chat-template prompt for a chat request (-m MODEL REQUEST.json)"},
    {"serve", cmd_serve, "OpenAI- and Anthropic-compatible HTTP server (-m MODEL [--port N --parallel N])"},
    {"synth", cmd_synth, "write a random checkpoint in the real layout"},
    {"quantize", cmd_quantize, "write a GGUF (q8_0, q4_k_m, q5_k_m, q6_k, bf16) from a checkpoint or GGUF"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: laguna COMMAND [options]   (laguna COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("laguna %s\n", LAGUNA_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            arg_set_command(commands[i].name);
            return commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "laguna: unknown command '%s'\nTry 'laguna --help'.\n", argv[1]);
    return 2;
}
