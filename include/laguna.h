/* laguna.c public C API: load a Laguna checkpoint, run it, sample from it.
 *
 * Handles are opaque. Every call that can fail returns a laguna_status and, when
 * given a laguna_error, fills it with a one-line message naming the file,
 * tensor or field at fault. The library never prints, exits or aborts on user
 * input. Ownership: whoever creates a handle frees it with the matching _free;
 * pointers returned by getters are borrowed and live as long as their handle. */
#ifndef LAGUNA_H
#define LAGUNA_H

#include <stddef.h>
#include <stdint.h>

/* The library's version; the laguna program prints it with --version. */
#define LAGUNA_VERSION "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LAGUNA_OK = 0,
    LAGUNA_ERR_IO,          /* a file is missing, unreadable or truncated */
    LAGUNA_ERR_FORMAT,      /* malformed JSON, safetensors, template, ... */
    LAGUNA_ERR_SHAPE,       /* a tensor or size disagrees with the config */
    LAGUNA_ERR_UNSUPPORTED, /* a valid but unsupported dtype, option or layout */
    LAGUNA_ERR_ARGUMENT,    /* a bad argument from the caller (token id, size, ...) */
    LAGUNA_ERR_NOMEM,       /* an allocation failed */
    LAGUNA_ERR_CONTEXT,     /* the session's context length would be exceeded */
} laguna_status;

typedef struct {
    laguna_status code;
    char message[512];
} laguna_error;

/* ---- model ------------------------------------------------------------ */

typedef struct laguna_model laguna_model;

/* How weights reach memory. MMAP maps the files (shared page cache, any
 * size); COPY reads them into anonymous huge-page memory, which makes the
 * kernels 2-3x faster on machines where 4 KiB pages are costly, for the RAM
 * of the weights (the file's pages are dropped from the page cache as they
 * are read, so the file is not held twice); AUTO copies when they fit in
 * the available RAM leaving 10% of the machine's memory (at least 2 GiB)
 * free, and maps them otherwise, or after all when other programs take that
 * room while it copies. laguna_model_info says which happened. */
typedef enum { LAGUNA_LOAD_AUTO = 0, LAGUNA_LOAD_MMAP, LAGUNA_LOAD_COPY } laguna_load_mode;

typedef struct {
    int n_threads; /* worker threads for compute; 0 = all online cores */
    laguna_load_mode load_mode;
    const char *device; /* "cpu" (NULL = cpu), "cuda" or "cuda:N", or "reference" (slow and exact, for tests) */
    /* Called while the weights are placed on the device (uploaded to a GPU,
     * read from disk as it goes), with the fraction done, ending at 1; NULL = none. */
    void (*progress)(void *user, double fraction);
    void *progress_user;
    /* Several devices (NULL = one, `device`): "cuda:0,cuda:1,..." splits the
     * model over those GPUs (attention heads and dense MLPs by tensor
     * parallelism, experts by expert parallelism, over NCCL; one GPU per
     * entry; not yet run on real GPUs), "cpu:N" runs the same split as N
     * threads on the CPU (for tests). Fails, naming the count, when the
     * model's heads, widths, experts or vocabulary do not divide. */
    const char *devices;
    /* bf16 weights: round the activations to bf16, as llama.cpp and
     * transformers' bf16 models do. On the CPU the products then use its
     * bf16 dot products (AVX-512 BF16): prompts ~1.4-1.5x faster. On a GPU
     * ("cuda") the tensor-core products and attention (queries, the step's
     * keys and values, the probabilities) take one bf16 mma where the
     * float32 split takes two or three: prompts ~1.2x faster. The logits
     * move by ~1e-2 relative instead of ~1e-6 (the fixtures' bound then is
     * top-1 agreement >= 0.90 and mean KL <= 5e-3 against float32
     * transformers; see docs/performance.md). Not taken
     * (laguna_model_info.bf16_activations says so) with `devices` or on CPUs
     * without AVX-512 BF16; weights of other types are not affected. */
    int bf16_activations;
} laguna_model_options;

/* Opens a Hugging Face Laguna checkpoint folder (config.json plus
 * model.safetensors or sharded model-*.safetensors with its index) or a
 * Laguna GGUF file (llama.cpp's layout; F32/F16/BF16/Q8_0/Q4_0/Q5_0/Q5_1/
 * Q4_K/Q5_K/Q6_K tensors). Every tensor is checked against the config before
 * returning. */
/* options may be NULL (all defaults). */
laguna_status laguna_model_open(const char *dir, const laguna_model_options *options,
                                laguna_model **out, laguna_error *err);
void laguna_model_free(laguna_model *model);

/* What callers most often need to know about a model; filled from config.json. */
typedef struct {
    int vocab_size;
    int hidden_size;
    int n_layers;
    int n_kv_heads;
    int head_dim;
    int n_experts;
    int n_experts_per_token;
    int sliding_window;        /* 0 when the model has no sliding layers */
    int max_position_embeddings;
    int bos_token_id;          /* -1 when absent */
    int n_eos_token_ids;
    const int32_t *eos_token_ids;
    int64_t n_params_total;    /* every weight in the checkpoint */
    int64_t n_params_active;   /* weights read for one token (chosen + shared experts) */
    /* How the weight files reached host memory (what LAGUNA_LOAD_AUTO chose):
     * LAGUNA_LOAD_COPY = read into anonymous memory, LAGUNA_LOAD_MMAP = mapped. */
    laguna_load_mode weights_load;
    uint64_t weights_bytes;      /* bytes of the weight files */
    uint64_t weights_huge_bytes; /* of those, on 2 MiB pages when the model opened (0 if unknown;
                                    mapped pages only count once read) */
    /* Of the weights copied into memory, the bytes rearranged at load into the
     * layout this CPU's kernels read fastest (Q4_K, Q5_K, Q6_K, Q8_0 in 16-row groups for
     * AVX-512; 0 when mapped). */
    uint64_t weights_rearranged_bytes;
    /* Whether the bf16_activations option took effect (the device has the
     * instructions); it applies to the model's bf16 weights. */
    int bf16_activations;
} laguna_model_info;

const laguna_model_info *laguna_model_get_info(const laguna_model *model);

/* Threads: a model may be shared by any number of contexts (and sessions),
 * each used by one thread at a time; different contexts may run at the same
 * time on different threads (they then take turns on the model's worker
 * threads). Nothing else about a model changes after laguna_model_open. */

/* Storage of the KV cache. F32 is exact; F16 and BF16 halve its memory;
 * Q8_0 (blocks of 32 int8 with an f16 scale, as ggml's) takes 0.27x of F32
 * and needs head_dim to be a multiple of 32. AUTO (what zeroed options
 * give): laguna_model_default_kv_type, BF16 on a GPU and F32 on the CPU. */
typedef enum {
    LAGUNA_KV_AUTO = 0,
    LAGUNA_KV_F32,
    LAGUNA_KV_F16,
    LAGUNA_KV_BF16,
    LAGUNA_KV_Q8_0,
} laguna_kv_type;

/* Parses "auto", "f32", "f16", "bf16", "q8_0"; -1 when unknown. */
int laguna_kv_type_from_name(const char *name);
/* The name of a KV type ("auto", "f32", ...); "?" when unknown. */
const char *laguna_kv_type_name(laguna_kv_type type);
/* What LAGUNA_KV_AUTO means for this model (F32 today; BF16 on GPUs once
 * their bf16 attention is as fast as their f32 one). */
laguna_kv_type laguna_model_default_kv_type(const laguna_model *model);

/* ---- context: many sequences decoded together ------------------------------ */

typedef struct laguna_context laguna_context;

/* The KV cache is one pool of pages (kv_page_size positions of one layer
 * each) shared by the context's sequences: a sequence holds the pages it
 * uses, global layers page by page as it grows, sliding layers only the
 * window (plus n_rollback) behind its end. */
typedef struct {
    int n_seq_max;     /* sequences held at once; 0 = 1 */
    int n_ctx;         /* most positions of one sequence; 0 = max_position_embeddings */
    int n_batch;       /* most rows computed in one forward step; 0 = on a GPU 4096 (16 GiB free after
                          the weights) or 2048, on the CPU 512 */
    laguna_kv_type kv_type;
    int n_rollback;    /* positions laguna_seq_truncate may take back beyond the window (see there) */
    size_t kv_bytes;   /* size of the KV pool; 0 = enough for n_seq_max sequences of n_ctx positions
                          (reserved lazily on the CPU: pages never touched cost no memory) */
    int kv_page_size;  /* positions per page; 0 = 16 */
} laguna_context_options;

/* One row of a batch: a token of sequence `seq` at position `pos`, which
 * must be the sequence's next position (its length, plus the rows of the
 * same sequence earlier in the batch). */
typedef struct {
    int32_t token;
    int32_t pos;
    int32_t seq;
    /* What the row wants. laguna_context_decode: nonzero = its logits.
     * laguna_context_decode_argmax: LAGUNA_ROW_* flags, 0 = nothing. */
    int32_t logits;
} laguna_batch_row;

/* Flags of laguna_batch_row.logits for laguna_context_decode_argmax. */
#define LAGUNA_ROW_LOGITS 1 /* the row's vocab_size logits */
#define LAGUNA_ROW_ARGMAX 2 /* the row's greedy token (see laguna_context_decode_argmax) */

laguna_status laguna_context_create(laguna_model *model, const laguna_context_options *options, laguna_context **out,
                                    laguna_error *err);
void laguna_context_free(laguna_context *ctx);

/* A new empty sequence; *seq receives its id (in [0, n_seq_max)). */
laguna_status laguna_seq_add(laguna_context *ctx, int *seq, laguna_error *err);
/* A new sequence holding what `parent` holds; the two share the parent's
 * cache pages until one of them writes into a shared page. */
laguna_status laguna_seq_fork(laguna_context *ctx, int parent, int *child, laguna_error *err);
/* Forgets a sequence and hands its pages back; unknown ids are ignored. */
void laguna_seq_remove(laguna_context *ctx, int seq);
/* Keeps the first n_keep positions of a sequence. Fails, changing nothing,
 * when its sliding layers no longer hold the window behind n_keep: they keep
 * n_rollback positions beyond the window for this. */
laguna_status laguna_seq_truncate(laguna_context *ctx, int seq, int n_keep, laguna_error *err);
/* Positions a sequence holds, or -1 when there is no such sequence. */
int laguna_seq_length(const laguna_context *ctx, int seq);

/* Runs a batch of rows from any mix of sequences. `logits` receives
 * vocab_size floats for each row that wants them, in batch order (NULL when
 * none does). A sequence's logits are bitwise the same whatever else is in
 * the batch. All rows are checked, and the pages they need taken, before
 * anything runs: on an error nothing changed. The pages for all rows are
 * taken at once, so feed long prompts in calls of at most n_batch rows. */
laguna_status laguna_context_decode(laguna_context *ctx, const laguna_batch_row *rows, int n_rows, float *logits,
                                    laguna_error *err);

/* laguna_context_decode for callers that decode greedily: each row's
 * `logits` holds LAGUNA_ROW_* flags (any other bit is an error).
 * LAGUNA_ROW_LOGITS rows get their logits in `logits`, in batch order, as
 * laguna_context_decode gives them. For each LAGUNA_ROW_ARGMAX row i,
 * argmax[i] receives its greedy token: the id of its largest logit, the
 * lowest id on ties, NaN never chosen except at id 0 (nothing beats it there)
 * - exactly what a temperature-0 laguna_sampler without repetition penalty
 * chooses from the row's logits. A row with only that flag has its token
 * found on the device (the GPU's argmax), so its logits never cross to the
 * host (on a model split over several devices they are still gathered to
 * the host, where the argmax is then taken). argmax has n_rows entries; those of rows without the flag are set to
 * -1. Either buffer may be NULL when no row asks for it. */
laguna_status laguna_context_decode_argmax(laguna_context *ctx, const laguna_batch_row *rows,
                                           int n_rows, float *logits, int32_t *argmax,
                                           laguna_error *err);

/* Queued greedy decoding: the host makes a step while the device runs the
 * one before. laguna_context_decode_argmax_queued is
 * laguna_context_decode_argmax for at most n_batch rows that each want
 * exactly LAGUNA_ROW_ARGMAX, except that it may return while the step is
 * still running: argmax (which must stay valid) has the tokens once the
 * laguna_context_wait that collects the step returns. A row's token may be
 * LAGUNA_TOKEN_OF_ROW(j): the greedy token of row j of the step queued just
 * before this one, which the device reads where it found it, so the step
 * needs no word from the host. Rows are checked and their pages taken before
 * anything runs; the sequences advance at once. At most two steps are
 * outstanding (a third is refused until a wait); laguna_context_decode and
 * laguna_context_decode_argmax first collect every outstanding step. A
 * queued step's sequences keep one position more behind their sliding
 * window, so laguna_seq_truncate can take a step back that the host queued
 * before it knew it was not wanted (needs n_batch >= 2). Backends that
 * compute as they are asked (the CPU) finish the step before returning. */
#define LAGUNA_TOKEN_OF_ROW(j) (-2 - (j))
laguna_status laguna_context_decode_argmax_queued(laguna_context *ctx, const laguna_batch_row *rows, int n_rows,
                                                  int32_t *argmax, laguna_error *err);
/* Waits for the oldest outstanding queued step, whose argmax then holds its
 * tokens, and reports a device failure in it; LAGUNA_OK at once when no step
 * is outstanding. */
laguna_status laguna_context_wait(laguna_context *ctx, laguna_error *err);

/* KV pool pages in use and in all, and the bytes of one page. */
void laguna_context_kv_pages(const laguna_context *ctx, int *used, int *total, size_t *page_bytes);
/* The KV pool bytes that n_seqs sequences of these options can hold at once
 * (what kv_bytes = 0 reserves for n_seq_max of them), and the bytes of one
 * page: for sizing kv_bytes as some sequences plus a budget. */
laguna_status laguna_context_kv_bytes_for(const laguna_model *model, const laguna_context_options *options, int n_seqs,
                                          size_t *bytes, size_t *page_bytes, laguna_error *err);
/* KV pages that removing the n given (distinct) sequences would hand back to
 * the pool: the pages they hold that no other sequence shares. Unknown ids
 * are skipped; -1 when out of memory. */
int laguna_seqs_exclusive_pages(laguna_context *ctx, const int *seqs, int n);

/* ---- session: one sequence with its KV cache ----------------------------- */

typedef struct laguna_session laguna_session;

typedef struct {
    int n_ctx;     /* maximum positions this session may hold; 0 = max_position_embeddings */
    int n_batch;   /* most tokens computed in one step while prefilling; 0 = the context's default (4096 or
                      2048 on a GPU, 512 on the CPU) */
    laguna_kv_type kv_type;
    int n_rollback; /* positions laguna_session_truncate may take back beyond
                       what the cache keeps anyway: sliding layers keep this
                       many extra slots (0 = none; global layers need none) */
} laguna_session_options;

/* options may be NULL (all defaults). */
laguna_status laguna_session_create(laguna_model *model, const laguna_session_options *options,
                                    laguna_session **out, laguna_error *err);
void laguna_session_free(laguna_session *session);

/* Appends tokens to the sequence and runs them through the model as batches.
 * When all_logits is non-NULL it receives n_tokens * vocab_size logits, one row
 * per fed token; the last token's logits are always kept for laguna_session_logits. */
laguna_status laguna_session_feed(laguna_session *session, const int32_t *tokens, size_t n_tokens,
                                  float *all_logits, laguna_error *err);

/* laguna_session_feed for greedy decoding: *next receives the greedy token
 * after the last fed token (what laguna_context_decode_argmax gives for it),
 * found on the device, so no logits come to the host; laguna_session_logits
 * then returns NULL until the next laguna_session_feed. */
laguna_status laguna_session_feed_greedy(laguna_session *session, const int32_t *tokens,
                                         size_t n_tokens, int32_t *next, laguna_error *err);

/* Greedy decoding with the device a step ahead of the host (queued steps:
 * laguna_context_decode_argmax_queued), for loops that feed each greedy token
 * back. laguna_session_next_greedy gives, in *next, the greedy token after
 * the last fed one (after laguna_session_feed_greedy or
 * laguna_session_feed_next_greedy; waiting for it when it is still being
 * found); with `ahead`, it first queues a step that feeds that very token,
 * so the device runs it while the host looks at *next.
 * laguna_session_feed_next_greedy(token) feeds that token without waiting
 * for its successor: a step queued ahead is taken as fed, else one is queued
 * now. Any other call on the session (and laguna_generate's end) first
 * waits for what is queued and takes back a step queued ahead that was not
 * fed, so the session then holds what it was fed. Tokens and logits are
 * those of laguna_session_feed_greedy. */
laguna_status laguna_session_next_greedy(laguna_session *session, int ahead, int32_t *next, laguna_error *err);
laguna_status laguna_session_feed_next_greedy(laguna_session *session, int32_t token, laguna_error *err);

/* Logits after the last fed token (vocab_size floats), or NULL before any
 * feed and after laguna_session_feed_greedy. */
const float *laguna_session_logits(const laguna_session *session);

/* Number of positions held so far, and the session's maximum. */
int laguna_session_position(const laguna_session *session);
int laguna_session_capacity(const laguna_session *session);

/* Keeps the first n_keep positions and forgets the rest (to re-feed a
 * different continuation). Fails, changing nothing, when sliding layers no
 * longer hold the window behind n_keep (see n_rollback). Logits are gone
 * until the next feed. */
laguna_status laguna_session_truncate(laguna_session *session, int n_keep, laguna_error *err);

/* Forgets the sequence; the next feed starts at position 0. */
void laguna_session_reset(laguna_session *session);

/* The tokens the session holds, in order (*n = laguna_session_position):
 * everything fed since the last reset, less what truncate took back. Borrowed;
 * valid until the next feed, truncate, reset or free. */
const int32_t *laguna_session_tokens(const laguna_session *session, int *n);

/* The model the session runs (borrowed). */
const laguna_model *laguna_session_model(const laguna_session *session);

/* Bytes of KV cache pages this session holds now (all layers). */
size_t laguna_session_kv_bytes(const laguna_session *session);

/* Optional observer for verification and analysis: the residual stream and
 * the chosen experts as they are computed. hidden index 0 is the embeddings,
 * index L+1 the stream after layer L, and index n_layers+1 the final norm's
 * output; rows are n_tokens x hidden_size. Expert ids are n_tokens x top_k in
 * descending order of selection score. Callbacks must not call back into the
 * session. */
typedef struct {
    void (*on_hidden)(void *user, int index, const float *rows, int n_tokens, int hidden_size);
    void (*on_experts)(void *user, int layer, const int32_t *ids, int n_tokens, int top_k);
    void *user;
} laguna_observer;

void laguna_session_set_observer(laguna_session *session, const laguna_observer *observer);
void laguna_context_set_observer(laguna_context *ctx, const laguna_observer *observer);

/* ---- sampling ------------------------------------------------------------ */

typedef struct {
    float temperature;        /* 0 = greedy */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off; applied to tokens seen (accepted) so far */
    uint64_t seed;
} laguna_sampler_params;

typedef struct laguna_sampler laguna_sampler;

/* Defaults: greedy, every filter off, seed 0. */
laguna_sampler_params laguna_sampler_default_params(void);
laguna_status laguna_sampler_create(const laguna_sampler_params *params, int vocab_size,
                                    laguna_sampler **out, laguna_error *err);
void laguna_sampler_free(laguna_sampler *sampler);
/* Chooses the next token from logits (vocab_size floats; not modified). */
int32_t laguna_sampler_sample(laguna_sampler *sampler, const float *logits);
/* Nonzero when the sampler chooses the plain argmax of the logits
 * (temperature 0, no repetition penalty): LAGUNA_ROW_ARGMAX and
 * laguna_session_feed_greedy then give its token without the logits. */
int laguna_sampler_is_greedy(const laguna_sampler *sampler);
/* Records a token of the sequence (prompt or generated) for the repetition penalty. */
void laguna_sampler_accept(laguna_sampler *sampler, int32_t token);

const char *laguna_status_name(laguna_status status);

#ifdef __cplusplus
}
#endif
#endif
