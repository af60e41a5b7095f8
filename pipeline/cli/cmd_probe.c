/* repeval probe: linear (logistic, ridge), MLP and k-NN probes of an embedding, trained on
 * labelled training rows, λ chosen on a validation split, scored on test rows. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "repeval/atomic.h"
#include "repeval/probe.h"

enum { KIND_LOGISTIC, KIND_RIDGE, KIND_KNN, KIND_MLP };

#define MAX_LAMBDAS 256

typedef struct opts {
  const char *train, *train_labels, *val, *val_labels, *test, *test_labels;
  const char *csv, *weights, *predictions;
  int kind, json, standardize, nl, classes, grid_given;
  double lambdas[MAX_LAMBDAS];
  double val_fraction;
  unsigned long long seed;
  re_logreg_options lo;
  re_knn_options ko;
  re_mlp_options mo;
} opts;

/* A matrix of features and its labels, loaded. */
typedef struct labelled {
  float *X;
  int32_t *y;
  int64_t n, d;
} labelled;

static const re_opts_cmd CMD = {
    "probe", "--train X.npy --train-labels y.npy --test Xt.npy --test-labels yt.npy [options]",
    "Probe an embedding (n x d rows; .npy or file.npz:array) with labelled samples:\n"
    "multinomial logistic regression with L2 (L-BFGS), ridge regression on one-hot\n"
    "targets, a one-hidden-layer MLP (L-BFGS), or cosine k-NN. lambda is chosen on a\n"
    "validation split, the model refitted on\n"
    "train + validation and scored on the test rows. Labels: integer class indices.\n",
    NULL};

static int parse_list(const char *v, double *out, int cap, int *n) {
  *n = 0;
  const char *p = v;
  while (*p) {
    char *end;
    double x = strtod(p, &end);
    if (end == p || *n >= cap)
      return -1;
    out[(*n)++] = x;
    if (*end == ',')
      end++;
    else if (*end)
      return -1;
    p = end;
  }
  return *n > 0 ? 0 : -1;
}

/* --grid LO,HI,N */
static re_status set_grid(const re_opt *opt, const char *v) {
  opts *o = opt->dst;
  double g[3];
  int n;
  if (parse_list(v, g, 3, &n) || n != 3 || g[2] != floor(g[2]) || g[2] < 1 || g[2] > MAX_LAMBDAS ||
      re_probe_log_grid(g[0], g[1], (int)g[2], o->lambdas) != RE_OK)
    return re_err(RE_EINVAL, "--grid needs LO,HI,N with 0 < LO <= HI and 1 <= N <= %d (N = 1: LO == HI), got '%s'",
                  MAX_LAMBDAS, v);
  o->nl = (int)g[2];
  o->grid_given = 1;
  return RE_OK;
}

/* --lambdas a,b,... */
static re_status set_lambdas(const re_opt *opt, const char *v) {
  opts *o = opt->dst;
  if (parse_list(v, o->lambdas, MAX_LAMBDAS, &o->nl))
    return re_err(RE_EINVAL, "--lambdas needs up to %d comma-separated numbers, got '%s'", MAX_LAMBDAS, v);
  for (int k = 0; k < o->nl; k++)
    if (!(o->lambdas[k] > 0) || !isfinite(o->lambdas[k]))
      return re_err(RE_EINVAL, "--lambdas: every lambda must be a finite number > 0, got '%s'", v);
  o->grid_given = 1;
  return RE_OK;
}

static int parse_args(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  o->val_fraction = 0.1;
  o->lo = re_logreg_defaults();
  o->ko = re_knn_defaults();
  o->mo = re_mlp_defaults();
  re_probe_default_grid(o->lambdas);
  o->nl = 11;
  int no_standardize = 0;
  double tol = NAN, ftol = NAN; /* unset: the kind's default */
  int64_t seed = 0, classes = 0, max_iter = -1, memory = o->lo.memory, k = o->ko.k, hidden = o->mo.hidden,
          init_seed = (int64_t)o->mo.seed;
  const re_opt table[] = {
      RE_OPT_STRING("train", &o->train, "X.npy", "training features"),
      RE_OPT_STRING("train-labels", &o->train_labels, "y.npy", "training labels"),
      RE_OPT_STRING("test", &o->test, "Xt.npy", "test features"),
      RE_OPT_STRING("test-labels", &o->test_labels, "yt.npy", "test labels"),
      RE_OPT_ENUM("kind", &o->kind, "logistic|ridge|knn|mlp", "K", "logistic (default), ridge, knn or mlp"),
      RE_OPT_CALL("grid", set_grid, o, "LO,HI,N", "N log-spaced lambda from LO to HI (default 1e-6,1e4,11)"),
      RE_OPT_CALL("lambdas", set_lambdas, o, "a,b,...", "explicit lambda values"),
      RE_OPT_STRING("val", &o->val, "X.npy", "validation rows, with --val-labels (default: held out from train)"),
      RE_OPT_STRING("val-labels", &o->val_labels, "y.npy", "labels of the validation rows"),
      RE_OPT_DOUBLE("val-fraction", &o->val_fraction, 0, 1, RE_OPT_OPEN_MAX, "F",
                    "fraction of train held out for validation (default 0.1)"),
      RE_OPT_INT("seed", &seed, 0, INT64_MAX, "S", "seed of the validation permutation (default 0)"),
      RE_OPT_FLAG("no-standardize", &no_standardize, "do not scale features by the training mean and std"),
      RE_OPT_INT("classes", &classes, 2, 1000000, "K", "number of classes (default 1 + the largest label)"),
      RE_OPT_DOUBLE("tol", &tol, 0, INFINITY, 0, "E", "logistic, mlp: gradient tolerance (default 1e-6, mlp 1e-5)"),
      RE_OPT_DOUBLE("ftol", &ftol, 0, INFINITY, 0, "E",
                    "logistic, mlp: relative-decrease stall tolerance (default 2.2e-9; 0 off)"),
      RE_OPT_INT("max-iter", &max_iter, 0, 100000000, "N",
                 "logistic, mlp: L-BFGS iterations per fit (default 1000, mlp 500)"),
      RE_OPT_INT("memory", &memory, 1, 1000, "M", "logistic, mlp: L-BFGS memory (default 10)"),
      RE_OPT_INT("hidden", &hidden, 1, 65536, "H", "mlp: hidden units (default 64)"),
      RE_OPT_INT("init-seed", &init_seed, 0, INT64_MAX, "S", "mlp: seed of the starting point (default 20261204)"),
      RE_OPT_ENUM("activation", &o->mo.activation, "gelu|relu", "A", "mlp: hidden activation (default gelu)"),
      RE_OPT_INT("k", &k, 1, 1000000, "K", "knn: neighbours (default 20)"),
      RE_OPT_DOUBLE("temperature", &o->ko.temperature, 0, INFINITY, RE_OPT_OPEN_MIN, "T",
                    "knn: vote weight exp(similarity / T) (default 0.07)"),
      RE_OPT_FLAG("json", &o->json, "one JSON object with the whole lambda curve"),
      RE_OPT_STRING("csv", &o->csv, "FILE", "tidy rows: kind,lambda,split,metric,value"),
      RE_OPT_STRING("weights", &o->weights, "FILE.npy",
                    "logistic: K x (d + 1) [W | b] of the final model; ridge: (d + 1) x K [W; b] at the selected "
                    "lambda; mlp: the flat vector [W1 | b1 | W2 | b2] (raw feature coordinates)"),
      RE_OPT_STRING("predictions", &o->predictions, "FILE.npy", "top-1 predictions for the test rows (int32)"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.too_many = "give the inputs with --train, --train-labels, --test and --test-labels"};
  int rc = re_opts_parse(&CMD, table, argc, argv, &pos);
  if (rc != RE_OPTS_RUN)
    return rc;
  o->seed = (unsigned long long)seed;
  o->classes = (int)classes;
  if (o->kind == KIND_MLP && !o->grid_given) { /* the MLP's own sweep: weight decay 1e-5 ... 1e-1 */
    re_probe_log_grid(1e-5, 1e-1, 5, o->lambdas);
    o->nl = 5;
  }
  o->lo.tol = isnan(tol) ? o->lo.tol : tol;
  o->lo.ftol = isnan(ftol) ? o->lo.ftol : ftol;
  o->lo.max_iter = max_iter < 0 ? o->lo.max_iter : (int)max_iter;
  o->lo.memory = (int)memory;
  o->mo.tol = isnan(tol) ? o->mo.tol : tol;
  o->mo.ftol = isnan(ftol) ? o->mo.ftol : ftol;
  o->mo.max_iter = max_iter < 0 ? o->mo.max_iter : (int)max_iter;
  o->mo.memory = (int)memory;
  o->mo.hidden = (int)hidden;
  o->mo.seed = (uint64_t)init_seed;
  o->ko.k = (int)k;
  o->standardize = !no_standardize;
  if (!o->train || !o->train_labels || !o->test || !o->test_labels)
    return re_cli_usage_error("probe", "give --train, --train-labels, --test and --test-labels");
  if (!o->val != !o->val_labels)
    return re_cli_usage_error("probe", "--val and --val-labels go together");
  if (o->weights && o->kind == KIND_KNN)
    return re_cli_usage_error("probe", "--weights is for the logistic, ridge and mlp probes");
  o->lo.standardize = o->standardize;
  o->mo.standardize = o->standardize;
  return RE_OPTS_RUN;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void labelled_free(labelled *l) {
  free(l->X);
  free(l->y);
  memset(l, 0, sizeof *l);
}

/* Standardized and k-NN probes do not depend on the features' scale, so every split
 * is first multiplied by one power of two that brings max |x| of them all into
 * [0.5, 1) (exact): values like 1e75 or 1e-100 then fit float32, which probes compute
 * in. Without standardization the scale is the features' own (1). */
static re_status common_scale(const char *const *files, int n, double *scale) {
  *scale = 1;
  for (int k = 0; k < n; k++) {
    re_npy *a = NULL;
    double s = 1;
    if (!files[k])
      continue;
    re_status st = re_cli_open_matrix(files[k], &a);
    if (st == RE_OK)
      st = re_cli_scale_of(a, 0, re_npy_rows(a), 0, &s);
    re_npy_close(&a);
    RE_TRY(st);
    *scale = k == 0 || s < *scale ? s : *scale;
  }
  return RE_OK;
}

/* Features as float32, times `scale`; values beyond float32 are refused. */
static re_status read_features(const re_npy *a, int64_t n, int64_t d, double scale, float *X) {
  const int64_t chunk = 4096;
  double *buf = NULL;
  RE_TRY(re_malloc(n < chunk ? n : chunk, d * (int64_t)sizeof(double), &buf));
  re_status st = RE_OK;
  for (int64_t r = 0; r < n && st == RE_OK; r += chunk) {
    int64_t nr = n - r < chunk ? n - r : chunk;
    st = re_cli_read_rows_finite(a, r, nr, scale, buf); /* the row is the file's, before any split */
    for (int64_t k = 0; st == RE_OK && k < nr * d; k++) {
      if (fabs(buf[k]) > FLT_MAX || (buf[k] != 0 && fabs(buf[k]) < FLT_MIN))
        st = re_err(RE_EDATA, "%s: row %lld, column %lld is %g, beyond float32, which probes compute in: "
                              "standardize the features (the default) or rescale them",
                    a->name, (long long)(r + k / d), (long long)(k % d), buf[k] / scale);
      X[r * d + k] = (float)buf[k];
    }
  }
  free(buf);
  return st;
}

/* Load features (as float32) and integer labels of the same number of rows. */
static re_status load(const char *xs, const char *ys, double scale, labelled *out) {
  re_status st = RE_OK;
  re_npy *a = NULL, *b = NULL;
  double *lab = NULL;
  memset(out, 0, sizeof *out);
  RE_CHECK(re_cli_open_matrix(xs, &a));
  RE_CHECK(re_cli_open_matrix(ys, &b));
  int64_t n = re_npy_rows(a), d = re_npy_cols(a);
  if (re_npy_cols(b) != 1 || re_npy_rows(b) != n) {
    st = re_err(RE_ESHAPE, "%s: %lld x %lld labels, expected one label for each of the %lld rows of %s", ys,
                (long long)re_npy_rows(b), (long long)re_npy_cols(b), (long long)n, xs);
    goto done;
  }
  if (n < 1 || d < 1) {
    st = re_err(RE_ESHAPE, "%s: %lld rows of %lld features", xs, (long long)n, (long long)d);
    goto done;
  }
  int64_t cells;
  RE_CHECK(re_mul_i64(n, d, &cells));
  RE_CHECK(re_malloc(cells, sizeof(float), &out->X));
  RE_CHECK(read_features(a, n, d, scale, out->X));
  RE_CHECK(re_malloc(n, sizeof(double), &lab));
  RE_CHECK(re_malloc(n, sizeof(int32_t), &out->y));
  RE_CHECK(re_npy_read_rows_f64(b, 0, n, lab));
  for (int64_t i = 0; i < n; i++) {
    if (!(lab[i] >= 0 && lab[i] < 2147483647.0 && lab[i] == floor(lab[i]))) {
      st = re_err(RE_EDATA, "%s: index %lld is %g, expected a class index (an integer >= 0)", ys, (long long)i,
                  lab[i]);
      goto done;
    }
    out->y[i] = (int32_t)lab[i];
  }
  out->n = n;
  out->d = d;
done:
  if (st != RE_OK)
    labelled_free(out);
  free(lab);
  re_npy_close(&a);
  re_npy_close(&b);
  return st;
}

static re_probe_rows rows_of(const labelled *l, const char *name) {
  re_probe_rows r = {l->X, l->y, l->n, l->d, l->d, name};
  return r;
}

static int32_t max_label(const labelled *l) {
  int32_t m = -1;
  for (int64_t i = 0; i < l->n; i++)
    if (l->y[i] > m)
      m = l->y[i];
  return m;
}

/* Split train into (train part, validation) with the documented permutation. */
static re_status split(const labelled *all, double fraction, uint64_t seed, labelled *tr, labelled *va) {
  re_status st = RE_OK;
  uint8_t *mask = NULL;
  memset(tr, 0, sizeof *tr);
  memset(va, 0, sizeof *va);
  RE_CHECK(re_malloc(all->n, 1, &mask));
  RE_CHECK(re_probe_split(all->n, fraction, seed, 0, all->n, mask));
  int64_t nv = 0;
  for (int64_t i = 0; i < all->n; i++)
    nv += mask[i];
  tr->d = va->d = all->d;
  tr->n = all->n - nv;
  va->n = nv;
  RE_CHECK(re_malloc(tr->n * all->d + 1, sizeof(float), &tr->X));
  RE_CHECK(re_malloc(va->n * all->d + 1, sizeof(float), &va->X));
  RE_CHECK(re_malloc(tr->n + 1, sizeof(int32_t), &tr->y));
  RE_CHECK(re_malloc(va->n + 1, sizeof(int32_t), &va->y));
  int64_t a = 0, b = 0;
  for (int64_t i = 0; i < all->n; i++) {
    labelled *dst = mask[i] ? va : tr;
    int64_t *k = mask[i] ? &b : &a;
    memcpy(dst->X + *k * all->d, all->X + i * all->d, (size_t)all->d * sizeof(float));
    dst->y[*k] = all->y[i];
    (*k)++;
  }
done:
  free(mask);
  if (st != RE_OK) {
    labelled_free(tr);
    labelled_free(va);
  }
  return st;
}

static double frac(double num, double den) { return den > 0 ? num / den : NAN; }

static void json_score(const char *key, const re_probe_score *s, int K, int with_loss) {
  printf("\"%s\": {\"n\": %.0f, \"top1\": ", key, s->n);
  re_json_number(stdout, frac(s->top1, s->n));
  printf(", \"top5\": ");
  re_json_number(stdout, K >= 10 ? frac(s->top5, s->n) : NAN);
  printf(", \"correct\": %.0f", s->top1);
  if (with_loss) {
    printf(", \"loss\": ");
    re_json_number(stdout, frac(s->loss, s->n));
  }
  printf("}");
}

static void json_fit(const re_logreg_info *f) {
  printf("\"iterations\": %d, \"evaluations\": %d, \"f\": ", f->iterations, f->evaluations);
  re_json_number(stdout, f->f);
  printf(", \"grad_inf\": ");
  re_json_number(stdout, f->grad_inf);
  printf(", \"converged\": %s, \"stop\": ", f->converged ? "true" : "false");
  re_json_string(stdout, f->stop ? f->stop : "");
}

static void csv_row(FILE *f, const char *kind, double lambda, const char *split, const char *metric, double v) {
  fprintf(f, "%s,", kind);
  if (isfinite(lambda))
    fprintf(f, "%.17g", lambda);
  fprintf(f, ",%s,%s,", split, metric);
  if (isfinite(v))
    fprintf(f, "%.17g", v);
  fputc('\n', f);
}

static void csv_score(FILE *f, const char *kind, double lambda, const char *split, const re_probe_score *s, int K,
                      int with_loss) {
  csv_row(f, kind, lambda, split, "top1", frac(s->top1, s->n));
  if (K >= 10)
    csv_row(f, kind, lambda, split, "top5", frac(s->top5, s->n));
  if (with_loss)
    csv_row(f, kind, lambda, split, "loss", frac(s->loss, s->n));
}

static void print_plain(double lambda, const re_probe_score *t, int K) {
  if (isfinite(lambda))
    printf("lambda %.17g\n", lambda);
  printf("top1 %.17g\n", frac(t->top1, t->n));
  if (K >= 10)
    printf("top5 %.17g\n", frac(t->top5, t->n));
}

typedef struct inputs {
  labelled train, val, test;
  re_probe_rows tr, va, te; /* the three splits as the probes read them */
  int have_val; /* validation rows exist (given or split) */
  double scale; /* power of two the features were multiplied by (common_scale) */
  int K;
} inputs;

/* A fitted probe's top-1 predictions of rows (l: the λ of a ridge path, else unused). */
typedef re_status (*predict_fn)(const void *model, int l, const re_probe_rows *rows, int32_t *pred);

/* The probes' predict functions as predict_fn. */
static re_status predict_logreg(const void *m, int l, const re_probe_rows *r, int32_t *p) {
  (void)l;
  return re_logreg_predict(m, r, p);
}
static re_status predict_mlp(const void *m, int l, const re_probe_rows *r, int32_t *p) {
  (void)l;
  return re_mlp_predict(m, r, p);
}
static re_status predict_ridge(const void *m, int l, const re_probe_rows *r, int32_t *p) {
  return re_ridge_path_predict(m, l, r, p);
}
static re_status predict_knn(const void *m, int l, const re_probe_rows *r, int32_t *p) {
  (void)l;
  return re_knn_predict(m, r, p);
}

/* --predictions: the model's top-1 predictions of the test rows as an int32 .npy (nothing without it). */
static re_status save_predictions(const opts *o, const inputs *in, predict_fn fn, const void *model, int l) {
  if (!o->predictions)
    return RE_OK;
  int32_t *pred = NULL;
  int64_t shape[1] = {in->test.n};
  re_status st = re_malloc(in->test.n, sizeof(int32_t), &pred);
  if (st == RE_OK)
    st = fn(model, l, &in->te, pred);
  if (st == RE_OK)
    st = re_npy_write(o->predictions, RE_DTYPE_I32, 1, shape, pred);
  free(pred);
  return st;
}

/* --csv: the file opened (replaced atomically on commit) and its header written. */
static re_status csv_open(const char *path, re_atomic *a) {
  memset(a, 0, sizeof *a);
  RE_TRY(re_atomic_open(path, a));
  fprintf(a->f, "kind,lambda,split,metric,value\n");
  return RE_OK;
}

/* The start of a λ sweep's JSON object: kind, extra members ("" or '"key": value, '),
 * sizes, the selected λ and its test score. */
static void json_head(const opts *o, const inputs *in, const char *kind, const char *extra, double lambda,
                      const re_probe_score *test, int with_loss) {
  printf("{\"kind\": \"%s\", %s\"n_train\": %lld, \"n_val\": %lld, \"n_test\": %lld, \"d\": %lld, "
         "\"classes\": %d, \"standardize\": %s, \"lambda\": ",
         kind, extra, (long long)in->train.n, (long long)in->val.n, (long long)in->test.n, (long long)in->train.d,
         in->K, o->standardize ? "true" : "false");
  re_json_number(stdout, lambda);
  printf(", ");
  json_score("test", test, in->K, with_loss);
}

/* The end of a JSON object: the seconds taken. */
static void json_seconds(double secs) {
  printf(", \"seconds\": ");
  re_json_number(stdout, secs);
  printf("}\n");
}

/* The CSV file (--csv) and the JSON object or plain line of a λ sweep whose points are
 * fits with validation scores (logistic, mlp); extra: more JSON members, "" or
 * '"key": value, '. */
static re_status sweep_report(const opts *o, const inputs *in, const char *kind, const char *extra,
                              const re_logreg_point *points, int nlambdas, double lambda,
                              const re_logreg_info *refit, const re_probe_score *test, double t0) {
  double secs = now() - t0;
  if (o->csv) {
    re_atomic a;
    RE_TRY(csv_open(o->csv, &a));
    for (int l = 0; l < nlambdas && in->have_val; l++)
      csv_score(a.f, kind, points[l].fit.lambda, "val", &points[l].val, in->K, 1);
    csv_score(a.f, kind, lambda, "test", test, in->K, 1);
    RE_TRY(re_atomic_commit(&a));
  }
  if (!o->json) {
    print_plain(lambda, test, in->K);
    return RE_OK;
  }
  json_head(o, in, kind, extra, lambda, test, 1);
  printf(", \"refit\": {");
  json_fit(refit);
  printf("}, \"curve\": [");
  for (int l = 0; l < nlambdas; l++) {
    printf("%s{\"lambda\": ", l ? ", " : "");
    re_json_number(stdout, points[l].fit.lambda);
    printf(", ");
    json_fit(&points[l].fit);
    printf(", ");
    json_score("val", &points[l].val, in->K, 1);
    printf("}");
  }
  printf("]");
  json_seconds(secs);
  return RE_OK;
}

/* The ridge path on train + val and the scores of every λ. */
typedef struct ridge_fit {
  re_ridge_path *path;        /* fitted on train + val */
  re_probe_score *val, *test; /* nl each; val zero without validation rows */
  int best;                   /* the selected λ */
} ridge_fit;

/* --weights of the linear probes in the files' feature units: the logistic probe's
 * K x (d + 1) [W | b] (lr), or ridge's (d + 1) x K [W; b] at the selected λ (f). */
static re_status write_linear_weights(const opts *o, const inputs *in, const re_logreg *lr, const ridge_fit *f) {
  re_status st = RE_OK;
  int64_t d = in->train.d, K = in->K;
  double *W = NULL, *b = NULL, *Wb = NULL;
  RE_CHECK(re_malloc(K * d, sizeof(double), &W));
  RE_CHECK(re_malloc(K, sizeof(double), &b));
  RE_CHECK(re_malloc(K * (d + 1), sizeof(double), &Wb));
  if (lr) {
    re_logreg_weights(lr, W, b); /* W: K x d */
    for (int64_t k = 0; k < K; k++) {
      for (int64_t j = 0; j < d; j++) /* weights of the features as the file holds them */
        Wb[k * (d + 1) + j] = W[k * d + j] * in->scale;
      Wb[k * (d + 1) + d] = b[k];
    }
  } else {
    RE_CHECK(re_ridge_path_weights(f->path, f->best, W, b)); /* W: d x K */
    for (int64_t k = 0; k < d * K; k++)
      Wb[k] = W[k] * in->scale;
    memcpy(Wb + d * K, b, (size_t)K * sizeof(double));
  }
  int64_t shape[2] = {lr ? K : d + 1, lr ? d + 1 : K};
  st = re_npy_write(o->weights, RE_DTYPE_F64, 2, shape, Wb);
done:
  free(W);
  free(b);
  free(Wb);
  return st;
}

/* The logistic probe: λ sweep, refit, --predictions, --weights and the report. */
static re_status run_logistic(const opts *o, inputs *in, double t0) {
  re_status st = RE_OK;
  re_logreg_sweep sw;
  re_logreg *lr = NULL;
  memset(&sw, 0, sizeof sw);
  RE_CHECK(re_logreg_sweep_run(&in->tr, in->have_val ? &in->va : NULL, &in->te, in->K, o->lambdas, o->nl, &o->lo,
                               &sw, &lr));
  RE_CHECK(save_predictions(o, in, predict_logreg, lr, 0));
  if (o->weights)
    RE_CHECK(write_linear_weights(o, in, lr, NULL));
  RE_CHECK(sweep_report(o, in, "logistic", "", sw.points, sw.nlambdas, sw.lambda, &sw.refit, &sw.test, t0));
done:
  re_logreg_sweep_free(&sw);
  re_logreg_destroy(&lr);
  return st;
}

/* The MLP probe: λ (weight decay) sweep, refit, --predictions, --weights and the report. */
static re_status run_mlp(const opts *o, inputs *in, double t0) {
  re_mlp_sweep sw;
  re_mlp *m = NULL;
  double *w = NULL;
  memset(&sw, 0, sizeof sw);
  re_status st = re_mlp_sweep_run(&in->tr, in->have_val ? &in->va : NULL, &in->te, in->K, o->lambdas, o->nl, &o->mo,
                                  &sw, &m);
  if (st == RE_OK)
    st = save_predictions(o, in, predict_mlp, m, 0);
  if (st == RE_OK && o->weights) {
    int64_t np = re_mlp_param_count(m), d = in->train.d, H = o->mo.hidden;
    st = re_malloc(np, sizeof(double), &w);
    if (st == RE_OK) {
      re_mlp_weights(m, w);
      for (int64_t k = 0; k < H * d; k++) /* weights of the features as the file holds them */
        w[k] *= in->scale;
      int64_t shape[1] = {np};
      st = re_npy_write(o->weights, RE_DTYPE_F64, 1, shape, w);
    }
  }
  char hidden[40];
  snprintf(hidden, sizeof hidden, "\"hidden\": %d, ", o->mo.hidden);
  if (st == RE_OK)
    st = sweep_report(o, in, "mlp", hidden, sw.points, sw.nlambdas, sw.lambda, &sw.refit, &sw.test, t0);
  re_mlp_sweep_free(&sw);
  re_mlp_destroy(&m);
  free(w);
  return st;
}

/* Validation scores of the path fitted on train and the λ they select, then the path
 * refitted on train + val and its test scores. */
static re_status ridge_fit_run(const opts *o, const inputs *in, ridge_fit *f) {
  re_status st = RE_OK;
  re_moments *mt = NULL, *mv = NULL;
  re_ridge_path *pt = NULL;
  int nl = o->nl, K = in->K;
  int64_t d = in->train.d;
  RE_CHECK(re_calloc(nl, sizeof(re_probe_score), &f->val));
  RE_CHECK(re_calloc(nl, sizeof(re_probe_score), &f->test));
  RE_CHECK(re_ridge_moments_create(d, K, &mt));
  RE_CHECK(re_ridge_moments_add(mt, &in->tr));
  if (in->have_val) {
    RE_CHECK(re_ridge_moments_create(d, K, &mv));
    RE_CHECK(re_ridge_moments_add(mv, &in->va));
    RE_CHECK(re_ridge_path_create(mt, 0, 1, o->lambdas, nl, o->standardize, NULL, &pt));
    RE_CHECK(re_ridge_path_score(pt, &in->va, f->val));
    f->best = re_ridge_select(f->val, o->lambdas, nl);
    RE_CHECK(re_moments_merge(mt, mv));
  } else if (nl > 1) {
    st = re_err(RE_EINVAL, "ridge probe: %d lambda values but no validation rows to choose among them", nl);
    goto done;
  }
  RE_CHECK(re_ridge_path_create(mt, 0, 1, o->lambdas, nl, o->standardize, NULL, &f->path));
  RE_CHECK(re_ridge_path_score(f->path, &in->te, f->test));
done:
  re_moments_destroy(&mt);
  re_moments_destroy(&mv);
  re_ridge_path_destroy(&pt);
  return st;
}

/* The CSV file (--csv) and the JSON object or plain line of the ridge probe: every λ's
 * validation and test scores. */
static re_status ridge_report(const opts *o, const inputs *in, const ridge_fit *f, double t0) {
  double secs = now() - t0;
  int nl = o->nl, K = in->K;
  if (o->csv) {
    re_atomic a;
    RE_TRY(csv_open(o->csv, &a));
    for (int l = 0; l < nl; l++) {
      if (in->have_val)
        csv_score(a.f, "ridge", o->lambdas[l], "val", &f->val[l], K, 0);
      csv_score(a.f, "ridge", o->lambdas[l], "test", &f->test[l], K, 0);
    }
    RE_TRY(re_atomic_commit(&a));
  }
  if (!o->json) {
    print_plain(o->lambdas[f->best], &f->test[f->best], K);
    return RE_OK;
  }
  json_head(o, in, "ridge", "", o->lambdas[f->best], &f->test[f->best], 0);
  printf(", \"curve\": [");
  for (int l = 0; l < nl; l++) {
    printf("%s{\"lambda\": ", l ? ", " : "");
    re_json_number(stdout, o->lambdas[l]);
    printf(", ");
    json_score("val", &f->val[l], K, 0);
    printf(", ");
    json_score("test", &f->test[l], K, 0);
    printf("}");
  }
  printf("]");
  json_seconds(secs);
  return RE_OK;
}

/* The ridge probe: the λ path, --predictions, --weights and the report. */
static re_status run_ridge(const opts *o, inputs *in, double t0) {
  ridge_fit f;
  memset(&f, 0, sizeof f);
  re_status st = ridge_fit_run(o, in, &f);
  if (st == RE_OK)
    st = save_predictions(o, in, predict_ridge, f.path, f.best);
  if (st == RE_OK && o->weights)
    st = write_linear_weights(o, in, NULL, &f);
  if (st == RE_OK)
    st = ridge_report(o, in, &f, t0);
  re_ridge_path_destroy(&f.path);
  free(f.val);
  free(f.test);
  return st;
}

/* The k-NN probe: test scores, --predictions and the report. */
static re_status run_knn(const opts *o, inputs *in, double t0) {
  re_status st = RE_OK;
  re_knn *kn = NULL;
  re_probe_score s = {0, 0, 0, 0};
  RE_CHECK(re_knn_create(&in->tr, in->K, &o->ko, &kn));
  RE_CHECK(re_knn_score(kn, &in->te, &s));
  RE_CHECK(save_predictions(o, in, predict_knn, kn, 0));
  double secs = now() - t0;
  if (o->csv) {
    re_atomic a;
    RE_CHECK(csv_open(o->csv, &a));
    csv_score(a.f, "knn", NAN, "test", &s, in->K, 0);
    RE_CHECK(re_atomic_commit(&a));
  }
  if (o->json) {
    printf("{\"kind\": \"knn\", \"n_train\": %lld, \"n_test\": %lld, \"d\": %lld, \"classes\": %d, \"k\": %d, "
           "\"temperature\": ",
           (long long)in->train.n, (long long)in->test.n, (long long)in->train.d, in->K, o->ko.k);
    re_json_number(stdout, o->ko.temperature);
    printf(", ");
    json_score("test", &s, in->K, 0);
    json_seconds(secs);
  } else {
    print_plain(NAN, &s, in->K);
  }
done:
  re_knn_destroy(&kn);
  return st;
}

/* One class only among the training and validation rows: no classifier to speak of,
 * whatever the kind (RE_EUNDEFINED). */
static re_status check_two_classes(const opts *o, const inputs *in) {
  int64_t ntot = in->train.n + in->val.n, first = -1;
  for (int64_t i = 0; i < ntot; i++) {
    int32_t y = i < in->train.n ? in->train.y[i] : in->val.y[i - in->train.n];
    if (first < 0)
      first = y;
    else if (y != first)
      return RE_OK;
  }
  return re_err(RE_EUNDEFINED, "%s: all %lld training rows have label %lld; a classifier needs at least 2 classes",
                o->train_labels, (long long)ntot, (long long)first);
}

static re_status run(const opts *o) {
  re_status st = RE_OK;
  inputs in;
  labelled all;
  memset(&in, 0, sizeof in);
  memset(&all, 0, sizeof all);
  double t0 = now();
  double scale = 1;
  const char *splits[3] = {o->train, o->test, o->val};
  if (o->standardize || o->kind == KIND_KNN)
    RE_CHECK(common_scale(splits, 3, &scale));
  in.scale = scale;
  RE_CHECK(load(o->train, o->train_labels, scale, &all));
  RE_CHECK(load(o->test, o->test_labels, scale, &in.test));
  if (in.test.d != all.d) {
    st = re_err(RE_ESHAPE, "%s has %lld features, %s has %lld", o->test, (long long)in.test.d, o->train,
                (long long)all.d);
    goto done;
  }
  int need_val = o->kind != KIND_KNN && o->nl > 1;
  if (o->val) {
    RE_CHECK(load(o->val, o->val_labels, scale, &in.val));
    if (in.val.d != all.d) {
      st = re_err(RE_ESHAPE, "%s has %lld features, %s has %lld", o->val, (long long)in.val.d, o->train,
                  (long long)all.d);
      goto done;
    }
    in.train = all;
    memset(&all, 0, sizeof all);
    in.have_val = 1;
  } else if (need_val && o->val_fraction > 0) {
    RE_CHECK(split(&all, o->val_fraction, o->seed, &in.train, &in.val));
    in.have_val = in.val.n > 0;
  } else {
    in.train = all;
    memset(&all, 0, sizeof all);
  }
  int32_t mx = max_label(&in.train);
  int32_t mv = max_label(&in.val), mt = max_label(&in.test);
  mx = mv > mx ? mv : mx;
  mx = mt > mx ? mt : mx;
  in.K = o->classes ? o->classes : (mx + 1 < 2 ? 2 : mx + 1);
  if (o->classes && mx >= o->classes) {
    st = re_err(RE_EDATA, "--classes %d but a label is %d", o->classes, (int)mx);
    goto done;
  }
  RE_CHECK(check_two_classes(o, &in));
  in.tr = rows_of(&in.train, "train");
  in.va = rows_of(&in.val, "validation");
  in.te = rows_of(&in.test, "test");
  if (o->kind == KIND_LOGISTIC)
    st = run_logistic(o, &in, t0);
  else if (o->kind == KIND_RIDGE)
    st = run_ridge(o, &in, t0);
  else if (o->kind == KIND_MLP)
    st = run_mlp(o, &in, t0);
  else
    st = run_knn(o, &in, t0);
done:
  labelled_free(&all);
  labelled_free(&in.train);
  labelled_free(&in.val);
  labelled_free(&in.test);
  return st;
}

int re_cmd_probe(int argc, char **argv) {
  opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc != RE_OPTS_RUN)
    return rc;
  re_status st = run(&o);
  if (st == RE_EUNDEFINED) {
    printf("undefined\n");
    re_cli_fail(st);
    return RE_EXIT_UNDEFINED;
  }
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
