/* Activation exports: the per-layer activations of one checkpoint on one dataset,
 * computed by a forward pass elsewhere (tools/export-activations with PyTorch, or any
 * program that writes this layout; docs/formats.md, "Activation exports"):
 *
 *   DIR/activations.json  the manifest: the dataset the samples come from (format,
 *                         files with size and SHA-256, normalisation, sample count),
 *                         the sample-id file, and per tap its width, rows per sample
 *                         and shards
 *   DIR/<ids>.npy         1-D integers: the dataset index of every exported sample,
 *                         in row order (positions 0 .. count - 1)
 *   DIR/<shards>          .npy, .safetensors (one tensor of the file) or .rpc
 *                         (repeval/shard.h), each holding the rows of the positions
 *                         [first, first + count); a tap's shards tile all positions
 *
 * re_act_open validates the manifest and every id, and (check_shards) every shard's
 * header, shape and dtype, before any value is read; re_act_read then maps one shard
 * per tap at a time (checking it again) and converts the rows asked for to float32. */
#ifndef REPEVAL_ACTIVATIONS_H
#define REPEVAL_ACTIVATIONS_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RE_ACT_MANIFEST "activations.json"
#define RE_ACT_FORMAT "repeval-activations"
#define RE_ACT_VERSION 1
#define RE_ACT_MAX_NORM 4

/* A file the exported dataset was read from. */
typedef struct re_act_file {
  char *name;      /* as recorded (the writer's path or base name; for messages) */
  int64_t bytes;
  char sha256[65]; /* 64 lowercase hex digits */
} re_act_file;

/* The dataset an export claims to come from. */
typedef struct re_act_dataset {
  char *name;   /* the dataset's name in the job the export was made for */
  char *format; /* idx, npy, cifar, ... (as in job files) */
  re_act_file *files;
  int nfiles;
  int nnorm;    /* 0: no normalisation */
  double mean[RE_ACT_MAX_NORM], std[RE_ACT_MAX_NORM];
  int64_t count; /* samples in the whole dataset (ids are below it) */
} re_act_dataset;

/* One tap of an export. */
typedef struct re_act_tap {
  const char *name;        /* module name, as the layer of a job file */
  const char *mode;        /* flatten, mean, cls, last, spatial */
  int64_t dim;             /* features per row */
  int64_t rows_per_sample; /* 1, or H*W / T for spatial taps */
  int64_t nshards;
} re_act_tap;

typedef struct re_act re_act;

/* Open the export in folder `dir` and validate the manifest and the sample ids; with
 * check_shards, also open every shard and check its kind, dtype and shape (otherwise
 * each shard is checked when a read first maps it). No value is read yet. */
re_status re_act_open(const char *dir, int check_shards, re_act **out);
/* Close (NULL allowed); unmaps the shards and sets *a to NULL. */
void re_act_close(re_act **a);

/* The folder, the dataset and the number of exported samples. */
const char *re_act_dir(const re_act *a);
const re_act_dataset *re_act_dataset_info(const re_act *a);
int64_t re_act_count(const re_act *a);
/* Dataset index of the sample at position pos (0 <= pos < count): the ids file stays
 * memory-mapped, so an export costs no memory per sample. */
int64_t re_act_id(const re_act *a, int64_t pos);
/* The sample-id file (relative to the folder), for messages. */
const char *re_act_ids_file(const re_act *a);

/* Taps: how many, one by index, the index of (name, mode) or -1. */
int re_act_ntaps(const re_act *a);
const re_act_tap *re_act_tap_at(const re_act *a, int t);
int re_act_find_tap(const re_act *a, const char *name, const char *mode);
/* The shard file (relative to the folder) holding position pos of tap t. */
const char *re_act_shard_at(const re_act *a, int t, int64_t pos);

/* Rows of positions [pos0, pos0 + n) of tap t as float32 into out (n x rows_per_sample
 * x dim, row-major); a NaN or infinite value is RE_EDATA naming the shard, the
 * position and the sample id. */
re_status re_act_read(re_act *a, int t, int64_t pos0, int64_t n, float *out);

#ifdef __cplusplus
}
#endif
#endif
