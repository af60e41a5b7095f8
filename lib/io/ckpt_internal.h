/* Private: the shared representation that every checkpoint backend fills.
 * A backend validates its file and produces, per tensor, a re_tensor_info and a
 * re_tensor_loc (where the elements are, with strides); checkpoint.c does the
 * rest (lookup, conversion to float32, zero-copy views, metadata). */
#ifndef REPEVAL_CKPT_INTERNAL_H
#define REPEVAL_CKPT_INTERNAL_H

#include "repeval/checkpoint.h"

typedef struct re_tensor_loc {
  const uint8_t *base;   /* start of the storage (inside c->map or an owned buffer) */
  int64_t storage_bytes; /* bytes available from base: every element must lie inside */
  int64_t offset;        /* element offset of the tensor's first element in the storage */
  int64_t strides[RE_TENSOR_MAX_DIMS]; /* in elements */
  int swap;              /* stored big-endian */
} re_tensor_loc;

struct re_ckpt {
  char *path;
  re_ckpt_format format;
  int64_t count, cap;
  re_tensor_info *info; /* count; info[i].name points into names[i] */
  re_tensor_loc *loc;   /* count */
  char **names;         /* owned */
  void *map;            /* mmap of the whole file, or NULL */
  int64_t map_len;
  void **extra_maps;    /* maps of the shards of a sharded checkpoint */
  int64_t *extra_lens, nextra;
  uint8_t **owned;      /* owned buffers (e.g. decompressed storages) */
  int64_t nowned;
  char **meta_keys, **meta_values; /* owned */
  int64_t nmeta;
  int64_t *slots; /* open-addressing hash of names: index + 1, 0 empty */
  int64_t nslots; /* a power of two > 2 count */
};

/* Allocate an empty checkpoint for `path` (no map yet). */
re_status re_ckpt_alloc(const char *path, re_ckpt_format format, re_ckpt **out);
/* Memory-map the whole file read-only into c->map / c->map_len. */
re_status re_ckpt_map_file(re_ckpt *c);
/* Append a tensor (name copied). Checks: unique name, ndim, non-negative shape,
 * numel/nbytes overflow, and that every element addressed by loc lies inside
 * loc->storage_bytes. Errors name the file and the tensor. */
re_status re_ckpt_add(re_ckpt *c, const char *name, re_dtype dt, int ndim, const int64_t *shape,
                      const re_tensor_loc *loc);
/* Take ownership of a heap buffer (freed on close). */
re_status re_ckpt_own(re_ckpt *c, uint8_t *buf);
/* Append a metadata key/value (both copied). */
re_status re_ckpt_add_metadata(re_ckpt *c, const char *key, const char *value);
/* Contiguous C-order strides for a shape. */
void re_ckpt_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);

/* Backends: fill an allocated checkpoint from its file. */
re_status re_safetensors_load(re_ckpt *c);
re_status re_torch_load(re_ckpt *c, const re_ckpt_options *opt);
re_status re_npz_ckpt_load(re_ckpt *c);
re_status re_npy_ckpt_load(re_ckpt *c);

/* A sharded safetensors checkpoint: c->path is its model.safetensors.index.json. */
re_status re_ckpt_load_sharded(re_ckpt *c);
/* The weights file of a model folder: model.safetensors, model.safetensors.index.json
 * or pytorch_model.bin, the first that exists, written to out. */
re_status re_ckpt_folder_file(const char *dir, char *out, size_t cap);

/* Parse a safetensors header from memory (for fuzzing): buf holds the whole file. */
re_status re_safetensors_parse(re_ckpt *c, const uint8_t *buf, int64_t len);

#endif
