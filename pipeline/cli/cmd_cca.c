/* repeval cca X Y: CCA-family similarity and covariance metrics of two embeddings,
 * and repeval spectrum X: PCA spectrum and collapse diagnostics of one embedding.
 * Both reduce co-moments (optionally across MPI ranks) and finish with LAPACK. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "repeval/cca.h"

enum { M_CCA = 1, M_SVCCA = 2, M_PWCCA = 4, M_PROCRUSTES = 8, M_LINREG = 16, M_ALL = 31 };

static void help_cca(void) {
  printf("usage: repeval cca X Y [options]\n"
         "\n"
         "CCA-family and covariance similarity of two embeddings of the same n samples\n"
         "(.npy or file.npz:array; n x p and n x q), from co-moments in float64.\n"
         "\n"
         "Options:\n"
         "  --method M     cca (mean canonical correlation, default), svcca, pwcca,\n"
         "                 procrustes (squared distance), linreg (R^2 both ways), or all\n"
         "  --ridge E      relative ridge: S + E * tr(S)/d * I (default 1e-10)\n"
         "  --variance F   SVCCA: fraction of variance kept per side (default 0.99)\n"
         "  --json         JSON with every value and the canonical correlations\n"
         "  --sharded      under mpiexec: rows split across ranks, co-moments reduced\n");
}

static void help_spectrum(void) {
  printf("usage: repeval spectrum X [options]\n"
         "\n"
         "PCA spectrum of one embedding (n x d): total variance, participation ratio,\n"
         "effective rank (RankMe), directions for 90%%/99%% of the variance, collapse flag.\n"
         "\n"
         "Options:\n"
         "  --collapse-fraction F  flag collapse when effective rank < F * min(d, n-1)\n"
         "                         (default 0.05)\n"
         "  --out FILE.npy         write the eigenvalues (descending)\n"
         "  --json                 JSON including the eigenvalues\n"
         "  --sharded              under mpiexec: rows split across ranks\n");
}

static int start_mpi(int sharded, int *rank) {
  *rank = 0;
  if (!sharded)
    return 0;
  MPI_Init(NULL, NULL);
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  int size;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1)
    re_log_set_rank(*rank);
  return 0;
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
    MPI_Finalize();
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

int re_cmd_cca(int argc, char **argv) {
  char *files[2];
  int nf = 0, json = 0, sharded = 0, methods = M_CCA;
  re_cca_options opt = re_cca_defaults();
  for (int i = 1; i < argc; i++) {
    int missing = 0;
    const char *v;
    char *end;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      help_cca();
      return RE_EXIT_OK;
    } else if ((v = re_cli_opt(argc, argv, &i, "--method", &missing))) {
      static const char *names[] = {"cca", "svcca", "pwcca", "procrustes", "linreg", "all"};
      static const int bits[] = {M_CCA, M_SVCCA, M_PWCCA, M_PROCRUSTES, M_LINREG, M_ALL};
      methods = 0;
      for (int k = 0; k < 6; k++)
        if (!strcmp(v, names[k]))
          methods = bits[k];
      if (!methods)
        return re_cli_usage_error("cca", "--method must be cca, svcca, pwcca, procrustes, linreg or all, got '%s'",
                                  v);
    } else if ((v = re_cli_opt(argc, argv, &i, "--ridge", &missing))) {
      opt.ridge = strtod(v, &end);
      if (*end || !(opt.ridge >= 0) || !isfinite(opt.ridge))
        return re_cli_usage_error("cca", "--ridge must be a number >= 0, got '%s'", v);
    } else if ((v = re_cli_opt(argc, argv, &i, "--variance", &missing))) {
      opt.variance = strtod(v, &end);
      if (*end || !(opt.variance > 0 && opt.variance <= 1))
        return re_cli_usage_error("cca", "--variance must be in (0, 1], got '%s'", v);
    } else if (missing) {
      return re_cli_usage_error("cca", "option %s needs a value", argv[i]);
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (!strcmp(argv[i], "--sharded")) {
      sharded = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      return re_cli_usage_error("cca", "unknown option '%s'", argv[i]);
    } else if (nf < 2) {
      files[nf++] = argv[i];
    } else {
      return re_cli_usage_error("cca", "unexpected argument '%s' (give exactly two matrices)", argv[i]);
    }
  }
  if (nf != 2)
    return re_cli_usage_error("cca", "give two matrices X and Y");
  int rank;
  start_mpi(sharded, &rank);
  re_moments *m = NULL;
  re_eig *ex = NULL, *ey = NULL;
  int64_t n = 0;
  re_cca_result r[3];
  memset(r, 0, sizeof r);
  double d2 = NAN, r2yx = NAN, r2xy = NAN;
  const char *undefined = NULL;
  re_status st = re_cli_moments(files, 2, 0, sharded, &m, &n, NULL); /* scale-invariant metrics */
  if (st == RE_OK && rank == 0) {
    if (n < 2) {
      undefined = "fewer than 2 samples";
    } else {
      st = re_eig_create(re_moments_block(m, 0, 0, NULL), re_moments_dim(m, 0), (double)n, &ex);
      if (st == RE_OK)
        st = re_eig_create(re_moments_block(m, 1, 1, NULL), re_moments_dim(m, 1), (double)n, &ey);
      const double *C = re_moments_block(m, 0, 1, NULL);
      if (st == RE_OK && (methods & M_CCA))
        st = re_cca(ex, ey, C, 0, &opt, &r[0]);
      if (st == RE_OK && (methods & M_SVCCA))
        st = re_svcca(ex, ey, C, 0, &opt, &r[1]);
      if (st == RE_OK && (methods & M_PWCCA))
        st = re_pwcca(ex, ey, C, 0, &opt, &r[2]);
      if (st == RE_OK && (ex->rank == 0 || ey->rank == 0))
        undefined = "a layer has zero variance (constant features)";
      if (st == RE_OK && !undefined && (methods & M_PROCRUSTES))
        st = re_procrustes(ex, ey, C, 0, &d2);
      if (st == RE_OK && !undefined && (methods & M_LINREG))
        st = re_linreg_r2(ex, ey, C, 0, &opt, &r2yx, &r2xy);
      double all[] = {r[0].mean_rho, r[1].mean_rho, r[2].pwcca, d2, r2yx, r2xy};
      unsigned used[] = {M_CCA, M_SVCCA, M_PWCCA, M_PROCRUSTES, M_LINREG, M_LINREG};
      for (int k = 0; st == RE_OK && !undefined && k < 6; k++)
        if ((methods & used[k]) && !isfinite(all[k]))
          undefined = "the computation overflowed (a result is not a finite number)";
    }
  }
  int rc = RE_EXIT_OK;
  if (st == RE_OK && rank == 0) {
    if (json) {
      printf("{\"n\": %lld, \"p\": %lld, \"q\": %lld, \"ridge\": ", (long long)n, (long long)re_moments_dim(m, 0),
             (long long)re_moments_dim(m, 1));
      re_json_number(stdout, opt.ridge);
      printf(", \"variance\": ");
      re_json_number(stdout, opt.variance);
      printf(", \"status\": \"%s\"", undefined ? "undefined" : "ok");
      if (undefined) {
        printf(", \"reason\": ");
        re_json_string(stdout, undefined);
      }
      if (methods & M_CCA)
        json_rho("cca", &r[0]);
      if (methods & M_SVCCA)
        json_rho("svcca", &r[1]);
      if (methods & M_PWCCA)
        json_rho("pwcca", &r[2]);
      if (methods & M_PROCRUSTES) {
        printf(", \"procrustes_d2\": ");
        re_json_number(stdout, d2);
      }
      if (methods & M_LINREG) {
        printf(", \"r2_y_from_x\": ");
        re_json_number(stdout, r2yx);
        printf(", \"r2_x_from_y\": ");
        re_json_number(stdout, r2xy);
      }
      printf("}\n");
    } else if (undefined) {
      printf("undefined\n");
    } else if (methods == M_CCA) {
      printf("%.17g\n", r[0].mean_rho);
    } else if (methods == M_SVCCA) {
      printf("%.17g\n", r[1].mean_rho);
    } else if (methods == M_PWCCA) {
      printf("%.17g\n", r[2].pwcca);
    } else if (methods == M_PROCRUSTES) {
      printf("%.17g\n", d2);
    } else if (methods == M_LINREG) {
      printf("%.17g %.17g\n", r2yx, r2xy);
    } else {
      printf("cca_mean_rho %.17g\ncca_mean_rho2 %.17g\nsvcca %.17g\npwcca %.17g\nprocrustes_d2 %.17g\n"
             "r2_y_from_x %.17g\nr2_x_from_y %.17g\n",
             r[0].mean_rho, r[0].mean_rho2, r[1].mean_rho, r[2].pwcca, d2, r2yx, r2xy);
    }
    if (undefined) {
      fprintf(stderr, "repeval: CCA undefined: %s\n", undefined);
      rc = RE_EXIT_UNDEFINED;
    }
  }
  for (int k = 0; k < 3; k++)
    re_cca_result_free(&r[k]);
  re_eig_destroy(&ex);
  re_eig_destroy(&ey);
  re_moments_destroy(&m);
  int frc = finish(sharded, rank, st);
  return frc != RE_EXIT_OK ? frc : rc;
}

int re_cmd_spectrum(int argc, char **argv) {
  char *file = NULL;
  const char *out = NULL;
  int json = 0, sharded = 0;
  double frac = 0.05;
  for (int i = 1; i < argc; i++) {
    int missing = 0;
    const char *v;
    char *end;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      help_spectrum();
      return RE_EXIT_OK;
    } else if ((v = re_cli_opt(argc, argv, &i, "--collapse-fraction", &missing))) {
      frac = strtod(v, &end);
      if (*end || !(frac >= 0 && frac <= 1))
        return re_cli_usage_error("spectrum", "--collapse-fraction must be in [0, 1], got '%s'", v);
    } else if ((v = re_cli_opt(argc, argv, &i, "--out", &missing))) {
      out = v;
    } else if (missing) {
      return re_cli_usage_error("spectrum", "option %s needs a value", argv[i]);
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (!strcmp(argv[i], "--sharded")) {
      sharded = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      return re_cli_usage_error("spectrum", "unknown option '%s'", argv[i]);
    } else if (!file) {
      file = argv[i];
    } else {
      return re_cli_usage_error("spectrum", "give one matrix");
    }
  }
  if (!file)
    return re_cli_usage_error("spectrum", "give a matrix");
  int rank;
  start_mpi(sharded, &rank);
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
      fprintf(stderr, "repeval: spectrum undefined: %s\n", undefined);
  }
  re_eig_destroy(&e);
  re_moments_destroy(&m);
  int rc = finish(sharded, rank, st);
  return rc == RE_EXIT_OK && undefined ? RE_EXIT_UNDEFINED : rc;
}
