/* Checkpoints: named tensors from safetensors, PyTorch (torch.save zip), .npz and .npy
 * files behind one API. Every offset, length and shape is validated against the file
 * before any data is touched; tensors are memory-mapped where the storage allows. */
#ifndef REPEVAL_CHECKPOINT_H
#define REPEVAL_CHECKPOINT_H

#include "repeval/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RE_TENSOR_MAX_DIMS 8
#define RE_CKPT_MAX_TENSORS 1000000

typedef enum re_ckpt_format {
  RE_CKPT_SAFETENSORS = 0,
  RE_CKPT_TORCH = 1, /* torch.save zip archive with data.pkl */
  RE_CKPT_NPZ = 2,
  RE_CKPT_NPY = 3
} re_ckpt_format;

typedef struct re_tensor_info {
  const char *name;  /* as in the state_dict, after prefix handling */
  re_dtype dtype;    /* stored element type */
  int ndim;          /* 0 .. RE_TENSOR_MAX_DIMS */
  int64_t shape[RE_TENSOR_MAX_DIMS];
  int64_t numel;     /* product of shape */
  int64_t nbytes;    /* numel * itemsize (logical size, not storage size) */
} re_tensor_info;

typedef struct re_ckpt_options {
  const char *state_dict_key; /* select a nested dict, e.g. "model" or "state_dict"; NULL: auto */
  int keep_module_prefix;     /* 1: keep DataParallel's "module." prefix (default 0: strip it) */
} re_ckpt_options;

typedef struct re_ckpt re_ckpt;

/* Open a checkpoint; the format is detected from the file's magic bytes. A folder
 * (a Hugging Face model folder) opens its model.safetensors, else its sharded
 * model.safetensors.index.json (every shard checked against the index's weight_map),
 * else its pytorch_model.bin; a *.index.json path opens that sharded checkpoint.
 * opt may be NULL for defaults. */
re_status re_ckpt_open(const char *path, const re_ckpt_options *opt, re_ckpt **out);
/* Close (NULL allowed); sets *c to NULL. */
void re_ckpt_close(re_ckpt **c);

/* Detected format. */
re_ckpt_format re_ckpt_format_of(const re_ckpt *c);
/* "safetensors", "pytorch", "npz", "npy". */
const char *re_ckpt_format_name(re_ckpt_format f);
/* Path the checkpoint was opened from. */
const char *re_ckpt_path(const re_ckpt *c);

/* Number of tensors. */
int64_t re_ckpt_count(const re_ckpt *c);
/* Description of tensor i (0 <= i < count), in file order. */
const re_tensor_info *re_ckpt_info(const re_ckpt *c, int64_t i);
/* Index of the tensor called `name`; RE_EINVAL naming the file if absent. */
re_status re_ckpt_find(const re_ckpt *c, const char *name, int64_t *index);

/* Copy tensor i to out (numel floats, C-contiguous in logical order), converting
 * f16/bf16/f64/integers/bool to float32 and gathering strided views. */
re_status re_ckpt_read_f32(const re_ckpt *c, int64_t i, float *out);
/* Zero-copy view of tensor i when it is stored as contiguous, aligned, little-endian
 * float32; RE_EUNSUPPORTED otherwise (then use re_ckpt_read_f32). */
re_status re_ckpt_view_f32(const re_ckpt *c, int64_t i, const float **out);

/* Metadata entries (safetensors __metadata__; scalar entries beside a PyTorch
 * state_dict such as "epoch"), as strings. */
int64_t re_ckpt_metadata_count(const re_ckpt *c);
/* Key and value of metadata entry i. */
void re_ckpt_metadata(const re_ckpt *c, int64_t i, const char **key, const char **value);

#ifdef __cplusplus
}
#endif
#endif
