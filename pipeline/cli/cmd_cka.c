/* repeval cka: exact CKA between two embedding matrices X (n x p) and Y (n x q).
 *
 * Linear CKA uses the co-moment accumulator (feature space, no n x n matrix)
 * when p + q <= n, and Gram matrices otherwise or with --gram. RBF always
 * needs Gram matrices. With --sharded, under mpiexec, every rank reads only
 * its row range and the co-moments are reduced in a fixed order. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "mpi/mpi_reduce.h"
#include "repeval/cka.h"

#define DEFAULT_BATCH 4096

typedef struct cka_opts {
  const char *x, *y;
  int rbf, debiased, json, force_gram, sharded;
  double threshold;
  int64_t batch;
} cka_opts;

typedef struct cka_out {
  re_cka_result r;
  const char *estimator;
  double sigma2_x, sigma2_y;
  int64_t n, p, q;
  int ranks;
  double sx, sy; /* powers of two X and Y are multiplied by (re_cli_scale_of) */
} cka_out;

static const re_opts_cmd CMD = {
    "cka", "X Y [options]",
    "Centred kernel alignment between two embeddings of the same n samples.\n"
    "X and Y are .npy files (n x p and n x q; extra dimensions are flattened)\n"
    "or arrays inside a .npz given as file.npz:name. All math in float64.\n",
    "Prints the CKA value (full precision). If CKA is undefined for the input\n"
    "(constant features, too few samples) prints 'undefined', the reason on\n"
    "stderr, and exits with 3.\n"};

static int parse(int argc, char **argv, cka_opts *o) {
  memset(o, 0, sizeof *o);
  o->threshold = 1.0;
  o->batch = DEFAULT_BATCH;
  char *xy[2];
  const re_opt opts[] = {
      RE_OPT_ENUM("kernel", &o->rbf, "linear|rbf", NULL, "kernel (default linear)"),
      RE_OPT_DOUBLE("sigma", &o->threshold, 0, INFINITY, RE_OPT_OPEN_MIN, "T",
                    "RBF bandwidth factor: sigma^2 = T^2 * median squared pairwise distance (default 1.0)"),
      RE_OPT_FLAG("debiased", &o->debiased, "unbiased HSIC (U-centring, Song et al. 2012); n >= 4"),
      RE_OPT_FLAG("gram", &o->force_gram, "force the n x n Gram path for linear CKA"),
      RE_OPT_FLAG("sharded", &o->sharded,
                  "under mpiexec: each rank reads its rows, co-moments are reduced across ranks (linear kernel "
                  "only)"),
      RE_OPT_INT("batch", &o->batch, 1, INT64_MAX, "N", "rows per streamed batch (default 4096)"),
      RE_OPT_FLAG("json", &o->json, "print a JSON object instead of the bare value"),
      RE_OPT_END,
  };
  int rc = re_cli_parse_pair(&CMD, opts, argc, argv, xy);
  if (rc != RE_OPTS_RUN)
    return rc;
  o->x = xy[0];
  o->y = xy[1];
  if (o->sharded && (o->rbf || o->force_gram))
    return re_cli_usage_error("cka", "--sharded reduces co-moments and supports only the linear kernel "
                                     "without --gram (RBF needs every pair of samples on one rank)");
  return RE_OPTS_RUN;
}

static re_status check_inputs(const re_npy *X, const re_npy *Y) {
  if (X->h.ndim < 1)
    return re_err(RE_ESHAPE, "%s: a 0-d array is not a matrix of samples", X->name);
  if (Y->h.ndim < 1)
    return re_err(RE_ESHAPE, "%s: a 0-d array is not a matrix of samples", Y->name);
  if (re_npy_rows(X) != re_npy_rows(Y))
    return re_err(RE_ESHAPE, "%s has %lld rows but %s has %lld: both must hold the same samples in the same order",
                  X->name, (long long)re_npy_rows(X), Y->name, (long long)re_npy_rows(Y));
  if (re_npy_cols(X) == 0 || re_npy_cols(Y) == 0)
    return re_err(RE_ESHAPE, "%s / %s: zero features", X->name, Y->name);
  return RE_OK;
}

/* Batches of `batch` rows of X and Y, into a co-moment accumulator. */
typedef struct batches {
  const re_npy *X, *Y;
  const cka_out *out;
  int64_t batch;
  double *bx, *by;
  re_moments *m;
} batches;

static re_status add_batch(void *ctx, int64_t k) {
  batches *b = ctx;
  int64_t r = k * b->batch, nr = b->out->n - r < b->batch ? b->out->n - r : b->batch;
  RE_TRY(re_cli_read_rows_finite(b->X, r, nr, b->out->sx, b->bx));
  RE_TRY(re_cli_read_rows_finite(b->Y, r, nr, b->out->sy, b->by));
  const double *xs[2] = {b->bx, b->by};
  int64_t ld[2] = {b->out->p, b->out->q};
  return re_moments_add_batch(b->m, nr, xs, ld);
}

/* Every batch into m along the canonical tree (collective with comm). */
static re_status accumulate(const re_npy *X, const re_npy *Y, MPI_Comm comm, int64_t batch, const cka_out *out,
                            re_moments *m) {
  int64_t b = batch < out->n ? batch : (out->n > 0 ? out->n : 1);
  batches bt = {X, Y, out, b, NULL, NULL, m};
  re_status st = re_malloc(b, out->p * (int64_t)sizeof(double), &bt.bx);
  if (st == RE_OK)
    st = re_malloc(b, out->q * (int64_t)sizeof(double), &bt.by);
  tree_acc acc = tree_moments_acc(m);
  if (comm != MPI_COMM_NULL)
    st = re_mpi_agree(comm, st);
  if (st == RE_OK)
    st = tree_stream_reduce(comm, &acc, (out->n + b - 1) / b, add_batch, &bt);
  free(bt.bx);
  free(bt.by);
  return st;
}

static re_status create_moments(int64_t p, int64_t q, int debiased, re_moments **m) {
  int64_t dims[2] = {p, q};
  int32_t pair[2] = {0, 1};
  return re_moments_create(2, dims, 1, pair, debiased ? RE_MOMENTS_DEBIASED : 0, m);
}

static re_status run_gram(const cka_opts *o, const re_npy *X, const re_npy *Y, cka_out *out) {
  re_status st = RE_OK;
  int64_t n = out->n, p = out->p, q = out->q, nn;
  double *x = NULL, *y = NULL, *K = NULL, *L = NULL;
  RE_CHECK(re_mul_i64(n, n, &nn));
  RE_CHECK(re_malloc(n, p * (int64_t)sizeof(double), &x));
  RE_CHECK(re_malloc(n, q * (int64_t)sizeof(double), &y));
  st = re_malloc(nn, sizeof(double), &K);
  if (st == RE_OK)
    st = re_malloc(nn, sizeof(double), &L);
  if (st != RE_OK) {
    st = re_err(RE_ENOMEM, "n = %lld samples need two %lld x %lld Gram matrices (%.1f GiB); "
                           "use the linear kernel in feature space or fewer samples",
                (long long)n, (long long)n, (long long)n, 2.0 * (double)nn * 8 / (1 << 30));
    goto done;
  }
  RE_CHECK(re_cli_read_rows_finite(X, 0, n, out->sx, x));
  RE_CHECK(re_cli_read_rows_finite(Y, 0, n, out->sy, y));
  if (o->rbf) {
    st = re_gram_rbf(x, n, p, p, o->threshold, K, &out->sigma2_x);
    if (st != RE_OK) {
      re_err_context(st, "%s: ", X->name);
      goto done;
    }
    st = re_gram_rbf(y, n, q, q, o->threshold, L, &out->sigma2_y);
    if (st != RE_OK) {
      re_err_context(st, "%s: ", Y->name);
      goto done;
    }
  } else {
    RE_CHECK(re_gram_linear(x, n, p, p, K));
    RE_CHECK(re_gram_linear(y, n, q, q, L));
  }
  RE_CHECK(re_gram_centre(K, n, o->debiased));
  RE_CHECK(re_gram_centre(L, n, o->debiased));
  RE_CHECK(re_cka_from_centred_grams(K, L, n, o->debiased, &out->r));
  out->estimator = "gram";
done:
  free(x);
  free(y);
  free(K);
  free(L);
  return st;
}

static re_status run_local(const cka_opts *o, const re_npy *X, const re_npy *Y, cka_out *out) {
  if (o->debiased && out->n < 4) {
    out->r.defined = 0;
    out->r.value = NAN;
    out->r.reason = "unbiased HSIC needs at least 4 samples";
    out->estimator = "none";
    return RE_OK;
  }
  if (out->n < 2) {
    out->r.defined = 0;
    out->r.value = NAN;
    out->r.reason = "CKA needs at least 2 samples";
    out->estimator = "none";
    return RE_OK;
  }
  if (o->rbf || o->force_gram || out->p + out->q > out->n)
    return run_gram(o, X, Y, out);
  re_moments *m = NULL;
  RE_TRY(create_moments(out->p, out->q, o->debiased, &m));
  re_status st = accumulate(X, Y, MPI_COMM_NULL, o->batch, out, m);
  if (st == RE_OK)
    st = re_cka_linear_from_moments(m, 0, 1, o->debiased, &out->r);
  re_moments_destroy(&m);
  out->estimator = "feature-space";
  return st;
}

static re_status run_sharded(const cka_opts *o, const re_npy *X, const re_npy *Y, int rank, int size,
                             cka_out *out) {
  re_moments *m = NULL;
  re_status st = create_moments(out->p, out->q, o->debiased, &m);
  int64_t n = out->n;
  st = re_mpi_agree(MPI_COMM_WORLD, st);
  if (st == RE_OK)
    st = accumulate(X, Y, MPI_COMM_WORLD, o->batch, out, m);
  if (st == RE_OK && rank == 0) {
    if (o->debiased && n < 4) {
      out->r.defined = 0, out->r.value = NAN, out->r.reason = "unbiased HSIC needs at least 4 samples";
    } else {
      st = re_cka_linear_from_moments(m, 0, 1, o->debiased, &out->r);
    }
  }
  re_moments_destroy(&m);
  out->estimator = "feature-space";
  return st;
}

/* Back to the units of the files: HSIC scales as the kernels do (linear: by sx^2 sy^2;
 * RBF kernels do not change, their bandwidths do). A value that overflows or a CKA
 * that is not finite is never reported as ok. */
static void unscale(const cka_opts *o, cka_out *out) {
  if (o->rbf) {
    out->sigma2_x /= out->sx * out->sx;
    out->sigma2_y /= out->sy * out->sy;
  } else {
    double kx = 1 / (out->sx * out->sx), ky = 1 / (out->sy * out->sy);
    out->r.hsic_xy = out->r.hsic_xy * kx * ky;
    out->r.hsic_xx = out->r.hsic_xx * kx * kx;
    out->r.hsic_yy = out->r.hsic_yy * ky * ky;
  }
  if (out->r.defined && !isfinite(out->r.value)) {
    out->r.defined = 0;
    out->r.value = NAN;
    out->r.reason = "the computation overflowed (the result is not a finite number)";
  }
}

static int report(const cka_opts *o, const cka_out *out) {
  if (o->json) {
    printf("{\"cka\": ");
    re_json_number(stdout, out->r.defined ? out->r.value : NAN);
    printf(", \"status\": \"%s\"", out->r.defined ? "ok" : "undefined");
    if (!out->r.defined) {
      printf(", \"reason\": ");
      re_json_string(stdout, out->r.reason);
    }
    printf(", \"kernel\": \"%s\", \"debiased\": %s, \"estimator\": \"%s\"", o->rbf ? "rbf" : "linear",
           o->debiased ? "true" : "false", out->estimator);
    printf(", \"n\": %lld, \"p\": %lld, \"q\": %lld", (long long)out->n, (long long)out->p, (long long)out->q);
    printf(", \"hsic_xy\": ");
    re_json_number(stdout, out->r.hsic_xy);
    printf(", \"hsic_xx\": ");
    re_json_number(stdout, out->r.hsic_xx);
    printf(", \"hsic_yy\": ");
    re_json_number(stdout, out->r.hsic_yy);
    if (o->rbf) {
      printf(", \"sigma_factor\": ");
      re_json_number(stdout, o->threshold);
      printf(", \"sigma2_x\": ");
      re_json_number(stdout, out->sigma2_x);
      printf(", \"sigma2_y\": ");
      re_json_number(stdout, out->sigma2_y);
    }
    printf(", \"ranks\": %d}\n", out->ranks);
  } else if (out->r.defined) {
    printf("%.17g\n", out->r.value);
  } else {
    printf("undefined\n");
  }
  return out->r.defined ? RE_EXIT_OK : re_cli_undefined("CKA", out->r.reason);
}

int re_cmd_cka(int argc, char **argv) {
  cka_opts o;
  int rc = parse(argc, argv, &o);
  if (rc != RE_OPTS_RUN)
    return rc;
  rc = RE_EXIT_OK;
  int rank, size;
  re_cli_rank_size(o.sharded, &rank, &size);
  re_npy *X = NULL, *Y = NULL;
  cka_out out;
  memset(&out, 0, sizeof out);
  out.ranks = size;
  out.sigma2_x = out.sigma2_y = NAN;
  re_status st = re_cli_open_matrix(o.x, &X);
  if (st == RE_OK)
    st = re_cli_open_matrix(o.y, &Y);
  if (st == RE_OK)
    st = check_inputs(X, Y);
  if (st == RE_OK) {
    out.n = re_npy_rows(X);
    out.p = re_npy_cols(X);
    out.q = re_npy_cols(Y);
  }
  out.sx = out.sy = 1;
  if (o.sharded) {
    st = re_mpi_agree(MPI_COMM_WORLD, st);
    int64_t r0 = out.n * rank / size, r1 = out.n * (rank + 1) / size;
    if (st == RE_OK)
      st = re_cli_scale_of(X, r0, r1, 1, &out.sx);
    if (st == RE_OK)
      st = re_cli_scale_of(Y, r0, r1, 1, &out.sy);
  } else if (st == RE_OK) {
    st = re_cli_scale_of(X, 0, out.n, 0, &out.sx);
    if (st == RE_OK)
      st = re_cli_scale_of(Y, 0, out.n, 0, &out.sy);
  }
  if (o.sharded) {
    /* inputs are validated on every rank; agree before any collective work */
    re_status agreed = re_mpi_agree(MPI_COMM_WORLD, st);
    if (agreed == RE_OK)
      st = run_sharded(&o, X, Y, rank, size, &out);
    else
      st = agreed;
  } else if (st == RE_OK) {
    st = run_local(&o, X, Y, &out);
  }
  re_npy_close(&X);
  re_npy_close(&Y);
  if (st != RE_OK) {
    /* with several ranks, only the rank that failed prints its own message */
    if (!(o.sharded && st == RE_EMPI && rank != 0))
      rc = re_cli_fail(st);
    else
      rc = RE_EXIT_ERROR;
  } else if (rank == 0) {
    unscale(&o, &out);
    rc = report(&o, &out);
  }
  if (o.sharded) {
    int undefined = (rc == RE_EXIT_UNDEFINED);
    MPI_Bcast(&undefined, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank != 0 && rc == RE_EXIT_OK && undefined)
      rc = RE_EXIT_UNDEFINED;
  }
  return rc;
}
