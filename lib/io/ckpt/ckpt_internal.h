/* Private: the shared representation that every checkpoint reader fills, and the
 * helpers that build it (ckpt_table.c). A reader validates its file and produces,
 * per tensor, a re_tensor_info and a re_tensor_loc (where the elements are, with
 * strides); checkpoint.c does the rest (lookup, conversion to float32, zero-copy
 * views, metadata). Readers include this header and ckpt_reader.h, never call into
 * checkpoint.c, and are reached only through the table in checkpoint.c. */
#ifndef REPEVAL_CKPT_INTERNAL_H
#define REPEVAL_CKPT_INTERNAL_H

#include "repeval/checkpoint.h"

typedef struct re_tensor_loc {
  const uint8_t *base;   /* start of the storage (inside a map or an owned buffer) */
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
  int64_t *shard;       /* count: index into parts of the file holding each tensor (0 without parts) */
  void *map;            /* mmap of the whole file, or NULL */
  int64_t map_len;
  uint8_t **owned;      /* owned buffers (e.g. decompressed storages) */
  int64_t nowned;
  char **meta_keys, **meta_values; /* owned */
  int64_t nmeta;
  int64_t *slots; /* open-addressing hash of names: index + 1, 0 empty */
  int64_t nslots; /* a power of two > 2 count */
  /* model folders: the files the tensors live in, each a checkpoint of its own
   * (owned; their maps and buffers back this checkpoint's locs) */
  char *folder;   /* the model folder (a cache repo's resolved snapshot), or NULL */
  re_ckpt **parts;
  int64_t nparts;
};

/* Allocate an empty checkpoint for `path` (no map yet). */
re_status re_ckpt_alloc(const char *path, re_ckpt_format format, re_ckpt **out);
/* Memory-map the whole file read-only into c->map / c->map_len; the descriptor is
 * closed again before returning. */
re_status re_ckpt_map_file(re_ckpt *c);
/* Append a tensor (name copied). Checks: unique name, ndim, non-negative shape,
 * numel/nbytes overflow, and that every element addressed by loc lies inside
 * loc->storage_bytes. Errors name the file and the tensor. */
re_status re_ckpt_add(re_ckpt *c, const char *name, re_dtype dt, int ndim, const int64_t *shape,
                      const re_tensor_loc *loc);
/* Index of the tensor called `name`, or -1 (no message). */
int64_t re_ckpt_lookup(const re_ckpt *c, const char *name);
/* Index of the metadata entry with `key`, or -1. */
int64_t re_ckpt_lookup_metadata(const re_ckpt *c, const char *key);
/* Take ownership of a heap buffer (freed on close). */
re_status re_ckpt_own(re_ckpt *c, uint8_t *buf);
/* Append a metadata key/value (both copied). */
re_status re_ckpt_add_metadata(re_ckpt *c, const char *key, const char *value);
/* Append the metadata of c->parts, in part order, whose keys c does not have yet. */
re_status re_ckpt_merge_part_metadata(re_ckpt *c);
/* Contiguous C-order strides for a shape. */
void re_ckpt_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
/* Whether tensor i's elements are contiguous in C order. */
int re_ckpt_is_contiguous(const re_tensor_info *ti, const re_tensor_loc *loc);
/* Name of a file for messages and single-tensor names: the part after the last '/'. */
const char *re_ckpt_basename(const char *path);

/* Parse a safetensors file held in buf[0, len) into c (for fuzzing and tests);
 * tensors point into buf, which must outlive c. */
re_status re_safetensors_parse(re_ckpt *c, const uint8_t *buf, int64_t len);

#endif
