/* Probes behave as documented on degenerate input: one class only and bad labels
 * are refused naming the index, NaN/Inf features naming row and column; fewer samples
 * than features, separable data and constant features give finite fits (the penalty
 * bounds ||W||^2 <= 2 f(start) / λ); a class without training rows gets probability 0;
 * ridge and k-NN refuse bad input too; k-NN breaks similarity ties towards the lower
 * training index; the validation split is deterministic, of the documented size and
 * the same when computed in pieces. */
#include <stdlib.h>

#include "check.h"
#include "repeval/probe.h"

enum { MAXN = 400, MAXD = 120 };
static float X[MAXN * MAXD];
static int32_t Y[MAXN];

/* n rows of d features: class c = i % K, centre 3 * e_c (c < d), unit noise. */
static re_probe_rows blobs(int64_t n, int64_t d, int32_t K, double sep) {
  for (int64_t i = 0; i < n; i++) {
    Y[i] = (int32_t)(i % K);
    for (int64_t j = 0; j < d; j++)
      X[i * d + j] = (float)(check_normal() + (j == Y[i] % d ? sep : 0.0));
  }
  re_probe_rows r = {X, Y, n, d, d, "train"};
  return r;
}

static re_status fit_one(const re_probe_rows *r, int32_t K, double lambda, re_logreg_info *info, re_logreg **out,
                         double *f0) {
  re_logreg_options o = re_logreg_defaults();
  o.tol = 1e-9;
  o.ftol = 0;
  re_logreg *lr = NULL;
  re_logreg_data *dt = NULL;
  re_status st = re_logreg_create(r, 1, K, &o, &lr);
  if (st == RE_OK)
    st = re_logreg_data_create(lr, r, 1, &dt);
  if (st == RE_OK && f0)
    st = re_logreg_objective(lr, dt, lambda, f0); /* W = 0, b = 0: log K */
  if (st == RE_OK)
    st = re_logreg_fit(lr, dt, lambda, info);
  re_logreg_data_destroy(&dt);
  if (out && st == RE_OK)
    *out = lr;
  else
    re_logreg_destroy(&lr);
  return st;
}

static double wnorm2(const re_logreg *lr, double *W, double *b) {
  int64_t d = re_logreg_dim(lr), K = re_logreg_classes(lr);
  re_logreg_weights(lr, W, b);
  double s = 0;
  for (int64_t i = 0; i < K * d; i++)
    s += W[i] * W[i];
  return s;
}

int main(void) {
  check_seed(11);
  re_logreg_info info;
  re_logreg *lr = NULL;
  static double W[MAXD * 8], b[8];
  double lam[2] = {1.0, 0.01};

  /* ---- refusals ---- */
  re_probe_rows r = blobs(60, 5, 3, 3.0);
  for (int i = 0; i < 60; i++)
    Y[i] = 2;
  CHECK_FAILS(fit_one(&r, 3, 0.1, &info, NULL, NULL), RE_EUNDEFINED, "all 60 training rows have the same label (2)");
  re_logreg_sweep sw;
  CHECK_FAILS(re_logreg_sweep_run(&r, NULL, NULL, 3, lam, 1, &(re_logreg_options){.tol = 1e-6, .ftol = 0,
                                  .max_iter = 100, .memory = 10, .standardize = 1, .block_rows = 64}, &sw, NULL),
              RE_EUNDEFINED, "same label");
  r = blobs(60, 5, 3, 3.0);
  Y[3] = -1;
  CHECK_FAILS(fit_one(&r, 3, 0.1, &info, NULL, NULL), RE_EDATA, "train labels: index 3 is -1, expected a class in [0, 3)");
  Y[3] = 0;
  Y[17] = 3;
  CHECK_FAILS(fit_one(&r, 3, 0.1, &info, NULL, NULL), RE_EDATA, "index 17 is 3");
  Y[17] = 2;
  X[2 * 5 + 1] = NAN;
  CHECK_FAILS(fit_one(&r, 3, 0.1, &info, NULL, NULL), RE_EDATA, "train: row 2, column 1 is NaN");
  X[2 * 5 + 1] = 0;
  X[41 * 5 + 4] = -INFINITY;
  CHECK_FAILS(fit_one(&r, 3, 0.1, &info, NULL, NULL), RE_EDATA, "row 41, column 4 is infinite");
  X[41 * 5 + 4] = 0;
  CHECK_FAILS(fit_one(&r, 3, 0.0, &info, NULL, NULL), RE_EINVAL, "lambda must be a finite number > 0");
  CHECK_FAILS(fit_one(&r, 1, 0.1, &info, NULL, NULL), RE_EINVAL, "need at least 2");
  re_logreg_options o = re_logreg_defaults();
  CHECK_FAILS(re_logreg_sweep_run(&r, NULL, NULL, 3, lam, 2, &o, &sw, NULL), RE_EINVAL, "no validation rows");

  /* ---- fewer samples than features: well posed through the penalty ---- */
  r = blobs(20, 100, 3, 1.0);
  double f0;
  CHECK_OK(fit_one(&r, 3, 1e-3, &info, &lr, &f0));
  CHECK_CLOSE(f0, log(3.0), 1e-12);
  CHECK(info.converged && isfinite(info.f) && info.f < f0);
  if (lr) {
    double w2 = wnorm2(lr, W, b);
    CHECK(isfinite(w2) && w2 > 0);
    re_probe_score s = {0, 0, 0, 0};
    CHECK_OK(re_logreg_score(lr, &r, &s));
    CHECK(s.n == 20 && s.top1 == 20); /* interpolates its training set */
  }
  re_logreg_destroy(&lr);

  /* ---- separable data, tiny λ: finite, and the penalty bounds the weights ---- */
  r = blobs(200, 4, 2, 12.0);
  CHECK_OK(fit_one(&r, 2, 1e-6, &info, &lr, &f0));
  CHECK(info.converged);
  if (lr) {
    /* in standardised coordinates (λ/2)||W||^2 <= f(W*) <= f(0) = log 2 */
    re_logreg_weights(lr, W, b);
    CHECK(isfinite(W[0]) && isfinite(b[0]) && isfinite(b[1]));
    CHECK(info.f <= f0 && info.f > 0);
    re_probe_score s = {0, 0, 0, 0};
    CHECK_OK(re_logreg_score(lr, &r, &s));
    CHECK(s.top1 == 200);
  }
  re_logreg_destroy(&lr);

  /* ---- a constant feature changes nothing: same f as without it, zero weight ---- */
  r = blobs(150, 4, 3, 2.0);
  static float Xc[150 * 5];
  for (int i = 0; i < 150; i++) {
    for (int j = 0; j < 4; j++)
      Xc[i * 5 + j] = X[i * 4 + j];
    Xc[i * 5 + 4] = 3.7f;
  }
  re_logreg_info i4, i5;
  CHECK_OK(fit_one(&r, 3, 1e-2, &i4, NULL, NULL));
  re_probe_rows rc = {Xc, Y, 150, 5, 5, "train"};
  CHECK_OK(fit_one(&rc, 3, 1e-2, &i5, &lr, NULL));
  CHECK_CLOSE(i4.f, i5.f, 1e-10);
  if (lr) {
    re_logreg_weights(lr, W, b);
    for (int k = 0; k < 3; k++)
      CHECK(fabs(W[k * 5 + 4]) < 1e-8);
  }
  re_logreg_destroy(&lr);

  /* ---- a class without training rows: probability 0, never predicted ---- */
  r = blobs(90, 3, 3, 3.0); /* labels 0..2, fitted as K = 4 */
  CHECK_OK(fit_one(&r, 4, 1e-2, &info, &lr, NULL));
  if (lr) {
    re_logreg_weights(lr, W, b);
    CHECK(isinf(b[3]) && b[3] < 0 && W[3 * 3] == 0);
    int32_t pred[90];
    CHECK_OK(re_logreg_predict(lr, &r, pred));
    int any3 = 0;
    for (int i = 0; i < 90; i++)
      any3 |= pred[i] == 3;
    CHECK(!any3);
    /* a test row of that class has loss +inf and is never top-1 */
    Y[0] = 3;
    re_probe_rows one = {X, Y, 1, 3, 3, "test"};
    re_probe_score s = {0, 0, 0, 0};
    CHECK_OK(re_logreg_score(lr, &one, &s));
    CHECK(s.top1 == 0 && isinf(s.loss));
  }
  re_logreg_destroy(&lr);

  /* ---- ridge ---- */
  re_moments *m = NULL;
  re_ridge_path *p = NULL;
  CHECK_OK(re_ridge_moments_create(3, 3, &m));
  r = blobs(30, 3, 3, 3.0);
  Y[7] = 5;
  CHECK_FAILS(re_ridge_moments_add(m, &r), RE_EDATA, "index 7 is 5, expected a class in [0, 3)");
  Y[7] = 1;
  X[4 * 3 + 2] = NAN;
  CHECK_FAILS(re_ridge_moments_add(m, &r), RE_EDATA, "row 4, column 2 is NaN");
  X[4 * 3 + 2] = 0;
  re_probe_rows one = {X, Y, 1, 3, 3, "train"};
  CHECK_OK(re_ridge_moments_add(m, &one));
  CHECK_FAILS(re_ridge_path_create(m, 0, 1, lam, 2, 1, NULL, &p), RE_EUNDEFINED, "need at least 2");
  CHECK_OK(re_ridge_moments_add(m, &r));
  double bad[1] = {-1};
  CHECK_FAILS(re_ridge_path_create(m, 0, 1, bad, 1, 1, NULL, &p), RE_EINVAL, "expected a finite number > 0");
  CHECK_OK(re_ridge_path_create(m, 0, 1, lam, 2, 1, NULL, &p));
  re_probe_rows wrong = {X, Y, 30, 2, 3, "test"};
  re_probe_score rs[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  CHECK_FAILS(re_ridge_path_score(p, &wrong, rs), RE_ESHAPE, "test: 2 features");
  CHECK_OK(re_ridge_path_score(p, &r, rs));
  CHECK(rs[0].n == 30 && rs[1].n == 30 && rs[1].top1 >= 20);
  re_ridge_path_destroy(&p);
  re_moments_destroy(&m);

  /* ---- k-NN: ties go to the lower training index; k > n uses every row ---- */
  static float T[4 * 2] = {1, 0, 1, 0, 0, 1, 0, 1}; /* rows 0, 1 identical; rows 2, 3 identical */
  int32_t TY[4] = {1, 0, 0, 1};
  re_probe_rows kt = {T, TY, 4, 2, 2, "train"};
  re_knn_options ko = re_knn_defaults();
  ko.k = 1;
  re_knn *kn = NULL;
  CHECK_OK(re_knn_create(&kt, 2, &ko, &kn));
  float Q[2 * 2] = {2, 0, 0, 3};
  int32_t QY[2] = {1, 0};
  re_probe_rows kq = {Q, QY, 2, 2, 2, "test"};
  int32_t kp[2];
  CHECK_OK(re_knn_predict(kn, &kq, kp));
  CHECK(kp[0] == 1 && kp[1] == 0); /* nearest: rows 0 and 2, the lower indices */
  re_knn_destroy(&kn);
  ko.k = 50;
  CHECK_OK(re_knn_create(&kt, 2, &ko, &kn));
  re_probe_score ks = {0, 0, 0, 0};
  CHECK_OK(re_knn_score(kn, &kq, &ks));
  CHECK(ks.n == 2 && ks.top1 == 1); /* all 4 rows vote: equal totals, class 0 wins the tie */
  re_knn_destroy(&kn);
  TY[2] = 7;
  CHECK_FAILS(re_knn_create(&kt, 2, &ko, &kn), RE_EDATA, "index 2 is 7");
  TY[2] = 0;
  T[5] = INFINITY;
  CHECK_FAILS(re_knn_create(&kt, 2, &ko, &kn), RE_EDATA, "row 2, column 1 is infinite");

  /* ---- validation split ---- */
  static uint8_t v1[1000], v2[1000];
  CHECK_OK(re_probe_split(1000, 0.1, 5, 0, 1000, v1));
  int nv = 0;
  for (int i = 0; i < 1000; i++)
    nv += v1[i];
  CHECK(nv == 100);
  CHECK_OK(re_probe_split(1000, 0.1, 5, 0, 400, v2));
  CHECK_OK(re_probe_split(1000, 0.1, 5, 400, 600, v2 + 400));
  CHECK(memcmp(v1, v2, 1000) == 0);
  CHECK_OK(re_probe_split(1000, 0.1, 6, 0, 1000, v2));
  CHECK(memcmp(v1, v2, 1000) != 0);
  CHECK_FAILS(re_probe_split(10, 0.99, 0, 0, 10, v2), RE_EINVAL, "leaves no training rows");
  CHECK_FAILS(re_probe_split(10, 1.0, 0, 0, 10, v2), RE_EINVAL, "must be in [0, 1)");

  double g[11];
  re_probe_default_grid(g);
  CHECK(g[0] == 1e-6 && g[10] == 1e4 && g[6] == 1.0);
  CHECK_OK(re_probe_log_grid(1e-3, 10, 5, g));
  CHECK(g[0] == 1e-3 && g[4] == 10);
  CHECK_CLOSE(g[2], 0.1, 1e-14);
  CHECK_FAILS(re_probe_log_grid(1, 0.5, 3, g), RE_EINVAL, "0 < lo <= hi");
  return check_report();
}
