/* The logistic probe's data-parallel form gives the single-process answer: three
 * simulated ranks (threads, one per row block, whose reduction callback sums the three
 * buffers in the fixed order 0, 1, 2 and hands every rank the same sum) end with
 * bitwise identical parameters on every rank and an objective within 1e-10 (relative)
 * of the one-block fit; a whole λ sweep, with one rank holding no validation rows,
 * selects the same λ and scores the same validation and test counts. Splitting the
 * local rows over threads (re_logreg_options.threads) gives the same fit too. */
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "repeval/probe.h"

enum { R = 3, N = 900, D = 24, K = 5, NT = 300 };

static float X[N * D], XT[NT * D];
static int32_t Y[N], YT[NT];

typedef struct sim {
  pthread_barrier_t bar;
  double *slot[R];
  int64_t len[R];
} sim;

typedef struct rank_ctx {
  sim *s;
  int rank;
  re_status st;
  /* inputs */
  re_probe_rows train, val, test;
  int mode; /* 0: one fit; 1: sweep */
  /* outputs */
  double f;
  double W[K * D], b[K];
  re_logreg_sweep sw;
} rank_ctx;

static re_status reduce3(double *buf, int64_t len, void *ctx) {
  rank_ctx *c = ctx;
  sim *s = c->s;
  s->slot[c->rank] = buf;
  s->len[c->rank] = len;
  pthread_barrier_wait(&s->bar);
  re_status st = RE_OK;
  double *sum = malloc((size_t)len * sizeof(double));
  for (int r = 0; r < R; r++)
    if (s->len[r] != len)
      st = re_err(RE_EMPI, "ranks disagree on the reduction length (%lld vs %lld)", (long long)s->len[r],
                  (long long)len);
  if (st == RE_OK && sum)
    for (int64_t i = 0; i < len; i++)
      sum[i] = (s->slot[0][i] + s->slot[1][i]) + s->slot[2][i];
  pthread_barrier_wait(&s->bar); /* everyone has read every slot */
  if (st == RE_OK && sum)
    memcpy(buf, sum, (size_t)len * sizeof(double));
  free(sum);
  pthread_barrier_wait(&s->bar);
  return sum || st != RE_OK ? st : re_err(RE_ENOMEM, "reduction buffer");
}

static re_logreg_options options(void) {
  re_logreg_options o = re_logreg_defaults();
  o.tol = 1e-10;
  o.ftol = 0;
  return o;
}

static void *rank_main(void *arg) {
  rank_ctx *c = arg;
  re_logreg_options o = options();
  o.reduce.fn = reduce3;
  o.reduce.ctx = c;
  if (c->mode == 0) {
    re_logreg *lr = NULL;
    re_logreg_data *dt = NULL;
    re_logreg_info info;
    c->st = re_logreg_create(&c->train, 1, K, &o, &lr);
    if (c->st == RE_OK)
      c->st = re_logreg_data_create(lr, &c->train, 1, &dt);
    if (c->st == RE_OK)
      c->st = re_logreg_fit(lr, dt, 1e-3, &info);
    if (c->st == RE_OK) {
      c->f = info.f;
      re_logreg_weights(lr, c->W, c->b);
    }
    re_logreg_data_destroy(&dt);
    re_logreg_destroy(&lr);
  } else {
    double grid[11];
    re_probe_default_grid(grid);
    c->st = re_logreg_sweep_run(&c->train, &c->val, &c->test, K, grid, 11, &o, &c->sw, NULL);
  }
  return NULL;
}

static re_probe_rows rows(float *x, int32_t *y, int64_t r0, int64_t n, const char *name) {
  re_probe_rows r = {x + r0 * D, y + r0, n, D, D, name};
  return r;
}

int main(void) {
  openblas_set_num_threads(1); /* the simulated ranks are the threads */
  check_seed(3);
  double centre[K][D];
  for (int k = 0; k < K; k++)
    for (int j = 0; j < D; j++)
      centre[k][j] = 0.3 * check_normal();
  for (int i = 0; i < N + NT; i++) {
    int32_t y = (int32_t)(check_uniform() * K);
    float *x = i < N ? X + i * D : XT + (i - N) * D;
    for (int j = 0; j < D; j++)
      x[j] = (float)(centre[y][j] + check_normal() + 5.0); /* offset: standardisation matters */
    if (i < N)
      Y[i] = y;
    else
      YT[i - N] = y;
  }

  /* ---- one fit: 1 block vs 3 ranks ---- */
  re_logreg_options o = options();
  re_probe_rows all = rows(X, Y, 0, N, "train");
  re_logreg *lr = NULL;
  re_logreg_data *dt = NULL;
  re_logreg_info info;
  static double W1[K * D], b1[K];
  CHECK_OK(re_logreg_create(&all, 1, K, &o, &lr));
  CHECK_OK(re_logreg_data_create(lr, &all, 1, &dt));
  CHECK_OK(re_logreg_fit(lr, dt, 1e-3, &info));
  CHECK(info.converged);
  re_logreg_weights(lr, W1, b1);
  double f1 = info.f;
  re_logreg_data_destroy(&dt);
  re_logreg_destroy(&lr);

  /* threads over the local rows (small blocks so that 900 rows make 3 threads' work) */
  re_logreg_options ot = o;
  ot.threads = 3;
  ot.block_rows = 8;
  static double W3[K * D], b3[K];
  CHECK_OK(re_logreg_create(&all, 1, K, &ot, &lr));
  CHECK_OK(re_logreg_data_create(lr, &all, 1, &dt));
  CHECK_OK(re_logreg_fit(lr, dt, 1e-3, &info));
  CHECK(info.converged);
  CHECK_CLOSE(info.f, f1, 1e-10);
  re_logreg_weights(lr, W3, b3);
  double dt3 = 0, wm = 0;
  for (int i = 0; i < K * D; i++) {
    dt3 = fmax(dt3, fabs(W3[i] - W1[i]));
    wm = fmax(wm, fabs(W1[i]));
  }
  CHECK(dt3 <= 1e-5 * wm);
  printf("one fit: f 3 threads %.17g\n", info.f);
  re_logreg_data_destroy(&dt);
  re_logreg_destroy(&lr);

  static rank_ctx ctx[R];
  sim s;
  pthread_barrier_init(&s.bar, NULL, R);
  int64_t cut[R + 1] = {0, 250, 650, N};
  pthread_t th[R];
  for (int r = 0; r < R; r++) {
    memset(&ctx[r], 0, sizeof ctx[r]);
    ctx[r].s = &s;
    ctx[r].rank = r;
    ctx[r].train = rows(X, Y, cut[r], cut[r + 1] - cut[r], "train");
    pthread_create(&th[r], NULL, rank_main, &ctx[r]);
  }
  for (int r = 0; r < R; r++)
    pthread_join(th[r], NULL);
  for (int r = 0; r < R; r++)
    CHECK_OK(ctx[r].st);
  CHECK_CLOSE(ctx[0].f, f1, 1e-10);
  printf("one fit: f 1 block %.17g, 3 ranks %.17g\n", f1, ctx[0].f);
  for (int r = 1; r < R; r++) {
    CHECK(ctx[r].f == ctx[0].f);
    CHECK(memcmp(ctx[r].W, ctx[0].W, sizeof ctx[0].W) == 0 && memcmp(ctx[r].b, ctx[0].b, sizeof ctx[0].b) == 0);
  }
  double dw = 0, wmax = 0;
  for (int i = 0; i < K * D; i++) {
    dw = fmax(dw, fabs(ctx[0].W[i] - W1[i]));
    wmax = fmax(wmax, fabs(W1[i]));
  }
  CHECK(dw <= 1e-5 * wmax);

  /* ---- sweep: train / val / test split over the ranks, rank 0 without validation rows ---- */
  int64_t ntr = 700;
  re_probe_rows tr1 = rows(X, Y, 0, ntr, "train"), va1 = rows(X, Y, ntr, N - ntr, "val"),
                te1 = rows(XT, YT, 0, NT, "test");
  double grid[11];
  re_probe_default_grid(grid);
  re_logreg_sweep ref;
  CHECK_OK(re_logreg_sweep_run(&tr1, &va1, &te1, K, grid, 11, &o, &ref, NULL));
  int64_t tcut[R + 1] = {0, 300, 500, ntr}, vcut[R + 1] = {ntr, ntr, 800, N}, ecut[R + 1] = {0, 100, 120, NT};
  for (int r = 0; r < R; r++) {
    memset(&ctx[r], 0, sizeof ctx[r]);
    ctx[r].s = &s;
    ctx[r].rank = r;
    ctx[r].mode = 1;
    ctx[r].train = rows(X, Y, tcut[r], tcut[r + 1] - tcut[r], "train");
    ctx[r].val = rows(X, Y, vcut[r], vcut[r + 1] - vcut[r], "val");
    ctx[r].test = rows(XT, YT, ecut[r], ecut[r + 1] - ecut[r], "test");
    pthread_create(&th[r], NULL, rank_main, &ctx[r]);
  }
  for (int r = 0; r < R; r++)
    pthread_join(th[r], NULL);
  for (int r = 0; r < R; r++) {
    CHECK_OK(ctx[r].st);
    if (ctx[r].st != RE_OK)
      continue;
    CHECK(ctx[r].sw.lambda == ref.lambda);
    CHECK(ctx[r].sw.test.n == NT && ctx[r].sw.test.top1 == ref.test.top1);
    CHECK_CLOSE(ctx[r].sw.test.loss, ref.test.loss, 1e-6);
    CHECK_CLOSE(ctx[r].sw.refit.f, ref.refit.f, 1e-10);
    for (int l = 0; l < 11; l++) {
      CHECK(ctx[r].sw.points[l].val.n == N - ntr);
      CHECK(ctx[r].sw.points[l].val.top1 == ref.points[l].val.top1);
      CHECK_CLOSE(ctx[r].sw.points[l].fit.f, ref.points[l].fit.f, 1e-10);
    }
  }
  printf("sweep: lambda %g, test %.0f / %d correct, refit f %.17g\n", ref.lambda, ref.test.top1, NT, ref.refit.f);
  CHECK(ref.test.top1 > NT / 2); /* the problem is learnable: the comparison means something */
  for (int r = 0; r < R; r++)
    re_logreg_sweep_free(&ctx[r].sw);
  re_logreg_sweep_free(&ref);
  pthread_barrier_destroy(&s.bar);
  return check_report();
}
