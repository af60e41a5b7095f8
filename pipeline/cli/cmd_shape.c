/* repeval shape X Y: generalized shape metrics of two embeddings (partial whitening
 * from CCA to Procrustes, angular and Euclidean) and the permutation metric, from
 * co-moments in float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "out/path.h"
#include "repeval/shape.h"

#define MAX_ALPHAS 64

static const re_opts_cmd CMD = {
    "shape", "X Y [options]",
    "Generalized shape metrics (Williams et al. 2021, as netrep computes them) of two\n"
    "embeddings of the same n samples (.npy or file.npz:array; n x p and n x q):\n"
    "partial whitening alpha from 0 (CCA) to 1 (Procrustes), angular and Euclidean\n"
    "distances; optionally the permutation metric.\n",
    "Output: 'alpha A angular V euclidean V' per alpha (and 'permutation ...').\n"};

/* The command line, the co-moments and the metrics. */
typedef struct shape_run {
  char *files[2];
  int json, perm, na;
  const char *prefix;
  double alpha[MAX_ALPHAS];
  re_moments *m;
  re_eig *ex, *ey;
  double *Cxx, *Cyy, *Cxy, *Wx, *Wy;
  double ang[MAX_ALPHAS], euc[MAX_ALPHAS], pang, peuc;
  const char *undefined; /* why the metrics are undefined, or NULL */
  int64_t n, p, q;
} shape_run;

/* --alpha values into s->alpha (default 0, 0.5 and 1); a usage error's exit code or RE_OPTS_RUN. */
static int parse_alphas(const re_opt_list *al, shape_run *s) {
  s->alpha[0] = 0, s->alpha[1] = 0.5, s->alpha[2] = 1;
  s->na = al->n ? al->n : 3;
  for (int e = 0; e < al->n; e++) {
    char *end;
    s->alpha[e] = strtod(al->v[e], &end);
    if (*end || end == al->v[e] || !(s->alpha[e] >= 0 && s->alpha[e] <= 1))
      return re_cli_usage_error("shape", "--alpha must be a number in [0, 1], got '%s'", al->v[e]);
  }
  return RE_OPTS_RUN;
}

/* Co-moments of the two files, and their covariance blocks in the files' units. */
static re_status covariances(shape_run *s) {
  double scale[2] = {1, 1};
  RE_TRY(re_cli_moments(s->files, 2, 0, 0, &s->m, &s->n, scale));
  s->p = re_moments_dim(s->m, 0), s->q = re_moments_dim(s->m, 1);
  int64_t p = s->p, q = s->q;
  RE_TRY(re_malloc(p, p * (int64_t)sizeof(double), &s->Cxx));
  RE_TRY(re_malloc(q, q * (int64_t)sizeof(double), &s->Cyy));
  RE_TRY(re_malloc(p, q * (int64_t)sizeof(double), &s->Cxy));
  /* back to the files' units (the scales are powers of two: exact) */
  const double *a = re_moments_block(s->m, 0, 0, NULL), *b = re_moments_block(s->m, 1, 1, NULL),
               *c = re_moments_block(s->m, 0, 1, NULL);
  for (int64_t e = 0; e < p * p; e++)
    s->Cxx[e] = a[e] / (scale[0] * scale[0]);
  for (int64_t e = 0; e < q * q; e++)
    s->Cyy[e] = b[e] / (scale[1] * scale[1]);
  for (int64_t e = 0; e < p * q; e++)
    s->Cxy[e] = c[e] / (scale[0] * scale[1]);
  if (s->n < 2)
    s->undefined = "fewer than 2 samples";
  return RE_OK;
}

/* --transforms: PREFIX_a<e>_x.npy and PREFIX_a<e>_y.npy, the maps of alpha e. */
static re_status write_transforms(const shape_run *s, int e, int64_t k) {
  char path[4200];
  int64_t sx[2] = {s->p, k}, sy[2] = {s->q, k};
  RE_TRY(re_path_join(path, sizeof path, "%s_a%d_x.npy", s->prefix, e));
  RE_TRY(re_npy_write(path, RE_DTYPE_F64, 2, sx, s->Wx));
  RE_TRY(re_path_join(path, sizeof path, "%s_a%d_y.npy", s->prefix, e));
  return re_npy_write(path, RE_DTYPE_F64, 2, sy, s->Wy);
}

/* Every metric asked for; an undefined metric sets s->undefined and is no error. */
static re_status compute(shape_run *s) {
  re_status st = covariances(s);
  if (st == RE_OK && !s->undefined)
    st = re_eig_create(s->Cxx, s->p, (double)s->n, &s->ex);
  if (st == RE_OK && !s->undefined)
    st = re_eig_create(s->Cyy, s->q, (double)s->n, &s->ey);
  int64_t k = s->p < s->q ? s->p : s->q;
  if (st == RE_OK && s->prefix) {
    st = re_malloc(s->p, k * (int64_t)sizeof(double), &s->Wx);
    if (st == RE_OK)
      st = re_malloc(s->q, k * (int64_t)sizeof(double), &s->Wy);
  }
  for (int e = 0; e < s->na && st == RE_OK && !s->undefined; e++) {
    st = re_shape_metric(s->ex, s->ey, s->Cxy, 0, s->alpha[e], &s->ang[e], &s->euc[e], s->Wx, s->Wy);
    if (st == RE_OK && s->prefix)
      st = write_transforms(s, e, k);
  }
  if (st == RE_OK && s->perm && !s->undefined)
    st = re_permutation_metric(s->ex, s->ey, s->Cxy, 0, &s->pang, &s->peuc, NULL);
  if (st == RE_EUNDEFINED) {
    s->undefined = re_errmsg();
    st = RE_OK;
  }
  return st;
}

/* The JSON object of --json (NaN for the values of undefined metrics). */
static void print_json(const shape_run *s) {
  const char *undefined = s->undefined;
  printf("{\"n\": %lld, \"p\": %lld, \"q\": %lld, \"status\": \"%s\"", (long long)s->n, (long long)s->p,
         (long long)s->q, undefined ? "undefined" : "ok");
  if (undefined) {
    printf(", \"reason\": ");
    re_json_string(stdout, undefined);
  }
  printf(", \"alphas\": [");
  for (int e = 0; e < s->na; e++) {
    printf("%s{\"alpha\": ", e ? ", " : "");
    re_json_number(stdout, s->alpha[e]);
    printf(", \"angular\": ");
    re_json_number(stdout, undefined ? NAN : s->ang[e]);
    printf(", \"euclidean\": ");
    re_json_number(stdout, undefined ? NAN : s->euc[e]);
    printf("}");
  }
  printf("]");
  if (s->perm) {
    printf(", \"permutation\": {\"angular\": ");
    re_json_number(stdout, undefined ? NAN : s->pang);
    printf(", \"euclidean\": ");
    re_json_number(stdout, undefined ? NAN : s->peuc);
    printf("}");
  }
  printf("}\n");
}

/* Print the metrics; the exit code (RE_EXIT_UNDEFINED, with the reason on stderr, when undefined). */
static int report(const shape_run *s) {
  if (s->json) {
    print_json(s);
  } else if (s->undefined) {
    printf("undefined\n");
  } else {
    for (int e = 0; e < s->na; e++)
      printf("alpha %g angular %.17g euclidean %.17g\n", s->alpha[e], s->ang[e], s->euc[e]);
    if (s->perm)
      printf("permutation angular %.17g euclidean %.17g\n", s->pang, s->peuc);
  }
  return s->undefined ? re_cli_undefined("shape metric", s->undefined) : RE_EXIT_OK;
}

int re_cmd_shape(int argc, char **argv) {
  shape_run s;
  memset(&s, 0, sizeof s);
  s.pang = s.peuc = NAN;
  const char *alphas_given[MAX_ALPHAS];
  re_opt_list al = {alphas_given, MAX_ALPHAS, 0};
  const re_opt opts[] = {
      RE_OPT_LIST("alpha", &al, "A", "partial whitening in [0, 1] (repeatable; default 0, 0.5 and 1)"),
      RE_OPT_FLAG("permutation", &s.perm, "also the permutation metric (an exact linear assignment of features)"),
      RE_OPT_STRING("transforms", &s.prefix, "PREFIX",
                    "write PREFIX_a<i>_x.npy (p x k) and PREFIX_a<i>_y.npy (q x k), the alignment maps of alpha i"),
      RE_OPT_FLAG("json", &s.json, "JSON with every value"),
      RE_OPT_END,
  };
  int prc = re_cli_parse_pair(&CMD, opts, argc, argv, s.files);
  if (prc == RE_OPTS_RUN)
    prc = parse_alphas(&al, &s);
  if (prc != RE_OPTS_RUN)
    return prc;
  re_status st = compute(&s);
  int rc = st == RE_OK ? report(&s) : RE_EXIT_OK;
  re_eig_destroy(&s.ex);
  re_eig_destroy(&s.ey);
  re_moments_destroy(&s.m);
  free(s.Cxx);
  free(s.Cyy);
  free(s.Cxy);
  free(s.Wx);
  free(s.Wy);
  return st == RE_OK ? rc : re_cli_fail(st);
}
