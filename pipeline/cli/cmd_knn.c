/* repeval knn E1 E2 [E3 ...]: exact cosine k-NN graphs of embeddings of the same
 * samples and their neighbourhood similarity (mutual k-NN, CKNNA, cycle k-NN,
 * Jaccard) for every pair, at one or more k. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "repeval/neighbors.h"

#define MAX_FILES 256
#define MAX_K 64

static const re_opts_cmd CMD = {
    "knn", "E1 E2 [E3 ...] [options]",
    "Neighbourhood similarity of embeddings of the same n samples (.npy or\n"
    "file.npz:array, n x d each): exact cosine k-NN graphs (self excluded, ties by\n"
    "the smaller index), then mutual k-NN, CKNNA, cycle k-NN and the Jaccard index\n"
    "of the k-NN sets for every pair of files.\n",
    "Output: the five values of one pair and k; with --json every pair and k.\n"};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One file's rows as float32 (n x d). */
static re_status load(const char *spec, float **X, int64_t *n, int64_t *d) {
  re_npy *a = NULL;
  RE_TRY(re_cli_open_matrix(spec, &a));
  re_status st = RE_OK;
  if (a->h.ndim < 1 || re_npy_cols(a) < 1)
    st = re_err(RE_ESHAPE, "%s: not a matrix of samples (n x d)", spec);
  *n = re_npy_rows(a);
  *d = re_npy_cols(a);
  if (st == RE_OK)
    st = re_malloc(*n > 0 ? *n : 1, *d * (int64_t)sizeof(float), X);
  if (st == RE_OK)
    st = re_npy_read_rows_f32(a, 0, *n, *X);
  re_npy_close(&a);
  if (st != RE_OK)
    re_err_context(st, "%s: ", spec);
  return st;
}

static void json_value(const char *key, double v) {
  printf(", \"%s\": ", key);
  re_json_number(stdout, v);
}

int re_cmd_knn(int argc, char **argv) {
  char *files[MAX_FILES];
  int nfiles = 0, json = 0;
  const char *ks_given[MAX_K], *prefix = NULL;
  re_opt_list ks = {ks_given, MAX_K, 0};
  const re_opt opts[] = {
      RE_OPT_LIST("k", &ks, "K", "neighbours per sample (repeatable; default 10)"),
      RE_OPT_STRING("neighbors", &prefix, "PREFIX",
                    "write PREFIX_<i>_idx.npy (n x kmax int32) and PREFIX_<i>_sim.npy (float64) per file"),
      RE_OPT_FLAG("json", &json, "JSON with every pair, k, the time of the graphs and rows recomputed"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.min = 2, .max = MAX_FILES, .v = files, .n = &nfiles,
                           .too_few = "give at least two embeddings", .too_many = "too many files"};
  int prc = re_opts_parse(&CMD, opts, argc, argv, &pos);
  if (prc != RE_OPTS_RUN)
    return prc;
  int k[MAX_K], nk = ks.n ? ks.n : 1, kmax = 0;
  k[0] = 10;
  for (int e = 0; e < ks.n; e++) {
    char *end;
    long v = strtol(ks.v[e], &end, 10);
    if (*end || end == ks.v[e] || v < 1 || v > 100000)
      return re_cli_usage_error("knn", "--k must be an integer in [1, 100000], got '%s'", ks.v[e]);
    k[e] = (int)v;
  }
  for (int e = 0; e < nk; e++)
    kmax = k[e] > kmax ? k[e] : kmax;
  re_knn_graph *g = NULL;
  re_status st = re_calloc(nfiles, sizeof(re_knn_graph), &g);
  int64_t n0 = -1;
  double t_graph = 0;
  for (int f = 0; f < nfiles && st == RE_OK; f++) {
    float *X = NULL;
    int64_t n, d;
    st = load(files[f], &X, &n, &d);
    if (st == RE_OK && n0 >= 0 && n != n0)
      st = re_err(RE_ESHAPE, "%s has %lld rows but %s has %lld: all must hold the same samples", files[f],
                  (long long)n, files[0], (long long)n0);
    if (st == RE_OK && kmax > n - 1)
      st = re_err(RE_EINVAL, "k = %d needs more than %d samples (the files have %lld)", kmax, kmax, (long long)n);
    n0 = n;
    double t0 = now();
    if (st == RE_OK)
      st = re_knn_graph_build(X, n, d, d, kmax, &g[f]);
    t_graph += now() - t0;
    if (st != RE_OK)
      re_err_context(st, "%s: ", files[f]);
    free(X);
    if (st == RE_OK && prefix) {
      char path[4200];
      int64_t shape[2] = {n, kmax};
      snprintf(path, sizeof path, "%s_%d_idx.npy", prefix, f);
      st = re_npy_write(path, RE_DTYPE_I32, 2, shape, g[f].idx);
      snprintf(path, sizeof path, "%s_%d_sim.npy", prefix, f);
      if (st == RE_OK)
        st = re_npy_write(path, RE_DTYPE_F64, 2, shape, g[f].sim);
    }
  }
  if (st == RE_OK && json) {
    printf("{\"n\": %lld, \"files\": %d, \"kmax\": %d, \"graph_s\": %.6f, \"rechecked\": [", (long long)n0, nfiles,
           kmax, t_graph);
    for (int f = 0; f < nfiles; f++)
      printf("%s%lld", f ? ", " : "", (long long)g[f].rechecked);
    printf("], \"pairs\": [");
  }
  int first = 1;
  double t0 = now();
  for (int a = 0; a < nfiles && st == RE_OK; a++)
    for (int b = a + 1; b < nfiles && st == RE_OK; b++)
      for (int e = 0; e < nk && st == RE_OK; e++) {
        re_knn_compare c;
        st = re_knn_graph_compare(&g[a], &g[b], k[e], &c);
        if (st != RE_OK)
          break;
        if (json) {
          printf("%s{\"a\": %d, \"b\": %d, \"k\": %d", first ? "" : ", ", a, b, k[e]);
          json_value("mutual_knn", c.mutual);
          json_value("cknna", c.cknna);
          json_value("cycle_knn_ab", c.cycle_ab);
          json_value("cycle_knn_ba", c.cycle_ba);
          json_value("jaccard_knn", c.jaccard);
          if (c.cknna_undefined) {
            printf(", \"cknna_reason\": ");
            re_json_string(stdout, c.cknna_undefined);
          }
          printf("}");
        } else {
          if (nfiles > 2 || nk > 1)
            printf("pair %d %d k %d\n", a, b, k[e]);
          printf("mutual_knn   %.17g\ncknna        %.17g\ncycle_knn_ab %.17g\ncycle_knn_ba %.17g\njaccard_knn  "
                 "%.17g\n",
                 c.mutual, c.cknna, c.cycle_ab, c.cycle_ba, c.jaccard);
        }
        first = 0;
      }
  if (st == RE_OK && json)
    printf("], \"compare_s\": %.6f}\n", now() - t0);
  for (int f = 0; g && f < nfiles; f++)
    re_knn_graph_free(&g[f]);
  free(g);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
