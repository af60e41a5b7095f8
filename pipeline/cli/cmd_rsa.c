/* repeval rsa E1 E2 [E3 ...]: representational dissimilarity matrices of embeddings of
 * the same stimuli (or of their class means) and their comparison for every pair. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "out/path.h"
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

/* The command line and the RDMs built from it. */
typedef struct rsa_run {
  char *files[MAX_FILES];
  int nfiles, json, dist;
  const char *labels_path, *prefix;
  re_rsa_method methods[RE_RSA_NMETHODS];
  int nm;
  int32_t *labels;
  int64_t nlabels;
  re_rdm *r; /* one RDM per file */
} rsa_run;

/* --method values into r->methods (each once; "all": every method; default spearman);
 * a usage error's exit code or RE_OPTS_RUN. */
static int parse_methods(const re_opt_list *ml, rsa_run *r) {
  r->nm = 0;
  for (int e = 0; e < ml->n; e++) {
    if (!strcmp(ml->v[e], "all")) {
      r->nm = 0;
      for (int m = 0; m < RE_RSA_NMETHODS; m++)
        r->methods[r->nm++] = (re_rsa_method)m;
      break;
    }
    re_rsa_method m;
    if (re_rsa_method_parse(ml->v[e], &m) != RE_OK)
      return re_cli_usage_error("rsa", "%s", re_errmsg());
    int dup = 0;
    for (int q = 0; q < r->nm; q++)
      dup |= r->methods[q] == m;
    if (!dup)
      r->methods[r->nm++] = m;
  }
  if (r->nm == 0)
    r->methods[r->nm++] = RE_RSA_SPEARMAN;
  return RE_OPTS_RUN;
}

/* The labels, then every file's RDM prepared for the methods (and written with --rdm-out). */
static re_status build_rdms(rsa_run *r) {
  int64_t n0 = -1;
  re_status st = r->labels_path ? read_labels(r->labels_path, &r->labels, &r->nlabels) : RE_OK;
  if (st == RE_OK)
    st = re_calloc(r->nfiles, sizeof(re_rdm), &r->r);
  for (int f = 0; f < r->nfiles && st == RE_OK; f++) {
    int64_t n;
    st = file_rdm(r->files[f], r->labels, r->nlabels, (re_rdm_metric)r->dist, &r->r[f], &n);
    if (st == RE_OK)
      st = re_cli_same_rows(r->files, f, n, &n0, "stimuli");
    for (int m = 0; m < r->nm && st == RE_OK; m++)
      st = re_rdm_prepare(&r->r[f], r->methods[m]);
    if (st == RE_OK && r->prefix) {
      char path[4200];
      int64_t shape[1] = {r->r[f].m};
      st = re_path_join(path, sizeof path, "%s_%d.npy", r->prefix, f);
      if (st == RE_OK)
        st = re_npy_write(path, RE_DTYPE_F64, 1, shape, r->r[f].d);
    }
  }
  return st;
}

/* Every method's comparison of RDMs a and b, printed; an undefined value is printed
 * with its reason (JSON) and is no error. */
static re_status compare_pair(const rsa_run *r, int a, int b) {
  for (int m = 0; m < r->nm; m++) {
    double v;
    re_status st = re_rdm_compare(&r->r[a], &r->r[b], r->methods[m], &v);
    const char *why = NULL;
    if (st == RE_EUNDEFINED) {
      why = re_errmsg();
      st = RE_OK;
    }
    RE_TRY(st);
    const char *name = re_rsa_method_name(r->methods[m]);
    if (!r->json) {
      printf("%-17s %.17g\n", name, v);
      continue;
    }
    printf(", \"%s\": ", name);
    re_json_number(stdout, v);
    if (why) {
      printf(", \"%s_reason\": ", name);
      re_json_string(stdout, why);
    }
  }
  return RE_OK;
}

/* Compare every pair of RDMs and print the results. */
static re_status compare_pairs(const rsa_run *r) {
  re_status st = RE_OK;
  if (r->json)
    printf("{\"stimuli\": %lld, \"distance\": \"%s\", \"pairs\": [", (long long)r->r[0].n,
           re_rdm_metric_name((re_rdm_metric)r->dist));
  int first = 1;
  for (int a = 0; a < r->nfiles && st == RE_OK; a++)
    for (int b = a + 1; b < r->nfiles && st == RE_OK; b++) {
      if (r->json)
        printf("%s{\"a\": %d, \"b\": %d", first ? "" : ", ", a, b);
      else if (r->nfiles > 2)
        printf("pair %d %d\n", a, b);
      first = 0;
      st = compare_pair(r, a, b);
      if (r->json && st == RE_OK)
        printf("}");
    }
  if (st == RE_OK && r->json)
    printf("]}\n");
  return st;
}

int re_cmd_rsa(int argc, char **argv) {
  rsa_run r;
  memset(&r, 0, sizeof r);
  const char *methods_given[16];
  re_opt_list ml = {methods_given, 16, 0};
  const re_opt opts[] = {
      RE_OPT_ENUM("distance", &r.dist, "correlation|cosine|euclidean|sqeuclidean", "D",
                  "dissimilarity of two patterns: 1 - Pearson correlation (default), 1 - cosine, Euclidean, or squared "
                  "Euclidean / features (rsatoolbox's 'euclidean')"),
      RE_OPT_LIST("method", &ml, "M",
                  "comparison of two RDMs (repeatable): spearman (default), pearson, kendall_tau_a, cosine, "
                  "whitened_cosine, whitened_pearson, or all"),
      RE_OPT_STRING("labels", &r.labels_path, "FILE.npy", "integer labels (n): RDMs over the class means"),
      RE_OPT_STRING("rdm-out", &r.prefix, "PREFIX",
                    "write PREFIX_<i>.npy per file: the upper triangle, row by row (scipy's squareform order)"),
      RE_OPT_FLAG("json", &r.json, "JSON with every pair and method"),
      RE_OPT_END,
  };
  int prc = re_cli_parse_embeddings(&CMD, opts, argc, argv, r.files, MAX_FILES, &r.nfiles);
  if (prc == RE_OPTS_RUN)
    prc = parse_methods(&ml, &r);
  if (prc != RE_OPTS_RUN)
    return prc;
  re_status st = build_rdms(&r);
  if (st == RE_OK)
    st = compare_pairs(&r);
  for (int f = 0; r.r && f < r.nfiles; f++)
    re_rdm_free(&r.r[f]);
  free(r.r);
  free(r.labels);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
