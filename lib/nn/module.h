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
  /* transformer parts (Hugging Face models, see hf_build.c) */
  RE_MOD_EMBEDDING,     /* token ids (T) -> rows of a table (T, D); or positions when `positions` */
  RE_MOD_EMBED_SUM,     /* sum of its embedding children, then its other children in order */
  RE_MOD_RMSNORM,       /* x / sqrt(mean(x^2) + eps) * weight over the last dimension */
  RE_MOD_ATTENTION,     /* self-attention with its projections as children (q/k/v/o or fused) */
  RE_MOD_GATED_MLP,     /* down(act(gate(x)) * up(x)): children gate, up, down */
  RE_MOD_DECODER_BLOCK, /* "pre_norm_block": norm 1, attention, [layer scale], norm 2, MLP, [layer scale] */
  /* encoders and vision transformers (hf_bert.c, hf_vision.c) */
  RE_MOD_ENCODER_LAYER, /* "post_norm_block" (BERT): self-attention, dense, norm, intermediate, dense, norm */
  RE_MOD_PATCH_EMBED,   /* image (C, H, W) -> tokens: patch convolution (its child), class token,
                           register tokens, position embeddings (interpolated when asked) */
  RE_MOD_LAYER_SCALE,   /* x * lambda over the last dimension (DINOv2 layer_scale, timm ls) */
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

/* How an attention module's projections lay out q, k and v. */
typedef enum re_qkv_layout {
  RE_QKV_SEPARATE = 0, /* children q_proj, k_proj, v_proj, o_proj (Llama, Mistral, Qwen2) */
  RE_QKV_FUSED = 1,    /* one projection to [q (all heads) | k | v], then out (GPT-2 c_attn, c_proj) */
  RE_QKV_FUSED_HEADS = 2 /* one projection to per-head [q_h, k_h, v_h] groups, then out (GPT-NeoX) */
} re_qkv_layout;

/* Residual wiring of a decoder block with children ln1, attn, ln2, mlp. */
typedef enum re_residual {
  RE_RESIDUAL_SEQUENTIAL = 0, /* h = x + attn(ln1(x)); y = h + mlp(ln2(h)) */
  RE_RESIDUAL_PARALLEL = 1    /* y = x + attn(ln1(x)) + mlp(ln2(x)) (GPT-NeoX use_parallel_residual) */
} re_residual;

/* Where an embedding module takes its row indices from. */
typedef enum re_embed_src {
  RE_EMBED_IDS = 0,       /* token ids */
  RE_EMBED_POSITIONS = 1, /* position ids */
  RE_EMBED_TYPES = 2      /* token type (segment) ids, 0 unless given */
} re_embed_src;

/* Tensor names of a patch embedding's parameters. */
typedef enum re_vit_style {
  RE_VIT_HF = 0,   /* <name>.cls_token (1, 1, D), <name>.position_embeddings (1, P, D), <name>.register_tokens */
  RE_VIT_CLIP = 1, /* <name>.class_embedding (D), <name>.position_embedding.weight (P, D) */
  RE_VIT_TIMM = 2  /* cls_token (1, 1, D), reg_token (1, R, D), pos_embed (1, P, D) at the top level */
} re_vit_style;

/* Position embeddings of a patch embedding for another grid than they were trained on. */
typedef enum re_interp {
  RE_INTERP_NONE = 0,       /* refuse other image sizes (ViT, CLIP, timm without dynamic sizes) */
  RE_INTERP_BICUBIC = 1,    /* PyTorch bicubic, align_corners=False (DINOv2) */
  RE_INTERP_BICUBIC_AA = 2  /* PyTorch bicubic with antialias=True (DINOv2 with registers) */
} re_interp;

/* Position ids of a token model. */
typedef enum re_pos_rule {
  RE_POS_ARANGE = 0,     /* 0..T-1 (or counted over the mask with RE_POSITIONS_FROM_MASK) */
  RE_POS_PADDING_IDX = 1 /* RoBERTa: pad + 1 + tokens so far for ids != pad, pad for padding */
} re_pos_rule;

/* A second name for a module's output (transformers' hidden_states.K, last_hidden_state). */
typedef struct re_alias {
  char *name;
  struct re_mod *target;
} re_alias;

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
  int idx; /* position in the net's execution order (-1: the root) */
  /* transformer parts */
  int weight_t;          /* linear: weight stored (in x out), as GPT-2's Conv1D */
  re_embed_src positions; /* embedding: which ids index the table */
  int64_t kv_heads, head_dim, rot_dim; /* attention: key/value heads, width per head, rotary dims */
  int causal;            /* attention: token t sees tokens <= t */
  double attn_scale;     /* attention: score scale (1/sqrt(head_dim) unless the config says otherwise) */
  re_qkv_layout qkv;     /* attention: projection layout */
  re_residual residual;  /* decoder block wiring */
  re_mod *rope_owner;    /* attention: the module holding the rotary tables (the root) */
  int64_t block_q, block_k; /* attention: query and key block sizes */
  char *why;             /* where config-derived sizes come from, for binding errors (owned) */
  /* root of a Hugging Face model */
  char *prefix;          /* tensor-name prefix of the checkpoint ("model.", "transformer.", ...; owned) */
  re_alias *alias;       /* hidden_states.K, last_hidden_state (owned) */
  int nalias;
  float *rope_inv;       /* rot_dim / 2 inverse frequencies, as transformers computes them (owned) */
  int64_t rope_half, rope_len; /* rot_dim / 2, and positions in the tables below */
  float *rope_cos, *rope_sin;  /* (rope_len, rope_half) tables, made at bind time (owned) */
  int64_t vocab;         /* token models: rows of the token embedding */
  int tokens;            /* 1: the input is token ids (T), not features */
  int hf;                /* 1: a Hugging Face (or timm) model: tensors outside the prefix are ignored */
  int64_t type_vocab;    /* token models: rows of the token type embedding (0: none) */
  re_pos_rule pos_rule;  /* token models: how position ids are made */
  int64_t pad_id;        /* RE_POS_PADDING_IDX: the padding id */
  /* patch embeddings (RE_MOD_PATCH_EMBED) */
  re_vit_style style;
  re_interp interp;
  int has_cls;           /* a class token is prepended */
  int64_t registers;     /* register tokens after the class token (-1: as many as the tensor has) */
  int64_t pos_prefix;    /* leading tokens that get position embeddings (-1: infer from the tensor) */
  int64_t image[2];      /* image size the model takes (RE_INTERP_NONE), 0: the trained grid's */
  int64_t patch;         /* patch size */
  float *pos;            /* (pos_prefix + h*w, D) position embeddings for the bound grid (owned) */
  const char *param;     /* layer scale: the parameter's name ("lambda1", "gamma"); static */
  /* fast path (plan.c), set before the first forward pass */
  struct re_fconv *fconv; /* a convolution's packed kernel (owned) */
  struct re_fast_lin *flin; /* a linear layer's packed weights; attention: the in projection (owned) */
  struct re_fast_lin *flin2; /* attention: the out projection (owned) */
  re_mod *fused_into;    /* computed by that module: this module's output is its output */
  int relu_done;         /* batchnorm of a residual block: the ReLU after it is applied by the convolution */
  int res_fused;         /* residual block: the add and ReLU are done by its last convolution */
};

/* Allocate a module named parent.name (or name if parent is ""). */
re_status re_mod_new(const char *parent, const char *name, re_mod_type type, re_mod **out);
/* Append a child (ownership moves to the parent). */
re_status re_mod_add(re_mod *parent, re_mod *child);
/* Free a module tree (NULL allowed). */
void re_mod_free(re_mod *m);
/* Free what the fast path's plan added to a module tree (plan.c). */
void re_mod_free_plan(re_mod *m);
/* Type name as used in model files ("conv2d", "basic_block", ...). */
const char *re_mod_type_name(re_mod_type t);

/* Build the module tree of a model for a checkpoint (presets inspect its tensors). */
re_status re_model_build(const re_model *m, const re_ckpt *ck, re_mod **root, re_shape *input);

#endif
