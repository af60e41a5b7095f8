/* The integrity analysis: checks of a training grid's checkpoints before their
 * metrics are trusted (docs/metrics.md#checkpoint-integrity):
 *   identical_content  checkpoints whose tensors are all byte-identical
 *   identical_tensors  a tensor byte-identical between two steps of a run though it
 *                      changes elsewhere in the run
 *   norm_jump          a tensor's L2 norm jumping between neighbouring steps
 *   cka_trend          a checkpoint less similar (linear CKA, per layer) to both its
 *                      neighbours than they are to each other
 *   gap                steps missing from a run's regular spacing
 *   nonfinite          NaN or infinite weights
 * Findings are warnings (manifest.json) and integrity_<name>.json (the report's
 * section); every tensor's norm and hash is in integrity_<name>_tensors.csv, the
 * CKA values are metrics rows (cka_next, cka_skip).
 *
 * The tensor statistics read every element of every selected checkpoint once: the
 * checkpoints are split over the ranks in contiguous blocks, each tensor is read by
 * one rank in one fixed order, and rank 0 gathers them, so the files do not depend on
 * the number of ranks. The CKA of neighbours comes from the pass over the analysis'
 * dataset (minibatch HSIC or the co-moments, as the cka analysis). */
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "out/output.h"
#include "run/analysis.h"
#include "run/integrity.h"

extern const an_kind an_integrity;

#define IG_MAX_WARNINGS 20 /* findings also written as warnings; the rest are counted */

typedef struct integrity_opts {
  int cka;       /* the CKA check (needs a dataset pass) */
  int exact;     /* co-moments instead of minibatch HSIC */
  int64_t batch; /* minibatch size */
  ig_thresholds th;
  /* from finalize to after_passes (rank 0): per global tap, CKA with the tap of the
   * next and of the second-next checkpoint of its run (NaN: not measured) */
  double *next, *skip;
  int ntaps;
  uint8_t *pair_skip; /* per pair of the pass: 1 for (k, k + 2) */
  int nfindings;      /* for the manifest */
} integrity_opts;

static const char *const keys[] = {"cka",      "estimator", "batch",     "norm_jump",
                                   "norm_factor", "cka_ratio", "cka_margin", NULL};

static integrity_opts *io(const job_analysis *a) { return a->opts; }

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  integrity_opts *o = a->opts;
  o->cka = 1;
  o->batch = 256;
  o->th = (ig_thresholds){0.5, 10.0, 3.0, 0.02};
  RE_TRY(re_cfg_get_bool(c, "cka", &o->cka));
  if (o->cka)
    RE_TRY(an_parse_dataset(j, a, c, "dataset", 1, 0, &a->dataset));
  const char *s = NULL;
  RE_TRY(re_cfg_get_string(c, "estimator", &s));
  if (s && strcmp(s, "minibatch") && strcmp(s, "exact"))
    return re_cfg_error(re_cfg_get(c, "estimator"), RE_EINVAL, "estimator must be minibatch or exact");
  o->exact = s && !strcmp(s, "exact");
  RE_TRY(re_cfg_get_int(c, "batch", &o->batch));
  if (o->batch < 4 || o->batch > (1 << 20))
    return re_cfg_error(re_cfg_get(c, "batch"), RE_EINVAL, "batch must be in [4, %d] (unbiased HSIC needs 4 samples)",
                        1 << 20);
  struct {
    const char *key;
    double *v;
    double lo;
  } nums[] = {{"norm_jump", &o->th.norm_jump, 0}, {"norm_factor", &o->th.norm_factor, 0},
              {"cka_ratio", &o->th.cka_ratio, 0}, {"cka_margin", &o->th.cka_margin, 0}};
  for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
    RE_TRY(re_cfg_get_double(c, nums[k].key, nums[k].v));
    if (!(*nums[k].v >= nums[k].lo) || !isfinite(*nums[k].v))
      return re_cfg_error(re_cfg_get(c, nums[k].key), RE_EINVAL, "%s must be a finite number >= 0", nums[k].key);
  }
  return RE_OK;
}

static void free_opts(void *opts) {
  integrity_opts *o = opts;
  free(o->next);
  free(o->skip);
  free(o->pair_skip);
}

static int64_t stats_batch(const job_analysis *a) { return io(a)->exact ? 0 : io(a)->batch; }

/* The positions (checkpoint indices) of model m that the analysis selects. */
static re_status selected_ckpts(const job *j, const job_analysis *a, int m, int **out, int *n) {
  const job_model *jm = &j->models[m];
  *n = 0;
  RE_TRY(re_calloc(jm->nckpts, sizeof(int), out));
  for (int c = 0; c < jm->nckpts; c++)
    if (run_label_selected(a, jm->ckpts[c].label))
      (*out)[(*n)++] = c;
  return RE_OK;
}

/* Runs of model m's selected checkpoints (labels of the selection, in job order). */
static re_status group_model(const job *j, const int *ck, int n, int m, ig_model *g, const char ***labels) {
  RE_TRY(re_calloc(n > 0 ? n : 1, sizeof(char *), labels));
  for (int k = 0; k < n; k++)
    (*labels)[k] = j->models[m].ckpts[ck[k]].label;
  return ig_model_group(g, n, *labels);
}

/* ---- the CKA of neighbours on the analysis' dataset ----------------------------------- */

/* Pairs (k, k + 1) and (k, k + 2) of every run and selected layer; the analysis keeps
 * only the taps of its pairs. */
static re_status make_pairs(runner *r, an_run *ar) {
  const job *j = r->plan.j;
  integrity_opts *o = io(ar->a);
  int *loc = NULL, *ck = NULL, *keep = NULL;
  const char **labels = NULL;
  int32_t *pairs = NULL;
  int np = 0, cap = 0;
  re_status st = re_malloc(r->plan.ntaps > 0 ? r->plan.ntaps : 1, sizeof(int), &loc);
  for (int t = 0; st == RE_OK && t < r->plan.ntaps; t++)
    loc[t] = -1;
  for (int q = 0; st == RE_OK && q < ar->P; q++)
    loc[ar->taps[q]] = q;
  for (int m = 0; m < j->nmodels && st == RE_OK; m++) {
    int n = 0;
    ig_model g;
    memset(&g, 0, sizeof g);
    st = selected_ckpts(j, ar->a, m, &ck, &n);
    if (st == RE_OK)
      st = group_model(j, ck, n, m, &g, &labels);
    for (int run = 0; run < g.nruns && st == RE_OK; run++)
      for (int l = 0; l < j->models[m].nlayers && st == RE_OK; l++) {
        if (!run_layer_selected(ar->a, j->models[m].layers[l].name))
          continue;
        for (int k = 0; k + 1 < g.norder[run] && st == RE_OK; k++)
          for (int step = 1; step <= 2 && k + step < g.norder[run]; step++) {
            int ta = loc[run_tap_first(r, m, ck[g.order[run][k]]) + l];
            int tb = loc[run_tap_first(r, m, ck[g.order[run][k + step]]) + l];
            if (ta < 0 || tb < 0)
              continue;
            if (np == cap) {
              cap = cap ? 2 * cap : 64;
              st = re_realloc(&pairs, cap, 2 * sizeof(int32_t));
              if (st == RE_OK)
                st = re_realloc(&o->pair_skip, cap, 1);
              if (st != RE_OK)
                break;
            }
            pairs[2 * np] = ta, pairs[2 * np + 1] = tb;
            o->pair_skip[np++] = step == 2;
          }
      }
    ig_model_free(&g);
    free(ck);
    free(labels);
    ck = NULL;
    labels = NULL;
  }
  /* only the taps of the pairs, renumbered */
  if (st == RE_OK)
    st = re_calloc(ar->P > 0 ? ar->P : 1, sizeof(int), &keep);
  for (int k = 0; st == RE_OK && k < 2 * np; k++)
    keep[pairs[k]] = 1;
  int P = 0;
  for (int q = 0; st == RE_OK && q < ar->P; q++) {
    int idx = keep[q] ? P++ : -1;
    if (idx >= 0)
      ar->taps[idx] = ar->taps[q];
    keep[q] = idx;
  }
  for (int k = 0; st == RE_OK && k < 2 * np; k++)
    pairs[k] = keep[pairs[k]];
  if (st == RE_OK) {
    ar->P = P;
    ar->pairs = pairs;
    ar->npairs = np;
    pairs = NULL;
  }
  free(pairs);
  free(keep);
  free(loc);
  return st;
}

static re_status setup(runner *r, pass *p, an_run *ar) {
  integrity_opts *o = io(ar->a);
  free(o->next);
  free(o->skip);
  o->next = o->skip = NULL;
  o->ntaps = r->plan.ntaps;
  RE_TRY(re_malloc(o->ntaps > 0 ? o->ntaps : 1, sizeof(double), &o->next));
  RE_TRY(re_malloc(o->ntaps > 0 ? o->ntaps : 1, sizeof(double), &o->skip));
  for (int t = 0; t < o->ntaps; t++)
    o->next[t] = o->skip[t] = NAN;
  RE_TRY(make_pairs(r, ar));
  if (ar->npairs == 0) { /* no run of two checkpoints: nothing to measure on this dataset */
    ar->P = 0;
    return RE_OK;
  }
  if (o->exact)
    return run_pass_use_moments(r, p, ar, 0);
  for (int q = 0; q < ar->P; q++)
    if (r->plan.taps[ar->taps[q]].rps != 1)
      return re_cfg_error(ar->a->src, RE_EINVAL, "integrity '%s': minibatch CKA needs one row per sample; layer '%s' "
                                                 "is tapped with mode spatial (use estimator: exact, or :mean)",
                          ar->a->name, run_tap_layer(r, ar->taps[q]));
  re_hsic_config cfg = {ar->P, RE_KERNEL_LINEAR, NULL, p->sb, ar->npairs, ar->pairs};
  return re_hsic_create(&cfg, &ar->h);
}

/* Rank 0: CKA of every pair, as rows and for the checks after the passes. */
static re_status finalize(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  (void)eigs;
  integrity_opts *o = io(ar->a);
  if (r->comm.rank != 0 || ar->npairs == 0)
    return RE_OK;
  char param[96];
  snprintf(param, sizeof param, "%s linear unbiased b=%lld", o->exact ? "exact" : "minibatch",
           (long long)(o->exact ? p->n : p->sb));
  for (int k = 0; k < ar->npairs; k++) {
    int qa = ar->pairs[2 * k], qb = ar->pairs[2 * k + 1];
    re_cka_result res;
    if (o->exact)
      RE_TRY(re_cka_linear_from_moments(p->mom, p->mom_of[ar->taps[qa]], p->mom_of[ar->taps[qb]], 1, &res));
    else
      RE_TRY(re_hsic_cka(ar->h, qa, qb, 1, &res));
    double v = res.defined ? res.value : NAN;
    (o->pair_skip[k] ? o->skip : o->next)[ar->taps[qa]] = v;
    run_row(r, ar->a->name, o->pair_skip[k] ? "cka_skip" : "cka_next", ar->taps[qa], ar->taps[qb], ar->a->dataset,
            param, res.value, res.defined ? NULL : res.reason);
  }
  return RE_OK;
}

/* ---- the tensors of every selected checkpoint ------------------------------------------- */

typedef struct item {
  int m, c;
  int64_t count, first; /* tensors, index of the first in the gathered array */
} item;

/* Collective: the statistics of every tensor of every item, on rank 0 (*all). */
static re_status tensor_stats(runner *r, const item *it, int nitems, int64_t total, re_tensor_stats **all) {
  int64_t lo, hi;
  an_block(r, nitems, &lo, &hi);
  int64_t mine = 0;
  for (int64_t k = lo; k < hi; k++)
    mine += it[k].count;
  re_tensor_stats *buf = NULL;
  re_status st = re_calloc(mine > 0 ? mine : 1, sizeof(re_tensor_stats), &buf);
  int64_t at = 0;
  for (int64_t k = lo; k < hi && st == RE_OK; k++) {
    const re_ckpt *ck = r->plan.ckpts[it[k].m][it[k].c];
    for (int64_t i = 0; i < it[k].count && st == RE_OK; i++)
      st = re_ckpt_tensor_stats(ck, i, &buf[at++]);
    if (st != RE_OK)
      re_err_context(st, "integrity: %s: ", r->plan.j->models[it[k].m].ckpts[it[k].c].path);
  }
  if (st == RE_OK && (double)total * sizeof(re_tensor_stats) > (double)INT_MAX)
    st = re_err(RE_ENOMEM, "integrity: %lld tensors are too many to gather at once", (long long)total);
  if (st == RE_OK && r->comm.rank == 0)
    st = re_calloc(total > 0 ? total : 1, sizeof(re_tensor_stats), all);
  st = re_mpi_agree(r->comm.comm, st);
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  int *counts = NULL, *displs = NULL;
  if (r->comm.rank == 0) {
    st = re_calloc(r->comm.size, sizeof(int), &counts);
    if (st == RE_OK)
      st = re_calloc(r->comm.size, sizeof(int), &displs);
    for (int q = 0; st == RE_OK && q < r->comm.size; q++) {
      int64_t a = (int64_t)nitems * q / r->comm.size, b = (int64_t)nitems * (q + 1) / r->comm.size;
      int64_t n = 0;
      for (int64_t k = a; k < b; k++)
        n += it[k].count;
      displs[q] = a < nitems ? (int)(it[a].first * (int64_t)sizeof(re_tensor_stats)) : 0;
      counts[q] = (int)(n * (int64_t)sizeof(re_tensor_stats));
    }
  }
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK)
    MPI_Gatherv(buf, (int)(mine * (int64_t)sizeof(re_tensor_stats)), MPI_BYTE, r->comm.rank == 0 ? *all : NULL,
                counts, displs, MPI_BYTE, 0, r->comm.comm);
  free(counts);
  free(displs);
  free(buf);
  return st;
}

/* ---- files ------------------------------------------------------------------------------- */

static void json_labels(FILE *f, const ig_model *g, const int *pos, int n) {
  fputc('[', f);
  for (int k = 0; k < n; k++) {
    fprintf(f, "%s", k ? ", " : "");
    re_json_string(f, g->label[pos[k]]);
  }
  fputc(']', f);
}

static void json_row(FILE *f, const double *v, int n) {
  fputc('[', f);
  for (int k = 0; k < n; k++) {
    fprintf(f, "%s", k ? ", " : "");
    re_json_number(f, v[k]);
  }
  fputc(']', f);
}

/* "findings": kind, model, checkpoints and message of each. */
static void json_findings(FILE *f, const job *j, const ig_model *g, const ig_findings *fd) {
  fprintf(f, "  \"findings\": [");
  for (int k = 0; k < fd->n; k++) {
    const ig_finding *x = &fd->v[k];
    int pos[2] = {x->a, x->b};
    fprintf(f, "%s\n    {\"kind\": \"%s\", \"model\": ", k ? "," : "", x->kind);
    re_json_string(f, j->models[x->model].name);
    fprintf(f, ", \"checkpoints\": ");
    json_labels(f, &g[x->model], pos, x->a < 0 ? 0 : x->b < 0 ? 1 : 2);
    fprintf(f, ", \"message\": ");
    re_json_string(f, x->text);
    fputc('}', f);
  }
  fprintf(f, "\n  ],\n");
}

/* A model's "checkpoints" (label, run, step, digest, tensors, non-finite values) and "runs". */
static void json_checkpoints(FILE *f, const ig_model *gm) {
  fprintf(f, ",\n     \"checkpoints\": [");
  for (int k = 0; k < gm->n; k++) {
    int64_t nonfinite = 0, tensors = 0;
    for (int u = 0; u < gm->nnames; u++) {
      nonfinite += gm->st[(int64_t)k * gm->nnames + u].nonfinite;
      tensors += gm->tix[(int64_t)k * gm->nnames + u] >= 0;
    }
    fprintf(f, "%s{\"label\": ", k ? ", " : "");
    re_json_string(f, gm->label[k]);
    fprintf(f, ", \"run\": ");
    re_json_string(f, gm->run_name[gm->run[k]]);
    if (gm->step[k] >= 0)
      fprintf(f, ", \"step\": %lld", (long long)gm->step[k]);
    else
      fprintf(f, ", \"step\": null");
    fprintf(f, ", \"digest\": \"%016llx\", \"tensors\": %lld, \"nonfinite\": %lld}",
            (unsigned long long)gm->digest[k], (long long)tensors, (long long)nonfinite);
  }
  fprintf(f, "],\n     \"runs\": [");
  for (int q = 0; q < gm->nruns; q++) {
    fprintf(f, "%s{\"name\": ", q ? ", " : "");
    re_json_string(f, gm->run_name[q]);
    fprintf(f, ", \"checkpoints\": ");
    json_labels(f, gm, gm->order[q], gm->norder[q]);
    fputc('}', f);
  }
  fprintf(f, "]");
}

/* A model's "tensors": name, size, whether float, and the norm at each checkpoint. */
static re_status json_tensors(FILE *f, const ig_model *gm) {
  fprintf(f, ",\n     \"tensors\": [");
  double *row = NULL;
  if (re_malloc(gm->n > 0 ? gm->n : 1, sizeof(double), &row) != RE_OK)
    return re_err(RE_ENOMEM, "integrity: no memory for a row of norms");
  for (int u = 0; u < gm->nnames; u++) {
    for (int k = 0; k < gm->n; k++) {
      int64_t cell = (int64_t)k * gm->nnames + u;
      row[k] = gm->tix[cell] >= 0 ? sqrt(gm->st[cell].sumsq) : NAN;
    }
    fprintf(f, "%s\n      {\"name\": ", u ? "," : "");
    re_json_string(f, gm->names[u]);
    fprintf(f, ", \"numel\": %lld, \"float\": %s, \"norm\": ", (long long)gm->numel[u],
            gm->is_float[u] ? "true" : "false");
    json_row(f, row, gm->n);
    fputc('}', f);
  }
  free(row);
  fprintf(f, "]");
  return RE_OK;
}

/* `key`: per layer of the model, a row of n values. */
static void json_layer_rows(FILE *f, const char *key, const double *v, int nlayers, int n) {
  fprintf(f, ",\n     \"%s\": [", key);
  for (int l = 0; l < nlayers; l++) {
    fprintf(f, "%s", l ? ", " : "");
    json_row(f, v + (int64_t)l * n, n);
  }
  fprintf(f, "]");
}

/* integrity_<name>.json: the thresholds, the findings, and per model its checkpoints,
 * runs, tensors' norms, layers and CKA of neighbours. */
static re_status write_json(runner *r, const job_analysis *a, const ig_model *g, const ig_findings *fd) {
  const job *j = r->plan.j;
  const integrity_opts *o = io(a);
  char path[4400];
  FILE *f;
  RE_TRY(run_create_file(r, &f, path, sizeof path, "integrity_%s.json", a->name));
  fprintf(f, "{\n  \"analysis\": ");
  re_json_string(f, a->name);
  fprintf(f, ",\n  \"thresholds\": {\"norm_jump\": %.17g, \"norm_factor\": %.17g, \"cka_ratio\": %.17g, "
             "\"cka_margin\": %.17g},\n",
          o->th.norm_jump, o->th.norm_factor, o->th.cka_ratio, o->th.cka_margin);
  json_findings(f, j, g, fd);
  fprintf(f, "  \"models\": [");
  for (int m = 0; m < j->nmodels; m++) {
    const ig_model *gm = &g[m];
    fprintf(f, "%s\n    {\"name\": ", m ? "," : "");
    re_json_string(f, j->models[m].name);
    json_checkpoints(f, gm);
    re_status st = json_tensors(f, gm);
    if (st != RE_OK) {
      fclose(f);
      return st;
    }
    fprintf(f, ",\n     \"layers\": [");
    for (int l = 0; l < gm->nlayers; l++) {
      fprintf(f, "%s", l ? ", " : "");
      re_json_string(f, gm->layers[l]);
    }
    fprintf(f, "]");
    json_layer_rows(f, "cka_next", gm->cka_next, gm->nlayers, gm->n);
    json_layer_rows(f, "cka_skip", gm->cka_skip, gm->nlayers, gm->n);
    fprintf(f, "}");
  }
  fprintf(f, "\n  ]\n}\n");
  return run_close_file(f, path);
}

static re_status write_csv(runner *r, const job_analysis *a, const ig_model *g, re_ckpt ***cks) {
  const job *j = r->plan.j;
  char path[4400];
  FILE *f;
  RE_TRY(run_create_file(r, &f, path, sizeof path, "integrity_%s_tensors.csv", a->name));
  fprintf(f, "model,checkpoint,step,tensor,dtype,shape,numel,l2_norm,max_abs,nonfinite,fnv1a64\n");
  for (int m = 0; m < j->nmodels; m++) {
    const ig_model *gm = &g[m];
    for (int k = 0; k < gm->n; k++)
      for (int u = 0; u < gm->nnames; u++) {
        int64_t cell = (int64_t)k * gm->nnames + u, i = gm->tix[cell];
        if (i < 0)
          continue;
        const re_tensor_info *ti = re_ckpt_info(cks[m][k], i);
        const re_tensor_stats *s = &gm->st[cell];
        char shape[200] = "";
        for (int d = 0; d < ti->ndim; d++)
          snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? "x" : "", (long long)ti->shape[d]);
        out_csv_field(f, j->models[m].name);
        fputc(',', f);
        out_csv_field(f, gm->label[k]);
        if (gm->step[k] >= 0)
          fprintf(f, ",%lld,", (long long)gm->step[k]);
        else
          fputs(",,", f);
        out_csv_field(f, ti->name);
        fprintf(f, ",%s,%s,%lld,%.17g,%.17g,%lld,%016llx\n", re_dtype_name(ti->dtype), shape, (long long)ti->numel,
                sqrt(s->sumsq), s->maxabs, (long long)s->nonfinite, (unsigned long long)s->fnv1a64);
      }
  }
  return run_close_file(f, path);
}

/* ---- after the passes ---------------------------------------------------------------------- */

/* Rank 0's tables of the models: per model its ig_model, the labels of its selected
 * checkpoints, the layers the CKA check reads, and the selected checkpoints. */
typedef struct ig_tables {
  ig_model *g;
  const char ***labels, ***layers;
  re_ckpt ***cks;
} ig_tables;

/* The per-model arrays of the tables, zeroed. */
static re_status tables_create(int nmodels, ig_tables *tb) {
  RE_TRY(re_calloc(nmodels, sizeof(ig_model), &tb->g));
  RE_TRY(re_calloc(nmodels, sizeof(char **), &tb->labels));
  RE_TRY(re_calloc(nmodels, sizeof(char **), &tb->layers));
  return re_calloc(nmodels, sizeof(re_ckpt **), &tb->cks);
}

/* Free the tables and what each model's entries hold. */
static void tables_free(int nmodels, ig_tables *tb) {
  for (int m = 0; tb->cks && m < nmodels; m++) { /* cks is made last */
    ig_model_free(&tb->g[m]);
    free(tb->labels[m]);
    free(tb->layers[m]);
    free(tb->cks[m]);
  }
  free(tb->g);
  free(tb->labels);
  free(tb->layers);
  free(tb->cks);
}

/* Model m's layers for the CKA check (those the analysis selects) and the CKA of each
 * of its n selected checkpoints ck with their neighbours. */
static re_status model_layers(runner *r, const job_analysis *a, int m, const int *ck, int n, ig_tables *tb) {
  const job_model *jm = &r->plan.j->models[m];
  const integrity_opts *o = io(a);
  ig_model *g = &tb->g[m];
  int nl = 0, *lix = NULL;
  re_status st = re_calloc(jm->nlayers > 0 ? jm->nlayers : 1, sizeof(char *), &tb->layers[m]);
  if (st == RE_OK)
    st = re_calloc(jm->nlayers > 0 ? jm->nlayers : 1, sizeof(int), &lix);
  for (int l = 0; st == RE_OK && l < jm->nlayers; l++)
    if (o->next && run_layer_selected(a, jm->layers[l].name))
      lix[nl] = l, tb->layers[m][nl++] = jm->layers[l].name;
  if (st == RE_OK)
    st = ig_model_layers(g, nl, tb->layers[m]);
  for (int q = 0; st == RE_OK && q < nl; q++)
    for (int k = 0; k < n; k++) {
      int t = run_tap_first(r, m, ck[k]) + lix[q];
      if (t < o->ntaps) {
        g->cka_next[(int64_t)q * n + k] = o->next[t];
        g->cka_skip[(int64_t)q * n + k] = o->skip[t];
      }
    }
  free(lix);
  return st;
}

/* Model m's table from its n items (its selected checkpoints, in order) and the gathered
 * statistics: runs, tensors, digests, layers. */
static re_status model_table(runner *r, const job_analysis *a, int m, const item *it, int n,
                             const re_tensor_stats *all, ig_tables *tb) {
  ig_model *g = &tb->g[m];
  int *ck = NULL;
  re_status st = re_calloc(n > 0 ? n : 1, sizeof(int), &ck);
  for (int k = 0; st == RE_OK && k < n; k++)
    ck[k] = it[k].c;
  if (st == RE_OK)
    st = group_model(r->plan.j, ck, n, m, g, &tb->labels[m]);
  if (st == RE_OK)
    st = re_calloc(n > 0 ? n : 1, sizeof(re_ckpt *), &tb->cks[m]);
  for (int k = 0; st == RE_OK && k < n; k++)
    tb->cks[m][k] = r->plan.ckpts[m][ck[k]];
  if (st == RE_OK)
    st = ig_model_tensors(g, tb->cks[m]);
  for (int k = 0; st == RE_OK && k < n; k++)
    ig_model_fill(g, k, all + it[k].first);
  if (st == RE_OK)
    ig_model_digest(g, tb->cks[m]);
  if (st == RE_OK)
    st = model_layers(r, a, m, ck, n, tb);
  free(ck);
  return st;
}

/* The checks of one model's table, into fd. */
static re_status model_checks(const ig_model *g, int m, const char *name, const ig_thresholds *th,
                              ig_findings *fd) {
  re_status st = ig_check_content(g, m, name, fd);
  if (st == RE_OK)
    st = ig_check_tensors(g, m, name, fd);
  if (st == RE_OK)
    st = ig_check_nonfinite(g, m, name, fd);
  if (st == RE_OK)
    st = ig_check_norms(g, m, name, th, fd);
  if (st == RE_OK)
    st = ig_check_cka(g, m, name, th, fd);
  if (st == RE_OK)
    st = ig_check_gaps(g, m, name, fd);
  return st;
}

/* Rank 0: the models' tables, the checks, warnings and files. */
static re_status check_all(runner *r, const job_analysis *a, const item *it, int nitems, const re_tensor_stats *all) {
  const job *j = r->plan.j;
  integrity_opts *o = io(a);
  ig_tables tb = {0};
  ig_findings fd = {0};
  re_status st = tables_create(j->nmodels, &tb);
  int at = 0; /* items are models in order, then their selected checkpoints */
  for (int m = 0; m < j->nmodels && st == RE_OK; m++) {
    int n = 0;
    while (at + n < nitems && it[at + n].m == m)
      n++;
    st = model_table(r, a, m, it + at, n, all, &tb);
    if (st == RE_OK)
      st = model_checks(&tb.g[m], m, j->models[m].name, &o->th, &fd);
    at += n;
  }
  for (int k = 0; st == RE_OK && k < fd.n && k < IG_MAX_WARNINGS; k++)
    run_warn(r, "integrity '%s': %s", a->name, fd.v[k].text);
  if (st == RE_OK && fd.n > IG_MAX_WARNINGS)
    run_warn(r, "integrity '%s': %d more findings in integrity_%s.json", a->name, fd.n - IG_MAX_WARNINGS, a->name);
  o->nfindings = fd.n;
  if (st == RE_OK)
    st = write_json(r, a, tb.g, &fd);
  if (st == RE_OK)
    st = write_csv(r, a, tb.g, tb.cks);
  tables_free(j->nmodels, &tb);
  ig_findings_free(&fd);
  return st;
}

/* Collective: the tensor statistics of every selected checkpoint, then the checks on rank 0. */
static re_status check_analysis(runner *r, const job_analysis *a) {
  const job *j = r->plan.j;
  int nitems = 0;
  for (int m = 0; m < j->nmodels; m++)
    nitems += j->models[m].nckpts;
  item *it = NULL;
  re_status st = re_calloc(nitems > 0 ? nitems : 1, sizeof(item), &it);
  int n = 0;
  int64_t total = 0;
  for (int m = 0; m < j->nmodels && st == RE_OK; m++)
    for (int c = 0; c < j->models[m].nckpts; c++)
      if (run_label_selected(a, j->models[m].ckpts[c].label)) {
        it[n] = (item){m, c, re_ckpt_count(r->plan.ckpts[m][c]), total};
        total += it[n++].count;
      }
  st = re_mpi_agree(r->comm.comm, st);
  re_tensor_stats *all = NULL;
  if (st == RE_OK)
    st = tensor_stats(r, it, n, total, &all);
  if (st == RE_OK && r->comm.rank == 0)
    st = check_all(r, a, it, n, all);
  free(all);
  free(it);
  return re_mpi_agree(r->comm.comm, st);
}

static re_status after_passes(runner *r) {
  const job *j = r->plan.j;
  re_status st = RE_OK;
  for (int a = 0; a < j->nanalyses && st == RE_OK; a++)
    if (j->analyses[a].kind == &an_integrity)
      st = check_analysis(r, &j->analyses[a]);
  return st;
}

static void manifest(FILE *f, const job_analysis *a) {
  const integrity_opts *o = io(a);
  if (o->cka) {
    fprintf(f, ", \"dataset\": ");
    re_json_string(f, a->dataset);
    fprintf(f, ", \"estimator\": \"%s\"", o->exact ? "exact" : "minibatch");
    if (!o->exact)
      fprintf(f, ", \"batch\": %lld", (long long)o->batch);
  }
  fprintf(f, ", \"cka\": %s, \"norm_jump\": %.17g, \"norm_factor\": %.17g, \"cka_ratio\": %.17g, \"cka_margin\": "
             "%.17g, \"findings\": %d, \"file\": ",
          o->cka ? "true" : "false", o->th.norm_jump, o->th.norm_factor, o->th.cka_ratio, o->th.cka_margin,
          o->nfindings);
  char file[400]; /* as run_create_file names it */
  snprintf(file, sizeof file, "integrity_%s.json", a->name);
  re_json_string(f, file);
}

const an_kind an_integrity = {
    .type = "integrity",
    .keys = keys,
    .pairs = AN_NO_PAIRS,
    .opts_size = sizeof(integrity_opts),
    .own_dataset = 1,
    .parse = parse,
    .free_opts = free_opts,
    .stats_batch = stats_batch,
    .setup = setup,
    .finalize = finalize,
    .after_passes = after_passes,
    .after_passes_reads_checkpoints = 1,
    .manifest = manifest,
};
