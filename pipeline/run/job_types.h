/* The job of `repeval run` as data: datasets, models with their checkpoints and taps,
 * analyses, output, and lookups on them. job.c fills it from the job file (job.h);
 * the run and the analyses only read it. */
#ifndef REPEVAL_JOB_TYPES_H
#define REPEVAL_JOB_TYPES_H

#include <string.h>

#include "repeval/cfg.h"
#include "repeval/dataset.h"
#include "repeval/nn.h"

typedef struct job_dataset {
  char *name;
  char *format; /* one of re_dataset_format_names() */
  char **files; /* every input file: the format's own files [0, nmain), then the files
                 * its options name (labels, mask, the tokenizer.json) */
  int nfiles, nmain;
  char **opt_keys, **opt_vals; /* the format's other options as text, paths resolved */
  int nopts;
  int has_labels;
  int64_t folds;     /* 0: no folds; else the samples dealt into `folds` folds ... */
  int64_t *fold_use; /* ... and these nfold_use folds kept (re_dataset_open_folds) */
  int nfold_use;
  float mean[4], std[4];
  int nnorm;
  int64_t limit;  /* 0: all */
  int64_t offset; /* skip the first `offset` samples */
  const re_cfg *src;
} job_dataset;

typedef struct job_layer {
  char *name;
  re_tap_mode mode;
} job_layer;

typedef struct job_ckpt {
  char *path; /* a checkpoint file or model folder; an activations folder */
  char *label; /* path relative to the model's common folder, without extension */
} job_ckpt;

typedef struct job_model {
  char *name;
  int activations; /* the checkpoints are activations folders (computed elsewhere); no arch */
  char *arch; /* preset name or model file path; NULL for activations */
  char *state_dict_key;
  job_ckpt *ckpts;
  int nckpts;
  job_layer *layers;
  int nlayers;
  const re_cfg *src;
} job_model;

typedef enum { PAIRS_ALL = 0, PAIRS_SAME_LAYER, PAIRS_CONSECUTIVE, PAIRS_REFERENCE, PAIRS_WITHIN } job_pairs;
#define JOB_NPAIRS 5

/* The job file's name of a pair selection ("all", "same-layer", ...), in job_pairs order. */
static inline const char *job_pairs_name(job_pairs p) {
  static const char *const names[JOB_NPAIRS] = {"all", "same-layer", "consecutive", "reference", "within"};
  return names[p];
}

/* An analysis kind: its hooks (run/analysis.h). */
typedef struct an_kind an_kind;

/* An analysis of the job: what every kind shares, and the kind's own settings. */
typedef struct job_analysis {
  char *name;
  const an_kind *kind;
  char *dataset;       /* the dataset it streams (a probe's training set) */
  /* pair selection and checkpoint filter (shell patterns on labels) */
  job_pairs pairs;
  char *reference;     /* PAIRS_REFERENCE: label pattern of the reference checkpoint */
  char **ckpt_patterns;
  int npatterns;
  char **layer_filter; /* layer names (NULL: every layer of the model) */
  int nlayer_filter;
  void *opts;          /* the kind's settings (run/an_<kind>.c) */
  const re_cfg *src;
} job_analysis;

enum { JOB_IN_MEMORY_AUTO = 0, JOB_IN_MEMORY_ALL = 1, JOB_IN_MEMORY_ONE = 2 };

typedef struct job {
  char *path, *dir; /* job file and its folder (base of relative input paths) */
  char *name;
  job_dataset *datasets;
  int ndatasets;
  job_model *models;
  int nmodels;
  job_analysis *analyses;
  int nanalyses;
  char *out_dir;
  int bundle;
  int bundle_stats; /* put stats/ in the bundle too (default: no, it can be large) */
  int64_t forward_batch; /* samples per forward call (forward: {batch:}; `batch:` of old job files) */
  int64_t cache_chunk;   /* cache granularity: tap outputs are computed and cached by chunks of samples */
  int in_memory;         /* JOB_IN_MEMORY_*: checkpoints bound at once (forward: {checkpoints_in_memory:}) */
  char *cache_dir; /* embedding cache folder, NULL: off */
  int cache_f16;   /* shards hold float16 */
  int cache_default; /* cache_dir is <out_dir>.cache (follows --out) */
  int deferred;      /* job_load_deferred: activations folders may not exist yet */
  re_cfg *cfg;
} job;

/* Index of a dataset by name, or -1. */
static inline int job_dataset_index(const job *j, const char *name) {
  for (int k = 0; k < j->ndatasets; k++)
    if (!strcmp(j->datasets[k].name, name))
      return k;
  return -1;
}

#endif
