/* repeval rsa E1 E2 [E3 ...]: representational dissimilarity matrices of embeddings of
 * the same stimuli (or of their class means) and their comparison for every pair. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "repeval/rsa.h"

#define MAX_FILES 256

static const re_opts_cmd CMD = {
    "rsa", "E1 E2 [E3 ...] [options]",
    "Representational similarity analysis of embeddings of the same n stimuli (.npy\n"
    "or file.npz:array, n x d each): one RDM per file (over the stimuli, or over the\n"
    "class means with --labels), compared for every pair of files.\n",
    "Output: one value per method for two files; with --json every pair.\n"};

/* One file's RDM: over its rows, or over the class means of its rows. */
static re_status file_rdm(const char *spec, const int32_t *labels, int64_t nlabels, re_rdm_metric metric, re_rdm *out,
                          int64_t *nrows) {
  re_npy *a = NULL;
  float *X = NULL;
  double *Xd = NULL;
  int32_t *cls = NULL;
  RE_TRY(re_cli_open_matrix(spec, &a));
  re_status st = RE_OK;
  int64_t n = re_npy_rows(a), d = re_npy_cols(a), k = 0;
  *nrows = n;
  if (a->h.ndim < 1 || d < 1)
    st = re_err(RE_ESHAPE, "not a matrix of samples (n x d)");
  if (st == RE_OK && labels && nlabels != n)
    st = re_err(RE_ESHAPE, "%lld rows but %lld labels", (long long)n, (long long)nlabels);
  if (st == RE_OK && labels) {
    st = re_malloc(n, d * (int64_t)sizeof(float), &X);
    if (st == RE_OK)
      st = re_npy_read_rows_f32(a, 0, n, X);
    if (st == RE_OK)
      st = re_rsa_class_means(X, n, d, d, labels, &Xd, &cls, &k);
    if (st == RE_OK)
      st = re_rdm_create(Xd, k, d, d, metric, out);
  } else if (st == RE_OK) {
    st = re_malloc(n, d * (int64_t)sizeof(double), &Xd);
    if (st == RE_OK)
      st = re_npy_read_rows_f64(a, 0, n, Xd);
    if (st == RE_OK)
      st = re_rdm_create(Xd, n, d, d, metric, out);
  }
  re_npy_close(&a);
  free(X);
  free(Xd);
  free(cls);
  if (st != RE_OK)
    re_err_context(st, "%s: ", spec);
  return st;
}

static re_status read_labels(const char *spec, int32_t **y, int64_t *n) {
  re_npy *a = NULL;
  RE_TRY(re_cli_open_matrix(spec, &a));
  re_status st = RE_OK;
  *n = re_npy_rows(a);
  if (re_npy_cols(a) != 1)
    st = re_err(RE_ESHAPE, "%s: labels must be a vector (n), got %lld columns", spec, (long long)re_npy_cols(a));
  double *v = NULL;
  if (st == RE_OK)
    st = re_malloc(*n > 0 ? *n : 1, sizeof(double), &v);
  if (st == RE_OK)
    st = re_npy_read_rows_f64(a, 0, *n, v);
  if (st == RE_OK)
    st = re_malloc(*n > 0 ? *n : 1, sizeof(int32_t), y);
  for (int64_t i = 0; st == RE_OK && i < *n; i++) {
    if (!(v[i] >= 0 && v[i] < 2147483647.0 && v[i] == floor(v[i])))
      st = re_err(RE_EDATA, "%s: label %lld is %g, expected an integer >= 0", spec, (long long)i, v[i]);
    else
      (*y)[i] = (int32_t)v[i];
  }
  free(v);
  re_npy_close(&a);
  return st;
}

int re_cmd_rsa(int argc, char **argv) {
  char *files[MAX_FILES];
  int nfiles = 0, json = 0, dist = 0;
  const char *methods_given[16], *labels_path = NULL, *prefix = NULL;
  re_opt_list ml = {methods_given, 16, 0};
  const re_opt opts[] = {
      RE_OPT_ENUM("distance", &dist, "correlation|cosine|euclidean|sqeuclidean", "D",
                  "dissimilarity of two patterns: 1 - Pearson correlation (default), 1 - cosine, Euclidean, or squared "
                  "Euclidean / features (rsatoolbox's 'euclidean')"),
      RE_OPT_LIST("method", &ml, "M",
                  "comparison of two RDMs (repeatable): spearman (default), pearson, kendall_tau_a, cosine, "
                  "whitened_cosine, whitened_pearson, or all"),
      RE_OPT_STRING("labels", &labels_path, "FILE.npy", "integer labels (n): RDMs over the class means"),
      RE_OPT_STRING("rdm-out", &prefix, "PREFIX",
                    "write PREFIX_<i>.npy per file: the upper triangle, row by row (scipy's squareform order)"),
      RE_OPT_FLAG("json", &json, "JSON with every pair and method"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.min = 2, .max = MAX_FILES, .v = files, .n = &nfiles,
                           .too_few = "give at least two embeddings", .too_many = "too many files"};
  int prc = re_opts_parse(&CMD, opts, argc, argv, &pos);
  if (prc != RE_OPTS_RUN)
    return prc;
  re_rsa_method methods[RE_RSA_NMETHODS];
  int nm = 0;
  for (int e = 0; e < ml.n; e++) {
    if (!strcmp(ml.v[e], "all")) {
      nm = 0;
      for (int m = 0; m < RE_RSA_NMETHODS; m++)
        methods[nm++] = (re_rsa_method)m;
      break;
    }
    re_rsa_method m;
    if (re_rsa_method_parse(ml.v[e], &m) != RE_OK)
      return re_cli_usage_error("rsa", "%s", re_errmsg());
    int dup = 0;
    for (int q = 0; q < nm; q++)
      dup |= methods[q] == m;
    if (!dup)
      methods[nm++] = m;
  }
  if (nm == 0)
    methods[nm++] = RE_RSA_SPEARMAN;
  int32_t *labels = NULL;
  int64_t nlabels = 0, n0 = -1;
  re_rdm *r = NULL;
  re_status st = labels_path ? read_labels(labels_path, &labels, &nlabels) : RE_OK;
  if (st == RE_OK)
    st = re_calloc(nfiles, sizeof(re_rdm), &r);
  for (int f = 0; f < nfiles && st == RE_OK; f++) {
    int64_t n;
    st = file_rdm(files[f], labels, nlabels, (re_rdm_metric)dist, &r[f], &n);
    if (st == RE_OK && n0 >= 0 && n != n0)
      st = re_err(RE_ESHAPE, "%s has %lld rows but %s has %lld: all must hold the same stimuli", files[f],
                  (long long)n, files[0], (long long)n0);
    n0 = n;
    for (int m = 0; m < nm && st == RE_OK; m++)
      st = re_rdm_prepare(&r[f], methods[m]);
    if (st == RE_OK && prefix) {
      char path[4200];
      snprintf(path, sizeof path, "%s_%d.npy", prefix, f);
      int64_t shape[1] = {r[f].m};
      st = re_npy_write(path, RE_DTYPE_F64, 1, shape, r[f].d);
    }
  }
  if (st == RE_OK && json)
    printf("{\"stimuli\": %lld, \"distance\": \"%s\", \"pairs\": [", (long long)r[0].n,
           re_rdm_metric_name((re_rdm_metric)dist));
  int first = 1;
  for (int a = 0; a < nfiles && st == RE_OK; a++)
    for (int b = a + 1; b < nfiles && st == RE_OK; b++) {
      if (json)
        printf("%s{\"a\": %d, \"b\": %d", first ? "" : ", ", a, b);
      else if (nfiles > 2)
        printf("pair %d %d\n", a, b);
      first = 0;
      for (int m = 0; m < nm && st == RE_OK; m++) {
        double v;
        st = re_rdm_compare(&r[a], &r[b], methods[m], &v);
        const char *why = NULL;
        if (st == RE_EUNDEFINED) {
          why = re_errmsg();
          st = RE_OK;
        }
        if (st != RE_OK)
          break;
        if (json) {
          printf(", \"%s\": ", re_rsa_method_name(methods[m]));
          re_json_number(stdout, v);
          if (why) {
            printf(", \"%s_reason\": ", re_rsa_method_name(methods[m]));
            re_json_string(stdout, why);
          }
        } else {
          printf("%-17s %.17g\n", re_rsa_method_name(methods[m]), v);
        }
      }
      if (json && st == RE_OK)
        printf("}");
    }
  if (st == RE_OK && json)
    printf("]}\n");
  for (int f = 0; r && f < nfiles; f++)
    re_rdm_free(&r[f]);
  free(r);
  free(labels);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
