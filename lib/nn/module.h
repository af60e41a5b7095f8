/* Private: the module tree of the forward engine, built from a model description
 * and bound to a checkpoint (parameters loaded, shapes inferred, buffers sized). */
#ifndef REPEVAL_NN_MODULE_H
#define REPEVAL_NN_MODULE_H

#include "ops.h"
#include "repeval/nn.h"

typedef enum re_mod_type {
  RE_MOD_SEQ = 0,
  RE_MOD_LINEAR,
  RE_MOD_CONV2D,
  RE_MOD_BATCHNORM1D,
  RE_MOD_BATCHNORM2D,
  RE_MOD_LAYERNORM,
  RE_MOD_ACT,
  RE_MOD_MAXPOOL2D,
  RE_MOD_AVGPOOL2D,
  RE_MOD_ADAPTIVE_AVGPOOL2D,
  RE_MOD_FLATTEN,
  RE_MOD_IDENTITY,
  RE_MOD_BASIC_BLOCK,
  RE_MOD_BOTTLENECK,
  RE_MOD_MHA,
  RE_MOD_ENCODER_BLOCK,
  RE_MOD_CLASS_TOKEN,
  RE_MOD_VIT_ENCODER,
  RE_MOD_TAKE_TOKEN,
  RE_MOD_TYPE_COUNT
} re_mod_type;

/* Per-sample shape: rank 1 (D), 2 (T, D) or 3 (C, H, W). */
typedef struct re_shape {
  int rank;
  int64_t d[3];
} re_shape;

int64_t re_shape_numel(const re_shape *s);

#define RE_UNSET (-1)
/* Largest kernel, stride, padding, dilation or output size a model file may give. */
#define RE_MAX_WINDOW 65536

typedef struct re_mod re_mod;
struct re_mod {
  char *name;      /* full dotted name ("" for the root) */
  re_mod_type type;
  const re_cfg *src; /* where it was described (NULL for presets) */
  /* hyper-parameters; RE_UNSET = infer from the checkpoint or use the default */
  int64_t in, out, groups, heads, start_dim;
  int64_t k[2], s[2], p[2], d[2], osz[2];
  int bias, include_pad;
  double eps;
  re_act act;
  /* parameters (owned float32 copies) */
  float *w, *b, *scale, *shift, *w2, *b2;
  /* children */
  int n;
  re_mod **child;
  /* bound shapes */
  re_shape in_shape, out_shape;
  re_conv_geom geom;
  int tap; /* -1, or index into the net's taps (the module's output is copied there) */
};

/* Allocate a module named parent.name (or name if parent is ""). */
re_status re_mod_new(const char *parent, const char *name, re_mod_type type, re_mod **out);
/* Append a child (ownership moves to the parent). */
re_status re_mod_add(re_mod *parent, re_mod *child);
/* Free a module tree (NULL allowed). */
void re_mod_free(re_mod *m);
/* Type name as used in model files ("conv2d", "basic_block", ...). */
const char *re_mod_type_name(re_mod_type t);

/* Build the module tree of a model for a checkpoint (presets inspect its tensors). */
re_status re_model_build(const re_model *m, const re_ckpt *ck, re_mod **root, re_shape *input);

#endif
