/* Checkpoints: named tensors from safetensors, PyTorch (torch.save zip), .npz and .npy
 * files, and from Hugging Face model folders (single or sharded safetensors or
 * pytorch_model.bin, also inside the hub's cache layout), behind one API. Every
 * offset, length and shape is validated against the file before any data is
 * touched; tensors are memory-mapped where the storage allows. See docs/formats.md. */
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

/* Open a checkpoint. A file's format is detected from its content. A folder is a
 * Hugging Face model folder, read in this order of preference: model.safetensors,
 * model.safetensors.index.json (+ shards), pytorch_model.bin,
 * pytorch_model.bin.index.json (+ shards); a cache repo folder (models--Org--name,
 * with refs/ and snapshots/) opens the snapshot of refs/main. opt may be NULL. */
re_status re_ckpt_open(const char *path, const re_ckpt_options *opt, re_ckpt **out);
/* Close (NULL allowed); sets *c to NULL. */
void re_ckpt_close(re_ckpt **c);

/* Detected format (for a model folder: the format of its shards). */
re_ckpt_format re_ckpt_format_of(const re_ckpt *c);
/* "safetensors", "pytorch", "npz", "npy". */
const char *re_ckpt_format_name(re_ckpt_format f);
/* Path the checkpoint was opened from. */
const char *re_ckpt_path(const re_ckpt *c);
/* The model folder the tensors were read from (for a cache repo: its resolved
 * snapshot folder), where config.json would be; NULL for a single file. */
const char *re_ckpt_folder(const re_ckpt *c);
/* Number of files holding the tensors: the shards of a model folder, else 1. */
int64_t re_ckpt_shard_count(const re_ckpt *c);
/* Path of file k (0 <= k < shard count), sorted by name; for a single file, the file. */
const char *re_ckpt_shard_path(const re_ckpt *c, int64_t k);
/* Index (0 .. shard count - 1) of the file holding tensor i. */
int64_t re_ckpt_tensor_shard(const re_ckpt *c, int64_t i);

/* Number of tensors. */
int64_t re_ckpt_count(const re_ckpt *c);
/* Description of tensor i (0 <= i < count), in file order (a sharded folder: the
 * order of the index's weight_map). */
const re_tensor_info *re_ckpt_info(const re_ckpt *c, int64_t i);
/* Index of the tensor called `name`; RE_EINVAL naming the file if absent. */
re_status re_ckpt_find(const re_ckpt *c, const char *name, int64_t *index);

/* Copy tensor i to out (numel floats, C-contiguous in logical order), converting
 * f16/bf16/f64/integers/bool to float32 and gathering strided views. */
re_status re_ckpt_read_f32(const re_ckpt *c, int64_t i, float *out);
/* Tensor i has been read and is not needed soon: the pages of the memory-mapped file
 * that hold only its bytes leave the process's resident memory (a later read or view
 * faults them back from the file; tensors in owned buffers are untouched). Loading a
 * model then peaks at its float32 copy, not the copy plus the whole mapped file. */
void re_ckpt_release_pages(const re_ckpt *c, int64_t i);
/* Zero-copy view of tensor i when it is stored as contiguous, aligned, little-endian
 * float32; RE_EUNSUPPORTED otherwise (then use re_ckpt_read_f32). */
re_status re_ckpt_view_f32(const re_ckpt *c, int64_t i, const float **out);

/* Metadata entries (safetensors __metadata__; scalar entries beside a PyTorch
 * state_dict such as "epoch"), as strings. */
int64_t re_ckpt_metadata_count(const re_ckpt *c);
/* Key and value of metadata entry i. */
void re_ckpt_metadata(const re_ckpt *c, int64_t i, const char **key, const char **value);

/* Remove name prefixes: `prefixes` is a comma-separated list ("model.,gpt_neox.");
 * each tensor loses the first listed prefix it starts with, unless nothing would be
 * left. Two tensors that would end with one name: RE_EFORMAT naming both, and no
 * name changes. Invalidates earlier re_ckpt_info name pointers. */
re_status re_ckpt_strip_prefix(re_ckpt *c, const char *prefixes);

/* Content hash: FNV-1a 64 over the tensors sorted by name (name, dtype, shape and
 * their elements: all of a tensor up to 64 KiB, 16 evenly spaced 4 KiB windows of a
 * larger one). The same for the same tensors whatever the folder, the file format,
 * the sharding or the order; reads at most ~64 KiB per tensor. See docs/formats.md. */
re_status re_ckpt_content_hash(const re_ckpt *c, uint64_t *out);

/* Statistics of one tensor's elements, for integrity checks over training grids. */
typedef struct re_tensor_stats {
  uint64_t fnv1a64;  /* FNV-1a 64 of every element in C order as little-endian bytes of the stored dtype */
  double sumsq;      /* sum of x^2 over the finite elements, in float64, in C order */
  double maxabs;     /* largest |x| over the finite elements */
  int64_t nonfinite; /* NaN and infinite elements (floating dtypes) */
} re_tensor_stats;

/* Statistics of tensor i, reading every element once (blocks of 4096; strided
 * views and big-endian storage gathered as logical little-endian elements). */
re_status re_ckpt_tensor_stats(const re_ckpt *c, int64_t i, re_tensor_stats *out);

/* ---- lists of checkpoints: cache branches and run folders ------------------ */

typedef struct re_ckpt_entry {
  char *name;     /* the branch ("step1000") or the subfolder's name */
  char *revision; /* the commit (40 hex digits) a cache branch names; NULL for subfolders */
  char *path;     /* the folder to open: <repo>/snapshots/<commit>, or <dir>/<name> */
} re_ckpt_entry;

typedef struct re_ckpt_list {
  int64_t count;
  re_ckpt_entry *entries; /* count, in natural order of name */
} re_ckpt_list;

/* Whether `dir` looks like a Hugging Face cache repo folder (has refs/ and snapshots/). */
int re_hf_cache_is_repo(const char *dir);
/* The branches of a cache repo folder (.../models--Org--name) whose names match the
 * shell glob `pattern` ("step*", or an exact branch such as "main"), in natural order,
 * each with the snapshot folder it resolves to. Offline: reads refs/<branch> (40 hex
 * digits), checks that snapshots/<commit> is a folder of the repo and that its links
 * lead into the repo folder. No match: RE_EINVAL listing the branches. NULL pattern: "*". */
re_status re_hf_cache_list(const char *repo, const char *pattern, re_ckpt_list **out);
/* The subfolders of `dir` whose names match the glob `pattern` (runs/pythia-70m and
 * "step*"), in natural order. No match: RE_EINVAL. NULL pattern: "*". */
re_status re_ckpt_dir_list(const char *dir, const char *pattern, re_ckpt_list **out);
/* Free a list (NULL allowed); sets *l to NULL. */
void re_ckpt_list_free(re_ckpt_list **l);
/* Natural order of names: digit runs compare as numbers (step9 < step10 < step100),
 * the rest bytewise; names equal that way fall back to strcmp. Returns <0, 0, >0. */
int re_natural_cmp(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif
