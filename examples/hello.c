/* hello.c: the smallest program on the installed laguna library. Loads a
 * model, feeds a prompt and streams a greedy continuation to stdout.
 *
 *   cc hello.c $(pkg-config --cflags --libs laguna) -o hello
 *   ./hello MODEL "def fibonacci(n):" 32
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <laguna.h>
#include <laguna_generate.h>
#include <laguna_tokenizer.h>

static int print_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0; /* non-zero would stop the generation */
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT N_TOKENS\n", argv[0]);
        return 2;
    }
    laguna_error err = {0};
    laguna_model *model = NULL;
    laguna_tokenizer *tok = NULL;
    laguna_session *session = NULL;
    laguna_sampler *sampler = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    laguna_generate_result result = {0};
    laguna_sampler_params greedy = laguna_sampler_default_params(); /* temperature 0 */
    int rc = 1;
    /* a checkpoint folder holds tokenizer.json; laguna_model_open also takes a GGUF */
    if (laguna_model_open(argv[1], NULL, &model, &err) ||
        laguna_tokenizer_load(argv[1], &tok, &err) ||
        laguna_session_create(model, NULL, &session, &err) ||
        laguna_sampler_create(&greedy, laguna_model_get_info(model)->vocab_size, &sampler, &err) ||
        laguna_tokenizer_encode(tok, argv[2], strlen(argv[2]), true, &ids, &n_ids, &err) ||
        laguna_session_feed(session, ids, n_ids, NULL, &err))
        goto done;
    laguna_generate_params params = {.session = session,
                                     .sampler = sampler,
                                     .tokenizer = tok,
                                     .max_new_tokens = atoi(argv[3]),
                                     .skip_special = true,
                                     .emit = print_text};
    if (laguna_generate(&params, &result, &err)) goto done;
    printf("\n");
    rc = 0;
done:
    if (rc) fprintf(stderr, "hello: %s\n", err.message);
    laguna_generate_result_free(&result);
    laguna_tokenizer_free_ids(ids);
    laguna_sampler_free(sampler);
    laguna_session_free(session);
    laguna_tokenizer_free(tok);
    laguna_model_free(model);
    return rc;
}
