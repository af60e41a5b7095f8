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
 * resnet18-cifar, resnet34-cifar, resnet50-cifar, vit, mlp) or a path to a model file. */
re_status re_model_load(const char *spec, re_model **out);
/* Model from an already parsed description (a map with `modules:` or `preset:`). */
re_status re_model_from_cfg(const re_cfg *desc, re_model **out);
/* Destroy (NULL allowed); sets *m to NULL. */
void re_model_destroy(re_model **m);
/* Input shape per sample declared by the model (C, H, W or D); 0 dims if not declared. */
int re_model_input(const re_model *m, int64_t *dims);
/* RE_OK unless the model declares an input ('input:') other than dims[rank]; flat
 * data (rank 1) with as many values as the declared input is accepted. */
re_status re_model_check_input(const re_model *m, int rank, const int64_t *dims);

typedef enum re_tap_mode {
  RE_TAP_FLATTEN = 0,  /* one row per sample with every value of the output (C*H*W, T*D, D) */
  RE_TAP_POOL_MEAN = 1, /* mean over spatial positions (C) or tokens (D) */
  RE_TAP_CLS = 2,      /* token outputs: the first (class) token (D) */
  RE_TAP_SPATIAL = 3   /* H*W rows of C features per image (or T rows of D per sample) */
} re_tap_mode;

/* Parse "flatten" | "mean" | "cls" | "spatial". */
re_status re_tap_mode_parse(const char *s, re_tap_mode *mode);
/* The name of a mode, as re_tap_mode_parse reads it. */
const char *re_tap_mode_name(re_tap_mode mode);

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

/* Tap the output of module `name` (full dotted name); *tap receives its index. */
re_status re_net_add_tap(re_net *n, const char *name, re_tap_mode mode, int *tap);
/* Features per row of a tap, and rows per sample (1, or H*W / T for spatial taps). */
void re_net_tap_shape(const re_net *n, int tap, int64_t *dim, int64_t *rows_per_sample);

/* Run a batch x (B x input numel, float32) through the network, filling every tap. */
re_status re_net_forward(re_net *n, const float *x, int64_t B);
/* Output of a tap after forward: rows (B * rows_per_sample) x dim, row-major. */
const float *re_net_tap_data(const re_net *n, int tap);

/* Number of modules and their names / output shapes, for listings and errors. */
int64_t re_net_module_count(const re_net *n);
/* Name, type and output dims (per sample) of module i in execution order. */
void re_net_module(const re_net *n, int64_t i, const char **name, const char **type, int *rank, int64_t *dims);

#ifdef __cplusplus
}
#endif
#endif
