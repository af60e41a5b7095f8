/* The rsa analysis: representational dissimilarity matrices of taps (over the samples
 * of the pass, or over its class means) compared for every wanted pair of taps by
 * Spearman, Pearson, Kendall's tau-a, cosine or the whitened cosine / Pearson
 * (rsatoolbox's definitions; docs/metrics.md).
 *
 * The taps' rows (and the labels) are kept in the cache shards during the pass. The
 * pairs are spread over the ranks in shares that read few taps (run/pair_share.h),
 * by their number; a rank computes the RDMs of
 * its pairs' taps from the stored rows and keeps as many as fit in
 * REPEVAL_MAX_STATS_MB (least recently used first out), so a value depends only on the
 * two taps' rows. Rows reach rank 0 in pair order; the P x P matrices by a sum in
 * which each entry has one non-zero term. RDMs are written (upper triangles) by rank
 * 0 on request. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "out/path.h"
#include "mpi/mpi_reduce.h"
#include "out/progress.h"
#include "repeval/rsa.h"
#include "run/analysis.h"

typedef struct rsa_opts {
  re_rdm_metric distance;
  re_rsa_method methods[RE_RSA_NMETHODS];
  int nm;
  int classes;    /* over the class means */
  int write_rdms; /* rsa_<name>_rdm_<q>.npy */
} rsa_opts;

static const char *const keys[] = {"distance", "methods", "over", "write_rdms", NULL};

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  rsa_opts *o = a->opts;
  const char *s = "correlation";
  RE_TRY(re_cfg_get_string(c, "distance", &s));
  if (re_rdm_metric_parse(s, &o->distance) != RE_OK)
    return re_cfg_error(re_cfg_get(c, "distance"), RE_EINVAL, "%s", re_errmsg());
  o->nm = 0;
  const re_cfg *m = re_cfg_get(c, "methods");
  if (m) {
    const re_cfg *one[1] = {m};
    const re_cfg *const *items = m->kind == RE_CFG_SEQ ? (const re_cfg *const *)m->items : one;
    int64_t count = m->kind == RE_CFG_SEQ ? m->n : 1;
    if (count < 1)
      return re_cfg_error(m, RE_EINVAL, "methods must name at least one comparison");
    for (int64_t e = 0; e < count; e++) {
      const char *v;
      re_rsa_method meth;
      RE_TRY(re_cfg_string(items[e], &v));
      if (!strcmp(v, "all")) {
        o->nm = 0;
        for (int q = 0; q < RE_RSA_NMETHODS; q++)
          o->methods[o->nm++] = (re_rsa_method)q;
        break;
      }
      if (re_rsa_method_parse(v, &meth) != RE_OK)
        return re_cfg_error(items[e], RE_EINVAL, "%s", re_errmsg());
      int dup = 0;
      for (int q = 0; q < o->nm; q++)
        dup |= o->methods[q] == meth;
      if (!dup)
        o->methods[o->nm++] = meth;
    }
  } else {
    o->methods[o->nm++] = RE_RSA_SPEARMAN;
  }
  s = "samples";
  RE_TRY(re_cfg_get_string(c, "over", &s));
  if (strcmp(s, "samples") && strcmp(s, "classes"))
    return re_cfg_error(re_cfg_get(c, "over"), RE_EINVAL, "over must be samples or classes");
  o->classes = !strcmp(s, "classes");
  if (o->classes) {
    int d = job_dataset_index(j, a->dataset);
    if (d >= 0 && !j->datasets[d].has_labels)
      return re_cfg_error(re_cfg_get(c, "over"), RE_EINVAL, "analysis '%s': over: classes needs labels, and dataset "
                                                            "'%s' has none",
                          a->name, a->dataset);
  }
  RE_TRY(re_cfg_get_bool(c, "write_rdms", &o->write_rdms));
  return RE_OK;
}

static re_status setup(runner *r, pass *p, an_run *ar) {
  const rsa_opts *o = ar->a->opts;
  return an_keep_rows(r, p, ar, o->classes);
}

/* One tap's RDM and what the methods need, or why it is undefined. */
typedef struct slot {
  int q;          /* local tap index, -1: empty */
  re_rdm rdm;
  char why[256];  /* non-empty: undefined */
  int64_t used;   /* last use, for eviction */
} slot;

/* The RDM of global tap t (local: from the stored rows). */
static re_status tap_rdm(runner *r, pass *p, const rsa_opts *o, int t, const int32_t *labels, slot *s) {
  int64_t n = p->n, dim = r->plan.taps[t].dim, K = 0;
  float *X = NULL;
  double *D = NULL;
  int32_t *cls = NULL;
  s->why[0] = '\0';
  re_status st = re_malloc(n, dim * (int64_t)sizeof(float), &X);
  if (st == RE_OK)
    st = an_stored_rows(r, p->d, t, 0, n, X, NULL);
  if (st == RE_OK && o->classes) {
    st = re_rsa_class_means(X, n, dim, dim, labels, &D, &cls, &K);
    if (st == RE_OK)
      st = re_rdm_create(D, K, dim, dim, o->distance, &s->rdm);
  } else if (st == RE_OK) {
    st = re_malloc(n, dim * (int64_t)sizeof(double), &D);
    for (int64_t e = 0; st == RE_OK && e < n * dim; e++)
      D[e] = X[e];
    if (st == RE_OK)
      st = re_rdm_create(D, n, dim, dim, o->distance, &s->rdm);
  }
  for (int m = 0; st == RE_OK && m < o->nm; m++)
    st = re_rdm_prepare(&s->rdm, o->methods[m]);
  if (st == RE_EUNDEFINED || st == RE_EDATA || (st == RE_EINVAL && n < 3)) {
    snprintf(s->why, sizeof s->why, "%s", re_errmsg());
    re_rdm_free(&s->rdm);
    st = RE_OK;
  }
  free(X);
  free(D);
  free(cls);
  if (st != RE_OK)
    re_err_context(st, "%s/%s/%s: ", run_tap_model(r, t), run_tap_ckpt(r, t), run_tap_layer(r, t));
  return st;
}

/* Bytes of one prepared RDM of s stimuli. */
static double rdm_bytes(const rsa_opts *o, int64_t s) {
  double m = (double)s * (double)(s - 1) / 2, per = 8;
  for (int e = 0; e < o->nm; e++)
    per += o->methods[e] == RE_RSA_SPEARMAN ? 8 : o->methods[e] == RE_RSA_KENDALL_TAU_A ? 8 + 8 : 0;
  return m * per;
}

/* The slot holding local tap q, computing it into the least recently used slot. */
static re_status get_slot(runner *r, pass *p, an_run *ar, slot *slots, int ns, int q, const int32_t *labels,
                          int64_t clock, slot **out) {
  int lru = 0;
  for (int e = 0; e < ns; e++) {
    if (slots[e].q == q) {
      slots[e].used = clock;
      *out = &slots[e];
      return RE_OK;
    }
    if (slots[e].q < 0 || (slots[lru].q >= 0 && slots[e].used < slots[lru].used))
      lru = e;
  }
  slot *s = &slots[lru];
  re_rdm_free(&s->rdm);
  s->q = -1;
  RE_TRY(tap_rdm(r, p, ar->a->opts, ar->taps[q], labels, s));
  s->q = q;
  s->used = clock;
  *out = s;
  return RE_OK;
}

/* Rank 0: rsa_<name>_rdm_<q>.npy of every tap in a wanted pair (and the class order). */
static re_status write_rdms(runner *r, pass *p, an_run *ar, const int32_t *labels) {
  const rsa_opts *o = ar->a->opts;
  re_status st = RE_OK;
  for (int q = 0; q < ar->P && st == RE_OK; q++) {
    if (!an_tap_paired(ar, q))
      continue;
    slot s;
    memset(&s, 0, sizeof s);
    st = tap_rdm(r, p, o, ar->taps[q], labels, &s);
    if (st == RE_OK && !s.why[0]) {
      char file[400];
      int64_t shape[1] = {s.rdm.m};
      st = re_path_join(file, sizeof file, "rsa_%s_rdm_%d.npy", ar->a->name, q);
      if (st == RE_OK)
        st = an_write_npy(r, file, RE_DTYPE_F64, 1, shape, s.rdm.d);
    } else if (st == RE_OK) {
      run_warn(r, "analysis '%s': no RDM file for %s/%s/%s: %s", ar->a->name, run_tap_model(r, ar->taps[q]),
               run_tap_ckpt(r, ar->taps[q]), run_tap_layer(r, ar->taps[q]), s.why);
    }
    re_rdm_free(&s.rdm);
  }
  if (st == RE_OK && o->classes) { /* the classes in RDM order */
    int32_t *cls = NULL;
    int64_t K = 0;
    double *means = NULL;
    float *X = NULL; /* one zero feature: only the classes are wanted */
    st = re_calloc(p->n, sizeof(float), &X);
    if (st == RE_OK)
      st = re_rsa_class_means(X, p->n, 1, 1, labels, &means, &cls, &K);
    char file[400];
    int64_t shape[1] = {K};
    if (st == RE_OK)
      st = re_path_join(file, sizeof file, "rsa_%s_classes.npy", ar->a->name);
    if (st == RE_OK)
      st = an_write_npy(r, file, RE_DTYPE_I32, 1, shape, cls);
    free(X);
    free(means);
    free(cls);
  }
  return st;
}

/* What a rank's finalize holds: the labels (over classes), the RDM slots, and per
 * method the P x P values, then per method 1 where this rank set a value. */
typedef struct rsa_work {
  int32_t *labels;
  slot *slots;
  int ns;
  double *V;
} rsa_work;

/* The labels, the RDM slots (as many as fit in the statistics budget, at least a
 * pair's two) and the value matrices. */
static re_status work_create(runner *r, pass *p, an_run *ar, rsa_work *w) {
  const rsa_opts *o = ar->a->opts;
  int P = ar->P;
  re_status st = RE_OK;
  if (o->classes) {
    st = re_malloc(p->n > 0 ? p->n : 1, sizeof(int32_t), &w->labels);
    if (st == RE_OK)
      st = an_stored_rows(r, p->d, -1, 0, p->n, NULL, w->labels);
  }
  double budget = run_stats_budget(), need = o->classes ? 0 : rdm_bytes(o, p->n);
  if (st == RE_OK && 2 * need > budget)
    st = re_err(RE_ENOMEM, "two RDMs of %lld stimuli with what %s needs take %.0f MB, more than the %.0f MB budget "
                           "(REPEVAL_MAX_STATS_MB): use fewer samples ('limit:') or over: classes",
                (long long)p->n, re_rsa_method_name(o->methods[0]), 2 * need / 1048576.0,
                budget / 1048576.0);
  if (st == RE_OK) {
    double fit = budget / (need > 0 ? need : 1);
    w->ns = fit > P ? P : fit > 2 ? (int)fit : 2;
    st = re_calloc(w->ns, sizeof(slot), &w->slots);
    for (int e = 0; st == RE_OK && e < w->ns; e++)
      w->slots[e].q = -1;
  }
  if (st == RE_OK)
    st = re_calloc(2 * (int64_t)o->nm * P * P, sizeof(double), &w->V);
  return st;
}

/* Free what work_create made. */
static void work_free(rsa_work *w) {
  for (int e = 0; w->slots && e < w->ns; e++)
    re_rdm_free(&w->slots[e].rdm);
  free(w->slots);
  free(w->labels);
  free(w->V);
}

/* The rows of this rank's share of the pairs, and their values in w->V. */
static re_status pair_rows(runner *r, pass *p, an_run *ar, rsa_work *w, rows_sink *sink) {
  const job_analysis *a = ar->a;
  const rsa_opts *o = a->opts;
  int P = ar->P, nm = o->nm;
  an_pair_it it;
  an_pairs_share(r, ar, &it);
  progress pr;
  progress_start(&pr, "RDM pairs", it.n, r->comm.rank == 0 && !r->plan.quiet);
  int64_t clock = 0;
  char param[160];
  snprintf(param, sizeof param, "distance=%s over=%s", re_rdm_metric_name(o->distance),
           o->classes ? "classes" : "samples");
  re_status st = RE_OK;
  while (st == RE_OK && an_pairs_next(ar, &it)) {
    int i = it.i, l = it.l;
    slot *si = NULL, *sl = NULL;
    st = an_rows_pair(sink, &it);
    if (st == RE_OK)
      st = get_slot(r, p, ar, w->slots, w->ns, i, w->labels, ++clock, &si);
    if (st == RE_OK) /* i's slot is the most recent: never the one evicted for l */
      st = get_slot(r, p, ar, w->slots, w->ns, l, w->labels, ++clock, &sl);
    for (int m = 0; m < nm && st == RE_OK; m++) {
      char metric[64];
      snprintf(metric, sizeof metric, "rsa_%s", re_rsa_method_name(o->methods[m]));
      const char *why = si->why[0] ? si->why : sl->why[0] ? sl->why : NULL;
      double v = NAN;
      if (!why) {
        st = re_rdm_compare(&si->rdm, &sl->rdm, o->methods[m], &v);
        if (st == RE_EUNDEFINED) {
          why = re_errmsg();
          st = RE_OK;
        }
      }
      if (st != RE_OK)
        break;
      run_row(r, a->name, metric, ar->taps[i], ar->taps[l], a->dataset, param, v, why);
      int64_t at = (int64_t)m * P * P;
      w->V[at + (int64_t)i * P + l] = w->V[at + (int64_t)l * P + i] = why ? NAN : v;
      at += (int64_t)nm * P * P;
      w->V[at + (int64_t)i * P + l] = w->V[at + (int64_t)l * P + i] = 1;
    }
    if (r->comm.rank == 0)
      progress_update(&pr, it.k + 1, 0);
  }
  progress_finish(&pr, 0);
  return st;
}

/* Rank 0, from the summed value matrices: rsa_<name>_<method>.npy, the tap table and,
 * on request, the RDMs. */
static re_status write_matrices(runner *r, pass *p, an_run *ar, double *all, const int32_t *labels) {
  const job_analysis *a = ar->a;
  const rsa_opts *o = a->opts;
  int P = ar->P, nm = o->nm;
  re_status st = RE_OK;
  for (int m = 0; m < nm && st == RE_OK; m++) {
    double *M = all + (int64_t)m * P * P, *set = all + (int64_t)(nm + m) * P * P;
    for (int64_t e = 0; e < (int64_t)P * P; e++)
      M[e] = set[e] > 0 ? M[e] : NAN;
    char name[300];
    snprintf(name, sizeof name, "%s_%s", a->name, re_rsa_method_name(o->methods[m]));
    st = an_write_matrix(r, "rsa", name, M, P, P);
  }
  if (st == RE_OK)
    st = an_write_taps(r, ar);
  if (st == RE_OK && o->write_rdms)
    st = write_rdms(r, p, ar, labels);
  return st;
}

/* Collective: rows of this rank's share of the pairs (in pair order on rank 0);
 * the matrices from a sum in which each entry has one non-zero term. */
static re_status finalize(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  (void)eigs;
  const rsa_opts *o = ar->a->opts;
  if (!an_rows_available(r, ar->a))
    return RE_OK;
  rsa_work w = {0};
  double *all = NULL;
  re_status st = re_mpi_agree(r->comm.comm, work_create(r, p, ar, &w));
  if (st == RE_OK) {
    rows_sink sink;
    st = an_rows_begin_pairs(r, &sink, ar);
    if (st == RE_OK)
      st = pair_rows(r, p, ar, &w, &sink);
    st = re_mpi_agree(r->comm.comm, an_rows_end(r, &sink, st));
  }
  int64_t len = 2 * (int64_t)o->nm * ar->P * ar->P;
  if (st == RE_OK) /* on every rank alike, after the agreement */
    st = re_mpi_agree(r->comm.comm, r->comm.rank == 0 ? re_malloc(len, sizeof(double), &all) : RE_OK);
  if (st == RE_OK)
    re_mpi_sum_doubles(r->comm.comm, w.V, all, len);
  if (st == RE_OK && r->comm.rank == 0)
    st = write_matrices(r, p, ar, all, w.labels);
  work_free(&w);
  free(all);
  return st;
}

static void manifest(FILE *f, const job_analysis *a) {
  const rsa_opts *o = a->opts;
  an_manifest_dataset(f, a);
  fprintf(f, ", \"distance\": \"%s\", \"over\": \"%s\", \"methods\": [", re_rdm_metric_name(o->distance),
          o->classes ? "classes" : "samples");
  for (int m = 0; m < o->nm; m++)
    fprintf(f, "%s\"%s\"", m ? ", " : "", re_rsa_method_name(o->methods[m]));
  fprintf(f, "], \"write_rdms\": %s", o->write_rdms ? "true" : "false");
  an_manifest_pairs(f, a);
}

const an_kind an_rsa = {
    .type = "rsa",
    .keys = keys,
    .pairs = AN_PAIRS,
    .default_pairs = PAIRS_ALL,
    .opts_size = sizeof(rsa_opts),
    .parse = parse,
    .setup = setup,
    .finalize = finalize,
    .manifest = manifest,
    .keeps_rows = 1,
};
