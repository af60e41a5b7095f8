/* Forward engine: run PyTorch architectures from their checkpoints on CPU in float32
 * and tap the outputs of any named module.
 *
 * A model is a description (a YAML/JSON model file, or a built-in preset such as
 * "resnet18", "resnet18-cifar", "vit", "mlp") whose module names match the keys of
 * the PyTorch state_dict; binding it to a checkpoint infers missing sizes from the
 * tensors, checks every parameter, loads the weights and plans the buffers once. */
#ifndef REPEVAL_NN_H
#define REPEVAL_NN_H

#include "repeval/cfg.h"
#include "repeval/checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct re_model re_model;

/* Load a model description: a preset name (resnet18, resnet34, resnet50,
 * resnet18-cifar, resnet34-cifar, resnet50-cifar, vit, timm-vit, mlp), a path to a model
 * file, or a Hugging Face model folder (a directory with config.json, or that
 * config.json; also timm's; see docs/models.md). An unknown model_type is refused here,
 * naming the file and key. */
re_status re_model_load(const char *spec, re_model **out);
/* 1 when the model takes token ids (Hugging Face language models and encoders): bind it
 * with input_rank 1, input[0] = T tokens per sample, and run it with re_net_forward_tokens.
 * Vision models of model folders take images (C, H, W) as other models do. */
int re_model_takes_tokens(const re_model *m);
/* 1 when the model is a model folder, whose weights are the checkpoint by default. */
int re_model_has_weights(const re_model *m);
/* Model from an already parsed description (a map with `modules:` or `preset:`). */
re_status re_model_from_cfg(const re_cfg *desc, re_model **out);
/* Destroy (NULL allowed); sets *m to NULL. */
void re_model_destroy(re_model **m);
/* Input shape per sample declared by the model (C, H, W or D); 0 dims if not declared. */
int re_model_input(const re_model *m, int64_t *dims);
/* RE_OK unless the model declares an input ('input:') other than dims[rank]; flat
 * data (rank 1) with as many values as the declared input is accepted. */
re_status re_model_check_input(const re_model *m, int rank, const int64_t *dims);

/* With an attention mask (token models), mean, cls, last and tokens skip padding. */
typedef enum re_tap_mode {
  RE_TAP_FLATTEN = 0,  /* one row per sample with every value of the output (C*H*W, T*D, D) */
  RE_TAP_POOL_MEAN = 1, /* mean over spatial positions (C) or (non-padding) tokens (D) */
  RE_TAP_CLS = 2,      /* token outputs: the first (non-padding) token (D) */
  RE_TAP_SPATIAL = 3,  /* H*W rows of C features per image (or T rows of D per sample, padding included) */
  RE_TAP_TOKENS = 4,   /* token outputs: one row of D per non-padding token; rows per sample vary */
  RE_TAP_LAST = 5      /* token outputs: the last non-padding token (D), the usual choice for decoders */
} re_tap_mode;

/* Parse "flatten" | "mean" | "cls" | "spatial" | "tokens" | "last". */
re_status re_tap_mode_parse(const char *s, re_tap_mode *mode);
/* Name of a mode ("flatten", ...). */
const char *re_tap_mode_name(re_tap_mode mode);

/* Position ids of token models: ARANGE (0..T-1 whatever the mask, what transformers'
 * forward does when no position_ids are passed; the default) or FROM_MASK (the number of
 * earlier tokens, as generate() computes them for left padding; padding gets 0). */
typedef enum re_positions { RE_POSITIONS_ARANGE = 0, RE_POSITIONS_FROM_MASK = 1 } re_positions;

typedef struct re_net re_net;

/* Bind a model to a checkpoint. input: per-sample input dims (rank 1 or 3, e.g. 1,28,28),
 * or NULL to use the model's declared input. Mismatches between description and
 * checkpoint (missing, unexpected or wrongly shaped tensors) are all listed in the
 * error, before any compute. max_batch: the largest batch forward() will see. */
re_status re_net_create(const re_model *m, const re_ckpt *ck, int input_rank, const int64_t *input,
                        int64_t max_batch, re_net **out);
/* Destroy (NULL allowed); sets *n to NULL. */
void re_net_destroy(re_net **n);

/* Let n use the activation buffers and workspace of `owner` (grown to fit both), for
 * nets that run one after the other: memory stays that of the largest net. */
re_status re_net_share_pool(re_net *n, re_net *owner);

/* Tap the output of module `name` (full dotted name, with or without the checkpoint's
 * prefix such as "model."), or of an alias (hidden_states.K, last_hidden_state);
 * *tap receives its index. */
re_status re_net_add_tap(re_net *n, const char *name, re_tap_mode mode, int *tap);
/* Features per row of a tap, and rows per sample (1, or H*W / T for spatial taps; the
 * most rows a sample can give (T) for tokens taps). */
void re_net_tap_shape(const re_net *n, int tap, int64_t *dim, int64_t *rows_per_sample);

/* Run a batch x (B x input numel, float32) through the network, filling every tap. */
re_status re_net_forward(re_net *n, const float *x, int64_t B);
/* Run a batch of token ids through a token model (re_model_takes_tokens): ids (B x T,
 * row-major; T as bound), mask (B x T, 1 token, 0 padding, right or left; NULL: no
 * padding). Ids of tokens must be below the vocabulary size; ids at padding positions
 * are not used. Fills every tap. */
re_status re_net_forward_tokens(re_net *n, const int64_t *ids, const uint8_t *mask, int64_t B, int64_t T);
/* The same with token type (segment) ids, B x T (NULL: all 0), for models with a token
 * type embedding (BERT); each must be below its size (type_vocab_size). */
re_status re_net_forward_tokens_typed(re_net *n, const int64_t *ids, const uint8_t *mask, const int64_t *types,
                                      int64_t B, int64_t T);
/* Rows of the token type embedding of a bound token model (0: it has none). */
int64_t re_net_token_types(const re_net *n);
/* Check token type ids as re_net_forward_tokens_typed does (sample0 as below). */
re_status re_net_check_token_types(const re_net *n, const int64_t *types, const uint8_t *mask, int64_t B, int64_t T,
                                   int64_t sample0);
/* Check token ids and mask as re_net_forward_tokens does, without running; errors name
 * the sample (sample0 + index in the batch) and position. */
re_status re_net_check_tokens(const re_net *n, const int64_t *ids, const uint8_t *mask, int64_t B, int64_t T,
                              int64_t sample0);
/* Choose the position ids of a token model (default RE_POSITIONS_ARANGE). */
void re_net_set_positions(re_net *n, re_positions p);
/* Tokens per sample (T) of a bound token model, 0 for other models. */
int64_t re_net_tokens(const re_net *n);
/* Output of a tap after forward: re_net_tap_rows(n, tap, ...) rows x dim, row-major. */
const float *re_net_tap_data(const re_net *n, int tap);
/* Rows the last forward wrote into a tap: B * rows_per_sample, except for tokens taps
 * (one row per non-padding token). *sample and *position (each may be NULL) receive, per
 * row, the sample's index in the batch and its token (or spatial) position. */
int64_t re_net_tap_rows(const re_net *n, int tap, const int64_t **sample, const int64_t **position);

/* Profile: time per module of the forward passes that follow (on = 1; 0 stops). Turning
 * it on restarts the counters; it adds two clock reads per module and pass. */
re_status re_net_set_profile(re_net *n, int on);
/* One module's share of the profiled passes. */
typedef struct re_net_profile_entry {
  const char *name, *type;
  const char *kernel;   /* the implementation that ran ("winograd F(4x4,3x3)", "fused into conv1", ...) */
  int64_t calls;
  double seconds;       /* wall time inside the module, its children included */
  double self_seconds;  /* minus the time of its children */
  double cpu_seconds, self_cpu_seconds; /* the same in CPU time of the process (all its threads) */
  double gflop;         /* work of those calls, 2 per multiply-add of the direct algorithm (0: not counted) */
} re_net_profile_entry;
/* Totals of the profiled passes: wall and CPU seconds in re_net_forward*, samples and batches. */
void re_net_profile_total(const re_net *n, double *seconds, double *cpu_seconds, int64_t *samples, int64_t *batches);
/* Module i's entry (execution order, i < re_net_module_count). */
void re_net_profile_get(const re_net *n, int64_t i, re_net_profile_entry *out);

/* Number of modules and their names / output shapes, for listings and errors. */
int64_t re_net_module_count(const re_net *n);
/* Name, type and output dims (per sample) of module i in execution order. */
void re_net_module(const re_net *n, int64_t i, const char **name, const char **type, int *rank, int64_t *dims);
/* Aliases (hidden_states.K, last_hidden_state) of a Hugging Face model, in order. */
int64_t re_net_alias_count(const re_net *n);
/* Alias i: its name, the module it names, and that module's output dims. */
void re_net_alias(const re_net *n, int64_t i, const char **name, const char **module, int *rank, int64_t *dims);

#ifdef __cplusplus
}
#endif
#endif
