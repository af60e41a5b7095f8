/* repeval knn E1 E2 [E3 ...]: exact cosine k-NN graphs of embeddings of the same
 * samples and their neighbourhood similarity (mutual k-NN, CKNNA, cycle k-NN,
 * Jaccard) for every pair, at one or more k. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "out/path.h"
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

/* The command line and what the command builds from it. */
typedef struct knn_run {
  char *files[MAX_FILES];
  int nfiles, json;
  const char *prefix;
  int k[MAX_K], nk, kmax;
  re_knn_graph *g; /* one graph per file */
  int64_t n;       /* rows of every file */
  double t_graph;  /* seconds building the graphs */
} knn_run;

/* --k values into r->k (default 10) and their largest; a usage error's exit code or RE_OPTS_RUN. */
static int parse_ks(const re_opt_list *ks, knn_run *r) {
  r->nk = ks->n ? ks->n : 1;
  r->k[0] = 10;
  for (int e = 0; e < ks->n; e++) {
    char *end;
    long v = strtol(ks->v[e], &end, 10);
    if (*end || end == ks->v[e] || v < 1 || v > 100000)
      return re_cli_usage_error("knn", "--k must be an integer in [1, 100000], got '%s'", ks->v[e]);
    r->k[e] = (int)v;
  }
  r->kmax = 0;
  for (int e = 0; e < r->nk; e++)
    r->kmax = r->k[e] > r->kmax ? r->k[e] : r->kmax;
  return RE_OPTS_RUN;
}

/* --neighbors: PREFIX_<f>_idx.npy and PREFIX_<f>_sim.npy of graph f. */
static re_status write_neighbors(const knn_run *r, int f) {
  char path[4200];
  int64_t shape[2] = {r->n, r->kmax};
  RE_TRY(re_path_join(path, sizeof path, "%s_%d_idx.npy", r->prefix, f));
  RE_TRY(re_npy_write(path, RE_DTYPE_I32, 2, shape, r->g[f].idx));
  RE_TRY(re_path_join(path, sizeof path, "%s_%d_sim.npy", r->prefix, f));
  return re_npy_write(path, RE_DTYPE_F64, 2, shape, r->g[f].sim);
}

/* Read every file and build its k-NN graph (timed), checking that they hold the same rows. */
static re_status build_graphs(knn_run *r) {
  re_status st = re_calloc(r->nfiles, sizeof(re_knn_graph), &r->g);
  r->n = -1;
  for (int f = 0; f < r->nfiles && st == RE_OK; f++) {
    float *X = NULL;
    int64_t n = 0, d;
    st = load(r->files[f], &X, &n, &d);
    if (st == RE_OK)
      st = re_cli_same_rows(r->files, f, n, &r->n, "samples");
    if (st == RE_OK && r->kmax > n - 1)
      st = re_err(RE_EINVAL, "k = %d needs more than %d samples (the files have %lld)", r->kmax, r->kmax, (long long)n);
    double t0 = now();
    if (st == RE_OK)
      st = re_knn_graph_build(X, n, d, d, r->kmax, &r->g[f]);
    r->t_graph += now() - t0;
    if (st != RE_OK)
      re_err_context(st, "%s: ", r->files[f]);
    free(X);
    if (st == RE_OK && r->prefix)
      st = write_neighbors(r, f);
  }
  return st;
}

/* One pair of graphs at one k: a JSON object or the plain lines. */
static void print_pair(const knn_run *r, int a, int b, int e, const re_knn_compare *c, int first) {
  if (r->json) {
    printf("%s{\"a\": %d, \"b\": %d, \"k\": %d", first ? "" : ", ", a, b, r->k[e]);
    json_value("mutual_knn", c->mutual);
    json_value("cknna", c->cknna);
    json_value("cycle_knn_ab", c->cycle_ab);
    json_value("cycle_knn_ba", c->cycle_ba);
    json_value("jaccard_knn", c->jaccard);
    if (c->cknna_undefined) {
      printf(", \"cknna_reason\": ");
      re_json_string(stdout, c->cknna_undefined);
    }
    printf("}");
    return;
  }
  if (r->nfiles > 2 || r->nk > 1)
    printf("pair %d %d k %d\n", a, b, r->k[e]);
  printf("mutual_knn   %.17g\ncknna        %.17g\ncycle_knn_ab %.17g\ncycle_knn_ba %.17g\njaccard_knn  "
         "%.17g\n",
         c->mutual, c->cknna, c->cycle_ab, c->cycle_ba, c->jaccard);
}

/* Compare every pair of graphs at every k and print the results. */
static re_status compare_pairs(const knn_run *r) {
  re_status st = RE_OK;
  if (r->json) {
    printf("{\"n\": %lld, \"files\": %d, \"kmax\": %d, \"graph_s\": %.6f, \"rechecked\": [", (long long)r->n,
           r->nfiles, r->kmax, r->t_graph);
    for (int f = 0; f < r->nfiles; f++)
      printf("%s%lld", f ? ", " : "", (long long)r->g[f].rechecked);
    printf("], \"pairs\": [");
  }
  int first = 1;
  double t0 = now();
  for (int a = 0; a < r->nfiles && st == RE_OK; a++)
    for (int b = a + 1; b < r->nfiles && st == RE_OK; b++)
      for (int e = 0; e < r->nk && st == RE_OK; e++) {
        re_knn_compare c;
        st = re_knn_graph_compare(&r->g[a], &r->g[b], r->k[e], &c);
        if (st != RE_OK)
          break;
        print_pair(r, a, b, e, &c, first);
        first = 0;
      }
  if (st == RE_OK && r->json)
    printf("], \"compare_s\": %.6f}\n", now() - t0);
  return st;
}

int re_cmd_knn(int argc, char **argv) {
  knn_run r;
  memset(&r, 0, sizeof r);
  const char *ks_given[MAX_K];
  re_opt_list ks = {ks_given, MAX_K, 0};
  const re_opt opts[] = {
      RE_OPT_LIST("k", &ks, "K", "neighbours per sample (repeatable; default 10)"),
      RE_OPT_STRING("neighbors", &r.prefix, "PREFIX",
                    "write PREFIX_<i>_idx.npy (n x kmax int32) and PREFIX_<i>_sim.npy (float64) per file"),
      RE_OPT_FLAG("json", &r.json, "JSON with every pair, k, the time of the graphs and rows recomputed"),
      RE_OPT_END,
  };
  int prc = re_cli_parse_embeddings(&CMD, opts, argc, argv, r.files, MAX_FILES, &r.nfiles);
  if (prc == RE_OPTS_RUN)
    prc = parse_ks(&ks, &r);
  if (prc != RE_OPTS_RUN)
    return prc;
  re_status st = build_graphs(&r);
  if (st == RE_OK)
    st = compare_pairs(&r);
  for (int f = 0; r.g && f < r.nfiles; f++)
    re_knn_graph_free(&r.g[f]);
  free(r.g);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
