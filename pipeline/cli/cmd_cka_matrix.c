/* repeval cka-matrix: CKA between every requested pair of P embedding files
 * (taps), from one streaming pass: minibatch HSIC (all pairs from two GEMMs per
 * batch) or exact linear CKA from co-moments. With --sharded under mpiexec,
 * batches (defined by global sample index) are split across ranks and the
 * statistics are reduced in a fixed order. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "mpi/mpi_reduce.h"
#include "repeval/hsic.h"

#define MAX_TAPS 4096

typedef enum { PAIRS_ALL, PAIRS_CONSECUTIVE, PAIRS_REFERENCE } pair_mode;

typedef struct opts {
  int ntaps;
  char *files[MAX_TAPS];
  char *names[MAX_TAPS];
  char *names_buf;
  int exact, rbf, biased, json, sharded;
  double threshold;
  int64_t batch, sigma_sample;
  pair_mode pairs;
  int reference;
  const char *out, *csv;
} opts;

static const re_opts_cmd CMD = {
    "cka-matrix", "E1 E2 [E3 ...] [options]",
    "CKA between every requested pair of embeddings of the same n samples\n"
    "(.npy files or file.npz:array, n x d each), in one streaming pass.\n",
    NULL};

/* --pairs all|consecutive|reference:K */
static re_status set_pairs(const re_opt *opt, const char *v) {
  opts *o = opt->dst;
  char *end;
  if (!strcmp(v, "all")) {
    o->pairs = PAIRS_ALL;
  } else if (!strcmp(v, "consecutive")) {
    o->pairs = PAIRS_CONSECUTIVE;
  } else if (!strncmp(v, "reference:", 10)) {
    o->pairs = PAIRS_REFERENCE;
    o->reference = (int)strtol(v + 10, &end, 10);
    if (*end || end == v + 10)
      return re_err(RE_EINVAL, "--pairs reference:K needs a tap index K, got '%s'", v);
  } else {
    return re_err(RE_EINVAL, "--pairs must be all, consecutive or reference:K, got '%s'", v);
  }
  return RE_OK;
}

static int parse(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  o->threshold = 1.0;
  o->batch = 256;
  o->sigma_sample = 1024;
  const char *names = NULL;
  const re_opt table[] = {
      RE_OPT_ENUM("estimator", &o->exact, "minibatch|exact", NULL,
                  "minibatch HSIC over batches of --batch samples (Nguyen et al. 2021; default) or exact linear "
                  "CKA from co-moments (memory: sum of d_i d_j over pairs)"),
      RE_OPT_INT("batch", &o->batch, 4, INT64_MAX, "B",
                 "minibatch size, batches cut by global sample index (default 256; a last partial batch of >= 4 "
                 "samples counts)"),
      RE_OPT_ENUM("kernel", &o->rbf, "linear|rbf", NULL, "kernel (minibatch only for rbf; default linear)"),
      RE_OPT_DOUBLE("sigma", &o->threshold, 0, INFINITY, RE_OPT_OPEN_MIN, "T",
                    "RBF: sigma^2 = T^2 * median squared distance (default 1)"),
      RE_OPT_INT("sigma-sample", &o->sigma_sample, 2, INT64_MAX, "N",
                 "RBF: bandwidth from the first N samples, fixed before accumulation (default 1024)"),
      RE_OPT_FLAG("biased", &o->biased, "biased HSIC instead of the unbiased HSIC_1 (default)"),
      RE_OPT_CALL("pairs", set_pairs, o, "all|consecutive|reference:K",
                  "which pairs: all (default), (i, i+1), or each vs tap K"),
      RE_OPT_STRING("names", &names, "a,b,c", "tap names for the output (default: file names)"),
      RE_OPT_STRING("out", &o->out, "M.npy", "write the P x P matrix (NaN where not computed or undefined)"),
      RE_OPT_STRING("csv", &o->csv, "FILE", "write tidy rows: tap_a,tap_b,cka,status"),
      RE_OPT_FLAG("json", &o->json, "print JSON instead of a table"),
      RE_OPT_FLAG("sharded", &o->sharded, "under mpiexec: split batches across ranks and reduce"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.min = 2, .max = MAX_TAPS, .v = o->files, .n = &o->ntaps,
                           .too_few = "give at least two embeddings", .too_many = "more than 4096 embeddings"};
  int rc = re_opts_parse(&CMD, table, argc, argv, &pos);
  if (rc != RE_OPTS_RUN)
    return rc;
  if (o->exact && o->rbf)
    return re_cli_usage_error("cka-matrix", "--estimator exact supports only the linear kernel");
  if (o->pairs == PAIRS_REFERENCE && (o->reference < 0 || o->reference >= o->ntaps))
    return re_cli_usage_error("cka-matrix", "--pairs reference:%d is not a tap index (0..%d)", o->reference,
                              o->ntaps - 1);
  if (names) {
    if (re_strdup(names, &o->names_buf) != RE_OK)
      return re_cli_fail(RE_ENOMEM);
    int k = 0;
    for (char *tok = strtok(o->names_buf, ","); tok; tok = strtok(NULL, ","))
      if (k < MAX_TAPS)
        o->names[k++] = tok;
    if (k != o->ntaps)
      return re_cli_usage_error("cka-matrix", "--names has %d names for %d embeddings", k, o->ntaps);
  } else {
    for (int k = 0; k < o->ntaps; k++)
      o->names[k] = o->files[k];
  }
  return RE_OPTS_RUN;
}

/* Pair list for the mode (npairs 0 means all pairs). */
static re_status make_pairs(const opts *o, int32_t **pairs, int *npairs) {
  *pairs = NULL;
  *npairs = 0;
  if (o->pairs == PAIRS_ALL)
    return RE_OK;
  RE_TRY(re_malloc(o->ntaps, 2 * sizeof(int32_t), pairs));
  int n = 0;
  for (int k = 0; k < o->ntaps; k++) {
    if (o->pairs == PAIRS_CONSECUTIVE && k + 1 < o->ntaps) {
      (*pairs)[2 * n] = k, (*pairs)[2 * n + 1] = k + 1, n++;
    } else if (o->pairs == PAIRS_REFERENCE && k != o->reference) {
      (*pairs)[2 * n] = o->reference, (*pairs)[2 * n + 1] = k, n++;
    }
  }
  *npairs = n;
  return RE_OK;
}

static int wanted(const opts *o, int p, int q) {
  switch (o->pairs) {
  case PAIRS_ALL: return 1;
  case PAIRS_CONSECUTIVE: return abs(p - q) <= 1;
  case PAIRS_REFERENCE: return p == q || p == o->reference || q == o->reference;
  }
  return 0;
}

typedef struct run {
  re_npy *in[MAX_TAPS];
  int64_t n, dims[MAX_TAPS];
  re_hsic *h;
  re_moments *m;
  double sigma2[MAX_TAPS];
  double scale[MAX_TAPS]; /* powers of two each tap is multiplied by (re_cli_scale_of) */
  float *buf;
  double *dbuf, *rowbuf; /* exact pass; float64 taps of the minibatch pass */
} run;

static re_status open_inputs(const opts *o, run *r) {
  for (int k = 0; k < o->ntaps; k++) {
    RE_TRY(re_cli_open_matrix(o->files[k], &r->in[k]));
    if (r->in[k]->h.ndim < 1)
      return re_err(RE_ESHAPE, "%s: a 0-d array is not a matrix of samples", o->files[k]);
    r->dims[k] = re_npy_cols(r->in[k]);
    if (r->dims[k] == 0)
      return re_err(RE_ESHAPE, "%s: zero features", o->files[k]);
    if (k == 0)
      r->n = re_npy_rows(r->in[0]);
    else if (re_npy_rows(r->in[k]) != r->n)
      return re_err(RE_ESHAPE, "%s has %lld rows but %s has %lld: all embeddings must hold the same samples",
                    o->files[k], (long long)re_npy_rows(r->in[k]), o->files[0], (long long)r->n);
  }
  int64_t dmax = 1;
  for (int k = 0; k < o->ntaps; k++)
    dmax = r->dims[k] > dmax ? r->dims[k] : dmax;
  int64_t rows = o->exact ? (o->batch > 4096 ? o->batch : 4096) : o->batch;
  if (o->rbf && o->sigma_sample > rows)
    rows = o->sigma_sample;
  RE_TRY(re_malloc(rows, dmax * (int64_t)sizeof(float), &r->buf));
  RE_TRY(re_malloc(rows, dmax * (int64_t)sizeof(double), &r->rowbuf));
  if (o->exact)
    RE_TRY(re_malloc(rows, dmax * (int64_t)o->ntaps * (int64_t)sizeof(double), &r->dbuf));
  return RE_OK;
}

static int is_f64(const re_npy *a) { return a->h.dtype == RE_DTYPE_F64; }

/* Rows [r0, r0 + nr) of tap p, scaled, into r->rowbuf (float64 files: their math stays
 * in float64, as in `repeval cka`) or r->buf (other dtypes: float32). */
static re_status read_tap(run *r, int p, int64_t r0, int64_t nr) {
  const re_npy *a = r->in[p];
  if (is_f64(a))
    return re_cli_read_rows_finite(a, r0, nr, r->scale[p], r->rowbuf);
  RE_TRY(re_npy_read_rows_f32(a, r0, nr, r->buf));
  float s = (float)r->scale[p];
  for (int64_t k = 0; k < nr * r->dims[p]; k++) {
    if (!isfinite(r->buf[k]))
      return re_err(RE_EDATA, "%s: row %lld, column %lld is %s", a->name, (long long)(r0 + k / r->dims[p]),
                    (long long)(k % r->dims[p]), isnan(r->buf[k]) ? "NaN" : "infinite");
    r->buf[k] *= s;
  }
  return RE_OK;
}

#define EXACT_CHUNK 4096 /* rows per batch of the exact estimator */

typedef struct batch_ctx {
  const opts *o;
  run *r;
  const double **xs; /* exact: one pointer per tap */
} batch_ctx;

/* Minibatch batch k: every tap's Gram into the HSIC sums. */
static re_status add_minibatch(void *ctx, int64_t k) {
  batch_ctx *c = ctx;
  const opts *o = c->o;
  run *r = c->r;
  int64_t s0 = k * o->batch, b = r->n - s0 < o->batch ? r->n - s0 : o->batch;
  if (b < 4)
    return RE_OK; /* a tail of fewer than 4 samples cannot enter the unbiased estimator */
  RE_TRY(re_hsic_begin_batch(r->h, b));
  for (int p = 0; p < o->ntaps; p++) {
    re_status st = read_tap(r, p, s0, b);
    if (st == RE_OK)
      st = is_f64(r->in[p]) ? re_hsic_add_tap_f64(r->h, p, r->rowbuf, r->dims[p], r->dims[p])
                            : re_hsic_add_tap_f32(r->h, p, r->buf, r->dims[p], r->dims[p]);
    if (st != RE_OK)
      return re_err_context(st, "%s (samples %lld..%lld): ", o->files[p], (long long)s0, (long long)(s0 + b));
  }
  return re_hsic_end_batch(r->h);
}

/* Exact batch k: rows [k EXACT_CHUNK, (k + 1) EXACT_CHUNK) into the co-moments. */
static re_status add_exact(void *ctx, int64_t k) {
  batch_ctx *c = ctx;
  run *r = c->r;
  int64_t s = k * EXACT_CHUNK, b = r->n - s < EXACT_CHUNK ? r->n - s : EXACT_CHUNK;
  double *p = r->dbuf;
  for (int t = 0; t < c->o->ntaps; t++) {
    RE_TRY(re_cli_read_rows_finite(r->in[t], s, b, r->scale[t], p));
    c->xs[t] = p;
    p += b * r->dims[t];
  }
  return re_moments_add_batch(r->m, b, c->xs, r->dims);
}

static re_status compute(const opts *o, run *r, int rank, int size) {
  int32_t *pairs = NULL;
  int npairs = 0;
  re_status st = make_pairs(o, &pairs, &npairs);
  /* this rank's rows: a contiguous range of batches (EXACT_CHUNK rows, or o->batch) */
  int64_t unit = o->exact ? EXACT_CHUNK : o->batch, nb = (r->n + unit - 1) / unit;
  int64_t r0 = nb * rank / size * unit, r1 = nb * (rank + 1) / size * unit;
  r1 = r1 < r->n ? r1 : r->n;
  if (o->sharded)
    st = re_mpi_agree(MPI_COMM_WORLD, st);
  for (int p = 0; p < o->ntaps && st == RE_OK; p++) {
    st = re_cli_scale_of(r->in[p], r0, r1, o->sharded, &r->scale[p]);
    if (o->rbf && !o->exact && st == RE_OK) { /* the bandwidth sample's rows too, read by every rank */
      double s2 = 1;
      int64_t ns = r->n < o->sigma_sample ? r->n : o->sigma_sample;
      st = re_cli_scale_of(r->in[p], 0, ns, 0, &s2);
      r->scale[p] = s2 < r->scale[p] ? s2 : r->scale[p];
    }
  }
  if (st == RE_OK && o->exact) {
    int32_t *all = NULL;
    int nall = npairs;
    if (o->pairs == PAIRS_ALL) { /* explicit list for the co-moment layout */
      nall = o->ntaps * (o->ntaps - 1) / 2;
      st = re_malloc(nall > 0 ? nall : 1, 2 * sizeof(int32_t), &all);
      int k = 0;
      for (int p = 0; st == RE_OK && p < o->ntaps; p++)
        for (int q = p + 1; q < o->ntaps; q++)
          all[2 * k] = p, all[2 * k + 1] = q, k++;
    }
    if (st == RE_OK)
      st = re_moments_create(o->ntaps, r->dims, nall, all ? all : pairs, o->biased ? 0 : RE_MOMENTS_DEBIASED,
                             &r->m);
    free(all);
  } else if (st == RE_OK) {
    if (o->rbf) { /* bandwidths from the first sigma_sample samples, the same on every rank */
      int64_t ns = r->n < o->sigma_sample ? r->n : o->sigma_sample;
      for (int p = 0; st == RE_OK && p < o->ntaps; p++) {
        st = read_tap(r, p, 0, ns);
        if (st == RE_OK)
          st = is_f64(r->in[p]) ? re_rbf_sigma2_f64(r->rowbuf, ns, r->dims[p], r->dims[p], o->threshold,
                                                    &r->sigma2[p])
                                : re_rbf_sigma2_f32(r->buf, ns, r->dims[p], r->dims[p], o->threshold, &r->sigma2[p]);
        if (st != RE_OK)
          re_err_context(st, "%s: ", o->files[p]);
      }
    }
    re_hsic_config cfg = {o->ntaps, o->rbf ? RE_KERNEL_RBF : RE_KERNEL_LINEAR, o->rbf ? r->sigma2 : NULL,
                          o->batch, npairs, pairs};
    if (st == RE_OK)
      st = re_hsic_create(&cfg, &r->h);
  }
  free(pairs);
  /* every batch along the canonical tree: the same bits for any number of ranks */
  MPI_Comm comm = re_cli_comm(o->sharded);
  if (comm != MPI_COMM_NULL)
    st = re_mpi_agree(comm, st);
  const double **xs = NULL;
  if (st == RE_OK)
    st = re_calloc(o->ntaps, sizeof(double *), &xs);
  batch_ctx ctx = {o, r, xs};
  tree_acc acc;
  if (st == RE_OK) {
    acc = o->exact ? tree_moments_acc(r->m) : re_cli_hsic_acc(r->h);
    st = tree_stream_reduce(comm, &acc, nb, o->exact ? add_exact : add_minibatch, &ctx);
  }
  free(xs);
  return st;
}

static re_status finalize(const opts *o, run *r, double *M, const char **reasons) {
  int P = o->ntaps;
  for (int p = 0; p < P; p++)
    for (int q = 0; q < P; q++) {
      M[p * P + q] = NAN;
      reasons[p * P + q] = "not requested";
      if (!wanted(o, p, q))
        continue;
      re_cka_result res;
      if (o->exact)
        RE_TRY(re_cka_linear_from_moments(r->m, p, q, !o->biased, &res));
      else
        RE_TRY(re_hsic_cka(r->h, p, q, !o->biased, &res));
      M[p * P + q] = res.defined ? res.value : NAN;
      reasons[p * P + q] = res.defined ? NULL : res.reason;
    }
  return RE_OK;
}

static re_status write_csv(const opts *o, const double *M, const char **reasons) {
  FILE *f = fopen(o->csv, "w");
  if (!f)
    return re_err(RE_EIO, "%s: cannot write", o->csv);
  fprintf(f, "tap_a,tap_b,cka,status\n");
  int P = o->ntaps;
  for (int p = 0; p < P; p++)
    for (int q = 0; q < P; q++) {
      if (!wanted(o, p, q))
        continue;
      fprintf(f, "%s,%s,", o->names[p], o->names[q]);
      if (isfinite(M[p * P + q]))
        fprintf(f, "%.17g,ok\n", M[p * P + q]);
      else
        fprintf(f, ",undefined: %s\n", reasons[p * P + q]);
    }
  if (fclose(f) != 0)
    return re_err(RE_EIO, "%s: write failed", o->csv);
  return RE_OK;
}

static void print_result(const opts *o, const run *r, const double *M, const char **reasons) {
  int P = o->ntaps;
  if (o->json) {
    printf("{\"estimator\": \"%s\", \"kernel\": \"%s\", \"unbiased\": %s, \"n\": %lld, \"batch\": %lld",
           o->exact ? "exact" : "minibatch", o->rbf ? "rbf" : "linear", o->biased ? "false" : "true",
           (long long)r->n, (long long)(o->exact ? r->n : o->batch));
    if (!o->exact)
      printf(", \"batches\": %lld", (long long)(o->biased ? re_hsic_batches_biased(r->h) : re_hsic_batches(r->h)));
    printf(", \"taps\": [");
    for (int p = 0; p < P; p++) {
      printf("%s", p ? ", " : "");
      re_json_string(stdout, o->names[p]);
    }
    printf("]");
    if (o->rbf) {
      printf(", \"sigma2\": [");
      for (int p = 0; p < P; p++) {
        printf("%s", p ? ", " : "");
        re_json_number(stdout, r->sigma2[p] / (r->scale[p] * r->scale[p])); /* in the units of the file */
      }
      printf("]");
    }
    printf(", \"cka\": [");
    for (int p = 0; p < P; p++) {
      printf("%s[", p ? ", " : "");
      for (int q = 0; q < P; q++) {
        printf("%s", q ? ", " : "");
        re_json_number(stdout, M[p * P + q]);
      }
      printf("]");
    }
    printf("], \"undefined\": [");
    int first = 1;
    for (int p = 0; p < P; p++)
      for (int q = 0; q < P; q++)
        if (wanted(o, p, q) && !isfinite(M[p * P + q])) {
          printf("%s{\"a\": %d, \"b\": %d, \"reason\": ", first ? "" : ", ", p, q);
          re_json_string(stdout, reasons[p * P + q]);
          printf("}");
          first = 0;
        }
    printf("]}\n");
    return;
  }
  for (int p = 0; p < P; p++) {
    for (int q = 0; q < P; q++) {
      if (!wanted(o, p, q))
        printf("%s%8s", q ? " " : "", "-");
      else if (isfinite(M[p * P + q]))
        printf("%s%8.5f", q ? " " : "", M[p * P + q]);
      else
        printf("%s%8s", q ? " " : "", "undef");
    }
    printf("  %s\n", o->names[p]);
  }
}

int re_cmd_cka_matrix(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o);
  if (rc != RE_OPTS_RUN) {
    free(o.names_buf);
    return rc;
  }
  rc = RE_EXIT_OK;
  int rank, size;
  re_cli_rank_size(o.sharded, &rank, &size);
  run r;
  memset(&r, 0, sizeof r);
  double *M = NULL;
  const char **reasons = NULL;
  re_status st = open_inputs(&o, &r);
  if (o.sharded)
    st = re_mpi_agree(MPI_COMM_WORLD, st);
  if (st == RE_OK)
    st = compute(&o, &r, rank, size);
  if (st == RE_OK && rank == 0) {
    st = re_malloc((int64_t)o.ntaps * o.ntaps, sizeof(double), &M);
    if (st == RE_OK)
      st = re_calloc((int64_t)o.ntaps * o.ntaps, sizeof(char *), &reasons);
    if (st == RE_OK)
      st = finalize(&o, &r, M, reasons);
    if (st == RE_OK && o.out) {
      int64_t shape[2] = {o.ntaps, o.ntaps};
      st = re_npy_write(o.out, RE_DTYPE_F64, 2, shape, M);
    }
    if (st == RE_OK && o.csv)
      st = write_csv(&o, M, reasons);
    if (st == RE_OK)
      print_result(&o, &r, M, reasons);
  }
  if (st != RE_OK)
    rc = (o.sharded && st == RE_EMPI && rank != 0) ? RE_EXIT_ERROR : re_cli_fail(st);
  for (int k = 0; k < o.ntaps; k++)
    re_npy_close(&r.in[k]);
  re_hsic_destroy(&r.h);
  re_moments_destroy(&r.m);
  free(r.buf);
  free(r.dbuf);
  free(r.rowbuf);
  free(M);
  free(reasons);
  free(o.names_buf);
  if (o.sharded) {
    int bad = rc != RE_EXIT_OK;
    int any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any && rc == RE_EXIT_OK)
      rc = RE_EXIT_ERROR;
  }
  return rc;
}
