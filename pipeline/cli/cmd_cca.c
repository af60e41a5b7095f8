/* repeval cca X Y: CCA-family similarity and covariance metrics of two embeddings,
 * and repeval spectrum X: PCA spectrum and collapse diagnostics of one embedding.
 * Both reduce co-moments (optionally across MPI ranks) and finish with LAPACK. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "out/path.h"
#include "repeval/cca.h"
#include "repeval/shape.h"

enum { M_CCA = 1, M_SVCCA = 2, M_PWCCA = 4, M_PROCRUSTES = 8, M_LINREG = 16, M_ALL = 31 };

static const re_opts_cmd CCA = {
    "cca", "X Y [options]",
    "CCA-family and covariance similarity of two embeddings of the same n samples\n"
    "(.npy or file.npz:array; n x p and n x q), from co-moments in float64.\n",
    NULL};

static const re_opts_cmd SPECTRUM = {
    "spectrum", "X [options]",
    "PCA spectrum of one embedding (n x d): total variance, participation ratio,\n"
    "effective rank (RankMe), directions for 90%/99% of the variance, collapse flag.\n",
    NULL};

static void mpi_rank(int sharded, int *rank) {
  *rank = 0;
  if (sharded) /* main has initialised MPI */
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
}

static int finish(int sharded, int rank, re_status st) {
  int rc = RE_EXIT_OK;
  if (st != RE_OK)
    rc = (sharded && st == RE_EMPI && rank != 0) ? RE_EXIT_ERROR : re_cli_fail(st);
  if (sharded) {
    int bad = rc != RE_EXIT_OK, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any && rc == RE_EXIT_OK)
      rc = RE_EXIT_ERROR;
  }
  return rc;
}

static void json_rho(const char *key, const re_cca_result *r) {
  printf(", \"%s\": {\"mean_rho\": ", key);
  re_json_number(stdout, r->mean_rho);
  printf(", \"mean_rho2\": ");
  re_json_number(stdout, r->mean_rho2);
  if (!strcmp(key, "pwcca")) {
    printf(", \"pwcca\": ");
    re_json_number(stdout, r->pwcca);
  }
  printf(", \"kx\": %lld, \"ky\": %lld, \"rho\": [", (long long)r->kx, (long long)r->ky);
  for (int64_t i = 0; i < r->k; i++) {
    printf("%s", i ? ", " : "");
    re_json_number(stdout, r->rho[i]);
  }
  printf("]");
  if (!r->defined) {
    printf(", \"reason\": ");
    re_json_string(stdout, r->reason);
  }
  printf("}");
}

/* The canonical directions into PREFIX_*.npy; coefficients back in the files' units
 * (the co-moments are of the data times scale, a power of two). */
static re_status write_directions(const re_eig *ex, const re_eig *ey, const double *C, const re_cca_options *opt,
                                  const double *scale, const char *prefix) {
  re_cca_directions dir;
  RE_TRY(re_cca_directions_create(ex, ey, C, 0, opt, &dir));
  for (int64_t e = 0; e < dir.p * dir.k; e++)
    dir.x_coef[e] *= scale[0];
  for (int64_t e = 0; e < dir.q * dir.k; e++)
    dir.y_coef[e] *= scale[1];
  static const char *const names[] = {"x_coef", "y_coef", "x_loadings", "y_loadings"};
  const double *arrays[] = {dir.x_coef, dir.y_coef, dir.x_loadings, dir.y_loadings};
  char path[4200];
  int64_t shape[2] = {dir.k, dir.k};
  re_status st = re_path_join(path, sizeof path, "%s_rho.npy", prefix);
  if (st == RE_OK)
    st = re_npy_write(path, RE_DTYPE_F64, 1, shape, dir.rho);
  for (int a = 0; a < 4 && st == RE_OK; a++) {
    shape[0] = a % 2 ? dir.q : dir.p;
    st = re_path_join(path, sizeof path, "%s_%s.npy", prefix, names[a]);
    if (st == RE_OK)
      st = re_npy_write(path, RE_DTYPE_F64, 2, shape, arrays[a]);
  }
  re_cca_directions_free(&dir);
  return st;
}

/* The command line, the co-moments and the metrics of repeval cca. */
typedef struct cca_run {
  char *files[2];
  int json, sharded, methods, rank;
  const char *dir_prefix;
  re_cca_options opt;
  double scale[2]; /* the powers of two the files were multiplied by */
  re_moments *m;
  re_eig *ex, *ey;
  int64_t n;
  re_cca_result r[3]; /* cca, svcca, pwcca */
  double d2, r2yx, r2xy;
  const char *undefined; /* why the metrics are undefined, or NULL */
} cca_run;

/* On rank 0, from the reduced co-moments: the metrics asked for (and --directions). */
static re_status compute(cca_run *c) {
  if (c->n < 2) {
    c->undefined = "fewer than 2 samples";
    return RE_OK;
  }
  const re_cca_options *opt = &c->opt;
  int methods = c->methods;
  RE_TRY(re_eig_create(re_moments_block(c->m, 0, 0, NULL), re_moments_dim(c->m, 0), (double)c->n, &c->ex));
  RE_TRY(re_eig_create(re_moments_block(c->m, 1, 1, NULL), re_moments_dim(c->m, 1), (double)c->n, &c->ey));
  const double *C = re_moments_block(c->m, 0, 1, NULL);
  if (methods & M_CCA)
    RE_TRY(re_cca(c->ex, c->ey, C, 0, opt, &c->r[0]));
  if (methods & M_SVCCA)
    RE_TRY(re_svcca(c->ex, c->ey, C, 0, opt, &c->r[1]));
  if (methods & M_PWCCA)
    RE_TRY(re_pwcca(c->ex, c->ey, C, 0, opt, &c->r[2]));
  if (c->ex->rank == 0 || c->ey->rank == 0) {
    c->undefined = "a layer has zero variance (constant features)";
    return RE_OK;
  }
  if (methods & M_PROCRUSTES)
    RE_TRY(re_procrustes(c->ex, c->ey, C, 0, &c->d2));
  if (methods & M_LINREG)
    RE_TRY(re_linreg_r2(c->ex, c->ey, C, 0, opt, &c->r2yx, &c->r2xy));
  if (c->dir_prefix)
    RE_TRY(write_directions(c->ex, c->ey, C, opt, c->scale, c->dir_prefix));
  double all[] = {c->r[0].mean_rho, c->r[1].mean_rho, c->r[2].pwcca, c->d2, c->r2yx, c->r2xy};
  unsigned used[] = {M_CCA, M_SVCCA, M_PWCCA, M_PROCRUSTES, M_LINREG, M_LINREG};
  for (int k = 0; !c->undefined && k < 6; k++)
    if ((methods & used[k]) && !isfinite(all[k]))
      c->undefined = "the computation overflowed (a result is not a finite number)";
  return RE_OK;
}

/* The JSON object of --json. */
static void print_json(const cca_run *c) {
  printf("{\"n\": %lld, \"p\": %lld, \"q\": %lld, \"ridge\": ", (long long)c->n, (long long)re_moments_dim(c->m, 0),
         (long long)re_moments_dim(c->m, 1));
  re_json_number(stdout, c->opt.ridge);
  printf(", \"variance\": ");
  re_json_number(stdout, c->opt.variance);
  printf(", \"status\": \"%s\"", c->undefined ? "undefined" : "ok");
  if (c->undefined) {
    printf(", \"reason\": ");
    re_json_string(stdout, c->undefined);
  }
  if (c->methods & M_CCA)
    json_rho("cca", &c->r[0]);
  if (c->methods & M_SVCCA)
    json_rho("svcca", &c->r[1]);
  if (c->methods & M_PWCCA)
    json_rho("pwcca", &c->r[2]);
  if (c->methods & M_PROCRUSTES) {
    printf(", \"procrustes_d2\": ");
    re_json_number(stdout, c->d2);
  }
  if (c->methods & M_LINREG) {
    printf(", \"r2_y_from_x\": ");
    re_json_number(stdout, c->r2yx);
    printf(", \"r2_x_from_y\": ");
    re_json_number(stdout, c->r2xy);
  }
  printf("}\n");
}

/* The plain output: the value of one method, or every value with its name. */
static void print_plain(const cca_run *c) {
  if (c->methods == M_CCA)
    printf("%.17g\n", c->r[0].mean_rho);
  else if (c->methods == M_SVCCA)
    printf("%.17g\n", c->r[1].mean_rho);
  else if (c->methods == M_PWCCA)
    printf("%.17g\n", c->r[2].pwcca);
  else if (c->methods == M_PROCRUSTES)
    printf("%.17g\n", c->d2);
  else if (c->methods == M_LINREG)
    printf("%.17g %.17g\n", c->r2yx, c->r2xy);
  else
    printf("cca_mean_rho %.17g\ncca_mean_rho2 %.17g\nsvcca %.17g\npwcca %.17g\nprocrustes_d2 %.17g\n"
           "r2_y_from_x %.17g\nr2_x_from_y %.17g\n",
           c->r[0].mean_rho, c->r[0].mean_rho2, c->r[1].mean_rho, c->r[2].pwcca, c->d2, c->r2yx, c->r2xy);
}

/* Print the metrics (rank 0); the exit code (RE_EXIT_UNDEFINED, with the reason on stderr, when undefined). */
static int report(const cca_run *c) {
  if (c->json)
    print_json(c);
  else if (c->undefined)
    printf("undefined\n");
  else
    print_plain(c);
  return c->undefined ? re_cli_undefined("CCA", c->undefined) : RE_EXIT_OK;
}

int re_cmd_cca(int argc, char **argv) {
  static const int bits[] = {M_CCA, M_SVCCA, M_PWCCA, M_PROCRUSTES, M_LINREG, M_ALL};
  cca_run c;
  memset(&c, 0, sizeof c);
  c.opt = re_cca_defaults();
  int method = 0;
  const re_opt opts[] = {
      RE_OPT_ENUM("method", &method, "cca|svcca|pwcca|procrustes|linreg|all", "M",
                  "cca (mean canonical correlation, default), svcca, pwcca, procrustes (squared distance), linreg "
                  "(R^2 both ways), or all"),
      RE_OPT_DOUBLE("ridge", &c.opt.ridge, 0, INFINITY, 0, "E", "relative ridge: S + E * tr(S)/d * I (default 1e-10)"),
      RE_OPT_DOUBLE("variance", &c.opt.variance, 0, 1, RE_OPT_OPEN_MIN, "F",
                    "SVCCA: fraction of variance kept per side (default 0.99)"),
      RE_OPT_FLAG("json", &c.json, "JSON with every value and the canonical correlations"),
      RE_OPT_STRING("directions", &c.dir_prefix, "PREFIX",
                    "write the canonical directions of plain CCA: PREFIX_rho.npy (k), PREFIX_x_coef.npy (p x k), "
                    "PREFIX_y_coef.npy (q x k), PREFIX_x_loadings.npy, PREFIX_y_loadings.npy"),
      RE_OPT_FLAG("sharded", &c.sharded, "under mpiexec: rows split across ranks, co-moments reduced"),
      RE_OPT_END,
  };
  int prc = re_cli_parse_pair(&CCA, opts, argc, argv, c.files);
  if (prc != RE_OPTS_RUN)
    return prc;
  c.methods = bits[method];
  c.d2 = c.r2yx = c.r2xy = NAN;
  c.scale[0] = c.scale[1] = 1;
  mpi_rank(c.sharded, &c.rank);
  re_status st = re_cli_moments(c.files, 2, 0, c.sharded, &c.m, &c.n, c.scale); /* scale-invariant metrics */
  if (st == RE_OK && c.rank == 0)
    st = compute(&c);
  int rc = st == RE_OK && c.rank == 0 ? report(&c) : RE_EXIT_OK;
  for (int k = 0; k < 3; k++)
    re_cca_result_free(&c.r[k]);
  re_eig_destroy(&c.ex);
  re_eig_destroy(&c.ey);
  re_moments_destroy(&c.m);
  int frc = finish(c.sharded, c.rank, st);
  return frc != RE_EXIT_OK ? frc : rc;
}

int re_cmd_spectrum(int argc, char **argv) {
  char *file = NULL;
  const char *out = NULL;
  int json = 0, sharded = 0;
  double frac = 0.05;
  const re_opt opts[] = {
      RE_OPT_DOUBLE("collapse-fraction", &frac, 0, 1, 0, "F",
                    "flag collapse when effective rank < F * min(d, n-1) (default 0.05)"),
      RE_OPT_STRING("out", &out, "FILE.npy", "write the eigenvalues (descending)"),
      RE_OPT_FLAG("json", &json, "JSON including the eigenvalues"),
      RE_OPT_FLAG("sharded", &sharded, "under mpiexec: rows split across ranks"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.min = 1, .max = 1, .v = &file, .too_few = "give a matrix", .too_many = "give one matrix"};
  int prc = re_opts_parse(&SPECTRUM, opts, argc, argv, &pos);
  if (prc != RE_OPTS_RUN)
    return prc;
  int rank;
  mpi_rank(sharded, &rank);
  re_moments *m = NULL;
  re_eig *e = NULL;
  int64_t n = 0;
  re_spectrum sp;
  double scale = 1;
  const char *undefined = NULL;
  re_status st = re_cli_moments(&file, 1, 0, sharded, &m, &n, &scale);
  if (st == RE_OK && rank == 0) {
    st = re_eig_create(re_moments_block(m, 0, 0, NULL), re_moments_dim(m, 0), (double)n, &e);
    if (st == RE_OK)
      st = re_spectrum_from_eig(e, frac, &sp);
    /* eigenvalues and the total variance back in the file's units (squared) */
    double u = 1 / (scale * scale);
    sp.total_variance *= u;
    for (int64_t k = 0; st == RE_OK && k < e->d; k++)
      e->values[k] *= u;
    if (st == RE_OK && (!isfinite(sp.total_variance) || !isfinite(sp.participation_ratio) ||
                        !isfinite(sp.effective_rank) || !isfinite(sp.effective_rank_eig)))
      undefined = "the variances overflow float64 in the units of the file (not finite numbers)";
    if (st == RE_OK && out) {
      int64_t shape[1] = {e->d};
      st = re_npy_write(out, RE_DTYPE_F64, 1, shape, e->values);
    }
  }
  if (st == RE_OK && rank == 0) {
    if (json) {
      printf("{\"n\": %lld, \"d\": %lld, \"total_variance\": ", (long long)n, (long long)sp.d);
      re_json_number(stdout, sp.total_variance);
      printf(", \"participation_ratio\": ");
      re_json_number(stdout, sp.participation_ratio);
      printf(", \"effective_rank\": ");
      re_json_number(stdout, sp.effective_rank);
      printf(", \"effective_rank_eig\": ");
      re_json_number(stdout, sp.effective_rank_eig);
      printf(", \"status\": \"%s\"", undefined ? "undefined" : "ok");
      printf(", \"k90\": %lld, \"k99\": %lld, \"rank\": %lld, \"collapsed\": %s, \"eigenvalues\": [",
             (long long)sp.k90, (long long)sp.k99, (long long)sp.rank, sp.collapsed ? "true" : "false");
      for (int64_t k = 0; k < e->d; k++) {
        printf("%s", k ? ", " : "");
        re_json_number(stdout, e->values[k]);
      }
      printf("]}\n");
    } else {
      printf("samples             %lld\nwidth               %lld\ntotal_variance      %.17g\n"
             "participation_ratio %.17g\neffective_rank      %.17g\neffective_rank_eig  %.17g\n"
             "k90                 %lld\nk99                 %lld\nrank                %lld\ncollapsed           %s\n",
             (long long)n, (long long)sp.d, sp.total_variance, sp.participation_ratio, sp.effective_rank,
             sp.effective_rank_eig, (long long)sp.k90, (long long)sp.k99, (long long)sp.rank,
             sp.collapsed ? "yes" : "no");
    }
    if (undefined)
      re_cli_undefined("spectrum", undefined);
  }
  re_eig_destroy(&e);
  re_moments_destroy(&m);
  int rc = finish(sharded, rank, st);
  return rc == RE_EXIT_OK && undefined ? RE_EXIT_UNDEFINED : rc;
}
