/* Checkpoint-integrity checks of a training grid (the integrity analysis,
 * run/an_integrity.c): the checkpoints of a model read as runs of steps, and the
 * checks on what was measured for them. No MPI, no files: arrays in, findings out.
 *
 * Runs and steps come from labels: a label's last run of digits is its step and the
 * rest (with that number replaced) names its run ("seed1/epoch_03": run
 * "seed1/epoch_#", step 3; "step32000": run "step#"). When a label of the model has
 * no digits, all its checkpoints form one run without steps, in job order.
 * docs/metrics.md#checkpoint-integrity states the rules and thresholds. */
#ifndef REPEVAL_RUN_INTEGRITY_H
#define REPEVAL_RUN_INTEGRITY_H

#include <stdint.h>

#include "repeval/checkpoint.h"

/* One model's selected checkpoints and what was measured for them. */
typedef struct ig_model {
  int n;              /* checkpoints */
  const char **label; /* n, borrowed */
  int *run;           /* n: run index, runs numbered in order of first appearance */
  int64_t *step;      /* n: step (the label's last number), -1 without */
  int nruns;
  int **order;        /* nruns: positions of the run's checkpoints sorted by step (job order without steps) */
  int *norder;        /* nruns */
  char **run_name;    /* nruns: "seed1/epoch_#" ("" for a model without steps) */
  /* tensors: the union of names over the checkpoints, in strcmp order */
  int nnames;
  const char **names; /* nnames, borrowed from the checkpoints */
  int64_t *tix;        /* n x nnames: the tensor's index in the checkpoint, -1: absent */
  re_tensor_stats *st; /* n x nnames */
  uint64_t *key;       /* n x nnames: hash of (dtype, shape, element hash); 0: the checkpoint lacks the tensor */
  int *is_float;       /* nnames: a floating dtype in some checkpoint */
  int64_t *numel;      /* nnames: elements (of the first checkpoint holding it) */
  uint64_t *digest;    /* n: content digest over (name, key) in name order */
  /* CKA with neighbours, per layer (nlayers) and position: NaN when not measured */
  int nlayers;
  const char **layers; /* borrowed */
  double *cka_next;    /* nlayers x n: CKA(k, next of k in its run) */
  double *cka_skip;    /* nlayers x n: CKA(k, the one after next) */
} ig_model;

typedef struct ig_thresholds {
  double norm_jump;   /* relative change of a tensor's norm, e.g. 0.5 (50 %) */
  double norm_factor; /* ... and this many times the tensor's median |log ratio| */
  double cka_ratio;   /* 1 - CKA to both neighbours above ratio x (1 - CKA between them) ... */
  double cka_margin;  /* ... + margin */
} ig_thresholds;

typedef struct ig_finding {
  char kind[24];  /* identical_content, identical_tensors, norm_jump, cka_trend, gap, nonfinite */
  int model;      /* job model index */
  int a, b;       /* positions of the checkpoints involved (-1: none) */
  char text[600]; /* one sentence naming model, checkpoints and what was seen */
} ig_finding;

typedef struct ig_findings {
  ig_finding *v;
  int n, cap;
} ig_findings;

/* Runs and steps of n labels (m->label set, everything else filled). */
re_status ig_model_group(ig_model *m, int n, const char **labels);
/* Tensor tables for the checkpoints ckpts[0..n-1] (opened; statistics left zero). */
re_status ig_model_tensors(ig_model *m, re_ckpt *const *ckpts);
/* The statistics of checkpoint k's tensors (st: one per tensor, in the file's order) into m->st. */
void ig_model_fill(ig_model *m, int k, const re_tensor_stats *st);
/* After the statistics are in m->st: element keys and content digests (dtype and shape from ckpts). */
void ig_model_digest(ig_model *m, re_ckpt *const *ckpts);
/* CKA tables for nlayers layers (NaN). */
re_status ig_model_layers(ig_model *m, int nlayers, const char **layers);
void ig_model_free(ig_model *m);

/* The checks, each appending findings (model: the job's model index, name for messages). */
re_status ig_check_gaps(const ig_model *m, int model, const char *name, ig_findings *f);
re_status ig_check_content(const ig_model *m, int model, const char *name, ig_findings *f);
re_status ig_check_tensors(const ig_model *m, int model, const char *name, ig_findings *f);
re_status ig_check_nonfinite(const ig_model *m, int model, const char *name, ig_findings *f);
re_status ig_check_norms(const ig_model *m, int model, const char *name, const ig_thresholds *t, ig_findings *f);
re_status ig_check_cka(const ig_model *m, int model, const char *name, const ig_thresholds *t, ig_findings *f);
void ig_findings_free(ig_findings *f);

#endif
