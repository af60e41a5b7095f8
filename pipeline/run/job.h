/* The job file of `repeval run`: datasets, models with their checkpoints and taps,
 * analyses, output. Parsed from YAML and fully validated before any compute; every
 * problem names its file:line:col. The schema is documented in docs/job-spec.md. */
#ifndef REPEVAL_JOB_H
#define REPEVAL_JOB_H

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

/* Parse and validate a job file: expands ${ENV} and {a..b}/{x,y} patterns and globs,
 * checks that every referenced file exists. */
re_status job_load(const char *path, job **out);
/* The same, for a job that will run after others (repeval submit --after): patterns of
 * activations folders may match nothing yet (those jobs write them); such models then
 * have no checkpoints in *out. */
re_status job_load_deferred(const char *path, job **out);
/* Free (NULL allowed). */
void job_free(job **j);

/* Open dataset d (its format and options; normalisation is the caller's). */
re_status job_dataset_open(const job_dataset *d, re_dataset **out);
/* Index of a dataset by name, or -1. */
static inline int job_dataset_index(const job *j, const char *name) {
  for (int k = 0; k < j->ndatasets; k++)
    if (!strcmp(j->datasets[k].name, name))
      return k;
  return -1;
}

/* Parse analysis `name` of the job: the shared keys, then its kind's (run/analysis.c). */
re_status an_parse(job *j, job_analysis *a, const char *name, const re_cfg *c);
/* Free what an_parse made (the struct itself is the caller's). */
void an_free(job_analysis *a);

#endif
