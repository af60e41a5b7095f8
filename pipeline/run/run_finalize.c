/* repeval run, finalize: metrics from the reduced accumulators (the co-moment
 * analyses spread over the ranks), tidy metrics.csv rows, matrices, tap indices
 * and the manifest (rank 0). */
#include <archive.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <zstd.h>

#include "cli/cli.h"
#include "mpi/mpi_reduce.h"
#include "out/outdir.h"
#include "out/output.h"
#include "repeval/cca.h"
#include "repeval/npy.h"
#include "run/run.h"

#ifndef REPEVAL_GIT_REVISION
#define REPEVAL_GIT_REVISION "unknown"
#endif

/* One metrics.csv row. b < 0 for per-tap metrics. */
void run_row(runner *r, const char *analysis, const char *metric, int a, int b, const char *dataset,
                const char *param, double value, const char *why) {
  FILE *f = r->metrics;
  out_csv_field(f, analysis);
  fputc(',', f);
  out_csv_field(f, metric);
  fputc(',', f);
  out_csv_field(f, run_tap_model(r, a));
  fputc(',', f);
  out_csv_field(f, run_tap_ckpt(r, a));
  fputc(',', f);
  out_csv_field(f, run_tap_layer(r, a));
  fputc(',', f);
  if (b >= 0) {
    out_csv_field(f, run_tap_model(r, b));
    fputc(',', f);
    out_csv_field(f, run_tap_ckpt(r, b));
    fputc(',', f);
    out_csv_field(f, run_tap_layer(r, b));
  } else {
    fputs(",,", f);
  }
  fputc(',', f);
  out_csv_field(f, dataset);
  fputc(',', f);
  out_csv_field(f, param);
  fputc(',', f);
  if (!why && isfinite(value)) {
    fprintf(f, "%.17g,ok\n", value);
  } else {
    char st[300];
    snprintf(st, sizeof st, "undefined: %s", why ? why : "not finite");
    fputc(',', f);
    out_csv_field(f, st);
    fputc('\n', f);
    r->nundefined++;
  }
}

re_status run_write_taps_csv(const runner *r, const char *file, const int *taps, int P) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", r->partial, file);
  FILE *f = fopen(path, "w");
  if (!f)
    return re_err(RE_EIO, "%s: cannot write", path);
  fprintf(f, "index,model,checkpoint,layer,mode,dim\n");
  for (int p = 0; p < P; p++) {
    int t = taps ? taps[p] : p;
    fprintf(f, "%d,", p);
    out_csv_field(f, run_tap_model(r, t));
    fputc(',', f);
    out_csv_field(f, run_tap_ckpt(r, t));
    fputc(',', f);
    out_csv_field(f, run_tap_layer(r, t));
    fprintf(f, ",%s,%lld\n", run_mode_name(r->j->models[r->taps[t].model].layers[r->taps[t].layer].mode),
            (long long)r->taps[t].dim);
  }
  return fclose(f) == 0 ? RE_OK : re_err(RE_EIO, "%s: write failed", path);
}

/* ---- finalize (rank 0) ----------------------------------------------------- */

static re_status write_matrix(runner *r, const char *prefix, const char *name, const double *M, int64_t rows,
                              int64_t cols) {
  char path[4300];
  snprintf(path, sizeof path, "%s/%s_%s.npy", r->partial, prefix, name);
  int64_t shape[2] = {rows, cols};
  return re_npy_write(path, RE_DTYPE_F64, 2, shape, M);
}

static re_status finalize_cka(runner *r, pass *p, an_run *ar) {
  job_analysis *a = ar->a;
  int P = ar->P;
  double *M = NULL;
  RE_TRY(re_malloc((int64_t)P * P, sizeof(double), &M));
  char param[128];
  snprintf(param, sizeof param, "%s %s%s b=%lld", a->exact ? "exact" : "minibatch", a->rbf ? "rbf" : "linear",
           a->unbiased ? " unbiased" : " biased", (long long)(a->exact ? p->n : p->fb));
  re_status st = RE_OK;
  for (int i = 0; i < P && st == RE_OK; i++)
    for (int k = 0; k < P && st == RE_OK; k++) {
      M[(int64_t)i * P + k] = NAN;
      if (i != k && !run_pair_wanted(ar, i, k))
        continue;
      re_cka_result res;
      if (a->exact) {
        st = re_cka_linear_from_moments(p->mom, p->mom_of[ar->taps[i]], p->mom_of[ar->taps[k]], a->unbiased, &res);
      } else {
        st = re_hsic_cka(ar->h, i, k, a->unbiased, &res);
      }
      if (st != RE_OK)
        break;
      M[(int64_t)i * P + k] = res.defined ? res.value : NAN;
      if (i < k)
        run_row(r, a->name, "cka", ar->taps[i], ar->taps[k], a->dataset, param, res.value,
            res.defined ? NULL : res.reason);
    }
  if (st == RE_OK)
    st = write_matrix(r, "cka", a->name, M, P, P);
  char file[300];
  snprintf(file, sizeof file, "cka_%s_taps.csv", a->name);
  if (st == RE_OK)
    st = run_write_taps_csv(r, file, ar->taps, P);
  free(M);
  return st;
}

/* ---- finalize spread over the ranks ------------------------------------------ */

/* The CCA family and spectra are computed in contiguous blocks of their units
 * (pairs, taps) in rank order, from the same reduced co-moments on every rank, so
 * every value is computed exactly as on one rank; rows and results go back to
 * rank 0 in rank order, which is the serial order. */
static void my_block(const runner *r, int64_t n, int64_t *lo, int64_t *hi) {
  *lo = n * r->rank / r->size;
  *hi = n * (r->rank + 1) / r->size;
}

/* Collective: rank 0's reduced accumulators to every rank (chunks of 2^26 doubles). */
static re_status share_moments(runner *r, pass *p) {
  if (r->size < 2 || !p->mom)
    return RE_OK;
  int64_t len = re_moments_serial_len(p->mom);
  double *buf = NULL;
  re_status st = re_malloc(len > 0 ? len : 1, sizeof(double), &buf);
  st = re_mpi_agree(MPI_COMM_WORLD, st);
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  if (r->rank == 0)
    re_moments_serialize(p->mom, buf);
  for (int64_t off = 0; off < len; off += (1 << 26)) {
    int n = (int)(len - off < (1 << 26) ? len - off : (1 << 26));
    MPI_Bcast(buf + off, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  }
  if (r->rank != 0)
    st = re_moments_deserialize(p->mom, buf, len);
  free(buf);
  return re_mpi_agree(MPI_COMM_WORLD, st);
}

/* Rows of this rank's units go to a private buffer while it computes them. */
typedef struct rows_sink {
  FILE *keep, *f;
  char *buf;
  size_t len;
  int nund0;
} rows_sink;

static re_status rows_begin(runner *r, rows_sink *k) {
  memset(k, 0, sizeof *k);
  k->keep = r->metrics;
  k->nund0 = r->nundefined;
  if (r->size < 2)
    return RE_OK;
  k->f = open_memstream(&k->buf, &k->len);
  if (!k->f)
    return re_err(RE_ENOMEM, "finalize: no memory for the rows");
  r->metrics = k->f;
  return RE_OK;
}

/* Collective: every rank's rows appended to rank 0's metrics in rank order. */
static re_status rows_end(runner *r, rows_sink *k) {
  if (r->size < 2)
    return RE_OK;
  if (k->f)
    fclose(k->f);
  r->metrics = k->keep;
  re_status st = RE_OK;
  long long hdr[2] = {(long long)k->len, r->nundefined - k->nund0};
  if (r->rank != 0) {
    r->nundefined = k->nund0;
    MPI_Send(hdr, 2, MPI_LONG_LONG, 0, RE_TAG_FINAL_ROWS_LEN, MPI_COMM_WORLD);
    for (long long off = 0; off < hdr[0]; off += (1 << 30)) {
      int n = (int)(hdr[0] - off < (1 << 30) ? hdr[0] - off : (1 << 30));
      MPI_Send(k->buf + off, n, MPI_CHAR, 0, RE_TAG_FINAL_ROWS, MPI_COMM_WORLD);
    }
  } else {
    fwrite(k->buf, 1, k->len, r->metrics);
    for (int src = 1; src < r->size; src++) {
      MPI_Recv(hdr, 2, MPI_LONG_LONG, src, RE_TAG_FINAL_ROWS_LEN, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      r->nundefined += (int)hdr[1];
      char *b = malloc(hdr[0] > 0 ? (size_t)hdr[0] : 1);
      if (!b)
        st = re_err(RE_ENOMEM, "finalize: no memory for rank %d's rows", src);
      for (long long off = 0; off < hdr[0]; off += (1 << 30)) {
        int n = (int)(hdr[0] - off < (1 << 30) ? hdr[0] - off : (1 << 30));
        static char sink[1 << 16]; /* without memory the rows are received, then dropped */
        MPI_Recv(b ? b + off : sink, b ? n : 0, MPI_CHAR, src, RE_TAG_FINAL_ROWS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      }
      if (b)
        fwrite(b, 1, (size_t)hdr[0], r->metrics);
      free(b);
    }
  }
  free(k->buf);
  k->buf = NULL;
  return st;
}

static re_status get_eig(pass *p, re_eig **cache, int li) {
  if (cache[li])
    return RE_OK;
  return re_eig_create(re_moments_block(p->mom, li, li, NULL), re_moments_dim(p->mom, li), re_moments_n(p->mom),
                       &cache[li]);
}

static re_status finalize_cca(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  job_analysis *a = ar->a;
  re_cca_options opt = {a->ridge, a->variance};
  char param[128];
  snprintf(param, sizeof param, "ridge=%g variance=%g", a->ridge, a->variance);
  int P = ar->P;
  int64_t units = 0, lo, hi, u = -1;
  for (int i = 0; i < P; i++)
    for (int k = i + 1; k < P; k++)
      units += run_pair_wanted(ar, i, k);
  my_block(r, units, &lo, &hi);
  rows_sink sink;
  re_status st = rows_begin(r, &sink);
  for (int i = 0; i < P && st == RE_OK; i++)
    for (int k = i + 1; k < P && st == RE_OK; k++) {
      if (!run_pair_wanted(ar, i, k))
        continue;
      if (++u < lo || u >= hi)
        continue;
      int ta = ar->taps[i], tb = ar->taps[k], la = p->mom_of[ta], lb = p->mom_of[tb];
      st = get_eig(p, eigs, la);
      if (st == RE_OK)
        st = get_eig(p, eigs, lb);
      if (st != RE_OK)
        break;
      int tr;
      const double *C = re_moments_block(p->mom, la, lb, &tr);
      re_cca_result res;
      if (a->methods & CCA_CCA) {
        st = re_cca(eigs[la], eigs[lb], C, tr, &opt, &res);
        if (st == RE_OK) {
          run_row(r, a->name, "cca_mean_rho", ta, tb, a->dataset, param, res.mean_rho, res.defined ? NULL : res.reason);
          run_row(r, a->name, "cca_mean_rho2", ta, tb, a->dataset, param, res.mean_rho2, res.defined ? NULL : res.reason);
        }
        re_cca_result_free(&res);
      }
      if (st == RE_OK && (a->methods & CCA_SVCCA)) {
        st = re_svcca(eigs[la], eigs[lb], C, tr, &opt, &res);
        if (st == RE_OK)
          run_row(r, a->name, "svcca", ta, tb, a->dataset, param, res.mean_rho, res.defined ? NULL : res.reason);
        re_cca_result_free(&res);
      }
      if (st == RE_OK && (a->methods & CCA_PWCCA)) {
        st = re_pwcca(eigs[la], eigs[lb], C, tr, &opt, &res);
        if (st == RE_OK)
          run_row(r, a->name, "pwcca", ta, tb, a->dataset, param, res.pwcca, res.defined ? NULL : res.reason);
        re_cca_result_free(&res);
      }
      if (st == RE_OK && (a->methods & CCA_PROCRUSTES)) {
        double d2;
        re_status s2 = re_procrustes(eigs[la], eigs[lb], C, tr, &d2);
        if (s2 == RE_OK || s2 == RE_EUNDEFINED)
          run_row(r, a->name, "procrustes_d2", ta, tb, a->dataset, param, d2, s2 == RE_OK ? NULL : "zero variance");
        else
          st = s2;
      }
      if (st == RE_OK && (a->methods & CCA_LINREG)) {
        double yx, xy;
        re_status s2 = re_linreg_r2(eigs[la], eigs[lb], C, tr, &opt, &yx, &xy);
        if (s2 == RE_OK || s2 == RE_EUNDEFINED) {
          run_row(r, a->name, "r2_b_from_a", ta, tb, a->dataset, param, yx, s2 == RE_OK ? NULL : "zero variance");
          run_row(r, a->name, "r2_a_from_b", ta, tb, a->dataset, param, xy, s2 == RE_OK ? NULL : "zero variance");
        } else {
          st = s2;
        }
      }
    }
  re_status st2 = rows_end(r, &sink);
  return st != RE_OK ? st : st2;
}

static re_status finalize_spectrum(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  job_analysis *a = ar->a;
  int P = ar->P;
  int64_t dmax = 1, lo, hi;
  for (int q = 0; q < P; q++)
    dmax = r->taps[ar->taps[q]].dim > dmax ? r->taps[ar->taps[q]].dim : dmax;
  my_block(r, P, &lo, &hi);
  /* per tap: the eigenvalues (NaN-padded to dmax), then collapsed, effective rank, width */
  int64_t w = dmax + 3;
  double *S = NULL;
  RE_TRY(re_malloc((int64_t)P * w, sizeof(double), &S));
  for (int64_t k = 0; k < (int64_t)P * w; k++)
    S[k] = NAN;
  char param[64];
  snprintf(param, sizeof param, "collapse_fraction=%g", a->collapse_fraction);
  rows_sink sink;
  re_status st = rows_begin(r, &sink);
  for (int64_t q = lo; q < hi && st == RE_OK; q++) {
    int t = ar->taps[q], li = p->mom_of[t];
    double *row = S + q * w;
    row[dmax] = 0;
    st = get_eig(p, eigs, li);
    if (st == RE_EUNDEFINED) {
      run_row(r, a->name, "effective_rank", t, -1, a->dataset, param, NAN, re_errmsg());
      st = RE_OK;
      continue;
    }
    re_spectrum sp;
    if (st == RE_OK)
      st = re_spectrum_from_eig(eigs[li], a->collapse_fraction, &sp);
    if (st != RE_OK)
      break;
    memcpy(row, eigs[li]->values, sizeof(double) * (size_t)eigs[li]->d);
    row[dmax] = sp.collapsed, row[dmax + 1] = sp.effective_rank, row[dmax + 2] = (double)sp.d;
    run_row(r, a->name, "effective_rank", t, -1, a->dataset, param, sp.effective_rank, NULL);
    run_row(r, a->name, "effective_rank_eig", t, -1, a->dataset, param, sp.effective_rank_eig, NULL);
    run_row(r, a->name, "participation_ratio", t, -1, a->dataset, param, sp.participation_ratio, NULL);
    run_row(r, a->name, "total_variance", t, -1, a->dataset, param, sp.total_variance, NULL);
    run_row(r, a->name, "k90", t, -1, a->dataset, param, (double)sp.k90, NULL);
    run_row(r, a->name, "k99", t, -1, a->dataset, param, (double)sp.k99, NULL);
    run_row(r, a->name, "collapsed", t, -1, a->dataset, param, sp.collapsed, NULL);
  }
  re_status st2 = rows_end(r, &sink);
  st = st != RE_OK ? st : st2;
  /* the other ranks' blocks of S to rank 0 */
  for (int src = 1; src < r->size; src++) {
    int64_t a0 = (int64_t)P * src / r->size, a1 = (int64_t)P * (src + 1) / r->size;
    for (int64_t off = a0 * w; off < a1 * w; off += (1 << 26)) {
      int n = (int)(a1 * w - off < (1 << 26) ? a1 * w - off : (1 << 26));
      if (r->rank == src)
        MPI_Send(S + off, n, MPI_DOUBLE, 0, RE_TAG_FINAL_SPECTRA, MPI_COMM_WORLD);
      else if (r->rank == 0)
        MPI_Recv(S + off, n, MPI_DOUBLE, src, RE_TAG_FINAL_SPECTRA, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
  }
  st = re_mpi_agree(MPI_COMM_WORLD, st);
  if (st == RE_OK && r->rank == 0) {
    for (int q = 0; q < P; q++) {
      const double *row = S + (int64_t)q * w;
      int t = ar->taps[q];
      if (row[dmax] == 1)
        run_warn(r, "layer %s/%s/%s looks collapsed: effective rank %.1f of width %lld", run_tap_model(r, t),
                 run_tap_ckpt(r, t), run_tap_layer(r, t), row[dmax + 1], (long long)row[dmax + 2]);
      if (q > 0) /* the matrix: eigenvalues only */
        memmove(S + (int64_t)q * dmax, row, sizeof(double) * (size_t)dmax);
    }
    st = write_matrix(r, "spectrum", a->name, S, P, dmax);
    char file[300];
    snprintf(file, sizeof file, "spectrum_%s_taps.csv", a->name);
    if (st == RE_OK)
      st = run_write_taps_csv(r, file, ar->taps, P);
  }
  free(S);
  return st;
}

/* Collective: the metrics of a pass. The co-moment analyses are spread over the
 * ranks; CKA (cheap from its P x P state) and the files are rank 0's. */
re_status run_pass_finalize(runner *r, pass *p) {
  re_eig **eigs = NULL;
  re_status st = RE_OK;
  if (p->nmom)
    st = re_calloc(p->nmom, sizeof(re_eig *), &eigs);
  st = re_mpi_agree(MPI_COMM_WORLD, st);
  if (st == RE_OK)
    st = share_moments(r, p);
  for (int a = 0; a < p->nan && st == RE_OK; a++) {
    an_run *ar = &p->an[a];
    if (ar->a->type == AN_CKA)
      st = r->rank == 0 ? finalize_cka(r, p, ar) : RE_OK;
    else if (ar->a->type == AN_CCA)
      st = finalize_cca(r, p, ar, eigs);
    else
      st = finalize_spectrum(r, p, ar, eigs);
    if (st != RE_OK)
      re_err_context(st, "analysis '%s': ", ar->a->name);
    st = re_mpi_agree(MPI_COMM_WORLD, st);
  }
  for (int k = 0; eigs && k < p->nmom; k++)
    re_eig_destroy(&eigs[k]);
  free(eigs);
  return st;
}

/* ---- manifest ------------------------------------------------------------------ */

re_status run_write_manifest(runner *r, double t_total) {
  char path[4200];
  snprintf(path, sizeof path, "%s/manifest.json", r->partial);
  FILE *f = fopen(path, "w");
  if (!f)
    return re_err(RE_EIO, "%s: cannot write", path);
  job *j = r->j;
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  char *nl = strchr(mpi, '\n');
  if (nl)
    *nl = '\0';
  char *comma = strchr(mpi, ',');
  if (comma)
    *comma = '\0';
  fprintf(f, "{\n  \"repeval_version\": \"%s\",\n  \"git_revision\": \"%s\",\n  \"job\": ", REPEVAL_VERSION,
          REPEVAL_GIT_REVISION);
  re_json_string(f, j->path);
  fprintf(f, ",\n  \"name\": ");
  re_json_string(f, j->name);
  fprintf(f, ",\n  \"ranks\": %d,\n  \"libraries\": {\"mpi\": ", r->size);
  re_json_string(f, mpi);
  fprintf(f, ", \"zstd\": \"%s\", \"libarchive\": ", ZSTD_versionString());
  re_json_string(f, archive_version_string());
  fprintf(f, ", \"libyaml\": \"%s\"},\n", yaml_get_version_string());
  fprintf(f, "  \"timings_s\": {\"load\": %.3f, \"embed_accumulate\": %.3f, \"reduce\": %.3f, \"finalize\": %.3f, "
             "\"probes\": %.3f, \"total\": %.3f},\n",
          r->t_load, r->t_embed, r->t_reduce, r->t_final, r->t_probe, t_total);
  fprintf(f, "  \"inputs\": [");
  int first = 1;
  for (int d = 0; d < j->ndatasets; d++)
    for (int k = 0; k < j->datasets[d].nfiles; k++) {
      uint64_t sum = 0;
      int64_t bytes = 0;
      re_status st = out_checksum(j->datasets[d].files[k], &sum, &bytes);
      fprintf(f, "%s\n    {\"kind\": \"dataset\", \"name\": ", first ? "" : ",");
      re_json_string(f, j->datasets[d].name);
      fprintf(f, ", \"path\": ");
      re_json_string(f, j->datasets[d].files[k]);
      fprintf(f, ", \"bytes\": %lld, \"fnv1a64\": \"%016llx\"%s}", (long long)bytes, (unsigned long long)sum,
              st == RE_OK ? "" : ", \"error\": \"unreadable\"");
      first = 0;
    }
  for (int m = 0; m < j->nmodels; m++)
    for (int c = 0; c < j->models[m].nckpts; c++) {
      uint64_t sum = 0;
      int64_t bytes = 0;
      re_status st = out_checksum(j->models[m].ckpts[c].path, &sum, &bytes);
      fprintf(f, "%s\n    {\"kind\": \"checkpoint\", \"model\": ", first ? "" : ",");
      re_json_string(f, j->models[m].name);
      fprintf(f, ", \"label\": ");
      re_json_string(f, j->models[m].ckpts[c].label);
      fprintf(f, ", \"path\": ");
      re_json_string(f, j->models[m].ckpts[c].path);
      fprintf(f, ", \"bytes\": %lld, \"fnv1a64\": \"%016llx\"%s}", (long long)bytes, (unsigned long long)sum,
              st == RE_OK ? "" : ", \"error\": \"unreadable\"");
      first = 0;
    }
  fprintf(f, "\n  ],\n  \"models\": [");
  for (int m = 0; m < j->nmodels; m++) {
    fprintf(f, "%s{\"name\": ", m ? ", " : "");
    re_json_string(f, j->models[m].name);
    fprintf(f, ", \"arch\": ");
    re_json_string(f, j->models[m].arch);
    fprintf(f, ", \"checkpoints\": %d, \"layers\": [", j->models[m].nckpts);
    for (int l = 0; l < j->models[m].nlayers; l++) {
      fprintf(f, "%s", l ? ", " : "");
      char buf[600];
      snprintf(buf, sizeof buf, "%s:%s", j->models[m].layers[l].name, run_mode_name(j->models[m].layers[l].mode));
      re_json_string(f, buf);
    }
    fprintf(f, "]}");
  }
  fprintf(f, "],\n  \"analyses\": [");
  for (int a = 0; a < j->nanalyses; a++) {
    static const char *types[] = {"cka", "cca", "spectrum", "probe"};
    fprintf(f, "%s{\"name\": ", a ? ", " : "");
    re_json_string(f, j->analyses[a].name);
    const job_analysis *an = &j->analyses[a];
    fprintf(f, ", \"type\": \"%s\", \"%s\": ", types[an->type], an->type == AN_PROBE ? "train" : "dataset");
    re_json_string(f, an->dataset);
    static const char *pairs[] = {"all", "same-layer", "consecutive", "reference", "within"};
    if (an->type == AN_CKA) {
      fprintf(f, ", \"estimator\": \"%s\", \"kernel\": \"%s\", \"unbiased\": %s, \"pairs\": \"%s\"",
              an->exact ? "exact" : "minibatch", an->rbf ? "rbf" : "linear", an->unbiased ? "true" : "false",
              pairs[an->pairs]);
      if (!an->exact)
        fprintf(f, ", \"batch\": %lld", (long long)an->batch);
      if (an->rbf)
        fprintf(f, ", \"sigma\": %.17g, \"sigma_sample\": %lld", an->sigma, (long long)an->sigma_sample);
    } else if (an->type == AN_CCA) {
      static const char *m[] = {"cca", "svcca", "pwcca", "procrustes", "linreg"};
      fprintf(f, ", \"methods\": [");
      for (int k = 0, lead = 1; k < 5; k++)
        if (an->methods & (1u << k)) {
          fprintf(f, "%s\"%s\"", lead ? "" : ", ", m[k]);
          lead = 0;
        }
      fprintf(f, "], \"variance\": %.17g, \"ridge\": %.17g, \"pairs\": \"%s\"", an->variance, an->ridge,
              pairs[an->pairs]);
    } else if (an->type == AN_SPECTRUM) {
      fprintf(f, ", \"collapse_fraction\": %.17g", an->collapse_fraction);
    } else {
      static const char *kinds[] = {"logistic", "ridge", "knn"};
      fprintf(f, ", \"test\": ");
      re_json_string(f, an->test_dataset);
      if (an->val_dataset) {
        fprintf(f, ", \"val\": ");
        re_json_string(f, an->val_dataset);
      } else {
        fprintf(f, ", \"val_fraction\": %.17g", an->val_fraction);
      }
      fprintf(f, ", \"kind\": \"%s\", \"lambdas\": [", kinds[an->probe_kind]);
      for (int k = 0; k < an->nlambdas; k++)
        fprintf(f, "%s%.17g", k ? ", " : "", an->lambdas[k]);
      fprintf(f, "]");
    }
    if (an->npatterns) {
      fprintf(f, ", \"checkpoints\": [");
      for (int k = 0; k < an->npatterns; k++) {
        fprintf(f, "%s", k ? ", " : "");
        re_json_string(f, an->ckpt_patterns[k]);
      }
      fprintf(f, "]");
    }
    fprintf(f, "}");
  }
  static const char *modes[] = {"run", "part", "merge", "finalize"};
  fprintf(f, "],\n  \"mode\": \"%s\",\n  \"resumed\": %s,\n", modes[r->mode], r->resumed ? "true" : "false");
  fprintf(f, "  \"cache\": {\"dir\": ");
  if (j->cache_dir)
    re_json_string(f, j->cache_dir);
  else
    fprintf(f, "null");
  fprintf(f, ", \"hits\": %lld, \"writes\": %lld, \"rejected\": %lld},\n", (long long)r->cache_hits,
          (long long)r->cache_writes, (long long)r->cache_bad);
  fprintf(f, "  \"samples\": %lld,\n  \"undefined_values\": %d,\n  \"warnings\": [", (long long)r->total_samples,
          r->nundefined);
  for (int w = 0; w < r->nwarnings && w < RUN_MAX_WARNINGS; w++) {
    fprintf(f, "%s", w ? ", " : "");
    re_json_string(f, r->warnings[w]);
  }
  if (r->nwarnings > RUN_MAX_WARNINGS)
    fprintf(f, ", \"... %d more\"", r->nwarnings - RUN_MAX_WARNINGS);
  /* what this folder holds, so that a later run replaces exactly that (outdir.h) */
  char **files = NULL;
  int nfiles = 0;
  re_status st = out_list_files(r->partial, &files, &nfiles);
  fprintf(f, "],\n  \"output\": {\"marker\": \"%s\", \"files\": [\"manifest.json\"", OUTDIR_MARKER);
  if (j->bundle)
    fprintf(f, ", \"results.tar.zst\"");
  for (int k = 0; k < nfiles; k++) {
    if (strcmp(files[k], "manifest.json") && strcmp(files[k], OUTDIR_PARTIAL_MARKER) && !strstr(files[k], ".tmp")) {
      fprintf(f, ", ");
      re_json_string(f, files[k]);
    }
    free(files[k]);
  }
  free(files);
  fprintf(f, "]}\n}\n");
  if (fclose(f) != 0 && st == RE_OK)
    st = re_err(RE_EIO, "%s: write failed: %s", path, strerror(errno));
  return st;
}

