/* repeval shape X Y: generalized shape metrics of two embeddings (partial whitening
 * from CCA to Procrustes, angular and Euclidean) and the permutation metric, from
 * co-moments in float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "repeval/shape.h"

#define MAX_ALPHAS 64

static const re_opts_cmd CMD = {
    "shape", "X Y [options]",
    "Generalized shape metrics (Williams et al. 2021, as netrep computes them) of two\n"
    "embeddings of the same n samples (.npy or file.npz:array; n x p and n x q):\n"
    "partial whitening alpha from 0 (CCA) to 1 (Procrustes), angular and Euclidean\n"
    "distances; optionally the permutation metric.\n",
    "Output: 'alpha A angular V euclidean V' per alpha (and 'permutation ...').\n"};

int re_cmd_shape(int argc, char **argv) {
  char *files[2];
  int json = 0, perm = 0;
  const char *alphas_given[MAX_ALPHAS], *prefix = NULL;
  re_opt_list al = {alphas_given, MAX_ALPHAS, 0};
  const re_opt opts[] = {
      RE_OPT_LIST("alpha", &al, "A", "partial whitening in [0, 1] (repeatable; default 0, 0.5 and 1)"),
      RE_OPT_FLAG("permutation", &perm, "also the permutation metric (an exact linear assignment of features)"),
      RE_OPT_STRING("transforms", &prefix, "PREFIX",
                    "write PREFIX_a<i>_x.npy (p x k) and PREFIX_a<i>_y.npy (q x k), the alignment maps of alpha i"),
      RE_OPT_FLAG("json", &json, "JSON with every value"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.min = 2, .max = 2, .v = files, .too_few = "give two matrices X and Y",
                           .too_many = "give exactly two matrices"};
  int prc = re_opts_parse(&CMD, opts, argc, argv, &pos);
  if (prc != RE_OPTS_RUN)
    return prc;
  double alpha[MAX_ALPHAS] = {0, 0.5, 1};
  int na = al.n ? al.n : 3;
  for (int e = 0; e < al.n; e++) {
    char *end;
    alpha[e] = strtod(al.v[e], &end);
    if (*end || end == al.v[e] || !(alpha[e] >= 0 && alpha[e] <= 1))
      return re_cli_usage_error("shape", "--alpha must be a number in [0, 1], got '%s'", al.v[e]);
  }
  re_moments *m = NULL;
  re_eig *ex = NULL, *ey = NULL;
  double scale[2] = {1, 1}, *Cxx = NULL, *Cyy = NULL, *Cxy = NULL, *Wx = NULL, *Wy = NULL;
  double ang[MAX_ALPHAS], euc[MAX_ALPHAS], pang = NAN, peuc = NAN;
  const char *undefined = NULL;
  int64_t n = 0, p = 0, q = 0;
  re_status st = re_cli_moments(files, 2, 0, 0, &m, &n, scale);
  if (st == RE_OK) { /* back to the files' units (the scales are powers of two: exact) */
    p = re_moments_dim(m, 0), q = re_moments_dim(m, 1);
    st = re_malloc(p, p * (int64_t)sizeof(double), &Cxx);
    if (st == RE_OK)
      st = re_malloc(q, q * (int64_t)sizeof(double), &Cyy);
    if (st == RE_OK)
      st = re_malloc(p, q * (int64_t)sizeof(double), &Cxy);
  }
  if (st == RE_OK) {
    const double *a = re_moments_block(m, 0, 0, NULL), *b = re_moments_block(m, 1, 1, NULL),
                 *c = re_moments_block(m, 0, 1, NULL);
    for (int64_t e = 0; e < p * p; e++)
      Cxx[e] = a[e] / (scale[0] * scale[0]);
    for (int64_t e = 0; e < q * q; e++)
      Cyy[e] = b[e] / (scale[1] * scale[1]);
    for (int64_t e = 0; e < p * q; e++)
      Cxy[e] = c[e] / (scale[0] * scale[1]);
    if (n < 2)
      undefined = "fewer than 2 samples";
  }
  if (st == RE_OK && !undefined)
    st = re_eig_create(Cxx, p, (double)n, &ex);
  if (st == RE_OK && !undefined)
    st = re_eig_create(Cyy, q, (double)n, &ey);
  int64_t k = p < q ? p : q;
  if (st == RE_OK && prefix) {
    st = re_malloc(p, k * (int64_t)sizeof(double), &Wx);
    if (st == RE_OK)
      st = re_malloc(q, k * (int64_t)sizeof(double), &Wy);
  }
  for (int e = 0; e < na && st == RE_OK && !undefined; e++) {
    st = re_shape_metric(ex, ey, Cxy, 0, alpha[e], &ang[e], &euc[e], Wx, Wy);
    if (st == RE_OK && prefix) {
      char path[4200];
      int64_t sx[2] = {p, k}, sy[2] = {q, k};
      snprintf(path, sizeof path, "%s_a%d_x.npy", prefix, e);
      st = re_npy_write(path, RE_DTYPE_F64, 2, sx, Wx);
      snprintf(path, sizeof path, "%s_a%d_y.npy", prefix, e);
      if (st == RE_OK)
        st = re_npy_write(path, RE_DTYPE_F64, 2, sy, Wy);
    }
  }
  if (st == RE_OK && perm && !undefined)
    st = re_permutation_metric(ex, ey, Cxy, 0, &pang, &peuc, NULL);
  if (st == RE_EUNDEFINED) {
    undefined = re_errmsg();
    st = RE_OK;
  }
  int rc = RE_EXIT_OK;
  if (st == RE_OK) {
    if (json) {
      printf("{\"n\": %lld, \"p\": %lld, \"q\": %lld, \"status\": \"%s\"", (long long)n, (long long)p, (long long)q,
             undefined ? "undefined" : "ok");
      if (undefined) {
        printf(", \"reason\": ");
        re_json_string(stdout, undefined);
      }
      printf(", \"alphas\": [");
      for (int e = 0; e < na; e++) {
        printf("%s{\"alpha\": ", e ? ", " : "");
        re_json_number(stdout, alpha[e]);
        printf(", \"angular\": ");
        re_json_number(stdout, undefined ? NAN : ang[e]);
        printf(", \"euclidean\": ");
        re_json_number(stdout, undefined ? NAN : euc[e]);
        printf("}");
      }
      printf("]");
      if (perm) {
        printf(", \"permutation\": {\"angular\": ");
        re_json_number(stdout, undefined ? NAN : pang);
        printf(", \"euclidean\": ");
        re_json_number(stdout, undefined ? NAN : peuc);
        printf("}");
      }
      printf("}\n");
    } else if (undefined) {
      printf("undefined\n");
    } else {
      for (int e = 0; e < na; e++)
        printf("alpha %g angular %.17g euclidean %.17g\n", alpha[e], ang[e], euc[e]);
      if (perm)
        printf("permutation angular %.17g euclidean %.17g\n", pang, peuc);
    }
    if (undefined) {
      fprintf(stderr, "repeval: shape metric undefined: %s\n", undefined);
      rc = RE_EXIT_UNDEFINED;
    }
  }
  re_eig_destroy(&ex);
  re_eig_destroy(&ey);
  re_moments_destroy(&m);
  free(Cxx);
  free(Cyy);
  free(Cxy);
  free(Wx);
  free(Wy);
  return st == RE_OK ? rc : re_cli_fail(st);
}
